/*
 * cache.h - the cache stage of the pipeline, and its hooks on the response.
 *
 * Lookup order for a GET on a route with cache_ttl: L1 (in-process, shared
 * by all workers). A fresh entry is answered at once, without the upstream.
 * A miss either becomes the one fill for its key (the response is captured
 * while it streams to the client and stored at its end), or, when another
 * request of this process is already filling that key, waits for it and is
 * then answered from the stored entry.
 *
 * Writes (POST, PUT, PATCH, DELETE) on a caching route that get a 2xx or
 * 3xx purge the target URI and the same-origin Location and
 * Content-Location (RFC 9111 §4.4), whether or not the client is still
 * there.
 *
 * Threads: the L1 and the table of fills are shared and locked per shard;
 * everything on a request happens on the worker that owns it. A waiter is
 * woken through its worker's mailbox.
 */
#ifndef LEVEE_CACHE_H
#define LEVEE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/http1.h"
#include "policy.h"

struct request;
struct evbuffer;

/* Start-up: the L1 sized by [cache] memory. */
int cache_init(const struct lv_policy *p) LV_WARN_UNUSED;
void cache_shutdown(void);

/* The pipeline stage: run looks the request up and answers a hit; it
 * watches the response as an observer (capture, store, invalidate on a
 * write); its fail hook answers from a stale copy when stale-if-error
 * allows; its end hook releases what the cache holds for the request. */
struct stage;
extern const struct stage cache_stage_def;

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
void cache_set_publisher(const struct cache_publisher *pub);

/* Purges: this process's L1 now, and L2 (when `l2` is not NULL: the calling
 * thread's connection) by bumping a tag generation. Each returns the number
 * of L1 entries removed. */
struct l2;
size_t cache_purge_url(struct l2 *l2, const char *service, const char *target, size_t len);
size_t cache_purge_prefix(struct l2 *l2, const char *service, const char *path, size_t len);
size_t cache_purge_tag(struct l2 *l2, const char *service, const char *tag, size_t len);
size_t cache_purge_all(struct l2 *l2, const char *service);

enum cache_purge_kind { CACHE_PURGE_URL, CACHE_PURGE_PREFIX, CACHE_PURGE_TAG, CACHE_PURGE_ALL };
/* Called once Redis answered a purge: ok false when it did not reach it. */
typedef void (*cache_purge_cb)(void *arg, bool ok);
/* Any purge, with a completion: L2 first (when `l2` is set), then the L1.
 * Returns the number of L1 entries removed; *pending says whether `cb`
 * will be called (false: nothing was sent to Redis, `cb` is not called). */
size_t cache_purge(struct l2 *l2, enum cache_purge_kind kind, const char *svc, const char *s, size_t len,
                   cache_purge_cb cb, void *arg, bool *pending);
/* The L2 half of a purge: true when `cb` will be called. */
bool cache_l2_purge(struct l2 *l2, enum cache_purge_kind kind, const char *svc, const char *s, size_t len,
                    cache_purge_cb cb, void *arg);

/* Purges Redis refused or never answered stay fenced and are sent again:
 * each worker's tick calls this with its own connection. */
void cache_purge_retry(struct l2 *l2);
struct cache_purge_retry_stats {
	uint64_t waiting; /* purges Redis has not taken yet */
	uint64_t retried, applied, folded;
	bool fenced;      /* some L2 keys are not served until Redis takes a purge */
};
void cache_purge_retry_stats(struct cache_purge_retry_stats *out);
/* At shutdown: what still waits is dropped (the Kafka events remain). */
void cache_purge_retry_clear(void);

/* At shutdown, once every worker has stopped: forget every fill in flight
 * and its waiters, so that tearing the workers down in any order never
 * wakes a request another worker already freed. */
void fill_shutdown(void);

/* Opens the Redis tier for one event loop (a worker's, or main's for admin
 * purges) when the policy configures it: LV_OK with *l2 NULL when it does
 * not. */
struct redis;
struct event_base;
int cache_l2_open(struct event_base *base, const struct lv_policy *p, struct redis **redis, struct l2 **l2,
                  char *err, size_t errlen) LV_WARN_UNUSED;

/* Prometheus lines for the cache. */
struct lv_cache_counters {
	uint64_t hits, misses, bypasses, stores, store_refused, coalesced, purged_entries, not_modified;
};
void cache_counters(struct lv_cache_counters *out);
void cache_render_prometheus(void *file);
void cache_status_json(void *file);

#endif
