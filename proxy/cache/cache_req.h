/*
 * cache_req.h - the cache stage's block of a request's state. Not for use
 * outside proxy/cache/.
 *
 * The stage (cache.c) finds the block of a request (request_state()) and
 * hands it down: serve.c, cache_l2.c and store.c take a struct cache_req
 * and never need the stage's definition, so they sit below it.
 */
#ifndef LEVEE_CACHE_REQ_H
#define LEVEE_CACHE_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/fill.h"
#include "cache/l2.h"

struct cache;
struct evbuffer;
struct l1_entry;
struct request;

#define VARY_KEY_MAX 4096 /* bytes of the request's values for the Vary fields */

/* RFC 9211 `collapsed`: absent unless the request waited on another's fill
 * (an L1 coalescing or another replica's L2 lease). */
enum cache_collapsed {
	CS_NOT_COLLAPSED,   /* the parameter is absent */
	CS_COLLAPSED_WENT,  /* collapsed=?0: waited, then had to go upstream itself */
	CS_COLLAPSED_REUSED /* collapsed: answered from the fill it waited on */
};

/* The cache's per-request state: its block in the request (request_state()),
 * zero when the request begins; all zero when the route does not cache but
 * `req` and `cache`, set when the stage runs. The cache's files below the
 * stage are handed this block, and reach the request through `req`. */
struct cache_req {
	struct request *req;         /* the request this block is in */
	struct cache *cache;         /* the process's cache (its worker's, cache_loop.h) */
	bool on;                     /* the route caches: the answer carries Cache-Status */
	bool store;                  /* the response is being captured to be stored */
	bool pass;                   /* hit-for-miss: going upstream without coalescing */
	bool stored;                 /* the fill's response was stored (L1, or Redis alone) */
	int8_t why;                  /* enum cache_refusal of a fill that was not stored */
	bool no_coalesce;            /* woken waiter: go upstream directly */
	/* Cache-Status: `status` holds the parameters the code that decided
	 * set ("hit; detail=l2", "fwd=miss; stored": cache_status_set), and
	 * `line` the head's whole line with fwd-status, ttl and collapsed
	 * (cache_status_line) */
	char status[96];
	char line[176];              /* what it adds is bounded: serve.c checks the size */
	uint8_t collapsed;           /* enum cache_collapsed: whether it waited on another's fill, and how that went */
	uint8_t result;              /* 1 + enum lv_cache_result of the Cache-Status the client got; 0 until then */
	bool has_ttl;                /* `ttl` is the answer's remaining freshness (a hit, a stored fill) */
	int16_t fwd_status;          /* the upstream's status when levee forwarded; 0 until one came */
	int64_t ttl;                 /* seconds; negative: served stale */
	const char *mark;            /* another header line for a stored answer (a fallback's X-Levee-Reason) */
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
	bool resent;                 /* a 304 selected no stored copy: asked again without validators (`stale` kept for stale-if-error) */
	char cond[320];              /* validators sent upstream ("If-None-Match: ...\r\n"; up_extra) */
	struct fill_waiter wait;     /* parked behind another request's fill (wait.waiting) */
	unsigned tm;                 /* the tier cache modes that apply here (cache_tier_modes()); 0 normally */
	bool tier_no_store;          /* a tier forbids this request's store: no L1, no L2, no lease, no refresh */
	bool range_miss;             /* a GET with Range the L1 could not answer: no fill claim, no lease */
	uint64_t stale_epoch;        /* with tm: the purge epoch before the lookup; a later purge voids `stale` */
};

/* Cache-Status fwd= of a forwarded request: why it went, when a stored
 * copy was there (or was, until its 304 selected nothing), else "miss". */
static inline const char *cache_fwd_of(const struct cache_req *cr)
{
	return (cr->stale || cr->resent) && cr->fwd ? cr->fwd : "miss";
}

#endif
