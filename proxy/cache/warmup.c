/*
 * warmup.c - the warm-up (warmup.h).
 *
 * Invariants:
 *  - One instance per process (`W`), never freed: a Redis callback that
 *    arrives after warmup_stop() finds W.closing and only lets go of what
 *    it held. Everything it owns is on the main loop.
 *  - At most WARM_HOT_CONC hot-set lookups in flight, and at most
 *    `concurrency` fetches; every start passes its rate limiter first.
 *  - A fetch is ended from its own callbacks only by marking it; it is
 *    freed from a zero-delay event, never inside its bufferevent's callback.
 */
#include "cache/warmup.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_ctx.h"
#include "cache/freshness.h"
#include "cache/hotset.h"
#include "cache/l1.h"
#include "cache/l2.h"
#include "cache/record.h"
#include "cache/redis.h"
#include "cache/serve.h"
#include "log.h"
#include "net/loop.h"

#define WARM_MAX_CONC 64
#define WARM_POLL_MS 20
#define WARM_HOT_CONC 4 /* hot-set lookups in flight: a late timer is made up */
#define WARM_HOT_SLACK_US 20000u
#define WARM_LINE_MAX 64 /* bytes of a status line kept */

enum warm_state { WARM_OFF, WARM_HOT, WARM_URLS, WARM_DONE };
static const char *const warm_state_names[] = {"off", "hot_set", "urls", "done"};

/* One hot key's lookup in flight (its callback's argument). */
struct warm_lookup {
	bool busy;
	unsigned idx;          /* in the hot keys */
	uint64_t epoch, floor; /* purges as of the lookup's start */
};

struct warm_fetch {
	struct bufferevent *bev;
	bool busy;
	bool ended;
	int status;         /* of the answer, 0 until its status line */
	char line[WARM_LINE_MAX];
	size_t line_len;
};

static struct {
	struct warmup_env env;
	struct lv_policy *p;
	bool closing;
	bool top_pending; /* the hot set's ZREVRANGE is in flight */
	bool hot_wanted;  /* hot_keys > 0 (else the first step only waits for Redis) */
	struct event *pump;
	struct warm_rate hot_rate, url_rate;

	/* the hot set's keys, as read: NUL-separated, with their offsets and
	 * lengths; hot_next is the next to look up */
	char *hot_keys;
	size_t *hot_offs, *hot_lens;
	unsigned hot_n, hot_next;
	struct warm_lookup hot_slot[WARM_HOT_CONC];
	unsigned hot_inflight;

	size_t url_pos; /* in the policy's list */
	unsigned url_next;
	unsigned inflight;
	struct warm_fetch fetch[WARM_MAX_CONC];
	struct sockaddr_storage listen;
	int listen_len;

	/* read by other threads */
	atomic_int state;
	atomic_uint_fast64_t start_us, end_us, ready_wait_us;
	atomic_uint_fast64_t hot_total, hot_done, hot_loaded, url_total, url_done, url_ok, errors;
} W;

#define WSET(f, v) atomic_store_explicit(&W.f, (v), memory_order_relaxed)
#define WGET(f) atomic_load_explicit(&W.f, memory_order_relaxed)
#define WADD(f) atomic_fetch_add_explicit(&W.f, 1, memory_order_relaxed)

/* ---- the rate limiter -------------------------------------------------- */

void warm_rate_init(struct warm_rate *r, uint64_t per_second, uint64_t slack_us)
{
	r->interval_us = per_second ? 1000000u / per_second : 1000000u;
	r->slack_us = slack_us;
	r->next_us = 0;
}

uint64_t warm_rate_take(struct warm_rate *r, uint64_t now_us)
{
	if (now_us < r->next_us)
		return r->next_us - now_us;
	bool on_schedule = r->next_us && now_us - r->next_us <= r->slack_us;
	r->next_us = (on_schedule ? r->next_us : now_us) + r->interval_us;
	return 0;
}

/* ---- steps --------------------------------------------------------------- */

static void warm_pump(evutil_socket_t fd, short what, void *arg);

static void warm_later(uint64_t us)
{
	struct timeval tv = {(time_t)(us / 1000000u), (suseconds_t)(us % 1000000u)};
	event_add(W.pump, &tv);
}

static void warm_hot_free(void)
{
	free(W.hot_keys);
	free(W.hot_offs);
	free(W.hot_lens);
	W.hot_keys = NULL;
	W.hot_offs = W.hot_lens = NULL;
}

