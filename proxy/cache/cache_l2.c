/*
 * cache_l2.c - the Redis tier in the cache stage: a request's L2 steps.
 * Below the stage (cache.c) and the store (store.c); over serve.c (an L2
 * hit is put into the L1 and answered like one). Opening a loop's Redis
 * tier is cache_loop.c's, the L2 half of a purge l2_purge.c's.
 *
 * On an L1 miss that this process is to fill (the stage has already joined or
 * started the in-process fill for the key):
 *
 *   l2_lookup ── hit ──▶ store in L1, answer (Cache-Status: hit; detail=l2)
 *       │ miss
 *       ▼
 *   l2_fill_begin ── won ──▶ upstream; the stored response is committed
 *       │ lost                to L2 under the lease (cache_l2_commit)
 *       ▼
 *   poll l2_lookup every L2_POLL_MS until lease_wait ── hit ──▶ answer
 *       │ still nothing
 *       ▼
 *   upstream without a lease (stored in L1 only)
 *
 * Redis trouble at any step (timeout, down, breaker open) sends the request
 * on to the upstream: a cache failure never becomes an error.
 *
 * Tags: every entry carries its URL tag (service + target: all hosts and
 * variants of the URL), one tag per '/'-terminated path prefix (so "/" covers
 * everything), and the route's cache_tags. They are computed the same way at
 * begin and at commit, so the generations read at begin line up with them.
 *
 * Lifetime: while an L2 operation is in flight (cr->l2_pending) the request
 * outlives its client (request_client_gone detaches it); each callback first
 * clears l2_pending and, if the client has gone, ends the request.
 */
#include <stdlib.h>
#include <string.h>

#include "cache/cache_l2.h"

#include "cache/cache_ctx.h"
#include "cache/cache_loop.h"
#include "cache/fill.h"
#include "cache/freshness.h"
#include "cache/l1.h"
#include "cache/l2.h"
#include "cache/l2_purge.h"
#include "cache/record.h"
#include "cache/serve.h"
#include "cache/tags.h"
#include "log.h"
#include "net/request.h"
#include "net/worker.h"

#define L2_POLL_MS 20
#define TAG_BUF (L2_MAX_TAGS * 256)

/* The tags of r's entry, in a fixed order; returns how many, and the bytes
 * of `buf` used in *used. */
static unsigned l2_tags_of(const struct request *r, char *buf, struct l2_str *tags, size_t *used)
{
	const struct lv_head *hd = r->head;
	const char *svc = r->rt->policy->service;
	const char *path = hd->text + hd->target_off;
	size_t o = 0;
	unsigned n = 0;
	/* the URL: "u:" service US target US, covering every host and variant */
	size_t ul = cache_url_tag(svc, path, hd->target_len, buf + o, TAG_BUF - o);
	if (ul) {
		tags[n++] = (struct l2_str){buf + o, ul};
		o += ul;
	}
	size_t lens[16];
	unsigned np = l2_prefix_lens(path, hd->path_len, lens, 16);
	for (unsigned i = 0; i < np && n < L2_MAX_TAGS - 8; i++) {
		size_t tl = l2_tag_prefix(svc, path, lens[i], buf + o, TAG_BUF - o);
		if (tl) {
			tags[n++] = (struct l2_str){buf + o, tl};
			o += tl;
		}
	}
	char rbuf[LV_HEADER_LIST_MAX * 4];
	struct record_str rt_tags[L2_MAX_TAGS];
	unsigned nr = cache_route_tags(r, rbuf, sizeof(rbuf), rt_tags, L2_MAX_TAGS - n);
	for (unsigned i = 0; i < nr; i++) {
		size_t w = l2_tag_key(svc, rt_tags[i].p, rt_tags[i].len, buf + o, TAG_BUF - o);
		if (w) {
			tags[n++] = (struct l2_str){buf + o, w};
			o += w;
		}
	}
	*used = o;
	return n;
}

