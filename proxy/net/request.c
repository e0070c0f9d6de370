/*
 * request.c - a request's life on its loop: its memory and state blocks,
 * the run through the stages of the path, its timer, the access log line,
 * and its end (docs/architecture.md, "The request path").
 *
 * The path itself, which stages in which order, is the layer above's
 * (pipeline.c), given once at start-up: nothing here knows a stage by name.
 *
 * Nor does it know its neighbours in net/: the client connection is reached
 * through r->client (its ops, conn.c's), the upstream exchange through
 * r->exchange (upstream.c's), so that conn.c and upstream.c sit above this
 * file and call it, never the other way (docs/architecture.md, "Layers").
 */
#include "net/request.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "net/headers.h"

#define REQ_POOL_MAX 256

/* ---- the path -------------------------------------------------------------- */

static const struct stage *const *stages;
static unsigned nstages;

/* ---- the stages' state blocks ------------------------------------------ */

/*
 * A request is one allocation: struct request, then each stage's state
 * block, each aligned for any type. The layout depends on the path alone,
 * so it is computed once, when the path is set.
 */
#define STATE_ALIGN _Alignof(max_align_t)

static size_t request_size = sizeof(struct request); /* struct request and every block */

static size_t state_align(size_t n)
{
	return (n + STATE_ALIGN - 1) & ~(STATE_ALIGN - 1);
}

/*
 * Where a stage's block is, in O(1): request_state() is called on every
 * step of a stage, and a stage def is const (its module's), so request.c
 * cannot store the offset in it. Instead a small table, open addressing on
 * the def's address, twice as large as the longest path: one slot read, a
 * second only on a collision.
 */
#define PLACE_BITS 5
#define PLACE_SLOTS (1u << PLACE_BITS)
_Static_assert(PLACE_SLOTS >= 2 * REQUEST_PATH_MAX, "the stage table must stay at most half full");
static struct {
	const struct stage *s;
	size_t off;
} place[PLACE_SLOTS];

static unsigned place_slot(const struct stage *s)
{
	/* Fibonacci hashing: the top bits of the product mix every bit of
	 * the address */
	uint64_t h = (uint64_t)(uintptr_t)s * 0x9e3779b97f4a7c15ull;
	return (unsigned)(h >> (64 - PLACE_BITS));
}

static void place_set(const struct stage *s, size_t off)
{
	unsigned i = place_slot(s);
	while (place[i].s && place[i].s != s)
		i = (i + 1) % PLACE_SLOTS;
	place[i].s = s;
	place[i].off = off;
}

static size_t stage_state_off(const struct stage *s)
{
	for (unsigned i = place_slot(s);; i = (i + 1) % PLACE_SLOTS) {
		if (place[i].s == s)
			return place[i].off;
		if (!place[i].s)
			abort(); /* not a stage of the path: a programming error */
	}
}

