/*
 * test_tier.c - the tier controller of proxy/resilience/tier.c (one step
 * per tick, hysteresis, hold, forcing, reconfiguring) and the cohort hash
 * (stable, spread evenly), on an injected clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "resilience/tier.h"

/* A load `x` and, per tier k (1-based), enter when x >= enter_at[k-1] and
 * exit when x <= exit_at[k-1]: the usual shape of tier conditions. */
struct load {
	double x;
	double enter_at[TIER_MAX], exit_at[TIER_MAX];
	unsigned asked;
};

static bool cond(void *arg, unsigned which, bool enter)
{
	struct load *l = arg;
	l->asked++;
	return enter ? l->x >= l->enter_at[which - 1] : l->x <= l->exit_at[which - 1];
}

static const struct tier_rule rules[3] = {{1000}, {1000}, {2000}};

static struct load three_tiers(void)
{
	struct load l;
	memset(&l, 0, sizeof(l));
	double en[3] = {50, 70, 90}, ex[3] = {40, 60, 80};
	memcpy(l.enter_at, en, sizeof(en));
	memcpy(l.exit_at, ex, sizeof(ex));
	return l;
}

/* Each row: the load from time `at`, then one tick at `at`: the level
 * expected. */
struct row {
	uint64_t at;
	double x;
	unsigned level;
};

static void run_rows(const struct row *rows, size_t n)
{
	struct tier_ctl c;
	struct load l = three_tiers();
	tier_init(&c, rules, 3, 0);
	for (size_t i = 0; i < n; i++) {
		l.x = rows[i].x;
		unsigned got = tier_tick(&c, cond, &l, rows[i].at);
		if (got != rows[i].level)
			fail_msg("row %zu (t=%llu x=%.0f): level %u, expected %u", i, (unsigned long long)rows[i].at,
			         rows[i].x, got, rows[i].level);
	}
}

