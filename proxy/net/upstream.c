/*
 * upstream.c - the upstream half of a request.
 *
 * Invariants:
 *  - An upconn belongs to at most one request (uc->req) or to the worker's
 *    idle pool, never both.
 *  - A connection goes back to the pool only when the request was sent in
 *    full, the response was read to its exact end with nothing after it, and
 *    neither side asked to close.
 *  - Content-Length bodies are moved between evbuffers without copying and
 *    without llhttp; chunked bodies go through llhttp and are re-chunked.
 *  - The client never sees a falsely complete response: if the upstream
 *    stops early, the client connection is cut (no final chunk, short
 *    Content-Length).
 *
 * Above request.c, below conn.c: the client is reached through the request
 * (r->client, the ops its connection gave it), never by name; the request
 * and the connection reach this exchange through r->exchange, which the
 * stage sets when it begins.
 */
#include "net/upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net/io.h"
#include "net/headers.h"
#include "net/request.h"
#include "net/retry.h"

#define BP_HIGH (256 * 1024) /* output level that pauses the other side */
/* An upstream failure counter: not for a kept exchange, which was counted
 * when its client was answered. */
#define UP_STAT(r, f)                                                                              \
	do {                                                                                       \
		if (!(r)->client_ended)                                                            \
			stat_inc((r)->w->stats->f);                                                \
	} while (0)
#define BP_LOW (64 * 1024)

static void up_readcb(struct bufferevent *bev, void *arg);
static void up_writecb(struct bufferevent *bev, void *arg);
static void up_eventcb(struct bufferevent *bev, short what, void *arg);
static void up_process(struct request *r);
static void upstream_pump_body(struct request *r);
static const struct request_exchange_ops upstream_exchange;

static void upconn_free_deferred(evutil_socket_t fd, short what, void *arg)
{
	free(arg);
}

/* The bufferevent goes now; the struct at the end of the loop iteration,
 * since the callback that decided to free it may still look at it. */
static void upconn_free(struct upconn *uc)
{
	struct event_base *base = uc->w->base;
	bufferevent_free(uc->bev);
	uc->bev = NULL;
	uc->req = NULL;
	if (event_base_once(base, -1, EV_TIMEOUT, upconn_free_deferred, uc, NULL) < 0)
		free(uc);
}

/* ---- pool -------------------------------------------------------------- */

static void pool_unlink(struct worker *w, struct upconn *uc)
{
	for (struct upconn **pp = &w->idle; *pp; pp = &(*pp)->next) {
		if (*pp == uc) {
			*pp = uc->next;
			w->nidle--;
			return;
		}
	}
}

/* An idle connection to the runtime's upstream that opened with <line>.
 * Those for another address, or that spoke out of turn, are closed on the
 * way; those of another client's PROXY line stay for it. */
static struct upconn *pool_take(struct worker *w, const struct runtime *rt, const char *line)
{
	struct upconn **pp = &w->idle;
	while (*pp) {
		struct upconn *uc = *pp;
		bool stale = uc->addr_len != rt->up_len || memcmp(&uc->addr, &rt->up_addr, rt->up_len) != 0 ||
		             evbuffer_get_length(bufferevent_get_input(uc->bev));
		if (!stale && strcmp(uc->proxy_line, line) != 0) {
			pp = &uc->next;
			continue;
		}
		*pp = uc->next;
		w->nidle--;
		uc->next = NULL;
		if (!stale)
			return uc;
		upconn_free(uc);
	}
	return NULL;
}

/* Closes the idle connection put back longest ago (the list's tail). */
static void pool_drop_oldest(struct worker *w)
{
	struct upconn **pp = &w->idle;
	while (*pp && (*pp)->next)
		pp = &(*pp)->next;
	struct upconn *uc = *pp;
	if (!uc)
		return;
	*pp = NULL;
	w->nidle--;
	upconn_free(uc);
}

static void pool_put(struct worker *w, struct upconn *uc)
{
	const struct lv_policy *p = w->rt->policy;
	if (w->draining || p->up.keepalive == 0) {
		upconn_free(uc);
		return;
	}
	if (w->nidle >= p->up.keepalive) {
		/* Without PROXY lines every idle connection serves anyone: the
		 * one in hand goes. With them, the full pool may hold only lines
		 * of clients that have left and will never be asked for again;
		 * refusing the one in hand would then keep every live client
		 * from ever reusing one, until the reaper: the oldest goes. */
		if (!uc->proxy_line[0]) {
			upconn_free(uc);
			return;
		}
		pool_drop_oldest(w);
	}
	uc->req = NULL;
	uc->got_bytes = false;
	uc->idle_since = now_us();
	bufferevent_set_timeouts(uc->bev, NULL, NULL);
	bufferevent_disable(uc->bev, EV_WRITE);
	bufferevent_enable(uc->bev, EV_READ); /* to notice a close while idle */
	uc->next = w->idle;
	w->idle = uc;
	w->nidle++;
}