static void warm_finish(void)
{
	WSET(end_us, now_us());
	WSET(state, WARM_DONE);
	log_info("warm-up done in %llu ms: %llu of %llu hot keys loaded into the L1, %llu of %llu URLs fetched, %llu "
	         "error(s)",
	         (unsigned long long)((WGET(end_us) - WGET(start_us)) / 1000), (unsigned long long)WGET(hot_loaded),
	         (unsigned long long)WGET(hot_total), (unsigned long long)WGET(url_ok),
	         (unsigned long long)WGET(url_total), (unsigned long long)WGET(errors));
	warm_hot_free();
	policy_unref(W.p);
	W.p = NULL;
}

static void warm_urls_begin(void)
{
	WSET(state, WARM_URLS);
	if (!W.p->warmup.list.n) {
		warm_finish();
		return;
	}
	warm_later(0);
}

/* ---- 1. the hot set -------------------------------------------------------- */

/* An entry read for a hot key: checked like an L2 hit, then put in the L1.
 * True when it was stored. */
static bool warm_hot_put(const struct warm_lookup *lk, const char *key, size_t klen, const char *rec, size_t len)
{
	struct record_view v;
	if (record_decode(rec, len, &v) != RECORD_OK)
		return false;
	/* the route that would answer it now decides how long stale copies stay */
	const char *t = memchr(key, 0x1f, klen);
	const char *te = t ? memchr(t + 1, 0x1f, klen - (size_t)(t + 1 - key)) : NULL;
	if (!te)
		return false;
	t++;
	const char *q = memchr(t, '?', (size_t)(te - t));
	struct lv_captures caps;
	const struct lv_route *rt = policy_route_match(W.p, t, (size_t)((q ? q : te) - t), LV_M_GET, &caps);
	if (!route_caches(rt))
		return false;
	int64_t now_s = (int64_t)(now_unix_ms() / 1000);
	int64_t left = v.lifetime - fresh_current_age(v.initial_age, v.response_time / 1000, now_s);
	if (left <= 0)
		return false; /* stale: the first request revalidates it as usual */
	const char *tagp[RECORD_MAX_TAGS];
	size_t tagl[RECORD_MAX_TAGS];
	unsigned nt = record_tag_list(&v, tagp, tagl, RECORD_MAX_TAGS);
	struct purge_state *ps = &W.env.cache->purges;
	if (purge_fenced(ps, lk->floor, key, klen, tagp, tagl, nt))
		return false; /* a purge of ours has not reached Redis yet */
	uint64_t expires = now_unix_ms() + (uint64_t)(left + cache_keep_window(rt, v.swr, v.sie)) * 1000u;
	struct l1_entry *mine = NULL;
	if (l1_put_entry(W.env.cache->l1, key, klen, rec, len, expires, tagp, tagl, nt, &mine) != LV_OK)
		return false;
	bool purged = purged_since(ps, lk->epoch, key, klen, tagp, tagl, nt);
	if (purged && mine)
		l1_purge_entry(W.env.cache->l1, mine); /* a purge landed meanwhile */
	l1_entry_unref(mine);
	return !purged;
}

static void warm_on_hot_lookup(struct l2 *l2, enum l2_err err, enum l2_lookup_res res, const char *rec, size_t len,
                               void *arg)
{
	(void)l2;
	struct warm_lookup *lk = arg;
	lk->busy = false;
	W.hot_inflight--;
	if (W.closing)
		return;
	if (err != L2_ENONE)
		WADD(errors);
	else if (res == L2_HIT && warm_hot_put(lk, W.hot_keys + W.hot_offs[lk->idx], W.hot_lens[lk->idx], rec, len))
		WADD(hot_loaded);
	WADD(hot_done);
	warm_later(0);
}

