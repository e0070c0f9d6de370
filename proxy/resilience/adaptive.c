/*
 * adaptive.c - see adaptive.h for the algorithm and its invariant.
 */
#include "resilience/adaptive.h"

#include <math.h>

static double clamp(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static void window_open(struct adaptive *a)
{
	a->win_start_us = 0; /* set by its first sample */
	a->win_n = 0;
	a->win_demand = 0;
	a->win_sum_us = 0;
}

void adaptive_init(struct adaptive *a, const struct adaptive_cfg *cfg, uint64_t start)
{
	a->cfg = *cfg;
	a->limit = clamp((double)start, (double)cfg->min, (double)cfg->max);
	a->long_rtt_us = a->short_rtt_us = 0;
	a->gradient = 1.0;
	a->samples = a->windows = a->probes = a->congested = 0;
	a->probing = false;
	a->saved_limit = a->limit;
	window_open(a);
}

void adaptive_configure(struct adaptive *a, const struct adaptive_cfg *cfg)
{
	a->cfg = *cfg;
	a->limit = clamp(a->limit, (double)cfg->min, (double)cfg->max);
	a->saved_limit = clamp(a->saved_limit, (double)cfg->min, (double)cfg->max);
	if (a->probing)
		a->limit = (double)cfg->min;
}

/* The window is closed: its mean moves the baseline and the limit. */
static void window_close(struct adaptive *a)
{
	double rtt = a->win_sum_us / (double)a->win_n;
	if (rtt < 1)
		rtt = 1; /* a sub-microsecond window: no division by zero below */
	a->short_rtt_us = rtt;
	a->windows++;
	if (a->probing) {
		a->probing = false;
		a->long_rtt_us = rtt;
		a->limit = a->saved_limit;
		a->gradient = 1.0;
		a->congested = 0;
		return;
	}
	if (a->windows == 1)
		a->long_rtt_us = rtt;
	else if (rtt < a->long_rtt_us)
		a->long_rtt_us += (rtt - a->long_rtt_us) * 0.5;

	a->gradient = clamp(ADAPTIVE_TOLERANCE * a->long_rtt_us / rtt, 0.5, 1.0);
	double target = a->limit * a->gradient + sqrt(a->limit);
	if ((double)a->win_demand * 2 < a->limit && target > a->limit)
		target = a->limit; /* used too little to tell whether more would do */
	double next = a->limit + a->cfg.smoothing * (target - a->limit);
	a->limit = clamp(next, (double)a->cfg.min, (double)a->cfg.max);

	a->congested = a->gradient < 1.0 ? a->congested + 1 : 0;
	if (a->congested >= ADAPTIVE_PROBE_AFTER) {
		a->probing = true;
		a->probes++;
		a->saved_limit = a->limit;
		a->limit = (double)a->cfg.min;
	}
}

bool adaptive_sample(struct adaptive *a, uint64_t rtt_us, uint64_t inflight, uint64_t queued, uint64_t now_us)
{
	if (a->probing && inflight > a->cfg.min)
		return false; /* started before the probe, at a higher concurrency */
	uint64_t demand = inflight + queued;
	if (a->win_n == 0)
		a->win_start_us = now_us;
	a->samples++;
	a->win_n++;
	a->win_sum_us += (double)rtt_us;
	if (demand > a->win_demand)
		a->win_demand = demand;
	/* now_us may be behind the window's start (read before the caller's
	 * lock): that is no time elapsed */
	if (a->win_n < ADAPTIVE_MIN_SAMPLES || now_us < a->win_start_us ||
	    now_us - a->win_start_us < a->cfg.window_us)
		return false;
	window_close(a);
	window_open(a);
	return true;
}

uint64_t adaptive_limit(const struct adaptive *a)
{
	uint64_t l = (uint64_t)a->limit;
	return l < a->cfg.min ? a->cfg.min : l;
}
