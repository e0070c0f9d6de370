/*
 * test_metric_values.c - every token levee turns into a metric label value
 * (prom_value, stats.h) comes out in the metrics' naming scheme
 * (docs/metrics.md): snake_case, whole (not cut by the buffer), and still
 * distinct from the other values of its table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "admin/auth.h"
#include "cache/cache_stats.h"
#include "control/control_msg.h"
#include "invalidate/message.h"
#include "outcome.h"
#include "policy.h"
#include "reason.h"
#include "stats.h"

static bool snake_case(const char *s)
{
	if (!*s)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

/* Tokens [first, end) of one table, as label values. */
static void check_table(const char *table, const char *(*token)(int), int first, int end)
{
	char seen[64][PROM_VALUE_MAX];
	assert_true(end - first <= 64);
	for (int i = first; i < end; i++) {
		const char *t = token(i);
		char v[PROM_VALUE_MAX];
		assert_non_null(t);
		if (strlen(t) >= PROM_VALUE_MAX)
			fail_msg("%s[%d] \"%s\" is longer than a label value may be", table, i, t);
		prom_value(v, t);
		if (!snake_case(v))
			fail_msg("%s[%d] \"%s\" is not snake_case", table, i, v);
		for (int j = first; j < i; j++)
			if (strcmp(seen[j - first], v) == 0)
				fail_msg("%s: \"%s\" twice", table, v);
		memcpy(seen[i - first], v, sizeof(v));
	}
}

static const char *reason_tok(int i) { return lv_reasons[i].token; }
static const char *outcome_tok(int i) { return request_outcome_names[i]; }
static const char *refusal_tok(int i) { return cache_refusal_names[i]; }
static const char *fallback_tok(int i) { return lv_fallback_kind_names[i]; }
static const char *verdict_tok(int i) { return ctl_verdict_name((enum ctl_verdict)i); }
static const char *auth_tok(int i) { return auth_verdict_name((enum auth_verdict)i); }

static void test_every_table_is_snake_case(void **state)
{
	(void)state;
	check_table("lv_reasons", reason_tok, 0, R__COUNT);
	check_table("request_outcome_names", outcome_tok, 0, OUT__COUNT);
	check_table("cache_refusal_names", refusal_tok, 0, RF_COUNT);
	check_table("lv_fallback_kind_names", fallback_tok, 0, LV_FB__COUNT);
	check_table("ctl_verdict_name", verdict_tok, 0, CTL_VERDICT_COUNT);
	check_table("msg_strerror", msg_strerror, 1, MSG_E_COUNT);
	check_table("auth_verdict_name", auth_tok, 0, AUTH__COUNT);
}

static void test_hyphens_become_underscores(void **state)
{
	(void)state;
	char v[PROM_VALUE_MAX];
	assert_string_equal(prom_value(v, "bad-request"), "bad_request");
	assert_string_equal(prom_value(v, "commit_refused"), "commit_refused");
	assert_string_equal(prom_value(v, "a-b-c-"), "a_b_c_");
	assert_string_equal(prom_value(v, ""), "");
	/* the other contracts keep their hyphens */
	assert_string_equal(lv_reasons[R_BAD_REQUEST].token, "bad-request");
}

static void test_a_long_token_is_cut_not_overrun(void **state)
{
	(void)state;
	char big[PROM_VALUE_MAX * 2];
	memset(big, '-', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	char v[PROM_VALUE_MAX + 1];
	v[PROM_VALUE_MAX] = 'X';
	prom_value(v, big);
	assert_int_equal(strlen(v), PROM_VALUE_MAX - 1);
	assert_int_equal(v[PROM_VALUE_MAX], 'X');
	assert_int_equal(v[0], '_');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_table_is_snake_case),
	    cmocka_unit_test(test_hyphens_become_underscores),
	    cmocka_unit_test(test_a_long_token_is_cut_not_overrun),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
