/*
 * tier_signals.h - the values of the tier signals (policy/signals.h),
 * sampled once a tick by the tiers' tick (tiers.c): what the loops counted,
 * what the bulkheads and breakers say, the container's files, and the
 * shared dependencies' health.
 *
 * A window's figures are the current cumulative vector minus a snapshot of
 * about a window ago: five snapshots a fifth of a window apart, so a figure
 * covers between four fifths and all of `[tiers] window`. A new policy (a
 * reload) lays the vector out again for its routes, bulkheads and breakers
 * and carries the snapshots over, so a reload keeps the window.
 *
 * Main thread, but tier_signals_route_hist(), which the tier stage calls on
 * any loop.
 */
#ifndef LEVEE_RESILIENCE_TIER_SIGNALS_H
#define LEVEE_RESILIENCE_TIER_SIGNALS_H

#include <stdbool.h>
#include <stdint.h>

#include "resilience/tiers.h"

void tier_signals_init(const struct tiers_sources *src);
/* Lays the window out for `rt`'s policy (taking a reference of its own),
 * carrying over what the old layout measured; false when out of memory
 * (the old layout stays). */
bool tier_signals_follow(struct runtime *rt);
/* Samples every signal; now_ms on the monotonic clock. */
void tier_signals_sample(uint64_t now_ms);
/* The values, one per signal of the policy followed (its signals table;
 * the process-wide ones only without tiers), in their kinds' units; NaN
 * for a signal without a value. NULL before the first follow. */
const double *tier_signals_values(void);
/* Where pressure signal i (0 cpu, 1 memory, 2 io) came from. */
const char *tier_signals_psi_source(unsigned i);
/* The name of process-wide signal i (enum lv_signal). */
const char *tier_signals_fixed_name(unsigned i);
void tier_signals_stop(void);

/* The upstream time histogram (SIGHIST_BUCKETS counters, added to with
 * relaxed atomics) of the route with stats index `idx`, when some tier
 * condition reads that route's percentiles; else NULL. Any thread. */
uint64_t *tier_signals_route_hist(unsigned idx);

#endif
