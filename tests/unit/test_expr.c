/*
 * test_expr.c - the expression language of tiers (policy/expr.c), table by
 * table: good expressions with their truth on given signal vectors and their
 * canonical form; malformed ones with the exact column and message of their
 * error; the bounds on length and nesting; the signals an expression reads.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "expr.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

enum { INFLIGHT, QWAIT, CPU, PSI, MEM, REDIS, LAG, ROUTE_P99, ERRORS, NSIG };

static const struct expr_signal signal_table[NSIG] = {
	[INFLIGHT] = {"inflight", EXPR_COUNT},
	[QWAIT] = {"queue_wait_p99", EXPR_DURATION},
	[CPU] = {"cpu", EXPR_PERCENT},
	[PSI] = {"psi.cpu.some10", EXPR_PERCENT},
	[MEM] = {"memory.used", EXPR_SIZE},
	[REDIS] = {"redis.up", EXPR_FLAG},
	[LAG] = {"kafka.lag", EXPR_COUNT},
	[ROUTE_P99] = {"upstream.route.users.p99", EXPR_DURATION},
	[ERRORS] = {"error_rate", EXPR_PERCENT},
};
static const struct expr_signals signals = {signal_table, NSIG};

/* A signal vector: every signal 0 but those named. */
#define V(...) {__VA_ARGS__}

struct good_case {
	const char *text;
	double v[NSIG];
	bool want;
	const char *canon; /* NULL: the text itself */
};

