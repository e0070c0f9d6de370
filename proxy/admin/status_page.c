/*
 * status_page.c - the HTML status page (status_page.h).
 *
 * Invariants:
 *   - every string from the policy, the environment or an operator's
 *     request (a forcing's reason) goes out through html_escape(), bounded;
 *   - the page carries no script, no external asset and no style attribute,
 *     so its Content-Security-Policy allows one thing: the <style> element
 *     whose hash status_page_init() took;
 *   - rates are the change of a route's request count since the last
 *     sample at least STATUS_PAGE_RATE_MIN_US old, whoever asked for the
 *     page: one small record per route registry index, no allocation.
 */
#include "admin/status_page.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/figures.h"
#include "cache/redis.h"
#include "cache/redis_watch.h"
#include "control/hmac.h"
#include "expr.h"
#include "invalidate/invalidate.h"
#include "net/loop.h"
#include "net/worker.h"
#include "reload_status.h"
#include "resilience/breaker.h"
#include "resilience/bulkhead.h"
#include "resilience/tier_signals.h"
#include "resilience/tiers.h"
#include "runtime.h"
#include "server.h"
#include "signals.h"
#include "stats.h"

#define STATUS_PAGE_RATE_MIN_US (1000 * 1000)

/* The whole style sheet: its SHA-256 is in the Content-Security-Policy, so
 * any change here is allowed by the next start's hash, and nothing else is. */
static const char sp_css[] =
    ":root{color-scheme:light;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--mute:#57606a;--line:#d0d7de}"
    "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1f2328;background:#f6f8fa}"
    "header{background:#24292f;color:#fff;padding:10px 16px}"
    "header h1{font-size:18px;margin:0}header h1 span{font-weight:normal;color:#d0d7de}"
    "header p{margin:4px 0 0;color:#d0d7de;font-size:13px}"
    "main,footer{padding:8px 16px}section{margin:14px 0}table+h2{margin-top:14px}"
    "h2{font-size:15px;margin:0 0 6px;border-bottom:1px solid var(--line);padding-bottom:3px}"
    "table{border-collapse:collapse;background:#fff;border:1px solid var(--line);font-size:13px}"
    "th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}"
    "th{background:#eaeef2;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "code{font:12px ui-monospace,monospace}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:0}"
    "dt{color:var(--mute)}dd{margin:0}.cols{display:flex;flex-wrap:wrap;gap:24px}"
    ".b{display:inline-block;padding:0 6px;border-radius:9px;font-size:12px;font-weight:600;color:#fff;"
    "background:var(--mute)}"
    ".ok{background:var(--ok)}.warn{background:var(--warn)}.bad{background:var(--bad)}"
    ".mute{color:var(--mute)}meter{width:70px;vertical-align:middle}"
    "pre{margin:0;white-space:pre-wrap;color:var(--bad)}";

static uint64_t sp_started_us;
static char sp_headers[512];

/* Each route's last rate sample, by its stats registry index. */
static struct {
	uint64_t count, at_us;
	double rate;
	bool known;
} sp_rate[LV_ROUTE_STATS];

static void sp_base64(const unsigned char *in, size_t n, char *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
		             (i + 2 < n ? in[i + 2] : 0);
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = i + 1 < n ? abc[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? abc[v & 63] : '=';
	}
	out[o] = '\0';
}

void status_page_init(void)
{
	sp_started_us = now_us();
	unsigned char h[SHA256_LEN];
	char b64[(SHA256_LEN + 2) / 3 * 4 + 1];
	sha256(sp_css, sizeof(sp_css) - 1, h);
	sp_base64(h, sizeof(h), b64);
	snprintf(sp_headers, sizeof(sp_headers),
	         "Content-Security-Policy: default-src 'none'; style-src 'sha256-%s'; base-uri 'none'; "
	         "form-action 'none'; frame-ancestors 'none'\r\n"
	         "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n",
	         b64);
}

const char *status_page_headers(void)
{
	return sp_headers;
}

