/*
 * test_value.c - the value parsers of policy/value.c, table by table: every
 * good input with the value it means, every bad input that must fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct num_case {
	const char *in;
	bool ok;
	uint64_t want;
};

static void check_num(const struct num_case *c, size_t n,
                      int (*parse)(const char *, uint64_t *, const char **))
{
	for (size_t i = 0; i < n; i++) {
		uint64_t v = 12345;
		const char *why = NULL;
		int rc = parse(c[i].in, &v, &why);
		if (c[i].ok) {
			if (rc != LV_OK)
				fail_msg("\"%s\": unexpected error: %s", c[i].in, why);
			if (v != c[i].want)
				fail_msg("\"%s\": got %llu, want %llu", c[i].in, (unsigned long long)v,
				         (unsigned long long)c[i].want);
		} else {
			if (rc != LV_ERR)
				fail_msg("\"%s\": accepted as %llu", c[i].in, (unsigned long long)v);
			assert_non_null(why);
			assert_true(strlen(why) > 0);
			assert_int_equal(v, 12345); /* untouched on error */
		}
	}
}

static void test_duration(void **state)
{
	(void)state;
	static const struct num_case cases[] = {
		{"0", true, 0},
		{"0ms", true, 0},
		{"0s", true, 0},
		{"1ms", true, 1},
		{"250ms", true, 250},
		{"5s", true, 5000},
		{"2m", true, 120000},
		{"1h", true, 3600000},
		{"25s", true, 25000},
		{"007s", true, 7000},
		{"18446744073709551615ms", true, UINT64_MAX},
		{"", false, 0},
		{"5", false, 0},       /* a unit is required except for 0 */
		{"5 s", false, 0},
		{" 5s", false, 0},
		{"5s ", false, 0},
		{"1.5s", false, 0},
		{"1,5s", false, 0},
		{"-1s", false, 0},
		{"+1s", false, 0},
		{"5S", false, 0},
		{"5sec", false, 0},
		{"5us", false, 0},
		{"1d", false, 0},
		{"ms", false, 0},
		{"1m30s", false, 0},
		{"99999999999999999999ms", false, 0}, /* digits overflow */
		{"18446744073709551615s", false, 0},  /* unit overflows */
		{"5000000000000000h", false, 0},
	};
	check_num(cases, N(cases), value_duration_ms);
}

static void test_size(void **state)
{
	(void)state;
	static const struct num_case cases[] = {
		{"0", true, 0},
		{"512", true, 512},
		{"512B", true, 512},
		{"64KiB", true, 65536},
		{"16MiB", true, 16u << 20},
		{"1GiB", true, 1u << 30},
		{"1TiB", true, 1ull << 40},
		{"1KB", true, 1000},
		{"2MB", true, 2000000},
		{"3GB", true, 3000000000ull},
		{"1TB", true, 1000000000000ull},
		{"16777215TiB", true, 16777215ull << 40},
		{"", false, 0},
		{"1kb", false, 0},
		{"1K", false, 0},
		{"1k", false, 0},
		{"1Kib", false, 0},
		{"1 KiB", false, 0},
		{"1.5MiB", false, 0},
		{"-1", false, 0},
		{"KiB", false, 0},
		{"16777216TiB", false, 0}, /* 2^64 */
		{"18446744073709551616", false, 0},
	};
	check_num(cases, N(cases), value_size_bytes);
}

static void test_uint(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		uint64_t min, max;
		bool ok;
		uint64_t want;
	} cases[] = {
		{"0", 0, 10, true, 0},
		{"10", 0, 10, true, 10},
		{"010", 0, 10, true, 10},
		{"5", 5, 5, true, 5},
		{"18446744073709551615", 0, UINT64_MAX, true, UINT64_MAX},
		{"11", 0, 10, false, 0},
		{"4", 5, 10, false, 0},
		{"", 0, 10, false, 0},
		{"+1", 0, 10, false, 0},
		{"-1", 0, 10, false, 0},
		{"1x", 0, 10, false, 0},
		{"1 ", 0, 10, false, 0},
		{"0x10", 0, 100, false, 0},
		{"1e3", 0, 10000, false, 0},
		{"18446744073709551616", 0, UINT64_MAX, false, 0},
	};
	for (size_t i = 0; i < N(cases); i++) {
		uint64_t v = 7;
		const char *why = NULL;
		int rc = value_uint(cases[i].in, cases[i].min, cases[i].max, &v, &why);
		if (cases[i].ok) {
			if (rc != LV_OK || v != cases[i].want)
				fail_msg("\"%s\": rc %d v %llu", cases[i].in, rc, (unsigned long long)v);
		} else {
			if (rc != LV_ERR)
				fail_msg("\"%s\": accepted", cases[i].in);
			assert_non_null(why);
			assert_int_equal(v, 7);
		}
	}
}

