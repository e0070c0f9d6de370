/*
 * fill.c - coalescing of concurrent misses, and hit-for-miss.
 *
 * Invariants:
 *  - At most one fill per key is in flight in this process (fill_claim);
 *    the requests that wait for it are woken exactly once, on their own
 *    worker, with the fill's outcome, however the fill ends: stored,
 *    stored in Redis only, not storable, or failed. Every filler ends
 *    through fill_finish(), from the cache's end hook at the latest.
 *  - A fill whose answer turns out not to be storable wakes its waiters as
 *    soon as that is known (at the response head, or when a streamed body
 *    passes max_object), not at its end: they have nothing to wait for.
 *  - Hit-for-miss: such a key is remembered for [cache] uncacheable_ttl, and
 *    its misses go upstream at once without queueing behind each other. The
 *    marks are a fixed direct-mapped table (a collision only forgets a mark),
 *    so they cost no memory per URL. A storable answer clears the mark.
 *
 * Threads: the fill table and the marks are sharded, each shard under one
 * mutex; waiters are woken through their worker's mailbox. The table is
 * the process's struct cache's (cache_ctx.h): one per cache, not global.
 */
#include "cache/fill.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "net/worker.h"

struct cache_fill {
	struct cache_fill *next;
	struct fill_table *table;
	struct cache_fill **slot; /* the filler's pointer to this fill; NULL once detached */
	uint64_t hash;
	struct fill_waiter *waiters;
	uint32_t nwaiters;
	uint32_t klen;
	char key[];
};

void fill_table_init(struct fill_table *t)
{
	for (int i = 0; i < FILL_SHARDS; i++)
		pthread_mutex_init(&t->shards[i].lock, NULL);
}

void fill_table_destroy(struct fill_table *t)
{
	for (int i = 0; i < FILL_SHARDS; i++)
		pthread_mutex_destroy(&t->shards[i].lock);
}

static uint64_t key_hash(const char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)k[i]) * 0x100000001b3ull;
	return h;
}

static struct fill_shard *fill_shard(struct fill_table *t, uint64_t h)
{
	return &t->shards[(unsigned)(h >> 58) & (FILL_SHARDS - 1)];
}

/* ---- hit-for-miss marks ------------------------------------------------ */

void pass_mark(struct fill_table *t, const char *key, size_t klen, uint64_t ttl_ms)
{
	if (!ttl_ms)
		return;
	uint64_t h = key_hash(key, klen);
	struct fill_shard *sh = fill_shard(t, h);
	pthread_mutex_lock(&sh->lock);
	struct pass_mark *m = &sh->pass[h % PASS_SLOTS];
	m->hash = h;
	m->until_ms = now_unix_ms() + ttl_ms;
	pthread_mutex_unlock(&sh->lock);
}

bool pass_marked(struct fill_table *t, const char *key, size_t klen)
{
	uint64_t h = key_hash(key, klen);
	uint64_t now = now_unix_ms();
	struct fill_shard *sh = fill_shard(t, h);
	pthread_mutex_lock(&sh->lock);
	const struct pass_mark *m = &sh->pass[h % PASS_SLOTS];
	bool on = m->until_ms > now && m->hash == h;
	pthread_mutex_unlock(&sh->lock);
	return on;
}

bool pass_clear(struct fill_table *t, const char *key, size_t klen)
{
	uint64_t h = key_hash(key, klen);
	struct fill_shard *sh = fill_shard(t, h);
	pthread_mutex_lock(&sh->lock);
	struct pass_mark *m = &sh->pass[h % PASS_SLOTS];
	bool was = m->hash == h && m->until_ms;
	if (was)
		m->until_ms = 0;
	pthread_mutex_unlock(&sh->lock);
	return was;
}

/* ---- fills ------------------------------------------------------------- */

enum claim fill_claim(struct fill_table *t, const char *key, size_t klen, struct cache_fill **slot,
                      struct fill_waiter *wt)
{
	uint64_t h = key_hash(key, klen);
	struct fill_shard *sh = fill_shard(t, h);
	enum claim rc = CLAIM_OWNER;
	pthread_mutex_lock(&sh->lock);
	for (struct cache_fill *f = sh->head; f; f = f->next) {
		if (f->hash == h && f->klen == klen && memcmp(f->key, key, klen) == 0) {
			if (wt) {
				wt->next = f->waiters;
				wt->waiting = true;
				f->waiters = wt;
				f->nwaiters++;
			}
			pthread_mutex_unlock(&sh->lock);
			return wt ? CLAIM_WAITING : CLAIM_BUSY;
		}
	}
	struct cache_fill *f = malloc(sizeof(*f) + klen);
	if (f) {
		f->table = t;
		f->slot = slot;
		f->hash = h;
		f->klen = (uint32_t)klen;
		f->waiters = NULL;
		f->nwaiters = 0;
		memcpy(f->key, key, klen);
		f->next = sh->head;
		sh->head = f;
		*slot = f;
	} else if (!wt) {
		rc = CLAIM_BUSY; /* out of memory: do without a refresh */
	}
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

/* Unlinks <f> from its table and wakes its waiters with <o>; frees it. */
static void fill_release(struct cache_fill *f, enum fill_outcome o)
{
	struct fill_shard *sh = fill_shard(f->table, f->hash);
	pthread_mutex_lock(&sh->lock);
	for (struct cache_fill **pp = &sh->head; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	struct fill_waiter *w = f->waiters;
	pthread_mutex_unlock(&sh->lock);
	free(f);
	while (w) {
		struct fill_waiter *next = w->next;
		w->next = NULL;
		w->outcome = (uint8_t)o;
		/* allocates nothing, so it fails only when the waiter's worker
		 * has stopped for good: its own teardown ends the request then */
		if (mailbox_post(&w->w->mbox, &w->item, w->wake) != LV_OK) {
			w->waiting = false;
			log_debug("cache: a waiter's worker has stopped; its request ends with it");
		}
		w = next;
	}
}

void fill_finish(struct cache_fill **slot, enum fill_outcome o)
{
	struct cache_fill *f = *slot;
	if (!f)
		return;
	*slot = NULL;
	fill_release(f, o);
}

struct cache_fill *fill_detach(struct cache_fill **slot)
{
	struct cache_fill *f = *slot;
	*slot = NULL;
	if (f)
		f->slot = NULL;
	return f;
}

void fill_finish_detached(struct cache_fill *f, enum fill_outcome o)
{
	if (f) {
		f->slot = NULL;
		fill_release(f, o);
	}
}

void fill_table_shutdown(struct fill_table *t)
{
	for (int s = 0; s < FILL_SHARDS; s++) {
		struct fill_shard *sh = &t->shards[s];
		pthread_mutex_lock(&sh->lock);
		struct cache_fill *f = sh->head;
		sh->head = NULL;
		pthread_mutex_unlock(&sh->lock);
		while (f) {
			struct cache_fill *next = f->next;
			for (struct fill_waiter *w = f->waiters, *wn; w; w = wn) {
				wn = w->next;
				w->next = NULL;
				w->waiting = false; /* ended by its worker's teardown */
			}
			if (f->slot)
				*f->slot = NULL;
			free(f);
			f = next;
		}
	}
}
