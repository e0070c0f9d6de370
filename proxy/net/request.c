/*
 * request.c - a request's life on its loop: its memory and state blocks,
 * the run through the stages of the path, its timer, the access log line,
 * and its end (docs/architecture.md, "The request path").
 *
 * The path itself, which stages in which order, is the layer above's
 * (pipeline.c), given once at start-up: nothing here knows a stage by name.
 */
#include "net/request.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "net/headers.h"
#include "net/upstream.h"

#define REQ_POOL_MAX 256

/* ---- the path -------------------------------------------------------------- */

static const struct stage *const *stages;
static unsigned nstages;

/* ---- the stages' state blocks ------------------------------------------ */

/*
 * A request is one allocation: struct request, then each stage's state
 * block at state_off[i], each aligned for any type. The layout depends on
 * the path alone, so it is computed once, when the path is set.
 */
#define STATE_ALIGN _Alignof(max_align_t)

static size_t state_off[REQUEST_PATH_MAX];
static size_t request_size = sizeof(struct request); /* struct request and every block */

static size_t state_align(size_t n)
{
	return (n + STATE_ALIGN - 1) & ~(STATE_ALIGN - 1);
}

void request_path_set(const struct stage *const *path, unsigned n)
{
	if (n > REQUEST_PATH_MAX)
		abort(); /* a programming error: raise REQUEST_PATH_MAX */
	stages = path;
	nstages = n;
	size_t off = state_align(sizeof(struct request));
	for (unsigned i = 0; i < n; i++) {
		state_off[i] = off;
		off = state_align(off + stages[i]->state_size);
	}
	request_size = off;
}

static size_t stage_state_off(const struct stage *s)
{
	for (unsigned i = 0; i < nstages; i++)
		if (stages[i] == s)
			return state_off[i];
	abort(); /* not a stage of the path: a programming error */
}

void *request_state(struct request *r, const struct stage *s)
{
	return (char *)r + stage_state_off(s);
}

struct request *request_of_state(void *state, const struct stage *s)
{
	return (struct request *)(void *)((char *)state - stage_state_off(s));
}

static void request_run(struct request *r)
{
	while (r->stage < nstages) {
		int rc = stages[r->stage++]->run(r);
		if (rc != STAGE_NEXT)
			return;
	}
}

void request_resume(struct request *r)
{
	request_run(r);
}

/* The outcome of a request nobody recorded one for. */
static enum request_outcome outcome_of(const struct request *r)
{
	if (r->reason == R_NONE)
		return r->t_upstream ? OUT_UPSTREAM : OUT_CACHE;
	return outcome_of_reason(r->reason);
}

/* ---- request objects --------------------------------------------------- */

static void request_timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct request *r = arg;
	void (*fn)(struct request *) = r->timer_fn;
	r->timer_fn = NULL;
	if (fn)
		fn(r);
}

void request_timer_arm(struct request *r, uint64_t ms, void (*fn)(struct request *r))
{
	struct timeval tv;
	tv_ms(&tv, ms);
	r->timer_fn = fn;
	event_add(r->timer, &tv);
}

void request_timer_stop(struct request *r)
{
	event_del(r->timer);
	r->timer_fn = NULL;
}

static struct request *request_alloc(struct worker *w)
{
	struct request *r = w->free_reqs;
	if (r) {
		w->free_reqs = r->next_free;
		w->nfree_reqs--;
		struct event *timer = r->timer;
		memset(r, 0, request_size); /* the stages' blocks with it */
		r->timer = timer;
		return r;
	}
	r = calloc(1, request_size);
	if (!r)
		return NULL;
	r->timer = evtimer_new(w->base, request_timer_fired, r);
	if (!r->timer) {
		free(r);
		return NULL;
	}
	return r;
}

bool request_rebase(struct request *r, struct worker *w)
{
	if (event_base_set(w->base, r->timer) < 0)
		return false;
	r->w = w;
	return true;
}

static void request_free(struct request *r)
{
	struct worker *w = r->w;
	event_del(r->timer);
	/* a bulkhead's thread never starts a request: a pool there would only
	 * fill up */
	if (!w->listens || w->nfree_reqs >= REQ_POOL_MAX) {
		event_free(r->timer);
		free(r);
		return;
	}
	r->next_free = w->free_reqs;
	w->free_reqs = r;
	w->nfree_reqs++;
}

