#include "stats.h"

#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const double lv_hist_bounds[LV_HIST_BUCKETS - 1] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,    0.25,  0.5,    1,     2.5,   5,    10};

/* The registry: names by index, and an open-addressing table from name to
 * index (0: empty slot) so that registering a policy's thousands of routes
 * costs one probe each, not a scan of every name. Written under reg_lock;
 * a name is written before reg_count is published, and read only through
 * an index the registry returned. */
#define REG_SLOTS 32768 /* a power of two, at least twice LV_ROUTE_STATS: short probes */
_Static_assert(REG_SLOTS >= 2 * LV_ROUTE_STATS && (REG_SLOTS & (REG_SLOTS - 1)) == 0, "registry table size");
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static char reg_names[LV_ROUTE_STATS][LV_NAME_MAX] = {"default"};
static uint16_t reg_slots[REG_SLOTS];
static unsigned reg_count = 1;

static uint32_t stats_name_hash(const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a 32 */
	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h;
}

unsigned stats_route_index(const char *name)
{
	if (strcmp(name, "default") == 0)
		return 0; /* a route so named shares the requests that matched none */
	unsigned idx = 0;
	pthread_mutex_lock(&reg_lock);
	uint32_t at = stats_name_hash(name) & (REG_SLOTS - 1);
	for (; reg_slots[at] != 0; at = (at + 1) & (REG_SLOTS - 1)) {
		if (strcmp(reg_names[reg_slots[at]], name) == 0) {
			idx = reg_slots[at];
			goto out;
		}
	}
	if (reg_count < LV_ROUTE_STATS) {
		snprintf(reg_names[reg_count], LV_NAME_MAX, "%s", name);
		idx = reg_count;
		reg_slots[at] = (uint16_t)idx;
		__atomic_store_n(&reg_count, reg_count + 1, __ATOMIC_RELEASE);
	}
out:
	pthread_mutex_unlock(&reg_lock);
	return idx;
}

/* The chunk of route `idx`, allocated on first use; NULL if that fails. The
 * worker is the only writer, so the lazy allocation needs no lock, and it
 * happens once per 64 routes in a worker's life. */
static struct lv_route_stats *stats_route_entry(struct lv_stats *s, unsigned idx)
{
	struct lv_route_stats **slot = &s->route_chunks[idx / LV_ROUTE_CHUNK];
	struct lv_route_stats *c = __atomic_load_n(slot, __ATOMIC_RELAXED);
	if (c == NULL) {
		c = calloc(LV_ROUTE_CHUNK, sizeof(*c));
		if (c == NULL)
			return NULL;
		__atomic_store_n(slot, c, __ATOMIC_RELEASE);
	}
	return c + idx % LV_ROUTE_CHUNK;
}

struct lv_route_stats *stats_route(struct lv_stats *s, unsigned idx)
{
	return stats_route_entry(s, idx < LV_ROUTE_STATS ? idx : 0);
}

const struct lv_route_stats *stats_route_peek(const struct lv_stats *s, unsigned idx)
{
	if (idx >= LV_ROUTE_STATS)
		return NULL;
	const struct lv_route_stats *c = __atomic_load_n(&s->route_chunks[idx / LV_ROUTE_CHUNK], __ATOMIC_ACQUIRE);
	return c ? c + idx % LV_ROUTE_CHUNK : NULL;
}

void stats_record_request(struct lv_stats *s, unsigned route_idx, int status, uint64_t dur_us, bool cached)
{
	struct lv_route_stats *r = stats_route_entry(s, route_idx < LV_ROUTE_STATS ? route_idx : 0);
	if (r == NULL)
		return;
	int cls = status / 100 - 1;
	if (cls < 0 || cls >= LV_CLASSES)
		cls = LV_CLASSES - 1;
	stat_inc(r->cls[cls]);
	if (cached)
		stat_inc(r->cached);
	double secs = (double)dur_us / 1e6;
	int b = 0;
	while (b < LV_HIST_BUCKETS - 1 && secs > lv_hist_bounds[b])
		b++;
	stat_inc(r->hist[b]);
	stat_add(&r->sum_us, dur_us);
}

const char *const lv_cache_result_names[LV_CR__COUNT] = {
#define LV_CR_NAME(id, label) [LV_CR_##id] = label,
    LV_CACHE_RESULTS(LV_CR_NAME)
#undef LV_CR_NAME
};

