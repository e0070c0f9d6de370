/*
 * control_msg.c - the control topic's commands, events and signatures (see
 * control_msg.h and docs/control-message.md).
 *
 * Invariants:
 *  - Nothing of a value is parsed before its signature matched: ctl_accept()
 *    verifies first, and ctl_decode() is only reached with trusted bytes.
 *  - One table (fields[]) gives every known member its JSON type, bounds and
 *    character rule, and the types of command it belongs to; the decoder and
 *    the encoder check strings with the same function, so whatever
 *    ctl_encode() writes, ctl_decode() reads back to the same command.
 *  - The decoder reads the whole document even after a field problem, so a
 *    syntax error anywhere wins, then a version other than 1, then the first
 *    field problem in message order.
 */
#include "control/control_msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/hmac.h"
#include "invalidate/json.h"

static const char *const verdict_names[CTL_VERDICT_COUNT] = {
    [CTL_APPLY] = "applied",          [CTL_NO_KEY] = "no-key",
    [CTL_UNSIGNED] = "unsigned",      [CTL_BAD_SIGNATURE] = "bad-signature",
    [CTL_MALFORMED] = "malformed",    [CTL_TOO_FAR] = "too-far",
    [CTL_REJECTED] = "rejected",      [CTL_EXPIRED] = "expired",
    [CTL_OTHER_SERVICE] = "other-service", [CTL_DUPLICATE] = "duplicate",
    [CTL_EVENT] = "event",            [CTL_SUPERSEDED] = "superseded",
};

const char *ctl_verdict_name(enum ctl_verdict v)
{
	return (unsigned)v < CTL_VERDICT_COUNT ? verdict_names[v] : "unknown";
}

/* ---- signatures ----------------------------------------------------------- */

void ctl_sign(const void *key, size_t klen, const void *msg, size_t len, char out[CTL_SIG_LEN + 1])
{
	unsigned char mac[SHA256_LEN];
	hmac_sha256(key, klen, msg, len, mac);
	memcpy(out, CTL_SIG_PREFIX, sizeof(CTL_SIG_PREFIX) - 1);
	hmac_hex(mac, sizeof(mac), out + sizeof(CTL_SIG_PREFIX) - 1);
}

enum ctl_verdict ctl_verify(const void *key, size_t klen, const char *sig, size_t slen, const void *msg,
                            size_t len)
{
	if (!key || klen < CTL_KEY_MIN)
		return CTL_NO_KEY;
	if (!sig)
		return CTL_UNSIGNED;
	if (slen != CTL_SIG_LEN)
		return CTL_BAD_SIGNATURE;
	char want[CTL_SIG_LEN + 1];
	ctl_sign(key, klen, msg, len, want);
	return hmac_equal(want, sig, CTL_SIG_LEN) ? CTL_APPLY : CTL_BAD_SIGNATURE;
}

/* ---- the field table ------------------------------------------------------ */

enum field { F_V, F_TYPE, F_ID, F_SERVICE, F_TIER, F_UNTIL, F_CLEAR, F_REASON, F_ISSUED_BY, F_ISSUED_AT, F_COUNT };
enum ftype { T_INT, T_STRING };
enum rule { R_ID, R_TEXT }; /* R_ID: 0x21..0x7e; R_TEXT: UTF-8 without a control character */
#define FOR_FORCE (1u << CTL_FORCE)
#define FOR_CLEAR (1u << CTL_CLEAR)
#define FOR_BOTH (FOR_FORCE | FOR_CLEAR)

struct field_def {
	const char *name;
	enum ftype type;
	unsigned belongs, required; /* bits per enum ctl_type */
	size_t min, max;            /* string bytes, or integer bounds */
	enum rule rule;
};

