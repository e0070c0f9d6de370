/*
 * policy.c - loading a policy file into an immutable snapshot.
 *
 * inih splits "key = value" lines, trims them and strips " ;" comments; it is
 * fed through policy_read_line(), which hands it one line at a time and so
 * always knows the current line number (Debian's inih is built without
 * INI_HANDLER_LINENO). The reader also does what inih would get wrong or
 * report only as a bare line number:
 *
 *   - a line over POLICY_LINE_MAX bytes, which inih would silently split
 *     into two lines;
 *   - indented lines, which inih would take as a continuation of the
 *     previous value (its INI_ALLOW_MULTILINE) and pass again under the same
 *     key; levee does not support continuations, so they are errors;
 *   - section headers, parsed here because inih truncates section names to
 *     49 bytes and says nothing about headers with no keys;
 *   - lines that are neither a header, a comment, nor "key = value".
 * Only well-formed "key = value" lines reach inih; every other line is handed
 * over as an empty line, so inih's line count stays equal to ours.
 *
 * Every problem is reported, not just the first; a snapshot is returned only
 * when there were none. The error format is part of levee's interface
 * (`levee check`): "FILE:LINE: [SECTION] KEY: REASON". A file that loads may
 * still get warnings, "FILE:LINE: [SECTION] warning: REASON", about what it
 * makes useless (a route never chosen); they go to diag->warnings and never
 * fail a load.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "policy_parse.h"
#include "signals.h"

/* ---- sections ---------------------------------------------------------- */

static size_t policy_key_index(const struct keys_def *k)
{
	size_t n;
	return (size_t)(k - keys_table(&n));
}

/* A placeholder the route's pattern cannot fill would silently drop an
 * invalidation, or tag every entry with the same literal "{3}", at run
 * time, so it is refused here in both keys that take placeholders. */
static void policy_route_end(struct policy_parse *st, const struct lv_route *r)
{
	int wildcards = 0;
	for (const char *seg = r->pattern; r->kind == LV_MATCH_GLOB && *seg;) {
		const char *end = strchr(seg, '/');
		size_t len = end ? (size_t)(end - seg) : strlen(seg);
		wildcards += memchr(seg, '*', len) != NULL;
		seg += len + (end != NULL);
	}
	static const char *const keys[] = {"invalidate", "cache_tags"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const struct keys_def *k = keys_find("route", keys[i]);
		const char *list = (const char *)r + k->off;
		for (const char *p = strchr(list, '{'); p; p = strchr(p + 1, '{')) {
			int n = p[1] - '0';
			if (n > wildcards) {
				policy_err_key(st, st->seen[policy_key_index(k)], keys[i],
				               "{%d} names a wildcard the route's pattern does not have (it has %d)", n,
				               wildcards);
				break;
			}
		}
	}
}

/* Whether route <e>'s literal (its bytes before any '*') is a prefix of
 * `lit`, the literal of another route's pattern. Every path a route matches
 * starts with its literal, so <e> can take all of that route's paths only
 * if so: a test much cheaper than route_covers(), which keeps the check of
 * each route against all earlier ones fast with thousands of routes. */
static bool policy_literal_within(const struct lv_route *e, const char *pat, size_t lit)
{
	size_t c = 0;
	while (c < lit && c < e->pattern_len && e->pattern[c] == pat[c])
		c++;
	/* the bytes before c are <e>'s and literal: its literal ends at c or later */
	return c == e->pattern_len || (e->kind == LV_MATCH_GLOB && e->pattern[c] == '*');
}

/* Warnings about a route that its own file makes useless: a pattern no
 * request can match, or earlier routes that take every request it could
 * get (first match wins). Only sure cases are reported: a warning that can
 * be wrong would teach operators to ignore them. */
static void policy_route_warn(struct policy_parse *st, const struct lv_route *r)
{
	int cache_only = st->seen[policy_key_index(keys_find("route", "tier_cache_only"))];
	if (r->tier_cache_only && !route_caches(r))
		policy_warn(st, cache_only,
		            "tier_cache_only has no effect without cache_ttl: a cache-only tier asks the upstream "
		            "for this route");
	const struct keys_def *k = keys_find("route", r->kind == LV_MATCH_GLOB ? "match" : "prefix");
	int line = st->seen[policy_key_index(k)];
	int bad = route_unmatchable_byte(r);
	if (bad >= 0) {
		policy_warn(st, line,
		            "this route can never match: its %s has byte 0x%02X, which no request path carries "
		            "(clients send it %%-encoded, as %%%02X, and levee compares bytes without decoding)",
		            k->name, (unsigned)bad, (unsigned)bad);
		return;
	}
	if (r->kind == LV_MATCH_GLOB && strcmp(r->pattern, "/*") == 0)
		policy_warn(st, line, "match /* takes one-segment paths only (/a, not / or /a/b); "
		                      "for every path write /**");

	char names[POLICY_MSG_MAX / 2];
	size_t o = 0, nearlier = 0;
	unsigned left = r->methods;
	const char *star = r->kind == LV_MATCH_GLOB ? memchr(r->pattern, '*', r->pattern_len) : NULL;
	size_t lit = star ? (size_t)(star - r->pattern) : r->pattern_len;
	for (const struct lv_route *e = st->p->routes; e < r && left != 0; e++) {
		if ((e->methods & left) == 0 || !policy_literal_within(e, r->pattern, lit) || !route_covers(e, r))
			continue;
		left &= ~e->methods;
		int w = snprintf(names + o, sizeof(names) - o, "%s\"%s\" (line %d)", o ? ", " : "", e->name, e->line);
		if (w > 0 && (size_t)w < sizeof(names) - o)
			o += (size_t)w;
		nearlier++;
	}
	if (left == 0 && nearlier == 1)
		policy_warn(st, line,
		            "never chosen: route %s comes first and matches every request this one does; "
		            "move this route above it, or narrow it",
		            names);
	else if (left == 0)
		policy_warn(st, line,
		            "never chosen: routes %s come first and between them match every request this one "
		            "does (each for some of its methods); move this route above them, or narrow them",
		            names);
}

