/*
 * freshness.c - RFC 9111 shared-cache rules; see freshness.h for the
 * invariants. Pure functions: no allocation, no clock, no event loop.
 */
#include "cache/freshness.h"

#include <stddef.h>
#include <string.h>

#include "http/sfv.h"

const char fresh_why_method[] = "method";
const char fresh_why_status[] = "status";
const char fresh_why_partial[] = "partial";
const char fresh_why_no_store[] = "no-store";
const char fresh_why_private[] = "private";
const char fresh_why_set_cookie[] = "set-cookie";
const char fresh_why_authorization[] = "authorization";
const char fresh_why_vary_star[] = "vary-star";
const char fresh_why_no_freshness[] = "no-freshness";

/* ---- small helpers ------------------------------------------------------ */

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* tchar, RFC 9110 §5.6.2 */
static bool is_tchar(char ch)
{
	unsigned char c = (unsigned char)ch;
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

static int64_t clamp_delta(int64_t x)
{
	if (x < 0)
		return 0;
	return x > CC_DELTA_MAX ? CC_DELTA_MAX : x;
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static const char *hval(const struct lv_head *hd, int i, size_t *len)
{
	*len = hd->h[i].value_len;
	return hd->text + hd->h[i].value;
}

static void trim(const char **v, size_t *n)
{
	while (*n && is_ows(**v)) {
		(*v)++;
		(*n)--;
	}
	while (*n && is_ows((*v)[*n - 1]))
		(*n)--;
}

/* delta-seconds (§1.2.2): digits only, saturating at 2^31. -1 if invalid,
 * which includes a sign. */
static int64_t delta_parse(const char *v, size_t n)
{
	if (n == 0)
		return -1;
	int64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(v[i]))
			return -1;
		if (x < CC_DELTA_MAX) /* keeps x below 2^35: no overflow */
			x = x * 10 + (v[i] - '0');
	}
	return x > CC_DELTA_MAX ? CC_DELTA_MAX : x;
}

/* ---- Cache-Control ------------------------------------------------------ */

enum cc_kind {
	CCK_FLAG,      /* value ignored */
	CCK_MIN,       /* delta; invalid → 0; duplicates keep the smallest */
	CCK_MAX_STALE, /* optional delta; invalid → ignored */
	CCK_MIN_FRESH, /* delta; invalid → ignored; duplicates keep the largest */
};

struct cc_def {
	const char *name;
	size_t len;
	enum cc_kind kind;
	unsigned flag;
	size_t off; /* of the int64_t slot in struct cc_directives */
};

#define CC_FLAG(n, f)                                                                              \
	{                                                                                          \
		n, sizeof(n) - 1, CCK_FLAG, f, 0                                                   \
	}
#define CC_DELTA(n, k, field)                                                                      \
	{                                                                                          \
		n, sizeof(n) - 1, k, 0, offsetof(struct cc_directives, field)                      \
	}

static const struct cc_def cc_defs[] = {
        CC_FLAG("no-store", CC_NO_STORE),
        CC_FLAG("no-cache", CC_NO_CACHE),
        CC_FLAG("private", CC_PRIVATE),
        CC_FLAG("public", CC_PUBLIC),
        CC_FLAG("must-revalidate", CC_MUST_REVALIDATE),
        CC_FLAG("proxy-revalidate", CC_PROXY_REVALIDATE),
        CC_FLAG("no-transform", CC_NO_TRANSFORM),
        CC_FLAG("immutable", CC_IMMUTABLE),
        CC_FLAG("only-if-cached", CC_ONLY_IF_CACHED),
        CC_FLAG("must-understand", CC_MUST_UNDERSTAND),
        CC_DELTA("max-age", CCK_MIN, max_age),
        CC_DELTA("s-maxage", CCK_MIN, s_maxage),
        CC_DELTA("stale-while-revalidate", CCK_MIN, swr),
        CC_DELTA("stale-if-error", CCK_MIN, sie),
        CC_DELTA("max-stale", CCK_MAX_STALE, max_stale),
        CC_DELTA("min-fresh", CCK_MIN_FRESH, min_fresh),
};

void cc_init(struct cc_directives *d)
{
	*d = (struct cc_directives){
	        .max_age = CC_ABSENT,
	        .s_maxage = CC_ABSENT,
	        .swr = CC_ABSENT,
	        .sie = CC_ABSENT,
	        .max_stale = CC_ABSENT,
	        .min_fresh = CC_ABSENT,
	};
}