void upstream_pool_reap(struct worker *w, uint64_t now)
{
	uint64_t limit = w->rt->policy->up.keepalive_timeout_ms * 1000;
	struct upconn **pp = &w->idle;
	while (*pp) {
		struct upconn *uc = *pp;
		if (now - uc->idle_since >= limit) {
			*pp = uc->next;
			w->nidle--;
			upconn_free(uc);
		} else {
			pp = &uc->next;
		}
	}
}

void upstream_pool_clear(struct worker *w)
{
	while (w->idle) {
		struct upconn *uc = w->idle;
		w->idle = uc->next;
		upconn_free(uc);
	}
	w->nidle = 0;
}

static struct upconn *upconn_connect(struct worker *w, const struct runtime *rt, const char *line)
{
	int fd = socket(rt->up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct upconn *uc = calloc(1, sizeof(*uc));
	struct bufferevent *bev = uc ? bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (!bev) {
		close(fd);
		free(uc);
		return NULL;
	}
	uc->w = w;
	uc->bev = bev;
	memcpy(&uc->addr, &rt->up_addr, rt->up_len);
	uc->addr_len = rt->up_len;
	bufferevent_setcb(bev, up_readcb, up_writecb, up_eventcb, uc);
	bufferevent_setwatermark(bev, EV_WRITE, BP_LOW, 0);
	struct timeval ct;
	tv_ms(&ct, rt->policy->up.connect_timeout_ms);
	bufferevent_set_timeouts(bev, NULL, &ct); /* the connect runs as a write */
	snprintf(uc->proxy_line, sizeof(uc->proxy_line), "%s", line);
	/* queued first, so it leaves before any request head once connected */
	if ((line[0] && evbuffer_add(bufferevent_get_output(bev), line, strlen(line)) != 0) ||
	    bufferevent_socket_connect(bev, (struct sockaddr *)&rt->up_addr, (int)rt->up_len) < 0) {
		upconn_free(uc);
		return NULL;
	}
	stat_inc(w->stats->up_connects);
	return uc;
}

static bool up_flush(struct upconn *uc)
{
	if (!uc->connected)
		return true; /* sent once the connect completes */
	size_t n;
	return bev_write_now(uc->bev, &n);
}

/* ---- sending the request ----------------------------------------------- */

static void response_timed_out(struct request *r)
{
	UP_STAT(r, up_timeouts);
	request_fail(r, R_UP_TIMEOUT);
}

static void response_timer_arm(struct request *r)
{
	request_timer_arm_bounded(r, r->rt->policy->up.response_timeout_ms, response_timed_out);
}

static int send_head(struct request *r)
{
	/* the budget left, in the deadline header, replacing the client's */
	char budget[LV_NAME_MAX + 32];
	const char *dh = r->rt->policy->up.deadline_header;
	if (r->deadline_us)
		snprintf(budget, sizeof(budget), "%s: %llu\r\n", dh, (unsigned long long)request_budget_ms(r));
	struct reqhead_args a = {
	    .request_id = r->id,
	    .client_ip = r->peer,
	    .via = r->w->via,
	    .extra = r->up_extra,
	    .default_host = r->rt->up_text,
	    .trust_forwarded = r->rt->policy->trust_forwarded,
	    .framing = r->body_discard ? 0 : r->body == BODY_LENGTH ? 1 : r->body == BODY_CHUNKED ? 2 : 0,
	    .content_length = r->head->content_length,
	    .strip_unkeyed = r->strip_unkeyed,
	    .keyed = r->route ? r->route->cache_key_headers : "",
	    .drop = r->deadline_us ? dh : NULL,
	    .replace = r->deadline_us ? budget : NULL,
	    .whole = r->up_whole,
	};
	/* An explicit "Content-Length: 0" (e.g. an empty POST) is kept. */
	if (r->body == BODY_NONE && (r->head->flags & H1F_HAS_CL))
		a.framing = 1;
	return headers_build_request(r->head, &a, bufferevent_get_output(r->uc->bev));
}

/* What upstream_attach() did: ATTACH_CONNECT, no connection (retryable);
 * ATTACH_HEAD, the request head could not be rebuilt (it never will be). */
enum { ATTACH_OK, ATTACH_CONNECT, ATTACH_HEAD };

/* The PROXY line the request's connection must open with: none with
 * proxy_protocol off; its client's, or UNKNOWN for a request whose client
 * connection made none (accepted before a reload turned it on). */
static const char *upstream_proxy_line(const struct request *r)
{
	if (r->rt->policy->up.proxy_protocol == LV_PROXY_PROTOCOL_OFF)
		return "";
	return r->proxy_line[0] ? r->proxy_line : PROXYLINE_UNKNOWN;
}

static int upstream_attach(struct request *r)
{
	struct worker *w = r->w;
	const char *line = upstream_proxy_line(r);
	struct upconn *uc = r->retried ? NULL : pool_take(w, r->rt, line);
	if (uc) {
		stat_inc(w->stats->up_reused);
	} else {
		uc = upconn_connect(w, r->rt, line);
		if (!uc) {
			stat_inc(w->stats->up_connect_errors);
			return ATTACH_CONNECT;
		}
	}
	uc->req = r;
	uc->uses++;
	r->uc = uc;
	if (uc->connected) {
		struct timeval wt;
		tv_ms(&wt, r->rt->policy->up.response_timeout_ms);
		bufferevent_set_timeouts(uc->bev, NULL, &wt);
	}
	if (send_head(r) < 0)
		return ATTACH_HEAD;
	bufferevent_enable(uc->bev, EV_READ);
	return ATTACH_OK;
}

/* ---- route retries ------------------------------------------------------ */

/* Whether the request may be sent again: a route with retries left, an
 * idempotent method and no body (nothing of it is kept to send twice),
 * its client still waiting, and nothing of an answer out yet, not even an
 * interim one: what a client sees comes from one exchange, so a 103 it may
 * act on is never followed by another attempt's answer. */
static bool retry_possible(const struct request *r)
{
	return r->route && r->attempts < r->route->retries && r->body == BODY_NONE &&
	       (r->method_bit & LV_M_IDEMPOTENT) &&
	       !r->client_ended && (r->conn || r->background) && !r->resp_started && !r->interim_out &&
	       r->kept == KEPT_NO;
}

/* Decides one more attempt: the wait before it, within the deadline and
 * taken from the retry budget. False: the failure stands. */
static bool retry_take(struct request *r, uint64_t *wait_ms)
{
	if (!retry_possible(r))
		return false;
	const struct lv_route *rt = r->route;
	uint64_t wait = retry_backoff_ms(rt->retry_backoff_ms, rt->retry_backoff_max_ms, r->attempts + 1, loop_rand(r->w));
	if (r->deadline_us && request_budget_ms(r) <= wait)
		return false; /* no time left for it: the failure now, not a 504 later */
	const struct lv_upstream_cfg *up = &r->rt->policy->up;
	if (!retry_budget_take(r->w->retry_budget, up->retry_budget, up->retry_budget_min, now_us() / 1000)) {
		stat_inc(r->w->stats->retry_denied);
		return false;
	}
	*wait_ms = wait;
	return true;
}

static void retry_send(struct request *r);

/* The attempt that failed is dropped (its connection closed, its answer
 * unread); the next one goes after `wait_ms`. */
static void retry_schedule(struct request *r, uint64_t wait_ms)
{
	struct upconn *uc = r->uc;
	if (uc) {
		r->uc = NULL;
		uc->req = NULL;
		upconn_free(uc);
	}
	if (r->rarena) {
		arena_put(r->w, r->rarena);
		r->rarena = NULL;
		r->rp.head = NULL;
	}
	r->resp_head = false;
	r->up_status = 0;
	/* what the failed attempt's connection said applies to it alone */
	r->up_close = r->up_close_asked = false;
	r->resp = BODY_NONE;
	r->resp_left = 0;
	r->client_chunked = false;
	r->attempts++;
	request_timer_arm_bounded(r, wait_ms, retry_send);
}

/* A connect that failed: retried when it may be, else the failure. */
static void connect_failed(struct request *r)
{
	uint64_t wait;
	if (retry_take(r, &wait)) {
		stat_inc(r->w->stats->retry_connect);
		retry_schedule(r, wait);
		return;
	}
	r->up_close = true;
	request_fail(r, R_UP_CONNECT);
}

static void retry_send(struct request *r)
{
	int rc = upstream_attach(r);
	if (rc == ATTACH_HEAD) {
		request_fail(r, R_INTERNAL);
		return;
	}
	if (rc != ATTACH_OK) {
		connect_failed(r);
		return;
	}
	r->t_upstream = now_us(); /* a slow call is this attempt's time, not the backoff's */
	response_timer_arm(r);
	if (!up_flush(r->uc))
		connect_failed(r);
}

static int body_chunk(void *arg, const char *data, size_t len)
{
	struct request *r = arg;
	if (r->body_bytes + len > r->rt->policy->limits.body_bytes) {
		r->reason = R_BODY_TOO_LARGE;
		return -1;
	}
	r->body_bytes += len;
	if (!len || r->body_discard)
		return 0;
	struct evbuffer *out = bufferevent_get_output(r->uc->bev);
	evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, data, len);
	evbuffer_add(out, "\r\n", 2);
	return 0;
}

