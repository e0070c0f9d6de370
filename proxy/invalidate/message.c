/*
 * message.c - decoder and encoder of the invalidation message (format and
 * rules in message.h and docs/invalidation-message.md).
 *
 * Invariants:
 *  - One table (fields[]) names every known member with its JSON type, its
 *    length bounds, its character rule and the details reported for it. The
 *    decoder and the encoder check strings with the same function
 *    (check_str), so whatever msg_encode() writes, msg_decode() accepts, and
 *    decoding that again gives the same message. The fuzz target holds both
 *    sides to that.
 *  - The decoder reads the whole document even after a field problem, so that
 *    a syntax error anywhere, or a version other than 1, is what gets
 *    reported (the precedence in message.h), whatever the member order.
 *  - Scratch space cannot run out: every decoded string needs at most its
 *    JSON length (two quotes included) with the NUL, and only member values
 *    that are kept are decoded. The decoder still checks.
 */
#include "invalidate/message.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "invalidate/json.h"

/* ---- the field table ------------------------------------------------------ */

enum field { F_V, F_ID, F_SERVICE, F_ORIGIN, F_TS, F_KEYS, F_PREFIXES, F_TAGS, F_ALL, F_COUNT };

enum ftype { T_INT, T_STRING, T_LIST, T_BOOL };

/* What a string may hold, beyond being valid UTF-8 without U+0000. */
enum rule {
	R_NONE,
	R_ID,     /* printable ASCII, 0x21..0x7e */
	R_TEXT,   /* no control character (U+0000..U+001F, U+007F..U+009F) */
	R_TARGET, /* R_TEXT, no space, and starts with '/' */
	R_TAG,    /* R_TEXT, no space and no comma */
};

/* The problems a member can have; each field's table entry has a detail
 * string for those that apply to it. */
enum problem {
	P_NONE,
	P_TYPE,      /* wrong JSON type, null included */
	P_MISSING,   /* a required member is absent */
	P_DUP,       /* the member appears twice */
	P_RANGE,     /* an integer out of its range, or a number with a fraction */
	P_EMPTY,     /* shorter than the minimum */
	P_LONG,      /* longer than the maximum */
	P_CHARS,     /* a character the rule forbids */
	P_SLASH,     /* a target without its leading '/' */
	P_ITEM_TYPE, /* an array item that is not a string */
	P_COUNT
};

struct field_def {
	const char *name;
	size_t name_len;
	enum ftype type;
	bool required;
	size_t min, max; /* bytes, for a string or each item of a list */
	enum rule rule;
	const char *detail[P_COUNT];
};

/* One field per entry; clang-format would put each member on its own line. */
/* clang-format off */
#define NAME(n) n, sizeof(n) - 1
#define Q(n) "\"" n "\""
#define COMMON(n, what) \
	[P_TYPE] = Q(n) " is not " what, \
	[P_MISSING] = Q(n) " is missing", \
	[P_DUP] = Q(n) " appears more than once"
#define SCALAR_STR(n, chars) \
	COMMON(n, "a string"), \
	[P_EMPTY] = Q(n) " is empty", \
	[P_LONG] = Q(n) " is too long", \
	[P_CHARS] = Q(n) " holds " chars
#define LIST_STR(n, chars) \
	COMMON(n, "an array of strings"), \
	[P_ITEM_TYPE] = "an item of " Q(n) " is not a string", \
	[P_EMPTY] = "an item of " Q(n) " is empty", \
	[P_LONG] = "an item of " Q(n) " is too long", \
	[P_CHARS] = "an item of " Q(n) " holds " chars, \
	[P_SLASH] = "an item of " Q(n) " does not start with '/'"

#define CHARS_TEXT "a control character"
#define CHARS_TARGET "a control character or a space"