/* An `invalidate` path whose globs a purge cannot express purges more than
 * it says (route_purge_shape()): say how much, and how to say just that.
 * Policies written when a final '*' meant "prefix" land here too, and keep
 * purging at least what they did. */
static void policy_invalidate_warn(struct policy_parse *st, const struct lv_route *r)
{
	int line = st->seen[policy_key_index(keys_find("route", "invalidate"))];
	for (const char *e = r->invalidate; *e;) {
		size_t len = strcspn(e, ","), keep;
		if (strncmp(e, "tag:", 4) != 0 && route_purge_shape(e, len, &keep) == LV_PURGE_WIDER)
			policy_warn(st, line,
			            "invalidate %.*s: '*' matches within one segment, which a purge cannot take (it takes "
			            "a URL or a prefix), so this purges every URL under %.*s (write %.*s** to say so)",
			            (int)len, e, (int)keep, e, (int)keep, e);
		e += len + (e[len] == ',');
	}
}

/* The line where the current section set route key `key`, 0 if it did not. */
static int policy_route_key_line(struct policy_parse *st, const char *key)
{
	return st->seen[policy_key_index(keys_find("route", key))];
}

/* Reads a route's fallback_file into the snapshot: a file levee cannot read
 * now would fail every fallback later, so it fails the load instead. */
static void policy_fallback_file(struct policy_parse *st, struct lv_route *r, int line)
{
	FILE *f = fopen(r->fallback_file, "rb");
	if (f == NULL) {
		policy_err_key(st, line, "fallback_file", "cannot open %s: %s", r->fallback_file, strerror(errno));
		return;
	}
	char *buf = malloc(LV_FALLBACK_FILE_MAX + 1);
	size_t n = buf ? fread(buf, 1, LV_FALLBACK_FILE_MAX + 1, f) : 0;
	bool bad = buf == NULL || ferror(f);
	fclose(f);
	if (bad)
		policy_err_key(st, line, "fallback_file", "cannot read %s", r->fallback_file);
	else if (n > LV_FALLBACK_FILE_MAX)
		policy_err_key(st, line, "fallback_file", "%s is larger than %d KiB", r->fallback_file,
		               LV_FALLBACK_FILE_MAX / 1024);
	if (bad || n > LV_FALLBACK_FILE_MAX) {
		free(buf);
		return;
	}
	r->fallback_file_data = buf;
	r->fallback_file_len = n;
}

/* The fallback keys of a route, together: a chain that cannot answer is an
 * error, keys the chain never uses are warnings. */
static void policy_fallback_end(struct policy_parse *st, struct lv_route *r)
{
	int chain = policy_route_key_line(st, "fallback");
	int file = policy_route_key_line(st, "fallback_file");
	int body = policy_route_key_line(st, "fallback_body");
	bool has_file = strcmp(r->fallback_file, "none") != 0;
	if (file && body && has_file)
		policy_err_key(st, file, "fallback_file", "conflicts with fallback_body on line %d (use only one)", body);
	else if (has_file)
		policy_fallback_file(st, r, file);
	if (route_fallback_has(r, LV_FB_STATIC) && !has_file && !body)
		policy_err_key(st, chain, "fallback", "static needs fallback_body or fallback_file");
	if (route_fallback_has(r, LV_FB_STALE) && !route_caches(r))
		policy_err_key(st, chain, "fallback", "stale needs cache_ttl: the route stores nothing to fall back on");
	if ((r->fallback_status == 204 || r->fallback_status == 304) && (has_file || body))
		policy_err_key(st, policy_route_key_line(st, "fallback_status"), "fallback_status",
		               "a %llu carries no body", (unsigned long long)r->fallback_status);
	for (unsigned i = 0; i + 1 < r->fallback.n; i++)
		if (r->fallback.kind[i] != LV_FB_STALE) {
			policy_warn(st, chain, "fallback: %s always answers, so what follows it is never tried",
			            lv_fallback_kind_names[r->fallback.kind[i]]);
			break;
		}
	static const char *const static_keys[] = {"fallback_status", "fallback_content_type", "fallback_body",
	                                          "fallback_file"};
	for (size_t i = 0; i < sizeof(static_keys) / sizeof(static_keys[0]); i++) {
		int line = policy_route_key_line(st, static_keys[i]);
		if (line && !route_fallback_has(r, LV_FB_STATIC))
			policy_warn(st, line, "%s has no effect without static in fallback", static_keys[i]);
	}
	int max = policy_route_key_line(st, "stale_fallback_max");
	if (max && !route_fallback_has(r, LV_FB_STALE))
		policy_warn(st, max, "stale_fallback_max has no effect without stale in fallback");
}

