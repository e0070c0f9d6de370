/*
 * tiers.h - the process's degradation tiers at run time: the signals tick
 * that samples the load and moves the level (tier.h's controller), the
 * forcings that override it (an operator's, through admin; a command of the
 * control topic, proxy/control/), and the level the tier stage reads on
 * every request.
 *
 * One per process. The tick runs on the main thread's loop; the level is
 * published with one atomic store, read with one relaxed load per request.
 * tiers_force(), tiers_clear() and tiers_forced() may be called from any
 * thread.
 */
#ifndef LEVEE_RESILIENCE_TIERS_H
#define LEVEE_RESILIENCE_TIERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

struct event_base;
struct runtime;
struct lv_stats;

/* What the tick needs from layers it does not name: health of the shared
 * dependencies, filled in by the top (main.c). Each may be NULL. */
struct tiers_sources {
	/* Redis: true when up; false when down; *known false when Redis is off */
	bool (*redis_up)(void *ctx, bool *known);
	/* Kafka: broker reachable, consumer lag (messages, -1 unknown) and
	 * invalidations spooled on disk; *known false when Kafka is off */
	bool (*kafka_up)(void *ctx, bool *known, int64_t *lag, int64_t *spooled);
	void *ctx;
	/* the current runtime, with a reference the caller drops */
	struct runtime *(*runtime)(void *ctx);
	/* every loop's counters (stats.h), read with relaxed loads */
	struct lv_stats *const *(*stats)(void *ctx, unsigned *n);
};

/* Starts the tick on `base` (the main loop). LV_ERR when out of memory. */
int tiers_start(struct event_base *base, const struct tiers_sources *src, char *err, size_t errlen) LV_WARN_UNUSED;
/* A reload was accepted: the tiers of `p` take over (the level is kept, at
 * most the new number of tiers; tick and window follow). Main thread. */
void tiers_apply(const struct lv_policy *p);
void tiers_stop(void);

/* The level in force (0: normal), for the tier stage; any thread. */
unsigned tiers_level(void);

/* A forced level: `tier` is a tier's name or "normal" (level 0); it holds
 * until `until_unix_ms` (wall clock), whatever the signals say. */
#define TIER_SOURCE_MAX 16
#define TIER_ID_MAX 64
#define TIER_REASON_MAX 256
struct tier_force {
	char tier[LV_NAME_MAX];
	uint64_t until_unix_ms;
	char source[TIER_SOURCE_MAX]; /* "admin", "control" */
	char id[TIER_ID_MAX];         /* the command's id; "" for none */
	char reason[TIER_REASON_MAX];
};
/* Applies `f` at once (the level moves straight to the forced one, then
 * holds). LV_ERR with `err` set for an unknown tier or an until already
 * past. A later forcing replaces an earlier one. Any thread. */
int tiers_force(const struct tier_force *f, char *err, size_t errlen) LV_WARN_UNUSED;
/* Ends the forcing in force, if `id` is NULL or names it; true if one
 * ended. Then the level follows the signals again, one step per tick. */
bool tiers_clear(const char *id);
/* Whether `tier` names a tier of the running policy, or is "normal". */
bool tiers_known(const char *tier);
/* The forcing in force, copied into *out; false when none is. */
bool tiers_forced(struct tier_force *out);

/* A change of level, as control/ publishes it; pointers valid during the
 * call. Runs on the main thread after each change. */
struct tier_change {
	unsigned from, to;            /* levels */
	const char *from_name, *to_name; /* "normal" for level 0 */
	const struct tier_force *force; /* the forcing that moved it, or NULL */
	uint64_t unix_ms;
	const char *signals_json;     /* {"inflight":230,"upstream_p99":312.5}: the values of the
	                               * signals the moved tier's conditions read */
};
void tiers_on_change(void (*fn)(void *ctx, const struct tier_change *c), void *ctx);

/* The policy the tiers follow now, whose signals table tier_signals_values()
 * is laid out for (a reload reaches it at the next tick); NULL before the
 * first tick. Main thread: valid until the next tick. */
const struct lv_policy *tiers_policy(void);

/* /status ("tiers" object) and /metrics. Main thread. */
void tiers_status_json(void *file);
void tiers_render_prometheus(void *file);

#endif
