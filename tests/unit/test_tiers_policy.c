/*
 * test_tiers_policy.c - [tiers] and [tier] in the policy: the shed and
 * cohort values, expression errors at file:line:column, the signals of a
 * policy's routes, bulkheads and breakers, and what each level does
 * (policy/signals.c); and the histograms the signals are computed from
 * (proxy/sighist.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "sighist.h"
#include "signals.h"

static struct lv_policy *load_ok(const char *text)
{
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};
	int rc = policy_load_string("t.ini", text, NULL, &p, &d);
	for (size_t i = 0; i < d.n; i++)
		print_message("unexpected: %s\n", d.lines[i]);
	assert_int_equal(rc, LV_OK);
	diag_free(&d);
	return p;
}

/* Loads `text`, which must fail with exactly the error `want`. */
static void load_err(const char *text, const char *want)
{
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};
	int rc = policy_load_string("t.ini", text, NULL, &p, &d);
	if (rc == LV_OK || d.n != 1 || strcmp(d.lines[0], want) != 0) {
		for (size_t i = 0; i < d.n; i++)
			print_message("got: %s\n", d.lines[i]);
		fail_msg("wanted: %s", want);
	}
	diag_free(&d);
}

#define HEAD "[route \"users\"]\nprefix = /u\npriority = critical\n[route \"feed\"]\nprefix = /f\npriority = optional\n" \
             "[bulkhead \"b\"]\nmax_concurrent = 4\n[breaker \"k\"]\n"

static void test_tier_values(void **state)
{
	(void)state;
	struct lv_policy *p = load_ok(HEAD "[tiers]\ncohort = header:X-User-Id\ntick = 100ms\n"
	                                   "[tier \"one\"]\nenter = inflight > 10\nexit = inflight < 5\nshed = optional\n"
	                                   "cache = serve-stale, cache-only\nbulkhead_scale = 50%\n"
	                                   "[tier \"two\"]\nenter = route.users.upstream_p99 > 300ms\n"
	                                   "exit = bulkhead.b.queue_wait_p99 < 10ms and not breaker.k.open\n"
	                                   "shed = normal 30%\nttl_factor = 4\ncache = stretch-ttl\nretry_after = 1500ms\n"
	                                   "[tier \"rehearse\"]\nshadow = true\nenter = cpu > 90%\nexit = cpu < 50%\n"
	                                   "shed = normal\n");
	assert_int_equal(p->ntiers, 3);
	assert_int_equal(p->tiers_cfg.cohort.kind, LV_COHORT_HEADER);
	assert_string_equal(p->tiers_cfg.cohort.name, "X-User-Id");
	assert_int_equal(p->tiers_cfg.tick_ms, 100);
	assert_true(p->tiers[0].shed.pct[LV_PRIO_OPTIONAL] == 100.0);
	assert_true(p->tiers[1].shed.pct[LV_PRIO_NORMAL] == 30.0);
	assert_int_equal(p->routes[0].priority, LV_PRIO_CRITICAL);

	/* the levels add up: tier two keeps one's shed and cache, the shadow
	 * tier changes nothing but what would be shed */
	const struct lv_tier_level *l = p->tier_levels;
	assert_true(l[0].shed.pct[LV_PRIO_OPTIONAL] == 0 && l[0].named == -1 && l[0].bulkhead_scale == 100.0);
	assert_true(l[1].shed.pct[LV_PRIO_OPTIONAL] == 100.0 && l[1].shed.pct[LV_PRIO_NORMAL] == 0);
	assert_int_equal(l[1].cache, LV_CM_SERVE_STALE | LV_CM_CACHE_ONLY);
	assert_true(l[1].bulkhead_scale == 50.0);
	assert_string_equal(l[1].detail, "tier=one");
	assert_true(l[2].shed.pct[LV_PRIO_OPTIONAL] == 100.0 && l[2].shed.pct[LV_PRIO_NORMAL] == 30.0);
	assert_int_equal(l[2].cache, LV_CM_SERVE_STALE | LV_CM_CACHE_ONLY | LV_CM_STRETCH_TTL);
	assert_int_equal(l[2].ttl_factor, 4);
	assert_int_equal(l[2].retry_after_s, 2);
	assert_true(l[2].bulkhead_scale == 50.0);
	assert_true(l[3].shed.pct[LV_PRIO_NORMAL] == 30.0);
	assert_true(l[3].would_shed.pct[LV_PRIO_NORMAL] == 100.0);
	assert_int_equal(l[3].named, 1);
	assert_int_equal(l[3].shadow_named, 2);
	assert_true(l[3].shed.pct[LV_PRIO_CRITICAL] == 0 && l[3].would_shed.pct[LV_PRIO_CRITICAL] == 0);

	/* the signals of the policy's objects, and which ones are read */
	const struct lv_signal_table *t = p->signals;
	assert_non_null(t);
	assert_string_equal(t->v[sig_route(t, 1, SIG_R_UP_P99)].name, "route.feed.upstream_p99");
	assert_string_equal(t->v[sig_bulkhead(t, 0, SIG_B_WAIT_P99)].name, "bulkhead.b.queue_wait_p99");
	assert_string_equal(t->v[sig_breaker(t, 0, SIG_K_OPEN)].name, "breaker.k.open");
	assert_true(t->used[SIG_INFLIGHT] && t->used[SIG_CPU] && !t->used[SIG_UP_P99]);
	assert_true(t->used[sig_route(t, 0, SIG_R_UP_P99)] && !t->used[sig_route(t, 1, SIG_R_UP_P99)]);
	assert_true(t->used[sig_breaker(t, 0, SIG_K_OPEN)]);
	policy_unref(p);

	/* no tiers: no table, no levels */
	p = load_ok(HEAD);
	assert_null(p->signals);
	assert_int_equal(p->ntiers, 0);
	policy_unref(p);
}

