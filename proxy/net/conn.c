/*
 * conn.c - client connections.
 *
 * States: C_IDLE (keep-alive, idle timer) → C_HEAD (first byte seen, header
 * timer) → C_REQ (request handed to the pipeline; body bytes go to the
 * request, further pipelined bytes wait in the input buffer, bounded by the
 * read watermark) → C_IDLE again, or C_CLOSING (output flushed, then a short
 * lingering close so an error response is not destroyed by a TCP reset) →
 * C_DEAD (freed at the end of the loop iteration).
 *
 * Writes go out at once with evbuffer_write (one syscall, no epoll change);
 * only output the socket does not take right away enables the bufferevent's
 * write event, which then applies send_timeout and backpressure.
 *
 * Output is bounded per client: the next pipelined request is not read
 * while more than CONN_OUT_HIGH bytes wait to be sent (out_blocked), and
 * reading resumes when the client has taken the output down to
 * CONN_WRITE_LOW. Meanwhile send_timeout runs from the last byte the client
 * took, so a client that never reads is closed after it.
 *
 * Above request.c: a connection starts its requests and tells them of its
 * events; its request reaches it back only through conn_client (struct
 * request_client_ops), and the upstream exchange is reached through the
 * request (request_pump_body, request_resume_response), never by name.
 */
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/via.h"
#include "log.h"
#include "net/io.h"
#include "net/request.h"

#define CONN_READ_HIGH (64 * 1024) /* input buffered before reading stops */
#define CONN_WRITE_LOW (64 * 1024) /* output level that resumes a paused upstream */
/* Unsent output past which the next pipelined request waits: a client that
 * pipelines and never reads cannot make levee buffer without bound (cached
 * answers cost no upstream time, so nothing else would slow it down). */
#define CONN_OUT_HIGH (256 * 1024)
#define LINGER_MS 2000

enum { C_DEAD = C_CLOSING + 1 };

static void conn_process(struct conn *c);

static void conn_arm(struct conn *c, uint64_t ms)
{
	struct timeval tv;
	tv_ms(&tv, ms);
	event_add(c->timer, &tv);
}

static const struct lv_policy *conn_policy(const struct conn *c)
{
	return c->w->rt->policy;
}

static void conn_free_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	free(c);
}

static void conn_unlink(struct conn *c)
{
	struct worker *w = c->w;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	w->nconns--;
}

static void conn_link(struct conn *c)
{
	struct worker *w = c->w;
	c->prev = NULL;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
}

void conn_close(struct conn *c)
{
	if (c->state == (enum conn_state)C_DEAD)
		return;
	struct worker *w = c->w;
	if (c->req) {
		struct request *r = c->req;
		c->req = NULL;
		request_client_gone(r);
	}
	c->state = (enum conn_state)C_DEAD;
	if (c->arena) {
		arena_put(w, c->arena);
		c->arena = NULL;
	}
	event_free(c->timer);
	c->timer = NULL;
	bufferevent_free(c->bev);
	c->bev = NULL;
	conn_unlink(c);
	atomic_fetch_sub_explicit(w->open_conns, 1, memory_order_relaxed);
	/* Callers up the stack may still look at c->state; free it once this
	 * loop iteration is over. */
	if (event_base_once(w->base, -1, EV_TIMEOUT, conn_free_deferred, c, NULL) < 0)
		free(c); /* out of memory: nothing on this stack uses c after us */
}

struct evbuffer *conn_output(struct conn *c)
{
	return bufferevent_get_output(c->bev);
}

bool conn_flush(struct conn *c)
{
	size_t n;
	return bev_write_now(c->bev, &n);
}

/* Output is flushed; stop sending, keep reading (and discarding) for a
 * moment so the peer gets our response before any reset. */
static void conn_linger(struct conn *c)
{
	shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	bufferevent_disable(c->bev, EV_WRITE);
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	bufferevent_enable(c->bev, EV_READ);
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	conn_arm(c, LINGER_MS);
}

static void conn_close_after_flush(struct conn *c)
{
	c->state = C_CLOSING;
	if (!conn_flush(c)) {
		conn_close(c);
		return;
	}
	if (!evbuffer_get_length(bufferevent_get_output(c->bev)))
		conn_linger(c);
}