/* Checks the end of the current section: each one_of group set exactly once
 * (e.g. a route needs one of match and prefix). Conflicts are reported when
 * seen, so only the "none" case is left here. */
static void policy_section_end(struct policy_parse *st)
{
	size_t n;
	const struct keys_def *keys = keys_table(&n);
	if (st->sec == NULL || st->rejected)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct keys_def *k = &keys[i];
		if (k->one_of == 0 || strcmp(k->section, st->sec->name) != 0)
			continue;
		bool first = true, any = false;
		char names[256] = "";
		size_t o = 0;
		for (size_t j = 0; j < n; j++) {
			const struct keys_def *other = &keys[j];
			if (other->one_of != k->one_of || strcmp(other->section, k->section) != 0)
				continue;
			if (j < i)
				first = false; /* the group was handled with its first key */
			any |= st->seen[j] != 0;
			int w = snprintf(names + o, sizeof(names) - o, "%s%s", o ? " or " : "", other->name);
			if (w > 0 && (size_t)w < sizeof(names) - o)
				o += (size_t)w;
		}
		if (first && !any)
			policy_err_section(st, "needs %s", names);
	}
	if (strcmp(st->sec->name, "bulkhead") == 0) {
		const struct lv_bulkhead *b = st->base;
		int line = st->seen[policy_key_index(keys_find("bulkhead", "threads"))];
		if (line && b->isolation != LV_ISOLATION_THREAD)
			policy_warn(st, line, "threads has no effect with isolation = semaphore");
		static const char *const adaptive_keys[] = {"adaptive_min", "adaptive_max", "adaptive_smoothing",
		                                            "adaptive_window"};
		for (size_t i = 0; b->max_concurrent && i < sizeof(adaptive_keys) / sizeof(adaptive_keys[0]); i++) {
			line = st->seen[policy_key_index(keys_find("bulkhead", adaptive_keys[i]))];
			if (line)
				policy_warn(st, line, "%s has no effect without max_concurrent = auto", adaptive_keys[i]);
		}
		if (!b->max_concurrent && b->adaptive_min > b->adaptive_max)
			policy_err_section(st, "adaptive_min (%llu) is above adaptive_max (%llu)",
			                   (unsigned long long)b->adaptive_min, (unsigned long long)b->adaptive_max);
	}
	if (strcmp(st->sec->name, "breaker") == 0) {
		const struct lv_breaker *b = st->base;
		int rate = st->seen[policy_key_index(keys_find("breaker", "slow_call_rate"))];
		int max = st->seen[policy_key_index(keys_find("breaker", "open_for_max"))];
		if (rate && !b->slow_call_ms)
			policy_warn(st, rate, "slow_call_rate has no effect without slow_call");
		if (max && b->open_for_max_ms && b->open_for_max_ms <= b->open_for_ms)
			policy_warn(st, max, "open_for_max is not above open_for: repeated trips are not doubled");
		if (b->window.calls && b->min_requests > b->window.calls)
			policy_err_section(st, "min_requests (%llu) is more than the window holds (%llu calls): it could never open",
			                   (unsigned long long)b->min_requests, (unsigned long long)b->window.calls);
	}
	if (strcmp(st->sec->name, "tier") == 0) {
		struct lv_tier *t = st->base;
		if (strcmp(t->name, "normal") == 0)
			policy_err_section(st, "'normal' is the name of level 0, when no tier is in force: name the tier otherwise");
		t->enter_line = st->seen[policy_key_index(keys_find("tier", "enter"))];
		t->exit_line = st->seen[policy_key_index(keys_find("tier", "exit"))];
		if (t->shadow && (t->cache || t->bulkhead_scale < 100.0))
			policy_warn(st, st->header_line, "a shadow tier changes nothing: its cache and bulkhead_scale are ignored");
	}
	if (strcmp(st->sec->name, "route") == 0) {
		struct lv_route *rt = st->base;
		rt->bulkhead_line = st->seen[policy_key_index(keys_find("route", "bulkhead"))];
		rt->breaker_line = st->seen[policy_key_index(keys_find("route", "breaker"))];
		policy_route_end(st, st->base);
		policy_fallback_end(st, st->base);
		policy_route_warn(st, st->base);
		policy_invalidate_warn(st, st->base);
	}
out:
	st->sec = NULL;
	st->base = NULL;
	st->rejected = false;
}

/* The index of the element of a named section (each starts with its name)
 * that route key `key` names, -1 for none; an error at the key's line when
 * no section has that name. */
