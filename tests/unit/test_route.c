/*
 * test_route.c - route patterns: which are accepted, and what each matches
 * and captures. Captures are written "a|b" (one '|' between captures).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy_internal.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define ANY LV_M_ANY

struct match_case {
	enum lv_match_kind kind;
	const char *pattern;
	unsigned methods;
	const char *path;
	unsigned method;
	const char *caps; /* NULL: no match */
};

#define G LV_MATCH_GLOB
#define P LV_MATCH_PREFIX

static const struct match_case match_cases[] = {
	/* whole-segment '*': exactly one non-empty segment */
	{G, "/api/users/*", ANY, "/api/users/42", LV_M_GET, "42"},
	{G, "/api/users/*", ANY, "/api/users/a.b-c", LV_M_GET, "a.b-c"},
	{G, "/api/users/*", ANY, "/api/users/", LV_M_GET, NULL},
	{G, "/api/users/*", ANY, "/api/users", LV_M_GET, NULL},
	{G, "/api/users/*", ANY, "/api/users/42/", LV_M_GET, NULL},
	{G, "/api/users/*", ANY, "/api/users/42/x", LV_M_GET, NULL},
	{G, "/api/users/*", ANY, "/api/Users/42", LV_M_GET, NULL},
	{G, "/api/users/*", ANY, "/api/users42", LV_M_GET, NULL},
	{G, "/api/users/*", ANY, "", LV_M_GET, NULL},
	{G, "/*/b", ANY, "//b", LV_M_GET, NULL},
	{G, "/a/*/b/*", ANY, "/a/x/b/y", LV_M_GET, "x|y"},
	{G, "/a/*/b/*", ANY, "/a/x/b/", LV_M_GET, NULL},
	{G, "/a/*/b/*", ANY, "/a/x/c/y", LV_M_GET, NULL},
	/* '*' inside a segment: any run of non-'/' bytes, possibly empty */
	{G, "/files/*.png", ANY, "/files/a.png", LV_M_GET, "a"},
	{G, "/files/*.png", ANY, "/files/.png", LV_M_GET, ""},
	{G, "/files/*.png", ANY, "/files/a.b.png", LV_M_GET, "a.b"},
	{G, "/files/*.png", ANY, "/files/a.jpg", LV_M_GET, NULL},
	{G, "/files/*.png", ANY, "/files/a/b.png", LV_M_GET, NULL},
	{G, "/files/*.png", ANY, "/files/png", LV_M_GET, NULL},
	{G, "/v*/users", ANY, "/v1/users", LV_M_GET, "1"},
	{G, "/v*/users", ANY, "/v/users", LV_M_GET, ""},
	{G, "/x-*-y", ANY, "/x-abc-y", LV_M_GET, "abc"},
	{G, "/x-*-y", ANY, "/x--y", LV_M_GET, ""},
	{G, "/x-*-y", ANY, "/x-y", LV_M_GET, NULL}, /* prefix and suffix may not overlap */
	/* final '**': the rest, '/' included, possibly empty */
	{G, "/static/**", ANY, "/static/", LV_M_GET, ""},
	{G, "/static/**", ANY, "/static/app.js", LV_M_GET, "app.js"},
	{G, "/static/**", ANY, "/static/a/b/c.css", LV_M_GET, "a/b/c.css"},
	{G, "/static/**", ANY, "/static", LV_M_GET, NULL},
	{G, "/static/**", ANY, "/staticx/a", LV_M_GET, NULL},
	{G, "/**", ANY, "/", LV_M_GET, ""},
	{G, "/**", ANY, "/any/thing", LV_M_GET, "any/thing"},
	{G, "/a/*/**", ANY, "/a/x/y/z", LV_M_GET, "x|y/z"},
	{G, "/a/*/**", ANY, "/a/x/", LV_M_GET, "x|"},
	{G, "/a/*/**", ANY, "/a/x", LV_M_GET, NULL},
	/* literals */
	{G, "/", ANY, "/", LV_M_GET, ""},
	{G, "/", ANY, "/a", LV_M_GET, NULL},
	{G, "/a/", ANY, "/a/", LV_M_GET, ""},
	{G, "/a/", ANY, "/a", LV_M_GET, NULL},
	{G, "/a/", ANY, "/a/b", LV_M_GET, NULL},
	{G, "/a//b", ANY, "/a//b", LV_M_GET, ""},
	{G, "/health", ANY, "/health", LV_M_GET, ""},
	{G, "/health", ANY, "/healthz", LV_M_GET, NULL},
	{G, "/health", ANY, "/Health", LV_M_GET, NULL},
	{G, "/a%20b", ANY, "/a%20b", LV_M_GET, ""}, /* no decoding */
	{G, "/a%20b", ANY, "/a b", LV_M_GET, NULL},
	/* nine captures, the most a pattern may have */
	{G, "/*/*/*/*/*/*/*/*/*", ANY, "/1/2/3/4/5/6/7/8/9", LV_M_GET, "1|2|3|4|5|6|7|8|9"},
	{G, "/*/*/*/*/*/*/*/*/**", ANY, "/1/2/3/4/5/6/7/8/9/10", LV_M_GET, "1|2|3|4|5|6|7|8|9/10"},
	/* prefixes */
	{P, "/static/", ANY, "/static/a", LV_M_GET, ""},
	{P, "/static/", ANY, "/static/", LV_M_GET, ""},
	{P, "/static/", ANY, "/static", LV_M_GET, NULL},
	{P, "/static/", ANY, "/stat", LV_M_GET, NULL},
	{P, "/static", ANY, "/staticfoo", LV_M_GET, ""},
	{P, "/", ANY, "/anything", LV_M_GET, ""},
	{P, "/", ANY, "", LV_M_GET, NULL},
	/* methods */
	{G, "/a", LV_M_GET | LV_M_HEAD, "/a", LV_M_HEAD, ""},
	{G, "/a", LV_M_GET | LV_M_HEAD, "/a", LV_M_POST, NULL},
	{G, "/a", LV_M_GET, "/a", LV_M_OTHER, NULL},
	{G, "/a", ANY, "/a", LV_M_OTHER, ""},
	{P, "/a", LV_M_DELETE, "/a/1", LV_M_DELETE, ""},
	{P, "/a", LV_M_DELETE, "/a/1", LV_M_PUT, NULL},
};

