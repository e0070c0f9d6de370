/*
 * serve.c - the L1 side of the cache stage: finding a request's entry (its
 * Vary variant too), answering from a stored entry under the request's own
 * directives (fresh, stale-while-revalidate, 304 to a conditional), the
 * stale copy kept for revalidation and stale-if-error, and putting a
 * record under the request's keys. Used by the stage (cache.c), the L2
 * tier (cache_l2.c) and the store (store.c), which sit above it.
 *
 * Invariants:
 *  - A stored entry is never served past what fresh_state() allows.
 *  - Hits are written zero-copy: the client's output buffer references the
 *    L1 entry's body and holds a reference on the entry until it is sent.
 *    A range hit references its slice of that body, never a copy.
 *  - Only a stored 200 answers a range (RFC 9110 §14.2), and only to a GET.
 */
#include "cache/serve.h"
#include "cache/cache.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_ctx.h"
#include "cache/freshness.h"
#include "cache/key.h"
#include "cache/l1.h"
#include "cache/record.h"
#include "cache/cache_loop.h"
#include "cache/vary.h"
#include "http/range.h"
#include "net/conn.h"
#include "net/request.h"
#include "net/wbuf.h"
#include "net/worker.h"
#include "stats.h"

/* ---- Cache-Status ------------------------------------------------------ *
 *
 * One sf-list member (RFC 8941), "levee" with parameters: `hit` or
 * `fwd=<why>` first, then `stored` or `detail=<token>` as the code that
 * decided set them (cache_status_set), then what this file adds from the
 * block's fields: fwd-status and collapsed with fwd, ttl with a hit or a
 * stored fill. Every detail is a token of levee's own tables; numbers are
 * sf-integers (ttl clamped to 15 digits, as 8941 bounds them). */

void cache_status_set(struct cache_req *cr, const char *params)
{
	/* on every answer of a caching route: no printf */
	size_t n = strlen(params); /* levee's own words, bounded: cut, never overrun */
	if (n > sizeof(cr->status) - 1)
		n = sizeof(cr->status) - 1;
	memcpy(cr->status, params, n);
	cr->status[n] = '\0';
}

/* The outcome <params> say: hit, or fwd's value. */
static enum lv_cache_result status_result(const char *params)
{
	if (strncmp(params, "fwd=", 4) != 0)
		return LV_CR_HIT;
	const char *v = params + 4;
	size_t n = strcspn(v, ";");
	for (int i = 0; i < LV_CR__COUNT; i++)
		if (strlen(lv_cache_result_names[i]) == n && strncmp(v, lv_cache_result_names[i], n) == 0)
			return (enum lv_cache_result)i;
	return LV_CR_MISS; /* not reached: every fwd levee writes is in the table */
}

/* Appends <n> bytes of <s> at <o>. */
static char *status_put(char *o, const char *s, size_t n)
{
	memcpy(o, s, n);
	return o + n;
}

