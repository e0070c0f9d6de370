/*
 * route.c - matching a request path against one route's pattern.
 *
 * Runs for every request, so it allocates nothing and looks at each byte of
 * the path at most a couple of times. Patterns were checked at load time by
 * route_pattern_check(), and route_matches() relies on what it guarantees:
 *
 *   - a pattern starts with '/';
 *   - a glob segment holds at most one '*', and "**" is only ever the whole
 *     last segment;
 *   - there are at most LV_MAX_CAPTURES wildcards, so captures never overflow.
 *
 * Glob semantics, segment by segment ('/' separates segments):
 *   literal   matches the same bytes;
 *   "*"       matches one non-empty segment;
 *   "a*b"     matches a segment that starts with "a" and ends with "b"; the
 *             '*' part may be empty;
 *   "**"      (last segment only) matches the rest of the path, '/'
 *             included, possibly empty.
 * The path is compared byte for byte: no decoding, no case folding, and a
 * trailing '/' is a segment of its own, empty, which '*' does not match.
 *
 * Purges (a route's `invalidate`, the admin API's url=) use the same globs,
 * but a purge removes one URL or every URL under a prefix: route_purge_shape()
 * says which, widening what neither can express.
 */
#include <string.h>

#include "policy_internal.h"

int route_pattern_check(enum lv_match_kind kind, const char *pat, size_t len, const char **why)
{
	if (len == 0 || pat[0] != '/') {
		*why = "must start with '/'";
		return LV_ERR;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)pat[i];
		if (c <= ' ' || c == 0x7f) {
			*why = "must not contain spaces or control characters";
			return LV_ERR;
		}
		if (c == '?' || c == '#') {
			*why = "matches the path only: remove the '?' query or '#' fragment";
			return LV_ERR;
		}
	}
	if (kind == LV_MATCH_PREFIX) {
		if (memchr(pat, '*', len) != NULL) {
			*why = "a prefix is literal; use match = for '*' wildcards";
			return LV_ERR;
		}
		return LV_OK;
	}

	int wildcards = 0;
	size_t seg = 1; /* start of the current segment, after its '/' */
	for (size_t i = 1; i <= len; i++) {
		if (i < len && pat[i] != '/')
			continue;
		const char *s = pat + seg;
		size_t slen = i - seg;
		const char *star = memchr(s, '*', slen);
		if (star != NULL) {
			bool globstar = slen == 2 && s[0] == '*' && s[1] == '*';
			if (globstar && i != len) {
				*why = "'**' is only allowed as the last segment (e.g. /static/**)";
				return LV_ERR;
			}
			if (!globstar && memchr(star + 1, '*', slen - (size_t)(star - s) - 1) != NULL) {
				*why = "at most one '*' per segment, and '**' only as a whole segment";
				return LV_ERR;
			}
			if (++wildcards > LV_MAX_CAPTURES) {
				*why = "at most 9 wildcards per pattern";
				return LV_ERR;
			}
		}
		seg = i + 1;
	}
	return LV_OK;
}

enum lv_purge_shape route_purge_shape(const char *pat, size_t len, size_t *keep)
{
	const char *star = memchr(pat, '*', len);
	size_t at = star ? (size_t)(star - pat) : len;
	if (star == NULL) {
		*keep = len;
		return LV_PURGE_URL;
	}
	/* the one wildcard is a final "**" segment: exactly the paths under the prefix */
	if (at + 2 == len && star[1] == '*') {
		*keep = at;
		return LV_PURGE_PREFIX;
	}
	/* Back to the segment boundary: Redis tracks prefixes only there, and
	 * a prefix ending mid-segment would leave its entries in Redis. */
	while (at > 0 && pat[at - 1] != '/')
		at--;
	*keep = at;
	return LV_PURGE_WIDER;
}

static bool route_glob(const char *pat, size_t plen, const char *path, size_t len,
                       struct lv_captures *caps)
{
	size_t pi = 0, si = 0;
	int n = 0;

	while (pi < plen) {
		if (pat[pi] == '/') {
			if (si >= len || path[si] != '/')
				return false;
			pi++;
			si++;
			continue;
		}
		const char *pe = memchr(pat + pi, '/', plen - pi);
		size_t pseg = pe ? (size_t)(pe - pat) - pi : plen - pi;
		if (pseg == 2 && pat[pi] == '*' && pat[pi + 1] == '*') {
			if (caps) {
				caps->c[n].off = (uint32_t)si;
				caps->c[n].len = (uint32_t)(len - si);
				caps->n = n + 1;
			}
			return true;
		}
		const char *se = si < len ? memchr(path + si, '/', len - si) : NULL;
		size_t sseg = se ? (size_t)(se - path) - si : len - si;
		const char *star = memchr(pat + pi, '*', pseg);
		if (star == NULL) {
			if (sseg != pseg || memcmp(pat + pi, path + si, pseg) != 0)
				return false;
		} else {
			size_t pre = (size_t)(star - (pat + pi));
			size_t suf = pseg - pre - 1;
			if (sseg < pre + suf || (pseg == 1 && sseg == 0))
				return false;
			if (memcmp(pat + pi, path + si, pre) != 0 ||
			    memcmp(star + 1, path + si + sseg - suf, suf) != 0)
				return false;
			if (caps) {
				caps->c[n].off = (uint32_t)(si + pre);
				caps->c[n].len = (uint32_t)(sseg - pre - suf);
			}
			n++;
		}
		pi += pseg;
		si += sseg;
	}
	if (si != len)
		return false;
	if (caps)
		caps->n = n;
	return true;
}