static void route_init(struct lv_route *r, enum lv_match_kind kind, const char *pattern,
                       unsigned methods)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "t");
	r->kind = kind;
	snprintf(r->pattern, sizeof(r->pattern), "%s", pattern);
	r->pattern_len = strlen(pattern);
	r->methods = methods;
}

static void test_match_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(match_cases); i++) {
		const struct match_case *c = &match_cases[i];
		const char *why;
		struct lv_route r;
		route_init(&r, c->kind, c->pattern, c->methods);
		if (route_pattern_check(c->kind, c->pattern, strlen(c->pattern), &why) != LV_OK)
			fail_msg("case %zu: pattern \"%s\" rejected: %s", i, c->pattern, why);

		struct lv_captures caps;
		memset(&caps, 0xee, sizeof(caps));
		bool m = route_matches(&r, c->path, strlen(c->path), c->method, &caps);
		if (m != (c->caps != NULL))
			fail_msg("case %zu: \"%s\" vs \"%s\": match %d", i, c->pattern, c->path, m);
		/* Without a captures buffer the answer is the same. */
		assert_int_equal(route_matches(&r, c->path, strlen(c->path), c->method, NULL), m);
		if (!m)
			continue;

		char got[256] = "";
		size_t o = 0;
		assert_true(caps.n >= 0 && caps.n <= LV_MAX_CAPTURES);
		for (int k = 0; k < caps.n; k++) {
			assert_true(caps.c[k].off + caps.c[k].len <= strlen(c->path));
			o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%.*s", k ? "|" : "",
			                      (int)caps.c[k].len, c->path + caps.c[k].off);
		}
		if (strcmp(got, c->caps) != 0)
			fail_msg("case %zu: \"%s\" vs \"%s\": captures \"%s\", want \"%s\"", i, c->pattern,
			         c->path, got, c->caps);
	}
}

