/*
 * tier_signals.c - sampling the tier signals (tier_signals.h).
 */
#include "resilience/tier_signals.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cgroup.h"
#include "log.h"
#include "net/loop.h"
#include "resilience/breaker.h"
#include "resilience/bulkhead.h"
#include "runtime.h"
#include "sighist.h"
#include "signals.h"
#include "stats.h"

#define WIN_PARTS 5

/* The cumulative vector: the whole's figures first, then each route's, then
 * each bulkhead's. */
enum {
	V_ENDED,
	V_UP_CALLS,
	V_UP_FAILED,
	V_UP_HIST,
	V_Q_COUNT = V_UP_HIST + SIGHIST_BUCKETS,
	V_Q_SUM,
	V_Q_HIST,
	V__FIXED = V_Q_HIST + SIGHIST_BUCKETS,
};
enum { VR_CALLS, VR_FAILED, VR__LEN, VR_HIST = VR__LEN }; /* + SIGHIST_BUCKETS when watched */
enum { VB_COUNT, VB_SUM, VB_HIST, VB__LEN = VB_HIST + SIGHIST_BUCKETS };

/* Per-route upstream histograms of the routes some condition reads the
 * percentiles of, by stats index; allocated once, never freed (at most one
 * per route name levee ever saw). */
static uint64_t *route_hists[LV_ROUTE_STATS];

static struct {
	struct tiers_sources src;
	struct runtime *rt; /* the runtime the layout is for (ref held) */
	const struct lv_policy *p;

	/* the window */
	size_t vlen;
	uint64_t *cur;
	uint64_t *ring[WIN_PARTS];
	uint64_t ring_ms[WIN_PARTS];
	unsigned ring_n, ring_next;
	size_t *route_off; /* per route of p: where its figures are in the vector */
	bool *route_watched;
	size_t *bh_off;
	double *val; /* per signal of p->signals */

	/* the container's readings, kept for the next tick's rates */
	struct cgroup_paths cg;
	struct cgroup_cpu_stat cpu_prev;
	struct cgroup_self_cpu self_prev;
	bool cpu_prev_ok, self_prev_ok;
	uint64_t prev_us;
	enum cgroup_psi_source psi_src[3];
	uint64_t container_ms; /* when they were last read */
} T;

static const char *const fixed_names[] = {
#define LV_SIG_NAME(e, name, kind, what) name,
    LV_SIGNALS(LV_SIG_NAME)
#undef LV_SIG_NAME
};

const char *tier_signals_fixed_name(unsigned i)
{
	return i < SIG__FIXED ? fixed_names[i] : "?";
}

uint64_t *tier_signals_route_hist(unsigned idx)
{
	return idx < LV_ROUTE_STATS ? __atomic_load_n(&route_hists[idx], __ATOMIC_ACQUIRE) : NULL;
}


/* ---- the window's layout ------------------------------------------------- */

/* What a layout owns: the window's vectors and where each object's
 * figures are in them. */
struct layout {
	size_t vlen;
	uint64_t *cur;
	uint64_t *ring[WIN_PARTS];
	size_t *route_off; /* per route of the policy */
	bool *route_watched;
	size_t *bh_off;
	double *val; /* per signal */
};

static void layout_release(struct layout *l)
{
	free(l->cur);
	for (unsigned i = 0; i < WIN_PARTS; i++)
		free(l->ring[i]);
	free(l->route_off);
	free(l->route_watched);
	free(l->bh_off);
	free(l->val);
	memset(l, 0, sizeof(*l));
}

static struct layout layout_take(void)
{
	struct layout l = {T.vlen, T.cur, {0}, T.route_off, T.route_watched, T.bh_off, T.val};
	memcpy(l.ring, T.ring, sizeof(l.ring));
	T.vlen = 0;
	T.cur = NULL;
	memset(T.ring, 0, sizeof(T.ring));
	T.route_off = T.bh_off = NULL;
	T.route_watched = NULL;
	T.val = NULL;
	return l;
}

static void layout_put(const struct layout *l)
{
	T.vlen = l->vlen;
	T.cur = l->cur;
	memcpy(T.ring, l->ring, sizeof(T.ring));
	T.route_off = l->route_off;
	T.route_watched = l->route_watched;
	T.bh_off = l->bh_off;
	T.val = l->val;
}

static void gather(uint64_t *v, uint64_t now_ms, double *out);