static int upstream_stage(struct request *r)
{
	r->exchange = &upstream_exchange;
	if (r->deadline_us && !request_budget_ms(r)) {
		/* spent already (in a queue, a cache wait, or by the client's
		 * own header): no work for the service after the deadline */
		request_deadline_passed(r);
		return STAGE_DONE;
	}
	if (retry_possible(r))
		retry_budget_note(r->w->retry_budget, now_us() / 1000);
	int rc = upstream_attach(r);
	if (rc == ATTACH_HEAD) {
		request_fail(r, R_INTERNAL);
		return STAGE_DONE;
	}
	if (rc != ATTACH_OK) {
		r->t_upstream = now_us();
		connect_failed(r);
		return STAGE_ASYNC;
	}
	r->t_upstream = now_us();
	r->up_sent_unix_ms = now_unix_ms();
	struct conn *c = r->conn;
	if (!r->body_done) {
		if (r->deadline_us) /* while the body goes up; the response timer takes over after */
			request_timer_arm_bounded(r, request_budget_ms(r), request_deadline_passed);
		if ((r->head->flags & H1F_EXPECT_CONTINUE) && c && !r->sent_continue) {
			/* We are ready for the body: say so ourselves (Expect is not forwarded). */
			evbuffer_add(r->client->output(c), "HTTP/1.1 100 Continue\r\n\r\n", 25);
			r->sent_continue = true;
			if (!r->client->flush(c)) {
				request_client_gone(r);
				return STAGE_ASYNC;
			}
		}
		if (c)
			r->client->body_begin(c, r->body == BODY_CHUNKED ? body_chunk : NULL, r,
			                      r->rt->policy->limits.body_timeout_ms, r->rt->policy->limits.send_timeout_ms);
		upstream_pump_body(r);
	} else {
		response_timer_arm(r);
		if (!up_flush(r->uc))
			connect_failed(r);
	}
	return STAGE_ASYNC;
}

