/*
 * test_breaker.c - the circuit breaker of proxy/resilience/breaker.c: both
 * window kinds, the thresholds (failure rate, slow calls, min_requests),
 * open_for and its doubling, half-open probes and their bound, the ramp,
 * stale outcomes, ignored outcomes, forcing by hand, reload (thresholds and
 * window shapes) and what /metrics and /status show.
 *
 * Most cases are scripts: a table of steps (advance the clock, admit, record
 * an outcome, expect a state) run by one driver. Time is what the steps
 * pass as now_ms; nothing sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invalidate/json.h"
#include "log.h"
#include "resilience/breaker.h"

/* ---- helpers ------------------------------------------------------------- */

static struct lv_breaker cfg_of(const char *name)
{
	struct lv_breaker c;
	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "%s", name);
	c.window.ms = 10000;
	c.min_requests = 4;
	c.failure_rate = 50;
	c.slow_call_rate = 50;
	c.failure_on = LV_BF_TIMEOUT | LV_BF_CONNECT | LV_BF_RESET | LV_BF_TRUNCATED | LV_BF_BAD;
	c.failure_statuses.bits[500 / 64] |= (uint64_t)1 << (500 % 64);
	for (unsigned s = 502; s <= 599; s++)
		c.failure_statuses.bits[s / 64] |= (uint64_t)1 << (s % 64);
	c.open_for_ms = 1000;
	c.half_open_probes = 2;
	c.ramp_ms = 0;
	return c;
}

static struct breaker_stats stats_at(struct breaker *b, uint64_t now)
{
	struct breaker_stats s;
	breaker_stats(b, now, &s);
	return s;
}

/* One call: admitted at `now`, its outcome recorded at once (latency 0
 * unless given). Returns the admission. */
static enum brk_admit call(struct breaker *b, uint64_t now, enum brk_result res, uint64_t latency)
{
	struct brk_ticket t;
	enum brk_admit a = breaker_admit(b, now, &t);
	if (a != BRK_REJECT)
		breaker_record(b, &t, res, latency, now + latency);
	return a;
}

/* ---- scripts ------------------------------------------------------------- */

enum op {
	OK,      /* a call that succeeds: expect it admitted as `a` */
	FAIL,    /* a call that fails */
	SLOW,    /* a call that succeeds in `arg` ms */
	IGNORE,  /* a call whose outcome counts neither way */
	REJECTED,/* a call expected to be rejected */
	AT,      /* the clock moves to `arg` ms */
	STATE,   /* the breaker is in state `arg` */
	CALLS,   /* the window holds `arg` calls */
	END,
};

struct step {
	enum op op;
	uint64_t arg;
	int a; /* the admission expected for OK/FAIL/SLOW/IGNORE */
	int times;
};

#define S_OK(n) {OK, 0, BRK_PASS, n}
#define S_FAIL(n) {FAIL, 0, BRK_PASS, n}
#define S_PROBE_OK {OK, 0, BRK_PROBE, 1}
#define S_PROBE_FAIL {FAIL, 0, BRK_PROBE, 1}
#define S_REJECT(n) {REJECTED, 0, 0, n}
#define S_AT(ms) {AT, ms, 0, 1}
#define S_STATE(s) {STATE, s, 0, 1}
#define S_CALLS(n) {CALLS, n, 0, 1}
#define S_END {END, 0, 0, 0}

static void run_script(struct breaker *b, const struct step *steps)
{
	uint64_t now = 1000000; /* not 0: a bucket epoch of 0 must not look current */
	for (const struct step *s = steps; s->op != END; s++) {
		int times = s->times ? s->times : 1;
		for (int i = 0; i < times; i++) {
			switch (s->op) {
			case OK:
				assert_int_equal(call(b, now, BRK_OK, 0), s->a);
				break;
			case FAIL:
				assert_int_equal(call(b, now, BRK_FAIL, 0), s->a);
				break;
			case SLOW:
				assert_int_equal(call(b, now, BRK_OK, s->arg), s->a);
				break;
			case IGNORE:
				assert_int_equal(call(b, now, BRK_IGNORE, 0), s->a);
				break;
			case REJECTED:
				assert_int_equal(call(b, now, BRK_OK, 0), BRK_REJECT);
				break;
			case AT:
				now = 1000000 + s->arg;
				break;
			case STATE:
				if (stats_at(b, now).state != (int)s->arg)
					fail_msg("step %td: state %s, expected %s (%s)", s - steps,
					         breaker_state_names[stats_at(b, now).state], breaker_state_names[s->arg],
					         stats_at(b, now).reason);
				break;
			case CALLS:
				assert_int_equal(stats_at(b, now).calls, s->arg);
				break;
			case END:
				break;
			}
		}
	}
}