/* Looks r's key up with the tags r's entry would have. */
static int l2_lookup_req(struct cache_req *cr, l2_lookup_cb cb)
{
	struct request *r = cr->req;
	char buf[TAG_BUF];
	struct l2_str tags[L2_MAX_TAGS];
	size_t used;
	unsigned n = l2_tags_of(r, buf, tags, &used);
	/* a purge pending now may land after this lookup is answered: the
	 * answer is checked against it too (purge_fenced) */
	cr->l2_fence_floor = purge_fence_floor(&cr->cache->purges);
	return l2_lookup_tags(loop_l2(r->w), cr->key, cr->key_len, tags, n, cb, cr);
}

static void l2_resume_upstream(struct cache_req *cr)
{
	if (cr->collapsed == CS_COLLAPSED_REUSED)
		cr->collapsed = CS_COLLAPSED_WENT; /* it waited, and goes upstream itself after all */
	request_resume(cr->req);
}

/* An L2 callback: the operation is over. False when the request ended
 * because its client left meanwhile. */
static bool l2_back(struct cache_req *cr)
{
	cr->l2_pending = false;
	if (cr->req->conn)
		return true;
	request_client_gone(cr->req);
	return false;
}

/* Answers from a copy of the Redis record that the L1 does not keep (too
 * large for any shard, a tier's stale or stretched copy, no-fill-optional):
 * this process's requests queued behind this one's fill read Redis too,
 * and are let go before the answer is, not at this request's end. */
static bool l2_answer_detached(struct cache_req *cr, const char *rec, size_t len, const char *how)
{
	fill_finish(&cr->fill, FILL_STORED_L2);
	struct l1_entry *e = l1_entry_detached(rec, len);
	return e && cache_answer(cr, e, how) == LK_HIT;
}

/* Puts an L2 record into L1 (when it is still fresh) and answers from it;
 * a record no L1 shard can hold is answered from a copy of its own. */
static bool l2_answer(struct cache_req *cr, const char *rec, size_t len)
{
	struct record_view v;
	if (record_decode(rec, len, &v) != RECORD_OK)
		return false;
	int64_t now_s = (int64_t)(now_unix_ms() / 1000);
	int64_t age = fresh_current_age(v.initial_age, v.response_time / 1000, now_s);
	int64_t left = v.lifetime - age;
	int64_t window = cache_keep_window(cr->req->route, v.swr, v.sie);
	const char *tagp[RECORD_MAX_TAGS];
	size_t tagl[RECORD_MAX_TAGS];
	unsigned nt = record_tag_list(&v, tagp, tagl, RECORD_MAX_TAGS);
	/* after a wait on another replica's lease, or on this process's fill
	 * that only Redis could hold, the answer is that fill's: RFC 9211
	 * collapsed, forwarded by the request that filled it */
	if (cr->l2_waiting)
		cr->collapsed = CS_COLLAPSED_REUSED;
	const char *how = cr->collapsed == CS_COLLAPSED_REUSED ? "fwd=miss; detail=l2" : "hit; detail=l2";
	/* a purge from this process may not have reached Redis yet: this
	 * entry may be what it removed */
	if (purge_fenced(&cr->cache->purges, cr->l2_fence_floor, cr->key, cr->key_len, tagp, tagl, nt)) {
		CSTAT(cr->cache, l2_fenced);
		return false;
	}
	if (left <= 0 && cr->tm) {
		/* a tier in force: a copy fresh under stretch-ttl, or one
		 * serve-stale lets answer, is answered from a copy of its own
		 * (its real lifetime is over: the L1 does not take it) */
		struct fresh_stored st = {.lifetime = v.lifetime};
		if ((cr->tm & LV_CM_STRETCH_TTL) && cache_tier_stale_ok(&v)) /* not what the origin forbade */
			fresh_stretch(&st, cr->req->tier_ttl_factor);
		if (st.lifetime - age > 0 || ((cr->tm & LV_CM_SERVE_STALE) && cache_tier_stale_ok(&v)))
			return l2_answer_detached(cr, rec, len, how);
	}
	if (left <= 0) {
		/* stale in L2: let the fill path refresh it, and keep the copy
		 * for a revalidation (a 304 refreshes it, here and in Redis),
		 * for a route that may fall back on it (from any replica's
		 * fill: the one this replica held may be gone), or for a tier
		 * that may answer with it (skip-lease, cache-only) */
		bool validators = v.etag.len || v.last_modified >= 0;
		if (validators || cr->tm || route_fallback_has(cr->req->route, LV_FB_STALE)) {
			struct l1_entry *e = l1_entry_detached(rec, len);
			if (e)
				cache_keep_stale(cr, e);
		}
		return false;
	}
	if (cr->tier_no_store) /* no-fill-optional: answered, but not put into the L1 */
		return l2_answer_detached(cr, rec, len, how);
	uint64_t expires = now_unix_ms() + (uint64_t)(left + window) * 1000u;
	switch (cache_put(cr, cr->epoch, rec, len, expires, NULL, 0, tagp, tagl, nt)) {
	case PUT_OK:
		fill_finish(&cr->fill, FILL_STORED); /* this process's waiters find it in the L1 */
		return cache_lookup(cr, how) == LK_HIT;
	case PUT_PURGED:
		return false; /* a purge landed since the miss: this may be what it removed */
	case PUT_TOO_BIG:
	case PUT_ERROR:
		break;
	}
	return l2_answer_detached(cr, rec, len, how); /* no L1 shard takes it */
}