static const struct good_case good[] = {
	/* every comparison operator, at and around its boundary */
	{"inflight > 100", V([INFLIGHT] = 101), true, NULL},
	{"inflight > 100", V([INFLIGHT] = 100), false, NULL},
	{"inflight >= 100", V([INFLIGHT] = 100), true, NULL},
	{"inflight >= 100", V([INFLIGHT] = 99.999), false, NULL},
	{"inflight < 100", V([INFLIGHT] = 99.5), true, NULL},
	{"inflight < 100", V([INFLIGHT] = 100), false, NULL},
	{"inflight <= 100", V([INFLIGHT] = 100), true, NULL},
	{"inflight <= 100", V([INFLIGHT] = 100.5), false, NULL},
	{"inflight == 100", V([INFLIGHT] = 100), true, NULL},
	{"inflight == 100", V([INFLIGHT] = 100.0000001), false, NULL},
	{"inflight != 100", V([INFLIGHT] = 100), false, NULL},
	{"inflight != 100", V([INFLIGHT] = 7), true, NULL},
	{"kafka.lag > 0.5", V([LAG] = 1), true, NULL},
	{"kafka.lag > 0.5", V([LAG] = 0.5), false, NULL},
	{"100 < inflight", V([INFLIGHT] = 101), true, NULL},
	/* durations, in milliseconds */
	{"queue_wait_p99 > 20ms", V([QWAIT] = 20.5), true, NULL},
	{"queue_wait_p99 > 20ms", V([QWAIT] = 20), false, NULL},
	{"queue_wait_p99 == 1s", V([QWAIT] = 1000), true, NULL},
	{"queue_wait_p99 == 1500us", V([QWAIT] = 1.5), true, NULL},
	{"queue_wait_p99 == 250000ns", V([QWAIT] = 0.25), true, NULL},
	{"queue_wait_p99 == 1ns", V([QWAIT] = 1e-6), true, NULL},
	{"queue_wait_p99 == 2m", V([QWAIT] = 120000), true, NULL},
	{"queue_wait_p99 == 1h", V([QWAIT] = 3600000), true, NULL},
	{"queue_wait_p99 > 0", V([QWAIT] = 0.001), true, NULL},
	{"queue_wait_p99 > 0ms", V([QWAIT] = 0), false, NULL},
	{"upstream.route.users.p99 > queue_wait_p99", V([ROUTE_P99] = 3, [QWAIT] = 2), true, NULL},
	/* sizes, in bytes */
	{"memory.used >= 64MiB", V([MEM] = 67108864), true, NULL},
	{"memory.used >= 64MiB", V([MEM] = 67108863), false, NULL},
	{"memory.used == 512B", V([MEM] = 512), true, NULL},
	{"memory.used == 1KiB", V([MEM] = 1024), true, NULL},
	{"memory.used == 2GiB", V([MEM] = 2147483648.0), true, NULL},
	{"memory.used == 1TiB", V([MEM] = 1099511627776.0), true, NULL},
	{"memory.used == 1KB", V([MEM] = 1000), true, NULL},
	{"memory.used == 1MB", V([MEM] = 1e6), true, NULL},
	{"memory.used == 1GB", V([MEM] = 1e9), true, NULL},
	{"memory.used == 1TB", V([MEM] = 1e12), true, NULL},
	/* percentages, 0-100 */
	{"cpu > 85%", V([CPU] = 85.5), true, NULL},
	{"cpu > 85%", V([CPU] = 85), false, NULL},
	/* levee's cpu counts every CPU: 250% is two and a half busy */
	{"cpu > 150%", V([CPU] = 250), true, NULL},
	{"cpu > 150%", V([CPU] = 120), false, NULL},
	{"cpu == 12.5%", V([CPU] = 12.5), true, NULL},
	{"cpu <= 100%", V([CPU] = 100), true, NULL},
	{"error_rate >= 0%", V([ERRORS] = 0), true, NULL},
	/* precedence: comparison > not > and > or */
	{"inflight > 1 or inflight > 2 and cpu > 50%", V([INFLIGHT] = 5, [CPU] = 10), true,
	 "inflight > 1 or (inflight > 2 and cpu > 50%)"},
	{"(inflight > 1 or inflight > 2) and cpu > 50%", V([INFLIGHT] = 5, [CPU] = 10), false, NULL},
	{"cpu > 50% and inflight > 2 or inflight > 1", V([INFLIGHT] = 5, [CPU] = 10), true,
	 "(cpu > 50% and inflight > 2) or inflight > 1"},
	{"cpu > 50% and (inflight > 2 or inflight > 1)", V([INFLIGHT] = 5, [CPU] = 10), false, NULL},
	{"not inflight > 5", V([INFLIGHT] = 3), true, NULL},
	{"not inflight > 5 and cpu > 50%", V([INFLIGHT] = 3, [CPU] = 10), false, NULL},
	{"not (inflight > 5 or cpu > 50%)", V([INFLIGHT] = 3, [CPU] = 10), true, NULL},
	{"not (inflight > 5 or cpu > 50%)", V([INFLIGHT] = 6), false, NULL},
	{"(inflight > 1 or cpu > 50%) and redis.up", V([INFLIGHT] = 5), false, NULL},
	{"(inflight > 1 or cpu > 50%) and redis.up", V([INFLIGHT] = 5, [REDIS] = 1), true, NULL},
	/* flags and constants */
	{"redis.up", V([REDIS] = 1), true, NULL},
	{"redis.up", V([REDIS] = 0), false, NULL},
	{"not redis.up", V([REDIS] = 0), true, NULL},
	{"not not redis.up", V([REDIS] = 1), true, NULL},
	{"true", V(0), true, NULL},
	{"false", V(0), false, NULL},
	{"true and false", V(0), false, NULL},
	{"false or true", V(0), true, NULL},
	{"not false", V(0), true, NULL},
	/* a signal with no value: NaN, every comparison false */
	{"queue_wait_p99 > 20ms", V([QWAIT] = NAN), false, NULL},
	{"queue_wait_p99 <= 20ms", V([QWAIT] = NAN), false, NULL},
	{"queue_wait_p99 == 20ms", V([QWAIT] = NAN), false, NULL},
	{"queue_wait_p99 != 20ms", V([QWAIT] = NAN), false, NULL},
	{"not queue_wait_p99 > 20ms", V([QWAIT] = NAN), true, NULL},
	{"redis.up", V([REDIS] = NAN), false, NULL},
	/* docs/tiers.md's examples */
	{"queue_wait_p99 > 20ms or (cpu > 85% and psi.cpu.some10 > 40%)",
	 V([QWAIT] = 5, [CPU] = 90, [PSI] = 50), true, NULL},
	{"queue_wait_p99 > 20ms or (cpu > 85% and psi.cpu.some10 > 40%)",
	 V([QWAIT] = 5, [CPU] = 90, [PSI] = 30), false, NULL},
	{"queue_wait_p99 < 10ms and cpu < 70%", V([QWAIT] = 9, [CPU] = 69), true, NULL},
	/* the canonical form: spacing, and only the parentheses needed */
	{"inflight>5 and(cpu<1%)", V([INFLIGHT] = 6), true, "inflight > 5 and cpu < 1%"},
	{"cpu>5%and redis.up", V([CPU] = 6, [REDIS] = 1), true, "cpu > 5% and redis.up"},
	{"\tinflight\t>\t5 ", V([INFLIGHT] = 6), true, "inflight > 5"},
	{"((inflight > 5))", V([INFLIGHT] = 6), true, "inflight > 5"},
	{"(redis.up and true) and false", V([REDIS] = 1), false, "redis.up and true and false"},
	{"redis.up and (true and false)", V([REDIS] = 1), false, "redis.up and true and false"},
	{"redis.up or (true or false)", V(0), true, "redis.up or true or false"},
	{"redis.up and (true or false)", V([REDIS] = 1), true, NULL},
	{"(redis.up or true) and false", V(0), false, NULL},
	{"(not redis.up) and true", V(0), true, "not redis.up and true"},
	{"not (not redis.up)", V(0), false, "not not redis.up"},
	{"not (redis.up and true)", V(0), true, NULL},
	{"not (inflight > 5)", V(0), true, "not inflight > 5"},
};

