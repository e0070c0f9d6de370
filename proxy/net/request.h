/*
 * request.h - a request's life: the stages it passes through, in order, and
 * how it ends.
 *
 * Stages run in the order of the path that pipeline.c sets at start-up
 * (route, cache, bulkhead, upstream; request_path_set()). A stage's `run`
 * either lets the request continue (STAGE_NEXT), finishes it (STAGE_DONE:
 * an answer was produced), or takes it over (STAGE_ASYNC) and later calls
 * request_resume() on the worker that owns the request. Besides `run`, a stage may have hooks:
 *   fail   levee is about to answer with its own error, before any response
 *          byte went out: the stage may answer instead (the cache, from a
 *          stale copy) and returns true, or amend the refusal levee is
 *          about to write (its status, detail, body: a fallback) and
 *          return false, which lets the stages before it have their say;
 *   end    the request is over for its client and its outcome is final;
 *          returns true to keep the upstream exchange running after the
 *          client's end (a bulkhead drains a late answer: the slot is held
 *          until the service really finished);
 *   done   the request object goes away, the exchange with it: release what
 *          the stage holds;
 *   client_gone
 *          the client left before the request ended: returns false while a
 *          callback for the request is on its way to its worker (a fill or
 *          Redis answer, a bulkhead grant), which ends it when it comes.
 * Hooks run for every stage the request entered, `end` and `done` in reverse
 * order, `client_gone` in order until one says to wait.
 *
 * A stage keeps its per-request state in a block of its own, of a type only
 * the stage knows (request_state()): request.c lays the blocks out after
 * struct request once, and a request carries all of them, zeroed, in the
 * same allocation.
 *
 * One outcome per request (enum request_outcome), recorded once by whoever
 * first knows it and read by every stage's end hook and by the metrics: it
 * tells "the upstream failed" (and how) from "levee refused", "the client
 * left" and "answered from the cache".
 *
 * The upstream side never calls a stage by name: a stage that watches the
 * response (the cache) sets r->observer, and the upstream code calls it.
 *
 * Below the connection and the exchange: request.c names neither conn.c nor
 * upstream.c. It reaches the client through the ops its connection gave it
 * (r->client, struct request_client_ops; conn.c's), and the upstream
 * exchange through the ops of the stage that runs it (r->exchange, struct
 * request_exchange_ops; upstream.c's). The upstream side reaches the client
 * through r->client too; the connection reaches the exchange through
 * request_pump_body() and request_resume_response().
 *
 * A request outlives its client connection when it must: an unsafe request
 * whose body reached the upstream is read to its end even if the client
 * leaves (req->conn becomes NULL), because the upstream has acted on it;
 * and a request whose end hooks keep its exchange drains the late answer.
 */
#ifndef LEVEE_REQUEST_H
#define LEVEE_REQUEST_H

#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "accesslog.h"
#include "net/http1.h"
#include "net/loop.h"
#include "net/origdst.h"
#include "net/proxyline.h"
#include "outcome.h"
#include "policy.h"
#include "reason.h"
#include "runtime.h"

enum stage_rc { STAGE_NEXT, STAGE_ASYNC, STAGE_DONE };


enum body_kind { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_EOF };

struct conn;
struct upconn;
struct refusal;
struct request;
struct evbuffer;
struct refusal;

/* The client side of a request, as the connection that carries it gives it
 * (conn.c; request_new()). <c> is the request's connection, never NULL:
 * callers check r->conn. */
struct request_client_ops {
	/* <c>'s current request is now <r> (NULL: none) */
	void (*bind)(struct conn *c, struct request *r);
	struct evbuffer *(*output)(struct conn *c);
	/* writes what the output holds now; false if the socket is dead */
	bool (*flush)(struct conn *c);
	/* whether <c> may carry another request once <req> is answered */
	bool (*can_continue)(const struct conn *c, const struct lv_head *req, bool body_done);
	/* close once the current answer is out */
	void (*close_after)(struct conn *c);
	/* tear down now; the request is detached already */
	void (*close)(struct conn *c);
	/* levee's own answer to <r> (r->status, r->head, r->body_done, r->id),
	 * and the connection left as that answer says */
	void (*refuse)(struct conn *c, const struct request *r, enum lv_reason reason, const struct refusal *rf);
	/* the request is over for its client (detached already): <head> is
	 * its head, no longer the connection's to parse into; the connection
	 * goes on to its next request, or closes if the body (<body_done>
	 * false) is still on the wire */
	void (*done)(struct conn *c, const struct lv_head *head, bool body_done);