/* Hit-for-miss learnt from Redis: another replica's fill of this key could
 * not be stored. Go upstream now, and let this replica's misses do the same. */
static void l2_pass(struct cache_req *cr)
{
	struct request *r = cr->req;
	CSTAT(cr->cache, pass_hits);
	cr->pass = true;
	pass_mark(&cr->cache->fills, cr->key, cr->key_len, r->rt->policy->cache.uncacheable_ttl_ms);
	l2_resume_upstream(cr);
}

static void l2_poll(evutil_socket_t fd, short what, void *arg);

/* cache-only, and neither tier had a copy it may answer with: the stale
 * copy kept on the way (L1 or L2) if a tier may serve it, else 503
 * tier-cache-only; the upstream is not asked. */
static void l2_tier_only_miss(struct cache_req *cr)
{
	if (cache_tier_stale(cr))
		return;
	CSTAT(cr->cache, tier_refused);
	request_fail(cr->req, R_TIER_CACHE_ONLY);
}

/* Redis failed this request: pass through, and store nothing, since no
 * lease or generation can vouch for a fill made without it. */
static void l2_bypass(struct cache_req *cr, const char *why)
{
	CSTAT(cr->cache, l2_errors);
	cr->bypass_store = true;
	char st[64];
	snprintf(st, sizeof(st), "fwd=bypass; detail=%s", why);
	cache_status_set(cr, st);
}

/* Looks again in L2_POLL_MS for another replica's fill. */
static void l2_schedule_poll(struct cache_req *cr)
{
	struct request *r = cr->req;
	cr->l2_pending = true;
	struct timeval tv = {0, L2_POLL_MS * 1000};
	if (event_base_once(r->w->base, -1, EV_TIMEOUT, l2_poll, cr, &tv) < 0) {
		cr->l2_pending = false;
		l2_resume_upstream(cr);
	}
}

static void l2_on_begin(struct l2 *l2, enum l2_err err, const struct l2_lease *lease, void *arg);

