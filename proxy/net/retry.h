/*
 * retry.h - what a route's retries may spend: the retry budget, and the
 * backoff between attempts.
 *
 * The budget is one per levee (the server's), shared by every loop: over
 * the last RETRY_WINDOW_S seconds, retries may be at most `ratio` percent
 * of the requests that could retry (those on routes with `retries`), plus
 * `min_per_s` per second whatever the share, so that retries cannot
 * multiply a failure (Envoy's and Linkerd's retry budgets work the same
 * way). Only routes that retry pay for it: one uncontended mutex per
 * request on such a route. Times are passed in (milliseconds), so the unit
 * tests drive the clock.
 */
#ifndef LEVEE_RETRY_H
#define LEVEE_RETRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define RETRY_WINDOW_S 10

struct retry_budget {
	pthread_mutex_t lock;
	struct {
		uint64_t sec; /* the second it counts (now_ms / 1000) */
		uint32_t requests, retries;
	} b[RETRY_WINDOW_S];
};

void retry_budget_init(struct retry_budget *rb);
void retry_budget_destroy(struct retry_budget *rb);
/* A request that may retry began. */
void retry_budget_note(struct retry_budget *rb, uint64_t now_ms);
/* One retry, if the budget allows it (then it is counted). */
bool retry_budget_take(struct retry_budget *rb, double ratio_pct, uint64_t min_per_s, uint64_t now_ms);

/* The wait before retry number `attempt` (1 for the first): a random time
 * in [0, bound) with bound = base doubled per attempt, at most max (full
 * jitter). `rnd` is a uniform random 64-bit value. */
uint64_t retry_backoff_ms(uint64_t base_ms, uint64_t max_ms, unsigned attempt, uint64_t rnd);

#endif