/* Formats one of levee's own answers; returns its length. */
static int refusal_response(char *buf, size_t size, const struct conn_refusal *rf, enum conn_end end)
{
	static const char *const connection[] = {
	    [CONN_KEEP] = "",
	    [CONN_KEEP_10] = "Connection: keep-alive\r\n",
	    [CONN_CLOSE] = "Connection: close\r\n",
	};
	const struct lv_reason_info *ri = &lv_reasons[rf->reason];
	int status = rf->status ? rf->status : ri->status;
	/* a body of the refusal's own is added after this head (conn_send_refusal) */
	size_t body = rf->body ? rf->body_len : strlen(ri->message) + 1;
	char retry[40] = "";
	if (status == 503 || status == 429)
		snprintf(retry, sizeof(retry), "Retry-After: %u\r\n", rf->retry_after ? rf->retry_after : 1);
	const char *id = rf->request_id;
	/* a 204 has no content and says nothing of its length (RFC 9110 §8.6) */
	bool none = status == 204;
	char framing[LV_FALLBACK_TEXT_MAX + 64] = "";
	if (!none)
		snprintf(framing, sizeof(framing), "Content-Type: %s\r\nContent-Length: %zu\r\n",
		         rf->body && rf->content_type ? rf->content_type : "text/plain; charset=utf-8", body);
	bool text = !rf->body && !rf->head_only && !none;
	return snprintf(buf, size,
	                "HTTP/1.1 %d %s\r\n%s"
	                "X-Levee-Reason: %s%s%s\r\n%s%s%s%s%s%s\r\n%s%s",
	                status, http_status_phrase(status), framing, ri->token, rf->detail ? "; " : "",
	                rf->detail ? rf->detail : "", id ? "X-Request-Id: " : "", id ? id : "", id ? "\r\n" : "",
	                rf->extra ? rf->extra : "", retry, connection[end], text ? ri->message : "", text ? "\n" : "");
}

static int error_response(char *buf, size_t size, enum lv_reason reason, const char *request_id, enum conn_end end)
{
	struct conn_refusal rf = {.reason = reason, .request_id = request_id};
	return refusal_response(buf, size, &rf, end);
}

void conn_send_error(struct conn *c, enum lv_reason reason, const char *request_id, enum conn_end end)
{
	struct conn_refusal rf = {.reason = reason, .request_id = request_id};
	conn_send_refusal(c, &rf, end);
}

void conn_send_refusal(struct conn *c, const struct conn_refusal *rf, enum conn_end end)
{
	char buf[1024];
	int n = refusal_response(buf, sizeof(buf), rf, end);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		/* a detail or extra lines too long: without them; the rest is
		 * bounded (the content type by LV_FALLBACK_TEXT_MAX) */
		struct conn_refusal plain = {.reason = rf->reason, .status = rf->status, .retry_after = rf->retry_after,
		                             .request_id = rf->request_id, .content_type = rf->content_type,
		                             .body = rf->body, .body_len = rf->body_len, .head_only = rf->head_only};
		n = refusal_response(buf, sizeof(buf), &plain, end);
		if (n < 0 || (size_t)n >= sizeof(buf)) {
			plain.request_id = NULL;
			plain.content_type = NULL;
			n = refusal_response(buf, sizeof(buf), &plain, end);
		}
	}
	stat_inc(c->w->stats->rejected[rf->reason]);
	evbuffer_add(bufferevent_get_output(c->bev), buf, (size_t)n);
	if (rf->body && rf->body_len && !rf->head_only)
		evbuffer_add(bufferevent_get_output(c->bev), rf->body, rf->body_len);
	if (end == CONN_CLOSE) {
		if (c->timer)
			event_del(c->timer);
		c->close_after = true;
		conn_close_after_flush(c);
	} else if (!conn_flush(c)) {
		conn_close(c);
	}
}

/* ---- accept ------------------------------------------------------------ */

static void conn_readcb(struct bufferevent *bev, void *arg);
static const struct request_client_ops conn_client;
static void conn_writecb(struct bufferevent *bev, void *arg);
static void conn_eventcb(struct bufferevent *bev, short what, void *arg);
static void conn_timeout(evutil_socket_t fd, short what, void *arg);

static struct h1_limits conn_limits(const struct lv_policy *p)
{
	struct h1_limits lim = {(uint32_t)p->limits.header_bytes, (uint32_t)p->limits.headers,
	                        (uint32_t)p->limits.uri_bytes};
	return lim;
}

