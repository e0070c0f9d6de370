/* test_lag.c - whether the consumer is caught up and the L1 trusted
 * (proxy/invalidate/lag.c), driven by statistics reports on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "invalidate/lag.h"

#define BUDGET 5000

static struct lag_watch w;
static uint64_t now;

/* A report: broker up or not, then (partition, position, high watermark)
 * triples; a position or watermark below 0 is unknown. */
static struct kafka_lag report(bool up, unsigned n, const int64_t (*p)[3])
{
	struct kafka_lag l;
	memset(&l, 0, sizeof(l));
	l.broker_up = up;
	for (unsigned i = 0; i < n; i++) {
		l.part[i] = (int32_t)p[i][0];
		l.pos[i] = p[i][1];
		l.hi[i] = p[i][2];
		l.nparts++;
		if (p[i][1] >= 0 && p[i][2] >= 0) {
			l.nknown++;
			l.lag += p[i][2] > p[i][1] ? p[i][2] - p[i][1] : 0;
		}
	}
	return l;
}

static enum lag_event stats(bool up, unsigned n, const int64_t (*p)[3])
{
	struct kafka_lag l = report(up, n, p);
	return lag_stats(&w, &l, now);
}

static void start_synced(void)
{
	now = 1000000;
	lag_init(&w, BUDGET, now);
	lag_assigned(&w, 2, now);
	static const int64_t p[][3] = {{0, 5, 5}, {1, 7, 7}};
	now += 1000;
	assert_int_equal(stats(true, 2, p), LAG_CAUGHT_UP_RESET);
	assert_true(lag_trusted(&w, now));
}

/* From the start until the first catch-up the L1 is never trusted, however
 * short the wait; the first catch-up asks for a reset. */
static void test_start(void **state)
{
	now = 1000000;
	lag_init(&w, BUDGET, now);
	assert_false(lag_trusted(&w, now));
	static const int64_t unknown[][3] = {{0, -1001, -1001}, {1, 3, 3}};
	now += 1000;
	assert_int_equal(stats(true, 2, unknown), LAG_NONE); /* not assigned yet */
	lag_assigned(&w, 2, now);
	assert_int_equal(stats(true, 2, unknown), LAG_NONE); /* a position unknown */
	assert_false(lag_trusted(&w, now));
	static const int64_t known[][3] = {{0, 10, 10}, {1, 3, 3}};
	now += 1000;
	assert_int_equal(stats(true, 2, known), LAG_CAUGHT_UP_RESET);
	assert_true(lag_trusted(&w, now));
	assert_int_equal(lag_behind_ms(&w, now), 0);
}

/* Lag under steady traffic: behind as long as the positions have not reached
 * the watermarks seen when the lag appeared, even if new lag shows up. */
static void test_steady_traffic_is_not_stale(void **state)
{
	start_synced();
	static const int64_t a[][3] = {{0, 5, 9}, {1, 7, 8}}; /* targets: 9, 8 */
	now += 1000;
	assert_int_equal(stats(true, 2, a), LAG_NONE);
	assert_int_equal(lag_behind_ms(&w, now), 0); /* behind since this very report */
	static const int64_t b[][3] = {{0, 9, 12}, {1, 7, 10}}; /* partition 1 not there yet */
	now += 1000;
	assert_int_equal(stats(true, 2, b), LAG_NONE);
	assert_int_equal(lag_behind_ms(&w, now), 1000);
	assert_true(lag_trusted(&w, now));
	static const int64_t c[][3] = {{0, 11, 14}, {1, 8, 11}}; /* both reached: caught up */
	now += 1000;
	assert_int_equal(stats(true, 2, c), LAG_CAUGHT_UP); /* no reset: trusted all along */
	assert_int_equal(lag_behind_ms(&w, now), 0);
}

/* Behind for longer than the budget: not trusted; catching up then asks for
 * a reset. */
static void test_over_budget(void **state)
{
	start_synced();
	static const int64_t stuck[][3] = {{0, 5, 50}, {1, 7, 7}};
	now += 1000;
	assert_int_equal(stats(true, 2, stuck), LAG_NONE);
	now += BUDGET;
	assert_int_equal(stats(true, 2, stuck), LAG_NONE);
	assert_true(lag_trusted(&w, now)); /* exactly at the budget */
	now += 1;
	assert_false(lag_trusted(&w, now));
	static const int64_t done[][3] = {{0, 50, 60}, {1, 7, 7}};
	now += 1000;
	assert_int_equal(stats(true, 2, done), LAG_CAUGHT_UP_RESET);
	assert_true(lag_trusted(&w, now));
}

/* No broker: behind from that report on; after the outage the watermarks
 * are taken afresh and reached at once when nothing was missed. */
static void test_broker_outage(void **state)
{
	start_synced();
	static const int64_t p[][3] = {{0, 5, 5}, {1, 7, 7}};
	now += 1000;
	assert_int_equal(stats(false, 2, p), LAG_NONE);
	uint64_t down_at = now;
	now += BUDGET + 1;
	assert_int_equal(stats(false, 2, p), LAG_NONE);
	assert_false(lag_trusted(&w, now));
	assert_int_equal(lag_behind_ms(&w, now), now - down_at);
	now += 1000;
	assert_int_equal(stats(true, 2, p), LAG_CAUGHT_UP_RESET);
	assert_true(lag_trusted(&w, now));
}

/* A revoke makes it behind at once; statistics that stop coming (librdkafka
 * stuck) count as behind from the last report. */
static void test_revoke_and_stall(void **state)
{
	start_synced();
	now += 10;
	lag_assigned(&w, 0, now);
	assert_int_equal(lag_behind_ms(&w, now + 5), 5);
	now += BUDGET + 1;
	assert_false(lag_trusted(&w, now));

	start_synced();
	uint64_t last = now;
	now += LAG_STATS_STALL_MS;
	lag_tick(&w, now);
	assert_int_equal(lag_behind_ms(&w, now), 0); /* not yet */
	now += 1;
	lag_tick(&w, now);
	assert_int_equal(lag_behind_ms(&w, now), now - last);
	now = last + BUDGET + 1;
	assert_false(lag_trusted(&w, now));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_start),
	    cmocka_unit_test(test_steady_traffic_is_not_stale),
	    cmocka_unit_test(test_over_budget),
	    cmocka_unit_test(test_broker_outage),
	    cmocka_unit_test(test_revoke_and_stall),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
