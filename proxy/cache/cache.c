/*
 * cache.c - the cache stage, at the top of proxy/cache/: keys, the run of
 * the stage (bypasses, lookup, coalescing, the L2 miss), the observer of the
 * response, the wake-up of coalesced waiters, the purges a write makes, and
 * the end of a request's cache work. It is the only file that finds the
 * cache's block of a request (CR()); the files below it are handed the
 * block: serve.c (lookup and answers), cache_l2.c (the Redis tier),
 * store.c (the store of a fill's response).
 *
 * Invariants:
 *  - Only GET responses are stored; HEAD and conditional GETs are answered
 *    from them.
 *  - Every request that touched the cache ends through cache_request_end(),
 *    which releases what it holds (a stale copy, a capture, its fill, its
 *    lease).
 */
#include "cache/cache.h"
#include "cache/admit.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_ctx.h"
#include "cache/cache_l2.h"
#include "cache/cache_loop.h"
#include "cache/cache_req.h"
#include "cache/fill.h"
#include "cache/freshness.h"
#include "cache/key.h"
#include "cache/l1.h"
#include "cache/merge304.h"
#include "cache/record.h"
#include "cache/serve.h"
#include "cache/store.h"
#include "cache/tags.h"
#include "cache/write_inval.h"
#include "log.h"
#include "net/conn.h"
#include "net/headers.h"
#include "net/request.h"
#include "net/worker.h"

/* The cache's block of <r>: the only place that needs the stage's
 * definition; what it calls below gets the block. */
static inline struct cache_req *CR(struct request *r)
{
	return request_state(r, &cache_stage_def);
}

/* ---- the key ----------------------------------------------------------- */

/* The key lives in the spare text of the request's head arena, so building
 * it allocates nothing. */
static bool cache_make_key(struct request *r)
{
	struct cache_req *cr = CR(r);
	struct lv_head *hd = r->head;
	if (hd->cap - hd->len < 64)
		return false;
	char *out = hd->text + hd->len;
	size_t n = cache_key_of(r->rt->policy, r->route, hd, out, hd->cap - hd->len);
	if (!n)
		return false;
	cr->key = out;
	cr->key_len = (uint32_t)n;
	hd->len += (uint32_t)n;
	return true;
}

/* ---- the stage --------------------------------------------------------- */

/* Applies the route's unkeyed_headers and get_body to a cacheable request
 * (r->strip_unkeyed and r->body_discard set as needed): NULL when it may use
 * the cache, else the detail of its bypass. */
static const char *cache_unkeyed(struct request *r)
{
	bool strip = false, discard = false;
	const char *why = cache_admit_unkeyed(r->route, r->head, r->body != BODY_NONE, &strip, &discard);
	r->strip_unkeyed |= strip;
	r->body_discard |= discard;
	return why;
}

/* ---- degradation tiers' cache modes ------------------------------------ *
 *
 * The tier stage sets r->tier_cache (enum lv_cache_mode bits) before this
 * stage runs; 0, the normal case, costs one branch. What applies to this
 * request is cache_tier_modes(): no-fill-optional only on optional routes,
 * cache-only only on routes with tier_cache_only. When several apply, the
 * precedence is:
 *
 *   1. cache-only: the upstream is never asked for a read. It implies
 *      serve-stale (a stale copy is usable); a miss never waits for a fill
 *      and never takes a lease: one L2 lookup at most, then 503
 *      tier-cache-only. Nothing below matters, since nothing is fetched.
 *   2. stretch-ttl: decides freshness first (a copy fresh under the
 *      stretched lifetime is a hit, detail=tier-ttl).
 *   3. serve-stale: any copy still stale after that answers at once
 *      (detail=tier-stale): no revalidation, no background refresh.
 *   4. no-fill-optional: a miss goes upstream alone (no coalescing, no
 *      lease) and nothing of its answer is stored; it never waits, so
 *      skip-lease has nothing left to do.
 *   5. skip-lease: a miss that would wait for another's fill answers from
 *      its stale copy, or goes upstream alone, storing nothing.
 *
 * Every mode keeps the one guarantee no tier relaxes: a purged copy is
 * never served. Each serves only what a lookup finds now (a purge removes
 * L1 entries, and L2 hits a pending or refused purge covers are fenced
 * before any of them look at freshness). Writes are not touched: they
 * return before any of this (docs/tier-cache-modes.md). */
