/* test_sfv.c - RFC 8941 Dictionaries (proxy/http/sfv.c) as tables: the
 * RFC's own examples, what each bare item accepts and refuses, structure
 * errors, duplicate keys, the §3 size limits at and just past each bound,
 * and the readers for parameters, Strings and Byte Sequences. A valid case
 * is checked through its canonical form (tests/unit/sfv_canon.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h> /* after the headers it needs */

#include "sfv_canon.h"

#define BAD SFV_EINVAL
#define BIG SFV_ELIMIT

struct dict_case {
	const char *what;
	const char *in;
	int rc;            /* members as written, or BAD / BIG */
	const char *canon; /* NULL: the input is already canonical */
};

static const struct dict_case dict_cases[] = {
        /* the RFC's examples */
        {"§3.2 strings and bytes", "en=\"Applepie\", da=:w4ZibGV0w6ZydGU=:", 2, NULL},
        {"§3.2 boolean members and a parameter", "a=?0, b, c; foo=bar", 3, "a=?0, b, c;foo=bar"},
        {"§3.2 decimal and inner list", "rating=1.5, feelings=(joy sadness)", 2, NULL},
        {"§3.2 mixed", "a=(1 2), b=3, c=4;aa=bb, d=(5 6);valid", 4, NULL},
        {"§3.3.5 byte sequence", "a=:cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==:", 1, NULL},
        {"§3.3.6 true member is a bare key", "a=?1", 1, "a"},
        {"§3.3.4 token with : and /", "a=foo123/456, b=*x:y", 2, NULL},
        {"§3.1.2 parameters on an inner list", "a=(\"foo\";a=1 \"bar\";b=?0);lvl=5", 1,
         "a=(\"foo\";a=1 \"bar\";b=?0);lvl=5"},
        /* whitespace */
        {"empty field", "", 0, ""},
        {"only SP", "   ", 0, ""},
        {"OWS around commas", "a=1 ,\tb=2", 2, "a=1, b=2"},
        {"trailing OWS", "a=1 \t", 1, "a=1"},
        {"leading SP", "  a=1", 1, "a=1"},
        {"leading HTAB", "\ta=1", BAD, NULL},
        {"SP inside inner list", "a=(  1   2  )", 1, "a=(1 2)"},
        {"HTAB inside inner list", "a=(1\t2)", BAD, NULL},
        {"SP after ;", "a=1;  b=2", 1, "a=1;b=2"},
        {"SP before ;", "a=1 ;b=2", BAD, NULL},
        {"SP before =", "a =1", BAD, NULL},
        {"SP after =", "a= 1", BAD, NULL},
        /* structure */
        {"trailing comma", "a=1,", BAD, NULL},
        {"leading comma", ",a=1", BAD, NULL},
        {"empty member", "a=1,,b=2", BAD, NULL},
        {"missing comma", "a=1 b=2", BAD, NULL},
        {"empty inner list", "a=()", 1, NULL},
        {"unterminated inner list", "a=(1 2", BAD, NULL},
        {"comma in inner list", "a=(1,2)", BAD, NULL},
        {"inner list without SP", "a=(1\"x\")", BAD, NULL},
        {"nested inner list", "a=((1))", BAD, NULL},
        {"inner list as a parameter value", "a=1;b=(1)", BAD, NULL},
        {"parameter without key", "a=1;", BAD, NULL},
        {"parameter key uppercase", "a=1;B=2", BAD, NULL},
        {"= without value", "a=", BAD, NULL},
        {"non-ASCII outside a string", "a=1, \xc3\xa9=2", BAD, NULL},
        {"NUL", "a=1\0", BAD, NULL},
        /* keys */
        {"uppercase key", "A=1", BAD, NULL},
        {"key starting with a digit", "1a=1", BAD, NULL},
        {"key starting with *", "*a=1", 1, NULL},
        {"key characters", "a_b-c.d*9=1", 1, NULL},
        {"key with an invalid character", "a!=1", BAD, NULL},
        /* duplicates: last wins, in the place of the first */
        {"duplicate key", "a=1, b=2, a=3", 3, "a=3, b=2"},
        {"duplicate key, value type changes", "a=(1 2), a", 2, "a"},
        {"duplicate parameter", "a;x=1;x=2;y", 1, "a;x=2;y"},
        /* Integer and Decimal */
        {"negative zero", "a=-0", 1, "a=0"},
        {"leading zeros", "a=042", 1, "a=42"},
        {"15 digits", "a=999999999999999, b=-999999999999999", 2, NULL},
        {"16 digits", "a=1000000000000000", BAD, NULL},
        {"minus alone", "a=-", BAD, NULL},
        {"minus then letter", "a=-a", BAD, NULL},
        {"decimal, three digits", "a=1.123", 1, NULL},
        {"decimal, trailing zeros", "a=1.50, b=-1.000", 2, "a=1.5, b=-1.0"},
        {"decimal, negative fraction", "a=-0.25", 1, NULL},
        {"decimal, four fraction digits", "a=1.1234", BAD, NULL},
        {"decimal, 12 integer digits", "a=123456789012.123", 1, NULL},
        {"decimal, 13 integer digits", "a=1234567890123.1", BAD, NULL},
        {"decimal without fraction", "a=1.", BAD, NULL},
        {"decimal without integer", "a=.5", BAD, NULL},
        {"two dots", "a=1.2.3", BAD, NULL},
        {"number then junk", "a=12x", BAD, NULL},
        /* String */
        {"string escapes", "a=\"say \\\"hi\\\" \\\\o/\"", 1, NULL},
        {"empty string", "a=\"\"", 1, NULL},
        {"string with a comma", "a=\"x, y\", b=1", 2, NULL},
        {"bad escape", "a=\"\\x\"", BAD, NULL},
        {"escape at the end", "a=\"\\", BAD, NULL},
        {"unterminated string", "a=\"abc", BAD, NULL},
        {"HTAB in a string", "a=\"a\tb\"", BAD, NULL},
        {"non-ASCII in a string", "a=\"caf\xc3\xa9\"", BAD, NULL},
        {"DEL in a string", "a=\"\x7f\"", BAD, NULL},
        /* Token */
        {"token", "a=foo, b=*, c=text/html;q=1", 3, NULL},
        {"token with a character it cannot hold", "a=fo\"o", BAD, NULL},
        /* Byte Sequence */
        {"empty bytes", "a=::", 1, NULL},
        {"bytes without padding", "a=:aGVsbG8:", 1, "a=:aGVsbG8=:"},
        {"bytes, non-zero pad bits", "a=:iZ==:", 1, "a=:iQ==:"},
        {"bytes, bad character", "a=:aGVs!bG8=:", BAD, NULL},
        {"bytes, unterminated", "a=:aGVsbG8=", BAD, NULL},
        {"bytes, = in the middle", "a=:aG=sbG8=:", BAD, NULL},
        {"bytes, one char of a group", "a=:aGVsb:", BAD, NULL},
        {"bytes, too much padding", "a=:aGVsbA===:", BAD, NULL},
        {"bytes, short padding", "a=:YQ=:", BAD, NULL},
        /* Boolean */
        {"booleans", "a=?0, b=?1;c=?0", 2, "a=?0, b;c=?0"},
        {"boolean 2", "a=?2", BAD, NULL},
        {"boolean without a digit", "a=?", BAD, NULL},
        {"boolean word", "a=?true", BAD, NULL},
        /* what Cache-Control writers get wrong */
        {"uppercase directive", "Max-Age=60", BAD, NULL},
        {"quoted integer is a String", "max-age=\"60\"", 1, NULL},
        {"negative integer", "max-age=-1", 1, NULL},
        {"Cache-Control's no-cache list", "no-cache=\"set-cookie, x-a\", max-age=0", 2, NULL},
        {"a token list is not a dictionary value", "no-cache=a, b, max-age=1", 3, "no-cache=a, b, max-age=1"},
        {"a space in a token value", "private=a b", BAD, NULL},
};

