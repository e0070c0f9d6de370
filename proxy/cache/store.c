/*
 * store.c - what the cache does with a fill's response (below the stage,
 * cache.c; over cache_l2.c and serve.c): decide at its head
 * whether it can be stored, capture its body while it streams to the client,
 * and store it when it ends complete.
 *
 * Invariants:
 *  - Cache-Status says "stored" only when the head allows the store and the
 *    response's length is known to fit a tier: the rules are applied at the
 *    head (store_plan), and applied again, identically, at the end. What can
 *    still stop a store after the head is counted (purged, error): a
 *    truncated body never arrives at the end, and its client's message is
 *    cut short too.
 *  - A response is stored only when it arrived complete: the capture is
 *    dropped on any truncation, abort or size overflow.
 *  - A fill that began before a purge never leaves its answer behind it:
 *    the purge log is checked before the store, and again after the put,
 *    which takes back exactly its own entries if a purge landed in between
 *    (a purge logs itself before it walks the L1, so one that lands after
 *    the check removes them itself).
 *  - What no L1 shard can hold goes to Redis alone; what neither tier can
 *    take is refused at the head ("too-large").
 *  - Every outcome is counted: stores, and refusals by reason.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/store.h"

#include "cache/cache_ctx.h"
#include "cache/cache_l2.h"
#include "cache/cache_loop.h"
#include "cache/fill.h"
#include "cache/freshness.h"
#include "cache/key.h"
#include "cache/l1.h"
#include "cache/merge304.h"
#include "cache/record.h"
#include "cache/vary.h"
#include "log.h"
#include "net/headers.h"
#include "net/request.h"
#include "net/worker.h"
#include "cache/serve.h"
#include "cache/tags.h"

#define VARY_NAMES_MAX 512
#define MAX_TAGS 32
#define BODY_IOV_STACK 64

/* freshness.c's reasons, compared by pointer, and the refusal each counts
 * as. A reason missing here counts as RF_NO_FRESHNESS. */
static const struct {
	const char *why_not;
	enum cache_refusal refusal;
} refusal_table[] = {
    {fresh_why_method, RF_METHOD},
    {fresh_why_status, RF_STATUS},
    {fresh_why_partial, RF_PARTIAL},
    {fresh_why_no_store, RF_NO_STORE},
    {fresh_why_private, RF_PRIVATE},
    {fresh_why_set_cookie, RF_SET_COOKIE},
    {fresh_why_authorization, RF_AUTHORIZATION},
    {fresh_why_vary_star, RF_VARY_STAR},
    {fresh_why_no_freshness, RF_NO_FRESHNESS},
};

static enum cache_refusal refusal_of(const char *why_not)
{
	for (size_t i = 0; i < sizeof(refusal_table) / sizeof(refusal_table[0]); i++)
		if (refusal_table[i].why_not == why_not)
			return refusal_table[i].refusal;
	return RF_NO_FRESHNESS;
}

/* ---- the plan: everything the head decides ----------------------------- */

struct store_plan {
	struct fresh_eval ev;
	bool negative;
	enum vary_kind vk;
	size_t names_len, sec_len;
	char names[VARY_NAMES_MAX];
	char sec[VARY_KEY_MAX];
	/* the record's tags (store_encode()), pointing into the head or rtags */
	uint32_t nt;
	struct record_str tags[MAX_TAGS];
	const char *tagp[MAX_TAGS];
	size_t tagl[MAX_TAGS];
	char rtags[LV_HEADER_LIST_MAX * 4];
};

/* Whether r's response (head <resp>, received at resp_ms, the answer to
 * <req>: r's head, or the GET a HEAD stands for) may be stored:
 * RF_NONE and <sp> filled, or why not. Deterministic: the head and the end
 * of a response get the same answer. */