/* <ok> is false when the value was malformed (unterminated quote, junk after
 * it); <has_value> tells whether "=" was present at all. */
static void cc_apply(struct cc_directives *d, const struct cc_def *def, const char *v, size_t n,
                     bool has_value, bool ok)
{
	if (def->kind == CCK_FLAG) {
		d->flags |= def->flag;
		return;
	}
	int64_t *slot = (int64_t *)(void *)((char *)d + def->off);
	int64_t x = (ok && has_value) ? delta_parse(v, n) : -1; /* "-1" is a token: invalid here */
	switch (def->kind) {
	case CCK_FLAG:
		break;
	case CCK_MIN:
		if (x < 0)
			x = 0; /* §1.2.2: an invalid freshness value means stale */
		if (*slot == CC_ABSENT || x < *slot)
			*slot = x;
		break;
	case CCK_MAX_STALE:
		if (!has_value)
			x = CC_DELTA_MAX; /* any staleness */
		if (x < 0)
			break; /* dropping it only makes the cache stricter */
		d->flags |= CC_MAX_STALE;
		if (*slot == CC_ABSENT || x < *slot)
			*slot = x;
		break;
	case CCK_MIN_FRESH:
		if (x > *slot)
			*slot = x;
		break;
	}
}

/* Skips to the next ',' outside a quoted-string (or the end). */
static size_t skip_to_comma(const char *v, size_t len, size_t i)
{
	bool q = false;
	for (; i < len; i++) {
		if (q && v[i] == '\\')
			i++;
		else if (v[i] == '"')
			q = !q;
		else if (!q && v[i] == ',')
			break;
	}
	return i < len ? i : len;
}

void cc_parse(struct cc_directives *d, const char *v, size_t len)
{
	d->present = true;
	size_t i = 0;
	while (i < len) {
		while (i < len && (is_ows(v[i]) || v[i] == ','))
			i++;
		if (i >= len)
			break;
		size_t ns = i;
		while (i < len && is_tchar(v[i]))
			i++;
		size_t nlen = i - ns;
		const char *val = NULL;
		size_t vlen = 0;
		bool has_value = false, ok = true;
		while (i < len && is_ows(v[i]))
			i++;
		if (i < len && v[i] == '=') {
			has_value = true;
			i++;
			while (i < len && is_ows(v[i]))
				i++;
			if (i < len && v[i] == '"') {
				size_t vs = ++i;
				while (i < len && v[i] != '"')
					i += (v[i] == '\\' && i + 1 < len) ? 2 : 1;
				if (i >= len) {
					ok = false; /* unterminated */
				} else {
					val = v + vs;
					vlen = i - vs;
					i++;
				}
			} else {
				size_t vs = i;
				while (i < len && is_tchar(v[i]))
					i++;
				val = v + vs;
				vlen = i - vs;
			}
		}
		while (i < len && is_ows(v[i]))
			i++;
		if (i < len && v[i] != ',') {
			ok = false; /* junk such as "max-age=5 6" */
			i = skip_to_comma(v, len, i);
		}
		if (nlen == 0)
			continue;
		for (size_t k = 0; k < sizeof(cc_defs) / sizeof(cc_defs[0]); k++) {
			if (token_eq(v + ns, nlen, cc_defs[k].name, cc_defs[k].len)) {
				cc_apply(d, &cc_defs[k], val, vlen, has_value, ok);
				break;
			}
		}
	}
}

void cc_from_head(struct cc_directives *d, const struct lv_head *hd)
{
	cc_init(d);
	for (int i = head_find(hd, LIT("cache-control"), 0); i >= 0;
	     i = head_find(hd, LIT("cache-control"), i + 1)) {
		size_t n;
		const char *v = hval(hd, i, &n);
		cc_parse(d, v, n);
	}
}

/* ---- targeted fields (RFC 9213) ---------------------------------------- */

#define CC_NDEFS (sizeof(cc_defs) / sizeof(cc_defs[0]))
/* directives that only ever make levee store or reuse less */
#define CC_RESTRICTS (CC_NO_STORE | CC_NO_CACHE | CC_PRIVATE | CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE)

