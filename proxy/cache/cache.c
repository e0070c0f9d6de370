/*
 * cache.c - the cache stage: keys, lookup, hits, revalidation answers, and
 * the purges a write makes. Coalescing and hit-for-miss are in fill.c, the
 * store of a fill's response in store.c, the Redis tier's steps in
 * cache_l2.c.
 *
 * Invariants:
 *  - Only GET responses are stored; HEAD and conditional GETs are answered
 *    from them.
 *  - A stored entry is never served past what fresh_state() allows.
 *  - Every request that touched the cache ends through cache_request_end(),
 *    which releases what it holds (a stale copy, a capture, its fill, its
 *    lease).
 *  - Hits are written zero-copy: the client's output buffer references the
 *    L1 entry's body and holds a reference on the entry until it is sent.
 */
#include "cache/cache.h"

#include <event2/buffer.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cache/cache_internal.h"
#include "cache/freshness.h"
#include "cache/key.h"
#include "cache/l1.h"
#include "cache/record.h"
#include "log.h"
#include "net/conn.h"
#include "net/headers.h"
#include "net/wbuf.h"
#include "net/request.h"


struct l1 *cache_l1;
struct cache_stats cstats;

uint64_t cache_unix_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static uint64_t l1_clock(void *ctx)
{
	return cache_unix_ms();
}

int cache_init(const struct lv_policy *p)
{
	fill_init();
	/* every host and variant of one URL (service, target) in one shard:
	 * the purge a write makes visits one shard, not all */
	struct l1_config cfg = {.max_bytes = p->cache.memory, .now_ms = l1_clock, .group_fields = 2,
	                        .group_sep = KEY_SEP};
	cache_l1 = l1_new(&cfg);
	return cache_l1 ? LV_OK : LV_ERR;
}

void cache_shutdown(void)
{
	cache_purge_retry_clear();
	l1_free(cache_l1);
	cache_l1 = NULL;
}

/* ---- Cache-Status (RFC 9211) ------------------------------------------- */

static _Atomic(const struct cache_publisher *) cache_pub;

void cache_set_publisher(const struct cache_publisher *pub)
{
	atomic_store_explicit(&cache_pub, pub, memory_order_release);
}

void cache_status_set(struct request *r, const char *params)
{
	struct cache_req *cr = CR(r);
	snprintf(cr->status, sizeof(cr->status), "Cache-Status: levee; %s\r\n", params);
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
	const struct lv_policy *p = r->rt->policy;
	size_t n = key_build(p->service, hd, r->route->cache_key_headers, out, hd->cap - hd->len);
	/* a trusted hop's X-Forwarded-Proto goes upstream (http and https
	 * answers may differ: absolute links, redirects), so it is keyed */
	if (n && p->trust_forwarded && !strstr(r->route->cache_key_headers, "x-forwarded-proto"))
		n = key_add_field(hd, LIT("x-forwarded-proto"), out, n, hd->cap - hd->len);
	if (!n)
		return false;
	cr->key = out;
	cr->key_len = (uint32_t)n;
	hd->len += (uint32_t)n;
	return true;
}

/* ---- the route's tags ------------------------------------------------- */

unsigned cache_surrogate_keys(const struct lv_head *resp, struct record_str *out, unsigned max)
{
	unsigned n = 0;
	int sk = head_find(resp, LIT("surrogate-key"), 0);
	if (sk < 0)
		return 0;
	const char *s = resp->text + resp->h[sk].value, *end = s + resp->h[sk].value_len;
	while (s < end && n < max) {
		while (s < end && (*s == ' ' || *s == '\t'))
			s++;
		const char *t = s;
		while (s < end && *s != ' ' && *s != '\t')
			s++;
		if (s > t)
			out[n++] = (struct record_str){t, (uint32_t)(s - t)};
	}
	return n;
}

/* Writes template `t` (tl bytes) with {N} replaced by the route's wildcard
 * N into buf; its length, or 0 when it names a wildcard the path did not
 * fill or does not fit. */
