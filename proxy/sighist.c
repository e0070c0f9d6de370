/*
 * sighist.c - percentiles of the tier signals' histograms (sighist.h).
 */
#include "sighist.h"

#include <math.h>

uint64_t sighist_lower(unsigned i)
{
	if (i < SIGHIST_SUB)
		return i;
	unsigned e = (i - SIGHIST_SUB) / SIGHIST_SUB + 3, sub = (i - SIGHIST_SUB) % SIGHIST_SUB;
	return (uint64_t)(SIGHIST_SUB + sub) << (e - 3);
}

double sighist_quantile_ms(const uint64_t *h, uint64_t n, double q)
{
	if (n == 0)
		return NAN;
	/* the rank of the value wanted, 1-based: the smallest value with at
	 * least q of the values at or below it */
	double rank = ceil(q * (double)n);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < SIGHIST_BUCKETS; i++) {
		if (h[i] == 0)
			continue;
		if ((double)(seen + h[i]) >= rank) {
			double lo = (double)sighist_lower(i);
			double hi = i + 1 < SIGHIST_BUCKETS ? (double)sighist_lower(i + 1) : lo * 2;
			if (i < SIGHIST_SUB)
				return lo / 1000.0; /* exact: one microsecond per bucket */
			double frac = (rank - (double)seen) / (double)h[i];
			return (lo + (hi - lo) * frac) / 1000.0;
		}
		seen += h[i];
	}
	return (double)sighist_lower(SIGHIST_BUCKETS - 1) / 1000.0;
}
