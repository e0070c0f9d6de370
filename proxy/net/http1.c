/*
 * http1.c - strict llhttp plus the checks llhttp leaves to us.
 *
 * llhttp (built with LLHTTP_STRICT_MODE=1) rejects bare LF, CL with TE,
 * duplicate Content-Length, bad chunk syntax and invalid tokens. It does not
 * reject obs-fold (it joins the folded line to the value, and after an empty
 * value nothing in its callbacks even shows the fold), HTTP/2.0 request
 * lines, fragments, Host problems, unknown transfer codings until later, or
 * 204/304 bodies once we pause at the head. Those are checked here, so that
 * anything that could be read two ways is refused before a single byte goes
 * upstream.
 *
 * obs-fold is found on the bytes themselves, not on llhttp's spans: in a
 * head and in a trailer section a LF is always the end of a line, so a SP or
 * HTAB right after one starts a folded line (or, after the start line,
 * whitespace RFC 9112 §2.2 says to reject). Chunk data may hold any bytes and
 * is never scanned.
 *
 * A method llhttp does not know (BREW, QUERY, a lowercase get; RTSP's with
 * HTTP/1.x) stops it in the request line, and strict llhttp cannot be told
 * to go on. Any token is a method (RFC 9110 §9.1), and a proxy forwards the
 * ones it does not know, as unsafe ones. So levee reads the token itself
 * (http1_method_scan) from where llhttp stopped (its first bytes, of earlier
 * reads, are the method span llhttp already gave cb_method), and once a SP
 * ends it, starts llhttp again on a stand-in method, "POST", followed by the
 * request's own bytes from that SP on (h1_stand_in): llhttp treats every
 * method but CONNECT alike past the method, so the rest of the request is
 * parsed, framed and checked exactly as a known method's would be. The head
 * keeps the real token, and `method` says HEAD_METHOD_EXTENSION. An RTSP
 * method llhttp refuses only at "HTTP/" is replayed the same way, with its
 * target (h1_rtsp_stand_in). Only a byte that cannot be in a token is a 400;
 * a token longer than a head may be is a 501.
 */
#include "net/http1.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* http/head.h names these without llhttp; they must stay llhttp's values. */
_Static_assert((int)HEAD_METHOD_GET == (int)HTTP_GET, "HEAD_METHOD_GET is llhttp's HTTP_GET");
_Static_assert((int)HEAD_METHOD_HEAD == (int)HTTP_HEAD, "HEAD_METHOD_HEAD is llhttp's HTTP_HEAD");

static const llhttp_settings_t *h1_settings(void);

static int h1_fail(struct http1 *h, int status, enum lv_reason reason)
{
	if (!h->status) {
		h->status = status;
		h->reason = reason;
	}
	return HPE_USER;
}

static int h1_append(struct http1 *h, const char *p, size_t n)
{
	struct lv_head *hd = h->head;
	if (n > hd->cap - hd->len)
		return -1;
	memcpy(hd->text + hd->len, p, n);
	hd->len += (uint32_t)n;
	return 0;
}

void http1_set_head(struct http1 *h, struct lv_head *head)
{
	h->head = head;
	if (!head)
		return;
	head->len = 0;
	head->n = 0;
	head->method_len = head->target_len = head->reason_len = head->path_len = 0;
	head->flags = 0;
	head->content_length = 0;
	head->host_idx = -1;
	head->authority_len = 0;
	head->status = 0;
}

void http1_init(struct http1 *h, llhttp_type_t type, struct lv_head *head, const struct h1_limits *lim)
{
	memset(h, 0, sizeof(*h));
	llhttp_init(&h->p, type, h1_settings());
	h->p.data = h;
	h->lim = *lim;
	http1_set_head(h, head);
}

void http1_reset(struct http1 *h)
{
	llhttp_reset(&h->p);
	h->p.data = h;
	h->fed = 0;
	h->status = 0;
	h->reason = R_NONE;
	h->in_body = h->in_trailers = h->line_start = h->method_scan = h->ext_method = h->proto_seen = false;
	h->tail_len = 0;
	h->hstate = H1S_NONE;
	http1_set_head(h, h->head);
}

