/*
 * test_log.c - rate-limited log lines: the limit on repeated events, and
 * state changes logged once each, none lost at the end of a gap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"

#define GAP 1000

static void test_limit(void **state)
{
	(void)state;
	struct log_limit l = {0};
	uint64_t skipped = 99;
	assert_true(log_limit_allow(&l, 0, GAP, &skipped)); /* the first, even at time 0 */
	assert_int_equal(skipped, 0);
	assert_false(log_limit_allow(&l, 1, GAP, &skipped));
	assert_false(log_limit_allow(&l, GAP - 1, GAP, &skipped));
	assert_true(log_limit_allow(&l, GAP, GAP, &skipped));
	assert_int_equal(skipped, 2);
	assert_true(log_limit_allow(&l, 5 * GAP, GAP, &skipped));
	assert_int_equal(skipped, 0);
}

/* Each step: the state seen at a time, whether it is logged, and with how
 * many changes. */
static void test_state(void **state)
{
	(void)state;
	const struct {
		int state;
		uint64_t at;
		bool log;
		unsigned changes;
	} steps[] = {
		{0, 10, true, 0},          /* the first value: at once */
		{0, 20, false, 0},         /* no change */
		{1, 30, true, 1},          /* the first change: at once */
		{0, 40, false, 0},         /* within the gap: held back */
		{1, 50, false, 0},         /* back to what the log says: nothing to tell */
		{0, 60, false, 0},         /* held back */
		{0, GAP + 29, false, 0},   /* still within the gap of the line at 30 */
		{0, GAP + 30, true, 3},    /* the gap is over: the state now, with the changes */
		{0, 3 * GAP, false, 0},    /* no change */
		{1, 3 * GAP + 1, true, 1}, /* a change long after: at once */
	};
	struct log_state s = LOG_STATE_INIT;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		unsigned changes = 77;
		bool log = log_state_set(&s, steps[i].state, steps[i].at, GAP, &changes);
		if (log != steps[i].log || (log && changes != steps[i].changes))
			fail_msg("step %zu: log %d changes %u, want %d %u", i, log, changes, steps[i].log,
			         steps[i].changes);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
