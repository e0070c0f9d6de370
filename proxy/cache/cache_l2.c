/*
 * cache_l2.c - the Redis tier in the cache stage.
 *
 * On an L1 miss that this process is to fill (cache.c has already joined or
 * started the in-process fill for the key):
 *
 *   l2_lookup ── hit ──▶ store in L1, answer (Cache-Status: hit; detail=l2)
 *       │ miss
 *       ▼
 *   l2_fill_begin ── won ──▶ upstream; the stored response is committed
 *       │ lost                to L2 under the lease (cache_l2_commit)
 *       ▼
 *   poll l2_lookup every L2_POLL_MS until lease_wait ── hit ──▶ answer
 *       │ still nothing
 *       ▼
 *   upstream without a lease (stored in L1 only)
 *
 * Redis trouble at any step (timeout, down, breaker open) sends the request
 * on to the upstream: a cache failure never becomes an error.
 *
 * Tags: every entry carries its URL tag (service + target: all hosts and
 * variants of the URL), one tag per '/'-terminated path prefix (so "/" covers
 * everything), and the route's cache_tags. They are computed the same way at
 * begin and at commit, so the generations read at begin line up with them.
 *
 * Lifetime: while an L2 operation is in flight (CR(r)->l2_pending) the request
 * outlives its client (request_client_gone detaches it); each callback first
 * clears l2_pending and, if the client has gone, ends the request.
 */
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_internal.h"
#include "cache/key.h"
#include "cache/l2.h"
#include "cache/record.h"
#include "log.h"
#include "net/worker.h"
#include "resolver.h"

#define L2_POLL_MS 20
#define TAG_BUF (L2_MAX_TAGS * 256)

size_t cache_url_tag(const char *svc, const char *target, size_t len, char *out, size_t cap)
{
	if (cap < 4)
		return 0;
	size_t kl = key_path_prefix(svc, target, len, out + 2, cap - 3);
	if (!kl)
		return 0;
	memcpy(out, "u:", 2);
	out[2 + kl] = KEY_SEP;
	return kl + 3;
}

/* The tags of r's entry, in a fixed order; returns how many, and the bytes
 * of `buf` used in *used. */
static unsigned l2_tags_of(const struct request *r, char *buf, struct l2_str *tags, size_t *used)
{
	const struct lv_head *hd = r->head;
	const char *svc = r->rt->policy->service;
	const char *path = hd->text + hd->target_off;
	size_t o = 0;
	unsigned n = 0;
	/* the URL: "u:" service US target US, covering every host and variant */
	size_t ul = cache_url_tag(svc, path, hd->target_len, buf + o, TAG_BUF - o);
	if (ul) {
		tags[n++] = (struct l2_str){buf + o, ul};
		o += ul;
	}
	size_t lens[16];
	unsigned np = l2_prefix_lens(path, hd->path_len, lens, 16);
	for (unsigned i = 0; i < np && n < L2_MAX_TAGS - 8; i++) {
		size_t tl = l2_tag_prefix(svc, path, lens[i], buf + o, TAG_BUF - o);
		if (tl) {
			tags[n++] = (struct l2_str){buf + o, tl};
			o += tl;
		}
	}
	char rbuf[LV_HEADER_LIST_MAX * 4];
	struct record_str rt_tags[L2_MAX_TAGS];
	unsigned nr = cache_route_tags(r, rbuf, sizeof(rbuf), rt_tags, L2_MAX_TAGS - n);
	for (unsigned i = 0; i < nr; i++) {
		size_t w = l2_tag_key(svc, rt_tags[i].p, rt_tags[i].len, buf + o, TAG_BUF - o);
		if (w) {
			tags[n++] = (struct l2_str){buf + o, w};
			o += w;
		}
	}
	*used = o;
	return n;
}

