/*
 * test_accesslog.c - the access log line: escaping, field choice, both
 * formats, bounds and their marks, and the cache outcome read from a
 * Cache-Status. Hostile values get every byte there is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "accesslog.h"

static size_t esc(char *out, size_t cap, const char *s, enum lv_alog_format fmt, bool quoted, bool *cut)
{
	size_t n = alog_escape(out, cap, s, strlen(s), fmt, quoted, cut);
	out[n] = '\0';
	return n;
}

static void test_escape(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		enum lv_alog_format fmt;
		bool quoted;
		const char *out;
	} cases[] = {
	    {"plain/text-1.0", LV_ALOG_JSON, true, "plain/text-1.0"},
	    {"a \"b\" \\c", LV_ALOG_JSON, true, "a \\\"b\\\" \\\\c"},
	    {"line\r\nX-Forged: 1", LV_ALOG_JSON, true, "line\\u000d\\u000aX-Forged: 1"},
	    {"\x01\x1f\x7f\xc3\xa9", LV_ALOG_JSON, true, "\\u0001\\u001f\\u007f\\u00c3\\u00a9"},
	    {"tab\there", LV_ALOG_JSON, true, "tab\\u0009here"},
	    {"a \"b\" \\c", LV_ALOG_TEXT, true, "a \\\"b\\\" \\\\c"},
	    {"line\r\n\x7f\xff", LV_ALOG_TEXT, true, "line\\x0d\\x0a\\x7f\\xff"},
	    /* outside quotes a blank or a quote would end or open a value */
	    {"a b\"c", LV_ALOG_TEXT, false, "a\\x20b\\x22c"},
	    {"", LV_ALOG_TEXT, true, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];
		bool cut = true;
		esc(out, sizeof(out) - 1, cases[i].in, cases[i].fmt, cases[i].quoted, &cut);
		assert_string_equal(out, cases[i].out);
		assert_false(cut);
	}
}

/* A bound never cuts an escape in two, and says it cut. */
static void test_escape_bound(void **state)
{
	(void)state;
	char out[64];
	bool cut;
	/* "ab" then \u000a (6 bytes): 7 bytes of room take "ab" only */
	assert_int_equal(esc(out, 7, "ab\ncd", LV_ALOG_JSON, true, &cut), 2);
	assert_string_equal(out, "ab");
	assert_true(cut);
	assert_int_equal(esc(out, 8, "ab\ncd", LV_ALOG_JSON, true, &cut), 8);
	assert_string_equal(out, "ab\\u000a");
	assert_true(cut);
	assert_int_equal(esc(out, 10, "ab\ncd", LV_ALOG_JSON, true, &cut), 10);
	assert_false(cut);
	assert_int_equal(esc(out, 3, "a\"", LV_ALOG_TEXT, true, &cut), 3);
	assert_string_equal(out, "a\\\"");
	assert_false(cut);
	assert_int_equal(esc(out, 2, "a\"", LV_ALOG_TEXT, true, &cut), 1);
	assert_true(cut);
}

static struct lv_alog_fields pick(const enum lv_alog_field *f, unsigned n)
{
	struct lv_alog_fields out = {0};
	for (unsigned i = 0; i < n; i++)
		out.f[out.n++] = (uint8_t)f[i];
	return out;
}

static void sample(struct alog_entry *e)
{
	memset(e, 0, sizeof(*e));
	/* 2026-12-02T10:48:35.123Z */
	alog_set_num(e, LV_AF_TIME, ALOG_TIME, 1796208515123456ull);
	alog_set_cstr(e, LV_AF_CLIENT, "127.0.0.1");
	alog_set_cstr(e, LV_AF_METHOD, "GET");
	alog_set_cstr(e, LV_AF_TARGET, "/a b?x=\"1\"");
	alog_set_num(e, LV_AF_STATUS, ALOG_UINT, 200);
	alog_set_num(e, LV_AF_REQUEST_MS, ALOG_USEC, 12345);
	alog_set_cstr(e, LV_AF_CACHE, "hit");
	alog_set_cstr(e, LV_AF_USER_AGENT, "");
}

static void test_json_line(void **state)
{
	(void)state;
	struct alog_entry e;
	sample(&e);
	static const enum lv_alog_field f[] = {LV_AF_TIME, LV_AF_CLIENT, LV_AF_METHOD, LV_AF_TARGET,
	                                       LV_AF_STATUS, LV_AF_REQUEST_MS, LV_AF_UPSTREAM_MS, LV_AF_CACHE,
	                                       LV_AF_ROUTE, LV_AF_USER_AGENT};
	struct lv_alog_fields fs = pick(f, sizeof(f) / sizeof(f[0]));
	char line[ALOG_LINE_MAX];
	size_t n = alog_format(line, &fs, LV_ALOG_JSON, &e);
	const char want[] = "{\"time\":\"2026-12-02T10:48:35.123Z\",\"client\":\"127.0.0.1\",\"method\":\"GET\","
	                    "\"target\":\"/a b?x=\\\"1\\\"\",\"status\":200,\"request_ms\":12.345,"
	                    "\"cache\":\"hit\",\"user_agent\":\"\"}\n";
	assert_int_equal(n, sizeof(want) - 1);
	assert_memory_equal(line, want, n);
}