void http1_set_body_cb(struct http1 *h, h1_body_cb cb, void *arg)
{
	h->on_body = cb;
	h->arg = arg;
}

void http1_start_body(struct http1 *h)
{
	h->in_body = true;
	h->fed = h->frame_mark = 0;
	h->line_start = false;
	llhttp_resume(&h->p);
}

/* ---- llhttp callbacks -------------------------------------------------- */

#define H1(p) ((struct http1 *)(p)->data)

/* Position of `at` from the start of the message head. */
static uint64_t h1_pos(const struct http1 *h, const char *at)
{
	return h->exec_base + (uint64_t)(at - h->exec_start);
}

/* llhttp accepts several spaces between the parts of a request line; RFC
 * 9112 §3 allows exactly one, and anything else is a line some other parser
 * may split differently. `gap` is what must precede the element. */
static int h1_line_element(struct http1 *h, const char *at, uint64_t gap)
{
	if (h1_pos(h, at) != h->line_mark + gap)
		return h1_fail(h, 400, R_BAD_REQUEST);
	return 0;
}

static int cb_method(llhttp_t *p, const char *at, size_t n)
{
	struct http1 *h = H1(p);
	if (h->ext_method) { /* the stand-in: the head has the real token */
		h->line_mark = h1_pos(h, at) + n;
		return 0;
	}
	if (!h->head->method_len)
		h->head->method_off = h->head->len;
	if (h1_append(h, at, n))
		return h1_fail(h, 400, R_BAD_REQUEST);
	h->head->method_len += (uint32_t)n;
	h->line_mark = h1_pos(h, at) + n;
	return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t n)
{
	struct http1 *h = H1(p);
	struct lv_head *hd = h->head;
	if (p->type == HTTP_REQUEST && h1_line_element(h, at, hd->target_len ? 0 : 1))
		return HPE_USER;
	h->line_mark = h1_pos(h, at) + n;
	if (!hd->target_len)
		hd->target_off = hd->len;
	if (hd->target_len + n > h->lim.uri_bytes)
		return h1_fail(h, 414, R_URI_TOO_LONG);
	if (h1_append(h, at, n))
		return h1_fail(h, 431, R_HEADERS_TOO_LARGE);
	hd->target_len += (uint32_t)n;
	return 0;
}

/* Keeps the last bytes of data[0, n) (the start line's, read so far) for
 * cb_version's look back at the protocol name. */
static void h1_note_tail(struct http1 *h, const char *data, size_t n)
{
	if (h->proto_seen || h->in_body)
		return;
	size_t keep = sizeof h->tail;
	if (n >= keep) {
		memcpy(h->tail, data + n - keep, keep);
		h->tail_len = (uint8_t)keep;
		return;
	}
	size_t old = h->tail_len + n > keep ? keep - n : h->tail_len;
	memmove(h->tail, h->tail + h->tail_len - old, old);
	memcpy(h->tail + old, data, n);
	h->tail_len = (uint8_t)(old + n);
}

/* llhttp also takes RTSP/x.x and ICE/x.x start lines, and tells its
 * callbacks nothing of which it saw: the five bytes before the version's
 * digits, in this buffer or kept from earlier ones, must be "HTTP/". */
static bool h1_protocol_is_http(const struct http1 *h, const char *at)
{
	static const char want[] = "HTTP/";
	size_t k = sizeof want - 1, here = (size_t)(at - h->exec_start);
	if (here >= k) /* the usual case: the whole start line in one read */
		return at[-5] == 'H' && at[-4] == 'T' && at[-3] == 'T' && at[-2] == 'P' && at[-1] == '/';
	size_t from_here = here, from_tail = k - from_here;
	if (from_tail > h->tail_len)
		return false;
	return memcmp(h->tail + h->tail_len - from_tail, want, from_tail) == 0 &&
	       memcmp(at - from_here, want + from_tail, from_here) == 0;
}

static int cb_version(llhttp_t *p, const char *at, size_t n)
{
	struct http1 *h = H1(p);
	if (!h->in_body && !h->proto_seen) {
		if (!h1_protocol_is_http(h, at))
			return h1_fail(h, 400, R_BAD_REQUEST);
		h->proto_seen = true;
	}
	/* " HTTP/" sits between the target and the version digits */
	if (p->type == HTTP_REQUEST && !h->in_body && h1_line_element(h, at, 6))
		return HPE_USER;
	h->line_mark = h1_pos(h, at) + n - 6; /* a split version span continues */
	return 0;
}