static struct expr *parse_ok(const char *text)
{
	struct expr *e = NULL;
	struct expr_error err = {0};
	if (expr_parse(text, &signals, &e, &err) != LV_OK)
		fail_msg("\"%s\": unexpected error at column %d: %s", text, err.column, err.message);
	return e;
}

static void test_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(good); i++) {
		const struct good_case *c = &good[i];
		struct expr *e = parse_ok(c->text);
		if (expr_eval(e, c->v) != c->want)
			fail_msg("\"%s\" (case %zu): got %d, want %d", c->text, i, !c->want, c->want);

		char out[EXPR_TEXT_MAX * 3];
		const char *canon = c->canon != NULL ? c->canon : c->text;
		size_t n = expr_render(e, out, sizeof(out));
		assert_int_equal(n, strlen(out));
		if (strcmp(out, canon) != 0)
			fail_msg("\"%s\": rendered \"%s\", want \"%s\"", c->text, out, canon);

		/* the canonical form means the same and renders to itself */
		struct expr *again = parse_ok(out);
		assert_int_equal(expr_eval(again, c->v), c->want);
		char out2[sizeof(out)];
		expr_render(again, out2, sizeof(out2));
		assert_string_equal(out2, out);
		expr_free(again);
		expr_free(e);
	}
}

struct bad_case {
	const char *text;
	int column;
	const char *message;
};

