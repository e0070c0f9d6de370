/*
 * purge.c - purges of the cache, and what keeps them from being undone:
 *
 *  - cache_purge() and its four wrappers: the L1 (this process) and the L2
 *    generation bump (Redis), for a URL, a path prefix, a tag or everything;
 *  - the purge log: fills that began before a purge refuse to store
 *    (purged_since(), used by cache.c at store time);
 *  - the pending purges: L2 hits a purge covers are not served until Redis
 *    has acknowledged it (cache_l2_fenced(), used by cache_l2.c).
 *
 * Threads: any (workers, admin, the invalidate thread); the log and the
 * pending set are each under one mutex.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_internal.h"
#include "cache/key.h"
#include "cache/l1.h"

/* ---- the purge log ------------------------------------------------------
 *
 * A fill that began before a purge must not store what it fetched after the
 * purge: its response may predate the write that caused the purge. Every
 * purge takes the next epoch and is remembered here; a fill notes the epoch
 * when it goes upstream, and at store time it refuses if any later purge
 * covers its key or one of its tags. Prefixes longer than PURGE_KEY_MAX are
 * kept truncated, which only makes them match more; when more purges than the
 * log holds happened during one fill, the fill refuses to store. */
#define PURGE_LOG 1024
#define PURGE_KEY_MAX 240

enum purge_kind { PK_PREFIX, PK_TAG, PK_ALL };

static struct {
	pthread_mutex_t lock;
	uint64_t epoch; /* of the newest purge */
	struct {
		uint64_t epoch;
		uint8_t kind;
		uint16_t len;
		char key[PURGE_KEY_MAX];
	} ring[PURGE_LOG];
} plog = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t purge_log_add(enum purge_kind kind, const char *key, size_t len)
{
	pthread_mutex_lock(&plog.lock);
	uint64_t e = ++plog.epoch;
	unsigned i = (unsigned)(e % PURGE_LOG);
	plog.ring[i].epoch = e;
	plog.ring[i].kind = (uint8_t)kind;
	plog.ring[i].len = (uint16_t)(len < PURGE_KEY_MAX ? len : PURGE_KEY_MAX);
	memcpy(plog.ring[i].key, key, plog.ring[i].len);
	pthread_mutex_unlock(&plog.lock);
	return e;
}

uint64_t purge_epoch(void)
{
	pthread_mutex_lock(&plog.lock);
	uint64_t e = plog.epoch;
	pthread_mutex_unlock(&plog.lock);
	return e;
}

/* Whether a purge after `since` covers `key` or one of its tags. */
bool purged_since(uint64_t since, const char *key, size_t klen, const char *const *tags, const size_t *tlen,
                         unsigned ntags)
{
	bool hit = false;
	pthread_mutex_lock(&plog.lock);
	if (plog.epoch - since >= PURGE_LOG) {
		hit = plog.epoch != since; /* the log no longer reaches back */
	} else {
		for (uint64_t e = since + 1; e <= plog.epoch && !hit; e++) {
			unsigned i = (unsigned)(e % PURGE_LOG);
			size_t n = plog.ring[i].len;
			switch (plog.ring[i].kind) {
			case PK_ALL:
				hit = true;
				break;
			case PK_PREFIX:
				hit = n <= klen && memcmp(plog.ring[i].key, key, n) == 0;
				break;
			case PK_TAG:
				for (unsigned t = 0; t < ntags && !hit; t++)
					hit = tlen[t] >= n && memcmp(plog.ring[i].key, tags[t], n) == 0 &&
					      (tlen[t] == n || n == PURGE_KEY_MAX);
				break;
			}
		}
	}
	pthread_mutex_unlock(&plog.lock);
	return hit;
}

/* ---- purges Redis has not acknowledged yet ------------------------------
 *
 * A purge's generation bump goes to Redis on the purging thread's own
 * connection and is not waited for. Until Redis has applied it, another
 * worker's lookup on another connection may still read the old entry, and
 * a client that wrote through this levee could read its old data right
 * back. So each purge stays "pending" here, by its purge-log epoch, until
 * Redis answers (or fails, or times out: [redis] timeout); an L2 hit that a
 * purge covers which was pending when the lookup was sent, or is still
 * pending when its answer arrives, is not served (cache_l2_fenced). Both
 * ends matter: Redis may run the lookup before the purge and answer the
 * purge first, on another thread. */
#define PENDING_MAX 4096