static enum cache_refusal store_plan(struct cache_req *cr, const struct lv_head *req, const struct lv_head *resp,
                                     int64_t resp_ms, struct store_plan *sp)
{
	struct request *r = cr->req;
	const struct lv_route *rt = r->route;
	struct fresh_options opt;
	fresh_options_init(&opt);
	opt.origin_mode = rt->cache_ttl_ms == LV_TTL_ORIGIN;
	opt.fixed_ttl = opt.origin_mode ? 0 : (int64_t)(rt->cache_ttl_ms / 1000);
	opt.allow_authorization = rt->cache_authorization;
	opt.allow_set_cookie = rt->cache_set_cookie;
	opt.any_status = rt->cache_any_status;
	opt.route_swr = (int64_t)(rt->swr_ms / 1000);
	opt.route_sie = (int64_t)(rt->sie_ms / 1000);
	opt.cc_fields = rt->cache_control_fields;
	struct fresh_eval *ev = &sp->ev;
	sp->vk = VARY_NONE;
	sp->names_len = sp->sec_len = sp->nt = 0;
	fresh_evaluate(req, resp, (int64_t)r->up_sent_unix_ms / 1000, resp_ms / 1000, &opt, ev);

	/* Negative caching: the listed statuses live negative_ttl, unless the
	 * origin (in origin mode) said how long itself. */
	sp->negative = statuses_has(&rt->negative_status, resp->status);
	if (sp->negative && (!opt.origin_mode || ev->why_not == fresh_why_no_freshness)) {
		if (!rt->negative_ttl_ms)
			return RF_STATUS;
		if (ev->why_not && ev->why_not != fresh_why_no_freshness && ev->why_not != fresh_why_status)
			return refusal_of(ev->why_not);
		ev->storable = true;
		ev->why_not = NULL;
		ev->st.lifetime = (int64_t)(rt->negative_ttl_ms / 1000);
		if (!ev->st.lifetime)
			ev->st.lifetime = 1;
		ev->st.initial_age = 0;
	}
	if (!ev->storable)
		return refusal_of(ev->why_not);
	sp->names_len = sp->sec_len = 0;
	sp->vk = vary_names(resp, sp->names, sizeof(sp->names), &sp->names_len);
	if (sp->vk == VARY_STAR)
		return RF_VARY_STAR;
	if (sp->vk == VARY_TOO_LONG)
		return RF_VARY;
	if (sp->vk == VARY_LIST) {
		sp->sec_len = vary_secondary_key(req, sp->names, sp->names_len, sp->sec, sizeof(sp->sec));
		if (!sp->sec_len)
			return RF_VARY;
	}
	if (resp->flags & H1F_HAS_CL) {
		const struct lv_policy *p = r->rt->policy;
		if (resp->content_length > p->cache.max_object)
			return RF_TOO_LARGE;
		/* an upper bound of the record: the body, the head's text, the
		 * key and tags, and the record's own framing */
		uint64_t est = resp->content_length + resp->len + 8u * resp->n + cr->key_len + 4096;
		if (!cr->l2_lease && est > l1_max_entry(cr->cache->l1))
			return RF_TOO_LARGE; /* no shard holds it, and no Redis lease to store it */
	}
	return RF_NONE;
}

/* The answer is a property of the URL (not a passing error, whatever kept
 * it out, nor a 304 to the client's own conditional, nor a 206 to one
 * request's Range): remember it. Too large for the L1 is no property of
 * the URL while Redis could hold it: this fill only lacked the lease (a
 * wait that ran out, a lease another replica held); marking the key would
 * send every request to the origin though Redis has the entry. */
static bool refusal_marks(const struct cache_req *cr, enum cache_refusal why, const struct lv_head *resp)
{
	if (why == RF_PARTIAL)
		return false;
	/* store_plan() says too-large for a length over max_object (lasting),
	 * or for one no shard holds while no lease was taken */
	if (why == RF_TOO_LARGE && loop_l2(cr->req->w) &&
	    resp->content_length <= cr->req->rt->policy->cache.max_object)
		return false;
	return resp->status < 500 && (why != RF_STATUS || resp->status != 304);
}

/* The fill's answer will not be stored: count it, make the key hit-for-miss
 * when the reason lasts, and let the requests waiting for it go now. */
static void store_refuse(struct cache_req *cr, enum cache_refusal why, bool mark)
{
	struct request *r = cr->req;
	cache_refused(cr->cache, why);
	cr->store = false;
	cr->why = (int8_t)why;
	if (cr->capture && !r->resp_hold) { /* a held response still needs its body */
		evbuffer_free(cr->capture);
		cr->capture = NULL;
	}
	if (mark) {
		pass_mark(&cr->cache->fills, cr->key, cr->key_len, r->rt->policy->cache.uncacheable_ttl_ms);
		cache_l2_pass(cr);
	}
	fill_finish(&cr->fill, mark ? FILL_UNCACHEABLE : FILL_FAILED);
}