/* The last value of each directive levee knows, while a field is parsed. */
struct cc_sf {
	bool seen[CC_NDEFS];
	struct sfv_bare v[CC_NDEFS];
};

static void cc_sf_member(const char *key, size_t len, const struct sfv_item *it, void *arg)
{
	struct cc_sf *acc = arg;
	for (size_t k = 0; k < CC_NDEFS; k++) {
		if (len == cc_defs[k].len && memcmp(key, cc_defs[k].name, len) == 0) {
			acc->seen[k] = true;
			acc->v[k] = it->v;
			return;
		}
	}
}

/* One directive of a targeted field onto <d>, fresh from cc_init(). */
static void cc_sf_apply(struct cc_directives *d, const struct cc_def *def, const struct sfv_bare *v)
{
	bool yes = v->type == SFV_BOOLEAN && v->num;
	if (def->kind == CCK_FLAG || (def->kind == CCK_MAX_STALE && yes)) {
		if (yes || (def->flag & CC_RESTRICTS))
			cc_apply(d, def, NULL, 0, false, true);
		return;
	}
	if (v->type != SFV_INTEGER || v->num < 0)
		return; /* "60", 1.5, -1: not delta-seconds */
	int64_t *slot = (int64_t *)(void *)((char *)d + def->off);
	*slot = v->num > CC_DELTA_MAX ? CC_DELTA_MAX : v->num;
	if (def->kind == CCK_MAX_STALE)
		d->flags |= CC_MAX_STALE;
}

/* Field <name> of <resp>: its one line, or its non-empty lines joined by
 * ", " in <buf> (RFC 9110 §5.3), OWS trimmed. NULL when absent or longer
 * than <cap>. */
static const char *cc_field_value(const struct lv_head *resp, const char *name, size_t nlen,
                                  char *buf, size_t cap, size_t *len)
{
	int i = head_find(resp, name, nlen, 0);
	if (i < 0)
		return NULL;
	const char *v = hval(resp, i, len);
	trim(&v, len);
	if (head_find(resp, name, nlen, i + 1) < 0)
		return *len <= cap ? v : NULL;
	size_t o = 0;
	for (; i >= 0; i = head_find(resp, name, nlen, i + 1)) {
		size_t n;
		const char *p = hval(resp, i, &n);
		trim(&p, &n);
		if (n == 0)
			continue;
		if (o + n + 2 > cap)
			return NULL;
		if (o) {
			buf[o++] = ',';
			buf[o++] = ' ';
		}
		memcpy(buf + o, p, n);
		o += n;
	}
	*len = o;
	return buf;
}

void cc_for_storage(struct cc_directives *d, const struct lv_head *resp, const char *fields)
{
	char buf[CC_TARGETED_MAX];
	for (const char *f = fields ? fields : ""; *f;) {
		size_t nlen = strcspn(f, ","), len = 0;
		const char *v = cc_field_value(resp, f, nlen, buf, sizeof(buf), &len);
		f += nlen + (f[nlen] == ',');
		if (v == NULL)
			continue;
		struct cc_sf acc = {0};
		if (sfv_dict_parse(v, len, cc_sf_member, &acc) <= 0)
			continue; /* invalid or empty: as if absent (§2.1) */
		cc_init(d);
		d->present = d->targeted = true;
		for (size_t k = 0; k < CC_NDEFS; k++)
			if (acc.seen[k])
				cc_sf_apply(d, &cc_defs[k], &acc.v[k]);
		return;
	}
	cc_from_head(d, resp);
}

static void pragma_token(const char *t, size_t n, void *arg)
{
	if (token_eq(t, n, LIT("no-cache")))
		*(bool *)arg = true;
}

void cc_from_request(struct cc_directives *d, const struct lv_head *req)
{
	cc_from_head(d, req);
	if (d->present)
		return; /* Cache-Control overrides Pragma */
	bool no_cache = false;
	for (int i = head_find(req, LIT("pragma"), 0); i >= 0;
	     i = head_find(req, LIT("pragma"), i + 1)) {
		size_t n;
		const char *v = hval(req, i, &n);
		head_each_token(v, n, pragma_token, &no_cache);
	}
	if (no_cache)
		d->flags |= CC_NO_CACHE;
}

/* ---- HTTP dates --------------------------------------------------------- */

static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const day_short[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const day_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};