static unsigned cache_tier_modes(const struct request *r)
{
	return cache_admit_tier_modes(r->route, r->tier_cache);
}

/* ---- waiters ----------------------------------------------------------- */

/* A request parked behind another's fill is woken here, on its own worker,
 * with the fill's outcome (fill.c posts it). */
static void cache_wake(struct mb_item *it)
{
	struct fill_waiter *wt = mb_container(it, struct fill_waiter, item);
	struct cache_req *cr = mb_container(wt, struct cache_req, wait);
	struct request *r = cr->req;
	wt->waiting = false;
	if (!r->conn || r->w->closing) { /* the client left while it waited, or levee is stopping */
		request_client_gone(r);
		return;
	}
	enum fill_outcome o = (enum fill_outcome)wt->outcome;
	/* RFC 9211 collapsed: it went forward with the fill it waited on */
	cr->collapsed = CS_COLLAPSED_REUSED;
	if (o != FILL_UNCACHEABLE) {
		enum lookup_rc lk = cache_lookup(cr, "fwd=miss");
		if (lk == LK_HIT) {
			CSTAT(cr->cache, coalesced);
			return;
		}
		if (lk == LK_STALE_SERVED) { /* the fill stored nothing fresh; don't refresh again */
			request_finish(r);
			return;
		}
	}
	/* Stored in Redis only (too large for the L1): the shared tier has it.
	 * Otherwise nothing usable was stored: go upstream at once, without
	 * queueing again. */
	cr->no_coalesce = true;
	cache_status_set(cr, "fwd=miss");
	if (o == FILL_STORED_L2 && cache_l2_miss(cr) == STAGE_ASYNC)
		return; /* still collapsed if Redis has it; cache_l2.c says otherwise */
	cr->collapsed = CS_COLLAPSED_WENT;
	request_resume(r);
}

/* Makes r the filler of its key, or queues it behind the fill in flight
 * (`wait`), or says it is busy. */
static enum claim cache_claim(struct cache_req *cr, bool wait)
{
	cr->wait.w = cr->req->w;
	cr->wait.wake = cache_wake;
	return fill_claim(&cr->cache->fills, cr->key, cr->key_len, &cr->fill, wait ? &cr->wait : NULL);
}

/* ---- the observer and the stage ----------------------------------------- */

/* Cache-Status goes on the upstream's answer on a caching route. <given>:
 * the head goes out once this returns (not held, not taken over). */
static void cache_status_extra(struct request *r, struct cache_req *cr, bool given)
{
	r->resp_extra = cr->on && cr->status[0] ? cache_status_line(cr) : NULL;
	if (r->resp_extra && given && r->conn && !r->resp_started)
		cache_status_given(cr);
}

static void cache_response_takeover(struct cache_req *cr, const struct lv_head *resp);
static void cache_invalidate_write(struct cache_req *cr, const struct lv_head *resp);

static void cache_observe_head(struct request *r, const struct lv_head *resp)
{
	struct cache_req *cr = CR(r);
	cr->fwd_status = (int16_t)resp->status; /* RFC 9211 fwd-status, on any fwd= */
	/* a 304 to levee's own revalidation, or an error while a stale copy
	 * may be served: the cache answers the client, this response only
	 * refreshes (or is drained) */
	cache_response_takeover(cr, resp);
	if (request_is_unsafe(r)) {
		/* on every route: the target may be cached by another one */
		if (resp->status >= 200 && resp->status < 400 && !cr->taken)
			cache_invalidate_write(cr, resp);
	} else {
		cache_response_head(cr, resp);
	}
	r->resp_keep_head = cr->on;
	cache_status_extra(r, cr, !r->resp_hold);
}

static void cache_observe_body(struct request *r, struct evbuffer *src, size_t n)
{
	cache_response_body(CR(r), src, n);
}

static void cache_observe_body_bytes(struct request *r, const char *data, size_t n)
{
	cache_response_body_bytes(CR(r), data, n);
}

static void cache_observe_end(struct request *r, const struct lv_head *resp)
{
	struct cache_req *cr = CR(r);
	bool held = r->resp_hold; /* its head goes out after this */
	cache_response_end(cr, resp);
	cache_status_extra(r, cr, held);
}

static struct evbuffer *cache_held_body(struct request *r)
{
	return CR(r)->capture;
}

static bool cache_observe_resend(struct request *r, const struct lv_head *resp);