void cache_response_head(struct cache_req *cr, const struct lv_head *resp)
{
	struct request *r = cr->req;
	if (!cr->on || cr->taken)
		return;
	const struct lv_head *qh = r->head;
	if (qh->method != HTTP_GET || !cr->key || cr->bypass_store || cr->tier_no_store)
		return; /* the status it was given says why */
	char st[96];
	const char *fwd = cache_fwd_of(cr);
	struct store_plan *sp = malloc(sizeof(*sp));
	enum cache_refusal why = sp ? store_plan(cr, cr->req->head, resp, (int64_t)now_unix_ms(), sp) : RF_ERROR;
	if (why == RF_NONE)
		cr->ttl = sp->ev.st.lifetime - sp->ev.st.initial_age; /* RFC 9211 ttl, shown once it is stored */
	free(sp);
	if (why != RF_NONE) {
		snprintf(st, sizeof(st), "fwd=%s; detail=%s", fwd, cache_refusal_names[why]);
		cache_status_set(cr, st);
		store_refuse(cr, why, refusal_marks(cr, why, resp));
		return;
	}
	if (cr->pass) {
		/* hit-for-miss, and now the answer can be stored: coalesce again */
		pass_clear(&cr->cache->fills, cr->key, cr->key_len);
		cache_l2_pass_clear(cr);
	}
	cr->capture = evbuffer_new();
	if (!cr->capture) {
		cache_refused(cr->cache, RF_ERROR);
		return;
	}
	cr->store = true;
	cr->why = RF_NONE;
	/* A small response is held back whole until it has arrived and the
	 * store is decided, so its Cache-Status tells what happened (a body cut
	 * short then gets levee's own 502, not a head that said "stored"). A
	 * larger one streams: "stored" only when its length is known, since a
	 * streamed body may still pass max_object. */
	if ((resp->flags & H1F_HAS_CL) && resp->content_length <= CACHE_HOLD_MAX && r->conn)
		r->resp_hold = true;
	cr->has_ttl = (resp->flags & H1F_HAS_CL) && !r->resp_hold; /* "stored" goes out with the head */
	snprintf(st, sizeof(st), "fwd=%s%s", fwd, cr->has_ttl ? "; stored" : "");
	cache_status_set(cr, st);
}

/* ---- capture ----------------------------------------------------------- */

static bool capture_room(struct cache_req *cr, size_t n)
{
	if (evbuffer_get_length(cr->capture) + n <= cr->req->rt->policy->cache.max_object)
		return true;
	/* a streamed body grew past max_object: nothing to wait for */
	store_refuse(cr, RF_TOO_LARGE, true);
	return false;
}

void cache_response_body(struct cache_req *cr, struct evbuffer *src, size_t n)
{
	if (!cr->store || !capture_room(cr, n))
		return;
	struct evbuffer_ptr pos;
	evbuffer_ptr_set(src, &pos, 0, EVBUFFER_PTR_SET);
	struct evbuffer_iovec v[16];
	size_t left = n;
	while (left) {
		int nv = evbuffer_peek(src, (ev_ssize_t)left, &pos, v, 16);
		if (nv <= 0)
			break;
		for (int i = 0; i < nv && i < 16 && left; i++) {
			size_t take = v[i].iov_len < left ? v[i].iov_len : left;
			evbuffer_add(cr->capture, v[i].iov_base, take);
			left -= take;
			evbuffer_ptr_set(src, &pos, take, EVBUFFER_PTR_ADD);
		}
	}
}

void cache_response_body_bytes(struct cache_req *cr, const char *data, size_t n)
{
	if (!cr->store || !capture_room(cr, n))
		return;
	evbuffer_add(cr->capture, data, n);
}

/* ---- the store --------------------------------------------------------- */

/* Fields not worth storing: hop-by-hop ones, framing (set when served),
 * Age (recomputed), per-request ones, and Set-Cookie, which is never
 * replayed to another client (<answer_only>: a record made for one answer
 * and never stored keeps it). */
static bool field_stored(const struct lv_head *hd, int i, bool answer_only)
{
	static const struct {
		const char *s;
		size_t l;
	} skip[] = {{LIT("content-length")}, {LIT("age")}, {LIT("x-request-id")}, {LIT("set-cookie")},
	            {LIT("via")}};
	for (size_t k = 0; k < sizeof(skip) / sizeof(skip[0]); k++)
		if (head_name_is(hd, i, skip[k].s, skip[k].l))
			return answer_only && k == 3;
	return !headers_is_hop_by_hop(hd, i);
}

/* Surrogate-Key's space-separated tags, then the route's own (with {N} from
 * its wildcards), into the plan's tag arrays. */
