/* test_key.c - cache keys: exactly the target as sent upstream, the host
 * normalised, the route's key headers appended, prefixes for purges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "cache/key.h"
#include "h1_feed.h"

struct key_case {
	const char *name;
	const char *raw;   /* request head */
	const char *extra; /* cache_key_headers */
	const char *want;  /* with '|' for KEY_SEP */
};

static const struct key_case cases[] = {
    {"plain", "GET /a HTTP/1.1\r\nHost: svc\r\n\r\n", "", "demo|/a|svc"},
    {"query kept as sent", "GET /a?b=2&a=1 HTTP/1.1\r\nHost: svc\r\n\r\n", "", "demo|/a?b=2&a=1|svc"},
    {"no decoding", "GET /a%2Fb?x=%20 HTTP/1.1\r\nHost: svc\r\n\r\n", "", "demo|/a%2Fb?x=%20|svc"},
    {"host lowercased", "GET / HTTP/1.1\r\nHost: SVC.Example\r\n\r\n", "", "demo|/|svc.example"},
    {"default port dropped", "GET / HTTP/1.1\r\nHost: svc:80\r\n\r\n", "", "demo|/|svc"},
    {"other port kept", "GET / HTTP/1.1\r\nHost: svc:8080\r\n\r\n", "", "demo|/|svc:8080"},
    {"port 180 is not 80", "GET / HTTP/1.1\r\nHost: svc:180\r\n\r\n", "", "demo|/|svc:180"},
    {"absolute form", "GET http://Other:80/p?q HTTP/1.1\r\nHost: ignored\r\n\r\n", "", "demo|/p?q|other"},
    {"head shares the key", "HEAD /a HTTP/1.1\r\nHost: svc\r\n\r\n", "", "demo|/a|svc"},
    {"key header", "GET / HTTP/1.1\r\nHost: h\r\nX-Tenant: t1\r\n\r\n", "x-tenant", "demo|/|h|x-tenant=t1"},
    {"key header absent", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "x-tenant", "demo|/|h|x-tenant!"},
    {"key header empty", "GET / HTTP/1.1\r\nHost: h\r\nX-Tenant:\r\n\r\n", "x-tenant", "demo|/|h|x-tenant="},
    {"key header lines joined", "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nA: 2\r\n\r\n", "a", "demo|/|h|a=1, 2"},
    {"two key headers in policy order", "GET / HTTP/1.1\r\nHost: h\r\nB: 2\r\nA: 1\r\n\r\n", "a,b", "demo|/|h|a=1|b=2"},
};

static void test_key_build(void **state)
{
	struct h1_fixture *f = calloc(1, sizeof(*f));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct key_case *c = &cases[i];
		enum lv_reason reason;
		size_t used;
		assert_int_equal(h1_parse_request(f, c->raw, strlen(c->raw), 0, &reason, &used), 0);
		char out[KEY_MAX];
		size_t n = key_build("demo", &f->head, c->extra, out, sizeof(out));
		for (size_t k = 0; k < n; k++)
			if (out[k] == KEY_SEP)
				out[k] = '|';
		if (n != strlen(c->want) || memcmp(out, c->want, n) != 0) {
			print_error("case '%s': got '%.*s', want '%s'\n", c->name, (int)n, out, c->want);
			fail();
		}
	}
	free(f);
}

/* The host part by policy: one canonical name for every name, or none. */
static void test_key_host_as(void **state)
{
	struct h1_fixture *f = calloc(1, sizeof(*f));
	static const struct {
		const char *raw, *host, *want;
	} as[] = {
	    {"GET /a HTTP/1.1\r\nHost: svc\r\n\r\n", "svc", "demo|/a|svc"},
	    {"GET /a HTTP/1.1\r\nHost: svc.ns.svc.cluster.local\r\n\r\n", "svc", "demo|/a|svc"},
	    {"GET /a HTTP/1.1\r\nHost: 10.0.0.5:8080\r\n\r\n", "Svc", "demo|/a|svc"},
	    {"GET http://Other/a HTTP/1.1\r\nHost: x\r\n\r\n", "svc", "demo|/a|svc"},
	    {"GET /a HTTP/1.1\r\nHost: 10.0.0.5:8080\r\n\r\n", "", "demo|/a|"},
	    {"GET /a HTTP/1.1\r\nHost: svc\r\nX-T: 1\r\n\r\n", "", "demo|/a||x-t=1"},
	    {"GET /a HTTP/1.1\r\nHost: Svc:80\r\n\r\n", NULL, "demo|/a|svc"},
	};
	for (size_t i = 0; i < sizeof(as) / sizeof(as[0]); i++) {
		enum lv_reason reason;
		size_t used;
		assert_int_equal(h1_parse_request(f, as[i].raw, strlen(as[i].raw), 0, &reason, &used), 0);
		char out[KEY_MAX];
		size_t n = key_build_as("demo", &f->head, as[i].host, strstr(as[i].raw, "X-T") ? "x-t" : "", out, sizeof(out));
		for (size_t k = 0; k < n; k++)
			if (out[k] == KEY_SEP)
				out[k] = '|';
		if (n != strlen(as[i].want) || memcmp(out, as[i].want, n) != 0) {
			print_error("case %zu: got '%.*s', want '%s'\n", i, (int)n, out, as[i].want);
			fail();
		}
	}
	/* a purge by path prefix covers the key whatever its host */
	char pre[KEY_MAX], full[KEY_MAX];
	size_t pn = key_path_prefix("demo", "/a", 2, pre, sizeof(pre));
	size_t n = key_build_as("demo", &f->head, "", "", full, sizeof(full));
	assert_true(pn > 0 && pn < n);
	assert_memory_equal(full, pre, pn);
	free(f);
}

static void test_key_overflow_and_prefix(void **state)
{
	struct h1_fixture *f = calloc(1, sizeof(*f));
	enum lv_reason reason;
	size_t used;
	const char *raw = "GET /long/path HTTP/1.1\r\nHost: svc\r\n\r\n";
	assert_int_equal(h1_parse_request(f, raw, strlen(raw), 0, &reason, &used), 0);
	char small[8];
	assert_int_equal(key_build("demo", &f->head, "", small, sizeof(small)), 0); /* does not fit: 0, never truncated */
	char full[KEY_MAX], pre[KEY_MAX];
	size_t n = key_build("demo", &f->head, "", full, sizeof(full));
	size_t pn = key_path_prefix("demo", "/long/", 6, pre, sizeof(pre));
	assert_true(pn > 0 && pn < n);
	assert_memory_equal(full, pre, pn); /* a purge of the path prefix covers the key */
	pn = key_path_prefix("other", "/long/", 6, pre, sizeof(pre));
	assert_false(pn <= n && memcmp(full, pre, pn) == 0); /* and only for its own service */
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_build),
	    cmocka_unit_test(test_key_host_as),
	    cmocka_unit_test(test_key_overflow_and_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