/* Howard Hinnant's days_from_civil / civil_from_days: exact for the
 * proleptic Gregorian calendar, no libc time zone involved. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && leap(y) ? 29 : dm[m - 1];
}

struct dcur {
	const char *p, *e;
};

static bool d_char(struct dcur *c, char ch)
{
	if (c->p < c->e && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

/* Exactly <n> digits. */
static bool d_num(struct dcur *c, int n, int *out)
{
	if (c->e - c->p < n)
		return false;
	int x = 0;
	for (int i = 0; i < n; i++) {
		if (!is_digit(c->p[i]))
			return false;
		x = x * 10 + (c->p[i] - '0');
	}
	c->p += n;
	*out = x;
	return true;
}

/* Matches one of <names> followed by a non-letter; returns its index or -1. */
static int d_word(struct dcur *c, const char *const *names, int count)
{
	size_t n = 0;
	while (c->p + n < c->e && ((c->p[n] | 0x20) >= 'a' && (c->p[n] | 0x20) <= 'z'))
		n++;
	for (int i = 0; i < count; i++) {
		if (token_eq(c->p, n, names[i], strlen(names[i]))) {
			c->p += n;
			return i;
		}
	}
	return -1;
}

static int d_month(struct dcur *c)
{
	int m = d_word(c, month_names, 12);
	return m < 0 ? -1 : m + 1;
}

static bool d_time(struct dcur *c, int *h, int *mi, int *s)
{
	return d_num(c, 2, h) && d_char(c, ':') && d_num(c, 2, mi) && d_char(c, ':') &&
	       d_num(c, 2, s) && *h <= 23 && *mi <= 59 && *s <= 60; /* 60: leap second */
}

static bool d_gmt(struct dcur *c)
{
	if (c->e - c->p < 3 || !token_eq(c->p, 3, LIT("GMT")))
		return false;
	c->p += 3;
	return true;
}

