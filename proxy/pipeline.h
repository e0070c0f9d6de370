/*
 * pipeline.h - a request's life: the stages it passes through, in order, and
 * how it ends.
 *
 * Stages run in the order of the table in pipeline.c. A stage either lets
 * the request continue (STAGE_NEXT), finishes it (STAGE_DONE: an answer was
 * produced), or takes it over (STAGE_ASYNC) and later calls pipeline_resume()
 * on the worker that owns the request. A stage that hands the request to
 * another thread (a bulkhead pool) posts the resume through that worker's
 * mailbox, so the request itself never needs a lock.
 *
 * A request outlives its client connection when it must: an unsafe request
 * whose body reached the upstream is read to its end even if the client
 * leaves (req->conn becomes NULL), because the upstream has acted on it.
 */
#ifndef LEVEE_PIPELINE_H
#define LEVEE_PIPELINE_H

#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/l2.h"
#include "net/conn.h"
#include "net/http1.h"
#include "net/worker.h"
#include "policy.h"
#include "reason.h"
#include "runtime.h"

enum stage_rc { STAGE_NEXT, STAGE_ASYNC, STAGE_DONE };

enum body_kind { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_EOF };

struct upconn;
struct l1_entry;

struct request {
	struct request *next_free;
	struct worker *w;
	struct conn *conn;           /* NULL once the client has gone */
	struct runtime *rt;          /* the snapshot this request runs under (ref held) */
	struct arena *arena;         /* request head (owned) */
	struct lv_head *head;
	unsigned method_bit;

	const struct lv_route *route;
	unsigned route_stat;
	struct lv_captures caps;
	unsigned stage;

	char id[129];
	char peer[INET6_ADDRSTRLEN]; /* client address, kept for the log after the client leaves */
	uint64_t t_start, t_upstream;

	/* request body, client → upstream */
	enum body_kind body;
	uint64_t body_left, body_bytes;
	bool body_done;
	bool body_discard;           /* read and dropped, never forwarded (a cacheable GET's body) */
	bool sent_continue;

	/* upstream exchange */
	struct upconn *uc;
	struct event *timer;         /* response timeout */
	bool retried;
	struct http1 rp;             /* response parser */
	struct arena *rarena;        /* response head while it is parsed */
	enum body_kind resp;
	uint64_t resp_left;
	bool resp_head;              /* the upstream's final response head was read */
	bool resp_started;           /* response head written to the client */
	bool resp_hold;              /* the cache holds the response back until it is complete */
	bool client_chunked;         /* we chunk the body for the client */
	bool resp_done;
	bool up_close;               /* upstream connection not reusable */

	/* caching (proxy/cache/cache.c); all zero when the route does not cache */
	bool cache_on;               /* the route caches: the answer carries Cache-Status */
	bool cache_store;            /* the response is being captured to be stored */
	bool cache_waiting;          /* parked behind another request's fill */
	uint8_t wait_outcome;        /* enum fill_outcome, set by the filler before the wake-up */
	bool cache_pass;             /* hit-for-miss: going upstream without coalescing */
	bool cache_strip;            /* cacheable: unkeyed risky fields are not forwarded */
	bool cache_stored;           /* the fill's response was stored (L1, or Redis alone) */
	int8_t cache_why;            /* enum cache_refusal of a fill that was not stored */
	bool cache_no_coalesce;      /* woken waiter: go upstream directly */
	char cache_status[96];       /* "Cache-Status: ...\r\n" for the response head */
	char *key;                   /* primary cache key, in the head arena's spare text */
	uint32_t key_len;
	int64_t cache_req_ms;        /* when the request went upstream (unix ms) */
	uint64_t cache_epoch;        /* purge epoch when the fill began */
	struct evbuffer *capture;    /* body being captured */
	struct cache_fill *fill;     /* the fill this request owns, if any */
	struct l1_entry *stale;      /* a stale stored answer kept for revalidation / stale-if-error */
	int stale_state;             /* enum fresh_state of `stale` */
	const char *cache_fwd;       /* Cache-Status fwd= for a forwarded request: "miss", "stale", "request" */
	bool l2_pending;             /* an L2 operation for this request is in flight */
	bool cache_bypass_store;     /* Redis failed: pass through, store nothing */
	bool l2_lease;               /* holds the L2 fill lease in `lease` */
	bool l2_waiting;             /* waiting for another replica's fill */
	uint64_t l2_wait_until;      /* monotonic us */
	uint64_t l2_fence_floor;     /* oldest unacknowledged purge when the L2 lookup was sent */
	struct l2_lease lease;
	bool cache_refresh;          /* answered from stale; now refreshing the entry, detached */
	bool cache_taken;            /* the cache answered the client; the response only refreshes */
	char cache_cond[320];        /* validators added to the upstream request ("If-None-Match: ...\r\n") */
	struct request *wait_next;   /* in a fill's waiter list */
	struct mb_item wake_item;    /* the waiter's wake-up, posted to wait_w */
	struct worker *wait_w;

	int status;                  /* status sent (or 499 for a client abort) */
	enum lv_reason reason;       /* levee's own answer, if any */
	uint64_t bytes_out, bytes_in;
	bool finished;
};

/* Starts a request whose head was parsed and checked on `c`. */
void pipeline_start(struct conn *c, struct arena *head_arena);
/* Continues after a STAGE_ASYNC stage; owner thread only. */
void pipeline_resume(struct request *r);

/* Ends a request with one of levee's own answers (before any response byte
 * was sent) or, after, by cutting the client connection. */
void request_fail(struct request *r, enum lv_reason reason);
/* Ends a request normally after its response was fully written. */
void request_finish(struct request *r);
/* The client connection is going away. */
void request_client_gone(struct request *r);

static inline bool request_is_unsafe(const struct request *r)
{
	return r->method_bit & (LV_M_POST | LV_M_PUT | LV_M_PATCH | LV_M_DELETE);
}

#endif