static void test_dict_table(void **state)
{
	(void)state;
	char out[1024];
	for (size_t i = 0; i < sizeof(dict_cases) / sizeof(dict_cases[0]); i++) {
		const struct dict_case *c = &dict_cases[i];
		/* the NUL case is one byte longer than its C string */
		size_t len = strcmp(c->what, "NUL") == 0 ? 4 : strlen(c->in);
		int rc = canon_dict(c->in, len, out, sizeof(out), NULL);
		if (rc != c->rc)
			fail_msg("%s: [%s] gave %d, want %d", c->what, c->in, rc, c->rc);
		if (rc >= 0 && strcmp(out, c->canon ? c->canon : c->in) != 0)
			fail_msg("%s: [%s] canonical [%s], want [%s]", c->what, c->in, out,
			         c->canon ? c->canon : c->in);
		/* the canonical form parses to itself */
		if (rc >= 0) {
			char again[1024];
			assert_true(canon_dict(out, strlen(out), again, sizeof(again), NULL) >= 0);
			assert_string_equal(again, out);
		}
	}
}

/* ---- §3 limits, at each bound and one past it ---------------------------- */

static char big[80000];

/* <n> copies of <unit> between <pre> and <post>, joined by <sep>. */
static size_t build(const char *pre, const char *unit, const char *sep, size_t n, const char *post)
{
	size_t o = (size_t)snprintf(big, sizeof(big), "%s", pre);
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "%s%s", i ? sep : "", unit);
	o += (size_t)snprintf(big + o, sizeof(big) - o, "%s", post);
	assert_true(o < sizeof(big) - 1);
	return o;
}

