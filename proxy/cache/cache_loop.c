/*
 * cache_loop.c - the cache's resources of one event loop (cache_loop.h).
 */
#include "cache/cache_loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_ctx.h"
#include "cache/hotset.h"
#include "cache/l2.h"
#include "cache/redis_watch.h"
#include "resolver.h"

static void cache_loop_tick(struct worker *w)
{
	struct cache_loop *cl = w->cache;
	if (!cl)
		return;
	purge_retry(&cl->cache->purges, cl->l2);
	uint64_t now_ms = now_us() / 1000;
	if (cl->hot && hotset_due(cl->hot, now_ms))
		hotset_flush(cl->hot, cl->redis, now_ms, now_unix_ms());
	if (cl->redis) {
		pthread_mutex_lock(&cl->snap_lock);
		redis_get_stats(cl->redis, &cl->snap);
		pthread_mutex_unlock(&cl->snap_lock);
	}
}

static void cache_loop_close(struct worker *w)
{
	struct cache_loop *cl = w->cache;
	if (!cl)
		return;
	hotset_free(cl->hot); /* its writes in flight carry no pointer to it */
	cl->hot = NULL;
	l2_free(cl->l2); /* pending L2 callbacks run now, with "closed" */
	cl->l2 = NULL;
	if (cl->redis)
		redis_free(cl->redis);
	cl->redis = NULL;
	pthread_mutex_destroy(&cl->snap_lock);
	free(cl);
	w->cache = NULL;
	w->ext = NULL; /* the loop's last pass may still run its tick */
}

static const struct loop_ext cache_loop_ext = {.tick = cache_loop_tick, .close = cache_loop_close};

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

int cache_loop_open(struct worker *w, struct cache *c, const struct lv_policy *p, char *err, size_t errlen)
{
	struct cache_loop *cl = calloc(1, sizeof(*cl));
	if (!cl) {
		snprintf(err, errlen, "out of memory");
		return LV_ERR;
	}
	cl->cache = c;
	pthread_mutex_init(&cl->snap_lock, NULL);
	w->cache = cl;
	w->ext = &cache_loop_ext;
	if (cache_l2_open(w->base, p, &cl->redis, &cl->l2, err, errlen) != LV_OK)
		return LV_ERR;
	struct hotset_cfg hc;
	hotset_cfg_of(p, &hc);
	if (cl->l2 && hc.sample) {
		cl->hot = hotset_new(&hc, p->service);
		if (!cl->hot) {
			snprintf(err, errlen, "out of memory");
			return LV_ERR;
		}
	}
	return LV_OK;
}

void cache_loop_hit(const struct worker *w, const char *key, size_t klen)
{
	struct cache_loop *cl = w->cache;
	if (cl && cl->hot)
		hotset_hit(cl->hot, key, klen);
}

bool cache_loop_redis_stats(const struct worker *w, struct redis_stats *out)
{
	struct cache_loop *cl = w->cache;
	if (!cl || !cl->redis)
		return false;
	pthread_mutex_lock(&cl->snap_lock);
	*out = cl->snap;
	pthread_mutex_unlock(&cl->snap_lock);
	return true;
}
