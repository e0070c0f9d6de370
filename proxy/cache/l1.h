/*
 * l1.h - the in-process cache tier, shared by every worker thread.
 *
 * Keys and values are opaque byte strings (keys may contain NUL; values are
 * encoded cache records produced elsewhere). The cache is bounded in bytes,
 * not entries, because responses range from a few hundred bytes to
 * megabytes and an entry bound would say nothing about memory.
 *
 * Concurrency: the cache is split into a power-of-two number of shards, each
 * with its own mutex, hash table, CLOCK ring and byte budget (max_bytes /
 * shards). A key's shard comes from the high bits of a hash and its bucket
 * from the low bits of its own hash, so the two choices are independent.
 * The shard hash is that of the key, or, with groups configured, of the
 * key's group (its leading fields): the cache groups every host and variant
 * of one URL, so a URL purge visits one shard. No operation holds
 * more than one shard lock, and the walks (prefix, tag, all, stats) release
 * each shard's lock before taking the next.
 *
 * Eviction is CLOCK (second chance) per shard, not LRU. A hit under LRU must
 * move the entry to the head of a list, which writes two neighbours' links
 * and makes every hit a write to shared cache lines. CLOCK makes a hit set
 * one bit in the entry itself; the ordering work moves to the put that needs
 * space, which sweeps the ring: an entry with its bit set is spared once
 * (the bit is cleared), an entry without it, or past its expiry, is evicted.
 * Hit ratios are close to LRU's for web workloads, and a one-off scan cannot
 * flush entries that are being hit.
 *
 * Entries are refcounted and immutable once inserted. l1_get() returns a new
 * reference; the caller may keep reading the value after the entry has been
 * replaced, evicted or purged, and the memory is freed when the last
 * reference is dropped with l1_entry_unref(). Memory held only by readers is
 * no longer counted against max_bytes: the bound covers what the cache
 * keeps, and what readers keep is bounded by the number of requests in
 * flight.
 *
 * Time: expiries are absolute milliseconds on the clock given in the config
 * (CLOCK_MONOTONIC when none is given). An entry is returned while
 * now < expires_ms and never afterwards; freshness and stale-while-
 * revalidate windows are the caller's business, this is the outer bound.
 */
#ifndef LEVEE_L1_H
#define LEVEE_L1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define L1_DEFAULT_SHARDS 64
#define L1_MAX_SHARDS 65536

struct l1;
struct l1_entry; /* refcounted; immutable after insert */

struct l1_config {
	size_t max_bytes; /* total budget; each shard gets max_bytes / shards */
	unsigned shards;  /* power of two, at most L1_MAX_SHARDS; 0: L1_DEFAULT_SHARDS */
	/* Current time in ms on the same clock as the callers' expiries.
	 * NULL: CLOCK_MONOTONIC. Called once per get and put,
	 * outside any lock. */
	uint64_t (*now_ms)(void *ctx);
	void *clock_ctx;
	/* Group keys by their first `group_fields` fields, separated by the
	 * byte `group_sep`: every key of a group lives in one shard, so
	 * l1_purge_group() visits one shard instead of all. 0: no groups. */
	unsigned group_fields;
	char group_sep;
};

/* Sums over shards, each read under its own lock (so the sum is not one
 * instant, but every shard's part is consistent). */
struct l1_stats {
	uint64_t entries;      /* entries the cache holds now */
	uint64_t bytes;        /* their accounted size (see l1_put) */
	uint64_t max_bytes;    /* the effective bound: per-shard budget x shards */
	uint64_t hits, misses; /* l1_get outcomes; an expired entry is a miss */
	uint64_t inserts;      /* successful puts that stored an entry */
	uint64_t evictions;    /* entries removed by CLOCK to make room */
	uint64_t expirations;  /* entries removed because they were past expiry */
	uint64_t purged;       /* entries removed by l1_purge_* */
};