static size_t cache_expand(const struct request *r, const char *t, size_t tl, char *buf, size_t cap)
{
	const char *path = r->head->text + r->head->target_off;
	size_t o = 0;
	for (size_t i = 0; i < tl; i++) {
		if (t[i] == '{' && i + 2 < tl && t[i + 2] == '}') {
			int ci = t[i + 1] - '1';
			if (ci < 0 || ci >= r->caps.n || o + r->caps.c[ci].len >= cap)
				return 0;
			memcpy(buf + o, path + r->caps.c[ci].off, r->caps.c[ci].len);
			o += r->caps.c[ci].len;
			i += 2;
		} else if (o < cap) {
			buf[o++] = t[i];
		} else {
			return 0;
		}
	}
	return o;
}

unsigned cache_route_tags(const struct request *r, char *buf, size_t cap, struct record_str *out, unsigned max)
{
	size_t ro = 0;
	unsigned n = 0;
	for (const char *t = r->route->cache_tags; *t && n < max;) {
		const char *e = strchr(t, ',');
		size_t tl = e ? (size_t)(e - t) : strlen(t);
		/* a tag naming a wildcard the path did not fill is left out */
		size_t w = cache_expand(r, t, tl, buf + ro, cap - ro);
		if (w)
			out[n++] = (struct record_str){buf + ro, (uint32_t)w};
		ro += w;
		t = e ? e + 1 : t + tl;
	}
	return n;
}

/* ---- lookup ------------------------------------------------------------ */

/* Whether a decoded record answers r's Vary values; with *sec the request's
 * own values for the record's Vary names (*sl 0 when they do not fit). */
static bool vary_matches(const struct request *r, const struct record_view *v, char *sec, size_t *sl)
{
	*sl = 0;
	if (v->nvary == 0)
		return true;
	struct record_cursor cur = {0};
	struct record_str names, values;
	if (!record_next_vary(v, &cur, &names, &values))
		return false;
	*sl = vary_secondary_key(r->head, names.p, names.len, sec, VARY_KEY_MAX);
	return *sl && *sl == values.len && memcmp(sec, values.p, *sl) == 0;
}

/* Returns a referenced entry whose record matches the request's Vary
 * values, with its decoded view, or NULL. */
static struct l1_entry *cache_find(struct request *r, struct record_view *v)
{
	struct cache_req *cr = CR(r);
	struct l1_entry *e = l1_get(cache_l1, cr->key, cr->key_len);
	for (int round = 0; e && round < 2; round++) {
		size_t len;
		const void *val = l1_entry_value(e, &len);
		if (record_decode(val, len, v) != RECORD_OK) {
			l1_entry_unref(e);
			return NULL;
		}
		char sec[VARY_KEY_MAX];
		size_t sl;
		if (vary_matches(r, v, sec, &sl))
			return e;
		l1_entry_unref(e);
		e = NULL;
		char k2[KEY_MAX];
		size_t n2 = round == 0 ? cache_variant_key(r, sec, sl, k2) : 0;
		if (n2)
			e = l1_get(cache_l1, k2, n2);
	}
	if (e)
		l1_entry_unref(e);
	return NULL;
}

static const struct fresh_stored *stored_of(const struct record_view *v, struct fresh_stored *st)
{
	st->response_time = v->response_time / 1000;
	st->initial_age = v->initial_age;
	st->lifetime = v->lifetime;
	st->swr = v->swr;
	st->sie = v->sie;
	st->must_revalidate = v->flags & RECORD_F_MUST_REVALIDATE;
	st->no_cache = v->flags & RECORD_F_NO_CACHE;
	return st;
}

/* Fields a 304 carries (RFC 9110 §15.4.5). */
static bool field_in_304(const struct record_str *n)
{
	static const struct {
		const char *s;
		size_t l;
	} keep[] = {{LIT("cache-control")}, {LIT("content-location")}, {LIT("date")}, {LIT("etag")},
	            {LIT("expires")},       {LIT("vary")},             {LIT("last-modified")}};
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		if (token_eq(n->p, n->len, keep[i].s, keep[i].l))
			return true;
	return false;
}

static void entry_unref_cb(const void *data, size_t len, void *arg)
{
	l1_entry_unref(arg);
}

