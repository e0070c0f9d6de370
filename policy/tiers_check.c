/*
 * tiers_check.c - the policy's degradation tiers checked at load: every
 * tier's conditions parsed against the signals this policy has (its
 * routes, bulkheads and breakers name some), errors at the file's
 * line and column; then what each level does (policy/signals.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"
#include "signals.h"

/* The column in the file of byte `col` (1-based) of the value of the key
 * on `line` of `text` (up to `end`): where the value starts on that line,
 * plus col - 1; -1 when the value is not on the line as written (a ${VAR}
 * was expanded in it). */
static int value_column(const char *text, const char *end, int line, const char *value, int col)
{
	const char *p = text;
	if (p == NULL || line <= 0)
		return -1;
	for (int l = 1; l < line && p < end; l++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			return -1;
		p = nl + 1;
	}
	const char *eol = memchr(p, '\n', (size_t)(end - p));
	size_t n = (size_t)((eol ? eol : end) - p), vl = strlen(value);
	const char *eq = memchr(p, '=', n);
	if (eq == NULL || vl == 0)
		return -1;
	for (const char *q = eq + 1; q + vl <= p + n; q++)
		if (memcmp(q, value, vl) == 0)
			return (int)(q - p) + col;
	return -1;
}

void tiers_check(struct lv_policy *p, const char *text, const char *end, tiers_check_err err, void *arg)
{
	if (p->ntiers == 0)
		return;
	if (!(p->signals = signals_build(p)) ||
	    !(p->tier_levels = calloc(p->ntiers + 1, sizeof(*p->tier_levels)))) {
		err(arg, 0, 0, NULL, "out of memory");
		return;
	}
	for (size_t i = 0; i < p->ntiers; i++) {
		struct lv_tier *t = &p->tiers[i];
		for (int k = 0; k < 2; k++) {
			const char *value = k ? t->exit : t->enter;
			int line = k ? t->exit_line : t->enter_line;
			struct expr **out = k ? &t->exit_expr : &t->enter_expr;
			struct expr_error e;
			if (line == 0)
				continue; /* not set: "needs enter" was said */
			if (expr_parse(value, &p->signals->sig, out, &e) == LV_OK) {
				expr_mark_signals(*out, p->signals->used);
				continue;
			}
			char what[LV_NAME_MAX + 32];
			snprintf(what, sizeof(what), "[tier \"%s\"] %s", t->name, k ? "exit" : "enter");
			int col = value_column(text, end, line, value, e.column);
			if (col > 0) {
				err(arg, line, col, what, e.message);
			} else {
				char msg[EXPR_ERR_MAX + 64];
				snprintf(msg, sizeof(msg), "at column %d of its value (after ${...} expansion): %s", e.column,
				         e.message);
				err(arg, line, 0, what, msg);
			}
		}
	}
	signals_tier_levels(p, p->tier_levels);
}