/* The path is bounded by its length, not by a NUL. */
static void test_match_length(void **state)
{
	(void)state;
	struct lv_route r;
	struct lv_captures caps;
	route_init(&r, LV_MATCH_GLOB, "/a/*", ANY);
	assert_true(route_matches(&r, "/a/bc?q=1", 5, LV_M_GET, &caps));
	assert_int_equal(caps.n, 1);
	assert_int_equal(caps.c[0].off, 3);
	assert_int_equal(caps.c[0].len, 2);
	route_init(&r, LV_MATCH_PREFIX, "/abc", ANY);
	assert_false(route_matches(&r, "/abcdef", 3, LV_M_GET, NULL));
}

static void test_pattern_check(void **state)
{
	(void)state;
	static const struct {
		enum lv_match_kind kind;
		const char *pattern;
		bool ok;
	} cases[] = {
		{G, "/", true},
		{G, "/a/*", true},
		{G, "/a/**", true},
		{G, "/**", true},
		{G, "/files/*.png", true},
		{G, "/*/*", true},
		{G, "/a/*/**", true},
		{G, "/*/*/*/*/*/*/*/*/*", true},
		{G, "/a-b_c.d~e/%41:@!$&'()+,;=", true},
		{G, "", false},
		{G, "a/b", false},
		{G, "*", false},
		{G, "/a b", false},
		{G, "/a\tb", false},
		{G, "/a\x01", false},
		{G, "/a\x7f", false},
		{G, "/a?x=1", false},
		{G, "/a#frag", false},
		{G, "/**/a", false},
		{G, "/a/**/", false},
		{G, "/a/**b", false},
		{G, "/a/b**", false},
		{G, "/a/***", false},
		{G, "/a*b*c", false},
		{G, "/**/**", false},
		{G, "/*/*/*/*/*/*/*/*/*/*", false},
		{G, "/*/*/*/*/*/*/*/*/*/**", false},
		{P, "/", true},
		{P, "/static/", true},
		{P, "/static", true},
		{P, "/static/*", false},
		{P, "static/", false},
		{P, "", false},
		{P, "/a b", false},
		{P, "/a?b", false},
	};
	for (size_t i = 0; i < N(cases); i++) {
		const char *why = NULL;
		int rc = route_pattern_check(cases[i].kind, cases[i].pattern, strlen(cases[i].pattern), &why);
		if (cases[i].ok && rc != LV_OK)
			fail_msg("\"%s\": rejected: %s", cases[i].pattern, why);
		if (!cases[i].ok) {
			if (rc != LV_ERR)
				fail_msg("\"%s\": accepted", cases[i].pattern);
			assert_non_null(why);
		}
	}
}

/* route_covers(a, b): does <a> match every path <b> matches? It must never
 * say yes wrongly (levee check would call a useful route useless). */