/* Writes a stored response to r's client. Takes over the reference on `e`.
 * Returns false when the request already ended (client gone, or levee's own
 * error sent instead). */
static bool cache_write(struct request *r, struct l1_entry *e, const struct record_view *v, int64_t now)
{
	struct conn *c = r->conn;
	const struct lv_head *qh = r->head;
	bool not_modified = cond_has_conditionals(qh) &&
	                    cond_not_modified(qh, v->etag.p, v->etag.len, v->last_modified);
	int status = not_modified ? 304 : v->status;
	bool body = !not_modified && qh->method != HTTP_HEAD && v->body_len;
	bool client_10 = qh->minor == 0;
	bool close = !conn_can_continue(c, qh, r->body_done);
	struct evbuffer *out = conn_output(c);
	struct wb w;
	/* the head: the stored fields (the record less its body) and ours */
	if (!wb_begin(&w, out, v->size - v->body_len + 1024)) {
		l1_entry_unref(e);
		request_fail(r, R_INTERNAL);
		return false;
	}
	WB_LIT(&w, "HTTP/1.1 ");
	wb_u64(&w, (uint64_t)status);
	WB_LIT(&w, " ");
	wb_str(&w, http_status_phrase(status));
	WB_LIT(&w, "\r\n");
	struct record_cursor cur = {0};
	struct record_hdr h;
	while (record_next_hdr(v, &cur, &h)) {
		if (not_modified && !field_in_304(&h.name))
			continue;
		wb_put(&w, h.name.p, h.name.len);
		WB_LIT(&w, ": ");
		wb_put(&w, h.value.p, h.value.len);
		WB_LIT(&w, "\r\n");
	}
	WB_LIT(&w, "Age: ");
	int64_t age = fresh_current_age(v->initial_age, v->response_time / 1000, now);
	wb_u64(&w, (uint64_t)(age > 0 ? age : 0));
	WB_LIT(&w, "\r\nVia: 1.1 levee\r\nX-Request-Id: ");
	wb_str(&w, r->id);
	WB_LIT(&w, "\r\n");
	wb_str(&w, CR(r)->status);
	if (!not_modified && (v->status >= 200 && v->status != 204)) {
		WB_LIT(&w, "Content-Length: ");
		wb_u64(&w, v->body_len);
		WB_LIT(&w, "\r\n");
	}
	if (close)
		WB_LIT(&w, "Connection: close\r\n");
	else if (client_10)
		WB_LIT(&w, "Connection: keep-alive\r\n");
	WB_LIT(&w, "\r\n");
	int n = wb_end(&w);
	if (n < 0) {
		l1_entry_unref(e);
		request_fail(r, R_INTERNAL);
		return false;
	}
	if (close)
		c->close_after = true;
	r->bytes_out += (uint64_t)n;
	if (body && evbuffer_add_reference(out, v->body, v->body_len, entry_unref_cb, e) == 0) {
		r->bytes_out += v->body_len;
		e = NULL; /* the buffer holds the reference now */
	}
	if (e)
		l1_entry_unref(e);
	if (not_modified)
		CSTAT(not_modified);
	r->status = status;
	/* the client's answer has started; r->resp_head stays the upstream's
	 * (a stale answer while the upstream still owes its head) */
	r->resp_started = true;
	if (!conn_flush(c)) {
		request_client_gone(r);
		return false;
	}
	return true;
}

static void cache_serve(struct request *r, struct l1_entry *e, const struct record_view *v, int64_t now)
{
	if (cache_write(r, e, v, now))
		request_finish(r);
}

/* The client has its answer (from the cache); the request goes on without
 * it, to refresh or drain what the upstream sends. */
static void cache_release_client(struct request *r)
{
	struct conn *c = r->conn;
	if (!c)
		return;
	c->req = NULL;
	r->conn = NULL;
	r->background = true; /* answered; a refresh goes on without the client */
	conn_request_done(c);
}


/* Adds the stored validators to the upstream request, unless the client sent
 * conditionals of its own (then its 304 or 200 is the client's to judge). */