bool route_matches(const struct lv_route *r, const char *path, size_t len, unsigned method_bit,
                   struct lv_captures *caps)
{
	if ((r->methods & method_bit) == 0)
		return false;
	if (r->kind == LV_MATCH_PREFIX) {
		if (len < r->pattern_len || memcmp(path, r->pattern, r->pattern_len) != 0)
			return false;
		if (caps)
			caps->n = 0;
		return true;
	}
	return route_glob(r->pattern, r->pattern_len, path, len, caps);
}

/* ---- what one pattern says about another (levee check's warnings) ------ */

/* Does every string segment <b> can match also match segment <a>? Neither
 * is "**". A lone '*' takes any non-empty segment; "p*s" takes those that
 * start with p and end with s, apart; a literal, only itself. */
static bool route_seg_covers(const char *a, size_t al, const char *b, size_t bl)
{
	const char *as = memchr(a, '*', al), *bs = memchr(b, '*', bl);
	if (as == NULL)
		return bs == NULL && al == bl && memcmp(a, b, al) == 0;
	if (al == 1)
		return bl > 0;
	/* What every string of <b> starts and ends with: the bytes around its
	 * '*', or for a literal the whole of it (then also long enough). */
	size_t pre = (size_t)(as - a), suf = al - pre - 1;
	size_t head = bs ? (size_t)(bs - b) : bl, tail = bs ? bl - head - 1 : bl;
	return head >= pre && tail >= suf && (bs != NULL || bl >= pre + suf) && memcmp(b, a, pre) == 0 &&
	       memcmp(b + bl - suf, as + 1, suf) == 0;
}

/* Glob <a> against glob <b>, segment by segment; both start with '/'. */
static bool route_glob_covers(const char *a, size_t al, const char *b, size_t bl)
{
	size_t ai = 1, bi = 1;
	for (;;) {
		const char *ae = memchr(a + ai, '/', al - ai), *be = memchr(b + bi, '/', bl - bi);
		size_t an = ae ? (size_t)(ae - a) - ai : al - ai, bn = be ? (size_t)(be - b) - bi : bl - bi;
		if (an == 2 && a[ai] == '*' && a[ai + 1] == '*')
			return true; /* the rest of whatever <b> has here, '/' included */
		if (bn == 2 && b[bi] == '*' && b[bi + 1] == '*')
			return false; /* any depth, which <a> has not */
		if (!route_seg_covers(a + ai, an, b + bi, bn))
			return false;
		if (ae == NULL || be == NULL)
			return ae == NULL && be == NULL;
		ai += an + 1;
		bi += bn + 1;
	}
}

bool route_covers(const struct lv_route *a, const struct lv_route *b)
{
	if (a->pattern_len == 0 || b->pattern_len == 0)
		return false; /* a route whose pattern was refused */
	if (b->kind == LV_MATCH_PREFIX) {
		if (a->kind == LV_MATCH_PREFIX)
			return b->pattern_len >= a->pattern_len && memcmp(b->pattern, a->pattern, a->pattern_len) == 0;
		/* Paths under a prefix go on without bound: only a final "**" takes
		 * them all, when the prefix holds a path its head matches. */
		size_t head = a->pattern_len - 2;
		if (a->pattern_len < 3 || memcmp(a->pattern + head, "**", 2) != 0)
			return false;
		size_t slashes = 0, end = 0;
		for (size_t i = 0; i < head; i++)
			slashes += a->pattern[i] == '/';
		for (; end < b->pattern_len && slashes > 0; end++)
			slashes -= b->pattern[end] == '/';
		return slashes == 0 && route_glob(a->pattern, head, b->pattern, end, NULL);
	}
	if (a->kind == LV_MATCH_PREFIX) {
		/* every path of <b> starts with its bytes before the first '*' */
		const char *star = memchr(b->pattern, '*', b->pattern_len);
		size_t lit = star ? (size_t)(star - b->pattern) : b->pattern_len;
		return lit >= a->pattern_len && memcmp(b->pattern, a->pattern, a->pattern_len) == 0;
	}
	return route_glob_covers(a->pattern, a->pattern_len, b->pattern, b->pattern_len);
}

int route_unmatchable_byte(const struct lv_route *r)
{
	for (size_t i = 0; i < r->pattern_len; i++)
		if ((unsigned char)r->pattern[i] >= 0x80)
			return (unsigned char)r->pattern[i];
	return -1;
}
