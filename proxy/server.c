/*
 * server.c - the server's life cycle. The instance is main.c's; nothing
 * here names it.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache_ctx.h"
#include "cache/cache_loop.h"
#include "cache/l2.h"
#include "cache/redis.h"
#include "net/worker.h"
#include "resilience/breaker.h"
#include "invalidate/invalidate.h"
#include "resilience/bulkhead.h"
#include "resilience/tiers.h"

void server_init(struct server *s)
{
	memset(s, 0, sizeof(*s));
	runtime_slot_init(&s->runtime);
	retry_budget_init(&s->retry_budget);
	/* the loop check needs a name no other levee has: 64 random bits,
	 * or, should getrandom fail, what tells processes apart */
	uint64_t r;
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)s;
	via_pseudonym(s->via, r);
}

int server_cache_create(struct server *s, char *err, size_t errlen)
{
	s->cache = cache_new(server_runtime(s)->policy);
	if (!s->cache) {
		snprintf(err, errlen, "cannot allocate the cache");
		return LV_ERR;
	}
	return LV_OK;
}

int server_workers_create(struct server *s, unsigned n, char *err, size_t errlen)
{
	s->workers = calloc(n, sizeof(*s->workers));
	if (!s->workers) {
		snprintf(err, errlen, "out of memory");
		return LV_ERR;
	}
	for (unsigned i = 0; i < n; i++) {
		s->workers[i] = malloc(sizeof(struct worker));
		if (!s->workers[i]) {
			snprintf(err, errlen, "out of memory");
			return LV_ERR;
		}
		if (worker_create(s->workers[i], i, NULL, &s->runtime, &s->conns, err, errlen) != LV_OK ||
		    cache_loop_open(s->workers[i], s->cache, server_runtime(s)->policy, err, errlen) != LV_OK)
			return LV_ERR;
		s->workers[i]->retry_budget = &s->retry_budget;
		s->workers[i]->via = s->via;
		s->nworkers = i + 1;
	}
	s->nlisteners = n;
	return LV_OK;
}

static struct bulkhead_threads *server_bh_threads_find(struct server *s, const char *name)
{
	for (unsigned i = 0; i < s->nbh_threads; i++)
		if (strcmp(s->bh_threads[i].name, name) == 0)
			return &s->bh_threads[i];
	return NULL;
}

