/*
 * keys_lists.c - the policy's word lists and list-valued types, parsed for
 * keys_set() (keys.c): "a|b|c" word lists, statuses, status sets, flags,
 * ordered chains, access log fields, shed lists and cohort keys.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "policy_internal.h"

const char *const lv_priority_names[LV_PRIO__COUNT] = {"critical", "normal", "optional"};

/* Index of `s` in a "a|b|c" list, or -1. */
int keys_word(const char *words, const char *s)
{
	size_t len = strlen(s);
	int i = 0;
	for (const char *w = words; w != NULL; i++) {
		const char *bar = strchr(w, '|');
		size_t wlen = bar ? (size_t)(bar - w) : strlen(w);
		if (wlen == len && memcmp(w, s, len) == 0)
			return i;
		w = bar ? bar + 1 : NULL;
	}
	return -1;
}

/* "a|b|c" as "a, b, c" for messages and documentation. */
void keys_words_list(const char *words, const char *sep, char *buf, size_t sz)
{
	size_t o = 0;
	buf[0] = '\0';
	for (const char *w = words; *w && o + 1 < sz; w++) {
		int n = *w == '|' ? snprintf(buf + o, sz - o, "%s", sep) : snprintf(buf + o, sz - o, "%c", *w);
		if (n < 0 || (size_t)n >= sz - o)
			break;
		o += (size_t)n;
	}
}

/* "404, 410" -> {2, {404, 410}} */
int keys_statuses(const char *text, struct lv_statuses *out, char *err, size_t errsz)
{
	const char *p = text;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		unsigned v = 0;
		int digits = 0;
		while (isdigit((unsigned char)*p) && digits < 4) {
			v = v * 10 + (unsigned)(*p++ - '0');
			digits++;
		}
		if (digits != 3 || v < 100 || v > 599 || (*p && *p != ',' && *p != ' ' && *p != '\t')) {
			snprintf(err, errsz, "expected HTTP statuses (100-599) separated by commas");
			return LV_ERR;
		}
		if (out->n >= LV_MAX_STATUSES) {
			snprintf(err, errsz, "at most %d statuses", LV_MAX_STATUSES);
			return LV_ERR;
		}
		out->s[out->n++] = (uint16_t)v;
	}
	return LV_OK;
}

/* Calls `fn` for each element of a list separated by commas and blanks;
 * "none" is the empty list, and a list with no element is an error (it
 * says "write none for no <what>"). */
typedef bool (*keys_item_fn)(const char *e, size_t len, void *arg, char *err, size_t errsz);
static int keys_items(const char *text, keys_item_fn fn, void *arg, const char *what, char *err, size_t errsz)
{
	if (strcmp(text, "none") == 0)
		return LV_OK;
	bool any = false;
	for (const char *p = text; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		const char *e = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		if (!fn(e, (size_t)(p - e), arg, err, errsz))
			return LV_ERR;
		any = true;
	}
	if (!any) {
		snprintf(err, errsz, "empty: write none for no %s", what);
		return LV_ERR;
	}
	return LV_OK;
}

/* One element of a status set: "500", "502-599" or "5xx". */
static bool keys_status_item(const char *e, size_t len, void *arg, char *err, size_t errsz)
{
	struct lv_status_set *out = arg;
	unsigned lo = 0, hi = 0;
	bool ok = false;
	if (len == 3 && e[1] == 'x' && e[2] == 'x' && e[0] >= '1' && e[0] <= '5') {
		lo = (unsigned)(e[0] - '0') * 100;
		hi = lo + 99;
		ok = true;
	} else if (len == 3 || len == 7) {
		ok = isdigit((unsigned char)e[0]) && isdigit((unsigned char)e[1]) && isdigit((unsigned char)e[2]);
		lo = hi = ok ? (unsigned)((e[0] - '0') * 100 + (e[1] - '0') * 10 + (e[2] - '0')) : 0;
		if (ok && len == 7) {
			ok = e[3] == '-' && isdigit((unsigned char)e[4]) && isdigit((unsigned char)e[5]) &&
			     isdigit((unsigned char)e[6]);
			hi = ok ? (unsigned)((e[4] - '0') * 100 + (e[5] - '0') * 10 + (e[6] - '0')) : 0;
		}
	}
	if (!ok || lo < 100 || hi > 599 || hi < lo) {
		snprintf(err, errsz, "expected HTTP statuses (100-599), ranges such as 502-504 or classes such as 5xx, "
		                     "separated by commas, or none");
		return false;
	}
	for (unsigned st = lo; st <= hi; st++)
		out->bits[st / 64] |= (uint64_t)1 << (st % 64);
	return true;
}

