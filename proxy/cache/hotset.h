/*
 * hotset.h - the hot set: the keys this service's replicas hit most, kept
 * in Redis so that a replica that starts cold can load them (warmup.h).
 *
 * Redis keys (one hash tag per service, so the script stays in one slot):
 *   levee:hot:{<service>}     sorted set: member = cache key, score = hits
 *                             (estimated: each sampled hit counts `sample`),
 *                             decayed; at most `size` members
 *   levee:hot:{<service>}:d   the decay stamp: unix ms of the last decay
 *
 * Written by sampling, never on every hit: one hit in `sample` per worker is
 * taken into a batch of at most `writes` distinct keys (repeats add to one
 * weight), and the batch goes to Redis as one script at most once a second.
 * The script halves every score per `half_life` elapsed (one ZUNIONSTORE
 * with a weight, at most 16 times per half-life, shared by all replicas
 * through the stamp), adds the batch, drops scores below 0.5 and trims the
 * set to `size`. Redis trouble drops the batch: a hot set is a hint.
 *
 * The sampler (hotset_hit, hotset_due) is pure and takes the time from its
 * caller, for tests. Thread: one struct hotset per loop, used on its thread;
 * the counters are process-wide relaxed atomics.
 */
#ifndef LEVEE_CACHE_HOTSET_H
#define LEVEE_CACHE_HOTSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define HOTSET_KEY_MAX 2048u    /* longer cache keys are not sampled */
#define HOTSET_ARENA (64u << 10) /* bytes of keys one batch holds */
#define HOTSET_FLUSH_MS 1000u

struct redis;
struct hotset;

struct hotset_cfg {
	uint64_t sample;       /* one hit in this many; 0: off (hotset_new gives NULL) */
	uint64_t writes;       /* distinct keys per batch (per second) */
	uint64_t size;         /* members kept */
	uint64_t half_life_ms; /* scores halve this often */
};

void hotset_cfg_of(const struct lv_policy *p, struct hotset_cfg *out);

/* NULL when cfg->sample is 0 or out of memory. */
struct hotset *hotset_new(const struct hotset_cfg *cfg, const char *service) LV_WARN_UNUSED;
void hotset_free(struct hotset *h);

/* A cache hit on `key`: true when it was sampled into the batch. */
bool hotset_hit(struct hotset *h, const char *key, size_t klen);
/* Whether a batch waits and its second is over (`now_ms` any clock). */
bool hotset_due(const struct hotset *h, uint64_t now_ms);
/* Sends the batch as one script on `r` (when it is available; else the
 * batch is dropped) and starts the next second. `unix_ms` is the wall
 * clock the decay stamp is kept in. */
void hotset_flush(struct hotset *h, struct redis *r, uint64_t now_ms, uint64_t unix_ms);

/* The batch, for tests: how many keys, and key i with its weight. */
unsigned hotset_batch_len(const struct hotset *h);
const char *hotset_batch_key(const struct hotset *h, unsigned i, size_t *len, uint64_t *weight);

/* The name of the sorted set of `service`; its length, 0 when it does not
 * fit `cap`. */
size_t hotset_key(const char *service, char *out, size_t cap);

struct hotset_counters {
	uint64_t sampled;  /* hits taken into a batch */
	uint64_t dropped;  /* sampled hits refused: batch full, key too long */
	uint64_t written;  /* keys sent to Redis */
	uint64_t flushes;  /* scripts Redis ran */
	uint64_t errors;   /* batches lost to Redis trouble */
};
void hotset_counters(struct hotset_counters *out);

#endif