static void test_covers(void **state)
{
	(void)state;
	static const struct {
		enum lv_match_kind ak;
		const char *a;
		enum lv_match_kind bk;
		const char *b;
		bool covers;
	} cases[] = {
		/* one segment against one segment */
		{G, "/a/*", G, "/a/b", true},
		{G, "/a/*", G, "/a/*", true},
		{G, "/a/*", G, "/a/*.png", true},
		{G, "/a/*", G, "/a/", false},   /* '*' is never empty */
		{G, "/a/*", G, "/a/**", false}, /* any depth */
		{G, "/a/*", G, "/a/b/c", false},
		{G, "/a/*.png", G, "/a/x*.png", true},
		{G, "/a/*.png", G, "/a/*.png", true},
		{G, "/a/*.png", G, "/a/.png", true},
		{G, "/a/*.png", G, "/a/*png", false},
		{G, "/a/*.png", G, "/a/png", false},
		{G, "/a/*.png", G, "/a/*", false},
		{G, "/x-*-y", G, "/x-y", false}, /* head and tail may not overlap */
		{G, "/x-*-y", G, "/x--y", true},
		{G, "/x-*-y", G, "/x-a*-y", true},
		{G, "/x-*-y", G, "/x*-y", false},
		{G, "/a", G, "/a", true},
		{G, "/a", G, "/a/", false},
		{G, "/a/", G, "/a", false},
		{G, "/a/*/c", G, "/a/b/c", true},
		{G, "/a/*/c", G, "/a/b/d", false},
		/* the rest */
		{G, "/**", G, "/a/b/**", true},
		{G, "/**", G, "/", true},
		{G, "/**", P, "/", true},
		{G, "/a/**", G, "/a/", true},
		{G, "/a/**", G, "/a", false},
		{G, "/a/**", G, "/a/*/c/**", true},
		{G, "/a/*/**", G, "/a/**", false},
		{G, "/a/**", P, "/a/", true},
		{G, "/a/**", P, "/a/b", true},
		{G, "/a/**", P, "/a", false}, /* "/a" itself, and "/ab" */
		{G, "/*/**", P, "/v1/", true},
		{G, "/*/**", P, "/v1", false},
		{G, "/*/x/**", P, "/a/x/y", true},
		{G, "/*/x/**", P, "/a/y/", false},
		{G, "/a/*", P, "/a/", false},
		/* prefixes */
		{P, "/api/", G, "/api/users/*", true},
		{P, "/api/", G, "/api/*", true},
		{P, "/api/", G, "/api/**", true},
		{P, "/api/", G, "/ap*/x", false},
		{P, "/api/", G, "/api", false},
		{P, "/api", G, "/api*", true},
		{P, "/api", G, "/api", true},
		{P, "/api/", P, "/api/v1", true},
		{P, "/api/", P, "/ap", false},
		{P, "/", P, "/", true},
		/* a route whose pattern was refused covers and is covered by nothing */
		{G, "", G, "/a", false},
		{P, "/", P, "", false},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct lv_route a, b;
		route_init(&a, cases[i].ak, cases[i].a, ANY);
		route_init(&b, cases[i].bk, cases[i].b, ANY);
		if (route_covers(&a, &b) != cases[i].covers)
			fail_msg("%s \"%s\" covers %s \"%s\": want %d", cases[i].ak == G ? "match" : "prefix", cases[i].a,
			         cases[i].bk == G ? "match" : "prefix", cases[i].b, cases[i].covers);
	}
}

/* What a purge of a glob removes: never less than the glob matches. */
static void test_purge_shape(void **state)
{
	(void)state;
	static const struct {
		const char *pattern;
		enum lv_purge_shape shape;
		const char *keep;
	} cases[] = {
		{"/api/users/7", LV_PURGE_URL, "/api/users/7"},
		{"/", LV_PURGE_URL, "/"},
		{"/u/{1}", LV_PURGE_URL, "/u/{1}"},
		{"/api/users/**", LV_PURGE_PREFIX, "/api/users/"},
		{"/**", LV_PURGE_PREFIX, "/"},
		{"/u/{1}/**", LV_PURGE_PREFIX, "/u/{1}/"},
		/* widened to the segment boundary before the first wildcard */
		{"/api/users/*", LV_PURGE_WIDER, "/api/users/"},
		{"/api/users*", LV_PURGE_WIDER, "/api/"},
		{"/api/*/posts", LV_PURGE_WIDER, "/api/"},
		{"/files/*.png", LV_PURGE_WIDER, "/files/"},
		{"/*", LV_PURGE_WIDER, "/"},
		{"/v*", LV_PURGE_WIDER, "/"},
		{"/a/*/**", LV_PURGE_WIDER, "/a/"},
		{"/u/{1}/*.json", LV_PURGE_WIDER, "/u/{1}/"},
	};
	for (size_t i = 0; i < N(cases); i++) {
		const char *why, *pat = cases[i].pattern;
		size_t keep = 0;
		assert_int_equal(route_pattern_check(LV_MATCH_GLOB, pat, strlen(pat), &why), LV_OK);
		enum lv_purge_shape shape = route_purge_shape(pat, strlen(pat), &keep);
		if (shape != cases[i].shape || keep != strlen(cases[i].keep) || memcmp(pat, cases[i].keep, keep) != 0)
			fail_msg("\"%s\": shape %d keep \"%.*s\", want %d \"%s\"", pat, shape, (int)keep, pat,
			         cases[i].shape, cases[i].keep);
		/* the purge covers what the glob matches: as a prefix route, it
		 * covers the glob as a match route */
		struct lv_route prefix, glob;
		route_init(&glob, LV_MATCH_GLOB, pat, ANY);
		route_init(&prefix, shape == LV_PURGE_URL ? LV_MATCH_GLOB : LV_MATCH_PREFIX, cases[i].keep, ANY);
		assert_true(route_covers(&prefix, &glob));
	}
}