/* Looks r's key up with the tags r's entry would have. */
static int l2_lookup_req(struct request *r, l2_lookup_cb cb)
{
	struct cache_req *cr = CR(r);
	char buf[TAG_BUF];
	struct l2_str tags[L2_MAX_TAGS];
	size_t used;
	unsigned n = l2_tags_of(r, buf, tags, &used);
	/* a purge pending now may land after this lookup is answered: the
	 * answer is checked against it too (cache_l2_fenced) */
	cr->l2_fence_floor = cache_l2_fence_floor();
	return l2_lookup_tags(loop_l2(r->w), cr->key, cr->key_len, tags, n, cb, r);
}

static void l2_resume_upstream(struct request *r)
{
	request_resume(r);
}

/* An L2 callback: the operation is over. False when the request ended
 * because its client left meanwhile. */
static bool l2_back(struct request *r)
{
	CR(r)->l2_pending = false;
	if (r->conn)
		return true;
	request_client_gone(r);
	return false;
}

/* Puts an L2 record into L1 (when it is still fresh) and answers from it;
 * a record no L1 shard can hold is answered from a copy of its own. */
static bool l2_answer(struct request *r, const char *rec, size_t len)
{
	struct cache_req *cr = CR(r);
	struct record_view v;
	if (record_decode(rec, len, &v) != RECORD_OK)
		return false;
	int64_t now_s = (int64_t)(cache_unix_ms() / 1000);
	int64_t left = v.lifetime - (v.initial_age + (now_s - v.response_time / 1000));
	int64_t window = v.swr > v.sie ? v.swr : v.sie;
	if (left <= 0)
		return false; /* stale in L2: let the fill path refresh it */
	const char *tagp[RECORD_MAX_TAGS];
	size_t tagl[RECORD_MAX_TAGS];
	unsigned nt = 0;
	struct record_cursor c = {0};
	struct record_str t;
	while (nt < RECORD_MAX_TAGS && record_next_tag(&v, &c, &t)) {
		tagp[nt] = t.p;
		tagl[nt] = t.len;
		nt++;
	}
	/* a purge from this process may not have reached Redis yet: this
	 * entry may be what it removed */
	if (cache_l2_fenced(cr->l2_fence_floor, cr->key, cr->key_len, tagp, tagl, nt)) {
		CSTAT(l2_fenced);
		return false;
	}
	uint64_t expires = cache_unix_ms() + (uint64_t)(left + window) * 1000u;
	switch (cache_put(r, cr->epoch, rec, len, expires, NULL, 0, tagp, tagl, nt)) {
	case PUT_OK:
		fill_finish(r, FILL_STORED); /* this process's waiters find it in the L1 */
		return cache_lookup(r, "hit; detail=l2") == LK_HIT;
	case PUT_PURGED:
		return false; /* a purge landed since the miss: this may be what it removed */
	case PUT_TOO_BIG:
	case PUT_ERROR:
		break;
	}
	struct l1_entry *e = l1_entry_detached(rec, len);
	return e && cache_answer(r, e, "hit; detail=l2") == LK_HIT;
}

/* Hit-for-miss learnt from Redis: another replica's fill of this key could
 * not be stored. Go upstream now, and let this replica's misses do the same. */
static void l2_pass(struct request *r)
{
	struct cache_req *cr = CR(r);
	CSTAT(pass_hits);
	cr->pass = true;
	pass_mark(cr->key, cr->key_len, r->rt->policy->cache.uncacheable_ttl_ms);
	l2_resume_upstream(r);
}

static void l2_poll(evutil_socket_t fd, short what, void *arg);

/* Redis failed this request: pass through, and store nothing, since no
 * lease or generation can vouch for a fill made without it. */
static void l2_bypass(struct request *r, const char *why)
{
	struct cache_req *cr = CR(r);
	CSTAT(l2_errors);
	cr->bypass_store = true;
	snprintf(cr->status, sizeof(cr->status), "Cache-Status: levee; fwd=bypass; detail=%s\r\n", why);
}

/* Looks again in L2_POLL_MS for another replica's fill. */
static void l2_schedule_poll(struct request *r)
{
	struct cache_req *cr = CR(r);
	cr->l2_pending = true;
	struct timeval tv = {0, L2_POLL_MS * 1000};
	if (event_base_once(r->w->base, -1, EV_TIMEOUT, l2_poll, r, &tv) < 0) {
		cr->l2_pending = false;
		l2_resume_upstream(r);
	}
}

