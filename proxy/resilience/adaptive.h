/*
 * adaptive.h - a concurrency limit that follows the service's latency
 * (`max_concurrent = auto` on a [bulkhead]), in the family of Netflix's
 * Gradient2 and Envoy's adaptive concurrency filter.
 *
 * Pure: no clock, no lock, no event loop. The caller (bulkhead.c, under the
 * bulkhead's mutex) passes each sample's latency and the time it ended, in
 * microseconds, so the unit tests drive it with synthetic latency curves.
 *
 * Samples are gathered in windows of time: a window opens with a sample and
 * closes with the first that ends `window_us` or more after that one, once
 * it holds at least ADAPTIVE_MIN_SAMPLES; the limit changes only then. No samples, no
 * change: an idle or fully stuck bulkhead keeps its limit.
 *
 * At each window's close:
 *   short_rtt  the mean latency of the window's samples;
 *   long_rtt   the baseline, the latency without queueing: the first
 *              window's short_rtt, then following short_rtt down quickly
 *              (half the gap per window), never up but by a probe;
 *   gradient   ADAPTIVE_TOLERANCE * long_rtt / short_rtt, within 0.5..1:
 *              1 while latency stays within 1.5x its baseline;
 *   target     limit * gradient + sqrt(limit) (the sqrt is the headroom
 *              that lets it probe upwards); not above the limit when the
 *              window's demand (the most slots in use plus queued at any
 *              sample) stayed under half the limit, since latency measured
 *              at low use says nothing about a higher limit;
 *   limit      limit + smoothing * (target - limit), within min..max.
 *
 * Probe: latency that grew can be congestion the limit itself causes (it
 * falls when the limit does) or a service that got slower (it does not).
 * Only a measurement at low concurrency tells them apart, so after
 * ADAPTIVE_PROBE_AFTER windows in a row with a gradient below 1, one window
 * runs at the `min` limit (samples of exchanges that ended with more than
 * min in use do not count in it), its mean becomes the baseline, and the
 * limit goes back to where it was (Envoy's periodic min RTT measurement,
 * made only when latency has stayed high). A lasting slowdown is thus
 * adopted as the new normal after a while, and self-inflicted queueing
 * cannot ratchet the baseline up.
 *
 * Invariant: cfg.min <= limit <= cfg.max, after every call.
 */
#ifndef LEVEE_ADAPTIVE_H
#define LEVEE_ADAPTIVE_H

#include <stdbool.h>
#include <stdint.h>

#define ADAPTIVE_MIN_SAMPLES 8
#define ADAPTIVE_TOLERANCE 1.5
#define ADAPTIVE_PROBE_AFTER 64

struct adaptive_cfg {
	uint64_t min, max;  /* bounds of the limit, 1 <= min <= max */
	double smoothing;   /* 0 < smoothing <= 1: the share of a window's target taken */
	uint64_t window_us; /* the shortest window */
};

struct adaptive {
	struct adaptive_cfg cfg;
	double limit;
	double long_rtt_us, short_rtt_us; /* 0 until the first window closed */
	double gradient;                   /* the last window's, 1 before */
	uint64_t samples, windows, probes; /* counted since adaptive_init() */
	uint64_t congested;                /* windows in a row with a gradient below 1 */
	bool probing;                      /* this window runs at min */
	double saved_limit;                /* the limit to go back to after the probe */
	/* the open window */
	uint64_t win_start_us, win_n, win_demand;
	double win_sum_us;
};

/* Starts over at `start` (clamped to cfg's bounds), no window open. */
void adaptive_init(struct adaptive *a, const struct adaptive_cfg *cfg, uint64_t start);
/* New bounds, smoothing and window, keeping the measurements; the limit is
 * clamped to the new bounds. */
void adaptive_configure(struct adaptive *a, const struct adaptive_cfg *cfg);
/* One exchange took rtt_us and ended at now_us, with `inflight` slots in
 * use (its own included) and `queued` more wanted as it ended. True when it
 * closed a window (the limit may have changed). */
bool adaptive_sample(struct adaptive *a, uint64_t rtt_us, uint64_t inflight, uint64_t queued, uint64_t now_us);
/* The limit as a whole number of slots (rounded down, never below min). */
uint64_t adaptive_limit(const struct adaptive *a);

#endif
