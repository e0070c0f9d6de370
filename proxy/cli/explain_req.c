/*
 * explain_req.c - the request of `levee explain`, from its command line:
 * METHOD, URL and "Name: value" headers are written as an HTTP/1.1 request
 * head and read by levee's own parser and checks (net/http1.c) under the
 * policy's limits, so that the head explained is the head levee would see,
 * and a request levee would refuse is reported as refused.
 *
 * The command line is checked first, for messages that name the argument:
 * a method must be a token, a URL a path ("/x?y") or an absolute http URL
 * with one ("http://host/x"), a header "Name: value" without control bytes.
 * Without a Host header an origin-form request gets "Host: localhost".
 */
#include "cli/explain_req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/http1.h"

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			return true;
	return false;
}

/* NULL when `url` is one levee parses as a target; else why not. */
static const char *url_check(const char *url)
{
	if (!*url)
		return "is empty";
	if (has_ctl(url) || strchr(url, ' '))
		return "holds a blank or a control byte";
	if (url[0] == '/')
		return NULL;
	if (strncasecmp(url, "https://", 8) == 0)
		return "is https: levee speaks plain HTTP to its clients; give the path (/x) or http://host/x";
	if (strncasecmp(url, "http://", 7) != 0)
		return "has no path: give a path (/x?y) or an absolute URL (http://host/x)";
	const char *a = url + 7;
	if (!*a || *a == '/' || *a == '?')
		return "has no host after http://";
	return NULL;
}

int explain_req_build(struct explain_req *q, const struct lv_policy *p, const char *method, const char *url,
                      char **headers, int nheaders, char *err, size_t errsz)
{
	memset(q, 0, sizeof(*q));
	if (!*method || strlen(method) > 32) {
		snprintf(err, errsz, "method \"%s\": expected a method such as GET (1-32 token characters)", method);
		return LV_ERR;
	}
	for (const char *m = method; *m; m++)
		if (!is_tchar((unsigned char)*m)) {
			snprintf(err, errsz, "method \"%s\": '%c' is not a token character", method, *m);
			return LV_ERR;
		}
	const char *why = url_check(url);
	if (why) {
		snprintf(err, errsz, "URL \"%s\" %s", url, why);
		return LV_ERR;
	}
	bool host = false;
	for (int i = 0; i < nheaders; i++) {
		const char *h = headers[i], *colon = strchr(h, ':');
		if (!colon) {
			snprintf(err, errsz, "header \"%s\": expected \"Name: value\" (no ':')", h);
			return LV_ERR;
		}
		if (colon == h) {
			snprintf(err, errsz, "header \"%s\": the name before ':' is empty", h);
			return LV_ERR;
		}
		for (const char *c = h; c < colon; c++)
			if (!is_tchar((unsigned char)*c)) {
				snprintf(err, errsz, "header \"%s\": '%c' cannot be in a header name", h, *c);
				return LV_ERR;
			}
		if (has_ctl(colon + 1)) {
			snprintf(err, errsz, "header \"%s\": a value cannot hold control bytes", h);
			return LV_ERR;
		}
		host |= (size_t)(colon - h) == 4 && strncasecmp(h, "host", 4) == 0;
	}

	/* the head as a client would send it */
	size_t cap = p->limits.header_bytes + 64;
	char *wire = malloc(cap);
	if (!wire) {
		snprintf(err, errsz, "out of memory");
		return LV_ERR;
	}
	size_t o = 0;
	bool over = false;
#define PUT(...)                                                                  \
	do {                                                                          \
		int n_ = snprintf(wire + o, cap - o, __VA_ARGS__);                        \
		if (n_ < 0 || (size_t)n_ >= cap - o)                                      \
			over = true;                                                          \
		else                                                                      \
			o += (size_t)n_;                                                      \
	} while (0)
	PUT("%s %s HTTP/1.1\r\n", method, url);
	q->default_host = !host && url[0] == '/';
	if (q->default_host)
		PUT("Host: localhost\r\n");
	for (int i = 0; i < nheaders && !over; i++)
		PUT("%s\r\n", headers[i]);
	PUT("\r\n");
#undef PUT
	if (over) {
		snprintf(err, errsz, "the request head is larger than [limits] header_bytes (%llu): levee would answer 431",
		         (unsigned long long)p->limits.header_bytes);
		free(wire);
		return LV_ERR;
	}

	/* the arena has room past the head for the cache key, as on a connection */
	q->text = malloc(p->limits.header_bytes + 2 * KEY_MAX_EXPLAIN);
	q->slots = calloc(p->limits.headers + 1, sizeof(*q->slots));
	if (!q->text || !q->slots) {
		snprintf(err, errsz, "out of memory");
		free(wire);
		explain_req_free(q);
		return LV_ERR;
	}
	q->head = (struct lv_head){.text = q->text,
	                           .cap = (uint32_t)(p->limits.header_bytes + 2 * KEY_MAX_EXPLAIN),
	                           .h = q->slots,
	                           .max = (uint32_t)p->limits.headers + 1};
	struct h1_limits lim = {(uint32_t)p->limits.header_bytes, (uint32_t)p->limits.headers,
	                        (uint32_t)p->limits.uri_bytes};
	struct http1 h;
	http1_init(&h, HTTP_REQUEST, &q->head, &lim);
	size_t used = 0;
	enum h1_result res = http1_feed(&h, wire, o, &used);
	free(wire);
	enum lv_reason reason = R_BAD_REQUEST;
	int status = 0;
	if (res != H1_HEAD_DONE) {
		status = res == H1_ERROR ? http1_error_status(&h) : 400;
		reason = res == H1_ERROR ? http1_error_reason(&h) : R_BAD_REQUEST;
	} else {
		status = http1_check_request(&q->head, &reason);
	}
	if (status) {
		snprintf(err, errsz, "levee would refuse this request: %d %s (%s)", status, lv_reasons[reason].token,
		         lv_reasons[reason].message);
		explain_req_free(q);
		return LV_ERR;
	}
	q->has_body = (q->head.flags & H1F_CHUNKED) || ((q->head.flags & H1F_HAS_CL) && q->head.content_length > 0);
	q->method_bit = policy_method_bit(q->head.text + q->head.method_off, q->head.method_len);
	return LV_OK;
}

void explain_req_free(struct explain_req *q)
{
	free(q->text);
	free(q->slots);
	q->text = NULL;
	q->slots = NULL;
}
