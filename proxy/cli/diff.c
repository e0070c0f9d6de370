/*
 * diff.c - `levee diff [--json] OLD NEW`: what reloading NEW over OLD would
 * do, before it is done.
 *
 * Both files are loaded as levee loads them and compared key by key as
 * policy_walk() writes them (two values are equal exactly when written the
 * same). What it reports follows the reload code, not a model of it:
 *
 *   - routes, bulkheads, breakers and tiers are matched by name; the order of
 *     routes matters (the first match wins), so a change of order is one;
 *   - a key whose row in the key table says it does not reload takes a
 *     restart: the reload applies everything else and keeps the running
 *     value (policy_keep_static(), reload.c), logs it and lists it in
 *     /status as policy.restart_keys;
 *   - bulkheads and breakers are kept by name across a reload
 *     (resilience/registry.c): one whose name is in both files keeps its
 *     state and takes its new settings in place (server_protection_apply());
 *     a new name starts fresh, a rename included;
 *   - the tier in force is kept by position, capped at the new number of
 *     tiers (tier_reconfigure()); a forcing follows its tier's name and
 *     ends when NEW has no tier of that name (tiers.c, sync_policy()).
 *
 * Secrets are compared, never shown: a changed one reads LV_SECRET_MASK on
 * both sides.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/tool.h"

struct dent {
	const char *key;
	char *value;
	bool reload, secret;
};

/* One section instance: a named one, or a plain section (name NULL). */
struct dinst {
	const char *sec, *name;
	size_t index, first, n; /* its keys: ents[first..first+n) */
};

struct dside {
	const char *path;
	struct lv_policy *p;
	struct dent *ents;
	size_t nents, capents;
	struct dinst *insts;
	size_t ninsts, capinsts;
	bool oom;
};

enum change_kind { CH_ADDED, CH_REMOVED, CH_KEY, CH_ORDER };

struct change {
	enum change_kind kind;
	const char *sec, *name;  /* name NULL: a plain section */
	const char *key;         /* CH_KEY */
	const char *old, *new;   /* CH_KEY: the values (masked for a secret) */
	bool restart;            /* CH_KEY: the key does not reload */
	size_t pos;              /* CH_ADDED, CH_ORDER: the place in NEW */
};

struct diff {
	struct dside a, b;
	struct change *ch;
	size_t nch, capch;
	bool oom;
};

static void *grow(void *arr, size_t *cap, size_t n, size_t size, bool *oom)
{
	if (n < *cap)
		return arr;
	size_t nc = *cap ? *cap * 2 : 64;
	void *na = realloc(arr, nc * size);
	if (!na) {
		*oom = true;
		return NULL;
	}
	*cap = nc;
	return na;
}

static void diff_collect(const struct lv_keyval *kv, void *arg)
{
	struct dside *s = arg;
	if (s->oom)
		return;
	if (!kv->key) {
		struct dinst *ni = grow(s->insts, &s->capinsts, s->ninsts, sizeof(*ni), &s->oom);
		if (!ni)
			return;
		s->insts = ni;
		s->insts[s->ninsts++] = (struct dinst){kv->section, kv->instance, kv->index, s->nents, 0};
		return;
	}
	struct dent *ne = grow(s->ents, &s->capents, s->nents, sizeof(*ne), &s->oom);
	char *v = ne ? strdup(kv->value) : NULL;
	if (!v) {
		s->oom = true;
		return;
	}
	s->ents = ne;
	s->ents[s->nents++] = (struct dent){kv->key, v, kv->reload, kv->secret};
	s->insts[s->ninsts - 1].n++;
}

static void dside_free(struct dside *s)
{
	for (size_t i = 0; i < s->nents; i++)
		free(s->ents[i].value);
	free(s->ents);
	free(s->insts);
	if (s->p)
		policy_unref(s->p);
}

static bool same_name(const char *x, const char *y)
{
	return (x == NULL && y == NULL) || (x && y && strcmp(x, y) == 0);
}

static const struct dinst *inst_find(const struct dside *s, const char *sec, const char *name)
{
	for (size_t i = 0; i < s->ninsts; i++)
		if (strcmp(s->insts[i].sec, sec) == 0 && same_name(s->insts[i].name, name))
			return &s->insts[i];
	return NULL;
}

