/*
 * cache_stats.h - the cache's counters and the reasons a response is not
 * stored. The counters live in the process's struct cache (cache_ctx.h),
 * bumped on the request path with relaxed atomics (CSTAT) and read at
 * scrape time (cache_ctx.c renders them).
 */
#ifndef LEVEE_CACHE_STATS_H
#define LEVEE_CACHE_STATS_H

#include <stdint.h>

#include "stats.h"

/* Why a response was not stored: the `reason` label of
 * levee_cache_store_refused_total and the Cache-Status detail. */
#define CACHE_REFUSALS(X)                                                                                     \
	X(METHOD, "method")               /* not a GET */                                                      \
	X(STATUS, "status")               /* a status that is not stored (5xx, 304, unknown...) */             \
	X(PARTIAL, "partial")             /* 206 */                                                            \
	X(NO_STORE, "no-store")                                                                                \
	X(PRIVATE, "private")                                                                                  \
	X(SET_COOKIE, "set-cookie")                                                                            \
	X(AUTHORIZATION, "authorization") /* the request had credentials, the answer did not allow sharing */  \
	X(VARY_STAR, "vary-star")                                                                              \
	X(VARY, "vary")                   /* Vary names or values too long to key */                           \
	X(NO_FRESHNESS, "no-freshness")   /* origin mode, and nothing says it may be reused */                 \
	X(TOO_LARGE, "too-large")         /* over max_object, or over an L1 shard with no Redis to take it */  \
	X(PURGED, "purged")               /* a purge landed while the fill was in flight */                    \
	X(NO_ROOM, "no-room")             /* no tier took it after all */                                      \
	X(INCOMPLETE, "incomplete")       /* the response ended early: cut upstream, or its request ended */                              \
	X(ERROR, "error")                 /* out of memory */

enum cache_refusal {
	RF_NONE = -1,
#define X(id, name) RF_##id,
	CACHE_REFUSALS(X)
#undef X
	RF_COUNT
};
extern const char *const cache_refusal_names[RF_COUNT];

struct cache_stats {
	/* by what the Cache-Status the client got said (cache.c, at the end) */
	uint64_t results[LV_CR__COUNT];
	uint64_t stores, stores_l2_only, coalesced, purged_entries, not_modified;
	uint64_t stale_hits, stale_if_error, revalidated, revalidate_mismatch, fill_refused, pass_hits;
	uint64_t l2_hits, l2_misses, l2_errors, l2_commits, l2_commit_refused, lease_waits, lease_wait_timeouts;
	uint64_t l2_fenced;
	/* what degradation tiers' cache modes did (levee_cache_tier_total) */
	uint64_t tier_stale, tier_stretched, tier_no_wait, tier_no_fill, tier_refused;
	uint64_t refused[RF_COUNT];
};

/* Bumps counter <f> of <st> (any thread). */
#define CACHE_STAT_ADD(st, f, n) __atomic_fetch_add(&(st)->f, (n), __ATOMIC_RELAXED)
#define CACHE_STAT_GET(st, f) __atomic_load_n(&(st)->f, __ATOMIC_RELAXED)

static inline void cache_stats_refused(struct cache_stats *st, enum cache_refusal why)
{
	CACHE_STAT_ADD(st, refused[why], 1);
}

#endif
