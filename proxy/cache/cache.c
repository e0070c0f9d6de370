/*
 * cache.c - the cache stage: lookup, hits, fills, coalescing, purges.
 *
 * Invariants:
 *  - Only GET responses are stored; HEAD and conditional GETs are answered
 *    from them.
 *  - A response is stored only when it arrived complete: the capture is
 *    dropped on any truncation, abort or size overflow.
 *  - A stored entry is never served past what fresh_state() allows.
 *  - At most one fill per key is in flight in this process; the requests
 *    that wait for it are always woken, whether the fill stored something,
 *    stored nothing, or failed, because every request ends through
 *    cache_request_end().
 *  - Hits are written zero-copy: the client's output buffer references the
 *    L1 entry's body and holds a reference on the entry until it is sent.
 */
#include "cache/cache.h"
#include "invalidate/invalidate.h"

#include <event2/buffer.h>
#include <pthread.h>
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
#include "pipeline.h"

#define FILL_SHARDS 64
#define VARY_NAMES_MAX 512
#define VARY_KEY_MAX 4096
#define MAX_TAGS 32

struct l1 *cache_l1;
struct cache_stats cstats;

struct cache_fill {
	struct cache_fill *next;
	uint64_t hash;
	struct request *waiters;
	uint32_t nwaiters;
	uint32_t klen;
	char key[];
};

static struct {
	pthread_mutex_t lock;
	struct cache_fill *head;
} fills[FILL_SHARDS];

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

static uint64_t key_hash(const char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)k[i]) * 0x100000001b3ull;
	return h;
}

int cache_init(const struct lv_policy *p)
{
	for (int i = 0; i < FILL_SHARDS; i++)
		pthread_mutex_init(&fills[i].lock, NULL);
	/* every host and variant of one URL (service, target) in one shard:
	 * the purge a write makes visits one shard, not all */
	struct l1_config cfg = {.max_bytes = p->cache.memory, .now_ms = l1_clock, .group_fields = 2,
	                        .group_sep = KEY_SEP};
	cache_l1 = l1_new(&cfg);
	return cache_l1 ? LV_OK : LV_ERR;
}

void cache_shutdown(void)
{
	l1_free(cache_l1);
	cache_l1 = NULL;
}

/* ---- Cache-Status (RFC 9211) ------------------------------------------- */

static void cache_status_set(struct request *r, const char *params)
{
	snprintf(r->cache_status, sizeof(r->cache_status), "Cache-Status: levee; %s\r\n", params);
}

/* ---- the key ----------------------------------------------------------- */

/* The key lives in the spare text of the request's head arena, so building
 * it allocates nothing. */
static bool cache_make_key(struct request *r)
{
	struct lv_head *hd = r->head;
	if (hd->cap - hd->len < 64)
		return false;
	char *out = hd->text + hd->len;
	size_t n = key_build(r->rt->policy->service, hd, r->route->cache_key_headers, out, hd->cap - hd->len);
	if (!n)
		return false;
	r->key = out;
	r->key_len = (uint32_t)n;
	hd->len += (uint32_t)n;
	return true;
}

/* ---- the route's tags ------------------------------------------------- */

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

/* The key of one Vary variant: the primary key, KEY_VARY_SEP, and the
 * request's values for the Vary fields. 0 if it does not fit. */
static size_t variant_key(const struct request *r, const char *sec, size_t sl, char *out)
{
	if (!sl || r->key_len + 1 + sl > KEY_MAX)
		return 0;
	memcpy(out, r->key, r->key_len);
	out[r->key_len] = KEY_VARY_SEP;
	memcpy(out + r->key_len + 1, sec, sl);
	return r->key_len + 1 + sl;
}

/* Stores an encoded record under the primary key and, for a Vary
 * response, under its variant key too. */
static int cache_put(const struct request *r, const void *buf, size_t size, uint64_t expires, const char *sec,
                     size_t sl, const char *const *tagp, const size_t *tagl, unsigned nt)
{
	int rc = l1_put(cache_l1, r->key, r->key_len, buf, size, expires, tagp, tagl, nt);
	char k2[KEY_MAX];
	size_t n2 = sl ? variant_key(r, sec, sl, k2) : 0;
	if (rc == 0 && n2)
		rc = l1_put(cache_l1, k2, n2, buf, size, expires, tagp, tagl, nt);
	return rc;
}

