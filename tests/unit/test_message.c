/*
 * test_message.c - the invalidation message codec of
 * proxy/invalidate/message.c.
 *
 * A table of good messages is decoded and compared field by field, then goes
 * through encode and decode again. A table of bad messages pins the status of
 * each rule and its precedence (TOO_BIG, SYNTAX, VERSION, FIELD, LIMIT,
 * EMPTY). Generated messages check every limit exactly at and one past its
 * bound. Decoding always gets a scratch buffer of exactly the input's length,
 * the documented minimum.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "invalidate/message.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers -------------------------------------------------------------- */

static struct inval_msg msg, msg2;

/* Decodes a heap copy of exactly `len` bytes with a scratch buffer of exactly
 * `len` bytes, then wipes the copy: decoded strings must not point into it. */
static int decode_len(const char *text, size_t len, struct inval_msg *m, struct msg_error *err,
                      char **scratch)
{
	char *in = malloc(len > 0 ? len : 1);
	*scratch = malloc(len > 0 ? len : 1);
	assert_non_null(in);
	assert_non_null(*scratch);
	memcpy(in, text, len);
	int rc = msg_decode(in, len, *scratch, len, m, err);
	memset(in, 'X', len);
	free(in);
	assert_non_null(err->detail);
	return rc;
}

static int decode(const char *text, struct inval_msg *m, struct msg_error *err, char **scratch)
{
	return decode_len(text, strlen(text), m, err, scratch);
}

static void assert_str_is(const char *what, struct msg_str got, const char *want)
{
	if (want == NULL) {
		if (got.p != NULL)
			fail_msg("%s: got \"%.*s\", want absent", what, (int)got.len, got.p);
		return;
	}
	if (got.p == NULL || got.len != strlen(want) || memcmp(got.p, want, got.len) != 0)
		fail_msg("%s: got \"%.*s\", want \"%s\"", what, got.p ? (int)got.len : 6,
		         got.p ? got.p : "(null)", want);
	assert_int_equal(got.p[got.len], '\0'); /* decoded strings are C strings */
}

static bool str_same(struct msg_str a, struct msg_str b)
{
	if ((a.p == NULL) != (b.p == NULL) || a.len != b.len)
		return false;
	return a.len == 0 || memcmp(a.p, b.p, a.len) == 0;
}

static void assert_same_msg(const struct inval_msg *a, const struct inval_msg *b)
{
	assert_true(a->version == b->version);
	assert_true(str_same(a->id, b->id));
	assert_true(str_same(a->service, b->service));
	assert_true(str_same(a->origin, b->origin));
	assert_true(a->ts == b->ts);
	assert_int_equal(a->all, b->all);
	assert_int_equal(a->nitems, b->nitems);
	for (size_t i = 0; i < a->nitems; i++) {
		assert_int_equal(a->items[i].kind, b->items[i].kind);
		assert_true(str_same(a->items[i].s, b->items[i].s));
	}
}

/* Encodes `m`, decodes the result, checks it is the same message and that
 * encoding again gives the same bytes. */
static void assert_round_trip(const char *name, const struct inval_msg *m)
{
	static char out[2 * MSG_MAX_BYTES], again[2 * MSG_MAX_BYTES];
	size_t n = msg_encode(m, out, sizeof(out));
	if (n == 0)
		fail_msg("%s: encode refused a decoded message", name);
	struct msg_error err;
	char *scratch;
	int rc = decode_len(out, n, &msg2, &err, &scratch);
	if (rc != MSG_OK)
		fail_msg("%s: re-decode: %s (%s) of %.*s", name, msg_strerror(rc), err.detail, (int)n,
		         out);
	assert_same_msg(m, &msg2);
	assert_int_equal(msg_encode(&msg2, again, sizeof(again)), n);
	assert_memory_equal(out, again, n);
	/* the exact size is enough, one byte less is not */
	assert_int_equal(msg_encode(m, again, n), n);
	assert_int_equal(msg_encode(m, again, n - 1), 0);
	free(scratch);
}

/* A generated text, kept in one big buffer. */
static char gen_buf[4u << 20];
static size_t gen_used;

static const char *gen(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *gen(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = gen_buf + gen_used;
	int n = vsnprintf(p, sizeof(gen_buf) - gen_used, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && gen_used + (size_t)n < sizeof(gen_buf));
	gen_used += (size_t)n + 1;
	return p;
}

/* `n` bytes: `first`, then filler letters. */
static const char *rep(char first, size_t n)
{
	assert_true(gen_used + n + 1 <= sizeof(gen_buf));
	char *p = gen_buf + gen_used;
	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + i % 26);
	if (n > 0)
		p[0] = first;
	p[n] = '\0';
	gen_used += n + 1;
	return p;
}

/* ",\"<member>\":[\"/0\",\"/1\",...]" with `n` items, `prefix` before each number. */
static const char *items(const char *member, const char *prefix, size_t n)
{
	char *p = gen_buf + gen_used;
	size_t cap = sizeof(gen_buf) - gen_used, len = 0;
	len += (size_t)snprintf(p + len, cap - len, ",\"%s\":[", member);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(p + len, cap - len, "%s\"%s%zu\"", i ? "," : "", prefix, i);
	len += (size_t)snprintf(p + len, cap - len, "]");
	assert_true(len < cap);
	gen_used += len + 1;
	return p;
}

#define HEAD "{\"v\":1,\"id\":\"m1\",\"service\":\"demo\""

/* ---- good messages -------------------------------------------------------- */

struct want_item {
	enum msg_item_kind kind;
	const char *s;
};

struct good_case {
	const char *name;
	const char *json;
	const char *id, *service, *origin; /* origin NULL: absent */
	int64_t ts;
	bool all;
	size_t nitems;
	struct want_item items[4];
};

