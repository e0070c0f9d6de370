/*
 * cache_loop.h - what the cache keeps per event loop: the process's cache
 * (struct cache, cache_ctx.h) it serves, the loop's own Redis connection
 * and the L2 on it, and a snapshot of the connection's figures for the
 * admin thread.
 *
 * The loop (net/worker) knows it only as an opaque pointer with a tick and
 * a close (struct loop_ext): whoever creates a loop opens this on the loop's
 * base (cache_loop_open), so net/ does not reach up to the cache.
 *
 * Threads: everything but the snapshot belongs to the loop's thread; the
 * snapshot is written by the loop's tick and read by admin, under its lock.
 */
#ifndef LEVEE_CACHE_LOOP_H
#define LEVEE_CACHE_LOOP_H

#include <pthread.h>
#include <stdbool.h>

#include "cache/redis.h"
#include "net/worker.h"
#include "policy.h"

struct cache;
struct hotset;
struct l2;

struct cache_loop {
	struct cache *cache;  /* borrowed: the server's, outlives every loop */
	struct redis *redis; /* NULL when the policy has no [redis] */
	struct l2 *l2;
	struct hotset *hot;  /* the hot set's sampler; NULL without Redis or sampling */
	pthread_mutex_t snap_lock;
	struct redis_stats snap; /* as of the loop's last tick */
};

/* Opens the cache's part of loop `w` for cache `c` (its Redis tier when
 * the policy has one) and makes the loop tick and close it. */
int cache_loop_open(struct worker *w, struct cache *c, const struct lv_policy *p, char *err,
                    size_t errlen) LV_WARN_UNUSED;

/* Opens the Redis tier for one event loop (a worker's, main's for admin
 * purges, the invalidate thread's) when the policy configures it: LV_OK
 * with *l2 NULL when it does not. */
struct event_base;
int cache_l2_open(struct event_base *base, const struct lv_policy *p, struct redis **redis, struct l2 **l2,
                  char *err, size_t errlen) LV_WARN_UNUSED;

/* The cache loop `w` serves, NULL when it has no cache part. */
static inline struct cache *loop_cache(const struct worker *w)
{
	return w->cache ? w->cache->cache : NULL;
}

/* The loop's Redis tier, NULL when there is none. */
static inline struct l2 *loop_l2(const struct worker *w)
{
	return w->cache ? w->cache->l2 : NULL;
}
static inline struct redis *loop_redis(const struct worker *w)
{
	return w->cache ? w->cache->redis : NULL;
}

/* A cache hit on `key` answered on loop `w`: offered to the hot set. */
void cache_loop_hit(const struct worker *w, const char *key, size_t klen);

/* The loop's Redis figures as of its last tick; false when it has no Redis. */
bool cache_loop_redis_stats(const struct worker *w, struct redis_stats *out);

#endif