/* Returns a referenced entry whose record matches the request's Vary
 * values, with its decoded view, or NULL. */
static struct l1_entry *cache_find(struct request *r, struct record_view *v)
{
	struct l1_entry *e = l1_get(cache_l1, r->key, r->key_len);
	for (int round = 0; e && round < 2; round++) {
		size_t len;
		const void *val = l1_entry_value(e, &len);
		if (record_decode(val, len, v) != RECORD_OK) {
			l1_entry_unref(e);
			return NULL;
		}
		if (v->nvary == 0)
			return e;
		struct record_cursor cur = {0};
		struct record_str names, values;
		if (!record_next_vary(v, &cur, &names, &values)) {
			l1_entry_unref(e);
			return NULL;
		}
		char sec[VARY_KEY_MAX];
		size_t sl = vary_secondary_key(r->head, names.p, names.len, sec, sizeof(sec));
		if (sl && sl == values.len && memcmp(sec, values.p, sl) == 0)
			return e;
		l1_entry_unref(e);
		e = NULL;
		char k2[KEY_MAX];
		size_t n2 = round == 0 ? variant_key(r, sec, sl, k2) : 0;
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
	bool close = c->close_after || (qh->flags & H1F_CONN_CLOSE) || c->w->draining || !r->body_done;
	struct evbuffer *out = conn_output(c);
	struct wb w;
	if (!wb_begin(&w, out, v->size + 512)) {
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
	wb_str(&w, r->cache_status);
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
	r->resp_head = r->resp_started = true;
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
	conn_request_done(c);
}


/* Adds the stored validators to the upstream request, unless the client sent
 * conditionals of its own (then its 304 or 200 is the client's to judge). */
static void cache_add_validators(struct request *r, const struct record_view *v)
{
	if (cond_has_conditionals(r->head))
		return;
	size_t o = 0;
	if (v->etag.len && v->etag.len < 200)
		o += (size_t)snprintf(r->cache_cond + o, sizeof(r->cache_cond) - o, "If-None-Match: %.*s\r\n",
		                      (int)v->etag.len, v->etag.p);
	if (v->last_modified >= 0) {
		char d[32];
		http_date_format(v->last_modified, d);
		o += (size_t)snprintf(r->cache_cond + o, sizeof(r->cache_cond) - o, "If-Modified-Since: %s\r\n", d);
	}
}

/* Looks the request up. LK_HIT: answered and ended. LK_STALE_SERVED: the
 * client got a stale copy (stale-while-revalidate) and was released; the
 * request should go on as the refresh. LK_MISS: go upstream; r->stale may
 * hold a stale copy for revalidation or stale-if-error. */
enum lookup cache_lookup(struct request *r, const char *how)
{
	struct record_view v;
	struct l1_entry *e = cache_find(r, &v);
	if (!e)
		return LK_MISS;
	struct cc_directives req_cc;
	cc_from_request(&req_cc, r->head);
	struct fresh_stored st;
	int64_t now = (int64_t)(cache_unix_ms() / 1000);
	enum fresh_state fs = fresh_state(stored_of(&v, &st), &req_cc, now);
	if (fs == FRESH_OK) {
		CSTAT(hits);
		cache_status_set(r, how);
		cache_serve(r, e, &v, now);
		return LK_HIT;
	}
	if (fs == FRESH_STALE_SWR && r->conn) {
		CSTAT(hits);
		CSTAT(stale_hits);
		cache_status_set(r, "hit; detail=stale");
		if (!cache_write(r, e, &v, now))
			return LK_HIT; /* the request has ended */
		cache_release_client(r);
		r->resp_head = r->resp_started = false;
		r->cache_refresh = true;
		r->cache_epoch = purge_epoch();
		return LK_STALE_SERVED;
	}
	/* stale: revalidate upstream; keep the copy for a 304 or for errors.
	 * RFC 9211 tells apart a stored response that is stale from one the
	 * request's own directives (no-cache, max-age) would not accept. */
	r->cache_fwd = fresh_state(&st, NULL, now) == FRESH_OK ? "request" : "stale";
	cache_add_validators(r, &v);
	r->stale = e;
	r->stale_state = fs;
	return LK_MISS;
}

/* ---- coalescing -------------------------------------------------------- */

static unsigned fill_shard(uint64_t h)
{
	return (unsigned)(h >> 58) & (FILL_SHARDS - 1);
}

enum claim { CLAIM_OWNER, CLAIM_WAITING, CLAIM_BUSY };

/* Registers r as the filler of its key, or, when a fill is already in
 * flight, queues r behind it (`wait`) or reports it busy. */
static enum claim fill_claim(struct request *r, bool wait)
{
	uint64_t h = key_hash(r->key, r->key_len);
	unsigned s = fill_shard(h);
	enum claim rc = CLAIM_OWNER;
	pthread_mutex_lock(&fills[s].lock);
	for (struct cache_fill *f = fills[s].head; f; f = f->next) {
		if (f->hash == h && f->klen == r->key_len && memcmp(f->key, r->key, r->key_len) == 0) {
			if (wait) {
				r->wait_next = f->waiters;
				r->wait_w = r->w;
				r->cache_waiting = true;
				f->waiters = r;
				f->nwaiters++;
			}
			pthread_mutex_unlock(&fills[s].lock);
			return wait ? CLAIM_WAITING : CLAIM_BUSY;
		}
	}
	struct cache_fill *f = malloc(sizeof(*f) + r->key_len);
	if (f) {
		f->hash = h;
		f->klen = r->key_len;
		f->waiters = NULL;
		f->nwaiters = 0;
		memcpy(f->key, r->key, r->key_len);
		f->next = fills[s].head;
		fills[s].head = f;
		r->fill = f;
	} else if (!wait) {
		rc = CLAIM_BUSY; /* out of memory: do without a refresh */
	}
	pthread_mutex_unlock(&fills[s].lock);
	return rc;
}

static void cache_wake(void *arg)
{
	struct request *r = arg;
	r->cache_waiting = false;
	if (!r->conn) { /* the client left while it waited */
		request_client_gone(r);
		return;
	}
	enum lookup lk = cache_lookup(r, "hit; detail=coalesced");
	if (lk == LK_HIT) {
		CSTAT(coalesced);
		return;
	}
	if (lk == LK_STALE_SERVED) { /* the fill stored nothing fresh; don't refresh again */
		request_finish(r);
		return;
	}
	/* nothing usable was stored: go upstream, without queueing again */
	r->cache_no_coalesce = true;
	cache_status_set(r, "fwd=miss");
	pipeline_resume(r);
}

/* The filler is done, however it ended: wake every waiter on its own worker. */
static void fill_finish(struct request *r)
{
	struct cache_fill *f = r->fill;
	if (!f)
		return;
	r->fill = NULL;
	unsigned s = fill_shard(f->hash);
	pthread_mutex_lock(&fills[s].lock);
	for (struct cache_fill **pp = &fills[s].head; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	struct request *w = f->waiters;
	pthread_mutex_unlock(&fills[s].lock);
	free(f);
	while (w) {
		struct request *next = w->wait_next;
		w->wait_next = NULL;
		if (mailbox_post(&w->wait_w->mbox, cache_wake, w) != LV_OK)
			log_error("cache: cannot wake a waiting request (out of memory)");
		w = next;
	}
}

/* ---- the stage --------------------------------------------------------- */

static bool has_field(const struct lv_head *hd, const char *n, size_t l)
{
	return head_find(hd, n, l, 0) >= 0;
}

int cache_stage(struct request *r)
{
	const struct lv_route *rt = r->route;
	if (!route_caches(rt))
		return STAGE_NEXT;
	r->cache_on = true;
	const struct lv_head *hd = r->head;
	if (r->cache_no_coalesce)
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
	    has_field(hd, LIT("x-method-override")) || (req_cc.flags & CC_NO_STORE) || !cache_make_key(r)) {
		CSTAT(bypasses);
		cache_status_set(r, "fwd=bypass");
		return STAGE_NEXT;
	}
	enum inval_cache_mode mode = invalidate_cache_mode();
	if (mode == INVAL_CACHE_OFF) {
		/* the outbox is full: invalidations are not reaching the other
		 * replicas, so nothing is served or stored until it drains */
		CSTAT(bypasses);
		cache_status_set(r, "fwd=bypass; detail=outbox-full");
		r->cache_bypass_store = true;
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
	r->cache_epoch = purge_epoch();
	cache_status_set(r, "fwd=miss");
	if (r->stale) {
		char st[32];
		snprintf(st, sizeof(st), "fwd=%s", r->cache_fwd);
		cache_status_set(r, st);
	}
	if (cc_only_if_cached(&req_cc)) {
		/* RFC 9111 §5.2.1.7: nothing stored is usable, and the client
		 * forbade the upstream */
		request_fail(r, R_NOT_CACHED);
		return STAGE_DONE;
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
static void cache_invalidate_write(struct request *r, const struct lv_head *resp)
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
		bool prefix = !tag && t[tl - 1] == '*';
		size_t n = tag ? cache_expand(r, t + 4, tl - 4, buf, sizeof(buf))
		               : cache_expand(r, t, tl - prefix, buf, sizeof(buf));
		if (n)
			inval_add(&w, tag ? INVAL_TAG : prefix ? INVAL_PREFIX : INVAL_KEY, buf, n);
		t = e ? e + 1 : t + tl;
	}
	int sk = head_find(resp, LIT("surrogate-key"), 0);
	if (sk >= 0) {
		const char *s = resp->text + resp->h[sk].value, *end = s + resp->h[sk].value_len;
		while (s < end) {
			while (s < end && (*s == ' ' || *s == '\t'))
				s++;
			const char *t = s;
			while (s < end && *s != ' ' && *s != '\t')
				s++;
			if (s > t)
				inval_add(&w, INVAL_TAG, t, (size_t)(s - t));
		}
	}
	static const enum cache_purge_kind kinds[] = {
	    [INVAL_KEY] = CACHE_PURGE_URL, [INVAL_PREFIX] = CACHE_PURGE_PREFIX,
	    [INVAL_TAG] = CACHE_PURGE_TAG, [INVAL_ALL] = CACHE_PURGE_ALL};
	size_t n = 0;
	for (unsigned i = 0; i < w.n; i++)
		n += cache_purge(r->w->l2, kinds[w.items[i].kind], svc, w.items[i].p, w.items[i].len, NULL, NULL, NULL);
	invalidate_publish(w.items, w.n);
	if (n)
		log_debug("cache: write to %.*s purged %zu entries", (int)qh->target_len, qh->text + qh->target_off, n);
}

/* Re-stores the stale copy with the times of a 304 that revalidated it
 * (RFC 9111 §4.3.4). The stored header fields are kept as they were. */
static void cache_refresh_entry(struct request *r, const struct record_view *v, const struct lv_head *resp)
{
	static __thread struct record_hdr hdrs[RECORD_MAX_HDRS];
	static __thread struct record_str tags[RECORD_MAX_TAGS];
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
	    .status = v->status, .flags = v->flags, .request_time = r->cache_req_ms, .response_time = (int64_t)cache_unix_ms(),
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
	if (purged_since(r->cache_epoch, r->key, r->key_len, tagp, tagl, nt)) {
		free(buf); /* purged while revalidating: answer once, keep nothing */
		CSTAT(fill_refused);
		return;
	}
	int64_t window = v->swr > v->sie ? v->swr : v->sie;
	uint64_t expires = cache_unix_ms() + (uint64_t)((lifetime > age ? lifetime - age : 0) + window + 60) * 1000u;
	if (cache_put(r, buf, size, expires, has_vary ? vv.p : NULL, has_vary ? vv.len : 0, tagp, tagl, nt) != 0)
		log_debug("cache: could not refresh an entry");
	free(buf);
}

void cache_response_takeover(struct request *r, const struct lv_head *resp)
{
	if (!r->stale || !r->conn)
		return;
	struct record_view v;
	size_t len;
	const void *val = l1_entry_value(r->stale, &len);
	if (record_decode(val, len, &v) != RECORD_OK)
		return;
	int64_t now = (int64_t)(cache_unix_ms() / 1000);
	if (resp->status == 304 && r->cache_cond[0]) {
		/* our own revalidation succeeded: refresh, then answer from the
		 * refreshed entry */
		cache_refresh_entry(r, &v, resp);
		CSTAT(revalidated);
		char st[64];
		snprintf(st, sizeof(st), "fwd=%s; fwd-status=304; stored", r->cache_fwd);
		cache_status_set(r, st);
		struct record_view nv;
		struct l1_entry *e = cache_find(r, &nv);
		if (!e) {
			e = l1_entry_ref(r->stale);
			nv = v;
		}
		r->cache_taken = true;
		if (cache_write(r, e, &nv, now))
			cache_release_client(r);
		return;
	}
	if (resp->status >= 500 && r->stale_state == FRESH_STALE_SIE) {
		CSTAT(stale_if_error);
		cache_status_set(r, "hit; detail=stale-if-error");
		r->cache_taken = true;
		if (cache_write(r, l1_entry_ref(r->stale), &v, now))
			cache_release_client(r);
	}
}

bool cache_fail_takeover(struct request *r, enum lv_reason reason)
{
	if (!r->stale || !r->conn || r->resp_started || r->stale_state != FRESH_STALE_SIE)
		return false;
	if (reason != R_UP_CONNECT && reason != R_UP_BAD && reason != R_UP_TIMEOUT)
		return false;
	struct record_view v;
	size_t len;
	const void *val = l1_entry_value(r->stale, &len);
	if (record_decode(val, len, &v) != RECORD_OK)
		return false;
	CSTAT(stale_if_error);
	cache_status_set(r, "hit; detail=stale-if-error");
	if (cache_write(r, l1_entry_ref(r->stale), &v, (int64_t)(cache_unix_ms() / 1000)))
		request_finish(r);
	return true;
}

void cache_response_head(struct request *r, const struct lv_head *resp)
{
	if (request_is_unsafe(r)) {
		/* on every route: the target may be cached by another one */
		if (resp->status >= 200 && resp->status < 400 && !r->cache_taken)
			cache_invalidate_write(r, resp);
		return;
	}
	if (!r->cache_on || r->cache_taken)
		return;
	const struct lv_head *qh = r->head;
	if (qh->method != HTTP_GET || !r->key || r->cache_bypass_store)
		return;
	const struct lv_policy *p = r->rt->policy;
	char fwd[32];
	snprintf(fwd, sizeof(fwd), "fwd=%s", r->stale ? r->cache_fwd : "miss");
	if ((resp->flags & H1F_HAS_CL) && resp->content_length > p->cache.max_object) {
		char st[64];
		snprintf(st, sizeof(st), "%s; detail=too-large", fwd);
		cache_status_set(r, st);
		CSTAT(store_refused);
		return;
	}
	r->cache_store = true;
	r->capture = evbuffer_new();
	if (!r->capture) {
		r->cache_store = false;
		return;
	}
	/* "stored" only when nothing can still stop it: a known length */
	if (resp->flags & H1F_HAS_CL) {
		char st[48];
		snprintf(st, sizeof(st), "%s; stored", fwd);
		cache_status_set(r, st);
	}
}

void cache_response_body(struct request *r, struct evbuffer *src, size_t n)
{
	if (!r->cache_store)
		return;
	if (evbuffer_get_length(r->capture) + n > r->rt->policy->cache.max_object) {
		r->cache_store = false;
		return;
	}
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
			evbuffer_add(r->capture, v[i].iov_base, take);
			left -= take;
			evbuffer_ptr_set(src, &pos, take, EVBUFFER_PTR_ADD);
		}
	}
}

void cache_response_body_bytes(struct request *r, const char *data, size_t n)
{
	if (!r->cache_store)
		return;
	if (evbuffer_get_length(r->capture) + n > r->rt->policy->cache.max_object) {
		r->cache_store = false;
		return;
	}
	evbuffer_add(r->capture, data, n);
}

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

static void cache_store(struct request *r, const struct lv_head *resp)
{
	const struct lv_route *rt = r->route;
	const struct lv_policy *p = r->rt->policy;
	int64_t resp_ms = (int64_t)cache_unix_ms();
	struct fresh_options opt;
	fresh_options_init(&opt);
	opt.origin_mode = rt->cache_ttl_ms == LV_TTL_ORIGIN;
	opt.fixed_ttl = opt.origin_mode ? 0 : (int64_t)(rt->cache_ttl_ms / 1000);
	opt.allow_authorization = rt->cache_authorization;
	opt.allow_set_cookie = rt->cache_set_cookie;
	opt.route_swr = (int64_t)(rt->swr_ms / 1000);
	opt.route_sie = (int64_t)(rt->sie_ms / 1000);
	struct fresh_eval ev;
	fresh_evaluate(r->head, resp, r->cache_req_ms / 1000, resp_ms / 1000, &opt, &ev);

	/* Negative caching: the listed statuses live negative_ttl, unless the
	 * origin (in origin mode) said how long itself. */
	bool negative = statuses_has(&rt->negative_status, resp->status);
	if (negative && (!opt.origin_mode || ev.why_not == fresh_why_no_freshness)) {
		if (!rt->negative_ttl_ms || (ev.why_not && ev.why_not != fresh_why_no_freshness &&
		                             ev.why_not != fresh_why_status)) {
			CSTAT(store_refused);
			return;
		}
		ev.storable = true;
		ev.why_not = NULL;
		ev.st.lifetime = (int64_t)(rt->negative_ttl_ms / 1000);
		if (!ev.st.lifetime)
			ev.st.lifetime = 1;
		ev.st.initial_age = 0;
	}
	if (!ev.storable) {
		CSTAT(store_refused);
		return;
	}
	char names[VARY_NAMES_MAX], sec[VARY_KEY_MAX];
	size_t names_len = 0, sec_len = 0;
	enum vary_kind vk = vary_names(resp, names, sizeof(names), &names_len);
	if (vk == VARY_STAR || vk == VARY_TOO_LONG) {
		CSTAT(store_refused);
		return;
	}
	if (vk == VARY_LIST) {
		sec_len = vary_secondary_key(r->head, names, names_len, sec, sizeof(sec));
		if (!sec_len) {
			CSTAT(store_refused);
			return;
		}
	}

	struct record_hdr hdrs[RECORD_MAX_HDRS];
	uint32_t nh = 0;
	for (uint32_t i = 0; i < resp->n && nh < RECORD_MAX_HDRS; i++) {
		if (!field_stored(resp, (int)i))
			continue;
		hdrs[nh].name = (struct record_str){resp->text + resp->h[i].name, resp->h[i].name_len};
		hdrs[nh].value = (struct record_str){resp->text + resp->h[i].value, resp->h[i].value_len};
		nh++;
	}
	/* Surrogate-Key: space-separated tags for purges by tag */
	struct record_str tags[MAX_TAGS];
	const char *tagp[MAX_TAGS];
	size_t tagl[MAX_TAGS];
	uint32_t nt = 0;
	int sk = head_find(resp, LIT("surrogate-key"), 0);
	if (sk >= 0) {
		const char *s = resp->text + resp->h[sk].value, *end = s + resp->h[sk].value_len;
		while (s < end && nt < MAX_TAGS) {
			while (s < end && (*s == ' ' || *s == '\t'))
				s++;
			const char *t = s;
			while (s < end && *s != ' ' && *s != '\t')
				s++;
			if (s > t) {
				tags[nt] = (struct record_str){t, (uint32_t)(s - t)};
				tagp[nt] = t;
				tagl[nt] = (size_t)(s - t);
				nt++;
			}
		}
	}
	/* the route's own tags, with {N} from the route's wildcards */
	char rtags[LV_HEADER_LIST_MAX * 4];
	struct record_str rt_tags[MAX_TAGS];
	unsigned nr = cache_route_tags(r, rtags, sizeof(rtags), rt_tags, MAX_TAGS - nt);
	for (unsigned i = 0; i < nr; i++) {
		tags[nt] = rt_tags[i];
		tagp[nt] = rt_tags[i].p;
		tagl[nt] = rt_tags[i].len;
		nt++;
	}
	struct evbuffer_iovec body[64];
	int nb = evbuffer_peek(r->capture, -1, NULL, body, 64);
	if (nb > 64) {
		evbuffer_pullup(r->capture, -1);
		nb = evbuffer_peek(r->capture, -1, NULL, body, 64);
	}
	struct iovec biov[64];
	for (int i = 0; i < nb && i < 64; i++) {
		biov[i].iov_base = body[i].iov_base;
		biov[i].iov_len = body[i].iov_len;
	}
	int et = head_find(resp, LIT("etag"), 0);
	struct record_str vn = {names, (uint32_t)names_len}, vv = {sec, (uint32_t)sec_len};
	struct record_in in = {
	    .status = resp->status,
	    .flags = (uint16_t)((negative ? RECORD_F_NEGATIVE : 0) | (ev.heuristic ? RECORD_F_HEURISTIC : 0) |
	                        (ev.st.must_revalidate ? RECORD_F_MUST_REVALIDATE : 0) |
	                        (ev.st.no_cache ? RECORD_F_NO_CACHE : 0)),
	    .request_time = r->cache_req_ms,
	    .response_time = resp_ms,
	    .initial_age = ev.st.initial_age,
	    .lifetime = ev.st.lifetime,
	    .swr = ev.st.swr,
	    .sie = ev.st.sie,
	    .last_modified = ev.last_modified,
	    .etag = et >= 0 ? (struct record_str){resp->text + resp->h[et].value, resp->h[et].value_len}
	                    : (struct record_str){"", 0},
	    .vary_names = vk == VARY_LIST ? &vn : NULL,
	    .vary_values = vk == VARY_LIST ? &vv : NULL,
	    .nvary = vk == VARY_LIST ? 1 : 0,
	    .tags = tags,
	    .ntags = nt,
	    .hdrs = hdrs,
	    .nhdrs = nh,
	    .body = biov,
	    .nbody = (uint32_t)(nb > 0 ? nb : 0),
	};
	if (purged_since(r->cache_epoch, r->key, r->key_len, tagp, tagl, nt)) {
		/* a write landed while this response was on its way: it may be
		 * older than the write, so it must not outlive the purge */
		CSTAT(store_refused);
		CSTAT(fill_refused);
		return;
	}
	size_t size = record_size(&in);
	void *buf = size ? malloc(size) : NULL;
	if (!buf || record_encode(&in, buf, size) != RECORD_OK) {
		free(buf);
		CSTAT(store_refused);
		return;
	}
	int64_t window = ev.st.swr > ev.st.sie ? ev.st.swr : ev.st.sie;
	int64_t fresh_left = ev.st.lifetime - ev.st.initial_age;
	/* an entry with validators stays a while past its windows, so a
	 * revalidation can refresh it with a 304 instead of a full body */
	int64_t grace = (et >= 0 || ev.last_modified >= 0) ? (ev.st.lifetime < 60 ? 60 : ev.st.lifetime > 3600 ? 3600 : ev.st.lifetime) : 0;
	uint64_t expires = (uint64_t)resp_ms + (uint64_t)((fresh_left > 0 ? fresh_left : 0) + window + grace) * 1000u;
	int rc = cache_put(r, buf, size, expires, sec, vk == VARY_LIST ? sec_len : 0, tagp, tagl, nt);
	if (rc == 0)
		cache_l2_commit(r, buf, size, expires > (uint64_t)resp_ms ? expires - (uint64_t)resp_ms : 1);
	free(buf);
	if (rc == 0)
		CSTAT(stores);
	else
		CSTAT(store_refused);
	(void)p;
}

void cache_response_end(struct request *r, const struct lv_head *resp)
{
	if (r->cache_store && resp)
		cache_store(r, resp);
	r->cache_store = false;
	fill_finish(r);
}

void cache_request_end(struct request *r)
{
	cache_l2_end(r);
	if (r->stale) {
		l1_entry_unref(r->stale);
		r->stale = NULL;
	}
	if (r->capture) {
		evbuffer_free(r->capture);
		r->capture = NULL;
	}
	r->cache_store = false;
	fill_finish(r);
}
