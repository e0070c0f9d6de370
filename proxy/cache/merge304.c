/*
 * merge304.c - a 304's update of a stored response; see merge304.h for the
 * rules. Pure: no allocation, no clock, no event loop.
 */
#include "cache/merge304.h"

#include <string.h>

#include "cache/freshness.h"
#include "net/headers.h"

/* ---- which stored response (§4.3.4) ------------------------------------ */

static void etag_trim(const char **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t')) {
		(*p)++;
		(*n)--;
	}
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

static bool etag_weak(const char *p, size_t n)
{
	return n >= 2 && p[0] == 'W' && p[1] == '/';
}

bool merge304_selects(const struct record_view *v, const struct lv_head *resp, bool own)
{
	int et = head_find(resp, LIT("etag"), 0);
	if (et >= 0) {
		const char *a = resp->text + resp->h[et].value, *b = v->etag.p;
		size_t an = resp->h[et].value_len, bn = v->etag.len;
		etag_trim(&a, &an);
		etag_trim(&b, &bn);
		bool aw = etag_weak(a, an), bw = etag_weak(b, bn);
		if (!aw && bw)
			return false; /* a strong validator selects only a strong match */
		if (aw) {
			a += 2;
			an -= 2;
		}
		if (bw) {
			b += 2;
			bn -= 2;
		}
		return an > 0 && an == bn && memcmp(a, b, an) == 0;
	}
	int lm = head_find(resp, LIT("last-modified"), 0);
	if (lm >= 0) {
		int64_t t = http_date_parse(resp->text + resp->h[lm].value, resp->h[lm].value_len);
		return t >= 0 && t == v->last_modified;
	}
	return own || (v->etag.len == 0 && v->last_modified < 0);
}

/* ---- the merged head (§3.2) --------------------------------------------- */

bool merge304_excluded(const struct lv_head *resp, int i)
{
	static const struct {
		const char *s;
		size_t l;
	} never[] = {{LIT("content-length")},
	             {LIT("proxy-authenticate")},
	             {LIT("proxy-authentication-info")},
	             {LIT("proxy-authorization")},
	             {LIT("via")},
	             {LIT("x-request-id")}};
	for (size_t k = 0; k < sizeof(never) / sizeof(never[0]); k++)
		if (head_name_is(resp, i, never[k].s, never[k].l))
			return true;
	return headers_is_hop_by_hop(resp, i);
}

size_t merge304_text_cap(const struct record_view *v, const struct lv_head *resp)
{
	/* every stored name and value, every 304 one, and a Date of our own */
	return (v->size - v->body_len) + resp->len + 64;
}

uint32_t merge304_slots(const struct record_view *v, const struct lv_head *resp)
{
	return v->nhdrs + resp->n + 1;
}

/* One line of the update: a field of the 304, or the Date levee gives it. */
struct upd {
	const char *name, *value;
	size_t nlen, vlen;
};

static bool put_line(struct lv_head *out, const char *n, size_t nl, const char *val, size_t vl)
{
	if (out->n >= out->max || out->cap - out->len < nl + vl)
		return false;
	struct lv_hdr *h = &out->h[out->n++];
	h->name = out->len;
	h->name_len = (uint32_t)nl;
	memcpy(out->text + out->len, n, nl);
	out->len += (uint32_t)nl;
	h->value = out->len;
	h->value_len = (uint32_t)vl;
	memcpy(out->text + out->len, val, vl);
	out->len += (uint32_t)vl;
	return true;
}

/* Every update line named <n>. */
static bool put_updates(struct lv_head *out, const struct upd *u, size_t nu, const char *n, size_t nl)
{
	for (size_t k = 0; k < nu; k++)
		if (token_eq(u[k].name, u[k].nlen, n, nl) && !put_line(out, u[k].name, u[k].nlen, u[k].value, u[k].vlen))
			return false;
	return true;
}

static bool named_before(const struct upd *u, size_t k)
{
	for (size_t j = 0; j < k; j++)
		if (token_eq(u[j].name, u[j].nlen, u[k].name, u[k].nlen))
			return true;
	return false;
}

static bool stored_has(const struct record_view *v, const char *n, size_t nl)
{
	struct record_cursor c = {0};
	struct record_hdr h;
	while (record_next_hdr(v, &c, &h))
		if (token_eq(h.name.p, h.name.len, n, nl))
			return true;
	return false;
}

bool merge304_build(const struct record_view *v, const struct lv_head *resp, int64_t now, struct lv_head *out)
{
	uint32_t max = out->max;
	char date[32];
	if (max < merge304_slots(v, resp))
		return false;
	/* the update: the 304's fields less the excluded ones, and a Date */
	if (resp->n > MERGE304_MAX_304)
		return false;
	struct upd u[MERGE304_MAX_304 + 1];
	size_t nu = 0;
	for (uint32_t i = 0; i < resp->n; i++) {
		if (merge304_excluded(resp, (int)i))
			continue;
		u[nu++] = (struct upd){resp->text + resp->h[i].name, resp->text + resp->h[i].value,
		                       resp->h[i].name_len, resp->h[i].value_len};
	}
	if (head_find(resp, LIT("date"), 0) < 0) {
		size_t dl = http_date_format(now, date);
		u[nu++] = (struct upd){"Date", date, 4, dl};
	}
	out->len = 0;
	out->n = 0;
	struct record_cursor c = {0};
	struct record_hdr h;
	while (record_next_hdr(v, &c, &h)) {
		bool replaced = false, first = true;
		for (size_t k = 0; k < nu && !replaced; k++)
			replaced = token_eq(u[k].name, u[k].nlen, h.name.p, h.name.len);
		if (replaced) {
			/* the update goes where the first stored line of its name was */
			struct record_cursor c2 = {0};
			struct record_hdr h2;
			while (first && record_next_hdr(v, &c2, &h2) && c2.i < c.i)
				if (token_eq(h2.name.p, h2.name.len, h.name.p, h.name.len))
					first = false;
			if (first && !put_updates(out, u, nu, h.name.p, h.name.len))
				return false;
			continue;
		}
		if (!put_line(out, h.name.p, h.name.len, h.value.p, h.value.len))
			return false;
	}
	for (size_t k = 0; k < nu; k++) {
		if (named_before(u, k) || stored_has(v, u[k].name, u[k].nlen))
			continue;
		if (!put_updates(out, u, nu, u[k].name, u[k].nlen))
			return false;
	}
	out->status = v->status;
	out->major = 1;
	out->minor = 1;
	out->flags = H1F_HAS_CL;
	out->content_length = v->body_len;
	out->host_idx = -1;
	return true;
}