static int policy_section_ref(struct policy_parse *st, const struct lv_route *r, const char *key, const char *name,
                              int line, const void *elems, size_t n, size_t stride)
{
	if (!name[0])
		return -1;
	for (size_t j = 0; j < n; j++)
		if (strcmp((const char *)elems + j * stride, name) == 0)
			return (int)j;
	char what[LV_NAME_MAX + 32];
	snprintf(what, sizeof(what), "[route \"%s\"] %s", r->name, key);
	policy_verr_at(st, line, what, "no [%s \"%s\"] section", key, name);
	return -1;
}

static void *policy_scratch(struct policy_parse *st)
{
	size_t n, size = sizeof(struct lv_policy);
	const struct keys_section *secs = keys_sections(&n);
	for (size_t i = 0; i < n; i++)
		if (secs[i].named && secs[i].elem_size > size)
			size = secs[i].elem_size;
	if (st->scratch == NULL)
		st->scratch = calloc(1, size);
	else
		memset(st->scratch, 0, size);
	return st->scratch;
}

/* Appends a zeroed element to the array of named section `s`. The capacity
 * is not stored: it is the next power of two at or above the count (at
 * least 4), so the array grows exactly when the count reaches one. */
static void *policy_elem_new(struct policy_parse *st, const struct keys_section *s)
{
	char *pb = (char *)st->p;
	void *arr;
	size_t count;
	memcpy(&arr, pb + s->array_off, sizeof(arr));
	memcpy(&count, pb + s->count_off, sizeof(count));
	if (count == 0 || (count >= 4 && (count & (count - 1)) == 0)) {
		size_t cap = count == 0 ? 4 : count * 2;
		void *grown = realloc(arr, cap * s->elem_size);
		if (grown == NULL)
			return NULL;
		arr = grown;
		memcpy(pb + s->array_off, &arr, sizeof(arr));
	}
	char *elem = (char *)arr + count * s->elem_size;
	memset(elem, 0, s->elem_size);
	count++;
	memcpy(pb + s->count_off, &count, sizeof(count));
	return elem;
}