static const struct field_def fields[F_COUNT] = {
	[F_V] = {NAME("v"), T_INT, true, 0, 0, R_NONE,
	         {COMMON("v", "a number"), [P_RANGE] = Q("v") " is not an integer"}},
	[F_ID] = {NAME("id"), T_STRING, true, 1, MSG_ID_MAX, R_ID,
	          {SCALAR_STR("id", "a byte outside 0x21..0x7e")}},
	[F_SERVICE] = {NAME("service"), T_STRING, true, 1, MSG_SERVICE_MAX, R_TEXT,
	               {SCALAR_STR("service", CHARS_TEXT)}},
	[F_ORIGIN] = {NAME("origin"), T_STRING, false, 0, MSG_ORIGIN_MAX, R_TEXT,
	              {SCALAR_STR("origin", CHARS_TEXT)}},
	[F_TS] = {NAME("ts"), T_INT, false, 0, 0, R_NONE,
	          {COMMON("ts", "a number"),
	           [P_RANGE] = Q("ts") " is not an integer in 0..9223372036854775807"}},
	[F_KEYS] = {NAME("keys"), T_LIST, false, 1, MSG_TARGET_MAX, R_TARGET,
	            {LIST_STR("keys", CHARS_TARGET)}},
	[F_PREFIXES] = {NAME("prefixes"), T_LIST, false, 1, MSG_TARGET_MAX, R_TARGET,
	                {LIST_STR("prefixes", CHARS_TARGET)}},
	[F_TAGS] = {NAME("tags"), T_LIST, false, 1, MSG_TAG_MAX, R_TAG,
	            {LIST_STR("tags", "a control character, a space or a comma")}},
	[F_ALL] = {NAME("all"), T_BOOL, false, 0, 0, R_NONE, {COMMON("all", "true or false")}},
};
/* clang-format on */

/* The list member that holds each item kind. */
static const enum field kind_field[] = {
	[MSG_KEY] = F_KEYS,
	[MSG_PREFIX] = F_PREFIXES,
	[MSG_TAG] = F_TAGS,
};
#define NKINDS (sizeof(kind_field) / sizeof(kind_field[0]))

/* ASCII bytes by class, and the classes each rule allows. */
enum { C_CTL, C_SPACE, C_COMMA, C_OTHER };
static const unsigned char ascii_class[128] = {
	[0x00 ... 0x1f] = C_CTL, [' '] = C_SPACE,         ['!' ... '+'] = C_OTHER,
	[','] = C_COMMA,         ['-' ... '~'] = C_OTHER, [0x7f] = C_CTL,
};
static const unsigned char rule_allows[] = {
	[R_NONE] = 1u << C_SPACE | 1u << C_COMMA | 1u << C_OTHER,
	[R_ID] = 1u << C_COMMA | 1u << C_OTHER,
	[R_TEXT] = 1u << C_SPACE | 1u << C_COMMA | 1u << C_OTHER,
	[R_TARGET] = 1u << C_COMMA | 1u << C_OTHER,
	[R_TAG] = 1u << C_OTHER,
};

/* Checks a string against a field's bounds and character rule. The decoder
 * passes decoded JSON strings, already valid UTF-8; the encoder passes the
 * caller's bytes, which may not be. */
static enum problem check_str(const struct field_def *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	if (p == NULL && len > 0)
		return P_CHARS;
	if (len < f->min)
		return P_EMPTY;
	if (len > f->max)
		return P_LONG;
	if (f->rule == R_TARGET && p[0] != '/')
		return P_SLASH;
	const unsigned allows = rule_allows[f->rule];
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		if (c < 0x80) {
			if (!(allows >> ascii_class[c] & 1))
				return P_CHARS;
			i++;
			continue;
		}
		size_t n = json_utf8_len(s + i, len - i);
		/* C1 controls, U+0080..U+009F, are C2 80..C2 9F */
		if (f->rule == R_ID || n == 0 || (c == 0xc2 && p[i + 1] < 0xa0))
			return P_CHARS;
		i += n;
	}
	return P_NONE;
}

static const struct field_def *field_lookup(const struct json_str *name)
{
	for (size_t i = 0; i < F_COUNT; i++) {
		const struct field_def *f = &fields[i];
		if (name->escaped ? json_str_eq(name, f->name)
		                  : name->len == f->name_len &&
		                            memcmp(name->p, f->name, f->name_len) == 0)
			return f;
	}
	return NULL;
}

/* ---- decoding ------------------------------------------------------------- */