static void warm_hot_step(void)
{
	while (W.hot_next < W.hot_n && W.hot_inflight < WARM_HOT_CONC) {
		uint64_t wait = warm_rate_take(&W.hot_rate, now_us());
		if (wait) {
			warm_later(wait);
			return;
		}
		struct warm_lookup *lk = W.hot_slot;
		while (lk->busy)
			lk++; /* one is free: hot_inflight < WARM_HOT_CONC */
		*lk = (struct warm_lookup){.busy = true,
		                           .idx = W.hot_next++,
		                           .epoch = purge_epoch(&W.env.cache->purges),
		                           .floor = purge_fence_floor(&W.env.cache->purges)};
		W.hot_inflight++;
		if (l2_lookup(W.env.l2, W.hot_keys + W.hot_offs[lk->idx], W.hot_lens[lk->idx], warm_on_hot_lookup, lk) !=
		    LV_OK) {
			lk->busy = false;
			W.hot_inflight--;
			WADD(errors);
			WADD(hot_done);
		}
	}
	if (W.hot_next >= W.hot_n && W.hot_inflight == 0)
		warm_urls_begin();
}

static void warm_on_top(struct redis *r, const redisReply *reply, enum redis_err err, void *arg)
{
	(void)r, (void)arg;
	W.top_pending = false;
	if (W.closing)
		return;
	if (err != REDIS_ENONE || reply->type != REDIS_REPLY_ARRAY) {
		log_warn("warm-up: cannot read the hot set (%s); skipped",
		         err != REDIS_ENONE ? redis_strerror(err) : "unexpected reply");
		WADD(errors);
		warm_urls_begin();
		return;
	}
	size_t bytes = 0;
	for (size_t i = 0; i < reply->elements; i++)
		if (reply->element[i]->type == REDIS_REPLY_STRING)
			bytes += reply->element[i]->len + 1;
	W.hot_keys = malloc(bytes + 1);
	W.hot_offs = malloc((reply->elements + 1) * sizeof(*W.hot_offs));
	W.hot_lens = malloc((reply->elements + 1) * sizeof(*W.hot_lens));
	if (!W.hot_keys || !W.hot_offs || !W.hot_lens) {
		warm_hot_free();
		WADD(errors);
		warm_urls_begin();
		return;
	}
	size_t o = 0;
	for (size_t i = 0; i < reply->elements; i++) {
		const redisReply *e = reply->element[i];
		if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > L2_KEY_MAX)
			continue;
		memcpy(W.hot_keys + o, e->str, e->len);
		W.hot_keys[o + e->len] = '\0';
		o += e->len + 1;
		W.hot_offs[W.hot_n] = o - e->len - 1;
		W.hot_lens[W.hot_n++] = e->len;
	}
	WSET(hot_total, W.hot_n);
	log_info("warm-up: %u hot key(s) to load from Redis", W.hot_n);
	warm_later(0);
}

static bool warm_redis_up(void)
{
	return redis_available(W.env.redis) && (!W.env.workers_on_redis || W.env.workers_on_redis(W.env.ctx));
}

static void warm_hot_begin(void)
{
	if (!warm_redis_up()) {
		if (now_us() - WGET(start_us) < WARMUP_REDIS_WAIT_MS * 1000ull) {
			warm_later(WARM_POLL_MS * 1000u);
			return;
		}
		log_warn("warm-up: Redis is not available after %u ms; the hot set is skipped, and the URLs are "
		         "fetched without leases",
		         WARMUP_REDIS_WAIT_MS);
		WADD(errors);
		warm_urls_begin();
		return;
	}
	if (!W.hot_wanted) {
		warm_urls_begin();
		return;
	}
	char zkey[LV_NAME_MAX + 24], stop[24];
	size_t zl = hotset_key(W.p->service, zkey, sizeof(zkey));
	int sl = snprintf(stop, sizeof(stop), "%llu", (unsigned long long)(W.p->warmup.hot_keys - 1));
	const char *argv[] = {"ZREVRANGE", zkey, "0", stop};
	const size_t argl[] = {9, zl, 1, (size_t)sl};
	W.top_pending = true;
	if (redis_command(W.env.redis, warm_on_top, NULL, 4, argv, argl) != LV_OK) {
		W.top_pending = false;
		WADD(errors);
		warm_urls_begin();
	}
}

/* ---- 2. the URLs ------------------------------------------------------------ */

static void warm_fetch_free(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct warm_fetch *f = arg;
	if (f->bev)
		bufferevent_free(f->bev);
	f->bev = NULL;
	f->busy = false;
	W.inflight--;
	if (!W.closing)
		warm_later(0);
}