int64_t http_date_parse(const char *s, size_t len)
{
	trim(&s, &len);
	struct dcur c = {s, s + len};
	int y = 0, m = 0, d = 0, h = 0, mi = 0, sec = 0;
	bool ok;
	if (d_word(&c, day_short, 7) >= 0) {
		if (d_char(&c, ',')) {
			/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
			ok = d_char(&c, ' ') && d_num(&c, 2, &d) && d_char(&c, ' ') &&
			     (m = d_month(&c)) > 0 && d_char(&c, ' ') && d_num(&c, 4, &y) &&
			     d_char(&c, ' ') && d_time(&c, &h, &mi, &sec) && d_char(&c, ' ') &&
			     d_gmt(&c);
		} else {
			/* asctime: Sun Nov  6 08:49:37 1994 */
			ok = d_char(&c, ' ') && (m = d_month(&c)) > 0 && d_char(&c, ' ') &&
			     (d_char(&c, ' ') ? d_num(&c, 1, &d) : d_num(&c, 2, &d)) &&
			     d_char(&c, ' ') && d_time(&c, &h, &mi, &sec) && d_char(&c, ' ') &&
			     d_num(&c, 4, &y);
		}
	} else if (d_word(&c, day_long, 7) >= 0) {
		/* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
		ok = d_char(&c, ',') && d_char(&c, ' ') && d_num(&c, 2, &d) && d_char(&c, '-') &&
		     (m = d_month(&c)) > 0 && d_char(&c, '-') && d_num(&c, 2, &y) &&
		     d_char(&c, ' ') && d_time(&c, &h, &mi, &sec) && d_char(&c, ' ') && d_gmt(&c);
		y += y < 70 ? 2000 : 1900;
	} else {
		return -1;
	}
	if (!ok || c.p != c.e || d < 1 || d > days_in_month(y, m))
		return -1;
	if (y < 1970)
		return 0;
	return days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + sec;
}

static char *put_num(char *p, int64_t x, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + x % 10);
		x /= 10;
	}
	return p + width;
}

size_t http_date_format(int64_t t, char out[32])
{
	const int64_t max = INT64_C(253402300799); /* 9999-12-31T23:59:59Z */
	if (t < 0)
		t = 0;
	if (t > max)
		t = max;
	int64_t days = t / 86400, rem = t % 86400, y;
	int m, d;
	civil_from_days(days, &y, &m, &d);
	char *p = out;
	memcpy(p, day_short[(days + 4) % 7], 3); /* 1970-01-01 was a Thursday */
	p += 3;
	*p++ = ',';
	*p++ = ' ';
	p = put_num(p, d, 2);
	*p++ = ' ';
	memcpy(p, month_names[m - 1], 3);
	p += 3;
	*p++ = ' ';
	p = put_num(p, y, 4);
	*p++ = ' ';
	p = put_num(p, rem / 3600, 2);
	*p++ = ':';
	p = put_num(p, rem / 60 % 60, 2);
	*p++ = ':';
	p = put_num(p, rem % 60, 2);
	memcpy(p, " GMT", 5);
	return HTTP_DATE_LEN;
}

/* ---- evaluating a response ---------------------------------------------- */

/* First <name> line parsed as a date; -1 if absent or invalid. */
static int64_t head_date(const struct lv_head *hd, const char *name, size_t name_len)
{
	int i = head_find(hd, name, name_len, 0);
	if (i < 0)
		return -1;
	size_t n;
	const char *v = hval(hd, i, &n);
	return http_date_parse(v, n);
}

/* Age (§5.1): the first member of the first line; an invalid value is
 * ignored. */
static int64_t head_age(const struct lv_head *hd)
{
	int i = head_find(hd, LIT("age"), 0);
	if (i < 0)
		return 0;
	size_t n;
	const char *v = hval(hd, i, &n);
	const char *comma = memchr(v, ',', n);
	if (comma)
		n = (size_t)(comma - v);
	trim(&v, &n);
	int64_t a = delta_parse(v, n);
	return a < 0 ? 0 : a;
}

/* RFC 9110 §15.1. 206 is here for the heuristic itself: a 206 is never
 * stored. 501 is stored on origin-mode routes only (status_why()). */
bool fresh_status_heuristic(unsigned s)
{
	switch (s) {
	case 200:
	case 203:
	case 204:
	case 206:
	case 300:
	case 301:
	case 308:
	case 404:
	case 405:
	case 410:
	case 414:
	case 501:
		return true;
	default:
		return false;
	}
}

bool fresh_status_understood(unsigned s)
{
	if (s >= 200 && s <= 206)
		return true;
	if (s >= 300 && s <= 308)
		return s != 304 && s != 306;
	if (s >= 400 && s <= 417)
		return true;
	if (s >= 500 && s <= 505)
		return true;
	switch (s) {
	case 421:
	case 422:
	case 426:
	case 428:
	case 429:
	case 431:
	case 451:
		return true;
	default:
		return false;
	}
}

struct vary_acc {
	char *out;
	size_t cap, len;
	bool star, too_long;
};

static void vary_token(const char *t, size_t n, void *arg);

static void vary_scan(const struct lv_head *resp, struct vary_acc *a)
{
	for (int i = head_find(resp, LIT("vary"), 0); i >= 0;
	     i = head_find(resp, LIT("vary"), i + 1)) {
		size_t n;
		const char *v = hval(resp, i, &n);
		head_each_token(v, n, vary_token, a);
	}
}

static const char *status_why(const struct lv_head *resp, const struct cc_directives *rs,
                              const struct fresh_options *opt)
{
	unsigned s = resp->status;
	if (s == 206)
		return fresh_why_partial;
	if (s < 200 || s == 304 || s > 999)
		return fresh_why_status;
	bool understood = fresh_status_understood(s);
	if ((rs->flags & CC_MUST_UNDERSTAND) && !understood)
		return fresh_why_status; /* §5.2.2.3 */
	if (opt->origin_mode && opt->any_status)
		return NULL; /* §3: its freshness decides (origin_freshness) */
	/* a 5xx is a passing failure, never pinned, but for the one RFC 9110
	 * §15.1 makes cacheable by default, which an origin-mode route stores
	 * as the RFC says (a fixed TTL would pin it whatever the origin said) */
	if ((s >= 500 && !(opt->origin_mode && s == 501)) || !understood)
		return fresh_why_status;
	if (!opt->origin_mode && !fresh_status_heuristic(s))
		return fresh_why_status;
	return NULL;
}

/* The safety rules, which hold in both modes (§3, §3.5, §4.1). */
static const char *safety_why(const struct lv_head *req, const struct lv_head *resp,
                              const struct cc_directives *rq, const struct cc_directives *rs,
                              const struct fresh_options *opt)
{
	if (req->method != HEAD_METHOD_GET)
		return fresh_why_method;
	const char *why = status_why(resp, rs, opt);
	if (why)
		return why;
	/* must-understand with a status understood (status_why): the
	 * response's no-store gives way; the request's never does */
	unsigned rs_no_store = (rs->flags & CC_MUST_UNDERSTAND) ? 0 : rs->flags & CC_NO_STORE;
	if ((rq->flags & CC_NO_STORE) || rs_no_store)
		return fresh_why_no_store;
	if (rs->flags & CC_PRIVATE)
		return fresh_why_private;
	if (!opt->allow_set_cookie && head_find(resp, LIT("set-cookie"), 0) >= 0)
		return fresh_why_set_cookie;
	if (!opt->allow_authorization && head_find(req, LIT("authorization"), 0) >= 0 &&
	    !(rs->flags & (CC_MUST_REVALIDATE | CC_PUBLIC)) && rs->s_maxage == CC_ABSENT)
		return fresh_why_authorization;
	struct vary_acc va = {0};
	vary_scan(resp, &va);
	if (va.star)
		return fresh_why_vary_star;
	return NULL;
}

/* Freshness from the origin's own headers (§4.2.1, §4.2.2). Returns false
 * when nothing lets the response be reused. */
static bool origin_freshness(const struct lv_head *resp, const struct cc_directives *rs,
                             const struct fresh_options *opt, struct fresh_eval *out)
{
	struct fresh_stored *st = &out->st;
	bool validator = out->has_etag || out->last_modified >= 0;
	bool explicit_reval = (rs->flags & (CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE)) != 0;
	st->must_revalidate = explicit_reval || rs->s_maxage != CC_ABSENT;
	st->no_cache = (rs->flags & CC_NO_CACHE) != 0;

	bool heuristic_ok = fresh_status_heuristic(resp->status) || (rs->flags & CC_PUBLIC);
	int ex = rs->targeted ? -1 : head_find(resp, LIT("expires"), 0); /* RFC 9213 §2.1 */
	if (rs->s_maxage != CC_ABSENT) {
		st->lifetime = rs->s_maxage;
	} else if (rs->max_age != CC_ABSENT) {
		st->lifetime = rs->max_age;
	} else if (ex >= 0) {
		int64_t exp = -1;
		if (head_find(resp, LIT("expires"), ex + 1) < 0) /* two lines: §4.2.1, stale */
			exp = head_date(resp, LIT("expires"));
		st->lifetime =
		        exp < 0 ? 0 : clamp_delta(exp - out->date); /* §5.3: invalid = expired */
	} else if (heuristic_ok && out->last_modified >= 0 && opt->heuristic_max > 0) {
		int64_t h = clamp_delta((out->date - out->last_modified) / 10);
		st->lifetime = h > opt->heuristic_max ? opt->heuristic_max : h;
		out->heuristic = true;
	} else if (heuristic_ok && st->no_cache && validator) {
		st->lifetime = 0;
	} else {
		return false;
	}

	if (st->no_cache || explicit_reval) {
		st->swr = st->sie = 0; /* §4.2.4: no stale responses at all */
	} else if (st->must_revalidate) {
		/* only s-maxage's implied proxy-revalidate: the origin's own
		 * RFC 5861 windows are the more specific instruction */
		st->swr = clamp_delta(rs->swr);
		st->sie = clamp_delta(rs->sie);
	} else {
		st->swr = clamp_delta(max64(rs->swr, opt->route_swr));
		st->sie = clamp_delta(max64(rs->sie, opt->route_sie));
	}
	return true;
}

void fresh_evaluate(const struct lv_head *req, const struct lv_head *resp, int64_t request_time,
                    int64_t response_time, const struct fresh_options *opt, struct fresh_eval *out)
{
	struct cc_directives rq, rs;
	cc_from_request(&rq, req);
	cc_for_storage(&rs, resp, opt->cc_fields);

	*out = (struct fresh_eval){0};
	out->st.response_time = response_time;
	out->date = head_date(resp, LIT("date"));
	if (out->date < 0)
		out->date = response_time;
	out->last_modified = head_date(resp, LIT("last-modified"));
	out->has_etag = head_find(resp, LIT("etag"), 0) >= 0;

	/* §4.2.3 */
	int64_t apparent_age = max64(0, response_time - out->date);
	int64_t response_delay = max64(0, response_time - request_time);
	int64_t corrected_age = head_age(resp) + response_delay;
	out->st.initial_age = clamp_delta(max64(apparent_age, corrected_age));

	if (opt->origin_mode) {
		if (!origin_freshness(resp, &rs, opt, out))
			out->why_not = fresh_why_no_freshness;
	} else {
		out->st.lifetime = clamp_delta(opt->fixed_ttl);
		out->st.swr = clamp_delta(opt->route_swr);
		out->st.sie = clamp_delta(opt->route_sie);
	}
	/* the safety rules outrank a missing freshness in the reported reason */
	const char *why = safety_why(req, resp, &rq, &rs, opt);
	if (why)
		out->why_not = why;
	out->storable = out->why_not == NULL;
}

/* ---- reusing a stored response ------------------------------------------ */

int64_t fresh_current_age(int64_t initial_age, int64_t stored_at, int64_t now)
{
	int64_t resident = max64(0, now - stored_at);
	return clamp_delta(clamp_delta(initial_age) + clamp_delta(resident));
}

void fresh_stretch(struct fresh_stored *st, uint64_t factor)
{
	int64_t lt = clamp_delta(st->lifetime);
	if (factor <= 1 || lt == 0)
		return;
	/* lt <= 2^31, so lt * factor fits unless factor is over 2^31 */
	st->lifetime = factor >= (uint64_t)CC_DELTA_MAX || lt > CC_DELTA_MAX / (int64_t)factor
	                   ? CC_DELTA_MAX
	                   : lt * (int64_t)factor;
}

enum fresh_state fresh_state(const struct fresh_stored *st, const struct cc_directives *req_cc,
                             int64_t now)
{
	static const struct cc_directives none = {
	        .max_age = CC_ABSENT,
	        .s_maxage = CC_ABSENT,
	        .swr = CC_ABSENT,
	        .sie = CC_ABSENT,
	        .max_stale = CC_ABSENT,
	        .min_fresh = CC_ABSENT,
	};
	const struct cc_directives *rq = req_cc ? req_cc : &none;
	int64_t age = fresh_current_age(st->initial_age, st->response_time, now);
	int64_t left = st->lifetime - age; /* > 0 while fresh (§4.2) */
	bool fresh = left > 0;

	/* §5.2.2.4 and §5.2.1.4: validation first, no stale fallback */
	if (st->no_cache || (rq->flags & CC_NO_CACHE))
		return FRESH_STALE_REVALIDATE;

	bool wanted = true; /* within the client's own limits (§5.2.1.1, §5.2.1.3) */
	if (rq->max_age != CC_ABSENT && age > rq->max_age)
		wanted = false;
	if (rq->min_fresh != CC_ABSENT && left < rq->min_fresh)
		wanted = false;

	if (wanted) {
		if (fresh)
			return FRESH_OK;
		/* §5.2.1.2; must-revalidate outranks the client (§5.2.2.2) */
		if ((rq->flags & CC_MAX_STALE) && !st->must_revalidate && -left <= rq->max_stale)
			return FRESH_OK;
		if (-left < st->swr)
			return FRESH_STALE_SWR;
	}
	if (fresh || -left < st->sie)
		return FRESH_STALE_SIE;
	return FRESH_STALE_REVALIDATE;
}

/* ---- Vary --------------------------------------------------------------- */

/* Compares the lowercase <e> with the lowercased <t>. */
static int cmp_lower(const char *e, size_t en, const char *t, size_t tn)
{
	size_t n = en < tn ? en : tn;
	for (size_t i = 0; i < n; i++) {
		char a = e[i], b = lower(t[i]);
		if (a != b)
			return (unsigned char)a < (unsigned char)b ? -1 : 1;
	}
	return en == tn ? 0 : (en < tn ? -1 : 1);
}

/* Inserts one Vary member into the sorted, deduplicated list. */
static void vary_token(const char *t, size_t n, void *arg)
{
	struct vary_acc *a = arg;
	if (n == 1 && t[0] == '*') {
		a->star = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!is_tchar(t[i])) {
			a->star = true; /* not a field name: it could vary on anything */
			return;
		}
	}
	size_t pos = 0;
	while (pos < a->len) {
		const char *end = memchr(a->out + pos, ',', a->len - pos);
		size_t en = end ? (size_t)(end - (a->out + pos)) : a->len - pos;
		int c = cmp_lower(a->out + pos, en, t, n);
		if (c == 0)
			return;
		if (c > 0)
			break;
		pos += en + 1;
	}
	if (pos > a->len)
		pos = a->len; /* appending after the last name */
	size_t add = n + (a->len ? 1 : 0);
	if (a->too_long || a->len + add + 1 > a->cap) {
		a->too_long = true;
		return;
	}
	char *at = a->out + pos;
	if (pos < a->len) {
		/* "name," goes in front of a later name */
		memmove(at + n + 1, at, a->len - pos);
		at[n] = ',';
	} else if (a->len) {
		*at++ = ','; /* ",name" at the end */
	}
	for (size_t i = 0; i < n; i++)
		at[i] = lower(t[i]);
	a->len += add;
	a->out[a->len] = '\0';
}

