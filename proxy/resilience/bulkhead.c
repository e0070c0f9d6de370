/*
 * bulkhead.c - see bulkhead.h. The queue is an intrusive doubly linked list
 * of waiters, oldest first, under the bulkhead's mutex; the registry is a
 * list of bulkheads under its own mutex, taken on reloads and scrapes only.
 */
#include "resilience/bulkhead.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stats.h"

const double bh_wait_bounds[BH_WAIT_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,   0.25,   0.5,   1.0,  2.5};

static struct registry bulkheads = REGISTRY_INIT;

/* ---- the queue (b->lock held) -------------------------------------------- */

/* The limit in force for requests of normal and optional routes: the
 * policy's (or the adaptive limit) scaled by the tier in force, at least
 * one slot. Critical ones have b->limit (bulkhead_scale()). */
static uint64_t limit_now(const struct bulkhead *b)
{
	if (b->scale >= 100.0)
		return b->limit;
	uint64_t l = (uint64_t)((double)b->limit * b->scale / 100.0);
	return l ? l : 1;
}


/* A wait for the tier signals (sig_hist, see bulkhead.h). */
static void sig_note(struct bulkhead *b, uint64_t us)
{
	b->st.sig_hist[sighist_index(us)]++;
	b->st.sig_count++;
	b->st.sig_sum_us += us;
}

static void wait_note(struct bulkhead *b, const struct bh_waiter *wt, uint64_t now_us)
{
	sig_note(b, now_us > wt->since_us ? now_us - wt->since_us : 0);
	double s = now_us > wt->since_us ? (double)(now_us - wt->since_us) / 1e6 : 0.0;
	unsigned i = 0;
	while (i < BH_WAIT_BUCKETS - 1 && s > bh_wait_bounds[i])
		i++;
	b->st.wait_hist[i]++;
	b->st.wait_count++;
	b->st.wait_sum_s += s;
}

static void queue_unlink(struct bulkhead *b, struct bh_waiter *wt)
{
	int q = wt->critical;
	if (wt->prev)
		wt->prev->next = wt->next;
	else
		b->head[q] = wt->next;
	if (wt->next)
		wt->next->prev = wt->prev;
	else
		b->tail[q] = wt->prev;
	wt->prev = wt->next = NULL;
	b->nq[q]--;
	b->queued--;
}

/* The limit the next waiter may be given a slot under: the full one when a
 * critical request waits (a tier's scale does not hold it back). */
static uint64_t limit_next(const struct bulkhead *b)
{
	return b->head[1] ? b->limit : limit_now(b);
}

/* The thread a waiter given a slot runs its exchange on (see bh_waiter). */
static void slot_given(struct bulkhead *b, struct bh_waiter *wt)
{
	wt->loop = NULL;
	if (wt->movable && b->cfg.isolation == LV_ISOLATION_THREAD && b->nloops) {
		wt->loop = b->loops[b->next_loop++ % b->nloops];
		b->st.handoffs++;
	}
}

/* The waiter a freed slot goes to (see queue_order in bulkhead.h), taken off
 * the queue and marked granted; NULL when none waits. */
static struct bh_waiter *queue_pick(struct bulkhead *b, uint64_t now_us)
{
	/* critical requests first, each queue in its own order */
	int q = b->head[1] != NULL;
	struct bh_waiter *wt = b->head[q];
	if (!wt || b->closed)
		return NULL;
	/* now_us was read before the lock, so a waiter may have queued "later":
	 * that wait is none, not a wrapped-around huge one */
	uint64_t waited = now_us > wt->since_us ? now_us - wt->since_us : 0;
	if (b->cfg.queue_order == LV_QUEUE_ADAPTIVE_LIFO && waited >= b->cfg.queue_timeout_ms * 1000 / 2)
		wt = b->tail[q];
	queue_unlink(b, wt);
	wt->state = BH_GRANTED;
	slot_given(b, wt);
	wait_note(b, wt, now_us);
	return wt;
}

/* Tells granted waiter `wt`, with b->lock held on entry and on return. A
 * waiter that cannot be told is cancelled: false, the slot is still free. */
static bool grant(struct bulkhead *b, struct bh_waiter *wt)
{
	pthread_mutex_unlock(&b->lock);
	bool told = wt->granted(wt);
	pthread_mutex_lock(&b->lock);
	if (told) {
		b->st.acquired++; /* counted here, not when picked: a refused grant took no slot */
	} else {
		wt->state = BH_CANCELLED;
		if (wt->loop)
			b->st.handoffs--;
	}
	return told;
}