	/* the request body, read from the client: */
	struct evbuffer *(*input)(struct conn *c);
	/* the body goes to the upstream now: <chunk> gets a chunked body's
	 * decoded bytes (NULL: a Content-Length body); the client's read and
	 * write timeouts become <read_ms> and <write_ms> */
	void (*body_begin)(struct conn *c, h1_body_cb chunk, void *arg, uint64_t read_ms, uint64_t write_ms);
	/* feeds the input to the chunked body's decoder; <why> on H1_ERROR */
	enum h1_result (*body_feed)(struct conn *c, size_t *used, enum lv_reason *why);
	/* stop reading: the upstream is slower than the client */
	void (*body_pause)(struct conn *c);
	/* reading again if body_pause stopped it */
	void (*body_resume)(struct conn *c);
	/* the body is all read: the parser is free for the next request, and
	 * the client's write timeout is <write_ms> (no read timeout) */
	void (*body_end)(struct conn *c, uint64_t write_ms);
};

/* The upstream exchange, as the stage that runs it gives it (r->exchange,
 * set when it starts one; NULL before: no exchange to wait for). */
struct request_exchange_ops {
	/* connected, the request all sent, the response not all read */
	bool (*live)(const struct request *r);
	/* the client's end kept the exchange: only the abandon timer bounds it */
	void (*keep)(struct request *r);
	/* the client has request body bytes (or EOF) for the upstream */
	void (*pump_body)(struct request *r);
	/* the client drained its output, or left an exchange that goes on
	 * (an unsafe request): read the upstream again */
	void (*resume_response)(struct request *r);
};

/* What watches the upstream's response (the cache). The upstream side calls
 * these in order; any may be NULL. */
struct response_observer {
	/* the final head, before the client's head is written: may answer the
	 * client itself (a 304 to levee's own revalidation), hold the response
	 * back until its end (r->resp_hold) and keep the head (r->resp_keep_head) */
	void (*head)(struct request *r, const struct lv_head *resp);
	/* the final head, before anything else is done with it: true when the
	 * request must go again as it now stands (the observer changed it),
	 * this answer unseen: a 304 to levee's own revalidation that selects
	 * no stored copy (the conditionals are dropped, RFC 9111 §4.3.4) */
	bool (*resend)(struct request *r, const struct lv_head *resp);
	/* `n` body bytes at the start of `src`, about to move on */
	void (*body)(struct request *r, struct evbuffer *src, size_t n);
	/* decoded bytes of a chunked body */
	void (*body_bytes)(struct request *r, const char *data, size_t n);
	/* the response is complete; `resp` is its head when kept, else NULL */
	void (*end)(struct request *r, const struct lv_head *resp);
	/* a held response's body, written to the client after `end` */
	struct evbuffer *(*held_body)(struct request *r);
};

/* A request's place in one of its loop's lists (prev NULL: on none). */
struct request_link {
	struct request *next, **prev;
};

struct request {
	struct request *next_free;
	struct request_link live;    /* in the loop's list of live requests (w->reqs) */
	struct worker *w;
	struct conn *conn;           /* NULL once the client has gone */
	const struct request_client_ops *client; /* conn's ops */
	const struct request_exchange_ops *exchange; /* the upstream exchange's ops, once it began */
	struct runtime *rt;          /* the snapshot this request runs under (ref held) */
	struct arena *arena;         /* request head (owned) */
	struct lv_head *head;
	unsigned method_bit;

	const struct lv_route *route;
	unsigned route_stat;
	struct lv_captures caps;
	unsigned stage;              /* stages entered: [0, stage) */
	enum request_outcome outcome;
	int up_status;               /* the upstream's final status, once its head arrived */
	const struct response_observer *observer;
	const char *up_extra;        /* extra request header lines for the upstream ("Name: v\r\n"...) */
	const char *resp_extra;      /* extra response header lines for the client */
	bool strip_unkeyed;          /* do not forward the risky unkeyed headers (docs/caching.md) */
	bool up_whole;               /* levee's own refresh: the whole response, without the client's Range and conditionals */
	bool resp_keep_head;         /* keep the upstream's head until the response ends */
	bool client_ended;           /* the client's side is over (logged, counted); the exchange may go on */
	int kept;                    /* enum kept: whether the exchange goes on after that, and how it ended */
	struct request_link kept_in; /* in the loop's list of kept exchanges (w->kept) */
	uint64_t up_sent_unix_ms;    /* when the request went upstream (wall clock) */
	uint64_t abandon_ms;         /* set by an end hook that keeps the exchange: how long */
	void (*timer_fn)(struct request *r); /* what `timer` runs (request_timer_arm) */