int status_page_refresh(const char *value, unsigned *secs, const char **why)
{
	if (!value) {
		*secs = STATUS_PAGE_REFRESH_DEFAULT;
		return LV_OK;
	}
	unsigned long v = 0;
	const char *p = value;
	for (; *p >= '0' && *p <= '9' && v <= STATUS_PAGE_REFRESH_MAX; p++)
		v = v * 10 + (unsigned long)(*p - '0');
	if (p == value || *p || v < STATUS_PAGE_REFRESH_MIN || v > STATUS_PAGE_REFRESH_MAX) {
		*why = "refresh is a whole number of seconds from 1 to 3600\n";
		return LV_ERR;
	}
	*secs = (unsigned)v;
	return LV_OK;
}

void html_escape(FILE *f, const char *s, size_t max)
{
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *ref = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '"' ? "&quot;"
		                : c == '\'' ? "&#39;" : NULL;
		if (ref)
			fputs(ref, f);
		else if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
			fputs("\xef\xbf\xbd", f); /* U+FFFD */
		else
			fputc(c, f);
	}
}

/* A string of a fixed-size policy field: escaped, never past its array. */
#define HTML(f, field) html_escape((f), (field), sizeof(field))

/* ---- values ---------------------------------------------------------------- */

static void sp_duration(FILE *f, uint64_t secs)
{
	if (secs >= 86400)
		fprintf(f, "%llud %lluh", (unsigned long long)(secs / 86400), (unsigned long long)(secs % 86400 / 3600));
	else if (secs >= 3600)
		fprintf(f, "%lluh %llum", (unsigned long long)(secs / 3600), (unsigned long long)(secs % 3600 / 60));
	else if (secs >= 60)
		fprintf(f, "%llum %llus", (unsigned long long)(secs / 60), (unsigned long long)(secs % 60));
	else
		fprintf(f, "%llus", (unsigned long long)secs);
}

static void sp_time(FILE *f, time_t t)
{
	struct tm tm;
	char buf[32];
	if (t <= 0 || !gmtime_r(&t, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm))
		fputs("<span class=\"mute\">never</span>", f);
	else
		fputs(buf, f);
}

/* A badge: `cls` is ok, warn, bad or "" (grey). */
static void sp_badge(FILE *f, const char *cls, const char *text)
{
	fprintf(f, "<span class=\"b %s\">", cls);
	html_escape(f, text, 64);
	fputs("</span>", f);
}

static const char *sp_breaker_class(int state)
{
	return state == BRK_CLOSED ? "ok" : state == BRK_OPEN ? "bad" : "warn";
}

/* A signal's value in its kind's unit; a dash with none. */
static void sp_signal(FILE *f, double v, enum expr_kind kind)
{
	if (isnan(v)) {
		fputs("<span class=\"mute\">&mdash;</span>", f);
		return;
	}
	switch (kind) {
	case EXPR_DURATION:
		fprintf(f, "%.1f ms", v);
		break;
	case EXPR_PERCENT:
		fprintf(f, "%.1f%%", v);
		break;
	case EXPR_SIZE:
		if (v >= 1024.0 * 1024 * 1024)
			fprintf(f, "%.2f GiB", v / (1024.0 * 1024 * 1024));
		else if (v >= 1024.0 * 1024)
			fprintf(f, "%.1f MiB", v / (1024.0 * 1024));
		else
			fprintf(f, "%.0f B", v);
		break;
	case EXPR_FLAG:
		fputs(v != 0 ? "yes" : "no", f);
		break;
	default:
		fprintf(f, v == floor(v) && fabs(v) < 1e15 ? "%.0f" : "%.2f", v);
	}
}

/* The p99 a histogram's bucket bounds allow, "≤ 25 ms" */
static void sp_p99(FILE *f, const uint64_t *hist)
{
	double q = stats_hist_quantile(hist, 0.99);
	if (isnan(q))
		fputs("<span class=\"mute\">&mdash;</span>", f);
	else if (isinf(q))
		fprintf(f, "&gt; %g s", lv_hist_bounds[LV_HIST_BUCKETS - 2]);
	else if (q < 1)
		fprintf(f, "&le; %g ms", q * 1000);
	else
		fprintf(f, "&le; %g s", q);
}

/* ---- the sections ---------------------------------------------------------- */