/* ---- the queue (any thread) ---------------------------------------------- */

enum bh_rc bulkhead_acquire(struct bulkhead *b, struct bh_waiter *wt, uint64_t now_us)
{
	enum bh_rc rc;
	pthread_mutex_lock(&b->lock);
	if (b->closed) {
		b->st.rejected_closed++;
		rc = BH_CLOSED;
	} else if (wt->critical ? b->active < b->limit && !b->head[1] : b->active < limit_now(b) && !b->queued) {
		/* a critical request goes ahead of the others waiting: they are
		 * there because a tier's scale holds them back (or a grant is on
		 * its way to them); its own queue is served first anyway */
		b->active++;
		b->st.acquired++;
		sig_note(b, 0);
		wt->state = BH_HOLDING;
		slot_given(b, wt);
		rc = BH_ACQUIRED;
	} else if (b->nq[wt->critical] >= b->cfg.max_queue) {
		b->st.rejected_full++;
		sig_note(b, b->cfg.queue_timeout_ms * 1000);
		rc = BH_FULL;
	} else {
		wt->since_us = now_us;
		wt->state = BH_QUEUED;
		wt->next = NULL;
		int q = wt->critical;
		wt->prev = b->tail[q];
		if (b->tail[q])
			b->tail[q]->next = wt;
		else
			b->head[q] = wt;
		b->tail[q] = wt;
		b->nq[q]++;
		b->queued++;
		b->st.queued_total++;
		rc = BH_WAITING;
	}
	pthread_mutex_unlock(&b->lock);
	return rc;
}

bool bulkhead_cancel(struct bulkhead *b, struct bh_waiter *wt, bool timeout, uint64_t now_us)
{
	pthread_mutex_lock(&b->lock);
	bool off = wt->state != BH_GRANTED;
	if (wt->state == BH_QUEUED) {
		queue_unlink(b, wt);
		wt->state = BH_CANCELLED;
		wait_note(b, wt, now_us);
		if (timeout)
			b->st.rejected_timeout++;
	}
	pthread_mutex_unlock(&b->lock);
	return off;
}

void bulkhead_take(struct bulkhead *b, struct bh_waiter *wt)
{
	pthread_mutex_lock(&b->lock);
	if (wt->state == BH_GRANTED)
		wt->state = BH_HOLDING;
	pthread_mutex_unlock(&b->lock);
}

/* Slots free under the limit go to waiters now, not at the next release:
 * after a reload grew the bulkhead, or its adaptive limit rose. */
static void grow(struct bulkhead *b, uint64_t now_us)
{
	while (b->active < limit_next(b)) {
		struct bh_waiter *wt = queue_pick(b, now_us);
		if (!wt)
			break;
		b->active++;
		if (!grant(b, wt))
			b->active--;
	}
}

static void release(struct bulkhead *b, uint64_t now_us, bool sample, uint64_t rtt_us)
{
	pthread_mutex_lock(&b->lock);
	if (sample && !b->cfg.max_concurrent && adaptive_sample(&b->ad, rtt_us, b->active, b->queued, now_us)) {
		uint64_t l = adaptive_limit(&b->ad);
		/* scaled down by a tier: the limit may fall, not grow (the queue a
		 * lower limit makes would otherwise push it back up, and the end
		 * of the tier would let a burst in) */
		b->limit = b->scale < 100.0 && l > b->limit ? b->limit : l;
	}
	/* the slot passes to a waiter without the count dropping, unless the
	 * limit fell below what is in use */
	bool passed = false;
	while (!passed && b->active <= limit_next(b)) {
		struct bh_waiter *wt = queue_pick(b, now_us);
		if (!wt)
			break;
		passed = grant(b, wt);
	}
	if (!passed)
		b->active--;
	grow(b, now_us);
	pthread_mutex_unlock(&b->lock);
}

void bulkhead_release(struct bulkhead *b, uint64_t now_us)
{
	release(b, now_us, false, 0);
}

void bulkhead_release_sample(struct bulkhead *b, uint64_t now_us, uint64_t rtt_us)
{
	release(b, now_us, true, rtt_us);
}

void bulkhead_note_drain(struct bulkhead *b, enum bh_drain what)
{
	pthread_mutex_lock(&b->lock);
	switch (what) {
	case BH_DRAIN_BEGIN:
		b->st.draining++;
		break;
	case BH_DRAIN_COMPLETE:
		b->st.draining--;
		b->st.drained_complete++;
		break;
	case BH_DRAIN_CLOSED:
		b->st.draining--;
		b->st.drained_closed++;
		break;
	case BH_DRAIN_ABANDONED:
		b->st.draining--;
		b->st.abandoned++;
		break;
	}
	pthread_mutex_unlock(&b->lock);
}