static const struct response_observer cache_observer = {
    .resend = cache_observe_resend,
    .head = cache_observe_head,
    .body = cache_observe_body,
    .body_bytes = cache_observe_body_bytes,
    .end = cache_observe_end,
    .held_body = cache_held_body,
};

/* A 304 to levee's own revalidation (its stored validators, cr->cond)
 * whose validators select no stored copy answers for another
 * representation (RFC 9111 §4.3.4): the copy can neither be updated nor
 * answer as a revalidated one. The request goes again without the
 * conditionals, as a plain fill whose answer replaces the copy; the copy
 * stays only for what may serve a stale one anyway (stale-if-error, a
 * route's stale fallback). Not once a 1xx of this exchange went out: what a
 * client sees comes from one exchange (upstream.c, retry_possible). */
static bool cache_observe_resend(struct request *r, const struct lv_head *resp)
{
	struct cache_req *cr = CR(r);
	if (resp->status != 304 || !cr->cond[0] || !cr->stale || r->interim_out || r->resp_started)
		return false;
	struct record_view v;
	size_t len;
	const void *val = l1_entry_value(cr->stale, &len);
	if (record_decode(val, len, &v) != RECORD_OK || merge304_selects(&v, resp, true))
		return false;
	CSTAT(cr->cache, revalidate_mismatch);
	log_debug("cache: a 304 to %.*s selected no stored copy; asking again without validators",
	          (int)r->head->target_len, r->head->text + r->head->target_off);
	cr->cond[0] = '\0';
	r->up_extra = NULL;
	cr->resent = true;
	return true;
}

static bool cache_stage_fail(struct request *r, enum lv_reason reason, struct refusal *rf)
{
	return cache_fail_takeover(CR(r), reason);
}

static void cache_stage_refused(struct request *r, enum lv_reason reason, struct refusal *rf)
{
	cache_status_refusal(CR(r), reason, rf);
}

bool cache_fallback_stale(struct request *r, uint64_t max_stale_ms, const char *mark)
{
	struct cache_req *cr = CR(r);
	return cr->cache && cache_fallback_takeover(cr, max_stale_ms, mark);
}

static void cache_request_end(struct cache_req *cr);

/* The Cache-Status the client got is counted here, once, by what it said
 * (a refusal of levee's own carries none and is not counted). */
static bool cache_stage_end(struct request *r)
{
	struct cache_req *cr = CR(r);
	if (cr->cache && cr->result) {
		enum lv_cache_result res = (enum lv_cache_result)(cr->result - 1);
		CSTAT(cr->cache, results[res]);
		stats_record_cache(r->w->stats, r->route_stat, res);
	}
	cache_request_end(cr);
	return false;
}

/* The client left: a fill or Redis answer still on its way to the request
 * ends it when it comes (a waiter of a stopping worker is not woken). */
static bool cache_client_gone(struct request *r)
{
	const struct cache_req *cr = CR(r);
	return !cr->l2_pending && !(cr->wait.waiting && !r->w->closing);
}

/* The access log's cache fields, from the Cache-Status the answer carries. */
static void cache_stage_log(struct request *r, struct alog_entry *e)
{
	struct cache_req *cr = CR(r);
	static const char prefix[] = "Cache-Status: levee; ";
	if (!cr->on || !cr->status[0])
		return;
	const char *params = cache_status_line(cr) + sizeof(prefix) - 1;
	size_t n = strcspn(params, "\r\n");
	alog_set_str(e, LV_AF_CACHE_STATUS, params, n);
	const char *layer;
	alog_set_cstr(e, LV_AF_CACHE, alog_cache_outcome(params, &layer));
	alog_set_cstr(e, LV_AF_CACHE_LAYER, layer);
}

static int cache_stage(struct request *r);

const struct stage cache_stage_def = {
    .name = "cache",
    .state_size = sizeof(struct cache_req),
    .run = cache_stage,
    .fail = cache_stage_fail,
    .refused = cache_stage_refused,
    .end = cache_stage_end,
    .client_gone = cache_client_gone,
    .log = cache_stage_log,
};

/* A read that skips the cache (cookies, unkeyed fields, the outbox full)
 * would go upstream: not under cache-only, which refuses it as a miss. */
static int cache_tier_bypass(struct cache_req *cr)
{
	if (!(cr->tm & LV_CM_CACHE_ONLY))
		return STAGE_NEXT;
	CSTAT(cr->cache, tier_refused);
	request_fail(cr->req, R_TIER_CACHE_ONLY);
	return STAGE_DONE;
}

