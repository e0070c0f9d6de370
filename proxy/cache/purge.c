/*
 * purge.c - purges of the cache, and what keeps them from being undone:
 *
 *  - cache_purge() and its four wrappers: the L1 (this process) and the L2
 *    generation bump (Redis), for a URL, a path prefix, a tag or everything;
 *  - the purge log: fills that began before a purge refuse to store
 *    (purged_since(), used by cache.c at store time);
 *  - the pending purges: L2 hits a purge covers are not served until Redis
 *    has acknowledged it (cache_l2_fenced(), used by cache_l2.c);
 *  - the unapplied purges: one Redis refused or never answered stays
 *    pending, so its keys stay fenced, and is sent again by the workers'
 *    ticks (cache_purge_retry()) until Redis takes it.
 *
 * Threads: any (workers, admin, the invalidate thread); the log and the
 * pending set are each under one mutex.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "cache/cache_internal.h"
#include "cache/key.h"
#include "cache/l1.h"
#include "log.h"

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

/* ---- purges Redis did not take -----------------------------------------
 *
 * A purge that Redis refused (a replica that turned read-only, a write
 * refused for want of replicas...), or that timed out or lost its
 * connection, keeps its epoch pending: every L2 hit it covers stays fenced.
 * It waits here and is sent again, with backoff, by whichever worker's tick
 * comes first, until Redis acknowledges it; only then is the fence lifted.
 * At RETRY_MAX waiting purges the newest ones are folded into one purge of
 * everything of the service, which covers them (its epoch fences every key
 * meanwhile). What waits here is lost if levee stops; the Kafka events of
 * the same writes are applied to Redis by every replica. */
#define RETRY_MAX 1024
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 5000

struct retry {
	struct retry *next;
	uint64_t epoch;
	uint64_t due_us;
	unsigned attempts;
	enum cache_purge_kind kind;
	size_t len;
	char svc[LV_NAME_MAX + 1];
	char s[];
};

static struct {
	pthread_mutex_t lock;
	struct retry *head;
	unsigned n;        /* in the list; read without the lock by the ticks (atomic) */
	unsigned inflight; /* taken from the list, sent again, not answered yet */
	uint64_t retried, applied, folded;
	bool logged; /* the episode's first failure was logged */
} retries = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t retry_delay_us(unsigned attempts)
{
	uint64_t ms = RETRY_FIRST_MS;
	while (attempts-- > 1 && ms < RETRY_MAX_MS)
		ms *= 2;
	return (ms < RETRY_MAX_MS ? ms : RETRY_MAX_MS) * 1000u;
}

static struct retry *retry_new(uint64_t epoch, enum cache_purge_kind kind, const char *svc, const char *str,
                               size_t len)
{
	struct retry *t = calloc(1, sizeof(*t) + len);
	if (!t)
		return NULL;
	t->epoch = epoch;
	t->kind = kind;
	t->len = len;
	snprintf(t->svc, sizeof(t->svc), "%s", svc);
	memcpy(t->s, str, len);
	return t;
}

/* Queues a purge Redis did not take (lock held); false when out of memory. */
static bool retry_queue_locked(struct retry *t)
{
	if (!t)
		return false;
	t->attempts++;
	t->due_us = mono_us() + retry_delay_us(t->attempts);
	t->next = retries.head;
	retries.head = t;
	__atomic_store_n(&retries.n, retries.n + 1, __ATOMIC_RELAXED);
	return true;
}

static void retry_queue(struct retry *t, const char *why)
{
	pthread_mutex_lock(&retries.lock);
	bool first = !retries.logged;
	retries.logged = true;
	bool ok = retry_queue_locked(t);
	pthread_mutex_unlock(&retries.lock);
	if (first)
		log_warn("cache: a purge did not reach Redis (%s); the keys it covers are not served from Redis "
		         "until it is applied, and it is retried", why);
	if (!ok)
		log_error("cache: cannot keep a purge Redis did not take (out of memory); its keys stay fenced");
}

struct pending_purge {
	uint64_t epoch;
	cache_purge_cb cb;
	void *arg;
	struct retry *retry; /* the purge again, in case Redis does not take it */
};

static void pending_purge_done(void *arg, bool ok)
{
	struct pending_purge *p = arg;
	if (ok) {
		pending_done(p->epoch);
		free(p->retry);
	} else {
		retry_queue(p->retry, "refused or unanswered");
	}
	if (p->cb)
		p->cb(p->arg, ok);
	free(p);
}

/* ---- purges ------------------------------------------------------------ */