static void test_percent(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		bool ok;
		double want;
	} cases[] = {
		{"0%", true, 0},         {"50%", true, 50},       {"12.5%", true, 12.5},
		{"100%", true, 100},     {"100.0%", true, 100},   {"99.99%", true, 99.99},
		{"007%", true, 7},       {"0.001%", true, 0.001}, {"", false, 0},
		{"50", false, 0},        {"0.5", false, 0},       {"101%", false, 0},
		{"100.01%", false, 0},   {"-5%", false, 0},       {"5.%", false, 0},
		{".5%", false, 0},       {"50%%", false, 0},      {"50 %", false, 0},
		{"abc", false, 0},       {"1e2%", false, 0},      {"99999999999999999999%", false, 0},
		{"%", false, 0},
	};
	for (size_t i = 0; i < N(cases); i++) {
		double v = -1;
		const char *why = NULL;
		int rc = value_percent(cases[i].in, &v, &why);
		if (cases[i].ok) {
			if (rc != LV_OK)
				fail_msg("\"%s\": %s", cases[i].in, why);
			assert_float_equal(v, cases[i].want, 1e-9);
		} else {
			if (rc != LV_ERR)
				fail_msg("\"%s\": accepted as %f", cases[i].in, v);
			assert_non_null(why);
			assert_float_equal(v, -1, 0);
		}
	}
}

static void test_bool(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int want; /* 1 true, 0 false, -1 error */
	} cases[] = {
		{"true", 1},  {"TRUE", 1},  {"yes", 1},  {"on", 1},     {"1", 1},     {"True", 1},
		{"false", 0}, {"no", 0},    {"off", 0},  {"Off", 0},    {"0", 0},     {"", -1},
		{"2", -1},    {"y", -1},    {"truee", -1}, {" true", -1}, {"enabled", -1},
	};
	for (size_t i = 0; i < N(cases); i++) {
		bool v = false;
		const char *why = NULL;
		int rc = value_bool(cases[i].in, &v, &why);
		if (cases[i].want < 0) {
			if (rc != LV_ERR)
				fail_msg("\"%s\": accepted", cases[i].in);
			assert_non_null(why);
		} else {
			if (rc != LV_OK || v != (cases[i].want == 1))
				fail_msg("\"%s\": rc %d v %d", cases[i].in, rc, v);
		}
	}
}