/* What transparent mode and the PROXY protocol need of a new connection:
 * nothing (no syscall) when both are off. */
static void conn_addresses(struct conn *c, evutil_socket_t fd, const struct sockaddr *sa, const struct lv_policy *p)
{
	struct sockaddr_storage dst;
	bool redirected = p->transparent == LV_TRANSPARENT_ON && origdst_get(fd, sa->sa_family, &dst);
	if (redirected) {
		origdst_format((struct sockaddr *)&dst, c->orig_dst, sizeof(c->orig_dst));
		stat_inc(c->w->stats->conn_redirected);
	}
	if (p->up.proxy_protocol == LV_PROXY_PROTOCOL_OFF)
		return;
	socklen_t len = sizeof(dst);
	if (!redirected && getsockname(fd, (struct sockaddr *)&dst, &len) != 0)
		dst.ss_family = AF_UNSPEC; /* written as UNKNOWN */
	proxyline_v1(c->proxy_line, sa, (struct sockaddr *)&dst);
}

void conn_accept(struct worker *w, evutil_socket_t fd, struct sockaddr *sa, int socklen)
{
	const struct lv_policy *p = w->rt->policy;
	uint64_t n = atomic_fetch_add_explicit(w->open_conns, 1, memory_order_relaxed);
	if (w->draining || n >= p->max_connections) {
		char buf[512];
		int len = error_response(buf, sizeof(buf), w->draining ? R_DRAINING : R_MAXCONN, NULL, CONN_CLOSE);
		/* best effort: the socket is fresh, its buffer is empty */
		ssize_t sent = send(fd, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)sent;
		shutdown(fd, SHUT_WR);
		close(fd);
		atomic_fetch_sub_explicit(w->open_conns, 1, memory_order_relaxed);
		stat_inc(w->stats->conn_rejected);
		stat_inc(w->stats->rejected[w->draining ? R_DRAINING : R_MAXCONN]);
		return;
	}
	stat_inc(w->stats->conn_accepted);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	struct conn *c = calloc(1, sizeof(*c));
	struct bufferevent *bev = c ? bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
	struct event *timer = c ? evtimer_new(w->base, conn_timeout, c) : NULL;
	if (!c || !bev || !timer) {
		log_error("out of memory accepting a connection");
		if (bev)
			bufferevent_free(bev);
		else
			close(fd);
		if (timer)
			event_free(timer);
		free(c);
		atomic_fetch_sub_explicit(w->open_conns, 1, memory_order_relaxed);
		return;
	}
	c->w = w;
	c->bev = bev;
	c->timer = timer;
	c->state = C_IDLE;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, c->peer, sizeof(c->peer));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, c->peer, sizeof(c->peer));
	else
		snprintf(c->peer, sizeof(c->peer), "unknown");
	conn_addresses(c, fd, sa, p);
	struct h1_limits lim = conn_limits(p);
	http1_init(&c->parser, HTTP_REQUEST, NULL, &lim);

	conn_link(c);

	bufferevent_setcb(bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_setwatermark(bev, EV_READ, 0, CONN_READ_HIGH);
	bufferevent_setwatermark(bev, EV_WRITE, CONN_WRITE_LOW, 0);
	struct timeval wt;
	tv_ms(&wt, p->limits.send_timeout_ms);
	bufferevent_set_timeouts(bev, NULL, &wt);
	bufferevent_enable(bev, EV_READ);
	conn_arm(c, p->limits.idle_timeout_ms);
	/* Data often arrives with the connection: try it now, saving one
	 * trip through the event loop. */
	conn_process(c);
}

/* ---- reading ----------------------------------------------------------- */

/* Parses a request head from the input buffer. Returns true when a request
 * was handed to the pipeline. */