static bool policy_name_ok(const char *s, size_t len)
{
	if (len == 0 || len >= LV_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

/* Starts section `word` (with `name` for [word "name"], else NULL). */
static void policy_section_begin(struct policy_parse *st, const char *word, const char *name,
                                 size_t nlen)
{
	size_t nkeys, nsecs;
	keys_table(&nkeys);
	const struct keys_section *secs = keys_sections(&nsecs);

	policy_section_end(st);
	if (name != NULL)
		snprintf(st->label, sizeof(st->label), "[%s \"%.*s\"]", word, (int)nlen, name);
	else
		snprintf(st->label, sizeof(st->label), "[%s]", word);
	st->header_line = st->line;
	st->skip = false;

	const struct keys_section *s = keys_section_find(word);
	if (s == NULL) {
		const char *hint = keys_suggest_section(word);
		if (hint != NULL)
			policy_err_section(st, "unknown section (did you mean \"%s\"?)", hint);
		else
			policy_err_section(st, "unknown section");
		st->skip = true;
		return;
	}

	/* From here on the keys are read and checked even if the header is
	 * rejected; they then go to a scratch copy and are thrown away. */
	st->sec = s;
	memset(st->seen_elem, 0, nkeys * sizeof(*st->seen_elem));
	st->seen = st->seen_elem;
	st->base = policy_scratch(st);
	st->rejected = true;
	if (st->base == NULL) {
		policy_err(st, st->line, "out of memory");
		st->sec = NULL;
		st->skip = true;
		return;
	}

	if (!s->named) {
		size_t si = (size_t)(s - secs);
		if (name != NULL)
			policy_err_section(st, "this section takes no name; write [%s]", word);
		else if (st->sec_line[si] != 0)
			policy_err_section(st, "duplicate section (first on line %d)", st->sec_line[si]);
		else {
			st->sec_line[si] = st->line;
			st->seen = st->seen_top;
			st->base = st->p;
			st->rejected = false;
		}
		return;
	}

	if (name == NULL) {
		policy_err_section(st, "needs a name, e.g. [%s \"NAME\"]", word);
		return;
	}
	if (!policy_name_ok(name, nlen)) {
		policy_err_section(st, "name must be 1-%d characters of A-Z a-z 0-9 _ . -", LV_NAME_MAX - 1);
		return;
	}
	char *pb = (char *)st->p;
	char *arr;
	size_t count;
	memcpy(&arr, pb + s->array_off, sizeof(arr));
	memcpy(&count, pb + s->count_off, sizeof(count));
	for (size_t i = 0; i < count; i++) {
		const char *elem = arr + i * s->elem_size;
		const char *ename = elem + s->name_off;
		if (strlen(ename) == nlen && memcmp(ename, name, nlen) == 0) {
			int line;
			memcpy(&line, elem + s->line_off, sizeof(line));
			policy_err_section(st, "duplicate %s name (first on line %d)", s->name, line);
			return;
		}
	}
	if (count >= s->max) {
		policy_err_section(st, "too many %s sections (at most %zu)", s->name, s->max);
		return;
	}
	char *elem = policy_elem_new(st, s);
	if (elem == NULL) {
		policy_err(st, st->line, "out of memory");
		return;
	}
	memcpy(elem + s->name_off, name, nlen);
	memcpy(elem + s->line_off, &st->line, sizeof(st->line));
	char why[KEYS_ERR_MAX];
	if (keys_defaults(s, elem, why, sizeof(why)) != LV_OK)
		policy_err(st, 0, "internal error: %s", why);
	st->base = elem;
	st->rejected = false;
}

/* Parses a header line: '[' WORD ( '"' NAME '"' )? ']' then at most a
 * " ;" comment. Whitespace is allowed around the parts. */
static void policy_header(struct policy_parse *st, const char *s, const char *e)
{
	const char *p = s + 1;

	policy_section_end(st); /* its errors belong before this line's */
	while (p < e && isblank((unsigned char)*p))
		p++;
	const char *word = p;
	while (p < e && (isalnum((unsigned char)*p) || *p == '_' || *p == '-'))
		p++;
	size_t wlen = (size_t)(p - word);
	while (p < e && isblank((unsigned char)*p))
		p++;
	const char *name = NULL;
	size_t nlen = 0;
	if (p < e && *p == '"') {
		name = ++p;
		const char *q = memchr(p, '"', (size_t)(e - p));
		if (q == NULL) {
			policy_err(st, st->line, "missing closing '\"' in section header");
			goto reject;
		}
		nlen = (size_t)(q - name);
		p = q + 1;
		while (p < e && isblank((unsigned char)*p))
			p++;
	}
	if (wlen == 0) {
		policy_err(st, st->line, "missing section name after '['");
		goto reject;
	}
	if (p >= e || *p != ']') {
		const char *close = p < e ? memchr(p, ']', (size_t)(e - p)) : NULL;
		if (close == NULL)
			policy_err(st, st->line, "missing ']' at the end of the section header");
		else if (name == NULL)
			policy_err(st, st->line, "section names must be quoted, e.g. [%.*s \"%.*s\"]", (int)wlen,
			           word, (int)(close - p), p);
		else
			policy_err(st, st->line, "unexpected text before ']'");
		goto reject;
	}
	p++;
	while (p < e && isblank((unsigned char)*p))
		p++;
	if (p < e && *p != ';') {
		policy_err(st, st->line, "unexpected text after ']'%s",
		           *p == '#' ? " (a comment after a header starts with ';')" : "");
		goto reject;
	}

	char wbuf[POLICY_LINE_MAX + 1];
	memcpy(wbuf, word, wlen);
	wbuf[wlen] = '\0';
	policy_section_begin(st, wbuf, name, nlen);
	return;

reject:
	/* The keys that follow belong to a section we cannot name: skip them. */
	st->skip = true;
}

/* ---- lines ------------------------------------------------------------- */

/* Where inih ends a key (at '=' or ':') or a value (at a ';' that follows
 * whitespace): the same rule as inih's find_chars_or_comment(). */
static const char *policy_ini_stop(const char *s, const char *e, const char *chars)
{
	bool was_space = false;
	for (; s < e; s++) {
		if (chars != NULL && strchr(chars, *s) != NULL)
			return s;
		if (was_space && *s == ';')
			return s;
		was_space = isspace((unsigned char)*s);
	}
	return e;
}

/* The ini_reader given to inih: returns the next line, or an empty line in
 * place of one that must not reach inih (see the top of this file). */
static char *policy_read_line(char *buf, int num, void *stream)
{
	struct policy_parse *st = stream;
	if (st->pos >= st->end)
		return NULL;

	const char *s = st->pos;
	const char *nl = memchr(s, '\n', (size_t)(st->end - s));
	const char *e = nl ? nl : st->end;
	st->pos = nl ? nl + 1 : st->end;
	st->line++;
	buf[0] = '\0';

	if (e > s && e[-1] == '\r')
		e--;
	if (st->line == 1 && e - s >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3; /* UTF-8 byte order mark, as some editors write */
	size_t len = (size_t)(e - s);
	if (len > POLICY_LINE_MAX || len >= (size_t)num) {
		policy_err(st, st->line, "line too long (max %d bytes)", POLICY_LINE_MAX);
		return buf;
	}
	if (memchr(s, '\0', len) != NULL) {
		policy_err(st, st->line, "NUL byte in line");
		return buf;
	}

	const char *t = s;
	while (t < e && isspace((unsigned char)*t))
		t++;
	if (t == e || *t == ';' || *t == '#')
		return buf; /* blank or comment */
	if (t > s) {
		if (st->skip)
			return buf;
		/* inih would append it to the previous key: say so, naming that key. */
		if (st->sec != NULL && st->last_key[0] != '\0')
			policy_err_key(st, st->line, st->last_key,
			               "continuation lines are not supported; put the value on one line");
		else
			policy_err(st, st->line, "indented line; start sections and keys in the first column");
		return buf;
	}
	st->last_key[0] = '\0';
	if (*t == '[') {
		policy_header(st, t, e);
		return buf;
	}
	const char *stop = policy_ini_stop(t, e, "=:");
	if (stop == e || *stop != '=') {
		policy_err(st, st->line, "expected KEY = VALUE");
		return buf;
	}
	if (stop == t) {
		policy_err(st, st->line, "missing key name before '='");
		return buf;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	return buf;
}

/* The ini_handler: one "key = value" of the current section. inih's own
 * `section` is ignored: it is truncated, and the reader knows better. */
static int policy_on_key(void *user, const char *section, const char *key, const char *value)
{
	struct policy_parse *st = user;
	(void)section;

	snprintf(st->last_key, sizeof(st->last_key), "%s", key);
	if (st->skip)
		return 1;
	if (st->sec == NULL) {
		policy_err(st, st->line, "%s: key outside of any section (add a [levee] line above it)", key);
		return 1;
	}
	const struct keys_def *k = keys_find(st->sec->name, key);
	if (k == NULL) {
		size_t n;
		const struct keys_def *keys = keys_table(&n);
		const char *hint = keys_suggest_key(st->sec->name, key);
		const char *home = NULL;
		for (size_t i = 0; i < n && home == NULL; i++)
			if (strcmp(keys[i].name, key) == 0)
				home = keys[i].section;
		if (hint != NULL)
			policy_err_key(st, st->line, key, "unknown key (did you mean \"%s\"?)", hint);
		else if (home != NULL)
			policy_err_key(st, st->line, key, "unknown key here (it belongs in [%s%s])", home,
			               keys_section_find(home)->named ? " \"NAME\"" : "");
		else
			policy_err_key(st, st->line, key, "unknown key");
		return 1;
	}

	size_t n, idx = policy_key_index(k);
	const struct keys_def *keys = keys_table(&n);
	if (st->seen[idx] != 0) {
		policy_err_key(st, st->line, key, "duplicate key (first set on line %d)", st->seen[idx]);
		return 1;
	}
	if (k->one_of != 0) {
		for (size_t i = 0; i < n; i++) {
			if (i != idx && keys[i].one_of == k->one_of && st->seen[i] != 0 &&
			    strcmp(keys[i].section, k->section) == 0) {
				policy_err_key(st, st->line, key, "conflicts with %s on line %d (use only one)",
				               keys[i].name, st->seen[i]);
				return 1;
			}
		}
	}
	st->seen[idx] = st->line;

	char expanded[POLICY_VALUE_MAX];
	char err[KEYS_ERR_MAX];
	const char *why;
	if (value_expand_env(value, expanded, sizeof(expanded), &why) != LV_OK)
		policy_err_key(st, st->line, key, "%s", why);
	else if (keys_set(k, st->base, expanded, err, sizeof(err)) != LV_OK)
		policy_err_key(st, st->line, key, "%s", err);
	return 1;
}

/* ---- checks across keys ------------------------------------------------ */

/* Where the value of a [levee] or [limits] key came from: its command-line
 * flag (returns true, *line = 0), the file (returns true, *line > 0) or the
 * built-in default (returns false). */
static bool policy_origin(const struct policy_parse *st, const char *section, const char *key,
                          int *line)
{
	*line = 0;
	for (size_t i = 0; i < sizeof(st->overridden) / sizeof(st->overridden[0]); i++)
		if (st->overridden[i] != NULL && strcmp(st->overridden[i], key) == 0)
			return true;
	*line = st->seen_top[policy_key_index(keys_find(section, key))];
	return *line != 0;
}

/* A warning in the top-level `section`, on the line of its `key`, once the
 * file is read: "FILE:LINE: [SECTION] warning: REASON". */
__attribute__((format(printf, 4, 5))) static void policy_warn_key(struct policy_parse *st, const char *section,
                                                                  const char *key, const char *fmt, ...)
{
	char label[LV_NAME_MAX + 16];
	int line;
	policy_origin(st, section, key, &line);
	snprintf(label, sizeof(label), "[%s]", section);
	va_list ap;
	va_start(ap, fmt);
	policy_vwarn(st, label, line, fmt, ap);
	va_end(ap);
}

/* Reports a conflict between keys `a` and `b` against `a` if the operator set
 * it (in the file or by flag), since that is the one to fix, else against
 * `b`: "--admin: REASON", "FILE:LINE: [levee] admin: REASON", or
 * "FILE: [levee] listen: REASON" for a default. */
__attribute__((format(printf, 5, 6))) static void policy_err_pair(struct policy_parse *st,
                                                                  const char *section, const char *a,
                                                                  const char *b, const char *fmt, ...)
{
	char what[128];
	int line;
	const char *key = policy_origin(st, section, a, &line) ? a : b;
	bool flag = policy_origin(st, section, key, &line) && line == 0;
	if (flag)
		snprintf(what, sizeof(what), "--%s", key);
	else
		snprintf(what, sizeof(what), "[%s] %s", section, key);
	va_list ap;
	va_start(ap, fmt);
	policy_verr(st, flag ? NULL : st->file, line, what, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 5, 6))) static void policy_err_col(struct policy_parse *st, int line, int col,
                                                                 const char *what, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	policy_verr_col(st, st->file, line, col, what, fmt, ap);
	va_end(ap);
}

/* An error of tiers_check(): "FILE:LINE:COL: WHAT: MESSAGE", without the
 * column when it is 0, without the line too when that is 0. */
static void policy_tier_err(void *arg, int line, int col, const char *what, const char *message)
{
	struct policy_parse *st = arg;
	policy_err_col(st, line, col, what, "%s", message);
}

static void policy_check(struct policy_parse *st)
{
	struct lv_policy *p = st->p;

	if (p->limits.uri_bytes > p->limits.header_bytes)
		policy_err_pair(st, "limits", "uri_bytes", "header_bytes",
		                "uri_bytes (%" PRIu64 ") must not exceed header_bytes (%" PRIu64 ")",
		                p->limits.uri_bytes, p->limits.header_bytes);

	if (p->redis.address.host[0] && p->redis.sentinels[0])
		policy_err_pair(st, "redis", "sentinels", "address", "set address or sentinels, not both");

	if (value_hostport_overlap(&p->admin, &p->listen))
		policy_err_pair(st, "levee", "admin", "listen", "admin (%s:%u) and listen (%s:%u) overlap",
		                p->admin.host, p->admin.port, p->listen.host, p->listen.port);
	for (int i = 0; i < 2 && p->probe.host[0]; i++) {
		const char *other = i ? "admin" : "listen";
		const struct lv_hostport *hp = i ? &p->admin : &p->listen;
		if (value_hostport_overlap(&p->probe, hp))
			policy_err_pair(st, "levee", "probe", other, "probe (%s:%u) and %s (%s:%u) overlap",
			                p->probe.host, p->probe.port, other, hp->host, hp->port);
	}

	/* A route's bulkhead and breaker may be declared anywhere in the file. */
	for (size_t i = 0; i < p->nroutes; i++) {
		struct lv_route *r = &p->routes[i];
		r->bulkhead_idx = policy_section_ref(st, r, "bulkhead", r->bulkhead, r->bulkhead_line, p->bulkheads,
		                                     p->nbulkheads, sizeof(*p->bulkheads));
		r->breaker_idx = policy_section_ref(st, r, "breaker", r->breaker, r->breaker_line, p->breakers,
		                                    p->nbreakers, sizeof(*p->breakers));
	}

	policy_warmup_list(st);
	tiers_check(st->p, st->start, st->end, policy_tier_err, st);
	if (p->tiers_cfg.window_ms < 5 * p->tiers_cfg.tick_ms)
		policy_err_pair(st, "tiers", "window", "tick",
		                "window (%llums) must be at least 5 ticks (tick = %llums): it is kept in fifths, one a tick at most",
		                (unsigned long long)p->tiers_cfg.window_ms, (unsigned long long)p->tiers_cfg.tick_ms);

	/* Only a sure loop is an error: the upstream may be another machine that
	 * happens to use the same port. */
	if (p->upstream.port == p->listen.port &&
	    (strcmp(p->upstream.host, p->listen.host) == 0 ||
	     (value_host_wildcard(p->listen.host) && value_host_loopback(p->upstream.host))))
		policy_err_pair(st, "levee", "upstream", "listen",
		                "upstream is levee's own listen address (%s:%u); requests would loop",
		                p->listen.host,
		                p->listen.port);
	/* REDIRECT in PREROUTING hands a connection to the address of the
	 * interface it came in on: a loopback listener only ever sees the
	 * pod's own processes (--outbound-local), which may be the intent */
	if (p->transparent == LV_TRANSPARENT_ON && value_host_loopback(p->listen.host))
		policy_warn_key(st, "levee", "transparent",
		                "transparent = on, but listen is a loopback address (%s:%u): the nat rules redirect "
		                "inbound connections to the address they arrived on, which this listener never sees; "
		                "listen on 0.0.0.0 (docs/transparent.md)",
		                p->listen.host, p->listen.port);
}


static void policy_overrides(struct policy_parse *st, const struct lv_overrides *ov)
{
	if (ov == NULL)
		return;
	const struct {
		const char *key, *value;
	} flags[] = {{"listen", ov->listen}, {"upstream", ov->upstream}, {"admin", ov->admin}, {"probe", ov->probe}};
	_Static_assert(sizeof(flags) / sizeof(flags[0]) == sizeof(st->overridden) / sizeof(st->overridden[0]),
	               "one slot of `overridden` per flag");

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		if (flags[i].value == NULL)
			continue;
		char err[KEYS_ERR_MAX], what[32];
		snprintf(what, sizeof(what), "--%s", flags[i].key);
		if (keys_set(keys_find("levee", flags[i].key), st->p, flags[i].value, err, sizeof(err)) != LV_OK) {
			policy_flag_err(st, what, "%s", err);
			continue;
		}
		st->overridden[i] = flags[i].key;
	}
}

/* ---- loading ----------------------------------------------------------- */

static void policy_checksum(const char *text, size_t len, char out[17])
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)text[i];
		h *= 0x100000001b3ull;
	}
	snprintf(out, 17, "%016" PRIx64, h);
}

