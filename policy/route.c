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
