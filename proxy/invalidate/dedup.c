/*
 * dedup.c - the window of recently seen event ids (see dedup.h).
 *
 * Invariants:
 *  - The ring holds `count` hashes, oldest at ring[head], all distinct; the
 *    table holds exactly the same hashes, each reachable by linear probing
 *    from its home slot (hash & mask) without crossing an empty slot.
 *  - 0 marks an empty table slot, so a hash of 0 is stored as 1 (one more
 *    collision pair among 2^64 values).
 *  - The table has at least twice as many slots as the capacity, so a probe
 *    always ends and stays short.
 */
#include "invalidate/dedup.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cache/record.h"

#define KEY_SIZE 16
#define CHUNK 256

struct dedup {
	uint32_t cap;
	uint32_t count;
	uint32_t head; /* ring[head] is the oldest id */
	uint32_t mask; /* table slots - 1 */
	uint64_t *ring;
	uint64_t *table;
	uint8_t key[KEY_SIZE];
};

/* Keyed XXH64: h0 = len; h(i+1) = XXH64(key || h(i) || chunk i), over
 * 256-byte chunks, so that an id of any length is hashed from a fixed stack
 * buffer and every step depends on the key. */
static uint64_t dedup_hash(const struct dedup *d, const char *id, size_t len)
{
	uint8_t buf[KEY_SIZE + 8 + CHUNK];
	uint64_t h = len;
	size_t off = 0;
	memcpy(buf, d->key, KEY_SIZE);
	do {
		size_t n = len - off < CHUNK ? len - off : CHUNK;
		memcpy(buf + KEY_SIZE, &h, 8);
		if (n > 0)
			memcpy(buf + KEY_SIZE + 8, id + off, n);
		h = record_checksum(buf, KEY_SIZE + 8 + n);
		off += n;
	} while (off < len);
	return h != 0 ? h : 1;
}

/* The slot holding h, or the empty slot where the probe for h ended. */
static uint32_t table_find(const struct dedup *d, uint64_t h)
{
	uint32_t i = (uint32_t)h & d->mask;
	while (d->table[i] != 0 && d->table[i] != h)
		i = (i + 1) & d->mask;
	return i;
}

/* Empties slot i and moves later entries of the cluster back into the gap
 * when that keeps them reachable from their home slot. */
static void table_delete(struct dedup *d, uint32_t i)
{
	for (uint32_t j = (i + 1) & d->mask; d->table[j] != 0; j = (j + 1) & d->mask) {
		uint32_t home = (uint32_t)d->table[j] & d->mask;
		/* movable when the gap lies between its home and j, cyclically */
		if (((j - home) & d->mask) >= ((j - i) & d->mask)) {
			d->table[i] = d->table[j];
			i = j;
		}
	}
	d->table[i] = 0;
}

struct dedup *dedup_new(uint32_t capacity)
{
	if (capacity == 0 || capacity > DEDUP_MAX_CAPACITY)
		return NULL;
	uint32_t slots = 2;
	while (slots < 2 * capacity)
		slots <<= 1;
	struct dedup *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->cap = capacity;
	d->mask = slots - 1;
	d->ring = malloc(sizeof(uint64_t) * capacity);
	d->table = calloc(slots, sizeof(uint64_t));
	if (d->ring == NULL || d->table == NULL) {
		dedup_free(d);
		return NULL;
	}
	if (getrandom(d->key, KEY_SIZE, GRND_NONBLOCK) != KEY_SIZE) {
		/* No entropy yet (early boot): the window stays correct, only the
		 * layout becomes predictable. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t k[2] = {record_checksum(&ts, sizeof(ts)), (uint64_t)(uintptr_t)d};
		memcpy(d->key, k, KEY_SIZE);
	}
	return d;
}

void dedup_free(struct dedup *d)
{
	if (d == NULL)
		return;
	free(d->ring);
	free(d->table);
	free(d);
}

bool dedup_check_and_add(struct dedup *d, const char *id, size_t len)
{
	uint64_t h = dedup_hash(d, id, len);
	uint32_t i = table_find(d, h);
	if (d->table[i] == h)
		return true;
	if (d->count == d->cap) {
		table_delete(d, table_find(d, d->ring[d->head]));
		d->ring[d->head] = h;
		d->head = d->head + 1 == d->cap ? 0 : d->head + 1;
		i = table_find(d, h); /* the deletion may have moved the gap */
	} else {
		uint32_t tail = d->head + d->count;
		d->ring[tail >= d->cap ? tail - d->cap : tail] = h;
		d->count++;
	}
	d->table[i] = h;
	return false;
}

uint32_t dedup_count(const struct dedup *d)
{
	return d->count;
}