struct script_case {
	const char *name;
	void (*tune)(struct lv_breaker *c);
	struct step steps[32];
};

static void tune_none(struct lv_breaker *c)
{
	(void)c;
}
static void tune_slow(struct lv_breaker *c)
{
	c->slow_call_ms = 100;
}
static void tune_calls(struct lv_breaker *c)
{
	c->window.ms = 0;
	c->window.calls = 4;
}
static void tune_ramp(struct lv_breaker *c)
{
	c->ramp_ms = 1000;
	c->half_open_probes = 1;
}
static void tune_backoff(struct lv_breaker *c)
{
	c->open_for_max_ms = 3000;
	c->half_open_probes = 1;
}

static const struct script_case scripts[] = {
    {"below min_requests never trips", tune_none,
     {S_FAIL(3), S_STATE(BRK_CLOSED), S_CALLS(3), S_END}},
    {"the failure rate at the threshold trips", tune_none,
     {S_OK(2), S_FAIL(1), S_STATE(BRK_CLOSED), S_FAIL(1), S_STATE(BRK_OPEN), S_REJECT(5), S_END}},
    {"just below the threshold does not", tune_none,
     {S_OK(3), S_FAIL(2), S_STATE(BRK_CLOSED), S_END}},
    {"ignored outcomes count neither way", tune_none,
     {S_FAIL(2), {IGNORE, 0, BRK_PASS, 10}, S_STATE(BRK_CLOSED), S_CALLS(2), S_OK(2), S_STATE(BRK_OPEN), S_END}},
    {"the time window forgets old calls", tune_none,
     {S_FAIL(3), S_AT(10500), S_CALLS(0), S_OK(1), S_FAIL(1), S_STATE(BRK_CLOSED), S_CALLS(2), S_END}},
    {"buckets age out one tenth at a time", tune_none,
     {S_FAIL(1), S_OK(1), S_AT(5000), S_OK(2), S_AT(10999), S_CALLS(2), S_AT(9999), S_CALLS(4), S_END}},
    {"the count window keeps the last calls", tune_calls,
     {S_FAIL(1), S_OK(3), S_CALLS(4), S_OK(1), S_CALLS(4), S_FAIL(1), S_STATE(BRK_CLOSED), S_FAIL(1),
      S_STATE(BRK_OPEN), S_END}},
    {"slow calls alone trip it", tune_slow,
     {{SLOW, 150, BRK_PASS, 2}, S_OK(1), S_STATE(BRK_CLOSED), {SLOW, 100, BRK_PASS, 1}, S_STATE(BRK_OPEN), S_END}},
    {"calls under slow_call are not slow", tune_slow,
     {{SLOW, 99, BRK_PASS, 10}, S_STATE(BRK_CLOSED), S_END}},
    {"open_for then half-open probes, bounded", tune_none,
     {S_FAIL(4), S_STATE(BRK_OPEN), S_AT(999), S_REJECT(1), S_AT(1000), S_STATE(BRK_HALF_OPEN), S_PROBE_OK,
      S_PROBE_OK, S_STATE(BRK_CLOSED), S_OK(3), S_END}},
    {"a failed probe opens it again", tune_none,
     {S_FAIL(4), S_AT(1000), S_PROBE_OK, S_PROBE_FAIL, S_STATE(BRK_OPEN), S_REJECT(2), S_AT(1999),
      S_STATE(BRK_OPEN), S_AT(2000), S_STATE(BRK_HALF_OPEN), S_END}},
    {"a slow probe opens it again", tune_slow,
     {S_FAIL(4), S_AT(1000), {SLOW, 200, BRK_PROBE, 1}, S_STATE(BRK_OPEN), S_END}},
    {"the probes passing start the ramp; a failure in it reopens", tune_ramp,
     {S_FAIL(4), S_AT(1000), S_PROBE_OK, S_STATE(BRK_RAMP), S_AT(1500), /* 55% pass */
      S_REJECT(1), S_FAIL(1), S_STATE(BRK_OPEN), S_END}},
    {"the ramp ends closed", tune_ramp,
     {S_FAIL(4), S_AT(1000), S_PROBE_OK, S_STATE(BRK_RAMP), S_AT(1999), S_STATE(BRK_RAMP), S_AT(2000),
      S_STATE(BRK_CLOSED), S_OK(5), S_END}},
    {"repeated trips double open_for up to open_for_max", tune_backoff,
     {S_FAIL(4), S_AT(1000), S_PROBE_FAIL,           /* trip 2: open 2 s */
      S_AT(2999), S_STATE(BRK_OPEN), S_AT(3000), S_PROBE_FAIL, /* trip 3: 4 s, capped at 3 */
      S_AT(5999), S_STATE(BRK_OPEN), S_AT(6000), S_STATE(BRK_HALF_OPEN), S_PROBE_OK, S_STATE(BRK_CLOSED),
      S_FAIL(3), S_STATE(BRK_OPEN), S_AT(6999), S_STATE(BRK_OPEN), S_AT(7000), /* back to 1 s */
      S_STATE(BRK_HALF_OPEN), S_END}},
};

