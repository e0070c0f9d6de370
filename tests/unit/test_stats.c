/*
 * test_stats.c - the request-time histogram's quantile: which bucket's
 * bound it gives, at the edges of empty, one-bucket and +Inf histograms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quantile),
	    cmocka_unit_test(test_cached_per_route),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