/* Times to the millisecond, across seconds and back (the date is kept
 * from one line to the next of the same second). */
static void test_time(void **state)
{
	(void)state;
	static const struct {
		uint64_t us;
		const char *text;
	} cases[] = {
	    {0, "1970-01-01T00:00:00.000Z"},
	    {1796208515123456ull, "2026-12-02T10:48:35.123Z"},
	    {1796208515999999ull, "2026-12-02T10:48:35.999Z"},
	    {1796208516000999ull, "2026-12-02T10:48:36.000Z"},
	    {1796208515000000ull, "2026-12-02T10:48:35.000Z"},
	    {951782400042000ull, "2000-02-29T00:00:00.042Z"},
	};
	static const enum lv_alog_field f[] = {LV_AF_TIME};
	struct lv_alog_fields fs = pick(f, 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct alog_entry e;
		memset(&e, 0, sizeof(e));
		alog_set_num(&e, LV_AF_TIME, ALOG_TIME, cases[i].us);
		char line[ALOG_LINE_MAX];
		size_t n = alog_format(line, &fs, LV_ALOG_TEXT, &e);
		line[n] = '\0';
		char want[64];
		snprintf(want, sizeof(want), "%s\n", cases[i].text);
		assert_string_equal(line, want);
	}
}

/* Nothing but absent fields: an empty object, and a row of dashes. */
static void test_all_absent(void **state)
{
	(void)state;
	struct alog_entry e;
	memset(&e, 0, sizeof(e));
	static const enum lv_alog_field f[] = {LV_AF_ROUTE, LV_AF_TIER, LV_AF_HOST};
	struct lv_alog_fields fs = pick(f, 3);
	char line[ALOG_LINE_MAX];
	size_t n = alog_format(line, &fs, LV_ALOG_JSON, &e);
	assert_int_equal(n, 3);
	assert_memory_equal(line, "{}\n", 3);
	n = alog_format(line, &fs, LV_ALOG_TEXT, &e);
	assert_int_equal(n, 6);
	assert_memory_equal(line, "- - -\n", 6);
}

/* The fields chosen, in the order chosen: the same entry, another line. */
static void test_text_line(void **state)
{
	(void)state;
	struct alog_entry e;
	sample(&e);
	static const enum lv_alog_field f[] = {LV_AF_STATUS, LV_AF_TARGET, LV_AF_CLIENT, LV_AF_ROUTE,
	                                       LV_AF_HOST, LV_AF_METHOD, LV_AF_USER_AGENT, LV_AF_TIME};
	struct lv_alog_fields fs = pick(f, sizeof(f) / sizeof(f[0]));
	char line[ALOG_LINE_MAX];
	size_t n = alog_format(line, &fs, LV_ALOG_TEXT, &e);
	const char want[] = "200 \"/a b?x=\\\"1\\\"\" 127.0.0.1 - - GET \"\" 2026-12-02T10:48:35.123Z\n";
	assert_int_equal(n, sizeof(want) - 1);
	assert_memory_equal(line, want, n);
}

/* Every string field at many times its bound, of every byte there is: the
 * line stays one line of printable ASCII within ALOG_LINE_MAX, and says
 * which fields were cut. */
static void test_hostile(void **state)
{
	(void)state;
	static char big[20000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i % 256);
	for (int fmt = LV_ALOG_JSON; fmt <= LV_ALOG_TEXT; fmt++) {
		struct alog_entry e;
		memset(&e, 0, sizeof(e));
		struct lv_alog_fields all = {0};
		for (unsigned f = 0; f < LV_AF__COUNT; f++) {
			all.f[all.n++] = (uint8_t)f;
			alog_set_str(&e, (enum lv_alog_field)f, big, sizeof(big));
		}
		alog_set_num(&e, LV_AF_STATUS, ALOG_UINT, 503);
		char line[ALOG_LINE_MAX + 1];
		memset(line, 'X', sizeof(line));
		size_t n = alog_format(line, &all, (enum lv_alog_format)fmt, &e);
		assert_true(n <= ALOG_LINE_MAX);
		assert_int_equal(line[ALOG_LINE_MAX], 'X');
		assert_int_equal(line[n - 1], '\n');
		for (size_t i = 0; i + 1 < n; i++)
			assert_true(line[i] >= ' ' && line[i] < 0x7f);
		line[n] = '\0'; /* a line is not a string: end it for strstr */
		if (fmt == LV_ALOG_JSON) {
			assert_non_null(strstr(line, ",\"truncated\":[\"time\",\"request_id\""));
			assert_non_null(strstr(line, "\"referer\"]}\n"));
			assert_non_null(strstr(line, "\"status\":503,"));
		} else {
			/* the mark sits after the closing quote, where no client byte can be */
			assert_non_null(strstr(line, "\"... "));
			assert_non_null(strstr(line, " 503 "));
		}
	}
}

