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
	const char *via;          /* received-by of levee's Via member (its pseudonym, http/via.h); NULL: "levee" */
	const char *default_host; /* for HTTP/1.0 requests without Host */
	bool trust_forwarded;
	int framing;              /* 0 none, 1 Content-Length, 2 chunked */
	uint64_t content_length;
	const char *extra;        /* more complete "Name: value\r\n" lines (validators), or NULL */
	/* a cacheable request: leave out the fields headers_unkeyed_risk()
	 * names, but those listed in `keyed` ("a,b", lowercase: they are in
	 * the key), and the client's own X-Forwarded-For unless trusted */
	bool strip_unkeyed;
	const char *keyed;
	/* a field levee writes itself: the client's of that name (any case)
	 * is left out, and `replace` (a complete "Name: value\r\n" line, or
	 * NULL) goes in (the remaining budget, in the deadline header) */
	const char *drop;
	const char *replace;
	/* a request levee makes for the whole response (a background
	 * refresh): the client's Range and its conditionals (If-Range,
	 * If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since)
	 * are left out; the refresh carries the stored validators instead */
	bool whole;
};

/* Whether field `i` is one that can change an origin's answer while not
 * being part of a cache key: the forwarding family (X-Forwarded-Host,
 * Forwarded, X-Real-IP...) and the URL-rewrite family (X-Original-URL,
 * X-Rewrite-URL...), the headers web cache poisoning research uses
 * (docs/caching.md lists them). X-Forwarded-For and X-Forwarded-Proto are
 * not in it: levee writes those itself. */
bool headers_unkeyed_risk(const struct lv_head *hd, int i);
/* Whether the lowercase ',' list `list` names field `i`. */
bool headers_listed(const struct lv_head *hd, int i, const char *list);

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