static void body_finished(struct request *r)
{
	r->body_done = true;
	if (r->conn) /* its parser is free for the next pipelined request */
		r->client->body_end(r->conn, r->rt->policy->limits.send_timeout_ms);
	if (!r->resp_head)
		response_timer_arm(r);
}

static void upstream_pump_body(struct request *r)
{
	struct conn *c = r->conn;
	if (!c || r->body_done || !r->uc)
		return;
	struct evbuffer *in = r->client->input(c);
	struct evbuffer *out = bufferevent_get_output(r->uc->bev);
	while (!r->body_done) {
		if (evbuffer_get_length(out) > BP_HIGH) {
			/* the upstream is slower than the client: stop reading the
			 * client until up_writecb sees the output drain */
			r->client->body_pause(c);
			break;
		}
		size_t avail = evbuffer_get_length(in);
		if (!avail)
			break;
		if (r->body == BODY_LENGTH) {
			size_t n = avail < r->body_left ? avail : (size_t)r->body_left;
			if (r->body_discard)
				evbuffer_drain(in, n);
			else
				evbuffer_remove_buffer(in, out, n);
			r->body_left -= n;
			r->body_bytes += n;
			r->bytes_in += n;
			if (!r->body_left)
				body_finished(r);
			continue;
		}
		/* chunked: llhttp decodes, body_chunk re-chunks */
		size_t used;
		enum lv_reason why = R_NONE;
		enum h1_result rc = r->client->body_feed(c, &used, &why);
		r->bytes_in += used;
		if (rc == H1_ERROR) {
			request_fail(r, r->reason == R_BODY_TOO_LARGE ? R_BODY_TOO_LARGE : why);
			return;
		}
		if (rc == H1_MSG_DONE) {
			if (!r->body_discard)
				evbuffer_add(out, "0\r\n\r\n", 5);
			body_finished(r);
		}
	}
	if (!up_flush(r->uc))
		request_fail(r, R_UP_BAD);
}

