/*
 * purge.c - what keeps the cache's purges from being undone (purge.h);
 * cache_purge() (cache_ctx.c) purges the L1 and Redis through it:
 *
 *  - the purge log: fills that began before a purge refuse to store
 *    (purged_since(), used at store time);
 *  - the pending purges: L2 hits a purge covers are not served until Redis
 *    has acknowledged it (purge_fenced(), used by cache_l2.c);
 *  - the unapplied purges: one Redis refused or never answered stays
 *    pending, so its keys stay fenced, and is sent again by the workers'
 *    ticks (purge_retry()) until Redis takes it.
 *
 * Threads: any (workers, admin, the invalidate thread); the log, the
 * pending set and the retries are each under one mutex.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/purge.h"

#include "cache/l2.h"
#include "log.h"
#include "policy.h"

void purge_state_init(struct purge_state *ps)
{
	memset(ps, 0, sizeof(*ps));
	pthread_mutex_init(&ps->log.lock, NULL);
	pthread_mutex_init(&ps->pend.lock, NULL);
	pthread_mutex_init(&ps->retries.lock, NULL);
}

void purge_state_destroy(struct purge_state *ps)
{
	purge_retry_clear(ps);
	pthread_mutex_destroy(&ps->log.lock);
	pthread_mutex_destroy(&ps->pend.lock);
	pthread_mutex_destroy(&ps->retries.lock);
}

/* ---- the purge log ------------------------------------------------------
 *
 * A fill that began before a purge must not store what it fetched after the
 * purge: its response may predate the write that caused the purge. Every
 * purge takes the next epoch and is remembered here; a fill notes the epoch
 * when it goes upstream, and at store time it refuses if any later purge
 * covers its key or one of its tags. Prefixes longer than PURGE_KEY_MAX are
 * kept truncated, which only makes them match more; when more purges than the
 * log holds happened during one fill, the fill refuses to store. */

uint64_t purge_log_add(struct purge_state *ps, enum purge_kind kind, const char *key, size_t len)
{
	pthread_mutex_lock(&ps->log.lock);
	uint64_t e = ++ps->log.epoch;
	unsigned i = (unsigned)(e % PURGE_LOG);
	ps->log.ring[i].epoch = e;
	ps->log.ring[i].kind = (uint8_t)kind;
	ps->log.ring[i].len = (uint16_t)(len < PURGE_KEY_MAX ? len : PURGE_KEY_MAX);
	memcpy(ps->log.ring[i].key, key, ps->log.ring[i].len);
	pthread_mutex_unlock(&ps->log.lock);
	return e;
}

uint64_t purge_epoch(struct purge_state *ps)
{
	pthread_mutex_lock(&ps->log.lock);
	uint64_t e = ps->log.epoch;
	pthread_mutex_unlock(&ps->log.lock);
	return e;
}