static void test_tier_errors(void **state)
{
	(void)state;
	/* the column is the file's: "exit  = " is 8 bytes */
	load_err("[tier \"a\"]\nenter = inflight > 1\nexit  = inflight < 5 and routee.a.inflight < 3\n",
	         "t.ini:3:26: [tier \"a\"] exit: unknown signal 'routee.a.inflight'");
	load_err(HEAD "[tier \"a\"]\nenter = route.users.inflight > 300ms\nexit = inflight < 1\n",
	         "t.ini:11:32: [tier \"a\"] enter: route.users.inflight is a count; 300ms is a duration");
	load_err("[tier \"a\"]\nenter = queue_wait_p99 > 300\nexit = inflight < 1\n",
	         "t.ini:2:26: [tier \"a\"] enter: a number needs a unit here: 300 what? (queue_wait_p99 is a "
	         "duration, e.g. 300ms)");
	load_err("[tier \"a\"]\nenter = (cpu > 80%\nexit = inflight < 1\n",
	         "t.ini:2:19: [tier \"a\"] enter: missing ')' to close the '(' at column 1");
	load_err("[tier \"a\"]\nenter = cpu > 80%\nexit = inflight < 1\nshed = critical\n",
	         "t.ini:4: [tier \"a\"] shed: critical routes are never shed by a tier");
	load_err("[tier \"a\"]\nenter = cpu > 80%\nexit = inflight < 1\nshed = normal 0%\n",
	         "t.ini:4: [tier \"a\"] shed: bad share '0%' of normal: must be a percentage above 0% and at most 100%");
	load_err("[tier \"a\"]\nenter = cpu > 80%\nexit = inflight < 1\nshed = optional, optional\n",
	         "t.ini:4: [tier \"a\"] shed: 'optional' is listed twice");
	load_err("[tier \"a\"]\nenter = cpu > 80%\nexit = inflight < 1\nshed = normal 30% 40%\n",
	         "t.ini:4: [tier \"a\"] shed: expected ',' after 'normal 30%'");
	load_err("[tier \"a\"]\nenter = cpu > 80%\nexit = inflight < 1\nshed = everyone\n",
	         "t.ini:4: [tier \"a\"] shed: 'everyone': expected optional or normal, each with an optional share "
	         "(normal 30%)");
	load_err("[tier \"a\"]\nexit = inflight < 1\n", "t.ini:1: [tier \"a\"]: needs enter");
	load_err("[tiers]\ncohort = header:\n",
	         "t.ini:2: [tiers] cohort: '': the name must be 1-63 token characters");
	load_err("[tiers]\ncohort = ip\n", "t.ini:2: [tiers] cohort: expected address, header:NAME or cookie:NAME");
	load_err("[tiers]\ntick = 5s\n", "t.ini:2: [tiers] tick: must be between 100ms and 1s");
	load_err("[tier \"a\"]\nenter = cpu > 80%\nexit = inflight < 1\ncache = stale\n",
	         "t.ini:4: [tier \"a\"] cache: 'stale' is not one of serve-stale, stretch-ttl, skip-lease, "
	         "no-fill-optional, cache-only (or none)");
}

