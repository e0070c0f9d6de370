/*
 * http1.h - HTTP/1.x message heads: parsing glue over strict llhttp, and the
 * checks levee adds on top of it.
 *
 * A `struct http1` parses one message head at a time into a `struct lv_head`
 * (http/head.h) whose text lives in a caller-provided arena. Parsing pauses right after the
 * head; the caller decides how the body is read:
 *   - no body: http1_reset() and go on with the next message;
 *   - Content-Length body: the caller moves exactly that many bytes itself
 *     (zero-copy), then http1_reset();
 *   - chunked (and, for responses, close-delimited) body: the caller keeps
 *     feeding http1_feed(), which delivers decoded data to on_body, until it
 *     returns H1_MSG_DONE.
 *
 * Invariants: the parser never allocates; every byte of head text is bounded
 * by the arena size (the header_bytes limit); all lengths are checked before
 * any copy. In a chunked body, what is not chunk data is bounded too: at most
 * H1_CHUNK_FRAMING_MAX bytes between two chunks' data (a chunk-size line
 * with its extensions), and header_bytes of trailer section.
 */
#ifndef LEVEE_HTTP1_H
#define LEVEE_HTTP1_H

#include <event2/buffer.h>
#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/head.h"
#include "reason.h"

/* Result of a feed. */
enum h1_result {
	H1_MORE = 0,      /* need more bytes */
	H1_HEAD_DONE,     /* head complete; *consumed stops right after it */
	H1_MSG_DONE,      /* (body mode) message complete */
	H1_ERROR,         /* see http1_error() */
};

struct http1;
typedef int (*h1_body_cb)(void *arg, const char *data, size_t len);

/* The bytes allowed between the data of two chunks: the CRLF that ends one,
 * the next chunk-size line with its extensions, and its CRLF. Extensions
 * carry nothing levee uses (they are not forwarded); the bound only keeps a
 * peer from streaming an endless line. */
#define H1_CHUNK_FRAMING_MAX 4096

struct h1_limits {
	uint32_t header_bytes, headers, uri_bytes;
};

struct http1 {
	llhttp_t p;
	struct lv_head *head;
	struct h1_limits lim;
	h1_body_cb on_body;
	void *arg;
	uint64_t fed;          /* bytes of the head, or in body mode of the body */
	int status;            /* error status to answer (4xx/5xx), 0 if none */
	enum lv_reason reason; /* error reason */
	bool in_body;
	bool in_trailers;      /* (body mode) the trailer section has begun */
	bool line_start;       /* the last line-scanned byte was a LF */
	bool method_scan;      /* llhttp refused the method: levee reads the token itself (http1_feed) */
	bool ext_method;       /* llhttp parses this request behind a stand-in method (http1.c) */
	bool proto_seen;       /* the start line's "HTTP/" was checked (cb_version) */
	uint8_t tail_len;
	char tail[5];          /* start line: the last bytes of earlier reads, for cb_version */
	uint32_t method_mark;  /* head: the method's length before the current execute */
	enum { H1S_NONE, H1S_FIELD, H1S_VALUE } hstate; /* which header span is open */
	const char *exec_start; /* the buffer being executed */
	const char *scan_from; /* where line scanning starts in it, NULL for none */
	uint64_t exec_base;    /* `fed` before exec_start */
	uint64_t line_mark;    /* request line: where the next element must start */
	uint64_t frame_mark;   /* (body mode) where the framing after the last chunk's data began */
	uint64_t trailer_start; /* (body mode) where the trailer section began */
	uint32_t cur_name, cur_name_len, cur_value;
};

void http1_init(struct http1 *h, llhttp_type_t type, struct lv_head *head, const struct h1_limits *lim);
/* Forget the current message and get ready for the next head (keep-alive). */
void http1_reset(struct http1 *h);
/* Restart head parsing into a (possibly fresh) arena. */
void http1_set_head(struct http1 *h, struct lv_head *head);
void http1_set_body_cb(struct http1 *h, h1_body_cb cb, void *arg);
/* Continue into the body (chunked / close-delimited) after H1_HEAD_DONE. */
void http1_start_body(struct http1 *h);

/* Feed bytes. *consumed is how many were used; on H1_HEAD_DONE or
 * H1_MSG_DONE, the remainder belongs to what comes next. */
enum h1_result http1_feed(struct http1 *h, const char *data, size_t len, size_t *consumed);
/* Feeds what `in` holds until it is empty or the parser stops (head done,
 * message done, error), and drains the bytes used. *used gets their count. */
enum h1_result http1_feed_evbuffer(struct http1 *h, struct evbuffer *in, size_t *used);
/* EOF from the peer while in a close-delimited body; H1_MSG_DONE if that ends
 * the message cleanly, H1_ERROR if the message was truncated. */
enum h1_result http1_finish(struct http1 *h);

/* The status and reason token of the last H1_ERROR. */
static inline int http1_error_status(const struct http1 *h) { return h->status ? h->status : 400; }
static inline enum lv_reason http1_error_reason(const struct http1 *h) { return h->reason ? h->reason : R_BAD_REQUEST; }

/* Checks levee applies to a complete request head, beyond llhttp's: version,
 * method, target form, Host, framing, header bytes, Expect. Fills the derived
 * fields. Returns 0 when the request is acceptable, else the status to answer
 * with and sets *reason. */
int http1_check_request(struct lv_head *hd, enum lv_reason *reason);
/* Same for an upstream response head; a non-zero return means "bad response"
 * (502). `head_request` tells whether the request was HEAD. */
int http1_check_response(struct lv_head *hd, enum lv_reason *reason);

/* Whether a response with this status to this request carries a body. */
bool http1_response_has_body(const struct lv_head *resp, bool head_request);

#endif
