#include "stats.h"

#include <pthread.h>
#include <string.h>

const double lv_hist_bounds[LV_HIST_BUCKETS - 1] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,    0.25,  0.5,    1,     2.5,   5,    10};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static char reg_names[LV_ROUTE_STATS][LV_NAME_MAX] = {"default"};
static unsigned reg_count = 1;

unsigned stats_route_index(const char *name)
{
	unsigned idx = 0;
	pthread_mutex_lock(&reg_lock);
	for (unsigned i = 0; i < reg_count; i++) {
		if (strcmp(reg_names[i], name) == 0) {
			idx = i;
			goto out;
		}
	}
	if (reg_count < LV_ROUTE_STATS) {
		snprintf(reg_names[reg_count], LV_NAME_MAX, "%s", name);
		idx = reg_count;
		__atomic_store_n(&reg_count, reg_count + 1, __ATOMIC_RELEASE);
	}
out:
	pthread_mutex_unlock(&reg_lock);
	return idx;
}

void stats_record_request(struct lv_stats *s, unsigned route_idx, int status, uint64_t dur_us)
{
	struct lv_route_stats *r = &s->routes[route_idx < LV_ROUTE_STATS ? route_idx : 0];
	int cls = status / 100 - 1;
	if (cls < 0 || cls >= LV_CLASSES)
		cls = LV_CLASSES - 1;
	stat_inc(r->cls[cls]);
	double secs = (double)dur_us / 1e6;
	int b = 0;
	while (b < LV_HIST_BUCKETS - 1 && secs > lv_hist_bounds[b])
		b++;
	stat_inc(r->hist[b]);
	stat_add(&r->sum_us, dur_us);
}

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void render_routes(FILE *out, struct lv_stats *const *w, unsigned n)
{
	unsigned count = __atomic_load_n(&reg_count, __ATOMIC_ACQUIRE);
	fputs("# HELP levee_requests_total Requests answered, by route and status class\n"
	      "# TYPE levee_requests_total counter\n",
	      out);
	for (unsigned r = 0; r < count; r++) {
		uint64_t any = 0, cls[LV_CLASSES] = {0};
		for (unsigned i = 0; i < n; i++)
			for (int c = 0; c < LV_CLASSES; c++)
				cls[c] += ld(&w[i]->routes[r].cls[c]);
		for (int c = 0; c < LV_CLASSES; c++)
			any += cls[c];
		if (!any && r != 0)
			continue;
		for (int c = 0; c < LV_CLASSES; c++)
			fprintf(out, "levee_requests_total{route=\"%s\",class=\"%dxx\"} %llu\n", reg_names[r],
			        c + 1, (unsigned long long)cls[c]);
	}
	fputs("# HELP levee_request_duration_seconds Time from request head to the end of the response\n"
	      "# TYPE levee_request_duration_seconds histogram\n",
	      out);
	for (unsigned r = 0; r < count; r++) {
		uint64_t hist[LV_HIST_BUCKETS] = {0}, sum = 0, total = 0;
		for (unsigned i = 0; i < n; i++) {
			for (int b = 0; b < LV_HIST_BUCKETS; b++)
				hist[b] += ld(&w[i]->routes[r].hist[b]);
			sum += ld(&w[i]->routes[r].sum_us);
		}
		for (int b = 0; b < LV_HIST_BUCKETS; b++)
			total += hist[b];
		if (!total && r != 0)
			continue;
		uint64_t cum = 0;
		for (int b = 0; b < LV_HIST_BUCKETS; b++) {
			cum += hist[b];
			if (b < LV_HIST_BUCKETS - 1)
				fprintf(out, "levee_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
				        reg_names[r], lv_hist_bounds[b], (unsigned long long)cum);
			else
				fprintf(out, "levee_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
				        reg_names[r], (unsigned long long)cum);
		}
		fprintf(out, "levee_request_duration_seconds_sum{route=\"%s\"} %.6f\n", reg_names[r],
		        (double)sum / 1e6);
		fprintf(out, "levee_request_duration_seconds_count{route=\"%s\"} %llu\n", reg_names[r],
		        (unsigned long long)total);
	}
}

void stats_render_prometheus(FILE *out, struct lv_stats *const *w, unsigned n, const struct lv_gauges *g)
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
	fputs("# HELP levee_rejected_requests_total Answers levee produced itself, by reason\n"
	      "# TYPE levee_rejected_requests_total counter\n",
	      out);
	for (int r = 1; r < R__COUNT; r++) {
		uint64_t v = 0;
		for (unsigned i = 0; i < n; i++)
			v += ld(&w[i]->rejected[r]);
		fprintf(out, "levee_rejected_requests_total{reason=\"%s\"} %llu\n", lv_reasons[r].token,
		        (unsigned long long)v);
	}
	render_routes(out, w, n);
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