struct dec {
	struct json_reader r;
	struct inval_msg *m;
	char *scratch;
	size_t cap, used;
	unsigned seen;         /* bit per enum field */
	bool have_version;     /* "v" held an integer (m->version) */
	const char *field_err; /* the first field problem, in message order */
	size_t nseen_items;    /* string items seen, kept or not */
};

static void field_problem(struct dec *d, const struct field_def *f, enum problem p)
{
	if (d->field_err == NULL)
		d->field_err = f->detail[p];
}

/* The expected value has the wrong JSON type for `f`: note it and skip it.
 * false on a syntax error. */
static bool wrong_type(struct dec *d, const struct field_def *f, enum json_kind k, enum problem p)
{
	if (k == JSON_ERROR)
		return false;
	field_problem(d, f, p);
	return json_skip(&d->r) == JSON_OK;
}

/* Decodes the string value expected now into the scratch buffer and checks
 * it against f's rules. *out is set only when it passes. false on a syntax
 * error. */
static bool take_string(struct dec *d, const struct field_def *f, struct msg_str *out, bool *ok)
{
	char *p = d->scratch + d->used;
	size_t len;
	bool nul;
	*ok = false;
	int rc = json_read_string(&d->r, p, d->cap - d->used, &len, &nul);
	if (rc == JSON_ERR)
		return false;
	if (rc != JSON_OK) { /* cannot happen with cap >= input length */
		field_problem(d, f, P_LONG);
		return true;
	}
	d->used += len + 1;
	enum problem pr = nul ? P_CHARS : check_str(f, p, len);
	if (pr != P_NONE) {
		field_problem(d, f, pr);
		return true;
	}
	*out = (struct msg_str){p, len};
	*ok = true;
	return true;
}

/* Reads an integer >= min into *out; *got says whether it was one. false on
 * a syntax error. */
static bool take_int(struct dec *d, const struct field_def *f, int64_t min, int64_t *out, bool *got)
{
	*got = false;
	enum json_kind k = json_peek(&d->r);
	if (k != JSON_NUMBER)
		return wrong_type(d, f, k, P_TYPE);
	int64_t v;
	int rc = json_read_int64(&d->r, &v);
	if (rc == JSON_ERR)
		return false;
	if (rc != JSON_OK || v < min) {
		field_problem(d, f, P_RANGE);
		return true;
	}
	*out = v;
	*got = true;
	return true;
}

static bool take_list(struct dec *d, const struct field_def *f, enum msg_item_kind kind)
{
	enum json_kind k = json_peek(&d->r);
	if (k != JSON_ARRAY)
		return wrong_type(d, f, k, P_TYPE);
	struct inval_msg *m = d->m;
	while (json_array_next(&d->r)) {
		k = json_peek(&d->r);
		if (k != JSON_STRING) {
			if (!wrong_type(d, f, k, P_ITEM_TYPE))
				return false;
			continue;
		}
		struct msg_str s;
		bool ok;
		if (!take_string(d, f, &s, &ok))
			return false;
		/* items past the limit are still read, for syntax and rules */
		if (ok && ++d->nseen_items <= MSG_MAX_ITEMS)
			m->items[m->nitems++] = (struct msg_item){kind, s};
	}
	return json_error(&d->r, NULL) == NULL;
}

/* Reads the value of the known member `f`. false on a syntax error. */
static bool take_member(struct dec *d, enum field f)
{
	const struct field_def *def = &fields[f];
	struct inval_msg *m = d->m;
	enum json_kind k;
	bool ok;

	switch (f) {
	case F_V: /* any integer is a version; the verdict waits for the end */
		return take_int(d, def, INT64_MIN, &m->version, &d->have_version);
	case F_TS:
		return take_int(d, def, 0, &m->ts, &ok);
	case F_ID:
	case F_SERVICE:
	case F_ORIGIN:
		k = json_peek(&d->r);
		if (k != JSON_STRING)
			return wrong_type(d, def, k, P_TYPE);
		return take_string(d, def,
		                   f == F_ID        ? &m->id
		                   : f == F_SERVICE ? &m->service
		                                    : &m->origin,
		                   &ok);
	case F_KEYS:
		return take_list(d, def, MSG_KEY);
	case F_PREFIXES:
		return take_list(d, def, MSG_PREFIX);
	case F_TAGS:
		return take_list(d, def, MSG_TAG);
	case F_ALL:
		k = json_peek(&d->r);
		if (k != JSON_TRUE && k != JSON_FALSE)
			return wrong_type(d, def, k, P_TYPE);
		return json_read_bool(&d->r, &m->all) == JSON_OK;
	case F_COUNT:
		break;
	}
	return false;
}

