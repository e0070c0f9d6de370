/*
 * head.h - a parsed HTTP message head: method or status, target, and header
 * fields as offsets into one text arena, with the helpers that read it.
 *
 * This is a leaf: it knows nothing of libevent or llhttp, so the cache's
 * pure modules (freshness, key) can take a head without the event loop.
 * net/http1.h fills a head from the wire; tests can fill one by hand.
 *
 * Ownership: a head borrows its arena (`text`) and its slots (`h`); it never
 * allocates and never frees them.
 */
#ifndef LEVEE_HTTP_HEAD_H
#define LEVEE_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lv_hdr {
	uint32_t name, name_len;   /* offsets into head->text */
	uint32_t value, value_len;
};

/* Facts levee derives from a head once it is complete. */
enum h1_flags {
	H1F_CHUNKED = 1u << 0,
	H1F_HAS_CL = 1u << 1,
	H1F_CONN_CLOSE = 1u << 2,
	H1F_CONN_KEEPALIVE = 1u << 3,
	H1F_EXPECT_CONTINUE = 1u << 4,
	H1F_ABSOLUTE_FORM = 1u << 5,
	H1F_HAS_TE = 1u << 6,
};

/* The methods the leaves compare `method` with. `method` holds llhttp's
 * llhttp_method_t; these are its values, checked against llhttp.h where the
 * two meet (net/http1.c), so that this header needs no llhttp. */
enum head_method {
	HEAD_METHOD_GET = 1,
	HEAD_METHOD_HEAD = 2,
	/* a method token llhttp does not know (BREW, QUERY, SETUP with
	 * HTTP/1.1): the head's method text says which; beyond llhttp's range */
	HEAD_METHOD_EXTENSION = 255,
};

struct lv_head {
	char *text;       /* arena: method, target, names, values */
	uint32_t cap, len;
	struct lv_hdr *h; /* header slots, `max` of them */
	uint32_t n, max;

	uint32_t method_off, method_len; /* requests */
	uint32_t target_off, target_len;
	uint32_t path_len;               /* target up to '?' */
	uint32_t reason_off, reason_len; /* responses */
	uint8_t major, minor;
	uint8_t method;                  /* llhttp_method_t (see enum head_method) */
	uint16_t status;

	/* derived, valid after a successful check */
	unsigned flags;
	uint64_t content_length;
	int host_idx;                    /* header index of Host, -1 if none */
	uint32_t authority_off, authority_len; /* Host value, or absolute-form authority */
};

static inline const char *head_str(const struct lv_head *hd, uint32_t off) { return hd->text + off; }

/* Header helpers. Names are compared case-insensitively. */
int head_find(const struct lv_head *hd, const char *name, size_t name_len, int from);
bool head_name_is(const struct lv_head *hd, int i, const char *name, size_t name_len);
/* The value of cookie `name` (case-sensitive, as cookie names are) in the
 * head's Cookie fields, the first one found, with its length in *len; NULL
 * when none names it. */
const char *head_cookie(const struct lv_head *hd, const char *name, size_t *len);
/* Calls cb for each comma-separated token of a header value (trimmed). */
void head_each_token(const char *v, size_t len, void (*cb)(const char *tok, size_t n, void *arg), void *arg);
bool token_eq(const char *a, size_t alen, const char *lit, size_t litlen);

#define LIT(s) (s), (sizeof(s) - 1)

#endif