static const struct field_def fields[F_COUNT] = {
    [F_V] = {"v", T_INT, FOR_BOTH, FOR_BOTH, 0, 0, R_ID},
    [F_TYPE] = {"type", T_STRING, FOR_BOTH, FOR_BOTH, 1, 32, R_ID},
    [F_ID] = {"id", T_STRING, FOR_BOTH, FOR_BOTH, 1, TIER_ID_MAX - 1, R_ID},
    [F_SERVICE] = {"service", T_STRING, FOR_BOTH, FOR_BOTH, 1, LV_NAME_MAX - 1, R_TEXT},
    [F_TIER] = {"tier", T_STRING, FOR_FORCE, FOR_FORCE, 1, LV_NAME_MAX - 1, R_ID},
    [F_UNTIL] = {"until", T_INT, FOR_FORCE, FOR_FORCE, 1, (size_t)CTL_UNTIL_MAX, R_ID},
    [F_CLEAR] = {"clear", T_STRING, FOR_CLEAR, FOR_CLEAR, 1, TIER_ID_MAX - 1, R_ID},
    [F_REASON] = {"reason", T_STRING, FOR_BOTH, 0, 0, TIER_REASON_MAX - 1, R_TEXT},
    [F_ISSUED_BY] = {"issued_by", T_STRING, FOR_BOTH, 0, 0, LV_NAME_MAX - 1, R_TEXT},
    [F_ISSUED_AT] = {"issued_at", T_INT, FOR_BOTH, 0, 0, (size_t)CTL_UNTIL_MAX, R_ID},
};

/* The details a decode reports, per member and problem. */
enum problem { P_MISSING, P_TYPE, P_RANGE, P_EMPTY, P_LONG, P_CHARS, P_COUNT };
#define Q(n) "\"" n "\""
#define STR_DETAILS(n) {Q(n) " is missing", Q(n) " is not a string", NULL, Q(n) " is empty", \
	Q(n) " is too long", Q(n) " holds a forbidden character"}
#define INT_DETAILS(n, range) {Q(n) " is missing", Q(n) " is not a number", Q(n) " is not an integer" range}
static const char *const details[F_COUNT][P_COUNT] = {
    [F_V] = INT_DETAILS("v", ""),
    [F_TYPE] = STR_DETAILS("type"),
    [F_ID] = STR_DETAILS("id"),
    [F_SERVICE] = STR_DETAILS("service"),
    [F_TIER] = STR_DETAILS("tier"),
    [F_UNTIL] = INT_DETAILS("until", " in 1..2^53-1"),
    [F_CLEAR] = STR_DETAILS("clear"),
    [F_REASON] = STR_DETAILS("reason"),
    [F_ISSUED_BY] = STR_DETAILS("issued_by"),
    [F_ISSUED_AT] = INT_DETAILS("issued_at", " in 0..2^53-1"),
};

/* Whether `s` keeps `rule` (s is valid UTF-8 without U+0000: the reader's
 * output, or the encoder's caller's, which is checked the same way). */
static bool rule_ok(enum rule rule, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		if (p[i] < 0x80) {
			if (p[i] < 0x20 || p[i] == 0x7f || (rule == R_ID && p[i] == ' '))
				return false;
			i++;
			continue;
		}
		size_t n = json_utf8_len(s + i, len - i);
		/* C1 controls, U+0080..U+009F, are C2 80..C2 9F */
		if (rule == R_ID || n == 0 || (p[i] == 0xc2 && p[i + 1] < 0xa0))
			return false;
		i += n;
	}
	return true;
}

static bool str_ok(const struct field_def *f, const char *s, size_t len)
{
	return len >= f->min && len <= f->max && memchr(s, '\0', len) == NULL && rule_ok(f->rule, s, len);
}

/* ---- decoding ------------------------------------------------------------- */

struct dec {
	struct json_reader r;
	struct ctl_cmd *c;
	unsigned seen;
	int64_t version;
	bool have_version, is_event, type_known;
	const char *why; /* the first field problem, in message order */
	char type[33];
};

static void problem(struct dec *d, const char *why)
{
	if (!d->why)
		d->why = why;
}

static char *field_buf(struct dec *d, enum field f, size_t *cap)
{
	struct ctl_cmd *c = d->c;
	switch (f) {
	case F_TYPE: *cap = sizeof(d->type); return d->type;
	case F_ID: *cap = sizeof(c->id); return c->id;
	case F_SERVICE: *cap = sizeof(c->service); return c->service;
	case F_TIER: *cap = sizeof(c->tier); return c->tier;
	case F_CLEAR: *cap = sizeof(c->clear); return c->clear;
	case F_REASON: *cap = sizeof(c->reason); return c->reason;
	case F_ISSUED_BY: *cap = sizeof(c->issued_by); return c->issued_by;
	default: *cap = 0; return NULL;
	}
}