static const struct dent *ent_find(const struct dside *s, const struct dinst *in, const char *key)
{
	for (size_t i = in->first; i < in->first + in->n; i++)
		if (strcmp(s->ents[i].key, key) == 0)
			return &s->ents[i];
	return NULL;
}

static void change_add(struct diff *d, struct change c)
{
	struct change *n = grow(d->ch, &d->capch, d->nch, sizeof(*n), &d->oom);
	if (n) {
		d->ch = n;
		d->ch[d->nch++] = c;
	}
}

/* A key present on one side only (a route from match to prefix) reads
 * "(not set)" on the other. */
static void diff_keys(struct diff *d, const struct dinst *ia, const struct dinst *ib)
{
	for (size_t i = ib->first; i < ib->first + ib->n; i++) {
		const struct dent *eb = &d->b.ents[i], *ea = ent_find(&d->a, ia, eb->key);
		if (ea && strcmp(ea->value, eb->value) == 0)
			continue;
		bool secret = eb->secret;
		change_add(d, (struct change){CH_KEY, ib->sec, ib->name, eb->key,
		                              ea ? (secret && ea->value[0] ? LV_SECRET_MASK : ea->value) : "(not set)",
		                              secret && eb->value[0] ? LV_SECRET_MASK : eb->value, !eb->reload, 0});
	}
	for (size_t i = ia->first; i < ia->first + ia->n; i++) {
		const struct dent *ea = &d->a.ents[i];
		if (!ent_find(&d->b, ib, ea->key))
			change_add(d, (struct change){CH_KEY, ia->sec, ia->name, ea->key, ea->value, "(not set)", !ea->reload, 0});
	}
}

static void diff_compare(struct diff *d)
{
	/* removed, in OLD's order; then NEW's instances in its order */
	for (size_t i = 0; i < d->a.ninsts; i++) {
		const struct dinst *ia = &d->a.insts[i];
		if (!inst_find(&d->b, ia->sec, ia->name))
			change_add(d, (struct change){CH_REMOVED, ia->sec, ia->name, NULL, NULL, NULL, false, ia->index});
	}
	for (size_t i = 0; i < d->b.ninsts; i++) {
		const struct dinst *ib = &d->b.insts[i], *ia = inst_find(&d->a, ib->sec, ib->name);
		if (!ia)
			change_add(d, (struct change){CH_ADDED, ib->sec, ib->name, NULL, NULL, NULL, false, ib->index});
		else
			diff_keys(d, ia, ib);
	}
	/* the routes both have, in another relative order: another first match */
	const struct lv_policy *pa = d->a.p, *pb = d->b.p;
	size_t ka = 0;
	for (size_t j = 0; j < pb->nroutes; j++) {
		const struct dinst *ia = inst_find(&d->a, "route", pb->routes[j].name);
		if (!ia)
			continue;
		while (ka < pa->nroutes && !inst_find(&d->b, "route", pa->routes[ka].name))
			ka++;
		if (ka < pa->nroutes && ia->index != ka) {
			change_add(d, (struct change){CH_ORDER, "route", pb->routes[j].name, NULL, NULL, NULL, false, j});
			break;
		}
		ka++;
	}
}

/* ---- what carries over ------------------------------------------------- */

/* An instance of OLD, of section `sec`, gone from NEW, with every value of
 * NEW's instance `ib`: most likely renamed. NULL when none. */
static const char *renamed_from(const struct diff *d, const struct dinst *ib)
{
	for (size_t i = 0; i < d->a.ninsts; i++) {
		const struct dinst *ia = &d->a.insts[i];
		if (strcmp(ia->sec, ib->sec) != 0 || !ia->name || inst_find(&d->b, ia->sec, ia->name) || ia->n != ib->n)
			continue;
		bool same = true;
		for (size_t k = 0; same && k < ib->n; k++) {
			const struct dent *ea = ent_find(&d->a, ia, d->b.ents[ib->first + k].key);
			same = ea && strcmp(ea->value, d->b.ents[ib->first + k].value) == 0;
		}
		if (same)
			return ia->name;
	}
	return NULL;
}

/* One bulkhead or breaker of NEW, or of OLD that NEW has not. */
struct carry {
	const char *sec, *name;
	bool carries;      /* kept across the reload */
	bool dropped;      /* in OLD only */
	const char *from;  /* new, with the settings of this one of OLD (a rename) */
	const char *but;   /* kept, except for this part of its state; NULL: all of it */
};

