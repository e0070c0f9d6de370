/* test_range.c - the Range parser and If-Range (proxy/http/range.c): a table
 * of Range values against representations of several lengths (every form,
 * whitespace, leading zeros, numbers past 64 bits, a > b, several ranges,
 * other units, malformed values), then a table of If-Range values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "cache/freshness.h"
#include "http/range.h"

#define BIG "99999999999999999999999999999999"

static const char *rc_name(enum range_rc rc)
{
	static const char *names[] = {"ok", "unsatisfiable", "multiple", "other-unit", "invalid"};
	return names[rc];
}

static void test_range_table(void **state)
{
	static const struct {
		const char *v;
		uint64_t len;
		enum range_rc rc;
		uint64_t first, last;
	} cases[] = {
	    /* int-range */
	    {"bytes=0-0", 100, RANGE_OK, 0, 0},
	    {"bytes=0-99", 100, RANGE_OK, 0, 99},
	    {"bytes=10-19", 100, RANGE_OK, 10, 19},
	    {"bytes=99-99", 100, RANGE_OK, 99, 99},
	    {"bytes=50-1000", 100, RANGE_OK, 50, 99}, /* last-pos past the end: to the end */
	    {"bytes=50-", 100, RANGE_OK, 50, 99},
	    {"bytes=0-", 100, RANGE_OK, 0, 99},
	    {"bytes=100-", 100, RANGE_UNSATISFIABLE, 0, 0},
	    {"bytes=100-200", 100, RANGE_UNSATISFIABLE, 0, 0},
	    {"bytes=0-0", 0, RANGE_UNSATISFIABLE, 0, 0}, /* nothing to select */
	    {"bytes=0-", 0, RANGE_UNSATISFIABLE, 0, 0},
	    {"bytes=20-10", 100, RANGE_INVALID, 0, 0}, /* a > b: invalid, ignored (§14.1.1) */
	    {"bytes=1-0", 100, RANGE_INVALID, 0, 0},
	    /* suffix-range */
	    {"bytes=-1", 100, RANGE_OK, 99, 99},
	    {"bytes=-10", 100, RANGE_OK, 90, 99},
	    {"bytes=-100", 100, RANGE_OK, 0, 99},
	    {"bytes=-1000", 100, RANGE_OK, 0, 99}, /* longer than it: all of it */
	    {"bytes=-0", 100, RANGE_UNSATISFIABLE, 0, 0},
	    {"bytes=-5", 0, RANGE_UNSATISFIABLE, 0, 0},
	    /* leading zeros, huge numbers (saturating) */
	    {"bytes=000-0009", 100, RANGE_OK, 0, 9},
	    {"bytes=0010-0019", 100, RANGE_OK, 10, 19},
	    {"bytes=-0005", 100, RANGE_OK, 95, 99},
	    {"bytes=-000", 100, RANGE_UNSATISFIABLE, 0, 0},
	    {"bytes=0-" BIG, 100, RANGE_OK, 0, 99},
	    {"bytes=" BIG "-", 100, RANGE_UNSATISFIABLE, 0, 0},
	    {"bytes=" BIG "-" BIG, 100, RANGE_UNSATISFIABLE, 0, 0},
	    {"bytes=-" BIG, 100, RANGE_OK, 0, 99},
	    {"bytes=18446744073709551615-", UINT64_MAX, RANGE_UNSATISFIABLE, 0, 0},
	    {"bytes=18446744073709551614-", UINT64_MAX, RANGE_OK, UINT64_MAX - 1, UINT64_MAX - 1},
	    {"bytes=0-18446744073709551616", 100, RANGE_OK, 0, 99},
	    /* whitespace: around the value and list members only */
	    {"  bytes=0-9  ", 100, RANGE_OK, 0, 9},
	    {"bytes= 0-9", 100, RANGE_OK, 0, 9},
	    {"bytes=0-9 ,", 100, RANGE_OK, 0, 9},
	    {"bytes=,0-9", 100, RANGE_OK, 0, 9}, /* empty members are ignored */
	    {"bytes=0 -9", 100, RANGE_INVALID, 0, 0},
	    {"bytes=0- 9", 100, RANGE_INVALID, 0, 0},
	    {"bytes =0-9", 100, RANGE_INVALID, 0, 0},
	    {"bytes=- 5", 100, RANGE_INVALID, 0, 0},
	    /* the unit is case-insensitive; others are not ours */
	    {"BYTES=0-9", 100, RANGE_OK, 0, 9},
	    {"Bytes=-1", 100, RANGE_OK, 99, 99},
	    {"items=0-9", 100, RANGE_OTHER_UNIT, 0, 0},
	    {"byte=0-9", 100, RANGE_OTHER_UNIT, 0, 0},
	    {"bytesx=0-9", 100, RANGE_OTHER_UNIT, 0, 0},
	    {"by tes=0-9", 100, RANGE_INVALID, 0, 0},
	    /* several ranges: the whole representation */
	    {"bytes=0-9,20-29", 100, RANGE_MULTIPLE, 0, 0},
	    {"bytes=0-9, 20-29", 100, RANGE_MULTIPLE, 0, 0},
	    {"bytes=0-9,0-9", 100, RANGE_MULTIPLE, 0, 0},
	    {"bytes=-1,-2", 100, RANGE_MULTIPLE, 0, 0},
	    {"bytes=200-300,0-1", 100, RANGE_MULTIPLE, 0, 0},
	    {"bytes=0-9,x", 100, RANGE_INVALID, 0, 0}, /* one bad member spoils it */
	    /* malformed */
	    {"", 100, RANGE_INVALID, 0, 0},
	    {"bytes", 100, RANGE_INVALID, 0, 0},
	    {"bytes=", 100, RANGE_INVALID, 0, 0},
	    {"bytes=,", 100, RANGE_INVALID, 0, 0},
	    {"bytes=-", 100, RANGE_INVALID, 0, 0},
	    {"bytes=5", 100, RANGE_INVALID, 0, 0},
	    {"bytes=a-b", 100, RANGE_INVALID, 0, 0},
	    {"bytes=0-9a", 100, RANGE_INVALID, 0, 0},
	    {"bytes=+0-9", 100, RANGE_INVALID, 0, 0},
	    {"bytes=0--9", 100, RANGE_INVALID, 0, 0},
	    {"bytes=--9", 100, RANGE_INVALID, 0, 0},
	    {"bytes=0-9-", 100, RANGE_INVALID, 0, 0},
	    {"=0-9", 100, RANGE_INVALID, 0, 0},
	    {"bytes==0-9", 100, RANGE_INVALID, 0, 0},
	};
	int bad = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t f = 7, l = 7;
		enum range_rc rc = range_parse(cases[i].v, strlen(cases[i].v), cases[i].len, &f, &l);
		bool ok = rc == cases[i].rc && (rc != RANGE_OK || (f == cases[i].first && l == cases[i].last));
		if (!ok) {
			print_error("\"%s\" (len %llu): got %s %llu-%llu, want %s %llu-%llu\n", cases[i].v,
			            (unsigned long long)cases[i].len, rc_name(rc), (unsigned long long)f,
			            (unsigned long long)l, rc_name(cases[i].rc), (unsigned long long)cases[i].first,
			            (unsigned long long)cases[i].last);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* The value is not NUL-terminated where the field ends. */
static void test_range_reads_only_its_bytes(void **state)
{
	uint64_t f, l;
	assert_int_equal(range_parse("bytes=0-9", 8, 100, &f, &l), RANGE_OK); /* "bytes=0-" */
	assert_int_equal(f, 0);
	assert_int_equal(l, 99);
	assert_int_equal(range_parse("bytes=0-9", 7, 100, &f, &l), RANGE_INVALID);
}

#define LM 1700000000
#define LM_DATE "Tue, 14 Nov 2023 22:13:20 GMT"

static void test_if_range_table(void **state)
{
	static const struct {
		const char *v, *etag;
		int64_t lm, date;
		bool ok;
	} cases[] = {
	    {"\"abc\"", "\"abc\"", -1, -1, true},
	    {"  \"abc\"  ", "\"abc\"", -1, -1, true},
	    {"\"abc\"", " \"abc\" ", -1, -1, true},
	    {"\"abc\"", "\"abd\"", -1, -1, false},
	    {"\"abc\"", "", LM, LM + 3600, false},        /* no tag stored */
	    {"W/\"abc\"", "W/\"abc\"", -1, -1, false},    /* weak: never a strong match */
	    {"\"abc\"", "W/\"abc\"", -1, -1, false},
	    {"W/\"abc\"", "\"abc\"", -1, -1, false},
	    {"\"abc", "\"abc", -1, -1, false},            /* not a tag */
	    {"\"", "\"", -1, -1, false},
	    {"", "\"abc\"", LM, LM + 3600, false},
	    /* dates: equal to a strong Last-Modified */
	    {LM_DATE, "", LM, LM + 60, true},
	    {LM_DATE, "\"abc\"", LM, LM + 3600, true},
	    {LM_DATE, "", LM, LM + 59, false},           /* too close to Date: weak */
	    {LM_DATE, "", LM, -1, false},                /* no Date stored */
	    {LM_DATE, "", -1, LM + 3600, false},         /* no Last-Modified */
	    {LM_DATE, "", LM - 1, LM + 3600, false},     /* not equal: changed */
	    {LM_DATE, "", LM + 1, LM + 3600, false},
	    {"not a date", "", LM, LM + 3600, false},
	};
	int bad = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *v = cases[i].v;
		int64_t vd = http_date_parse(v, strlen(v));
		bool got = range_if_range(v, strlen(v), vd, cases[i].etag, strlen(cases[i].etag), cases[i].lm,
		                          cases[i].date);
		if (got != cases[i].ok) {
			print_error("If-Range %s against etag %s lm %lld date %lld: got %d\n", v, cases[i].etag,
			            (long long)cases[i].lm, (long long)cases[i].date, got);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_range_table),
	    cmocka_unit_test(test_range_reads_only_its_bytes),
	    cmocka_unit_test(test_if_range_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