static void test_hostport(void **state)
{
	(void)state;
	/* LV_HOST_MAX includes the NUL: 256 bytes of host do not fit. DNS
	 * bounds a name to 253 characters and a label to 63 (RFC 1035). */
	char longhost[300], maxhost[300], maxname[256], over253[300], label64[80];
	memset(longhost, 'a', 256);
	strcpy(longhost + 256, ":80");
	memset(maxname, 'a', 253);
	for (int i = 63; i < 253; i += 64)
		maxname[i] = '.';
	maxname[253] = '\0';
	snprintf(maxhost, sizeof(maxhost), "%s:80", maxname);
	snprintf(over253, sizeof(over253), "x.%s:80", maxname); /* 255: fits, too long for DNS */
	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".svc:80");

	const struct {
		const char *in;
		const char *host; /* NULL: must fail */
		unsigned port;
	} cases[] = {
		{"127.0.0.1:8080", "127.0.0.1", 8080},
		{"0.0.0.0:15001", "0.0.0.0", 15001},
		{"localhost:1", "localhost", 1},
		{"svc.ns.svc.cluster.local:65535", "svc.ns.svc.cluster.local", 65535},
		{"my_host-1:80", "my_host-1", 80},
		{"example.com.:443", "example.com.", 443},
		{"[::1]:80", "::1", 80},
		{"[::]:15001", "::", 15001},
		{"[2001:db8::1]:8443", "2001:db8::1", 8443},
		{"[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80},
		{maxhost, maxname, 80},
		{"", NULL, 0},
		{"127.0.0.1", NULL, 0},
		{":80", NULL, 0},
		{"host:", NULL, 0},
		{"host:0", NULL, 0},
		{"host:65536", NULL, 0},
		{"host:-1", NULL, 0},
		{"host:8o", NULL, 0},
		{"host:+80", NULL, 0},
		{"host: 80", NULL, 0},
		{"::1:80", NULL, 0},
		{"[::1]80", NULL, 0},
		{"[::1]", NULL, 0},
		{"[::1", NULL, 0},
		{"[]:80", NULL, 0},
		{"[zz::1]:80", NULL, 0},
		{"[127.0.0.1]:80", NULL, 0},
		{"999.1.1.1:80", NULL, 0},
		{"1.2.3:80", NULL, 0},
		{"ho st:80", NULL, 0},
		{"-host:80", NULL, 0},
		{".host:80", NULL, 0},
		{"a..b:80", NULL, 0},
		{"host/x:80", NULL, 0},
		{"http://host:80", NULL, 0},
		{longhost, NULL, 0},
		{over253, NULL, 0},
		{label64, NULL, 0},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct lv_hostport hp = {.host = "untouched", .port = 9};
		const char *why = NULL;
		int rc = value_hostport(cases[i].in, &hp, &why);
		if (cases[i].host != NULL) {
			if (rc != LV_OK)
				fail_msg("\"%s\": %s", cases[i].in, why);
			assert_string_equal(hp.host, cases[i].host);
			assert_int_equal(hp.port, cases[i].port);
		} else {
			if (rc != LV_ERR)
				fail_msg("\"%s\": accepted as %s port %u", cases[i].in, hp.host, hp.port);
			assert_non_null(why);
			assert_string_equal(hp.host, "untouched");
			assert_int_equal(hp.port, 9);
		}
	}
}

static void test_expand_env(void **state)
{
	(void)state;
	setenv("LV_T_A", "alpha", 1);
	setenv("LV_T_EMPTY", "", 1);
	setenv("LV_T_REF", "${LV_T_A}", 1);
	unsetenv("LV_T_UNSET");

	static const struct {
		const char *in;
		const char *want; /* NULL: must fail */
		const char *why_has;
	} cases[] = {
		{"", "", NULL},
		{"plain", "plain", NULL},
		{"${LV_T_A}", "alpha", NULL},
		{"x${LV_T_A}y${LV_T_A}", "xalphayalpha", NULL},
		{"${LV_T_UNSET:-dflt}", "dflt", NULL},
		{"${LV_T_UNSET:-}", "", NULL},
		{"${LV_T_UNSET:-a b:c}", "a b:c", NULL},
		{"${LV_T_UNSET:-$}", "$", NULL},            /* a default is literal */
		{"${LV_T_EMPTY:-dflt}", "dflt", NULL},      /* ":-" also covers "" */
		{"${LV_T_EMPTY}", "", NULL},
		{"${LV_T_A:-dflt}", "alpha", NULL},
		{"${LV_T_REF}", "${LV_T_A}", NULL},         /* no second expansion */
		{"$$", "$", NULL},
		{"a$$b", "a$b", NULL},
		{"$${LV_T_A}", "${LV_T_A}", NULL},
		{"$$${LV_T_A}", "$alpha", NULL},
		{"$$$${LV_T_A}", "$${LV_T_A}", NULL},
		{"{LV_T_A}", "{LV_T_A}", NULL},
		{"${LV_T_UNSET}", NULL, "LV_T_UNSET"},
		{"x${LV_T_UNSET}y", NULL, "LV_T_UNSET is not set"},
		{"${", NULL, "unterminated"},
		{"${LV_T_A", NULL, "unterminated"},
		{"${LV_T_A:-x", NULL, "unterminated"},
		{"$x", NULL, "$$"},
		{"$", NULL, "$$"},
		{"a$", NULL, "$$"},
		{"$LV_T_A", NULL, "$$"},
		{"${}", NULL, "empty"},
		{"${1A}", NULL, "letters"},
		{"${A-B}", NULL, "${NAME:-default}"},
		{"${A B}", NULL, "${NAME:-default}"},
		{"${A:=b}", NULL, "${NAME:-default}"},
	};
	for (size_t i = 0; i < N(cases); i++) {
		char out[64];
		const char *why = NULL;
		int rc = value_expand_env(cases[i].in, out, sizeof(out), &why);
		if (cases[i].want != NULL) {
			if (rc != LV_OK)
				fail_msg("\"%s\": %s", cases[i].in, why);
			assert_string_equal(out, cases[i].want);
		} else {
			if (rc != LV_ERR)
				fail_msg("\"%s\": accepted as \"%s\"", cases[i].in, out);
			assert_non_null(why);
			if (strstr(why, cases[i].why_has) == NULL)
				fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", cases[i].in, why, cases[i].why_has);
		}
	}

	/* The output buffer bound: exact fit, one byte short, and empty. */
	char small[6];
	const char *why;
	assert_int_equal(value_expand_env("${LV_T_A}", small, 6, &why), LV_OK);
	assert_string_equal(small, "alpha");
	assert_int_equal(value_expand_env("${LV_T_A}", small, 5, &why), LV_ERR);
	assert_int_equal(value_expand_env("abcdef", small, 6, &why), LV_ERR);
	assert_int_equal(value_expand_env("abcde", small, 6, &why), LV_OK);
	assert_int_equal(value_expand_env("", small, 0, &why), LV_ERR);

	/* A very long variable name is refused, not truncated. */
	char longname[300] = "${";
	memset(longname + 2, 'A', 200);
	strcpy(longname + 202, "}");
	assert_int_equal(value_expand_env(longname, small, sizeof(small), &why), LV_ERR);
}