static struct {
	pthread_mutex_t lock;
	unsigned n;
	bool overflow; /* more than PENDING_MAX at once: everything is fenced */
	uint64_t epoch[PENDING_MAX];
} pend = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void pending_add(uint64_t e)
{
	pthread_mutex_lock(&pend.lock);
	if (pend.n < PENDING_MAX) {
		pend.epoch[pend.n] = e;
		__atomic_store_n(&pend.n, pend.n + 1, __ATOMIC_RELEASE);
	} else {
		__atomic_store_n(&pend.overflow, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&pend.lock);
}

static void pending_done(uint64_t e)
{
	pthread_mutex_lock(&pend.lock);
	for (unsigned i = 0; i < pend.n; i++) {
		if (pend.epoch[i] == e) {
			pend.epoch[i] = pend.epoch[pend.n - 1];
			__atomic_store_n(&pend.n, pend.n - 1, __ATOMIC_RELEASE);
			break;
		}
	}
	if (pend.n == 0)
		__atomic_store_n(&pend.overflow, false, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&pend.lock);
}

uint64_t cache_l2_fence_floor(void)
{
	/* the common case, nothing pending, without the lock: a purge that
	 * becomes pending after this read began after the lookup or answer it
	 * is asked for, and is concurrent with it */
	if (__atomic_load_n(&pend.n, __ATOMIC_ACQUIRE) == 0 && !__atomic_load_n(&pend.overflow, __ATOMIC_ACQUIRE))
		return UINT64_MAX;
	pthread_mutex_lock(&pend.lock);
	uint64_t oldest = pend.overflow ? 1 : UINT64_MAX;
	for (unsigned i = 0; i < pend.n; i++)
		if (pend.epoch[i] < oldest)
			oldest = pend.epoch[i];
	pthread_mutex_unlock(&pend.lock);
	return oldest;
}

bool cache_l2_fenced(uint64_t floor, const char *key, size_t klen, const char *const *tags, const size_t *tlen,
                     unsigned ntags)
{
	uint64_t now = cache_l2_fence_floor();
	uint64_t oldest = now < floor ? now : floor;
	if (oldest == UINT64_MAX)
		return false; /* nothing pending, then or now: the common case, no purge log scan */
	return purged_since(oldest - 1, key, klen, tags, tlen, ntags);
}

struct pending_purge {
	uint64_t epoch;
	cache_purge_cb cb;
	void *arg;
};

static void pending_purge_done(void *arg, bool ok)
{
	struct pending_purge *p = arg;
	pending_done(p->epoch);
	if (p->cb)
		p->cb(p->arg, ok);
	free(p);
}

/* ---- purges ------------------------------------------------------------ */

/* The purge's L2 half, fenced (see above) until Redis answers it. */
static bool cache_purge_l2(struct l2 *l2, uint64_t epoch, enum cache_purge_kind kind, const char *svc,
                           const char *s, size_t len, cache_purge_cb cb, void *arg)
{
	struct pending_purge *p = l2 && epoch ? malloc(sizeof(*p)) : NULL;
	if (!p)
		return cache_l2_purge(l2, kind, svc, s, len, cb, arg);
	*p = (struct pending_purge){epoch, cb, arg};
	pending_add(epoch);
	if (cache_l2_purge(l2, kind, svc, s, len, pending_purge_done, p))
		return cb != NULL;
	pending_done(epoch);
	free(p);
	return false;
}

size_t cache_purge(struct l2 *l2, enum cache_purge_kind kind, const char *svc, const char *s, size_t len,
                   cache_purge_cb cb, void *arg, bool *pending)
{
	/* the purge log first: fills that began before it refuse to store, and
	 * L2 hits it covers are fenced until Redis has the new generation */
	char k[KEY_MAX];
	size_t n = 0;
	uint64_t epoch = 0;
	switch (kind) {
	case CACHE_PURGE_URL:
		n = key_path_prefix(svc, s, len, k, sizeof(k) - 1);
		if (n) {
			k[n++] = KEY_SEP; /* the whole target, and only it: every host and variant */
			epoch = purge_log_add(PK_PREFIX, k, n);
		}
		break;
	case CACHE_PURGE_PREFIX:
		n = key_path_prefix(svc, s, len, k, sizeof(k));
		if (n)
			epoch = purge_log_add(PK_PREFIX, k, n);
		break;
	case CACHE_PURGE_TAG:
		epoch = purge_log_add(PK_TAG, s, len);
		break;
	case CACHE_PURGE_ALL:
		epoch = purge_log_add(PK_ALL, "", 0);
		break;
	}
	bool sent = cache_purge_l2(l2, epoch, kind, svc, s, len, cb, arg);
	if (pending)
		*pending = sent;
	if (!cache_l1)
		return 0;
	size_t purged = 0;
	switch (kind) {
	case CACHE_PURGE_URL:
		purged = n ? l1_purge_group(cache_l1, k, n) : 0;
		break;
	case CACHE_PURGE_PREFIX:
		purged = n ? l1_purge_prefix(cache_l1, k, n) : 0;
		break;
	case CACHE_PURGE_TAG:
		purged = l1_purge_tag(cache_l1, s, len);
		break;
	case CACHE_PURGE_ALL:
		purged = l1_purge_all(cache_l1);
		break;
	}
	__atomic_fetch_add(&cstats.purged_entries, purged, __ATOMIC_RELAXED);
	return purged;
}

size_t cache_purge_url(struct l2 *l2, const char *service, const char *target, size_t len)
{
	return cache_purge(l2, CACHE_PURGE_URL, service, target, len, NULL, NULL, NULL);
}

size_t cache_purge_prefix(struct l2 *l2, const char *service, const char *path, size_t len)
{
	return cache_purge(l2, CACHE_PURGE_PREFIX, service, path, len, NULL, NULL, NULL);
}

size_t cache_purge_tag(struct l2 *l2, const char *service, const char *tag, size_t len)
{
	return cache_purge(l2, CACHE_PURGE_TAG, service, tag, len, NULL, NULL, NULL);
}

size_t cache_purge_all(struct l2 *l2, const char *service)
{
	return cache_purge(l2, CACHE_PURGE_ALL, service, "/", 1, NULL, NULL, NULL);
}
