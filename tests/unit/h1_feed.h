/* Shared by the http1 unit test and fuzz target: parse one request head
 * from `data`, fed in pieces of `step` bytes (0 = all at once), then apply
 * levee's checks. Returns 0 when the request is accepted, else the status. */
#ifndef LEVEE_TEST_H1_FEED_H
#define LEVEE_TEST_H1_FEED_H

#include <stdlib.h>
#include <string.h>

#include "net/http1.h"

struct h1_fixture {
	struct lv_head head;
	struct lv_hdr slots[128];
	char text[32768];
	struct http1 parser;
	uint32_t max_headers; /* 0 = 100, levee's default limit */
	size_t body_len;      /* decoded chunked body bytes (h1_parse_message) */
};

static inline void h1_fixture_init(struct h1_fixture *f, llhttp_type_t type)
{
	memset(&f->head, 0, sizeof(f->head));
	f->head.h = f->slots;
	uint32_t hdrs = f->max_headers ? f->max_headers : 100;
	f->head.max = hdrs;
	f->head.text = f->text;
	f->head.cap = sizeof(f->text);
	struct h1_limits lim = {sizeof(f->text), hdrs, 8192};
	http1_init(&f->parser, type, &f->head, &lim);
}

/* *reason gets the reason for a non-zero result; *consumed the bytes used. */
static inline int h1_parse_request(struct h1_fixture *f, const char *data, size_t len, size_t step,
                                   enum lv_reason *reason, size_t *consumed)
{
	h1_fixture_init(f, HTTP_REQUEST);
	size_t off = 0;
	*reason = R_NONE;
	while (off < len) {
		size_t n = step ? (len - off < step ? len - off : step) : len - off;
		/* copy each piece so that llhttp cannot read past it */
		char *piece = malloc(n ? n : 1);
		memcpy(piece, data + off, n);
		size_t used = 0;
		enum h1_result rc = http1_feed(&f->parser, piece, n, &used);
		free(piece);
		off += used;
		if (rc == H1_ERROR) {
			*reason = http1_error_reason(&f->parser);
			*consumed = off;
			return http1_error_status(&f->parser);
		}
		if (rc == H1_HEAD_DONE) {
			*consumed = off;
			int st = http1_check_request(&f->head, reason);
			return st;
		}
	}
	*consumed = off;
	return -1; /* incomplete */
}

/* A response head fed at once and passed through levee's checks: true when
 * it is accepted. */
static inline bool h1_parse_response_head(struct h1_fixture *f, const char *data, size_t len)
{
	h1_fixture_init(f, HTTP_RESPONSE);
	size_t used;
	if (http1_feed(&f->parser, data, len, &used) != H1_HEAD_DONE)
		return false;
	enum lv_reason r;
	return http1_check_response(&f->head, &r) == 0;
}

/* h1_parse_response_head() into a fixture of its own (the caller frees
 * it), or NULL when the head is not accepted. */
static inline struct h1_fixture *h1_new_response(const char *raw)
{
	struct h1_fixture *f = calloc(1, sizeof(*f));
	if (f && !h1_parse_response_head(f, raw, strlen(raw))) {
		free(f);
		f = NULL;
	}
	return f;
}

static inline int h1_count_body(void *arg, const char *p, size_t n)
{
	((struct h1_fixture *)arg)->body_len += n;
	return 0;
}

/* A whole message as the proxy reads it: the head, levee's checks, then a
 * chunked body to its end, fed in pieces of `step` bytes (0 = all at once).
 * Returns 0 when it is accepted, -1 when the input ends first, else the
 * status levee answers with: for a response, any failure is the 502 the
 * client gets. */
static inline int h1_parse_message(struct h1_fixture *f, llhttp_type_t type, const char *data, size_t len,
                                   size_t step, enum lv_reason *reason)
{
	h1_fixture_init(f, type);
	f->body_len = 0;
	*reason = R_NONE;
	for (size_t off = 0; off < len;) {
		size_t n = step ? (len - off < step ? len - off : step) : len - off;
		char *piece = malloc(n);
		memcpy(piece, data + off, n);
		enum h1_result rc = H1_MORE;
		for (size_t pos = 0; pos < n && rc != H1_ERROR;) {
			size_t used = 0;
			rc = http1_feed(&f->parser, piece + pos, n - pos, &used);
			pos += used;
			if (rc == H1_HEAD_DONE) {
				int st = type == HTTP_REQUEST ? http1_check_request(&f->head, reason)
				                              : http1_check_response(&f->head, reason);
				if (st || !(f->head.flags & H1F_CHUNKED)) {
					free(piece);
					return st && type == HTTP_RESPONSE ? 502 : st;
				}
				http1_set_body_cb(&f->parser, h1_count_body, f);
				http1_start_body(&f->parser);
			} else if (rc == H1_MSG_DONE) {
				free(piece);
				return 0;
			}
		}
		free(piece);
		if (rc == H1_ERROR) {
			if (type == HTTP_RESPONSE) {
				*reason = R_UP_BAD;
				return 502;
			}
			*reason = http1_error_reason(&f->parser);
			return http1_error_status(&f->parser);
		}
		off += n;
	}
	return -1;
}

#endif
