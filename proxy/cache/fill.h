/*
 * fill.h - the table of fills in flight (coalescing of concurrent misses)
 * and the hit-for-miss marks. Keys are opaque bytes; the table knows no
 * request: a filler is known by the slot that points at its fill, a waiter
 * by the struct fill_waiter it embeds, woken on its worker's mailbox.
 *
 * Threads: any; the table is sharded, each shard under one mutex.
 */
#ifndef LEVEE_CACHE_FILL_H
#define LEVEE_CACHE_FILL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/mailbox.h"

#define FILL_SHARDS 64
#define PASS_SLOTS 64 /* per shard */

struct worker;
struct cache_fill;

struct pass_mark {
	uint64_t hash;
	uint64_t until_ms; /* 0: empty */
};

struct fill_shard {
	pthread_mutex_t lock;
	struct cache_fill *head;
	struct pass_mark pass[PASS_SLOTS];
};

struct fill_table {
	struct fill_shard shards[FILL_SHARDS];
};

/* What a fill's waiters are told when they are woken. */
enum fill_outcome { FILL_FAILED, FILL_STORED, FILL_STORED_L2, FILL_UNCACHEABLE };

/* A request queued behind another's fill; lives in the waiter's own state.
 * Set by fill_claim; `outcome` is written before the wake-up is posted. */
struct fill_waiter {
	struct fill_waiter *next;
	struct worker *w;   /* woken through its mailbox, with `wake` */
	mailbox_fn wake;
	struct mb_item item;
	uint8_t outcome;    /* enum fill_outcome */
	bool waiting;
};

void fill_table_init(struct fill_table *t);
void fill_table_destroy(struct fill_table *t);

enum claim { CLAIM_OWNER, CLAIM_WAITING, CLAIM_BUSY };
/* Registers the caller as the filler of <key> (*slot then points at its
 * fill), or, when a fill is already in flight, queues <wt> behind it
 * (CLAIM_WAITING; `wt` NULL: CLAIM_BUSY instead). <wt>'s w and wake must be
 * set. */
enum claim fill_claim(struct fill_table *t, const char *key, size_t klen, struct cache_fill **slot,
                      struct fill_waiter *wt);
/* The filler is done: wake every waiter, on its own worker, with <o>;
 * *slot is cleared. Nothing when *slot is NULL. */
void fill_finish(struct cache_fill **slot, enum fill_outcome o);
/* Takes the fill away from its slot, for a completion that outlives it. */
struct cache_fill *fill_detach(struct cache_fill **slot);
void fill_finish_detached(struct cache_fill *f, enum fill_outcome o);
/* At shutdown, once every worker has stopped: forget every fill in flight
 * and its waiters, so that tearing the workers down in any order never
 * wakes a request another worker already freed. */
void fill_table_shutdown(struct fill_table *t);

void pass_mark(struct fill_table *t, const char *key, size_t klen, uint64_t ttl_ms);
bool pass_marked(struct fill_table *t, const char *key, size_t klen);
bool pass_clear(struct fill_table *t, const char *key, size_t klen);

#endif