/* Ends a fetch from its own callbacks: counted now, freed from the loop. */
static void warm_fetch_end(struct warm_fetch *f, bool ok)
{
	if (f->ended)
		return;
	f->ended = true;
	bufferevent_disable(f->bev, EV_READ | EV_WRITE);
	WADD(url_done);
	if (ok)
		WADD(url_ok);
	else
		WADD(errors);
	struct timeval zero = {0, 0};
	if (event_base_once(W.env.base, -1, EV_TIMEOUT, warm_fetch_free, f, &zero) < 0)
		log_warn("warm-up: cannot schedule a connection's release"); /* freed by warmup_stop */
}

/* "HTTP/1.1 200 ..." -> 200; 0 when it is not a status line. */
static int warm_status_of(const char *s, size_t n)
{
	if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ')
		return 0;
	int st = 0;
	for (int i = 9; i < 12; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		st = st * 10 + (s[i] - '0');
	}
	return st;
}

static void warm_on_read(struct bufferevent *bev, void *arg)
{
	struct warm_fetch *f = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (!f->status) {
		size_t n = evbuffer_get_length(in);
		if (n > sizeof(f->line) - f->line_len)
			n = sizeof(f->line) - f->line_len;
		f->line_len += (size_t)evbuffer_remove(in, f->line + f->line_len, n);
		const char *eol = memchr(f->line, '\n', f->line_len);
		if (eol || f->line_len == sizeof(f->line)) {
			f->status = warm_status_of(f->line, f->line_len);
			if (!f->status) {
				warm_fetch_end(f, false);
				return;
			}
		}
	}
	evbuffer_drain(in, evbuffer_get_length(in)); /* the body: levee stored it, we need none of it */
}

static void warm_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct warm_fetch *f = arg;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_EOF) {
		warm_on_read(bev, f);
		/* an answer levee or the origin refused is an error of the warm-up */
		warm_fetch_end(f, f->status >= 200 && f->status < 500 && f->status != 429);
		return;
	}
	warm_fetch_end(f, false); /* reset, timeout */
}

static bool warm_fetch_start(const char *authority, const char *target)
{
	struct warm_fetch *f = NULL;
	for (unsigned i = 0; i < W.p->warmup.concurrency && i < WARM_MAX_CONC; i++)
		if (!W.fetch[i].busy) {
			f = &W.fetch[i];
			break;
		}
	if (!f)
		return false;
	memset(f, 0, sizeof(*f));
	f->bev = bufferevent_socket_new(W.env.base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!f->bev)
		return false;
	f->busy = true;
	W.inflight++;
	bufferevent_setcb(f->bev, warm_on_read, NULL, warm_on_event, f);
	struct timeval tv = {WARMUP_FETCH_TIMEOUT_MS / 1000, 0};
	bufferevent_set_timeouts(f->bev, &tv, &tv);
	bufferevent_enable(f->bev, EV_READ | EV_WRITE);
	evbuffer_add_printf(bufferevent_get_output(f->bev),
	                    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: levee-warmup\r\nConnection: close\r\n\r\n",
	                    target, authority[0] ? authority : W.p->warmup.host);
	if (bufferevent_socket_connect(f->bev, (struct sockaddr *)&W.listen, W.listen_len) < 0)
		warm_fetch_end(f, false);
	return true;
}

static void warm_urls_step(void)
{
	while (W.url_next < W.p->warmup.list.n) {
		if (W.inflight >= W.p->warmup.concurrency)
			return; /* a fetch's end pumps again */
		uint64_t wait = warm_rate_take(&W.url_rate, now_us());
		if (wait) {
			warm_later(wait);
			return;
		}
		const char *auth, *target;
		size_t pos = W.url_pos;
		if (!warmup_list_next(&W.p->warmup.list, &pos, &auth, &target))
			break;
		if (!warm_fetch_start(auth, target)) {
			WADD(errors); /* out of memory: the URL is skipped */
			WADD(url_done);
		}
		W.url_pos = pos;
		W.url_next++;
	}
	if (W.inflight == 0)
		warm_finish();
}

static void warm_pump(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (W.closing || W.top_pending)
		return;
	int st = WGET(state);
	if (st != WARM_HOT && st != WARM_URLS)
		return;
	if (W.env.draining && atomic_load(W.env.draining)) {
		/* the listener is about to close: what is left is not fetched */
		if (!W.inflight)
			warm_finish();
		return;
	}
	switch ((enum warm_state)st) {
	case WARM_HOT:
		if (!W.hot_keys)
			warm_hot_begin();
		else
			warm_hot_step();
		break;
	case WARM_URLS:
		warm_urls_step();
		break;
	case WARM_OFF:
	case WARM_DONE:
		break;
	}
}

