/*
 * bulkhead.h - a cap on a group of routes' upstream exchanges, with a queue.
 *
 * One `struct bulkhead` per [bulkhead "NAME"] for the whole process, shared
 * by every worker (the cap is per levee, not per worker) and kept by name
 * across reloads: a reload that keeps the name keeps the object, its slots
 * in use and its queue, and only changes its limits.
 *
 * A request takes a slot before its upstream exchange and gives it back when
 * the exchange has really ended (the response was read to its end, or the
 * connection was closed), not when levee stopped waiting for it: the
 * service behind keeps working on a request whose client left.
 *
 * Queue: a request that finds every slot taken waits, up to max_queue of
 * them, each at most queue_timeout. A freed slot goes straight to a waiter
 * (the count of slots in use does not drop), chosen by queue_order:
 *   fifo           the oldest;
 *   adaptive_lifo  the oldest while the oldest has waited less than half of
 *                  queue_timeout, else the newest. A standing queue means
 *                  overload: the oldest would time out anyway, and serving
 *                  the newest keeps the answers that do come fast (the
 *                  adaptive LIFO of Facebook's and Netflix's servers).
 *
 * Adaptive limit (max_concurrent = auto, resilience/adaptive.h): each
 * released slot whose exchange gave a latency sample feeds the bulkhead's
 * limit, under its mutex; a limit that rises grants queued waiters at once,
 * one that falls cuts nothing in flight (as a reload's resize does).
 *
 * Threads: everything below takes the bulkhead's mutex, briefly; a waiter's
 * `granted` runs on the releasing thread, after the mutex is dropped, and
 * must only post to the waiter's own loop. Times are monotonic microseconds
 * passed in by the caller, so the unit tests drive the clock.
 */
#ifndef LEVEE_BULKHEAD_H
#define LEVEE_BULKHEAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "policy.h"
#include "sighist.h"
#include "resilience/adaptive.h"
#include "resilience/registry.h"

enum bh_wait_state {
	BH_NONE,      /* not queued, no slot */
	BH_QUEUED,    /* in the queue */
	BH_GRANTED,   /* given a slot while queued; `granted` was called */
	BH_HOLDING,   /* holds a slot (acquired at once, or the grant was taken) */
	BH_CANCELLED, /* taken off the queue without a slot (timeout, client gone, shutdown) */
};

struct worker;

struct bh_waiter {
	struct bh_waiter *prev, *next;
	uint64_t since_us;
	int state; /* enum bh_wait_state, under the bulkhead's mutex */
	/* set by the caller: the exchange may move to one of the bulkhead's
	 * threads (false for one with no connection to move) */
	bool movable;
	/* set by the caller: a critical route's request, which queues apart
	 * and is served first, and which a tier's scale does not hold back
	 * (bulkhead_scale()) */
	bool critical;
	/* set with the slot, under the mutex: the thread its exchange goes to,
	 * in turn, or NULL to run it where it is (semaphore isolation, no
	 * threads yet, or not movable) */
	struct worker *loop;
	/* called once the waiter was given a slot (BH_GRANTED), outside the
	 * mutex; false: it cannot be told (its loop has stopped), so the slot
	 * goes to the next waiter and this one is BH_CANCELLED */
	bool (*granted)(struct bh_waiter *wt);
};

enum bh_rc {
	BH_ACQUIRED, /* a slot, at once */
	BH_WAITING,  /* queued: `granted` will be called, or bulkhead_cancel() takes it off */
	BH_FULL,     /* every slot taken and the queue full: refuse */
	BH_CLOSED,   /* shutting down: refuse */
};

/* Queue-wait histogram buckets, upper bounds in seconds; the last is +Inf. */
#define BH_WAIT_BUCKETS 12
extern const double bh_wait_bounds[BH_WAIT_BUCKETS - 1];

struct bulkhead_stats {
	uint64_t active, queued, max_concurrent, max_queue, threads;
	uint64_t handoffs; /* exchanges handed to the bulkhead's threads */
	uint64_t acquired, queued_total, rejected_full, rejected_timeout, rejected_closed;
	uint64_t drained_complete, drained_closed, abandoned; /* exchanges kept after their client's end */
	uint64_t draining;                                    /* such exchanges now */
	uint64_t wait_hist[BH_WAIT_BUCKETS], wait_count;
	double wait_sum_s;
	/* every request that asked for a slot, for the tier signals: one that
	 * got it at once waited 0, one refused for a full queue counts as
	 * waiting queue_timeout (what the queue would have cost it) */
	uint64_t sig_hist[SIGHIST_BUCKETS], sig_count, sig_sum_us;
	double scale;      /* percent of the limit in force for non-critical requests (tiers' bulkhead_scale) */
	/* max_concurrent = auto: the limit's state (max_concurrent is its
	 * whole part); zero for a fixed limit */
	bool adaptive, probing;
	double limit, long_rtt_s, short_rtt_s, gradient;
	uint64_t samples, windows, adaptive_min, adaptive_max;
};

