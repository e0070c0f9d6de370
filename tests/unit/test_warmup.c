/*
 * test_warmup.c - the warm-up's rate limiter on an injected clock: even
 * spacing, no burst after idling, rates at the bounds of [warmup] rate and
 * hot_rate, the slack that keeps a late timer from slowing the average
 * down; and readiness before any warm-up ran.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cache/warmup.h"

/* Starts as many requests as the limiter lets through in [0, span_us),
 * asking every `step_us`; returns how many, and the smallest gap. */
static unsigned run(uint64_t per_s, uint64_t span_us, uint64_t step_us, uint64_t *min_gap)
{
	struct warm_rate r;
	warm_rate_init(&r, per_s, 0);
	unsigned n = 0;
	uint64_t last = 0;
	*min_gap = UINT64_MAX;
	for (uint64_t t = 1000000; t < 1000000 + span_us; t += step_us) {
		if (warm_rate_take(&r, t) != 0)
			continue;
		if (n && t - last < *min_gap)
			*min_gap = t - last;
		last = t;
		n++;
	}
	return n;
}

static void test_spacing(void **state)
{
	(void)state;
	static const struct {
		uint64_t per_s, span_us, step_us;
		unsigned want;
		uint64_t gap;
	} cases[] = {
	        {5, 1000000, 1000, 5, 200000},     /* the integration test's rate */
	        {1, 3000000, 1000, 3, 1000000},    /* the lowest rate */
	        {10000, 1000000, 50, 10000, 100},  /* the highest [warmup] rate */
	        {100000, 100000, 1, 10000, 10},    /* the highest hot_rate */
	        {3, 1000000, 1000, 3, 333000},     /* 1e6 / 3, rounded down */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t gap;
		unsigned n = run(cases[i].per_s, cases[i].span_us, cases[i].step_us, &gap);
		assert_int_equal(n, cases[i].want);
		assert_true(gap >= cases[i].gap);
	}
}

/* The wait it reports is exact, a take it refuses is not counted, and idle
 * time saves up no credit: after a long pause, one start, then the spacing
 * again. */
static void test_wait_and_idle(void **state)
{
	(void)state;
	struct warm_rate r;
	warm_rate_init(&r, 4, 0); /* 250 ms */
	assert_int_equal(warm_rate_take(&r, 10000000), 0);
	assert_int_equal(warm_rate_take(&r, 10000001), 249999);
	assert_int_equal(warm_rate_take(&r, 10100000), 150000);
	assert_int_equal(warm_rate_take(&r, 10250000), 0);
	assert_int_equal(warm_rate_take(&r, 60000000), 0); /* idle 50 s */
	assert_int_equal(warm_rate_take(&r, 60000000), 250000);
	assert_int_equal(warm_rate_take(&r, 60249999), 1);
	assert_int_equal(warm_rate_take(&r, 60250000), 0);
	/* the first take at time 0 passes too */
	warm_rate_init(&r, 4, 0);
	assert_int_equal(warm_rate_take(&r, 0), 0);
	assert_int_equal(warm_rate_take(&r, 0), 250000);
	/* 0 a second is refused by the policy; the limiter reads it as 1 */
	warm_rate_init(&r, 0, 0);
	assert_int_equal(warm_rate_take(&r, 5), 0);
	assert_int_equal(warm_rate_take(&r, 6), 999999);
}

/* With slack, a start that came late keeps the schedule: the next is due
 * an interval after the late one was due, so the average holds; a start
 * later than the slack begins a new schedule (no burst to catch up). */
static void test_slack(void **state)
{
	(void)state;
	struct warm_rate r;
	warm_rate_init(&r, 500, 2000); /* 2 ms, the hot set's default */
	uint64_t t = 1000000;
	assert_int_equal(warm_rate_take(&r, t), 0); /* due t + 2000 */
	assert_int_equal(warm_rate_take(&r, t + 1999), 1);
	assert_int_equal(warm_rate_take(&r, t + 2900), 0); /* 900 us late: next due t + 4000 */
	assert_int_equal(warm_rate_take(&r, t + 3000), 1000);
	assert_int_equal(warm_rate_take(&r, t + 4000), 0);
	/* 1000 starts asked for every 1.3 ms (a timer always late) keep 2 ms on average */
	warm_rate_init(&r, 500, 2000);
	unsigned n = 0;
	uint64_t first = 0, last = 0;
	for (uint64_t now = t; n < 1000; now += 1300)
		if (warm_rate_take(&r, now) == 0) {
			if (!n)
				first = now;
			last = now;
			n++;
		}
	uint64_t avg = (last - first) / (n - 1);
	assert_true(avg >= 2000 && avg < 2100);
	/* idle, then many asks at once: one start, the rest wait */
	assert_int_equal(warm_rate_take(&r, last + 10000000), 0);
	assert_int_equal(warm_rate_take(&r, last + 10000000), 2000);
	/* without slack the same late timer slows the rate down to one per 2.6 ms */
	warm_rate_init(&r, 500, 0);
	n = 0;
	for (uint64_t now = t; n < 1000; now += 1300)
		if (warm_rate_take(&r, now) == 0) {
			if (!n)
				first = now;
			last = now;
			n++;
		}
	assert_int_equal((last - first) / (n - 1), 2600);
}

static void test_ready_without_warmup(void **state)
{
	(void)state;
	const char *why = "unset";
	assert_true(warmup_ready(&why));
	assert_string_equal(why, "unset"); /* untouched when ready */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_spacing),
	        cmocka_unit_test(test_wait_and_idle),
	        cmocka_unit_test(test_slack),
	        cmocka_unit_test(test_ready_without_warmup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