void bulkhead_stats(struct bulkhead *b, struct bulkhead_stats *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->st;
	out->active = b->active;
	out->queued = b->queued;
	out->max_concurrent = limit_now(b);
	out->scale = b->scale;
	out->adaptive = !b->cfg.max_concurrent;
	if (out->adaptive) {
		out->limit = b->ad.limit;
		out->long_rtt_s = b->ad.long_rtt_us / 1e6;
		out->short_rtt_s = b->ad.short_rtt_us / 1e6;
		out->gradient = b->ad.gradient;
		out->probing = b->ad.probing;
		out->samples = b->ad.samples;
		out->windows = b->ad.windows;
		out->adaptive_min = b->ad.cfg.min;
		out->adaptive_max = b->ad.cfg.max;
	}
	out->max_queue = b->cfg.max_queue;
	out->threads = b->cfg.isolation == LV_ISOLATION_THREAD ? b->nloops : 0;
	pthread_mutex_unlock(&b->lock);
}

/* ---- the registry -------------------------------------------------------- */

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* b->cfg and b->limit for `cfg`. An adaptive limit keeps its measurements
 * when it was adaptive already; one that was fixed (or a new bulkhead, whose
 * limit is 0) starts from the limit in force, within the adaptive bounds. */
static void limit_configure(struct bulkhead *b, const struct lv_bulkhead *cfg)
{
	bool was_adaptive = b->limit && !b->cfg.max_concurrent;
	b->cfg = *cfg;
	if (cfg->max_concurrent) {
		b->limit = cfg->max_concurrent;
		return;
	}
	struct adaptive_cfg ac = {
	    .min = cfg->adaptive_min ? cfg->adaptive_min : 1,
	    .smoothing = cfg->adaptive_smoothing > 0 ? cfg->adaptive_smoothing / 100.0 : 1.0,
	    .window_us = cfg->adaptive_window_ms * 1000,
	};
	ac.max = cfg->adaptive_max > ac.min ? cfg->adaptive_max : ac.min;
	if (was_adaptive)
		adaptive_configure(&b->ad, &ac);
	else
		adaptive_init(&b->ad, &ac, b->limit);
	b->limit = adaptive_limit(&b->ad);
}

static struct named *bulkhead_make(const void *arg)
{
	struct bulkhead *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	pthread_mutex_init(&b->lock, NULL);
	b->scale = 100.0;
	limit_configure(b, arg); /* nobody uses it yet: no grant to make */
	return &b->named;
}

struct bulkhead *bulkhead_get(const struct lv_bulkhead *cfg)
{
	struct named *n = registry_get(&bulkheads, cfg->name, bulkhead_make, cfg);
	return n ? registry_of(n, struct bulkhead, named) : NULL;
}

void bulkhead_scale(struct bulkhead *b, double pct)
{
	uint64_t now_us = mono_us();
	pthread_mutex_lock(&b->lock);
	b->scale = pct > 0 && pct < 100.0 ? pct : 100.0;
	grow(b, now_us); /* a scale that rose frees slots for the queue now */
	pthread_mutex_unlock(&b->lock);
}

void bulkhead_apply(struct bulkhead *b, const struct lv_bulkhead *cfg, struct worker *const *loops, unsigned n)
{
	uint64_t now_us = mono_us();
	pthread_mutex_lock(&b->lock);
	limit_configure(b, cfg);
	if (n > LV_MAX_BULKHEAD_THREADS)
		n = LV_MAX_BULKHEAD_THREADS;
	for (unsigned i = 0; i < n; i++)
		b->loops[i] = loops[i];
	b->nloops = n;
	grow(b, now_us);
	pthread_mutex_unlock(&b->lock);
}

