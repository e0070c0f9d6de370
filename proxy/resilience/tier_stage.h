/*
 * tier_stage.h - the request path's tier check (pipeline.c): right after
 * the route, before any cache or upstream work.
 */
#ifndef LEVEE_RESILIENCE_TIER_STAGE_H
#define LEVEE_RESILIENCE_TIER_STAGE_H

#include "net/request.h"

extern const struct stage tier_stage_def;

/* The cohort (0..9999) of the client of `r` under `key` (tier.h): the
 * header's or cookie's value, or the client's address when the request
 * has none. Exposed for the tests. */
unsigned tier_stage_cohort(const struct request *r, const struct lv_cohort_key *key);
/* The same for a head and the client's address `peer` (`levee explain`). */
unsigned tier_cohort_of(const struct lv_head *hd, const char *peer, const struct lv_cohort_key *key);

#endif