static int cb_status(llhttp_t *p, const char *at, size_t n)
{
	struct http1 *h = H1(p);
	if (!h->head->reason_len)
		h->head->reason_off = h->head->len;
	if (h1_append(h, at, n))
		return h1_fail(h, 431, R_HEADERS_TOO_LARGE);
	h->head->reason_len += (uint32_t)n;
	return 0;
}

/* Body mode: the chunk framing that ends at `pos` (where data or the
 * trailers begin, or where the input stops) is within its bound. */
static int h1_framing_ok(struct http1 *h, uint64_t pos)
{
	if (pos - h->frame_mark > H1_CHUNK_FRAMING_MAX)
		return h1_fail(h, 400, R_BAD_REQUEST);
	return 0;
}

static int cb_header_field(llhttp_t *p, const char *at, size_t n)
{
	struct http1 *h = H1(p);
	struct lv_head *hd = h->head;
	if (h->in_body) {
		/* Trailers are read (llhttp must parse them to find the end of
		 * the message) but never stored or forwarded; http1_feed()
		 * bounds the section. Its first field starts a line: scan from
		 * there. */
		if (h->in_trailers)
			return 0;
		h->in_trailers = true;
		h->trailer_start = h1_pos(h, at);
		h->scan_from = at;
		return h1_framing_ok(h, h->trailer_start);
	}
	if (h->hstate != H1S_FIELD) {
		/* a new field starts */
		if (hd->n >= hd->max || hd->n >= h->lim.headers)
			return h1_fail(h, 431, R_HEADERS_TOO_LARGE);
		h->hstate = H1S_FIELD;
		h->cur_name = hd->len;
		h->cur_name_len = 0;
	}
	if (h1_append(h, at, n))
		return h1_fail(h, 431, R_HEADERS_TOO_LARGE);
	h->cur_name_len += (uint32_t)n;
	return 0;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t n)
{
	struct http1 *h = H1(p);
	if (h->in_body)
		return 0;
	if (h->hstate != H1S_VALUE) {
		h->hstate = H1S_VALUE;
		h->cur_value = h->head->len;
	}
	/* a value in several spans was cut by buffer boundaries; a fold
	 * would also continue it, but h1_scan_lines() refuses those */
	if (h1_append(h, at, n))
		return h1_fail(h, 431, R_HEADERS_TOO_LARGE);
	return 0;
}

static int cb_header_value_complete(llhttp_t *p)
{
	struct http1 *h = H1(p);
	struct lv_head *hd = h->head;
	if (h->in_body)
		return 0;
	if (h->hstate == H1S_NONE || h->cur_name_len == 0) /* ": value" has no name */
		return h1_fail(h, 400, R_BAD_REQUEST);
	if (h->hstate != H1S_VALUE) /* empty value: no span was delivered */
		h->cur_value = hd->len;
	struct lv_hdr *e = &hd->h[hd->n++];
	e->name = h->cur_name;
	e->name_len = h->cur_name_len;
	e->value = h->cur_value;
	e->value_len = hd->len - h->cur_value;
	h->hstate = H1S_NONE;
	return 0;
}

static int cb_headers_complete(llhttp_t *p)
{
	struct http1 *h = H1(p);
	struct lv_head *hd = h->head;
	if (h->in_body) /* end of trailers */
		return 0;
	hd->major = p->http_major;
	hd->minor = p->http_minor;
	hd->method = h->ext_method ? HEAD_METHOD_EXTENSION : p->method;
	hd->status = p->status_code;
	return HPE_PAUSED;
}

static int cb_body(llhttp_t *p, const char *at, size_t n)
{
	struct http1 *h = H1(p);
	uint64_t pos = h1_pos(h, at);
	if (h1_framing_ok(h, pos))
		return HPE_USER;
	h->frame_mark = pos + n;
	if (h->on_body && h->on_body(h->arg, at, n))
		return h1_fail(h, 500, R_INTERNAL);
	return 0;
}