/* ---- start, stop, figures ------------------------------------------------ */

/* The listener as a client reaches it: a wildcard address is loopback. */
static int warm_listen_addr(const struct lv_hostport *l, char *err, size_t errlen)
{
	const char *h = l->host;
	if (!h[0] || strcmp(h, "0.0.0.0") == 0)
		h = "127.0.0.1";
	else if (strcmp(h, "::") == 0)
		h = "::1";
	char s[LV_HOST_MAX + 16];
	snprintf(s, sizeof(s), strchr(h, ':') ? "[%s]:%u" : "%s:%u", h, l->port);
	W.listen_len = (int)sizeof(W.listen);
	if (evutil_parse_sockaddr_port(s, (struct sockaddr *)&W.listen, &W.listen_len) < 0) {
		snprintf(err, errlen, "warm-up: cannot reach the listener at %s", s);
		return LV_ERR;
	}
	return LV_OK;
}

int warmup_start(const struct warmup_env *env, const struct lv_policy *p, char *err, size_t errlen)
{
	struct event_base *base = env->base;
	struct redis *redis = env->redis;
	struct l2 *l2 = env->l2;
	WSET(start_us, now_us());
	WSET(ready_wait_us, p->warmup.ready_wait_ms * 1000u);
	bool hot = l2 && redis && p->warmup.hot_keys > 0;
	/* with Redis, the list waits for it too, so that its fills take leases */
	bool wait_redis = l2 && redis;
	if (!hot && !p->warmup.list.n) {
		WSET(end_us, WGET(start_us));
		WSET(state, WARM_OFF);
		return LV_OK;
	}
	if (p->warmup.list.n && warm_listen_addr(&p->listen, err, errlen) != LV_OK)
		return LV_ERR;
	W.env = *env;
	W.p = (struct lv_policy *)p;
	policy_ref(W.p);
	W.pump = evtimer_new(base, warm_pump, NULL);
	if (!W.pump) {
		snprintf(err, errlen, "warm-up: timer setup failed");
		return LV_ERR;
	}
	/* Redis keeps to hot_rate on average: a timer that fires late (libevent
	 * reads a coarse clock, 4 ms ticks) is made up, in a burst of at most
	 * WARM_HOT_SLACK_US worth of lookups. The origin gets strictly evenly
	 * spaced requests. */
	warm_rate_init(&W.hot_rate, p->warmup.hot_rate, WARM_HOT_SLACK_US);
	warm_rate_init(&W.url_rate, p->warmup.rate, 0);
	WSET(url_total, p->warmup.list.n);
	W.hot_wanted = hot;
	WSET(state, wait_redis ? WARM_HOT : WARM_URLS);
	log_info("warm-up: %s%u URL(s) at %llu/s; /readyz waits %llu ms for it", hot ? "hot set from Redis, " : "",
	         p->warmup.list.n, (unsigned long long)p->warmup.rate, (unsigned long long)p->warmup.ready_wait_ms);
	warm_later(0);
	return LV_OK;
}

void warmup_stop(void)
{
	W.closing = true;
	for (unsigned i = 0; i < WARM_MAX_CONC; i++)
		if (W.fetch[i].bev) {
			bufferevent_free(W.fetch[i].bev);
			W.fetch[i].bev = NULL;
		}
	if (W.pump)
		event_free(W.pump);
	W.pump = NULL;
	warm_hot_free();
	if (W.p)
		policy_unref(W.p);
	W.p = NULL;
}

bool warmup_ready(const char **why)
{
	int st = WGET(state);
	if (st != WARM_HOT && st != WARM_URLS)
		return true;
	if (now_us() - WGET(start_us) >= WGET(ready_wait_us))
		return true;
	*why = "warming up";
	return false;
}

static double warm_elapsed_s(void)
{
	int st = WGET(state);
	uint64_t end = st == WARM_HOT || st == WARM_URLS ? now_us() : WGET(end_us);
	uint64_t start = WGET(start_us);
	return end > start ? (double)(end - start) / 1e6 : 0;
}

