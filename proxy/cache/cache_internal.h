/*
 * cache_internal.h - what cache.c shares with the other files of the cache
 * stage (cache_l2.c). Not for use outside proxy/cache/.
 */
#ifndef LEVEE_CACHE_INTERNAL_H
#define LEVEE_CACHE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "cache/cache_loop.h"
#include "cache/l1.h"
#include "cache/l2.h"
#include "cache/record.h"
#include "net/mailbox.h"
#include "net/request.h"

extern struct l1 *cache_l1;

/* The cache's per-request state: its block in the request (request_state()),
 * zero when the request begins; all zero when the route does not cache. */
struct cache_req {
	bool on;                     /* the route caches: the answer carries Cache-Status */
	bool store;                  /* the response is being captured to be stored */
	bool waiting;                /* parked behind another request's fill */
	uint8_t wait_outcome;        /* enum fill_outcome, set by the filler before the wake-up */
	bool pass;                   /* hit-for-miss: going upstream without coalescing */
	bool stored;                 /* the fill's response was stored (L1, or Redis alone) */
	int8_t why;                  /* enum cache_refusal of a fill that was not stored */
	bool no_coalesce;            /* woken waiter: go upstream directly */
	char status[96];             /* "Cache-Status: ...\r\n" for the response head (resp_extra) */
	char *key;                   /* primary cache key, in the head arena's spare text */
	uint32_t key_len;
	uint64_t epoch;              /* purge epoch when the fill began */
	struct evbuffer *capture;    /* body being captured */
	struct cache_fill *fill;     /* the fill this request owns, if any */
	struct l1_entry *stale;      /* a stale stored answer, for revalidation / stale-if-error */
	int stale_state;             /* enum fresh_state of `stale` */
	const char *fwd;             /* Cache-Status fwd= if forwarded: "miss", "stale", "request" */
	bool l2_pending;             /* an L2 operation for this request is in flight */
	bool bypass_store;           /* Redis failed: pass through, store nothing */
	bool l2_lease;               /* holds the L2 fill lease in `lease` */
	bool l2_waiting;             /* waiting for another replica's fill */
	uint64_t l2_wait_until;      /* monotonic us */
	uint64_t l2_fence_floor;     /* oldest unacknowledged purge when the L2 lookup was sent */
	struct l2_lease lease;
	bool refresh;                /* answered from stale; now refreshing the entry, detached */
	bool taken;                  /* the cache answered the client; the response only refreshes */
	char cond[320];              /* validators sent upstream ("If-None-Match: ...\r\n"; up_extra) */
	struct request *wait_next;   /* in a fill's waiter list */
	struct mb_item wake_item;    /* the waiter's wake-up, posted to wait_w */
	struct worker *wait_w;
};

/* The cache's block of <r>. Const or not, the block is the cache's own. */
static inline struct cache_req *CR(const struct request *r)
{
	return request_state((struct request *)r, &cache_stage_def);
}

#define VARY_KEY_MAX 4096 /* bytes of the request's values for the Vary fields */
/* Largest body a fill holds back whole before its head goes out, so that
 * Cache-Status says whether it was stored (store.c). */
#define CACHE_HOLD_MAX (64 * 1024)

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
void cache_refused(enum cache_refusal why);

struct cache_stats {
	uint64_t hits, misses, bypasses, stores, stores_l2_only, coalesced, purged_entries, not_modified;
	uint64_t stale_hits, stale_if_error, revalidated, fill_refused, pass_hits;
	uint64_t l2_hits, l2_misses, l2_errors, l2_commits, l2_commit_refused, lease_waits, lease_wait_timeouts;
	uint64_t l2_fenced;
	uint64_t refused[RF_COUNT];
};
extern struct cache_stats cstats;
#define CSTAT(f) __atomic_fetch_add(&cstats.f, 1, __ATOMIC_RELAXED)

enum lookup { LK_MISS, LK_HIT, LK_STALE_SERVED };
/* L1 lookup and answer (cache.c); see there. */
enum lookup cache_lookup(struct request *r, const char *how);
/* Answers r from a referenced entry <e> (taken over) under the request's
 * own directives, like an L1 hit; LK_MISS (e released) when it may not be
 * served as it is. */
enum lookup cache_answer(struct request *r, struct l1_entry *e, const char *how);
void cache_status_set(struct request *r, const char *params);

uint64_t cache_unix_ms(void);

