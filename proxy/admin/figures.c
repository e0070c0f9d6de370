/*
 * figures.c - what the admin endpoints and the status page both report,
 * computed from the server: readiness, and the workers' Redis snapshots
 * summed (figures.h).
 */
#include "admin/figures.h"

#include <stdatomic.h>
#include <string.h>

#include "cache/cache_loop.h"
#include "cache/warmup.h"
#include "invalidate/invalidate.h"
#include "server.h"

bool admin_ready(struct server *s, const char **why)
{
	if (atomic_load(&s->draining)) {
		*why = "draining";
		return false;
	}
	if (!server_runtime(s)) {
		*why = "no policy loaded";
		return false;
	}
	if (!atomic_load(&s->upstream_reachable)) {
		*why = "upstream unreachable";
		return false;
	}
	if (!invalidate_ready(why))
		return false;
	if (!warmup_ready(why))
		return false;
	*why = NULL;
	return true;
}

/* The workers' snapshots are taken on their ticks. */
bool admin_redis_sum(const struct server *s, struct redis_stats *sum, unsigned *ready, unsigned *open)
{
	memset(sum, 0, sizeof(*sum));
	*ready = *open = 0;
	bool any = false;
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct redis_stats w;
		if (!cache_loop_redis_stats(s->workers[i], &w))
			continue;
		any = true;
		sum->commands += w.commands;
		sum->errors += w.errors;
		sum->timeouts += w.timeouts;
		sum->latency_us_sum += w.latency_us_sum;
		sum->latency_count += w.latency_count;
		*ready += w.state == REDIS_ST_READY;
		*open += w.breaker != REDIS_BR_CLOSED;
		if (w.master_addr[0])
			memcpy(sum->master_addr, w.master_addr, sizeof(sum->master_addr));
	}
	return any;
}