static void test_scripts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++) {
		char name[LV_NAME_MAX];
		snprintf(name, sizeof(name), "script-%zu", i);
		struct lv_breaker c = cfg_of(name);
		scripts[i].tune(&c);
		struct breaker *b = breaker_get(&c);
		assert_non_null(b);
		print_message("script: %s\n", scripts[i].name);
		run_script(b, scripts[i].steps);
		breaker_put(b);
	}
}

/* ---- what a script cannot say -------------------------------------------- */

/* At most half_open_probes probes are out at once; one that ends ignored
 * (its client left) gives its place to another. */
static void test_probes_in_flight(void **state)
{
	(void)state;
	struct lv_breaker c = cfg_of("probes");
	c.half_open_probes = 2;
	struct breaker *b = breaker_get(&c);
	for (int i = 0; i < 4; i++)
		call(b, 0, BRK_FAIL, 0);
	struct brk_ticket p1, p2, p3, p4;
	assert_int_equal(breaker_admit(b, 1000, &p1), BRK_PROBE);
	assert_int_equal(breaker_admit(b, 1000, &p2), BRK_PROBE);
	assert_int_equal(breaker_admit(b, 1000, &p3), BRK_REJECT); /* the herd stays out */
	breaker_record(b, &p1, BRK_IGNORE, 0, 1001);
	assert_int_equal(breaker_admit(b, 1001, &p3), BRK_PROBE); /* p1's place */
	assert_int_equal(breaker_admit(b, 1001, &p4), BRK_REJECT);
	breaker_record(b, &p2, BRK_OK, 0, 1002);
	assert_int_equal(stats_at(b, 1002).state, BRK_HALF_OPEN);
	assert_int_equal(breaker_admit(b, 1002, &p4), BRK_REJECT); /* one passed, one out: full */
	breaker_record(b, &p3, BRK_OK, 0, 1003);
	assert_int_equal(stats_at(b, 1003).state, BRK_CLOSED);
	struct breaker_stats s = stats_at(b, 1003);
	assert_int_equal(s.probes, 3);
	assert_int_equal(s.transitions[BRK_OPEN], 1);
	assert_int_equal(s.transitions[BRK_HALF_OPEN], 1);
	assert_int_equal(s.transitions[BRK_CLOSED], 1);
	breaker_put(b);
}

/* Outcomes of calls admitted before a transition do not drive the new
 * state: stragglers of the closed state cannot trip it twice, nor close a
 * half-open one. */