void bulkhead_put(struct bulkhead *b)
{
	if (!b || !registry_put(&bulkheads, &b->named))
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

void bulkhead_shutdown_all(void)
{
	pthread_mutex_lock(&bulkheads.lock);
	REGISTRY_EACH(&bulkheads, struct bulkhead, named, b) {
		pthread_mutex_lock(&b->lock);
		b->closed = true;
		while (b->queued) {
			struct bh_waiter *wt = b->head[b->head[1] != NULL];
			queue_unlink(b, wt);
			wt->state = BH_CANCELLED;
			b->st.rejected_closed++;
		}
		pthread_mutex_unlock(&b->lock);
	}
	pthread_mutex_unlock(&bulkheads.lock);
}

/* ---- rendering ----------------------------------------------------------- */

#define BH_GAUGES(X)                                                                               \
	X(active, "levee_bulkhead_active", "Bulkhead slots in use (exchanges running or draining)")  \
	X(queued, "levee_bulkhead_queued", "Requests waiting for a bulkhead slot")                   \
	X(draining, "levee_bulkhead_draining", "Exchanges kept after their client's end, holding a slot until the late answer") \
	X(max_concurrent, "levee_bulkhead_max_concurrent", "The bulkhead's limit in force: max_concurrent, or with auto the adaptive limit's whole part") \
	X(max_queue, "levee_bulkhead_max_queue", "The bulkhead's max_queue")                        \
	X(threads, "levee_bulkhead_threads", "Threads the bulkhead hands its exchanges to (0: semaphore isolation)")

/* The adaptive limits' inputs, for the bulkheads with max_concurrent = auto. */
static void bulkhead_render_adaptive(FILE *f, const struct bulkhead_stats *st, const char *const *names, size_t n)
{
	static const struct {
		const char *metric, *type, *help;
		size_t off;
	} gauges[] = {
	    {"levee_bulkhead_adaptive_limit", "gauge", "The adaptive limit, before rounding down to whole slots",
	     offsetof(struct bulkhead_stats, limit)},
	    {"levee_bulkhead_adaptive_gradient", "gauge",
	     "The last window's gradient: 1.5 x long RTT / short RTT, within 0.5..1 (1: no sign of congestion)",
	     offsetof(struct bulkhead_stats, gradient)},
	};
	for (size_t k = 0; k < sizeof(gauges) / sizeof(gauges[0]); k++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", gauges[k].metric, gauges[k].help, gauges[k].metric,
		        gauges[k].type);
		for (size_t i = 0; i < n; i++) {
			double v;
			memcpy(&v, (const char *)&st[i] + gauges[k].off, sizeof(v));
			if (st[i].adaptive)
				fprintf(f, "%s{bulkhead=\"%s\"} %.6g\n", gauges[k].metric, names[i], v);
		}
	}
	fprintf(f, "# HELP levee_bulkhead_rtt_seconds The adaptive limit's latency inputs, by window: the baseline (long) "
	           "and the last window's mean (short)\n# TYPE levee_bulkhead_rtt_seconds gauge\n");
	for (size_t i = 0; i < n; i++)
		if (st[i].adaptive)
			fprintf(f,
			        "levee_bulkhead_rtt_seconds{bulkhead=\"%s\",window=\"long\"} %.6f\n"
			        "levee_bulkhead_rtt_seconds{bulkhead=\"%s\",window=\"short\"} %.6f\n",
			        names[i], st[i].long_rtt_s, names[i], st[i].short_rtt_s);
	fprintf(f, "# HELP levee_bulkhead_adaptive_samples_total Latency samples taken by the adaptive limit\n"
	           "# TYPE levee_bulkhead_adaptive_samples_total counter\n");
	for (size_t i = 0; i < n; i++)
		if (st[i].adaptive)
			fprintf(f, "levee_bulkhead_adaptive_samples_total{bulkhead=\"%s\"} %llu\n", names[i],
			        (unsigned long long)st[i].samples);
}

static void bulkhead_fill(struct named *n, void *out, void *arg)
{
	(void)arg;
	bulkhead_stats(registry_of(n, struct bulkhead, named), out);
}