/* The purge's L2 half, fenced (see above) until Redis has taken it. */
static bool cache_purge_l2(struct l2 *l2, uint64_t epoch, enum cache_purge_kind kind, const char *svc,
                           const char *s, size_t len, cache_purge_cb cb, void *arg)
{
	char tag[L2_TAG_MAX];
	bool sendable = cache_l2_purge_tag(kind, svc, s, len, tag, sizeof(tag)) > 0;
	struct pending_purge *p = l2 && epoch && sendable ? malloc(sizeof(*p)) : NULL;
	if (p)
		p->retry = retry_new(epoch, kind, svc, s, len);
	if (!p || !p->retry) {
		free(p);
		return cache_l2_purge(l2, kind, svc, s, len, cb, arg);
	}
	p->epoch = epoch;
	p->cb = cb;
	p->arg = arg;
	pending_add(epoch);
	if (cache_l2_purge(l2, kind, svc, s, len, pending_purge_done, p))
		return cb != NULL;
	/* not even sent (no connection): it waits with the others */
	retry_queue(p->retry, "not sent");
	free(p);
	return false;
}

static void retry_done(void *arg, bool ok)
{
	struct retry *t = arg;
	if (ok) {
		pending_done(t->epoch);
		pthread_mutex_lock(&retries.lock);
		retries.applied++;
		retries.inflight--;
		bool drained = retries.n == 0 && retries.inflight == 0;
		if (drained)
			retries.logged = false;
		pthread_mutex_unlock(&retries.lock);
		if (drained)
			log_info("cache: every purge Redis had not taken is applied now");
		free(t);
		return;
	}
	pthread_mutex_lock(&retries.lock);
	retries.inflight--;
	retry_queue_locked(t);
	pthread_mutex_unlock(&retries.lock);
}

/* Folds waiting purges past RETRY_MAX into one purge of everything (lock
 * held): the fence of that purge's epoch covers every key they covered. */
static void retry_fold_locked(void)
{
	if (retries.n <= RETRY_MAX)
		return;
	struct retry *keep = NULL, *t = retries.head;
	char svc[LV_NAME_MAX + 1] = "";
	unsigned n = 0;
	while (t) {
		struct retry *next = t->next;
		if (n < RETRY_MAX / 2) {
			t->next = keep;
			keep = t;
			n++;
		} else {
			snprintf(svc, sizeof(svc), "%s", t->svc);
			pending_done(t->epoch);
			retries.folded++;
			free(t);
		}
		t = next;
	}
	retries.head = keep;
	__atomic_store_n(&retries.n, n, __ATOMIC_RELAXED);
	/* the fold's own epoch is in the purge log (fills refuse) and pending
	 * (L2 hits are fenced) until Redis takes it */
	uint64_t e = purge_log_add(PK_ALL, "", 0);
	pending_add(e);
	struct retry *all = retry_new(e, CACHE_PURGE_ALL, svc, "/", 1);
	if (!retry_queue_locked(all))
		log_error("cache: cannot fold waiting purges (out of memory); their keys stay fenced");
}

void cache_purge_retry(struct l2 *l2)
{
	if (!l2 || !__atomic_load_n(&retries.n, __ATOMIC_RELAXED))
		return;
	uint64_t now = mono_us();
	struct retry *due[16];
	unsigned nd = 0;
	pthread_mutex_lock(&retries.lock);
	retry_fold_locked();
	for (struct retry **pp = &retries.head; *pp && nd < 16;) {
		struct retry *t = *pp;
		if (t->due_us <= now) {
			*pp = t->next;
			__atomic_store_n(&retries.n, retries.n - 1, __ATOMIC_RELAXED);
			retries.inflight++;
			retries.retried++;
			due[nd++] = t;
		} else {
			pp = &t->next;
		}
	}
	pthread_mutex_unlock(&retries.lock);
	for (unsigned i = 0; i < nd; i++) {
		struct retry *t = due[i];
		if (!cache_l2_purge(l2, t->kind, t->svc, t->s, t->len, retry_done, t))
			retry_done(t, false);
	}
}

void cache_purge_retry_stats(struct cache_purge_retry_stats *out)
{
	pthread_mutex_lock(&retries.lock);
	out->waiting = retries.n + retries.inflight;
	out->retried = retries.retried;
	out->applied = retries.applied;
	out->folded = retries.folded;
	pthread_mutex_unlock(&retries.lock);
	out->fenced = cache_l2_fence_floor() != UINT64_MAX;
}

void cache_purge_retry_clear(void)
{
	pthread_mutex_lock(&retries.lock);
	while (retries.head) {
		struct retry *t = retries.head;
		retries.head = t->next;
		free(t);
	}
	__atomic_store_n(&retries.n, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&retries.lock);
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
