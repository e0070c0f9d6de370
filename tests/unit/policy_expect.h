/*
 * policy_expect.h - checking a load's error and warning lines against the
 * exact lines wanted (the format is what `levee check` prints), for the
 * policy tests (test_policy.c, test_policy_values.c).
 */
#ifndef LEVEE_TEST_POLICY_EXPECT_H
#define LEVEE_TEST_POLICY_EXPECT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "policy_internal.h"

#ifndef MAX_ERRS
#define MAX_ERRS 6
#endif

static inline bool same_lines(char *const *got, size_t ngot, const char *const *want, size_t nwant)
{
	bool same = ngot == nwant;
	for (size_t i = 0; same && i < nwant; i++)
		same = strcmp(got[i], want[i]) == 0;
	return same;
}

static inline size_t count_lines(const char *const *want)
{
	size_t n = 0;
	while (n < MAX_ERRS && want[n] != NULL)
		n++;
	return n;
}

/* The errors, and when given the warnings, are exactly <want> and <warn>. */
static inline void expect_diag(const char *what, int rc, const struct lv_diag *d, const char *const *want,
                        const char *const *warn)
{
	size_t nwant = count_lines(want), nwarn = warn ? count_lines(warn) : d->nwarn;
	if ((rc == LV_OK) == (nwant == 0) && same_lines(d->lines, d->n, want, nwant) &&
	    (warn == NULL || same_lines(d->warnings, d->nwarn, warn, nwarn)))
		return;
	print_error("case \"%s\": rc %d\n  got:\n", what, rc);
	for (size_t i = 0; i < d->n; i++)
		print_error("    %s\n", d->lines[i]);
	for (size_t i = 0; i < d->nwarn; i++)
		print_error("    %s\n", d->warnings[i]);
	print_error("  want:\n");
	for (size_t i = 0; i < nwant; i++)
		print_error("    %s\n", want[i]);
	for (size_t i = 0; warn && i < nwarn; i++)
		print_error("    %s\n", warn[i]);
	fail();
}

static inline void expect_errors(const char *what, int rc, const struct lv_diag *d, const char *const *want)
{
	expect_diag(what, rc, d, want, NULL);
}

/* Loads <text> as v.ini, which must load with no error; the snapshot. */
static inline struct lv_policy *load_ok(const char *what, const char *text)
{
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};
	int rc = policy_load_string("v.ini", text, NULL, &p, &d);
	const char *none[] = {NULL};
	expect_errors(what, rc, &d, none);
	diag_free(&d);
	return p;
}

#endif