void bulkhead_render_prometheus(FILE *f)
{
	struct registry_snapshot snap;
	if (registry_snapshot(&bulkheads, sizeof(struct bulkhead_stats), bulkhead_fill, NULL, &snap) != LV_OK)
		return;
	size_t n = snap.n, i;
	const struct bulkhead_stats *st = snap.figures;
	const char **names = snap.names;
	/* names stay valid: a bulkhead goes only under the registry's lock, held here */
#define BH_G(field, metric, help)                                                                  \
	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", metric, help, metric);                        \
	for (i = 0; i < n; i++)                                                                    \
		fprintf(f, "%s{bulkhead=\"%s\"} %llu\n", metric, names[i], (unsigned long long)st[i].field);
	BH_GAUGES(BH_G)
#undef BH_G
	bulkhead_render_adaptive(f, st, names, n);
	static const struct {
		const char *metric, *help, *label, *value[3];
		size_t off[3];
	} families[] = {
	    {"levee_bulkhead_acquired_total", "Bulkhead slots taken, at once or after waiting", NULL, {NULL},
	     {offsetof(struct bulkhead_stats, acquired)}},
	    {"levee_bulkhead_handoffs_total", "Exchanges handed to the bulkhead's own threads", NULL, {NULL},
	     {offsetof(struct bulkhead_stats, handoffs)}},
	    {"levee_bulkhead_rejected_total", "Requests a bulkhead refused, by reason", "reason",
	     {"full", "timeout", "closed"},
	     {offsetof(struct bulkhead_stats, rejected_full), offsetof(struct bulkhead_stats, rejected_timeout),
	      offsetof(struct bulkhead_stats, rejected_closed)}},
	    {"levee_bulkhead_drained_total", "Exchanges kept after their client's end, by how they ended", "result",
	     {"complete", "closed", "abandoned"},
	     {offsetof(struct bulkhead_stats, drained_complete), offsetof(struct bulkhead_stats, drained_closed),
	      offsetof(struct bulkhead_stats, abandoned)}},
	};
	for (size_t k = 0; k < sizeof(families) / sizeof(families[0]); k++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", families[k].metric, families[k].help,
		        families[k].metric);
		for (i = 0; i < n; i++)
			for (unsigned j = 0; j < (families[k].label ? 3u : 1u); j++) {
				uint64_t v;
				memcpy(&v, (const char *)&st[i] + families[k].off[j], sizeof(v));
				if (families[k].label)
					fprintf(f, "%s{bulkhead=\"%s\",%s=\"%s\"} %llu\n", families[k].metric, names[i],
					        families[k].label, families[k].value[j], (unsigned long long)v);
				else
					fprintf(f, "%s{bulkhead=\"%s\"} %llu\n", families[k].metric, names[i],
					        (unsigned long long)v);
			}
	}
	fprintf(f, "# HELP levee_bulkhead_queue_wait_seconds Time requests spent in a bulkhead's queue\n"
	           "# TYPE levee_bulkhead_queue_wait_seconds histogram\n");
	for (i = 0; i < n; i++)
		prom_histogram(f, "levee_bulkhead_queue_wait_seconds", "bulkhead", names[i], bh_wait_bounds,
		               BH_WAIT_BUCKETS, st[i].wait_hist, st[i].wait_sum_s);
	registry_snapshot_done(&bulkheads, &snap);
}

void bulkhead_status_json(FILE *f)
{
	pthread_mutex_lock(&bulkheads.lock);
	fputc('[', f);
	REGISTRY_EACH(&bulkheads, struct bulkhead, named, b) {
		struct bulkhead_stats s;
		bulkhead_stats(b, &s);
		fprintf(f,
		        "%s{\"name\":\"%s\",\"isolation\":\"%s\",\"threads\":%llu,\"active\":%llu,\"queued\":%llu,"
		        "\"draining\":%llu,\"max_concurrent\":%llu,\"max_queue\":%llu,\"acquired\":%llu,"
		        "\"handoffs\":%llu,\"rejected_full\":%llu,\"rejected_timeout\":%llu,\"abandoned\":%llu",
		        &b->named == bulkheads.head ? "" : ",", b->named.name, s.threads ? "thread" : "semaphore",
		        (unsigned long long)s.threads, (unsigned long long)s.active, (unsigned long long)s.queued,
		        (unsigned long long)s.draining, (unsigned long long)s.max_concurrent,
		        (unsigned long long)s.max_queue, (unsigned long long)s.acquired, (unsigned long long)s.handoffs,
		        (unsigned long long)s.rejected_full, (unsigned long long)s.rejected_timeout,
		        (unsigned long long)s.abandoned);
		/* a tier's bulkhead_scale: max_concurrent above is the scaled limit */
		fprintf(f, ",\"scale_pct\":%g", s.scale);
		if (s.adaptive)
			fprintf(f,
			        ",\"adaptive\":{\"limit\":%.3f,\"min\":%llu,\"max\":%llu,\"long_rtt_ms\":%.3f,"
			        "\"short_rtt_ms\":%.3f,\"gradient\":%.3f,\"samples\":%llu,\"windows\":%llu,\"probing\":%s}}",
			        s.limit, (unsigned long long)s.adaptive_min, (unsigned long long)s.adaptive_max,
			        s.long_rtt_s * 1e3, s.short_rtt_s * 1e3, s.gradient, (unsigned long long)s.samples,
			        (unsigned long long)s.windows, s.probing ? "true" : "false");
		else
			fputc('}', f); /* a fixed limit: no adaptive object */
	}
	fputc(']', f);
	pthread_mutex_unlock(&bulkheads.lock);
}
