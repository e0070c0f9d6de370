/*
 * test_adaptive.c - the adaptive concurrency limit of
 * proxy/resilience/adaptive.c, driven by synthetic latency curves on an
 * injected clock: flat latency climbs to max, noise keeps it there, a
 * service that queues settles the limit near its capacity, latency that
 * grows brings it down, recovery brings it back, a lasting slowdown is
 * adopted by the probe, smoothing slows every move, low use does not raise
 * it, and the bounds hold at every sample.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "resilience/adaptive.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define WINDOWS 1200
#define BASE_US 10000.0 /* 10 ms */

enum curve { FLAT, STEP, PULSE, QUEUE };

struct curve_case {
	const char *what;
	uint64_t min, max, start;
	double smoothing;
	enum curve curve;
	double factor;       /* STEP, PULSE: latency x factor from window `from` (to `to`) */
	unsigned from, to;   /* QUEUE: `from` is the service's capacity */
	double noise;        /* each sample x (1 +- noise), uniform */
	bool low_use;        /* one exchange in flight, none queued, whatever the limit */
	unsigned nwindows;
	/* expectations: the limit at window `at` within [lo, hi] */
	struct {
		unsigned at;
		double lo, hi;
	} expect[4];
	/* and over windows [steady_from, nwindows) within [steady_lo, steady_hi] (if set) */
	unsigned steady_from;
	double steady_lo, steady_hi;
};

static uint32_t rng = 1;
static double uniform(void) /* in [-1, 1) */
{
	rng = rng * 1664525u + 1013904223u;
	return (double)(rng >> 8) / (double)(1u << 23) - 1.0;
}

static double latency_of(const struct curve_case *c, unsigned w, double limit)
{
	double f = 1.0;
	switch (c->curve) {
	case FLAT:
		break;
	case STEP:
		f = w >= c->from ? c->factor : 1.0;
		break;
	case PULSE:
		f = w >= c->from && w < c->to ? c->factor : 1.0;
		break;
	case QUEUE: /* Little: past its capacity, exchanges wait their turn */
		f = limit > c->from ? limit / c->from : 1.0;
		break;
	}
	return BASE_US * f * (1.0 + c->noise * uniform());
}

/* Runs c's curve, one window after another (16 samples of 16 ms each over a
 * 250 ms window), into limits[] (NAN for a window that starts a probe);
 * checks the bounds at every sample. */
static void drive(const struct curve_case *c, double *limits, struct adaptive *a)
{
	struct adaptive_cfg cfg = {.min = c->min, .max = c->max, .smoothing = c->smoothing, .window_us = 250000};
	uint64_t now = 1000000;
	adaptive_init(a, &cfg, c->start);
	rng = 1;
	for (unsigned w = 0; w < c->nwindows; w++) {
		bool closed = false;
		for (int i = 0; !closed; i++) {
			if (i > 1000)
				fail_msg("%s: window %u never closed", c->what, w);
			now += 16000;
			uint64_t inflight = c->low_use ? 1 : adaptive_limit(a);
			double rtt = latency_of(c, w, a->limit);
			closed = adaptive_sample(a, (uint64_t)rtt, inflight, c->low_use ? 0 : 1, now);
			if (a->limit < (double)c->min || a->limit > (double)c->max)
				fail_msg("%s: window %u: limit %.2f out of [%llu, %llu]", c->what, w, a->limit,
				         (unsigned long long)c->min, (unsigned long long)c->max);
			assert_true(adaptive_limit(a) >= c->min && adaptive_limit(a) <= c->max);
		}
		limits[w] = a->probing ? NAN : a->limit; /* a probe's window at min is no setting */
	}
}

static const struct curve_case cases[] = {
    {"flat latency climbs to max", 2, 50, 2, 0.2, FLAT, 1, 0, 0, 0, false, 300,
     {{20, 3, 20}, {299, 50, 50}}, 0, 0, 0},
    {"noise keeps it at max", 2, 50, 2, 0.2, FLAT, 1, 0, 0, 0.3, false, 400,
     {{399, 50, 50}}, 200, 45, 50},
    {"a service that queues settles near its capacity", 2, 200, 2, 0.2, QUEUE, 1, 16, 0, 0.1, false, WINDOWS,
     {{60, 16, 40}}, 100, 16, 40},
    {"latency doubling brings it down", 2, 50, 50, 0.2, STEP, 2, 20, 0, 0, false, 80,
     {{19, 50, 50}, {79, 12, 25}}, 0, 0, 0},
    {"latency x10 brings it near min", 2, 50, 50, 0.2, STEP, 10, 20, 0, 0, false, 80,
     {{19, 50, 50}, {79, 2, 6}}, 0, 0, 0},
    {"recovery climbs back", 2, 50, 50, 0.2, PULSE, 10, 20, 70, 0, false, 300,
     {{69, 2, 6}, {80, 6, 30}, {299, 50, 50}}, 0, 0, 0},
    {"a lasting slowdown is adopted after a probe", 2, 50, 50, 0.2, STEP, 10, 20, 0, 0, false, 400,
     {{79, 2, 6}, {399, 50, 50}}, 0, 0, 0},
    {"low use does not raise it", 2, 50, 10, 0.2, FLAT, 1, 0, 0, 0, true, 200,
     {{199, 10, 10}}, 0, 0, 0},
    {"narrow bounds hold", 8, 12, 2, 1.0, PULSE, 10, 50, 100, 0.3, false, 300,
     {{0, 8, 12}, {99, 8, 8}, {299, 12, 12}}, 0, 0, 0},
};

