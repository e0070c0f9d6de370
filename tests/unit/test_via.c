/* test_via.c - levee's pseudonym in Via and the loop check that reads it:
 * a table of Via values that name this levee and of values that do not
 * (another levee, the pseudonym quoted in a comment or as a protocol, a
 * prefix of it), then whole heads, and the head levee itself writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <stdio.h>

#include "h1_feed.h"
#include "http/via.h"
#include "net/headers.h"

#define SELF "levee-00000000deadbeef"

static void test_pseudonym_shape(void **state)
{
	char p[VIA_PSEUDONYM_SIZE];
	via_pseudonym(p, 0xdeadbeefull);
	assert_string_equal(p, SELF);
	via_pseudonym(p, UINT64_MAX);
	assert_string_equal(p, "levee-ffffffffffffffff");
	assert_int_equal(strlen(p), VIA_PSEUDONYM_SIZE - 1);
}

static void test_value_table(void **state)
{
	static const struct {
		const char *value;
		bool names;
	} cases[] = {
	    {"1.1 " SELF, true},
	    {"1.0 fred, 1.1 " SELF, true},
	    {"1.1 " SELF ", 1.1 edge", true},
	    {"1.1 " SELF " (levee)", true},
	    {"HTTP/1.1 " SELF, true},
	    {"  1.1\t" SELF "  ,", true},
	    {"1.0 fred (a, b), 1.1 " SELF, true},     /* a comma inside a comment */
	    {"", false},
	    {"1.1 levee", false},                         /* another levee, or an old one */
	    {"1.1 levee-00000000deadbeee", false},        /* another process's */
	    {"1.1 " SELF "0", false},                     /* longer */
	    {"1.1 levee-00000000deadbee", false},         /* a prefix */
	    {SELF, false},                                /* a protocol, not a received-by */
	    {"1.1 fred (" SELF ")", false},               /* quoted in a comment */
	    {"1.1 fred (x (" SELF ") y), 1.1 z", false},  /* nested comment */
	    {"1.1 fred (\\) " SELF ")", false},           /* quoted-pair in a comment */
	    {"1.1 fred (never closed " SELF, false},
	    {"1.1 fred " SELF, false},                    /* a third word is no received-by */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = via_value_names(cases[i].value, strlen(cases[i].value), SELF);
		if (got != cases[i].names) {
			print_error("\"%s\": got %d, want %d\n", cases[i].value, got, cases[i].names);
			fail();
		}
	}
}

static bool head_names(const char *raw)
{
	static struct h1_fixture f;
	enum lv_reason reason;
	size_t used;
	assert_int_equal(h1_parse_request(&f, raw, strlen(raw), 0, &reason, &used), 0);
	return via_head_names(&f.head, SELF);
}

static void test_heads(void **state)
{
	assert_false(head_names("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
	assert_false(head_names("GET / HTTP/1.1\r\nHost: a\r\nVia: 1.1 levee\r\n\r\n"));
	/* any Via field, in any case, wherever it is */
	assert_true(head_names("GET / HTTP/1.1\r\nHost: a\r\nVia: 1.0 fred\r\nX: y\r\nvIA: 1.1 " SELF "\r\n\r\n"));
	/* not another field's value */
	assert_false(head_names("GET / HTTP/1.1\r\nHost: a\r\nX-Via: 1.1 " SELF "\r\n\r\n"));
}

/* What levee sends upstream names it, so that the same request back is
 * caught: the two halves agree. */
static void test_own_request_head_is_caught(void **state)
{
	static struct h1_fixture f;
	enum lv_reason reason;
	size_t used;
	const char *raw = "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.0 fred\r\n\r\n";
	assert_int_equal(h1_parse_request(&f, raw, strlen(raw), 0, &reason, &used), 0);
	struct reqhead_args a = {.request_id = "r", .client_ip = "192.0.2.1", .default_host = "h", .via = SELF};
	struct evbuffer *out = evbuffer_new();
	assert_true(headers_build_request(&f.head, &a, out) > 0);
	size_t len = evbuffer_get_length(out);
	char *s = calloc(1, len + 1);
	evbuffer_remove(out, s, len);
	evbuffer_free(out);
	assert_non_null(strstr(s, "Via: 1.0 fred\r\n")); /* the earlier hop stays, first */
	assert_true(strstr(s, "Via: 1.0 fred\r\n") < strstr(s, "Via: 1.1 " SELF "\r\n"));
	assert_non_null(strstr(s, "Via: 1.1 " SELF "\r\n"));
	assert_true(head_names(s));
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pseudonym_shape),
	    cmocka_unit_test(test_value_table),
	    cmocka_unit_test(test_heads),
	    cmocka_unit_test(test_own_request_head_is_caught),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
