/*
 * l1.c - sharded, byte-bounded, CLOCK-evicted in-process cache.
 *
 * Invariants of a shard, whenever its lock is free:
 *  - the table and the CLOCK ring hold the same entries; <n> counts them,
 *    <bytes> sums their charges, and bytes <= the shard budget;
 *  - the table is linear probing without tombstones: between an entry's
 *    home slot (hash & mask) and the slot it sits in there is no empty
 *    slot. Deletion shifts the following run back to keep this, so a
 *    lookup stops at the first empty slot;
 *  - n * 4 <= cap * 3 (cap is 0 or a power of two), so probes terminate;
 *  - every entry in the table holds one reference for the cache. It is
 *    dropped after the entry leaves the table, once the lock is released,
 *    so free() never runs under a shard lock;
 *  - <hand> is NULL iff the ring is empty. New entries join just behind the
 *    hand, so the sweep reaches them last.
 *
 * The table is resized as it grows (doubling past 3/4 load) rather than
 * sized from the budget, because entry sizes vary by orders of magnitude:
 * a table sized for the smallest entry would waste memory on large ones.
 * It never shrinks; the budget bounds how many entries, and so slots, a
 * shard can reach.
 */
#include "l1.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define L1_MIN_CAP 16
/* glibc malloc: each chunk carries an 8-byte header and is a multiple of 16
 * bytes, at least 32. Charging that keeps the byte bound close to RSS. */
#define L1_MALLOC_HEADER 8
#define L1_MALLOC_GRANULE 16
#define L1_MALLOC_MIN 32
/* A table between 3/8 and 3/4 full spends about two slots per entry. */
#define L1_SLOTS_CHARGED 2

struct l1_entry {
	atomic_uint refs;
	uint32_t ntags;
	bool referenced; /* the CLOCK bit; read and written under the shard lock */
	uint64_t hash;
	uint64_t expires_ms;
	size_t klen, vlen;
	size_t charge;
	/* The CLOCK ring while cached. Once unlinked, <next> chains the entry
	 * on a local victim list until its cache reference is dropped. */
	struct l1_entry *prev, *next;
	/* value | key | pad to 4 | uint32_t tag lengths | tag bytes */
	alignas(16) unsigned char data[];
};

struct l1_slot {
	uint64_t hash;      /* the entry's, so mismatches are rejected without a deref */
	struct l1_entry *e; /* NULL: empty */
};

struct l1_shard {
	alignas(64) pthread_mutex_t lock; /* shards on their own cache lines */
	struct l1_slot *slots;
	size_t cap;
	size_t n;
	size_t bytes;
	struct l1_entry *hand;
	uint64_t hits, misses, inserts, evictions, expirations, purged;
};

struct l1 {
	struct l1_shard *shards;
	unsigned nshards;
	size_t budget; /* per shard */
	uint64_t (*now_ms)(void *ctx);
	void *clock_ctx;
	uint64_t k0, k1; /* hash key, random per cache */
	unsigned group_fields; /* see struct l1_config */
	char group_sep;
};

/* ---- hashing ----------------------------------------------------------- */

static inline uint64_t l1_rotl(uint64_t x, unsigned r)
{
	return (x << r) | (x >> (64 - r));
}


static inline uint64_t l1_le64(const unsigned char *p)
{
	uint64_t w = 0;
	for (int i = 7; i >= 0; i--)
		w = (w << 8) | p[i];
	return w;
}

#define L1_SIPROUND(v0, v1, v2, v3)                                                                 \
	do {                                                                                        \
		v0 += v1;                                                                           \
		v1 = l1_rotl(v1, 13) ^ v0;                                                          \
		v0 = l1_rotl(v0, 32);                                                               \
		v2 += v3;                                                                           \
		v3 = l1_rotl(v3, 16) ^ v2;                                                          \
		v0 += v3;                                                                           \
		v3 = l1_rotl(v3, 21) ^ v0;                                                          \
		v2 += v1;                                                                           \
		v1 = l1_rotl(v1, 17) ^ v2;                                                          \
		v2 = l1_rotl(v2, 32);                                                               \
	} while (0)