/* Reads the value of member `f`; false on a syntax error (the reader stopped). */
static bool take(struct dec *d, enum field f)
{
	const struct field_def *def = &fields[f];
	const char *const *say = details[f];
	enum json_kind k = json_peek(&d->r);
	if (k == JSON_ERROR)
		return false;
	if (d->seen & (1u << f)) {
		problem(d, "a member appears more than once");
		return json_skip(&d->r) == JSON_OK;
	}
	d->seen |= 1u << f;
	if (def->type == T_INT) {
		if (k != JSON_NUMBER) {
			problem(d, say[P_TYPE]);
			return json_skip(&d->r) == JSON_OK;
		}
		int64_t v;
		int rc = json_read_int64(&d->r, &v);
		if (rc == JSON_ERR)
			return false;
		if (rc != JSON_OK || (f != F_V && (v < (int64_t)def->min || v > (int64_t)def->max))) {
			problem(d, say[P_RANGE]);
			return true;
		}
		if (f == F_V) {
			d->version = v;
			d->have_version = true;
		} else if (f == F_UNTIL)
			d->c->until_unix_ms = (uint64_t)v;
		else
			d->c->issued_unix_ms = v;
		return true;
	}
	if (k != JSON_STRING) {
		problem(d, say[P_TYPE]);
		return json_skip(&d->r) == JSON_OK;
	}
	size_t cap, len;
	char *out = field_buf(d, f, &cap);
	bool nul;
	int rc = json_read_string(&d->r, out, cap, &len, &nul);
	if (rc == JSON_ERR)
		return false;
	if (rc != JSON_OK) {
		out[0] = '\0';
		problem(d, say[P_LONG]);
		return true;
	}
	if (nul || !str_ok(def, out, len)) {
		problem(d, len < def->min ? say[P_EMPTY] : len > def->max ? say[P_LONG] : say[P_CHARS]);
		out[0] = '\0';
	}
	return true;
}

enum ctl_verdict ctl_decode(const char *in, size_t len, struct ctl_cmd *c, const char **why)
{
	static const char *dummy;
	if (!why)
		why = &dummy;
	memset(c, 0, sizeof(*c));
	c->issued_unix_ms = -1;
	if (len > CTL_MAX_BYTES) {
		*why = "over 4096 bytes";
		return CTL_MALFORMED;
	}
	struct dec d = {.c = c};
	json_init(&d.r, in, len, CTL_MAX_DEPTH);
	if (json_peek(&d.r) != JSON_OBJECT) {
		*why = json_error(&d.r, NULL) ? json_error(&d.r, NULL) : "not a JSON object";
		return CTL_MALFORMED;
	}
	struct json_str name;
	while (json_object_next(&d.r, &name)) {
		enum field f = F_COUNT;
		for (unsigned i = 0; i < F_COUNT; i++)
			if (json_str_eq(&name, fields[i].name))
				f = (enum field)i;
		/* unknown members are ignored, for versions to come */
		if (f == F_COUNT ? json_skip(&d.r) != JSON_OK : !take(&d, f))
			break;
	}
	if (json_finish(&d.r) != JSON_OK) {
		*why = json_error(&d.r, NULL) ? json_error(&d.r, NULL) : "not one JSON value";
		return CTL_MALFORMED;
	}
	if (!(d.seen & (1u << F_V)) || !d.have_version) {
		*why = (d.seen & (1u << F_V)) ? "\"v\" is not an integer" : details[F_V][P_MISSING];
		return CTL_MALFORMED;
	}
	if (d.version != CTL_VERSION) {
		*why = "unknown version";
		return CTL_MALFORMED;
	}
	if (strcmp(d.type, "tier-change") == 0) {
		*why = "a tier-change event";
		return CTL_EVENT; /* ours or another replica's; its fields are not a command's */
	}
	if (strcmp(d.type, "force-tier") == 0)
		c->type = CTL_FORCE;
	else if (strcmp(d.type, "clear-tier") == 0)
		c->type = CTL_CLEAR;
	else {
		*why = (d.seen & (1u << F_TYPE)) ? "unknown \"type\"" : details[F_TYPE][P_MISSING];
		return CTL_MALFORMED;
	}
	if (d.why) {
		*why = d.why;
		return CTL_MALFORMED;
	}
	unsigned bit = 1u << c->type;
	for (unsigned f = 0; f < F_COUNT; f++) {
		if ((fields[f].required & bit) && !(d.seen & (1u << f))) {
			*why = details[f][P_MISSING];
			return CTL_MALFORMED;
		}
		if (!(fields[f].belongs & bit) && (d.seen & (1u << f))) {
			*why = c->type == CTL_FORCE ? "\"clear\" does not belong to force-tier"
			                            : "\"tier\" and \"until\" do not belong to clear-tier";
			return CTL_MALFORMED;
		}
	}
	*why = "ok";
	return CTL_APPLY;
}