/* The histogram: buckets in order, and percentiles within a bucket's width
 * (about 1/8 of its value) of the exact ones. */
static void test_sighist(void **state)
{
	(void)state;
	unsigned last = 0;
	for (uint64_t us = 0; us < 100000000; us = us < 64 ? us + 1 : us + us / 7) {
		unsigned i = sighist_index(us);
		assert_true(i >= last && i < SIGHIST_BUCKETS);
		assert_true(sighist_lower(i) <= us);
		assert_true(i + 1 == SIGHIST_BUCKETS || sighist_lower(i + 1) > us);
		last = i;
	}
	assert_int_equal(sighist_index(UINT64_MAX), SIGHIST_BUCKETS - 1);
	static uint64_t h[SIGHIST_BUCKETS];
	memset(h, 0, sizeof(h));
	assert_true(isnan(sighist_quantile_ms(h, 0, 0.99)));
	/* 1..10000 ms, one each */
	for (uint64_t ms = 1; ms <= 10000; ms++)
		h[sighist_index(ms * 1000)]++;
	double p50 = sighist_quantile_ms(h, 10000, 0.5), p99 = sighist_quantile_ms(h, 10000, 0.99);
	assert_true(fabs(p50 - 5000) < 5000 * 0.13);
	assert_true(fabs(p99 - 9900) < 9900 * 0.13);
	/* one value: every percentile is in its bucket */
	memset(h, 0, sizeof(h));
	h[sighist_index(20000)] = 1;
	double one = sighist_quantile_ms(h, 1, 0.99);
	assert_true(one >= 17.9 && one <= 22.6);
	/* small values are exact */
	memset(h, 0, sizeof(h));
	h[sighist_index(3)] = 5;
	assert_true(sighist_quantile_ms(h, 5, 0.5) == 0.003);
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* docs/tiers.md carries the generated table of signals, row for row. */
static void test_docs_list_every_signal(void **state)
{
	(void)state;
	char *doc = read_all(LEVEE_SOURCE_DIR "/docs/tiers.md");
	assert_non_null(doc);
	char *table = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&table, &len);
	signals_markdown(f);
	fclose(f);
	for (char *line = strtok(table, "\n"); line; line = strtok(NULL, "\n"))
		if (!strstr(doc, line))
			fail_msg("docs/tiers.md lacks or has a stale row (test_tiers_policy --signals-markdown): %s", line);
	free(table);
}

/* The worked policy of docs/tiers.md is policy/examples/tiers.ini, and it
 * loads without a warning. */
static void test_worked_example(void **state)
{
	(void)state;
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};
	const char *path = LEVEE_SOURCE_DIR "/policy/examples/tiers.ini";
	int rc = policy_load_file(path, NULL, &p, &d);
	for (size_t i = 0; i < d.n; i++)
		print_message("%s\n", d.lines[i]);
	assert_int_equal(rc, LV_OK);
	assert_int_equal(d.nwarn, 0);
	assert_int_equal(p->ntiers, 2);
	assert_true(p->tier_levels[2].shed.pct[LV_PRIO_NORMAL] == 50.0);
	policy_unref(p);
	diag_free(&d);
	char *ini = strdup(read_all(path));
	char *doc = read_all(LEVEE_SOURCE_DIR "/docs/tiers.md");
	const char *body = strstr(ini, "[route \"login\"]");
	assert_non_null(body);
	if (!strstr(doc, body))
		fail_msg("docs/tiers.md's first policy differs from policy/examples/tiers.ini");
	free(ini);
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--signals-markdown") == 0) {
		signals_markdown(stdout);
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tier_values),
		cmocka_unit_test(test_tier_errors),
		cmocka_unit_test(test_sighist),
		cmocka_unit_test(test_docs_list_every_signal),
		cmocka_unit_test(test_worked_example),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
