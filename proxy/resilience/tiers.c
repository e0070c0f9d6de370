/*
 * tiers.c - the tiers' tick and the level it moves (tiers.h).
 *
 * Each tick, on the main loop:
 *   1. takes the current runtime; a new policy (a reload) gets its tiers,
 *      and its signals' layout (tier_signals.h), keeping the level, the
 *      forcing (by the tier's name) and the window;
 *   2.-3. samples every signal (tier_signals.c: what the loops counted,
 *      the bulkheads, breakers, the container's files, Redis and Kafka);
 *   4. lets the controller (tier.h) move at most one step, unless a forcing
 *      holds the level;
 *   5. acts on a change: the level for the tier stage (one atomic store),
 *      bulkhead limits scaled, a log line, the change for control/.
 *
 * A forcing (tiers_force(), any thread) sets the level at once under the
 * lock; the next tick does the rest of step 5.
 */
#include "resilience/tiers.h"

#include <event2/event.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "net/loop.h"
#include "resilience/breaker.h"
#include "resilience/bulkhead.h"
#include "resilience/tier.h"
#include "resilience/tier_signals.h"
#include "runtime.h"
#include "signals.h"
#include "stats.h"

static struct {
	pthread_mutex_t lock; /* ctl, force, forced */
	struct event_base *base;
	struct event *ev;
	struct tiers_sources src;
	uint64_t tick_ms;

	struct runtime *rt; /* the runtime the tiers are for (ref held) */
	const struct lv_policy *p;
	struct tier_ctl ctl;
	struct tier_rule rules[LV_MAX_TIERS];
	atomic_uint level;
	unsigned published;   /* the level last acted on */
	uint64_t since_unix_ms; /* when `published` began */
	struct tier_force force;
	bool forced;
	uint64_t force_seq;     /* forcings and clears so far (under the lock) */
	uint64_t published_seq; /* force_seq when the level was last published */
	bool rescale;           /* a reload: the bulkheads take the level's scale again */

	/* shadow tiers' counts at their last log line */
	uint64_t shadow_logged[LV_MAX_TIERS];
	uint64_t shadow_log_ms;

	void (*on_change)(void *ctx, const struct tier_change *c);
	void *on_change_ctx;
} T = {.lock = PTHREAD_MUTEX_INITIALIZER};



unsigned tiers_level(void)
{
	return atomic_load_explicit(&T.level, memory_order_relaxed);
}

