/*
 * vary.c - the secondary cache key and the normalisation of the selecting
 * header values (RFC 9111 §4.1: "normalizing both header field values in a
 * way that is known to have identical semantics").
 *
 * Invariants:
 *  - Normalising never lengthens a value: a member is copied without the
 *    bytes it drops, so writing it in place of the raw bytes is bounded by
 *    them.
 *  - Two values normalise to the same bytes only when the origin cannot
 *    tell them apart by the rules of the field's syntax; an unknown field
 *    keeps everything but the whitespace around its members.
 */
#include "cache/vary.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum vary_norm {
	VN_OPAQUE, /* unknown syntax: OWS around members only */
	VN_CI,     /* list of case-insensitive members, order kept */
	VN_SORTED, /* list of case-insensitive members, order meaningless */
	VN_MEDIA,  /* Accept: type/subtype and parameter names case-insensitive */
};

static const struct {
	const char *name;
	size_t len;
	enum vary_norm how;
} vary_fields[] = {
    {LIT("accept-encoding"), VN_SORTED},
    {LIT("accept-language"), VN_CI},
    {LIT("accept-charset"), VN_CI},
    {LIT("accept"), VN_MEDIA},
};

/* Members sorted at most: past these the value keeps its order (it still
 * matches itself; it only shares less). */
#define VARY_SORT_MEMBERS 32
#define VARY_SORT_BYTES 1024

static enum vary_norm vary_norm_of(const char *name, size_t nlen)
{
	for (size_t i = 0; i < sizeof(vary_fields) / sizeof(vary_fields[0]); i++)
		if (nlen == vary_fields[i].len && memcmp(name, vary_fields[i].name, nlen) == 0)
			return vary_fields[i].how;
	return VN_OPAQUE;
}

static bool vary_ows(char c)
{
	return c == ' ' || c == '\t';
}

static char vary_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* The end of the member starting at <p>: the next comma outside a quoted
 * string, or <end>; *open tells whether a quoted string was left open. */
static const char *vary_member_end(const char *p, const char *end, bool *open)
{
	bool quoted = false;
	for (; p < end; p++) {
		if (quoted && *p == '\\' && p + 1 < end)
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == ',')
			break;
	}
	*open = quoted;
	return p;
}

/* Copies member <s>..<e> (trimmed) to <out> as <how> wants it; the bytes
 * written, at most e - s. */
static size_t vary_member(enum vary_norm how, const char *s, const char *e, char *out)
{
	size_t o = 0;
	if (how == VN_OPAQUE) {
		memcpy(out, s, (size_t)(e - s));
		return (size_t)(e - s);
	}
	bool quoted = false, in_value = false;
	bool fold = true; /* VN_MEDIA: the media range, then each parameter name */
	for (const char *p = s; p < e; p++) {
		char c = *p;
		if (quoted) {
			out[o++] = c;
			if (c == '\\' && p + 1 < e)
				out[o++] = *++p;
			else if (c == '"')
				quoted = false;
			continue;
		}
		if (vary_ows(c)) {
			/* OWS is allowed only around ';' (and '=', by recipients'
			 * leniency): dropped there, kept elsewhere */
			const char *q = p;
			while (q < e && vary_ows(*q))
				q++;
			bool at_sep = q == e || *q == ';' || *q == '=' || (o && (out[o - 1] == ';' || out[o - 1] == '='));
			if (!at_sep) {
				memcpy(out + o, p, (size_t)(q - p));
				o += (size_t)(q - p);
			}
			p = q - 1;
			continue;
		}
		if (c == '"')
			quoted = true;
		if (c == ';') {
			in_value = false;
			fold = true;
		} else if (c == '=') {
			in_value = true;
			fold = false;
		}
		out[o++] = how != VN_MEDIA || (fold && !in_value) ? vary_lower(c) : c;
	}
	return o;
}

/* Insertion sort of <n> members (offsets and lengths into <buf>). */
static void vary_sort(const char *buf, size_t *off, size_t *len, unsigned n)
{
	for (unsigned i = 1; i < n; i++) {
		size_t o = off[i], l = len[i];
		unsigned j = i;
		for (; j > 0; j--) {
			size_t m = len[j - 1] < l ? len[j - 1] : l;
			int c = memcmp(buf + off[j - 1], buf + o, m);
			if (c < 0 || (c == 0 && len[j - 1] <= l))
				break;
			off[j] = off[j - 1];
			len[j] = len[j - 1];
		}
		off[j] = o;
		len[j] = l;
	}
}