	char id[129];
	char peer[INET6_ADDRSTRLEN]; /* client address, kept for the log after the client leaves */
	char orig_dst[ORIGDST_TEXT]; /* its connection's original destination when redirected, else "" */
	char proxy_line[PROXYLINE_MAX]; /* its connection's PROXY line, "" if none was made at accept */
	uint64_t t_start, t_upstream;
	uint64_t deadline_us;        /* when its budget runs out (now_us() clock); 0: none */
	unsigned attempts;           /* upstream attempts made by route retries (0: the first only) */
	unsigned tier_level;         /* the tier in force when it began (0: none), set by the tier stage */
	unsigned tier_cache;         /* enum lv_cache_mode bits of the tiers in force, set by the tier stage */
	unsigned tier_ttl_factor;    /* with LV_CM_STRETCH_TTL: lifetimes times this (>= 1) */

	/* request body, client → upstream */
	enum body_kind body;
	uint64_t body_left, body_bytes;
	bool body_done;
	bool body_discard;           /* read and dropped, never forwarded (a cacheable GET's body) */
	bool sent_continue;

	/* upstream exchange */
	struct upconn *uc;
	struct event *timer;         /* one timer: queue wait, response, or abandon (timer_fn) */
	bool retried;
	struct http1 rp;             /* response parser */
	struct arena *rarena;        /* response head while it is parsed */
	enum body_kind resp;
	uint64_t resp_left;
	bool resp_head;              /* the upstream's final response head was read */
	bool interim_out;            /* an interim (1xx) response went to the client: no retry may follow */
	bool interim_paused;         /* upstream reads wait for the client to take the interims written */
	bool resp_started;           /* response head written to the client */
	bool resp_hold;              /* the cache holds the response back until it is complete */
	bool client_chunked;         /* we chunk the body for the client */
	bool resp_done;              /* the client's answer is complete (from the upstream, or a stage's) */
	bool up_done;                /* the upstream's response was read to its end */
	bool up_close_asked;         /* the response's own framing closes the connection (EOF, Connection: close) */
	bool background;             /* the client was answered by a stage; the request goes on without it (a refresh) */
	bool up_close;               /* upstream connection not reusable */

	int status;                  /* status sent (or 499 for a client abort) */
	enum lv_reason reason;       /* levee's own answer, if any */
	const char *fallback;        /* the fallback that answered instead, for the log ("stale") */
	uint64_t bytes_out, bytes_in;
	bool finished;
	bool close_told;             /* offered its end at its loop's close (request_loop_close) */
};

/* Whether the exchange was kept after its client's end (r->kept), and how
 * it ended then, for the end hook that kept it: one state, since "kept" and
 * "how it ended" only mean something together. KEPT_NO: not kept (yet). */
enum kept { KEPT_NO, KEPT_RUNNING, KEPT_COMPLETE, KEPT_CLOSED, KEPT_ABANDONED };

/* A stage of the request path (see the top of this file). */
struct stage {
	const char *name;
	size_t state_size;             /* bytes of per-request state: request_state() */
	int (*run)(struct request *r); /* enum stage_rc */
	bool (*fail)(struct request *r, enum lv_reason reason, struct refusal *rf);
	/* no stage took the failure over: levee's own answer <rf> goes out
	 * now, and may carry the stage's header lines (rf->extra) */
	void (*refused)(struct request *r, enum lv_reason reason, struct refusal *rf);
	bool (*end)(struct request *r);
	void (*done)(struct request *r);
	bool (*client_gone)(struct request *r);
	/* what the stage knows for the access log line, into <e> (the client's
	 * end, before `end`); the strings must live until the request is done */
	void (*log)(struct request *r, struct alog_entry *e);
};

/* The block of <s>'s own state in <r>: state_size bytes, aligned for any
 * type, zero when the request begins. <s> must be in the stage table. */
void *request_state(struct request *r, const struct stage *s);
/* The request a stage's state block belongs to (a callback given the block,
 * or a field of it). */
struct request *request_of_state(void *state, const struct stage *s);

/* The path, set once at start-up before any request (pipeline.c): the
 * stages in order; each stage's state block is laid out from it. */
#define REQUEST_PATH_MAX 16
void request_path_set(const struct stage *const *path, unsigned n);