static const struct good_case good_cases[] = {
	{"minimal", HEAD ",\"keys\":[\"/api/users/42\"]}", "m1", "demo", NULL, -1, false, 1,
	 {{MSG_KEY, "/api/users/42"}}},
	{"documented order",
	 "{\"v\":1,\"id\":\"ops-1\",\"service\":\"demo\",\"origin\":\"pod-a\",\"ts\":1764200000123,"
	 "\"keys\":[\"/api/users/42?x=1\"],\"prefixes\":[\"/api/users/\"],\"tags\":[\"user-42\"],"
	 "\"all\":false}",
	 "ops-1", "demo", "pod-a", 1764200000123, false, 3,
	 {{MSG_KEY, "/api/users/42?x=1"}, {MSG_PREFIX, "/api/users/"}, {MSG_TAG, "user-42"}}},
	{"reverse order",
	 "{\"all\":false,\"tags\":[\"user-42\"],\"prefixes\":[\"/api/users/\"],"
	 "\"keys\":[\"/api/users/42?x=1\"],\"ts\":1764200000123,\"origin\":\"pod-a\","
	 "\"service\":\"demo\",\"id\":\"ops-1\",\"v\":1}",
	 "ops-1", "demo", "pod-a", 1764200000123, false, 3,
	 {{MSG_KEY, "/api/users/42?x=1"}, {MSG_PREFIX, "/api/users/"}, {MSG_TAG, "user-42"}}},
	{"kinds grouped, message order kept within a kind",
	 HEAD ",\"tags\":[\"t1\",\"t2\"],\"keys\":[\"/k1\",\"/k2\"]}", "m1", "demo", NULL, -1, false,
	 4, {{MSG_KEY, "/k1"}, {MSG_KEY, "/k2"}, {MSG_TAG, "t1"}, {MSG_TAG, "t2"}}},
	{"all alone", HEAD ",\"all\":true}", "m1", "demo", NULL, -1, true, 0, {{0, NULL}}},
	{"all with items", HEAD ",\"all\":true,\"prefixes\":[\"/\"]}", "m1", "demo", NULL, -1, true,
	 1, {{MSG_PREFIX, "/"}}},
	{"empty arrays beside an item", HEAD ",\"keys\":[],\"prefixes\":[],\"tags\":[\"x\"]}", "m1",
	 "demo", NULL, -1, false, 1, {{MSG_TAG, "x"}}},
	{"unknown members of every kind",
	 "{\"x-trace\":{\"a\":[1,2.5e3,{\"b\":[null,true,false,\"s\"]}],\"c\":{}},\"v\":1,"
	 "\"V\":2,\"Keys\":5,\"note\":null,\"n\":-0.5,\"list\":[[],[[]]],\"id\":\"m1\","
	 "\"service\":\"demo\",\"empty\":\"\",\"tags\":[\"t\"],\"zz\":\"\\u0000\"}",
	 "m1", "demo", NULL, -1, false, 1, {{MSG_TAG, "t"}}},
	{"whitespace everywhere",
	 " \r\n\t{ \"v\" : 1 ,\n \"id\" : \"m1\" , \"service\" : \"demo\" ,\t\"keys\" : [ \"/a\" ,"
	 " \"/b\" ] }\n",
	 "m1", "demo", NULL, -1, false, 2, {{MSG_KEY, "/a"}, {MSG_KEY, "/b"}}},
	{"escaped strings",
	 "{\"v\":1,\"id\":\"\\u0041\\/b\",\"service\":\"d\\u00e9mo \\\"x\\\"\","
	 "\"origin\":\"caf\\u00e9 \\ud83d\\ude00\",\"keys\":[\"/q?a=\\\"1\\\"&b=\\\\\"],"
	 "\"tags\":[\"\\ud83d\\ude00\",\"a\\\"b\\\\c\"]}",
	 "A/b", "d\xc3\xa9mo \"x\"", "caf\xc3\xa9 \xf0\x9f\x98\x80", -1, false, 3,
	 {{MSG_KEY, "/q?a=\"1\"&b=\\"}, {MSG_TAG, "\xf0\x9f\x98\x80"}, {MSG_TAG, "a\"b\\c"}}},
	{"raw UTF-8",
	 HEAD ",\"keys\":[\"/caf\xc3\xa9\"],\"tags\":[\"\xe2\x82\xac\xf4\x8f\xbf\xbf\"]}", "m1",
	 "demo", NULL, -1, false, 2,
	 {{MSG_KEY, "/caf\xc3\xa9"}, {MSG_TAG, "\xe2\x82\xac\xf4\x8f\xbf\xbf"}}},
	{"escaped member names",
	 "{\"\\u0076\":1,\"i\\u0064\":\"m1\",\"service\":\"demo\",\"k\\u0065ys\":[\"/a\"]}", "m1",
	 "demo", NULL, -1, false, 1, {{MSG_KEY, "/a"}}},
	{"empty origin, zero ts", HEAD ",\"origin\":\"\",\"ts\":0,\"keys\":[\"/\"]}", "m1", "demo",
	 "", 0, false, 1, {{MSG_KEY, "/"}}},
	{"largest ts", HEAD ",\"ts\":9223372036854775807,\"keys\":[\"/\"]}", "m1", "demo", NULL,
	 INT64_MAX, false, 1, {{MSG_KEY, "/"}}},
	{"id of every printable byte",
	 "{\"v\":1,\"id\":\"!#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~\\\"\\\\\",\"service\":\"my "
	 "service\",\"tags\":[\"a\\\"'b/;=\"]}",
	 "!#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~\"\\", "my service", NULL, -1, false, 1,
	 {{MSG_TAG, "a\"'b/;="}}},
	{"delete and C1 are fine where not text", HEAD ",\"x\":\"\\u007f\\u0085\",\"all\":true}",
	 "m1", "demo", NULL, -1, true, 0, {{0, NULL}}},
	{"a message nested exactly 16 deep",
	 HEAD ",\"x\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]],\"all\":true}", "m1", "demo", NULL, -1, true,
	 0, {{0, NULL}}},
};