static void test_curves(void **state)
{
	(void)state;
	static double limits[WINDOWS];
	struct adaptive a;
	for (size_t k = 0; k < N(cases); k++) {
		const struct curve_case *c = &cases[k];
		drive(c, limits, &a);
		for (size_t e = 0; e < N(c->expect) && c->expect[e].hi > 0; e++) {
			double v = limits[c->expect[e].at];
			if (isnan(v) || v < c->expect[e].lo || v > c->expect[e].hi)
				fail_msg("%s: window %u: limit %.2f, not in [%.0f, %.0f]", c->what, c->expect[e].at, v,
				         c->expect[e].lo, c->expect[e].hi);
		}
		for (unsigned w = c->steady_from; c->steady_hi > 0 && w < c->nwindows; w++)
			if (!isnan(limits[w]) && (limits[w] < c->steady_lo || limits[w] > c->steady_hi))
				fail_msg("%s: window %u: limit %.2f left [%.0f, %.0f]", c->what, w, limits[w], c->steady_lo,
				         c->steady_hi);
	}
}

/* The same 10x slowdown, with less smoothing: it falls, later. */
static void test_smoothing(void **state)
{
	(void)state;
	static double fast[100], slow[100];
	struct adaptive a;
	struct curve_case c = {"smoothing", 2, 50, 50, 1.0, STEP, 10, 10, 0, 0, false, 100, {{0}}, 0, 0, 0};
	drive(&c, fast, &a);
	c.smoothing = 0.1;
	drive(&c, slow, &a);
	assert_true(fast[12] < 20);
	assert_true(slow[12] > 40);
	for (unsigned w = 10; w < 40; w++)
		assert_true(slow[w] >= fast[w]);
	/* both near the floor of 4 before a probe adopts the slowdown: at once, or
	 * some 40 windows later */
	assert_true(fast[40] < 5 && slow[70] < 10);
}

/* A window closes on time and samples both; the probe ignores samples of
 * exchanges that ended above min; a new configuration keeps the state and
 * clamps the limit. */
static void test_windows_probe_configure(void **state)
{
	(void)state;
	struct adaptive a;
	struct adaptive_cfg cfg = {.min = 2, .max = 100, .smoothing = 1.0, .window_us = 100000};
	adaptive_init(&a, &cfg, 40);
	assert_int_equal(adaptive_limit(&a), 40);
	for (int i = 0; i < 20; i++) /* 20 samples within 50 ms of the first: too soon */
		assert_false(adaptive_sample(&a, 10000, 40, 0, 50000 + (uint64_t)i * 2500));
	assert_true(adaptive_sample(&a, 10000, 40, 0, 150000));
	assert_int_equal(a.windows, 1);
	/* 8 samples over 1.8 s: the 8th closes it, not before */
	assert_false(adaptive_sample(&a, 10000, 40, 0, 200000));
	for (int i = 0; i < 6; i++)
		assert_false(adaptive_sample(&a, 10000, 40, 0, 2000000));
	assert_true(adaptive_sample(&a, 10000, 40, 0, 2000000));
	assert_int_equal(a.windows, 2);
	/* a clock read behind the window's first sample is no time elapsed */
	assert_false(adaptive_sample(&a, 10000, 40, 0, 3000000));
	for (int i = 0; i < 10; i++)
		assert_false(adaptive_sample(&a, 10000, 40, 0, 1000000));
	assert_int_equal(a.windows, 2);

	/* force a probe: congestion for ADAPTIVE_PROBE_AFTER windows */
	adaptive_init(&a, &cfg, 40);
	uint64_t now = 0;
	for (int w = 0; w < 1 + ADAPTIVE_PROBE_AFTER; w++) {
		uint64_t rtt = w == 0 ? 10000 : 100000;
		bool closed = false;
		while (!closed) {
			now += 20000;
			closed = adaptive_sample(&a, rtt, adaptive_limit(&a), 1, now);
		}
	}
	assert_true(a.probing);
	assert_int_equal(a.probes, 1);
	assert_int_equal(adaptive_limit(&a), 2);
	double saved = a.saved_limit;
	uint64_t samples = a.samples;
	for (int i = 0; i < 20; i++) /* ended with more in flight: started before */
		assert_false(adaptive_sample(&a, 100000, 3, 0, now += 20000));
	assert_int_equal(a.samples, samples);
	/* a reload during the probe keeps it at the new min */
	struct adaptive_cfg narrower = {.min = 1, .max = 100, .smoothing = 1.0, .window_us = 100000};
	adaptive_configure(&a, &narrower);
	assert_int_equal(adaptive_limit(&a), 1);
	bool closed = false;
	for (int i = 0; !closed; i++) {
		assert_true(i < 100);
		closed = adaptive_sample(&a, 100000, 1, 0, now += 20000);
	}
	assert_false(a.probing);
	assert_true(fabs(a.long_rtt_us - 100000) < 1); /* the new baseline */
	assert_true(fabs(a.limit - saved) < 1e-9);    /* back where it was */

	/* new bounds clamp the limit, keep the measurements */
	double base = a.long_rtt_us;
	struct adaptive_cfg tight = {.min = 1, .max = 3, .smoothing = 0.5, .window_us = 100000};
	adaptive_configure(&a, &tight);
	assert_int_equal(adaptive_limit(&a), 3);
	assert_true(a.long_rtt_us == base);
	struct adaptive_cfg high = {.min = 30, .max = 50, .smoothing = 0.5, .window_us = 100000};
	adaptive_configure(&a, &high);
	assert_int_equal(adaptive_limit(&a), 30);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_curves),
	    cmocka_unit_test(test_smoothing),
	    cmocka_unit_test(test_windows_probe_configure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