static void sp_head(FILE *f, struct server *s, const struct lv_policy *p, unsigned refresh_s)
{
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	           "<meta http-equiv=\"refresh\" content=\"%u\">"
	           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
	           "<title>levee status: ",
	        refresh_s);
	HTML(f, p->service);
	fprintf(f, "</title><style>%s</style></head>\n<body><header><h1>levee <span>", sp_css);
	HTML(f, p->service);
	fprintf(f, "</span></h1><p>version <span id=\"version\">%s</span> &middot; up <span id=\"uptime\">",
	        LEVEE_VERSION);
	sp_duration(f, (now_us() - sp_started_us) / 1000000u);
	fputs("</span> &middot; ", f);
	const char *why;
	if (admin_ready(s, &why)) {
		sp_badge(f, "ok", "ready");
	} else {
		sp_badge(f, "bad", "not ready");
		fputc(' ', f);
		html_escape(f, why, 128);
	}
	fprintf(f, " &middot; %llu connections &middot; %u workers &middot; refreshes every %u s &middot; at ",
	        (unsigned long long)atomic_load(&s->conns), s->nlisteners, refresh_s);
	sp_time(f, time(NULL));
	fputs("</p></header>\n<main>", f);
}

static void sp_policy(FILE *f, struct server *s, const struct runtime *rt)
{
	const struct lv_policy *p = rt->policy;
	const struct reload_status *r = &s->reload;
	uint64_t attempts = r->count[RELOAD_APPLIED] + r->count[RELOAD_UNCHANGED] + r->count[RELOAD_REFUSED];
	fputs("<section id=\"policy\" class=\"cols\"><div><h2>Policy</h2><dl><dt>file</dt><dd><code>", f);
	if (p->path[0])
		HTML(f, p->path);
	else
		fputs("built-in defaults", f);
	fputs("</code></dd><dt>checksum</dt><dd><code id=\"checksum\">", f);
	HTML(f, p->checksum);
	fputs("</code></dd><dt>loaded</dt><dd>", f);
	sp_time(f, p->loaded_at);
	fputs("</dd><dt>last reload</dt><dd id=\"reload\">", f);
	if (!attempts)
		fputs("<span class=\"mute\">none since start</span>", f);
	else
		sp_badge(f, reload_status_ok(r) ? "ok" : "bad", reload_result_name(r->last));
	fprintf(f, " <span class=\"mute\">(%llu applied, %llu unchanged, %llu refused)</span></dd>",
	        (unsigned long long)r->count[RELOAD_APPLIED], (unsigned long long)r->count[RELOAD_UNCHANGED],
	        (unsigned long long)r->count[RELOAD_REFUSED]);
	if (reload_status_restart_pending(r)) {
		fputs("<dt>restart pending</dt><dd><code>", f);
		HTML(f, r->restart_keys);
		fputs("</code></dd>", f);
	}
	if (r->error[0]) {
		fputs("<dt>refused because</dt><dd><pre>", f);
		HTML(f, r->error);
		fputs("</pre></dd>", f);
	}
	fputs("</dl></div><div><h2>Upstream</h2><dl><dt>address</dt><dd><code>", f);
	HTML(f, rt->up_text);
	fputs("</code></dd><dt>reachable</dt><dd>", f);
	if (atomic_load(&s->upstream_reachable))
		sp_badge(f, "ok", "yes");
	else
		sp_badge(f, "bad", "no");
	fputs("</dd></dl></div></section>\n", f);
}

/* The rate of route `si` with `count` requests now. */
static bool sp_route_rate(unsigned si, uint64_t count, uint64_t now, double *rate)
{
	if (si >= LV_ROUTE_STATS)
		return false;
	if (sp_rate[si].at_us && now - sp_rate[si].at_us >= STATUS_PAGE_RATE_MIN_US) {
		uint64_t d = count >= sp_rate[si].count ? count - sp_rate[si].count : 0;
		sp_rate[si].rate = (double)d * 1e6 / (double)(now - sp_rate[si].at_us);
		sp_rate[si].known = true;
	}
	if (!sp_rate[si].at_us || now - sp_rate[si].at_us >= STATUS_PAGE_RATE_MIN_US) {
		sp_rate[si].count = count;
		sp_rate[si].at_us = now;
	}
	*rate = sp_rate[si].rate;
	return sp_rate[si].known;
}

/* Under a table cut at STATUS_PAGE_ROWS, how many of its `n` rows are not
 * in it. */