/* ---- the response ------------------------------------------------------ */

static int resp_chunk(void *arg, const char *data, size_t len)
{
	struct request *r = arg;
	if (len && r->observer && r->observer->body_bytes)
		r->observer->body_bytes(r, data, len);
	if (!len || !r->conn)
		return 0;
	struct evbuffer *out = r->client->output(r->conn);
	if (r->client_chunked) {
		evbuffer_add_printf(out, "%zx\r\n", len);
		evbuffer_add(out, data, len);
		evbuffer_add(out, "\r\n", 2);
	} else {
		evbuffer_add(out, data, len);
	}
	r->bytes_out += len;
	return 0;
}

static bool response_write_head(struct request *r, const struct lv_head *rh);

/* Sets up the response's framing and writes the client's head, unless the
 * cache holds the whole response back until it is complete (r->resp_hold).
 * Returns false if the head could not be built (an upstream head too large
 * to rewrite). */
static bool response_begin(struct request *r, struct lv_head *rh)
{
	bool head_req = r->head->method == HTTP_HEAD;
	bool has_body = http1_response_has_body(rh, head_req);
	if (!has_body)
		r->resp = BODY_NONE;
	else if (rh->flags & H1F_CHUNKED)
		r->resp = BODY_CHUNKED;
	else if (rh->flags & H1F_HAS_CL)
		r->resp = rh->content_length ? BODY_LENGTH : BODY_NONE;
	else
		r->resp = BODY_EOF;
	r->resp_left = r->resp == BODY_LENGTH ? rh->content_length : 0;
	if (r->resp == BODY_EOF || (rh->flags & H1F_CONN_CLOSE))
		r->up_close = r->up_close_asked = true;
	r->up_status = rh->status;
	if (r->client_ended)
		return true; /* a kept exchange: its late answer is only read */
	r->status = rh->status;
	if (r->observer && r->observer->head)
		r->observer->head(r, rh);
	if (r->resp_hold)
		return true; /* written whole at its end (response_end) */
	return response_write_head(r, rh);
}

/* Writes the client's head for upstream head <rh>: false when it could not
 * be built. */
static bool response_write_head(struct request *r, const struct lv_head *rh)
{
	struct conn *c = r->conn;
	if (!c)
		return true;
	const struct lv_head *qh = r->head;
	bool client_10 = qh->minor == 0;
	bool close = !r->client->can_continue(c, qh, r->body_done);
	struct resphead_args a = {.request_id = r->id, .content_length = rh->content_length};
	switch (r->resp) {
	case BODY_NONE:
		a.framing = 0;
		a.keep_cl = (rh->flags & H1F_HAS_CL) && rh->status != 204 && rh->status >= 200;
		break;
	case BODY_LENGTH:
		a.framing = 1;
		break;
	case BODY_CHUNKED:
	case BODY_EOF:
		if (client_10) {
			a.framing = 3;
			close = true;
		} else {
			a.framing = 2;
			r->client_chunked = true;
		}
		break;
	}
	if (close)
		r->client->close_after(c);
	a.close = close;
	a.keepalive_10 = client_10 && !close;
	a.extra = r->resp_extra;
	int n = headers_build_response(rh, &a, r->client->output(c));
	if (n < 0)
		return false;
	r->bytes_out += (uint64_t)n;
	r->resp_started = true;
	return true;
}

static void response_end(struct request *r)
{
	request_outcome(r, OUT_UPSTREAM);
	r->up_done = true;
	/* complete: an observer may store it (the head is still in rarena) */
	const struct response_observer *ob = r->observer;
	if (ob && ob->end)
		ob->end(r, r->rarena ? &r->rarena->head : NULL);
	if (r->resp_hold) {
		/* held back for a Cache-Status that tells what happened: now
		 * that the store is decided, the head, then the body */
		r->resp_hold = false;
		if (r->conn && r->rarena) {
			if (!response_write_head(r, &r->rarena->head)) {
				UP_STAT(r, up_bad_responses);
				request_outcome(r, OUT_UP_BAD);
				request_fail(r, R_UP_BAD);
				return;
			}
			struct evbuffer *held = ob && ob->held_body ? ob->held_body(r) : NULL;
			size_t n = held ? evbuffer_get_length(held) : 0;
			if (n)
				evbuffer_add_buffer(r->client->output(r->conn), held);
			r->bytes_out += n;
		}
	}
	struct upconn *uc = r->uc;
	if (uc && evbuffer_get_length(bufferevent_get_input(uc->bev)))
		r->up_close = true; /* bytes after the end of the response */
	if (r->conn) {
		if (r->client_chunked)
			evbuffer_add(r->client->output(r->conn), "0\r\n\r\n", 5);
		if (!r->client->flush(r->conn)) {
			request_client_gone(r);
			return;
		}
	}
	request_finish(r);
}