static const struct bad_case bad[] = {
	{"", 1, "empty expression: expected a condition"},
	{"   ", 4, "empty expression: expected a condition"},
	{"cpu", 4, "expected a comparison operator after 'cpu'"},
	{"cpu 80%", 5, "expected a comparison operator after 'cpu'"},
	{"300ms", 6, "expected a comparison operator after '300ms'"},
	{"cpuu > 80%", 1, "unknown signal 'cpuu' (did you mean 'cpu'?)"},
	{"upstream.route.user.p99 > 1s", 1,
	 "unknown signal 'upstream.route.user.p99' (did you mean 'upstream.route.users.p99'?)"},
	{"nothing > 1", 1, "unknown signal 'nothing'"},
	{"cpu > 80%)", 10, "unbalanced ')'"},
	{")", 1, "unbalanced ')'"},
	{"redis.up and )", 14, "unbalanced ')'"},
	{"(cpu > 80%", 11, "missing ')' to close the '(' at column 1"},
	{"redis.up and ((cpu > 80%)", 26, "missing ')' to close the '(' at column 14"},
	{"()", 2, "expected a condition after '(', found ')'"},
	{"queue_wait_p99 > 300", 18,
	 "a number needs a unit here: 300 what? (queue_wait_p99 is a duration, e.g. 300ms)"},
	{"80 < cpu", 1, "a number needs a unit here: 80 what? (cpu is a percentage, e.g. 80%)"},
	{"memory.used > 64", 15, "a number needs a unit here: 64 what? (memory.used is a size, e.g. 64MiB)"},
	{"inflight > 300ms", 12, "inflight is a count; 300ms is a duration"},
	{"cpu > 64MiB", 7, "cpu is a percentage; 64MiB is a size"},
	{"cpu > inflight", 7, "cpu is a percentage; inflight is a count"},
	{"1s > queue_wait_p99 and 5% < inflight", 25, "inflight is a count; 5% is a percentage"},
	{"1 < 2", 1, "both sides are numbers: a comparison needs a signal on one side"},
	{"1 < inflight < 5", 14, "comparisons do not chain: join two with 'and' (a < b and b < c)"},
	{"cpu >", 6, "expected a number or a signal after '>'"},
	{"cpu >= and", 8, "expected a number or a signal after '>='"},
	{"cpu > 80% and", 14, "expected a condition after 'and'"},
	{"cpu > 80% and or redis.up", 15, "expected a condition after 'and', found 'or'"},
	{"not", 4, "expected a condition after 'not'"},
	{"and redis.up", 1, "expected a condition, found 'and'"},
	{"> 5", 1, "expected a condition, found '>'"},
	{"cpu > 80% inflight > 1", 11, "expected 'and', 'or' or the end after '80%', found 'inflight'"},
	{"redis.up (", 10, "expected 'and', 'or' or the end after 'redis.up', found '('"},
	{"(cpu > 80% inflight > 1)", 12, "expected 'and', 'or' or ')' after '80%', found 'inflight'"},
	{"cpu = 80%", 5, "'=' does not compare: write '=='"},
	{"cpu > 80% && redis.up", 11, "write 'and' instead of '&&'"},
	{"cpu > 80% || redis.up", 11, "write 'or' instead of '||'"},
	{"!redis.up", 1, "write 'not' instead of '!'"},
	{"cpu > 80% AND redis.up", 11, "keywords are lowercase: write 'and' instead of 'AND'"},
	{"Not redis.up", 1, "keywords are lowercase: write 'not' instead of 'Not'"},
	{"TRUE", 1, "keywords are lowercase: write 'true' instead of 'TRUE'"},
	{"redis.up == 1", 1, "redis.up is a flag: use it as a condition by itself ('redis.up' or 'not redis.up')"},
	{"inflight > redis.up", 12,
	 "redis.up is a flag: use it as a condition by itself ('redis.up' or 'not redis.up')"},
	{"true > 1", 6, "expected 'and', 'or' or the end after 'true', found '>'"},
	{"queue_wait_p99 > 1.5s", 18,
	 "bad number '1.5s': must be a whole number (use a smaller unit instead of a fraction)"},
	{"cpu > 2000000%", 7, "bad number '2000000%': must be at most 1000000%"},
	{"inflight > 5x", 12,
	 "bad number '5x': unknown unit (durations: ns, us, ms, s, m, h; sizes: B, KiB, MiB, GiB, TiB, "
	 "KB, MB, GB, TB; or %)"},
	{"inflight > 5and redis.up", 12,
	 "bad number '5and': unknown unit (durations: ns, us, ms, s, m, h; sizes: B, KiB, MiB, GiB, TiB, "
	 "KB, MB, GB, TB; or %)"},
	{"inflight > 5.", 12, "bad number '5.': expected digits after '.'"},
	{"inflight > 1.2.3", 12, "bad number '1.2.3': expected a number like 12 or 0.5"},
	{"inflight > 99999999999999999999", 12, "bad number '99999999999999999999': number too large"},
	{"cpu > -5%", 7, "unexpected character '-'"},
	{"cpu > 5% \x01", 10, "unexpected byte 0x01"},
	{"cpu > 5% ;", 10, "unexpected character ';'"},
};

static void check_bad(const char *text, int column, const char *message)
{
	struct expr *e = (struct expr *)0x1;
	struct expr_error err = {0};
	if (expr_parse(text, &signals, &e, &err) != LV_ERR)
		fail_msg("\"%s\": accepted", text);
	assert_ptr_equal(e, (struct expr *)0x1); /* untouched on error */
	if (err.column != column || strcmp(err.message, message) != 0)
		fail_msg("\"%s\":\n got %d: %s\nwant %d: %s", text, err.column, err.message, column, message);
}

static void test_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(bad); i++)
		check_bad(bad[i].text, bad[i].column, bad[i].message);
}

/* EXPR_TEXT_MAX bytes parse; one more is an error, not a truncation. */
static void test_length(void **state)
{
	(void)state;
	char text[EXPR_TEXT_MAX + 2];
	memset(text, ' ', sizeof(text));
	memcpy(text, "redis.up", 8);
	for (size_t off = 8; off + 12 <= EXPR_TEXT_MAX; off += 12)
		memcpy(text + off, " or redis.up", 12);
	text[EXPR_TEXT_MAX] = '\0';
	struct expr *e = parse_ok(text);
	double v[NSIG] = {[REDIS] = 1};
	assert_true(expr_eval(e, v));
	expr_free(e);

	text[EXPR_TEXT_MAX] = ' ';
	text[EXPR_TEXT_MAX + 1] = '\0';
	check_bad(text, EXPR_TEXT_MAX + 1, "expression longer than 512 bytes");

	char name[EXPR_NAME_MAX + 8];
	memset(name, 'a', EXPR_NAME_MAX);
	strcpy(name + EXPR_NAME_MAX, " > 1");
	check_bad(name, 1, "signal name longer than 127 bytes");
	char num[80] = "inflight > ";
	memset(num + 11, '1', 64);
	num[75] = '\0';
	check_bad(num, 12, "number longer than 63 bytes");
}

