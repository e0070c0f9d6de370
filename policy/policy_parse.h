/*
 * policy_parse.h - the state of one policy load, shared by the loader
 * (policy.c) and its diagnostics (policy_diag.c). Private to policy/.
 */
#ifndef LEVEE_POLICY_PARSE_H
#define LEVEE_POLICY_PARSE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "policy_internal.h"

#define POLICY_FILE_MAX (1024 * 1024)
/* More errors than this means the wrong file, not a typo; stop listing. */
#define POLICY_ERRORS_MAX 100
#define POLICY_MSG_MAX 2048

/* The lines one load added to a list of its lv_diag (errors or warnings),
 * with the file line of each (0: none), so that they can be listed in file
 * order at the end. */
struct policy_order {
	size_t first; /* index in the list of this load's first line */
	int *at;
	size_t cap;
	bool unsortable; /* an allocation failed: the lines stay as found */
};

struct policy_parse {
	const char *file; /* name used in messages */
	const char *start; /* the file's text, for columns */
	const char *pos, *end;
	int line; /* of the line last handed to inih */
	struct lv_diag *diag;
	int errors;
	struct lv_policy *p;

	/* The section being read. `sec` is NULL before the first header, where
	 * a key is an error, and after a header that was unparsable or named an
	 * unknown section, where `skip` is set and keys are ignored (the header
	 * was reported). A known section with a wrong header (a duplicate, a bad
	 * name) is `rejected`: its keys are still checked, but go to `scratch`. */
	const struct keys_section *sec;
	bool skip;
	bool rejected;
	void *base;  /* where its keys are stored */
	int *seen;   /* per key of the table: line where this section set it */
	int header_line;
	char label[POLICY_LINE_MAX + 8]; /* "[levee]", "[route \"users\"]" */
	char last_key[POLICY_LINE_MAX + 1]; /* key of the previous line, "" if it was none */

	int *seen_top;    /* `seen` for the sections that appear once */
	int *seen_elem;   /* `seen` for the current instance of a named section */
	int *sec_line;    /* per section: line of its header, for those that appear once */
	void *scratch;    /* takes the keys of a rejected section so that they are still checked */
	const char *overridden[4]; /* keys set from the command line */

	struct policy_order errs;  /* of diag->lines */
	struct policy_order warns; /* of diag->warnings */
};

/* ---- errors and warnings (policy_diag.c) ---- */

/* Sorts this load's part of a diag list by file line, stably. */
void policy_order_sort(struct policy_order *o, char **list, size_t nlist);
void policy_verr(struct policy_parse *st, const char *file, int line, const char *what, const char *fmt,
                 va_list ap);
void policy_verr_col(struct policy_parse *st, const char *file, int line, int col, const char *what,
                     const char *fmt, va_list ap);
void policy_vwarn(struct policy_parse *st, const char *label, int line, const char *fmt, va_list ap);
/* "FILE:LINE: REASON", or "FILE: REASON" when `line` is 0. */
__attribute__((format(printf, 3, 4))) void policy_err(struct policy_parse *st, int line, const char *fmt, ...);
/* "FILE:LINE: WHAT: REASON", outside the section being read. */
__attribute__((format(printf, 4, 5))) void policy_verr_at(struct policy_parse *st, int line, const char *what,
                                                          const char *fmt, ...);
/* "--FLAG: REASON" for a command-line override. */
__attribute__((format(printf, 3, 4))) void policy_flag_err(struct policy_parse *st, const char *flag,
                                                           const char *fmt, ...);
/* "FILE:LINE: [SECTION]: REASON" for the current section. */
__attribute__((format(printf, 2, 3))) void policy_err_section(struct policy_parse *st, const char *fmt, ...);
/* "FILE:LINE: [SECTION] KEY: REASON" for a key of the current section. */
__attribute__((format(printf, 4, 5))) void policy_err_key(struct policy_parse *st, int line, const char *key,
                                                          const char *fmt, ...);
/* "FILE:LINE: [SECTION] warning: REASON" for the current section. */
__attribute__((format(printf, 3, 4))) void policy_warn(struct policy_parse *st, int line, const char *fmt, ...);

/* ---- [warmup] (warmup_list.c) ---- */

/* Parses `urls` and reads and parses `urls_file` into the snapshot's list;
 * a bad item or an unreadable file is an error of the load. */
void policy_warmup_list(struct policy_parse *st);

#endif
