/*
 * range.c - Range and If-Range (RFC 9110 §14.1.2, §14.2, §13.1.5).
 *
 *   Range        = ranges-specifier
 *   ranges-specifier = range-unit "=" range-set
 *   range-set    = 1#range-spec
 *   range-spec   = int-range / suffix-range / other-range
 *   int-range    = first-pos "-" [ last-pos ]
 *   suffix-range = "-" suffix-length
 *
 * Invariants: the parser reads each byte of the value at most twice (once to
 * split the list, once for the member) and never writes outside its
 * outputs; a member is one satisfiable or unsatisfiable range only when all
 * of it is digits and one '-'.
 */
#include "http/range.h"

#include <string.h>
#include <strings.h>

static bool range_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Trims OWS off both ends of <*p>..<*end>. */
static void range_trim(const char **p, const char **end)
{
	while (*p < *end && range_ows(**p))
		(*p)++;
	while (*end > *p && range_ows((*end)[-1]))
		(*end)--;
}

static bool range_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool range_tchar(char c)
{
	return range_digit(c) || (unsigned)((c | 0x20) - 'a') < 26u || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Digits at <p> up to <end>, saturating at UINT64_MAX; the position after
 * them, or NULL when there is none. */
static const char *range_number(const char *p, const char *end, uint64_t *out)
{
	uint64_t x = 0;
	const char *s = p;
	for (; p < end && range_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
	}
	*out = x;
	return p == s ? NULL : p;
}

/* One range-spec, <p>..<end>, trimmed. */
static enum range_rc range_spec(const char *p, const char *end, uint64_t len, uint64_t *first, uint64_t *last)
{
	uint64_t a, b;
	if (p < end && *p == '-') {
		/* suffix-range: the last <b> bytes; none of an empty one */
		if (range_number(p + 1, end, &b) != end)
			return RANGE_INVALID;
		if (b == 0 || len == 0)
			return RANGE_UNSATISFIABLE;
		*first = b >= len ? 0 : len - b;
		*last = len - 1;
		return RANGE_OK;
	}
	const char *q = range_number(p, end, &a);
	if (!q || q == end || *q != '-')
		return RANGE_INVALID;
	q++;
	if (q == end) {
		b = UINT64_MAX; /* first-pos "-": to the end */
	} else {
		if (range_number(q, end, &b) != end)
			return RANGE_INVALID;
		if (b < a)
			return RANGE_INVALID; /* §14.1.1: invalid, not unsatisfiable */
	}
	if (a >= len)
		return RANGE_UNSATISFIABLE;
	*first = a;
	*last = b >= len ? len - 1 : b;
	return RANGE_OK;
}

enum range_rc range_parse(const char *v, size_t n, uint64_t len, uint64_t *first, uint64_t *last)
{
	const char *p = v, *end = v + n;
	range_trim(&p, &end);
	const char *eq = memchr(p, '=', (size_t)(end - p));
	if (!eq || eq == p)
		return RANGE_INVALID;
	/* range units are compared case-insensitively (§14.1) */
	if (eq - p != 5 || strncasecmp(p, "bytes", 5) != 0) {
		for (const char *u = p; u < eq; u++)
			if (!range_tchar(*u))
				return RANGE_INVALID; /* not a token */
		return RANGE_OTHER_UNIT;
	}
	enum range_rc rc = RANGE_INVALID;
	unsigned members = 0;
	for (const char *m = eq + 1; m <= end;) {
		const char *comma = memchr(m, ',', (size_t)(end - m));
		const char *me = comma ? comma : end;
		const char *s = m, *e = me;
		range_trim(&s, &e);
		if (s < e) {
			uint64_t f = 0, l = 0;
			enum range_rc one = range_spec(s, e, len, &f, &l);
			if (one == RANGE_INVALID)
				return RANGE_INVALID; /* one bad member spoils the field */
			if (++members == 1) {
				rc = one;
				*first = f;
				*last = l;
			}
		}
		if (!comma)
			break;
		m = comma + 1;
	}
	if (members > 1)
		return RANGE_MULTIPLE;
	return rc;
}

bool range_if_range(const char *v, size_t n, int64_t v_date, const char *etag, size_t etag_len,
                    int64_t last_modified, int64_t date)
{
	const char *ve = v + n, *te = etag + etag_len;
	range_trim(&v, &ve);
	range_trim(&etag, &te);
	n = (size_t)(ve - v);
	if (n && (v[0] == '"' || v[0] == 'W')) {
		/* an entity-tag: strong comparison, so a weak one never matches */
		return n >= 2 && v[0] == '"' && v[n - 1] == '"' && (size_t)(te - etag) == n && memcmp(v, etag, n) == 0;
	}
	if (v_date < 0 || last_modified < 0 || date < 0)
		return false;
	return v_date == last_modified && date - last_modified >= 60;
}