/* A value cut to its bound: JSON names it, text marks it. */
static void test_truncated_mark(void **state)
{
	(void)state;
	char ua[3000];
	memset(ua, 'u', sizeof(ua));
	struct alog_entry e;
	memset(&e, 0, sizeof(e));
	alog_set_str(&e, LV_AF_USER_AGENT, ua, sizeof(ua));
	alog_set_cstr(&e, LV_AF_METHOD, "GET");
	static const enum lv_alog_field f[] = {LV_AF_USER_AGENT, LV_AF_METHOD};
	struct lv_alog_fields fs = pick(f, 2);
	char line[ALOG_LINE_MAX];
	size_t n = alog_format(line, &fs, LV_ALOG_JSON, &e);
	size_t max = alog_field_max(LV_AF_USER_AGENT);
	assert_int_equal(n, strlen("{\"user_agent\":\"\",\"method\":\"GET\",\"truncated\":[\"user_agent\"]}\n") + max);
	const char tail[] = "\",\"method\":\"GET\",\"truncated\":[\"user_agent\"]}\n";
	assert_memory_equal(line + n - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	n = alog_format(line, &fs, LV_ALOG_TEXT, &e);
	assert_int_equal(n, 1 + max + 1 + 3 + 1 + 3 + 1);
	assert_memory_equal(line + n - 9, "\"... GET\n", 9);
}

static void test_cache_outcome(void **state)
{
	(void)state;
	static const struct {
		const char *params, *outcome, *layer;
	} cases[] = {
	    {"hit", "hit", "l1"},
	    {"hit; detail=l2", "hit", "l2"},
	    {"hit; ttl=59", "hit", "l1"},
	    {"hit; detail=l2; ttl=-3", "hit", "l2"},
	    {"hit; detail=tier-ttl", "hit", "l1"},
	    {"hit; detail=stale", "stale", "l1"},
	    {"hit; detail=stale-if-error", "stale", "l1"},
	    {"hit; detail=tier-stale", "stale", "l1"},
	    {"hit; detail=fallback", "stale", "l1"},
	    {"fwd=miss", "miss", NULL},
	    {"fwd=miss; stored", "miss", NULL},
	    {"fwd=miss; detail=no-store", "miss", NULL},
	    {"fwd=stale; stored", "expired", NULL},
	    {"fwd=stale; fwd-status=304; stored", "revalidated", "l1"},
	    {"fwd=stale; fwd-status=304; stored; ttl=60", "revalidated", "l1"},
	    {"fwd=stale; fwd-status=304; detail=tier-no-store", "revalidated", "l1"},
	    /* the upstream's 304 to the client's own conditional: not levee's */
	    {"fwd=stale; fwd-status=304; detail=status", "expired", NULL},
	    {"fwd=stale; fwd-status=304; storedx", "expired", NULL},
	    {"fwd=miss; fwd-status=200; collapsed", "miss", NULL},
	    {"fwd=miss; fwd-status=200; collapsed=?0; stored; ttl=60", "miss", NULL},
	    {"fwd=bypass", "bypass", NULL},
	    {"fwd=bypass; detail=outbox-full", "bypass", NULL},
	    {"fwd=request", "bypass", NULL},
	    /* as the header line holds them */
	    {"fwd=bypass\r\n", "bypass", NULL},
	    {"hit; detail=fallback\r\n", "stale", "l1"},
	    {"fwd=stale; fwd-status=304; stored\r\n", "revalidated", "l1"},
	    {"fwd=stale; fwd-status=304\r\n", "expired", NULL},
	    {"", NULL, NULL},
	    {"junk", NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *layer = "x";
		const char *o = alog_cache_outcome(cases[i].params, &layer);
		if (cases[i].outcome)
			assert_string_equal(o, cases[i].outcome);
		else
			assert_null(o);
		if (cases[i].layer)
			assert_string_equal(layer, cases[i].layer);
		else
			assert_null(layer);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),         cmocka_unit_test(test_escape_bound),
	    cmocka_unit_test(test_json_line),      cmocka_unit_test(test_text_line),
	    cmocka_unit_test(test_hostile),        cmocka_unit_test(test_truncated_mark),
	    cmocka_unit_test(test_cache_outcome),  cmocka_unit_test(test_all_absent),
	    cmocka_unit_test(test_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