void request_path_set(const struct stage *const *path, unsigned n)
{
	if (n > REQUEST_PATH_MAX)
		abort(); /* a programming error: raise REQUEST_PATH_MAX */
	stages = path;
	nstages = n;
	memset(place, 0, sizeof(place));
	size_t off = state_align(sizeof(struct request));
	for (unsigned i = 0; i < n; i++) {
		place_set(stages[i], off);
		off = state_align(off + stages[i]->state_size);
	}
	request_size = off;
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

uint64_t request_budget_ms(const struct request *r)
{
	if (!r->deadline_us)
		return UINT64_MAX;
	uint64_t now = now_us();
	return now >= r->deadline_us ? 0 : (r->deadline_us - now + 999) / 1000;
}

void request_deadline_passed(struct request *r)
{
	stat_inc(r->w->stats->deadline_expired);
	request_outcome(r, OUT_DEADLINE);
	request_fail(r, R_DEADLINE);
}

void request_timer_arm_bounded(struct request *r, uint64_t ms, void (*fn)(struct request *r))
{
	if (r->deadline_us && !r->client_ended) {
		uint64_t left = request_budget_ms(r);
		if (left <= ms) {
			ms = left;
			fn = request_deadline_passed;
		}
	}
	request_timer_arm(r, ms, fn);
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

/* The loop's lists of requests: <off> is where the request_link is. */
#define LINK(r, off) ((struct request_link *)(void *)((char *)(r) + (off)))

static void link_in(struct request **head, unsigned *n, struct request *r, size_t off)
{
	struct request_link *l = LINK(r, off);
	l->next = *head;
	l->prev = head;
	if (*head)
		LINK(*head, off)->prev = &l->next;
	*head = r;
	(*n)++;
}

static void link_out(struct request *r, unsigned *n, size_t off)
{
	struct request_link *l = LINK(r, off);
	if (!l->prev)
		return;
	*l->prev = l->next;
	if (l->next)
		LINK(l->next, off)->prev = l->prev;
	l->prev = NULL;
	l->next = NULL;
	(*n)--;
}

/* Every live request is on its loop's list, from its start to its final
 * end, whether a connection, a kept exchange or nothing else holds it, so
 * that teardown reaches each (request_loop_close). */
static void live_link(struct request *r)
{
	link_in(&r->w->reqs, &r->w->nreqs, r, offsetof(struct request, live));
}

static void live_unlink(struct request *r)
{
	link_out(r, &r->w->nreqs, offsetof(struct request, live));
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

void request_pool_clear(struct worker *w)
{
	while (w->free_reqs) {
		struct request *r = w->free_reqs;
		w->free_reqs = r->next_free;
		event_free(r->timer);
		free(r);
	}
	w->nfree_reqs = 0;
}

bool request_rebase(struct request *r, struct worker *w)
{
	if (event_base_set(w->base, r->timer) < 0)
		return false;
	/* only a request with its client moves, so it is on no kept list; it
	 * joins the new loop's list there (request_arrive) */
	live_unlink(r); /* if it is on the list */
	r->w = w;
	return true;
}

void request_arrive(struct request *r)
{
	if (!r->live.prev)
		live_link(r);
}

static void request_free(struct request *r)
{
	struct worker *w = r->w;
	live_unlink(r); /* if it is on the list */
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

/* `src` (NULL: "") into `dst` of `cap` bytes, cut to fit: on every request,
 * so no printf. */
static void request_copy_text(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strnlen(src, cap - 1) : 0;
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
}

struct request *request_new(struct worker *w, struct conn *c, const struct request_client_ops *ops,
                            struct arena *head_arena, const char *peer, const char *orig_dst,
                            const char *proxy_line)
{
	struct lv_head *hd = &head_arena->head;
	struct request *r = request_alloc(w);
	if (!r)
		return NULL;
	r->w = w;
	live_link(r);
	r->conn = c;
	r->client = ops;
	r->rt = w->rt;
	runtime_ref(r->rt);
	r->arena = head_arena;
	r->head = hd;
	r->t_start = now_us();
	request_copy_text(r->peer, sizeof(r->peer), peer);
	request_copy_text(r->orig_dst, sizeof(r->orig_dst), orig_dst);
	request_copy_text(r->proxy_line, sizeof(r->proxy_line), proxy_line);
	r->method_bit = policy_method_bit(hd->text + hd->method_off, hd->method_len);

	int idx = head_find(hd, LIT("x-request-id"), 0);
	if (idx >= 0 && headers_request_id_ok(hd->text + hd->h[idx].value, hd->h[idx].value_len)) {
		memcpy(r->id, hd->text + hd->h[idx].value, hd->h[idx].value_len);
		r->id[hd->h[idx].value_len] = '\0';
	} else {
		loop_request_id(w, r->id);
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
	return r;
}

void request_start(struct request *r)
{
	if (r->body == BODY_LENGTH && r->head->content_length > r->rt->policy->limits.body_bytes) {
		/* refused before a byte of the body is read (and before 100 Continue) */
		request_fail(r, R_BODY_TOO_LARGE);
		return;
	}
	request_run(r);
}

/* ---- access log -------------------------------------------------------- */

/* A request header's value, if the client sent one (the first of its name). */
static void log_header(struct alog_entry *e, enum lv_alog_field f, const struct lv_head *hd, const char *name,
                       size_t len)
{
	int i = head_find(hd, name, len, 0);
	if (i >= 0)
		alog_set_str(e, f, hd->text + hd->h[i].value, hd->h[i].value_len);
}

/* Which protection refused the request, for the `shed` field. */
static const char *log_shed(enum lv_reason reason)
{
	switch (reason) {
	case R_TIER_SHED:
	case R_TIER_CACHE_ONLY:
		return "tier";
	case R_BULKHEAD_FULL:
	case R_BULKHEAD_TIMEOUT:
		return "bulkhead";
	case R_BREAKER_OPEN:
		return "breaker";
	default:
		return NULL;
	}
}

/* The time, and what the client's head says, whoever answered it. */
static void log_head(struct alog_entry *e, const char *peer, const struct lv_head *hd)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	alog_set_num(e, LV_AF_TIME, ALOG_TIME, (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000);
	alog_set_cstr(e, LV_AF_CLIENT, peer);
	if (!hd)
		return;
	alog_set_str(e, LV_AF_METHOD, hd->text + hd->method_off, hd->method_len);
	alog_set_str(e, LV_AF_TARGET, hd->text + hd->target_off, hd->target_len);
	if (hd->authority_len)
		alog_set_str(e, LV_AF_HOST, hd->text + hd->authority_off, hd->authority_len);
	else
		log_header(e, LV_AF_HOST, hd, LIT("host")); /* a head its checks refused: as sent */
	log_header(e, LV_AF_USER_AGENT, hd, LIT("user-agent"));
	log_header(e, LV_AF_FORWARDED_FOR, hd, LIT("x-forwarded-for"));
	log_header(e, LV_AF_REFERER, hd, LIT("referer"));
}

/* Formats <e> into <w>'s buffer as policy <p> says: no allocation, and the
 * buffer is written out whole lines at a time (log.h). */
static void log_write(struct worker *w, const struct lv_policy *p, const struct alog_entry *e)
{
	char *line = alog_reserve(w->alog, ALOG_LINE_MAX);
	if (line)
		alog_commit(w->alog, alog_format(line, &p->access_log_fields, p->access_log_format, e));
}

/* One line per request. */
static void request_log(struct request *r, uint64_t end)
{
	if (!accesslog_enabled())
		return;
	const struct lv_policy *p = r->rt->policy;
	const struct lv_head *hd = r->head;
	struct alog_entry e;
	memset(&e, 0, sizeof(e));
	log_head(&e, r->peer, hd);
	alog_set_cstr(&e, LV_AF_REQUEST_ID, r->id);
	if (r->orig_dst[0])
		alog_set_cstr(&e, LV_AF_ORIG_DST, r->orig_dst);
	/* HTTP/1.0 or HTTP/1.1 (llhttp takes one digit each), without printf */
	char proto[] = "HTTP/x.y";
	proto[5] = (char)('0' + hd->major % 10);
	proto[7] = (char)('0' + hd->minor % 10);
	alog_set_cstr(&e, LV_AF_PROTOCOL, proto);
	alog_set_num(&e, LV_AF_STATUS, ALOG_UINT, (uint64_t)r->status);
	alog_set_num(&e, LV_AF_BYTES_IN, ALOG_UINT, r->body_bytes);
	alog_set_num(&e, LV_AF_BYTES_SENT, ALOG_UINT, r->bytes_out);
	alog_set_num(&e, LV_AF_REQUEST_MS, ALOG_USEC, end - r->t_start);
	if (r->t_upstream)
		alog_set_num(&e, LV_AF_UPSTREAM_MS, ALOG_USEC, end > r->t_upstream ? end - r->t_upstream : 0);
	alog_set_cstr(&e, LV_AF_OUTCOME, request_outcome_names[r->outcome]);
	if (r->reason)
		alog_set_cstr(&e, LV_AF_REASON, lv_reasons[r->reason].token);
	alog_set_cstr(&e, LV_AF_SHED, log_shed(r->reason));
	alog_set_cstr(&e, LV_AF_FALLBACK, r->fallback);
	if (r->tier_level && r->tier_level <= p->ntiers)
		alog_set_cstr(&e, LV_AF_TIER, p->tiers[r->tier_level - 1].name);
	if (r->route) {
		alog_set_cstr(&e, LV_AF_ROUTE, r->route->name);
		if (r->route->bulkhead_idx >= 0)
			alog_set_cstr(&e, LV_AF_BULKHEAD, p->bulkheads[r->route->bulkhead_idx].name);
		if (r->route->breaker_idx >= 0)
			alog_set_cstr(&e, LV_AF_BREAKER, p->breakers[r->route->breaker_idx].name);
	}
	for (unsigned i = 0; i < r->stage; i++)
		if (stages[i]->log)
			stages[i]->log(r, &e);
	log_write(r->w, p, &e);
}

void request_log_refused_head(struct worker *w, const struct lv_policy *p, const char *peer,
                              const struct lv_head *hd, enum lv_reason reason)
{
	if (!accesslog_enabled())
		return;
	struct alog_entry e;
	memset(&e, 0, sizeof(e));
	log_head(&e, peer, hd);
	alog_set_num(&e, LV_AF_STATUS, ALOG_UINT, (uint64_t)lv_reasons[reason].status);
	alog_set_cstr(&e, LV_AF_OUTCOME, request_outcome_names[outcome_of_reason(reason)]);
	alog_set_cstr(&e, LV_AF_REASON, lv_reasons[reason].token);
	alog_set_cstr(&e, LV_AF_SHED, log_shed(reason));
	log_write(w, p, &e);
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
	link_in(&r->w->kept, &r->w->nkept, r, offsetof(struct request, kept_in));
}

static void kept_unlink(struct request *r)
{
	link_out(r, &r->w->nkept, offsetof(struct request, kept_in));
}

static void kept_abandon(struct request *r)
{
	r->kept = KEPT_ABANDONED;
	r->up_close = true;
	request_end(r, NULL);
}

/* Keeps the exchange of a request whose client's end just ran. */
static void request_keep(struct request *r)
{
	r->kept = KEPT_RUNNING;
	r->observer = NULL; /* nothing more to store or answer */
	r->resp_hold = false;
	kept_link(r);
	r->exchange->keep(r); /* its own timeouts off: the abandon timer bounds it */
	request_timer_arm(r, r->abandon_ms, kept_abandon);
}

/* A request its client left (an unsafe one the upstream acts on) or that
 * left its client (a background refresh), not offered its end yet. */
static struct request *orphan_first(struct worker *w)
{
	for (struct request *r = w->reqs; r; r = r->live.next)
		if (!r->conn && !r->client_ended && !r->close_told)
			return r;
	return NULL;
}

void request_loop_close(struct worker *w)
{
	/* Each orphan goes as if its client had just left, on a loop that is
	 * closing: a stage waiting on a callback says so (the callback ends
	 * it, when the layer above closes its loop part), the rest end now.
	 * From the top each time: one request's end may end others. */
	struct request *r;
	while ((r = orphan_first(w))) {
		r->close_told = true;
		request_client_gone(r);
	}
	/* what an end hook kept, and what was kept before */
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
	stats_record_request(w->stats, r->route_stat, r->status, end - r->t_start, r->outcome == OUT_CACHE);
	stat_inc(w->stats->outcomes[r->outcome]);
	stat_add(&w->stats->bytes_out, r->bytes_out);
	stat_add(&w->stats->bytes_in, r->bytes_in);
	request_log(r, end);
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
	const struct request_client_ops *client = r->client;
	const struct lv_head *head = r->head;
	if (!r->client_ended && request_client_end(r, c, now_us())) {
		if (c)
			client->done(c, head, body_done); /* the exchange goes on without it */
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
	arena_put(w, r->arena); /* the connection no longer parses into it: client->done below */
	r->arena = NULL;
	r->head = NULL;
	runtime_unref(r->rt);
	r->rt = NULL;
	request_free(r);
	if (c)
		client->done(c, head, body_done);
}

static struct conn *request_detach(struct request *r)
{
	struct conn *c = r->conn;
	if (c) {
		r->client->bind(c, NULL);
		r->conn = NULL;
	}
	return c;
}

void request_finish(struct request *r)
{
	r->resp_done = true;
	if (r->kept == KEPT_RUNNING)
		r->kept = KEPT_COMPLETE;
	request_end(r, request_detach(r));
}

static void request_fail_as(struct request *r, enum lv_reason reason, const struct refusal *rf)
{
	if (r->finished)
		return;
	if (r->client_ended) {
		/* a kept exchange failed: the upstream closed, reset or stalled */
		if (r->kept == KEPT_RUNNING)
			r->kept = KEPT_CLOSED;
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
		r->client->bind(c, r);
		struct refusal ans = rf ? *rf : (struct refusal){0}; /* a fail hook may amend it */
		for (unsigned i = r->stage; i-- > 0;)
			if (stages[i]->fail && stages[i]->fail(r, reason, &ans))
				return;
		for (unsigned i = r->stage; i-- > 0;)
			if (stages[i]->refused)
				stages[i]->refused(r, reason, &ans);
		request_detach(r);
		r->status = ans.status ? ans.status : lv_reasons[reason].status;
		r->client->refuse(c, r, reason, &ans);
		request_end(r, c);
		return;
	}
	/* Part of the response is out: the only honest thing left is to cut
	 * the connection, so the client sees a truncated message. */
	stat_inc(r->w->stats->rejected[reason]);
	r->client->close(c);
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
	if (request_is_unsafe(r) && r->body_done && !r->resp_done && r->uc && !r->w->closing) {
		/* let the upstream finish what it was asked to do (on w->reqs
		 * until then), read again if the client's output had paused it */
		request_resume_response(r);
		return;
	}
	if (!r->resp_done) {
		r->status = 499;
		request_outcome(r, OUT_CLIENT_GONE);
	}
	request_end(r, NULL);
}

bool request_exchange_live(const struct request *r)
{
	return r->exchange && r->exchange->live(r);
}

void request_pump_body(struct request *r)
{
	if (r->exchange)
		r->exchange->pump_body(r);
}

void request_resume_response(struct request *r)
{
	if (r->exchange)
		r->exchange->resume_response(r);
}