static void cache_add_validators(struct request *r, const struct record_view *v)
{
	struct cache_req *cr = CR(r);
	if (cond_has_conditionals(r->head))
		return;
	size_t o = 0;
	if (v->etag.len && v->etag.len < 200)
		o += (size_t)snprintf(cr->cond + o, sizeof(cr->cond) - o, "If-None-Match: %.*s\r\n",
		                      (int)v->etag.len, v->etag.p);
	if (v->last_modified >= 0) {
		char d[32];
		http_date_format(v->last_modified, d);
		o += (size_t)snprintf(cr->cond + o, sizeof(cr->cond) - o, "If-Modified-Since: %s\r\n", d);
	}
	if (o)
		r->up_extra = cr->cond;
}

/* Answers r from entry <e> (referenced, decoded as <v>); see cache_lookup. */
static enum lookup cache_answer_view(struct request *r, struct l1_entry *e, const struct record_view *v,
                                     const char *how)
{
	struct cache_req *cr = CR(r);
	struct cc_directives req_cc;
	cc_from_request(&req_cc, r->head);
	struct fresh_stored st;
	int64_t now = (int64_t)(cache_unix_ms() / 1000);
	enum fresh_state fs = fresh_state(stored_of(v, &st), &req_cc, now);
	if (fs == FRESH_OK) {
		CSTAT(hits);
		cache_status_set(r, how);
		cache_serve(r, e, v, now);
		return LK_HIT;
	}
	if (fs == FRESH_STALE_SWR && r->conn) {
		CSTAT(hits);
		CSTAT(stale_hits);
		cache_status_set(r, "hit; detail=stale");
		if (!cache_write(r, e, v, now))
			return LK_HIT; /* the request has ended */
		cache_release_client(r);
		r->resp_started = false;
		cr->refresh = true;
		cr->epoch = purge_epoch();
		return LK_STALE_SERVED;
	}
	/* stale: revalidate upstream; keep the copy for a 304 or for errors.
	 * RFC 9211 tells apart a stored response that is stale from one the
	 * request's own directives (no-cache, max-age) would not accept. */
	cr->fwd = fresh_state(&st, NULL, now) == FRESH_OK ? "request" : "stale";
	cache_add_validators(r, v);
	if (cr->stale)
		l1_entry_unref(cr->stale);
	cr->stale = e;
	cr->stale_state = fs;
	return LK_MISS;
}

/* Looks the request up. LK_HIT: answered and ended. LK_STALE_SERVED: the
 * client got a stale copy (stale-while-revalidate) and was released; the
 * request should go on as the refresh. LK_MISS: go upstream; CR(r)->stale may
 * hold a stale copy for revalidation or stale-if-error. */
enum lookup cache_lookup(struct request *r, const char *how)
{
	struct record_view v;
	struct l1_entry *e = cache_find(r, &v);
	if (!e)
		return LK_MISS;
	return cache_answer_view(r, e, &v, how);
}

enum lookup cache_answer(struct request *r, struct l1_entry *e, const char *how)
{
	struct record_view v;
	size_t len;
	const void *val = l1_entry_value(e, &len);
	char sec[VARY_KEY_MAX];
	size_t sl;
	if (record_decode(val, len, &v) != RECORD_OK || !vary_matches(r, &v, sec, &sl)) {
		l1_entry_unref(e);
		return LK_MISS;
	}
	return cache_answer_view(r, e, &v, how);
}

/* ---- the stage --------------------------------------------------------- */

static bool has_field(const struct lv_head *hd, const char *n, size_t l)
{
	return head_find(hd, n, l, 0) >= 0;
}

/* Applies the route's unkeyed_headers and get_body to a cacheable request:
 * NULL when it may use the cache (r->strip_unkeyed and r->body_discard set as
 * needed), else the detail of its bypass. */
