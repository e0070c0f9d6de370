/*
 * test_reload_status.c - the reload bookkeeping behind /status, /metrics and
 * POST /reload: which attempts clear a failure, and which keep the list of
 * keys waiting for a restart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "reload_status.h"

static void test_start_is_ok(void **state)
{
	(void)state;
	struct reload_status s = {0};
	assert_true(reload_status_ok(&s));
	assert_false(reload_status_restart_pending(&s));
	assert_string_equal(reload_result_name(RELOAD_APPLIED), "applied");
	assert_string_equal(reload_result_name(RELOAD_UNCHANGED), "unchanged");
	assert_string_equal(reload_result_name(RELOAD_REFUSED), "refused");
}

/* A table of attempts, each with what the status must say after it. */
static void test_sequences(void **state)
{
	(void)state;
	struct lv_diag d = {0};
	diag_add(&d, "an earlier caller's line, not this attempt's");
	diag_add(&d, "p.ini:3: [limits] headers: must be between 1 and 1000");
	diag_add(&d, "p.ini:9: [levee] upstream: expected HOST:PORT");
	const struct {
		enum reload_result r;
		const char *keys; /* for RELOAD_APPLIED */
		bool ok, pending;
		const char *error, *restart_keys;
	} steps[] = {
		/* a bad edit, then the last good file put back: the failure clears */
		{RELOAD_REFUSED, NULL, false, false,
		 "p.ini:3: [limits] headers: must be between 1 and 1000\np.ini:9: [levee] upstream: expected HOST:PORT",
		 ""},
		{RELOAD_UNCHANGED, NULL, true, false, "", ""},
		/* a file that changes workers: a restart is pending */
		{RELOAD_APPLIED, "levee.workers", true, true, "", "levee.workers"},
		/* neither an unchanged file nor a refused one changes what runs */
		{RELOAD_UNCHANGED, NULL, true, true, "", "levee.workers"},
		{RELOAD_REFUSED, NULL, false, true, NULL, "levee.workers"},
		{RELOAD_APPLIED, "levee.workers,levee.listen", true, true, "", "levee.workers,levee.listen"},
		/* workers put back to the running value: nothing pending any more */
		{RELOAD_APPLIED, "", true, false, "", ""},
	};
	struct reload_status s = {0};
	uint64_t want[RELOAD__COUNT] = {0};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		reload_status_record(&s, steps[i].r, steps[i].keys, &d, 1, 100.0 + (double)i);
		want[steps[i].r]++;
		if (reload_status_ok(&s) != steps[i].ok || reload_status_restart_pending(&s) != steps[i].pending)
			fail_msg("step %zu: ok %d pending %d", i, reload_status_ok(&s), reload_status_restart_pending(&s));
		if (steps[i].error)
			assert_string_equal(s.error, steps[i].error);
		assert_string_equal(s.restart_keys, steps[i].restart_keys);
		assert_int_equal(s.last, steps[i].r);
		assert_true(s.last_ts == 100.0 + (double)i);
		assert_memory_equal(s.count, want, sizeof(want));
	}
	diag_free(&d);
}

/* Errors longer than the buffer are cut, never overflow it. */
static void test_error_bounded(void **state)
{
	(void)state;
	struct lv_diag d = {0};
	char line[300];
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	for (int i = 0; i < 10; i++)
		diag_add(&d, "%s", line);
	struct reload_status s = {0};
	reload_status_record(&s, RELOAD_REFUSED, NULL, &d, 0, 1.0);
	assert_int_equal(strlen(s.error), sizeof(s.error) - 1);
	assert_false(reload_status_ok(&s));
	diag_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_is_ok),
		cmocka_unit_test(test_sequences),
		cmocka_unit_test(test_error_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
