/*
 * headers.h - rebuild message heads from parsed results.
 *
 * Nothing the client or upstream sent is copied as raw bytes: each head is
 * written field by field from the parsed lv_head, with CRLF line endings,
 * exactly one framing header, and hop-by-hop fields (RFC 9110 §7.6.1)
 * removed.
 */
#ifndef LEVEE_HEADERS_H
#define LEVEE_HEADERS_H

#include <event2/buffer.h>
#include <stdbool.h>

#include "net/http1.h"

/* What the request head needs besides the parsed client head. */
struct reqhead_args {
	const char *request_id;
	const char *client_ip;
	const char *default_host; /* for HTTP/1.0 requests without Host */
	bool trust_forwarded;
	int framing;              /* 0 none, 1 Content-Length, 2 chunked */
	uint64_t content_length;
	const char *extra;        /* more complete "Name: value\r\n" lines (validators), or NULL */
};

/* Appends the upstream request head to `out`. Returns bytes written or -1. */
int headers_build_request(const struct lv_head *hd, const struct reqhead_args *a, struct evbuffer *out);

struct resphead_args {
	const char *request_id;
	int framing;              /* 0 none (no body), 1 Content-Length, 2 chunked, 3 close-delimited */
	uint64_t content_length;
	bool keep_cl;             /* no body, but Content-Length describes it (HEAD, 304) */
	bool close;               /* add Connection: close */
	bool keepalive_10;        /* HTTP/1.0 client kept alive: Connection: keep-alive */
	const char *extra;        /* more complete "Name: value\r\n" lines (Cache-Status), or NULL */
};

int headers_build_response(const struct lv_head *hd, const struct resphead_args *a, struct evbuffer *out);

/* Whether header `i` must not cross a hop: the fixed hop-by-hop set or a
 * field named by Connection. */
bool headers_is_hop_by_hop(const struct lv_head *hd, int i);

/* A client-supplied X-Request-Id is kept when 1..128 visible ASCII chars. */
bool headers_request_id_ok(const char *v, size_t n);

#endif
