/*
 * cache_stats.c - the cache's counters as Prometheus lines and as the
 * `cache` object of /status. The counters themselves live in cache.c
 * (struct cache_stats, relaxed atomics bumped on the request path).
 */
#include <stdio.h>

#include "cache/cache.h"
#include "cache/cache_internal.h"
#include "cache/l1.h"

void cache_counters(struct lv_cache_counters *o)
{
	o->hits = __atomic_load_n(&cstats.hits, __ATOMIC_RELAXED);
	o->misses = __atomic_load_n(&cstats.misses, __ATOMIC_RELAXED);
	o->bypasses = __atomic_load_n(&cstats.bypasses, __ATOMIC_RELAXED);
	o->stores = __atomic_load_n(&cstats.stores, __ATOMIC_RELAXED);
	o->stores += __atomic_load_n(&cstats.stores_l2_only, __ATOMIC_RELAXED);
	o->store_refused = 0;
	for (int i = 0; i < RF_COUNT; i++)
		o->store_refused += __atomic_load_n(&cstats.refused[i], __ATOMIC_RELAXED);
	o->coalesced = __atomic_load_n(&cstats.coalesced, __ATOMIC_RELAXED);
	o->purged_entries = __atomic_load_n(&cstats.purged_entries, __ATOMIC_RELAXED);
	o->not_modified = __atomic_load_n(&cstats.not_modified, __ATOMIC_RELAXED);
}

void cache_render_prometheus(void *file)
{
	FILE *f = file;
	struct lv_cache_counters c;
	cache_counters(&c);
	struct l1_stats s = {0};
	if (cache_l1)
		l1_stats(cache_l1, &s);
	fprintf(f,
	        "# HELP levee_cache_lookups_total Cache lookups by result\n# TYPE levee_cache_lookups_total counter\n"
	        "levee_cache_lookups_total{result=\"hit\"} %llu\nlevee_cache_lookups_total{result=\"miss\"} %llu\n"
	        "levee_cache_lookups_total{result=\"bypass\"} %llu\n"
	        "# HELP levee_cache_stores_total Responses stored, by the tier that took them (l2 alone: too large for the L1)\n"
	        "# TYPE levee_cache_stores_total counter\n"
	        "levee_cache_stores_total{tier=\"l1\"} %llu\nlevee_cache_stores_total{tier=\"l2\"} %llu\n"
	        "# HELP levee_cache_pass_total Misses sent upstream without coalescing, as hit-for-miss\n"
	        "# TYPE levee_cache_pass_total counter\nlevee_cache_pass_total %llu\n"
	        "# HELP levee_cache_coalesced_total Requests answered by another request's fill\n"
	        "# TYPE levee_cache_coalesced_total counter\nlevee_cache_coalesced_total %llu\n"
	        "# HELP levee_cache_not_modified_total 304 answers from the cache\n"
	        "# TYPE levee_cache_not_modified_total counter\nlevee_cache_not_modified_total %llu\n"
	        "# HELP levee_cache_stale_total Stale answers, by why\n# TYPE levee_cache_stale_total counter\n"
	        "levee_cache_stale_total{why=\"while-revalidate\"} %llu\nlevee_cache_stale_total{why=\"if-error\"} %llu\n"
	        "# HELP levee_cache_fill_refused_total Fills not stored because a purge landed while they were in flight\n"
	        "# TYPE levee_cache_fill_refused_total counter\nlevee_cache_fill_refused_total %llu\n"
	        "# HELP levee_cache_revalidated_total Stale entries refreshed by a 304\n"
	        "# TYPE levee_cache_revalidated_total counter\nlevee_cache_revalidated_total %llu\n"
	        "# HELP levee_cache_l2_total Redis tier (L2) operations by result\n# TYPE levee_cache_l2_total counter\n"
	        "levee_cache_l2_total{result=\"hit\"} %llu\nlevee_cache_l2_total{result=\"miss\"} %llu\n"
	        "levee_cache_l2_total{result=\"error\"} %llu\nlevee_cache_l2_total{result=\"committed\"} %llu\n"
	        "levee_cache_l2_total{result=\"commit_refused\"} %llu\n"
	        "levee_cache_l2_total{result=\"fenced\"} %llu\n"
	        "# HELP levee_cache_lease_waits_total Misses that waited for another replica's fill\n"
	        "# TYPE levee_cache_lease_waits_total counter\nlevee_cache_lease_waits_total %llu\n"
	        "# HELP levee_cache_lease_wait_timeouts_total Waits for another replica's fill that ran out\n"
	        "# TYPE levee_cache_lease_wait_timeouts_total counter\nlevee_cache_lease_wait_timeouts_total %llu\n"
	        "# HELP levee_cache_purged_entries_total Entries removed by purges and writes\n"
	        "# TYPE levee_cache_purged_entries_total counter\nlevee_cache_purged_entries_total %llu\n"
	        "# HELP levee_l1_bytes Bytes held by the in-process cache\n# TYPE levee_l1_bytes gauge\nlevee_l1_bytes %llu\n"
	        "# HELP levee_l1_max_bytes Bound of the in-process cache\n# TYPE levee_l1_max_bytes gauge\nlevee_l1_max_bytes %llu\n"
	        "# HELP levee_l1_entries Entries in the in-process cache\n# TYPE levee_l1_entries gauge\nlevee_l1_entries %llu\n"
	        "# HELP levee_l1_evictions_total Entries evicted to make room\n# TYPE levee_l1_evictions_total counter\n"
	        "levee_l1_evictions_total %llu\n",
	        (unsigned long long)c.hits, (unsigned long long)c.misses, (unsigned long long)c.bypasses,
	        (unsigned long long)__atomic_load_n(&cstats.stores, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&cstats.stores_l2_only, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&cstats.pass_hits, __ATOMIC_RELAXED), (unsigned long long)c.coalesced,
	        (unsigned long long)c.not_modified, (unsigned long long)__atomic_load_n(&cstats.stale_hits, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&cstats.stale_if_error, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&cstats.fill_refused, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&cstats.revalidated, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&cstats.l2_hits, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&cstats.l2_misses, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&cstats.l2_errors, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&cstats.l2_commits, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&cstats.l2_commit_refused, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&cstats.l2_fenced, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&cstats.lease_waits, __ATOMIC_RELAXED),
	        (unsigned long long)__atomic_load_n(&cstats.lease_wait_timeouts, __ATOMIC_RELAXED),
	        (unsigned long long)c.purged_entries,
	        (unsigned long long)s.bytes, (unsigned long long)s.max_bytes, (unsigned long long)s.entries,
	        (unsigned long long)s.evictions);
	struct cache_purge_retry_stats pr;
	cache_purge_retry_stats(&pr);
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
	fprintf(f, "# HELP levee_cache_store_refused_total Responses not stored, by reason\n"
	           "# TYPE levee_cache_store_refused_total counter\n");
	for (int i = 0; i < RF_COUNT; i++)
		fprintf(f, "levee_cache_store_refused_total{reason=\"%s\"} %llu\n", cache_refusal_names[i],
		        (unsigned long long)__atomic_load_n(&cstats.refused[i], __ATOMIC_RELAXED));
}