static void test_decode_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(good_cases); i++) {
		const struct good_case *c = &good_cases[i];
		struct msg_error err;
		char *scratch;
		int rc = decode(c->json, &msg, &err, &scratch);
		if (rc != MSG_OK)
			fail_msg("%s: %s: %s at %zu", c->name, msg_strerror(rc), err.detail, err.offset);
		assert_string_equal(err.detail, "ok");
		assert_true(msg.version == MSG_VERSION);
		assert_str_is("id", msg.id, c->id);
		assert_str_is("service", msg.service, c->service);
		assert_str_is("origin", msg.origin, c->origin);
		assert_true(msg.ts == c->ts);
		assert_int_equal(msg.all, c->all);
		if (msg.nitems != c->nitems)
			fail_msg("%s: %zu items, want %zu", c->name, msg.nitems, c->nitems);
		for (size_t j = 0; j < c->nitems; j++) {
			assert_int_equal(msg.items[j].kind, c->items[j].kind);
			assert_str_is("item", msg.items[j].s, c->items[j].s);
		}
		assert_round_trip(c->name, &msg);
		free(scratch);
	}
}

/* ---- bad messages --------------------------------------------------------- */

struct bad_case {
	const char *json;
	int want;
	const char *detail; /* NULL: not checked */
};