/* NULL with errno EINVAL (bad config) or ENOMEM. */
struct l1 *l1_new(const struct l1_config *cfg) LV_WARN_UNUSED;
/* No other thread may use <c> any more. References readers still hold stay
 * valid until they drop them. */
void l1_free(struct l1 *c);

/*
 * Inserts <val> under <key>, replacing any entry with the same key. Key,
 * value and tags are copied into one allocation. The accounted size of an
 * entry is the allocation (rounded to the allocator's granule, plus its
 * header) and two hash slots (the table is kept at most 3/4 and at least
 * 3/8 full after a resize). When the shard lacks room, CLOCK evicts within
 * that shard until the entry fits.
 *
 * A put whose <expires_ms> has already passed removes any entry under <key>
 * and stores nothing (it would never be returned), and returns LV_OK.
 *
 * Returns LV_OK, or LV_ERR with errno E2BIG (the entry's accounted size is
 * larger than a shard's budget), EINVAL (a tag longer than 4 GiB) or ENOMEM;
 * on error an older entry under <key> is left in place.
 */
int l1_put(struct l1 *c, const char *key, size_t klen, const void *val, size_t vlen,
           uint64_t expires_ms, const char *const *tags, const size_t *tag_lens,
           unsigned ntags) LV_WARN_UNUSED;

/* l1_put, and on success *out gets a new reference to the stored entry (NULL
 * when nothing was stored because <expires_ms> had passed): with
 * l1_purge_entry() a caller can undo exactly its own put, never a newer one. */
int l1_put_entry(struct l1 *c, const char *key, size_t klen, const void *val, size_t vlen,
                 uint64_t expires_ms, const char *const *tags, const size_t *tag_lens,
                 unsigned ntags, struct l1_entry **out) LV_WARN_UNUSED;
/* Removes <e> if it is still the entry under its key; true when it was. */
bool l1_purge_entry(struct l1 *c, struct l1_entry *e);

/* An entry that belongs to no cache (one reference, the caller's): a value
 * served like a cached one, e.g. a record too large for any shard. NULL when
 * out of memory. */
struct l1_entry *l1_entry_detached(const void *val, size_t vlen) LV_WARN_UNUSED;

/* A new reference to the entry under <key>, or NULL if there is none or it
 * is past its expiry (an expired entry is removed on the way). Never
 * allocates. */
struct l1_entry *l1_get(struct l1 *c, const char *key, size_t klen) LV_WARN_UNUSED;

/* Another reference to an entry the caller already holds one to (to hand it
 * to another thread, for instance). */
struct l1_entry *l1_entry_ref(struct l1_entry *e);
/* Drops one reference; NULL is ignored. Thread-safe. */
void l1_entry_unref(struct l1_entry *e);

/* The value, 16-byte aligned, valid while the reference is held. */
const void *l1_entry_value(const struct l1_entry *e, size_t *len);
const char *l1_entry_key(const struct l1_entry *e, size_t *len);
uint64_t l1_entry_expires(const struct l1_entry *e);

/* Purges: each returns how many entries it removed (expired entries count
 * too: they were still held). Prefix and tag purges visit every entry of
 * every shard, one shard lock at a time. An empty prefix matches all. */
size_t l1_purge_key(struct l1 *c, const char *key, size_t klen);
size_t l1_purge_prefix(struct l1 *c, const char *prefix, size_t plen);
/* Same, for a prefix that is exactly one group (its fields and the
 * separator after them): walks only that group's shard. */
size_t l1_purge_group(struct l1 *c, const char *prefix, size_t plen);
size_t l1_purge_tag(struct l1 *c, const char *tag, size_t tlen);
size_t l1_purge_all(struct l1 *c);

/* The largest key + value + tags one entry can have: a shard's budget less
 * the entry's bookkeeping. */
size_t l1_max_entry(const struct l1 *c);

void l1_stats(struct l1 *c, struct l1_stats *out);

#endif
