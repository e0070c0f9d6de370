/*
 * test_retry.c - the retry budget and the backoff of proxy/net/retry.c, on
 * an injected clock and injected random values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/retry.h"

/* With no traffic only the floor allows retries: min_per_s per second over
 * the window, then none until the window moves on. */
static void test_floor(void **state)
{
	(void)state;
	struct retry_budget rb;
	retry_budget_init(&rb);
	int ok = 0;
	for (int i = 0; i < 100; i++)
		ok += retry_budget_take(&rb, 20, 3, 5000);
	assert_int_equal(ok, 3 * RETRY_WINDOW_S);
	assert_false(retry_budget_take(&rb, 20, 3, 14999)); /* the same window */
	assert_true(retry_budget_take(&rb, 20, 3, 15000));  /* second 5 left it */
	retry_budget_destroy(&rb);
}

/* The share: with the floor at 0, retries are at most ratio of the
 * requests of the last RETRY_WINDOW_S seconds. */
static void test_ratio(void **state)
{
	(void)state;
	struct retry_budget rb;
	retry_budget_init(&rb);
	for (int i = 0; i < 1000; i++)
		retry_budget_note(&rb, 1000 + (uint64_t)i); /* 1000 requests in second 1 */
	int ok = 0;
	for (int i = 0; i < 1000; i++)
		ok += retry_budget_take(&rb, 20, 0, 2000);
	assert_int_equal(ok, 200);
	/* more requests make room for more retries */
	for (int i = 0; i < 100; i++)
		retry_budget_note(&rb, 3000);
	ok = 0;
	for (int i = 0; i < 100; i++)
		ok += retry_budget_take(&rb, 20, 0, 3000);
	assert_int_equal(ok, 20);
	/* second 1's requests leave the window at second 11, second 2's
	 * retries at second 12 */
	assert_false(retry_budget_take(&rb, 20, 0, 11999));
	for (int i = 0; i < 10; i++)
		retry_budget_note(&rb, 12000);
	ok = 0;
	for (int i = 0; i < 100; i++)
		ok += retry_budget_take(&rb, 20, 0, 12000);
	/* second 3's 100 requests and 20 retries, second 12's 10 requests:
	 * 0.2 * 110 = 22 allowed, 20 spent */
	assert_int_equal(ok, 2);
	/* 0%: never, whatever the traffic */
	assert_false(retry_budget_take(&rb, 0, 0, 12000));
	retry_budget_destroy(&rb);
}

/* Full jitter: [0, bound), the bound doubling per attempt up to max. */
static void test_backoff(void **state)
{
	(void)state;
	static const struct {
		uint64_t base, max;
		unsigned attempt;
		uint64_t rnd, want;
	} cases[] = {
	    {25, 250, 1, 0, 0},         {25, 250, 1, 24, 24},   {25, 250, 1, 25, 0},  {25, 250, 2, 49, 49},
	    {25, 250, 3, 99, 99},       {25, 250, 4, 199, 199}, {25, 250, 5, 249, 249}, /* 400 capped at 250 */
	    {25, 250, 30, 1000, 1000 % 250}, {100, 50, 1, 70, 20}, /* base above max: max */
	    {0, 10, 1, 12345, 0},       /* a bound of 1 ms: no wait */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t got = retry_backoff_ms(cases[i].base, cases[i].max, cases[i].attempt, cases[i].rnd);
		if (got != cases[i].want)
			fail_msg("case %zu: %llu, want %llu", i, (unsigned long long)got, (unsigned long long)cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_floor),
	    cmocka_unit_test(test_ratio),
	    cmocka_unit_test(test_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
