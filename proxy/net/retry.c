/*
 * retry.c - see retry.h.
 */
#include "net/retry.h"

#include <string.h>

void retry_budget_init(struct retry_budget *rb)
{
	memset(rb->b, 0, sizeof(rb->b));
	pthread_mutex_init(&rb->lock, NULL);
}

void retry_budget_destroy(struct retry_budget *rb)
{
	pthread_mutex_destroy(&rb->lock);
}

/* The bucket of second `sec`, emptied when it last counted another. */
static unsigned bucket(struct retry_budget *rb, uint64_t sec)
{
	unsigned i = (unsigned)(sec % RETRY_WINDOW_S);
	if (rb->b[i].sec != sec) {
		rb->b[i].sec = sec;
		rb->b[i].requests = rb->b[i].retries = 0;
	}
	return i;
}

void retry_budget_note(struct retry_budget *rb, uint64_t now_ms)
{
	pthread_mutex_lock(&rb->lock);
	rb->b[bucket(rb, now_ms / 1000)].requests++;
	pthread_mutex_unlock(&rb->lock);
}

bool retry_budget_take(struct retry_budget *rb, double ratio_pct, uint64_t min_per_s, uint64_t now_ms)
{
	uint64_t sec = now_ms / 1000;
	pthread_mutex_lock(&rb->lock);
	unsigned cur = bucket(rb, sec);
	uint64_t requests = 0, retries = 0;
	for (unsigned i = 0; i < RETRY_WINDOW_S; i++) {
		if (rb->b[i].sec + RETRY_WINDOW_S > sec && rb->b[i].sec <= sec) {
			requests += rb->b[i].requests;
			retries += rb->b[i].retries;
		}
	}
	double allowed = ratio_pct / 100.0 * (double)requests + (double)(min_per_s * RETRY_WINDOW_S);
	bool ok = (double)retries + 1.0 <= allowed;
	if (ok)
		rb->b[cur].retries++;
	pthread_mutex_unlock(&rb->lock);
	return ok;
}

uint64_t retry_backoff_ms(uint64_t base_ms, uint64_t max_ms, unsigned attempt, uint64_t rnd)
{
	uint64_t bound = base_ms ? base_ms : 1;
	for (unsigned i = 1; i < attempt && bound < max_ms; i++)
		bound *= 2;
	if (bound > max_ms)
		bound = max_ms;
	return bound ? rnd % bound : 0;
}