/* Arms the request's one timer: `fn` runs in `ms` unless it is re-armed or
 * stopped first. */
void request_timer_arm(struct request *r, uint64_t ms, void (*fn)(struct request *r));
void request_timer_stop(struct request *r);
/* The same, bounded by the request's deadline: when that comes first,
 * request_deadline_passed() runs then instead of `fn` (until the client's
 * side is over: a kept exchange has its own bound). Only for a wait whose
 * stage lets request_fail() end it at any moment (the upstream exchange);
 * a stage that shares state with other threads while it waits (a bulkhead
 * queue) bounds its own wait with request_budget_ms() and ends it itself. */
void request_timer_arm_bounded(struct request *r, uint64_t ms, void (*fn)(struct request *r));
/* The request's budget ran out: 504 `deadline` (or a fallback), or, past
 * the start of the answer, the client connection cut; the exchange stops. */
void request_deadline_passed(struct request *r);
/* Milliseconds left of the request's budget (UINT64_MAX: none; 0: spent). */
uint64_t request_budget_ms(const struct request *r);

/* A request for the head parsed and checked on <c> (in <head_arena>, which
 * it then owns), from the client <peer>, on loop <w>, reached through <ops>;
 * NULL when out of memory (the arena is still the caller's). The caller
 * binds it to <c>, then runs it with request_start(). */
struct request *request_new(struct worker *w, struct conn *c, const struct request_client_ops *ops,
                            struct arena *head_arena, const char *peer, const char *orig_dst,
                            const char *proxy_line);
/* Runs a new request through the path. */
void request_start(struct request *r);
/* Logs a head levee refused before it became a request (<reason>), with
 * what <hd> says when it was parsed whole (else NULL), under policy <p>. */
void request_log_refused_head(struct worker *w, const struct lv_policy *p, const char *peer,
                              const struct lv_head *hd, enum lv_reason reason);
/* Continues after a STAGE_ASYNC stage; owner thread only. */
void request_resume(struct request *r);

/* Records how the request ended; the first call wins, later ones are
 * ignored (a timeout that then drains a late answer stays a timeout). */
static inline void request_outcome(struct request *r, enum request_outcome o)
{
	if (r->outcome == OUT_NONE)
		r->outcome = o;
}

/* Ends a request with one of levee's own answers (before any response byte
 * was sent) or, after, by cutting the client connection. */
void request_fail(struct request *r, enum lv_reason reason);
/* The same, with details for the answer: a status instead of the reason's
 * (429 for 503), Retry-After in seconds (0: the reason's default), and a
 * parameter for X-Levee-Reason ("bulkhead=users"); a fail hook may also
 * give it a body of its own (body_len bytes of `body`, as `content_type`)
 * in place of the reason's message. What the pointers point to must last
 * until the answer is written (the request's end). */
struct refusal {
	int status;
	unsigned retry_after;
	const char *detail;
	const char *extra; /* more header lines for it ("Name: value\r\n"...), set by a stage's fail hook */
	const char *content_type;
	const char *body;
	size_t body_len;
};
void request_refuse(struct request *r, enum lv_reason reason, const struct refusal *rf);
/* Ends a request normally after its response was fully written. */
void request_finish(struct request *r);
/* The client connection is going away. */
void request_client_gone(struct request *r);

/* The upstream exchange is under way: connected, the request all sent, the
 * response not all read. */
bool request_exchange_live(const struct request *r);
/* The client has request body bytes (or EOF) for the exchange. */
void request_pump_body(struct request *r);
/* The client drained its output: the exchange may read the upstream again. */
void request_resume_response(struct request *r);

/* The request (its timer stopped) now belongs to loop `w` (conn_handoff):
 * on the old loop's thread, before the post; request_arrive() on `w`'s, once
 * it is there (or back on the old loop's, if the post failed). */
bool request_rebase(struct request *r, struct worker *w);
void request_arrive(struct request *r);

/* Loop teardown, once its connections are closed, on a closing loop:
 * ends every request that still runs without a client (kept after its
 * client's end, or left by its client: an unsafe request the upstream acts
 * on, a background refresh). One that waits on a callback of the layer
 * above (client_gone says so) is ended by that callback when that layer
 * closes its loop part (struct loop_ext). */
void request_loop_close(struct worker *w);
/* Frees the pooled request objects (the loop's end). */
void request_pool_clear(struct worker *w);

static inline bool request_is_unsafe(const struct request *r)
{
	return r->method_bit & LV_M_UNSAFE;
}

#endif
