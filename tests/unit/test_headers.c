/* test_headers.c - rebuilt heads: hop-by-hop fields removed, forwarding
 * fields added, exactly one framing header, CRLF everywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <stdio.h>

#include "h1_feed.h"
#include "net/headers.h"

static char *rebuild_request(const char *raw, const struct reqhead_args *a)
{
	static struct h1_fixture f;
	enum lv_reason reason;
	size_t used;
	assert_int_equal(h1_parse_request(&f, raw, strlen(raw), 0, &reason, &used), 0);
	struct evbuffer *out = evbuffer_new();
	assert_true(headers_build_request(&f.head, a, out) > 0);
	size_t len = evbuffer_get_length(out);
	char *s = calloc(1, len + 1);
	evbuffer_remove(out, s, len);
	evbuffer_free(out);
	return s;
}

static const struct reqhead_args plain = {
    .request_id = "rid-1", .client_ip = "192.0.2.7", .default_host = "127.0.0.1:8080"};

static void test_request_hop_by_hop_removed(void **state)
{
	char *s = rebuild_request("GET /p?q=1 HTTP/1.1\r\nHost: svc\r\nConnection: keep-alive, X-Drop\r\n"
	                          "X-Drop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X\r\n"
	                          "Upgrade: websocket\r\nProxy-Connection: close\r\nX-Keep: yes\r\n\r\n",
	                          &plain);
	assert_non_null(strstr(s, "GET /p?q=1 HTTP/1.1\r\nHost: svc\r\n"));
	assert_non_null(strstr(s, "X-Keep: yes\r\n"));
	const char *gone[] = {"Connection", "X-Drop", "Keep-Alive", "TE:", "Trailer", "Upgrade", "Proxy-Connection"};
	for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
		if (strstr(s, gone[i])) {
			print_error("%s survived:\n%s\n", gone[i], s);
			fail();
		}
	free(s);
}

static void test_request_forwarding_fields(void **state)
{
	char *s = rebuild_request("GET / HTTP/1.1\r\nHost: svc\r\nX-Forwarded-For: 10.0.0.1\r\n"
	                          "X-Forwarded-For: 10.0.0.2\r\nX-Forwarded-Proto: https\r\n"
	                          "X-Request-Id: client-id\r\ntraceparent: 00-abc-def-01\r\nVia: 1.0 edge\r\n\r\n",
	                          &plain);
	assert_non_null(strstr(s, "X-Forwarded-For: 10.0.0.1, 10.0.0.2, 192.0.2.7\r\n"));
	assert_non_null(strstr(s, "X-Forwarded-Proto: http\r\n"));
	assert_null(strstr(s, "https")); /* not trusted by default */
	assert_non_null(strstr(s, "X-Request-Id: rid-1\r\n"));
	assert_null(strstr(s, "client-id")); /* the pipeline decides the id; it is passed in */
	assert_non_null(strstr(s, "traceparent: 00-abc-def-01\r\n"));
	assert_non_null(strstr(s, "Via: 1.0 edge\r\n"));
	assert_non_null(strstr(s, "Via: 1.1 levee\r\n"));
	free(s);

	struct reqhead_args trust = plain;
	trust.trust_forwarded = true;
	s = rebuild_request("GET / HTTP/1.1\r\nHost: svc\r\nX-Forwarded-Proto: https\r\n\r\n", &trust);
	assert_non_null(strstr(s, "X-Forwarded-Proto: https\r\n"));
	assert_null(strstr(s, "X-Forwarded-Proto: http\r\n"));
	free(s);
}

static void test_request_framing(void **state)
{
	struct reqhead_args a = plain;
	a.framing = 2;
	char *s = rebuild_request("POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n"
	                          "Expect: 100-continue\r\n\r\n",
	                          &a);
	assert_non_null(strstr(s, "Transfer-Encoding: chunked\r\n"));
	assert_null(strstr(s, "Content-Length"));
	assert_null(strstr(s, "Expect")); /* levee answers 100 Continue itself */
	free(s);
	a.framing = 1;
	a.content_length = 42;
	s = rebuild_request("PUT / HTTP/1.1\r\nHost: svc\r\nContent-Length: 42\r\n\r\n", &a);
	assert_non_null(strstr(s, "Content-Length: 42\r\n"));
	assert_null(strstr(s, "Transfer-Encoding"));
	char *first = strstr(s, "Content-Length");
	assert_null(strstr(first + 1, "Content-Length")); /* exactly one */
	free(s);
	/* HTTP/1.0 without Host: the upstream's address is the Host */
	a.framing = 0;
	s = rebuild_request("GET /x HTTP/1.0\r\n\r\n", &a);
	assert_non_null(strstr(s, "GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
	/* CRLF only: no bare LF anywhere */
	for (char *p = s; *p; p++)
		if (*p == '\n')
			assert_int_equal(p[-1], '\r');
	free(s);
}

static void test_response_rebuild(void **state)
{
	static struct h1_fixture f;
	h1_fixture_init(&f, HTTP_RESPONSE);
	const char *raw = "HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=3\r\n"
	                  "Transfer-Encoding: chunked\r\nCache-Control: max-age=1\r\n\r\n";
	size_t used;
	assert_int_equal(http1_feed(&f.parser, raw, strlen(raw), &used), H1_HEAD_DONE);
	enum lv_reason r;
	assert_int_equal(http1_check_response(&f.head, &r), 0);
	struct evbuffer *out = evbuffer_new();
	struct resphead_args a = {.request_id = "rid", .framing = 2};
	assert_true(headers_build_response(&f.head, &a, out) > 0);
	char buf[1024] = {0};
	evbuffer_remove(out, buf, sizeof(buf) - 1);
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "Cache-Control: max-age=1\r\n"));
	assert_non_null(strstr(buf, "Via: 1.1 levee\r\n"));
	assert_non_null(strstr(buf, "X-Request-Id: rid\r\n"));
	assert_non_null(strstr(buf, "Transfer-Encoding: chunked\r\n"));
	assert_null(strstr(buf, "X-Hop"));
	assert_null(strstr(buf, "Keep-Alive"));
	assert_null(strstr(buf, "Connection"));

	a = (struct resphead_args){.request_id = "rid", .framing = 1, .content_length = 7, .close = true};
	assert_true(headers_build_response(&f.head, &a, out) > 0);
	memset(buf, 0, sizeof(buf));
	evbuffer_remove(out, buf, sizeof(buf) - 1);
	assert_non_null(strstr(buf, "Content-Length: 7\r\n"));
	assert_non_null(strstr(buf, "Connection: close\r\n"));
	assert_null(strstr(buf, "Transfer-Encoding"));
	evbuffer_free(out);
}

static void test_request_id_validation(void **state)
{
	assert_true(headers_request_id_ok("abc-123", 7));
	assert_false(headers_request_id_ok("", 0));
	assert_false(headers_request_id_ok("a b", 3));
	char long_id[130];
	memset(long_id, 'a', sizeof(long_id));
	assert_true(headers_request_id_ok(long_id, 128));
	assert_false(headers_request_id_ok(long_id, 129));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_hop_by_hop_removed), cmocka_unit_test(test_request_forwarding_fields),
	    cmocka_unit_test(test_request_framing),            cmocka_unit_test(test_response_rebuild),
	    cmocka_unit_test(test_request_id_validation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