static void test_unmatchable_byte(void **state)
{
	(void)state;
	struct lv_route r;
	route_init(&r, LV_MATCH_GLOB, "/caf\xc3\xa9/*", ANY);
	assert_int_equal(route_unmatchable_byte(&r), 0xc3);
	route_init(&r, LV_MATCH_PREFIX, "/a%C3%A9~!$&'()*+,;=:@{}|^`\\\"<>", ANY);
	assert_int_equal(route_unmatchable_byte(&r), -1);
}

/* The first route in file order wins, and methods take part in the choice. */
static void test_policy_route_match(void **state)
{
	(void)state;
	static const char text[] = "[route \"one\"]\n"
	                           "match = /api/users/*\n"
	                           "methods = POST\n"
	                           "[route \"two\"]\n"
	                           "prefix = /api/\n"
	                           "[route \"three\"]\n"
	                           "match = /api/users/*\n";
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};
	assert_int_equal(policy_load_string("r.ini", text, NULL, &p, &d), LV_OK);
	assert_int_equal(p->nroutes, 3);

	struct lv_captures caps;
	const struct lv_route *r = policy_route_match(p, "/api/users/7", 12, LV_M_POST, &caps);
	assert_non_null(r);
	assert_string_equal(r->name, "one");
	assert_int_equal(caps.n, 1);
	r = policy_route_match(p, "/api/users/7", 12, LV_M_GET, &caps);
	assert_string_equal(r->name, "two");
	assert_int_equal(caps.n, 0);
	assert_null(policy_route_match(p, "/other", 6, LV_M_GET, &caps));
	policy_unref(p);
	diag_free(&d);
}

/* ---- the index against the linear scan -------------------------------- */

/* splitmix64: the same sequence on every run and machine. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t rng_below(uint64_t *s, size_t n)
{
	return (size_t)(rng_next(s) % n);
}

/* Few, overlapping segment texts, so that routes share literal starts and
 * paths hit several candidates. "\xc3" is a byte the trie must order as
 * unsigned. */
static const char *const seg_words[] = {"a", "b", "ab", "abc", "v1", "x.png", "users", "\xc3", "%2F"};
static const char *const seg_globs[] = {"*", "a*", "*b", "a*b", "v*", "*.png"};
static const unsigned route_methods[] = {ANY, LV_M_GET, LV_M_POST, LV_M_GET | LV_M_HEAD, LV_M_DELETE};
static const unsigned path_methods[] = {LV_M_GET, LV_M_HEAD, LV_M_POST, LV_M_DELETE, LV_M_OTHER};

static void route_set(struct lv_route *r, enum lv_match_kind kind, const char *pattern, unsigned methods)
{
	const char *why;
	route_init(r, kind, pattern, methods);
	if (route_pattern_check(kind, pattern, strlen(pattern), &why) != LV_OK)
		fail_msg("generated pattern \"%s\" rejected: %s", pattern, why);
}

/* A random route: a glob of 0-4 segments, literal or wildcard, maybe ending
 * in "**" or '/', or a prefix that may stop inside a segment. */
static void gen_random(uint64_t *s, struct lv_route *r, size_t i, size_t n)
{
	(void)i;
	(void)n;
	char pat[128] = "";
	size_t o = 0, nseg = rng_below(s, 5);
	bool prefix = rng_below(s, 4) == 0;
	int wild = 0;
	for (size_t k = 0; k < nseg; k++) {
		bool glob = !prefix && wild < LV_MAX_CAPTURES && rng_below(s, 3) == 0;
		const char *w = glob ? seg_globs[rng_below(s, N(seg_globs))] : seg_words[rng_below(s, N(seg_words))];
		wild += glob;
		o += (size_t)snprintf(pat + o, sizeof(pat) - o, "/%s", w);
	}
	if (!prefix && rng_below(s, 4) == 0)
		o += (size_t)snprintf(pat + o, sizeof(pat) - o, "/**");
	else if (o == 0 || rng_below(s, 5) == 0)
		o += (size_t)snprintf(pat + o, sizeof(pat) - o, "/");
	if (prefix && o > 2 && rng_below(s, 3) == 0)
		pat[o - 1] = '\0'; /* a prefix that ends inside a segment */
	route_set(r, prefix ? LV_MATCH_PREFIX : LV_MATCH_GLOB, pat, route_methods[rng_below(s, N(route_methods))]);
}

