/*
 * cache_loop.c - the cache's resources of one event loop (cache_loop.h).
 */
#include "cache/cache_loop.h"

#include <stdio.h>
#include <stdlib.h>

#include "cache/cache.h"
#include "cache/l2.h"

static void cache_loop_tick(struct worker *w)
{
	struct cache_loop *cl = w->cache;
	if (!cl)
		return;
	cache_purge_retry(cl->l2);
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

int cache_loop_open(struct worker *w, const struct lv_policy *p, char *err, size_t errlen)
{
	struct cache_loop *cl = calloc(1, sizeof(*cl));
	if (!cl) {
		snprintf(err, errlen, "out of memory");
		return LV_ERR;
	}
	pthread_mutex_init(&cl->snap_lock, NULL);
	w->cache = cl;
	w->ext = &cache_loop_ext;
	return cache_l2_open(w->base, p, &cl->redis, &cl->l2, err, errlen);
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