static void l2_on_lookup(struct l2 *l2, enum l2_err err, enum l2_lookup_res res, const char *rec, size_t len,
                         void *arg)
{
	struct cache_req *cr = arg;
	struct request *r = cr->req;
	if (!l2_back(cr))
		return;
	if (err != L2_ENONE && (cr->tm & LV_CM_CACHE_ONLY)) {
		CSTAT(cr->cache, l2_errors);
		l2_tier_only_miss(cr);
		return;
	}
	if (err != L2_ENONE) {
		l2_bypass(cr, "redis-error");
		l2_resume_upstream(cr);
		return;
	}
	struct cache *cache = cr->cache; /* a hit ends the request: r and cr go */
	if (res == L2_HIT && l2_answer(cr, rec, len)) {
		CSTAT(cache, l2_hits);
		return;
	}
	if (cr->tm & LV_CM_CACHE_ONLY) {
		/* nothing usable in either tier (or Redis failed): refuse */
		l2_tier_only_miss(cr);
		return;
	}
	if (res == L2_PASS) {
		l2_pass(cr);
		return;
	}
	if (cr->tier_no_store || cr->range_miss) {
		l2_resume_upstream(cr); /* no-fill-optional, or a Range miss: no lease */
		return;
	}
	if (cr->l2_waiting) {
		/* another replica holds the lease: keep looking until lease_wait */
		if (now_us() >= cr->l2_wait_until) {
			CSTAT(cr->cache, lease_wait_timeouts);
			cr->collapsed = CS_COLLAPSED_WENT;
			/* the other replica's fill is late: a stale copy where the
			 * route or origin allows one, else go upstream ourselves */
			if (cache_fail_takeover(cr, R_UP_TIMEOUT))
				return;
			l2_resume_upstream(cr);
			return;
		}
		l2_schedule_poll(cr);
		return;
	}
	CSTAT(cr->cache, l2_misses);
	char buf[TAG_BUF];
	struct l2_str tags[L2_MAX_TAGS];
	size_t used;
	unsigned n = l2_tags_of(r, buf, tags, &used);
	cr->l2_pending = true;
	if (l2_fill_begin(l2, cr->key, cr->key_len, tags, n, r->rt->policy->redis.lease_ms, l2_on_begin, cr) !=
	    LV_OK) {
		cr->l2_pending = false;
		l2_resume_upstream(cr);
	}
}

static void l2_poll(evutil_socket_t fd, short what, void *arg)
{
	struct cache_req *cr = arg;
	if (!l2_back(cr))
		return;
	cr->l2_pending = true;
	if (l2_lookup_req(cr, l2_on_lookup) != LV_OK) {
		cr->l2_pending = false;
		l2_resume_upstream(cr);
	}
}

static void l2_on_begin(struct l2 *l2, enum l2_err err, const struct l2_lease *lease, void *arg)
{
	struct cache_req *cr = arg;
	struct request *r = cr->req;
	if (err == L2_ENONE && lease && lease->won) {
		cr->lease = *lease; /* held until commit or cache_l2_end */
		cr->l2_lease = true;
	}
	if (!l2_back(cr))
		return;
	if (err != L2_ENONE) {
		l2_bypass(cr, "redis-error");
		l2_resume_upstream(cr);
		return;
	}
	if (cr->l2_lease) {
		l2_resume_upstream(cr);
		return;
	}
	if (lease->pass) {
		l2_pass(cr);
		return;
	}
	if (cr->tm & LV_CM_SKIP_LEASE) {
		/* skip-lease: another replica fills it; do not wait */
		if (!cache_tier_no_wait(cr))
			l2_resume_upstream(cr);
		return;
	}
	/* lost: wait for the holder's entry */
	CSTAT(cr->cache, lease_waits);
	cr->l2_waiting = true;
	cr->l2_wait_until = now_us() + r->rt->policy->redis.lease_wait_ms * 1000u;
	l2_schedule_poll(cr);
}

int cache_l2_miss(struct cache_req *cr)
{
	struct request *r = cr->req;
	struct l2 *l2 = loop_l2(r->w);
	if (!l2 || !cr->key || r->head->method != HTTP_GET)
		return STAGE_NEXT;
	if (!redis_available(loop_redis(r->w))) {
		l2_bypass(cr, "redis-down");
		return STAGE_NEXT;
	}
	cr->l2_pending = true;
	if (l2_lookup_req(cr, l2_on_lookup) != LV_OK) {
		cr->l2_pending = false;
		return STAGE_NEXT;
	}
	return STAGE_ASYNC;
}

/* ---- after the fill ---------------------------------------------------- */

struct l2_after {
	struct cache *cache;
	struct cache_fill *fill; /* waiters to wake once Redis answered (an L2-only store) */
	uint32_t klen;
	char key[];
};