static int cb_message_complete(llhttp_t *p)
{
	return HPE_PAUSED;
}

static const llhttp_settings_t *h1_settings(void)
{
	static llhttp_settings_t s;
	static int ready;
	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
		llhttp_settings_t t;
		llhttp_settings_init(&t);
		t.on_method = cb_method;
		t.on_url = cb_url;
		t.on_version = cb_version;
		t.on_status = cb_status;
		t.on_header_field = cb_header_field;
		t.on_header_value = cb_header_value;
		t.on_header_value_complete = cb_header_value_complete;
		t.on_headers_complete = cb_headers_complete;
		t.on_body = cb_body;
		t.on_message_complete = cb_message_complete;
		s = t;
		__atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
	}
	return &s;
}

/* ---- feeding ----------------------------------------------------------- */

static int h1_errno_status(struct http1 *h, llhttp_errno_t e)
{
	switch (e) {
	case HPE_USER:
		return h->status ? h->status : 400;
	case HPE_INVALID_VERSION:
		h1_fail(h, 505, R_VERSION);
		return 505;
	case HPE_INVALID_TRANSFER_ENCODING:
		/* chunked not last, or repeated: the length cannot be known
		 * (RFC 9112 §6.3), which is a 400, unlike an unknown coding */
		h1_fail(h, 400, R_BAD_REQUEST);
		return 400;
	default:
		h1_fail(h, 400, R_BAD_REQUEST);
		return 400;
	}
}

/* Refuses a folded line in [h->scan_from, end): a SP or HTAB right after a
 * LF (see the top of this file). h->line_start carries the last byte over to
 * the next buffer, so a fold is found wherever the reads were cut. */
static bool h1_scan_lines(struct http1 *h, const char *end)
{
	const char *p = h->scan_from;
	if (!p)
		return true;
	while (p < end) {
		if (h->line_start && (*p == ' ' || *p == '\t')) {
			h1_fail(h, 400, R_BAD_REQUEST);
			return false;
		}
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		h->line_start = lf != NULL;
		p = lf ? lf + 1 : end;
	}
	return true;
}

/* RFC 9110 §5.6.2 tchar. */
static bool h1_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Starts llhttp again on `syn` (a stand-in method, with the target and
 * " HTTP/" for an RTSP method), as if its bytes ended where the request's
 * bytes read so far end (h->fed, data[skip] being the next), so that
 * positions past it stay true; then feeds data[skip, len) as usual. */
static enum h1_result h1_stand_in(struct http1 *h, const char *syn, size_t n, const char *data, size_t len,
                                  size_t skip, size_t *consumed)
{
	llhttp_reset(&h->p);
	h->p.data = h;
	h->ext_method = true;
	h->line_start = false; /* mid-line: a SP next is not a fold */
	h->exec_start = syn;
	h->exec_base = h->fed - n; /* unsigned: may wrap, h1_pos() wraps back */
	h->scan_from = NULL;
	llhttp_errno_t e = llhttp_execute(&h->p, syn, n);
	if (e != HPE_OK) {
		h1_errno_status(h, e);
		return H1_ERROR;
	}
	size_t rest = 0;
	enum h1_result rc = http1_feed(h, data + skip, len - skip, &rest);
	if (rc != H1_ERROR)
		*consumed = skip + rest;
	return rc;
}

/* The method token goes on in data[0, len) (see the top of this file):
 * its bytes join the head's method; a SP after at least one ends it, and
 * llhttp parses the rest behind a stand-in (h1_stand_in); any other byte
 * that is not a tchar is a 400; at the end of the data it waits for more
 * (H1_MORE, all consumed). */
