/*
 * walk.c - a snapshot's values, key by key, written back in policy syntax
 * (policy_walk(), policy.h).
 *
 * The writer is the inverse of keys_set() (keys.c), type by type: for every
 * value v of a key, keys_set(walk_format(v)) gives v again. That is what
 * makes `levee check --print` a file levee loads to the same policy, and
 * what lets `levee diff` compare two snapshots as text: two values of a key
 * are equal exactly when they are written the same. The unit tests check
 * the round trip over policy/examples/complete.ini.
 *
 * What the file cannot say, the walk refuses rather than writes wrong: a
 * value from ${VAR} whose text inih would cut (" ;") or trim (blanks at its
 * ends), a control byte, or a line past POLICY_LINE_MAX.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

#define WALK_VALUE_MAX (2 * POLICY_VALUE_MAX + 16) /* every '$' doubled */

struct pw_buf {
	char *p;
	size_t len, cap;
	bool over;
};

static void pw_put(struct pw_buf *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pw_put(struct pw_buf *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(w->p + w->len, w->cap - w->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= w->cap - w->len) {
		w->over = true;
		return;
	}
	w->len += (size_t)n;
}

/* "a,b" as stored, written "a, b". */
static void pw_list(struct pw_buf *w, const char *stored)
{
	for (const char *s = stored; *s; s++)
		if (*s == ',')
			pw_put(w, ", ");
		else
			pw_put(w, "%c", *s);
}

static void pw_duration(struct pw_buf *w, uint64_t ms)
{
	if (ms == 0)
		pw_put(w, "0");
	else if (ms % 3600000 == 0)
		pw_put(w, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms % 60000 == 0)
		pw_put(w, "%llum", (unsigned long long)(ms / 60000));
	else if (ms % 1000 == 0)
		pw_put(w, "%llus", (unsigned long long)(ms / 1000));
	else
		pw_put(w, "%llums", (unsigned long long)ms);
}

static void pw_size(struct pw_buf *w, uint64_t b)
{
	static const char *const units[] = {"TiB", "GiB", "MiB", "KiB"};
	for (int i = 0; i < 4; i++) {
		uint64_t u = 1ull << (10 * (4 - i));
		if (b != 0 && b % u == 0) {
			pw_put(w, "%llu%s", (unsigned long long)(b / u), units[i]);
			return;
		}
	}
	pw_put(w, "%llu", (unsigned long long)b);
}

/* The shortest "%g" that value_percent() reads back to the same double. */
static void pw_percent(struct pw_buf *w, double v)
{
	char one[48];
	for (int prec = 1; prec <= 17; prec++) {
		double back;
		const char *why;
		snprintf(one, sizeof(one), "%.*g%%", prec, v);
		if (value_percent(one, &back, &why) == LV_OK && back == v)
			break;
	}
	pw_put(w, "%s", one);
}

/* Words "a|b|c": word `i`. */
static void pw_word(struct pw_buf *w, const char *words, int i)
{
	const char *s = words;
	for (int n = 0; s && n < i; n++) {
		s = strchr(s, '|');
		s = s ? s + 1 : NULL;
	}
	if (!s) {
		w->over = true; /* an index the table does not have: never written */
		return;
	}
	pw_put(w, "%.*s", (int)strcspn(s, "|"), s);
}

static void pw_flags(struct pw_buf *w, const char *words, unsigned bits)
{
	if (bits == 0) {
		pw_put(w, "none");
		return;
	}
	const char *sep = "";
	for (int i = 0; i < 32; i++)
		if (bits & (1u << i)) {
			pw_put(w, "%s", sep);
			pw_word(w, words, i);
			sep = ", ";
		}
}

static void pw_status_set(struct pw_buf *w, const struct lv_status_set *set)
{
	const char *sep = "";
	for (unsigned s = 100; s <= 599; s++) {
		if (!status_set_has(set, s))
			continue;
		unsigned e = s;
		while (e + 1 <= 599 && status_set_has(set, e + 1))
			e++;
		if (e == s)
			pw_put(w, "%s%u", sep, s);
		else
			pw_put(w, "%s%u-%u", sep, s, e);
		sep = ", ";
		s = e;
	}
	if (!*sep)
		pw_put(w, "none");
}

static void pw_hostport(struct pw_buf *w, const struct lv_hostport *hp, const char *none)
{
	if (hp->host[0] == '\0' && none)
		pw_put(w, "%s", none);
	else if (strchr(hp->host, ':'))
		pw_put(w, "[%s]:%u", hp->host, hp->port);
	else
		pw_put(w, "%s:%u", hp->host, hp->port);
}

static void pw_methods(struct pw_buf *w, unsigned mask)
{
	if (mask == LV_M_ANY) {
		pw_put(w, "any");
		return;
	}
	const char *sep = "";
	for (unsigned bit = LV_M_GET; bit < LV_M_OTHER; bit <<= 1)
		if (mask & bit) {
			pw_put(w, "%s%s", sep, policy_method_name(bit));
			sep = ", ";
		}
}

static void pw_shed(struct pw_buf *w, const struct lv_shed *sh)
{
	const char *sep = "";
	for (int i = 0; i < LV_PRIO__COUNT; i++) {
		if (sh->pct[i] <= 0)
			continue;
		pw_put(w, "%s%s", sep, lv_priority_names[i]);
		if (sh->pct[i] < 100.0) {
			pw_put(w, " ");
			pw_percent(w, sh->pct[i]);
		}
		sep = ", ";
	}
	if (!*sep)
		pw_put(w, "none");
}

/* access_log_fields: the names in order, or, when the fields keep the
 * documented order and that is shorter, `all` less the fields left out (a
 * policy line cannot hold every name). */
static void pw_fields(struct pw_buf *w, const struct lv_alog_fields *fl)
{
	bool ordered = true;
	for (unsigned i = 1; ordered && i < fl->n; i++)
		ordered = fl->f[i] > fl->f[i - 1];
	if (ordered && 2 * fl->n > LV_AF__COUNT) {
		pw_put(w, "all");
		for (unsigned f = 0, i = 0; f < LV_AF__COUNT; f++) {
			if (i < fl->n && fl->f[i] == f)
				i++;
			else
				pw_put(w, " -%s", lv_alog_field_names[f]);
		}
		return;
	}
	for (unsigned i = 0; i < fl->n; i++)
		pw_put(w, "%s%s", i ? " " : "", lv_alog_field_names[fl->f[i]]);
}

/* The value of `k` at `base` in policy syntax, before '$' is doubled. */
static void walk_format(const struct keys_def *k, const void *base, struct pw_buf *w)
{
	const char *f = (const char *)base + k->off;
	uint64_t u;
	switch (k->type) {
	case KT_NAME:
	case KT_TOPIC:
	case KT_PATH:
	case KT_TEXT:
	case KT_SECRET:
	case KT_LINE:
		pw_put(w, "%s", f);
		break;
	case KT_HEADERS:
		if (*f == '\0' && k->words != NULL) {
			pw_put(w, "%s", k->words); /* "none" */
			break;
		}
		/* fall through */
	case KT_TAGS:
	case KT_HOSTPORTS:
	case KT_INVALIDATIONS:
		pw_list(w, f);
		break;
	case KT_HOSTPORT:
		pw_hostport(w, (const void *)f, k->words);
		break;
	case KT_FIELDS:
		pw_fields(w, (const void *)f);
		break;
	case KT_DURATION:
		memcpy(&u, f, sizeof(u));
		pw_duration(w, u);
		break;
	case KT_SIZE:
		memcpy(&u, f, sizeof(u));
		pw_size(w, u);
		break;
	case KT_UINT:
		memcpy(&u, f, sizeof(u));
		if (u == 0 && k->words)
			pw_put(w, "%s", k->words);
		else
			pw_put(w, "%llu", (unsigned long long)u);
		break;
	case KT_BOOL:
		pw_put(w, "%s", *(const bool *)f ? "true" : "false");
		break;
	case KT_PERCENT: {
		double d;
		memcpy(&d, f, sizeof(d));
		pw_percent(w, d);
		break;
	}
	case KT_ENUM: {
		int i;
		memcpy(&i, f, sizeof(i));
		pw_word(w, k->words, i);
		break;
	}
	case KT_METHODS: {
		unsigned m;
		memcpy(&m, f, sizeof(m));
		pw_methods(w, m);
		break;
	}
	case KT_GLOB:
	case KT_PREFIX:
		pw_put(w, "%s", ((const struct lv_route *)base)->pattern);
		break;
	case KT_TTL:
		memcpy(&u, f, sizeof(u));
		if (u == LV_TTL_OFF)
			pw_put(w, "off");
		else if (u == LV_TTL_ORIGIN)
			pw_put(w, "origin");
		else
			pw_duration(w, u);
		break;
	case KT_STATUSES: {
		const struct lv_statuses *l = (const void *)f;
		for (uint32_t i = 0; i < l->n; i++)
			pw_put(w, "%s%u", i ? ", " : "", l->s[i]);
		break;
	}
	case KT_STATUS_SET:
		pw_status_set(w, (const void *)f);
		break;
	case KT_FLAGS: {
		unsigned bits;
		memcpy(&bits, f, sizeof(bits));
		pw_flags(w, k->words, bits);
		break;
	}
	case KT_CHAIN: {
		const struct lv_fallback_chain *c = (const void *)f;
		if (c->n == 0)
			pw_put(w, "none");
		for (unsigned i = 0; i < c->n; i++) {
			pw_put(w, "%s", i ? ", " : "");
			pw_word(w, k->words, c->kind[i]);
		}
		break;
	}
	case KT_SHED:
		pw_shed(w, (const void *)f);
		break;
	case KT_COHORT: {
		const struct lv_cohort_key *c = (const void *)f;
		if (c->kind == LV_COHORT_HEADER)
			pw_put(w, "header:%s", c->name);
		else if (c->kind == LV_COHORT_COOKIE)
			pw_put(w, "cookie:%s", c->name);
		else
			pw_put(w, "address");
		break;
	}
	case KT_WINDOW: {
		const struct lv_window *win = (const void *)f;
		if (win->calls)
			pw_put(w, "%llu calls", (unsigned long long)win->calls);
		else
			pw_duration(w, win->ms);
		break;
	}
	}
}

/* Whether the text `v` survives a file line `key = v`; NULL, or why not. */
static const char *walk_writable(const char *key, const char *v)
{
	size_t n = strlen(v);
	if (n && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1])))
		return "it begins or ends with a blank, which the file's parser trims";
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)v[i] < ' ' || v[i] == 0x7f)
			return "it holds a control byte";
		if (v[i] == ';' && i && isspace((unsigned char)v[i - 1]))
			return "it holds \" ;\", which starts a comment in the file";
	}
	if (strlen(key) + 3 + n > POLICY_LINE_MAX)
		return "its line would be longer than a policy line may be (199 bytes)";
	return NULL;
}