void stats_record_cache(struct lv_stats *s, unsigned route_idx, enum lv_cache_result res)
{
	struct lv_route_stats *r = stats_route_entry(s, route_idx < LV_ROUTE_STATS ? route_idx : 0);
	if (r != NULL && (unsigned)res < LV_CR__COUNT)
		stat_inc(r->cache[res]);
}

void stats_record_fallback(struct lv_stats *s, unsigned route_idx, int cause, enum lv_fallback_kind kind)
{
	struct lv_route_stats *r = stats_route_entry(s, route_idx < LV_ROUTE_STATS ? route_idx : 0);
	if (r != NULL && cause >= 0 && cause < LV_FALLBACK_CAUSES_N && kind < LV_FB__COUNT)
		stat_inc(r->fallbacks[cause][kind]);
}

void stats_free_routes(struct lv_stats *s)
{
	for (size_t i = 0; i < sizeof(s->route_chunks) / sizeof(s->route_chunks[0]); i++) {
		free(s->route_chunks[i]);
		s->route_chunks[i] = NULL;
	}
}

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* A worker that never used its chunk adds nothing. */
void stats_route_sum(struct lv_stats *const *w, unsigned n, unsigned idx, struct lv_route_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < n; i++) {
		const struct lv_route_stats *c = __atomic_load_n(&w[i]->route_chunks[idx / LV_ROUTE_CHUNK], __ATOMIC_ACQUIRE);
		if (c == NULL)
			continue;
		c += idx % LV_ROUTE_CHUNK;
		for (int k = 0; k < LV_CLASSES; k++)
			sum->cls[k] += ld(&c->cls[k]);
		sum->cached += ld(&c->cached);
		for (int k = 0; k < LV_CR__COUNT; k++)
			sum->cache[k] += ld(&c->cache[k]);
		for (int b = 0; b < LV_HIST_BUCKETS; b++)
			sum->hist[b] += ld(&c->hist[b]);
		sum->sum_us += ld(&c->sum_us);
		for (int k = 0; k < LV_FALLBACK_CAUSES_N; k++)
			for (int f = 0; f < LV_FB__COUNT; f++)
				sum->fallbacks[k][f] += ld(&c->fallbacks[k][f]);
	}
}

double stats_hist_quantile(const uint64_t *hist, double q)
{
	uint64_t total = 0;
	for (int b = 0; b < LV_HIST_BUCKETS; b++)
		total += hist[b];
	if (!total)
		return NAN;
	/* the rank of the quantile, counted from 1: the 99th of 100 is 99 */
	uint64_t rank = (uint64_t)ceil(q * (double)total), cum = 0;
	if (rank < 1)
		rank = 1;
	for (int b = 0; b < LV_HIST_BUCKETS - 1; b++) {
		cum += hist[b];
		if (cum >= rank)
			return lv_hist_bounds[b];
	}
	return INFINITY;
}

/* The k-th route to render: "default", then the policy's; 0 past "default"
 * is a route the full registry folded into it, already rendered. */
static bool stats_render_index(const unsigned *routes, size_t k, unsigned *idx)
{
	*idx = k == 0 ? 0 : routes[k - 1];
	return k == 0 || *idx != 0;
}

/* The k-th route to render, summed over the <n> workers into *sum. */
static bool stats_render_route(struct lv_stats *const *w, unsigned n, const unsigned *routes, size_t k, unsigned *r,
                               struct lv_route_stats *sum)
{
	if (!stats_render_index(routes, k, r))
		return false;
	stats_route_sum(w, n, *r, sum);
	return true;
}

static uint64_t stats_total(const uint64_t *v, int n)
{
	uint64_t t = 0;
	for (int i = 0; i < n; i++)
		t += v[i];
	return t;
}

/* One per-route family: its HELP and TYPE lines, and the series of one
 * route, summed over the workers (route index r). */
struct route_family {
	const char *head;
	void (*series)(FILE *out, unsigned r, const struct lv_route_stats *sum);
};

static void series_requests(FILE *out, unsigned r, const struct lv_route_stats *sum)
{
	if (!stats_total(sum->cls, LV_CLASSES) && r != 0)
		return;
	for (int c = 0; c < LV_CLASSES; c++)
		fprintf(out, "levee_requests_total{route=\"%s\",class=\"%dxx\"} %llu\n", reg_names[r], c + 1,
		        (unsigned long long)sum->cls[c]);
}