/* Every literal is "/": all routes are candidates for every path. */
static void gen_slash_star(uint64_t *s, struct lv_route *r, size_t i, size_t n)
{
	char pat[64];
	if (i + 1 == n)
		snprintf(pat, sizeof(pat), "/**");
	else
		snprintf(pat, sizeof(pat), "/*/%s%zu", seg_words[rng_below(s, N(seg_words))], i % 7);
	route_set(r, LV_MATCH_GLOB, pat, route_methods[rng_below(s, N(route_methods))]);
}

/* Nested literals, in both orders: /a, /a/b, /a/b/a ... and back, so that
 * a deep candidate may come before or after a shallow one. */
static void gen_nested(uint64_t *s, struct lv_route *r, size_t i, size_t n)
{
	size_t depth = (i < n / 2 ? i : n - 1 - i) % 12;
	char pat[128] = "";
	size_t o = 0;
	for (size_t k = 0; k <= depth; k++)
		o += (size_t)snprintf(pat + o, sizeof(pat) - o, "/%s", k % 2 ? "b" : "a");
	switch (rng_below(s, 4)) {
	case 0:
		route_set(r, LV_MATCH_PREFIX, pat, route_methods[rng_below(s, N(route_methods))]);
		return;
	case 1:
		snprintf(pat + o, sizeof(pat) - o, "/**");
		break;
	case 2:
		snprintf(pat + o, sizeof(pat) - o, "/*");
		break;
	default:
		snprintf(pat + o, sizeof(pat) - o, "*");
		break;
	}
	route_set(r, LV_MATCH_GLOB, pat, route_methods[rng_below(s, N(route_methods))]);
}

/* The same few patterns over and over, with different methods: ties in the
 * trie, broken by file order. */
static void gen_duplicates(uint64_t *s, struct lv_route *r, size_t i, size_t n)
{
	(void)i;
	(void)n;
	static const char *const pats[] = {"/a/*", "/a/**", "/a/b", "/a"};
	size_t k = rng_below(s, N(pats));
	route_set(r, k == 3 ? LV_MATCH_PREFIX : LV_MATCH_GLOB, pats[k], route_methods[rng_below(s, N(route_methods))]);
}

/* Many routes fanned out on a literal segment, as a large real policy is;
 * the last takes what the others leave. */
static void gen_fanout(uint64_t *s, struct lv_route *r, size_t i, size_t n)
{
	char pat[64];
	if (i + 1 == n) {
		route_set(r, LV_MATCH_PREFIX, "/", ANY);
		return;
	}
	snprintf(pat, sizeof(pat), "/svc/r%zu/%s", i, rng_below(s, 2) ? "*" : "**");
	route_set(r, LV_MATCH_GLOB, pat, route_methods[rng_below(s, N(route_methods))]);
}

/* A path likely to match `r`: its pattern with each wildcard filled in, and
 * sometimes cut short or extended by a segment. */
static size_t gen_path_from(uint64_t *s, const struct lv_route *r, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < r->pattern_len && o + 16 < cap; i++) {
		if (r->pattern[i] != '*') {
			out[o++] = r->pattern[i];
			continue;
		}
		bool globstar = i + 1 < r->pattern_len && r->pattern[i + 1] == '*';
		const char *w = seg_words[rng_below(s, N(seg_words))];
		o += (size_t)snprintf(out + o, cap - o, globstar && rng_below(s, 2) ? "%s/%s" : "%s", w, w);
		i += globstar;
	}
	if (rng_below(s, 4) == 0 && o > 0)
		o -= rng_below(s, o + 1);
	else if (rng_below(s, 4) == 0)
		o += (size_t)snprintf(out + o, cap - o, "/%s", seg_words[rng_below(s, N(seg_words))]);
	return o;
}

static size_t gen_path_random(uint64_t *s, char *out, size_t cap)
{
	size_t o = 0, nseg = rng_below(s, 6);
	for (size_t k = 0; k < nseg; k++)
		o += (size_t)snprintf(out + o, cap - o, "/%s", seg_words[rng_below(s, N(seg_words))]);
	if (rng_below(s, 5) == 0)
		o += (size_t)snprintf(out + o, cap - o, "/");
	return o;
}

