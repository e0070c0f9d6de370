/*
 * breaker.h - a circuit breaker over a group of routes' upstream exchanges.
 *
 * One `struct breaker` per [breaker "NAME"] for the whole process, shared by
 * every worker and kept by name across reloads (resilience/registry.h): a
 * reload that keeps the name keeps the state and the window, and changed
 * thresholds apply at the next evaluation.
 *
 * States:
 *   closed     every call passes; each outcome goes into the window, and
 *              once it holds min_requests calls, a failure_rate (or, with
 *              slow_call, a slow_call_rate) at or above the threshold trips
 *              the breaker;
 *   open       nothing passes, until open_for has gone by. A trip that
 *              follows another without a full recovery in between doubles
 *              open_for, up to open_for_max;
 *   half_open  up to half_open_probes calls pass, as probes; one failed or
 *              slow probe trips it again, all of them passing starts the
 *              ramp (the window starts empty here);
 *   ramp       a growing share of calls passes: a tenth at first, all at
 *              the end of `ramp` (then closed, the trip count cleared); a
 *              failed or slow call trips it again.
 * Forcing by hand (breaker_force) holds it open or closed for a time: the
 * window still records, but nothing trips; a forced open ends in half_open,
 * so the service is probed before it gets traffic again.
 *
 * Counting: the caller says what an outcome was (breaker_record). Levee's
 * own refusals, cache answers and clients that left are BRK_IGNORE: they
 * count neither way, and a probe that ends so gives its place back.
 * An outcome carries the ticket its admission gave; an outcome of a call
 * admitted before the last transition does not drive the state.
 *
 * Threads: every call takes the breaker's mutex, briefly. Times are
 * monotonic milliseconds passed in by the caller, so the unit tests drive
 * the clock.
 */
#ifndef LEVEE_BREAKER_H
#define LEVEE_BREAKER_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "policy.h"
#include "resilience/registry.h"

#define BREAKER_STATES(X)                                                                          \
	X(BRK_CLOSED, "closed")                                                                    \
	X(BRK_OPEN, "open")                                                                        \
	X(BRK_HALF_OPEN, "half_open")                                                              \
	X(BRK_RAMP, "ramp")

enum brk_state {
#define BRK_ENUM(e, tok) e,
	BREAKER_STATES(BRK_ENUM)
#undef BRK_ENUM
	BRK__STATES
};
extern const char *const breaker_state_names[BRK__STATES];

enum brk_force { BRK_FORCE_NONE, BRK_FORCE_OPEN, BRK_FORCE_CLOSED };

/* What an admission answers. */
enum brk_admit {
	BRK_PASS,   /* go on to the upstream */
	BRK_PROBE,  /* go on, as a half-open probe */
	BRK_REJECT, /* answer without the upstream: the breaker is open */
};

/* What an admitted call's outcome was, as the caller judged it against
 * cfg.failure_statuses and cfg.failure_on (breaker_judge). */
enum brk_result { BRK_OK, BRK_FAIL, BRK_IGNORE };

struct brk_ticket {
	uint32_t gen; /* the breaker's transitions when it was admitted */
	uint8_t kind; /* enum brk_admit */
	uint8_t state; /* enum brk_state it was admitted (or refused) in */
};

#define BRK_BUCKETS 10 /* a time window is 10 buckets of a tenth */

struct brk_bucket {
	uint64_t epoch; /* now / bucket length when it was last reset */
	uint32_t calls, failures, slow;
};

struct breaker_stats {
	int state;  /* enum brk_state */
	int forced; /* enum brk_force */
	uint64_t forced_left_ms;
	uint64_t calls, failures, slow; /* in the window now */
	double failure_rate, slow_rate; /* percent of calls; 0 with no call */
	uint64_t open_left_ms;          /* open: until half_open */
	unsigned trips;                 /* since the last full recovery */
	uint32_t probes_out, probes_ok; /* half_open */
	double ramp_share;              /* ramp: the share passing now, 0-1 */
	uint64_t transitions[BRK__STATES]; /* into each state */
	uint64_t passed, probes, rejected; /* admissions */
	uint64_t ok, failed, slowed, ignored; /* outcomes recorded */
	char reason[160];                     /* why the last transition happened */
};

struct breaker {
	struct named named; /* its name, in the breakers' registry */
	pthread_mutex_t lock;
	struct lv_breaker cfg; /* the newest applied policy's */
	int state;             /* enum brk_state */
	uint32_t gen;          /* bumped at each transition */
	/* the window: buckets (window.ms) or a ring of calls (window.calls) */
	struct brk_bucket bucket[BRK_BUCKETS];
	uint8_t *ring; /* bit 0: failed, bit 1: slow */
	uint32_t ring_cap, ring_len, ring_pos;
	uint64_t ring_failures, ring_slow;
	uint64_t open_until_ms;
	unsigned trips;
	uint32_t probes_out, probes_ok;
	uint64_t ramp_start_ms;
	double ramp_acc;
	int forced; /* enum brk_force */
	uint64_t forced_until_ms;
	struct breaker_stats st; /* counters and the last reason */
};

/* ---- the state machine (any thread) -------------------------------------- */

enum brk_admit breaker_admit(struct breaker *b, uint64_t now_ms, struct brk_ticket *t);
/* `latency_ms`: from the request's start to the end of its response. */
void breaker_record(struct breaker *b, const struct brk_ticket *t, enum brk_result res, uint64_t latency_ms,
                    uint64_t now_ms);
/* Holds the breaker open or closed for `for_ms`, or (BRK_FORCE_NONE) lets
 * it go at once: a forced open goes to half_open, a forced closed stays
 * closed with its window. */
void breaker_force(struct breaker *b, enum brk_force f, uint64_t for_ms, uint64_t now_ms);
void breaker_stats(struct breaker *b, uint64_t now_ms, struct breaker_stats *out);

/* How `cfg` judges an exchange: `failed_kind` is 0 for a complete response
 * with `status`, else the enum lv_breaker_failure bit of how it failed. */
enum brk_result breaker_judge(const struct lv_breaker *cfg, unsigned failed_kind, unsigned status);

/* ---- the registry (main thread; stats readers from any) ----------------- */

/* The breaker named cfg->name, with one more reference; NULL when out of
 * memory. A new one starts closed with cfg; one that exists keeps its own
 * until breaker_apply(), so a policy that is built and then refused
 * changes nothing. */
struct breaker *breaker_get(const struct lv_breaker *cfg);
/* A policy taking effect: its thresholds, from the next evaluation; a new
 * window shape keeps the figures (see the `window` key). */
void breaker_apply(struct breaker *b, const struct lv_breaker *cfg, uint64_t now_ms);
void breaker_put(struct breaker *b);

void breaker_render_prometheus(FILE *f, uint64_t now_ms);
void breaker_status_json(FILE *f, uint64_t now_ms);

#endif