void warmup_status_json(FILE *f)
{
	int st = WGET(state);
	fprintf(f,
	        "{\"state\":\"%s\",\"done\":%llu,\"total\":%llu,\"errors\":%llu,\"elapsed_seconds\":%.3f,"
	        "\"hot_set\":{\"keys\":%llu,\"done\":%llu,\"loaded\":%llu},\"urls\":{\"total\":%llu,\"done\":%llu,"
	        "\"ok\":%llu},\"ready_wait_seconds\":%.3f}",
	        warm_state_names[st], (unsigned long long)(WGET(hot_done) + WGET(url_done)),
	        (unsigned long long)(WGET(hot_total) + WGET(url_total)), (unsigned long long)WGET(errors),
	        warm_elapsed_s(), (unsigned long long)WGET(hot_total), (unsigned long long)WGET(hot_done),
	        (unsigned long long)WGET(hot_loaded), (unsigned long long)WGET(url_total),
	        (unsigned long long)WGET(url_done), (unsigned long long)WGET(url_ok),
	        (double)WGET(ready_wait_us) / 1e6);
}

void warmup_render_prometheus(FILE *f)
{
	int st = WGET(state);
	struct hotset_counters h;
	hotset_counters(&h);
	fprintf(f,
	        "# HELP levee_cache_warmup_running 1 while the start-up warm-up runs\n"
	        "# TYPE levee_cache_warmup_running gauge\nlevee_cache_warmup_running %d\n"
	        "# HELP levee_cache_warmup_items Hot keys and URLs the warm-up has to go through\n"
	        "# TYPE levee_cache_warmup_items gauge\nlevee_cache_warmup_items %llu\n"
	        "# HELP levee_cache_warmup_done_total Hot keys and URLs the warm-up went through\n"
	        "# TYPE levee_cache_warmup_done_total counter\nlevee_cache_warmup_done_total %llu\n"
	        "# HELP levee_cache_warmup_loaded_total Entries the warm-up loaded from Redis into the L1\n"
	        "# TYPE levee_cache_warmup_loaded_total counter\nlevee_cache_warmup_loaded_total %llu\n"
	        "# HELP levee_cache_warmup_fetched_total Warm-up URLs answered (not 5xx or 429)\n"
	        "# TYPE levee_cache_warmup_fetched_total counter\nlevee_cache_warmup_fetched_total %llu\n"
	        "# HELP levee_cache_warmup_errors_total Warm-up steps that failed: Redis, a URL's fetch\n"
	        "# TYPE levee_cache_warmup_errors_total counter\nlevee_cache_warmup_errors_total %llu\n"
	        "# HELP levee_cache_warmup_duration_seconds How long the warm-up has run, or ran\n"
	        "# TYPE levee_cache_warmup_duration_seconds gauge\nlevee_cache_warmup_duration_seconds %.3f\n"
	        "# HELP levee_cache_hotset_samples_total Cache hits sampled into a hot set batch\n"
	        "# TYPE levee_cache_hotset_samples_total counter\nlevee_cache_hotset_samples_total %llu\n"
	        "# HELP levee_cache_hotset_dropped_total Sampled hits left out of a full batch, or with a key too long\n"
	        "# TYPE levee_cache_hotset_dropped_total counter\nlevee_cache_hotset_dropped_total %llu\n"
	        "# HELP levee_cache_hotset_keys_written_total Keys sent to the hot set in Redis\n"
	        "# TYPE levee_cache_hotset_keys_written_total counter\nlevee_cache_hotset_keys_written_total %llu\n"
	        "# HELP levee_cache_hotset_writes_total Hot set batches Redis applied\n"
	        "# TYPE levee_cache_hotset_writes_total counter\nlevee_cache_hotset_writes_total %llu\n"
	        "# HELP levee_cache_hotset_errors_total Hot set batches lost to Redis trouble\n"
	        "# TYPE levee_cache_hotset_errors_total counter\nlevee_cache_hotset_errors_total %llu\n",
	        st == WARM_HOT || st == WARM_URLS, (unsigned long long)(WGET(hot_total) + WGET(url_total)),
	        (unsigned long long)(WGET(hot_done) + WGET(url_done)), (unsigned long long)WGET(hot_loaded),
	        (unsigned long long)WGET(url_ok), (unsigned long long)WGET(errors), warm_elapsed_s(),
	        (unsigned long long)h.sampled, (unsigned long long)h.dropped, (unsigned long long)h.written,
	        (unsigned long long)h.flushes, (unsigned long long)h.errors);
}
