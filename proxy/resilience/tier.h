/*
 * tier.h - where a levee stands among its degradation tiers, and which
 * clients a tier sheds: the two pieces of logic tiers need that do not
 * depend on how signals are sampled or requests are refused.
 *
 * Tiers are an ordered list, least severe first: level 0 is normal (no
 * tier), level k means tier k (1-based) is in force, with what the tiers
 * before it do. On each tick the controller moves at most one step:
 *   up    when the next tier's `enter` condition holds: at once, whatever
 *         the hold (overload grows fast; one step per tick bounds it);
 *   down  when the current tier's `exit` condition holds and the tier has
 *         been in force for at least its `hold`.
 * `enter` and `exit` are separate conditions (hysteresis: exit is usually
 * stricter than "not enter"), so a signal wandering around one threshold
 * cannot flap: each round trip up and down takes at least `hold`.
 * A forced level (an operator's, or a command of the control topic) holds
 * until its end, whatever the conditions say; then the controller resumes
 * from the forced level, one step per tick.
 *
 * Cohorts: a tier may shed a share of a priority; which clients are in the
 * share is decided by a stable hash of a client key (a header, the client
 * address, a cookie), so the same users are shed tick after tick rather
 * than every user failing at random (DAGOR's cohorts).
 *
 * Pure: conditions are given as callbacks, times as milliseconds, so the
 * unit tests drive everything on an injected clock.
 */
#ifndef LEVEE_TIER_H
#define LEVEE_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIER_MAX 16

struct tier_rule {
	uint64_t hold_ms; /* the least time in force before stepping down */
};

struct tier_ctl {
	const struct tier_rule *rules; /* rules[0] is tier 1 */
	unsigned n;                    /* tiers */
	unsigned level;                /* 0: normal; k: tier k in force */
	uint64_t since_ms;             /* when the current level began */
	unsigned forced;               /* the forced level, while forced_until_ms is ahead */
	uint64_t forced_until_ms;      /* 0: not forced */
	uint64_t ups, downs;           /* transitions so far */
};

/* A tier's condition, evaluated on the tick's signals: `which` is the tier
 * (1-based), `enter` true for its enter condition, false for its exit. */
typedef bool (*tier_cond_fn)(void *arg, unsigned which, bool enter);

void tier_init(struct tier_ctl *c, const struct tier_rule *rules, unsigned n, uint64_t now_ms);
/* One tick: moves at most one step; returns the level now. */
unsigned tier_tick(struct tier_ctl *c, tier_cond_fn cond, void *arg, uint64_t now_ms);
/* Holds `level` (0..n) until `until_ms`; a level above n is taken as n. An
 * `until_ms` not after now clears the forcing. */
void tier_force(struct tier_ctl *c, unsigned level, uint64_t until_ms, uint64_t now_ms);
/* A reload with `n` tiers and their rules: the level is kept (at most the
 * new n), and so is its start. */
void tier_reconfigure(struct tier_ctl *c, const struct tier_rule *rules, unsigned n);

/* The client's cohort, 0..9999, from its key: stable for a key, spread
 * evenly over keys. */
unsigned tier_cohort(const char *key, size_t len);
/* Whether a client of `cohort` is in a share of `share_pct` percent. */
static inline bool tier_in_share(unsigned cohort, double share_pct)
{
	return (double)cohort < share_pct * 100.0;
}
/* Whether a tier that sheds `pct` percent of a priority sheds a client of
 * `cohort`: all of it at 100%, none at 0 (the cohort is not read then). */
static inline bool tier_sheds(double pct, unsigned cohort)
{
	return pct >= 100.0 || (pct > 0 && tier_in_share(cohort, pct));
}

#endif