/* Puts the items in the documented order (keys, prefixes, tags), keeping the
 * message order within a kind. Each kind came from one array, so this only
 * moves whole runs, and usually nothing. */
static void group_items(struct inval_msg *m)
{
	size_t i = 1;
	while (i < m->nitems && m->items[i - 1].kind <= m->items[i].kind)
		i++;
	if (i >= m->nitems)
		return;
	struct msg_item tmp[MSG_MAX_ITEMS];
	size_t n = 0;
	for (unsigned k = 0; k < NKINDS; k++)
		for (i = 0; i < m->nitems; i++)
			if (m->items[i].kind == (enum msg_item_kind)k)
				tmp[n++] = m->items[i];
	memcpy(m->items, tmp, n * sizeof(tmp[0]));
}

static int decode_fail(struct msg_error *err, int code, const char *detail)
{
	err->detail = detail;
	return code;
}

int msg_decode(const char *in, size_t len, char *scratch, size_t cap, struct inval_msg *m,
               struct msg_error *err)
{
	struct msg_error ignored;
	if (err == NULL)
		err = &ignored;
	*err = (struct msg_error){"ok", 0};

	if (len > MSG_MAX_BYTES)
		return decode_fail(err, MSG_E_TOO_BIG, "message larger than 65536 bytes");
	if (cap < len || (scratch == NULL && len > 0))
		return decode_fail(err, MSG_E_TOO_BIG, "scratch buffer smaller than the message");

	m->version = 0;
	m->id = m->service = m->origin = (struct msg_str){NULL, 0};
	m->ts = -1;
	m->all = false;
	m->nitems = 0;

	struct dec d = {.m = m, .scratch = scratch, .cap = cap};
	json_init(&d.r, in, len, MSG_MAX_DEPTH);
	struct json_str name;
	while (json_object_next(&d.r, &name)) {
		const struct field_def *f = field_lookup(&name);
		if (f == NULL) { /* forward compatible: any value, ignored */
			if (json_skip(&d.r) != JSON_OK)
				break;
			continue;
		}
		unsigned bit = 1u << (f - fields);
		if (d.seen & bit) {
			field_problem(&d, f, P_DUP);
			if (json_skip(&d.r) != JSON_OK)
				break;
			continue;
		}
		d.seen |= bit;
		if (!take_member(&d, (enum field)(f - fields)))
			break;
	}

	size_t off = 0;
	const char *why = json_error(&d.r, &off);
	if (why == NULL && json_finish(&d.r) != JSON_OK)
		why = json_error(&d.r, &off);
	if (why == json_err_depth) {
		err->offset = off;
		return decode_fail(err, MSG_E_LIMIT, "nested deeper than 16 levels");
	}
	if (why != NULL) {
		err->offset = off;
		return decode_fail(err, MSG_E_SYNTAX, why);
	}
	if (d.have_version && m->version != MSG_VERSION)
		return decode_fail(err, MSG_E_VERSION, "unsupported version (\"v\" is not 1)");
	if (d.field_err != NULL)
		return decode_fail(err, MSG_E_FIELD, d.field_err);
	for (size_t i = 0; i < F_COUNT; i++)
		if (fields[i].required && !(d.seen & 1u << i))
			return decode_fail(err, MSG_E_FIELD, fields[i].detail[P_MISSING]);
	if (d.nseen_items > MSG_MAX_ITEMS)
		return decode_fail(err, MSG_E_LIMIT, "more than 256 keys, prefixes and tags");
	if (m->nitems == 0 && !m->all)
		return decode_fail(err, MSG_E_EMPTY,
		                   "no keys, prefixes or tags, and \"all\" is not true");
	group_items(m);
	return MSG_OK;
}

/* ---- encoding ------------------------------------------------------------- */

/* A bounded writer: counts everything, copies what fits. */
struct out {
	char *p;
	size_t n, cap;
};