enum ctl_verdict ctl_check(const struct ctl_cmd *c, const char *service, uint64_t now_ms)
{
	if (strcmp(c->service, service) != 0)
		return CTL_OTHER_SERVICE;
	if (c->type == CTL_FORCE) {
		if (c->until_unix_ms <= now_ms)
			return CTL_EXPIRED;
		if (c->until_unix_ms - now_ms > CTL_HORIZON_MS)
			return CTL_TOO_FAR;
	}
	return CTL_APPLY;
}

enum ctl_verdict ctl_accept(const void *key, size_t klen, const char *sig, size_t slen, const char *val,
                            size_t vlen, const char *service, uint64_t now_ms, struct ctl_cmd *c,
                            const char **why)
{
	enum ctl_verdict v = ctl_verify(key, klen, sig, slen, val, vlen);
	if (v != CTL_APPLY) {
		*why = ctl_verdict_name(v);
		return v;
	}
	v = ctl_decode(val, vlen, c, why);
	if (v != CTL_APPLY)
		return v;
	v = ctl_check(c, service, now_ms);
	if (v != CTL_APPLY)
		*why = ctl_verdict_name(v);
	return v;
}

int ctl_fold_add(struct ctl_fold *f, const struct ctl_cmd *c, int64_t ts)
{
	if (f->n == CTL_FOLD_MAX) {
		/* full: the oldest by record time drops out */
		size_t old = 0;
		for (size_t i = 1; i < f->n; i++)
			if (f->v[i].ts < f->v[old].ts || (f->v[i].ts == f->v[old].ts && f->v[i].seq < f->v[old].seq))
				old = i;
		f->v[old] = f->v[--f->n];
	}
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 16;
		struct ctl_fold_entry *v = realloc(f->v, cap * sizeof(*v));
		if (!v)
			return LV_ERR;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = (struct ctl_fold_entry){.cmd = *c, .ts = ts, .seq = f->seq++};
	return LV_OK;
}