struct bulkhead {
	struct named named;        /* its name, in the bulkheads' registry */
	pthread_mutex_t lock;
	struct lv_bulkhead cfg;    /* the newest policy's; under lock */
	uint64_t limit;            /* the max_concurrent of the policy: cfg's, or the adaptive one */
	double scale;              /* percent of limit in force for non-critical requests (tiers); 100 normally */
	struct adaptive ad;        /* cfg.max_concurrent = auto: the limit's state */
	uint64_t active;           /* slots in use (granted ones included) */
	uint64_t queued;
	/* the queues, oldest first: [1] critical routes' requests, served
	 * first, [0] the others; each at most cfg.max_queue long */
	struct bh_waiter *head[2], *tail[2];
	uint64_t nq[2];
	bool closed;
	struct bulkhead_stats st;  /* counters; active/queued/limits copied on read */
	struct worker *loops[LV_MAX_BULKHEAD_THREADS]; /* isolation = thread: its threads */
	unsigned nloops, next_loop;
};

/* ---- the queue (any thread) --------------------------------------------- */

enum bh_rc bulkhead_acquire(struct bulkhead *b, struct bh_waiter *wt, uint64_t now_us);
/* Takes a queued waiter off the queue. True: no grant is on its way to it
 * (it was queued and is now BH_CANCELLED, counted as a timeout when
 * `timeout`; or it was never queued, was cancelled already, or holds its
 * slot, which it keeps); false: a slot was granted to it and its `granted`
 * ran or is running: it stays BH_GRANTED until bulkhead_take(), and then
 * holds that slot. */
bool bulkhead_cancel(struct bulkhead *b, struct bh_waiter *wt, bool timeout, uint64_t now_us);
/* A granted waiter takes its slot (BH_GRANTED -> BH_HOLDING). */
void bulkhead_take(struct bulkhead *b, struct bh_waiter *wt);
/* Gives a slot back: to a waiter chosen by queue_order, or to the pool. */
void bulkhead_release(struct bulkhead *b, uint64_t now_us);
/* The same, for an exchange that held its slot rtt_us and is a latency
 * sample of the service (with max_concurrent = auto, it moves the limit). */
void bulkhead_release_sample(struct bulkhead *b, uint64_t now_us, uint64_t rtt_us);
/* What happened to an exchange kept after its client's end. */
enum bh_drain { BH_DRAIN_BEGIN, BH_DRAIN_COMPLETE, BH_DRAIN_CLOSED, BH_DRAIN_ABANDONED };
void bulkhead_note_drain(struct bulkhead *b, enum bh_drain what);

void bulkhead_stats(struct bulkhead *b, struct bulkhead_stats *out);

/* ---- the registry (main thread; stats readers from any) ----------------- */

/* The bulkhead named cfg->name, with one more reference; NULL when out of
 * memory. A new one starts with cfg's limits; one that exists keeps its own
 * until bulkhead_apply(), so a policy that is built and then refused
 * changes nothing. */
struct bulkhead *bulkhead_get(const struct lv_bulkhead *cfg);
/* A policy taking effect: its limits (more slots go to waiters at once;
 * fewer take effect as slots come back) and the threads an isolation =
 * thread bulkhead hands its exchanges to (NULL, 0: none). The threads
 * outlive the bulkhead; a lowered count leaves the others idle. */
void bulkhead_apply(struct bulkhead *b, const struct lv_bulkhead *cfg, struct worker *const *loops, unsigned n);
void bulkhead_put(struct bulkhead *b);
/* Scales max_concurrent (or the adaptive limit, which then does not grow)
 * to `pct` percent, at least one slot, until scaled again (100: as
 * configured), while a degradation tier is in force. The scaled limit holds
 * back the requests of normal and optional routes only: a critical one may
 * still take a slot up to the full limit, ahead of the others waiting, so
 * that a tier never refuses a critical route through its bulkhead. The
 * queue's length is not scaled. Slots in use above the new limit are not
 * taken back: they drain as their exchanges end. Any thread. */
void bulkhead_scale(struct bulkhead *b, double pct);
/* At shutdown, once the workers stopped: every waiter is cancelled and no
 * slot is granted any more, so no worker is posted to after this. */
void bulkhead_shutdown_all(void);

/* Prometheus lines and the /status array, over every live bulkhead. */
void bulkhead_render_prometheus(FILE *f);
void bulkhead_status_json(FILE *f);

#endif
