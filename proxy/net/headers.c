#include "net/headers.h"

#include <stdio.h>
#include <string.h>

#include "net/wbuf.h"

static bool name_in_connection(const struct lv_head *hd, const char *name, size_t nlen)
{
	for (int i = head_find(hd, LIT("connection"), 0); i >= 0; i = head_find(hd, LIT("connection"), i + 1)) {
		const char *v = hd->text + hd->h[i].value;
		size_t len = hd->h[i].value_len, p = 0;
		while (p < len) {
			while (p < len && (v[p] == ' ' || v[p] == '\t' || v[p] == ','))
				p++;
			size_t s = p;
			while (p < len && v[p] != ',' && v[p] != ' ' && v[p] != '\t')
				p++;
			if (p > s && token_eq(v + s, p - s, name, nlen))
				return true;
			while (p < len && v[p] != ',')
				p++;
		}
	}
	return false;
}

bool headers_is_hop_by_hop(const struct lv_head *hd, int i)
{
	static const struct {
		const char *n;
		size_t l;
	} fixed[] = {{LIT("connection")}, {LIT("keep-alive")}, {LIT("proxy-connection")}, {LIT("te")},
	             {LIT("trailer")},    {LIT("transfer-encoding")}, {LIT("upgrade")}};
	for (size_t k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++)
		if (head_name_is(hd, i, fixed[k].n, fixed[k].l))
			return true;
	const struct lv_hdr *e = &hd->h[i];
	return name_in_connection(hd, hd->text + e->name, e->name_len);
}

bool headers_unkeyed_risk(const struct lv_head *hd, int i)
{
	static const struct {
		const char *n;
		size_t l;
	} risky[] = {
	    /* where the request came to, and how: origins build absolute links
	     * and redirects from them */
	    {LIT("forwarded")}, {LIT("x-forwarded-host")}, {LIT("x-forwarded-server")}, {LIT("x-forwarded-port")},
	    {LIT("x-forwarded-prefix")}, {LIT("x-forwarded-scheme")}, {LIT("x-forwarded-ssl")}, {LIT("x-url-scheme")},
	    {LIT("front-end-https")}, {LIT("x-host")}, {LIT("x-original-host")}, {LIT("x-http-host-override")},
	    /* who the client is, as an earlier hop claims */
	    {LIT("x-real-ip")}, {LIT("true-client-ip")}, {LIT("x-client-ip")}, {LIT("x-cluster-client-ip")},
	    {LIT("x-originating-ip")},
	    /* which resource: frameworks that route on these serve another URL's
	     * answer under this one's key */
	    {LIT("x-original-url")}, {LIT("x-rewrite-url")}, {LIT("x-original-uri")}, {LIT("x-forwarded-uri")},
	    {LIT("x-forwarded-path")}, {LIT("x-override-url")},
	};
	for (size_t k = 0; k < sizeof(risky) / sizeof(risky[0]); k++)
		if (head_name_is(hd, i, risky[k].n, risky[k].l))
			return true;
	return false;
}

bool headers_listed(const struct lv_head *hd, int i, const char *list)
{
	for (const char *t = list; t && *t;) {
		const char *e = strchr(t, ',');
		size_t tl = e ? (size_t)(e - t) : strlen(t);
		if (tl && head_name_is(hd, i, t, tl))
			return true;
		t = e ? e + 1 : t + tl;
	}
	return false;
}

bool headers_request_id_ok(const char *v, size_t n)
{
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++)
		if (v[i] < 0x21 || v[i] > 0x7e)
			return false;
	return true;
}

static void wb_field(struct wb *w, const struct lv_head *hd, int i)
{
	const struct lv_hdr *e = &hd->h[i];
	wb_put(w, hd->text + e->name, e->name_len);
	WB_LIT(w, ": ");
	wb_put(w, hd->text + e->value, e->value_len);
	WB_LIT(w, "\r\n");
}

static size_t head_bound(const struct lv_head *hd)
{
	return (size_t)hd->len + (size_t)hd->n * 4 + 1024;
}

