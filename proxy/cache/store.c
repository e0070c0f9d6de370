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
#include "cache/fill.h"
#include "cache/freshness.h"
#include "cache/key.h"
#include "cache/l1.h"
#include "cache/record.h"
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
};

/* Whether r's response (head <resp>, received at resp_ms) may be stored:
 * RF_NONE and <sp> filled, or why not. Deterministic: the head and the end
 * of a response get the same answer. */
static enum cache_refusal store_plan(struct cache_req *cr, const struct lv_head *resp, int64_t resp_ms,
                                     struct store_plan *sp)
{
	struct request *r = cr->req;
	const struct lv_route *rt = r->route;
	struct fresh_options opt;
	fresh_options_init(&opt);
	opt.origin_mode = rt->cache_ttl_ms == LV_TTL_ORIGIN;
	opt.fixed_ttl = opt.origin_mode ? 0 : (int64_t)(rt->cache_ttl_ms / 1000);
	opt.allow_authorization = rt->cache_authorization;
	opt.allow_set_cookie = rt->cache_set_cookie;
	opt.route_swr = (int64_t)(rt->swr_ms / 1000);
	opt.route_sie = (int64_t)(rt->sie_ms / 1000);
	struct fresh_eval *ev = &sp->ev;
	fresh_evaluate(r->head, resp, (int64_t)r->up_sent_unix_ms / 1000, resp_ms / 1000, &opt, ev);

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
		sp->sec_len = vary_secondary_key(r->head, sp->names, sp->names_len, sp->sec, sizeof(sp->sec));
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

/* The answer is a property of the URL (not a passing error): remember it. */
static bool refusal_marks(enum cache_refusal why, const struct lv_head *resp)
{
	return why != RF_STATUS || resp->status < 500;
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
	const char *fwd = cr->stale ? cr->fwd : "miss";
	struct store_plan *sp = malloc(sizeof(*sp));
	enum cache_refusal why = sp ? store_plan(cr, resp, (int64_t)now_unix_ms(), sp) : RF_ERROR;
	if (why == RF_NONE)
		cr->ttl = sp->ev.st.lifetime - sp->ev.st.initial_age; /* RFC 9211 ttl, shown once it is stored */
	free(sp);
	if (why != RF_NONE) {
		snprintf(st, sizeof(st), "fwd=%s; detail=%s", fwd, cache_refusal_names[why]);
		cache_status_set(cr, st);
		store_refuse(cr, why, refusal_marks(why, resp));
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
 * replayed to another client. */
static bool field_stored(const struct lv_head *hd, int i)
{
	static const struct {
		const char *s;
		size_t l;
	} skip[] = {{LIT("content-length")}, {LIT("age")}, {LIT("x-request-id")}, {LIT("set-cookie")},
	            {LIT("via")}};
	for (size_t k = 0; k < sizeof(skip) / sizeof(skip[0]); k++)
		if (head_name_is(hd, i, skip[k].s, skip[k].l))
			return false;
	return !headers_is_hop_by_hop(hd, i);
}

/* Surrogate-Key's space-separated tags, then the route's own (with {N} from
 * its wildcards), into tags/tagp/tagl; returns how many. */
static uint32_t store_tags(const struct request *r, const struct lv_head *resp, struct record_str *tags,
                           const char **tagp, size_t *tagl, char *rtags, size_t rcap)
{
	uint32_t nt = cache_surrogate_keys(resp, tags, MAX_TAGS);
	struct record_str rt_tags[MAX_TAGS];
	unsigned nr = cache_route_tags(r, rtags, rcap, rt_tags, MAX_TAGS - nt);
	for (unsigned i = 0; i < nr; i++)
		tags[nt++] = rt_tags[i];
	for (uint32_t i = 0; i < nt; i++) {
		tagp[i] = tags[i].p;
		tagl[i] = tags[i].len;
	}
	return nt;
}

/* Stores r's complete response; its fill's waiters are woken with the
 * outcome (after Redis answered, when only Redis took it). */
static void cache_store(struct cache_req *cr, const struct lv_head *resp)
{
	struct request *r = cr->req;
	int64_t resp_ms = (int64_t)now_unix_ms();
	struct store_plan *sp = malloc(sizeof(*sp));
	enum cache_refusal why = sp ? store_plan(cr, resp, resp_ms, sp) : RF_ERROR;
	if (why != RF_NONE) { /* the head said yes: only running out of memory gets here */
		free(sp);
		store_refuse(cr, why, false);
		return;
	}
	struct fresh_eval *ev = &sp->ev;
	struct record_hdr *hdrs = malloc(RECORD_MAX_HDRS * sizeof(*hdrs));
	uint32_t nh = 0;
	for (uint32_t i = 0; hdrs && i < resp->n && nh < RECORD_MAX_HDRS; i++) {
		if (!field_stored(resp, (int)i))
			continue;
		hdrs[nh].name = (struct record_str){resp->text + resp->h[i].name, resp->h[i].name_len};
		hdrs[nh].value = (struct record_str){resp->text + resp->h[i].value, resp->h[i].value_len};
		nh++;
	}
	struct record_str tags[MAX_TAGS];
	const char *tagp[MAX_TAGS];
	size_t tagl[MAX_TAGS];
	char rtags[LV_HEADER_LIST_MAX * 4];
	uint32_t nt = store_tags(r, resp, tags, tagp, tagl, rtags, sizeof(rtags));

	/* the body as it was captured, every chain of it */
	struct evbuffer_iovec stack[BODY_IOV_STACK], *body = stack;
	int nb = evbuffer_peek(cr->capture, -1, NULL, NULL, 0);
	if (nb > BODY_IOV_STACK)
		body = malloc((size_t)nb * sizeof(*body));
	struct iovec *biov = body ? malloc((size_t)(nb > 0 ? nb : 1) * sizeof(*biov)) : NULL;
	if (!hdrs || !body || !biov) {
		free(hdrs);
		if (body != stack)
			free(body);
		free(biov);
		free(sp);
		store_refuse(cr, RF_ERROR, false);
		return;
	}
	if (nb > 0 && evbuffer_peek(cr->capture, -1, NULL, body, nb) != nb)
		nb = -1;
	for (int i = 0; i < nb; i++) {
		biov[i].iov_base = body[i].iov_base;
		biov[i].iov_len = body[i].iov_len;
	}
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
	    .tags = tags,
	    .ntags = nt,
	    .hdrs = hdrs,
	    .nhdrs = nh,
	    .body = biov,
	    .nbody = (uint32_t)(nb > 0 ? nb : 0),
	};
	enum cache_refusal outcome = RF_NONE;
	void *buf = NULL;
	size_t size = 0;
	if (nb < 0) {
		outcome = RF_ERROR;
	} else if (purged_since(&cr->cache->purges, cr->epoch, cr->key, cr->key_len, tagp, tagl, nt)) {
		/* a write landed while this response was on its way: it may be
		 * older than the write, so it must not outlive the purge */
		outcome = RF_PURGED;
	} else {
		size = record_size(&in);
		buf = size ? malloc(size) : NULL;
		if (!buf || record_encode(&in, buf, size) != RECORD_OK)
			outcome = RF_ERROR;
	}
	int64_t window = cache_keep_window(r->route, ev->st.swr, ev->st.sie);
	int64_t fresh_left = ev->st.lifetime - ev->st.initial_age;
	int64_t lifetime = ev->st.lifetime;
	bool validators = et >= 0 || ev->last_modified >= 0;
	size_t sec_len = vary ? sp->sec_len : 0;
	free(hdrs);
	if (body != stack)
		free(body);
	free(biov);
	if (outcome != RF_NONE) {
		free(buf);
		free(sp);
		if (outcome == RF_PURGED)
			CSTAT(cr->cache, fill_refused);
		store_refuse(cr, outcome, false);
		return;
	}
	/* an entry with validators stays a while past its windows, so a
	 * revalidation can refresh it with a 304 instead of a full body */
	int64_t grace = validators ? (lifetime < 60 ? 60 : lifetime > 3600 ? 3600 : lifetime) : 0;
	/* a policy with a stretch-ttl tier keeps entries long enough to be
	 * stretched; their lifetime stays the real one */
	int64_t stretch = cache_stretch_keep(r->rt->policy, lifetime);
	uint64_t expires = (uint64_t)resp_ms +
	                   (uint64_t)((fresh_left > 0 ? fresh_left : 0) + stretch + window + grace) * 1000u;
	uint64_t ttl = expires > (uint64_t)resp_ms ? expires - (uint64_t)resp_ms : 1;
	enum put_rc rc = cache_put(cr, cr->epoch, buf, size, expires, sp->sec, sec_len, tagp, tagl, nt);
	free(sp);
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
		const char *fwd = cr->stale ? cr->fwd : "miss";
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

void cache_refresh_entry(struct cache_req *cr, const struct record_view *v, const struct lv_head *resp)
{
	static __thread struct record_hdr hdrs[RECORD_MAX_HDRS];
	static __thread struct record_str tags[RECORD_MAX_TAGS];
	struct request *r = cr->req;
	const struct lv_route *rt = r->route;
	struct record_cursor cur = {0};
	uint32_t nh = 0, nt = 0;
	while (nh < RECORD_MAX_HDRS && record_next_hdr(v, &cur, &hdrs[nh]))
		nh++;
	struct record_cursor tc = {0};
	while (nt < RECORD_MAX_TAGS && record_next_tag(v, &tc, &tags[nt]))
		nt++;
	struct record_str vn = {"", 0}, vv = {"", 0};
	struct record_cursor vc = {0};
	bool has_vary = v->nvary && record_next_vary(v, &vc, &vn, &vv);
	struct cc_directives cc;
	cc_from_head(&cc, resp);
	int64_t lifetime = v->lifetime;
	if (rt->cache_ttl_ms != LV_TTL_ORIGIN)
		lifetime = (int64_t)(rt->cache_ttl_ms / 1000);
	else if (cc.s_maxage != CC_ABSENT)
		lifetime = cc.s_maxage;
	else if (cc.max_age != CC_ABSENT)
		lifetime = cc.max_age;
	int64_t age = 0;
	int ai = head_find(resp, LIT("age"), 0);
	if (ai >= 0) {
		const char *a = resp->text + resp->h[ai].value;
		for (uint32_t k = 0; k < resp->h[ai].value_len && a[k] >= '0' && a[k] <= '9' && age < CC_DELTA_MAX; k++)
			age = age * 10 + (a[k] - '0');
	}
	struct iovec body = {(void *)v->body, v->body_len};
	struct record_in in = {
	    .status = v->status, .flags = v->flags, .request_time = (int64_t)r->up_sent_unix_ms, .response_time = (int64_t)now_unix_ms(),
	    .initial_age = age, .lifetime = lifetime, .swr = v->swr, .sie = v->sie, .last_modified = v->last_modified,
	    .etag = v->etag, .vary_names = has_vary ? &vn : NULL, .vary_values = has_vary ? &vv : NULL,
	    .nvary = has_vary ? 1 : 0, .tags = tags, .ntags = nt, .hdrs = hdrs, .nhdrs = nh, .body = &body, .nbody = 1};
	size_t size = record_size(&in);
	void *buf = size ? malloc(size) : NULL;
	if (!buf || record_encode(&in, buf, size) != RECORD_OK) {
		free(buf);
		return;
	}
	const char *tagp[RECORD_MAX_TAGS];
	size_t tagl[RECORD_MAX_TAGS];
	for (uint32_t i = 0; i < nt; i++) {
		tagp[i] = tags[i].p;
		tagl[i] = tags[i].len;
	}
	int64_t window = cache_keep_window(rt, v->swr, v->sie);
	int64_t stretch = cache_stretch_keep(r->rt->policy, lifetime);
	uint64_t expires =
	    now_unix_ms() + (uint64_t)((lifetime > age ? lifetime - age : 0) + stretch + window + 60) * 1000u;
	enum put_rc rc = cache_put(cr, cr->epoch, buf, size, expires, has_vary ? vv.p : NULL,
	                           has_vary ? vv.len : 0, tagp, tagl, nt);
	if (rc == PUT_PURGED)
		CSTAT(cr->cache, fill_refused); /* purged while revalidating: answer once, keep nothing */
	else if (rc != PUT_OK)
		log_debug("cache: could not refresh an entry");
	free(buf);
}