static void policy_free(struct lv_policy *p)
{
	if (p == NULL)
		return;
	route_index_free(p->route_index);
	for (size_t i = 0; i < p->nroutes; i++)
		free(p->routes[i].fallback_file_data);
	free(p->routes);
	free(p->warmup.list.data);
	free(p->bulkheads);
	free(p->breakers);
	for (size_t i = 0; i < p->ntiers; i++) {
		expr_free(p->tiers[i].enter_expr);
		expr_free(p->tiers[i].exit_expr);
	}
	free(p->tiers);
	free(p->tier_levels);
	signals_free(p->signals);
	free(p);
}

/* Loads `len` bytes of `text` (NULL: no file, only defaults and overrides). */
static int policy_load(const char *file, const char *path, const char *text, size_t len,
                       const struct lv_overrides *ov, struct lv_policy **out, struct lv_diag *diag)
{
	size_t nkeys, nsecs;
	keys_table(&nkeys);
	const struct keys_section *secs = keys_sections(&nsecs);
	struct policy_parse st = {
		.file = file,
		.start = text,
		.pos = text,
		.end = text ? text + len : NULL,
		.diag = diag,
		.errs = {.first = diag->n},
		.warns = {.first = diag->nwarn},
	};
	int rc = LV_ERR;

	st.p = calloc(1, sizeof(*st.p));
	st.seen_top = calloc(nkeys, sizeof(int));
	st.seen_elem = calloc(nkeys, sizeof(int));
	st.sec_line = calloc(nsecs, sizeof(int));
	if (st.p == NULL || st.seen_top == NULL || st.seen_elem == NULL || st.sec_line == NULL) {
		policy_err(&st, 0, "out of memory");
		goto done;
	}
	atomic_init(&st.p->refs, 1);
	if (strlen(path) >= sizeof(st.p->path)) {
		policy_err(&st, 0, "path too long");
		goto done;
	}
	strcpy(st.p->path, path);

	for (size_t i = 0; i < nsecs; i++) {
		char why[KEYS_ERR_MAX];
		if (!secs[i].named && keys_defaults(&secs[i], st.p, why, sizeof(why)) != LV_OK) {
			policy_err(&st, 0, "internal error: %s", why);
			goto done;
		}
	}

	if (text != NULL) {
		int r = ini_parse_stream(policy_read_line, &st, policy_on_key, &st);
		policy_section_end(&st);
		/* The reader hands inih only lines it accepts, so inih has nothing
		 * left to complain about; this is a safety net. */
		if (r != 0 && st.errors == 0)
			policy_err(&st, r > 0 ? r : 0, "cannot parse this line");
	}
	policy_overrides(&st, ov);
	policy_check(&st);
	if (st.errors == 0 && route_index_build(st.p->routes, st.p->nroutes, &st.p->route_index) != LV_OK)
		policy_err(&st, 0, "out of memory");
	if (st.errors > 0) {
		policy_order_sort(&st.errs, diag->lines, diag->n);
		diag_drop_warnings(diag, st.warns.first);
		goto done;
	}
	policy_order_sort(&st.warns, diag->warnings, diag->nwarn);

	policy_checksum(text ? text : "", text ? len : 0, st.p->checksum);
	st.p->loaded_at = time(NULL);
	*out = st.p;
	st.p = NULL;
	rc = LV_OK;
done:
	policy_free(st.p);
	free(st.seen_top);
	free(st.seen_elem);
	free(st.sec_line);
	free(st.scratch);
	free(st.errs.at);
	free(st.warns.at);
	return rc;
}