struct walk_ctx {
	const struct lv_policy *p;
	unsigned flags;
	lv_walk_fn cb;
	void *arg;
	char *err;
	size_t errsz;
};

/* The keys of section `s` at `base`, whose defaults are at `defs`. */
static int walk_keys(struct walk_ctx *c, const struct keys_section *s, const void *base, const void *defs,
                     struct lv_keyval *kv)
{
	size_t n;
	const struct keys_def *table = keys_table(&n);
	for (size_t i = 0; i < n; i++) {
		const struct keys_def *k = &table[i];
		if (strcmp(k->section, s->name) != 0)
			continue;
		/* match and prefix share the pattern: the route's kind says which it is */
		if ((k->type == KT_GLOB && ((const struct lv_route *)base)->kind != LV_MATCH_GLOB) ||
		    (k->type == KT_PREFIX && ((const struct lv_route *)base)->kind != LV_MATCH_PREFIX))
			continue;
		char raw[WALK_VALUE_MAX], out[WALK_VALUE_MAX];
		raw[0] = '\0'; /* an empty list writes nothing */
		struct pw_buf w = {raw, 0, sizeof(raw) / 2, false};
		walk_format(k, base, &w);
		if (w.over) {
			snprintf(c->err, c->errsz, "[%s] %s: its value cannot be written back", s->name, k->name);
			return LV_ERR;
		}
		const char *why = walk_writable(k->name, raw);
		if (why) {
			snprintf(c->err, c->errsz, "[%s%s%s%s] %s: cannot be written back as a policy line: %s", s->name,
			         kv->instance ? " \"" : "", kv->instance ? kv->instance : "", kv->instance ? "\"" : "",
			         k->name, why);
			return LV_ERR;
		}
		size_t o = 0;
		for (const char *q = raw; *q; q++) {
			if (*q == '$')
				out[o++] = '$'; /* "$$" is one '$' (value_expand_env) */
			out[o++] = *q;
		}
		out[o] = '\0';
		kv->key = k->name;
		kv->secret = k->type == KT_SECRET;
		kv->value = kv->secret && (c->flags & LV_WALK_MASK) && out[0] ? LV_SECRET_MASK : out;
		kv->reload = k->reload;
		kv->is_default = k->def != NULL && keys_equal(k, base, defs);
		c->cb(kv, c->arg);
	}
	return LV_OK;
}

