/* test_redis_watch.c - the process-wide view of Redis connections
 * (proxy/cache/redis_watch.c): one line per change of the process's state
 * however many members report it, the counters, the rate limit and its
 * summary, driven on a fake clock with the lines captured. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cache/redis_watch.h"

#define WINDOW 10000
#define REMIND 60000
#define MAXLINES 64
#define NMEMBERS 4

static char lines[MAXLINES][1024];
static enum lv_log_level levels[MAXLINES];
static unsigned nlines;
static uint64_t now;
static struct redis_watch *w;
static struct redis_watch_member m[NMEMBERS];

static void capture(void *arg, enum lv_log_level level, const char *line)
{
	assert_true(nlines < MAXLINES);
	levels[nlines] = level;
	snprintf(lines[nlines++], sizeof(lines[0]), "%s", line);
}

static int setup(void **state)
{
	nlines = 0;
	now = 5000000;
	memset(m, 0, sizeof(m));
	w = redis_watch_new(WINDOW, REMIND, capture, NULL);
	assert_non_null(w);
	for (int i = 0; i < NMEMBERS; i++)
		redis_watch_join(w, &m[i]);
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < NMEMBERS; i++)
		redis_watch_leave(w, &m[i]);
	redis_watch_free(w);
	return 0;
}

static uint64_t ev(int i, enum redis_watch_what what, enum redis_watch_fail fail, const char *why)
{
	struct redis_watch_event e = {what, fail, "10.0.0.5:6379", why, now};
	return redis_watch_report(w, &m[i], &e);
}

static uint64_t all(enum redis_watch_what what, enum redis_watch_fail fail, const char *why)
{
	uint64_t due = 0;
	for (int i = 0; i < NMEMBERS; i++) {
		uint64_t d = ev(i, what, fail, why);
		if (d)
			due = d;
	}
	return due;
}

static void assert_line(unsigned i, const char *needle)
{
	if (i >= nlines)
		fail_msg("line %u missing (%u lines), wanted '%s'", i, nlines, needle);
	if (!strstr(lines[i], needle))
		fail_msg("line %u is '%s', wanted '%s'", i, lines[i], needle);
}

static struct redis_watch_stats stats(void)
{
	struct redis_watch_stats s;
	redis_watch_stats(w, &s);
	return s;
}

/* Every member connects: one "connected" line, once all are ready. */
static void up(void)
{
	all(RW_ATTEMPT, RW_FAIL_CONNECT, NULL);
	for (int i = 0; i < NMEMBERS - 1; i++)
		assert_int_equal(ev(i, RW_READY, RW_FAIL_CONNECT, NULL), 0);
	assert_int_equal(nlines, 0);
	assert_int_equal(ev(NMEMBERS - 1, RW_READY, RW_FAIL_CONNECT, NULL), 0);
}

