/*
 * cache_ctx.c - the cache of one process (cache_ctx.h): its life, its
 * purges (the purge log, then Redis, then the L1), and its figures.
 */
#include "cache/cache_ctx.h"

#include <stdio.h>
#include <stdlib.h>

#include "cache/key.h"
#include "cache/l1.h"
#include "cache/l2.h"
#include "net/worker.h"
#include "stats.h"

static uint64_t l1_clock(void *ctx)
{
	return now_unix_ms();
}

struct cache *cache_new(const struct lv_policy *p)
{
	struct cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	/* every host and variant of one URL (service, target) in one shard:
	 * the purge a write makes visits one shard, not all */
	struct l1_config cfg = {.max_bytes = p->cache.memory, .now_ms = l1_clock, .group_fields = 2,
	                        .group_sep = KEY_SEP};
	c->l1 = l1_new(&cfg);
	if (!c->l1) {
		free(c);
		return NULL;
	}
	fill_table_init(&c->fills);
	purge_state_init(&c->purges);
	atomic_init(&c->pub, NULL);
	return c;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	purge_state_destroy(&c->purges);
	fill_table_destroy(&c->fills);
	l1_free(c->l1);
	free(c);
}

void cache_fills_shutdown(struct cache *c)
{
	fill_table_shutdown(&c->fills);
}

void cache_set_publisher(struct cache *c, const struct cache_publisher *pub)
{
	atomic_store_explicit(&c->pub, pub, memory_order_release);
}

/* ---- purges ------------------------------------------------------------ */

size_t cache_purge(struct cache *c, struct l2 *l2, enum cache_purge_kind kind, const char *svc, const char *s,
                   size_t len, cache_purge_cb cb, void *arg, bool *pending)
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
			epoch = purge_log_add(&c->purges, PK_PREFIX, k, n);
		}
		break;
	case CACHE_PURGE_PREFIX:
		n = key_path_prefix(svc, s, len, k, sizeof(k));
		if (n)
			epoch = purge_log_add(&c->purges, PK_PREFIX, k, n);
		break;
	case CACHE_PURGE_TAG:
		epoch = purge_log_add(&c->purges, PK_TAG, s, len);
		break;
	case CACHE_PURGE_ALL:
		epoch = purge_log_add(&c->purges, PK_ALL, "", 0);
		break;
	}
	bool sent = purge_send(&c->purges, l2, epoch, kind, svc, s, len, cb, arg);
	if (pending)
		*pending = sent;
	size_t purged = 0;
	switch (kind) {
	case CACHE_PURGE_URL:
		purged = n ? l1_purge_group(c->l1, k, n) : 0;
		break;
	case CACHE_PURGE_PREFIX:
		purged = n ? l1_purge_prefix(c->l1, k, n) : 0;
		break;
	case CACHE_PURGE_TAG:
		purged = l1_purge_tag(c->l1, s, len);
		break;
	case CACHE_PURGE_ALL:
		purged = l1_purge_all(c->l1);
		break;
	}
	CACHE_STAT_ADD(&c->stats, purged_entries, purged);
	return purged;
}

size_t cache_purge_url(struct cache *c, struct l2 *l2, const char *service, const char *target, size_t len)
{
	return cache_purge(c, l2, CACHE_PURGE_URL, service, target, len, NULL, NULL, NULL);
}

size_t cache_purge_prefix(struct cache *c, struct l2 *l2, const char *service, const char *path, size_t len)
{
	return cache_purge(c, l2, CACHE_PURGE_PREFIX, service, path, len, NULL, NULL, NULL);
}

size_t cache_purge_tag(struct cache *c, struct l2 *l2, const char *service, const char *tag, size_t len)
{
	return cache_purge(c, l2, CACHE_PURGE_TAG, service, tag, len, NULL, NULL, NULL);
}

size_t cache_purge_all(struct cache *c, struct l2 *l2, const char *service)
{
	struct inval_item it = {INVAL_ALL, "", 0};
	return cache_purge_item(c, l2, service, &it, NULL, NULL, NULL);
}

