/*
 * test_fallback.c - a route's fallback chain (proxy/resilience/fallback.c),
 * the causes it answers (proxy/reason.c), and its metric (proxy/stats.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "reason.h"
#include "resilience/fallback.h"
#include "stats.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Only these failures are fallback material. */
static void test_causes(void **state)
{
	(void)state;
	static const enum lv_reason yes[] = {R_BREAKER_OPEN, R_BULKHEAD_FULL, R_BULKHEAD_TIMEOUT, R_UP_TIMEOUT,
	                                     R_UP_CONNECT, R_DEADLINE, R_TIER_SHED, R_TIER_CACHE_ONLY};
	for (size_t i = 0; i < N(yes); i++)
		assert_int_equal(reason_fallback_cause(yes[i]), (int)i);
	assert_int_equal(LV_FALLBACK_CAUSES_N, N(yes));
	static const enum lv_reason no[] = {R_NONE, R_BAD_REQUEST, R_UP_BAD, R_INTERNAL, R_NOT_CACHED, R_DRAINING,
	                                    R_BODY_TIMEOUT, R_MAXCONN};
	for (size_t i = 0; i < N(no); i++)
		assert_int_equal(reason_fallback_cause(no[i]), -1);
}

struct fake {
	bool has_copy; /* what the stale step finds */
	int asked;
};

static bool fake_stale(void *arg)
{
	struct fake *f = arg;
	f->asked++;
	return f->has_copy;
}

static struct lv_fallback_chain chain_of(const char *kinds)
{
	struct lv_fallback_chain c = {0};
	for (const char *k = kinds; *k; k++)
		c.kind[c.n++] = (uint8_t)(*k == 'x' ? LV_FB_STALE : *k == 't' ? LV_FB_STATIC : LV_FB_STATUS);
	return c;
}

/* The chain, as a table: x stale, t static, s status; "-" nothing answers. */
static void test_chain(void **state)
{
	(void)state;
	static const struct {
		const char *chain;
		enum lv_reason reason;
		bool has_copy;
		int want; /* enum lv_fallback_kind, or LV_FB__COUNT */
		int asked;
	} cases[] = {
	    {"", R_BREAKER_OPEN, true, LV_FB__COUNT, 0},
	    {"x", R_BREAKER_OPEN, true, LV_FB_STALE, 1},
	    {"x", R_UP_TIMEOUT, false, LV_FB__COUNT, 1},          /* nothing stored: levee's error */
	    {"xt", R_UP_CONNECT, false, LV_FB_STATIC, 1},         /* falls through */
	    {"xt", R_BULKHEAD_FULL, true, LV_FB_STALE, 1},
	    {"xs", R_BULKHEAD_TIMEOUT, false, LV_FB_STATUS, 1},
	    {"ts", R_BREAKER_OPEN, true, LV_FB_STATIC, 0},        /* static always answers */
	    {"s", R_UP_TIMEOUT, true, LV_FB_STATUS, 0},
	    {"xts", R_UP_BAD, true, LV_FB__COUNT, 0},             /* a bad answer is no fallback material */
	    {"xts", R_BAD_REQUEST, true, LV_FB__COUNT, 0},
	    {"xts", R_NOT_CACHED, true, LV_FB__COUNT, 0},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct fake f = {cases[i].has_copy, 0};
		struct fallback_try t = {fake_stale, &f};
		struct lv_fallback_chain c = chain_of(cases[i].chain);
		int got = (int)fallback_choose(&c, cases[i].reason, &t);
		if (got != cases[i].want || f.asked != cases[i].asked)
			fail_msg("case %zu (%s, %s): got kind %d asked %d, want %d asked %d", i, cases[i].chain,
			         lv_reasons[cases[i].reason].token, got, f.asked, cases[i].want, cases[i].asked);
	}
}

static void test_detail(void **state)
{
	(void)state;
	char buf[64];
	assert_true(fallback_detail(buf, sizeof(buf), NULL, LV_FB_STALE));
	assert_string_equal(buf, "fallback=stale");
	assert_true(fallback_detail(buf, sizeof(buf), "breaker=users", LV_FB_STATIC));
	assert_string_equal(buf, "breaker=users; fallback=static");
	char small[24];
	assert_false(fallback_detail(small, sizeof(small), "bulkhead=a-very-long-name", LV_FB_STATUS));
	assert_string_equal(small, "fallback=status");
}

/* Counted per route, cause and kind; only the series that happened. */
static void test_metric(void **state)
{
	(void)state;
	struct lv_stats *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	unsigned users = stats_route_index("users");
	assert_true(users > 0);
	stats_record_fallback(w, users, reason_fallback_cause(R_BREAKER_OPEN), LV_FB_STALE);
	stats_record_fallback(w, users, reason_fallback_cause(R_BREAKER_OPEN), LV_FB_STALE);
	stats_record_fallback(w, users, reason_fallback_cause(R_UP_TIMEOUT), LV_FB_STATIC);
	stats_record_fallback(w, users, -1, LV_FB_STATIC); /* not a cause: ignored */
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	struct lv_gauges g = {0};
	struct lv_stats *const ws[] = {w};
	stats_render_prometheus(out, ws, 1, &g, &users, 1);
	fclose(out);
	assert_non_null(strstr(text, "# TYPE levee_fallbacks_total counter\n"));
	assert_non_null(
	    strstr(text, "levee_fallbacks_total{route=\"users\",reason=\"breaker_open\",fallback=\"stale\"} 2\n"));
	assert_non_null(
	    strstr(text, "levee_fallbacks_total{route=\"users\",reason=\"upstream_timeout\",fallback=\"static\"} 1\n"));
	assert_null(strstr(text, "fallback=\"status\""));
	free(text);
	stats_free_routes(w);
	free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_causes),
	    cmocka_unit_test(test_chain),
	    cmocka_unit_test(test_detail),
	    cmocka_unit_test(test_metric),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