static void l2_on_begin(struct l2 *l2, enum l2_err err, const struct l2_lease *lease, void *arg);

static void l2_on_lookup(struct l2 *l2, enum l2_err err, enum l2_lookup_res res, const char *rec, size_t len,
                         void *arg)
{
	struct request *r = arg;
	struct cache_req *cr = CR(r);
	if (!l2_back(r))
		return;
	if (err != L2_ENONE) {
		l2_bypass(r, "redis-error");
		l2_resume_upstream(r);
		return;
	}
	if (res == L2_HIT && l2_answer(r, rec, len)) {
		CSTAT(l2_hits);
		return;
	}
	if (res == L2_PASS) {
		l2_pass(r);
		return;
	}
	if (cr->l2_waiting) {
		/* another replica holds the lease: keep looking until lease_wait */
		if (now_us() >= cr->l2_wait_until) {
			CSTAT(lease_wait_timeouts);
			/* the other replica's fill is late: a stale copy where the
			 * route or origin allows one, else go upstream ourselves */
			if (cache_fail_takeover(r, R_UP_TIMEOUT))
				return;
			l2_resume_upstream(r);
			return;
		}
		l2_schedule_poll(r);
		return;
	}
	CSTAT(l2_misses);
	char buf[TAG_BUF];
	struct l2_str tags[L2_MAX_TAGS];
	size_t used;
	unsigned n = l2_tags_of(r, buf, tags, &used);
	cr->l2_pending = true;
	if (l2_fill_begin(l2, cr->key, cr->key_len, tags, n, r->rt->policy->redis.lease_ms, l2_on_begin, r) !=
	    LV_OK) {
		cr->l2_pending = false;
		l2_resume_upstream(r);
	}
}

static void l2_poll(evutil_socket_t fd, short what, void *arg)
{
	struct request *r = arg;
	struct cache_req *cr = CR(r);
	if (!l2_back(r))
		return;
	cr->l2_pending = true;
	if (l2_lookup_req(r, l2_on_lookup) != LV_OK) {
		cr->l2_pending = false;
		l2_resume_upstream(r);
	}
}

static void l2_on_begin(struct l2 *l2, enum l2_err err, const struct l2_lease *lease, void *arg)
{
	struct request *r = arg;
	struct cache_req *cr = CR(r);
	if (err == L2_ENONE && lease && lease->won) {
		cr->lease = *lease; /* held until commit or cache_l2_end */
		cr->l2_lease = true;
	}
	if (!l2_back(r))
		return;
	if (err != L2_ENONE) {
		l2_bypass(r, "redis-error");
		l2_resume_upstream(r);
		return;
	}
	if (cr->l2_lease) {
		l2_resume_upstream(r);
		return;
	}
	if (lease->pass) {
		l2_pass(r);
		return;
	}
	/* lost: wait for the holder's entry */
	CSTAT(lease_waits);
	cr->l2_waiting = true;
	cr->l2_wait_until = now_us() + r->rt->policy->redis.lease_wait_ms * 1000u;
	l2_schedule_poll(r);
}

int cache_l2_miss(struct request *r)
{
	struct cache_req *cr = CR(r);
	struct l2 *l2 = loop_l2(r->w);
	if (!l2 || !cr->key || r->head->method != HTTP_GET)
		return STAGE_NEXT;
	if (!redis_available(loop_redis(r->w))) {
		l2_bypass(r, "redis-down");
		return STAGE_NEXT;
	}
	cr->l2_pending = true;
	if (l2_lookup_req(r, l2_on_lookup) != LV_OK) {
		cr->l2_pending = false;
		return STAGE_NEXT;
	}
	return STAGE_ASYNC;
}

/* ---- opening ----------------------------------------------------------- */