static const struct bad_case bad_cases[] = {
	/* syntax */
	{"", MSG_E_SYNTAX, "unexpected end of input"},
	{"[]", MSG_E_SYNTAX, "expected an object"},
	{"null", MSG_E_SYNTAX, "expected an object"},
	{"\"v\"", MSG_E_SYNTAX, "expected an object"},
	{HEAD ",\"keys\":[\"/a\",]}", MSG_E_SYNTAX, "trailing comma"},
	{HEAD ",\"keys\":[\"/a\"],}", MSG_E_SYNTAX, "trailing comma"},
	{HEAD ",\"keys\":[\"/a\"]} x", MSG_E_SYNTAX, "trailing characters after the value"},
	{HEAD ",\"keys\":[\"/a\"]}{}", MSG_E_SYNTAX, "trailing characters after the value"},
	{HEAD ",\"keys\":[\"/a\"]", MSG_E_SYNTAX, "unexpected end of input"},
	{HEAD ",\"keys\":[\"/a\"] /* c */}", MSG_E_SYNTAX, NULL},
	{"{'v':1}", MSG_E_SYNTAX, NULL},
	{HEAD ",\"ts\":01,\"all\":true}", MSG_E_SYNTAX, "leading zero in number"},
	{HEAD ",\"ts\":NaN,\"all\":true}", MSG_E_SYNTAX, "unexpected character"},
	{HEAD ",\"ts\":-Infinity,\"all\":true}", MSG_E_SYNTAX, NULL},
	{HEAD ",\"keys\":[\"/a\tb\"]}", MSG_E_SYNTAX, "control character in string"},
	{HEAD ",\"keys\":[\"/\xff\"]}", MSG_E_SYNTAX, "invalid UTF-8 in string"},
	{HEAD ",\"x\":\"\xc0\xaf\",\"all\":true}", MSG_E_SYNTAX, "invalid UTF-8 in string"},
	{HEAD ",\"tags\":[\"\\ud800\"]}", MSG_E_SYNTAX, "lone surrogate in \\u escape"},
	{HEAD ",\"tags\":[\"\\x\"]}", MSG_E_SYNTAX, "invalid escape"},
	{"\xef\xbb\xbf" HEAD ",\"all\":true}", MSG_E_SYNTAX, NULL},
	/* syntax wins over everything found before it */
	{"{\"v\":2,\"id\":\"\",\"keys\":[1],", MSG_E_SYNTAX, NULL},
	{"{\"v\":1,\"id\":\"\",\"service\":\"d\",\"all\":true,\"x\":tru}", MSG_E_SYNTAX, NULL},
	/* version */
	{"{\"v\":2,\"id\":\"m1\",\"service\":\"demo\",\"all\":true}", MSG_E_VERSION, NULL},
	{"{\"v\":0,\"id\":\"m1\",\"service\":\"demo\",\"all\":true}", MSG_E_VERSION, NULL},
	{"{\"v\":-0,\"id\":\"m1\",\"service\":\"demo\",\"all\":true}", MSG_E_VERSION, NULL},
	{"{\"v\":-1,\"id\":\"m1\",\"service\":\"demo\",\"all\":true}", MSG_E_VERSION, NULL},
	{"{\"v\":9223372036854775807,\"id\":\"m1\",\"service\":\"demo\",\"all\":true}",
	 MSG_E_VERSION, NULL},
	/* version wins over field, limit and empty problems, whatever the order */
	{"{\"v\":2}", MSG_E_VERSION, "unsupported version (\"v\" is not 1)"},
	{"{\"id\":7,\"v\":2,\"keys\":{\"new\":\"shape\"}}", MSG_E_VERSION, NULL},
	{"{\"keys\":[1],\"v\":3,\"service\":null}", MSG_E_VERSION, NULL},
	/* field: required members */
	{"{\"id\":\"m1\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD, "\"v\" is missing"},
	{"{\"v\":1,\"service\":\"demo\",\"all\":true}", MSG_E_FIELD, "\"id\" is missing"},
	{"{\"v\":1,\"id\":\"m1\",\"all\":true}", MSG_E_FIELD, "\"service\" is missing"},
	{"{}", MSG_E_FIELD, "\"v\" is missing"},
	{"{\"V\":1,\"ID\":\"m1\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD,
	 "\"v\" is missing"},
	/* field: v */
	{"{\"v\":\"1\",\"id\":\"m1\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD,
	 "\"v\" is not a number"},
	{"{\"v\":null,\"id\":\"m1\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD,
	 "\"v\" is not a number"},
	{"{\"v\":true,\"id\":\"m1\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD, NULL},
	{"{\"v\":[1],\"id\":\"m1\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD, NULL},
	{"{\"v\":1.0,\"id\":\"m1\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD,
	 "\"v\" is not an integer"},
	{"{\"v\":1e0,\"id\":\"m1\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD,
	 "\"v\" is not an integer"},
	{"{\"v\":99999999999999999999,\"id\":\"m1\",\"service\":\"demo\",\"all\":true}",
	 MSG_E_FIELD, "\"v\" is not an integer"},
	/* field: id */
	{"{\"v\":1,\"id\":\"\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD,
	 "\"id\" is empty"},
	{"{\"v\":1,\"id\":\"a b\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD,
	 "\"id\" holds a byte outside 0x21..0x7e"},
	{"{\"v\":1,\"id\":\"caf\xc3\xa9\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD,
	 "\"id\" holds a byte outside 0x21..0x7e"},
	{"{\"v\":1,\"id\":\"a\\u0000\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD, NULL},
	{"{\"v\":1,\"id\":\"a\\u007f\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD, NULL},
	{"{\"v\":1,\"id\":\"a\\n\",\"service\":\"demo\",\"all\":true}", MSG_E_FIELD, NULL},
	{"{\"v\":1,\"id\":42,\"service\":\"demo\",\"all\":true}", MSG_E_FIELD,
	 "\"id\" is not a string"},
	{"{\"v\":1,\"id\":null,\"service\":\"demo\",\"all\":true}", MSG_E_FIELD,
	 "\"id\" is not a string"},
	/* field: service and origin */
	{"{\"v\":1,\"id\":\"m1\",\"service\":\"\",\"all\":true}", MSG_E_FIELD,
	 "\"service\" is empty"},
	{"{\"v\":1,\"id\":\"m1\",\"service\":\"de\\nmo\",\"all\":true}", MSG_E_FIELD,
	 "\"service\" holds a control character"},
	{"{\"v\":1,\"id\":\"m1\",\"service\":\"demo\\u007f\",\"all\":true}", MSG_E_FIELD, NULL},
	{"{\"v\":1,\"id\":\"m1\",\"service\":\"demo\\u0085\",\"all\":true}", MSG_E_FIELD, NULL},
	{"{\"v\":1,\"id\":\"m1\",\"service\":\"demo\xc2\x9f\",\"all\":true}", MSG_E_FIELD, NULL},
	{"{\"v\":1,\"id\":\"m1\",\"service\":\"\\u0000\",\"all\":true}", MSG_E_FIELD, NULL},
	{"{\"v\":1,\"id\":\"m1\",\"service\":[\"demo\"],\"all\":true}", MSG_E_FIELD,
	 "\"service\" is not a string"},
	{HEAD ",\"origin\":null,\"all\":true}", MSG_E_FIELD, "\"origin\" is not a string"},
	{HEAD ",\"origin\":\"pod\\u0001\",\"all\":true}", MSG_E_FIELD,
	 "\"origin\" holds a control character"},
	/* field: ts */
	{HEAD ",\"ts\":-1,\"all\":true}", MSG_E_FIELD,
	 "\"ts\" is not an integer in 0..9223372036854775807"},
	{HEAD ",\"ts\":1.5,\"all\":true}", MSG_E_FIELD, NULL},
	{HEAD ",\"ts\":9223372036854775808,\"all\":true}", MSG_E_FIELD, NULL},
	{HEAD ",\"ts\":\"1764200000123\",\"all\":true}", MSG_E_FIELD, "\"ts\" is not a number"},
	{HEAD ",\"ts\":null,\"all\":true}", MSG_E_FIELD, "\"ts\" is not a number"},
	/* field: lists */
	{HEAD ",\"keys\":\"/a\"}", MSG_E_FIELD, "\"keys\" is not an array of strings"},
	{HEAD ",\"keys\":null}", MSG_E_FIELD, "\"keys\" is not an array of strings"},
	{HEAD ",\"keys\":{\"0\":\"/a\"}}", MSG_E_FIELD, "\"keys\" is not an array of strings"},
	{HEAD ",\"keys\":[\"/a\",1]}", MSG_E_FIELD, "an item of \"keys\" is not a string"},
	{HEAD ",\"keys\":[null]}", MSG_E_FIELD, "an item of \"keys\" is not a string"},
	{HEAD ",\"keys\":[[\"/a\"]]}", MSG_E_FIELD, "an item of \"keys\" is not a string"},
	{HEAD ",\"keys\":[\"\"]}", MSG_E_FIELD, "an item of \"keys\" is empty"},
	{HEAD ",\"keys\":[\"api/users\"]}", MSG_E_FIELD,
	 "an item of \"keys\" does not start with '/'"},
	{HEAD ",\"keys\":[\"http://h/a\"]}", MSG_E_FIELD,
	 "an item of \"keys\" does not start with '/'"},
	{HEAD ",\"keys\":[\"/a b\"]}", MSG_E_FIELD,
	 "an item of \"keys\" holds a control character or a space"},
	{HEAD ",\"keys\":[\"/a\\tb\"]}", MSG_E_FIELD, NULL},
	{HEAD ",\"keys\":[\"/a\\u0000\"]}", MSG_E_FIELD, NULL},
	{HEAD ",\"keys\":[\"/a\\u0080\"]}", MSG_E_FIELD, NULL},
	{HEAD ",\"prefixes\":[\"p/\"]}", MSG_E_FIELD,
	 "an item of \"prefixes\" does not start with '/'"},
	{HEAD ",\"prefixes\":[\"/ \"]}", MSG_E_FIELD, NULL},
	{HEAD ",\"prefixes\":\"/\"}", MSG_E_FIELD, "\"prefixes\" is not an array of strings"},
	{HEAD ",\"tags\":[\"\"]}", MSG_E_FIELD, "an item of \"tags\" is empty"},
	{HEAD ",\"tags\":[\"a b\"]}", MSG_E_FIELD,
	 "an item of \"tags\" holds a control character, a space or a comma"},
	{HEAD ",\"tags\":[\"a,b\"]}", MSG_E_FIELD, NULL},
	{HEAD ",\"tags\":[\"a\\u001f\"]}", MSG_E_FIELD, NULL},
	{HEAD ",\"tags\":[{\"t\":1}]}", MSG_E_FIELD, "an item of \"tags\" is not a string"},
	/* field: all */
	{HEAD ",\"all\":\"true\"}", MSG_E_FIELD, "\"all\" is not true or false"},
	{HEAD ",\"all\":1}", MSG_E_FIELD, "\"all\" is not true or false"},
	{HEAD ",\"all\":null}", MSG_E_FIELD, "\"all\" is not true or false"},
	/* field: duplicates, escaped names included */
	{HEAD ",\"v\":1,\"all\":true}", MSG_E_FIELD, "\"v\" appears more than once"},
	{HEAD ",\"i\\u0064\":\"m2\",\"all\":true}", MSG_E_FIELD, "\"id\" appears more than once"},
	{HEAD ",\"keys\":[\"/a\"],\"keys\":[\"/b\"]}", MSG_E_FIELD,
	 "\"keys\" appears more than once"},
	{HEAD ",\"all\":true,\"all\":true}", MSG_E_FIELD, "\"all\" appears more than once"},
	{HEAD ",\"tags\":[],\"tags\":[]}", MSG_E_FIELD, "\"tags\" appears more than once"},
	/* field: the first problem in message order is the one reported */
	{HEAD ",\"ts\":-5,\"keys\":[\"x\"]}", MSG_E_FIELD,
	 "\"ts\" is not an integer in 0..9223372036854775807"},
	{HEAD ",\"keys\":[\"x\"],\"ts\":-5}", MSG_E_FIELD,
	 "an item of \"keys\" does not start with '/'"},
	{"{\"id\":\"\",\"v\":1}", MSG_E_FIELD, "\"id\" is empty"},
	/* empty */
	{HEAD "}", MSG_E_EMPTY, "no keys, prefixes or tags, and \"all\" is not true"},
	{HEAD ",\"all\":false}", MSG_E_EMPTY, NULL},
	{HEAD ",\"keys\":[],\"prefixes\":[],\"tags\":[],\"all\":false}", MSG_E_EMPTY, NULL},
	{HEAD ",\"unknown\":[\"/a\"]}", MSG_E_EMPTY, NULL},
};

static void test_decode_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct msg_error err;
		char *scratch;
		int rc = decode(c->json, &msg, &err, &scratch);
		if (rc != c->want)
			fail_msg("case %zu %s: got %s (%s), want %s", i, c->json, msg_strerror(rc),
			         err.detail, msg_strerror(c->want));
		if (c->detail != NULL && strcmp(err.detail, c->detail) != 0)
			fail_msg("case %zu %s: detail \"%s\", want \"%s\"", i, c->json, err.detail,
			         c->detail);
		if (rc != MSG_E_SYNTAX)
			assert_int_equal(err.offset, 0);
		free(scratch);
	}
}

/* The offset of a syntax error, and the version of a version error. */
static void test_error_details(void **state)
{
	(void)state;
	struct msg_error err;
	char *scratch;
	assert_int_equal(decode(HEAD ",\"keys\":[\"/a\",]}", &msg, &err, &scratch), MSG_E_SYNTAX);
	assert_int_equal(err.offset, strlen(HEAD ",\"keys\":[\"/a\","));
	free(scratch);
	assert_int_equal(decode("{\"v\":42,\"id\":\"\"}", &msg, &err, &scratch), MSG_E_VERSION);
	assert_true(msg.version == 42);
	free(scratch);
	assert_int_equal(decode("{\"id\":\"\",\"v\":-7}", &msg, &err, &scratch), MSG_E_VERSION);
	assert_true(msg.version == -7);
	free(scratch);
	/* err may be NULL */
	char buf[64];
	static const char ok[] = HEAD ",\"all\":true}";
	assert_int_equal(msg_decode(ok, strlen(ok), buf, sizeof(buf), &msg, NULL), MSG_OK);
	assert_int_equal(msg_decode("{", 1, buf, sizeof(buf), &msg, NULL), MSG_E_SYNTAX);
	assert_int_equal(msg_decode(NULL, 0, NULL, 0, &msg, &err), MSG_E_SYNTAX);
}

/* ---- limits --------------------------------------------------------------- */

struct limit_case {
	const char *name;
	const char *json;
	int want;
};

static void run_limits(const struct limit_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct msg_error err;
		char *scratch;
		int rc = decode(cases[i].json, &msg, &err, &scratch);
		if (rc != cases[i].want)
			fail_msg("%s: got %s (%s), want %s", cases[i].name, msg_strerror(rc),
			         err.detail, msg_strerror(cases[i].want));
		if (rc == MSG_OK)
			assert_round_trip(cases[i].name, &msg);
		free(scratch);
	}
}

static void test_string_limits(void **state)
{
	(void)state;
	gen_used = 0;
	const struct limit_case cases[] = {
		{"id 128", gen("{\"v\":1,\"id\":\"%s\",\"service\":\"s\",\"all\":true}", rep('i', 128)),
		 MSG_OK},
		{"id 129", gen("{\"v\":1,\"id\":\"%s\",\"service\":\"s\",\"all\":true}", rep('i', 129)),
		 MSG_E_FIELD},
		{"service 128", gen("{\"v\":1,\"id\":\"i\",\"service\":\"%s\",\"all\":true}", rep('s', 128)),
		 MSG_OK},
		{"service 129", gen("{\"v\":1,\"id\":\"i\",\"service\":\"%s\",\"all\":true}", rep('s', 129)),
		 MSG_E_FIELD},
		/* 64 two-byte characters are 128 bytes; the limit counts bytes */
		{"service 128 UTF-8 bytes",
		 gen("{\"v\":1,\"id\":\"i\",\"service\":\"%s\",\"all\":true}",
		     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"),
		 MSG_OK},
		/* escapes count as what they decode to: 128 '\u0041' is 128 bytes */
		{"id 128 escaped", gen("{\"v\":1,\"id\":\"%s\",\"service\":\"s\",\"all\":true}",
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
		                       "\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"),
		 MSG_OK},
		{"origin 128", gen(HEAD ",\"origin\":\"%s\",\"all\":true}", rep('o', 128)), MSG_OK},
		{"origin 129", gen(HEAD ",\"origin\":\"%s\",\"all\":true}", rep('o', 129)), MSG_E_FIELD},
		{"key 4096", gen(HEAD ",\"keys\":[\"%s\"]}", rep('/', 4096)), MSG_OK},
		{"key 4097", gen(HEAD ",\"keys\":[\"%s\"]}", rep('/', 4097)), MSG_E_FIELD},
		{"prefix 4096", gen(HEAD ",\"prefixes\":[\"%s\"]}", rep('/', 4096)), MSG_OK},
		{"prefix 4097", gen(HEAD ",\"prefixes\":[\"%s\"]}", rep('/', 4097)), MSG_E_FIELD},
		{"tag 256", gen(HEAD ",\"tags\":[\"%s\"]}", rep('t', 256)), MSG_OK},
		{"tag 257", gen(HEAD ",\"tags\":[\"%s\"]}", rep('t', 257)), MSG_E_FIELD},
	};
	run_limits(cases, N(cases));
}

static void test_item_limits(void **state)
{
	(void)state;
	gen_used = 0;
	const struct limit_case cases[] = {
		{"256 keys", gen(HEAD "%s}", items("keys", "/", 256)), MSG_OK},
		{"257 keys", gen(HEAD "%s}", items("keys", "/", 257)), MSG_E_LIMIT},
		{"256 across kinds",
		 gen(HEAD "%s%s%s}", items("tags", "t", 56), items("keys", "/k", 100),
		     items("prefixes", "/p", 100)),
		 MSG_OK},
		{"257 across kinds",
		 gen(HEAD "%s%s%s}", items("tags", "t", 57), items("keys", "/k", 100),
		     items("prefixes", "/p", 100)),
		 MSG_E_LIMIT},
		{"1000 tags", gen(HEAD "%s}", items("tags", "t", 1000)), MSG_E_LIMIT},
		/* a rule broken past the limit is still found, and wins */
		{"257 keys, the last bad", gen(HEAD "%s,\"tags\":[\"a b\"]}", items("keys", "/", 256)),
		 MSG_E_FIELD},
		{"limit, then a syntax error", gen(HEAD "%s,}", items("keys", "/", 300)), MSG_E_SYNTAX},
		{"depth 16", gen(HEAD ",\"x\":%s,\"all\":true}", "[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]"),
		 MSG_OK},
		{"depth 17", gen(HEAD ",\"x\":%s,\"all\":true}", "[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]"),
		 MSG_E_LIMIT},
		{"depth 17 in objects",
		 gen(HEAD ",\"x\":%s,\"all\":true}",
		     "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
		     "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":1}}}}}}}}}}}}}}}}"),
		 MSG_E_LIMIT},
		/* too deep stops the reading, so it ranks with syntax, before version */
		{"depth 17 after v 2",
		 gen("{\"v\":2,\"x\":%s}", "[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]"), MSG_E_LIMIT},
		{"depth 17 in a known member",
		 gen(HEAD ",\"keys\":%s}", "[[[[[[[[[[[[[[[[\"/\"]]]]]]]]]]]]]]]]"), MSG_E_LIMIT},
	};
	run_limits(cases, N(cases));
}