size_t vary_normalise(const char *name, size_t nlen, const char *const *lines, const size_t *lens,
                      unsigned nlines, char *out, size_t cap)
{
	enum vary_norm how = vary_norm_of(name, nlen);
	char tmp[VARY_SORT_BYTES];
	size_t off[VARY_SORT_MEMBERS], len[VARY_SORT_MEMBERS];
	unsigned nm = 0;
	bool sort = how == VN_SORTED;
	size_t o = 0, t = 0;
	bool first = true;
	for (unsigned li = 0; li < nlines; li++) {
		const char *p = lines[li], *end = lines[li] + lens[li];
		for (;;) {
			bool open;
			const char *me = vary_member_end(p, end, &open);
			if (open)
				sort = false; /* a quote never closed: its commas are not ours to move */
			const char *s = p, *e = me;
			while (s < e && vary_ows(*s))
				s++;
			while (e > s && vary_ows(e[-1]))
				e--;
			bool keep = how == VN_OPAQUE || s < e; /* empty list members mean nothing (§5.6.1.2) */
			/* an unknown field's empty line adds no member, as before */
			if (how == VN_OPAQUE && s == e && me == end && p == lines[li])
				keep = false;
			if (keep) {
				size_t need = (size_t)(e - s) + (first ? 0 : 1);
				if (o + need > cap)
					return SIZE_MAX;
				if (!first)
					out[o++] = ',';
				size_t w = vary_member(how, s, e, out + o);
				if (sort && nm < VARY_SORT_MEMBERS && t + w <= sizeof(tmp)) {
					memcpy(tmp + t, out + o, w);
					off[nm] = t;
					len[nm++] = w;
					t += w;
				} else {
					sort = false; /* too many to sort: kept in order */
				}
				o += w;
				first = false;
			}
			if (me == end)
				break;
			p = me + 1;
		}
	}
	if (sort && nm > 1) {
		vary_sort(tmp, off, len, nm);
		o = 0;
		for (unsigned i = 0; i < nm; i++) {
			if (i)
				out[o++] = ',';
			memcpy(out + o, tmp + off[i], len[i]);
			o += len[i];
		}
	}
	return o;
}

/* ---- the secondary key ---------------------------------------------------- */

#define VARY_LINES_MAX 64

struct key_acc {
	const struct lv_head *req;
	char *out;
	size_t cap, len;
	bool overflow;
};

static void key_put(struct key_acc *k, const char *s, size_t n)
{
	if (k->overflow || k->len + n + 1 > k->cap) { /* + 1 keeps room for the NUL */
		k->overflow = true;
		return;
	}
	memcpy(k->out + k->len, s, n);
	k->len += n;
}

static void key_name(const char *name, size_t n, void *arg)
{
	struct key_acc *k = arg;
	char lname[256];
	if (n > sizeof(lname)) {
		k->overflow = true;
		return;
	}
	for (size_t i = 0; i < n; i++)
		lname[i] = vary_lower(name[i]);
	key_put(k, lname, n);
	const struct lv_head *req = k->req;
	int i = head_find(req, name, n, 0);
	if (i >= 0 && !k->overflow) {
		key_put(k, LIT(":"));
		const char *lines[VARY_LINES_MAX];
		size_t lens[VARY_LINES_MAX];
		unsigned nl = 0;
		for (; i >= 0; i = head_find(req, name, n, i + 1)) {
			if (nl == VARY_LINES_MAX) {
				k->overflow = true; /* more lines than levee keys: not stored */
				return;
			}
			lines[nl] = req->text + req->h[i].value;
			lens[nl++] = req->h[i].value_len;
		}
		if (k->overflow)
			return;
		size_t w = vary_normalise(lname, n, lines, lens, nl, k->out + k->len, k->cap - k->len - 1);
		if (w == SIZE_MAX) {
			k->overflow = true;
			return;
		}
		k->len += w;
	}
	key_put(k, LIT("\n"));
}

size_t vary_secondary_key(const struct lv_head *req, const char *names, size_t names_len, char *out,
                          size_t cap)
{
	struct key_acc k = {.req = req, .out = out, .cap = cap};
	if (cap == 0)
		return 0;
	head_each_token(names, names_len, key_name, &k);
	if (k.overflow || k.len == 0)
		return 0;
	out[k.len] = '\0';
	return k.len;
}