static int parse_big(size_t len)
{
	return sfv_dict_parse(big, len, NULL, NULL);
}

static void test_limits(void **state)
{
	(void)state;
	/* members: distinct keys k0..kN */
	size_t o = 0;
	for (int i = 0; i < SFV_DICT_MAX; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "%sk%d=%d", i ? ", " : "", i, i);
	assert_int_equal(parse_big(o), SFV_DICT_MAX);
	o += (size_t)snprintf(big + o, sizeof(big) - o, ", one=1");
	assert_int_equal(parse_big(o), BIG);
	/* duplicates count as written */
	assert_int_equal(parse_big(build("", "a=1", ",", SFV_DICT_MAX + 1, "")), BIG);

	assert_int_equal(parse_big(build("a=(", "1", " ", SFV_INNER_MAX, ")")), 1);
	assert_int_equal(parse_big(build("a=(", "1", " ", SFV_INNER_MAX + 1, ")")), BIG);
	assert_int_equal(parse_big(build("a", ";p", "", SFV_PARAMS_MAX, "")), 1);
	assert_int_equal(parse_big(build("a", ";p", "", SFV_PARAMS_MAX + 1, "")), BIG);
	assert_int_equal(parse_big(build("a=(1)", ";p", "", SFV_PARAMS_MAX + 1, "")), BIG);
	assert_int_equal(parse_big(build("a=(1", ";p", "", SFV_PARAMS_MAX + 1, ")")), BIG);

	assert_int_equal(parse_big(build("", "k", "", SFV_KEY_MAX, "=1")), 1);
	assert_int_equal(parse_big(build("", "k", "", SFV_KEY_MAX + 1, "=1")), BIG);
	assert_int_equal(parse_big(build("a;", "k", "", SFV_KEY_MAX + 1, "")), BIG);

	assert_int_equal(parse_big(build("a=\"", "s", "", SFV_STRING_MAX, "\"")), 1);
	assert_int_equal(parse_big(build("a=\"", "s", "", SFV_STRING_MAX + 1, "\"")), BIG);
	/* an escape is one character */
	assert_int_equal(parse_big(build("a=\"", "\\\\", "", SFV_STRING_MAX, "\"")), 1);

	assert_int_equal(parse_big(build("a=", "t", "", SFV_TOKEN_MAX, "")), 1);
	assert_int_equal(parse_big(build("a=", "t", "", SFV_TOKEN_MAX + 1, "")), BIG);

	/* 16384 bytes are 5462 groups of four, the last one "AA==" */
	assert_int_equal(parse_big(build("a=:", "AAAA", "", SFV_BYTES_MAX / 3, "AA==:")), 1);
	assert_int_equal(parse_big(build("a=:", "AAAA", "", SFV_BYTES_MAX / 3, "AAA=:")), BIG);
	assert_int_equal(parse_big(build("a=:", "AAAA", "", SFV_BYTES_MAX / 3 + 1, ":")), BIG);
}