/* A message of exactly `size` bytes: a valid head, padding in an unknown
 * member. */
static char *sized_message(size_t size)
{
	static const char head[] = HEAD ",\"all\":true,\"pad\":\"";
	char *p = malloc(size);
	assert_non_null(p);
	assert_true(size > sizeof(head) + 2);
	memcpy(p, head, sizeof(head) - 1);
	memset(p + sizeof(head) - 1, 'x', size - (sizeof(head) - 1) - 2);
	memcpy(p + size - 2, "\"}", 2);
	return p;
}

static void test_size_limit(void **state)
{
	(void)state;
	struct msg_error err;
	char *scratch;
	char *p = sized_message(MSG_MAX_BYTES);
	assert_int_equal(decode_len(p, MSG_MAX_BYTES, &msg, &err, &scratch), MSG_OK);
	free(scratch);
	free(p);

	p = sized_message(MSG_MAX_BYTES + 1);
	assert_int_equal(decode_len(p, MSG_MAX_BYTES + 1, &msg, &err, &scratch), MSG_E_TOO_BIG);
	assert_string_equal(err.detail, "message larger than 65536 bytes");
	free(scratch);
	/* checked before parsing: the content does not matter */
	memset(p, '!', MSG_MAX_BYTES + 1);
	assert_int_equal(decode_len(p, MSG_MAX_BYTES + 1, &msg, &err, &scratch), MSG_E_TOO_BIG);
	free(scratch);
	free(p);

	/* a scratch buffer shorter than the input */
	static const char ok[] = HEAD ",\"all\":true}";
	char buf[sizeof(ok)];
	assert_int_equal(msg_decode(ok, strlen(ok), buf, strlen(ok), &msg, &err), MSG_OK);
	assert_int_equal(msg_decode(ok, strlen(ok), buf, strlen(ok) - 1, &msg, &err),
	                 MSG_E_TOO_BIG);
	assert_string_equal(err.detail, "scratch buffer smaller than the message");
}