int headers_build_request(const struct lv_head *hd, const struct reqhead_args *a, struct evbuffer *out)
{
	struct wb w;
	if (!wb_begin(&w, out,
	              head_bound(hd) + strlen(a->client_ip) + (a->via ? strlen(a->via) : 0) + strlen(a->default_host) + (a->extra ? strlen(a->extra) : 0) +
	                  (a->replace ? strlen(a->replace) : 0)))
		return -1;

	wb_put(&w, hd->text + hd->method_off, hd->method_len);
	WB_LIT(&w, " ");
	wb_put(&w, hd->text + hd->target_off, hd->target_len);
	WB_LIT(&w, " HTTP/1.1\r\nHost: ");
	if (hd->authority_len)
		wb_put(&w, hd->text + hd->authority_off, hd->authority_len);
	else
		wb_str(&w, a->default_host);
	WB_LIT(&w, "\r\n");

	bool have_proto = false;
	int xff_first = -1;
	for (uint32_t k = 0; k < hd->n; k++) {
		int i = (int)k;
		if (head_name_is(hd, i, LIT("host")) || head_name_is(hd, i, LIT("content-length")) ||
		    head_name_is(hd, i, LIT("expect")) || head_name_is(hd, i, LIT("x-request-id")) ||
		    headers_is_hop_by_hop(hd, i) || (a->drop && head_name_is(hd, i, a->drop, strlen(a->drop))))
			continue;
		if (a->whole && (head_name_is(hd, i, LIT("range")) || head_name_is(hd, i, LIT("if-range")) ||
		                 head_name_is(hd, i, LIT("if-none-match")) || head_name_is(hd, i, LIT("if-modified-since")) ||
		                 head_name_is(hd, i, LIT("if-match")) || head_name_is(hd, i, LIT("if-unmodified-since"))))
			continue;
		if (head_name_is(hd, i, LIT("x-forwarded-for"))) {
			/* on a cacheable request only a trusted hop's list is kept */
			if (xff_first < 0 && (!a->strip_unkeyed || a->trust_forwarded))
				xff_first = i;
			continue;
		}
		if (a->strip_unkeyed && headers_unkeyed_risk(hd, i) && !headers_listed(hd, i, a->keyed))
			continue;
		if (head_name_is(hd, i, LIT("x-forwarded-proto"))) {
			if (!a->trust_forwarded || have_proto)
				continue;
			have_proto = true;
		}
		wb_field(&w, hd, i);
	}
	/* X-Forwarded-For: every earlier hop, in order, then our client. */
	WB_LIT(&w, "X-Forwarded-For: ");
	if (xff_first >= 0) {
		for (int i = xff_first; i >= 0; i = head_find(hd, LIT("x-forwarded-for"), i + 1)) {
			wb_put(&w, hd->text + hd->h[i].value, hd->h[i].value_len);
			WB_LIT(&w, ", ");
		}
	}
	wb_str(&w, a->client_ip);
	WB_LIT(&w, "\r\n");
	if (!have_proto)
		WB_LIT(&w, "X-Forwarded-Proto: http\r\n");
	WB_LIT(&w, "X-Request-Id: ");
	wb_str(&w, a->request_id);
	WB_LIT(&w, "\r\nVia: 1.1 ");
	wb_str(&w, a->via ? a->via : "levee");
	WB_LIT(&w, "\r\n");
	if (a->extra)
		wb_str(&w, a->extra);
	if (a->replace)
		wb_str(&w, a->replace);
	if (a->framing == 1) {
		WB_LIT(&w, "Content-Length: ");
		wb_u64(&w, a->content_length);
		WB_LIT(&w, "\r\n");
	} else if (a->framing == 2) {
		WB_LIT(&w, "Transfer-Encoding: chunked\r\n");
	}
	WB_LIT(&w, "\r\n");
	return wb_end(&w);
}

int headers_build_response(const struct lv_head *hd, const struct resphead_args *a, struct evbuffer *out)
{
	struct wb w;
	if (!wb_begin(&w, out, head_bound(hd) + 256 + (a->extra ? strlen(a->extra) : 0)))
		return -1;

	WB_LIT(&w, "HTTP/1.1 ");
	wb_u64(&w, hd->status);
	WB_LIT(&w, " ");
	wb_put(&w, hd->text + hd->reason_off, hd->reason_len);
	WB_LIT(&w, "\r\n");
	bool have_id = false;
	for (uint32_t k = 0; k < hd->n; k++) {
		int i = (int)k;
		if (head_name_is(hd, i, LIT("content-length")) || headers_is_hop_by_hop(hd, i))
			continue;
		if (head_name_is(hd, i, LIT("x-request-id")))
			have_id = true;
		wb_field(&w, hd, i);
	}
	WB_LIT(&w, "Via: 1.1 levee\r\n");
	if (a->extra)
		wb_str(&w, a->extra);
	if (!have_id && a->request_id) {
		WB_LIT(&w, "X-Request-Id: ");
		wb_str(&w, a->request_id);
		WB_LIT(&w, "\r\n");
	}
	if (a->framing == 1 || (a->framing == 0 && a->keep_cl)) {
		WB_LIT(&w, "Content-Length: ");
		wb_u64(&w, a->content_length);
		WB_LIT(&w, "\r\n");
	} else if (a->framing == 2) {
		WB_LIT(&w, "Transfer-Encoding: chunked\r\n");
	}
	if (a->close)
		WB_LIT(&w, "Connection: close\r\n");
	else if (a->keepalive_10)
		WB_LIT(&w, "Connection: keep-alive\r\n");
	WB_LIT(&w, "\r\n");
	return wb_end(&w);
}
