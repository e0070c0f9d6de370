/*
 * signals.c - the table of the signals tier conditions may name, and what
 * each level of tiers does (signals.h).
 */
#include "signals.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sig_def {
	const char *name;
	enum expr_kind kind;
};

#define LV_SIG_DEF(e, name, kind, what) {name, kind},
static const struct sig_def fixed[] = {LV_SIGNALS(LV_SIG_DEF)};
static const struct sig_def per_route[] = {LV_ROUTE_SIGNALS(LV_SIG_DEF)};
static const struct sig_def per_bulkhead[] = {LV_BULKHEAD_SIGNALS(LV_SIG_DEF)};
static const struct sig_def per_breaker[] = {LV_BREAKER_SIGNALS(LV_SIG_DEF)};
#undef LV_SIG_DEF

/* "PREFIX.NAME.SUFFIX" for each of `n` elements (each starting with its
 * name, `stride` apart) and each def, appended at v[*at] and names + *o. */
static void signals_group(struct lv_signal_table *t, size_t *at, size_t *o, const char *prefix, const void *elems,
                          size_t n, size_t stride, const struct sig_def *defs, size_t ndefs)
{
	for (size_t i = 0; i < n; i++) {
		const char *name = (const char *)elems + i * stride;
		for (size_t j = 0; j < ndefs; j++) {
			int w = sprintf(t->names + *o, "%s.%s.%s", prefix, name, defs[j].name);
			t->v[*at].name = t->names + *o;
			t->v[*at].kind = defs[j].kind;
			*o += (size_t)w + 1;
			(*at)++;
		}
	}
}

struct lv_signal_table *signals_build(const struct lv_policy *p)
{
	size_t nf = sizeof(fixed) / sizeof(fixed[0]);
	size_t nr = sizeof(per_route) / sizeof(per_route[0]), nb = sizeof(per_bulkhead) / sizeof(per_bulkhead[0]),
	       nk = sizeof(per_breaker) / sizeof(per_breaker[0]);
	size_t n = nf + p->nroutes * nr + p->nbulkheads * nb + p->nbreakers * nk;
	/* each grouped name: prefix (at most 8) + '.' + name (< LV_NAME_MAX) + '.' + suffix (< 32) + NUL */
	size_t room = (n - nf) * (8 + LV_NAME_MAX + 34);
	struct lv_signal_table *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->v = calloc(n, sizeof(*t->v));
	t->used = calloc(n, sizeof(*t->used));
	t->names = malloc(room ? room : 1);
	if (t->v == NULL || t->used == NULL || t->names == NULL) {
		signals_free(t);
		return NULL;
	}
	size_t at = 0, o = 0;
	for (size_t i = 0; i < nf; i++) {
		t->v[at].name = fixed[i].name;
		t->v[at++].kind = fixed[i].kind;
	}
	t->route_base = at;
	signals_group(t, &at, &o, "route", p->routes, p->nroutes, sizeof(*p->routes), per_route, nr);
	t->bulkhead_base = at;
	signals_group(t, &at, &o, "bulkhead", p->bulkheads, p->nbulkheads, sizeof(*p->bulkheads), per_bulkhead, nb);
	t->breaker_base = at;
	signals_group(t, &at, &o, "breaker", p->breakers, p->nbreakers, sizeof(*p->breakers), per_breaker, nk);
	t->sig.v = t->v;
	t->sig.n = at;
	return t;
}

void signals_free(struct lv_signal_table *t)
{
	if (t == NULL)
		return;
	free(t->v);
	free(t->used);
	free(t->names);
	free(t);
}

void signals_tier_levels(const struct lv_policy *p, struct lv_tier_level *levels)
{
	memset(&levels[0], 0, sizeof(levels[0]));
	levels[0].ttl_factor = 1;
	levels[0].bulkhead_scale = 100.0;
	levels[0].named = levels[0].shadow_named = -1;
	for (size_t k = 1; k <= p->ntiers; k++) {
		const struct lv_tier *t = &p->tiers[k - 1];
		struct lv_tier_level *l = &levels[k];
		*l = levels[k - 1];
		for (int pr = 0; pr < LV_PRIO__COUNT; pr++) {
			double s = t->shed.pct[pr];
			if (s > l->would_shed.pct[pr])
				l->would_shed.pct[pr] = s;
			if (!t->shadow && s > l->shed.pct[pr])
				l->shed.pct[pr] = s;
		}
		if (t->shadow) {
			l->shadow_named = (int)(k - 1);
			continue;
		}
		l->cache |= t->cache;
		if (t->ttl_factor > l->ttl_factor)
			l->ttl_factor = (unsigned)t->ttl_factor;
		if (t->bulkhead_scale < l->bulkhead_scale)
			l->bulkhead_scale = t->bulkhead_scale;
		l->retry_after_s = (unsigned)((t->retry_after_ms + 999) / 1000);
		l->named = (int)(k - 1);
		snprintf(l->detail, sizeof(l->detail), "tier=%s", t->name);
	}
}

static const char *kind_doc(enum expr_kind k)
{
	switch (k) {
	case EXPR_COUNT:
		return "count";
	case EXPR_DURATION:
		return "duration";
	case EXPR_SIZE:
		return "size";
	case EXPR_PERCENT:
		return "percentage";
	case EXPR_FLAG:
		return "flag";
	}
	return "?";
}

void signals_markdown(FILE *out)
{
	struct row {
		const char *name;
		enum expr_kind kind;
		const char *what;
	};
#define LV_SIG_ROW(e, name, kind, what) {name, kind, what},
	static const struct row fixed_rows[] = {LV_SIGNALS(LV_SIG_ROW)};
	static const struct row route_rows[] = {LV_ROUTE_SIGNALS(LV_SIG_ROW)};
	static const struct row bulkhead_rows[] = {LV_BULKHEAD_SIGNALS(LV_SIG_ROW)};
	static const struct row breaker_rows[] = {LV_BREAKER_SIGNALS(LV_SIG_ROW)};
#undef LV_SIG_ROW
	const struct {
		const char *prefix;
		const struct row *rows;
		size_t n;
	} groups[] = {
	    {"", fixed_rows, sizeof(fixed_rows) / sizeof(fixed_rows[0])},
	    {"route.NAME.", route_rows, sizeof(route_rows) / sizeof(route_rows[0])},
	    {"bulkhead.NAME.", bulkhead_rows, sizeof(bulkhead_rows) / sizeof(bulkhead_rows[0])},
	    {"breaker.NAME.", breaker_rows, sizeof(breaker_rows) / sizeof(breaker_rows[0])},
	};
	fputs("| signal | kind | what |\n|---|---|---|\n", out);
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++)
		for (size_t i = 0; i < groups[g].n; i++)
			fprintf(out, "| `%s%s` | %s | %s |\n", groups[g].prefix, groups[g].rows[i].name,
			        kind_doc(groups[g].rows[i].kind), groups[g].rows[i].what);
}