enum cache_purge_kind cache_purge_kind_of(enum inval_kind k)
{
	static const enum cache_purge_kind kinds[] = {
	    [INVAL_KEY] = CACHE_PURGE_URL, [INVAL_PREFIX] = CACHE_PURGE_PREFIX,
	    [INVAL_TAG] = CACHE_PURGE_TAG, [INVAL_ALL] = CACHE_PURGE_ALL};
	return kinds[k];
}

size_t cache_purge_item(struct cache *c, struct l2 *l2, const char *svc, const struct inval_item *it,
                        cache_purge_cb cb, void *arg, bool *pending)
{
	if (it->kind == INVAL_ALL)
		return cache_purge(c, l2, CACHE_PURGE_ALL, svc, "/", 1, cb, arg, pending);
	return cache_purge(c, l2, cache_purge_kind_of(it->kind), svc, it->p, it->len, cb, arg, pending);
}

bool cache_purge_item_has_l2(const char *svc, const struct inval_item *it)
{
	char tag[L2_TAG_MAX];
	if (it->kind == INVAL_ALL)
		return true;
	return cache_l2_purge_tag(cache_purge_kind_of(it->kind), svc, it->p, it->len, tag, sizeof(tag)) > 0;
}

/* ---- figures ----------------------------------------------------------- */

void cache_counters(struct cache *c, struct lv_cache_counters *o)
{
	o->hits = CACHE_STAT_GET(&c->stats, results[LV_CR_HIT]);
	o->misses = CACHE_STAT_GET(&c->stats, results[LV_CR_MISS]) + CACHE_STAT_GET(&c->stats, results[LV_CR_STALE]) +
	            CACHE_STAT_GET(&c->stats, results[LV_CR_REQUEST]);
	o->bypasses = CACHE_STAT_GET(&c->stats, results[LV_CR_BYPASS]);
	o->stores = __atomic_load_n(&c->stats.stores, __ATOMIC_RELAXED);
	o->stores += __atomic_load_n(&c->stats.stores_l2_only, __ATOMIC_RELAXED);
	o->store_refused = 0;
	for (int i = 0; i < RF_COUNT; i++)
		o->store_refused += __atomic_load_n(&c->stats.refused[i], __ATOMIC_RELAXED);
	o->coalesced = __atomic_load_n(&c->stats.coalesced, __ATOMIC_RELAXED);
	o->purged_entries = __atomic_load_n(&c->stats.purged_entries, __ATOMIC_RELAXED);
	o->not_modified = __atomic_load_n(&c->stats.not_modified, __ATOMIC_RELAXED);
}