/*
 * An interim response (RFC 9110 §15.2), in the response parser's head. A
 * 100 is levee's own to send: it sent one itself when the client asked
 * (Expect is not forwarded), so the origin's is dropped. Any other (102,
 * 103...; a 101 was refused before) goes to the client as it comes, in
 * order, rebuilt like a final head (hop-by-hop fields out), never stored
 * nor shown to an observer, and only to a client that can read it: on
 * HTTP/1.1 (never 1.0), still there and not answered yet. Returns false
 * when the request ended (the client went away while it was written).
 * Past BP_HIGH of unsent output the upstream is not read until the client
 * takes it (upstream_resume_response), so a flood of interims is bounded.
 */
static bool response_interim(struct request *r, const struct lv_head *rh)
{
	struct conn *c = r->conn;
	bool to_client = rh->status != 100 && c && !r->client_ended && r->head->minor == 1 && !r->resp_started;
	struct resphead_args a = {0};
	/* too large to rewrite: it was only a hint */
	int n = to_client ? headers_build_response(rh, &a, r->client->output(c)) : -1;
	http1_reset(&r->rp); /* <rh> is spent: the parser waits for the next head */
	if (n < 0) {
		stat_inc(r->w->stats->interim_dropped);
		return true;
	}
	stat_inc(r->w->stats->interim_forwarded);
	r->bytes_out += (uint64_t)n;
	r->interim_out = true;
	if (!r->client->flush(c)) {
		request_client_gone(r);
		return false;
	}
	if (evbuffer_get_length(r->client->output(c)) > BP_HIGH) {
		bufferevent_disable(r->uc->bev, EV_READ);
		r->interim_paused = true;
	}
	return true;
}

static bool response_head(struct request *r)
{
	struct upconn *uc = r->uc;
	struct evbuffer *in = bufferevent_get_input(uc->bev);
	if (!r->rarena) {
		r->rarena = arena_get(r->w);
		if (!r->rarena) {
			request_fail(r, R_INTERNAL);
			return false;
		}
		const struct lv_policy *p = r->rt->policy;
		struct h1_limits lim = {(uint32_t)p->limits.header_bytes, (uint32_t)p->limits.headers, 8192};
		http1_init(&r->rp, HTTP_RESPONSE, &r->rarena->head, &lim);
	}
	while (evbuffer_get_length(in)) {
		size_t used;
		enum h1_result rc = http1_feed_evbuffer(&r->rp, in, &used);
		if (rc == H1_MORE)
			return false;
		enum lv_reason why;
		struct lv_head *rh = &r->rarena->head;
		if (rc == H1_ERROR || http1_check_response(rh, &why) != 0 || rh->status == 101) {
			UP_STAT(r, up_bad_responses);
			request_outcome(r, OUT_UP_BAD);
			request_fail(r, R_UP_BAD);
			return false;
		}
		if (rh->status < 200) {
			if (!response_interim(r, rh) || r->interim_paused)
				return false;
			continue;
		}
		uint64_t wait;
		if (r->route && status_set_has(&r->route->retry_statuses, rh->status) && retry_take(r, &wait)) {
			/* an answer that is retried is never shown, nor stored */
			stat_inc(r->w->stats->retry_status);
			retry_schedule(r, wait);
			return false;
		}
		if (r->observer && r->observer->resend && !r->client_ended && r->observer->resend(r, rh)) {
			/* not a retry: the same attempt, asked again another way */
			retry_schedule(r, 0);
			r->attempts--;
			return false;
		}
		if (r->kept == KEPT_NO) {
			/* a kept exchange's one bound is its abandon timer */
			request_timer_stop(r);
			struct timeval rt;
			tv_ms(&rt, r->rt->policy->up.response_timeout_ms);
			bufferevent_set_timeouts(uc->bev, &rt, &rt);
			if (r->deadline_us) /* the whole answer is within the budget */
				request_timer_arm_bounded(r, request_budget_ms(r), request_deadline_passed);
		}
		if (!response_begin(r, rh)) {
			UP_STAT(r, up_bad_responses);
			request_outcome(r, OUT_UP_BAD);
			request_fail(r, R_UP_BAD);
			return false;
		}
		r->resp_head = true;
		if (r->resp == BODY_CHUNKED) {
			http1_set_body_cb(&r->rp, resp_chunk, r);
			http1_start_body(&r->rp);
		} else if (!r->resp_keep_head) {
			arena_put(r->w, r->rarena);
			r->rarena = NULL;
			r->rp.head = NULL;
		}
		return true;
	}
	return false;
}