static enum h1_result http1_method_scan(struct http1 *h, const char *data, size_t len, size_t *consumed)
{
	struct lv_head *hd = h->head;
	size_t i = 0;
	if (!hd->method_len)
		while (i < len && (data[i] == '\r' || data[i] == '\n'))
			i++; /* the empty lines llhttp skips before a request line */
	size_t start = i;
	while (i < len && h1_tchar((unsigned char)data[i]))
		i++;
	if (i > start) {
		if (!hd->method_len)
			hd->method_off = hd->len;
		if (h1_append(h, data + start, i - start)) {
			h1_fail(h, 501, R_METHOD_UNKNOWN); /* longer than a head may be: still a token */
			return H1_ERROR;
		}
		hd->method_len += (uint32_t)(i - start);
	}
	h1_note_tail(h, data, i);
	h->fed += i;
	if (i == len) {
		*consumed = len;
		h->method_scan = true;
		return H1_MORE;
	}
	*consumed = 0;
	if (data[i] != ' ' || !hd->method_len) {
		h1_fail(h, 400, R_BAD_REQUEST);
		return H1_ERROR;
	}
	/* HEAD and CONNECT decide how a response is framed: spelt another
	 * way (head, Connect), a lenient origin could take one for them and
	 * answer without the body levee would wait for, or open a tunnel */
	if (token_eq(hd->text + hd->method_off, hd->method_len, LIT("head")) ||
	    token_eq(hd->text + hd->method_off, hd->method_len, LIT("connect"))) {
		h1_fail(h, 501, R_METHOD_UNKNOWN);
		return H1_ERROR;
	}
	/* the token is whole: llhttp reads on from its SP behind "POST" */
	h->method_scan = false;
	static const char stand_in[] = "POST";
	return h1_stand_in(h, stand_in, sizeof stand_in - 1, data, len, i, consumed);
}

/* Whether llhttp's error <e> is about a request line's method: a token it
 * does not know or a known one's prefix ("GETX"), or an RTSP method with
 * HTTP/1.x (only the version follows it then, so its span is whole). */
static bool h1_method_refused(const struct http1 *h, llhttp_errno_t e)
{
	if (h->p.type != HTTP_REQUEST || h->in_body || h->head->n)
		return false;
	if (e == HPE_INVALID_METHOD)
		return !h->head->target_len;
	return e == HPE_INVALID_CONSTANT && h->p.method >= HTTP_DESCRIBE && h->p.method <= HTTP_FLUSH;
}

/* An RTSP method (SETUP, PLAY...) with "HTTP/": llhttp stops right after
 * "HTTP/", where the version digits begin, with the method and the target
 * in the head, the target last. They are given to llhttp again behind the
 * stand-in, and the request's own bytes follow from the digits on. */
static enum h1_result h1_rtsp_stand_in(struct http1 *h, const char *data, size_t len, size_t *consumed)
{
	struct lv_head *hd = h->head;
	size_t at = (size_t)(llhttp_get_error_pos(&h->p) - data);
	if (!hd->method_len || !hd->target_len || hd->target_off + hd->target_len != hd->len ||
	    h->exec_base + at != h->line_mark + 6) {
		h1_fail(h, 501, R_METHOD_UNKNOWN);
		return H1_ERROR;
	}
	/* llhttp stops there too on "/x  HTTP1.1" and the like: replay only
	 * what really said HTTP/ */
	if (!h1_protocol_is_http(h, data + at)) {
		h1_fail(h, 400, R_BAD_REQUEST);
		return H1_ERROR;
	}
	static const char pre[] = "POST ", post[] = " HTTP/";
	size_t tn = hd->target_len, n = sizeof pre - 1 + tn + sizeof post - 1;
	char *syn = malloc(n);
	if (!syn) {
		h1_fail(h, 500, R_INTERNAL);
		return H1_ERROR;
	}
	memcpy(syn, pre, sizeof pre - 1);
	memcpy(syn + sizeof pre - 1, hd->text + hd->target_off, tn);
	memcpy(syn + sizeof pre - 1 + tn, post, sizeof post - 1);
	hd->len = hd->target_off; /* cb_url appends it again */
	hd->target_len = 0;
	h1_note_tail(h, data, at);
	h->fed += at;
	enum h1_result rc = h1_stand_in(h, syn, n, data, len, at, consumed);
	free(syn);
	return rc;
}

/* llhttp refused the method (h1_method_refused): the token as far as it
 * goes, read by levee, then 501 or 400 (see the top of this file). */