static const struct lv_breaker *breaker_named(const struct lv_policy *p, const char *name)
{
	for (size_t i = 0; i < p->nbreakers; i++)
		if (strcmp(p->breakers[i].name, name) == 0)
			return &p->breakers[i];
	return NULL;
}

/* What of a kept breaker's state a reload does not keep (breaker_apply()):
 * a time window that becomes a count window starts empty, since the order
 * of its calls is gone. */
static const char *breaker_loses(const struct diff *d, const char *name)
{
	const struct lv_breaker *a = breaker_named(d->a.p, name), *b = breaker_named(d->b.p, name);
	if (a && b && !a->window.calls && b->window.calls)
		return "its window starts empty (a time window becomes a count window)";
	return NULL;
}

static void carry_list(const struct diff *d, const char *sec, void (*out)(const struct carry *c, void *arg), void *arg)
{
	for (size_t i = 0; i < d->b.ninsts; i++) {
		const struct dinst *ib = &d->b.insts[i];
		if (strcmp(ib->sec, sec) != 0)
			continue;
		struct carry c = {sec, ib->name, inst_find(&d->a, sec, ib->name) != NULL, false, NULL, NULL};
		if (!c.carries)
			c.from = renamed_from(d, ib);
		else if (strcmp(sec, "breaker") == 0)
			c.but = breaker_loses(d, ib->name);
		out(&c, arg);
	}
	for (size_t i = 0; i < d->a.ninsts; i++) {
		const struct dinst *ia = &d->a.insts[i];
		if (strcmp(ia->sec, sec) == 0 && !inst_find(&d->b, sec, ia->name)) {
			struct carry c = {sec, ia->name, false, true, NULL, NULL};
			out(&c, arg);
		}
	}
}

static const char *tier_at(const struct lv_policy *p, size_t level)
{
	return level == 0 ? "normal" : level <= p->ntiers ? p->tiers[level - 1].name : NULL;
}

static bool has_tier(const struct lv_policy *p, const char *name)
{
	for (size_t i = 0; i < p->ntiers; i++)
		if (strcmp(p->tiers[i].name, name) == 0)
			return true;
	return false;
}

/* ---- text -------------------------------------------------------------- */

static void text_where(FILE *f, const struct change *c)
{
	if (c->name)
		fprintf(f, "%s \"%s\"", c->sec, c->name);
	else
		fprintf(f, "[%s]", c->sec);
}

static void text_carry(const struct carry *c, void *arg)
{
	FILE *f = arg;
	if (c->dropped)
		fprintf(f, "  %s \"%s\": dropped (not in NEW); its state ends once no request holds it\n", c->sec,
		        c->name);
	else if (c->carries && c->but)
		fprintf(f, "  %s \"%s\": carries over (same name): its state is kept but %s, its new settings apply in "
		        "place\n", c->sec, c->name, c->but);
	else if (c->carries)
		fprintf(f, "  %s \"%s\": carries over (same name): its state is kept, its new settings apply in place\n",
		        c->sec, c->name);
	else if (c->from)
		fprintf(f, "  %s \"%s\": starts fresh (new name; %s \"%s\" has the same settings: a rename does not "
		        "carry state)\n", c->sec, c->name, c->sec, c->from);
	else
		fprintf(f, "  %s \"%s\": starts fresh (new)\n", c->sec, c->name);
}