enum vary_kind vary_names(const struct lv_head *resp, char *out, size_t cap, size_t *len)
{
	struct vary_acc a = {.out = out, .cap = cap};
	if (cap)
		out[0] = '\0';
	vary_scan(resp, &a);
	*len = 0;
	if (a.star)
		return VARY_STAR;
	if (a.too_long)
		return VARY_TOO_LONG;
	if (a.len == 0)
		return VARY_NONE;
	*len = a.len;
	return VARY_LIST;
}

/* ---- conditional requests ----------------------------------------------- */

static void strip_weak(const char **t, size_t *n)
{
	if (*n >= 2 && (*t)[0] == 'W' && (*t)[1] == '/') {
		*t += 2;
		*n -= 2;
	}
}

/* If-None-Match line against the stored opaque-tag, weak comparison (RFC 9110
 * §8.8.3.2). A malformed member ends the scan without a match, so the client
 * gets a full response rather than a wrong 304. */
static bool inm_match(const char *v, size_t n, const char *tag, size_t tag_len)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (is_ows(v[i]) || v[i] == ','))
			i++;
		if (i >= n)
			break;
		if (v[i] == '*') {
			size_t j = i + 1;
			while (j < n && is_ows(v[j]))
				j++;
			return j == n || v[j] == ','; /* a representation is stored */
		}
		if (n - i >= 2 && v[i] == 'W' && v[i + 1] == '/')
			i += 2;
		if (i >= n || v[i] != '"')
			return false;
		size_t s = i++;
		while (i < n && v[i] != '"') /* etagc excludes '"' but not ',' */
			i++;
		if (i >= n)
			return false;
		i++;
		if (tag_len && i - s == tag_len && memcmp(v + s, tag, tag_len) == 0)
			return true;
	}
	return false;
}