static void test_start_kill_restart(void **state)
{
	up();
	assert_int_equal(nlines, 1);
	assert_line(0, "redis: connected to 10.0.0.5:6379 (4 connections)");
	assert_int_equal(levels[0], LV_LOG_INFO);
	assert_int_equal(stats().state, RW_UP);

	/* Redis killed: every member loses its connection, one line says so. */
	now += WINDOW;
	assert_int_equal(all(RW_LOST, RW_FAIL_CONNECT, "Server closed the connection"), 0);
	assert_int_equal(nlines, 2);
	assert_line(1, "lost the connection to 10.0.0.5:6379 (Server closed the connection)");
	assert_int_equal(levels[1], LV_LOG_WARN);
	/* Retries failing while it is down: counted, not logged... */
	for (int round = 0; round < 5; round++) {
		now += 500;
		all(RW_ATTEMPT, RW_FAIL_CONNECT, NULL);
		assert_int_equal(all(RW_FAILED, RW_FAIL_CONNECT, "Connection refused"), 0);
	}
	/* ...the first breaker to open is, the others are not. */
	assert_int_equal(all(RW_BREAKER_OPEN, RW_FAIL_CONNECT, "5 failures in a row"), 0);
	assert_int_equal(nlines, 3);
	assert_line(2, "breaker open (5 failures in a row)");

	/* Back: the last member to reconnect completes the recovery. */
	now += 1500;
	all(RW_ATTEMPT, RW_FAIL_CONNECT, NULL);
	for (int i = 0; i < NMEMBERS; i++)
		ev(i, RW_READY, RW_FAIL_CONNECT, NULL);
	assert_int_equal(nlines, 4);
	assert_line(3, "redis: reconnected to 10.0.0.5:6379 after 24 attempts, 4.0 s after the first failure");
	all(RW_BREAKER_CLOSED, RW_FAIL_CONNECT, NULL);
	assert_int_equal(nlines, 5);
	assert_line(4, "breaker closed");

	struct redis_watch_stats s = stats();
	assert_int_equal(s.state, RW_UP);
	assert_int_equal(s.losses, 4);
	assert_int_equal(s.connect_errors, 20);
	assert_int_equal(s.connect_timeouts, 0);
	assert_int_equal(s.reconnect_attempts, 24);
	assert_int_equal(s.reconnects, 4);
	assert_int_equal(s.breaker_opens, 4);
	assert_int_equal(s.failovers, 0);
	assert_int_equal(s.lines_held, 0);
}

/* Down from the start (a name that does not resolve, a Redis not there
 * yet): one line, reminders a minute apart, then "connected after". */
static void test_down_from_the_start(void **state)
{
	all(RW_ATTEMPT, RW_FAIL_CONNECT, NULL);
	all(RW_FAILED, RW_FAIL_RESOLVE, "cannot resolve redis.nope.svc: Name or service not known");
	assert_int_equal(nlines, 1);
	assert_line(0, "cannot connect to 10.0.0.5:6379 (cannot resolve redis.nope.svc");
	assert_line(0, "serving without Redis (requests pass through) and retrying");
	for (int s = 0; s < 130; s++) {
		now += 1000;
		all(RW_ATTEMPT, RW_FAIL_CONNECT, NULL);
		all(RW_FAILED, s < 65 ? RW_FAIL_RESOLVE : RW_FAIL_TIMEOUT, s < 65 ? "no name" : "no answer");
	}
	/* two reminders in 130 s, with the latest reason */
	assert_int_equal(nlines, 3);
	assert_line(1, "still not connected to 10.0.0.5:6379 (no name): 240 attempts in 60 s, 0 of 4");
	assert_line(2, "still not connected to 10.0.0.5:6379 (no answer): 480 attempts in 120 s");
	for (int i = 0; i < NMEMBERS; i++)
		ev(i, RW_READY, RW_FAIL_CONNECT, NULL);
	assert_int_equal(nlines, 4);
	assert_line(3, "redis: connected to 10.0.0.5:6379 after 520 attempts, 130.0 s after the first failure");
	struct redis_watch_stats s = stats();
	assert_int_equal(s.resolve_errors, 66 * 4);
	assert_int_equal(s.connect_errors, 65 * 4);
	assert_int_equal(s.connect_timeouts, 65 * 4);
	assert_int_equal(s.reconnect_attempts, 520);
	assert_int_equal(s.reconnects, 4);
}

/* Flapping: each kind of line once per window, the rest summed up when the
 * window ends, with the state then. */