static size_t diff_text(const struct diff *d, FILE *f)
{
	const struct lv_policy *pa = d->a.p, *pb = d->b.p;
	fprintf(f, "levee diff %s (checksum %s) -> %s (checksum %s)\n", d->a.path, pa->checksum, d->b.path,
	        pb->checksum);
	if (d->nch == 0) {
		fprintf(f, "no difference%s\n",
		        strcmp(pa->checksum, pb->checksum) == 0
		            ? ": the files are the same (a reload would change nothing)"
		            : " in effect: the files differ only in form (comments, order of keys, ${VAR}); a reload "
		              "applies it and changes nothing");
		return 0;
	}
	size_t restart = 0;
	fputs("changes:\n", f);
	for (size_t i = 0; i < d->nch; i++) {
		const struct change *c = &d->ch[i];
		fputs(c->kind == CH_ADDED ? "  + " : c->kind == CH_REMOVED ? "  - " : "  ~ ", f);
		text_where(f, c);
		switch (c->kind) {
		case CH_ADDED:
			fprintf(f, ": added");
			if (!strcmp(c->sec, "route") || !strcmp(c->sec, "tier"))
				fprintf(f, " at position %zu", c->pos + 1);
			break;
		case CH_REMOVED:
			fprintf(f, ": removed");
			break;
		case CH_ORDER:
			fprintf(f, ": the routes are in another order from here (position %zu in NEW): the first route "
			        "that matches wins\n      OLD:", c->pos + 1);
			for (size_t r = 0; r < pa->nroutes; r++)
				fprintf(f, " %s", pa->routes[r].name);
			fputs("\n      NEW:", f);
			for (size_t r = 0; r < pb->nroutes; r++)
				fprintf(f, " %s", pb->routes[r].name);
			break;
		case CH_KEY:
			fprintf(f, " %s: %s -> %s", c->key, c->old[0] ? c->old : "\"\"", c->new[0] ? c->new : "\"\"");
			if (c->restart) {
				fputs("  [takes a restart]", f);
				restart++;
			}
			if (!strcmp(c->sec, "bulkhead") && !strcmp(c->key, "threads") && atoll(c->new) < atoll(c->old))
				fputs("  [the extra threads stop taking exchanges, and stay until a restart]", f);
			break;
		}
		fputc('\n', f);
	}
	if (restart) {
		fputs("takes a restart:\n", f);
		for (size_t i = 0; i < d->nch; i++)
			if (d->ch[i].kind == CH_KEY && d->ch[i].restart)
				fprintf(f, "  [%s] %s\n", d->ch[i].sec, d->ch[i].key);
		fputs("  a reload applies the rest and keeps the running value of these until levee restarts; it logs\n"
		      "  each and lists them in /status (policy.restart_keys, restart_pending)\n",
		      f);
	}
	fputs("state across the reload:\n", f);
	carry_list(d, "bulkhead", text_carry, f);
	carry_list(d, "breaker", text_carry, f);
	if (pa->ntiers || pb->ntiers) {
		fputs("  tiers: the level in force is kept by position (at most the new number of tiers):\n", f);
		size_t n = pa->ntiers > pb->ntiers ? pa->ntiers : pb->ntiers;
		for (size_t l = 1; l <= n; l++) {
			const char *ta = tier_at(pa, l), *tb = tier_at(pb, l);
			if (ta && tb && strcmp(ta, tb) == 0)
				fprintf(f, "    level %zu: \"%s\" stays \"%s\"\n", l, ta, tb);
			else if (ta && tb)
				fprintf(f, "    level %zu: \"%s\" becomes \"%s\"\n", l, ta, tb);
			else if (ta)
				fprintf(f, "    level %zu: \"%s\" is gone: in force, it becomes level %zu (\"%s\")\n", l, ta,
				        pb->ntiers, tier_at(pb, pb->ntiers));
			else
				fprintf(f, "    level %zu: \"%s\" is new\n", l, tb);
		}
		for (size_t i = 0; i < pa->ntiers; i++)
			fprintf(f, "    a forcing of \"%s\" %s\n", pa->tiers[i].name,
			        has_tier(pb, pa->tiers[i].name) ? "carries over (by name)" : "ends (NEW has no such tier)");
	}
	fprintf(f, "%zu change%s, %zu take%s a restart\n", d->nch, d->nch == 1 ? "" : "s", restart,
	        restart == 1 ? "s" : "");
	return d->nch;
}

/* ---- JSON -------------------------------------------------------------- */

struct json_carry {
	FILE *f;
	bool first;
};

static void json_carry(const struct carry *c, void *arg)
{
	struct json_carry *j = arg;
	fprintf(j->f, "%s{\"name\":", j->first ? "" : ",");
	tool_json(j->f, c->name);
	fprintf(j->f, ",\"state\":\"%s\",\"renamed_from\":",
	        c->dropped ? "dropped" : c->carries ? "carries" : "fresh");
	tool_json(j->f, c->from);
	fputs(",\"except\":", j->f);
	tool_json(j->f, c->but);
	fputc('}', j->f);
	j->first = false;
}

static const char *const change_kinds[] = {"added", "removed", "changed", "order"};

