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

#endif
