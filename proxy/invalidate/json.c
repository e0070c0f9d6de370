/*
 * json.c - the strict pull reader (grammar, walking and error rules in
 * json.h).
 *
 * Invariants:
 *  - r->pos never passes r->len, and every byte is read only after a bounds
 *    check; the text is not NUL-terminated.
 *  - A string is validated completely (escapes, surrogate pairs, UTF-8,
 *    control characters) before anything uses it; decoding then works on
 *    bytes known to be well formed and cannot fail.
 *  - The first error sticks: r->err is set once and every entry point checks
 *    it first, so a caller may test for errors only at the end of a walk.
 *  - Recursion (json_skip) is bounded by max_depth <= JSON_DEPTH_MAX.
 */
#include "invalidate/json.h"

#include <string.h>

/* Where the reader is; see "Walking" in json.h. */
enum {
	ST_VALUE, /* a value is expected */
	ST_FIRST, /* just inside '{' or '[' */
	ST_AFTER, /* after a value: in a container, or after the top-level value */
};

const char json_err_depth[] = "nesting too deep";

static bool fail(struct json_reader *r, size_t pos, const char *why)
{
	if (r->err == NULL) {
		r->err = why;
		r->err_pos = pos;
	}
	return false;
}

void json_init(struct json_reader *r, const char *text, size_t len, unsigned max_depth)
{
	if (max_depth == 0)
		max_depth = JSON_DEPTH_DEFAULT;
	if (max_depth > JSON_DEPTH_MAX)
		max_depth = JSON_DEPTH_MAX;
	*r = (struct json_reader){
		.text = text,
		.len = text != NULL ? len : 0,
		.max_depth = max_depth,
		.state = ST_VALUE,
	};
}

const char *json_error(const struct json_reader *r, size_t *offset)
{
	if (r->err != NULL && offset != NULL)
		*offset = r->err_pos;
	return r->err;
}