/* A miss under cache-only or no-fill-optional (precedence above), from the
 * stage once the L1 had nothing it could answer with. */
static int cache_tier_miss(struct cache_req *cr)
{
	if (cr->tm & LV_CM_CACHE_ONLY) {
		/* the shared tier may have it; cache_l2.c refuses what it lacks */
		if (cache_l2_miss(cr) == STAGE_ASYNC)
			return STAGE_ASYNC;
		if (!cache_tier_stale(cr)) {
			CSTAT(cr->cache, tier_refused);
			request_fail(cr->req, R_TIER_CACHE_ONLY);
		}
		return STAGE_DONE;
	}
	CSTAT(cr->cache, tier_no_fill);
	cache_tier_no_store(cr, "tier-no-fill");
	return cache_l2_miss(cr); /* an L2 hit still answers; no lease is taken */
}

/* A GET with Range that the L1 could not answer goes upstream with its
 * Range. The origin's 206 is a part, which fills nothing (it is never
 * stored), so the request neither claims the key's fill nor takes its
 * lease, and no other request waits for it; the shared tier may still hold
 * the whole entry and answer its range. An origin that ignores the Range
 * sends the whole 200, stored in the L1 like any other. */
static bool cache_range_miss(struct cache_req *cr)
{
	const struct lv_head *hd = cr->req->head;
	if (hd->method != HTTP_GET || head_find(hd, LIT("range"), 0) < 0)
		return false;
	cr->range_miss = true;
	return true;
}

static int cache_stage(struct request *r)
{
	struct cache_req *cr = CR(r);
	cr->req = r;
	cr->cache = loop_cache(r->w);
	if (!cr->cache)
		return STAGE_NEXT; /* a loop without a cache (tests): nothing to do */
	struct cache *c = cr->cache;
	const struct lv_route *rt = r->route;
	/* every response is watched: a write on any route purges */
	r->observer = &cache_observer;
	if (!route_caches(rt))
		return STAGE_NEXT;
	cr->on = true;
	const struct lv_head *hd = r->head;
	if (cr->no_coalesce)
		return STAGE_NEXT; /* a woken waiter on its way upstream */
	if (hd->method != HTTP_GET && hd->method != HTTP_HEAD) {
		cache_status_set(cr, "fwd=bypass");
		return STAGE_NEXT; /* writes: no tier's cache mode concerns them */
	}
	cr->tm = r->tier_cache ? cache_tier_modes(r) : 0;
	/* what the cache must not answer: cache_admit_request() */
	struct cc_directives req_cc;
	cc_from_request(&req_cc, hd);
	if (cache_admit_request(rt, hd, &req_cc)) {
		cache_status_set(cr, "fwd=bypass");
		return cache_tier_bypass(cr);
	}
	/* What is not in the key must not reach the origin: fields that can
	 * change its answer (poisoning), and a GET's body. */
	const char *why = cache_make_key(r) ? cache_unkeyed(r) : "key-too-long";
	if (why) {
		cr->key = NULL; /* a bypass stores nothing */
		cr->key_len = 0;
		char st[64];
		snprintf(st, sizeof(st), "fwd=bypass; detail=%s", why);
		cache_status_set(cr, st);
		return cache_tier_bypass(cr);
	}
	const struct cache_publisher *pub = cache_publisher(c);
	enum inval_cache_mode mode = pub ? pub->mode() : INVAL_CACHE_ON;
	if (mode == INVAL_CACHE_OFF) {
		/* the outbox is full: invalidations are not reaching the other
		 * replicas, so nothing is served or stored until it drains */
		cache_status_set(cr, "fwd=bypass; detail=outbox-full");
		cr->bypass_store = true;
		return cache_tier_bypass(cr);
	}
	if (cr->tm & LV_CM_NO_FILL_OPTIONAL)
		cr->tier_no_store = true; /* decided before the lookup: a stale hit starts no refresh */
	if (cr->tm)
		cr->stale_epoch = purge_epoch(&c->purges); /* before the lookup: cache_tier_stale() */
	/* behind on invalidations: the L1 may hold what others purged */
	enum lookup_rc lk = mode == INVAL_CACHE_SKIP_L1 ? LK_MISS : cache_lookup(cr, "hit");
	if (lk == LK_HIT)
		return STAGE_DONE; /* answered and ended: r is gone */
	if (lk == LK_STALE_SERVED) {
		/* one refresh per key: if another request is already filling it,
		 * this one is not needed */
		if (cache_claim(cr, false) == CLAIM_BUSY) {
			request_finish(r);
			return STAGE_DONE;
		}
		return STAGE_NEXT;
	}
	cr->epoch = purge_epoch(&c->purges);
	cache_status_set(cr, "fwd=miss");
	if (cr->stale) {
		char st[32];
		snprintf(st, sizeof(st), "fwd=%s", cr->fwd);
		cache_status_set(cr, st);
	}
	if (cc_only_if_cached(&req_cc)) {
		/* RFC 9111 §5.2.1.7: nothing stored is usable, and the client
		 * forbade the upstream */
		request_fail(r, R_NOT_CACHED);
		return STAGE_DONE;
	}
	if (cr->tm & (LV_CM_CACHE_ONLY | LV_CM_NO_FILL_OPTIONAL))
		return cache_tier_miss(cr);
	if (pass_marked(&c->fills, cr->key, cr->key_len)) {
		/* hit-for-miss: the key's last answer could not be stored, so
		 * nobody waits for anybody; a storable answer ends it */
		cr->pass = true;
		CSTAT(c, pass_hits);
		return STAGE_NEXT;
	}
	if (cache_range_miss(cr))
		return cache_l2_miss(cr);
	if (hd->method == HTTP_GET) {
		/* skip-lease: never queue behind another request's fill */
		enum claim cl = cache_claim(cr, !(cr->tm & LV_CM_SKIP_LEASE));
		if (cl == CLAIM_WAITING)
			return STAGE_ASYNC; /* cache_wake() continues it */
		if (cl == CLAIM_BUSY)
			return cache_tier_no_wait(cr) ? STAGE_DONE : STAGE_NEXT;
	}
	return cache_l2_miss(cr); /* this process fills the key: ask the shared tier first */
}