static uint64_t ld(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

static const char *level_name(const struct lv_policy *p, unsigned level)
{
	return level == 0 || p == NULL || level > p->ntiers ? "normal" : p->tiers[level - 1].name;
}

/* Makes the tiers and their signals follow the current runtime (a reload, or the first
 * tick), keeping the window and the level. */
static void sync_policy(void)
{
	struct runtime *rt = T.src.runtime(T.src.ctx);
	if (!rt)
		return;
	if (rt->policy == T.p) {
		runtime_unref(rt);
		return;
	}
	if (!tier_signals_follow(rt)) {
		log_error("tiers: out of memory laying out the signals of the new policy; the old ones stay");
		runtime_unref(rt);
		return;
	}
	struct runtime *ort = T.rt;
	/* tiers_force() reads the policy from other threads, under the lock */
	pthread_mutex_lock(&T.lock);
	T.rt = rt;
	T.p = rt->policy;
	pthread_mutex_unlock(&T.lock);
	if (ort)
		runtime_unref(ort);

	const struct lv_policy *p = T.p;
	memset(T.shadow_logged, 0, sizeof(T.shadow_logged));
	pthread_mutex_lock(&T.lock);
	for (size_t i = 0; i < p->ntiers; i++)
		T.rules[i].hold_ms = p->tiers[i].hold_ms;
	tier_reconfigure(&T.ctl, T.rules, (unsigned)p->ntiers);
	if (T.forced) {
		/* a forcing names a tier: find it again by name */
		unsigned lv = 0;
		bool found = strcmp(T.force.tier, "normal") == 0;
		for (size_t i = 0; !found && i < p->ntiers; i++)
			if (strcmp(p->tiers[i].name, T.force.tier) == 0) {
				lv = (unsigned)i + 1;
				found = true;
			}
		if (found) {
			T.ctl.forced = lv;
		} else {
			log_warn("tier: the forced tier %s is not in the new policy: the forcing ends", T.force.tier);
			T.forced = false;
			T.ctl.forced_until_ms = 0;
		}
	}
	atomic_store(&T.level, T.ctl.level);
	pthread_mutex_unlock(&T.lock);
	T.rescale = true; /* the new policy's bulkheads take the level's scale */
}

/* ---- the level ------------------------------------------------------------ */

static bool cond(void *arg, unsigned which, bool enter)
{
	const struct lv_policy *p = arg;
	const struct lv_tier *t = &p->tiers[which - 1];
	return expr_eval(enter ? t->enter_expr : t->exit_expr, tier_signals_values());
}

static void json_fputs(FILE *f, const char *s)
{
	char buf[LV_PATH_MAX * 6 + 1];
	size_t n = strlen(s);
	if (n > LV_PATH_MAX)
		n = LV_PATH_MAX;
	fputc('"', f);
	fwrite(buf, 1, json_escape(buf, s, n), f);
	fputc('"', f);
}

static void json_number(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else if (v == floor(v) && fabs(v) < 1e15)
		fprintf(f, "%.0f", v); /* counts and bytes, exactly */
	else
		fprintf(f, "%.6g", v);
}

/* {"name":value,...} of the signals `e` reads, into a malloc'd string. */
static char *signals_of(const struct expr *e)
{
	const struct lv_signal_table *t = T.p->signals;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	bool *used = t && e ? calloc(t->sig.n, sizeof(bool)) : NULL;
	fputc('{', f);
	if (used) {
		expr_mark_signals(e, used);
		const char *sep = "";
		for (size_t i = 0; i < t->sig.n; i++) {
			if (!used[i])
				continue;
			fputs(sep, f);
			json_fputs(f, t->v[i].name);
			fputc(':', f);
			json_number(f, tier_signals_values()[i]);
			sep = ",";
		}
	}
	fputc('}', f);
	free(used);
	fclose(f);
	return buf;
}

/* Every bulkhead of the policy at the scale of `level`. */
static void scale_bulkheads(unsigned level)
{
	const struct lv_policy *p = T.p;
	const struct lv_tier_level *l = p->tier_levels && level <= p->ntiers ? &p->tier_levels[level] : NULL;
	for (size_t j = 0; j < p->nbulkheads; j++)
		bulkhead_scale(T.rt->bulkheads[j], l ? l->bulkhead_scale : 100.0);
}

/* The level changed from `from` to `to`: act on it. `by_hand`: a forcing
 * (`force`, or its end or clearing when NULL) moved it, not the signals. */
static void publish(unsigned from, unsigned to, const struct tier_force *force, bool by_hand)
{
	const struct lv_policy *p = T.p;
	scale_bulkheads(to);
	const struct expr *why = NULL;
	if (!by_hand && to > from && to <= p->ntiers)
		why = p->tiers[to - 1].enter_expr;
	else if (!by_hand && from > to && from <= p->ntiers)
		why = p->tiers[from - 1].exit_expr;
	char *sig = signals_of(why);
	char cond_text[EXPR_TEXT_MAX] = "";
	if (why)
		expr_render(why, cond_text, sizeof(cond_text));
	if (force)
		log_warn("tier: %s -> %s, forced by %s%s%s until %llu (%s)", level_name(p, from), level_name(p, to),
		         force->source, force->id[0] ? " " : "", force->id, (unsigned long long)force->until_unix_ms,
		         force->reason[0] ? force->reason : "no reason given");
	else if (by_hand)
		log_warn("tier: %s -> %s, as a forcing ended or was cleared", level_name(p, from), level_name(p, to));
	else
		log_warn("tier: %s -> %s: %s %s; %s", level_name(p, from), level_name(p, to), to > from ? "enter" : "exit",
		         cond_text, sig ? sig : "{}");
	T.published = to;
	T.since_unix_ms = now_unix_ms();
	if (T.on_change) {
		struct tier_change c = {
		    .from = from,
		    .to = to,
		    .from_name = level_name(p, from),
		    .to_name = level_name(p, to),
		    .force = force,
		    .unix_ms = T.since_unix_ms,
		    .signals_json = sig ? sig : "{}",
		};
		T.on_change(T.on_change_ctx, &c);
	}
	free(sig);
}

/* What the shadow tiers would have shed since their last log line, once a
 * second at most: a line per tier with its five busiest routes. */
static void shadow_log(uint64_t now_ms)
{
	const struct lv_policy *p = T.p;
	if (now_ms - T.shadow_log_ms < 1000)
		return;
	T.shadow_log_ms = now_ms;
	unsigned nw = 0;
	struct lv_stats *const *ws = T.src.stats ? T.src.stats(T.src.ctx, &nw) : NULL;
	for (size_t k = 0; k < p->ntiers; k++) {
		if (!p->tiers[k].shadow)
			continue;
		uint64_t total = 0;
		char routes[512] = "";
		size_t o = 0;
		for (size_t i = 0; i < p->nroutes; i++) {
			uint64_t n = 0;
			for (unsigned w = 0; w < nw; w++) {
				const struct lv_route_stats *x = stats_route_peek(ws[w], T.rt->route_stat[i]);
				n += x ? ld(&x->shadow[k]) : 0;
			}
			total += n;
			if (n && o < sizeof(routes) - 1) {
				int wr = snprintf(routes + o, sizeof(routes) - o, "%s%s=%llu", o ? ", " : "", p->routes[i].name,
				                  (unsigned long long)n);
				o += wr > 0 ? (size_t)wr : 0;
			}
		}
		if (total > T.shadow_logged[k])
			log_info("tier: shadow tier %s would have shed %llu requests so far (%s)", p->tiers[k].name,
			         (unsigned long long)total, routes);
		T.shadow_logged[k] = total;
	}
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sync_policy();
	if (!T.p)
		return;
	uint64_t now = (now_us() / 1000);
	tier_signals_sample(now);

	struct tier_force f;
	bool forced, by_hand;
	pthread_mutex_lock(&T.lock);
	tier_tick(&T.ctl, cond, (void *)T.p, now); /* with no tier too: a forcing ends */
	if (T.forced && T.ctl.forced_until_ms == 0) {
		log_info("tier: the forcing of %s by %s%s%s is over", T.force.tier, T.force.source,
		         T.force.id[0] ? " " : "", T.force.id);
		T.forced = false;
		T.force_seq++;
	}
	unsigned level = T.ctl.level;
	forced = T.forced;
	f = T.force;
	by_hand = T.force_seq != T.published_seq; /* a forcing or a clear moved it, not the signals */
	T.published_seq = T.force_seq;
	atomic_store(&T.level, level);
	pthread_mutex_unlock(&T.lock);
	if (level != T.published)
		publish(T.published, level, forced ? &f : NULL, by_hand);
	else if (T.rescale)
		scale_bulkheads(level);
	T.rescale = false;
	if (T.p->ntiers)
		shadow_log(now);
}

int tiers_start(struct event_base *base, const struct tiers_sources *src, char *err, size_t errlen)
{
	T.base = base;
	T.src = *src;
	tier_signals_init(src);
	T.ev = event_new(base, -1, EV_PERSIST, tick, NULL);
	if (!T.ev) {
		snprintf(err, errlen, "out of memory");
		return LV_ERR;
	}
	tier_init(&T.ctl, T.rules, 0, (now_us() / 1000));
	T.since_unix_ms = now_unix_ms();
	tiers_apply(NULL);
	return LV_OK;
}

void tiers_apply(const struct lv_policy *p)
{
	if (!T.ev)
		return;
	(void)p;
	sync_policy(); /* the new policy's layout now; its signals at the next tick */
	uint64_t ms = T.p ? T.p->tiers_cfg.tick_ms : 250;
	if (ms != T.tick_ms || !event_pending(T.ev, EV_TIMEOUT, NULL)) {
		struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
		event_add(T.ev, &tv);
		T.tick_ms = ms;
	}
}

void tiers_stop(void)
{
	if (T.ev) {
		event_free(T.ev);
		T.ev = NULL;
	}
	tier_signals_stop();
	pthread_mutex_lock(&T.lock);
	struct runtime *old = T.rt;
	T.rt = NULL;
	T.p = NULL;
	pthread_mutex_unlock(&T.lock);
	if (old)
		runtime_unref(old);
}

/* ---- forcing -------------------------------------------------------------- */

int tiers_force(const struct tier_force *f, char *err, size_t errlen)
{
	uint64_t now_u = now_unix_ms(), now = (now_us() / 1000);
	pthread_mutex_lock(&T.lock);
	int rc = LV_ERR;
	const struct lv_policy *p = T.p;
	if (!p) {
		snprintf(err, errlen, "tiers are not running yet");
		goto out;
	}
	if (f->until_unix_ms <= now_u) {
		snprintf(err, errlen, "until (%llu) is already past", (unsigned long long)f->until_unix_ms);
		goto out;
	}
	unsigned level = 0;
	bool found = strcmp(f->tier, "normal") == 0;
	for (size_t i = 0; !found && i < p->ntiers; i++)
		if (strcmp(p->tiers[i].name, f->tier) == 0) {
			level = (unsigned)i + 1;
			found = true;
		}
	if (!found) {
		snprintf(err, errlen, "no tier is named '%s' (the policy has %zu%s)", f->tier, p->ntiers,
		         p->ntiers ? "; 'normal' is level 0" : "");
		goto out;
	}
	tier_force(&T.ctl, level, now + (f->until_unix_ms - now_u), now);
	T.force = *f;
	T.force.tier[sizeof(T.force.tier) - 1] = '\0';
	T.forced = true;
	T.force_seq++;
	atomic_store(&T.level, T.ctl.level);
	rc = LV_OK;
out:
	pthread_mutex_unlock(&T.lock);
	if (rc == LV_OK)
		log_warn("tier: %s forced by %s%s%s for %llu ms (%s)", f->tier, f->source, f->id[0] ? " " : "", f->id,
		         (unsigned long long)(f->until_unix_ms - now_u), f->reason[0] ? f->reason : "no reason given");
	return rc;
}

bool tiers_clear(const char *id)
{
	bool done = false;
	pthread_mutex_lock(&T.lock);
	if (T.forced && (id == NULL || strcmp(id, T.force.id) == 0)) {
		tier_force(&T.ctl, 0, 0, (now_us() / 1000)); /* an end already past: the forcing ends */
		T.forced = false;
		T.force_seq++;
		done = true;
	}
	pthread_mutex_unlock(&T.lock);
	if (done)
		log_info("tier: forcing cleared%s%s", id ? " by id " : "", id ? id : "");
	return done;
}

bool tiers_known(const char *tier)
{
	bool known = strcmp(tier, "normal") == 0;
	pthread_mutex_lock(&T.lock);
	for (size_t i = 0; !known && T.p && i < T.p->ntiers; i++)
		known = strcmp(T.p->tiers[i].name, tier) == 0;
	pthread_mutex_unlock(&T.lock);
	return known;
}

bool tiers_forced(struct tier_force *out)
{
	pthread_mutex_lock(&T.lock);
	bool f = T.forced;
	if (f)
		*out = T.force;
	pthread_mutex_unlock(&T.lock);
	return f;
}

void tiers_on_change(void (*fn)(void *ctx, const struct tier_change *c), void *ctx)
{
	T.on_change = fn;
	T.on_change_ctx = ctx;
}

/* ---- status and metrics --------------------------------------------------- */

/* The controller's transition counts, and how long its level has held in
 * seconds (a forcing changes it at once, before the tick publishes it). */
static double transitions(uint64_t *ups, uint64_t *downs)
{
	uint64_t now = (now_us() / 1000);
	pthread_mutex_lock(&T.lock);
	*ups = T.ctl.ups;
	*downs = T.ctl.downs;
	uint64_t since = T.ctl.since_ms;
	pthread_mutex_unlock(&T.lock);
	return now > since ? (double)(now - since) / 1000.0 : 0.0;
}

/* Sums the shed (or shadow) counts of tier k of the route with stats index
 * `si` over the loops. */
static uint64_t route_count(unsigned si, size_t k, bool shadow)
{
	unsigned nw = 0;
	struct lv_stats *const *ws = T.src.stats ? T.src.stats(T.src.ctx, &nw) : NULL;
	uint64_t n = 0;
	for (unsigned w = 0; w < nw; w++) {
		const struct lv_route_stats *x = stats_route_peek(ws[w], si);
		if (x)
			n += ld(shadow ? &x->shadow[k] : &x->shed[k]);
	}
	return n;
}

const struct lv_policy *tiers_policy(void)
{
	return T.p;
}

void tiers_status_json(void *file)
{
	FILE *f = file;
	const struct lv_policy *p = T.p;
	if (!p) {
		fputs("null", f);
		return;
	}
	struct tier_force fc;
	bool forced = tiers_forced(&fc);
	unsigned level = tiers_level();
	uint64_t now_u = now_unix_ms(), ups, downs;
	double held = transitions(&ups, &downs);
	fprintf(f, "{\"level\":%u,\"tier\":", level);
	json_fputs(f, level_name(p, level));
	fprintf(f, ",\"in_force_s\":%.3f,\"tick_ms\":%llu,\"window_ms\":%llu,\"transitions\":{\"up\":%llu,\"down\":%llu}",
	        held,
	        (unsigned long long)p->tiers_cfg.tick_ms, (unsigned long long)p->tiers_cfg.window_ms,
	        (unsigned long long)ups, (unsigned long long)downs);
	fputs(",\"forced\":", f);
	if (forced) {
		fputs("{\"tier\":", f);
		json_fputs(f, fc.tier);
		fputs(",\"source\":", f);
		json_fputs(f, fc.source);
		fputs(",\"id\":", f);
		json_fputs(f, fc.id);
		fputs(",\"reason\":", f);
		json_fputs(f, fc.reason);
		fprintf(f, ",\"until_unix_ms\":%llu,\"left_s\":%.3f}", (unsigned long long)fc.until_unix_ms,
		        fc.until_unix_ms > now_u ? (double)(fc.until_unix_ms - now_u) / 1000.0 : 0.0);
	} else {
		fputs("null", f);
	}
	fputs(",\"tiers\":[", f);
	for (size_t i = 0; i < p->ntiers; i++) {
		const struct lv_tier *t = &p->tiers[i];
		char e[EXPR_TEXT_MAX], x[EXPR_TEXT_MAX];
		expr_render(t->enter_expr, e, sizeof(e));
		expr_render(t->exit_expr, x, sizeof(x));
		fprintf(f, "%s{\"name\":", i ? "," : "");
		json_fputs(f, t->name);
		fprintf(f, ",\"level\":%zu,\"in_force\":%s,\"shadow\":%s,\"hold_ms\":%llu,\"enter\":", i + 1,
		        level > i ? "true" : "false", t->shadow ? "true" : "false", (unsigned long long)t->hold_ms);
		json_fputs(f, e);
		fputs(",\"exit\":", f);
		json_fputs(f, x);
		fprintf(f, ",\"shed\":{\"normal\":%g,\"optional\":%g}}", t->shed.pct[LV_PRIO_NORMAL],
		        t->shed.pct[LV_PRIO_OPTIONAL]);
	}
	fputs("],\"signals\":{", f);
	const struct lv_signal_table *t = p->signals;
	size_t n = t ? t->sig.n : SIG__FIXED;
	const double *val = tier_signals_values();
	bool first = true;
	for (size_t i = 0; i < n; i++) {
		/* the process-wide ones always; the per-object ones a condition reads */
		if (i >= SIG__FIXED && !(t && t->used[i]))
			continue;
		fputs(first ? "" : ",", f);
		first = false;
		json_fputs(f, i < SIG__FIXED ? tier_signals_fixed_name((unsigned)i) : t->v[i].name);
		fputc(':', f);
		json_number(f, val ? val[i] : NAN);
	}
	static const char *const psi_names[] = {"cpu", "memory", "io"};
	fputs("},\"psi_source\":{", f);
	for (unsigned i = 0; i < 3; i++)
		fprintf(f, "%s\"%s\":\"%s\"", i ? "," : "", psi_names[i], tier_signals_psi_source(i));
	fputs("}}", f);
}

void tiers_render_prometheus(void *file)
{
	FILE *f = file;
	const struct lv_policy *p = T.p;
	if (!p)
		return;
	struct tier_force fc;
	bool forced = tiers_forced(&fc);
	unsigned level = tiers_level();
	uint64_t ups, downs;
	double held = transitions(&ups, &downs);
	fprintf(f, "# HELP levee_tier_level The degradation tier in force: 0 normal, k the k-th [tier]\n"
	           "# TYPE levee_tier_level gauge\nlevee_tier_level %u\n", level);
	fprintf(f, "# HELP levee_tier_info The tier in force, by name\n# TYPE levee_tier_info gauge\n"
	           "levee_tier_info{tier=\"%s\"} 1\n", level_name(p, level));
	fprintf(f, "# HELP levee_tier_in_force_seconds How long the current level has been in force\n"
	           "# TYPE levee_tier_in_force_seconds gauge\nlevee_tier_in_force_seconds %.3f\n",
	        held);
	fprintf(f, "# HELP levee_tier_transitions_total Level changes, by direction\n"
	           "# TYPE levee_tier_transitions_total counter\n"
	           "levee_tier_transitions_total{direction=\"up\"} %llu\n"
	           "levee_tier_transitions_total{direction=\"down\"} %llu\n",
	        (unsigned long long)ups, (unsigned long long)downs);
	fprintf(f, "# HELP levee_tier_forced Whether a forcing holds the level, by its source\n"
	           "# TYPE levee_tier_forced gauge\n"
	           "levee_tier_forced{source=\"admin\"} %d\nlevee_tier_forced{source=\"control\"} %d\n",
	        forced && strcmp(fc.source, "admin") == 0, forced && strcmp(fc.source, "control") == 0);
	fprintf(f, "# HELP levee_tier_forced_until_timestamp_seconds When the forcing in force ends (Unix time); 0: none\n"
	           "# TYPE levee_tier_forced_until_timestamp_seconds gauge\nlevee_tier_forced_until_timestamp_seconds %.3f\n",
	        forced ? (double)fc.until_unix_ms / 1000.0 : 0.0);
	const struct lv_signal_table *t = p->signals;
	size_t n = t ? t->sig.n : SIG__FIXED;
	fputs("# HELP levee_tier_signal A tier signal's value, in the unit tier expressions compare it in: ms, bytes, "
	      "percent, count, 0/1 (docs/tiers.md, Signals); absent while it has none\n# TYPE levee_tier_signal gauge\n",
	      f);
	const double *val = tier_signals_values();
	for (size_t i = 0; val && i < n; i++) {
		if ((i >= SIG__FIXED && !(t && t->used[i])) || isnan(val[i]))
			continue;
		fprintf(f, "levee_tier_signal{signal=\"%s\"} %.10g\n",
		        i < SIG__FIXED ? tier_signals_fixed_name((unsigned)i) : t->v[i].name,
		        val[i]);
	}
	if (!p->ntiers)
		return;
	for (int shadow = 0; shadow < 2; shadow++) {
		const char *m = shadow ? "levee_tier_shadow_shed_total" : "levee_tier_shed_total";
		fprintf(f, "# HELP %s Requests %s, by tier, route and priority\n# TYPE %s counter\n", m,
		        shadow ? "a shadow tier would have shed (and let through)" : "shed by a tier", m);
		for (size_t k = 0; k < p->ntiers; k++) {
			if ((bool)shadow != p->tiers[k].shadow)
				continue;
			for (size_t i = 0; i < p->nroutes; i++) {
				const struct lv_route *r = &p->routes[i];
				if (r->priority == LV_PRIO_CRITICAL)
					continue;
				fprintf(f, "%s{tier=\"%s\",route=\"%s\",priority=\"%s\"} %llu\n", m, p->tiers[k].name, r->name,
				        lv_priority_names[r->priority],
				        (unsigned long long)route_count(T.rt->route_stat[i], k, shadow));
			}
			/* requests no route matched: normal */
			fprintf(f, "%s{tier=\"%s\",route=\"default\",priority=\"normal\"} %llu\n", m, p->tiers[k].name,
			        (unsigned long long)route_count(0, k, shadow));
		}
	}
}