/* "500, 502-599, 4xx": statuses, ranges and classes; "none" is the empty set. */
int keys_status_set(const char *text, struct lv_status_set *out, char *err, size_t errsz)
{
	memset(out, 0, sizeof(*out));
	return keys_items(text, keys_status_item, out, "status", err, errsz);
}

struct keys_flags_arg {
	const char *words;
	unsigned bits;
};

static bool keys_flag_item(const char *e, size_t len, void *arg, char *err, size_t errsz)
{
	struct keys_flags_arg *f = arg;
	char one[32];
	int i = len < sizeof(one) ? (snprintf(one, sizeof(one), "%.*s", (int)len, e), keys_word(f->words, one)) : -1;
	if (i < 0) {
		char list[128];
		keys_words_list(f->words, ", ", list, sizeof(list));
		snprintf(err, errsz, "'%.*s' is not one of %s (or none)", (int)len, e, list);
		return false;
	}
	f->bits |= 1u << i;
	return true;
}

/* "a, c" of words "a|b|c" as bits 0 and 2; "none" is 0. */
int keys_flags(const char *words, const char *text, unsigned *out, char *err, size_t errsz)
{
	struct keys_flags_arg f = {words, 0};
	int rc = keys_items(text, keys_flag_item, &f, "kind", err, errsz);
	*out = f.bits;
	return rc;
}

/* An ordered list of distinct words, into `kind[0..*n)` (at most `cap`). */
struct keys_chain_arg {
	const char *words;
	uint8_t *kind;
	uint8_t *n;
	size_t cap;
	const char *what; /* "kinds", "fields": for "too many" */
};

static bool keys_chain_item(const char *e, size_t len, void *arg, char *err, size_t errsz)
{
	struct keys_chain_arg *c = arg;
	struct keys_flags_arg f = {c->words, 0};
	if (!keys_flag_item(e, len, &f, err, errsz))
		return false;
	uint8_t kind = (uint8_t)__builtin_ctz(f.bits);
	for (unsigned i = 0; i < *c->n; i++)
		if (c->kind[i] == kind) {
			snprintf(err, errsz, "'%.*s' is listed twice", (int)len, e);
			return false;
		}
	if (*c->n >= c->cap) {
		snprintf(err, errsz, "too many %s", c->what);
		return false;
	}
	c->kind[(*c->n)++] = kind;
	return true;
}

/* "optional, normal 30%": whole priorities, or a share of one (the cohorts
 * below it, proxy/resilience/tier.h); "none" sheds nothing. Critical is
 * never shed by a tier, so naming it is an error rather than ignored. */
int keys_shed(const char *text, struct lv_shed *out, char *err, size_t errsz)
{
	memset(out, 0, sizeof(*out));
	if (strcmp(text, "none") == 0)
		return LV_OK;
	bool any = false;
	for (const char *p = text; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		const char *w = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		size_t wl = (size_t)(p - w);
		while (*p == ' ' || *p == '\t')
			p++;
		const char *share = NULL;
		size_t sl = 0;
		if (*p && *p != ',') {
			share = p;
			while (*p && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			sl = (size_t)(p - share);
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p && *p != ',') {
				snprintf(err, errsz, "expected ',' after '%.*s %.*s'", (int)wl, w, (int)sl, share);
				return LV_ERR;
			}
		}
		int prio = -1;
		for (int i = 0; i < LV_PRIO__COUNT; i++)
			if (strlen(lv_priority_names[i]) == wl && memcmp(lv_priority_names[i], w, wl) == 0)
				prio = i;
		if (prio == LV_PRIO_CRITICAL) {
			snprintf(err, errsz, "critical routes are never shed by a tier");
			return LV_ERR;
		}
		if (prio < 0) {
			snprintf(err, errsz, "'%.*s': expected optional or normal, each with an optional share (normal 30%%)",
			         (int)wl, w);
			return LV_ERR;
		}
		if (out->pct[prio] != 0) {
			snprintf(err, errsz, "'%s' is listed twice", lv_priority_names[prio]);
			return LV_ERR;
		}
		double pct = 100.0;
		if (share) {
			char one[32];
			const char *why;
			if (sl >= sizeof(one)) {
				snprintf(err, errsz, "bad share '%.*s'", (int)sl, share);
				return LV_ERR;
			}
			memcpy(one, share, sl);
			one[sl] = '\0';
			if (value_percent(one, &pct, &why) != LV_OK || pct <= 0 || pct > 100) {
				snprintf(err, errsz, "bad share '%s' of %s: must be a percentage above 0%% and at most 100%%", one,
				         lv_priority_names[prio]);
				return LV_ERR;
			}
		}
		out->pct[prio] = pct;
		any = true;
	}
	if (!any) {
		snprintf(err, errsz, "empty: write none to shed nothing");
		return LV_ERR;
	}
	return LV_OK;
}