static void sp_not_shown(FILE *f, size_t n, const char *what)
{
	if (n > STATUS_PAGE_ROWS)
		fprintf(f, "<p class=\"mute\">%zu more %s not shown: see /status and /metrics</p>",
		        n - STATUS_PAGE_ROWS, what);
}

/* One row of the routes table: `r` NULL for "default" (no route matched). */
static void sp_route_row(FILE *f, const struct runtime *rt, struct lv_stats *const *ws, unsigned nw,
                         const struct lv_route *r, unsigned si, uint64_t now)
{
	const struct lv_policy *p = rt->policy;
	struct lv_route_stats sum;
	stats_route_sum(ws, nw, si, &sum);
	uint64_t total = 0;
	for (int c = 0; c < LV_CLASSES; c++)
		total += sum.cls[c];
	fputs("<tr data-route=\"", f);
	html_escape(f, r ? r->name : "default", LV_NAME_MAX);
	fputs("\"><td><b>", f);
	html_escape(f, r ? r->name : "default", LV_NAME_MAX);
	fputs("</b></td><td><code>", f);
	if (r) {
		fputs(r->kind == LV_MATCH_PREFIX ? "prefix " : "match ", f);
		HTML(f, r->pattern);
	} else {
		fputs("<span class=\"mute\">no route matched</span>", f);
	}
	fprintf(f, "</code></td><td>%s</td><td class=\"n\" data-field=\"requests\">%llu</td><td class=\"n\">",
	        lv_priority_names[r ? r->priority : LV_PRIO_NORMAL], (unsigned long long)total);
	double rate;
	if (sp_route_rate(si, total, now, &rate))
		fprintf(f, "%.1f/s", rate);
	else
		fputs("<span class=\"mute\">&mdash;</span>", f);
	fprintf(f, "</td><td class=\"n\">%llu</td><td class=\"n\" data-field=\"hit-ratio\">",
	        (unsigned long long)sum.cls[4]);
	if (r && !route_caches(r))
		fputs("<span class=\"mute\">not cached</span>", f);
	else if (!total)
		fputs("<span class=\"mute\">&mdash;</span>", f);
	else
		fprintf(f, "%.1f%%", 100.0 * (double)sum.cached / (double)total);
	fputs("</td><td class=\"n\" data-field=\"p99\">", f);
	sp_p99(f, sum.hist);
	fputs("</td><td>", f);
	if (r && r->breaker_idx >= 0 && (size_t)r->breaker_idx < p->nbreakers) {
		struct breaker_stats st;
		breaker_stats(rt->breakers[r->breaker_idx], now / 1000, &st);
		HTML(f, r->breaker);
		fputc(' ', f);
		sp_badge(f, sp_breaker_class(st.state), breaker_state_names[st.state]);
	} else {
		fputs("<span class=\"mute\">none</span>", f);
	}
	fputs("</td><td>", f);
	if (r && r->bulkhead_idx >= 0 && (size_t)r->bulkhead_idx < p->nbulkheads) {
		struct bulkhead_stats st;
		bulkhead_stats(rt->bulkheads[r->bulkhead_idx], &st);
		HTML(f, r->bulkhead);
		fprintf(f, " <meter min=\"0\" max=\"%llu\" value=\"%llu\"></meter> %llu/%llu</td><td class=\"n\">%llu/%llu",
		        (unsigned long long)st.max_concurrent, (unsigned long long)st.active,
		        (unsigned long long)st.active, (unsigned long long)st.max_concurrent,
		        (unsigned long long)st.queued, (unsigned long long)st.max_queue);
	} else {
		fputs("<span class=\"mute\">none</span></td><td class=\"n\">", f);
	}
	fputs("</td></tr>\n", f);
}