static void test_flapping_is_rate_limited(void **state)
{
	up();
	assert_int_equal(nlines, 1);
	uint64_t due = 0;
	for (int flap = 0; flap < 20; flap++) {
		now += 200;
		uint64_t d = all(RW_LOST, RW_FAIL_CONNECT, "Connection reset by peer");
		due = d ? d : due;
		now += 200;
		all(RW_ATTEMPT, RW_FAIL_CONNECT, NULL);
		for (int i = 0; i < NMEMBERS; i++) {
			d = ev(i, RW_READY, RW_FAIL_CONNECT, NULL);
			due = d ? d : due;
		}
	}
	/* 8 s of flapping: the first loss and the first recovery, then
	 * nothing */
	assert_int_equal(nlines, 3);
	assert_line(1, "lost the connection");
	assert_line(2, "reconnected to 10.0.0.5:6379 after 4 attempts, 0.2 s after the first failure");
	assert_true(due > 0);
	assert_int_equal(stats().lines_held, 38);
	/* Not due yet: nothing. */
	assert_int_equal(redis_watch_flush(w, now), due);
	assert_int_equal(nlines, 3);
	/* Due: one summary, the truth as of now. */
	now = due;
	assert_int_equal(redis_watch_flush(w, now), 0);
	assert_int_equal(nlines, 4);
	assert_line(3, "redis: 38 changes not logged (one line of a kind per 10 s at most); now connected to "
	               "10.0.0.5:6379, 4 of 4 connections ready");
	assert_int_equal(levels[3], LV_LOG_INFO);
	assert_int_equal(redis_watch_flush(w, now + 1), 0);
	assert_int_equal(nlines, 4);

	/* A later outage that lasts is logged in full again. */
	now += WINDOW;
	assert_int_equal(all(RW_LOST, RW_FAIL_CONNECT, "EOF"), 0);
	assert_int_equal(nlines, 5);
	assert_line(4, "lost the connection to 10.0.0.5:6379 (EOF)");
	now += 1000;
	for (int i = 0; i < NMEMBERS; i++)
		ev(i, RW_READY, RW_FAIL_CONNECT, NULL);
	assert_int_equal(nlines, 6);
	/* held lines ending in the down state: the summary says so */
	now += 1000;
	due = all(RW_LOST, RW_FAIL_CONNECT, "EOF again");
	assert_int_equal(nlines, 6);
	assert_true(due > 0);
	now = due;
	all(RW_FAILED, RW_FAIL_CONNECT, "Connection refused");
	assert_int_equal(redis_watch_flush(w, now), 0);
	assert_int_equal(nlines, 7);
	assert_line(6, "1 change not logged");
	assert_line(6, "now not connected to 10.0.0.5:6379 (Connection refused) for 8.0 s, 0 of 4");
	assert_int_equal(levels[6], LV_LOG_WARN);
}

/* A Sentinel failover seen by every member is one line and one count. */
static void test_failover_once_per_process(void **state)
{
	struct redis_watch_event e = {RW_MASTER, RW_FAIL_CONNECT, "10.0.0.5:6379", NULL, now};
	for (int i = 0; i < NMEMBERS; i++)
		assert_int_equal(redis_watch_report(w, &m[i], &e), 0);
	up();
	assert_int_equal(nlines, 1);
	now += 30000;
	e.addr = "10.0.0.6:6379";
	e.now_ms = now;
	for (int i = 0; i < NMEMBERS; i++)
		assert_int_equal(redis_watch_report(w, &m[i], &e), 0);
	assert_int_equal(nlines, 2);
	assert_line(1, "redis: the master moved from 10.0.0.5:6379 to 10.0.0.6:6379 (Sentinel failover)");
	assert_int_equal(stats().failovers, 1);
}

/* A member that leaves (shutdown) stops counting and logs nothing. */
static void test_leave(void **state)
{
	up();
	ev(0, RW_BREAKER_OPEN, RW_FAIL_CONNECT, "x");
	assert_int_equal(nlines, 2);
	redis_watch_leave(w, &m[0]);
	redis_watch_leave(w, &m[1]);
	assert_int_equal(nlines, 2);
	/* the breaker count left with member 0: a new opening is a new line */
	now += WINDOW;
	ev(2, RW_BREAKER_OPEN, RW_FAIL_CONNECT, "y");
	assert_int_equal(nlines, 3);
	assert_line(2, "breaker open (y)");
	assert_int_equal(stats().state, RW_UP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_start_kill_restart, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_down_from_the_start, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_flapping_is_rate_limited, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_failover_once_per_process, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_leave, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