void cache_status_json(void *file)
{
	FILE *f = file;
	struct lv_cache_counters c;
	cache_counters(&c);
	struct l1_stats s = {0};
	if (cache_l1)
		l1_stats(cache_l1, &s);
	struct cache_purge_retry_stats pr;
	cache_purge_retry_stats(&pr);
	fprintf(f,
	        "{\"hits\":%llu,\"misses\":%llu,\"bypasses\":%llu,\"stores\":%llu,\"store_refused\":%llu,"
	        "\"coalesced\":%llu,\"l1\":{\"entries\":%llu,\"bytes\":%llu,\"max_bytes\":%llu,\"evictions\":%llu,"
	        "\"max_entry_bytes\":%llu},"
	        "\"purges\":{\"waiting\":%llu,\"retried\":%llu,\"applied_late\":%llu,\"folded\":%llu,"
	        "\"l2_fenced\":%s}}",
	        (unsigned long long)c.hits, (unsigned long long)c.misses, (unsigned long long)c.bypasses,
	        (unsigned long long)c.stores, (unsigned long long)c.store_refused, (unsigned long long)c.coalesced,
	        (unsigned long long)s.entries, (unsigned long long)s.bytes, (unsigned long long)s.max_bytes,
	        (unsigned long long)s.evictions, (unsigned long long)(cache_l1 ? l1_max_entry(cache_l1) : 0),
	        (unsigned long long)pr.waiting, (unsigned long long)pr.retried, (unsigned long long)pr.applied,
	        (unsigned long long)pr.folded, pr.fenced ? "true" : "false");
}