int policy_walk(const struct lv_policy *p, unsigned flags, lv_walk_fn cb, void *arg, char *err, size_t errsz)
{
	struct walk_ctx c = {p, flags, cb, arg, err, errsz};
	size_t ns;
	const struct keys_section *secs = keys_sections(&ns);
	int rc = LV_OK;
	for (size_t si = 0; si < ns && rc == LV_OK; si++) {
		const struct keys_section *s = &secs[si];
		size_t dsize = s->named ? s->elem_size : sizeof(struct lv_policy);
		void *defs = calloc(1, dsize);
		char why[KEYS_ERR_MAX];
		if (!defs || keys_defaults(s, defs, why, sizeof(why)) != LV_OK) {
			snprintf(err, errsz, "[%s]: %s", s->name, defs ? why : "out of memory");
			free(defs);
			return LV_ERR;
		}
		if (!s->named) {
			struct lv_keyval kv = {.section = s->name};
			cb(&kv, arg);
			rc = walk_keys(&c, s, p, defs, &kv);
		} else {
			const char *array = *(const char *const *)((const char *)p + s->array_off);
			size_t count = *(const size_t *)((const char *)p + s->count_off);
			for (size_t i = 0; i < count && rc == LV_OK; i++) {
				const char *base = array + i * s->elem_size;
				struct lv_keyval kv = {.section = s->name, .instance = base + s->name_off, .index = i};
				cb(&kv, arg);
				rc = walk_keys(&c, s, base, defs, &kv);
			}
		}
		free(defs);
	}
	return rc;
}