static void store_tags(const struct request *r, const struct lv_head *resp, struct store_plan *sp)
{
	uint32_t nt = cache_surrogate_keys(resp, sp->tags, MAX_TAGS);
	struct record_str rt_tags[MAX_TAGS];
	unsigned nr = cache_route_tags(r, sp->rtags, sizeof(sp->rtags), rt_tags, MAX_TAGS - nt);
	for (unsigned i = 0; i < nr; i++)
		sp->tags[nt++] = rt_tags[i];
	for (uint32_t i = 0; i < nt; i++) {
		sp->tagp[i] = sp->tags[i].p;
		sp->tagl[i] = sp->tags[i].len;
	}
	sp->nt = nt;
}

/* Encodes the record of <resp> (a full response's head, or the head a 304
 * made of a stored one) with the body in <body>, as <sp> decided: a new
 * buffer in *buf (the caller frees it) and its size, RF_NONE; or RF_ERROR
 * when memory ran out. Fills the plan's tags. */
static enum cache_refusal store_encode(struct cache_req *cr, const struct lv_head *resp, struct store_plan *sp,
                                       int64_t resp_ms, const struct iovec *body, uint32_t nbody, bool answer_only,
                                       void **buf, size_t *size)
{
	struct request *r = cr->req;
	struct fresh_eval *ev = &sp->ev;
	*buf = NULL;
	*size = 0;
	struct record_hdr *hdrs = malloc(RECORD_MAX_HDRS * sizeof(*hdrs));
	if (!hdrs)
		return RF_ERROR;
	uint32_t nh = 0;
	for (uint32_t i = 0; i < resp->n && nh < RECORD_MAX_HDRS; i++) {
		if (!field_stored(resp, (int)i, answer_only))
			continue;
		hdrs[nh].name = (struct record_str){resp->text + resp->h[i].name, resp->h[i].name_len};
		hdrs[nh].value = (struct record_str){resp->text + resp->h[i].value, resp->h[i].value_len};
		nh++;
	}
	store_tags(r, resp, sp);
	int et = head_find(resp, LIT("etag"), 0);
	struct record_str vn = {sp->names, (uint32_t)sp->names_len}, vv = {sp->sec, (uint32_t)sp->sec_len};
	bool vary = sp->vk == VARY_LIST;
	struct record_in in = {
	    .status = resp->status,
	    .flags = (uint16_t)((sp->negative ? RECORD_F_NEGATIVE : 0) | (ev->heuristic ? RECORD_F_HEURISTIC : 0) |
	                        (ev->st.must_revalidate ? RECORD_F_MUST_REVALIDATE : 0) |
	                        (ev->st.no_cache ? RECORD_F_NO_CACHE : 0)),
	    .request_time = (int64_t)r->up_sent_unix_ms,
	    .response_time = resp_ms,
	    .initial_age = ev->st.initial_age,
	    .lifetime = ev->st.lifetime,
	    .swr = ev->st.swr,
	    .sie = ev->st.sie,
	    .last_modified = ev->last_modified,
	    .etag = et >= 0 ? (struct record_str){resp->text + resp->h[et].value, resp->h[et].value_len}
	                    : (struct record_str){"", 0},
	    .vary_names = vary ? &vn : NULL,
	    .vary_values = vary ? &vv : NULL,
	    .nvary = vary ? 1 : 0,
	    .tags = sp->tags,
	    .ntags = sp->nt,
	    .hdrs = hdrs,
	    .nhdrs = nh,
	    .body = body,
	    .nbody = nbody,
	};
	size_t n = record_size(&in);
	void *b = n ? malloc(n) : NULL;
	if (!b || record_encode(&in, b, n) != RECORD_OK) {
		free(b);
		free(hdrs);
		return RF_ERROR;
	}
	free(hdrs);
	*buf = b;
	*size = n;
	return RF_NONE;
}

/* Puts record <buf> as plan <sp> decided, received at <resp_ms>, into the L1
 * and, under the request's lease, Redis; the fill's waiters are woken with
 * the outcome (after Redis answered, when only Redis took it). Takes the
 * buffer over. What a full store and a 304's refresh share. */