/* The worst case for the scratch buffer: every string is kept and none has
 * an escape, so decoded text plus NULs is the input minus the syntax. */
static void test_scratch_is_enough(void **state)
{
	(void)state;
	static const char tight[] = "{\"v\":1,\"id\":\"i\",\"service\":\"s\",\"keys\":[\"/\",\"/\","
	                            "\"/\"],\"tags\":[\"t\"],\"origin\":\"\"}";
	struct msg_error err;
	char *scratch;
	assert_int_equal(decode(tight, &msg, &err, &scratch), MSG_OK);
	assert_int_equal(msg.nitems, 4);
	free(scratch);
}

/* ---- encoding ------------------------------------------------------------- */

static struct msg_str cs(const char *s)
{
	return (struct msg_str){s, strlen(s)};
}

static void base_msg(struct inval_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = MSG_VERSION;
	m->id = cs("ops-1");
	m->service = cs("demo");
	m->origin = (struct msg_str){NULL, 0};
	m->ts = -1;
	m->nitems = 1;
	m->items[0] = (struct msg_item){MSG_KEY, cs("/api/users/42")};
}

static void test_encode_golden(void **state)
{
	(void)state;
	char out[1024];
	size_t n;

	base_msg(&msg);
	n = msg_encode(&msg, out, sizeof(out));
	assert_int_equal(n, strlen("{\"v\":1,\"id\":\"ops-1\",\"service\":\"demo\",\"keys\":[\"/api/users/42\"]}"));
	assert_memory_equal(out, "{\"v\":1,\"id\":\"ops-1\",\"service\":\"demo\",\"keys\":[\"/api/users/42\"]}", n);

	/* every member; items given out of order come out grouped */
	base_msg(&msg);
	msg.version = 77; /* not read */
	msg.origin = cs("pod-a");
	msg.ts = 1764200000123;
	msg.all = true;
	msg.nitems = 5;
	msg.items[0] = (struct msg_item){MSG_TAG, cs("user-42")};
	msg.items[1] = (struct msg_item){MSG_KEY, cs("/a?x=1")};
	msg.items[2] = (struct msg_item){MSG_PREFIX, cs("/api/users/")};
	msg.items[3] = (struct msg_item){MSG_TAG, cs("t2")};
	msg.items[4] = (struct msg_item){MSG_KEY, cs("/b")};
	static const char want[] =
	        "{\"v\":1,\"id\":\"ops-1\",\"service\":\"demo\",\"origin\":\"pod-a\","
	        "\"ts\":1764200000123,\"keys\":[\"/a?x=1\",\"/b\"],\"prefixes\":[\"/api/users/\"],"
	        "\"tags\":[\"user-42\",\"t2\"],\"all\":true}";
	n = msg_encode(&msg, out, sizeof(out));
	assert_int_equal(n, sizeof(want) - 1);
	assert_memory_equal(out, want, n);

	/* escapes: quote and backslash; UTF-8 stays as it is */
	base_msg(&msg);
	msg.service = cs("d\xc3\xa9mo \"x\" \\");
	msg.origin = cs("");
	msg.ts = 0;
	msg.items[0] = (struct msg_item){MSG_TAG, cs("a\"b\\c\xf0\x9f\x98\x80")};
	static const char want2[] =
	        "{\"v\":1,\"id\":\"ops-1\",\"service\":\"d\xc3\xa9mo \\\"x\\\" \\\\\",\"origin\":\"\","
	        "\"ts\":0,\"tags\":[\"a\\\"b\\\\c\xf0\x9f\x98\x80\"]}";
	n = msg_encode(&msg, out, sizeof(out));
	assert_int_equal(n, sizeof(want2) - 1);
	assert_memory_equal(out, want2, n);
	assert_round_trip("escapes", &msg);

	/* all alone */
	base_msg(&msg);
	msg.nitems = 0;
	msg.all = true;
	static const char want3[] = "{\"v\":1,\"id\":\"ops-1\",\"service\":\"demo\",\"all\":true}";
	n = msg_encode(&msg, out, sizeof(out));
	assert_int_equal(n, sizeof(want3) - 1);
	assert_memory_equal(out, want3, n);
}

