/*
 * fill.c - coalescing of concurrent misses, and hit-for-miss.
 *
 * Invariants:
 *  - At most one fill per key is in flight in this process (fill_claim);
 *    the requests that wait for it are woken exactly once, on their own
 *    worker, with the fill's outcome, however the fill ends: stored,
 *    stored in Redis only, not storable, or failed. Every filler ends
 *    through fill_finish(), from cache_request_end() at the latest.
 *  - A fill whose answer turns out not to be storable wakes its waiters as
 *    soon as that is known (at the response head, or when a streamed body
 *    passes max_object), not at its end: they have nothing to wait for.
 *  - Hit-for-miss: such a key is remembered for [cache] uncacheable_ttl, and
 *    its misses go upstream at once without queueing behind each other. The
 *    marks are a fixed direct-mapped table (a collision only forgets a mark),
 *    so they cost no memory per URL. A storable answer clears the mark.
 *
 * Threads: the fill table and the marks are sharded, each shard under one
 * mutex; waiters are woken through their worker's mailbox.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_internal.h"
#include "log.h"
#include "net/worker.h"

#define FILL_SHARDS 64
#define PASS_SLOTS 64 /* per shard */

struct cache_fill {
	struct cache_fill *next;
	struct request *owner; /* the filler; its block's `fill` points back here */
	uint64_t hash;
	struct request *waiters;
	uint32_t nwaiters;
	uint32_t klen;
	char key[];
};

struct pass_mark {
	uint64_t hash;
	uint64_t until_ms; /* 0: empty */
};

static struct {
	pthread_mutex_t lock;
	struct cache_fill *head;
	struct pass_mark pass[PASS_SLOTS];
} fills[FILL_SHARDS];

void fill_init(void)
{
	for (int i = 0; i < FILL_SHARDS; i++)
		pthread_mutex_init(&fills[i].lock, NULL);
}

static uint64_t key_hash(const char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)k[i]) * 0x100000001b3ull;
	return h;
}

static unsigned fill_shard(uint64_t h)
{
	return (unsigned)(h >> 58) & (FILL_SHARDS - 1);
}

/* ---- hit-for-miss marks ------------------------------------------------ */

static struct pass_mark *pass_slot(uint64_t h)
{
	return &fills[fill_shard(h)].pass[h % PASS_SLOTS];
}

void pass_mark(const char *key, size_t klen, uint64_t ttl_ms)
{
	if (!ttl_ms)
		return;
	uint64_t h = key_hash(key, klen);
	pthread_mutex_lock(&fills[fill_shard(h)].lock);
	struct pass_mark *m = pass_slot(h);
	m->hash = h;
	m->until_ms = cache_unix_ms() + ttl_ms;
	pthread_mutex_unlock(&fills[fill_shard(h)].lock);
}

bool pass_marked(const char *key, size_t klen)
{
	uint64_t h = key_hash(key, klen);
	uint64_t now = cache_unix_ms();
	pthread_mutex_lock(&fills[fill_shard(h)].lock);
	const struct pass_mark *m = pass_slot(h);
	bool on = m->until_ms > now && m->hash == h;
	pthread_mutex_unlock(&fills[fill_shard(h)].lock);
	return on;
}

bool pass_clear(const char *key, size_t klen)
{
	uint64_t h = key_hash(key, klen);
	pthread_mutex_lock(&fills[fill_shard(h)].lock);
	struct pass_mark *m = pass_slot(h);
	bool was = m->hash == h && m->until_ms;
	if (was)
		m->until_ms = 0;
	pthread_mutex_unlock(&fills[fill_shard(h)].lock);
	return was;
}

/* ---- fills ------------------------------------------------------------- */

