/*
 * policy_diag.c - the errors and warnings of one load, in file order
 * (policy_parse.h). Their format is part of levee's interface (`levee
 * check`): "FILE:LINE: [SECTION] KEY: REASON", and "FILE:LINE: [SECTION]
 * warning: REASON" for warnings.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_parse.h"

/* Remembers that the line at index <i> of a list has file line <line>. */
static void policy_order_note(struct policy_order *o, size_t i, int line)
{
	if (o->unsortable)
		return;
	i -= o->first;
	if (i >= o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 16;
		int *grown = realloc(o->at, cap * sizeof(*grown));
		if (grown == NULL) {
			o->unsortable = true;
			return;
		}
		o->at = grown;
		o->cap = cap;
	}
	o->at[i] = line;
}

/* Sorts this load's part of a list by file line, stably, so that `levee
 * check` lists it in file order although some lines are found late (at the
 * end of a section, or in the checks across keys). Lines without a file
 * line go last. Insertion sort: the list is short and nearly sorted. */
void policy_order_sort(struct policy_order *o, char **list, size_t nlist)
{
	if (o->unsortable || list == NULL || nlist <= o->first)
		return; /* nothing to sort (and no offset from a NULL list) */
	char **lines = list + o->first;
	size_t n = nlist - o->first;
	for (size_t i = 1; i < n; i++) {
		int line = o->at[i];
		char *text = lines[i];
		unsigned key = line > 0 ? (unsigned)line : UINT_MAX;
		size_t j = i;
		for (; j > 0; j--) {
			int prev = o->at[j - 1];
			if ((prev > 0 ? (unsigned)prev : UINT_MAX) <= key)
				break;
			o->at[j] = prev;
			lines[j] = lines[j - 1];
		}
		o->at[j] = line;
		lines[j] = text;
	}
}

/* Adds one finished error line to `diag`. */
static void policy_add(struct policy_parse *st, int line, const char *text)
{
	size_t at = st->diag->n;
	diag_add(st->diag, "%s", text);
	if (st->diag->n == at + 1)
		policy_order_note(&st->errs, at, line);
}

/* Adds "FILE:LINE: WHAT: REASON". LINE is left out when 0, WHAT when NULL,
 * and FILE when `file` is NULL (an error in a command-line flag). */
void policy_verr(struct policy_parse *st, const char *file, int line, const char *what,
                        const char *fmt, va_list ap)
{
	policy_verr_col(st, file, line, 0, what, fmt, ap);
}

/* The same with a column after the line ("FILE:LINE:COL: "), when `col` > 0. */
void policy_verr_col(struct policy_parse *st, const char *file, int line, int col, const char *what,
                            const char *fmt, va_list ap)
{
	char text[POLICY_MSG_MAX];
	size_t o = 0;

	st->errors++;
	if (st->errors > POLICY_ERRORS_MAX + 1)
		return;
	if (st->errors == POLICY_ERRORS_MAX + 1) {
		snprintf(text, sizeof(text), "%s: too many errors; the rest are not shown", st->file);
		policy_add(st, 0, text);
		return;
	}
	if (file != NULL && line > 0 && col > 0)
		o = (size_t)snprintf(text, sizeof(text), "%s:%d:%d: ", file, line, col);
	else if (file != NULL)
		o = (size_t)snprintf(text, sizeof(text), line > 0 ? "%s:%d: " : "%s: ", file, line);
	if (what != NULL && o < sizeof(text))
		o += (size_t)snprintf(text + o, sizeof(text) - o, "%s: ", what);
	if (o < sizeof(text))
		vsnprintf(text + o, sizeof(text) - o, fmt, ap);
	policy_add(st, file != NULL ? line : 0, text);
}

/* "FILE:LINE: REASON", or "FILE: REASON" when `line` is 0. */
void policy_err(struct policy_parse *st, int line,
                                                             const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	policy_verr(st, st->file, line, NULL, fmt, ap);
	va_end(ap);
}

/* "FILE:LINE: WHAT: REASON", outside the section being read. */
void policy_verr_at(struct policy_parse *st, int line,
                                                                 const char *what, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	policy_verr(st, st->file, line, what, fmt, ap);
	va_end(ap);
}

/* "--FLAG: REASON" for a command-line override. */
void policy_flag_err(struct policy_parse *st,
                                                                  const char *flag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	policy_verr(st, NULL, 0, flag, fmt, ap);
	va_end(ap);
}

/* "FILE:LINE: [SECTION]: REASON" for the current section. */
void policy_err_section(struct policy_parse *st,
                                                                     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	policy_verr(st, st->file, st->header_line, st->label, fmt, ap);
	va_end(ap);
}

/* "FILE:LINE: [SECTION] KEY: REASON" for a key of the current section. */
void policy_err_key(struct policy_parse *st, int line,
                                                                 const char *key, const char *fmt, ...)
{
	char what[sizeof(st->label) + POLICY_LINE_MAX + 2];
	va_list ap;
	snprintf(what, sizeof(what), "%s %s", st->label, key);
	va_start(ap, fmt);
	policy_verr(st, st->file, line, what, fmt, ap);
	va_end(ap);
}

/* "FILE:LINE: LABEL warning: REASON". */
void policy_vwarn(struct policy_parse *st, const char *label, int line, const char *fmt, va_list ap)
{
	char text[POLICY_MSG_MAX];
	int o = snprintf(text, sizeof(text), "%s:%d: %s warning: ", st->file, line, label);
	if (o > 0 && (size_t)o < sizeof(text))
		vsnprintf(text + o, sizeof(text) - (size_t)o, fmt, ap);
	size_t at = st->diag->nwarn;
	diag_warn(st->diag, "%s", text);
	if (st->diag->nwarn == at + 1)
		policy_order_note(&st->warns, at, line);
}

/* "FILE:LINE: [SECTION] warning: REASON" for the current section. */
void policy_warn(struct policy_parse *st, int line,
                                                              const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	policy_vwarn(st, st->label, line, fmt, ap);
	va_end(ap);
}