static const char *cache_unkeyed(struct request *r)
{
	const struct lv_route *rt = r->route;
	const struct lv_head *hd = r->head;
	if (r->body != BODY_NONE) {
		if (rt->get_body == LV_GET_BODY_BYPASS)
			return "request-body";
		r->body_discard = true; /* read and dropped: it never reaches the origin */
	}
	if (rt->unkeyed_headers == LV_UNKEYED_FORWARD)
		return NULL;
	if (rt->unkeyed_headers == LV_UNKEYED_BYPASS) {
		for (uint32_t i = 0; i < hd->n; i++)
			if (headers_unkeyed_risk(hd, (int)i) && !headers_listed(hd, (int)i, rt->cache_key_headers))
				return "unkeyed-header";
	}
	r->strip_unkeyed = true;
	return NULL;
}

/* ---- the observer and the stage ----------------------------------------- */

/* Cache-Status goes on the upstream's answer on a caching route. */
static void cache_status_extra(struct request *r)
{
	struct cache_req *cr = CR(r);
	r->resp_extra = cr->on && cr->status[0] ? cr->status : NULL;
}

static void cache_observe_head(struct request *r, const struct lv_head *resp)
{
	/* a 304 to levee's own revalidation, or an error while a stale copy
	 * may be served: the cache answers the client, this response only
	 * refreshes (or is drained) */
	cache_response_takeover(r, resp);
	cache_response_head(r, resp);
	r->resp_keep_head = CR(r)->on;
	cache_status_extra(r);
}

static void cache_observe_end(struct request *r, const struct lv_head *resp)
{
	cache_response_end(r, resp);
	cache_status_extra(r);
}

static struct evbuffer *cache_held_body(struct request *r)
{
	return CR(r)->capture;
}

static const struct response_observer cache_observer = {
    .head = cache_observe_head,
    .body = cache_response_body,
    .body_bytes = cache_response_body_bytes,
    .end = cache_observe_end,
    .held_body = cache_held_body,
};

static bool cache_stage_end(struct request *r)
{
	cache_request_end(r);
	return false;
}

/* The client left: a fill or Redis answer still on its way to the request
 * ends it when it comes (a waiter of a stopping worker is not woken). */
static bool cache_client_gone(struct request *r)
{
	const struct cache_req *cr = CR(r);
	return !cr->l2_pending && !(cr->waiting && !r->w->closing);
}

const struct stage cache_stage_def = {
    .name = "cache",
    .state_size = sizeof(struct cache_req),
    .run = cache_stage,
    .fail = cache_fail_takeover,
    .end = cache_stage_end,
    .client_gone = cache_client_gone,
};