/* ---- fills and hit-for-miss (fill.c) ---- */
enum claim { CLAIM_OWNER, CLAIM_WAITING, CLAIM_BUSY };
/* What a fill's waiters are told when they are woken. */
enum fill_outcome { FILL_FAILED, FILL_STORED, FILL_STORED_L2, FILL_UNCACHEABLE };
void fill_init(void);
/* Registers r as the filler of its key, or, when a fill is already in
 * flight, queues r behind it (`wait`) or reports it busy. */
enum claim fill_claim(struct request *r, bool wait);
/* The filler is done: wake every waiter, on its own worker, with <o>. */
void fill_finish(struct request *r, enum fill_outcome o);
/* Takes r's fill away from it, for a completion that outlives r. */
struct cache_fill *fill_detach(struct request *r);
void fill_finish_detached(struct cache_fill *f, enum fill_outcome o);
void pass_mark(const char *key, size_t klen, uint64_t ttl_ms);
bool pass_marked(const char *key, size_t klen);
bool pass_clear(const char *key, size_t klen);

/* ---- the store (store.c) ---- */
enum put_rc { PUT_OK, PUT_TOO_BIG, PUT_PURGED, PUT_ERROR };
/* Puts a record under r's key (and its Vary variant key, when sl), then
 * takes it back if a purge after <epoch> covers it (PUT_PURGED). */
enum put_rc cache_put(const struct request *r, uint64_t epoch, const void *buf, size_t size, uint64_t expires,
                      const char *sec, size_t sl, const char *const *tagp, const size_t *tagl, unsigned nt);
size_t cache_variant_key(const struct request *r, const char *sec, size_t sl, char *out);
/* Re-stores the stale copy with the times of a 304 that revalidated it
 * (RFC 9111 §4.3.4). */
void cache_refresh_entry(struct request *r, const struct record_view *v, const struct lv_head *resp);
/* cache.c: purges what a successful write changed, here, in Redis and on
 * every replica. */
void cache_invalidate_write(struct request *r, const struct lv_head *resp);

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

/* The route's cache_tags for r, {N} filled from its wildcards, written into
 * buf; returns how many (at most max). */
unsigned cache_route_tags(const struct request *r, char *buf, size_t cap, struct record_str *out, unsigned max);

/* The space-separated tags of the response's Surrogate-Key, at most max. */
unsigned cache_surrogate_keys(const struct lv_head *resp, struct record_str *out, unsigned max);

size_t cache_url_tag(const char *svc, const char *target, size_t len, char *out, size_t cap);

/* cache_l2.c: the L2 steps. Each returns a stage result when it took the
 * request over (STAGE_ASYNC), or STAGE_NEXT to go on without L2. */
int cache_l2_miss(struct request *r);
/* A complete, storable response: offer it to L2 under the lease this
 * request holds (nothing happens without one; false then). Takes over <f>
 * (may be NULL): its waiters are woken when Redis has answered, or at once
 * when nothing was sent. */
bool cache_l2_commit(struct request *r, const void *rec, size_t len, uint64_t ttl_ms, struct cache_fill *f);
/* The generation tag a purge deletes in Redis, written into tag; 0 when it
 * has none (a prefix not ending in '/', or too long): the L1 only, then. */
size_t cache_l2_purge_tag(enum cache_purge_kind kind, const char *svc, const char *s, size_t len, char *tag,
                          size_t cap);
/* Hit-for-miss in Redis: the marker in place of r's lease (or of none). */
void cache_l2_pass(struct request *r);
void cache_l2_pass_clear(struct request *r);
/* The request ends: give back a lease it still holds. */
void cache_l2_end(struct request *r);

/* ---- the stage's hooks (cache.c, store.c) ------------------------------ */

int cache_stage(struct request *r);
/* The response, as the observer sees it, in order: the head (before the
 * client's head is written; may turn capture on and fills the block's `status`),
 * body bytes as they go to the client, then the end. */
void cache_response_takeover(struct request *r, const struct lv_head *resp);
void cache_response_head(struct request *r, const struct lv_head *resp);
void cache_response_body(struct request *r, struct evbuffer *src, size_t n);
void cache_response_body_bytes(struct request *r, const char *data, size_t n);
void cache_response_end(struct request *r, const struct lv_head *resp);
/* The request is failing with levee's own error: answer from a stale copy
 * instead when stale-if-error allows (true: answered, the request ended). */
bool cache_fail_takeover(struct request *r, enum lv_reason reason);
/* The request ends, however it ends: release what the cache holds for it. */
void cache_request_end(struct request *r);

#endif
