/*
 * sighist.h - the latency histograms behind the tier signals: log-linear
 * buckets of microseconds (8 per power of two, so a value is known within
 * an eighth of its power of two: at most 12.5% off, less after
 * interpolation), cheap to count into and to subtract, so that a
 * window's figures are the difference of two cumulative snapshots.
 *
 * Pure; counting is the caller's business (a single writer's plain add, or
 * an atomic one).
 */
#ifndef LEVEE_SIGHIST_H
#define LEVEE_SIGHIST_H

#include <stdint.h>

#define SIGHIST_SUB 8                          /* buckets per power of two */
#define SIGHIST_BUCKETS (SIGHIST_SUB * 32)      /* the last starts at 15 * 2^30 us (about 4.5 h) and takes all beyond */

/* The bucket of `us` microseconds. */
static inline unsigned sighist_index(uint64_t us)
{
	if (us < SIGHIST_SUB)
		return (unsigned)us;
	unsigned e = 63u - (unsigned)__builtin_clzll(us); /* >= 3 */
	unsigned i = SIGHIST_SUB + (e - 3) * SIGHIST_SUB + (unsigned)((us >> (e - 3)) & (SIGHIST_SUB - 1));
	return i < SIGHIST_BUCKETS ? i : SIGHIST_BUCKETS - 1;
}

/* The least value of bucket i, in microseconds. */
uint64_t sighist_lower(unsigned i);

/* The q-quantile (0 < q <= 1) of the `n` values counted in h, in
 * milliseconds, interpolated within its bucket; NaN when n is 0. */
double sighist_quantile_ms(const uint64_t *h, uint64_t n, double q);

#endif