/* ---- the response ------------------------------------------------------ */

/* A same-origin Location or Content-Location as a path, or NULL. */
static const char *same_origin_path(const struct lv_head *qh, const char *v, size_t *len)
{
	if (*len > 7 && strncasecmp(v, "http://", 7) == 0) {
		const char *a = v + 7, *slash = memchr(a, '/', *len - 7);
		size_t alen = slash ? (size_t)(slash - a) : *len - 7;
		if (alen != qh->authority_len || strncasecmp(a, qh->text + qh->authority_off, alen) != 0)
			return NULL; /* another origin: not ours to purge */
		*len = slash ? *len - 7 - alen : 1;
		return slash ? slash : "/";
	}
	return *len && v[0] == '/' ? v : NULL;
}

/* Purges what a successful write changed, here and in Redis, before the
 * client sees the answer; then hands the same items to the invalidate
 * thread, which broadcasts them to every replica:
 *  - the target, and same-origin Location and Content-Location (RFC 9111 §4.4);
 *  - the route's `invalidate` list, with {N} from its wildcards;
 *  - every tag the origin names in Surrogate-Key. */
static void cache_invalidate_write(struct cache_req *cr, const struct lv_head *resp)
{
	struct request *r = cr->req;
	struct cache *c = cr->cache;
	static __thread struct write_inval w;
	const char *svc = r->rt->policy->service;
	const struct lv_head *qh = r->head;
	write_inval_request(&w, r->route, qh, &r->caps);
	static const struct {
		const char *s;
		size_t l;
	} fields[] = {{LIT("location")}, {LIT("content-location")}};
	for (size_t k = 0; k < 2; k++) {
		int i = head_find(resp, fields[k].s, fields[k].l, 0);
		if (i < 0)
			continue;
		size_t len = resp->h[i].value_len;
		const char *v = same_origin_path(qh, resp->text + resp->h[i].value, &len);
		if (v)
			write_inval_add(&w, INVAL_KEY, v, len);
	}
	struct record_str tags[INVAL_ITEMS_MAX];
	unsigned nt = cache_surrogate_keys(resp, tags, INVAL_ITEMS_MAX);
	for (unsigned i = 0; i < nt; i++)
		write_inval_add(&w, INVAL_TAG, tags[i].p, tags[i].len);
	size_t n = 0;
	for (unsigned i = 0; i < w.n; i++)
		n += cache_purge_item(c, loop_l2(r->w), svc, &w.items[i], NULL, NULL, NULL);
	const struct cache_publisher *pub = cache_publisher(c);
	if (pub)
		pub->publish(w.items, w.n);
	if (n)
		log_debug("cache: write to %.*s purged %zu entries", (int)qh->target_len, qh->text + qh->target_off, n);
}