static bool conn_read_head(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	const struct lv_policy *p = conn_policy(c);
	if (c->state == C_IDLE) {
		c->arena = arena_get(c->w);
		if (!c->arena) {
			conn_send_error(c, R_INTERNAL, NULL, CONN_CLOSE);
			return false;
		}
		struct h1_limits lim = conn_limits(p);
		c->parser.lim = lim;
		http1_set_head(&c->parser, &c->arena->head);
		c->state = C_HEAD;
		conn_arm(c, p->limits.header_timeout_ms);
	}
	if (evbuffer_get_length(in)) {
		size_t used;
		enum h1_result rc = http1_feed_evbuffer(&c->parser, in, &used);
		stat_add(&c->w->stats->bytes_in, used);
		if (rc == H1_MORE)
			return false;
		if (rc == H1_ERROR) {
			/* the head is not whole: only the client is known, and the
			 * method when it is one levee does not implement */
			enum lv_reason why = http1_error_reason(&c->parser);
			request_log_refused_head(c->w, p, c->peer, why == R_METHOD_UNKNOWN ? &c->arena->head : NULL, why);
			conn_send_error(c, why, NULL, CONN_CLOSE);
			return false;
		}
		/* H1_HEAD_DONE */
		event_del(c->timer);
		enum lv_reason reason;
		if (http1_check_request(&c->arena->head, &reason) != 0) {
			request_log_refused_head(c->w, p, c->peer, &c->arena->head, reason);
			conn_send_error(c, reason, NULL, CONN_CLOSE);
			return false;
		}
		if (c->w->via && via_head_names(&c->arena->head, c->w->via)) {
			/* our own upstream request, back again (via.h): answering
			 * it ends the loop after one turn; closing the connection
			 * keeps a redirect that loops from reusing it; logged like
			 * any head refused before it became a request */
			stat_inc(c->w->stats->loops_refused);
			request_log_refused_head(c->w, p, c->peer, &c->arena->head, R_LOOP);
			conn_send_error(c, R_LOOP, NULL, CONN_CLOSE);
			return false;
		}
		struct arena *a = c->arena;
		c->arena = NULL;
		c->state = C_REQ;
		struct request *r = request_new(c->w, c, &conn_client, a, c->peer, c->orig_dst, c->proxy_line);
		if (!r) {
			arena_put(c->w, a);
			conn_send_error(c, R_INTERNAL, NULL, CONN_CLOSE);
			return true;
		}
		c->req = r;
		if (r->body_done) {
			/* no body: the parser is free for the next request */
			c->parser.head = NULL;
			http1_reset(&c->parser);
		}
		request_start(r);
		return true;
	}
	return false;
}

/* Reading is on unless a request body waits for the upstream
 * (reading_paused) or the output waits for the client (out_blocked). */
static void conn_reading_update(struct conn *c)
{
	if (c->reading_paused || c->out_blocked)
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
}

/* True when the client's unsent output is past CONN_OUT_HIGH: the next
 * pipelined request waits until conn_writecb sees it drain. */
static bool conn_output_full(struct conn *c)
{
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) <= CONN_OUT_HIGH)
		return false;
	if (!c->out_blocked) {
		c->out_blocked = true;
		conn_reading_update(c);
	}
	return true;
}

static void conn_process(struct conn *c)
{
	if (c->in_read)
		return;
	c->in_read = true;
	for (;;) {
		if (c->state == (enum conn_state)C_DEAD)
			return; /* freed at the end of the iteration; nothing to reset */
		if (c->state == C_MOVING)
			return; /* another loop's now: in_read is that loop's to clear */
		struct evbuffer *in = bufferevent_get_input(c->bev);
		if (c->state == C_CLOSING) {
			evbuffer_drain(in, evbuffer_get_length(in));
			break;
		}
		if (c->state == C_REQ) {
			if (c->req && !c->req->body_done)
				request_pump_body(c->req);
			break; /* pipelined bytes wait until the response is done */
		}
		if (!evbuffer_get_length(in) || conn_output_full(c))
			break;
		if (!conn_read_head(c))
			break;
	}
	if (c->state != (enum conn_state)C_DEAD)
		c->in_read = false;
}

static void conn_readcb(struct bufferevent *bev, void *arg)
{
	conn_process(arg);
}


/* ---- writing and events ------------------------------------------------ */

static void conn_writecb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(bev);
	if (!evbuffer_get_length(out))
		bufferevent_disable(bev, EV_WRITE); /* back to writing directly */
	if (c->state == C_CLOSING) {
		if (!evbuffer_get_length(out))
			conn_linger(c);
		return;
	}
	if (c->req)
		request_resume_response(c->req);
	else if (c->out_blocked && evbuffer_get_length(out) <= CONN_WRITE_LOW) {
		c->out_blocked = false;
		conn_reading_update(c);
		conn_process(c);
	}
}