static int fold_order(const void *a, const void *b)
{
	const struct ctl_fold_entry *x = a, *y = b;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

const struct ctl_cmd *ctl_fold_result(struct ctl_fold *f, bool (*known)(const char *tier, void *arg), void *arg,
                                      unsigned *moot)
{
	if (f->n)
		qsort(f->v, f->n, sizeof(*f->v), fold_order);
	const struct ctl_cmd *pending = NULL;
	for (size_t i = 0; i < f->n; i++) {
		const struct ctl_cmd *c = &f->v[i].cmd;
		if (c->type == CTL_FORCE) {
			if (!known || known(c->tier, arg))
				pending = c;
		} else if (pending && (strcmp(c->clear, "*") == 0 || strcmp(c->clear, pending->id) == 0)) {
			pending = NULL;
		}
	}
	*moot = (unsigned)(f->n - (pending != NULL));
	return pending;
}

void ctl_fold_free(struct ctl_fold *f)
{
	free(f->v);
	memset(f, 0, sizeof(*f));
}

/* ---- encoding ------------------------------------------------------------- */

struct out {
	char *p;
	size_t cap, len;
	bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || o->len + n >= o->cap) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* A JSON string: `"` and `\` escaped, control bytes as \u00XX (the strings a
 * command holds have none; an admin's reason in an event might). */
static void put_str(struct out *o, const char *s)
{
	put(o, "\"", 1);
	for (const char *p = s; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		char esc[8];
		if (ch == '"' || ch == '\\') {
			esc[0] = '\\';
			esc[1] = (char)ch;
			put(o, esc, 2);
		} else if (ch < 0x20 || ch == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", ch);
			put(o, esc, 6);
		} else
			put(o, p, 1);
	}
	put(o, "\"", 1);
}

static void put_member(struct out *o, const char *name, const char *value)
{
	put(o, ",\"", 2);
	puts_(o, name);
	put(o, "\":", 2);
	put_str(o, value);
}

static void put_int(struct out *o, const char *name, uint64_t v)
{
	char b[48];
	snprintf(b, sizeof(b), ",\"%s\":%" PRIu64, name, v);
	puts_(o, b);
}

static bool cmd_ok(const struct ctl_cmd *c)
{
	const char *strs[F_COUNT] = {[F_ID] = c->id, [F_SERVICE] = c->service, [F_REASON] = c->reason,
	                             [F_ISSUED_BY] = c->issued_by};
	if (c->type == CTL_FORCE)
		strs[F_TIER] = c->tier;
	else if (c->type == CTL_CLEAR)
		strs[F_CLEAR] = c->clear;
	else
		return false;
	for (unsigned f = 0; f < F_COUNT; f++)
		if (strs[f] && !str_ok(&fields[f], strs[f], strlen(strs[f])))
			return false;
	if (c->type == CTL_FORCE && (c->until_unix_ms < 1 || c->until_unix_ms > (uint64_t)CTL_UNTIL_MAX))
		return false;
	return c->issued_unix_ms >= -1 && c->issued_unix_ms <= CTL_UNTIL_MAX;
}

size_t ctl_encode(const struct ctl_cmd *c, char *out, size_t cap)
{
	if (!cmd_ok(c))
		return 0;
	struct out o = {out, cap, 0, false};
	puts_(&o, c->type == CTL_FORCE ? "{\"v\":1,\"type\":\"force-tier\"" : "{\"v\":1,\"type\":\"clear-tier\"");
	put_member(&o, "id", c->id);
	put_member(&o, "service", c->service);
	if (c->type == CTL_FORCE) {
		put_member(&o, "tier", c->tier);
		put_int(&o, "until", c->until_unix_ms);
	} else
		put_member(&o, "clear", c->clear);
	if (c->reason[0])
		put_member(&o, "reason", c->reason);
	if (c->issued_by[0])
		put_member(&o, "issued_by", c->issued_by);
	if (c->issued_unix_ms >= 0)
		put_int(&o, "issued_at", (uint64_t)c->issued_unix_ms);
	put(&o, "}", 1);
	return o.full || o.len > CTL_MAX_BYTES ? 0 : o.len;
}

size_t ctl_event_encode(const struct tier_change *tc, const char *service, const char *instance, char *out,
                        size_t cap)
{
	struct out o = {out, cap, 0, false};
	puts_(&o, "{\"v\":1,\"type\":\"tier-change\"");
	put_member(&o, "service", service);
	put_member(&o, "instance", instance);
	put_member(&o, "from", tc->from_name ? tc->from_name : "normal");
	put_member(&o, "to", tc->to_name ? tc->to_name : "normal");
	put_int(&o, "level", tc->to);
	puts_(&o, ",\"forced\":");
	if (tc->force) {
		const struct tier_force *f = tc->force;
		put(&o, "{\"tier\":", 8);
		put_str(&o, f->tier);
		put_member(&o, "source", f->source);
		put_member(&o, "id", f->id);
		put_member(&o, "reason", f->reason);
		put_int(&o, "until_unix_ms", f->until_unix_ms);
		put(&o, "}", 1);
	} else
		puts_(&o, "null");
	/* the tier core's own JSON object; anything else would not be one */
	puts_(&o, ",\"signals\":");
	puts_(&o, tc->signals_json && tc->signals_json[0] == '{' ? tc->signals_json : "{}");
	put_int(&o, "time", tc->unix_ms);
	put(&o, "}", 1);
	return o.full ? 0 : o.len;
}