static void test_stale_tickets(void **state)
{
	(void)state;
	struct lv_breaker c = cfg_of("stale");
	c.half_open_probes = 1;
	struct breaker *b = breaker_get(&c);
	struct brk_ticket late[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(breaker_admit(b, 0, &late[i]), BRK_PASS);
	for (int i = 0; i < 4; i++)
		call(b, 0, BRK_FAIL, 0);
	assert_int_equal(stats_at(b, 0).state, BRK_OPEN);
	breaker_record(b, &late[0], BRK_FAIL, 0, 10); /* open: a straggler */
	assert_int_equal(stats_at(b, 10).trips, 1);
	assert_int_equal(stats_at(b, 1000).state, BRK_HALF_OPEN);
	breaker_record(b, &late[1], BRK_OK, 0, 1000); /* not a probe */
	assert_int_equal(stats_at(b, 1000).state, BRK_HALF_OPEN);
	breaker_record(b, &late[2], BRK_FAIL, 0, 1000); /* nor a failed one */
	assert_int_equal(stats_at(b, 1000).state, BRK_HALF_OPEN);
	assert_int_equal(call(b, 1000, BRK_OK, 0), BRK_PROBE);
	assert_int_equal(stats_at(b, 1000).state, BRK_CLOSED);
	breaker_put(b);
}

/* The ramp lets a growing share through: about a tenth at its start, about
 * half in its middle, everything at its end. */
static void test_ramp_share(void **state)
{
	(void)state;
	struct lv_breaker c = cfg_of("ramp");
	c.ramp_ms = 10000;
	c.half_open_probes = 1;
	struct breaker *b = breaker_get(&c);
	for (int i = 0; i < 4; i++)
		call(b, 0, BRK_FAIL, 0);
	assert_int_equal(call(b, 1000, BRK_OK, 0), BRK_PROBE);
	assert_int_equal(stats_at(b, 1000).state, BRK_RAMP);
	static const struct {
		uint64_t at;
		int lo, hi; /* passes of 100 calls */
	} points[] = {{1000, 9, 11}, {6000, 54, 56}, {10900, 98, 100}};
	for (size_t k = 0; k < sizeof(points) / sizeof(points[0]); k++) {
		int passed = 0;
		for (int i = 0; i < 100; i++)
			passed += call(b, points[k].at, BRK_OK, 0) == BRK_PASS;
		if (passed < points[k].lo || passed > points[k].hi)
			fail_msg("at %llu ms: %d of 100 passed, expected %d-%d", (unsigned long long)points[k].at, passed,
			         points[k].lo, points[k].hi);
	}
	assert_int_equal(stats_at(b, 11000).state, BRK_CLOSED);
	assert_int_equal(stats_at(b, 11000).trips, 0);
	breaker_put(b);
}

/* Forcing: open rejects everything and ends in half-open; closed passes
 * everything and trips nothing; clearing ends either at once. */
static void test_force(void **state)
{
	(void)state;
	struct lv_breaker c = cfg_of("force");
	c.half_open_probes = 1;
	struct breaker *b = breaker_get(&c);
	breaker_force(b, BRK_FORCE_OPEN, 5000, 0);
	assert_int_equal(call(b, 100, BRK_OK, 0), BRK_REJECT);
	struct breaker_stats s = stats_at(b, 100);
	assert_int_equal(s.state, BRK_OPEN);
	assert_int_equal(s.forced, BRK_FORCE_OPEN);
	assert_int_equal(s.forced_left_ms, 4900);
	assert_int_equal(call(b, 4999, BRK_OK, 0), BRK_REJECT); /* open_for (1 s) does not end it */
	assert_int_equal(stats_at(b, 5000).state, BRK_HALF_OPEN);
	assert_int_equal(call(b, 5000, BRK_OK, 0), BRK_PROBE);
	assert_int_equal(stats_at(b, 5000).state, BRK_CLOSED);

	breaker_force(b, BRK_FORCE_CLOSED, 5000, 6000);
	for (int i = 0; i < 10; i++)
		assert_int_equal(call(b, 6000, BRK_FAIL, 0), BRK_PASS);
	s = stats_at(b, 6000);
	assert_int_equal(s.state, BRK_CLOSED);
	assert_int_equal(s.calls, 11); /* recorded (with the probe's), not evaluated */
	breaker_force(b, BRK_FORCE_NONE, 0, 7000);
	assert_int_equal(stats_at(b, 7000).forced, BRK_FORCE_NONE);
	call(b, 7000, BRK_FAIL, 0); /* evaluated again: the window trips it */
	assert_int_equal(stats_at(b, 7000).state, BRK_OPEN);

	breaker_force(b, BRK_FORCE_OPEN, 60000, 8000);
	breaker_force(b, BRK_FORCE_NONE, 0, 8001); /* cleared early: probe first */
	assert_int_equal(stats_at(b, 8001).state, BRK_HALF_OPEN);
	breaker_put(b);
}

/* A reload keeps the state and the window; new thresholds apply at the
 * next evaluation; a new window shape keeps the figures. */
static void test_reload(void **state)
{
	(void)state;
	struct lv_breaker c = cfg_of("reload");
	struct breaker *b = breaker_get(&c);
	for (int i = 0; i < 4; i++)
		call(b, 0, BRK_FAIL, 0);
	assert_int_equal(stats_at(b, 0).state, BRK_OPEN);

	/* a refused reload's get changes nothing; an applied one keeps it open */
	struct lv_breaker c2 = c;
	c2.failure_rate = 90;
	c2.open_for_ms = 60000;
	struct breaker *again = breaker_get(&c2);
	assert_ptr_equal(again, b);
	breaker_apply(b, &c2, 10);
	assert_int_equal(stats_at(b, 10).state, BRK_OPEN);
	assert_int_equal(stats_at(b, 10).open_left_ms, 990); /* the trip's own open_for */
	breaker_put(again);

	/* closed again, then a threshold changed under a window of figures */
	assert_int_equal(call(b, 1000, BRK_OK, 0), BRK_PROBE);
	assert_int_equal(call(b, 1000, BRK_OK, 0), BRK_PROBE);
	assert_int_equal(stats_at(b, 1000).state, BRK_CLOSED);
	for (int i = 0; i < 3; i++)
		call(b, 1000, BRK_OK, 0);
	for (int i = 0; i < 2; i++)
		call(b, 1000, BRK_FAIL, 0); /* 2 of 7: 28% */
	assert_int_equal(stats_at(b, 1000).calls, 7);
	struct lv_breaker c3 = c;
	c3.failure_rate = 30;
	breaker_apply(b, &c3, 1000);
	assert_int_equal(stats_at(b, 1000).state, BRK_CLOSED); /* applies at the next evaluation */
	call(b, 1000, BRK_FAIL, 0);                             /* 3 of 8: 37.5% */
	assert_int_equal(stats_at(b, 1000).state, BRK_OPEN);

	/* window shapes: duration -> duration carries the totals */
	assert_int_equal(call(b, 2000, BRK_OK, 0), BRK_PROBE);
	assert_int_equal(call(b, 2000, BRK_OK, 0), BRK_PROBE);
	call(b, 2000, BRK_FAIL, 0);
	assert_int_equal(stats_at(b, 2000).calls, 3);
	struct lv_breaker c4 = c3;
	c4.window.ms = 60000;
	breaker_apply(b, &c4, 2000);
	assert_int_equal(stats_at(b, 2000).calls, 3);
	assert_int_equal(stats_at(b, 2000).failures, 1);
	/* duration -> count: the ring starts empty; count -> count keeps the newest */
	struct lv_breaker c5 = c3;
	c5.failure_rate = 90;
	c5.window.ms = 0;
	c5.window.calls = 10;
	breaker_apply(b, &c5, 2000);
	assert_int_equal(stats_at(b, 2000).calls, 0);
	for (int i = 0; i < 6; i++)
		call(b, 2000, i < 2 ? BRK_FAIL : BRK_OK, 0); /* F F O O O O */
	c5.window.calls = 4;
	breaker_apply(b, &c5, 2000);
	struct breaker_stats s = stats_at(b, 2000);
	assert_int_equal(s.calls, 4);
	assert_int_equal(s.failures, 0); /* the newest four */
	c5.window.calls = 8;
	breaker_apply(b, &c5, 2000);
	call(b, 2000, BRK_FAIL, 0);
	s = stats_at(b, 2000);
	assert_int_equal(s.calls, 5);
	assert_int_equal(s.failures, 1);
	/* count -> duration carries the totals */
	struct lv_breaker c6 = c3;
	breaker_apply(b, &c6, 2000);
	assert_int_equal(stats_at(b, 2000).calls, 5);
	assert_int_equal(stats_at(b, 2100).failures, 1);
	breaker_put(b);
}

/* What counts as a failure. */
static void test_judge(void **state)
{
	(void)state;
	struct lv_breaker c = cfg_of("judge");
	static const struct {
		unsigned kind, status;
		enum brk_result want;
	} cases[] = {
	    {0, 200, BRK_OK},          {0, 404, BRK_OK},          {0, 499, BRK_OK},
	    {0, 500, BRK_FAIL},        {0, 501, BRK_OK},          {0, 502, BRK_FAIL},
	    {0, 599, BRK_FAIL},        {LV_BF_TIMEOUT, 0, BRK_FAIL}, {LV_BF_CONNECT, 0, BRK_FAIL},
	    {LV_BF_RESET, 0, BRK_FAIL}, {LV_BF_TRUNCATED, 200, BRK_FAIL}, {LV_BF_BAD, 0, BRK_FAIL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (breaker_judge(&c, cases[i].kind, cases[i].status) != cases[i].want)
			fail_msg("case %zu: kind %u status %u", i, cases[i].kind, cases[i].status);
	c.failure_on = LV_BF_CONNECT;
	assert_int_equal(breaker_judge(&c, LV_BF_TIMEOUT, 0), BRK_OK);
	assert_int_equal(breaker_judge(&c, LV_BF_CONNECT, 0), BRK_FAIL);
	memset(&c.failure_statuses, 0, sizeof(c.failure_statuses));
	assert_int_equal(breaker_judge(&c, 0, 503), BRK_OK);
}

/* What the render functions write, NUL-terminated; the caller frees it. */
static char *capture(void (*render)(FILE *f, uint64_t now), uint64_t now)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	assert_non_null(f);
	render(f, now);
	fclose(f);
	return buf;
}

static void test_rendering(void **state)
{
	(void)state;
	struct lv_breaker c = cfg_of("shown");
	struct breaker *b = breaker_get(&c);
	call(b, 0, BRK_OK, 0);
	for (int i = 0; i < 3; i++)
		call(b, 0, BRK_FAIL, 0); /* 3 of 4: it trips */
	assert_int_equal(call(b, 0, BRK_OK, 0), BRK_REJECT);
	char *prom = capture(breaker_render_prometheus, 100);
	static const char *const want[] = {
	    "levee_breaker_state{breaker=\"shown\",state=\"open\"} 1\n",
	    "levee_breaker_state{breaker=\"shown\",state=\"closed\"} 0\n",
	    "levee_breaker_transitions_total{breaker=\"shown\",state=\"open\"} 1\n",
	    "levee_breaker_admissions_total{breaker=\"shown\",answer=\"reject\"} 1\n",
	    "levee_breaker_outcomes_total{breaker=\"shown\",result=\"failure\"} 3\n",
	    "levee_breaker_outcomes_total{breaker=\"shown\",result=\"success\"} 1\n",
	    "levee_breaker_window_calls{breaker=\"shown\"} 4\n",
	    "levee_breaker_window_failure_ratio{breaker=\"shown\"} 0.7500\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(prom, want[i]))
			fail_msg("missing %s in:\n%s", want[i], prom);
	free(prom);
	char *js = capture(breaker_status_json, 100);
	struct json_reader r;
	json_init(&r, js, strlen(js), 0);
	assert_int_equal(json_skip(&r), LV_OK); /* one whole, well-formed value */
	assert_int_equal(json_finish(&r), LV_OK);
	assert_non_null(strstr(js, "\"name\":\"shown\",\"state\":\"open\""));
	assert_non_null(strstr(js, "\"open_left_ms\":900"));
	assert_non_null(strstr(js, "failure rate 75.0% of 4 calls"));
	free(js);
	breaker_put(b);
	prom = capture(breaker_render_prometheus, 100);
	assert_null(strstr(prom, "breaker=\"shown\""));
	free(prom);
}

int main(void)
{
	log_set_level(LV_LOG_ERROR); /* the transitions' lines: the stats say the same */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scripts),    cmocka_unit_test(test_probes_in_flight),
	    cmocka_unit_test(test_stale_tickets), cmocka_unit_test(test_ramp_share),
	    cmocka_unit_test(test_force),      cmocka_unit_test(test_reload),
	    cmocka_unit_test(test_judge),      cmocka_unit_test(test_rendering),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