static void l2_on_commit(struct l2 *l2, enum l2_err err, enum l2_commit_res res, void *arg)
{
	struct l2_after *a = arg;
	bool stored = err == L2_ENONE && res == L2_COMMIT_STORED;
	if (!stored) {
		CSTAT(a->cache, l2_commit_refused);
		if (err == L2_ENONE && res == L2_COMMIT_PURGED) {
			/* another replica purged the key while we filled: what we
			 * just put in L1 predates that purge, its variant slot too */
			cache_forget_key(a->cache->l1, a->key, a->klen);
		}
	}
	fill_finish_detached(a->fill, stored ? FILL_STORED_L2 : FILL_FAILED);
	if (stored) /* counted once no request can queue behind the fill any more */
		CSTAT(a->cache, l2_commits);
	free(a);
}

static void l2_on_abort(struct l2 *l2, enum l2_err err, long long value, void *arg)
{
}

bool cache_l2_commit(struct cache_req *cr, const void *rec, size_t len, uint64_t ttl_ms, struct cache_fill *f)
{
	struct request *r = cr->req;
	if (!cr->l2_lease || !loop_l2(r->w)) {
		fill_finish_detached(f, FILL_FAILED);
		return false;
	}
	cr->l2_lease = false;
	char buf[TAG_BUF];
	struct l2_str tags[L2_MAX_TAGS];
	size_t o;
	unsigned n = l2_tags_of(r, buf, tags, &o);
	/* late tags: the record's own (Surrogate-Key, route), after the ones
	 * the lease's generations were read for */
	struct record_view v;
	if (record_decode(rec, len, &v) == RECORD_OK) {
		struct record_cursor c = {0};
		struct record_str t;
		const char *svc = r->rt->policy->service;
		while (n < L2_MAX_TAGS && record_next_tag(&v, &c, &t)) {
			size_t w = l2_tag_key(svc, t.p, t.len, buf + o, TAG_BUF - o);
			if (w) {
				tags[n++] = (struct l2_str){buf + o, w};
				o += w;
			}
		}
	}
	struct l2_after *a = malloc(sizeof(*a) + cr->key_len);
	if (!a) {
		fill_finish_detached(f, FILL_FAILED);
		return false; /* the lease expires by itself */
	}
	a->cache = cr->cache;
	a->fill = f;
	a->klen = cr->key_len;
	memcpy(a->key, cr->key, cr->key_len);
	if (l2_fill_commit(loop_l2(r->w), cr->key, cr->key_len, &cr->lease, tags, n, rec, len, ttl_ms ? ttl_ms : 1,
	                   l2_on_commit, a) != LV_OK) {
		fill_finish_detached(f, FILL_FAILED);
		free(a);
		return false;
	}
	return true;
}

static void l2_on_pass(struct l2 *l2, enum l2_err err, long long value, void *arg)
{
}

void cache_l2_pass(struct cache_req *cr)
{
	struct request *r = cr->req;
	uint64_t ttl = r->rt->policy->cache.uncacheable_ttl_ms;
	struct l2 *l2 = loop_l2(r->w);
	if (!l2 || !cr->key || cr->bypass_store)
		return;
	if (!ttl) {
		cache_l2_end(cr); /* no marker: just give the lease back */
		return;
	}
	/* the marker replaces our lease, or takes the place of none: either
	 * way the lease is no longer ours to release */
	if (l2_fill_pass(l2, cr->key, cr->key_len, cr->l2_lease ? &cr->lease : NULL, ttl, l2_on_pass, NULL) != LV_OK)
		log_debug("cache: could not set a hit-for-miss marker");
	cr->l2_lease = false;
}

void cache_l2_pass_clear(struct cache_req *cr)
{
	struct request *r = cr->req;
	if (loop_l2(r->w) && cr->key && l2_pass_clear(loop_l2(r->w), cr->key, cr->key_len, l2_on_pass, NULL) != LV_OK)
		log_debug("cache: could not clear a hit-for-miss marker");
}

void cache_l2_end(struct cache_req *cr)
{
	struct request *r = cr->req;
	if (!cr->l2_lease || !loop_l2(r->w))
		return;
	cr->l2_lease = false;
	if (l2_fill_abort(loop_l2(r->w), cr->key, cr->key_len, &cr->lease, l2_on_abort, NULL) != LV_OK)
		log_debug("cache: could not release a lease; it expires by itself");
}