int cache_l2_open(struct event_base *base, const struct lv_policy *p, struct redis **redis, struct l2 **l2,
                  char *err, size_t errlen)
{
	*redis = NULL;
	*l2 = NULL;
	if (!policy_redis_on(p))
		return LV_OK;
	struct redis_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	if (p->redis.address.host[0]) {
		snprintf(cfg.host, sizeof(cfg.host), "%s", p->redis.address.host);
		cfg.port = p->redis.address.port;
	} else {
		/* "h:p,h:p", each already checked by the policy */
		const char *s = p->redis.sentinels;
		while (*s && cfg.nsentinels < REDIS_MAX_SENTINELS) {
			const char *e = strchr(s, ',');
			size_t n = e ? (size_t)(e - s) : strlen(s);
			char one[LV_HOST_MAX + 8];
			struct lv_hostport hp;
			const char *why;
			snprintf(one, sizeof(one), "%.*s", (int)n, s);
			if (value_hostport(one, &hp, &why) == LV_OK) {
				snprintf(cfg.sentinels[cfg.nsentinels], LV_HOST_MAX, "%s", hp.host);
				cfg.sentinel_ports[cfg.nsentinels++] = hp.port;
			}
			s = e ? e + 1 : s + n;
		}
		snprintf(cfg.master, sizeof(cfg.master), "%s", p->redis.master);
	}
	cfg.command_timeout_ms = p->redis.timeout_ms;
	cfg.connect_timeout_ms = p->redis.connect_timeout_ms;
	cfg.watch = redis_watch_process();
	cfg.resolver = resolver_process();
	*redis = redis_new(base, &cfg, err, errlen);
	if (!*redis)
		return LV_ERR;
	*l2 = l2_new(*redis);
	if (!*l2) {
		redis_free(*redis);
		*redis = NULL;
		snprintf(err, errlen, "out of memory");
		return LV_ERR;
	}
	return LV_OK;
}

/* ---- purges ------------------------------------------------------------ */

struct l2_purge_done {
	cache_purge_cb cb;
	void *arg;
};

static void l2_on_purge(struct l2 *l2, enum l2_err err, long long value, void *arg)
{
	if (err != L2_ENONE)
		log_debug("cache: a purge did not reach Redis (%s)", l2_strerror(err));
	struct l2_purge_done *d = arg;
	if (d) {
		d->cb(d->arg, err == L2_ENONE);
		free(d);
	}
}

size_t cache_l2_purge_tag(enum cache_purge_kind kind, const char *svc, const char *s, size_t len, char *tag,
                          size_t cap)
{
	switch (kind) {
	case CACHE_PURGE_URL:
		return cache_url_tag(svc, s, len, tag, cap);
	case CACHE_PURGE_PREFIX:
		/* only '/'-terminated prefixes are tags of every entry under them */
		if (!len || s[len - 1] != '/')
			return 0;
		return l2_tag_prefix(svc, s, len, tag, cap);
	case CACHE_PURGE_TAG:
		return l2_tag_key(svc, s, len, tag, cap);
	case CACHE_PURGE_ALL:
		return l2_tag_prefix(svc, "/", 1, tag, cap);
	}
	return 0;
}

bool cache_l2_purge(struct l2 *l2, enum cache_purge_kind kind, const char *svc, const char *s, size_t len,
                    cache_purge_cb cb, void *arg)
{
	if (!l2)
		return false;
	char tag[L2_TAG_MAX];
	size_t tl = cache_l2_purge_tag(kind, svc, s, len, tag, sizeof(tag));
	if (!tl)
		return false;
	struct l2_purge_done *d = NULL;
	if (cb && !(d = malloc(sizeof(*d))))
		return false;
	if (d)
		*d = (struct l2_purge_done){cb, arg};
	if (l2_purge_tag(l2, tag, tl, l2_on_purge, d) != LV_OK) {
		log_debug("cache: could not send a purge to Redis");
		free(d);
		return false;
	}
	return d != NULL;
}

/* ---- after the fill ---------------------------------------------------- */

struct l2_after {
	struct cache_fill *fill; /* waiters to wake once Redis answered (an L2-only store) */
	uint32_t klen;
	char key[];
};