/* Whether a purge after `since` covers `key` or one of its tags. */
bool purged_since(struct purge_state *ps, uint64_t since, const char *key, size_t klen, const char *const *tags,
                  const size_t *tlen, unsigned ntags)
{
	bool hit = false;
	pthread_mutex_lock(&ps->log.lock);
	if (ps->log.epoch - since >= PURGE_LOG) {
		hit = ps->log.epoch != since; /* the log no longer reaches back */
	} else {
		for (uint64_t e = since + 1; e <= ps->log.epoch && !hit; e++) {
			unsigned i = (unsigned)(e % PURGE_LOG);
			size_t n = ps->log.ring[i].len;
			switch (ps->log.ring[i].kind) {
			case PK_ALL:
				hit = true;
				break;
			case PK_PREFIX:
				hit = n <= klen && memcmp(ps->log.ring[i].key, key, n) == 0;
				break;
			case PK_TAG:
				for (unsigned t = 0; t < ntags && !hit; t++)
					hit = tlen[t] >= n && memcmp(ps->log.ring[i].key, tags[t], n) == 0 &&
					      (tlen[t] == n || n == PURGE_KEY_MAX);
				break;
			}
		}
	}
	pthread_mutex_unlock(&ps->log.lock);
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
 * pending when its answer arrives, is not served (purge_fenced). Both
 * ends matter: Redis may run the lookup before the purge and answer the
 * purge first, on another thread. */

static void pending_add(struct purge_state *ps, uint64_t e)
{
	pthread_mutex_lock(&ps->pend.lock);
	if (ps->pend.n < PENDING_MAX) {
		ps->pend.epoch[ps->pend.n] = e;
		__atomic_store_n(&ps->pend.n, ps->pend.n + 1, __ATOMIC_RELEASE);
	} else {
		__atomic_store_n(&ps->pend.overflow, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&ps->pend.lock);
}

static void pending_done(struct purge_state *ps, uint64_t e)
{
	pthread_mutex_lock(&ps->pend.lock);
	for (unsigned i = 0; i < ps->pend.n; i++) {
		if (ps->pend.epoch[i] == e) {
			ps->pend.epoch[i] = ps->pend.epoch[ps->pend.n - 1];
			__atomic_store_n(&ps->pend.n, ps->pend.n - 1, __ATOMIC_RELEASE);
			break;
		}
	}
	if (ps->pend.n == 0)
		__atomic_store_n(&ps->pend.overflow, false, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ps->pend.lock);
}

uint64_t purge_fence_floor(struct purge_state *ps)
{
	/* the common case, nothing pending, without the lock: a purge that
	 * becomes pending after this read began after the lookup or answer it
	 * is asked for, and is concurrent with it */
	if (__atomic_load_n(&ps->pend.n, __ATOMIC_ACQUIRE) == 0 && !__atomic_load_n(&ps->pend.overflow, __ATOMIC_ACQUIRE))
		return UINT64_MAX;
	pthread_mutex_lock(&ps->pend.lock);
	uint64_t oldest = ps->pend.overflow ? 1 : UINT64_MAX;
	for (unsigned i = 0; i < ps->pend.n; i++)
		if (ps->pend.epoch[i] < oldest)
			oldest = ps->pend.epoch[i];
	pthread_mutex_unlock(&ps->pend.lock);
	return oldest;
}

bool purge_fenced(struct purge_state *ps, uint64_t floor, const char *key, size_t klen, const char *const *tags,
                  const size_t *tlen, unsigned ntags)
{
	uint64_t now = purge_fence_floor(ps);
	uint64_t oldest = now < floor ? now : floor;
	if (oldest == UINT64_MAX)
		return false; /* nothing pending, then or now: the common case, no purge log scan */
	return purged_since(ps, oldest - 1, key, klen, tags, tlen, ntags);
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
	struct purge_state *ps;
	uint64_t epoch;
	uint64_t due_us;
	unsigned attempts;
	enum cache_purge_kind kind;
	size_t len;
	char svc[LV_NAME_MAX + 1];
	char s[];
};

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

static struct retry *retry_new(struct purge_state *ps, uint64_t epoch, enum cache_purge_kind kind, const char *svc, const char *str,
                               size_t len)
{
	struct retry *t = calloc(1, sizeof(*t) + len);
	if (!t)
		return NULL;
	t->ps = ps;
	t->epoch = epoch;
	t->kind = kind;
	t->len = len;
	snprintf(t->svc, sizeof(t->svc), "%s", svc);
	memcpy(t->s, str, len);
	return t;
}

/* Queues a purge Redis did not take (lock held); false when out of memory. */
static bool retry_queue_locked(struct purge_state *ps, struct retry *t)
{
	if (!t)
		return false;
	t->attempts++;
	t->due_us = mono_us() + retry_delay_us(t->attempts);
	t->next = ps->retries.head;
	ps->retries.head = t;
	__atomic_store_n(&ps->retries.n, ps->retries.n + 1, __ATOMIC_RELAXED);
	return true;
}

static void retry_queue(struct purge_state *ps, struct retry *t, const char *why)
{
	pthread_mutex_lock(&ps->retries.lock);
	bool first = !ps->retries.logged;
	ps->retries.logged = true;
	bool ok = retry_queue_locked(ps, t);
	pthread_mutex_unlock(&ps->retries.lock);
	if (first)
		log_warn("cache: a purge did not reach Redis (%s); the keys it covers are not served from Redis "
		         "until it is applied, and it is retried", why);
	if (!ok)
		log_error("cache: cannot keep a purge Redis did not take (out of memory); its keys stay fenced");
}

struct pending_purge {
	struct purge_state *ps;
	uint64_t epoch;
	cache_purge_cb cb;
	void *arg;
	struct retry *retry; /* the purge again, in case Redis does not take it */
};

static void pending_purge_done(void *arg, bool ok)
{
	struct pending_purge *p = arg;
	struct purge_state *ps = p->ps;
	if (ok) {
		pending_done(ps, p->epoch);
		free(p->retry);
	} else {
		retry_queue(ps, p->retry, "refused or unanswered");
	}
	if (p->cb)
		p->cb(p->arg, ok);
	free(p);
}

/* ---- purges ------------------------------------------------------------ */

/* The purge's L2 half, fenced (see above) until Redis has taken it. */
bool purge_send(struct purge_state *ps, struct l2 *l2, uint64_t epoch, enum cache_purge_kind kind,
                const char *svc, const char *s, size_t len, cache_purge_cb cb, void *arg)
{
	char tag[L2_TAG_MAX];
	bool sendable = cache_l2_purge_tag(kind, svc, s, len, tag, sizeof(tag)) > 0;
	struct pending_purge *p = l2 && epoch && sendable ? malloc(sizeof(*p)) : NULL;
	if (p)
		p->retry = retry_new(ps, epoch, kind, svc, s, len);
	if (!p || !p->retry) {
		free(p);
		return cache_l2_purge(l2, kind, svc, s, len, cb, arg);
	}
	p->ps = ps;
	p->epoch = epoch;
	p->cb = cb;
	p->arg = arg;
	pending_add(ps, epoch);
	if (cache_l2_purge(l2, kind, svc, s, len, pending_purge_done, p))
		return cb != NULL;
	/* not even sent (no connection): it waits with the others */
	retry_queue(ps, p->retry, "not sent");
	free(p);
	return false;
}

static void retry_done(void *arg, bool ok)
{
	struct retry *t = arg;
	struct purge_state *ps = t->ps;
	if (ok) {
		pending_done(ps, t->epoch);
		pthread_mutex_lock(&ps->retries.lock);
		ps->retries.applied++;
		ps->retries.inflight--;
		bool drained = ps->retries.n == 0 && ps->retries.inflight == 0;
		if (drained)
			ps->retries.logged = false;
		pthread_mutex_unlock(&ps->retries.lock);
		if (drained)
			log_info("cache: every purge Redis had not taken is applied now");
		free(t);
		return;
	}
	pthread_mutex_lock(&ps->retries.lock);
	ps->retries.inflight--;
	retry_queue_locked(ps, t);
	pthread_mutex_unlock(&ps->retries.lock);
}

/* Folds waiting purges past RETRY_MAX into one purge of everything (lock
 * held): the fence of that purge's epoch covers every key they covered. */
static void retry_fold_locked(struct purge_state *ps)
{
	if (ps->retries.n <= RETRY_MAX)
		return;
	struct retry *keep = NULL, *t = ps->retries.head;
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
			pending_done(ps, t->epoch);
			ps->retries.folded++;
			free(t);
		}
		t = next;
	}
	ps->retries.head = keep;
	__atomic_store_n(&ps->retries.n, n, __ATOMIC_RELAXED);
	/* the fold's own epoch is in the purge log (fills refuse) and pending
	 * (L2 hits are fenced) until Redis takes it */
	uint64_t e = purge_log_add(ps, PK_ALL, "", 0);
	pending_add(ps, e);
	struct retry *all = retry_new(ps, e, CACHE_PURGE_ALL, svc, "/", 1);
	if (!retry_queue_locked(ps, all))
		log_error("cache: cannot fold waiting purges (out of memory); their keys stay fenced");
}

