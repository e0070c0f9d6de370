/*
 * protect_cost.c - what a closed breaker and a semaphore bulkhead cost per
 * request, without the network's noise: the calls a request on such a route
 * makes (breaker_admit, bulkhead_acquire, bulkhead_release, breaker_record,
 * and the clock reads around them), in a loop on one thread.
 *
 *   cmake --build build-release --target protect_cost && build-release/protect_cost [N]
 *
 * Prints nanoseconds per request; bench/breaker.sh measures the same
 * through the whole proxy, where wrk's run-to-run noise is a few percent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "resilience/breaker.h"
#include "resilience/bulkhead.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 5000000;
	log_set_level(LV_LOG_ERROR);
	struct lv_breaker bc;
	memset(&bc, 0, sizeof(bc));
	snprintf(bc.name, sizeof(bc.name), "bench");
	bc.window.ms = 10000;
	bc.min_requests = 20;
	bc.failure_rate = 50;
	bc.open_for_ms = 5000;
	bc.half_open_probes = 3;
	struct lv_bulkhead hc;
	memset(&hc, 0, sizeof(hc));
	snprintf(hc.name, sizeof(hc.name), "bench");
	hc.max_concurrent = 100000;
	struct breaker *b = breaker_get(&bc);
	struct bulkhead *h = bulkhead_get(&hc);
	if (!b || !h)
		return 1;
	struct bh_waiter wt;
	memset(&wt, 0, sizeof(wt));
	uint64_t t0 = mono_ns();
	for (long i = 0; i < n; i++) {
		struct brk_ticket t;
		uint64_t now = mono_ns();
		if (breaker_admit(b, now / 1000000, &t) == BRK_REJECT)
			return 2;
		if (bulkhead_acquire(h, &wt, now / 1000) != BH_ACQUIRED)
			return 3;
		uint64_t end = mono_ns();
		bulkhead_release(h, end / 1000);
		breaker_record(b, &t, BRK_OK, (end - now) / 1000000, end / 1000000);
	}
	uint64_t t1 = mono_ns();
	printf("closed breaker + semaphore bulkhead: %.1f ns per request (%ld requests, one thread)\n",
	       (double)(t1 - t0) / (double)n, n);
	bulkhead_put(h);
	breaker_put(b);
	return 0;
}
