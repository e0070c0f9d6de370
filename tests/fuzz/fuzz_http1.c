/* fuzz_http1.c - the HTTP/1 parsing glue and head rebuilding.
 *
 * Input: byte 0 picks the mode (request or response) and the read size, the
 * rest is the stream. Requests that pass levee's checks are rebuilt for the
 * upstream and their chunked body is decoded, as the proxy would. The
 * invariants checked: no crash or sanitizer report, a cookie's value (the
 * tiers' cohort key) lies inside the head, a method refused with 501 or
 * forwarded as an extension is a token inside the head, a request read in
 * pieces is accepted exactly when it is accepted whole, with the same
 * method and target, a rebuilt head is well-formed enough to parse again,
 * with the same method, and it never carries two framing headers. */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/h1_feed.h"
#include "net/headers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_body(void *arg, const char *p, size_t n)
{
	*(size_t *)arg += n;
	return 0;
}

static void check_rebuilt(struct evbuffer *out, const struct lv_head *orig)
{
	size_t len = evbuffer_get_length(out);
	char *copy = malloc(len + 1);
	evbuffer_copyout(out, copy, len);
	static struct h1_fixture again;
	/* levee adds up to five fields (Host, X-Forwarded-For/-Proto,
	 * X-Request-Id, Via) to what passed its own limit of 100 */
	again.max_headers = 128;
	enum lv_reason reason;
	size_t used;
	int st = h1_parse_request(&again, copy, len, 0, &reason, &used);
	/* what levee sends must itself be an acceptable request */
	if (st != 0)
		abort();
	int cl = head_find(&again.head, LIT("content-length"), 0);
	int te = head_find(&again.head, LIT("transfer-encoding"), 0);
	if (cl >= 0 && te >= 0)
		abort();
	if (again.head.method != orig->method || again.head.method_len != orig->method_len ||
	    memcmp(again.head.text + again.head.method_off, orig->text + orig->method_off, orig->method_len))
		abort();
	free(copy);
}

/* Whether two accepted heads have the same method and target. */
static bool same_line(const struct lv_head *a, const struct lv_head *b)
{
	return a->method == b->method && a->method_len == b->method_len && a->target_len == b->target_len &&
	       !memcmp(a->text + a->method_off, b->text + b->method_off, a->method_len) &&
	       !memcmp(a->text + a->target_off, b->text + b->target_off, a->target_len);
}

/* A method levee refused with 501, or forwards as an extension, is a whole
 * token (RFC 9110 §5.6.2), inside the head: what the access log names and
 * the request line upstream carries. */
static void check_unknown_method(const struct lv_head *hd)
{
	if (!hd->method_len || hd->method_off + hd->method_len > hd->len)
		abort();
	for (uint32_t i = 0; i < hd->method_len; i++) {
		unsigned char c = (unsigned char)hd->text[hd->method_off + i];
		bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		if (!alnum && !(c && strchr("!#$%&'*+-.^_`|~", c)))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct h1_fixture f;
	if (size < 1)
		return 0;
	bool response = data[0] & 0x80;
	size_t step = data[0] & 0x7f;
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	if (!response) {
		enum lv_reason reason;
		size_t used;
		int st = h1_parse_request(&f, in, len, step, &reason, &used);
		if (st == 501 && reason == R_METHOD_UNKNOWN)
			check_unknown_method(&f.head);
		if (step) {
			static struct h1_fixture whole;
			enum lv_reason wr;
			size_t wu;
			int wst = h1_parse_request(&whole, in, len, 0, &wr, &wu);
			if ((wst == 0) != (st == 0) || (st == 0 && (wu != used || !same_line(&whole.head, &f.head))))
				abort(); /* where the reads were cut changed the answer */
		}
		if (st != 0)
			return 0;
		if (f.head.method == HEAD_METHOD_EXTENSION)
			check_unknown_method(&f.head);
		/* a tier's cohort by cookie reads this: the value lies inside the head */
		size_t cl = 0;
		const char *cv = head_cookie(&f.head, "sid", &cl);
		if (cv && (cv < f.head.text || cv + cl > f.head.text + f.head.cap))
			abort();
		struct evbuffer *out = evbuffer_new();
		struct reqhead_args a = {.request_id = "fuzz", .client_ip = "192.0.2.1", .default_host = "up:80",
		                         .framing = (f.head.flags & H1F_CHUNKED) ? 2 : (f.head.flags & H1F_HAS_CL) ? 1 : 0,
		                         .content_length = f.head.content_length};
		if (headers_build_request(&f.head, &a, out) > 0)
			check_rebuilt(out, &f.head);
		evbuffer_free(out);
		if (f.head.flags & H1F_CHUNKED) {
			size_t body = 0, c;
			http1_set_body_cb(&f.parser, count_body, &body);
			http1_start_body(&f.parser);
			http1_feed(&f.parser, in + used, len - used, &c);
		}
		return 0;
	}
	h1_fixture_init(&f, HTTP_RESPONSE);
	size_t used = 0;
	enum h1_result rc = http1_feed(&f.parser, in, len, &used);
	if (rc == H1_HEAD_DONE) {
		enum lv_reason r;
		if (http1_check_response(&f.head, &r) == 0) {
			struct evbuffer *out = evbuffer_new();
			struct resphead_args a = {.request_id = "fuzz", .framing = 2};
			headers_build_response(&f.head, &a, out);
			evbuffer_free(out);
		}
	}
	return 0;
}