static struct bulkhead_threads *server_bh_threads(struct server *s, const char *name)
{
	struct bulkhead_threads *found = server_bh_threads_find(s, name);
	if (found)
		return found;
	struct bulkhead_threads *grown = realloc(s->bh_threads, (s->nbh_threads + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	s->bh_threads = grown;
	struct bulkhead_threads *t = &s->bh_threads[s->nbh_threads++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	return t;
}

/* One more event loop at the end of s->workers, named `name`. */
static struct worker *server_loop_add(struct server *s, const char *name, char *err, size_t errlen)
{
	struct worker **grown = realloc(s->workers, (s->nworkers + 1) * sizeof(*grown));
	struct worker *w = grown ? malloc(sizeof(*w)) : NULL;
	if (grown)
		s->workers = grown;
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (worker_create(w, s->nworkers, name, &s->runtime, &s->conns, err, errlen) != LV_OK ||
	    cache_loop_open(w, s->cache, server_runtime(s)->policy, err, errlen) != LV_OK) {
		worker_destroy(w);
		free(w);
		return NULL;
	}
	w->retry_budget = &s->retry_budget;
	w->via = s->via;
	s->workers[s->nworkers++] = w;
	return w;
}

int server_bulkhead_threads(struct server *s, struct runtime *rt, char *err, size_t errlen)
{
	const struct lv_policy *p = rt->policy;
	for (size_t i = 0; i < p->nbulkheads; i++) {
		const struct lv_bulkhead *cfg = &p->bulkheads[i];
		if (cfg->isolation != LV_ISOLATION_THREAD)
			continue;
		struct bulkhead_threads *t = server_bh_threads(s, cfg->name);
		if (!t) {
			snprintf(err, errlen, "out of memory");
			return LV_ERR;
		}
		while (t->n < cfg->threads) {
			char name[LV_NAME_MAX + 24];
			snprintf(name, sizeof(name), "bulkhead %s #%u", cfg->name, t->n);
			struct worker *w = server_loop_add(s, name, err, errlen);
			if (!w)
				return LV_ERR;
			t->loops[t->n++] = w;
		}
		/* running already (a reload): its threads run before it may use them */
		if (s->nstarted && server_workers_start(s) != LV_OK) {
			snprintf(err, errlen, "cannot start the threads of bulkhead %s", cfg->name);
			return LV_ERR;
		}
	}
	return LV_OK;
}

void server_protection_apply(struct server *s, struct runtime *rt)
{
	const struct lv_policy *p = rt->policy;
	for (size_t i = 0; i < p->nbulkheads; i++) {
		const struct lv_bulkhead *cfg = &p->bulkheads[i];
		struct bulkhead_threads *t =
		    cfg->isolation == LV_ISOLATION_THREAD ? server_bh_threads_find(s, cfg->name) : NULL;
		/* server_bulkhead_threads() made them: t->n >= cfg->threads */
		bulkhead_apply(rt->bulkheads[i], cfg, t ? t->loops : NULL, t ? (unsigned)cfg->threads : 0);
	}
	for (size_t i = 0; i < p->nbreakers; i++)
		breaker_apply(rt->breakers[i], &p->breakers[i], now_us() / 1000);
}

int server_workers_start(struct server *s)
{
	for (; s->nstarted < s->nworkers; s->nstarted++)
		if (worker_start(s->workers[s->nstarted]) != LV_OK)
			return LV_ERR;
	return LV_OK;
}

void server_destroy(struct server *s)
{
	for (unsigned i = 0; i < s->nworkers; i++) {
		worker_destroy(s->workers[i]);
		free(s->workers[i]);
	}
	free(s->workers);
	s->workers = NULL;
	s->nworkers = 0;
	free(s->bh_threads);
	s->bh_threads = NULL;
	s->nbh_threads = 0;
	l2_free(s->l2);
	if (s->redis)
		redis_free(s->redis);
	s->l2 = NULL;
	s->redis = NULL;
	/* last of the cache's users: the loops' and main's Redis callbacks
	 * (purges they still owed) have run */
	cache_free(s->cache);
	s->cache = NULL;
	if (s->main_base)
		event_base_free(s->main_base);
	s->main_base = NULL;
	runtime_slot_destroy(&s->runtime);
	retry_budget_destroy(&s->retry_budget);
}

/* ---- what the tier signals read ----------------------------------------- */

static bool tiers_redis_up(void *ctx, bool *known)
{
	struct server *s = ctx;
	*known = s->redis != NULL;
	return s->redis && redis_available(s->redis);
}

static bool tiers_kafka_up(void *ctx, bool *known, int64_t *lag, int64_t *spooled)
{
	(void)ctx;
	return invalidate_health(known, lag, spooled);
}

static struct runtime *tiers_runtime(void *ctx)
{
	return server_runtime_acquire(ctx);
}

/* Main thread only, like the reload that adds loops. */
static struct lv_stats *const *tiers_stats(void *ctx, unsigned *n)
{
	struct server *s = ctx;
	static struct lv_stats **v;
	static unsigned cap;
	if (s->nworkers > cap) {
		struct lv_stats **nv = realloc(v, s->nworkers * sizeof(*nv));
		if (nv) {
			v = nv;
			cap = s->nworkers;
		}
	}
	unsigned k = 0;
	for (unsigned i = 0; i < s->nworkers && k < cap; i++)
		v[k++] = s->workers[i]->stats;
	*n = k;
	return v;
}

int server_tiers_start(struct server *s, char *err, size_t errlen)
{
	const struct tiers_sources src = {
	    .redis_up = tiers_redis_up,
	    .kafka_up = tiers_kafka_up,
	    .ctx = s,
	    .runtime = tiers_runtime,
	    .stats = tiers_stats,
	};
	return tiers_start(s->main_base, &src, err, errlen);
}

struct runtime *server_runtime_acquire(struct server *s)
{
	return runtime_slot_acquire(&s->runtime);
}