/* SipHash-1-3 with the cache's random key. Keys are request targets, which
 * clients choose: an unkeyed hash would let them craft keys that all land in
 * one shard and one probe run. A keyed PRF makes collisions unpredictable
 * without the key. */
static uint64_t l1_hash(const struct l1 *c, const char *key, size_t len)
{
	const unsigned char *p = (const unsigned char *)key;
	uint64_t v0 = c->k0 ^ 0x736f6d6570736575ULL, v1 = c->k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = c->k0 ^ 0x6c7967656e657261ULL, v3 = c->k1 ^ 0x7465646279746573ULL;
	size_t left = len;
	for (; left >= 8; p += 8, left -= 8) {
		uint64_t m = l1_le64(p);
		v3 ^= m;
		L1_SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	uint64_t b = (uint64_t)len << 56;
	for (size_t i = 0; i < left; i++)
		b |= (uint64_t)p[i] << (8 * i);
	v3 ^= b;
	L1_SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	L1_SIPROUND(v0, v1, v2, v3);
	L1_SIPROUND(v0, v1, v2, v3);
	L1_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* The top log2(nshards) bits of <h>; well defined for a single shard too. */
static inline struct l1_shard *l1_shard_of(struct l1 *c, uint64_t h)
{
	return &c->shards[((h >> 32) * c->nshards) >> 32];
}

/* Length of the group of <key>: its first group_fields fields, without the
 * separator after them; the whole key when it has fewer fields. */
static size_t l1_group_len(const struct l1 *c, const char *key, size_t klen)
{
	const char *p = key, *end = key + klen;
	for (unsigned f = 0; f < c->group_fields; f++) {
		const char *sep = memchr(p, c->group_sep, (size_t)(end - p));
		if (!sep)
			return klen;
		if (f + 1 == c->group_fields)
			return (size_t)(sep - key);
		p = sep + 1;
	}
	return klen;
}

/* The shard of <key>, whose own hash is <h>. */
static inline struct l1_shard *l1_shard_for(struct l1 *c, const char *key, size_t klen, uint64_t h)
{
	if (!c->group_fields)
		return l1_shard_of(c, h);
	size_t g = l1_group_len(c, key, klen);
	return l1_shard_of(c, g == klen ? h : l1_hash(c, key, g));
}

/* ---- entries ----------------------------------------------------------- */

static inline const unsigned char *l1_ekey(const struct l1_entry *e)
{
	return e->data + e->vlen;
}

static inline size_t l1_tags_off(size_t vlen, size_t klen)
{
	return (vlen + klen + 3) & ~(size_t)3;
}

static inline bool l1_key_eq(const struct l1_entry *e, const char *key, size_t klen)
{
	return e->klen == klen && memcmp(l1_ekey(e), key, klen) == 0;
}

static bool l1_has_tag(const struct l1_entry *e, const char *tag, size_t tlen)
{
	size_t off = l1_tags_off(e->vlen, e->klen);
	const unsigned char *bytes = e->data + off + (size_t)e->ntags * sizeof(uint32_t);

	for (uint32_t i = 0; i < e->ntags; i++) {
		uint32_t len;
		memcpy(&len, e->data + off + (size_t)i * sizeof(uint32_t), sizeof len);
		if (len == tlen && memcmp(bytes, tag, tlen) == 0)
			return true;
		bytes += len;
	}
	return false;
}

struct l1_entry *l1_entry_ref(struct l1_entry *e)
{
	atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
	return e;
}

void l1_entry_unref(struct l1_entry *e)
{
	if (e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
		free(e);
}

const void *l1_entry_value(const struct l1_entry *e, size_t *len)
{
	*len = e->vlen;
	return e->data;
}

const char *l1_entry_key(const struct l1_entry *e, size_t *len)
{
	*len = e->klen;
	return (const char *)l1_ekey(e);
}

uint64_t l1_entry_expires(const struct l1_entry *e)
{
	return e->expires_ms;
}

/* Drops the cache's reference on each entry of a victim list; the count. */
static size_t l1_release(struct l1_entry *victims)
{
	size_t n = 0;

	while (victims) {
		struct l1_entry *next = victims->next;
		l1_entry_unref(victims);
		victims = next;
		n++;
	}
	return n;
}

/* ---- a shard's table and ring (shard locked) --------------------------- */

static size_t l1_find(const struct l1_shard *s, uint64_t h, const char *key, size_t klen)
{
	if (!s->cap)
		return SIZE_MAX;
	size_t mask = s->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const struct l1_slot *slot = &s->slots[i];
		if (!slot->e)
			return SIZE_MAX;
		if (slot->hash == h && l1_key_eq(slot->e, key, klen))
			return i;
	}
}

static size_t l1_find_entry(const struct l1_shard *s, const struct l1_entry *e)
{
	size_t mask = s->cap - 1;
	size_t i = e->hash & mask;

	while (s->slots[i].e != e)
		i = (i + 1) & mask;
	return i;
}

static void l1_place(struct l1_slot *slots, size_t cap, uint64_t h, struct l1_entry *e)
{
	size_t mask = cap - 1;
	size_t i = h & mask;

	while (slots[i].e)
		i = (i + 1) & mask;
	slots[i].hash = h;
	slots[i].e = e;
}

/* Makes room for one more entry; false when out of memory. */
static bool l1_reserve(struct l1_shard *s)
{
	if ((s->n + 1) * 4 <= s->cap * 3)
		return true;
	size_t ncap = s->cap ? s->cap * 2 : L1_MIN_CAP;
	struct l1_slot *ns = calloc(ncap, sizeof *ns);
	if (!ns)
		return false;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i].e)
			l1_place(ns, ncap, s->slots[i].hash, s->slots[i].e);
	free(s->slots);
	s->slots = ns;
	s->cap = ncap;
	return true;
}