static void store_put(struct cache_req *cr, struct store_plan *sp, void *buf, size_t size, int64_t resp_ms,
                      bool validators)
{
	struct request *r = cr->req;
	const struct fresh_stored *st = &sp->ev.st;
	int64_t window = cache_keep_window(r->route, st->swr, st->sie);
	int64_t fresh_left = st->lifetime - st->initial_age;
	/* an entry with validators stays a while past its windows, so a
	 * revalidation can refresh it with a 304 instead of a full body */
	int64_t grace = validators ? (st->lifetime < 60 ? 60 : st->lifetime > 3600 ? 3600 : st->lifetime) : 0;
	/* a policy with a stretch-ttl tier keeps entries long enough to be
	 * stretched; their lifetime stays the real one */
	int64_t stretch = cache_stretch_keep(r->rt->policy, st->lifetime);
	uint64_t expires = (uint64_t)resp_ms +
	                   (uint64_t)((fresh_left > 0 ? fresh_left : 0) + stretch + window + grace) * 1000u;
	uint64_t ttl = expires > (uint64_t)resp_ms ? expires - (uint64_t)resp_ms : 1;
	size_t sec_len = sp->vk == VARY_LIST ? sp->sec_len : 0;
	enum put_rc rc = cache_put(cr, cr->epoch, buf, size, expires, sp->sec, sec_len, sp->tagp, sp->tagl, sp->nt);
	switch (rc) {
	case PUT_OK:
		cr->stored = true;
		CSTAT(cr->cache, stores);
		cache_l2_commit(cr, buf, size, ttl, NULL);
		fill_finish(&cr->fill, FILL_STORED);
		break;
	case PUT_TOO_BIG:
		/* larger than an L1 shard: Redis alone keeps it, and the waiters
		 * are woken once it has (or has refused it) */
		if (cache_l2_commit(cr, buf, size, ttl, fill_detach(&cr->fill))) {
			cr->stored = true;
			CSTAT(cr->cache, stores_l2_only);
		} else {
			cache_refused(cr->cache, RF_NO_ROOM);
			cr->why = RF_NO_ROOM;
		}
		break;
	case PUT_PURGED:
		CSTAT(cr->cache, fill_refused);
		store_refuse(cr, RF_PURGED, false);
		break;
	case PUT_ERROR:
		store_refuse(cr, RF_ERROR, false);
		break;
	}
	free(buf);
}

/* Stores r's complete response. */
static void cache_store(struct cache_req *cr, const struct lv_head *resp)
{
	int64_t resp_ms = (int64_t)now_unix_ms();
	struct store_plan *sp = malloc(sizeof(*sp));
	enum cache_refusal why = sp ? store_plan(cr, cr->req->head, resp, resp_ms, sp) : RF_ERROR;
	if (why != RF_NONE) { /* the head said yes: only running out of memory gets here */
		free(sp);
		store_refuse(cr, why, false);
		return;
	}
	/* the body as it was captured, every chain of it */
	struct evbuffer_iovec stack[BODY_IOV_STACK], *body = stack;
	int nb = evbuffer_peek(cr->capture, -1, NULL, NULL, 0);
	if (nb > BODY_IOV_STACK)
		body = malloc((size_t)nb * sizeof(*body));
	struct iovec *biov = body ? malloc((size_t)(nb > 0 ? nb : 1) * sizeof(*biov)) : NULL;
	void *buf = NULL;
	size_t size = 0;
	enum cache_refusal outcome = body && biov ? RF_NONE : RF_ERROR;
	if (outcome == RF_NONE && nb > 0 && evbuffer_peek(cr->capture, -1, NULL, body, nb) != nb)
		outcome = RF_ERROR;
	for (int i = 0; outcome == RF_NONE && i < nb; i++) {
		biov[i].iov_base = body[i].iov_base;
		biov[i].iov_len = body[i].iov_len;
	}
	if (outcome == RF_NONE)
		outcome = store_encode(cr, resp, sp, resp_ms, biov, (uint32_t)(nb > 0 ? nb : 0), false, &buf, &size);
	if (outcome == RF_NONE &&
	    purged_since(&cr->cache->purges, cr->epoch, cr->key, cr->key_len, sp->tagp, sp->tagl, sp->nt)) {
		/* a write landed while this response was on its way: it may be
		 * older than the write, so it must not outlive the purge */
		CSTAT(cr->cache, fill_refused);
		outcome = RF_PURGED;
	}
	if (body != stack)
		free(body);
	free(biov);
	if (outcome != RF_NONE) {
		free(buf);
		free(sp);
		store_refuse(cr, outcome, false);
		return;
	}
	bool validators = head_find(resp, LIT("etag"), 0) >= 0 || sp->ev.last_modified >= 0;
	store_put(cr, sp, buf, size, resp_ms, validators);
	free(sp);
}
void cache_response_end(struct cache_req *cr, const struct lv_head *resp)
{
	struct request *r = cr->req;
	if (cr->store && resp)
		cache_store(cr, resp);
	cr->store = false;
	fill_finish(&cr->fill, FILL_FAILED);
	if (r->resp_hold) {
		/* the held response's head goes out now: say what happened */
		char st[96];
		const char *fwd = cache_fwd_of(cr);
		cr->has_ttl = cr->stored;
		if (cr->stored)
			snprintf(st, sizeof(st), "fwd=%s; stored", fwd);
		else
			snprintf(st, sizeof(st), "fwd=%s; detail=%s", fwd,
			         cr->why > RF_NONE ? cache_refusal_names[cr->why] : "error");
		cache_status_set(cr, st);
	}
}