static void sp_routes(FILE *f, struct server *s, const struct runtime *rt)
{
	const struct lv_policy *p = rt->policy;
	/* every loop's shard: listener workers and bulkhead threads */
	struct lv_stats **ws = malloc((s->nworkers + 1) * sizeof(*ws));
	if (!ws) {
		fputs("<section id=\"routes\"><p>out of memory</p></section>\n", f);
		return;
	}
	unsigned nw = 0;
	for (unsigned i = 0; i < s->nworkers; i++)
		ws[nw++] = s->workers[i]->stats;
	uint64_t now = now_us();
	fprintf(f, "<section id=\"routes\"><h2>Routes (%zu)</h2><table id=\"routes-table\"><thead><tr>"
	           "<th>route</th><th>match</th><th>priority</th><th>requests</th><th>rate</th><th>5xx</th>"
	           "<th>hit ratio</th><th>p99</th><th>breaker</th><th>bulkhead (active/limit)</th><th>queued</th>"
	           "</tr></thead><tbody>\n",
	        p->nroutes);
	size_t shown = p->nroutes < STATUS_PAGE_ROWS ? p->nroutes : STATUS_PAGE_ROWS;
	for (size_t i = 0; i < shown; i++)
		sp_route_row(f, rt, ws, nw, &p->routes[i], rt->route_stat[i], now);
	sp_route_row(f, rt, ws, nw, NULL, 0, now);
	fputs("</tbody></table>", f);
	sp_not_shown(f, p->nroutes, "routes");
	fputs("</section>\n", f);
	free(ws);
}

static void sp_breakers(FILE *f, const struct runtime *rt)
{
	const struct lv_policy *p = rt->policy;
	if (!p->nbreakers)
		return;
	uint64_t now_ms = now_us() / 1000;
	fputs("<section id=\"breakers\"><h2>Breakers</h2><table><thead><tr><th>breaker</th><th>state</th>"
	      "<th>calls in window</th><th>failure rate</th><th>slow rate</th><th>trips</th><th>rejected</th>"
	      "<th>last change</th></tr></thead><tbody>\n",
	      f);
	for (size_t i = 0; i < p->nbreakers && i < STATUS_PAGE_ROWS; i++) {
		struct breaker_stats st;
		breaker_stats(rt->breakers[i], now_ms, &st);
		fputs("<tr data-breaker=\"", f);
		HTML(f, p->breakers[i].name);
		fputs("\"><td><b>", f);
		HTML(f, p->breakers[i].name);
		fputs("</b></td><td>", f);
		sp_badge(f, sp_breaker_class(st.state), breaker_state_names[st.state]);
		if (st.forced != BRK_FORCE_NONE)
			fprintf(f, " <span class=\"mute\">forced %s, %llus left</span>",
			        st.forced == BRK_FORCE_OPEN ? "open" : "closed",
			        (unsigned long long)(st.forced_left_ms / 1000));
		else if (st.state == BRK_OPEN)
			fprintf(f, " <span class=\"mute\">%.1fs left</span>", (double)st.open_left_ms / 1000);
		fprintf(f, "</td><td class=\"n\">%llu</td><td class=\"n\">%.1f%%</td><td class=\"n\">%.1f%%</td>"
		           "<td class=\"n\">%u</td><td class=\"n\">%llu</td><td>",
		        (unsigned long long)st.calls, st.failure_rate, st.slow_rate, st.trips,
		        (unsigned long long)st.rejected);
		HTML(f, st.reason);
		fputs("</td></tr>\n", f);
	}
	fputs("</tbody></table>", f);
	sp_not_shown(f, p->nbreakers, "breakers");
	fputs("</section>\n", f);
}

static void sp_bulkheads(FILE *f, const struct runtime *rt)
{
	const struct lv_policy *p = rt->policy;
	if (!p->nbulkheads)
		return;
	fputs("<section id=\"bulkheads\"><h2>Bulkheads</h2><table><thead><tr><th>bulkhead</th><th>saturation</th>"
	      "<th>active/limit</th><th>queued/max</th><th>tier scale</th><th>refused: full</th>"
	      "<th>refused: timeout</th></tr></thead><tbody>\n",
	      f);
	for (size_t i = 0; i < p->nbulkheads && i < STATUS_PAGE_ROWS; i++) {
		struct bulkhead_stats st;
		bulkhead_stats(rt->bulkheads[i], &st);
		fputs("<tr data-bulkhead=\"", f);
		HTML(f, p->bulkheads[i].name);
		fputs("\"><td><b>", f);
		HTML(f, p->bulkheads[i].name);
		fprintf(f, "</b>%s</td><td><meter min=\"0\" max=\"%llu\" high=\"%llu\" value=\"%llu\"></meter></td>"
		           "<td class=\"n\">%llu/%llu</td><td class=\"n\">%llu/%llu</td><td class=\"n\">%.0f%%</td>"
		           "<td class=\"n\">%llu</td><td class=\"n\">%llu</td></tr>\n",
		        st.adaptive ? " <span class=\"mute\">(auto)</span>" : "",
		        (unsigned long long)st.max_concurrent, (unsigned long long)(st.max_concurrent * 9 / 10),
		        (unsigned long long)st.active, (unsigned long long)st.active,
		        (unsigned long long)st.max_concurrent, (unsigned long long)st.queued,
		        (unsigned long long)st.max_queue, st.scale, (unsigned long long)st.rejected_full,
		        (unsigned long long)st.rejected_timeout);
	}
	fputs("</tbody></table>", f);
	sp_not_shown(f, p->nbulkheads, "bulkheads");
	fputs("</section>\n", f);
}

