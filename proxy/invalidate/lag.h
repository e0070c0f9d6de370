/*
 * lag.h - is this replica's consumer caught up with the invalidation topic,
 * and may its L1 be trusted? A pure state machine over what librdkafka's
 * statistics say (struct kafka_lag) and the time, which the caller passes
 * in (the unit tests drive it with a fake clock).
 *
 * "Behind" means some event now in the topic may not be applied here yet:
 * no assignment, no broker up, an unknown position, or positions that have
 * not yet reached the high watermarks seen when the lag was noticed (not
 * "lag is 0": under steady traffic every snapshot shows some lag, what
 * matters is whether the consumer reaches where the topic was).
 *
 * Trusted: never behind, or behind for at most the budget - except from
 * the start until the first catch-up, when the L1 is never trusted (what it
 * filled before the first assignment may have missed events).
 */
#ifndef LEVEE_INVALIDATE_LAG_H
#define LEVEE_INVALIDATE_LAG_H

#include <stdbool.h>
#include <stdint.h>

#include "invalidate/kafka.h"

#define LAG_STATS_STALL_MS 3000 /* no statistics for this long: librdkafka is stuck, count as behind */

struct lag_watch {
	uint64_t budget_ms;
	bool assigned, synced_once, behind;
	uint64_t behind_since_ms, last_stats_ms;
	unsigned ntarget;
	int32_t target_part[KAFKA_MAX_PARTITIONS];
	int64_t target_hi[KAFKA_MAX_PARTITIONS];
};

enum lag_event {
	LAG_NONE,
	LAG_CAUGHT_UP,       /* caught up; the L1 was trusted all along */
	LAG_CAUGHT_UP_RESET, /* caught up after not being trusted (or for the first time): empty the L1 */
};

void lag_init(struct lag_watch *w, uint64_t budget_ms, uint64_t now_ms);
/* Partitions assigned (n > 0) or revoked (0). */
void lag_assigned(struct lag_watch *w, unsigned n, uint64_t now_ms);
/* One statistics report. */
enum lag_event lag_stats(struct lag_watch *w, const struct kafka_lag *l, uint64_t now_ms);
/* The periodic tick: notices statistics that stopped coming. */
void lag_tick(struct lag_watch *w, uint64_t now_ms);

bool lag_trusted(const struct lag_watch *w, uint64_t now_ms);
/* How long it has been behind; 0 when caught up. */
uint64_t lag_behind_ms(const struct lag_watch *w, uint64_t now_ms);

#endif