struct enc_case {
	const char *name;
	void (*edit)(struct inval_msg *m);
};

static void e_id_empty(struct inval_msg *m) { m->id = cs(""); }
static void e_id_null(struct inval_msg *m) { m->id = (struct msg_str){NULL, 0}; }
static void e_id_space(struct inval_msg *m) { m->id = cs("a b"); }
static void e_id_utf8(struct inval_msg *m) { m->id = cs("caf\xc3\xa9"); }
static void e_id_long(struct inval_msg *m) { m->id = (struct msg_str){rep('i', 129), 129}; }
static void e_id_nul(struct inval_msg *m) { m->id = (struct msg_str){"a\0b", 3}; }
static void e_service_null(struct inval_msg *m) { m->service = (struct msg_str){NULL, 0}; }
static void e_service_ptr(struct inval_msg *m) { m->service = (struct msg_str){NULL, 4}; }
static void e_service_ctl(struct inval_msg *m) { m->service = cs("de\tmo"); }
static void e_service_c1(struct inval_msg *m) { m->service = cs("de\xc2\x85mo"); }
static void e_service_bad_utf8(struct inval_msg *m) { m->service = cs("de\xffmo"); }
static void e_service_surrogate(struct inval_msg *m) { m->service = cs("\xed\xa0\x80"); }
static void e_service_cut(struct inval_msg *m) { m->service = cs("demo\xe2\x82"); }
static void e_origin_long(struct inval_msg *m) { m->origin = (struct msg_str){rep('o', 129), 129}; }
static void e_origin_ctl(struct inval_msg *m) { m->origin = cs("pod\x7f"); }
static void e_ts(struct inval_msg *m) { m->ts = -2; }
static void e_ts_min(struct inval_msg *m) { m->ts = INT64_MIN; }
static void e_empty(struct inval_msg *m) { m->nitems = 0; }
static void e_too_many(struct inval_msg *m)
{
	m->nitems = MSG_MAX_ITEMS + 1; /* reads items[0] only before failing */
}
static void e_kind(struct inval_msg *m) { m->items[0].kind = (enum msg_item_kind)7; }
static void e_key_slash(struct inval_msg *m) { m->items[0].s = cs("api"); }
static void e_key_space(struct inval_msg *m) { m->items[0].s = cs("/a b"); }
static void e_key_long(struct inval_msg *m) { m->items[0].s = (struct msg_str){rep('/', 4097), 4097}; }
static void e_key_empty(struct inval_msg *m) { m->items[0].s = cs(""); }
static void e_tag_comma(struct inval_msg *m) { m->items[0] = (struct msg_item){MSG_TAG, cs("a,b")}; }
static void e_tag_long(struct inval_msg *m)
{
	m->items[0] = (struct msg_item){MSG_TAG, {rep('t', 257), 257}};
}
static void e_prefix_nul(struct inval_msg *m)
{
	m->items[0] = (struct msg_item){MSG_PREFIX, {"/a\0", 3}};
}
/* valid items whose JSON is larger than a message may be */
static void e_too_big(struct inval_msg *m)
{
	const char *k = rep('/', 4096);
	m->nitems = 17;
	for (size_t i = 0; i < m->nitems; i++)
		m->items[i] = (struct msg_item){MSG_KEY, {k, 4096}};
}