/* The kinds of the process-wide signals, in their order. */
static const enum expr_kind sp_fixed_kinds[SIG__FIXED] = {
#define SP_KIND(e, name, kind, what) kind,
    LV_SIGNALS(SP_KIND)
#undef SP_KIND
};

/* "name = value" of every signal tier `t`'s conditions read. */
static void sp_tier_signals(FILE *f, const struct lv_policy *tp, const struct lv_tier *t, const double *val)
{
	const struct lv_signal_table *tab = tp->signals;
	bool *used = tab && val ? calloc(tab->sig.n, sizeof(bool)) : NULL;
	if (!used) {
		fputs("<span class=\"mute\">&mdash;</span>", f);
		return;
	}
	expr_mark_signals(t->enter_expr, used);
	expr_mark_signals(t->exit_expr, used);
	const char *sep = "";
	for (size_t i = 0; i < tab->sig.n; i++) {
		if (!used[i])
			continue;
		fprintf(f, "%s<code>", sep);
		html_escape(f, tab->v[i].name, LV_PATH_MAX);
		fputs("</code> = ", f);
		sp_signal(f, val[i], tab->v[i].kind);
		sep = "<br>";
	}
	free(used);
}

static void sp_tiers(FILE *f)
{
	/* the tiers' own policy, whose signal layout the values follow */
	const struct lv_policy *tp = tiers_policy();
	const double *val = tier_signals_values();
	unsigned level = tiers_level();
	fputs("<section id=\"tier\"><h2>Degradation tier</h2><p>in force: ", f);
	const char *name = tp && level && level <= tp->ntiers ? tp->tiers[level - 1].name : "normal";
	fputs("<span id=\"tier-name\">", f);
	sp_badge(f, level ? "bad" : "ok", name);
	fprintf(f, "</span> <span class=\"mute\">level %u of %zu</span>", level, tp ? tp->ntiers : (size_t)0);
	struct tier_force fc;
	if (tiers_forced(&fc)) {
		uint64_t now = now_unix_ms();
		fputs(" &middot; forced to <b>", f);
		HTML(f, fc.tier);
		fputs("</b> by ", f);
		HTML(f, fc.source);
		fprintf(f, " for %llus more: ",
		        (unsigned long long)(fc.until_unix_ms > now ? (fc.until_unix_ms - now) / 1000 : 0));
		HTML(f, fc.reason);
	}
	fputs("</p>", f);
	if (tp && tp->ntiers) {
		fputs("<table id=\"tiers-table\"><thead><tr><th>tier</th><th>state</th><th>enters when</th>"
		      "<th>leaves when</th><th>signals now</th><th>sheds normal/optional</th></tr></thead><tbody>\n",
		      f);
		for (size_t i = 0; i < tp->ntiers; i++) {
			const struct lv_tier *t = &tp->tiers[i];
			char e[EXPR_TEXT_MAX], x[EXPR_TEXT_MAX];
			expr_render(t->enter_expr, e, sizeof(e));
			expr_render(t->exit_expr, x, sizeof(x));
			fputs("<tr><td><b>", f);
			HTML(f, t->name);
			fputs("</b></td><td>", f);
			if (level > i)
				sp_badge(f, "bad", "in force");
			else
				sp_badge(f, "", "off");
			if (t->shadow)
				fputs(" <span class=\"mute\">shadow</span>", f);
			fputs("</td><td><code>", f);
			HTML(f, e);
			fputs("</code></td><td><code>", f);
			HTML(f, x);
			fputs("</code></td><td>", f);
			sp_tier_signals(f, tp, t, val);
			fprintf(f, "</td><td class=\"n\">%g%% / %g%%</td></tr>\n", t->shed.pct[LV_PRIO_NORMAL],
			        t->shed.pct[LV_PRIO_OPTIONAL]);
		}
		fputs("</tbody></table>", f);
	} else {
		fputs("<p class=\"mute\">no [tier] in the policy</p>", f);
	}
	if (val) {
		/* four signals a row: 23 of them would be a long column */
		fputs("<h2>Process-wide signals</h2><table id=\"signals-table\"><tbody>\n", f);
		for (unsigned i = 0; i < SIG__FIXED; i++) {
			fprintf(f, "%s<td><code>%s</code></td><td class=\"n\">", i % 4 ? "" : "<tr>",
			        tier_signals_fixed_name(i));
			sp_signal(f, val[i], sp_fixed_kinds[i]);
			fputs(i % 4 == 3 || i + 1 == SIG__FIXED ? "</td></tr>\n" : "</td>", f);
		}
		fputs("</tbody></table>", f);
	}
	fputs("</section>\n", f);
}

