/*
 * cache_ctx.h - the cache of one process: struct cache owns everything the
 * cache shares across threads: the L1, the counters, the table of fills
 * and hit-for-miss marks, the purge log with its fence and retries, and
 * the publisher that tells the other replicas. The server creates the one
 * instance at start-up (cache_new) and frees it last; code reaches it by
 * pointer: a loop through its struct cache_loop (cache_loop.h), a request
 * through its cache block (cache_req.h), admin and invalidate from what
 * they were handed at start. A test makes a fresh one per test.
 *
 * Threads: any. The L1 and the fills are locked per shard, the purge state
 * per part (purge.h); the counters are relaxed atomics; the publisher is
 * installed before the workers run and read with acquire.
 */
#ifndef LEVEE_CACHE_CTX_H
#define LEVEE_CACHE_CTX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache_stats.h"
#include "cache/fill.h"
#include "cache/l2_purge.h"
#include "cache/purge.h"
#include "policy.h"

struct l1;
struct l2;

/* What a successful write invalidated: the cache purges it here and hands
 * it to its publisher, which tells the other replicas. */
enum inval_kind { INVAL_KEY, INVAL_PREFIX, INVAL_TAG, INVAL_ALL };

struct inval_item {
	enum inval_kind kind;
	const char *p; /* a request target, a path prefix, a tag; "" for INVAL_ALL */
	size_t len;
};

/* How far the cache may trust itself, as its publisher says. */
enum inval_cache_mode {
	INVAL_CACHE_ON,      /* normal */
	INVAL_CACHE_SKIP_L1, /* the consumer is behind beyond lag_budget: L1 lookups skipped */
	INVAL_CACHE_OFF,     /* the outbox hit its bound: no caching until it drains */
};

/* The layer above (invalidate/, over Kafka) installs itself at start-up,
 * before the workers run; without one, writes purge this replica only and
 * the cache trusts its L1. The cache calls it from any worker. */
struct cache_publisher {
	void (*publish)(const struct inval_item *items, unsigned n); /* copies; never blocks */
	enum inval_cache_mode (*mode)(void);
};

struct cache {
	struct l1 *l1;
	struct cache_stats stats;
	struct fill_table fills;
	struct purge_state purges;
	_Atomic(const struct cache_publisher *) pub;
};

/* Start-up: a cache with its L1 sized by [cache] memory; NULL when out of
 * memory. */
struct cache *cache_new(const struct lv_policy *p) LV_WARN_UNUSED;
/* Last, once nothing uses it: what still waits for Redis is dropped. */
void cache_free(struct cache *c);
/* At shutdown, once every worker has stopped: forget every fill in flight
 * and its waiters (fill_table_shutdown). */
void cache_fills_shutdown(struct cache *c);

void cache_set_publisher(struct cache *c, const struct cache_publisher *pub);
static inline const struct cache_publisher *cache_publisher(struct cache *c)
{
	return atomic_load_explicit(&c->pub, memory_order_acquire);
}

/* Bumps counter <f> of cache <c>. */
#define CSTAT(c, f) CACHE_STAT_ADD(&(c)->stats, f, 1)
static inline void cache_refused(struct cache *c, enum cache_refusal why)
{
	cache_stats_refused(&c->stats, why);
}

/* Purges: this process's L1 now, and L2 (when `l2` is not NULL: the calling
 * thread's connection) by bumping a tag generation. Each returns the number
 * of L1 entries removed. */
size_t cache_purge_url(struct cache *c, struct l2 *l2, const char *service, const char *target, size_t len);
size_t cache_purge_prefix(struct cache *c, struct l2 *l2, const char *service, const char *path, size_t len);
size_t cache_purge_tag(struct cache *c, struct l2 *l2, const char *service, const char *tag, size_t len);
size_t cache_purge_all(struct cache *c, struct l2 *l2, const char *service);
/* Any purge, with a completion: L2 first (when `l2` is set), then the L1.
 * Returns the number of L1 entries removed; *pending says whether `cb`
 * will be called (false: nothing was sent to Redis, `cb` is not called). */
size_t cache_purge(struct cache *c, struct l2 *l2, enum cache_purge_kind kind, const char *svc, const char *s,
                   size_t len, cache_purge_cb cb, void *arg, bool *pending);
/* The purge an invalidated item of kind `k` asks for. */
enum cache_purge_kind cache_purge_kind_of(enum inval_kind k);
/* The purge of an invalidated item (INVAL_ALL ignores its value), as
 * cache_purge(). */
size_t cache_purge_item(struct cache *c, struct l2 *l2, const char *svc, const struct inval_item *it,
                        cache_purge_cb cb, void *arg, bool *pending);
/* Whether the purge of `it` has a Redis half (false: a prefix not ending in
 * '/', or a value too long for a generation tag). */
bool cache_purge_item_has_l2(const char *svc, const struct inval_item *it);

/* Prometheus lines and the `cache` object of /status. */
struct lv_cache_counters {
	uint64_t hits, misses, bypasses, stores, store_refused, coalesced, purged_entries, not_modified;
};
void cache_counters(struct cache *c, struct lv_cache_counters *out);
void cache_render_prometheus(struct cache *c, void *file);
void cache_status_json(struct cache *c, void *file);

#endif
