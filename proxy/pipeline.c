/*
 * pipeline.c - the stages of a request, in order, and its end.
 *
 * The stage table is the request path. Issue by issue it grows: a tier check
 * (shed early and cheaply), a cache lookup (answer without the upstream),
 * a bulkhead and a breaker, each placed before "upstream" so that a request
 * is turned away as early as it can be.
 */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "log.h"
#include "net/headers.h"
#include "net/upstream.h"

#define REQ_POOL_MAX 256

/* ---- stages ------------------------------------------------------------ */

static int stage_route(struct request *r)
{
	const struct lv_head *hd = r->head;
	const struct lv_policy *p = r->rt->policy;
	r->route = policy_route_match(p, hd->text + hd->target_off, hd->path_len, r->method_bit, &r->caps);
	r->route_stat = r->route ? r->rt->route_stat[r->route - p->routes] : 0;
	return STAGE_NEXT;
}

static const struct stage {
	const char *name;
	int (*run)(struct request *r);
} stages[] = {
    {"route", stage_route},
    {"cache", cache_stage},
    {"upstream", upstream_stage},
};

#define NSTAGES (sizeof(stages) / sizeof(stages[0]))

static void pipeline_run(struct request *r)
{
	while (r->stage < NSTAGES) {
		int rc = stages[r->stage++].run(r);
		if (rc != STAGE_NEXT)
			return;
	}
}

void pipeline_resume(struct request *r)
{
	pipeline_run(r);
}

/* ---- request objects --------------------------------------------------- */

static void response_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct request *r = arg;
	stat_inc(r->w->stats->up_timeouts);
	request_fail(r, R_UP_TIMEOUT);
}

static struct request *request_alloc(struct worker *w)
{
	struct request *r = w->free_reqs;
	if (r) {
		w->free_reqs = r->next_free;
		w->nfree_reqs--;
		struct event *timer = r->timer;
		memset(r, 0, sizeof(*r));
		r->timer = timer;
		return r;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->timer = evtimer_new(w->base, response_timeout, r);
	if (!r->timer) {
		free(r);
		return NULL;
	}
	return r;
}

static void request_free(struct request *r)
{
	struct worker *w = r->w;
	event_del(r->timer);
	if (w->nfree_reqs >= REQ_POOL_MAX) {
		event_free(r->timer);
		free(r);
		return;
	}
	r->next_free = w->free_reqs;
	w->free_reqs = r;
	w->nfree_reqs++;
}

void pipeline_start(struct conn *c, struct arena *head_arena)
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
	pipeline_run(r);
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
	             "\",\"status\":%d,\"route\":\"%s\",\"bytes_in\":%llu,\"bytes_out\":%llu,"
	             "\"duration_ms\":%.3f,\"upstream_ms\":%.3f%s%s%s}\n",
	             r->status, r->route ? r->route->name : "default", (unsigned long long)r->body_bytes,
	             (unsigned long long)r->bytes_out, (double)(end - r->t_start) / 1000.0,
	             r->t_upstream ? (double)(end - r->t_upstream) / 1000.0 : 0.0,
	             r->reason ? ",\"reason\":\"" : "", r->reason ? lv_reasons[r->reason].token : "",
	             r->reason ? "\"" : "");
	alog_commit(r->w->alog, (size_t)(s - p));
}

/* ---- the end of a request ---------------------------------------------- */

/* `c` is the client connection still to be told (NULL if gone); it has
 * already been detached from `r`. */
static void request_end(struct request *r, struct conn *c)
{
	if (r->finished)
		return;
	r->finished = true;
	struct worker *w = r->w;
	uint64_t end = now_us();
	cache_request_end(r);
	upstream_release(r);
	if (r->rarena) {
		arena_put(w, r->rarena);
		r->rarena = NULL;
	}
	stats_record_request(w->stats, r->route_stat, r->status, end - r->t_start);
	stat_add(&w->stats->bytes_out, r->bytes_out);
	stat_add(&w->stats->bytes_in, r->bytes_in);
	request_log(r, end);
	bool body_done = r->body_done;
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
	request_end(r, request_detach(r));
}

void request_fail(struct request *r, enum lv_reason reason)
{
	if (r->finished)
		return;
	r->reason = reason;
	r->up_close = true;
	struct conn *c = request_detach(r);
	if (!c) {
		if (!r->status)
			r->status = lv_reasons[reason].status;
		request_end(r, NULL);
		return;
	}
	if (!r->resp_started) {
		r->conn = c; /* the cache may still answer it from a stale copy */
		c->req = r;
		if (cache_fail_takeover(r, reason))
			return;
		request_detach(r);
		r->status = lv_reasons[reason].status;
		/* A request-side error ends the connection; an upstream failure
		 * does not, unless the connection could not go on anyway (the
		 * client asked to close, the body is still on the wire), and
		 * then the answer must say so (RFC 9112 §9.6). */
		bool close = r->status < 500 || !conn_can_continue(c, r->head, r->body_done);
		c->close_after = c->close_after || close;
		if (close)
			http1_set_body_cb(&c->parser, NULL, NULL);
		enum conn_end end = close ? CONN_CLOSE : r->head->minor == 0 ? CONN_KEEP_10 : CONN_KEEP;
		conn_send_error(c, reason, r->id, end);
		request_end(r, c);
		return;
	}
	/* Part of the response is out: the only honest thing left is to cut
	 * the connection, so the client sees a truncated message. */
	stat_inc(r->w->stats->rejected[reason]);
	conn_close(c);
	request_end(r, NULL);
}

void request_client_gone(struct request *r)
{
	request_detach(r);
	if (r->l2_pending || (r->cache_waiting && !r->w->closing))
		return; /* its fill or L2 callback will come, on this worker; it ends then */
	if (request_is_unsafe(r) && r->body_done && !r->resp_done && r->uc)
		return; /* let the upstream finish what it was asked to do */
	if (!r->resp_done)
		r->status = 499;
	r->up_close = true;
	request_end(r, NULL);
}
