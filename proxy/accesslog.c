#include "accesslog.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* How each field is written: its bound once escaped, and whether the text
 * format quotes it (free text from a client, which may hold blanks). The
 * bounds add up to well under ALOG_LINE_MAX, so a line is never cut but
 * field by field. A numeric field's bound holds any uint64_t (20 digits,
 * 24 with a fraction); a time's, its 24 bytes and quotes. */
static const struct {
	uint16_t max;
	bool quoted;
} alog_field_info[LV_AF__COUNT] = {
    [LV_AF_TIME] = {32, false},          [LV_AF_REQUEST_ID] = {256, false},
    [LV_AF_CLIENT] = {64, false},        [LV_AF_METHOD] = {64, false},
    [LV_AF_HOST] = {256, true},          [LV_AF_TARGET] = {2048, true},
    [LV_AF_PROTOCOL] = {32, false},      [LV_AF_STATUS] = {24, false},
    [LV_AF_BYTES_IN] = {24, false},      [LV_AF_BYTES_SENT] = {24, false},
    [LV_AF_REQUEST_MS] = {32, false},    [LV_AF_UPSTREAM_MS] = {32, false},
    [LV_AF_UPSTREAM_ADDR] = {64, false}, [LV_AF_ROUTE] = {64, false},
    [LV_AF_CACHE] = {16, false},         [LV_AF_CACHE_LAYER] = {4, false},
    [LV_AF_CACHE_STATUS] = {176, true},  [LV_AF_OUTCOME] = {32, false},
    [LV_AF_REASON] = {48, false},        [LV_AF_SHED] = {16, false},
    [LV_AF_FALLBACK] = {16, false},      [LV_AF_TIER] = {64, false},
    [LV_AF_BULKHEAD] = {64, false},      [LV_AF_BREAKER] = {64, false},
    [LV_AF_BREAKER_STATE] = {16, false}, [LV_AF_USER_AGENT] = {512, true},
    [LV_AF_FORWARDED_FOR] = {512, true}, [LV_AF_REFERER] = {512, true},
    [LV_AF_ORIG_DST] = {64, false},
};

size_t alog_field_max(enum lv_alog_field f)
{
	return alog_field_info[f].max;
}

void alog_set_cstr(struct alog_entry *e, enum lv_alog_field f, const char *s)
{
	if (s)
		alog_set_str(e, f, s, strlen(s));
	else
		e->v[f].kind = ALOG_ABSENT;
}

size_t alog_escape(char *dst, size_t cap, const char *s, size_t n, enum lv_alog_format fmt, bool quoted,
                   bool *cut)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	*cut = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];
		size_t el;
		if (c == '"' && !quoted && fmt == LV_ALOG_TEXT) {
			el = 0; /* written as \x22 below: no quote outside quotes */
		} else if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			el = 2;
		} else if (c > ' ' && c < 0x7f) {
			esc[0] = (char)c;
			el = 1;
		} else if (c == ' ' && (quoted || fmt == LV_ALOG_JSON)) {
			esc[0] = ' ';
			el = 1;
		} else {
			el = 0;
		}
		if (el == 0 && fmt == LV_ALOG_JSON) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			el = 6;
		} else if (el == 0) {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[c >> 4];
			esc[3] = hex[c & 15];
			el = 4;
		}
		if (o + el > cap) {
			*cut = true;
			break;
		}
		memcpy(dst + o, esc, el);
		o += el;
	}
	return o;
}

/* <u> in decimal at <dst> (at most 20 bytes); returns the bytes written. */
static size_t alog_u64(char *dst, uint64_t u)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	for (size_t i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	return n;
}

/* RFC 3339 UTC with milliseconds (24 bytes). The date and time of day are
 * formatted once a second per thread: lines come many to a second. */
static size_t alog_time(char *dst, uint64_t unix_us)
{
	static __thread uint64_t cached_sec = UINT64_MAX;
	static __thread char cached[64]; /* "2026-12-02T10:48:35": 19 bytes; larger for the compiler's worst case */
	uint64_t sec = unix_us / 1000000;
	if (sec != cached_sec) {
		time_t t = (time_t)sec;
		struct tm tm;
		gmtime_r(&t, &tm);
		/* the year has 4 digits for any time a clock gives */
		snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
		         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		cached_sec = sec;
	}
	unsigned ms = (unsigned)(unix_us / 1000 % 1000);
	memcpy(dst, cached, 19);
	dst[19] = '.';
	dst[20] = (char)('0' + ms / 100);
	dst[21] = (char)('0' + ms / 10 % 10);
	dst[22] = (char)('0' + ms % 10);
	dst[23] = 'Z';
	return 24;
}