enum claim fill_claim(struct request *r, bool wait)
{
	struct cache_req *cr = CR(r);
	uint64_t h = key_hash(cr->key, cr->key_len);
	unsigned s = fill_shard(h);
	enum claim rc = CLAIM_OWNER;
	pthread_mutex_lock(&fills[s].lock);
	for (struct cache_fill *f = fills[s].head; f; f = f->next) {
		if (f->hash == h && f->klen == cr->key_len && memcmp(f->key, cr->key, cr->key_len) == 0) {
			if (wait) {
				cr->wait_next = f->waiters;
				cr->wait_w = r->w;
				cr->waiting = true;
				f->waiters = r;
				f->nwaiters++;
			}
			pthread_mutex_unlock(&fills[s].lock);
			return wait ? CLAIM_WAITING : CLAIM_BUSY;
		}
	}
	struct cache_fill *f = malloc(sizeof(*f) + cr->key_len);
	if (f) {
		f->owner = r;
		f->hash = h;
		f->klen = cr->key_len;
		f->waiters = NULL;
		f->nwaiters = 0;
		memcpy(f->key, cr->key, cr->key_len);
		f->next = fills[s].head;
		fills[s].head = f;
		cr->fill = f;
	} else if (!wait) {
		rc = CLAIM_BUSY; /* out of memory: do without a refresh */
	}
	pthread_mutex_unlock(&fills[s].lock);
	return rc;
}

static void cache_wake(struct mb_item *it)
{
	struct cache_req *cr = mb_container(it, struct cache_req, wake_item);
	struct request *r = request_of_state(cr, &cache_stage_def);
	cr->waiting = false;
	if (!r->conn || r->w->closing) { /* the client left while it waited, or levee is stopping */
		request_client_gone(r);
		return;
	}
	enum fill_outcome o = (enum fill_outcome)cr->wait_outcome;
	if (o != FILL_UNCACHEABLE) {
		enum lookup lk = cache_lookup(r, "hit; detail=coalesced");
		if (lk == LK_HIT) {
			CSTAT(coalesced);
			return;
		}
		if (lk == LK_STALE_SERVED) { /* the fill stored nothing fresh; don't refresh again */
			request_finish(r);
			return;
		}
	}
	/* Stored in Redis only (too large for the L1): the shared tier has it.
	 * Otherwise nothing usable was stored: go upstream at once, without
	 * queueing again. */
	cr->no_coalesce = true;
	cache_status_set(r, "fwd=miss");
	if (o == FILL_STORED_L2 && cache_l2_miss(r) == STAGE_ASYNC)
		return;
	request_resume(r);
}

/* Unlinks <f> from the table and wakes its waiters with <o>; frees it. */
static void fill_release(struct cache_fill *f, enum fill_outcome o)
{
	unsigned s = fill_shard(f->hash);
	pthread_mutex_lock(&fills[s].lock);
	for (struct cache_fill **pp = &fills[s].head; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	struct request *w = f->waiters;
	pthread_mutex_unlock(&fills[s].lock);
	free(f);
	while (w) {
		struct cache_req *wc = CR(w);
		struct request *next = wc->wait_next;
		wc->wait_next = NULL;
		wc->wait_outcome = (uint8_t)o;
		/* allocates nothing, so it fails only when the waiter's worker
		 * has stopped for good: its own teardown ends the request then */
		if (mailbox_post(&wc->wait_w->mbox, &wc->wake_item, cache_wake) != LV_OK) {
			wc->waiting = false;
			log_debug("cache: a waiter's worker has stopped; its request ends with it");
		}
		w = next;
	}
}

void fill_finish(struct request *r, enum fill_outcome o)
{
	struct cache_req *cr = CR(r);
	struct cache_fill *f = cr->fill;
	if (!f)
		return;
	cr->fill = NULL;
	fill_release(f, o);
}

struct cache_fill *fill_detach(struct request *r)
{
	struct cache_req *cr = CR(r);
	struct cache_fill *f = cr->fill;
	cr->fill = NULL;
	if (f)
		f->owner = NULL;
	return f;
}

void fill_finish_detached(struct cache_fill *f, enum fill_outcome o)
{
	if (f) {
		f->owner = NULL;
		fill_release(f, o);
	}
}

void fill_shutdown(void)
{
	for (int s = 0; s < FILL_SHARDS; s++) {
		pthread_mutex_lock(&fills[s].lock);
		struct cache_fill *f = fills[s].head;
		fills[s].head = NULL;
		pthread_mutex_unlock(&fills[s].lock);
		while (f) {
			struct cache_fill *next = f->next;
			for (struct request *w = f->waiters, *wn; w; w = wn) {
				struct cache_req *wc = CR(w);
				wn = wc->wait_next;
				wc->wait_next = NULL;
				wc->waiting = false; /* ended by its worker's teardown */
			}
			if (f->owner)
				CR(f->owner)->fill = NULL;
			free(f);
			f = next;
		}
	}
}
