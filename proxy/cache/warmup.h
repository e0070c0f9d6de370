/*
 * warmup.h - warm-up of a replica that starts with an empty L1, at start,
 * once (a reload does not restart it).
 *
 *   start ──▶ hot set ──▶ urls ──▶ done
 *
 *  1. Hot set: the top [warmup] hot_keys members of the service's hot set
 *     (hotset.h) are read from Redis and each entry is looked up with the
 *     L2 lookup script, so that generations are checked as for an L2 hit,
 *     then checked against this process's purges (fence and epoch) and
 *     for freshness, and put into the L1; at most hot_rate a second, a
 *     few at a time. A Redis that is not up within WARMUP_REDIS_WAIT_MS skips
 *     this step (counted as one error).
 *  2. URLs: the [warmup] list is fetched through levee's own listener, as
 *     a client: each request takes the normal path (route, tiers, cache,
 *     Redis lease, bulkhead, breaker, upstream), so replicas starting
 *     together share each fill through its lease and the origin sees each
 *     URL once. Requests start evenly spaced, at most `rate` a second and
 *     `concurrency` at once.
 *
 * Serving never waits for it. /readyz does, up to [warmup] ready_wait.
 *
 * Thread: the warm-up runs on the main loop; warmup_ready, warmup_status_json
 * and warmup_render_prometheus may be called from any thread (atomics).
 */
#ifndef LEVEE_CACHE_WARMUP_H
#define LEVEE_CACHE_WARMUP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "policy.h"

#define WARMUP_REDIS_WAIT_MS 3000u   /* for Redis to come up before the hot set is skipped */
#define WARMUP_FETCH_TIMEOUT_MS 30000u /* a warm-up request that moves no byte this long fails */

struct event_base;
struct cache;
struct redis;
struct l2;

/* Spacing: a request may start once `interval_us` has passed since the
 * last one was due. With slack 0 that is since it started: lateness (a
 * timer that fired late) is never made up, so two starts are never closer
 * than the interval and no credit is saved up while idle. With slack, a
 * start up to `slack_us` late keeps the schedule (the next is due one
 * interval after this one was due, not after it started), so timer
 * lateness does not slow the rate down; a start later than that starts the
 * schedule again. Either way, at most one start per interval on average and
 * no burst after an idle spell. Time comes from the caller. */
struct warm_rate {
	uint64_t interval_us;
	uint64_t slack_us;
	uint64_t next_us; /* when the next start is due */
};
void warm_rate_init(struct warm_rate *r, uint64_t per_second, uint64_t slack_us);
/* 0 when a request may start at `now_us` (it is counted), else how many
 * microseconds to wait. */
uint64_t warm_rate_take(struct warm_rate *r, uint64_t now_us);

/* What the warm-up runs on and reaches, borrowed for its life. */
struct warmup_env {
	struct event_base *base; /* the loop it runs on */
	struct cache *cache;
	struct redis *redis; /* the loop's Redis tier, NULL without one */
	struct l2 *l2;
	/* Whether every worker's Redis connection is ready: a warm-up URL
	 * fetched before would pass through without a lease. NULL: always. */
	bool (*workers_on_redis)(void *ctx);
	void *ctx;
	/* Set when levee drains: the warm-up stops starting requests. */
	const atomic_int *draining;
};

/* Starts the warm-up of policy `p` (referenced until it ends), reaching
 * levee's listener at p->listen. Nothing to do ends it at once. */
int warmup_start(const struct warmup_env *env, const struct lv_policy *p, char *err, size_t errlen) LV_WARN_UNUSED;
/* Stops what is still running (at shutdown, before the loop's Redis tier
 * is freed: its callbacks then find the warm-up closed). */
void warmup_stop(void);

/* False with a reason while the warm-up runs and ready_wait has not passed. */
bool warmup_ready(const char **why);
/* The `warmup` object of /status, and the levee_cache_warmup_* and
 * levee_cache_hotset_* families. */
void warmup_status_json(FILE *f);
void warmup_render_prometheus(FILE *f);

#endif