void request_start(struct conn *c, struct arena *head_arena)
{
	struct worker *w = c->w;
	struct lv_head *hd = &head_arena->head;
	struct request *r = request_alloc(w);
	if (!r) {
		arena_put(w, head_arena);
		conn_send_error(c, R_INTERNAL, NULL, CONN_CLOSE);
		return;
	}
	r->w = w;
	r->conn = c;
	c->req = r;
	r->rt = w->rt;
	runtime_ref(r->rt);
	r->arena = head_arena;
	r->head = hd;
	r->t_start = now_us();
	memcpy(r->peer, c->peer, sizeof(r->peer));
	r->method_bit = policy_method_bit(hd->text + hd->method_off, hd->method_len);

	int idx = head_find(hd, LIT("x-request-id"), 0);
	if (idx >= 0 && headers_request_id_ok(hd->text + hd->h[idx].value, hd->h[idx].value_len)) {
		memcpy(r->id, hd->text + hd->h[idx].value, hd->h[idx].value_len);
		r->id[hd->h[idx].value_len] = '\0';
	} else {
		worker_request_id(w, r->id);
	}

	if (hd->flags & H1F_CHUNKED) {
		r->body = BODY_CHUNKED;
	} else if ((hd->flags & H1F_HAS_CL) && hd->content_length) {
		r->body = BODY_LENGTH;
		r->body_left = hd->content_length;
	} else {
		r->body = BODY_NONE;
	}
	r->body_done = r->body == BODY_NONE;
	if (r->body_done) {
		c->parser.head = NULL;
		http1_reset(&c->parser);
	}
	if (r->body == BODY_LENGTH && hd->content_length > r->rt->policy->limits.body_bytes) {
		/* refused before a byte of the body is read (and before 100 Continue) */
		request_fail(r, R_BODY_TOO_LARGE);
		return;
	}
	request_run(r);
}

/* ---- access log -------------------------------------------------------- */

static void request_log(struct request *r, uint64_t end)
{
	if (!accesslog_enabled())
		return;
	const struct lv_head *hd = r->head;
	size_t need = 512 + 6 * ((size_t)hd->method_len + hd->target_len) + sizeof(r->id) * 6;
	char *p = alog_reserve(r->w->alog, need);
	if (!p)
		return; /* a line larger than the whole buffer: skip it rather than block */
	char ts[64];
	log_timestamp(ts);
	char *s = p;
	s += sprintf(s, "{\"ts\":\"%s\",\"id\":\"", ts);
	s += json_escape(s, r->id, strlen(r->id));
	s += sprintf(s, "\",\"client\":\"%s\",\"method\":\"", r->peer);
	s += json_escape(s, hd->text + hd->method_off, hd->method_len);
	s += sprintf(s, "\",\"target\":\"");
	s += json_escape(s, hd->text + hd->target_off, hd->target_len);
	s += sprintf(s,
	             "\",\"status\":%d,\"route\":\"%s\",\"outcome\":\"%s\",\"bytes_in\":%llu,\"bytes_out\":%llu,"
	             "\"duration_ms\":%.3f,\"upstream_ms\":%.3f%s%s%s%s%s%s}\n",
	             r->status, r->route ? r->route->name : "default", request_outcome_names[r->outcome],
	             (unsigned long long)r->body_bytes,
	             (unsigned long long)r->bytes_out, (double)(end - r->t_start) / 1000.0,
	             r->t_upstream ? (double)(end - r->t_upstream) / 1000.0 : 0.0,
	             r->reason ? ",\"reason\":\"" : "", r->reason ? lv_reasons[r->reason].token : "",
	             r->reason ? "\"" : "", r->fallback ? ",\"fallback\":\"" : "", r->fallback ? r->fallback : "",
	             r->fallback ? "\"" : "");
	alog_commit(r->w->alog, (size_t)(s - p));
}

/* ---- the end of a request ---------------------------------------------- */

static void request_end(struct request *r, struct conn *c);