/* Cache-Status params of a revalidation that got a 304. */
static void cache_refresh_status(const struct cache_req *cr, enum refresh_rc rc, char *st, size_t cap)
{
	const char *detail = rc == REFRESH_MISMATCH ? "validator-mismatch"
	                     : rc == REFRESH_ERROR  ? "error"
	                     : cr->why > RF_NONE    ? cache_refusal_names[cr->why]
	                                            : "tier-no-store";
	if (rc == REFRESH_STORED)
		snprintf(st, cap, "fwd=%s; stored", cr->fwd); /* fwd-status=304: cache_status_line() */
	else
		snprintf(st, cap, "fwd=%s; detail=%s", cr->fwd, detail);
}

static void cache_response_takeover(struct cache_req *cr, const struct lv_head *resp)
{
	struct request *r = cr->req;
	if (cr->stale && resp->status == 304 && !cr->resent && (!cr->cond[0] || cr->refresh)) {
		/* a background (stale-while-revalidate) refresh, whose client
		 * has its answer, or the answer to the client's own
		 * conditionals, which goes on to the client: either way the 304
		 * updates the copy its validators select (RFC 9111 §4.3.4) */
		struct record_view v;
		size_t len;
		const void *val = l1_entry_value(cr->stale, &len);
		if (record_decode(val, len, &v) == RECORD_OK) {
			enum refresh_rc rc = cache_refresh_entry(cr, &v, resp, NULL);
			if (rc == REFRESH_STORED)
				CSTAT(cr->cache, revalidated);
			else
				log_debug("cache: a 304 left the entry as it was (%d)", (int)rc);
			char st[96];
			cache_refresh_status(cr, rc, st, sizeof(st));
			cache_status_set(cr, st);
		}
		cr->taken = true; /* nothing of it to store: the upstream's 304 is the client's */
		return;
	}
	if (!cr->stale || !r->conn)
		return;
	struct record_view v;
	size_t len;
	const void *val = l1_entry_value(cr->stale, &len);
	if (record_decode(val, len, &v) != RECORD_OK)
		return;
	int64_t now = (int64_t)(now_unix_ms() / 1000);
	if (resp->status == 304 && cr->cond[0]) {
		/* our own revalidation succeeded: merge the 304 into the copy,
		 * store it as a full response would be, and answer with the
		 * merged response; one that does not select the copy changes
		 * nothing and the copy answers as it is */
		char st[96];
		struct l1_entry *e = NULL;
		enum refresh_rc rc = cache_refresh_entry(cr, &v, resp, &e);
		if (rc == REFRESH_STORED)
			CSTAT(cr->cache, revalidated);
		cache_refresh_status(cr, rc, st, sizeof(st));
		cache_status_set(cr, st);
		struct record_view nv = v;
		size_t nlen;
		const void *nval = e ? l1_entry_value(e, &nlen) : NULL;
		if (!e || record_decode(nval, nlen, &nv) != RECORD_OK) {
			if (e)
				l1_entry_unref(e);
			e = l1_entry_ref(cr->stale);
			nv = v;
		}
		cr->taken = true;
		if (cache_write(cr, e, &nv, now))
			cache_release_client(cr);
		return;
	}
	if (resp->status >= 500 && cr->stale_state == FRESH_STALE_SIE) {
		CSTAT(cr->cache, stale_if_error);
		cache_status_set(cr, "hit; detail=stale-if-error");
		cr->taken = true;
		if (cache_write(cr, l1_entry_ref(cr->stale), &v, now))
			cache_release_client(cr);
	}
}

static void cache_request_end(struct cache_req *cr)
{
	if (!cr->cache)
		return;
	cache_l2_end(cr);
	if (cr->stale) {
		l1_entry_unref(cr->stale);
		cr->stale = NULL;
	}
	if (cr->capture) {
		evbuffer_free(cr->capture);
		cr->capture = NULL;
	}
	if (cr->store)
		cache_refused(cr->cache, RF_INCOMPLETE); /* it ended before its response did */
	cr->store = false;
	fill_finish(&cr->fill, FILL_FAILED);
}