void cache_render_prometheus(struct cache *c, void *file)
{
	FILE *f = file;
	struct lv_cache_counters n;
	cache_counters(c, &n);
	struct l1_stats s = {0};
	l1_stats(c->l1, &s);
	fprintf(f,
	        "# HELP levee_cache_stores_total Responses stored, by the layer that took them "
	        "(l2 alone: too large for the L1)\n"
	        "# TYPE levee_cache_stores_total counter\n"
	        "levee_cache_stores_total{layer=\"l1\"} %llu\nlevee_cache_stores_total{layer=\"l2\"} %llu\n"
	        "# HELP levee_cache_pass_total Misses sent upstream without coalescing, as hit-for-miss\n"
	        "# TYPE levee_cache_pass_total counter\nlevee_cache_pass_total %llu\n"
	        "# HELP levee_cache_coalesced_total Requests answered by another request's fill\n"
	        "# TYPE levee_cache_coalesced_total counter\nlevee_cache_coalesced_total %llu\n"
	        "# HELP levee_cache_not_modified_total 304 answers from the cache\n"
	        "# TYPE levee_cache_not_modified_total counter\nlevee_cache_not_modified_total %llu\n"
	        "# HELP levee_cache_stale_total Stale answers, by the reason a stale copy was allowed\n"
	        "# TYPE levee_cache_stale_total counter\n"
	        "levee_cache_stale_total{reason=\"while_revalidate\"} %llu\n"
	        "levee_cache_stale_total{reason=\"if_error\"} %llu\n"
	        "# HELP levee_cache_fill_refused_total Fills not stored because a purge landed while they were in flight\n"
	        "# TYPE levee_cache_fill_refused_total counter\nlevee_cache_fill_refused_total %llu\n"
	        "# HELP levee_cache_revalidated_total Stale entries refreshed by a 304\n"
	        "# TYPE levee_cache_revalidated_total counter\nlevee_cache_revalidated_total %llu\n"
	        "# HELP levee_cache_revalidation_mismatches_total 304s to levee's own revalidation that selected no stored copy, asked again unconditionally\n"
	        "# TYPE levee_cache_revalidation_mismatches_total counter\nlevee_cache_revalidation_mismatches_total %llu\n"
	        "# HELP levee_cache_l2_operations_total Redis layer (L2) operations, by result\n"
	        "# TYPE levee_cache_l2_operations_total counter\n"
	        "levee_cache_l2_operations_total{result=\"hit\"} %llu\n"
	        "levee_cache_l2_operations_total{result=\"miss\"} %llu\n"
	        "levee_cache_l2_operations_total{result=\"error\"} %llu\n"
	        "levee_cache_l2_operations_total{result=\"committed\"} %llu\n"
	        "levee_cache_l2_operations_total{result=\"commit_refused\"} %llu\n"
	        "levee_cache_l2_operations_total{result=\"fenced\"} %llu\n"
	        "# HELP levee_cache_lease_waits_total Misses that waited for another replica's fill\n"
	        "# TYPE levee_cache_lease_waits_total counter\nlevee_cache_lease_waits_total %llu\n"
	        "# HELP levee_cache_lease_wait_timeouts_total Waits for another replica's fill that ran out\n"
	        "# TYPE levee_cache_lease_wait_timeouts_total counter\nlevee_cache_lease_wait_timeouts_total %llu\n"
	        "# HELP levee_cache_purged_entries_total Entries removed by purges and writes\n"
	        "# TYPE levee_cache_purged_entries_total counter\nlevee_cache_purged_entries_total %llu\n"
	        "# HELP levee_cache_l1_bytes Bytes held by the in-process cache (L1)\n# TYPE levee_cache_l1_bytes gauge\n"
	        "levee_cache_l1_bytes %llu\n"
	        "# HELP levee_cache_l1_max_bytes Bound of the in-process cache (L1)\n# TYPE levee_cache_l1_max_bytes gauge\n"
	        "levee_cache_l1_max_bytes %llu\n"
	        "# HELP levee_cache_l1_entries Entries in the in-process cache (L1)\n# TYPE levee_cache_l1_entries gauge\n"
	        "levee_cache_l1_entries %llu\n"
	        "# HELP levee_cache_l1_evictions_total L1 entries evicted to make room\n"
	        "# TYPE levee_cache_l1_evictions_total counter\nlevee_cache_l1_evictions_total %llu\n",
	        (unsigned long long)__atomic_load_n(&c->stats.stores, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.stores_l2_only, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.pass_hits, __ATOMIC_RELAXED), (unsigned long long)n.coalesced,
	        (unsigned long long)n.not_modified, (unsigned long long)__atomic_load_n(&c->stats.stale_hits, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.stale_if_error, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.fill_refused, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.revalidated, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.revalidate_mismatch, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.l2_hits, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.l2_misses, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.l2_errors, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.l2_commits, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.l2_commit_refused, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.l2_fenced, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.lease_waits, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&c->stats.lease_wait_timeouts, __ATOMIC_RELAXED),
	        (unsigned long long)n.purged_entries,
	        (unsigned long long)s.bytes, (unsigned long long)s.max_bytes, (unsigned long long)s.entries,
	        (unsigned long long)s.evictions);
	struct cache_purge_retry_stats pr;
	purge_retry_stats(&c->purges, &pr);
	fprintf(f,
	        "# HELP levee_cache_purges_waiting Purges Redis refused or did not answer, waiting to be sent again "
	        "(their keys are not served from Redis meanwhile)\n# TYPE levee_cache_purges_waiting gauge\n"
	        "levee_cache_purges_waiting %llu\n"
	        "# HELP levee_cache_purge_retries_total Purges sent to Redis again\n"
	        "# TYPE levee_cache_purge_retries_total counter\nlevee_cache_purge_retries_total %llu\n"
	        "# HELP levee_cache_purges_applied_late_total Purges Redis took on a retry\n"
	        "# TYPE levee_cache_purges_applied_late_total counter\nlevee_cache_purges_applied_late_total %llu\n"
	        "# HELP levee_cache_purges_folded_total Waiting purges folded into one purge of everything\n"
	        "# TYPE levee_cache_purges_folded_total counter\nlevee_cache_purges_folded_total %llu\n"
	        "# HELP levee_cache_l2_fenced Whether some keys are not served from Redis until a purge is taken\n"
	        "# TYPE levee_cache_l2_fenced gauge\nlevee_cache_l2_fenced %d\n",
	        (unsigned long long)pr.waiting, (unsigned long long)pr.retried, (unsigned long long)pr.applied,
	        (unsigned long long)pr.folded, pr.fenced ? 1 : 0);
	fprintf(f,
	        "# HELP levee_cache_tier_total What degradation tiers' cache modes did, by effect "
	        "(docs/tier-cache-modes.md)\n# TYPE levee_cache_tier_total counter\n"
	        "levee_cache_tier_total{effect=\"stale\"} %llu\nlevee_cache_tier_total{effect=\"stretched\"} %llu\n"
	        "levee_cache_tier_total{effect=\"no_wait\"} %llu\nlevee_cache_tier_total{effect=\"no_fill\"} %llu\n"
	        "levee_cache_tier_total{effect=\"refused\"} %llu\n",
	        (unsigned long long)CACHE_STAT_GET(&c->stats, tier_stale),
	        (unsigned long long)CACHE_STAT_GET(&c->stats, tier_stretched),
	        (unsigned long long)CACHE_STAT_GET(&c->stats, tier_no_wait),
	        (unsigned long long)CACHE_STAT_GET(&c->stats, tier_no_fill),
	        (unsigned long long)CACHE_STAT_GET(&c->stats, tier_refused));
	fprintf(f, "# HELP levee_cache_store_refused_total Responses not stored, by reason\n"
	           "# TYPE levee_cache_store_refused_total counter\n");
	for (int i = 0; i < RF_COUNT; i++) {
		char v[PROM_VALUE_MAX];
		fprintf(f, "levee_cache_store_refused_total{reason=\"%s\"} %llu\n", prom_value(v, cache_refusal_names[i]),
		        (unsigned long long)__atomic_load_n(&c->stats.refused[i], __ATOMIC_RELAXED));
	}
}