static void skip_ws(struct json_reader *r)
{
	while (r->pos < r->len) {
		char c = r->text[r->pos];
		if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
			break;
		r->pos++;
	}
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* ---- UTF-8 ---------------------------------------------------------------- */

static bool is_cont(unsigned char c)
{
	return (c & 0xc0) == 0x80;
}

/* RFC 3629 section 4: the second byte's range depends on the first. */
size_t json_utf8_len(const char *p, size_t avail)
{
	const unsigned char *s = (const unsigned char *)p;
	if (avail == 0)
		return 0;
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	if (c < 0xc2) /* a continuation byte, or an overlong 2-byte lead */
		return 0;
	if (c < 0xe0)
		return avail >= 2 && is_cont(s[1]) ? 2 : 0;
	if (c < 0xf0) {
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80; /* overlong */
		unsigned char hi = c == 0xed ? 0x9f : 0xbf; /* surrogates */
		return avail >= 3 && s[1] >= lo && s[1] <= hi && is_cont(s[2]) ? 3 : 0;
	}
	if (c < 0xf5) {
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80; /* overlong */
		unsigned char hi = c == 0xf4 ? 0x8f : 0xbf; /* past U+10FFFF */
		return avail >= 4 && s[1] >= lo && s[1] <= hi && is_cont(s[2]) && is_cont(s[3]) ? 4
		                                                                                : 0;
	}
	return 0;
}

static size_t utf8_put(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* ---- strings -------------------------------------------------------------- */

/* Bytes that stand for themselves inside a string: printable ASCII other
 * than the quote and the backslash. */
static bool is_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

static int hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The four hex digits at p (a bounds check is the caller's), or -1. */
static int32_t hex4(const unsigned char *p)
{
	int32_t v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hex_val(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/* Validates the string that starts at the quote at r->pos and moves past its
 * closing quote. Gives its raw span, its decoded length and whether it
 * decodes to a U+0000. */
static bool scan_string(struct json_reader *r, struct json_str *out, size_t *dlen, bool *nul)
{
	const unsigned char *base = (const unsigned char *)r->text;
	const unsigned char *s = base + r->pos + 1;
	const unsigned char *end = base + r->len;
	const unsigned char *p = s;
	size_t d = 0;
	bool escaped = false, zero = false;

	for (;;) {
		const unsigned char *run = p;
		while (p < end && is_plain(*p))
			p++;
		d += (size_t)(p - run);
		if (p == end)
			return fail(r, r->len, "unterminated string");
		if (*p == '"')
			break;
		if (*p < 0x20)
			return fail(r, (size_t)(p - base), "control character in string");
		if (*p >= 0x80) {
			size_t n = json_utf8_len((const char *)p, (size_t)(end - p));
			if (n == 0)
				return fail(r, (size_t)(p - base), "invalid UTF-8 in string");
			p += n;
			d += n;
			continue;
		}
		/* a backslash */
		escaped = true;
		if (end - p < 2)
			return fail(r, r->len, "unterminated string");
		switch (p[1]) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			p += 2;
			d++;
			continue;
		case 'u':
			break;
		default:
			return fail(r, (size_t)(p - base), "invalid escape");
		}
		int32_t cp = end - p >= 6 ? hex4(p + 2) : -1;
		if (cp < 0)
			return fail(r, (size_t)(p - base), "invalid \\u escape");
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return fail(r, (size_t)(p - base), "lone surrogate in \\u escape");
		if (cp >= 0xd800 && cp <= 0xdbff) {
			int32_t lo =
			        end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
			if (lo < 0xdc00 || lo > 0xdfff)
				return fail(r, (size_t)(p - base), "lone surrogate in \\u escape");
			p += 12;
			d += 4;
			continue;
		}
		zero |= cp == 0;
		d += cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
		p += 6;
	}
	out->p = (const char *)s;
	out->len = (size_t)(p - s);
	out->escaped = escaped;
	*dlen = d;
	*nul = zero;
	r->pos = (size_t)(p - base) + 1;
	return true;
}

/* Decodes one unit of a validated raw string at *p (a byte, or an escape)
 * into buf; returns the number of bytes written (1..4). */
static size_t decode_unit(const char **p, char buf[4])
{
	const char *s = *p;
	if (*s != '\\') {
		buf[0] = *s;
		*p = s + 1;
		return 1;
	}
	char c = s[1];
	*p = s + 2;
	switch (c) {
	case 'b':
		buf[0] = '\b';
		return 1;
	case 'f':
		buf[0] = '\f';
		return 1;
	case 'n':
		buf[0] = '\n';
		return 1;
	case 'r':
		buf[0] = '\r';
		return 1;
	case 't':
		buf[0] = '\t';
		return 1;
	case 'u':
		break;
	default:
		buf[0] = c;
		return 1; /* '"', '\\', '/' */
	}
	uint32_t cp = (uint32_t)hex4((const unsigned char *)s + 2);
	*p = s + 6;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		uint32_t lo = (uint32_t)hex4((const unsigned char *)s + 8);
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		*p = s + 12;
	}
	return utf8_put(buf, cp);
}

/* Decodes a validated raw string into `out`, which has room for the decoded
 * length. Runs without escapes are copied whole. */
static size_t decode_raw(const char *p, size_t len, char *out)
{
	const char *end = p + len;
	size_t n = 0;
	while (p < end) {
		const char *bs = memchr(p, '\\', (size_t)(end - p));
		size_t run = (size_t)((bs != NULL ? bs : end) - p);
		memcpy(out + n, p, run);
		n += run;
		p += run;
		if (p < end)
			n += decode_unit(&p, out + n);
	}
	return n;
}

bool json_str_eq(const struct json_str *s, const char *lit)
{
	size_t want = strlen(lit);
	if (!s->escaped)
		return s->len == want && memcmp(s->p, lit, want) == 0;
	if (s->len < want) /* decoding never lengthens */
		return false;
	const char *p = s->p, *end = s->p + s->len;
	size_t i = 0;
	while (p < end) {
		char buf[4];
		size_t n = decode_unit(&p, buf);
		if (n > want - i || memcmp(lit + i, buf, n) != 0)
			return false;
		i += n;
	}
	return i == want;
}

int json_str_decode(const struct json_str *s, char *out, size_t cap, size_t *len)
{
	size_t d = s->len;
	if (s->escaped) {
		const char *p = s->p, *end = s->p + s->len;
		char buf[4];
		for (d = 0; p < end;)
			d += decode_unit(&p, buf);
	}
	if (d >= cap)
		return JSON_ERANGE;
	*len = decode_raw(s->p, s->len, out);
	out[*len] = '\0';
	return JSON_OK;
}

/* ---- numbers -------------------------------------------------------------- */

/* Validates the number at r->pos and moves past it. *is_int: no fraction and
 * no exponent. */
static bool scan_number(struct json_reader *r, bool *is_int)
{
	const char *t = r->text;
	size_t p = r->pos, end = r->len;

	if (t[p] == '-')
		p++;
	if (p == end || !is_digit((unsigned char)t[p]))
		return fail(r, p, "expected a digit");
	if (t[p] == '0') {
		p++;
		if (p < end && is_digit((unsigned char)t[p]))
			return fail(r, p, "leading zero in number");
	} else {
		while (p < end && is_digit((unsigned char)t[p]))
			p++;
	}
	*is_int = true;
	if (p < end && t[p] == '.') {
		p++;
		if (p == end || !is_digit((unsigned char)t[p]))
			return fail(r, p, "expected a digit after '.'");
		while (p < end && is_digit((unsigned char)t[p]))
			p++;
		*is_int = false;
	}
	if (p < end && (t[p] == 'e' || t[p] == 'E')) {
		p++;
		if (p < end && (t[p] == '+' || t[p] == '-'))
			p++;
		if (p == end || !is_digit((unsigned char)t[p]))
			return fail(r, p, "expected a digit in the exponent");
		while (p < end && is_digit((unsigned char)t[p]))
			p++;
		*is_int = false;
	}
	r->pos = p;
	return true;
}

/* ---- walking -------------------------------------------------------------- */

enum json_kind json_peek(struct json_reader *r)
{
	if (r->err != NULL)
		return JSON_ERROR;
	if (r->state != ST_VALUE)
		return JSON_END;
	skip_ws(r);
	if (r->pos == r->len) {
		fail(r, r->pos, "unexpected end of input");
		return JSON_ERROR;
	}
	const char *s = r->text + r->pos;
	size_t avail = r->len - r->pos;
	switch (*s) {
	case '{':
		return JSON_OBJECT;
	case '[':
		return JSON_ARRAY;
	case '"':
		return JSON_STRING;
	case '-':
	case '0':
	case '1':
	case '2':
	case '3':
	case '4':
	case '5':
	case '6':
	case '7':
	case '8':
	case '9':
		return JSON_NUMBER;
	case 't':
		if (avail >= 4 && memcmp(s, "true", 4) == 0)
			return JSON_TRUE;
		break;
	case 'f':
		if (avail >= 5 && memcmp(s, "false", 5) == 0)
			return JSON_FALSE;
		break;
	case 'n':
		if (avail >= 4 && memcmp(s, "null", 4) == 0)
			return JSON_NULL;
		break;
	}
	fail(r, r->pos, "unexpected character");
	return JSON_ERROR;
}

/* Fails a read whose expected value has kind `k`, not the one asked for. */
static int wrong_kind(struct json_reader *r, enum json_kind k, const char *why)
{
	if (k == JSON_END)
		fail(r, r->pos, "no value expected here");
	else if (k != JSON_ERROR)
		fail(r, r->pos, why);
	return JSON_ERR;
}

static bool in_array(const struct json_reader *r)
{
	return (r->arrays >> (r->depth - 1)) & 1;
}

/* The one iterator behind json_object_next() and json_array_next(). */
static bool container_next(struct json_reader *r, bool array, struct json_str *name)
{
	const char close = array ? ']' : '}';

	if (r->err != NULL)
		return false;
	if (r->state == ST_VALUE) {
		enum json_kind k = json_peek(r);
		if (k != (array ? JSON_ARRAY : JSON_OBJECT)) {
			wrong_kind(r, k, array ? "expected an array" : "expected an object");
			return false;
		}
		if (r->depth >= r->max_depth)
			return fail(r, r->pos, json_err_depth);
		if (array)
			r->arrays |= 1ull << r->depth;
		else
			r->arrays &= ~(1ull << r->depth);
		r->depth++;
		r->pos++;
		r->state = ST_FIRST;
	} else if (r->depth == 0 || in_array(r) != array) {
		return fail(r, r->pos, array ? "not inside an array" : "not inside an object");
	}

	skip_ws(r);
	if (r->pos == r->len)
		return fail(r, r->pos, "unexpected end of input");
	char c = r->text[r->pos];
	if (c == close) {
		r->pos++;
		r->depth--;
		r->state = ST_AFTER;
		return false;
	}
	if (r->state == ST_AFTER) {
		if (c != ',')
			return fail(r, r->pos,
			            array ? "expected ',' or ']'" : "expected ',' or '}'");
		r->pos++;
		skip_ws(r);
		if (r->pos == r->len)
			return fail(r, r->pos, "unexpected end of input");
		c = r->text[r->pos];
		if (c == close)
			return fail(r, r->pos, "trailing comma");
	}
	if (!array) {
		if (c != '"')
			return fail(r, r->pos, "expected a member name");
		size_t dlen;
		bool nul;
		if (!scan_string(r, name, &dlen, &nul))
			return false;
		skip_ws(r);
		if (r->pos == r->len || r->text[r->pos] != ':')
			return fail(r, r->pos, "expected ':' after the member name");
		r->pos++;
	}
	r->state = ST_VALUE;
	return true;
}

bool json_object_next(struct json_reader *r, struct json_str *name)
{
	return container_next(r, false, name);
}

bool json_array_next(struct json_reader *r)
{
	return container_next(r, true, NULL);
}

bool json_object_find(struct json_reader *r, const char *name)
{
	struct json_str n;
	while (json_object_next(r, &n)) {
		if (json_str_eq(&n, name))
			return true;
		if (json_skip(r) != JSON_OK)
			return false;
	}
	return false;
}

int json_read_string(struct json_reader *r, char *out, size_t cap, size_t *len, bool *nul)
{
	enum json_kind k = json_peek(r);
	if (k != JSON_STRING)
		return wrong_kind(r, k, "expected a string");
	struct json_str s;
	size_t d;
	bool zero;
	if (!scan_string(r, &s, &d, &zero))
		return JSON_ERR;
	r->state = ST_AFTER;
	if (nul != NULL)
		*nul = zero;
	else if (zero)
		return JSON_ERANGE;
	if (d >= cap)
		return JSON_ERANGE;
	*len = decode_raw(s.p, s.len, out);
	out[*len] = '\0';
	return JSON_OK;
}

int json_read_int64(struct json_reader *r, int64_t *out)
{
	enum json_kind k = json_peek(r);
	if (k != JSON_NUMBER)
		return wrong_kind(r, k, "expected a number");
	size_t start = r->pos;
	bool is_int;
	if (!scan_number(r, &is_int))
		return JSON_ERR;
	r->state = ST_AFTER;
	if (!is_int)
		return JSON_ERANGE;

	const char *p = r->text + start, *end = r->text + r->pos;
	bool neg = *p == '-';
	p += neg;
	/* the magnitude, up to 2^63 for a negative value */
	uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	uint64_t v = 0;
	for (; p < end; p++) {
		unsigned dgt = (unsigned)(*p - '0');
		if (v > (limit - dgt) / 10)
			return JSON_ERANGE;
		v = v * 10 + dgt;
	}
	/* two's complement: -(2^63) comes out as INT64_MIN */
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return JSON_OK;
}

int json_read_bool(struct json_reader *r, bool *out)
{
	enum json_kind k = json_peek(r);
	if (k != JSON_TRUE && k != JSON_FALSE)
		return wrong_kind(r, k, "expected true or false");
	*out = k == JSON_TRUE;
	r->pos += *out ? 4 : 5;
	r->state = ST_AFTER;
	return JSON_OK;
}

int json_skip(struct json_reader *r)
{
	struct json_str name;
	size_t dlen;
	bool flag;

	switch (json_peek(r)) {
	case JSON_OBJECT:
		while (json_object_next(r, &name))
			if (json_skip(r) != JSON_OK)
				return JSON_ERR;
		return r->err == NULL ? JSON_OK : JSON_ERR;
	case JSON_ARRAY:
		while (json_array_next(r))
			if (json_skip(r) != JSON_OK)
				return JSON_ERR;
		return r->err == NULL ? JSON_OK : JSON_ERR;
	case JSON_STRING:
		if (!scan_string(r, &name, &dlen, &flag))
			return JSON_ERR;
		break;
	case JSON_NUMBER:
		if (!scan_number(r, &flag))
			return JSON_ERR;
		break;
	case JSON_TRUE:
	case JSON_NULL:
		r->pos += 4;
		break;
	case JSON_FALSE:
		r->pos += 5;
		break;
	case JSON_END:
		return wrong_kind(r, JSON_END, NULL);
	case JSON_ERROR:
		return JSON_ERR;
	}
	r->state = ST_AFTER;
	return JSON_OK;
}

int json_finish(struct json_reader *r)
{
	if (r->err != NULL)
		return JSON_ERR;
	if (r->depth != 0 || r->state != ST_AFTER) {
		fail(r, r->pos, "document not read to its end");
		return JSON_ERR;
	}
	skip_ws(r);
	if (r->pos != r->len) {
		fail(r, r->pos, "trailing characters after the value");
		return JSON_ERR;
	}
	return JSON_OK;
}
