/*
 * cache_internal.h - what cache.c shares with the other files of the cache
 * stage (cache_l2.c). Not for use outside proxy/cache/.
 */
#ifndef LEVEE_CACHE_INTERNAL_H
#define LEVEE_CACHE_INTERNAL_H

#include <stdint.h>

#include "cache/l1.h"
#include "pipeline.h"

extern struct l1 *cache_l1;

struct cache_stats {
	uint64_t hits, misses, bypasses, stores, store_refused, coalesced, purged_entries, not_modified;
	uint64_t stale_hits, stale_if_error, revalidated, fill_refused;
	uint64_t l2_hits, l2_misses, l2_errors, l2_commits, l2_commit_refused, lease_waits, lease_wait_timeouts;
	uint64_t l2_fenced;
};
extern struct cache_stats cstats;
#define CSTAT(f) __atomic_fetch_add(&cstats.f, 1, __ATOMIC_RELAXED)

enum lookup { LK_MISS, LK_HIT, LK_STALE_SERVED };
/* L1 lookup and answer (cache.c); see there. */
enum lookup cache_lookup(struct request *r, const char *how);

uint64_t cache_unix_ms(void);

/* The purge log (purge.c): the epoch of the newest purge, and whether a
 * purge after epoch `since` covers `key` or one of its tags. */
uint64_t purge_epoch(void);
bool purged_since(uint64_t since, const char *key, size_t klen, const char *const *tags, const size_t *tlen,
                  unsigned ntags);

/* The oldest purge Redis has not acknowledged yet (its purge-log epoch), or
 * UINT64_MAX: taken when an L2 lookup is sent. */
uint64_t cache_l2_fence_floor(void);
/* Whether a purge that Redis had not acknowledged when the lookup was sent
 * (from `floor` on), or has not now, covers this key or one of its tags: the
 * L2 hit may predate it and must not be served (cache.c, "purges Redis has
 * not acknowledged yet"). */
bool cache_l2_fenced(uint64_t floor, const char *key, size_t klen, const char *const *tags, const size_t *tlen,
                     unsigned ntags);

#include "cache/record.h"
/* The route's cache_tags for r, {N} filled from its wildcards, written into
 * buf; returns how many (at most max). */
unsigned cache_route_tags(const struct request *r, char *buf, size_t cap, struct record_str *out, unsigned max);

size_t cache_url_tag(const char *svc, const char *target, size_t len, char *out, size_t cap);

/* cache_l2.c: the L2 steps. Each returns a stage result when it took the
 * request over (STAGE_ASYNC), or STAGE_NEXT to go on without L2. */
int cache_l2_miss(struct request *r);
/* A complete, storable response was just put in L1: offer it to L2 under
 * the lease this request holds (nothing happens without one). */
void cache_l2_commit(struct request *r, const void *rec, size_t len, uint64_t ttl_ms);
/* The request ends: give back a lease it still holds. */
void cache_l2_end(struct request *r);

#endif
