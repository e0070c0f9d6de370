/*
 * pipeline.c - the request path, stage by stage.
 *
 * A request is turned away as early, and as cheaply, as it can be: the
 * route first (what the request is), then the cache (a hit costs no
 * upstream and never waits behind a bulkhead), then the breaker (an open
 * one answers at once, before the request waits for a bulkhead slot it
 * would not use), then the bulkhead (a slot, a queue, or a refusal), then
 * the upstream exchange. The tier check comes before the cache: a request
 * a degradation tier sheds costs no cache lookup and no upstream work.
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "net/request.h"
#include "net/upstream.h"
#include "resilience/breaker.h"
#include "resilience/breaker_stage.h"
#include "resilience/bulkhead.h"
#include "resilience/bulkhead_stage.h"
#include "resilience/fallback_stage.h"
#include "resilience/tier_stage.h"

/* The client's budget in `deadline_header`: whole milliseconds, at most an
 * hour; false when absent or not a number (then it is ignored). */
static bool header_budget_ms(const struct lv_head *hd, const char *name, uint64_t *ms)
{
	int i = head_find(hd, name, strlen(name), 0);
	if (i < 0 || head_find(hd, name, strlen(name), i + 1) >= 0)
		return false; /* none, or two: which one counts would be a guess */
	char v[12];
	size_t n = hd->h[i].value_len;
	const char *why;
	uint64_t x;
	if (n == 0 || n >= sizeof(v))
		return false;
	memcpy(v, hd->text + hd->h[i].value, n);
	v[n] = '\0';
	if (value_uint(v, 0, UINT64_MAX, &x, &why) != LV_OK)
		return false;
	*ms = x < 3600000 ? x : 3600000;
	return true;
}

static int stage_route(struct request *r)
{
	const struct lv_head *hd = r->head;
	const struct lv_policy *p = r->rt->policy;
	r->route = policy_route_match(p, hd->text + hd->target_off, hd->path_len, r->method_bit, &r->caps);
	r->route_stat = r->route ? r->rt->route_stat[r->route - p->routes] : 0;
	if (!r->route)
		return STAGE_NEXT;
	/* the deadline: the sooner of the route's timeout and the client's
	 * budget, both counted from the head's arrival */
	uint64_t ms = r->route->timeout_ms, h;
	bool any = ms != 0;
	if (r->route->deadline_from_header && header_budget_ms(hd, p->up.deadline_header, &h)) {
		ms = any && ms < h ? ms : h;
		any = true;
	}
	if (any)
		r->deadline_us = r->t_start + ms * 1000;
	return STAGE_NEXT;
}

static const struct stage route_stage_def = {.name = "route", .run = stage_route};

static const struct stage *const path[] = {
    &route_stage_def,
    &fallback_stage_def,
    &tier_stage_def,
    &cache_stage_def,
    &breaker_stage_def,
    &bulkhead_stage_def,
    &upstream_stage_def,
};

void pipeline_init(void)
{
	request_path_set(path, sizeof(path) / sizeof(path[0]));
}

/* The runtime's references to the bulkheads and breakers its policy names,
 * dropped with its last reference. */
static void pipeline_runtime_detach(struct runtime *rt)
{
	for (size_t i = 0; rt->bulkheads && i < rt->policy->nbulkheads; i++)
		bulkhead_put(rt->bulkheads[i]);
	free(rt->bulkheads);
	for (size_t i = 0; rt->breakers && i < rt->policy->nbreakers; i++)
		breaker_put(rt->breakers[i]);
	free(rt->breakers);
	rt->bulkheads = NULL;
	rt->breakers = NULL;
}

int pipeline_runtime_attach(struct runtime *rt, char *err, size_t errlen)
{
	const struct lv_policy *p = rt->policy;
	rt->detach = pipeline_runtime_detach;
	/* by name; their limits change only when this runtime is applied */
	rt->bulkheads = calloc(p->nbulkheads ? p->nbulkheads : 1, sizeof(*rt->bulkheads));
	for (size_t i = 0; rt->bulkheads && i < p->nbulkheads; i++)
		if (!(rt->bulkheads[i] = bulkhead_get(&p->bulkheads[i])))
			break;
	rt->breakers = calloc(p->nbreakers ? p->nbreakers : 1, sizeof(*rt->breakers));
	for (size_t i = 0; rt->breakers && i < p->nbreakers; i++)
		if (!(rt->breakers[i] = breaker_get(&p->breakers[i])))
			break;
	if (!rt->bulkheads || (p->nbulkheads && !rt->bulkheads[p->nbulkheads - 1]) || !rt->breakers ||
	    (p->nbreakers && !rt->breakers[p->nbreakers - 1])) {
		snprintf(err, errlen, "out of memory");
		return LV_ERR; /* what was taken goes with the runtime */
	}
	return LV_OK;
}