/* ---- the readers ------------------------------------------------------- */

struct first {
	struct sfv_item it;
	int calls;
};

static void first_cb(const char *key, size_t len, const struct sfv_item *it, void *arg)
{
	struct first *f = arg;
	(void)key;
	(void)len;
	if (f->calls++ == 0)
		f->it = *it;
}

static void test_readers(void **state)
{
	(void)state;
	struct first f = {0};
	const char *s = "a=\"q\\\"\\\\\";x=1;y=:aGk=:;x=2, b";
	assert_int_equal(sfv_dict_parse(s, strlen(s), first_cb, &f), 2);
	assert_int_equal(f.calls, 2);
	char str[8];
	assert_int_equal(sfv_string_copy(&f.it.v, str, sizeof(str)), 3);
	assert_memory_equal(str, "q\"\\", 3);
	assert_int_equal(sfv_string_copy(&f.it.v, str, 2), -1); /* does not fit */
	struct sfv_bare v;
	assert_true(sfv_param_find(&f.it, "x", 1, &v));
	assert_int_equal(v.type, SFV_INTEGER);
	assert_int_equal(v.num, 2); /* the last x */
	assert_true(sfv_param_find(&f.it, "y", 1, &v));
	unsigned char bytes[4];
	assert_int_equal(sfv_bytes_decode(&v, bytes, sizeof(bytes)), 2);
	assert_memory_equal(bytes, "hi", 2);
	assert_int_equal(sfv_bytes_decode(&v, bytes, 1), -1);
	assert_int_equal(sfv_bytes_decode(&f.it.v, bytes, sizeof(bytes)), -1); /* a String */
	assert_false(sfv_param_find(&f.it, "z", 1, &v));
	assert_false(sfv_param_find(&f.it, "xx", 2, &v));

	/* a failed parse calls nothing, even for the members before the error */
	struct first g = {0};
	assert_int_equal(sfv_dict_parse("a=1, b=2, C=3", 13, first_cb, &g), BAD);
	assert_int_equal(g.calls, 0);

	/* Decimal values in thousandths, Inner List members in order */
	struct first h = {0};
	s = "a=(-1.5 2;q 3.25)";
	assert_int_equal(sfv_dict_parse(s, strlen(s), first_cb, &h), 1);
	assert_int_equal(h.it.v.type, SFV_INNER_LIST);
	size_t pos = 0;
	struct sfv_item m;
	int64_t want[] = {-1500, 2, 3250};
	for (int i = 0; i < 3; i++) {
		assert_true(sfv_inner_next(&h.it, &pos, &m));
		assert_int_equal(m.v.num, want[i]);
		assert_int_equal(m.v.type, i == 1 ? SFV_INTEGER : SFV_DECIMAL);
		assert_int_equal(sfv_param_find(&m, "q", 1, &v), i == 1);
	}
	assert_false(sfv_inner_next(&h.it, &pos, &m));
	assert_false(sfv_inner_next(&m, &pos, &m)); /* not an Inner List */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_dict_table),
	        cmocka_unit_test(test_limits),
	        cmocka_unit_test(test_readers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