int cache_stage(struct request *r)
{
	struct cache_req *cr = CR(r);
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
		cache_status_set(r, "fwd=bypass");
		return STAGE_NEXT;
	}
	/* Requests the cache must not answer: cookies (unless the route
	 * allows them), and method overrides, which some frameworks honour
	 * and would turn this GET into a write. Credentials do not bypass:
	 * whatever is stored was allowed to be shared, and RFC 9111 §3.5
	 * decides whether an answer to a request with Authorization is. */
	struct cc_directives req_cc;
	cc_from_request(&req_cc, hd);
	if ((!rt->cache_cookies && has_field(hd, LIT("cookie"))) ||
	    has_field(hd, LIT("x-http-method-override")) || has_field(hd, LIT("x-http-method")) ||
	    has_field(hd, LIT("x-method-override")) || (req_cc.flags & CC_NO_STORE)) {
		CSTAT(bypasses);
		cache_status_set(r, "fwd=bypass");
		return STAGE_NEXT;
	}
	/* What is not in the key must not reach the origin: fields that can
	 * change its answer (poisoning), and a GET's body. */
	const char *why = cache_make_key(r) ? cache_unkeyed(r) : "key-too-long";
	if (why) {
		cr->key = NULL; /* a bypass stores nothing */
		cr->key_len = 0;
		CSTAT(bypasses);
		char st[64];
		snprintf(st, sizeof(st), "fwd=bypass; detail=%s", why);
		cache_status_set(r, st);
		return STAGE_NEXT;
	}
	const struct cache_publisher *pub = atomic_load_explicit(&cache_pub, memory_order_acquire);
	enum inval_cache_mode mode = pub ? pub->mode() : INVAL_CACHE_ON;
	if (mode == INVAL_CACHE_OFF) {
		/* the outbox is full: invalidations are not reaching the other
		 * replicas, so nothing is served or stored until it drains */
		CSTAT(bypasses);
		cache_status_set(r, "fwd=bypass; detail=outbox-full");
		cr->bypass_store = true;
		return STAGE_NEXT;
	}
	/* behind on invalidations: the L1 may hold what others purged */
	enum lookup lk = mode == INVAL_CACHE_SKIP_L1 ? LK_MISS : cache_lookup(r, "hit");
	if (lk == LK_HIT)
		return STAGE_DONE;
	if (lk == LK_STALE_SERVED) {
		/* one refresh per key: if another request is already filling it,
		 * this one is not needed */
		if (fill_claim(r, false) == CLAIM_BUSY) {
			request_finish(r);
			return STAGE_DONE;
		}
		return STAGE_NEXT;
	}
	CSTAT(misses);
	cr->epoch = purge_epoch();
	cache_status_set(r, "fwd=miss");
	if (cr->stale) {
		char st[32];
		snprintf(st, sizeof(st), "fwd=%s", cr->fwd);
		cache_status_set(r, st);
	}
	if (cc_only_if_cached(&req_cc)) {
		/* RFC 9111 §5.2.1.7: nothing stored is usable, and the client
		 * forbade the upstream */
		request_fail(r, R_NOT_CACHED);
		return STAGE_DONE;
	}
	if (pass_marked(cr->key, cr->key_len)) {
		/* hit-for-miss: the key's last answer could not be stored, so
		 * nobody waits for anybody; a storable answer ends it */
		cr->pass = true;
		CSTAT(pass_hits);
		return STAGE_NEXT;
	}
	if (hd->method == HTTP_GET && fill_claim(r, true) == CLAIM_WAITING)
		return STAGE_ASYNC; /* cache_wake() continues it */
	return cache_l2_miss(r); /* this process fills the key: ask the shared tier first */
}

/* ---- the response ------------------------------------------------------ */

#define INVAL_ITEMS_MAX 64
#define INVAL_TEXT_MAX 16384

/* What one write invalidates, gathered before it is purged and published. */
struct write_inval {
	unsigned n;
	size_t used;
	struct inval_item items[INVAL_ITEMS_MAX];
	char text[INVAL_TEXT_MAX];
};

static void inval_add(struct write_inval *w, enum inval_kind kind, const char *p, size_t len)
{
	if (!len || w->n == INVAL_ITEMS_MAX || w->used + len > sizeof(w->text)) {
		log_warn("cache: a write invalidates more than levee tracks (%u items); the rest is not purged",
		         INVAL_ITEMS_MAX);
		return;
	}
	for (unsigned i = 0; i < w->n; i++)
		if (w->items[i].kind == kind && w->items[i].len == len && memcmp(w->items[i].p, p, len) == 0)
			return;
	memcpy(w->text + w->used, p, len);
	w->items[w->n++] = (struct inval_item){kind, w->text + w->used, len};
	w->used += len;
}

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
void cache_invalidate_write(struct request *r, const struct lv_head *resp)
{
	static __thread struct write_inval w;
	const char *svc = r->rt->policy->service;
	const struct lv_head *qh = r->head;
	w.n = 0;
	w.used = 0;
	inval_add(&w, INVAL_KEY, qh->text + qh->target_off, qh->target_len);
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
			inval_add(&w, INVAL_KEY, v, len);
	}
	for (const char *t = r->route ? r->route->invalidate : ""; *t;) {
		const char *e = strchr(t, ',');
		size_t tl = e ? (size_t)(e - t) : strlen(t);
		char buf[LV_INVALIDATE_MAX + 2048];
		bool tag = tl > 4 && memcmp(t, "tag:", 4) == 0;
		size_t keep = tl;
		bool prefix = !tag && route_purge_shape(t, tl, &keep) != LV_PURGE_URL;
		size_t n = tag ? cache_expand(r, t + 4, tl - 4, buf, sizeof(buf))
		               : cache_expand(r, t, keep, buf, sizeof(buf));
		if (n)
			inval_add(&w, tag ? INVAL_TAG : prefix ? INVAL_PREFIX : INVAL_KEY, buf, n);
		t = e ? e + 1 : t + tl;
	}
	struct record_str tags[INVAL_ITEMS_MAX];
	unsigned nt = cache_surrogate_keys(resp, tags, INVAL_ITEMS_MAX);
	for (unsigned i = 0; i < nt; i++)
		inval_add(&w, INVAL_TAG, tags[i].p, tags[i].len);
	static const enum cache_purge_kind kinds[] = {
	    [INVAL_KEY] = CACHE_PURGE_URL, [INVAL_PREFIX] = CACHE_PURGE_PREFIX,
	    [INVAL_TAG] = CACHE_PURGE_TAG, [INVAL_ALL] = CACHE_PURGE_ALL};
	size_t n = 0;
	for (unsigned i = 0; i < w.n; i++)
		n += cache_purge(loop_l2(r->w), kinds[w.items[i].kind], svc, w.items[i].p, w.items[i].len, NULL, NULL, NULL);
	const struct cache_publisher *pub = atomic_load_explicit(&cache_pub, memory_order_acquire);
	if (pub)
		pub->publish(w.items, w.n);
	if (n)
		log_debug("cache: write to %.*s purged %zu entries", (int)qh->target_len, qh->text + qh->target_off, n);
}