static void diff_json(const struct diff *d, FILE *f)
{
	const struct lv_policy *pa = d->a.p, *pb = d->b.p;
	fputs("{\"old\":{\"path\":", f);
	tool_json(f, d->a.path);
	fprintf(f, ",\"checksum\":\"%s\"},\"new\":{\"path\":", pa->checksum);
	tool_json(f, d->b.path);
	fprintf(f, ",\"checksum\":\"%s\"},\"differ\":%s,\"changes\":[", pb->checksum, d->nch ? "true" : "false");
	for (size_t i = 0; i < d->nch; i++) {
		const struct change *c = &d->ch[i];
		fprintf(f, "%s{\"kind\":\"%s\",\"section\":", i ? "," : "", change_kinds[c->kind]);
		tool_json(f, c->sec);
		fputs(",\"name\":", f);
		tool_json(f, c->name);
		if (c->kind == CH_KEY) {
			fputs(",\"key\":", f);
			tool_json(f, c->key);
			fputs(",\"old\":", f);
			tool_json(f, c->old);
			fputs(",\"new\":", f);
			tool_json(f, c->new);
			fprintf(f, ",\"restart\":%s", c->restart ? "true" : "false");
		} else if (c->kind != CH_REMOVED) {
			fprintf(f, ",\"position\":%zu", c->pos + 1);
		}
		fputc('}', f);
	}
	fputs("],\"restart\":[", f);
	bool first = true;
	for (size_t i = 0; i < d->nch; i++)
		if (d->ch[i].kind == CH_KEY && d->ch[i].restart) {
			fprintf(f, "%s\"%s.%s\"", first ? "" : ",", d->ch[i].sec, d->ch[i].key);
			first = false;
		}
	struct json_carry j = {f, true};
	fputs("],\"bulkheads\":[", f);
	carry_list(d, "bulkhead", json_carry, &j);
	fputs("],\"breakers\":[", f);
	j.first = true;
	carry_list(d, "breaker", json_carry, &j);
	fputs("],\"tier_levels\":[", f);
	size_t n = pa->ntiers > pb->ntiers ? pa->ntiers : pb->ntiers;
	for (size_t l = 1; l <= n; l++) {
		fprintf(f, "%s{\"level\":%zu,\"old\":", l > 1 ? "," : "", l);
		tool_json(f, tier_at(pa, l));
		fputs(",\"new\":", f);
		/* a level past the new tiers falls to the last of them */
		tool_json(f, tier_at(pb, l <= pb->ntiers ? l : pb->ntiers));
		fputc('}', f);
	}
	fputs("],\"forcings\":[", f);
	for (size_t i = 0; i < pa->ntiers; i++) {
		fprintf(f, "%s{\"tier\":", i ? "," : "");
		tool_json(f, pa->tiers[i].name);
		fprintf(f, ",\"carries\":%s}", has_tier(pb, pa->tiers[i].name) ? "true" : "false");
	}
	fputs("]}\n", f);
}

int cli_diff(int argc, char **argv)
{
	bool json = false;
	const char *paths[2];
	int np = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return tool_usage_error("diff", "unknown option %s", argv[i]);
		else if (np == 2)
			return tool_usage_error("diff", "two policy files, OLD and NEW (got a third: %s)", argv[i]);
		else
			paths[np++] = argv[i];
	}
	if (np != 2)
		return tool_usage_error("diff", "needs two policy files, OLD and NEW");
	struct diff d = {.a.path = paths[0], .b.path = paths[1]};
	int rc = TOOL_USAGE; /* an invalid file is an error of the command here: 2 (1 means "they differ") */
	bool ok_a = tool_load(paths[0], &d.a.p) == LV_OK;
	bool ok_b = tool_load(paths[1], &d.b.p) == LV_OK;
	char err[512];
	if (!ok_a || !ok_b) {
		fprintf(stderr, "levee diff: %s is not a valid policy\n", !ok_a ? paths[0] : paths[1]);
		goto out;
	}
	if (policy_walk(d.a.p, 0, diff_collect, &d.a, err, sizeof(err)) != LV_OK ||
	    policy_walk(d.b.p, 0, diff_collect, &d.b, err, sizeof(err)) != LV_OK) {
		fprintf(stderr, "levee diff: %s\n", err);
		goto out;
	}
	if (!d.a.oom && !d.b.oom)
		diff_compare(&d);
	if (d.a.oom || d.b.oom || d.oom) {
		fprintf(stderr, "levee diff: out of memory\n");
		goto out;
	}
	if (json)
		diff_json(&d, stdout);
	else
		diff_text(&d, stdout);
	rc = d.nch ? 1 : 0;
out:
	dside_free(&d.a);
	dside_free(&d.b);
	free(d.ch);
	return rc;
}