static void sp_dependencies(FILE *f, struct server *s)
{
	fputs("<section id=\"deps\" class=\"cols\"><div id=\"redis\"><h2>Redis</h2>", f);
	struct redis_stats rs;
	unsigned ready, open;
	if (admin_redis_sum(s, &rs, &ready, &open)) {
		struct redis_watch_stats ws;
		redis_watch_stats(redis_watch_process(), &ws);
		fputs("<dl><dt>state</dt><dd id=\"redis-state\">", f);
		sp_badge(f, ws.state == RW_UP ? "ok" : ws.state == RW_DOWN ? "bad" : "warn", redis_watch_state_names[ws.state]);
		fprintf(f, "</dd><dt>connections ready</dt><dd>%u of %u</dd><dt>breakers open</dt><dd>%u</dd>"
		           "<dt>master</dt><dd><code>",
		        ready, s->nworkers, open);
		HTML(f, rs.master_addr);
		fprintf(f, "</code></dd><dt>errors / timeouts</dt><dd>%llu / %llu</dd><dt>reconnects</dt><dd>%llu</dd>"
		           "<dt>failovers</dt><dd>%llu</dd></dl>",
		        (unsigned long long)rs.errors, (unsigned long long)rs.timeouts,
		        (unsigned long long)ws.reconnects, (unsigned long long)ws.failovers);
	} else {
		fputs("<p id=\"redis-state\" class=\"mute\">not configured: the cache is L1 only</p>", f);
	}
	fputs("</div><div id=\"kafka\"><h2>Kafka and the outbox</h2>", f);
	bool on;
	int64_t lag, spooled;
	bool up = invalidate_health(&on, &lag, &spooled);
	if (on) {
		fputs("<dl><dt>broker</dt><dd id=\"kafka-state\">", f);
		sp_badge(f, up ? "ok" : "bad", up ? "reachable" : "unreachable");
		fputs("</dd><dt>consumer lag</dt><dd>", f);
		if (lag < 0)
			fputs("<span class=\"mute\">unknown</span>", f);
		else
			fprintf(f, "%lld messages", (long long)lag);
		fprintf(f, "</dd><dt>outbox depth</dt><dd id=\"outbox\">%lld invalidations</dd></dl>", (long long)spooled);
	} else {
		fputs("<p id=\"kafka-state\" class=\"mute\">not configured: purges stay on this replica</p>", f);
	}
	fputs("</div></section>\n", f);
}

void status_page_render(FILE *f, struct server *s, unsigned refresh_s)
{
	struct runtime *rt = server_runtime_acquire(s);
	sp_head(f, s, rt->policy, refresh_s);
	sp_policy(f, s, rt);
	sp_routes(f, s, rt);
	sp_tiers(f);
	sp_breakers(f, rt);
	sp_bulkheads(f, rt);
	sp_dependencies(f, s);
	fputs("</main><footer><p class=\"mute\">The same figures as JSON: <code>/status</code>; "
	      "as Prometheus text: <code>/metrics</code>.</p></footer></body></html>\n",
	      f);
	runtime_unref(rt);
}