static void put(struct out *o, const char *s, size_t len)
{
	if (o->n <= o->cap && len <= o->cap - o->n)
		memcpy(o->p + o->n, s, len);
	o->n += len;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

/* A JSON string: '"' and '\' escaped, control characters as \u00XX, every
 * other byte (UTF-8 included) as it is. */
static void put_json_str(struct out *o, const struct msg_str *s)
{
	static const char hex[] = "0123456789abcdef";
	PUT_LIT(o, "\"");
	size_t run = 0;
	for (size_t i = 0; i < s->len; i++) {
		unsigned char c = (unsigned char)s->p[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(o, s->p + run, i - run);
		run = i + 1;
		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			put(o, esc, 2);
		} else {
			char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			put(o, esc, 6);
		}
	}
	put(o, s->p + run, s->len - run);
	PUT_LIT(o, "\"");
}

static void put_member(struct out *o, const char *name)
{
	PUT_LIT(o, ",\"");
	put(o, name, strlen(name));
	PUT_LIT(o, "\":");
}

/* The rules msg_decode() enforces, applied to a message built by a caller. */
static bool encodable(const struct inval_msg *m)
{
	if (check_str(&fields[F_ID], m->id.p, m->id.len) != P_NONE ||
	    check_str(&fields[F_SERVICE], m->service.p, m->service.len) != P_NONE)
		return false;
	if (m->origin.p != NULL &&
	    check_str(&fields[F_ORIGIN], m->origin.p, m->origin.len) != P_NONE)
		return false;
	if (m->ts < -1 || m->nitems > MSG_MAX_ITEMS || (m->nitems == 0 && !m->all))
		return false;
	for (size_t i = 0; i < m->nitems; i++) {
		const struct msg_item *it = &m->items[i];
		if ((unsigned)it->kind >= NKINDS ||
		    check_str(&fields[kind_field[it->kind]], it->s.p, it->s.len) != P_NONE)
			return false;
	}
	return true;
}

size_t msg_encode(const struct inval_msg *m, char *out, size_t cap)
{
	if (m == NULL || !encodable(m))
		return 0;
	struct out o = {out, 0, out != NULL ? cap : 0};

	PUT_LIT(&o, "{\"v\":1");
	put_member(&o, "id");
	put_json_str(&o, &m->id);
	put_member(&o, "service");
	put_json_str(&o, &m->service);
	if (m->origin.p != NULL) {
		put_member(&o, "origin");
		put_json_str(&o, &m->origin);
	}
	if (m->ts >= 0) {
		char num[24];
		int n = snprintf(num, sizeof(num), "%" PRId64, m->ts);
		put_member(&o, "ts");
		put(&o, num, (size_t)n);
	}
	for (unsigned k = 0; k < NKINDS; k++) {
		bool first = true;
		for (size_t i = 0; i < m->nitems; i++) {
			if (m->items[i].kind != (enum msg_item_kind)k)
				continue;
			if (first)
				put_member(&o, fields[kind_field[k]].name);
			put(&o, first ? "[" : ",", 1);
			put_json_str(&o, &m->items[i].s);
			first = false;
		}
		if (!first)
			PUT_LIT(&o, "]");
	}
	if (m->all)
		PUT_LIT(&o, ",\"all\":true");
	PUT_LIT(&o, "}");
	if (o.n > o.cap || o.n > MSG_MAX_BYTES)
		return 0;
	return o.n;
}

/* ---- names ---------------------------------------------------------------- */

static const char *const status_tokens[MSG_E_COUNT] = {
	[MSG_OK] = "ok",           [MSG_E_TOO_BIG] = "too_big",
	[MSG_E_SYNTAX] = "syntax", [MSG_E_VERSION] = "version",
	[MSG_E_FIELD] = "field",   [MSG_E_LIMIT] = "limit",
	[MSG_E_EMPTY] = "empty",
};

const char *msg_strerror(int code)
{
	if (code < 0 || code >= MSG_E_COUNT)
		return "unknown";
	return status_tokens[code];
}

const char *msg_item_kind_name(enum msg_item_kind kind)
{
	if ((unsigned)kind >= NKINDS)
		return "unknown";
	return fields[kind_field[kind]].name;
}