static void up_process(struct request *r)
{
	struct upconn *uc = r->uc;
	struct evbuffer *in = bufferevent_get_input(uc->bev);
	if (evbuffer_get_length(in))
		uc->got_bytes = true;
	if (!r->resp_head) {
		if (!response_head(r))
			return;
		if (r->resp == BODY_NONE) {
			response_end(r);
			return;
		}
	}
	/* a held response is only captured until its end */
	struct evbuffer *out = r->conn && !r->resp_hold ? r->client->output(r->conn) : NULL;
	while (evbuffer_get_length(in)) {
		if (out && evbuffer_get_length(out) > BP_HIGH) {
			/* the client is slower than the upstream */
			bufferevent_disable(uc->bev, EV_READ);
			break;
		}
		size_t avail = evbuffer_get_length(in);
		if (r->resp == BODY_LENGTH || r->resp == BODY_EOF) {
			size_t n = avail;
			if (r->resp == BODY_LENGTH && n > r->resp_left)
				n = (size_t)r->resp_left;
			if (r->observer && r->observer->body)
				r->observer->body(r, in, n);
			if (!out) {
				evbuffer_drain(in, n);
			} else if (r->client_chunked) {
				evbuffer_add_printf(out, "%zx\r\n", n);
				evbuffer_remove_buffer(in, out, n);
				evbuffer_add(out, "\r\n", 2);
			} else {
				evbuffer_remove_buffer(in, out, n);
			}
			r->bytes_out += n;
			if (r->resp == BODY_LENGTH) {
				r->resp_left -= n;
				if (!r->resp_left) {
					response_end(r);
					return;
				}
			}
			continue;
		}
		/* BODY_CHUNKED */
		size_t used;
		enum h1_result rc = http1_feed_evbuffer(&r->rp, in, &used);
		if (rc == H1_ERROR) {
			UP_STAT(r, up_bad_responses);
			request_outcome(r, OUT_UP_TRUNCATED);
			request_fail(r, R_UP_BAD);
			return;
		}
		if (rc == H1_MSG_DONE) {
			response_end(r);
			return;
		}
	}
	if (r->conn && !r->client->flush(r->conn))
		request_client_gone(r);
}

