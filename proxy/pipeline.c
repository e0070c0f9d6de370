/*
 * pipeline.c - the request path, stage by stage.
 *
 * A request is turned away as early, and as cheaply, as it can be: the
 * route first (what the request is), then the cache (a hit costs no
 * upstream and never waits behind a bulkhead), then the breaker (an open
 * one answers at once, before the request waits for a bulkhead slot it
 * would not use), then the bulkhead (a slot, a queue, or a refusal), then
 * the upstream exchange. A later issue adds a tier check before the cache.
 *
 * The route's fallbacks come right after the route: a stage's fail hook
 * runs after those of the stages behind it, so the cache's stale-if-error
 * (what the origin allows) is tried first, and the fallbacks, the last
 * word before levee's own error, run for a failure anywhere on the path.
 *
 * This file is the top of the data path: it names the stages, and nothing
 * below it names this file.
 */
#include "pipeline.h"

#include "cache/cache.h"
#include "net/request.h"
#include "net/upstream.h"
#include "resilience/breaker_stage.h"
#include "resilience/bulkhead_stage.h"
#include "resilience/fallback_stage.h"

static int stage_route(struct request *r)
{
	const struct lv_head *hd = r->head;
	const struct lv_policy *p = r->rt->policy;
	r->route = policy_route_match(p, hd->text + hd->target_off, hd->path_len, r->method_bit, &r->caps);
	r->route_stat = r->route ? r->rt->route_stat[r->route - p->routes] : 0;
	return STAGE_NEXT;
}

static const struct stage route_stage_def = {.name = "route", .run = stage_route};

static const struct stage *const path[] = {
    &route_stage_def,
    &fallback_stage_def,
    &cache_stage_def,
    &breaker_stage_def,
    &bulkhead_stage_def,
    &upstream_stage_def,
};

void pipeline_init(void)
{
	request_path_set(path, sizeof(path) / sizeof(path[0]));
}