/* ---- refresh by a 304 -------------------------------------------------- */

/* Takes the stale copy's entries out of the L1: under the primary key,
 * and every Vary variant slot of the URL (the 304 judged one of them; the
 * others are fetched again, which is only slower). */
static void refresh_drop(struct cache_req *cr)
{
	cache_forget_key(cr->cache->l1, cr->key, cr->key_len);
}

/* The merged-freshness computation, in one place: the head a 304 <resp>
 * makes of stored response <v> (merge304.h), received at <now_ms>, judged by
 * the store's own plan (store_plan(), so fresh_evaluate() and every rule of
 * a full response), into <sp>. RF_NONE: storable; *merged then holds the
 * head, its text and slots in *text and *slots for the caller to free. */
static enum cache_refusal refresh_plan(struct cache_req *cr, const struct record_view *v, const struct lv_head *resp,
                                       int64_t now_ms, struct store_plan *sp, struct lv_head *merged, char **text,
                                       struct lv_hdr **slots)
{
	*merged = (struct lv_head){0};
	merged->cap = (uint32_t)merge304_text_cap(v, resp);
	merged->max = merge304_slots(v, resp);
	*text = merged->text = malloc(merged->cap);
	*slots = merged->h = malloc(merged->max * sizeof(*merged->h));
	if (!merged->text || !merged->h || !merge304_build(v, resp, now_ms / 1000, merged))
		return RF_ERROR;
	/* a HEAD revalidates the stored GET: judged as the GET it stands for */
	struct lv_head get = *cr->req->head;
	get.method = HEAD_METHOD_GET;
	return store_plan(cr, &get, merged, now_ms, sp);
}

enum refresh_rc cache_refresh_entry(struct cache_req *cr, const struct record_view *v, const struct lv_head *resp,
                                    struct l1_entry **answer)
{
	if (answer)
		*answer = NULL;
	/* levee's own revalidation carries cr->cond, the stored validators */
	if (!merge304_selects(v, resp, cr->cond[0] != '\0'))
		return REFRESH_MISMATCH; /* §4.3.4: it answers for another representation */
	int64_t now_ms = (int64_t)now_unix_ms();
	struct store_plan *sp = malloc(sizeof(*sp));
	struct lv_head merged;
	char *text = NULL;
	struct lv_hdr *slots = NULL;
	enum cache_refusal why = sp ? refresh_plan(cr, v, resp, now_ms, sp, &merged, &text, &slots) : RF_ERROR;
	bool store = why == RF_NONE && !cr->tier_no_store;
	enum refresh_rc rc = store ? REFRESH_STORED : REFRESH_NOT_STORED;
	void *buf = NULL;
	size_t size = 0;
	struct iovec body = {(void *)v->body, v->body_len};
	if (why == RF_ERROR ||
	    store_encode(cr, &merged, sp, now_ms, &body, v->body_len ? 1 : 0, !store, &buf, &size) != RF_NONE) {
		rc = REFRESH_ERROR;
	} else if (answer && !(*answer = l1_entry_detached(buf, size))) {
		rc = REFRESH_ERROR;
	}
	if (rc == REFRESH_STORED) {
		cr->store = false;
		cr->why = RF_NONE;
		store_put(cr, sp, buf, size, now_ms, head_find(&merged, LIT("etag"), 0) >= 0 || sp->ev.last_modified >= 0);
		buf = NULL; /* store_put() took it */
	} else if (rc == REFRESH_NOT_STORED && why != RF_NONE) {
		/* the 304 made the response one levee does not store (no-store,
		 * private, Set-Cookie...): the stale copy must not answer again */
		refresh_drop(cr);
		store_refuse(cr, why, refusal_marks(cr, why, &merged));
	}
	free(buf);
	free(text);
	free(slots);
	free(sp);
	return rc;
}