static void test_method_bit(void **state)
{
	(void)state;
	static const struct {
		const char *m;
		unsigned bit;
	} cases[] = {
		{"GET", LV_M_GET},         {"HEAD", LV_M_HEAD},       {"POST", LV_M_POST},
		{"PUT", LV_M_PUT},         {"PATCH", LV_M_PATCH},     {"DELETE", LV_M_DELETE},
		{"OPTIONS", LV_M_OPTIONS}, {"TRACE", LV_M_TRACE},     {"CONNECT", LV_M_OTHER},
		{"get", LV_M_OTHER},       {"GETS", LV_M_OTHER},      {"", LV_M_OTHER},
		{"PROPFIND", LV_M_OTHER},
	};
	for (size_t i = 0; i < N(cases); i++)
		assert_int_equal(policy_method_bit(cases[i].m, strlen(cases[i].m)), cases[i].bit);
	/* Length, not NUL, ends the token. */
	assert_int_equal(policy_method_bit("GETX", 3), LV_M_GET);
	assert_int_equal(LV_M_ANY & LV_M_OTHER, LV_M_OTHER);
	/* RFC 9110 §9.2.1: GET, HEAD, OPTIONS and TRACE are safe; every other
	 * method is a write, one levee does not name (PROPFIND, M-SEARCH)
	 * included; the safe ones and the unsafe ones are all methods */
	static const struct {
		const char *m;
		bool unsafe;
	} writes[] = {
		{"GET", false},    {"HEAD", false},    {"OPTIONS", false}, {"TRACE", false},   {"POST", true},
		{"PUT", true},     {"PATCH", true},    {"DELETE", true},   {"PROPFIND", true}, {"M-SEARCH", true},
		{"PURGE", true},   {"MKCOL", true},    {"get", true},
	};
	for (size_t i = 0; i < N(writes); i++)
		assert_int_equal((policy_method_bit(writes[i].m, strlen(writes[i].m)) & LV_M_UNSAFE) != 0,
		                 writes[i].unsafe);
	assert_int_equal(LV_M_SAFE | LV_M_UNSAFE, LV_M_ANY);
	assert_int_equal(LV_M_SAFE & LV_M_UNSAFE, 0);
}

static void test_diag(void **state)
{
	(void)state;
	struct lv_diag d = {0};
	for (int i = 0; i < 20; i++)
		diag_add(&d, "line %d: %s", i, "x");
	assert_int_equal(d.n, 20);
	assert_string_equal(d.lines[0], "line 0: x");
	assert_string_equal(d.lines[19], "line 19: x");
	diag_free(&d);
	assert_int_equal(d.n, 0);
	assert_null(d.lines);
	diag_free(&d); /* twice is harmless */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),   cmocka_unit_test(test_size),
		cmocka_unit_test(test_uint),       cmocka_unit_test(test_percent),
		cmocka_unit_test(test_bool),       cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_expand_env), cmocka_unit_test(test_method_bit),
		cmocka_unit_test(test_diag),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
