/*
 * test_stats.c - the request-time histogram's quantile: which bucket's
 * bound it gives, at the edges of empty, one-bucket and +Inf histograms;
 * the cache's results per route, and how /metrics renders them.
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

#include "stats.h"

static void test_quantile(void **state)
{
	(void)state;
	uint64_t h[LV_HIST_BUCKETS] = {0};
	assert_true(isnan(stats_hist_quantile(h, 0.99)));
	h[0] = 1;
	assert_true(stats_hist_quantile(h, 0.99) == lv_hist_bounds[0]);
	/* 99 fast, 1 slow: the 99th is still fast, the 100th is not */
	h[0] = 99;
	h[10] = 1;
	assert_true(stats_hist_quantile(h, 0.99) == lv_hist_bounds[0]);
	assert_true(stats_hist_quantile(h, 1.0) == lv_hist_bounds[10]);
	/* 98 fast, 2 slow */
	h[0] = 98;
	h[10] = 2;
	assert_true(stats_hist_quantile(h, 0.99) == lv_hist_bounds[10]);
	/* past the last bound */
	uint64_t inf[LV_HIST_BUCKETS] = {0};
	inf[LV_HIST_BUCKETS - 1] = 5;
	assert_true(isinf(stats_hist_quantile(inf, 0.99)));
	assert_true(isinf(stats_hist_quantile(inf, 0.0))); /* rank at least 1 */
}

static void test_cached_per_route(void **state)
{
	(void)state;
	struct lv_stats s = {0};
	stats_record_request(&s, 3, 200, 100, true);
	stats_record_request(&s, 3, 200, 100, false);
	stats_record_request(&s, 3, 503, 100, false);
	struct lv_stats *w[] = {&s, &s}; /* two shards, summed */
	struct lv_route_stats sum;
	stats_route_sum(w, 2, 3, &sum);
	assert_int_equal(sum.cached, 2);
	assert_int_equal(sum.cls[1], 4);
	assert_int_equal(sum.cls[4], 2);
	stats_route_sum(w, 2, 4, &sum);
	assert_int_equal(sum.cached, 0);
	stats_free_routes(&s);
}

/* Per route, each result of the table once a route counted one, zeros
 * included; nothing for a route that counted none, "default" included; a
 * result outside the table and a route past the registry are safe. */
static void test_cache_results(void **state)
{
	(void)state;
	struct lv_stats *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	unsigned a = stats_route_index("cached-a"), b = stats_route_index("quiet-b");
	assert_true(a > 0 && b > 0 && a != b);
	stats_record_cache(w, a, LV_CR_HIT);
	stats_record_cache(w, a, LV_CR_HIT);
	stats_record_cache(w, a, LV_CR_BYPASS);
	stats_record_cache(w, a, LV_CR__COUNT);            /* not a result: ignored */
	stats_record_cache(w, LV_ROUTE_STATS + 7, LV_CR_MISS); /* past the registry: "default" */
	struct lv_route_stats sum;
	struct lv_stats *const ws[] = {w, w};
	stats_route_sum(ws, 2, a, &sum);
	assert_int_equal(sum.cache[LV_CR_HIT], 4);
	assert_int_equal(sum.cache[LV_CR_BYPASS], 2);
	assert_int_equal(sum.cache[LV_CR_MISS], 0);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	struct lv_gauges g = {0};
	unsigned routes[] = {a, b};
	stats_render_prometheus(out, ws, 1, &g, routes, 2);
	fclose(out);
	assert_non_null(strstr(text, "# TYPE levee_cache_lookups_total counter\n"));
	assert_non_null(strstr(text, "levee_cache_lookups_total{route=\"cached-a\",result=\"hit\"} 2\n"));
	assert_non_null(strstr(text, "levee_cache_lookups_total{route=\"cached-a\",result=\"bypass\"} 1\n"));
	for (int i = 0; i < LV_CR__COUNT; i++) {
		char line[128];
		snprintf(line, sizeof(line), "levee_cache_lookups_total{route=\"cached-a\",result=\"%s\"} ",
		         lv_cache_result_names[i]);
		assert_non_null(strstr(text, line));
	}
	assert_null(strstr(text, "route=\"quiet-b\",result="));
	assert_non_null(strstr(text, "levee_cache_lookups_total{route=\"default\",result=\"miss\"} 1\n"));
	free(text);
	stats_free_routes(w);
	free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quantile),
	    cmocka_unit_test(test_cached_per_route),
	    cmocka_unit_test(test_cache_results),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
