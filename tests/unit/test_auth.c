/*
 * test_auth.c - the admin token: which tokens start, which Authorization
 * values pass, what happens without a token, and loopback addresses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "admin/auth.h"

#define TOKEN "0123456789abcdef-TOKEN"

static void test_init(void **state)
{
	(void)state;
	const struct {
		const char *token;
		bool loopback, insecure;
		int rc;
		enum auth_mode mode;
	} cases[] = {
		{NULL, true, false, LV_OK, AUTH_LOOPBACK},
		{"", true, false, LV_OK, AUTH_LOOPBACK},
		{NULL, false, false, LV_OK, AUTH_LOCKED},
		{"", false, false, LV_OK, AUTH_LOCKED},
		{NULL, false, true, LV_OK, AUTH_INSECURE},
		{NULL, true, true, LV_OK, AUTH_LOOPBACK},
		{TOKEN, true, false, LV_OK, AUTH_TOKEN},
		{TOKEN, false, true, LV_OK, AUTH_TOKEN}, /* a token wins over admin_insecure */
		{"0123456789abcde", true, false, LV_ERR, 0}, /* 15 bytes */
		{"0123456789abcdef", true, false, LV_OK, AUTH_TOKEN},
		{"0123456789 abcdef", true, false, LV_ERR, 0},
		{"0123456789abcdef\n", true, false, LV_ERR, 0},
		{"0123456789abcdef\xc3\xa9", true, false, LV_ERR, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct auth a;
		char err[160] = "";
		int rc = auth_init(&a, cases[i].token, cases[i].loopback, cases[i].insecure, err, sizeof(err));
		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d, want %d (%s)", i, rc, cases[i].rc, err);
		if (rc == LV_OK && a.mode != cases[i].mode)
			fail_msg("case %zu: mode %s, want %s", i, auth_mode_name(a.mode), auth_mode_name(cases[i].mode));
		/* the reason never repeats the value */
		if (rc != LV_OK && cases[i].token && strstr(err, cases[i].token))
			fail_msg("case %zu: the error shows the token: %s", i, err);
	}
	struct auth a;
	char err[160];
	char big[AUTH_TOKEN_MAX + 1];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(auth_init(&a, big, true, false, err, sizeof(err)), LV_ERR);
	big[AUTH_TOKEN_MAX - 1] = '\0';
	assert_int_equal(auth_init(&a, big, true, false, err, sizeof(err)), LV_OK);
}

static void test_check(void **state)
{
	(void)state;
	struct auth tok;
	char err[160];
	assert_int_equal(auth_init(&tok, TOKEN, false, false, err, sizeof(err)), LV_OK);
	const struct {
		const char *authz; /* NULL: no Authorization field */
		enum auth_verdict want;
	} cases[] = {
		{NULL, AUTH_MISSING},
		{"", AUTH_MISSING},
		{"Bearer", AUTH_MISSING},
		{"Basic " TOKEN, AUTH_MISSING},
		{TOKEN, AUTH_MISSING},
		{"Bearer " TOKEN, AUTH_OK},
		{"bearer " TOKEN, AUTH_OK},
		{"BEARER   " TOKEN " \t", AUTH_OK},
		{"Bearer ", AUTH_WRONG},
		{"Bearer " TOKEN "x", AUTH_WRONG},
		{"Bearer 0123456789abcdef-TOKE", AUTH_WRONG},
		{"Bearer 0123456789abcdef-tOKEN", AUTH_WRONG},
		{"Bearer x" TOKEN, AUTH_WRONG},
		{"Bearer " TOKEN " " TOKEN, AUTH_WRONG},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *v = cases[i].authz;
		enum auth_verdict got = auth_check(&tok, v, v ? strlen(v) : 0);
		if (got != cases[i].want)
			fail_msg("case %zu (%s): %s, want %s", i, v ? v : "none", auth_verdict_name(got),
			         auth_verdict_name(cases[i].want));
	}
	/* a value is its length, not its NUL: the bytes past `n` do not count */
	assert_int_equal(auth_check(&tok, "Bearer " TOKEN "zz", strlen("Bearer " TOKEN)), AUTH_OK);

	/* without a token, the credentials do not matter */
	struct auth open, locked, insecure;
	assert_int_equal(auth_init(&open, NULL, true, false, err, sizeof(err)), LV_OK);
	assert_int_equal(auth_init(&locked, NULL, false, false, err, sizeof(err)), LV_OK);
	assert_int_equal(auth_init(&insecure, NULL, false, true, err, sizeof(err)), LV_OK);
	for (int i = 0; i < 2; i++) {
		const char *v = i ? "Bearer " TOKEN : NULL;
		size_t n = v ? strlen(v) : 0;
		assert_int_equal(auth_check(&open, v, n), AUTH_OK);
		assert_int_equal(auth_check(&insecure, v, n), AUTH_OK);
		assert_int_equal(auth_check(&locked, v, n), AUTH_FORBIDDEN);
	}
}

static void test_equal(void **state)
{
	(void)state;
	assert_true(auth_equal("abc", 3, "abc", 3));
	assert_false(auth_equal("abd", 3, "abc", 3));
	assert_false(auth_equal("ab", 2, "abc", 3));
	assert_false(auth_equal("abcd", 4, "abc", 3));
	assert_false(auth_equal("", 0, "abc", 3));
	/* a prefix of the right bytes padded with NULs is still wrong */
	assert_false(auth_equal("ab\0", 3, "abc", 3));
	assert_false(auth_equal("abc\0", 4, "abc", 3));
}

static void test_loopback(void **state)
{
	(void)state;
	const struct {
		const char *addr;
		bool want;
	} cases[] = {
		{"127.0.0.1", true}, {"127.255.0.9", true}, {"0.0.0.0", false},   {"10.0.0.1", false},
		{"128.0.0.1", false}, {"::1", true},        {"::", false},        {"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", false}, {"fe80::1", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		if (strchr(cases[i].addr, ':')) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			s6->sin6_family = AF_INET6;
			assert_int_equal(inet_pton(AF_INET6, cases[i].addr, &s6->sin6_addr), 1);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			s4->sin_family = AF_INET;
			assert_int_equal(inet_pton(AF_INET, cases[i].addr, &s4->sin_addr), 1);
		}
		if (auth_loopback((struct sockaddr *)&ss) != cases[i].want)
			fail_msg("%s: loopback %d, want %d", cases[i].addr, !cases[i].want, cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_loopback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
