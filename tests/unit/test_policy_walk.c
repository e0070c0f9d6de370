/*
 * test_policy_walk.c - policy_walk() (policy/walk.c): every value written
 * back in policy syntax loads to the same value, secrets are masked and
 * the mask never loads, and what a file cannot carry is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The walk as an INI text (every key), and the value of one key. */
struct ini {
	char *text;
	size_t len;
	FILE *f;
	const char *want_sec, *want_key;
	char got[2048];
	bool found, secret_masked;
};

static void to_ini(const struct lv_keyval *kv, void *arg)
{
	struct ini *c = arg;
	if (!kv->key) {
		if (kv->instance)
			fprintf(c->f, "[%s \"%s\"]\n", kv->section, kv->instance);
		else
			fprintf(c->f, "[%s]\n", kv->section);
		return;
	}
	fprintf(c->f, "%s = %s\n", kv->key, kv->value);
	if (c->want_key && strcmp(kv->section, c->want_sec) == 0 && strcmp(kv->key, c->want_key) == 0) {
		snprintf(c->got, sizeof(c->got), "%s", kv->value);
		c->found = true;
	}
	if (kv->secret && strcmp(kv->value, LV_SECRET_MASK) == 0)
		c->secret_masked = true;
}

static void walk_ini(const struct lv_policy *p, unsigned flags, struct ini *c)
{
	char err[512];
	c->f = open_memstream(&c->text, &c->len);
	assert_non_null(c->f);
	if (policy_walk(p, flags, to_ini, c, err, sizeof(err)) != LV_OK)
		fail_msg("walk: %s", err);
	fclose(c->f);
}

static struct lv_policy *load(const char *name, const char *text)
{
	struct lv_diag d = {0};
	struct lv_policy *p = NULL;
	if (policy_load_string(name, text, NULL, &p, &d) != LV_OK)
		fail_msg("%s does not load: %s\n%s", name, d.n ? d.lines[0] : "?", text);
	diag_free(&d);
	return p;
}

/* How each type is written: <section text> sets one key, which must come
 * back as <want>, and the written file must load to the same text again. */
static const struct {
	const char *policy, *sec, *key, *want;
} cases[] = {
    {"[levee]\ndrain_timeout = 1500ms\n", "levee", "drain_timeout", "1500ms"},
    {"[levee]\ndrain_timeout = 120s\n", "levee", "drain_timeout", "2m"},
    {"[levee]\ndrain_timeout = 0\n", "levee", "drain_timeout", "0"},
    {"[levee]\nworkers = auto\n", "levee", "workers", "auto"},
    {"[levee]\nworkers = 3\n", "levee", "workers", "3"},
    {"[levee]\nprobe = [::1]:15002\n", "levee", "probe", "[::1]:15002"},
    {"[levee]\nservice = ${WALK_UNSET:-from-default}\n", "levee", "service", "from-default"},
    {"[limits]\nheader_bytes = 10000\n", "limits", "header_bytes", "10000"},
    {"[limits]\nheader_bytes = 64KiB\n", "limits", "header_bytes", "64KiB"},
    {"[cache]\nmemory = 1GiB\n", "cache", "memory", "1GiB"},
    {"[upstream]\nretry_budget = 12.5%\n", "upstream", "retry_budget", "12.5%"},
    {"[redis]\nsentinels = a:1 ,b:2\n", "redis", "sentinels", "a:1, b:2"},
    {"[route \"r\"]\nmatch = /a/*\nmethods = HEAD,GET\n", "route", "methods", "GET, HEAD"},
    {"[route \"r\"]\nprefix = /a/\nmethods = any\n", "route", "methods", "any"},
    {"[route \"r\"]\nprefix = /a/\ncache_ttl = origin\n", "route", "cache_ttl", "origin"},
    {"[route \"r\"]\nprefix = /a/\n", "route", "cache_ttl", "off"},
    {"[route \"r\"]\nprefix = /a/\nretry_statuses = 5xx, 429\n", "route", "retry_statuses", "429, 500-599"},
    {"[route \"r\"]\nprefix = /a/\nretry_statuses = none\n", "route", "retry_statuses", "none"},
    {"[route \"r\"]\nprefix = /a/\ncache_ttl = 5s\nfallback = status, stale\n", "route", "fallback", "status, stale"},
    {"[route \"r\"]\nprefix = /a/\nfallback_body = cost $$5 ; not a comment?\n", "route", "fallback_body",
     "cost $$5"},
    /* a default is taken as written: "a$$b", which the file writes "a$$$$b" */
    {"[route \"r\"]\nprefix = /a/\nfallback_body = ${WALK_UNSET:-a$$b}\n", "route", "fallback_body", "a$$$$b"},
    {"[route \"r\"]\nmatch = /u/*\ninvalidate = /u/{1}, tag:u-{1}\n", "route", "invalidate", "/u/{1}, tag:u-{1}"},
    {"[route \"r\"]\nprefix = /a/\ncache_key_headers = Accept-Language X-A\n", "route", "cache_key_headers",
     "accept-language, x-a"},
    {"[route \"r\"]\nprefix = /a/\ncache_control_fields = none\n", "route", "cache_control_fields", "none"},
    {"[route \"r\"]\nprefix = /a/\ncache_control_fields = Acme-Cache-Control,CDN-Cache-Control\n", "route",
     "cache_control_fields", "acme-cache-control, cdn-cache-control"},
    {"[breaker \"b\"]\nwindow = 100 calls\n", "breaker", "window", "100 calls"},
    {"[breaker \"b\"]\nfailure_on = reset, timeout\n", "breaker", "failure_on", "timeout, reset"},
    {"[breaker \"b\"]\nfailure_on = none\n", "breaker", "failure_on", "none"},
    {"[tiers]\ncohort = cookie:sid\n", "tiers", "cohort", "cookie:sid"},
    {"[tier \"t\"]\nenter = inflight > 10\nexit = inflight < 5\nshed = optional, normal 30%\n", "tier", "shed",
     "normal 30%, optional"},
    {"[tier \"t\"]\nenter = inflight > 10\nexit = inflight < 5\n", "tier", "shed", "none"},
    {"[kafka]\nbrokers = k:9092\nsasl_password = ${WALK_UNSET:-s3cr$$t}\n", "kafka", "sasl_password", "s3cr$$$$t"},
};

