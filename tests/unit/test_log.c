/*
 * test_log.c - rate-limited log lines: the limit on repeated events, and
 * state changes logged once each, none lost at the end of a gap; the access
 * log file reopened after it was moved, and kept when it cannot be.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static char *slurp(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return buf;
}

static void put_line(struct alog_buf *b, const char *line)
{
	char *p = alog_reserve(b, strlen(line));
	assert_non_null(p);
	memcpy(p, line, strlen(line));
	alog_commit(b, strlen(line));
	alog_flush(b);
}

/* Move, signal, write: the lines after the reopen go to the new file; a
 * path that cannot be opened again keeps the old file. */
static void test_reopen(void **state)
{
	(void)state;
	char dir[] = "/tmp/levee-test-log-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char sub[128], path[160], moved[160], gone[160];
	snprintf(sub, sizeof(sub), "%s/logs", dir);
	snprintf(path, sizeof(path), "%s/access.log", sub);
	snprintf(moved, sizeof(moved), "%s/access.log.1", sub);
	snprintf(gone, sizeof(gone), "%s/logs.gone", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	static struct alog_buf b;
	assert_int_equal(accesslog_open(path), LV_OK);
	assert_true(accesslog_enabled());
	put_line(&b, "one\n");
	assert_int_equal(rename(path, moved), 0);
	put_line(&b, "two\n"); /* still the moved file: nobody said otherwise */
	assert_int_equal(accesslog_reopen(), LV_OK);
	put_line(&b, "three\n");
	assert_string_equal(slurp(moved), "one\ntwo\n");
	assert_string_equal(slurp(path), "three\n");
	/* the directory gone: the reopen fails, the open file goes on */
	assert_int_equal(rename(sub, gone), 0);
	assert_int_equal(accesslog_reopen(), LV_ERR);
	put_line(&b, "four\n");
	char kept[200];
	snprintf(kept, sizeof(kept), "%s/access.log", gone);
	assert_string_equal(slurp(kept), "three\nfour\n");
	/* stdout: nothing to reopen */
	assert_int_equal(accesslog_open("stdout"), LV_OK);
	assert_int_equal(accesslog_reopen(), LV_OK);
	unlink(kept);
	snprintf(kept, sizeof(kept), "%s/access.log.1", gone);
	unlink(kept);
	rmdir(gone);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_state),
		cmocka_unit_test(test_reopen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