static void l2_on_commit(struct l2 *l2, enum l2_err err, enum l2_commit_res res, void *arg)
{
	struct l2_after *a = arg;
	bool stored = err == L2_ENONE && res == L2_COMMIT_STORED;
	if (stored) {
		CSTAT(l2_commits);
	} else {
		CSTAT(l2_commit_refused);
		if (err == L2_ENONE && res == L2_COMMIT_PURGED) {
			/* another replica purged the key while we filled: what we
			 * just put in L1 predates that purge */
			l1_purge_key(cache_l1, a->key, a->klen);
		}
	}
	fill_finish_detached(a->fill, stored ? FILL_STORED_L2 : FILL_FAILED);
	free(a);
}

static void l2_on_abort(struct l2 *l2, enum l2_err err, long long value, void *arg)
{
}

bool cache_l2_commit(struct request *r, const void *rec, size_t len, uint64_t ttl_ms, struct cache_fill *f)
{
	struct cache_req *cr = CR(r);
	if (!cr->l2_lease || !loop_l2(r->w)) {
		fill_finish_detached(f, FILL_FAILED);
		return false;
	}
	cr->l2_lease = false;
	char buf[TAG_BUF];
	struct l2_str tags[L2_MAX_TAGS];
	size_t o;
	unsigned n = l2_tags_of(r, buf, tags, &o);
	/* late tags: the record's own (Surrogate-Key, route), after the ones
	 * the lease's generations were read for */
	struct record_view v;
	if (record_decode(rec, len, &v) == RECORD_OK) {
		struct record_cursor c = {0};
		struct record_str t;
		const char *svc = r->rt->policy->service;
		while (n < L2_MAX_TAGS && record_next_tag(&v, &c, &t)) {
			size_t w = l2_tag_key(svc, t.p, t.len, buf + o, TAG_BUF - o);
			if (w) {
				tags[n++] = (struct l2_str){buf + o, w};
				o += w;
			}
		}
	}
	struct l2_after *a = malloc(sizeof(*a) + cr->key_len);
	if (!a) {
		fill_finish_detached(f, FILL_FAILED);
		return false; /* the lease expires by itself */
	}
	a->fill = f;
	a->klen = cr->key_len;
	memcpy(a->key, cr->key, cr->key_len);
	if (l2_fill_commit(loop_l2(r->w), cr->key, cr->key_len, &cr->lease, tags, n, rec, len, ttl_ms ? ttl_ms : 1,
	                   l2_on_commit, a) != LV_OK) {
		fill_finish_detached(f, FILL_FAILED);
		free(a);
		return false;
	}
	return true;
}

static void l2_on_pass(struct l2 *l2, enum l2_err err, long long value, void *arg)
{
}

void cache_l2_pass(struct request *r)
{
	struct cache_req *cr = CR(r);
	uint64_t ttl = r->rt->policy->cache.uncacheable_ttl_ms;
	struct l2 *l2 = loop_l2(r->w);
	if (!l2 || !cr->key || cr->bypass_store)
		return;
	if (!ttl) {
		cache_l2_end(r); /* no marker: just give the lease back */
		return;
	}
	/* the marker replaces our lease, or takes the place of none: either
	 * way the lease is no longer ours to release */
	if (l2_fill_pass(l2, cr->key, cr->key_len, cr->l2_lease ? &cr->lease : NULL, ttl, l2_on_pass, NULL) != LV_OK)
		log_debug("cache: could not set a hit-for-miss marker");
	cr->l2_lease = false;
}

void cache_l2_pass_clear(struct request *r)
{
	struct cache_req *cr = CR(r);
	if (loop_l2(r->w) && cr->key && l2_pass_clear(loop_l2(r->w), cr->key, cr->key_len, l2_on_pass, NULL) != LV_OK)
		log_debug("cache: could not clear a hit-for-miss marker");
}

void cache_l2_end(struct request *r)
{
	struct cache_req *cr = CR(r);
	if (!cr->l2_lease || !loop_l2(r->w))
		return;
	cr->l2_lease = false;
	if (l2_fill_abort(loop_l2(r->w), cr->key, cr->key_len, &cr->lease, l2_on_abort, NULL) != LV_OK)
		log_debug("cache: could not release a lease; it expires by itself");
}