bool cond_not_modified(const struct lv_head *req, const char *etag, size_t etag_len,
                       int64_t last_modified)
{
	if (req->method != HEAD_METHOD_GET && req->method != HEAD_METHOD_HEAD)
		return false;
	int i = head_find(req, LIT("if-none-match"), 0);
	if (i >= 0) {
		/* RFC 9110 §13.1.3: If-Modified-Since is ignored when
		 * If-None-Match is present */
		trim(&etag, &etag_len);
		strip_weak(&etag, &etag_len);
		for (; i >= 0; i = head_find(req, LIT("if-none-match"), i + 1)) {
			size_t n;
			const char *v = hval(req, i, &n);
			if (inm_match(v, n, etag, etag_len))
				return true;
		}
		return false;
	}
	i = head_find(req, LIT("if-modified-since"), 0);
	if (i < 0 || last_modified < 0 || head_find(req, LIT("if-modified-since"), i + 1) >= 0)
		return false; /* absent, nothing to compare, or more than one member */
	size_t n;
	const char *v = hval(req, i, &n);
	int64_t ims = http_date_parse(v, n);
	return ims >= 0 && last_modified <= ims;
}

bool cond_has_preconditions(const struct lv_head *req)
{
	return head_find(req, LIT("if-none-match"), 0) >= 0 ||
	       head_find(req, LIT("if-modified-since"), 0) >= 0 ||
	       head_find(req, LIT("if-match"), 0) >= 0 ||
	       head_find(req, LIT("if-unmodified-since"), 0) >= 0;
}

bool cond_has_conditionals(const struct lv_head *req)
{
	return cond_has_preconditions(req) || head_find(req, LIT("if-range"), 0) >= 0;
}
