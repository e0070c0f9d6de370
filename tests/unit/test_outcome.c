/*
 * test_outcome.c - one outcome per request: every reason levee answers with
 * maps to one outcome of the right family, the names are the stable tokens
 * of the metrics and the access log, and the first recorded outcome wins.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "outcome.h"
#include "net/request.h"
#include "reason.h"

static void test_names_are_unique_tokens(void **state)
{
	for (int i = 0; i < OUT__COUNT; i++) {
		const char *n = request_outcome_names[i];
		assert_non_null(n);
		assert_true(strlen(n) > 0);
		for (const char *p = n; *p; p++)
			assert_true((*p >= 'a' && *p <= 'z') || *p == '-');
		for (int j = 0; j < i; j++)
			assert_string_not_equal(n, request_outcome_names[j]);
	}
	assert_string_equal(request_outcome_names[OUT_UPSTREAM], "upstream");
	assert_string_equal(request_outcome_names[OUT_REFUSED], "refused");
	assert_string_equal(request_outcome_names[OUT_CLIENT_GONE], "client-gone");
}

/* The families a breaker tells apart: the upstream failing, levee refusing,
 * the client at fault. */
static void test_every_reason_has_its_family(void **state)
{
	assert_int_equal(outcome_of_reason(R_NONE), OUT_NONE);
	for (int r = 1; r < R__COUNT; r++) {
		enum request_outcome o = outcome_of_reason(r);
		int st = lv_reasons[r].status;
		if (r == R_UP_CONNECT || r == R_UP_BAD || r == R_UP_TIMEOUT)
			assert_true(outcome_upstream_failed(o));
		else
			assert_false(outcome_upstream_failed(o));
		if (st >= 400 && st < 500)
			assert_int_equal(o, OUT_CLIENT_BAD);
		if (r == R_BULKHEAD_FULL || r == R_BULKHEAD_TIMEOUT || r == R_MAXCONN || r == R_DRAINING)
			assert_int_equal(o, OUT_REFUSED);
	}
	assert_int_equal(outcome_of_reason(R_UP_TIMEOUT), OUT_UP_TIMEOUT);
	assert_int_equal(outcome_of_reason(R_INTERNAL), OUT_INTERNAL);
	/* 501 and 505 are about what the client sent */
	assert_int_equal(outcome_of_reason(R_TE), OUT_CLIENT_BAD);
	assert_int_equal(outcome_of_reason(R_VERSION), OUT_CLIENT_BAD);
}

static void test_upstream_failed_is_exactly_the_upstream_kinds(void **state)
{
	int n = 0;
	for (int o = 0; o < OUT__COUNT; o++)
		n += outcome_upstream_failed(o);
	assert_int_equal(n, 5); /* connect, timeout, reset, truncated, bad */
	assert_false(outcome_upstream_failed(OUT_UPSTREAM));
	assert_false(outcome_upstream_failed(OUT_CACHE));
	assert_false(outcome_upstream_failed(OUT_REFUSED));
	assert_false(outcome_upstream_failed(OUT_CLIENT_GONE));
}

/* A timeout that is then drained stays a timeout; a client that leaves
 * after levee refused it stays refused. */
static void test_first_outcome_wins(void **state)
{
	static struct request r;
	memset(&r, 0, sizeof(r));
	request_outcome(&r, OUT_UP_TIMEOUT);
	request_outcome(&r, OUT_UPSTREAM);
	request_outcome(&r, OUT_CLIENT_GONE);
	assert_int_equal(r.outcome, OUT_UP_TIMEOUT);
	memset(&r, 0, sizeof(r));
	request_outcome(&r, OUT_REFUSED);
	request_outcome(&r, OUT_CLIENT_GONE);
	assert_int_equal(r.outcome, OUT_REFUSED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_are_unique_tokens),
	    cmocka_unit_test(test_every_reason_has_its_family),
	    cmocka_unit_test(test_upstream_failed_is_exactly_the_upstream_kinds),
	    cmocka_unit_test(test_first_outcome_wins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