static void series_duration(FILE *out, unsigned r, const struct lv_route_stats *sum)
{
	if (!stats_total(sum->hist, LV_HIST_BUCKETS) && r != 0)
		return;
	prom_histogram(out, "levee_request_duration_seconds", "route", reg_names[r], lv_hist_bounds, LV_HIST_BUCKETS,
	               sum->hist, (double)sum->sum_us / 1e6);
}

/* every result of a route once it has counted one: a route that does not
 * cache (or "default", which matches no route and so never caches) has no
 * series */
static void series_cache(FILE *out, unsigned r, const struct lv_route_stats *sum)
{
	if (!stats_total(sum->cache, LV_CR__COUNT))
		return;
	for (int c = 0; c < LV_CR__COUNT; c++)
		fprintf(out, "levee_cache_lookups_total{route=\"%s\",result=\"%s\"} %llu\n", reg_names[r],
		        lv_cache_result_names[c], (unsigned long long)sum->cache[c]);
}

/* only the series that happened: routes times causes times kinds would be
 * mostly zeros */
static void series_fallbacks(FILE *out, unsigned r, const struct lv_route_stats *sum)
{
	for (int c = 0; c < LV_FALLBACK_CAUSES_N; c++)
		for (int f = 0; f < LV_FB__COUNT; f++)
			if (sum->fallbacks[c][f]) {
				char rv[PROM_VALUE_MAX], fv[PROM_VALUE_MAX];
				fprintf(out, "levee_fallbacks_total{route=\"%s\",reason=\"%s\",fallback=\"%s\"} %llu\n",
				        reg_names[r], prom_value(rv, lv_reasons[lv_fallback_causes[c]].token),
				        prom_value(fv, lv_fallback_kind_names[f]), (unsigned long long)sum->fallbacks[c][f]);
			}
}

static const struct route_family route_families[] = {
    {"# HELP levee_requests_total Requests answered, by route and status class\n"
     "# TYPE levee_requests_total counter\n",
     series_requests},
    {"# HELP levee_request_duration_seconds Time from request head to the end of the response\n"
     "# TYPE levee_request_duration_seconds histogram\n",
     series_duration},
    {"# HELP levee_cache_lookups_total Answers that carried a Cache-Status, by route and the outcome it "
     "said (hit, or the value of fwd)\n# TYPE levee_cache_lookups_total counter\n",
     series_cache},
    {"# HELP levee_fallbacks_total Answers a route's fallback gave instead of levee's own error, by route, "
     "the reason of that error and the fallback that answered\n# TYPE levee_fallbacks_total counter\n",
     series_fallbacks},
};

static void render_routes(FILE *out, struct lv_stats *const *w, unsigned n, const unsigned *routes, size_t nroutes)
{
	struct lv_route_stats sum;
	unsigned r;
	for (size_t f = 0; f < sizeof route_families / sizeof route_families[0]; f++) {
		fputs(route_families[f].head, out);
		for (size_t k = 0; k <= nroutes; k++)
			if (stats_render_route(w, n, routes, k, &r, &sum))
				route_families[f].series(out, r, &sum);
	}
}

void prom_histogram(FILE *out, const char *metric, const char *label, const char *value, const double *bounds,
                    unsigned nbuckets, const uint64_t *hist, double sum)
{
	uint64_t cum = 0;
	for (unsigned b = 0; b < nbuckets; b++) {
		cum += hist[b];
		if (b < nbuckets - 1)
			fprintf(out, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", metric, label, value, bounds[b],
			        (unsigned long long)cum);
		else
			fprintf(out, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", metric, label, value,
			        (unsigned long long)cum);
	}
	fprintf(out, "%s_sum{%s=\"%s\"} %.6f\n", metric, label, value, sum);
	fprintf(out, "%s_count{%s=\"%s\"} %llu\n", metric, label, value, (unsigned long long)cum);
}

const char *prom_value(char buf[PROM_VALUE_MAX], const char *token)
{
	size_t i = 0;
	for (; token[i] && i < PROM_VALUE_MAX - 1; i++)
		buf[i] = token[i] == '-' ? '_' : token[i];
	buf[i] = '\0';
	return buf;
}

static const char *reason_token(int i)
{
	return lv_reasons[i].token;
}

