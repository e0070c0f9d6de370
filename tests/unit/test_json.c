/*
 * test_json.c - the strict JSON pull reader of proxy/invalidate/json.c.
 *
 * A table of documents, each walked with json_skip() and json_finish(), pins
 * the grammar: every rule json.h states has an accepted and a rejected case,
 * with the byte offset of the error where it matters. Further tables cover
 * string decoding, integers, UTF-8 and depth; the last tests walk a document
 * shaped like librdkafka's statistics, and check that misuse stops the reader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "invalidate/json.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
/* a literal with its length, so that embedded NULs count */
#define T(lit) (lit), sizeof(lit) - 1
#define ANY_OFF SIZE_MAX

/* ---- grammar -------------------------------------------------------------- */

struct doc_case {
	const char *text;
	size_t len;
	bool ok;
	size_t err_off; /* ANY_OFF: not checked */
};

/* Walks the whole document; on error returns the offset through *off. */
static bool walk(const char *text, size_t len, unsigned depth, size_t *off, const char **why)
{
	struct json_reader r;
	json_init(&r, text, len, depth);
	int rc = json_skip(&r);
	if (rc == JSON_OK)
		rc = json_finish(&r);
	*why = json_error(&r, off);
	if ((rc == JSON_OK) != (*why == NULL))
		fail_msg("status %d disagrees with json_error() %s", rc, *why ? *why : "(none)");
	return rc == JSON_OK;
}

static void run_docs(const struct doc_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct doc_case *c = &cases[i];
		/* exactly `len` bytes on the heap, so ASan sees any over-read */
		char *copy = malloc(c->len + 1);
		assert_non_null(copy);
		memcpy(copy, c->text, c->len);
		size_t off = 0;
		const char *why;
		bool ok = walk(copy, c->len, 0, &off, &why);
		if (ok != c->ok)
			fail_msg("case %zu %.*s: got %s (%s at %zu), want %s", i, (int)c->len, c->text,
			         ok ? "ok" : "error", why ? why : "-", off, c->ok ? "ok" : "error");
		if (!ok && c->err_off != ANY_OFF && off != c->err_off)
			fail_msg("case %zu %.*s: error \"%s\" at %zu, want at %zu", i, (int)c->len,
			         c->text, why, off, c->err_off);
		if (!ok)
			assert_true(off <= c->len);
		free(copy);
	}
}