static void conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && c->req && c->state == C_REQ) {
		/* body_timeout: the client stopped sending its body */
		request_fail(c->req, R_BODY_TIMEOUT);
		return;
	}
	if (c->req && !c->req->resp_done)
		stat_inc(c->w->stats->client_aborts);
	conn_close(c);
}

static void conn_move_now(struct conn *c);

static void conn_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	switch (c->state) {
	case C_MOVING:
		conn_move_now(c);
		break;
	case C_HEAD:
		request_log_refused_head(c->w, conn_policy(c), c->peer, NULL, R_HEADER_TIMEOUT);
		conn_send_error(c, R_HEADER_TIMEOUT, NULL, CONN_CLOSE);
		break;
	case C_IDLE:
	case C_CLOSING:
		conn_close(c);
		break;
	default:
		break;
	}
}

/* ---- request boundaries ------------------------------------------------ */

bool conn_can_continue(const struct conn *c, const struct lv_head *req, bool body_done)
{
	return !c->close_after && !(req->flags & H1F_CONN_CLOSE) && !c->w->draining && body_done;
}

void conn_request_done(struct conn *c)
{
	c->req = NULL;
	if (c->state == (enum conn_state)C_DEAD || c->state == C_CLOSING)
		return;
	if (c->home && c->w != c->home && !c->close_after && !c->w->draining) {
		/* served on a bulkhead's thread: the next request starts at home,
		 * where the cache answers without waiting for the bulkhead */
		conn_handoff(c, c->home);
		return;
	}
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	struct timeval wt;
	tv_ms(&wt, conn_policy(c)->limits.send_timeout_ms);
	bufferevent_set_timeouts(c->bev, NULL, &wt);
	if (c->close_after || c->w->draining) {
		conn_close_after_flush(c);
		return;
	}
	c->state = C_IDLE;
	if (c->reading_paused) {
		c->reading_paused = false;
		conn_reading_update(c);
	}
	conn_arm(c, conn_policy(c)->limits.idle_timeout_ms);
	if (!evbuffer_get_length(bufferevent_get_input(c->bev)))
		return;
	if (c->in_read)
		return; /* conn_process's own loop goes on to the next request */
	/* Called from the end of a response, deep in the upstream's (or the
	 * cache's) callbacks: the next pipelined request starts from the event
	 * loop instead, once this stack has unwound, so no request begins
	 * inside the previous one's callback. */
	bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void conn_drain(struct conn *c)
{
	if (c->state == C_IDLE && !evbuffer_get_length(bufferevent_get_input(c->bev)))
		conn_close(c);
	else
		c->close_after = true;
}

/* ---- hand-off between loops (conn.h) ------------------------------------ */

void conn_handoff(struct conn *c, struct worker *to)
{
	if (!c->home)
		c->home = c->w;
	c->move_to = to;
	c->state = C_MOVING;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	event_del(c->timer);
	/* not from here: this stack may still hold the connection (a stage
	 * deep in conn_process); a zero timer runs once it has unwound */
	struct timeval now = {0, 0};
	event_add(c->timer, &now);
}

static void conn_arrive(struct mb_item *it);

/* Binds the connection's (and its request's) events to `w`'s base. */
static bool conn_rebase(struct conn *c, struct worker *w)
{
	if (bufferevent_base_set(w->base, c->bev) < 0 || event_base_set(w->base, c->timer) < 0)
		return false;
	if (c->req && !request_rebase(c->req, w))
		return false;
	c->w = w;
	return true;
}

static void conn_move_now(struct conn *c)
{
	struct worker *from = c->w, *to = c->move_to;
	conn_unlink(c);
	if (conn_rebase(c, to)) {
		if (mailbox_post(&to->mbox, &c->move_item, conn_arrive) == LV_OK)
			return;
		conn_rebase(c, from); /* `to` has stopped: shutting down */
	}
	conn_link(c);
	if (c->req)
		request_arrive(c->req);
	c->state = c->req ? C_REQ : C_IDLE;
	conn_close(c);
}

static void conn_arrive(struct mb_item *it)
{
	struct conn *c = mb_container(it, struct conn, move_item);
	c->move_to = NULL;
	c->in_read = false;
	conn_link(c);
	if (c->req)
		request_arrive(c->req);
	c->state = c->req ? C_REQ : C_IDLE;
	if (c->w->closing) {
		conn_close(c);
		return;
	}
	conn_reading_update(c);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)))
		bufferevent_enable(c->bev, EV_WRITE);
	if (c->req) {
		request_resume(c->req);
		return;
	}
	conn_request_done(c); /* home again: on to the next request */
}