/* A value as its field's bound allows; *cut when it did not all fit. */
static size_t alog_value_write(char *dst, enum lv_alog_field f, enum lv_alog_format fmt, const struct alog_value *v,
                               bool *cut)
{
	bool quoted = fmt == LV_ALOG_JSON || alog_field_info[f].quoted;
	size_t max = alog_field_info[f].max;
	size_t o = 0;
	*cut = false;
	switch (v->kind) {
	case ALOG_ABSENT:
		break;
	case ALOG_STR:
		if (quoted)
			dst[o++] = '"';
		if (v->n == 0 && !quoted) {
			dst[o++] = '-'; /* an empty word would shift the fields after it */
			return o;
		}
		o += alog_escape(dst + o, max, v->s, v->n, fmt, quoted, cut);
		if (quoted)
			dst[o++] = '"';
		return o;
	case ALOG_UINT:
		return alog_u64(dst, v->u); /* every numeric field's bound holds 20 digits */
	case ALOG_USEC:
		o = alog_u64(dst, v->u / 1000);
		dst[o++] = '.';
		dst[o++] = (char)('0' + v->u % 1000 / 100);
		dst[o++] = (char)('0' + v->u % 100 / 10);
		dst[o++] = (char)('0' + v->u % 10);
		return o;
	case ALOG_TIME:
		if (quoted)
			dst[o++] = '"';
		o += alog_time(dst + o, v->u);
		if (quoted)
			dst[o++] = '"';
		return o;
	}
	dst[0] = '-'; /* text only: JSON leaves the field out */
	return 1;
}

size_t alog_format(char *dst, const struct lv_alog_fields *fields, enum lv_alog_format fmt,
                   const struct alog_entry *e)
{
	bool json = fmt == LV_ALOG_JSON;
	uint32_t cut_mask = 0;
	size_t o = 0;
	if (json)
		dst[o++] = '{';
	for (unsigned i = 0; i < fields->n; i++) {
		enum lv_alog_field f = fields->f[i];
		const char *name = lv_alog_field_names[f];
		/* room for this field at its largest, and for the tail: the
		 * truncated list and the line's end */
		size_t need = strlen(name) + 8 + alog_field_info[f].max;
		size_t tail = json ? 16 + (size_t)LV_AF__COUNT * 20 : 8;
		if (o + need + tail > ALOG_LINE_MAX)
			break; /* never, with the bounds above; a line ends whole all the same */
		if (json && e->v[f].kind == ALOG_ABSENT)
			continue; /* a JSON line leaves out what the request did not have */
		if (o > 1 || (!json && i))
			dst[o++] = json ? ',' : ' ';
		if (json) {
			size_t nl = strlen(name);
			dst[o++] = '"';
			memcpy(dst + o, name, nl);
			o += nl;
			dst[o++] = '"';
			dst[o++] = ':';
		}
		bool cut;
		o += alog_value_write(dst + o, f, fmt, &e->v[f], &cut);
		if (cut) {
			cut_mask |= 1u << f;
			if (!json) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
		}
	}
	if (json) {
		if (cut_mask) {
			o += (size_t)sprintf(dst + o, "%s\"truncated\":[", o > 1 ? "," : "");
			const char *sep = "";
			for (unsigned f = 0; f < LV_AF__COUNT; f++)
				if (cut_mask & (1u << f)) {
					o += (size_t)sprintf(dst + o, "%s\"%s\"", sep, lv_alog_field_names[f]);
					sep = ",";
				}
			dst[o++] = ']';
		}
		dst[o++] = '}';
	}
	dst[o++] = '\n';
	return o;
}

/* The value of `name=` among "a; name=v; b" parameters (up to the end of
 * the string or of its line), NULL if absent; a bare `name` (an sf-boolean
 * true) has the empty value. */
static const char *param(const char *params, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	for (const char *p = params; *p && *p != '\r' && *p != '\n';) {
		while (*p == ' ' || *p == ';')
			p++;
		size_t pl = strcspn(p, ";\r\n"); /* a header line's own end stops it too */
		if (pl >= nl && memcmp(p, name, nl) == 0 && (pl == nl || p[nl] == '=')) {
			*len = pl == nl ? 0 : pl - nl - 1;
			return pl == nl ? p + nl : p + nl + 1;
		}
		p += pl;
	}
	return NULL;
}

static bool is(const char *v, size_t n, const char *word)
{
	return v && strlen(word) == n && memcmp(v, word, n) == 0;
}

const char *alog_cache_outcome(const char *params, const char **layer)
{
	*layer = NULL;
	if (!params || !*params)
		return NULL;
	size_t n = 0;
	const char *fwd = param(params, "fwd", &n);
	size_t dn = 0;
	const char *detail = param(params, "detail", &dn);
	if (!fwd) {
		/* a hit: "hit" or "hit; detail=..." */
		if (strncmp(params, "hit", 3) != 0)
			return NULL;
		if (is(detail, dn, "stale") || is(detail, dn, "stale-if-error") || is(detail, dn, "tier-stale") ||
		    is(detail, dn, "fallback")) {
			*layer = "l1";
			return "stale";
		}
		*layer = is(detail, dn, "l2") ? "l2" : "l1";
		return "hit";
	}
	if (is(fwd, n, "bypass") || is(fwd, n, "request"))
		return "bypass";
	if (is(fwd, n, "stale")) {
		size_t sn = 0;
		const char *st = param(params, "fwd-status", &sn);
		/* levee's own revalidation: the copy answered, refreshed
		 * (stored) or as it was (a tier forbade the store); a 304
		 * to the client's own conditional carries detail=status */
		size_t on = 0;
		const char *stored = param(params, "stored", &on);
		if (is(st, sn, "304") && ((stored && (on == 0 || is(stored, on, "?1"))) || is(detail, dn, "tier-no-store"))) {
			*layer = "l1";
			return "revalidated";
		}
		return "expired";
	}
	return "miss";
}