static void test_encode_rejects(void **state)
{
	(void)state;
	static const struct enc_case cases[] = {
		{"id empty", e_id_empty},         {"id NULL", e_id_null},
		{"id space", e_id_space},         {"id UTF-8", e_id_utf8},
		{"id 129", e_id_long},            {"id NUL", e_id_nul},
		{"service NULL", e_service_null}, {"service NULL, len 4", e_service_ptr},
		{"service tab", e_service_ctl},   {"service C1", e_service_c1},
		{"service bad UTF-8", e_service_bad_utf8},
		{"service surrogate", e_service_surrogate},
		{"service cut UTF-8", e_service_cut},
		{"origin 129", e_origin_long},    {"origin DEL", e_origin_ctl},
		{"ts -2", e_ts},                  {"ts min", e_ts_min},
		{"no items", e_empty},            {"257 items", e_too_many},
		{"bad kind", e_kind},             {"key without /", e_key_slash},
		{"key space", e_key_space},       {"key 4097", e_key_long},
		{"key empty", e_key_empty},       {"tag comma", e_tag_comma},
		{"tag 257", e_tag_long},          {"prefix NUL", e_prefix_nul},
		{"over 65536 bytes", e_too_big},
	};
	char out[256];
	gen_used = 0;
	for (size_t i = 0; i < N(cases); i++) {
		base_msg(&msg);
		cases[i].edit(&msg);
		size_t n = msg_encode(&msg, out, sizeof(out));
		if (n != 0)
			fail_msg("%s: encoded %zu bytes", cases[i].name, n);
	}
	base_msg(&msg);
	assert_true(msg_encode(&msg, out, sizeof(out)) > 0);
	assert_int_equal(msg_encode(NULL, out, sizeof(out)), 0);
	assert_int_equal(msg_encode(&msg, NULL, 0), 0);
	assert_int_equal(msg_encode(&msg, out, 0), 0);
}

/* The encoder's size limit is the decoder's: a message of exactly 65536
 * bytes encodes and decodes, one more byte does not encode. */
static void test_encode_size_limit(void **state)
{
	(void)state;
	static char out[MSG_MAX_BYTES + 64];
	static const char head[] = "{\"v\":1,\"id\":\"ops-1\",\"service\":\"demo\",\"keys\":[";
	/* head, 16 quoted keys, 15 commas, "]}" */
	size_t keys_len = MSG_MAX_BYTES - (sizeof(head) - 1) - 16 * 2 - 15 - 2;
	gen_used = 0;
	const char *k = rep('/', MSG_TARGET_MAX + 1);
	base_msg(&msg);
	msg.nitems = 16;
	for (size_t i = 0; i < 15; i++)
		msg.items[i] = (struct msg_item){MSG_KEY, {k, MSG_TARGET_MAX}};
	assert_true(keys_len - 15 * MSG_TARGET_MAX < MSG_TARGET_MAX);
	msg.items[15] = (struct msg_item){MSG_KEY, {k, keys_len - 15 * MSG_TARGET_MAX}};
	size_t n = msg_encode(&msg, out, sizeof(out));
	assert_int_equal(n, MSG_MAX_BYTES);
	assert_memory_equal(out, head, sizeof(head) - 1);
	assert_round_trip("65536 bytes", &msg);
	/* one more byte in the last key, still within its own limit */
	msg.items[15].s.len++;
	assert_int_equal(msg_encode(&msg, out, sizeof(out)), 0);
}

/* ---- names ---------------------------------------------------------------- */

static void test_strerror(void **state)
{
	(void)state;
	static const char *const want[MSG_E_COUNT] = {"ok",    "too_big", "syntax", "version",
	                                              "field", "limit",   "empty"};
	for (int i = 0; i < MSG_E_COUNT; i++)
		assert_string_equal(msg_strerror(i), want[i]);
	assert_string_equal(msg_strerror(-1), "unknown");
	assert_string_equal(msg_strerror(MSG_E_COUNT), "unknown");
	assert_string_equal(msg_strerror(INT32_MAX), "unknown");
	assert_string_equal(msg_item_kind_name(MSG_KEY), "keys");
	assert_string_equal(msg_item_kind_name(MSG_PREFIX), "prefixes");
	assert_string_equal(msg_item_kind_name(MSG_TAG), "tags");
	assert_string_equal(msg_item_kind_name((enum msg_item_kind)3), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_good),     cmocka_unit_test(test_decode_bad),
		cmocka_unit_test(test_error_details),   cmocka_unit_test(test_string_limits),
		cmocka_unit_test(test_item_limits),     cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_scratch_is_enough), cmocka_unit_test(test_encode_golden),
		cmocka_unit_test(test_encode_rejects),  cmocka_unit_test(test_encode_size_limit),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