/* Appends "; <name>=<v>", an sf-integer clamped to 9 digits. */
static char *status_int(char *o, const char *name, size_t nlen, int64_t v)
{
	o = status_put(o, "; ", 2);
	o = status_put(o, name, nlen);
	*o++ = '=';
	if (v < 0) {
		*o++ = '-';
		v = -v;
	}
	if (v > 999999999)
		v = 999999999;
	char d[10];
	int k = 0;
	do
		d[k++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	while (k)
		*o++ = d[--k];
	return o;
}

#define STATUS_LIT(o, s) status_put((o), (s), sizeof(s) - 1)

const char *cache_status_line(struct cache_req *cr)
{
	if (cr->result)
		return cr->line; /* what the client got stays what the log says */
	/* at most 21 + 95 + 18 (fwd-status) + 16 (ttl) + 14 (collapsed) + 3 bytes */
	_Static_assert(sizeof(((struct cache_req *)0)->line) >= 21 + sizeof(((struct cache_req *)0)->status) + 18 + 16 + 14 + 3,
	               "Cache-Status line");
	const char *p = cr->status;
	size_t len = strlen(p), first = strcspn(p, ";");
	bool fwd = strncmp(p, "fwd=", 4) == 0;
	char *o = STATUS_LIT(cr->line, "Cache-Status: levee; ");
	o = status_put(o, p, first);
	if (fwd && cr->fwd_status > 0)
		o = status_int(o, "fwd-status", 10, cr->fwd_status);
	o = status_put(o, p + first, len - first);
	if (cr->has_ttl)
		o = status_int(o, "ttl", 3, cr->ttl);
	if (fwd && cr->collapsed == CS_COLLAPSED_REUSED)
		o = STATUS_LIT(o, "; collapsed");
	else if (fwd && cr->collapsed == CS_COLLAPSED_WENT)
		o = STATUS_LIT(o, "; collapsed=?0");
	o = STATUS_LIT(o, "\r\n");
	*o = '\0';
	return cr->line;
}

void cache_status_given(struct cache_req *cr)
{
	if (!cr->result && cr->status[0])
		cr->result = (uint8_t)(1 + status_result(cr->status));
}

void cache_status_refusal(struct cache_req *cr, enum lv_reason reason, struct refusal *rf)
{
	if (!cr->cache || !cr->on || !cr->status[0] || cr->result || cr->taken)
		return;
	char st[sizeof(cr->status)];
	bool fwd = strncmp(cr->status, "fwd=", 4) == 0;
	int first = fwd ? (int)strcspn(cr->status, ";") : 8;
	snprintf(st, sizeof(st), "%.*s; detail=%s", first, fwd ? cr->status : "fwd=miss", lv_reasons[reason].token);
	cache_status_set(cr, st);
	cr->has_ttl = false;
	rf->extra = cache_status_line(cr);
	cache_status_given(cr);
}

/* ---- lookup ------------------------------------------------------------ */

/* Whether a decoded record answers r's Vary values; with *sec the request's
 * own values for the record's Vary names (*sl 0 when they do not fit). */
static bool vary_matches_head(const struct lv_head *hd, const struct record_view *v, char *sec, size_t *sl)
{
	*sl = 0;
	if (v->nvary == 0)
		return true;
	struct record_cursor cur = {0};
	struct record_str names, values;
	if (!record_next_vary(v, &cur, &names, &values))
		return false;
	*sl = vary_secondary_key(hd, names.p, names.len, sec, VARY_KEY_MAX);
	return *sl && *sl == values.len && memcmp(sec, values.p, *sl) == 0;
}

static bool vary_matches(const struct request *r, const struct record_view *v, char *sec, size_t *sl)
{
	return vary_matches_head(r->head, v, sec, sl);
}

/* ---- Vary variants -------------------------------------------------------
 *
 * A URL's variants live under its primary key (the latest variant stored,
 * so that a URL with one variant costs one lookup) and under one of
 * CACHE_VARIANTS slot keys: the primary key, KEY_VARY_SEP and the slot's
 * number. A variant's home slot is a hash of its normalised Vary values
 * (vary.c). A store takes the slot that holds the same values, else the
 * first free one from home on, else home itself: at the bound, a new
 * variant replaces the one in its home slot. A lookup probes from home on.
 * So a URL holds at most CACHE_VARIANTS + 1 entries in the L1, whatever its
 * clients send; all of them live in one shard (the L1 groups a URL's keys),
 * and a purge of the URL removes them all.
 */

static unsigned variant_home(const char *sec, size_t sl)
{
	uint32_t h = 2166136261u; /* FNV-1a: spreads values; the bound holds whatever it does */
	for (size_t i = 0; i < sl; i++)
		h = (h ^ (unsigned char)sec[i]) * 16777619u;
	return h % CACHE_VARIANTS;
}

/* The key of variant slot <slot> of primary key <key>; 0 if it does not
 * fit. */
static size_t variant_slot_key_of(const char *key, size_t klen, unsigned slot, char *out)
{
	static const char hex[] = "0123456789abcdef";
	if (klen + 3 > KEY_MAX)
		return 0;
	memcpy(out, key, klen);
	out[klen] = KEY_VARY_SEP;
	out[klen + 1] = hex[(slot >> 4) & 15];
	out[klen + 2] = hex[slot & 15];
	return klen + 3;
}

static size_t variant_slot_key(const struct cache_req *cr, unsigned slot, char *out)
{
	return variant_slot_key_of(cr->key, cr->key_len, slot, out);
}

size_t cache_forget_key(struct l1 *l1, const char *key, size_t klen)
{
	size_t n = l1_purge_key(l1, key, klen);
	char k[KEY_MAX];
	for (unsigned slot = 0; slot < CACHE_VARIANTS; slot++) {
		size_t kl = variant_slot_key_of(key, klen, slot, k);
		if (kl)
			n += l1_purge_key(l1, k, kl);
	}
	return n;
}

/* The referenced L1 entry under <key>, decoded into <v>, or NULL (none, or
 * a record that does not decode). */
static struct l1_entry *entry_get_l1(struct l1 *l1, const char *key, size_t klen, struct record_view *v)
{
	struct l1_entry *e = klen ? l1_get(l1, key, klen) : NULL;
	if (!e)
		return NULL;
	size_t len;
	const void *val = l1_entry_value(e, &len);
	if (record_decode_checked(val, len, v) != RECORD_OK) {
		l1_entry_unref(e);
		return NULL;
	}
	return e;
}

static struct l1_entry *entry_get(const struct cache_req *cr, const char *key, size_t klen, struct record_view *v)
{
	return entry_get_l1(cr->cache->l1, key, klen, v);
}

/* The referenced entry in variant slot <slot>, decoded into <v>, or NULL. */
static struct l1_entry *variant_get(const struct cache_req *cr, unsigned slot, struct record_view *v)
{
	char k[KEY_MAX];
	return entry_get(cr, k, variant_slot_key(cr, slot, k), v);
}

/* Whether record <v> is the variant whose Vary values are <sec>. */
static bool variant_is(const struct record_view *v, const char *sec, size_t sl)
{
	struct record_cursor cur = {0};
	struct record_str names, values;
	return v->nvary && record_next_vary(v, &cur, &names, &values) && values.len == sl &&
	       memcmp(values.p, sec, sl) == 0;
}

/* The slot a variant with values <sec> is stored in (see above). */
static unsigned variant_slot_for(const struct cache_req *cr, const char *sec, size_t sl)
{
	unsigned home = variant_home(sec, sl), free_slot = CACHE_VARIANTS;
	for (unsigned i = 0; i < CACHE_VARIANTS; i++) {
		unsigned slot = (home + i) % CACHE_VARIANTS;
		struct record_view v;
		struct l1_entry *e = variant_get(cr, slot, &v);
		if (!e) {
			if (free_slot == CACHE_VARIANTS)
				free_slot = slot;
			continue;
		}
		bool same = variant_is(&v, sec, sl);
		l1_entry_unref(e);
		if (same)
			return slot;
	}
	return free_slot < CACHE_VARIANTS ? free_slot : home;
}

struct l1_entry *cache_entry_get(struct cache *c, const char *key, size_t klen, struct record_view *v)
{
	return entry_get_l1(c->l1, key, klen, v);
}

struct l1_entry *cache_entry_find(struct cache *c, const char *key, size_t klen, const struct lv_head *hd,
                                  struct record_view *v, char *at, size_t *atl)
{
	struct l1_entry *e = entry_get_l1(c->l1, key, klen, v);
	if (!e)
		return NULL;
	char sec[VARY_KEY_MAX];
	size_t sl;
	if (vary_matches_head(hd, v, sec, &sl)) {
		if (at) {
			memcpy(at, key, klen);
			*atl = klen;
		}
		return e;
	}
	l1_entry_unref(e);
	if (!sl)
		return NULL; /* no Vary, or values too long to key: nothing else to look for */
	unsigned home = variant_home(sec, sl);
	for (unsigned i = 0; i < CACHE_VARIANTS; i++) {
		char k[KEY_MAX];
		size_t kl = variant_slot_key_of(key, klen, (home + i) % CACHE_VARIANTS, k);
		e = entry_get_l1(c->l1, k, kl, v);
		char sec2[VARY_KEY_MAX];
		size_t sl2;
		if (e && vary_matches_head(hd, v, sec2, &sl2)) {
			if (at) {
				memcpy(at, k, kl);
				*atl = kl;
			}
			return e; /* a slot's record may vary on other names: matched on its own */
		}
		if (e)
			l1_entry_unref(e);
	}
	return NULL;
}

/* Returns a referenced entry whose record matches the request's Vary
 * values, with its decoded view, or NULL. */
struct l1_entry *cache_find(struct cache_req *cr, struct record_view *v)
{
	return cache_entry_find(cr->cache, cr->key, cr->key_len, cr->req->head, v, NULL, NULL);
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

/* ---- ranges (RFC 9110 §14) ---------------------------------------------- */

/* What part of a stored response a hit sends. */
struct hit_range {
	int status;          /* 206 or 416; 0: the stored status, whole */
	uint64_t first, len; /* the bytes of the body that go out */
	bool accept;         /* Accept-Ranges: bytes (a stored 200: levee serves its ranges) */
};

/* The stored Date, as If-Modified-Since compares it without a
 * Last-Modified (RFC 9111 §4.3.2) and If-Range judges a Last-Modified's
 * strength by it; -1 when there is none or it is invalid. */
static int64_t record_date(const struct record_view *v)
{
	struct record_cursor cur = {0};
	struct record_hdr h;
	while (record_next_hdr(v, &cur, &h))
		if (token_eq(h.name.p, h.name.len, LIT("date")))
			return http_date_parse(h.value.p, h.value.len);
	return -1;
}

/* Whether r's own conditionals let the stored response <v> answer 304. */
static bool cache_not_modified(const struct lv_head *qh, const struct record_view *v)
{
	if (!cond_has_conditionals(qh))
		return false;
	int64_t date = v->last_modified >= 0 ? -1 : record_date(v);
	return cond_not_modified(qh, v->etag.p, v->etag.len,
	                         cond_date_for(v->last_modified, date, v->response_time / 1000));
}

/* Whether the request's If-Range, if any, lets its Range apply to <v>. */
static bool hit_if_range(const struct lv_head *qh, const struct record_view *v)
{
	int i = head_find(qh, LIT("if-range"), 0);
	if (i < 0)
		return true;
	if (head_find(qh, LIT("if-range"), i + 1) >= 0)
		return false; /* two validators: neither is "the" one */
	const char *val = qh->text + qh->h[i].value;
	size_t n = qh->h[i].value_len;
	return range_if_range(val, n, http_date_parse(val, n), v->etag.p, v->etag.len, v->last_modified,
	                      record_date(v));
}

/* Decides the part of <v> a hit answers <qh> with: a single byte range of
 * a stored 200 to a GET, when its If-Range allows; else the whole. HEAD is
 * answered whole: range handling is defined for GET only (§14.2). Several
 * Range lines are several ranges: the whole, too. */
static void hit_range_of(const struct lv_head *qh, const struct record_view *v, bool not_modified,
                         struct hit_range *rg)
{
	rg->status = 0;
	rg->first = 0;
	rg->len = v->body_len;
	rg->accept = !not_modified && v->status == 200;
	if (!rg->accept || qh->method != HTTP_GET)
		return;
	int i = head_find(qh, LIT("range"), 0);
	if (i < 0 || head_find(qh, LIT("range"), i + 1) >= 0 || !hit_if_range(qh, v))
		return;
	uint64_t first, last;
	switch (range_parse(qh->text + qh->h[i].value, qh->h[i].value_len, v->body_len, &first, &last)) {
	case RANGE_OK:
		rg->status = 206;
		rg->first = first;
		rg->len = last - first + 1;
		break;
	case RANGE_UNSATISFIABLE:
		rg->status = 416;
		rg->len = 0;
		break;
	case RANGE_MULTIPLE:
	case RANGE_OTHER_UNIT:
	case RANGE_INVALID:
		break; /* the whole representation, as §14.2 allows */
	}
}

/* Whether stored field <n> goes out with a hit answered as <rg>: levee
 * writes its own Accept-Ranges and Content-Range; a 416 carries only the
 * metadata a 304 would, since it sends no representation. */
static bool hit_range_keeps(const struct hit_range *rg, const struct record_str *n)
{
	if (token_eq(n->p, n->len, LIT("accept-ranges")))
		return !rg->accept;
	if (token_eq(n->p, n->len, LIT("content-range")))
		return !rg->accept && !rg->status;
	return rg->status != 416 || field_in_304(n);
}

/* Accept-Ranges and Content-Range of a hit answered as <rg>, from a stored
 * body of <total> bytes. */
static void hit_range_head(struct wb *w, const struct hit_range *rg, uint64_t total)
{
	if (rg->accept)
		WB_LIT(w, "Accept-Ranges: bytes\r\n");
	if (rg->status == 206) {
		WB_LIT(w, "Content-Range: bytes ");
		wb_u64(w, rg->first);
		WB_LIT(w, "-");
		wb_u64(w, rg->first + rg->len - 1);
		WB_LIT(w, "/");
		wb_u64(w, total);
		WB_LIT(w, "\r\n");
	} else if (rg->status == 416) {
		WB_LIT(w, "Content-Range: bytes */");
		wb_u64(w, total);
		WB_LIT(w, "\r\n");
	}
}

static void entry_unref_cb(const void *data, size_t len, void *arg)
{
	l1_entry_unref(arg);
}

/* Writes a stored response to r's client. Takes over the reference on `e`.
 * Returns false when the request already ended (client gone, or levee's own
 * error sent instead). */
bool cache_write(struct cache_req *cr, struct l1_entry *e, const struct record_view *v, int64_t now)
{
	struct request *r = cr->req;
	struct conn *c = r->conn;
	const struct lv_head *qh = r->head;
	bool not_modified = cache_not_modified(qh, v);
	struct hit_range rg;
	hit_range_of(qh, v, not_modified, &rg);
	int status = not_modified ? 304 : v->status;
	if (rg.status)
		status = rg.status;
	bool body = !not_modified && qh->method != HTTP_HEAD && rg.len;
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
		if (!hit_range_keeps(&rg, &h.name))
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
	/* what is left of the copy's own lifetime: negative when it is served
	 * stale (a tier's stretched lifetime is not the origin's) */
	cr->has_ttl = true;
	cr->ttl = v->lifetime - age;
	if (cr->collapsed == CS_COLLAPSED_REUSED && !cr->fwd_status)
		cr->fwd_status = (int16_t)v->status; /* the fill's answer, which this one reuses */
	wb_str(&w, cache_status_line(cr));
	cache_status_given(cr);
	if (cr->mark)
		wb_str(&w, cr->mark);
	hit_range_head(&w, &rg, v->body_len);
	if (!not_modified && (v->status >= 200 && v->status != 204)) {
		WB_LIT(&w, "Content-Length: ");
		wb_u64(&w, rg.len);
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
	/* a range references its slice of the entry's body: zero-copy too */
	if (body && evbuffer_add_reference(out, (const char *)v->body + rg.first, rg.len, entry_unref_cb, e) == 0) {
		r->bytes_out += rg.len;
		e = NULL; /* the buffer holds the reference now */
	}
	if (e)
		l1_entry_unref(e);
	if (not_modified)
		CSTAT(cr->cache, not_modified);
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

static void cache_serve(struct cache_req *cr, struct l1_entry *e, const struct record_view *v, int64_t now)
{
	struct request *r = cr->req;
	if (cache_write(cr, e, v, now))
		request_finish(r);
}

/* The client has its answer (from the cache); the request goes on without
 * it, to refresh or drain what the upstream sends. */
void cache_release_client(struct cache_req *cr)
{
	struct request *r = cr->req;
	struct conn *c = r->conn;
	if (!c)
		return;
	c->req = NULL;
	r->conn = NULL;
	r->background = true; /* answered; a refresh goes on without the client */
	conn_request_done(c);
}


/* Adds the stored validators to the upstream request, unless the client sent
 * conditionals of its own (then its 304 or 200 is the client's to judge).
 * An If-Range is not one: the origin evaluates If-None-Match first (RFC
 * 9110 §13.2.2), so a 304 refreshes the copy, which then answers the
 * client's Range and If-Range itself; any other answer already applied
 * them. */
static void cache_add_validators(struct cache_req *cr, const struct record_view *v)
{
	struct request *r = cr->req;
	if (cond_has_preconditions(r->head) && !r->up_whole) /* a refresh leaves the client's out */
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
static enum lookup_rc cache_answer_view(struct cache_req *cr, struct l1_entry *e, const struct record_view *v,
                                     const char *how)
{
	struct request *r = cr->req;
	/* the hot set samples every request a stored copy answers or could
	 * answer (hotset.h), before a hit ends the request and frees it */
	cache_loop_hit(r->w, cr->key, cr->key_len);
	struct cc_directives req_cc;
	cc_from_request(&req_cc, r->head);
	struct fresh_stored st;
	int64_t now = (int64_t)(now_unix_ms() / 1000);
	enum fresh_state fs = fresh_state(stored_of(v, &st), &req_cc, now);
	if (fs == FRESH_OK) {
		cache_status_set(cr, how);
		cache_serve(cr, e, v, now);
		return LK_HIT;
	}
	if (cr->tm) {
		/* a tier in force: stretch-ttl first (a copy fresh again is a
		 * hit that says so), then serve-stale (any other copy its origin
		 * lets go stale answers at once, unrevalidated) */
		/* never past what the origin forbade: must-revalidate,
		 * proxy-revalidate, s-maxage (shared caches must revalidate)
		 * and no-cache copies keep their own lifetime (RFC 9111 5.2.2) */
		if ((cr->tm & LV_CM_STRETCH_TTL) && cache_tier_stale_ok(v)) {
			fresh_stretch(&st, r->tier_ttl_factor);
			fs = fresh_state(&st, &req_cc, now);
			if (fs == FRESH_OK) {
				CSTAT(cr->cache, tier_stretched);
				cache_status_set(cr, "hit; detail=tier-ttl");
				cache_serve(cr, e, v, now);
				return LK_HIT;
			}
		}
		/* inside its own stale-while-revalidate window a copy may answer
		 * stale whatever else its origin said; serve-stale only drops
		 * the refresh */
		if ((cr->tm & LV_CM_SERVE_STALE) && (fs == FRESH_STALE_SWR || cache_tier_stale_ok(v))) {
			CSTAT(cr->cache, tier_stale);
			cache_status_set(cr, "hit; detail=tier-stale");
			cache_serve(cr, e, v, now);
			return LK_HIT;
		}
	}
	if (fs == FRESH_STALE_SWR && r->conn && cr->tier_no_store) {
		/* its refresh could not be stored: the stale answer alone */
		CSTAT(cr->cache, stale_hits);
		cache_status_set(cr, "hit; detail=stale");
		cache_serve(cr, e, v, now);
		return LK_HIT;
	}
	if (fs == FRESH_STALE_SWR && r->conn) {
		CSTAT(cr->cache, stale_hits);
		cache_status_set(cr, "hit; detail=stale");
		/* the copy stays for the refresh: its validators go upstream, and
		 * a 304 is merged into it (<v> points into it) */
		struct l1_entry *keep = l1_entry_ref(e);
		if (!cache_write(cr, e, v, now)) {
			l1_entry_unref(keep);
			return LK_HIT; /* the request has ended */
		}
		cache_release_client(cr);
		r->resp_started = false;
		cr->refresh = true;
		r->up_whole = true; /* a refresh fills the entry: never a part of it */
		cr->epoch = purge_epoch(&cr->cache->purges);
		cr->fwd = "stale";
		cache_add_validators(cr, v);
		if (cr->stale)
			l1_entry_unref(cr->stale);
		cr->stale = keep;
		cr->stale_state = fs;
		return LK_STALE_SERVED;
	}
	/* stale: revalidate upstream; keep the copy for a 304 or for errors.
	 * RFC 9211 tells apart a stored response that is stale from one the
	 * request's own directives (no-cache, max-age) would not accept. */
	cr->fwd = fresh_state(&st, NULL, now) == FRESH_OK ? "request" : "stale";
	cache_add_validators(cr, v);
	if (cr->stale)
		l1_entry_unref(cr->stale);
	cr->stale = e;
	cr->stale_state = fs;
	return LK_MISS;
}

/* Looks the request up. LK_HIT: answered and ended. LK_STALE_SERVED: the
 * client got a stale copy (stale-while-revalidate) and was released; the
 * request should go on as the refresh. LK_MISS: go upstream; cr->stale may
 * hold a stale copy for revalidation or stale-if-error. */
enum lookup_rc cache_lookup(struct cache_req *cr, const char *how)
{
	struct record_view v;
	struct l1_entry *e = cache_find(cr, &v);
	if (!e)
		return LK_MISS;
	return cache_answer_view(cr, e, &v, how);
}

enum lookup_rc cache_answer(struct cache_req *cr, struct l1_entry *e, const char *how)
{
	struct record_view v;
	size_t len;
	const void *val = l1_entry_value(e, &len);
	char sec[VARY_KEY_MAX];
	size_t sl;
	if (record_decode_checked(val, len, &v) != RECORD_OK || !vary_matches(cr->req, &v, sec, &sl)) {
		l1_entry_unref(e);
		return LK_MISS;
	}
	return cache_answer_view(cr, e, &v, how);
}

/* The request's stale copy, decoded into <v>, when levee may still answer
 * its client itself: false without one, or once its answer has started. */
static bool stale_view(struct cache_req *cr, struct record_view *v)
{
	struct request *r = cr->req;
	if (!cr->stale || !r->conn || r->resp_started)
		return false;
	size_t len;
	const void *val = l1_entry_value(cr->stale, &len);
	return record_decode_checked(val, len, v) == RECORD_OK;
}

/* Answers from the stale copy (decoded as <v>) with Cache-Status <params>;
 * the request has ended when this returns. */
static void stale_answer(struct cache_req *cr, const struct record_view *v, const char *params)
{
	cache_status_set(cr, params);
	if (cache_write(cr, l1_entry_ref(cr->stale), v, (int64_t)(now_unix_ms() / 1000)))
		request_finish(cr->req);
}

bool cache_tier_stale_ok(const struct record_view *v)
{
	return !(v->flags & (RECORD_F_MUST_REVALIDATE | RECORD_F_NO_CACHE));
}

bool cache_tier_stale(struct cache_req *cr)
{
	struct record_view v;
	if (!stale_view(cr, &v) || (cr->stale_state != FRESH_STALE_SWR && !cache_tier_stale_ok(&v)))
		return false;
	/* The copy was found before an L2 round trip or a claim: a purge
	 * since the lookup began may have removed it from the L1 (or fenced
	 * it in Redis) while this request still holds it. Not served then. */
	const char *tagp[RECORD_MAX_TAGS];
	size_t tagl[RECORD_MAX_TAGS];
	unsigned nt = record_tag_list(&v, tagp, tagl, RECORD_MAX_TAGS);
	if (purged_since(&cr->cache->purges, cr->stale_epoch, cr->key, cr->key_len, tagp, tagl, nt))
		return false;
	CSTAT(cr->cache, tier_stale);
	stale_answer(cr, &v, "hit; detail=tier-stale");
	return true;
}

void cache_tier_no_store(struct cache_req *cr, const char *detail)
{
	char st[64];
	cr->tier_no_store = true;
	fill_finish(&cr->fill, FILL_FAILED); /* whoever queued behind it goes on its own */
	snprintf(st, sizeof(st), "fwd=%s; detail=%s", cache_fwd_of(cr), detail);
	cache_status_set(cr, st);
}

bool cache_tier_no_wait(struct cache_req *cr)
{
	CSTAT(cr->cache, tier_no_wait);
	if (cache_tier_stale(cr))
		return true;
	cache_tier_no_store(cr, "tier-skip-lease");
	return false;
}

bool cache_fail_takeover(struct cache_req *cr, enum lv_reason reason)
{
	struct record_view v;
	if (cr->stale_state != FRESH_STALE_SIE || !stale_view(cr, &v))
		return false;
	if (reason != R_UP_CONNECT && reason != R_UP_BAD && reason != R_UP_TIMEOUT)
		return false;
	CSTAT(cr->cache, stale_if_error);
	stale_answer(cr, &v, "hit; detail=stale-if-error");
	return true;
}

bool cache_fallback_takeover(struct cache_req *cr, uint64_t max_stale_ms, const char *mark)
{
	struct record_view v;
	if (!stale_view(cr, &v) || (v.flags & RECORD_F_MUST_REVALIDATE))
		return false;
	int64_t now = (int64_t)(now_unix_ms() / 1000);
	int64_t stale_for = fresh_current_age(v.initial_age, v.response_time / 1000, now) - v.lifetime;
	if (stale_for > (int64_t)(max_stale_ms / 1000))
		return false;
	cr->mark = mark;
	stale_answer(cr, &v, "hit; detail=fallback");
	return true;
}

void cache_keep_stale(struct cache_req *cr, struct l1_entry *e)
{
	struct record_view v;
	size_t len;
	const void *val = l1_entry_value(e, &len);
	char sec[VARY_KEY_MAX];
	size_t sl;
	/* a copy from Redis is the primary key's record, which may be another
	 * Vary variant: only one that answers this request may stand in */
	if (cr->stale || record_decode_checked(val, len, &v) != RECORD_OK || !vary_matches(cr->req, &v, sec, &sl)) {
		l1_entry_unref(e);
		return;
	}
	struct cc_directives req_cc;
	cc_from_request(&req_cc, cr->req->head);
	struct fresh_stored st;
	cr->stale = e;
	cr->stale_state = fresh_state(stored_of(&v, &st), &req_cc, (int64_t)(now_unix_ms() / 1000));
	cr->fwd = "stale";
	cache_add_validators(cr, &v); /* a 304 refreshes it (cache_refresh_entry()) */
}

int64_t cache_keep_window(const struct lv_route *rt, int64_t swr, int64_t sie)
{
	int64_t w = swr > sie ? swr : sie;
	int64_t fb = route_fallback_has(rt, LV_FB_STALE) ? (int64_t)(rt->stale_fallback_max_ms / 1000) : 0;
	return fb > w ? fb : w;
}

int64_t cache_stretch_keep(const struct lv_policy *p, int64_t lifetime)
{
	uint64_t f = 1;
	for (size_t i = 0; i < p->ntiers; i++)
		if ((p->tiers[i].cache & LV_CM_STRETCH_TTL) && p->tiers[i].ttl_factor > f)
			f = p->tiers[i].ttl_factor;
	if (f <= 1 || lifetime <= 0)
		return 0;
	struct fresh_stored st = {.lifetime = lifetime};
	fresh_stretch(&st, f);
	return st.lifetime - lifetime;
}

/* ---- putting a record into the L1 -------------------------------------- */

enum put_rc cache_put(const struct cache_req *cr, uint64_t epoch, const void *buf, size_t size, uint64_t expires,
                      const char *sec, size_t sl, const char *const *tagp, const size_t *tagl, unsigned nt)
{
	struct l1_entry *mine[2] = {NULL, NULL};
	int rc = l1_put_entry(cr->cache->l1, cr->key, cr->key_len, buf, size, expires, tagp, tagl, nt, &mine[0]);
	char k2[KEY_MAX];
	size_t n2 = sl ? variant_slot_key(cr, variant_slot_for(cr, sec, sl), k2) : 0;
	if (rc == LV_OK && n2)
		rc = l1_put_entry(cr->cache->l1, k2, n2, buf, size, expires, tagp, tagl, nt, &mine[1]);
	int err = errno;
	enum put_rc out = rc == LV_OK ? PUT_OK : err == E2BIG ? PUT_TOO_BIG : PUT_ERROR;
	if (purged_since(&cr->cache->purges, epoch, cr->key, cr->key_len, tagp, tagl, nt)) {
		out = PUT_PURGED;
		for (int i = 0; i < 2; i++)
			if (mine[i])
				l1_purge_entry(cr->cache->l1, mine[i]);
	} else if (rc != LV_OK && mine[0]) {
		l1_purge_entry(cr->cache->l1, mine[0]); /* half a Vary pair is worse than none */
	}
	l1_entry_unref(mine[0]);
	l1_entry_unref(mine[1]);
	return out;
}