static enum h1_result http1_method_refused(struct http1 *h, llhttp_errno_t e, const char *data, size_t len,
                                           size_t *consumed)
{
	*consumed = 0;
	if (e == HPE_INVALID_CONSTANT)
		return h1_rtsp_stand_in(h, data, len, consumed);
	/* what this execute read up to where it stopped is all method bytes
	 * (after empty lines); the part of a known method it gave cb_method
	 * is taken back, so that it is read once, here */
	struct lv_head *hd = h->head;
	uint32_t given = hd->method_len - h->method_mark;
	hd->method_len -= given;
	hd->len -= given;
	size_t upto = (size_t)(llhttp_get_error_pos(&h->p) - data), used;
	enum h1_result rc = http1_method_scan(h, data, upto, &used);
	if (rc != H1_MORE)
		return rc;
	rc = http1_method_scan(h, data + upto, len - upto, &used);
	if (rc != H1_ERROR)
		*consumed = upto + used;
	return rc;
}

enum h1_result http1_feed(struct http1 *h, const char *data, size_t len, size_t *consumed)
{
	if (h->method_scan)
		return http1_method_scan(h, data, len, consumed);
	h->exec_start = data;
	h->exec_base = h->fed;
	/* a head is scanned whole, a body from its trailer section on */
	h->scan_from = h->in_body && !h->in_trailers ? NULL : data;
	if (!h->in_body && h->head)
		h->method_mark = h->head->method_len;
	llhttp_errno_t e = llhttp_execute(&h->p, data, len);
	if (e != HPE_OK && e != HPE_PAUSED) {
		if (h1_method_refused(h, e))
			return http1_method_refused(h, e, data, len, consumed);
		*consumed = 0;
		h1_errno_status(h, e);
		return H1_ERROR;
	}
	*consumed = e == HPE_OK ? len : (size_t)(llhttp_get_error_pos(&h->p) - data);
	h1_note_tail(h, data, *consumed);
	h->fed += *consumed;
	if (!h1_scan_lines(h, data + *consumed))
		return H1_ERROR;
	/* Bounds are checked where the input stops as well, so that no part of
	 * a message grows without limit however it is spread over reads: the
	 * head, the framing between chunks, the trailer section. */
	if (h->in_body && !h->in_trailers) {
		if (h1_framing_ok(h, h->fed))
			return H1_ERROR;
	} else if (h->fed - (h->in_trailers ? h->trailer_start : 0) > h->lim.header_bytes) {
		h1_fail(h, 431, R_HEADERS_TOO_LARGE);
		return H1_ERROR;
	}
	if (e == HPE_OK)
		return H1_MORE;
	return h->in_body ? H1_MSG_DONE : H1_HEAD_DONE;
}

enum h1_result http1_feed_evbuffer(struct http1 *h, struct evbuffer *in, size_t *used)
{
	enum h1_result rc = H1_MORE;
	*used = 0;
	while (rc == H1_MORE && evbuffer_get_length(in)) {
		struct evbuffer_iovec v[8];
		int nv = evbuffer_peek(in, -1, NULL, v, 8);
		size_t n = 0;
		for (int i = 0; i < nv && i < 8 && rc == H1_MORE; i++) {
			size_t consumed = 0;
			rc = http1_feed(h, v[i].iov_base, v[i].iov_len, &consumed);
			n += consumed;
		}
		evbuffer_drain(in, n);
		*used += n;
	}
	return rc;
}

enum h1_result http1_finish(struct http1 *h)
{
	llhttp_errno_t e = llhttp_finish(&h->p);
	if (e == HPE_OK || e == HPE_PAUSED)
		return H1_MSG_DONE;
	h1_errno_status(h, e);
	return H1_ERROR;
}

/* ---- request and response checks --------------------------------------- */

/* RFC 3986 allows any run of digits as a port, none included. levee takes
 * only a port a connection could be made to, written one way: 1-65535,
 * without leading zeros. The rest is read differently by different
 * software: an empty port as the default one or as an error, 99999 as
 * 34463 once truncated to 16 bits, 080 as 80 or as octal. */
static bool port_ok(const char *s, size_t n)
{
	if (n == 0 || n > 5 || s[0] < '1' || s[0] > '9')
		return false;
	uint32_t port = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		port = port * 10 + (uint32_t)(s[i] - '0');
	}
	return port <= 65535;
}