/* `open` levels of `open_word` around `inner`, closed by `close_word`s. */
static void nest(char *buf, size_t size, int open, const char *open_word, const char *inner,
                 const char *close_word)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int i = 0; i < open; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s", open_word);
	n += (size_t)snprintf(buf + n, size - n, "%s", inner);
	for (int i = 0; i < open; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s", close_word);
}

static void test_depth(void **state)
{
	(void)state;
	char text[EXPR_TEXT_MAX];
	double v[NSIG] = {[INFLIGHT] = 2, [REDIS] = 1};

	nest(text, sizeof(text), EXPR_DEPTH_MAX, "(", "redis.up", ")");
	struct expr *e = parse_ok(text);
	assert_true(expr_eval(e, v));
	expr_free(e);
	nest(text, sizeof(text), EXPR_DEPTH_MAX + 1, "(", "redis.up", ")");
	check_bad(text, EXPR_DEPTH_MAX + 1, "nested deeper than 32 levels of '(' and 'not'");

	nest(text, sizeof(text), EXPR_DEPTH_MAX, "not ", "redis.up", "");
	e = parse_ok(text);
	assert_true(expr_eval(e, v)); /* an even number of nots */
	expr_free(e);
	nest(text, sizeof(text), EXPR_DEPTH_MAX + 1, "not ", "redis.up", "");
	check_bad(text, 4 * EXPR_DEPTH_MAX + 1, "nested deeper than 32 levels of '(' and 'not'");

	/* a deep stack: every level holds an or's, an and's and a comparison's
	 * left operand (EXPR_DEPTH_MAX such levels do not fit in the text) */
	nest(text, sizeof(text), 24, "false or true and (", "1 < inflight", ")");
	assert_true(strlen(text) < EXPR_TEXT_MAX);
	e = parse_ok(text);
	assert_true(expr_eval(e, v));
	v[INFLIGHT] = 0;
	assert_false(expr_eval(e, v));
	expr_free(e);
}

static void test_mark_signals(void **state)
{
	(void)state;
	struct expr *e = parse_ok("queue_wait_p99 > 20ms or (cpu > 85% and not redis.up) or cpu > 99%");
	bool used[NSIG] = {false};
	used[LAG] = true; /* left alone */
	expr_mark_signals(e, used);
	for (int i = 0; i < NSIG; i++)
		assert_int_equal(used[i], i == QWAIT || i == CPU || i == REDIS || i == LAG);
	expr_free(e);

	e = parse_ok("true");
	memset(used, 0, sizeof(used));
	expr_mark_signals(e, used);
	for (int i = 0; i < NSIG; i++)
		assert_false(used[i]);
	expr_free(e);
}

/* A short buffer gets a NUL-terminated prefix and the whole length. */
static void test_render_truncated(void **state)
{
	(void)state;
	struct expr *e = parse_ok("inflight>5");
	char buf[6];
	assert_int_equal(expr_render(e, buf, sizeof(buf)), strlen("inflight > 5"));
	assert_string_equal(buf, "infli");
	assert_int_equal(expr_render(e, NULL, 0), strlen("inflight > 5"));
	expr_free(e);
}

/* An empty signal table: every name is unknown, with no suggestion. */
static void test_no_signals(void **state)
{
	(void)state;
	struct expr_signals none = {NULL, 0};
	struct expr *e = NULL;
	struct expr_error err;
	assert_int_equal(expr_parse("cpu > 1%", &none, &e, &err), LV_ERR);
	assert_int_equal(err.column, 1);
	assert_string_equal(err.message, "unknown signal 'cpu'");
	assert_int_equal(expr_parse("true or false", &none, &e, &err), LV_OK);
	assert_true(expr_eval(e, NULL));
	expr_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),         cmocka_unit_test(test_bad),
		cmocka_unit_test(test_length),       cmocka_unit_test(test_depth),
		cmocka_unit_test(test_mark_signals), cmocka_unit_test(test_render_truncated),
		cmocka_unit_test(test_no_signals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