/* ---- the request's view of its client (struct request_client_ops) ------- */

static void client_bind(struct conn *c, struct request *r)
{
	c->req = r;
}

static void client_close_after(struct conn *c)
{
	c->close_after = true;
}

/* Levee's own answer r->status to <r>: a request-side error ends the
 * connection; an upstream failure or a refusal does not, unless the
 * connection could not go on anyway (the client asked to close, the body is
 * still on the wire), and then the answer must say so (RFC 9112 §9.6). */
static void client_refuse(struct conn *c, const struct request *r, enum lv_reason reason, const struct refusal *rf)
{
	struct conn_refusal cr = {.reason = reason, .request_id = r->id, .head_only = r->head->method == HTTP_HEAD};
	if (rf) {
		cr.status = rf->status;
		cr.retry_after = rf->retry_after;
		cr.detail = rf->detail;
		cr.content_type = rf->content_type;
		cr.body = rf->body;
		cr.body_len = rf->body_len;
		cr.extra = rf->extra;
	}
	/* a 4xx but 429 ends the connection (the request was at fault); a
	 * 5xx, a 429 or a fallback's 2xx/3xx page does not */
	bool close = (r->status >= 400 && r->status < 500 && r->status != 429) ||
	             !conn_can_continue(c, r->head, r->body_done);
	c->close_after = c->close_after || close;
	if (close)
		http1_set_body_cb(&c->parser, NULL, NULL);
	conn_send_refusal(c, &cr, close ? CONN_CLOSE : r->head->minor == 0 ? CONN_KEEP_10 : CONN_KEEP);
}

static void client_done(struct conn *c, const struct lv_head *head, bool body_done)
{
	if (c->parser.head == head)
		c->parser.head = NULL; /* the head arena is the request's */
	if (!body_done) {
		/* the rest of the request body is still on the wire: the
		 * connection cannot carry another request */
		c->close_after = true;
		http1_set_body_cb(&c->parser, NULL, NULL);
	}
	conn_request_done(c);
}

static struct evbuffer *client_input(struct conn *c)
{
	return bufferevent_get_input(c->bev);
}

static void client_body_begin(struct conn *c, h1_body_cb chunk, void *arg, uint64_t read_ms, uint64_t write_ms)
{
	if (chunk) {
		http1_set_body_cb(&c->parser, chunk, arg);
		http1_start_body(&c->parser);
	}
	struct timeval rt, wt;
	tv_ms(&rt, read_ms);
	tv_ms(&wt, write_ms);
	bufferevent_set_timeouts(c->bev, &rt, &wt);
}

static enum h1_result client_body_feed(struct conn *c, size_t *used, enum lv_reason *why)
{
	enum h1_result rc = http1_feed_evbuffer(&c->parser, bufferevent_get_input(c->bev), used);
	if (rc == H1_ERROR)
		*why = http1_error_reason(&c->parser);
	return rc;
}

static void client_body_pause(struct conn *c)
{
	if (!c->reading_paused) {
		c->reading_paused = true;
		bufferevent_disable(c->bev, EV_READ);
	}
}

static void client_body_resume(struct conn *c)
{
	if (!c->reading_paused)
		return;
	c->reading_paused = false;
	conn_reading_update(c);
	conn_process(c);
}

static void client_body_end(struct conn *c, uint64_t write_ms)
{
	c->parser.head = NULL;
	http1_set_body_cb(&c->parser, NULL, NULL);
	http1_reset(&c->parser);
	struct timeval wt;
	tv_ms(&wt, write_ms);
	bufferevent_set_timeouts(c->bev, NULL, &wt);
}

static const struct request_client_ops conn_client = {
    .bind = client_bind,
    .output = conn_output,
    .flush = conn_flush,
    .can_continue = conn_can_continue,
    .close_after = client_close_after,
    .close = conn_close,
    .refuse = client_refuse,
    .done = client_done,
    .input = client_input,
    .body_begin = client_body_begin,
    .body_feed = client_body_feed,
    .body_pause = client_body_pause,
    .body_resume = client_body_resume,
    .body_end = client_body_end,
};