static void caps_expect_equal(const char *shape, const char *path, size_t len, const struct lv_captures *want,
                              const struct lv_captures *got)
{
	bool same = want->n == got->n;
	for (int k = 0; same && k < want->n; k++)
		same = want->c[k].off == got->c[k].off && want->c[k].len == got->c[k].len;
	if (!same)
		fail_msg("%s: \"%.*s\": the index captures differently from the scan", shape, (int)len, path);
}

/* One path and method: the index answers what the scan in file order does. */
static void index_expect_scan(const char *shape, const struct lv_route *routes, size_t n,
                              const struct route_index *ix, const char *path, size_t len, unsigned method)
{
	struct lv_captures want = {0}, got;
	const struct lv_route *scan = NULL;
	for (size_t i = 0; i < n && scan == NULL; i++)
		if (route_matches(&routes[i], path, len, method, &want))
			scan = &routes[i];
	memset(&got, 0xee, sizeof(got));
	const struct lv_route *found = route_index_match(ix, path, len, method, &got);
	if (found != scan)
		fail_msg("%s: \"%.*s\" method %#x: index chose route %td (%s), the scan %td (%s)", shape, (int)len, path,
		         method, found ? found - routes : -1, found ? found->pattern : "none", scan ? scan - routes : -1,
		         scan ? scan->pattern : "none");
	if (scan != NULL)
		caps_expect_equal(shape, path, len, &want, &got);
	assert_ptr_equal(route_index_match(ix, path, len, method, NULL), scan);
}

struct index_case {
	const char *shape;
	void (*gen)(uint64_t *s, struct lv_route *r, size_t i, size_t n);
	size_t nroutes;
	int policies; /* each with its own seed */
	int paths;    /* per policy, beside one derived from each route */
};

static const struct index_case index_cases[] = {
	{"empty", gen_random, 0, 1, 50},
	{"one random route", gen_random, 1, 300, 20},
	{"random", gen_random, 12, 300, 100},
	{"random, large", gen_random, 400, 10, 2000},
	{"/* then a literal", gen_slash_star, 300, 5, 500},
	{"nested literals", gen_nested, 60, 50, 200},
	{"duplicate patterns", gen_duplicates, 40, 50, 200},
	{"fan-out, the most routes", gen_fanout, LV_MAX_ROUTES, 1, 2000},
};

static void test_index_matches_scan(void **state)
{
	(void)state;
	for (size_t c = 0; c < N(index_cases); c++) {
		const struct index_case *tc = &index_cases[c];
		struct lv_route *routes = calloc(tc->nroutes + 1, sizeof(*routes));
		assert_non_null(routes);
		for (int pol = 0; pol < tc->policies; pol++) {
			uint64_t seed = ((uint64_t)c << 32) | (uint64_t)pol;
			for (size_t i = 0; i < tc->nroutes; i++)
				tc->gen(&seed, &routes[i], i, tc->nroutes);
			struct route_index *ix = NULL;
			assert_int_equal(route_index_build(routes, tc->nroutes, &ix), LV_OK);

			char path[256];
			for (size_t i = 0; i < tc->nroutes + (size_t)tc->paths; i++) {
				size_t len = i < tc->nroutes ? gen_path_from(&seed, &routes[i], path, sizeof(path))
				                             : gen_path_random(&seed, path, sizeof(path));
				for (size_t m = 0; m < N(path_methods); m++)
					index_expect_scan(tc->shape, routes, tc->nroutes, ix, path, len, path_methods[m]);
			}
			static const char *const edges[] = {"", "/", "//", "/a/", "/a//b", "/svc/", "/svc/r0", "\xc3"};
			for (size_t e = 0; e < N(edges); e++)
				index_expect_scan(tc->shape, routes, tc->nroutes, ix, edges[e], strlen(edges[e]), LV_M_GET);
			route_index_free(ix);
		}
		free(routes);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_match_length),
		cmocka_unit_test(test_pattern_check),
		cmocka_unit_test(test_covers),
		cmocka_unit_test(test_unmatchable_byte),
		cmocka_unit_test(test_purge_shape),
		cmocka_unit_test(test_policy_route_match),
		cmocka_unit_test(test_index_matches_scan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
