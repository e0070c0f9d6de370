/* sfv_canon.h - a Dictionary parsed by proxy/http/sfv.c, written back in the
 * canonical form of RFC 8941 §4.1, for test_sfv.c and fuzz_sfv.c.
 *
 * The members are first gathered the way §4.2.2 builds its ordered map: a
 * repeated key keeps the place of its first appearance and takes the value
 * of its last (the same for parameters). Canonical means: ", " between
 * members, one SP inside Inner Lists, `;key` for a Boolean true parameter,
 * a bare key for a Boolean true member, Decimals without trailing zeros,
 * Byte Sequences re-encoded with padding. Only the tests need writing, so it
 * lives here, not in sfv.c. */
#ifndef LEVEE_TEST_SFV_CANON_H
#define LEVEE_TEST_SFV_CANON_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "http/sfv.h"

struct canon_out {
	char *p;
	size_t cap, len;
	bool overflow;
};

static void canon_put(struct canon_out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->overflow = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void canon_puts(struct canon_out *o, const char *s)
{
	canon_put(o, s, strlen(s));
}

static void canon_bare(struct canon_out *o, const struct sfv_bare *v)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static unsigned char bytes[SFV_BYTES_MAX];
	char num[48];
	switch (v->type) {
	case SFV_INTEGER:
		snprintf(num, sizeof(num), "%lld", (long long)v->num);
		canon_puts(o, num);
		break;
	case SFV_DECIMAL: {
		long long a = v->num < 0 ? -(long long)v->num : (long long)v->num;
		int frac = (int)(a % 1000), digits = 3;
		while (digits > 1 && frac % 10 == 0) {
			frac /= 10;
			digits--;
		}
		snprintf(num, sizeof(num), "%s%lld.%0*d", v->num < 0 ? "-" : "", a / 1000, digits, frac);
		canon_puts(o, num);
		break;
	}
	case SFV_STRING: /* the only escapes are \" and \\, as canonical */
		canon_puts(o, "\"");
		canon_put(o, v->s, v->len);
		canon_puts(o, "\"");
		break;
	case SFV_TOKEN:
		canon_put(o, v->s, v->len);
		break;
	case SFV_BYTES: {
		ptrdiff_t n = sfv_bytes_decode(v, bytes, sizeof(bytes));
		canon_puts(o, ":");
		for (ptrdiff_t i = 0; i < n; i += 3) {
			unsigned x = (unsigned)bytes[i] << 16;
			if (i + 1 < n)
				x |= (unsigned)bytes[i + 1] << 8;
			if (i + 2 < n)
				x |= bytes[i + 2];
			char q[4] = {b64[x >> 18], b64[(x >> 12) & 63], i + 1 < n ? b64[(x >> 6) & 63] : '=',
			             i + 2 < n ? b64[x & 63] : '='};
			canon_put(o, q, 4);
		}
		canon_puts(o, ":");
		break;
	}
	case SFV_BOOLEAN:
		canon_puts(o, v->num ? "?1" : "?0");
		break;
	case SFV_INNER_LIST:
		canon_puts(o, "<inner list as a bare item>");
		break;
	}
}

struct canon_param {
	const char *key;
	size_t len;
	struct sfv_bare v;
};

static void canon_params(struct canon_out *o, const struct sfv_item *it)
{
	static struct canon_param ps[SFV_PARAMS_MAX];
	size_t n = 0, pos = 0, kl;
	const char *k;
	struct sfv_bare v;
	while (sfv_param_next(it, &pos, &k, &kl, &v)) {
		size_t j = 0;
		while (j < n && !(ps[j].len == kl && memcmp(ps[j].key, k, kl) == 0))
			j++;
		if (j == n && n < SFV_PARAMS_MAX)
			ps[n++] = (struct canon_param){k, kl, v};
		else if (j < n)
			ps[j].v = v;
	}
	for (size_t j = 0; j < n; j++) {
		canon_puts(o, ";");
		canon_put(o, ps[j].key, ps[j].len);
		if (!(ps[j].v.type == SFV_BOOLEAN && ps[j].v.num)) {
			canon_puts(o, "=");
			canon_bare(o, &ps[j].v);
		}
	}
}

static void canon_item(struct canon_out *o, const struct sfv_item *it)
{
	if (it->v.type == SFV_INNER_LIST) {
		struct sfv_item m;
		size_t pos = 0;
		bool first = true;
		canon_puts(o, "(");
		while (sfv_inner_next(it, &pos, &m)) {
			if (!first)
				canon_puts(o, " ");
			first = false;
			canon_item(o, &m);
		}
		canon_puts(o, ")");
	} else {
		canon_bare(o, &it->v);
	}
	canon_params(o, it);
}

struct canon_member {
	const char *key;
	size_t len;
	struct sfv_item it;
};

struct canon_dict {
	struct canon_member m[SFV_DICT_MAX];
	size_t n, calls;
};

static void canon_member_cb(const char *key, size_t len, const struct sfv_item *it, void *arg)
{
	struct canon_dict *d = arg;
	d->calls++;
	for (size_t j = 0; j < d->n; j++) {
		if (d->m[j].len == len && memcmp(d->m[j].key, key, len) == 0) {
			d->m[j].it = *it;
			return;
		}
	}
	if (d->n < SFV_DICT_MAX)
		d->m[d->n++] = (struct canon_member){key, len, *it};
}

/* Parses <s> as a Dictionary and writes it canonically into <out>. Returns
 * sfv_dict_parse()'s result; <out> is "" unless it succeeded. */
static int canon_dict(const char *s, size_t len, char *out, size_t cap, bool *overflow)
{
	static struct canon_dict d;
	d.n = d.calls = 0;
	struct canon_out o = {out, cap, 0, false};
	out[0] = '\0';
	int rc = sfv_dict_parse(s, len, canon_member_cb, &d);
	if (rc < 0)
		return rc;
	for (size_t j = 0; j < d.n; j++) {
		if (j)
			canon_puts(&o, ", ");
		canon_put(&o, d.m[j].key, d.m[j].len);
		const struct sfv_item *it = &d.m[j].it;
		if (!(it->v.type == SFV_BOOLEAN && it->v.num)) {
			canon_puts(&o, "=");
			canon_item(&o, it);
		} else {
			canon_params(&o, it);
		}
	}
	if (overflow)
		*overflow = o.overflow;
	if (d.calls != (size_t)rc)
		return -100; /* the callback must see every member, once */
	return rc;
}

#endif
