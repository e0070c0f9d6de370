/*
 * purge.h - what keeps a purge from being undone: the purge log (fills
 * that began before a purge refuse to store), the pending purges (L2 hits
 * a purge covers are not served until Redis has acknowledged it), and the
 * purges Redis did not take (sent again by the loops' ticks). purge.c says
 * how each works.
 *
 * All of it is one struct purge_state, the process's struct cache's
 * (cache_ctx.h). It knows no L1 and no request: the purge of both tiers is
 * cache_purge() (cache_ctx.h).
 *
 * Threads: any (workers, admin, the invalidate thread); the log, the
 * pending set and the retries are each under one mutex.
 */
#ifndef LEVEE_CACHE_PURGE_H
#define LEVEE_CACHE_PURGE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/l2_purge.h"

#define PURGE_LOG 1024
#define PURGE_KEY_MAX 240
#define PENDING_MAX 4096

enum purge_kind { PK_PREFIX, PK_TAG, PK_ALL };

struct retry;

struct purge_state {
	struct {
		pthread_mutex_t lock;
		uint64_t epoch; /* of the newest purge */
		struct {
			uint64_t epoch;
			uint8_t kind;
			uint16_t len;
			char key[PURGE_KEY_MAX];
		} ring[PURGE_LOG];
	} log;
	struct {
		pthread_mutex_t lock;
		unsigned n;
		bool overflow; /* more than PENDING_MAX at once: everything is fenced */
		uint64_t epoch[PENDING_MAX];
	} pend;
	struct {
		pthread_mutex_t lock;
		struct retry *head;
		unsigned n;        /* in the list; read without the lock by the ticks (atomic) */
		unsigned inflight; /* taken from the list, sent again, not answered yet */
		uint64_t retried, applied, folded;
		bool logged; /* the episode's first failure was logged */
	} retries;
};

void purge_state_init(struct purge_state *ps);
/* Drops what still waits (purge_retry_clear) and frees the locks. */
void purge_state_destroy(struct purge_state *ps);

/* The purge log: logs a purge and returns its epoch; the epoch of the
 * newest purge; whether a purge after epoch `since` covers `key` or one of
 * its tags. */
uint64_t purge_log_add(struct purge_state *ps, enum purge_kind kind, const char *key, size_t len);
uint64_t purge_epoch(struct purge_state *ps);
bool purged_since(struct purge_state *ps, uint64_t since, const char *key, size_t klen, const char *const *tags,
                  const size_t *tlen, unsigned ntags);

/* The oldest purge Redis has not acknowledged yet (its purge-log epoch), or
 * UINT64_MAX: taken when an L2 lookup is sent. */
uint64_t purge_fence_floor(struct purge_state *ps);
/* Whether a purge that Redis had not acknowledged when the lookup was sent
 * (from `floor` on), or has not now, covers this key or one of its tags: the
 * L2 hit may predate it and must not be served. */
bool purge_fenced(struct purge_state *ps, uint64_t floor, const char *key, size_t klen, const char *const *tags,
                  const size_t *tlen, unsigned ntags);

/* The L2 half of the purge of epoch <epoch>, fenced until Redis has taken
 * it, and retried when it does not: true when `cb` will be called. */
bool purge_send(struct purge_state *ps, struct l2 *l2, uint64_t epoch, enum cache_purge_kind kind,
                const char *svc, const char *s, size_t len, cache_purge_cb cb, void *arg);

/* Purges Redis refused or never answered are sent again: each loop's tick
 * calls this with its own connection. */
void purge_retry(struct purge_state *ps, struct l2 *l2);
struct cache_purge_retry_stats {
	uint64_t waiting; /* purges Redis has not taken yet */
	uint64_t retried, applied, folded;
	bool fenced;      /* some L2 keys are not served until Redis takes a purge */
};
void purge_retry_stats(struct purge_state *ps, struct cache_purge_retry_stats *out);
/* At shutdown: what still waits is dropped (the Kafka events remain). */
void purge_retry_clear(struct purge_state *ps);

#endif