static const char *outcome_token(int i)
{
	return request_outcome_names[i];
}

/* A counter family with one label: element i (from 1 to n-1) of the array
 * at `off` in each worker's stats, summed. */
static void render_labelled(FILE *out, const char *metric, const char *help, const char *label,
                            const char *(*name)(int), int count, struct lv_stats *const *w, unsigned n,
                            size_t off)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s counter\n", metric, help, metric);
	for (int k = 1; k < count; k++) {
		uint64_t v = 0;
		char value[PROM_VALUE_MAX];
		for (unsigned i = 0; i < n; i++)
			v += ld((const uint64_t *)(const void *)((const char *)w[i] + off) + k);
		fprintf(out, "%s{%s=\"%s\"} %llu\n", metric, label, prom_value(value, name(k)), (unsigned long long)v);
	}
}

void stats_render_prometheus(FILE *out, struct lv_stats *const *w, unsigned n, const struct lv_gauges *g,
                             const unsigned *routes, size_t nroutes)
{
	fprintf(out, "# HELP levee_build_info Build information\n# TYPE levee_build_info gauge\n"
	             "levee_build_info{version=\"%s\"} 1\n",
	        LEVEE_VERSION);
#define LV_S_RENDER(f, name, help)                                                                 \
	{                                                                                          \
		uint64_t v = 0;                                                                    \
		for (unsigned i = 0; i < n; i++)                                                   \
			v += ld(&w[i]->f);                                                         \
		fprintf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,  \
		        (unsigned long long)v);                                                    \
	}
	LV_COUNTERS(LV_S_RENDER)
#undef LV_S_RENDER
	render_labelled(out, "levee_rejected_requests_total", "Answers levee produced itself, by reason", "reason",
	                reason_token, R__COUNT, w, n, offsetof(struct lv_stats, rejected));
	render_labelled(out, "levee_request_outcomes_total",
	                "Requests by how they ended: the upstream's answer or failure, a cache answer, levee's "
	                "own refusal, the client's fault or departure",
	                "outcome", outcome_token, OUT__COUNT, w, n, offsetof(struct lv_stats, outcomes));
	render_routes(out, w, n, routes, nroutes);
	fprintf(out,
	        "# HELP levee_connections_active Client connections open now\n"
	        "# TYPE levee_connections_active gauge\nlevee_connections_active %llu\n"
	        "# HELP levee_workers Worker threads\n# TYPE levee_workers gauge\nlevee_workers %llu\n"
	        "# HELP levee_policy_reloads_total Policy reload attempts, by result\n"
	        "# TYPE levee_policy_reloads_total counter\n"
	        "levee_policy_reloads_total{result=\"ok\"} %llu\n"
	        "levee_policy_reloads_total{result=\"unchanged\"} %llu\n"
	        "levee_policy_reloads_total{result=\"error\"} %llu\n"
	        "# HELP levee_policy_last_reload_success Whether the last reload attempt succeeded (applied or unchanged)\n"
	        "# TYPE levee_policy_last_reload_success gauge\nlevee_policy_last_reload_success %d\n"
	        "# HELP levee_policy_restart_pending Whether the running policy's file changes keys that take a restart\n"
	        "# TYPE levee_policy_restart_pending gauge\nlevee_policy_restart_pending %d\n"
	        "# HELP levee_policy_loaded_timestamp_seconds When the running policy was loaded\n"
	        "# TYPE levee_policy_loaded_timestamp_seconds gauge\nlevee_policy_loaded_timestamp_seconds %.3f\n"
	        "# HELP levee_ready Whether /readyz answers 200\n# TYPE levee_ready gauge\nlevee_ready %d\n"
	        "# HELP levee_draining Whether levee is draining\n# TYPE levee_draining gauge\nlevee_draining %d\n"
	        "# HELP levee_upstream_reachable Whether the last upstream probe connected\n"
	        "# TYPE levee_upstream_reachable gauge\nlevee_upstream_reachable %d\n",
	        (unsigned long long)g->conns_active, (unsigned long long)g->workers,
	        (unsigned long long)g->reloads_ok, (unsigned long long)g->reloads_unchanged,
	        (unsigned long long)g->reloads_failed, g->last_reload_ok, g->restart_pending, g->last_reload_ts, g->ready, g->draining, g->upstream_reachable);
}
