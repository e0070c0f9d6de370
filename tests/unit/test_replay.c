/* test_replay.c - the outbox replay window (proxy/invalidate/replay.c):
 * which outbox prefix delivery reports acknowledge, whatever their order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "invalidate/replay.h"

static struct replay_window w;

static void fresh(void)
{
	memset(&w, 0, sizeof(w));
}

/* Pushes records ending at 10, 20, ... and returns their slots. */
static void push(unsigned n, unsigned *slots)
{
	for (unsigned i = 0; i < n; i++)
		slots[i] = replay_push(&w, 10u * (i + 1));
}

static void test_in_order(void **state)
{
	unsigned s[4];
	fresh();
	push(4, s);
	assert_int_equal(replay_done(&w, s[0], true), 10);
	assert_int_equal(replay_done(&w, s[1], true), 20);
	assert_int_equal(replay_done(&w, s[2], true), 30);
	assert_int_equal(replay_done(&w, s[3], true), 40);
	assert_int_equal(w.n, 0);
}

/* Reports out of order: the ack waits for the oldest, then jumps. */
static void test_out_of_order(void **state)
{
	static const struct {
		unsigned order[5];
		uint64_t acks[5];
	} rows[] = {
	    {{4, 3, 2, 1, 0}, {0, 0, 0, 0, 50}},
	    {{1, 0, 3, 2, 4}, {0, 20, 0, 40, 50}},
	    {{0, 2, 4, 1, 3}, {10, 0, 0, 30, 50}},
	    {{2, 0, 1, 4, 3}, {0, 10, 30, 0, 50}},
	};
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		unsigned s[5];
		fresh();
		push(5, s);
		for (unsigned i = 0; i < 5; i++)
			assert_int_equal(replay_done(&w, s[rows[r].order[i]], true), rows[r].acks[i]);
		assert_int_equal(w.n, 0);
	}
}

/* A failure: what came before it is acked, nothing after it, even when
 * delivered; the window still empties; a restart acks again. */
static void test_failure_blocks_until_restart(void **state)
{
	unsigned s[5];
	fresh();
	push(5, s);
	assert_int_equal(replay_done(&w, s[0], true), 10);
	assert_int_equal(replay_done(&w, s[3], true), 0);
	assert_int_equal(replay_done(&w, s[1], false), 0); /* fails: 20 is never acked */
	assert_int_equal(replay_done(&w, s[2], true), 0);
	assert_int_equal(replay_done(&w, s[4], true), 0);
	assert_int_equal(w.n, 0);
	assert_true(w.blocked);
	replay_restart(&w);
	push(2, s); /* resent from the cursor (10): they end at 10 and 20 again */
	assert_int_equal(replay_done(&w, s[1], true), 0);
	assert_int_equal(replay_done(&w, s[0], true), 20);
}

/* The failure is the last report: the earlier ones already acked. */
static void test_failure_after_delivered_prefix(void **state)
{
	unsigned s[3];
	fresh();
	push(3, s);
	assert_int_equal(replay_done(&w, s[1], true), 0);
	assert_int_equal(replay_done(&w, s[0], true), 20);
	assert_int_equal(replay_done(&w, s[2], false), 0);
	assert_int_equal(w.n, 0);
}

/* The ring wraps: a full window, drained and refilled many times, against
 * a model of the acknowledged position. */
static void test_wraps_against_model(void **state)
{
	fresh();
	srand(7);
	uint64_t next = 0, acked = 0;
	unsigned slots[REPLAY_WINDOW];
	uint64_t ends[REPLAY_WINDOW];
	for (int round = 0; round < 50; round++) {
		unsigned n = 1 + (unsigned)rand() % REPLAY_WINDOW;
		for (unsigned i = 0; i < n; i++) {
			next += 1 + (uint64_t)(rand() % 100);
			ends[i] = next;
			slots[i] = replay_push(&w, next);
		}
		assert_true(n < REPLAY_WINDOW || replay_full(&w));
		/* report in a random order; the model acks the longest done prefix */
		unsigned order[REPLAY_WINDOW];
		bool done[REPLAY_WINDOW] = {false};
		for (unsigned i = 0; i < n; i++)
			order[i] = i;
		for (unsigned i = n - 1; i > 0; i--) {
			unsigned j = (unsigned)rand() % (i + 1), t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		unsigned prefix = 0;
		for (unsigned i = 0; i < n; i++) {
			done[order[i]] = true;
			uint64_t want = 0;
			while (prefix < n && done[prefix])
				want = ends[prefix++];
			uint64_t got = replay_done(&w, slots[order[i]], true);
			assert_int_equal(got, want);
			if (got)
				acked = got;
		}
		assert_int_equal(w.n, 0);
		assert_int_equal(acked, next);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_in_order),
	    cmocka_unit_test(test_out_of_order),
	    cmocka_unit_test(test_failure_blocks_until_restart),
	    cmocka_unit_test(test_failure_after_delivered_prefix),
	    cmocka_unit_test(test_wraps_against_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