void cache_status_json(struct cache *c, void *file)
{
	FILE *f = file;
	struct lv_cache_counters n;
	cache_counters(c, &n);
	struct l1_stats s = {0};
	l1_stats(c->l1, &s);
	struct cache_purge_retry_stats pr;
	purge_retry_stats(&c->purges, &pr);
	fprintf(f,
	        "{\"hits\":%llu,\"misses\":%llu,\"bypasses\":%llu,\"stores\":%llu,\"store_refused\":%llu,"
	        "\"coalesced\":%llu,\"l1\":{\"entries\":%llu,\"bytes\":%llu,\"max_bytes\":%llu,\"evictions\":%llu,"
	        "\"max_entry_bytes\":%llu},"
	        "\"purges\":{\"waiting\":%llu,\"retried\":%llu,\"applied_late\":%llu,\"folded\":%llu,"
	        "\"l2_fenced\":%s}}",
	        (unsigned long long)n.hits, (unsigned long long)n.misses, (unsigned long long)n.bypasses,
	        (unsigned long long)n.stores, (unsigned long long)n.store_refused, (unsigned long long)n.coalesced,
	        (unsigned long long)s.entries, (unsigned long long)s.bytes, (unsigned long long)s.max_bytes,
	        (unsigned long long)s.evictions, (unsigned long long)l1_max_entry(c->l1),
	        (unsigned long long)pr.waiting, (unsigned long long)pr.retried, (unsigned long long)pr.applied,
	        (unsigned long long)pr.folded, pr.fenced ? "true" : "false");
}