/* Empties slot <i> and shifts back the entries after it that may move
 * closer to their home slot, so no lookup is cut short by the hole. */
static void l1_table_delete(struct l1_shard *s, size_t i)
{
	size_t mask = s->cap - 1;

	s->slots[i].e = NULL;
	for (size_t j = (i + 1) & mask; s->slots[j].e; j = (j + 1) & mask) {
		size_t home = s->slots[j].hash & mask;
		/* The entry at j may fill the hole at i unless its home lies
		 * cyclically in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			s->slots[i] = s->slots[j];
			s->slots[j].e = NULL;
			i = j;
		}
	}
}

/* Removes the entry in slot <i> from the table and ring and chains it on
 * <victims>; the caller drops the cache's reference after unlocking. */
static void l1_remove(struct l1_shard *s, size_t i, struct l1_entry **victims)
{
	struct l1_entry *e = s->slots[i].e;

	l1_table_delete(s, i);
	if (e->next == e) {
		s->hand = NULL;
	} else {
		if (s->hand == e)
			s->hand = e->next;
		e->prev->next = e->next;
		e->next->prev = e->prev;
	}
	s->n--;
	s->bytes -= e->charge;
	e->next = *victims;
	*victims = e;
}

static void l1_link(struct l1_shard *s, struct l1_entry *e)
{
	l1_place(s->slots, s->cap, e->hash, e);
	if (!s->hand) {
		e->prev = e->next = e;
		s->hand = e;
	} else {
		e->next = s->hand;
		e->prev = s->hand->prev;
		e->prev->next = e;
		s->hand->prev = e;
	}
	s->n++;
	s->bytes += e->charge;
}

/* The CLOCK sweep: frees <need> bytes of budget. Expired entries go first
 * whatever their bit; a referenced entry is spared once. Terminates within
 * two turns of the ring, because each step evicts or clears a bit.
 * Precondition: need <= budget. */
static void l1_make_room(struct l1_shard *s, size_t budget, size_t need, uint64_t now,
                         struct l1_entry **victims)
{
	while (s->bytes + need > budget) {
		struct l1_entry *e = s->hand; /* non-NULL: bytes > 0 */
		if (e->expires_ms <= now) {
			s->expirations++;
			l1_remove(s, l1_find_entry(s, e), victims);
		} else if (e->referenced) {
			e->referenced = false;
			s->hand = e->next;
		} else {
			s->evictions++;
			l1_remove(s, l1_find_entry(s, e), victims);
		}
	}
}

/* ---- the cache --------------------------------------------------------- */

static uint64_t l1_monotonic_ms(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct l1 *l1_new(const struct l1_config *cfg)
{
	unsigned n = cfg->shards ? cfg->shards : L1_DEFAULT_SHARDS;

	if (n > L1_MAX_SHARDS || (n & (n - 1)) || cfg->max_bytes / n == 0) {
		errno = EINVAL;
		return NULL;
	}
	struct l1 *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->shards = aligned_alloc(alignof(struct l1_shard), n * sizeof *c->shards);
	if (!c->shards) {
		free(c);
		return NULL;
	}
	memset(c->shards, 0, n * sizeof *c->shards);
	for (unsigned i = 0; i < n; i++) {
		if (pthread_mutex_init(&c->shards[i].lock, NULL) != 0) {
			while (i--)
				pthread_mutex_destroy(&c->shards[i].lock);
			free(c->shards);
			free(c);
			errno = ENOMEM;
			return NULL;
		}
	}
	c->nshards = n;
	c->budget = cfg->max_bytes / n;
	c->now_ms = cfg->now_ms ? cfg->now_ms : l1_monotonic_ms;
	c->clock_ctx = cfg->clock_ctx;
	c->group_fields = cfg->group_fields;
	c->group_sep = cfg->group_sep;
	uint64_t key[2];
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		/* no entropy source: a fixed key still hashes well, it is only
		 * predictable */
		key[0] = 0x0706050403020100ULL;
		key[1] = 0x0f0e0d0c0b0a0908ULL;
	}
	c->k0 = key[0];
	c->k1 = key[1];
	return c;
}

void l1_free(struct l1 *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->nshards; i++) {
		struct l1_shard *s = &c->shards[i];
		struct l1_entry *e = s->hand;
		for (size_t k = 0; k < s->n; k++) {
			struct l1_entry *next = e->next;
			l1_entry_unref(e);
			e = next;
		}
		free(s->slots);
		pthread_mutex_destroy(&s->lock);
	}
	free(c->shards);
	free(c);
}

int l1_put(struct l1 *c, const char *key, size_t klen, const void *val, size_t vlen,
           uint64_t expires_ms, const char *const *tags, const size_t *tag_lens, unsigned ntags)
{
	return l1_put_entry(c, key, klen, val, vlen, expires_ms, tags, tag_lens, ntags, NULL);
}

int l1_put_entry(struct l1 *c, const char *key, size_t klen, const void *val, size_t vlen,
                 uint64_t expires_ms, const char *const *tags, const size_t *tag_lens, unsigned ntags,
                 struct l1_entry **out)
{
	size_t size, tag_bytes = 0;

	if (out)
		*out = NULL;

	for (unsigned i = 0; i < ntags; i++) {
		if (tag_lens[i] > UINT32_MAX) {
			errno = EINVAL;
			return LV_ERR;
		}
		if (__builtin_add_overflow(tag_bytes, tag_lens[i], &tag_bytes))
			goto too_big;
	}
	if (__builtin_add_overflow(vlen, klen, &size) || size > SIZE_MAX - 3 ||
	    __builtin_add_overflow(l1_tags_off(vlen, klen), (size_t)ntags * sizeof(uint32_t),
	                           &size) ||
	    __builtin_add_overflow(size, tag_bytes, &size) ||
	    __builtin_add_overflow(size, offsetof(struct l1_entry, data), &size) ||
	    size > c->budget)
		goto too_big;

	size_t chunk = (size + L1_MALLOC_HEADER + L1_MALLOC_GRANULE - 1) &
	               ~(size_t)(L1_MALLOC_GRANULE - 1);
	size_t charge = (chunk < L1_MALLOC_MIN ? L1_MALLOC_MIN : chunk) +
	                L1_SLOTS_CHARGED * sizeof(struct l1_slot);
	if (charge > c->budget)
		goto too_big;

	uint64_t now = c->now_ms(c->clock_ctx);
	uint64_t h = l1_hash(c, key, klen);
	struct l1_shard *s = l1_shard_for(c, key, klen, h);
	struct l1_entry *victims = NULL;

	if (expires_ms <= now) {
		/* Storing it would only waste budget, but it still supersedes
		 * whatever the key held. */
		pthread_mutex_lock(&s->lock);
		size_t i = l1_find(s, h, key, klen);
		if (i != SIZE_MAX)
			l1_remove(s, i, &victims);
		pthread_mutex_unlock(&s->lock);
		l1_release(victims);
		return LV_OK;
	}

	struct l1_entry *e = malloc(size);
	if (!e)
		return LV_ERR;
	atomic_init(&e->refs, 1);
	e->ntags = ntags;
	e->referenced = false;
	e->hash = h;
	e->expires_ms = expires_ms;
	e->klen = klen;
	e->vlen = vlen;
	e->charge = charge;
	if (vlen)
		memcpy(e->data, val, vlen);
	if (klen)
		memcpy(e->data + vlen, key, klen);
	size_t off = l1_tags_off(vlen, klen);
	unsigned char *tb = e->data + off + (size_t)ntags * sizeof(uint32_t);
	for (unsigned i = 0; i < ntags; i++) {
		uint32_t len = (uint32_t)tag_lens[i];
		memcpy(e->data + off + (size_t)i * sizeof(uint32_t), &len, sizeof len);
		if (len)
			memcpy(tb, tags[i], len);
		tb += len;
	}

	pthread_mutex_lock(&s->lock);
	size_t old = l1_find(s, h, key, klen);
	if (old == SIZE_MAX && !l1_reserve(s)) {
		pthread_mutex_unlock(&s->lock);
		free(e);
		errno = ENOMEM;
		return LV_ERR;
	}
	if (old != SIZE_MAX)
		l1_remove(s, old, &victims);
	l1_make_room(s, c->budget, charge, now, &victims);
	l1_link(s, e);
	s->inserts++;
	if (out)
		*out = l1_entry_ref(e);
	pthread_mutex_unlock(&s->lock);
	l1_release(victims);
	return LV_OK;

too_big:
	errno = E2BIG;
	return LV_ERR;
}

struct l1_entry *l1_get(struct l1 *c, const char *key, size_t klen)
{
	uint64_t now = c->now_ms(c->clock_ctx);
	uint64_t h = l1_hash(c, key, klen);
	struct l1_shard *s = l1_shard_for(c, key, klen, h);
	struct l1_entry *e = NULL, *victims = NULL;

	pthread_mutex_lock(&s->lock);
	size_t i = l1_find(s, h, key, klen);
	if (i != SIZE_MAX) {
		e = s->slots[i].e;
		if (e->expires_ms <= now) {
			s->expirations++;
			l1_remove(s, i, &victims);
			e = NULL;
		} else {
			/* Test before writing: a hot entry's line stays clean. */
			if (!e->referenced)
				e->referenced = true;
			l1_entry_ref(e);
		}
	}
	if (e)
		s->hits++;
	else
		s->misses++;
	pthread_mutex_unlock(&s->lock);
	l1_release(victims);
	return e;
}

size_t l1_purge_key(struct l1 *c, const char *key, size_t klen)
{
	uint64_t h = l1_hash(c, key, klen);
	struct l1_shard *s = l1_shard_for(c, key, klen, h);
	struct l1_entry *victims = NULL;

	pthread_mutex_lock(&s->lock);
	size_t i = l1_find(s, h, key, klen);
	if (i != SIZE_MAX) {
		l1_remove(s, i, &victims);
		s->purged++;
	}
	pthread_mutex_unlock(&s->lock);
	return l1_release(victims);
}

bool l1_purge_entry(struct l1 *c, struct l1_entry *e)
{
	struct l1_shard *s = l1_shard_for(c, (const char *)l1_ekey(e), e->klen, e->hash);
	struct l1_entry *victims = NULL;
	bool removed = false;

	pthread_mutex_lock(&s->lock);
	size_t i = l1_find(s, e->hash, (const char *)l1_ekey(e), e->klen);
	if (i != SIZE_MAX && s->slots[i].e == e) {
		l1_remove(s, i, &victims);
		s->purged++;
		removed = true;
	}
	pthread_mutex_unlock(&s->lock);
	l1_release(victims);
	return removed;
}

struct l1_entry *l1_entry_detached(const void *val, size_t vlen)
{
	size_t size;
	if (__builtin_add_overflow(vlen, offsetof(struct l1_entry, data), &size))
		return NULL;
	struct l1_entry *e = malloc(size);
	if (!e)
		return NULL;
	memset(e, 0, offsetof(struct l1_entry, data));
	atomic_init(&e->refs, 1);
	e->vlen = vlen;
	if (vlen)
		memcpy(e->data, val, vlen);
	return e;
}

typedef bool (*l1_match_fn)(const struct l1_entry *e, const char *arg, size_t alen);

static bool l1_match_prefix(const struct l1_entry *e, const char *prefix, size_t plen)
{
	return e->klen >= plen && memcmp(l1_ekey(e), prefix, plen) == 0;
}

static bool l1_match_all(const struct l1_entry *e, const char *arg, size_t alen)
{
	return true;
}

/* Walks one shard's ring under its lock, removing what <match> accepts.
 * Each entry present when the shard is locked is visited once: removals
 * only unlink entries already visited. */
static size_t l1_purge_shard(struct l1_shard *s, l1_match_fn match, const char *arg, size_t alen)
{
	struct l1_entry *victims = NULL;
	pthread_mutex_lock(&s->lock);
	struct l1_entry *e = s->hand;
	size_t n = s->n, removed = 0;
	for (size_t j = 0; j < n; j++) {
		struct l1_entry *next = e->next;
		if (match(e, arg, alen)) {
			l1_remove(s, l1_find_entry(s, e), &victims);
			removed++;
		}
		e = next;
	}
	s->purged += removed;
	pthread_mutex_unlock(&s->lock);
	return l1_release(victims);
}

/* Every shard, one lock at a time. */
static size_t l1_purge_walk(struct l1 *c, l1_match_fn match, const char *arg, size_t alen)
{
	size_t total = 0;
	for (unsigned k = 0; k < c->nshards; k++)
		total += l1_purge_shard(&c->shards[k], match, arg, alen);
	return total;
}

size_t l1_purge_group(struct l1 *c, const char *prefix, size_t plen)
{
	if (!c->group_fields || !plen || prefix[plen - 1] != c->group_sep ||
	    l1_group_len(c, prefix, plen) != plen - 1)
		return l1_purge_prefix(c, prefix, plen); /* not exactly one group */
	return l1_purge_shard(l1_shard_of(c, l1_hash(c, prefix, plen - 1)), l1_match_prefix, prefix, plen);
}

size_t l1_purge_prefix(struct l1 *c, const char *prefix, size_t plen)
{
	return l1_purge_walk(c, l1_match_prefix, prefix, plen);
}

size_t l1_purge_tag(struct l1 *c, const char *tag, size_t tlen)
{
	return l1_purge_walk(c, l1_has_tag, tag, tlen);
}

size_t l1_purge_all(struct l1 *c)
{
	return l1_purge_walk(c, l1_match_all, NULL, 0);
}

size_t l1_max_entry(const struct l1 *c)
{
	/* the inverse of l1_put's charge: round16(size + header) + slots */
	size_t slots = L1_SLOTS_CHARGED * sizeof(struct l1_slot);
	if (c->budget < slots + L1_MALLOC_MIN)
		return 0;
	size_t chunk = (c->budget - slots) & ~(size_t)(L1_MALLOC_GRANULE - 1);
	size_t fixed = L1_MALLOC_HEADER + offsetof(struct l1_entry, data);
	return chunk > fixed ? (chunk - fixed) & ~(size_t)3 : 0;
}

void l1_stats(struct l1 *c, struct l1_stats *out)
{
	memset(out, 0, sizeof *out);
	out->max_bytes = (uint64_t)c->budget * c->nshards;
	for (unsigned k = 0; k < c->nshards; k++) {
		struct l1_shard *s = &c->shards[k];
		pthread_mutex_lock(&s->lock);
		out->entries += s->n;
		out->bytes += s->bytes;
		out->hits += s->hits;
		out->misses += s->misses;
		out->inserts += s->inserts;
		out->evictions += s->evictions;
		out->expirations += s->expirations;
		out->purged += s->purged;
		pthread_mutex_unlock(&s->lock);
	}
}