/* Up one step per tick however high the load; down only after the hold. */
static void test_steps_and_hold(void **state)
{
	(void)state;
	static const struct row rows[] = {
	    {0, 10, 0},      {100, 95, 1}, {200, 95, 2}, {300, 95, 3}, {400, 95, 3}, /* one step a tick */
	    {500, 10, 3},                                                         /* tier 3 holds 2 s */
	    {2299, 10, 3},   {2300, 10, 2},                                       /* held 2 s: down */
	    {2400, 10, 2},   {3299, 10, 2}, {3300, 10, 1}, {4300, 10, 0},         /* 1 s each */
	    {4400, 55, 1},   {4500, 65, 1},                                       /* between: stays */
	    {4600, 45, 1},                                                        /* above exit 40 */
	    {5399, 39, 1},   {5400, 39, 0},                                       /* hold then exit */
	};
	run_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

/* Going up is never held back by the hold: a tier just entered may be left
 * for the next one on the next tick. */
static void test_up_ignores_hold(void **state)
{
	(void)state;
	static const struct row rows[] = {{0, 55, 1}, {1, 75, 2}, {2, 95, 3}};
	run_rows(rows, sizeof(rows) / sizeof(rows[0]));
}

/* A load oscillating around one threshold every tick: the transitions stay
 * within what hold and hysteresis allow (a round trip takes at least the
 * hold), far below one per tick. */
static void test_oscillation_bounded(void **state)
{
	(void)state;
	struct tier_ctl c;
	struct load l = three_tiers();
	tier_init(&c, rules, 3, 0);
	const uint64_t tick = 100, span = 60000;
	for (uint64_t t = 0; t <= span; t += tick) {
		l.x = (t / tick) % 2 ? 52 : 38; /* across tier 1's enter and exit */
		tier_tick(&c, cond, &l, t);
	}
	uint64_t moves = c.ups + c.downs;
	/* each round trip: up at once, down after >= 1 s: at most 2 moves per
	 * 1.1 s (the hold plus the tick it waits for a low sample) */
	uint64_t bound = 2 * (span / (rules[0].hold_ms + tick) + 1);
	if (moves > bound || moves < 2)
		fail_msg("%llu moves in %llu s, bound %llu", (unsigned long long)moves,
		         (unsigned long long)(span / 1000), (unsigned long long)bound);
	/* without hysteresis (exit = not enter), the same load without a hold
	 * would move on every tick: 600 moves */
	assert_true(moves < span / tick / 4);
}

/* A forced level holds whatever the load, then the conditions resume from
 * it, one step per tick. */
static void test_force(void **state)
{
	(void)state;
	struct tier_ctl c;
	struct load l = three_tiers();
	tier_init(&c, rules, 3, 0);
	l.x = 10;
	tier_force(&c, 3, 5000, 100);
	assert_int_equal(c.level, 3);
	for (uint64_t t = 200; t < 5000; t += 500)
		assert_int_equal(tier_tick(&c, cond, &l, t), 3); /* the load says 0 */
	/* its end: down one step per tick, each after its hold from the last */
	assert_int_equal(tier_tick(&c, cond, &l, 5000), 2); /* held since 100 */
	assert_int_equal(tier_tick(&c, cond, &l, 5100), 2);
	assert_int_equal(tier_tick(&c, cond, &l, 6000), 1);
	assert_int_equal(tier_tick(&c, cond, &l, 7000), 0);
	/* forcing normal under a high load */
	l.x = 95;
	tier_force(&c, 0, 9000, 7000);
	assert_int_equal(tier_tick(&c, cond, &l, 8000), 0);
	assert_int_equal(tier_tick(&c, cond, &l, 9000), 1);
	/* above the tiers there are: the last; an end already past clears it */
	tier_force(&c, 9, 20000, 9100);
	assert_int_equal(c.level, 3);
	tier_force(&c, 1, 9100, 9100);
	assert_int_equal(c.forced_until_ms, 0);
	assert_int_equal(tier_tick(&c, cond, &l, 9200), 3);
}

/* A reload with fewer tiers keeps the level, at most the new count. */
static void test_reconfigure(void **state)
{
	(void)state;
	struct tier_ctl c;
	struct load l = three_tiers();
	tier_init(&c, rules, 3, 0);
	l.x = 95;
	for (uint64_t t = 0; t < 400; t += 100)
		tier_tick(&c, cond, &l, t);
	assert_int_equal(c.level, 3);
	uint64_t since = c.since_ms;
	tier_reconfigure(&c, rules, 2);
	assert_int_equal(c.level, 2);
	assert_int_equal(c.since_ms, since);
	assert_int_equal(tier_tick(&c, cond, &l, 500), 2); /* no tier 3 to enter */
	tier_reconfigure(&c, rules, 0);
	assert_int_equal(tier_tick(&c, cond, &l, 600), 0);
}

/* The cohort: the same key, the same cohort; keys spread evenly over the
 * 10000 cohorts (a chi-square over 20 bins); a share takes about its share. */
static void test_cohort(void **state)
{
	(void)state;
	assert_int_equal(tier_cohort("user-42", 7), tier_cohort("user-42", 7));
	assert_true(tier_cohort("user-42", 7) < 10000);
	enum { N = 200000, BINS = 20 };
	unsigned bins[BINS] = {0}, in10 = 0;
	char key[32];
	for (unsigned i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "10.0.%u.%u", i / 256, i % 256);
		unsigned c = tier_cohort(key, (size_t)n);
		bins[c * BINS / 10000]++;
		in10 += tier_in_share(c, 10.0);
	}
	double expect = (double)N / BINS, chi = 0;
	for (unsigned b = 0; b < BINS; b++)
		chi += ((double)bins[b] - expect) * ((double)bins[b] - expect) / expect;
	/* 19 degrees of freedom: 43.8 is the 0.1% critical value */
	if (chi > 43.8)
		fail_msg("chi-square %.1f over %d bins", chi, BINS);
	assert_true(fabs((double)in10 / N - 0.10) < 0.005);
	assert_false(tier_in_share(0, 0.0));
	assert_true(tier_in_share(9999, 100.0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_steps_and_hold), cmocka_unit_test(test_up_ignores_hold),
	    cmocka_unit_test(test_oscillation_bounded), cmocka_unit_test(test_force),
	    cmocka_unit_test(test_reconfigure), cmocka_unit_test(test_cohort),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
