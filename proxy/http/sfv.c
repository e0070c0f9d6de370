/*
 * sfv.c - RFC 8941 Dictionaries, parsed strictly; see sfv.h for the
 * invariants. Each parse_* function follows the algorithm of the RFC
 * section it names, reads at p->i and leaves p->i after what it read.
 */
#include "http/sfv.h"

#include <string.h>

struct sfv_p {
	const char *s;
	size_t n, i;
};

static int peek(const struct sfv_p *p)
{
	return p->i < p->n ? (unsigned char)p->s[p->i] : -1;
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool is_lcalpha(int c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_alpha(int c)
{
	return is_lcalpha(c) || (c >= 'A' && c <= 'Z');
}

/* tchar (RFC 9110 §5.6.2) */
static bool is_tchar(int c)
{
	return c > 0 && c < 0x7f && (is_alpha(c) || is_digit(c) || strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_b64(int c)
{
	return is_alpha(c) || is_digit(c) || c == '+' || c == '/' || c == '=';
}

static void skip_sp(struct sfv_p *p)
{
	while (peek(p) == ' ')
		p->i++;
}

static void skip_ows(struct sfv_p *p)
{
	while (peek(p) == ' ' || peek(p) == '\t')
		p->i++;
}

/* §4.2.3.3 */
static int parse_key(struct sfv_p *p, const char **key, size_t *len)
{
	int c = peek(p);
	if (!is_lcalpha(c) && c != '*')
		return SFV_EINVAL;
	size_t start = p->i;
	while ((c = peek(p)) >= 0 &&
	       (is_lcalpha(c) || is_digit(c) || c == '_' || c == '-' || c == '.' || c == '*'))
		p->i++;
	*key = p->s + start;
	*len = p->i - start;
	return *len > SFV_KEY_MAX ? SFV_ELIMIT : 0;
}

/* §4.2.4: at most 15 digits for an Integer, 12 and 3 for a Decimal */
static int parse_number(struct sfv_p *p, struct sfv_bare *v)
{
	int64_t sign = 1, whole = 0, frac = 0;
	size_t chars = 0, frac_digits = 0;
	bool decimal = false;
	if (peek(p) == '-') {
		sign = -1;
		p->i++;
	}
	if (!is_digit(peek(p)))
		return SFV_EINVAL;
	for (int c; (c = peek(p)) >= 0; p->i++) {
		if (is_digit(c) && !decimal) {
			whole = whole * 10 + (c - '0');
		} else if (is_digit(c)) {
			frac = frac * 10 + (c - '0');
			frac_digits++;
		} else if (c == '.' && !decimal) {
			if (chars > 12)
				return SFV_EINVAL;
			decimal = true;
		} else {
			break;
		}
		chars++;
		if (chars > (decimal ? 16u : 15u))
			return SFV_EINVAL;
	}
	if (!decimal) {
		*v = (struct sfv_bare){.type = SFV_INTEGER, .num = sign * whole};
		return 0;
	}
	if (frac_digits == 0 || frac_digits > 3)
		return SFV_EINVAL; /* "1." or "1.2345" */
	while (frac_digits++ < 3)
		frac *= 10;
	*v = (struct sfv_bare){.type = SFV_DECIMAL, .num = sign * (whole * 1000 + frac)};
	return 0;
}

/* §4.2.5 */
static int parse_string(struct sfv_p *p, struct sfv_bare *v)
{
	size_t start = ++p->i, chars = 0;
	for (;;) {
		int c = peek(p);
		if (c < 0)
			return SFV_EINVAL; /* unterminated */
		p->i++;
		if (c == '"')
			break;
		if (c == '\\') {
			c = peek(p);
			if (c != '"' && c != '\\')
				return SFV_EINVAL;
			p->i++;
		} else if (c < 0x20 || c > 0x7e) {
			return SFV_EINVAL;
		}
		chars++;
	}
	*v = (struct sfv_bare){.type = SFV_STRING, .s = p->s + start, .len = p->i - 1 - start};
	return chars > SFV_STRING_MAX ? SFV_ELIMIT : 0;
}

/* §4.2.6: the caller saw ALPHA or '*' */
static int parse_token(struct sfv_p *p, struct sfv_bare *v)
{
	size_t start = p->i++;
	for (int c; (c = peek(p)) >= 0 && (is_tchar(c) || c == ':' || c == '/');)
		p->i++;
	*v = (struct sfv_bare){.type = SFV_TOKEN, .s = p->s + start, .len = p->i - start};
	return v->len > SFV_TOKEN_MAX ? SFV_ELIMIT : 0;
}

/* The decoded length of base64 text <b> (<n> bytes of the alphabet), or -1
 * when it is not base64: '=' only as the last one or two characters, and
 * then only to complete a group of four. */
static ptrdiff_t b64_len(const char *b, size_t n)
{
	size_t pad = 0;
	while (pad < n && b[n - 1 - pad] == '=')
		pad++;
	size_t m = n - pad;
	if (memchr(b, '=', m) != NULL || pad > 2 || m % 4 == 1)
		return -1;
	if (pad && (m + pad) % 4 != 0)
		return -1;
	return (ptrdiff_t)(m / 4 * 3 + (m % 4 ? m % 4 - 1 : 0));
}

/* §4.2.7 */
static int parse_bytes(struct sfv_p *p, struct sfv_bare *v)
{
	size_t start = ++p->i;
	while (is_b64(peek(p)))
		p->i++;
	if (peek(p) != ':')
		return SFV_EINVAL;
	size_t n = p->i++ - start;
	ptrdiff_t len = b64_len(p->s + start, n);
	if (len < 0)
		return SFV_EINVAL;
	*v = (struct sfv_bare){.type = SFV_BYTES, .s = p->s + start, .len = n};
	return len > SFV_BYTES_MAX ? SFV_ELIMIT : 0;
}

/* §4.2.8 */
static int parse_boolean(struct sfv_p *p, struct sfv_bare *v)
{
	p->i++;
	int c = peek(p);
	if (c != '0' && c != '1')
		return SFV_EINVAL;
	p->i++;
	*v = (struct sfv_bare){.type = SFV_BOOLEAN, .num = c == '1'};
	return 0;
}

/* §4.2.3.1 */
static int parse_bare(struct sfv_p *p, struct sfv_bare *v)
{
	int c = peek(p);
	if (c == '-' || is_digit(c))
		return parse_number(p, v);
	if (c == '"')
		return parse_string(p, v);
	if (is_alpha(c) || c == '*')
		return parse_token(p, v);
	if (c == ':')
		return parse_bytes(p, v);
	if (c == '?')
		return parse_boolean(p, v);
	return SFV_EINVAL;
}

/* One parameter (§4.2.3.2), at the ';' that starts it. */
static int parse_param(struct sfv_p *p, const char **key, size_t *key_len, struct sfv_bare *v)
{
	p->i++;
	skip_sp(p);
	int rc = parse_key(p, key, key_len);
	if (rc)
		return rc;
	*v = (struct sfv_bare){.type = SFV_BOOLEAN, .num = 1};
	if (peek(p) != '=')
		return 0;
	p->i++;
	return parse_bare(p, v);
}

/* §4.2.3.2: every parameter, for its span in <it>. */
static int parse_params(struct sfv_p *p, struct sfv_item *it)
{
	size_t start = p->i, count = 0;
	while (peek(p) == ';') {
		const char *k;
		size_t kl;
		struct sfv_bare v;
		int rc = parse_param(p, &k, &kl, &v);
		if (rc)
			return rc;
		if (++count > SFV_PARAMS_MAX)
			return SFV_ELIMIT;
	}
	it->params = p->s + start;
	it->params_len = p->i - start;
	return 0;
}

/* §4.2.3 */
static int parse_item(struct sfv_p *p, struct sfv_item *it)
{
	int rc = parse_bare(p, &it->v);
	return rc ? rc : parse_params(p, it);
}

/* §4.2.1.2 */
static int parse_inner_list(struct sfv_p *p, struct sfv_item *it)
{
	size_t start = ++p->i, count = 0;
	for (;;) {
		skip_sp(p);
		int c = peek(p);
		if (c < 0)
			return SFV_EINVAL; /* no ')' */
		if (c == ')')
			break;
		struct sfv_item member;
		int rc = parse_item(p, &member);
		if (rc)
			return rc;
		if (++count > SFV_INNER_MAX)
			return SFV_ELIMIT;
		c = peek(p);
		if (c != ' ' && c != ')')
			return SFV_EINVAL;
	}
	it->v = (struct sfv_bare){.type = SFV_INNER_LIST, .s = p->s + start, .len = p->i - start};
	p->i++;
	return parse_params(p, it);
}

/* §4.2.2, calling <cb> (unless NULL) member by member */
static int dict_walk(const char *s, size_t len, sfv_member_cb cb, void *arg)
{
	struct sfv_p p = {s, len, 0};
	int members = 0;
	skip_sp(&p);
	while (p.i < p.n) {
		const char *key;
		size_t key_len;
		struct sfv_item it;
		int rc = parse_key(&p, &key, &key_len);
		if (rc)
			return rc;
		if (peek(&p) == '=') {
			p.i++;
			rc = peek(&p) == '(' ? parse_inner_list(&p, &it) : parse_item(&p, &it);
		} else {
			it.v = (struct sfv_bare){.type = SFV_BOOLEAN, .num = 1};
			rc = parse_params(&p, &it);
		}
		if (rc)
			return rc;
		if (++members > SFV_DICT_MAX)
			return SFV_ELIMIT;
		if (cb)
			cb(key, key_len, &it, arg);
		skip_ows(&p);
		if (p.i >= p.n)
			break;
		if (p.s[p.i++] != ',')
			return SFV_EINVAL;
		skip_ows(&p);
		if (p.i >= p.n)
			return SFV_EINVAL; /* a trailing comma */
	}
	return members;
}

int sfv_dict_parse(const char *s, size_t len, sfv_member_cb cb, void *arg)
{
	int rc = dict_walk(s, len, NULL, NULL);
	if (rc <= 0 || cb == NULL)
		return rc;
	return dict_walk(s, len, cb, arg);
}

/* ---- reading what a parse handed out ---------------------------------- */

bool sfv_inner_next(const struct sfv_item *list, size_t *pos, struct sfv_item *out)
{
	if (list->v.type != SFV_INNER_LIST)
		return false;
	struct sfv_p p = {list->v.s, list->v.len, *pos};
	skip_sp(&p);
	if (p.i >= p.n || parse_item(&p, out) != 0)
		return false;
	*pos = p.i;
	return true;
}

bool sfv_param_next(const struct sfv_item *it, size_t *pos, const char **key, size_t *key_len,
                    struct sfv_bare *val)
{
	struct sfv_p p = {it->params, it->params_len, *pos};
	if (peek(&p) != ';' || parse_param(&p, key, key_len, val) != 0)
		return false;
	*pos = p.i;
	return true;
}

bool sfv_param_find(const struct sfv_item *it, const char *key, size_t key_len,
                    struct sfv_bare *val)
{
	bool found = false;
	size_t pos = 0, kl;
	const char *k;
	struct sfv_bare v;
	while (sfv_param_next(it, &pos, &k, &kl, &v)) {
		if (kl == key_len && memcmp(k, key, kl) == 0) {
			*val = v;
			found = true;
		}
	}
	return found;
}

ptrdiff_t sfv_string_copy(const struct sfv_bare *v, char *out, size_t cap)
{
	if (v->type != SFV_STRING)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < v->len; i++) {
		if (v->s[i] == '\\')
			i++; /* the parse checked that an escaped '"' or '\' follows */
		if (o >= cap)
			return -1;
		out[o++] = v->s[i];
	}
	return (ptrdiff_t)o;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : 63;
}

ptrdiff_t sfv_bytes_decode(const struct sfv_bare *v, unsigned char *out, size_t cap)
{
	ptrdiff_t want = v->type == SFV_BYTES ? b64_len(v->s, v->len) : -1;
	if (want < 0 || (size_t)want > cap)
		return -1;
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < v->len && v->s[i] != '='; i++) {
		acc = (acc << 6) | (uint32_t)b64_value(v->s[i]);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return (ptrdiff_t)o; /* == want: leftover bits are padding */
}