/* The vectors for `rt`'s routes, bulkheads and breakers; false when out of
 * memory (nothing is allocated then). */
static bool layout_build(const struct runtime *rt, struct layout *l)
{
	const struct lv_policy *p = rt->policy;
	const struct lv_signal_table *t = p->signals;
	size_t nr = p->nroutes, nb = p->nbulkheads, nsig = t ? t->sig.n : SIG__FIXED;
	memset(l, 0, sizeof(*l));
	l->route_off = calloc(nr ? nr : 1, sizeof(size_t));
	l->bh_off = calloc(nb ? nb : 1, sizeof(size_t));
	l->route_watched = calloc(nr ? nr : 1, sizeof(bool));
	l->val = calloc(nsig, sizeof(double));
	if (!l->route_off || !l->bh_off || !l->route_watched || !l->val)
		goto oom;
	size_t o = V__FIXED;
	for (size_t i = 0; i < nr; i++) {
		l->route_off[i] = o;
		l->route_watched[i] =
		    t && (t->used[sig_route(t, i, SIG_R_UP_P50)] || t->used[sig_route(t, i, SIG_R_UP_P99)]);
		o += VR__LEN + (l->route_watched[i] ? SIGHIST_BUCKETS : 0);
		unsigned si = rt->route_stat[i];
		if (l->route_watched[i] && si < LV_ROUTE_STATS && !route_hists[si]) {
			uint64_t *h = calloc(SIGHIST_BUCKETS, sizeof(uint64_t));
			if (!h)
				goto oom;
			__atomic_store_n(&route_hists[si], h, __ATOMIC_RELEASE);
		}
	}
	for (size_t j = 0; j < nb; j++) {
		l->bh_off[j] = o;
		o += VB__LEN;
	}
	l->vlen = o;
	if (!(l->cur = calloc(o, sizeof(uint64_t))))
		goto oom;
	for (unsigned i = 0; i < WIN_PARTS; i++)
		if (!(l->ring[i] = calloc(o, sizeof(uint64_t))))
			goto oom;
	for (size_t i = 0; i < nsig; i++)
		l->val[i] = NAN;
	return true;
oom:
	layout_release(l);
	return false;
}

/* A reload keeps the window: each snapshot of the new layout takes the old
 * one's figures for the whole process, for the routes of the same name and
 * for the same bulkheads; what is new starts from its figures now (a delta
 * of 0), not from all its history. `nl` is the new layout with `cur`
 * gathered; `ol` the old one, of `ort`. */
static void layout_carry(struct layout *nl, const struct runtime *nrt, const struct layout *ol,
                         const struct runtime *ort)
{
	const struct lv_policy *np = nrt->policy, *op = ort->policy;
	for (unsigned k = 0; k < T.ring_n; k++) {
		uint64_t *d = nl->ring[k];
		const uint64_t *s = ol->ring[k];
		memcpy(d, nl->cur, nl->vlen * sizeof(uint64_t));
		memcpy(d, s, V__FIXED * sizeof(uint64_t));
		for (size_t i = 0; i < np->nroutes; i++)
			for (size_t j = 0; j < op->nroutes; j++) {
				if (ort->route_stat[j] != nrt->route_stat[i])
					continue;
				size_t len = VR__LEN + (nl->route_watched[i] && ol->route_watched[j] ? SIGHIST_BUCKETS : 0);
				memcpy(d + nl->route_off[i], s + ol->route_off[j], len * sizeof(uint64_t));
				break;
			}
		for (size_t i = 0; i < np->nbulkheads; i++)
			for (size_t j = 0; j < op->nbulkheads; j++)
				if (ort->bulkheads[j] == nrt->bulkheads[i]) {
					memcpy(d + nl->bh_off[i], s + ol->bh_off[j], VB__LEN * sizeof(uint64_t));
					break;
				}
	}
}

bool tier_signals_follow(struct runtime *rt)
{
	struct layout nl;
	if (!layout_build(rt, &nl))
		return false;
	runtime_ref(rt);
	struct layout ol = layout_take();
	struct runtime *ort = T.rt;
	T.rt = rt;
	T.p = rt->policy;
	layout_put(&nl);
	if (ort) {
		gather(T.cur, (now_us() / 1000), T.val);
		layout_carry(&nl, rt, &ol, ort);
		for (size_t i = 0; i < SIG__FIXED; i++)
			T.val[i] = ol.val[i]; /* shown until the next tick */
	} else {
		T.ring_n = T.ring_next = 0;
	}
	layout_release(&ol);
	if (ort)
		runtime_unref(ort);
	return true;
}

