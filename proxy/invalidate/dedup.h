/*
 * dedup.h - a window of the last N distinct event ids, to drop duplicates.
 *
 * Invalidation events are delivered at least once: the outbox replays what
 * it cannot prove delivered, and Kafka consumers re-read after a rebalance.
 * The consumer side asks dedup_check_and_add() for every event id and skips
 * the ones it has seen among the last `capacity` distinct ids.
 *
 * Memory is fixed at creation: a ring of `capacity` 64-bit hashes (the FIFO
 * of eviction) and an open-addressing table of the same hashes with a load
 * factor of at most 1/2 (linear probing, backward-shift deletion, so no
 * tombstones ever accumulate). Every call is O(1) expected, plus hashing the
 * id. The ids themselves are not stored.
 *
 * Hashing: XXH64 (record_checksum()) over a 128-bit random key from
 * getrandom(2), drawn at creation, followed by the id. The key makes the slot
 * layout and any collision unpredictable to whoever chooses the ids, so they
 * cannot craft ids that cluster in the table or shadow one another. XXH64 is
 * not a cryptographic MAC, so this guards against accident and casual abuse,
 * not against an attacker able to recover the key from timing.
 *
 * False positives: a new id is taken for a seen one only when its 64-bit
 * hash equals one of the at most `capacity` hashes held, probability at most
 * capacity / 2^64 per call: with capacity 2^20, about 5.7e-14 per call, or
 * one false positive in about 550 years at 1000 events per second. The cost
 * of one would be one skipped invalidation (a cached entry served until its
 * TTL). There are no false negatives within the window.
 *
 * Not thread-safe: one owner thread.
 */
#ifndef LEVEE_INVALIDATE_DEDUP_H
#define LEVEE_INVALIDATE_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEDUP_MAX_CAPACITY (1u << 26) /* 64 Mi ids, 1.5 GiB: anything larger is a typo */

struct dedup;

/* A window of `capacity` ids, 1..DEDUP_MAX_CAPACITY; uses 24 to 40 bytes per
 * id (8 in the ring, 16 to 32 in the table, whose size is a power of two).
 * NULL when capacity is out of range or memory is short. */
struct dedup *dedup_new(uint32_t capacity);
void dedup_free(struct dedup *d);

/* True when `id` (len bytes, any content) is among the last `capacity`
 * distinct ids remembered; it is then not added again, so a repeated id does
 * not refresh its place in the window. Otherwise remembers it, forgetting the
 * oldest id when the window is full, and returns false. */
bool dedup_check_and_add(struct dedup *d, const char *id, size_t len);

/* How many ids are remembered: min(distinct ids added, capacity). */
uint32_t dedup_count(const struct dedup *d);

#endif
