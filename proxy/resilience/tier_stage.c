/*
 * tier_stage.c - the tier check on the request path (tier_stage.h).
 *
 * What it costs a request with no tier in force: one relaxed atomic load
 * and two single-writer increments (the request's start, for the in-flight
 * signal); at its end, the upstream exchange's time into the worker's own
 * histogram. Under a tier that sheds, a refused request is answered here,
 * before the cache and the upstream are touched: a shed costs almost
 * nothing, which is the point of shedding.
 */
#include "resilience/tier_stage.h"

#include <string.h>

#include "http/head.h"
#include "net/loop.h"
#include "resilience/tier.h"
#include "resilience/tier_signals.h"
#include "resilience/tiers.h"
#include "signals.h"
#include "stats.h"

unsigned tier_stage_cohort(const struct request *r, const struct lv_cohort_key *key)
{
	return tier_cohort_of(r->head, r->peer, key);
}

unsigned tier_cohort_of(const struct lv_head *hd, const char *peer, const struct lv_cohort_key *key)
{
	const char *v = NULL;
	size_t n = 0;
	if (key->kind == LV_COHORT_HEADER) {
		int i = head_find(hd, key->name, strlen(key->name), 0);
		if (i >= 0 && hd->h[i].value_len > 0) {
			v = hd->text + hd->h[i].value;
			n = hd->h[i].value_len;
		}
	} else if (key->kind == LV_COHORT_COOKIE) {
		v = head_cookie(hd, key->name, &n);
		if (v && n == 0)
			v = NULL;
	}
	if (v == NULL) {
		v = peer;
		n = strlen(peer);
	}
	return tier_cohort(v, n);
}

/* Whether the client is in a share of `pct` percent of its priority. */
static bool in_share(const struct request *r, double pct, int *cohort)
{
	if (pct <= 0)
		return false;
	if (pct < 100.0 && *cohort < 0) /* hashed only when a share decides */
		*cohort = (int)tier_stage_cohort(r, &r->rt->policy->tiers_cfg.cohort);
	return tier_sheds(pct, (unsigned)*cohort);
}

static int tier_run(struct request *r)
{
	struct lv_stats *st = r->w->stats;
	struct lv_route_stats *rs = stats_route(st, r->route_stat);
	stat_inc(st->load.started);
	if (rs)
		stat_inc(rs->load.started);
	const struct lv_policy *p = r->rt->policy;
	unsigned level = p->ntiers ? tiers_level() : 0;
	if (level == 0)
		return STAGE_NEXT;
	if (level > p->ntiers)
		level = (unsigned)p->ntiers;
	r->tier_level = level;
	const struct lv_tier_level *l = &p->tier_levels[level];
	/* a request no route matched is normal, the routes' default */
	int prio = r->route ? r->route->priority : LV_PRIO_NORMAL, cohort = -1;
	if (in_share(r, l->shed.pct[prio], &cohort)) {
		if (rs && l->named >= 0)
			stat_inc(rs->shed[l->named]);
		struct refusal rf = {
		    .status = r->route && r->route->refusal_status == LV_REFUSE_429 ? 429 : 0,
		    .retry_after = l->retry_after_s ? l->retry_after_s : 1,
		    .detail = l->detail,
		};
		request_refuse(r, R_TIER_SHED, &rf);
		return STAGE_DONE;
	}
	if (l->shadow_named >= 0 && rs && in_share(r, l->would_shed.pct[prio], &cohort))
		stat_inc(rs->shadow[l->shadow_named]);
	r->tier_cache = l->cache;
	r->tier_ttl_factor = l->ttl_factor;
	return STAGE_NEXT;
}

/* Whether an exchange that reached the upstream failed, for error_rate;
 * -1: it says nothing of the service (the client left, levee refused). A
 * deadline that ran out while it was upstream counts as a timeout. */
static int up_failed(const struct request *r)
{
	if (r->outcome == OUT_UPSTREAM)
		return r->up_status >= 500;
	return outcome_upstream_failed(r->outcome) || r->outcome == OUT_DEADLINE ? 1 : -1;
}

static void tier_done(struct request *r)
{
	struct lv_stats *st = r->w->stats;
	struct lv_route_stats *rs = stats_route(st, r->route_stat);
	stat_inc(st->load.ended);
	if (rs)
		stat_inc(rs->load.ended);
	int failed = r->t_upstream ? up_failed(r) : -1;
	if (failed < 0)
		return;
	uint64_t now = now_us();
	uint64_t us = now > r->t_upstream ? now - r->t_upstream : 0;
	unsigned b = sighist_index(us);
	stat_inc(st->up_hist[b]);
	stat_inc(st->load.up_calls);
	if (failed)
		stat_inc(st->load.up_failed);
	if (rs) {
		stat_inc(rs->load.up_calls);
		if (failed)
			stat_inc(rs->load.up_failed);
	}
	uint64_t *h = tier_signals_route_hist(r->route_stat);
	if (h)
		__atomic_fetch_add(&h[b], 1, __ATOMIC_RELAXED);
}

const struct stage tier_stage_def = {
    .name = "tier",
    .run = tier_run,
    .done = tier_done,
};