/*
 * A request ends in two steps, which usually follow each other at once:
 *
 *   the client's end   the outcome is final; every entered stage's `end`
 *                      hook runs; the request is counted and logged; the
 *                      client connection goes on to its next request.
 *   the final end      the upstream exchange is over: every `done` hook
 *                      runs (the upstream connection goes back to the pool
 *                      or is closed, a bulkhead slot is freed) and the
 *                      request's memory goes back to the worker.
 *
 * Between the two, when an end hook asked for it, the exchange is "kept":
 * levee gave up on it for its client (a timeout, the client leaving) while
 * the service is still working on it. The request, detached from any
 * client, stays on the worker's `kept` list; the late answer is read and
 * dropped; its end (or the upstream closing, or `abandon_ms`) is the final
 * end. Worker teardown abandons what is still kept.
 */

static void kept_link(struct request *r)
{
	struct worker *w = r->w;
	r->drain_next = w->kept;
	r->drain_prev = &w->kept;
	if (w->kept)
		w->kept->drain_prev = &r->drain_next;
	w->kept = r;
	w->nkept++;
}

static void kept_unlink(struct request *r)
{
	if (!r->drain_prev)
		return;
	*r->drain_prev = r->drain_next;
	if (r->drain_next)
		r->drain_next->drain_prev = r->drain_prev;
	r->drain_prev = NULL;
	r->drain_next = NULL;
	r->w->nkept--;
}

static void kept_abandon(struct request *r)
{
	r->kept_end = KEPT_ABANDONED;
	r->up_close = true;
	request_end(r, NULL);
}

/* Keeps the exchange of a request whose client's end just ran. */
static void request_keep(struct request *r)
{
	r->draining = true;
	r->kept_end = KEPT_RUNNING;
	r->observer = NULL; /* nothing more to store or answer */
	r->resp_hold = false;
	kept_link(r);
	if (r->uc)
		upstream_keep(r); /* its own timeouts off: the abandon timer bounds it */
	request_timer_arm(r, r->abandon_ms, kept_abandon);
}

void request_abandon_kept(struct worker *w)
{
	while (w->kept)
		kept_abandon(w->kept);
}

/* The client's end. `c` is the client connection still to be told (NULL if
 * gone); it has already been detached from `r`. True: the exchange is kept. */
static bool request_client_end(struct request *r, struct conn *c, uint64_t end)
{
	struct worker *w = r->w;
	r->client_ended = true;
	if (r->outcome == OUT_NONE)
		r->outcome = outcome_of(r);
	bool keep = false;
	for (unsigned i = r->stage; i-- > 0;)
		if (stages[i]->end && stages[i]->end(r))
			keep = true;
	/* only an exchange whose request is all sent is worth waiting for: one
	 * cut in the middle of its body, the service cannot answer */
	keep = keep && request_exchange_live(r);
	stats_record_request(w->stats, r->route_stat, r->status, end - r->t_start);
	stat_inc(w->stats->outcomes[r->outcome]);
	stat_add(&w->stats->bytes_out, r->bytes_out);
	stat_add(&w->stats->bytes_in, r->bytes_in);
	request_log(r, end);
	if (c && c->parser.head == r->head)
		c->parser.head = NULL; /* the head arena stays the request's */
	if (keep)
		request_keep(r);
	return keep;
}

static void request_end(struct request *r, struct conn *c)
{
	if (r->finished)
		return;
	struct worker *w = r->w;
	bool body_done = r->body_done;
	if (!r->client_ended && request_client_end(r, c, now_us())) {
		if (c)
			conn_request_done(c); /* the exchange goes on without it */
		return;
	}
	r->finished = true;
	kept_unlink(r);
	request_timer_stop(r);
	for (unsigned i = r->stage; i-- > 0;)
		if (stages[i]->done)
			stages[i]->done(r);
	if (r->rarena) {
		arena_put(w, r->rarena);
		r->rarena = NULL;
	}
	if (c && c->parser.head == r->head)
		c->parser.head = NULL; /* the arena goes back to the pool below */
	arena_put(w, r->arena);
	r->arena = NULL;
	r->head = NULL;
	runtime_unref(r->rt);
	r->rt = NULL;
	request_free(r);
	if (c) {
		if (!body_done) {
			/* the rest of the request body is still on the wire: the
			 * connection cannot carry another request */
			c->close_after = true;
			http1_set_body_cb(&c->parser, NULL, NULL);
		}
		conn_request_done(c);
	}
}

