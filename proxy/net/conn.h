/*
 * conn.h - a client connection: reads and checks request heads, streams
 * request bodies to the current request, writes responses, keeps alive.
 *
 * One request at a time: the next pipelined request is parsed only after the
 * current response has been written, so responses are always in order.
 *
 * Its request and the upstream stage reach it through the ops it gives
 * each request (struct request_client_ops, net/request.h), not these
 * functions: conn.c is above request.c and upstream.c. The layers above net/
 * (the cache answering, a bulkhead handing off) call these.
 */
#ifndef LEVEE_CONN_H
#define LEVEE_CONN_H

#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <stdbool.h>

#include "net/http1.h"
#include "net/loop.h"
#include "net/origdst.h"
#include "net/proxyline.h"

enum conn_state {
	C_IDLE,    /* keep-alive, between requests */
	C_HEAD,    /* reading a request head */
	C_REQ,     /* a request is in the pipeline / upstream */
	C_MOVING,  /* handed to another loop: nothing here touches it until it arrives there */
	C_CLOSING, /* flushing the last bytes, then close */
};

struct conn {
	struct conn *prev, *next;
	struct worker *w;
	struct bufferevent *bev;
	enum conn_state state;
	struct http1 parser;
	struct arena *arena;      /* head arena while a request is active */
	struct request *req;      /* the request being served, or NULL */
	struct event *timer;      /* header / idle timeout */
	char peer[INET6_ADDRSTRLEN];
	char orig_dst[ORIGDST_TEXT]; /* transparent mode: where a redirected client was going; "" if not redirected */
	char proxy_line[PROXYLINE_MAX]; /* [upstream] proxy_protocol: its PROXY line; "" when off at accept */
	bool close_after;         /* close once the current response is written */
	bool reading_paused;      /* stopped reading: a request body waits for the upstream */
	bool out_blocked;         /* stopped reading: too much output waits for the client */
	bool in_read;             /* re-entrancy guard for conn_process */

	/* hand-off to a bulkhead's thread and back (conn_handoff) */
	struct worker *home;      /* the listener worker that accepted it */
	struct worker *move_to;   /* C_MOVING: where it goes */
	struct mb_item move_item; /* its arrival, posted to move_to */
};

/* How one of levee's own answers leaves the connection. */
enum conn_end {
	CONN_KEEP,    /* open for the next request */
	CONN_KEEP_10, /* open, and an HTTP/1.0 client must be told so */
	CONN_CLOSE,   /* "Connection: close", and closed once the answer is out */
};

void conn_accept(struct worker *w, evutil_socket_t fd, struct sockaddr *sa, int socklen);

/*
 * Hands the connection, with its request (c->req, if any), to loop `to`.
 *
 * Ownership: a connection and its request belong to exactly one loop at a
 * time, and only that loop's thread touches them. conn_handoff() runs on
 * the owner: it stops every event of the connection and the request and
 * marks it C_MOVING; once the owner's stack has unwound (a zero timer on the
 * old loop), the bufferevent and the timers are moved to `to`'s event base
 * and the connection is posted to `to`'s mailbox (an item embedded in the
 * connection: nothing allocated, nothing lost). Between that post and its
 * arrival, no thread touches it. On arrival, `to` owns it: a request goes on
 * with request_resume(); a connection without one (going home after its
 * request) goes on to its next request. Backpressure needs nothing across
 * the hand-off: client and upstream are always served by one loop.
 *
 * The caller has stopped the request's timer. If `to` has stopped (shutdown),
 * the connection is closed where it is.
 */
void conn_handoff(struct conn *c, struct worker *to);

/* Answers with one of levee's own errors, then leaves the connection as
 * `end` says. */
void conn_send_error(struct conn *c, enum lv_reason reason, const char *request_id, enum conn_end end);
/* The same, with details: a status instead of the reason's (0: the
 * reason's), Retry-After seconds on a 503 or 429 (0: 1), a parameter
 * after the X-Levee-Reason token ("bulkhead=users"), and a body (body_len
 * bytes, copied; `content_type`) instead of the reason's message. */
struct conn_refusal {
	enum lv_reason reason;
	int status;
	unsigned retry_after;
	const char *detail;
	const char *request_id;
	const char *content_type;
	const char *body;
	size_t body_len;
	bool head_only; /* the answer to a HEAD: its head says what a GET would get, no body follows */
	const char *extra; /* more header lines ("Name: value\r\n"...): a cache route's Cache-Status */
};
void conn_send_refusal(struct conn *c, const struct conn_refusal *rf, enum conn_end end);
/* Whether the connection may carry another request once `req` is answered:
 * not if the client asked to close (an HTTP/1.0 client does unless it asks
 * for keep-alive, RFC 9112 §9.3), the request body is still on the wire, or
 * levee is draining. */
bool conn_can_continue(const struct conn *c, const struct lv_head *req, bool body_done);
/* Writes and sends what is in the output buffer now; false if the socket is
 * dead. */
bool conn_flush(struct conn *c);
/* The request finished (response fully written, or failed): next request,
 * or close. */
void conn_request_done(struct conn *c);
/* Called when the response for the current request begins to be written to
 * the client; from then on levee cannot answer with its own error. */
struct evbuffer *conn_output(struct conn *c);
/* Tear down now (no more writes). */
void conn_close(struct conn *c);
/* Drain: close if idle, else close after the current response. */
void conn_drain(struct conn *c);

#endif