void cache_response_takeover(struct request *r, const struct lv_head *resp)
{
	struct cache_req *cr = CR(r);
	if (!cr->stale || !r->conn)
		return;
	struct record_view v;
	size_t len;
	const void *val = l1_entry_value(cr->stale, &len);
	if (record_decode(val, len, &v) != RECORD_OK)
		return;
	int64_t now = (int64_t)(cache_unix_ms() / 1000);
	if (resp->status == 304 && cr->cond[0]) {
		/* our own revalidation succeeded: refresh, then answer from the
		 * refreshed entry */
		cache_refresh_entry(r, &v, resp);
		CSTAT(revalidated);
		char st[64];
		snprintf(st, sizeof(st), "fwd=%s; fwd-status=304; stored", cr->fwd);
		cache_status_set(r, st);
		struct record_view nv;
		struct l1_entry *e = cache_find(r, &nv);
		if (!e) {
			e = l1_entry_ref(cr->stale);
			nv = v;
		}
		cr->taken = true;
		if (cache_write(r, e, &nv, now))
			cache_release_client(r);
		return;
	}
	if (resp->status >= 500 && cr->stale_state == FRESH_STALE_SIE) {
		CSTAT(stale_if_error);
		cache_status_set(r, "hit; detail=stale-if-error");
		cr->taken = true;
		if (cache_write(r, l1_entry_ref(cr->stale), &v, now))
			cache_release_client(r);
	}
}

bool cache_fail_takeover(struct request *r, enum lv_reason reason)
{
	struct cache_req *cr = CR(r);
	if (!cr->stale || !r->conn || r->resp_started || cr->stale_state != FRESH_STALE_SIE)
		return false;
	if (reason != R_UP_CONNECT && reason != R_UP_BAD && reason != R_UP_TIMEOUT)
		return false;
	struct record_view v;
	size_t len;
	const void *val = l1_entry_value(cr->stale, &len);
	if (record_decode(val, len, &v) != RECORD_OK)
		return false;
	CSTAT(stale_if_error);
	cache_status_set(r, "hit; detail=stale-if-error");
	if (cache_write(r, l1_entry_ref(cr->stale), &v, (int64_t)(cache_unix_ms() / 1000)))
		request_finish(r);
	return true;
}

void cache_request_end(struct request *r)
{
	struct cache_req *cr = CR(r);
	cache_l2_end(r);
	if (cr->stale) {
		l1_entry_unref(cr->stale);
		cr->stale = NULL;
	}
	if (cr->capture) {
		evbuffer_free(cr->capture);
		cr->capture = NULL;
	}
	if (cr->store)
		cache_refused(RF_INCOMPLETE); /* it ended before its response did */
	cr->store = false;
	fill_finish(r, FILL_FAILED);
}