static struct conn *request_detach(struct request *r)
{
	struct conn *c = r->conn;
	if (c) {
		c->req = NULL;
		r->conn = NULL;
	}
	return c;
}

void request_finish(struct request *r)
{
	r->resp_done = true;
	if (r->draining && r->kept_end == KEPT_RUNNING)
		r->kept_end = KEPT_COMPLETE;
	request_end(r, request_detach(r));
}

/* Whether the client connection can go on after levee's own answer `status`
 * to `r`, and the framing of that answer. */
static enum conn_end refusal_end(struct request *r, struct conn *c, int status)
{
	/* A request-side error ends the connection; an upstream failure, a
	 * refusal or a fallback's answer (a 200 page) does not, unless the connection could not go on anyway (the
	 * client asked to close, the body is still on the wire), and then the
	 * answer must say so (RFC 9112 §9.6). */
	bool close = (status >= 400 && status < 500 && status != 429) || !conn_can_continue(c, r->head, r->body_done);
	c->close_after = c->close_after || close;
	if (close)
		http1_set_body_cb(&c->parser, NULL, NULL);
	return close ? CONN_CLOSE : r->head->minor == 0 ? CONN_KEEP_10 : CONN_KEEP;
}

static void request_fail_as(struct request *r, enum lv_reason reason, const struct refusal *rf)
{
	if (r->finished)
		return;
	if (r->client_ended) {
		/* a kept exchange failed: the upstream closed, reset or stalled */
		if (r->kept_end == KEPT_RUNNING)
			r->kept_end = KEPT_CLOSED;
		r->up_close = true;
		request_end(r, NULL);
		return;
	}
	/* No r->up_close here: an exchange cut short is never pooled
	 * (upstream_release wants its response read to the end), and one an
	 * end hook keeps may still end cleanly and go back to the pool. */
	r->reason = reason;
	if (r->outcome == OUT_NONE)
		r->outcome = outcome_of(r);
	struct conn *c = request_detach(r);
	if (!c) {
		if (!r->status)
			r->status = lv_reasons[reason].status;
		request_end(r, NULL);
		return;
	}
	if (!r->resp_started) {
		r->conn = c; /* a stage may still answer it (the cache, from a stale copy) */
		c->req = r;
		struct refusal ans = rf ? *rf : (struct refusal){0}; /* a fail hook may amend it */
		for (unsigned i = r->stage; i-- > 0;)
			if (stages[i]->fail && stages[i]->fail(r, reason, &ans))
				return;
		request_detach(r);
		struct conn_refusal cr = {.reason = reason, .request_id = r->id, .status = ans.status,
		                          .retry_after = ans.retry_after, .detail = ans.detail,
		                          .content_type = ans.content_type, .body = ans.body, .body_len = ans.body_len};
		r->status = cr.status ? cr.status : lv_reasons[reason].status;
		conn_send_refusal(c, &cr, refusal_end(r, c, r->status));
		request_end(r, c);
		return;
	}
	/* Part of the response is out: the only honest thing left is to cut
	 * the connection, so the client sees a truncated message. */
	stat_inc(r->w->stats->rejected[reason]);
	conn_close(c);
	request_end(r, NULL);
}

void request_fail(struct request *r, enum lv_reason reason)
{
	request_fail_as(r, reason, NULL);
}

void request_refuse(struct request *r, enum lv_reason reason, const struct refusal *rf)
{
	request_outcome(r, OUT_REFUSED);
	request_fail_as(r, reason, rf);
}

void request_client_gone(struct request *r)
{
	request_detach(r);
	for (unsigned i = 0; i < r->stage; i++)
		if (stages[i]->client_gone && !stages[i]->client_gone(r))
			return; /* its callback will come, on this worker; it ends then */
	if (request_is_unsafe(r) && r->body_done && !r->resp_done && r->uc && !r->w->closing)
		return; /* let the upstream finish what it was asked to do */
	if (!r->resp_done) {
		r->status = 499;
		request_outcome(r, OUT_CLIENT_GONE);
	}
	request_end(r, NULL);
}