static void test_grammar_accepts(void **state)
{
	(void)state;
	static const struct doc_case cases[] = {
		{T("0"), true, 0},
		{T("-0"), true, 0},
		{T("-0.0e-0"), true, 0},
		{T("1.5e10"), true, 0},
		{T("-1E-2"), true, 0},
		{T("[1e+5,0.0,123456789012345678901234567890]"), true, 0},
		{T("\"x\""), true, 0},
		{T("\"\""), true, 0},
		{T("true"), true, 0},
		{T("false"), true, 0},
		{T("null"), true, 0},
		{T("[]"), true, 0},
		{T("{}"), true, 0},
		{T(" \t\r\n{ \"a\" : [ 1 , 2 ] } \n"), true, 0},
		{T("{\"a\":{\"b\":{\"c\":[]}}}"), true, 0},
		{T("[[],[[]],{},[{}]]"), true, 0},
		{T("{\"\":0}"), true, 0},
		{T("{\"a\":1,\"a\":2}"), true, 0}, /* duplicate names are JSON; message.c rejects */
		{T("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""), true, 0},
		{T("\"\\u0000\""), true, 0},
		{T("\"\\ud83d\\ude00\""), true, 0},
		{T("\"\\uD83D\\uDE00\""), true, 0},
		{T("\"\\uffff\\u00e9\\u20AC\""), true, 0},
		{T("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\""), true, 0},
		{T("\"\x7f\""), true, 0}, /* DEL is not a JSON control character */
		{T("[true,false,null,\"s\",{\"k\":[1,{\"x\":null}]}]"), true, 0},
	};
	run_docs(cases, N(cases));
}

static void test_grammar_rejects(void **state)
{
	(void)state;
	static const struct doc_case cases[] = {
		/* nothing, or nothing but whitespace */
		{T(""), false, 0},
		{T("  \n"), false, 3},
		/* trailing commas and missing items */
		{T("[1,]"), false, 3},
		{T("{\"a\":1,}"), false, 7},
		{T("[1,2,]"), false, 5},
		{T("[,1]"), false, 1},
		{T("{,}"), false, 1},
		{T("[1,,2]"), false, 3},
		/* leading zeros and other number shapes */
		{T("01"), false, 1},
		{T("-01"), false, 2},
		{T("[00]"), false, 2},
		{T("+1"), false, 0},
		{T(".5"), false, 0},
		{T("1."), false, 2},
		{T("1.e5"), false, 2},
		{T("1e"), false, 2},
		{T("1e+"), false, 3},
		{T("-"), false, 1},
		{T("[--1]"), false, 2},
		{T("[1e5.5]"), false, 4},
		{T("0x1F"), false, 1},
		{T("NaN"), false, 0},
		{T("Infinity"), false, 0},
		{T("-Infinity"), false, 1},
		{T("[nan]"), false, 1},
		/* comments */
		{T("/*c*/1"), false, 0},
		{T("1 // c"), false, 2},
		{T("# c\n1"), false, 0},
		{T("[1/*c*/]"), false, 2},
		/* single quotes, bare names */
		{T("'a'"), false, 0},
		{T("{'a':1}"), false, 1},
		{T("{a:1}"), false, 1},
		/* control characters inside strings */
		{T("\"a\tb\""), false, 2},
		{T("\"\x01\""), false, 1},
		{T("\"\x1f\""), false, 1},
		{T("\"a\nb\""), false, 2},
		{T("\"\0\""), false, 1},
		/* invalid UTF-8 inside strings */
		{T("\"\xff\""), false, 1},
		{T("\"\x80\""), false, 1},
		{T("\"\xc0\x80\""), false, 1},       /* overlong NUL */
		{T("\"\xc1\xbf\""), false, 1},       /* overlong */
		{T("\"\xe0\x80\xaf\""), false, 1},   /* overlong '/' */
		{T("\"\xed\xa0\x80\""), false, 1},   /* encoded surrogate */
		{T("\"\xf0\x80\x80\xaf\""), false, 1},
		{T("\"\xf4\x90\x80\x80\""), false, 1}, /* past U+10FFFF */
		{T("\"\xf5\x80\x80\x80\""), false, 1},
		{T("\"\xe2\x82\""), false, 1},       /* truncated by the quote */
		{T("\"ab\xc3"), false, 3},           /* truncated by the end */
		{T("{\"\xff\":1}"), false, 2},       /* in a member name too */
		/* escapes */
		{T("\"\\x\""), false, 1},
		{T("\"\\'\""), false, 1},
		{T("\"\\U0041\""), false, 1},
		{T("\"\\u12\""), false, 1},
		{T("\"\\u12G4\""), false, 1},
		{T("\"\\"), false, 2},
		{T("\"\\ud800\""), false, 1},        /* lone high */
		{T("\"\\udc00\""), false, 1},        /* lone low */
		{T("\"\\ud800\\u0041\""), false, 1}, /* high, then not a low */
		{T("\"\\ud800\\ud800\""), false, 1},
		{T("\"\\ud800x\""), false, 1},
		{T("\"x\\ud83d"), false, 2},
		/* structure */
		{T("[1 2]"), false, 3},
		{T("{\"a\" 1}"), false, 5},
		{T("{\"a\":1 \"b\":2}"), false, 7},
		{T("{\"a\"}"), false, 4},
		{T("{1:2}"), false, 1},
		{T("[1]]"), false, 3},
		{T("{\"a\":1}}"), false, 7},
		{T("{}{}"), false, 2},
		{T("1 2"), false, 2},
		{T("[1"), false, 2},
		{T("{\"a\":"), false, 5},
		{T("{\"a\""), false, 4},
		{T("\"abc"), false, 4},
		{T("[\"a\"\0]"), false, 4},
		/* literals */
		{T("tru"), false, 0},
		{T("True"), false, 0},
		{T("nul"), false, 0},
		{T("nulll"), false, 4},
		{T("truex"), false, 4},
		{T("[fals]"), false, 1},
		/* whitespace JSON does not know, and a byte-order mark */
		{T("\f1"), false, 0},
		{T("\v1"), false, 0},
		{T("\xc2\xa0""1"), false, 0},
		{T("\xef\xbb\xbf{}"), false, 0},
	};
	run_docs(cases, N(cases));
}

/* Every prefix of a valid document is an error, and never an over-read. */
static void test_every_truncation(void **state)
{
	(void)state;
	static const char doc[] =
	        "{\"a\":[1,-2.5e3,true,false,null,\"s\\u00e9\\ud83d\\ude00\xc3\xa9\"],\"b\":{}}";
	for (size_t n = 0; n < sizeof(doc) - 1; n++) {
		char *copy = malloc(n + 1);
		assert_non_null(copy);
		memcpy(copy, doc, n);
		size_t off;
		const char *why;
		if (walk(copy, n, 0, &off, &why))
			fail_msg("prefix of %zu bytes accepted", n);
		free(copy);
	}
	size_t off;
	const char *why;
	assert_true(walk(doc, sizeof(doc) - 1, 0, &off, &why));
}

/* ---- strings -------------------------------------------------------------- */

struct str_case {
	const char *json;
	size_t json_len;
	const char *want; /* decoded bytes */
	size_t want_len;
	bool nul;
};

static void test_read_string(void **state)
{
	(void)state;
	static const struct str_case cases[] = {
		{T("\"\""), T(""), false},
		{T("\"plain\""), T("plain"), false},
		{T("\"a\\\"b\\\\c\\/d\""), T("a\"b\\c/d"), false},
		{T("\"\\b\\f\\n\\r\\t\""), T("\b\f\n\r\t"), false},
		{T("\"\\u0041\\u00e9\\u20ac\\uFFFF\""), T("A\xc3\xa9\xe2\x82\xac\xef\xbf\xbf"), false},
		{T("\"\\u007f\\u0080\\u07ff\\u0800\""), T("\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80"), false},
		{T("\"\\ud83d\\ude00\""), T("\xf0\x9f\x98\x80"), false},
		{T("\"\\ud800\\udc00\""), T("\xf0\x90\x80\x80"), false},
		{T("\"\\udbff\\udfff\""), T("\xf4\x8f\xbf\xbf"), false},
		{T("\"x\\u0000y\""), T("x\0y"), true},
		{T("\"\\u0000\""), T("\0"), true},
		{T("\"\xf0\x9f\x98\x80 raw\""), T("\xf0\x9f\x98\x80 raw"), false},
		{T("\" ab\\n\xc3\xa9\\u0020 \""), T(" ab\n\xc3\xa9  "), false},
	};
	for (size_t i = 0; i < N(cases); i++) {
		const struct str_case *c = &cases[i];
		struct json_reader r;
		char out[64];
		size_t len = 99;
		bool nul = !c->nul;
		json_init(&r, c->json, c->json_len, 0);
		assert_int_equal(json_peek(&r), JSON_STRING);
		int rc = json_read_string(&r, out, sizeof(out), &len, &nul);
		if (rc != JSON_OK)
			fail_msg("case %zu: %d %s", i, rc, json_error(&r, NULL));
		assert_int_equal(len, c->want_len);
		assert_memory_equal(out, c->want, len);
		assert_int_equal(out[len], '\0');
		assert_int_equal(nul, c->nul);
		assert_int_equal(json_finish(&r), JSON_OK);

		/* the exact capacity (length + NUL) fits; one less is ERANGE and
		 * the reader goes on */
		json_init(&r, c->json, c->json_len, 0);
		assert_int_equal(json_read_string(&r, out, c->want_len + 1, &len, &nul), JSON_OK);
		json_init(&r, c->json, c->json_len, 0);
		assert_int_equal(json_read_string(&r, out, c->want_len, &len, &nul), JSON_ERANGE);
		assert_null(json_error(&r, NULL));
		assert_int_equal(json_finish(&r), JSON_OK);

		/* without `nul`, U+0000 is refused */
		json_init(&r, c->json, c->json_len, 0);
		assert_int_equal(json_read_string(&r, out, sizeof(out), &len, NULL),
		                 c->nul ? JSON_ERANGE : JSON_OK);
		assert_int_equal(json_finish(&r), JSON_OK);
	}
}

/* ---- integers ------------------------------------------------------------- */

struct int_case {
	const char *json;
	int rc;
	int64_t want;
};

static void test_read_int64(void **state)
{
	(void)state;
	static const struct int_case cases[] = {
		{"0", JSON_OK, 0},
		{"-0", JSON_OK, 0},
		{"7", JSON_OK, 7},
		{"-1", JSON_OK, -1},
		{"1764200000123", JSON_OK, 1764200000123},
		{"9223372036854775807", JSON_OK, INT64_MAX},
		{"-9223372036854775808", JSON_OK, INT64_MIN},
		{"9223372036854775808", JSON_ERANGE, 0},
		{"-9223372036854775809", JSON_ERANGE, 0},
		{"18446744073709551616", JSON_ERANGE, 0},
		{"99999999999999999999999999999999", JSON_ERANGE, 0},
		{"1.0", JSON_ERANGE, 0},
		{"1e2", JSON_ERANGE, 0},
		{"1E+2", JSON_ERANGE, 0},
		{"-1.5e-3", JSON_ERANGE, 0},
		{"0.5", JSON_ERANGE, 0},
		{"01", JSON_ERR, 0},
		{"-", JSON_ERR, 0},
		{"1.", JSON_ERR, 0},
		{"+1", JSON_ERR, 0},
		{"\"1\"", JSON_ERR, 0},
		{"true", JSON_ERR, 0},
		{"null", JSON_ERR, 0},
		{"[1]", JSON_ERR, 0},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct json_reader r;
		int64_t v = 12345;
		json_init(&r, cases[i].json, strlen(cases[i].json), 0);
		int rc = json_read_int64(&r, &v);
		if (rc != cases[i].rc)
			fail_msg("%s: got %d, want %d", cases[i].json, rc, cases[i].rc);
		if (rc == JSON_OK)
			assert_true(v == cases[i].want);
		/* ERANGE consumes the number; ERR stops the reader */
		assert_int_equal(json_finish(&r), rc == JSON_ERR ? JSON_ERR : JSON_OK);
	}
}

static void test_read_bool(void **state)
{
	(void)state;
	struct json_reader r;
	bool b = false;
	static const char doc[] = "[true,false,null,0]";
	json_init(&r, doc, strlen(doc), 0);
	assert_true(json_array_next(&r));
	assert_int_equal(json_read_bool(&r, &b), JSON_OK);
	assert_true(b);
	assert_true(json_array_next(&r));
	assert_int_equal(json_read_bool(&r, &b), JSON_OK);
	assert_false(b);
	assert_true(json_array_next(&r));
	assert_int_equal(json_peek(&r), JSON_NULL);
	assert_int_equal(json_read_bool(&r, &b), JSON_ERR);
	assert_string_equal(json_error(&r, NULL), "expected true or false");
}

/* A value that does not fit the call is skipped, and the walk goes on. */
static void test_erange_continues(void **state)
{
	(void)state;
	static const char doc[] = "[99999999999999999999,1.5,\"toolong\",\"a\\u0000\",\"ok\",7]";
	struct json_reader r;
	int64_t v;
	char buf[4];
	size_t len;
	json_init(&r, doc, strlen(doc), 0);
	assert_true(json_array_next(&r));
	assert_int_equal(json_read_int64(&r, &v), JSON_ERANGE);
	assert_true(json_array_next(&r));
	assert_int_equal(json_read_int64(&r, &v), JSON_ERANGE);
	assert_true(json_array_next(&r));
	assert_int_equal(json_read_string(&r, buf, sizeof(buf), &len, NULL), JSON_ERANGE);
	assert_true(json_array_next(&r));
	assert_int_equal(json_read_string(&r, buf, sizeof(buf), &len, NULL), JSON_ERANGE);
	assert_true(json_array_next(&r));
	assert_int_equal(json_read_string(&r, buf, sizeof(buf), &len, NULL), JSON_OK);
	assert_string_equal(buf, "ok");
	assert_true(json_array_next(&r));
	assert_int_equal(json_read_int64(&r, &v), JSON_OK);
	assert_int_equal(v, 7);
	assert_false(json_array_next(&r));
	assert_int_equal(json_finish(&r), JSON_OK);
}

/* ---- UTF-8 ---------------------------------------------------------------- */

struct utf8_case {
	const char *s;
	size_t avail;
	size_t want;
};

static void test_utf8_len(void **state)
{
	(void)state;
	static const struct utf8_case cases[] = {
		{"", 0, 0},
		{"a", 1, 1},
		{"\x7f", 1, 1},
		{"\xc2\x80", 2, 2},
		{"\xdf\xbf", 2, 2},
		{"\xe0\xa0\x80", 3, 3},
		{"\xed\x9f\xbf", 3, 3},
		{"\xee\x80\x80", 3, 3},
		{"\xef\xbf\xbf", 3, 3},
		{"\xf0\x90\x80\x80", 4, 4},
		{"\xf4\x8f\xbf\xbf", 4, 4},
		{"\x80", 1, 0},
		{"\xbf", 1, 0},
		{"\xc0\x80", 2, 0},
		{"\xc1\xbf", 2, 0},
		{"\xc2", 1, 0},
		{"\xc2\x41", 2, 0},
		{"\xc2\xc0", 2, 0},
		{"\xe0\x9f\xbf", 3, 0},
		{"\xed\xa0\x80", 3, 0},
		{"\xed\xbf\xbf", 3, 0},
		{"\xe1\x80", 2, 0},
		{"\xf0\x8f\xbf\xbf", 4, 0},
		{"\xf4\x90\x80\x80", 4, 0},
		{"\xf5\x80\x80\x80", 4, 0},
		{"\xff", 1, 0},
		{"\xf0\x90\x80", 3, 0},
		{"\xf0\x90\x80\x80", 3, 0}, /* the last byte is past `avail` */
	};
	for (size_t i = 0; i < N(cases); i++) {
		size_t got = json_utf8_len(cases[i].s, cases[i].avail);
		if (got != cases[i].want)
			fail_msg("case %zu: got %zu, want %zu", i, got, cases[i].want);
	}
}

/* ---- depth ---------------------------------------------------------------- */

/* `depth` nested containers, alternating arrays and objects. */
static size_t nest(char *buf, unsigned depth)
{
	size_t n = 0;
	for (unsigned i = 0; i < depth; i++) {
		if (i % 2 == 0) {
			buf[n++] = '[';
		} else {
			memcpy(buf + n, "{\"k\":", 5);
			n += 5;
		}
	}
	buf[n++] = '1';
	for (unsigned i = depth; i-- > 0;)
		buf[n++] = i % 2 == 0 ? ']' : '}';
	return n;
}

struct depth_case {
	unsigned max_depth; /* as given to json_init() */
	unsigned depth;     /* of the document */
	bool ok;
};

static void test_depth(void **state)
{
	(void)state;
	static const struct depth_case cases[] = {
		{1, 1, true},         {1, 2, false},
		{2, 2, true},         {2, 3, false},
		{16, 16, true},       {16, 17, false},
		{0, JSON_DEPTH_DEFAULT, true}, {0, JSON_DEPTH_DEFAULT + 1, false},
		{JSON_DEPTH_MAX, JSON_DEPTH_MAX, true}, {JSON_DEPTH_MAX, JSON_DEPTH_MAX + 1, false},
		{1000, JSON_DEPTH_MAX, true},  {1000, JSON_DEPTH_MAX + 1, false},
		{3, 0, true}, /* a scalar has no depth */
	};
	static char buf[8192];
	for (size_t i = 0; i < N(cases); i++) {
		size_t n = nest(buf, cases[i].depth);
		size_t off;
		const char *why;
		bool ok = walk(buf, n, cases[i].max_depth, &off, &why);
		if (ok != cases[i].ok)
			fail_msg("case %zu: depth %u with max %u: %s", i, cases[i].depth,
			         cases[i].max_depth, why ? why : "accepted");
		if (!ok)
			assert_ptr_equal(why, json_err_depth);
	}
	/* depth goes down again: many siblings at the limit are fine */
	static const char wide[] = "[[1],[2],[[3]],[4]]";
	size_t off;
	const char *why;
	assert_true(walk(wide, strlen(wide), 3, &off, &why));
	assert_false(walk(wide, strlen(wide), 2, &off, &why));
	assert_int_equal(off, 10);
}

/* ---- walking -------------------------------------------------------------- */

/* Shaped like librdkafka's statistics: members in arbitrary order, values
 * of every type to skip, names to match. */
static const char stats[] =
        "{\"name\":\"rdkafka#consumer-1\",\"ts\":123456789,\"time\":1764200000,"
        "\"replyq\":0,\"msg_cnt\":0,\"rtt\":{\"min\":1.5,\"avg\":2e3,\"p99\":null},"
        "\"brokers\":{"
        "\"b1:9092/1\":{\"name\":\"b1:9092/1\",\"nodeid\":1,\"state\":\"UP\",\"rtt\":{\"avg\":120}},"
        "\"b2:9092/2\":{\"state\":\"DOWN\",\"name\":\"b2:9092/2\",\"toppars\":{\"t-0\":{}}}},"
        "\"topics\":{\"levee.invalidations\":{\"topic\":\"levee.invalidations\","
        "\"partitions\":{\"0\":{\"partition\":0,\"consumer_lag\":5},"
        "\"1\":{\"consumer_lag\":-1,\"partition\":1},"
        "\"-1\":{\"partition\":-1,\"consumer_lag\":-1}}}},"
        "\"cgrp\":{\"state\":\"up\",\"rebalance_cnt\":1,\"assignment_size\":2}}";

static void test_walk_stats(void **state)
{
	(void)state;
	struct json_reader r;
	struct json_str name;
	char buf[32];
	size_t len;
	int brokers_up = 0, brokers = 0;
	int64_t lag_sum = 0;
	int partitions = 0;

	json_init(&r, stats, strlen(stats), 0);
	while (json_object_next(&r, &name)) {
		if (json_str_eq(&name, "brokers")) {
			struct json_str broker;
			while (json_object_next(&r, &broker)) {
				brokers++;
				assert_true(json_object_find(&r, "state"));
				assert_int_equal(json_read_string(&r, buf, sizeof(buf), &len, NULL),
				                 JSON_OK);
				brokers_up += strcmp(buf, "UP") == 0;
				/* leave the rest of this broker */
				while (json_object_next(&r, &name))
					assert_int_equal(json_skip(&r), JSON_OK);
			}
		} else if (json_str_eq(&name, "topics")) {
			assert_true(json_object_find(&r, "levee.invalidations"));
			assert_true(json_object_find(&r, "partitions"));
			struct json_str part;
			while (json_object_next(&r, &part)) {
				char pname[8];
				assert_int_equal(json_str_decode(&part, pname, sizeof(pname), &len),
				                 JSON_OK);
				bool real = strcmp(pname, "-1") != 0;
				assert_true(json_object_find(&r, "consumer_lag"));
				int64_t lag;
				assert_int_equal(json_read_int64(&r, &lag), JSON_OK);
				if (real && lag >= 0)
					lag_sum += lag;
				partitions += real;
				assert_false(json_object_find(&r, "no-such-member"));
			}
			assert_false(json_object_find(&r, "nothing-else")); /* the topic */
			assert_false(json_object_find(&r, "nothing-else")); /* topics */
		} else {
			assert_int_equal(json_skip(&r), JSON_OK);
		}
	}
	assert_null(json_error(&r, NULL));
	assert_int_equal(json_finish(&r), JSON_OK);
	assert_int_equal(brokers, 2);
	assert_int_equal(brokers_up, 1);
	assert_int_equal(partitions, 2);
	assert_int_equal(lag_sum, 5);
}

/* json_object_find() validates what it skips. */
static void test_find_skips_strictly(void **state)
{
	(void)state;
	static const char doc[] = "{\"a\":[1,],\"b\":2}";
	struct json_reader r;
	json_init(&r, doc, strlen(doc), 0);
	assert_false(json_object_find(&r, "b"));
	size_t off;
	assert_string_equal(json_error(&r, &off), "trailing comma");
	assert_int_equal(off, 8);
}

static void test_names(void **state)
{
	(void)state;
	static const char doc[] =
	        "{\"v\":1,\"\\u0076\":2,\"a\\\"b\":3,\"ke\":4,\"keyss\":5,\"\":6,\"\\ud83d\\ude00\":7}";
	struct json_reader r;
	struct json_str name;
	json_init(&r, doc, strlen(doc), 0);

	assert_true(json_object_next(&r, &name));
	assert_false(name.escaped);
	assert_true(json_str_eq(&name, "v"));
	assert_false(json_str_eq(&name, "vv"));
	assert_false(json_str_eq(&name, ""));
	assert_int_equal(json_skip(&r), JSON_OK);

	assert_true(json_object_next(&r, &name));
	assert_true(name.escaped);
	assert_true(json_str_eq(&name, "v"));
	assert_false(json_str_eq(&name, "u"));
	assert_false(json_str_eq(&name, "v2"));
	assert_int_equal(json_skip(&r), JSON_OK);

	assert_true(json_object_next(&r, &name));
	assert_true(json_str_eq(&name, "a\"b"));
	assert_false(json_str_eq(&name, "a\\\"b"));
	assert_false(json_str_eq(&name, "a\""));
	char buf[8];
	size_t len;
	assert_int_equal(json_str_decode(&name, buf, sizeof(buf), &len), JSON_OK);
	assert_int_equal(len, 3);
	assert_string_equal(buf, "a\"b");
	assert_int_equal(json_str_decode(&name, buf, 3, &len), JSON_ERANGE);
	assert_int_equal(json_skip(&r), JSON_OK);

	assert_true(json_object_next(&r, &name));
	assert_false(json_str_eq(&name, "key"));
	assert_int_equal(json_skip(&r), JSON_OK);
	assert_true(json_object_next(&r, &name));
	assert_false(json_str_eq(&name, "keys"));
	assert_int_equal(json_skip(&r), JSON_OK);
	assert_true(json_object_next(&r, &name));
	assert_true(json_str_eq(&name, ""));
	assert_int_equal(json_skip(&r), JSON_OK);

	assert_true(json_object_next(&r, &name));
	assert_true(json_str_eq(&name, "\xf0\x9f\x98\x80"));
	assert_false(json_str_eq(&name, "\xf0\x9f\x98"));
	assert_int_equal(json_str_decode(&name, buf, sizeof(buf), &len), JSON_OK);
	assert_int_equal(len, 4);
	assert_int_equal(json_skip(&r), JSON_OK);

	assert_false(json_object_next(&r, &name));
	assert_int_equal(json_finish(&r), JSON_OK);
}

/* Calls that do not fit the position stop the reader, and it stays stopped. */
struct misuse_case {
	const char *doc;
	int steps; /* how many json_array_next()/json_object_next() calls first */
	bool in_object;
	enum { DO_STRING, DO_INT, DO_OBJECT, DO_ARRAY, DO_FINISH, DO_SKIP } what;
	const char *why;
};

static void test_misuse(void **state)
{
	(void)state;
	static const struct misuse_case cases[] = {
		{"[\"a\"]", 0, false, DO_STRING, "expected a string"},
		{"{\"a\":1}", 1, true, DO_STRING, "expected a string"},
		{"[1]", 1, false, DO_OBJECT, "expected an object"},
		{"{\"a\":1}", 0, false, DO_ARRAY, "expected an array"},
		{"\"x\"", 0, false, DO_INT, "expected a number"},
		{"[1]", 0, false, DO_FINISH, "document not read to its end"},
		{"[1]", 1, false, DO_FINISH, "document not read to its end"},
		/* after the top-level value, nothing is expected */
		{"1", -1, false, DO_SKIP, "no value expected here"},
		{"1", -1, false, DO_ARRAY, "not inside an array"},
		{"1", -1, false, DO_OBJECT, "not inside an object"},
		{"1", -1, false, DO_INT, "no value expected here"},
	};
	for (size_t i = 0; i < N(cases); i++) {
		const struct misuse_case *c = &cases[i];
		struct json_reader r;
		struct json_str name;
		char buf[8];
		size_t len;
		int64_t v;
		bool b;
		json_init(&r, c->doc, strlen(c->doc), 0);
		if (c->steps < 0)
			assert_int_equal(json_skip(&r), JSON_OK);
		for (int s = 0; s < c->steps; s++)
			assert_true(c->in_object ? json_object_next(&r, &name) : json_array_next(&r));
		switch (c->what) {
		case DO_STRING:
			if (c->steps == 0) /* inside the array, no element announced */
				assert_true(json_array_next(&r));
			assert_int_equal(json_read_string(&r, buf, sizeof(buf), &len, NULL),
			                 c->steps == 0 ? JSON_OK : JSON_ERR);
			if (c->steps == 0) /* the array now wants ',' or ']' */
				assert_int_equal(json_read_string(&r, buf, sizeof(buf), &len, NULL),
				                 JSON_ERR);
			break;
		case DO_INT:
			assert_int_equal(json_read_int64(&r, &v), JSON_ERR);
			break;
		case DO_OBJECT:
			assert_false(json_object_next(&r, &name));
			break;
		case DO_ARRAY:
			assert_false(json_array_next(&r));
			break;
		case DO_FINISH:
			assert_int_equal(json_finish(&r), JSON_ERR);
			break;
		case DO_SKIP:
			assert_int_equal(json_skip(&r), JSON_ERR);
			break;
		}
		const char *why = json_error(&r, NULL);
		if (c->what == DO_STRING && c->steps == 0) {
			assert_string_equal(why, "no value expected here");
		} else if (why == NULL || strcmp(why, c->why) != 0) {
			fail_msg("case %zu: error %s, want %s", i, why ? why : "(none)", c->why);
		}
		/* sticky */
		assert_int_equal(json_peek(&r), JSON_ERROR);
		assert_false(json_array_next(&r));
		assert_false(json_object_next(&r, &name));
		assert_int_equal(json_read_bool(&r, &b), JSON_ERR);
		assert_int_equal(json_skip(&r), JSON_ERR);
		assert_int_equal(json_finish(&r), JSON_ERR);
		assert_ptr_equal(json_error(&r, NULL), why);
	}
}

static void test_peek(void **state)
{
	(void)state;
	static const char doc[] = " [ {} , [] , \"s\" , -1 , true , false , null ] ";
	static const enum json_kind want[] = {JSON_OBJECT, JSON_ARRAY, JSON_STRING, JSON_NUMBER,
	                                      JSON_TRUE,   JSON_FALSE, JSON_NULL};
	struct json_reader r;
	json_init(&r, doc, strlen(doc), 0);
	assert_int_equal(json_peek(&r), JSON_ARRAY);
	assert_int_equal(json_peek(&r), JSON_ARRAY); /* peeking does not consume */
	size_t i = 0;
	while (json_array_next(&r)) {
		assert_true(i < N(want));
		assert_int_equal(json_peek(&r), want[i]);
		assert_int_equal(json_skip(&r), JSON_OK);
		assert_int_equal(json_peek(&r), JSON_END); /* between elements */
		i++;
	}
	assert_int_equal(i, N(want));
	assert_int_equal(json_peek(&r), JSON_END);
	assert_int_equal(json_finish(&r), JSON_OK);

	json_init(&r, NULL, 0, 0);
	assert_int_equal(json_peek(&r), JSON_ERROR);
	size_t off = 7;
	assert_string_equal(json_error(&r, &off), "unexpected end of input");
	assert_int_equal(off, 0);
}

/* A long document: a few hundred KB of stats-like members. */
static void test_large_document(void **state)
{
	(void)state;
	size_t cap = 1u << 20, n = 0;
	char *buf = malloc(cap);
	assert_non_null(buf);
	n += (size_t)snprintf(buf + n, cap - n, "{\"partitions\":{");
	for (int i = 0; i < 5000; i++)
		n += (size_t)snprintf(buf + n, cap - n,
		                      "%s\"%d\":{\"partition\":%d,\"consumer_lag\":%d,\"x\":[1.5,\"s\"]}",
		                      i ? "," : "", i, i, i % 7);
	n += (size_t)snprintf(buf + n, cap - n, "}}");
	assert_true(n < cap);

	struct json_reader r;
	struct json_str name;
	int64_t sum = 0, count = 0;
	json_init(&r, buf, n, 0);
	assert_true(json_object_find(&r, "partitions"));
	while (json_object_next(&r, &name)) {
		int64_t lag;
		assert_true(json_object_find(&r, "consumer_lag"));
		assert_int_equal(json_read_int64(&r, &lag), JSON_OK);
		sum += lag;
		count++;
		while (json_object_next(&r, &name))
			assert_int_equal(json_skip(&r), JSON_OK);
	}
	assert_false(json_object_next(&r, &name));
	assert_int_equal(json_finish(&r), JSON_OK);
	assert_int_equal(count, 5000);
	assert_int_equal(sum, 14995); /* 714 cycles of 0..6, then 0, 1 */
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grammar_accepts), cmocka_unit_test(test_grammar_rejects),
		cmocka_unit_test(test_every_truncation), cmocka_unit_test(test_read_string),
		cmocka_unit_test(test_read_int64),      cmocka_unit_test(test_read_bool),
		cmocka_unit_test(test_erange_continues), cmocka_unit_test(test_utf8_len),
		cmocka_unit_test(test_depth),           cmocka_unit_test(test_walk_stats),
		cmocka_unit_test(test_find_skips_strictly), cmocka_unit_test(test_names),
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_peek),            cmocka_unit_test(test_large_document),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