void purge_retry(struct purge_state *ps, struct l2 *l2)
{
	if (!l2 || !__atomic_load_n(&ps->retries.n, __ATOMIC_RELAXED))
		return;
	uint64_t now = mono_us();
	struct retry *due[16];
	unsigned nd = 0;
	pthread_mutex_lock(&ps->retries.lock);
	retry_fold_locked(ps);
	for (struct retry **pp = &ps->retries.head; *pp && nd < 16;) {
		struct retry *t = *pp;
		if (t->due_us <= now) {
			*pp = t->next;
			__atomic_store_n(&ps->retries.n, ps->retries.n - 1, __ATOMIC_RELAXED);
			ps->retries.inflight++;
			ps->retries.retried++;
			due[nd++] = t;
		} else {
			pp = &t->next;
		}
	}
	pthread_mutex_unlock(&ps->retries.lock);
	for (unsigned i = 0; i < nd; i++) {
		struct retry *t = due[i];
		if (!cache_l2_purge(l2, t->kind, t->svc, t->s, t->len, retry_done, t))
			retry_done(t, false);
	}
}

void purge_retry_stats(struct purge_state *ps, struct cache_purge_retry_stats *out)
{
	pthread_mutex_lock(&ps->retries.lock);
	out->waiting = ps->retries.n + ps->retries.inflight;
	out->retried = ps->retries.retried;
	out->applied = ps->retries.applied;
	out->folded = ps->retries.folded;
	pthread_mutex_unlock(&ps->retries.lock);
	out->fenced = purge_fence_floor(ps) != UINT64_MAX;
}

void purge_retry_clear(struct purge_state *ps)
{
	pthread_mutex_lock(&ps->retries.lock);
	while (ps->retries.head) {
		struct retry *t = ps->retries.head;
		ps->retries.head = t->next;
		free(t);
	}
	__atomic_store_n(&ps->retries.n, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&ps->retries.lock);
}