int policy_load_string(const char *name, const char *text, const struct lv_overrides *ov,
                       struct lv_policy **out, struct lv_diag *diag)
{
	return policy_load(name, name, text, strlen(text), ov, out, diag);
}

int policy_load_defaults(const struct lv_overrides *ov, struct lv_policy **out, struct lv_diag *diag)
{
	return policy_load("built-in defaults", "", NULL, 0, ov, out, diag);
}

int policy_load_file(const char *path, const struct lv_overrides *ov, struct lv_policy **out,
                     struct lv_diag *diag)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		diag_add(diag, "%s: cannot open: %s", path, strerror(errno));
		return LV_ERR;
	}
	/* One byte more than allowed, to tell "too large" from "exactly full". */
	char *text = malloc(POLICY_FILE_MAX + 1);
	if (text == NULL) {
		fclose(f);
		diag_add(diag, "%s: out of memory", path);
		return LV_ERR;
	}
	size_t len = fread(text, 1, POLICY_FILE_MAX + 1, f);
	int rerr = ferror(f) ? errno : 0;
	fclose(f);
	int rc = LV_ERR;
	if (rerr != 0)
		diag_add(diag, "%s: cannot read: %s", path, strerror(rerr));
	else if (len > POLICY_FILE_MAX)
		diag_add(diag, "%s: larger than %d bytes; is this the right file?", path, POLICY_FILE_MAX);
	else
		rc = policy_load(path, path, text, len, ov, out, diag);
	free(text);
	return rc;
}

/* ---- the snapshot ------------------------------------------------------ */

void policy_ref(struct lv_policy *p)
{
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void policy_unref(struct lv_policy *p)
{
	if (p == NULL)
		return;
	/* acq_rel: every thread's last use happens before the free. */
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
		policy_free(p);
}

const struct lv_route *policy_route_match(const struct lv_policy *p, const char *path, size_t len,
                                          unsigned method_bit, struct lv_captures *caps)
{
	return route_index_match(p->route_index, path, len, method_bit, caps);
}