/* RFC 3986 reg-name / IPv4 / IP-literal, with an optional port. */
static bool authority_ok(const char *s, size_t n)
{
	if (n == 0 || n > 255)
		return false;
	size_t i = 0;
	if (s[0] == '[') {
		for (i = 1; i < n && s[i] != ']'; i++) {
			char c = s[i];
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
			      c == ':' || c == '.'))
				return false;
		}
		if (i >= n)
			return false;
		i++;
	} else {
		for (; i < n && s[i] != ':'; i++) {
			unsigned char c = (unsigned char)s[i];
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c && strchr("-._~!$&'()*+,;=%", c))))
				return false;
		}
		if (i == 0)
			return false;
	}
	if (i < n) {
		if (s[i] != ':')
			return false;
		return port_ok(s + i + 1, n - i - 1);
	}
	return true;
}

static bool value_ok(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

struct conn_tokens {
	unsigned flags;
};

static void conn_token(const char *t, size_t n, void *arg)
{
	struct conn_tokens *ct = arg;
	if (token_eq(t, n, LIT("close")))
		ct->flags |= H1F_CONN_CLOSE;
	else if (token_eq(t, n, LIT("keep-alive")))
		ct->flags |= H1F_CONN_KEEPALIVE;
}

/* Framing and Connection facts common to requests and responses. Returns 0 or
 * a status (400 for requests; the caller maps to 502 for responses). */
static int head_framing(struct lv_head *hd, bool request, enum lv_reason *reason)
{
	int cl = -1, te = -1;
	struct conn_tokens ct = {0};
	for (uint32_t i = 0; i < hd->n; i++) {
		const struct lv_hdr *e = &hd->h[i];
		const char *v = hd->text + e->value;
		if (!value_ok(v, e->value_len)) {
			*reason = R_BAD_REQUEST;
			return 400;
		}
		if (head_name_is(hd, (int)i, LIT("content-length"))) {
			if (cl >= 0 || e->value_len == 0 || e->value_len > 19) {
				*reason = R_BAD_REQUEST;
				return 400;
			}
			uint64_t x = 0;
			for (uint32_t k = 0; k < e->value_len; k++) {
				if (v[k] < '0' || v[k] > '9') {
					*reason = R_BAD_REQUEST;
					return 400;
				}
				x = x * 10 + (uint64_t)(v[k] - '0');
			}
			cl = (int)i;
			hd->content_length = x;
			hd->flags |= H1F_HAS_CL;
		} else if (head_name_is(hd, (int)i, LIT("transfer-encoding"))) {
			if (te >= 0) {
				*reason = R_BAD_REQUEST;
				return 400;
			}
			te = (int)i;
			hd->flags |= H1F_HAS_TE;
		} else if (head_name_is(hd, (int)i, LIT("connection"))) {
			head_each_token(v, e->value_len, conn_token, &ct);
		}
	}
	hd->flags |= ct.flags;
	if (cl >= 0 && te >= 0) {
		*reason = R_BAD_REQUEST;
		return 400;
	}
	if (te >= 0) {
		const struct lv_hdr *e = &hd->h[te];
		if (request && hd->minor == 0) { /* TE is not defined for HTTP/1.0 */
			*reason = R_BAD_REQUEST;
			return 400;
		}
		const char *v = hd->text + e->value;
		if (!token_eq(v, e->value_len, LIT("chunked"))) {
			/* RFC 9112 §6.3: chunked not last means the length cannot
			 * be known (400); chunked last after codings levee does
			 * not implement is a 501 */
			size_t end = e->value_len, start;
			while (end && (v[end - 1] == ' ' || v[end - 1] == '\t'))
				end--;
			start = end;
			while (start && v[start - 1] != ',' && v[start - 1] != ' ' && v[start - 1] != '\t')
				start--;
			bool chunked_last = token_eq(v + start, end - start, LIT("chunked"));
			*reason = chunked_last ? R_TE : R_BAD_REQUEST;
			return chunked_last ? 501 : 400;
		}
		hd->flags |= H1F_CHUNKED;
	}
	return 0;
}

int http1_check_request(struct lv_head *hd, enum lv_reason *reason)
{
	*reason = R_BAD_REQUEST;
	if (hd->major != 1 || hd->minor > 1) {
		*reason = R_VERSION;
		return 505;
	}
	if (hd->method == HTTP_CONNECT) {
		*reason = R_METHOD;
		return 405;
	}
	if (hd->target_len == 0)
		return 400;
	const char *t = hd->text + hd->target_off;
	if (memchr(t, '#', hd->target_len))
		return 400;
	if (t[0] == '/') {
		/* origin-form */
	} else if (hd->method == HTTP_OPTIONS && hd->target_len == 1 && t[0] == '*') {
		/* asterisk-form */
	} else if (hd->target_len > 7 && strncasecmp(t, "http://", 7) == 0) {
		/* absolute-form: its authority replaces Host (RFC 9112 §3.2.2) */
		uint32_t a = hd->target_off + 7, end = a;
		while (end < hd->target_off + hd->target_len && hd->text[end] != '/' && hd->text[end] != '?')
			end++;
		if (memchr(hd->text + a, '@', end - a)) /* userinfo is not allowed in http URIs */
			return 400;
		hd->authority_off = a;
		hd->authority_len = end - a;
		hd->flags |= H1F_ABSOLUTE_FORM;
		uint32_t rest = hd->target_off + hd->target_len - end;
		if (rest == 0 || hd->text[end] == '?') {
			/* an empty path is "/" in origin-form */
			if (hd->len + 1 + rest > hd->cap) {
				*reason = R_HEADERS_TOO_LARGE;
				return 431;
			}
			uint32_t off = hd->len;
			hd->text[hd->len++] = '/';
			memcpy(hd->text + hd->len, hd->text + end, rest);
			hd->len += rest;
			hd->target_off = off;
			hd->target_len = rest + 1;
		} else {
			hd->target_off = end;
			hd->target_len = rest;
		}
		t = hd->text + hd->target_off;
	} else {
		return 400;
	}
	const char *q = memchr(t, '?', hd->target_len);
	hd->path_len = q ? (uint32_t)(q - t) : hd->target_len;

	int host = -1;
	for (uint32_t i = 0; i < hd->n; i++) {
		if (head_name_is(hd, (int)i, LIT("host"))) {
			if (host >= 0)
				return 400;
			host = (int)i;
		}
	}
	hd->host_idx = host;
	if (host < 0 && hd->minor == 1 && !(hd->flags & H1F_ABSOLUTE_FORM))
		return 400;
	if (host >= 0 && !authority_ok(hd->text + hd->h[host].value, hd->h[host].value_len))
		return 400;
	if (hd->flags & H1F_ABSOLUTE_FORM) {
		if (!authority_ok(hd->text + hd->authority_off, hd->authority_len))
			return 400;
	} else if (host >= 0) {
		hd->authority_off = hd->h[host].value;
		hd->authority_len = hd->h[host].value_len;
	}

	int st = head_framing(hd, true, reason);
	if (st)
		return st;
	if (hd->minor == 0 && !(hd->flags & H1F_CONN_KEEPALIVE))
		hd->flags |= H1F_CONN_CLOSE;

	int ex = head_find(hd, LIT("expect"), 0);
	if (ex >= 0) {
		const struct lv_hdr *e = &hd->h[ex];
		if (!token_eq(hd->text + e->value, e->value_len, LIT("100-continue")) ||
		    head_find(hd, LIT("expect"), ex + 1) >= 0) {
			*reason = R_EXPECTATION;
			return 417;
		}
		/* HTTP/1.0 clients do not understand 100 Continue; ignore it. */
		if (hd->minor == 1)
			hd->flags |= H1F_EXPECT_CONTINUE;
	}
	*reason = R_NONE;
	return 0;
}

int http1_check_response(struct lv_head *hd, enum lv_reason *reason)
{
	*reason = R_UP_BAD;
	if (hd->major != 1 || hd->status < 100 || hd->status > 999)
		return 502;
	enum lv_reason r;
	if (head_framing(hd, false, &r))
		return 502;
	if (hd->minor == 0 && !(hd->flags & H1F_CONN_KEEPALIVE))
		hd->flags |= H1F_CONN_CLOSE;
	*reason = R_NONE;
	return 0;
}

bool http1_response_has_body(const struct lv_head *resp, bool head_request)
{
	if (head_request)
		return false;
	return !(resp->status < 200 || resp->status == 204 || resp->status == 304);
}