/* "address", "header:X-User-Id" or "cookie:session". */
int keys_cohort(const char *text, struct lv_cohort_key *out, char *err, size_t errsz)
{
	memset(out, 0, sizeof(*out));
	if (strcmp(text, "address") == 0)
		return LV_OK;
	const char *name = NULL;
	if (strncmp(text, "header:", 7) == 0) {
		out->kind = LV_COHORT_HEADER;
		name = text + 7;
	} else if (strncmp(text, "cookie:", 7) == 0) {
		out->kind = LV_COHORT_COOKIE;
		name = text + 7;
	} else {
		snprintf(err, errsz, "expected address, header:NAME or cookie:NAME");
		return LV_ERR;
	}
	size_t n = strlen(name);
	bool ok = n > 0 && n < sizeof(out->name);
	for (size_t i = 0; ok && i < n; i++)
		ok = (unsigned char)name[i] > ' ' && (unsigned char)name[i] < 0x7f && !strchr("()<>@,;:\\\"/[]?={}", name[i]);
	if (!ok) {
		snprintf(err, errsz, "'%s': the name must be 1-%zu token characters", name, sizeof(out->name) - 1);
		return LV_ERR;
	}
	memcpy(out->name, name, n + 1);
	return LV_OK;
}

/* "stale, static" of words "stale|static|status" as {2, {0, 1}}: the
 * order is kept, each word at most once; "none" is the empty chain. */
int keys_chain(const char *words, const char *text, struct lv_fallback_chain *out, char *err, size_t errsz)
{
	memset(out, 0, sizeof(*out));
	struct keys_chain_arg c = {words, out->kind, &out->n, sizeof(out->kind), "kinds"};
	return keys_items(text, keys_chain_item, &c, "fallback", err, errsz);
}

/* One field name: too many to list in a message, so the message names the
 * page that lists them. */
static bool keys_field_item(const char *e, size_t len, void *arg, char *err, size_t errsz)
{
	struct keys_chain_arg *c = arg;
	char one[32];
	if (len >= sizeof(one) || (snprintf(one, sizeof(one), "%.*s", (int)len, e), keys_word(c->words, one)) < 0) {
		snprintf(err, errsz, "'%.*s' is not a field (docs/access-log.md lists them), nor all", (int)(len < 64 ? len : 64), e);
		return false;
	}
	return keys_chain_item(e, len, arg, err, errsz);
}

/* One "-FIELD" after `all`: that field is left out. */
struct field_drop {
	const char *words;
	bool drop[LV_AF__COUNT];
};

static bool keys_field_drop(const char *e, size_t len, void *arg, char *err, size_t errsz)
{
	struct field_drop *d = arg;
	char one[32];
	int i = -1;
	if (len > 1 && len <= sizeof(one) && *e == '-') {
		snprintf(one, sizeof(one), "%.*s", (int)(len - 1), e + 1);
		i = keys_word(d->words, one);
	}
	if (i < 0) {
		snprintf(err, errsz, "after `all`, only -FIELD leaves a field out; \"%.*s\" is not one (docs/access-log.md)",
		         (int)(len > 64 ? 64 : len), e);
		return false;
	}
	d->drop[i] = true;
	return true;
}

/* "time client status" as the access log's fields in that order, each at
 * most once, or "all" of them, or "all -referer -cache_status": all less
 * some; a line with no field says nothing, so "none" is refused (turn the
 * log off with access_log = off). */
int keys_fields(const char *words, const char *text, struct lv_alog_fields *out, char *err, size_t errsz)
{
	memset(out, 0, sizeof(*out));
	if (strcmp(text, "none") == 0) {
		snprintf(err, errsz, "name at least one field; access_log = off turns the log off");
		return LV_ERR;
	}
	if (strncmp(text, "all", 3) == 0 && (text[3] == '\0' || strchr(" \t,", text[3]))) {
		/* every field, in the order of the list (a policy line is too
		 * short to name them all), less those named after it as -FIELD */
		struct field_drop d = {words, {false}};
		const char *rest = text + 3 + strspn(text + 3, " \t,");
		if (*rest && !keys_field_drop(rest, strcspn(rest, " \t,"), &d, err, errsz))
			return LV_ERR; /* the first item, as keys_items would not see it when it is "none" */
		if (*rest && keys_items(rest, keys_field_drop, &d, "field", err, errsz) != LV_OK)
			return LV_ERR;
		for (unsigned i = 0; i < LV_AF__COUNT; i++)
			if (!d.drop[i])
				out->f[out->n++] = (uint8_t)i;
		if (!out->n) {
			snprintf(err, errsz, "every field left out; access_log = off turns the log off");
			return LV_ERR;
		}
		return LV_OK;
	}
	struct keys_chain_arg c = {words, out->f, &out->n, sizeof(out->f), "fields"};
	return keys_items(text, keys_field_item, &c, "field", err, errsz);
}