static void test_types(void **state)
{
	for (size_t i = 0; i < N(cases); i++) {
		struct lv_policy *p = load("case.ini", cases[i].policy);
		struct ini a = {.want_sec = cases[i].sec, .want_key = cases[i].key};
		walk_ini(p, 0, &a);
		if (!a.found || strcmp(a.got, cases[i].want) != 0)
			fail_msg("%s: [%s] %s written \"%s\", want \"%s\"", cases[i].policy, cases[i].sec, cases[i].key,
			         a.found ? a.got : "(missing)", cases[i].want);
		/* and the written file is the same policy */
		struct lv_policy *q = load("written.ini", a.text);
		struct ini b = {0};
		walk_ini(q, 0, &b);
		if (strcmp(a.text, b.text) != 0)
			fail_msg("%s: written again differs:\n%s\n---\n%s", cases[i].policy, a.text, b.text);
		free(a.text);
		free(b.text);
		policy_unref(q);
		policy_unref(p);
	}
}

/* The example that sets every key, written whole and loaded again. */
static void test_complete_round_trip(void **state)
{
	FILE *f = fopen(LEVEE_SOURCE_DIR "/policy/examples/complete.ini", "r");
	assert_non_null(f);
	static char text[256 * 1024];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	setenv("KAFKA_PASSWORD", "pw", 0);
	setenv("SERVICE_NAME", "demo", 0);
	struct lv_diag d = {0};
	struct lv_policy *p = NULL;
	/* the example's relative files resolve against the source tree */
	if (policy_load_file(LEVEE_SOURCE_DIR "/policy/examples/complete.ini", NULL, &p, &d) != LV_OK)
		fail_msg("complete.ini: %s", d.n ? d.lines[0] : "?");
	diag_free(&d);
	struct ini a = {0}, b = {0};
	walk_ini(p, 0, &a);
	struct lv_policy *q = load("complete-written.ini", a.text);
	walk_ini(q, 0, &b);
	assert_string_equal(a.text, b.text);
	free(a.text);
	free(b.text);
	policy_unref(q);
	policy_unref(p);
}

static void test_mask(void **state)
{
	struct lv_policy *p = load("m.ini", "[kafka]\nbrokers = k:9092\nsasl_password = hunter2\n");
	struct ini a = {0};
	walk_ini(p, LV_WALK_MASK, &a);
	assert_true(a.secret_masked);
	assert_null(strstr(a.text, "hunter2"));
	/* the masked file does not load, and says why */
	struct lv_diag d = {0};
	struct lv_policy *q = NULL;
	assert_int_equal(policy_load_string("masked.ini", a.text, NULL, &q, &d), LV_ERR);
	assert_true(d.n >= 1);
	assert_non_null(strstr(d.lines[0], "sasl_password"));
	assert_non_null(strstr(d.lines[0], LV_SECRET_MASK));
	diag_free(&d);
	free(a.text);
	policy_unref(p);
	/* an empty secret is no secret: written empty, not masked */
	p = load("e.ini", "[kafka]\nbrokers = k:9092\n");
	struct ini b = {0};
	walk_ini(p, LV_WALK_MASK, &b);
	assert_false(b.secret_masked);
	free(b.text);
	policy_unref(p);
}

static void noop(const struct lv_keyval *kv, void *arg)
{
}

/* Values from the environment that a file line cannot carry. */
static void test_unwritable(void **state)
{
	static const struct {
		const char *env, *why;
	} bad[] = {
	    {"a ; b", "comment"},
	    {" lead", "blank"},
	    {"trail ", "blank"},
	};
	for (size_t i = 0; i < N(bad); i++) {
		setenv("WALK_BODY", bad[i].env, 1);
		struct lv_policy *p = load("u.ini", "[route \"r\"]\nprefix = /a/\nfallback_body = ${WALK_BODY}\n");
		char err[512] = "";
		assert_int_equal(policy_walk(p, 0, noop, NULL, err, sizeof(err)), LV_ERR);
		if (!strstr(err, "fallback_body") || !strstr(err, bad[i].why))
			fail_msg("\"%s\": %s", bad[i].env, err);
		policy_unref(p);
	}
	unsetenv("WALK_BODY");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_types),
	    cmocka_unit_test(test_complete_round_trip),
	    cmocka_unit_test(test_mask),
	    cmocka_unit_test(test_unwritable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