static void upstream_resume_response(struct request *r)
{
	if (!r->uc)
		return;
	if (!r->conn) {
		/* the client left an exchange that goes on (request_client_gone,
		 * which may run inside this exchange's own callbacks): what is
		 * buffered, and what follows, is read from the loop */
		r->interim_paused = false;
		bufferevent_enable(r->uc->bev, EV_READ);
		bufferevent_trigger(r->uc->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
		return;
	}
	if (!r->resp_head && !r->interim_paused)
		return;
	r->interim_paused = false;
	bufferevent_enable(r->uc->bev, EV_READ);
	up_process(r);
}

static void up_readcb(struct bufferevent *bev, void *arg)
{
	struct upconn *uc = arg;
	if (!uc->req) {
		/* an idle connection spoke out of turn: it cannot be trusted */
		pool_unlink(uc->w, uc);
		upconn_free(uc);
		return;
	}
	up_process(uc->req);
}

static void up_writecb(struct bufferevent *bev, void *arg)
{
	struct upconn *uc = arg;
	if (!evbuffer_get_length(bufferevent_get_output(bev)))
		bufferevent_disable(bev, EV_WRITE);
	struct request *r = uc->req;
	if (r && r->conn && !r->body_done)
		r->client->body_resume(r->conn); /* if the body waited for this upstream */
}

static bool request_retryable(const struct request *r)
{
	return !r->retried && r->body == BODY_NONE &&
	       (r->method_bit & LV_M_IDEMPOTENT);
}

static void up_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct upconn *uc = arg;
	struct request *r = uc->req;
	if (what & BEV_EVENT_CONNECTED) {
		uc->connected = true;
		if (r) {
			struct timeval wt;
			tv_ms(&wt, r->rt->policy->up.response_timeout_ms);
			bufferevent_set_timeouts(bev, NULL, &wt);
			if (!up_flush(uc))
				request_fail(r, R_UP_CONNECT);
		}
		return;
	}
	if (!r) { /* idle pooled connection closed by the upstream */
		pool_unlink(uc->w, uc);
		upconn_free(uc);
		return;
	}
	if (!uc->connected) {
		UP_STAT(r, up_connect_errors);
		r->up_close = true;
		connect_failed(r);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		UP_STAT(r, up_timeouts);
		request_fail(r, R_UP_TIMEOUT);
		return;
	}
	/* EOF or error: this connection is done; first take what is buffered */
	r->up_close = true;
	if (evbuffer_get_length(bufferevent_get_input(bev))) {
		up_process(r);
		if (uc->req != r)
			return; /* the response completed */
	}
	r->up_close = true;
	if (r->resp == BODY_EOF && r->resp_head && (what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		/* only a FIN ends a close-delimited body: a reset or any other
		 * error leaves it truncated (RFC 9112 §6.3, item 8) */
		response_end(r);
		return;
	}
	if (!r->resp_head && !uc->got_bytes && uc->uses > 1 && request_retryable(r) && !r->client_ended) {
		/* A pooled connection the upstream had already closed: the
		 * request never reached it, so sending it again is safe. */
		stat_inc(r->w->stats->up_retries);
		uc->req = NULL;
		r->uc = NULL;
		upconn_free(uc);
		r->retried = true;
		request_timer_stop(r);
		int rc = upstream_attach(r);
		if (rc != ATTACH_OK) {
			if (rc == ATTACH_HEAD)
				request_fail(r, R_INTERNAL);
			else
				connect_failed(r); /* a route retry may still follow */
			return;
		}
		response_timer_arm(r);
		up_flush(r->uc);
		return;
	}
	if (r->resp_head) {
		UP_STAT(r, up_truncated);
		request_outcome(r, OUT_UP_TRUNCATED);
	} else {
		UP_STAT(r, up_bad_responses);
		request_outcome(r, uc->got_bytes ? OUT_UP_BAD : OUT_UP_RESET);
	}
	request_fail(r, R_UP_BAD);
}

static bool upstream_live(const struct request *r)
{
	return r->uc && r->uc->connected && r->body_done && !r->up_done;
}

static void upstream_keep(struct request *r)
{
	struct upconn *uc = r->uc;
	r->up_close = r->up_close_asked; /* a failure's close no longer applies: the answer may yet end cleanly */
	bufferevent_set_timeouts(uc->bev, NULL, NULL);
	bufferevent_enable(uc->bev, EV_READ); /* it may have waited for a slow client */
	/* what is already buffered (read before a slow client paused it) is
	 * read from the loop, not from inside this request's end */
	bufferevent_trigger(uc->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void upstream_release(struct request *r)
{
	struct upconn *uc = r->uc;
	if (!uc)
		return;
	r->uc = NULL;
	uc->req = NULL;
	/* pooled only when its response was read to the end: a client answered
	 * otherwise (a stale copy, levee's own error) leaves the service's
	 * answer on the wire */
	if (r->up_close || !r->body_done || !r->up_done || !uc->connected)
		upconn_free(uc);
	else
		pool_put(r->w, uc);
}

static const struct request_exchange_ops upstream_exchange = {
    .live = upstream_live,
    .keep = upstream_keep,
    .pump_body = upstream_pump_body,
    .resume_response = upstream_resume_response,
};

/* The upstream's address for the access log, "ip:port" ("[ip6]:port"). */
struct up_log {
	char addr[INET6_ADDRSTRLEN + 8];
};

static void upstream_log(struct request *r, struct alog_entry *e)
{
	if (!r->t_upstream)
		return; /* the upstream was never asked */
	struct up_log *ul = request_state(r, &upstream_stage_def);
	/* where its connection went; once released, where this snapshot sends */
	const struct sockaddr *sa = r->uc ? (const struct sockaddr *)&r->uc->addr : (const struct sockaddr *)&r->rt->up_addr;
	char ip[INET6_ADDRSTRLEN];
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(ul->addr, sizeof(ul->addr), "%s:%u", ip, (unsigned)ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(ul->addr, sizeof(ul->addr), "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
	} else {
		return;
	}
	alog_set_cstr(e, LV_AF_UPSTREAM_ADDR, ul->addr);
}

const struct stage upstream_stage_def = {
    .name = "upstream",
    .state_size = sizeof(struct up_log),
    .run = upstream_stage,
    .done = upstream_release,
    .log = upstream_log,
};