/* ---- sampling ------------------------------------------------------------ */

static uint64_t ld(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* The cumulative figures into v (and the instantaneous ones into out). */
static void gather(uint64_t *v, uint64_t now_ms, double *out)
{
	const struct lv_policy *p = T.p;
	const struct lv_signal_table *t = p->signals;
	unsigned nw = 0;
	struct lv_stats *const *ws = T.src.stats ? T.src.stats(T.src.ctx, &nw) : NULL;
	memset(v, 0, T.vlen * sizeof(uint64_t));
	uint64_t started = 0;
	for (unsigned w = 0; w < nw; w++) {
		const struct lv_stats *s = ws[w];
		started += ld(&s->load.started);
		v[V_ENDED] += ld(&s->load.ended);
		v[V_UP_CALLS] += ld(&s->load.up_calls);
		v[V_UP_FAILED] += ld(&s->load.up_failed);
		for (unsigned b = 0; b < SIGHIST_BUCKETS; b++)
			v[V_UP_HIST + b] += ld(&s->up_hist[b]);
	}
	out[SIG_INFLIGHT] = started > v[V_ENDED] ? (double)(started - v[V_ENDED]) : 0.0;
	for (size_t i = 0; i < p->nroutes; i++) {
		unsigned si = T.rt->route_stat[i];
		uint64_t *r = v + T.route_off[i], rs = 0, re = 0;
		for (unsigned w = 0; w < nw; w++) {
			const struct lv_route_stats *x = stats_route_peek(ws[w], si);
			if (!x)
				continue;
			rs += ld(&x->load.started);
			re += ld(&x->load.ended);
			r[VR_CALLS] += ld(&x->load.up_calls);
			r[VR_FAILED] += ld(&x->load.up_failed);
		}
		const uint64_t *h = T.route_watched[i] ? tier_signals_route_hist(si) : NULL;
		for (unsigned b = 0; h && b < SIGHIST_BUCKETS; b++)
			r[VR_HIST + b] = ld(&h[b]);
		if (t)
			out[sig_route(t, i, SIG_R_INFLIGHT)] = rs > re ? (double)(rs - re) : 0.0;
	}
	double queued = 0;
	for (size_t j = 0; j < p->nbulkheads; j++) {
		struct bulkhead_stats bs;
		bulkhead_stats(T.rt->bulkheads[j], &bs);
		uint64_t *b = v + T.bh_off[j];
		b[VB_COUNT] = bs.sig_count;
		b[VB_SUM] = bs.sig_sum_us;
		memcpy(b + VB_HIST, bs.sig_hist, sizeof(bs.sig_hist));
		v[V_Q_COUNT] += bs.sig_count;
		v[V_Q_SUM] += bs.sig_sum_us;
		for (unsigned k = 0; k < SIGHIST_BUCKETS; k++)
			v[V_Q_HIST + k] += bs.sig_hist[k];
		queued += (double)bs.queued;
		if (t) {
			out[sig_bulkhead(t, j, SIG_B_QUEUED)] = (double)bs.queued;
			out[sig_bulkhead(t, j, SIG_B_ACTIVE)] = (double)bs.active;
		}
	}
	out[SIG_QUEUED] = queued;
	double open = 0;
	for (size_t k = 0; k < p->nbreakers; k++) {
		struct breaker_stats ks;
		breaker_stats(T.rt->breakers[k], now_ms, &ks);
		bool o = ks.state != BRK_CLOSED;
		open += o;
		if (t)
			out[sig_breaker(t, k, SIG_K_OPEN)] = o;
	}
	out[SIG_BREAKERS_OPEN] = open;
}

/* The container's signals: rates against the last tick's readings. */
static void sample_container(double *out, uint64_t now_us)
{
	uint64_t elapsed = T.prev_us && now_us > T.prev_us ? now_us - T.prev_us : 0;
	const char *why;
	struct cgroup_self_cpu self;
	double pct;
	out[SIG_CPU] = NAN;
	if (cgroup_self_cpu_read(&T.cg, &self) == LV_OK) {
		if (T.self_prev_ok && cgroup_self_cpu_pct(&T.self_prev, &self, elapsed, &pct, &why) == LV_OK)
			out[SIG_CPU] = pct;
		T.self_prev = self;
		T.self_prev_ok = true;
	}
	struct cgroup_cpu_stat cs;
	struct cgroup_throttle th;
	out[SIG_CG_THROTTLED] = NAN;
	if (cgroup_cpu_stat_read(&T.cg, &cs) == LV_OK) {
		if (T.cpu_prev_ok && cgroup_cpu_throttle(&T.cpu_prev, &cs, elapsed, &th, &why) == LV_OK)
			out[SIG_CG_THROTTLED] = th.periods_pct;
		T.cpu_prev = cs;
		T.cpu_prev_ok = true;
	} else {
		T.cpu_prev_ok = false;
	}
	struct cgroup_memory m;
	out[SIG_MEMORY] = out[SIG_CG_MEMORY] = NAN;
	if (cgroup_memory_read(&T.cg, &m) == LV_OK) {
		out[SIG_MEMORY] = (double)m.current;
		if (cgroup_memory_used_pct(&m, &pct, &why) == LV_OK)
			out[SIG_CG_MEMORY] = pct;
	}
	static const struct {
		enum cgroup_psi_resource r;
		int some, full;
	} psi[] = {{CGROUP_PSI_CPU, SIG_PSI_CPU_SOME, SIG_PSI_CPU_FULL},
	           {CGROUP_PSI_MEMORY, SIG_PSI_MEM_SOME, SIG_PSI_MEM_FULL},
	           {CGROUP_PSI_IO, SIG_PSI_IO_SOME, SIG_PSI_IO_FULL}};
	for (unsigned i = 0; i < 3; i++) {
		struct cgroup_psi ps;
		out[psi[i].some] = out[psi[i].full] = NAN;
		T.psi_src[i] = CGROUP_PSI_NONE;
		if (cgroup_psi_read(&T.cg, psi[i].r, &ps) != LV_OK)
			continue;
		T.psi_src[i] = ps.source;
		out[psi[i].some] = ps.some.avg10;
		if (ps.has_full)
			out[psi[i].full] = ps.full.avg10;
	}
	T.prev_us = now_us;
}

static void sample_dependencies(double *out)
{
	bool known = false, up;
	out[SIG_REDIS_UP] = out[SIG_KAFKA_UP] = out[SIG_KAFKA_LAG] = out[SIG_KAFKA_SPOOLED] = NAN;
	if (T.src.redis_up) {
		up = T.src.redis_up(T.src.ctx, &known);
		if (known)
			out[SIG_REDIS_UP] = up;
	}
	if (T.src.kafka_up) {
		int64_t lag = -1, spooled = -1;
		known = false;
		up = T.src.kafka_up(T.src.ctx, &known, &lag, &spooled);
		if (known) {
			out[SIG_KAFKA_UP] = up;
			out[SIG_KAFKA_LAG] = lag >= 0 ? (double)lag : NAN;
			out[SIG_KAFKA_SPOOLED] = spooled >= 0 ? (double)spooled : NAN;
		}
	}
}

/* A window's percentile of histogram h (window delta); 0 with no value
 * (nobody waited, nothing was asked: the calm the exit conditions wait for). */
static double pct_ms(const uint64_t *h, double q)
{
	uint64_t n = 0;
	for (unsigned b = 0; b < SIGHIST_BUCKETS; b++)
		n += h[b];
	return n ? sighist_quantile_ms(h, n, q) : 0.0;
}

/* The window's figures: cur minus the oldest snapshot, into d. */
static void window_values(uint64_t now_ms)
{
	const struct lv_policy *p = T.p;
	const struct lv_signal_table *t = p->signals;
	unsigned oldest = T.ring_n < WIN_PARTS ? 0 : T.ring_next;
	const uint64_t *o = T.ring[oldest];
	uint64_t age_ms = now_ms > T.ring_ms[oldest] ? now_ms - T.ring_ms[oldest] : 0;
	_Static_assert((int)V__FIXED >= (int)VB__LEN && (int)V__FIXED >= (int)VR__LEN + SIGHIST_BUCKETS, "room for any group");
	static uint64_t d[V__FIXED]; /* main thread only */
	for (size_t i = 0; i < V__FIXED; i++)
		d[i] = T.cur[i] >= o[i] ? T.cur[i] - o[i] : 0;
	double *out = T.val;
	out[SIG_RPS] = age_ms ? (double)d[V_ENDED] * 1000.0 / (double)age_ms : 0.0;
	out[SIG_UP_P50] = pct_ms(d + V_UP_HIST, 0.50);
	out[SIG_UP_P99] = pct_ms(d + V_UP_HIST, 0.99);
	out[SIG_ERROR_RATE] = d[V_UP_CALLS] ? 100.0 * (double)d[V_UP_FAILED] / (double)d[V_UP_CALLS] : 0.0;
	out[SIG_QUEUE_WAIT_AVG] = d[V_Q_COUNT] ? (double)d[V_Q_SUM] / (double)d[V_Q_COUNT] / 1000.0 : 0.0;
	out[SIG_QUEUE_WAIT_P99] = pct_ms(d + V_Q_HIST, 0.99);
	if (!t)
		return;
	for (size_t i = 0; i < p->nroutes; i++) {
		size_t off = T.route_off[i], len = VR__LEN + (T.route_watched[i] ? SIGHIST_BUCKETS : 0);
		for (size_t k = 0; k < len; k++)
			d[k] = T.cur[off + k] >= o[off + k] ? T.cur[off + k] - o[off + k] : 0;
		out[sig_route(t, i, SIG_R_ERROR_RATE)] =
		    d[VR_CALLS] ? 100.0 * (double)d[VR_FAILED] / (double)d[VR_CALLS] : 0.0;
		out[sig_route(t, i, SIG_R_UP_P50)] = T.route_watched[i] ? pct_ms(d + VR_HIST, 0.50) : NAN;
		out[sig_route(t, i, SIG_R_UP_P99)] = T.route_watched[i] ? pct_ms(d + VR_HIST, 0.99) : NAN;
	}
	for (size_t j = 0; j < p->nbulkheads; j++) {
		size_t off = T.bh_off[j];
		for (size_t k = 0; k < VB__LEN; k++)
			d[k] = T.cur[off + k] >= o[off + k] ? T.cur[off + k] - o[off + k] : 0;
		out[sig_bulkhead(t, j, SIG_B_WAIT_AVG)] = d[VB_COUNT] ? (double)d[VB_SUM] / (double)d[VB_COUNT] / 1000.0 : 0.0;
		out[sig_bulkhead(t, j, SIG_B_WAIT_P99)] = pct_ms(d + VB_HIST, 0.99);
	}
}

/* A snapshot every fifth of the window (and the first one at once). */
static void window_push(uint64_t now_ms)
{
	uint64_t part = T.p->tiers_cfg.window_ms / WIN_PARTS;
	unsigned last = (T.ring_next + WIN_PARTS - 1) % WIN_PARTS;
	if (T.ring_n && now_ms - T.ring_ms[last] < part)
		return;
	memcpy(T.ring[T.ring_next], T.cur, T.vlen * sizeof(uint64_t));
	T.ring_ms[T.ring_next] = now_ms;
	T.ring_next = (T.ring_next + 1) % WIN_PARTS;
	if (T.ring_n < WIN_PARTS)
		T.ring_n++;
}

void tier_signals_init(const struct tiers_sources *src)
{
	T.src = *src;
	T.cg.root = getenv("LEVEE_CGROUP_ROOT");
}

void tier_signals_sample(uint64_t now_ms)
{
	if (!T.p)
		return;
	gather(T.cur, now_ms, T.val);
	window_push(now_ms);
	window_values(now_ms);
	/* the container's files (a dozen reads, and finding the cgroup each
	 * time: most of a tick's cost) every tick when a condition reads one
	 * of them, else once a second, for /status and the metrics */
	bool used = false;
	for (unsigned i = SIG_CPU; T.p->signals && i <= SIG_PSI_IO_FULL; i++)
		used |= T.p->signals->used[i];
	if (used || !T.container_ms || now_ms - T.container_ms >= 1000) {
		sample_container(T.val, now_ms * 1000);
		T.container_ms = now_ms;
	}
	sample_dependencies(T.val);
}

const double *tier_signals_values(void)
{
	return T.val;
}

const char *tier_signals_psi_source(unsigned i)
{
	return i < 3 ? cgroup_psi_source_name(T.psi_src[i]) : "none";
}

void tier_signals_stop(void)
{
	struct layout l = layout_take();
	layout_release(&l);
	if (T.rt)
		runtime_unref(T.rt);
	T.rt = NULL;
	T.p = NULL;
}
