/*
 * test_status_page.c - the status page's pure parts: ?refresh= values,
 * HTML escaping, and the Content-Security-Policy its style sheet's hash
 * goes into.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "admin/status_page.h"

static void test_refresh(void **state)
{
	(void)state;
	const struct {
		const char *value;
		int rc;
		unsigned secs;
	} cases[] = {
		{NULL, LV_OK, STATUS_PAGE_REFRESH_DEFAULT},
		{"1", LV_OK, 1},
		{"30", LV_OK, 30},
		{"3600", LV_OK, 3600},
		{"0003", LV_OK, 3},
		{"0", LV_ERR, 0},
		{"3601", LV_ERR, 0},
		{"", LV_ERR, 0},
		{"-1", LV_ERR, 0},
		{"+5", LV_ERR, 0},
		{"1.5", LV_ERR, 0},
		{"5s", LV_ERR, 0},
		{" 5", LV_ERR, 0},
		{"18446744073709551621", LV_ERR, 0}, /* 2^64 + 5: no wrap-around to 5 */
		{"99999999999999999999999999", LV_ERR, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned secs = 12345;
		const char *why = NULL;
		int rc = status_page_refresh(cases[i].value, &secs, &why);
		assert_int_equal(rc, cases[i].rc);
		if (rc == LV_OK)
			assert_int_equal(secs, cases[i].secs);
		else
			assert_non_null(why);
	}
}

static char *escaped(const char *s, size_t max)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	html_escape(f, s, max);
	fclose(f);
	return buf;
}

static void test_escape(void **state)
{
	(void)state;
	const struct {
		const char *in;
		size_t max;
		const char *out;
	} cases[] = {
		{"plain-name_1.2", 64, "plain-name_1.2"},
		{"<script>alert('x')</script>", 64, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"},
		{"a & b \"c\"", 64, "a &amp; b &quot;c&quot;"},
		{"&amp;", 64, "&amp;amp;"}, /* escaped again: the page never trusts its input */
		{"bell\a\x1b[31m\x7f", 64, "bell\xef\xbf\xbd\xef\xbf\xbd[31m\xef\xbf\xbd"},
		{"two\nlines\tand tab", 64, "two\nlines\tand tab"},
		{"caf\xc3\xa9", 64, "caf\xc3\xa9"},   /* UTF-8 passes */
		{"<<<<", 2, "&lt;&lt;"},              /* bounded by max */
		{"", 64, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = escaped(cases[i].in, cases[i].max);
		assert_string_equal(got, cases[i].out);
		free(got);
	}
}

static void test_headers(void **state)
{
	(void)state;
	status_page_init();
	const char *h = status_page_headers();
	const char *pre = "Content-Security-Policy: default-src 'none'; style-src 'sha256-";
	assert_memory_equal(h, pre, strlen(pre));
	/* 32 bytes in base64: 43 characters and one '=' */
	const char *b64 = h + strlen(pre);
	size_t n = strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
	assert_int_equal(n, 43);
	assert_memory_equal(b64 + n, "='; ", 4);
	assert_null(strstr(h, "unsafe"));
	assert_non_null(strstr(h, "frame-ancestors 'none'"));
	assert_non_null(strstr(h, "\r\nX-Content-Type-Options: nosniff\r\n"));
	assert_int_equal(h[strlen(h) - 1], '\n');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refresh),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
