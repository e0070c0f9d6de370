/* test_merge304.c - a 304's update of a stored response as tables (RFC 9111
 * §3.2, §4.3.4): which fields replace the stored ones, which the merge keeps
 * out, which stored response a 304 selects, and freshness computed again
 * from the merged fields by fresh_evaluate(), as the store does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h> /* after the headers it needs */

#include "cache/freshness.h"
#include "cache/merge304.h"
#include "cache/record.h"
#include "h1_feed.h"

#define T0 INT64_C(784111777) /* Sun, 06 Nov 1994 08:49:37 GMT */
#define D0 "Sun, 06 Nov 1994 08:49:37 GMT"
#define D1 "Sun, 06 Nov 1994 09:49:37 GMT" /* T0 + 1 h */

/* ---- fixtures ---------------------------------------------------------- */

/* A stored record: status, "Name: value\n" lines, etag, last_modified. */
struct stored {
	uint16_t status;
	const char *fields;
	const char *etag;
	int64_t last_modified;
};

static void *make_record(const struct stored *s, struct record_view *v)
{
	struct record_hdr h[32];
	uint32_t n = 0;
	const char *p = s->fields;
	while (p && *p) {
		const char *colon = strchr(p, ':'), *nl = strchr(p, '\n');
		assert_non_null(colon);
		assert_non_null(nl);
		const char *val = colon + 1;
		while (*val == ' ')
			val++;
		h[n].name = (struct record_str){p, (uint32_t)(colon - p)};
		h[n].value = (struct record_str){val, (uint32_t)(nl - val)};
		n++;
		p = nl + 1;
	}
	struct iovec body = {(void *)"hello", 5};
	struct record_in in = {
	    .status = s->status,
	    .request_time = T0 * 1000,
	    .response_time = T0 * 1000,
	    .lifetime = 1,
	    .last_modified = s->last_modified,
	    .etag = {s->etag, (uint32_t)strlen(s->etag)},
	    .hdrs = h,
	    .nhdrs = n,
	    .body = &body,
	    .nbody = 1,
	};
	size_t size = record_size(&in);
	assert_true(size > 0);
	void *buf = malloc(size);
	assert_int_equal(record_encode(&in, buf, size), RECORD_OK);
	assert_int_equal(record_decode(buf, size, v), RECORD_OK);
	return buf;
}

static struct h1_fixture *parse_resp(const char *raw)
{
	struct h1_fixture *f = h1_new_response(raw);
	if (!f)
		fail_msg("response fixture not parsed or refused: %s", raw);
	return f;
}


/* The merged head as "name: value\n" lines. */
static void dump(const struct lv_head *hd, char *out, size_t cap)
{
	size_t o = 0;
	out[0] = '\0';
	for (uint32_t i = 0; i < hd->n; i++)
		o += (size_t)snprintf(out + o, cap - o, "%.*s: %.*s\n", (int)hd->h[i].name_len, hd->text + hd->h[i].name,
		                      (int)hd->h[i].value_len, hd->text + hd->h[i].value);
}

struct merged {
	struct lv_head head;
	struct lv_hdr slots[128];
	char text[8192];
};

static bool merge(const struct record_view *v, const struct lv_head *resp, int64_t now, struct merged *m)
{
	memset(&m->head, 0, sizeof(m->head));
	m->head.h = m->slots;
	m->head.max = 128;
	m->head.text = m->text;
	m->head.cap = sizeof(m->text);
	assert_true(merge304_text_cap(v, resp) <= sizeof(m->text));
	assert_true(merge304_slots(v, resp) <= 128);
	return merge304_build(v, resp, now, &m->head);
}

#define R304(hdrs) "HTTP/1.1 304 Not Modified\r\n" hdrs "\r\n"

/* ---- which fields replace, which are kept out (§3.2) ------------------- */

struct merge_case {
	const char *rfc;
	const char *stored; /* the stored fields */
	const char *resp;   /* the 304 */
	const char *want;   /* the merged fields */
};

static const struct merge_case merge_cases[] = {
    {"§3.2 Cache-Control replaced", "Date: " D0 "\nCache-Control: max-age=1\nContent-Type: text/plain\n",
     R304("Date: " D1 "\r\nCache-Control: max-age=3600\r\n"),
     "Date: " D1 "\nCache-Control: max-age=3600\nContent-Type: text/plain\n"},
    {"§3.2 every stored line of a name goes, the 304's take the first one's place",
     "Cache-Control: max-age=1\nX-A: 1\nCache-Control: public\n",
     R304("Date: " D1 "\r\nCache-Control: max-age=60\r\nCache-Control: s-maxage=30\r\n"),
     "Cache-Control: max-age=60\nCache-Control: s-maxage=30\nX-A: 1\nDate: " D1 "\n"},
    {"§3.2 names compare case-insensitively", "content-type: text/plain\nX-Custom: old\n",
     R304("Date: " D1 "\r\nContent-Type: text/html\r\nx-custom: new\r\n"),
     "Content-Type: text/html\nx-custom: new\nDate: " D1 "\n"},
    {"§3.2 a new field is added", "Date: " D0 "\n", R304("Date: " D1 "\r\nX-New: yes\r\nExpires: " D1 "\r\n"),
     "Date: " D1 "\nX-New: yes\nExpires: " D1 "\n"},
    {"§3.2 ETag and Last-Modified replaced", "ETag: \"a\"\nLast-Modified: " D0 "\n",
     R304("Date: " D1 "\r\nETag: \"a\"\r\nLast-Modified: " D0 "\r\n"),
     "ETag: \"a\"\nLast-Modified: " D0 "\nDate: " D1 "\n"},
    {"§3.2 Content-Length is never updated", "Content-Type: text/plain\n",
     R304("Date: " D1 "\r\nContent-Length: 99\r\n"), "Content-Type: text/plain\nDate: " D1 "\n"},
    {"§3.1 hop-by-hop fields stay out", "X-A: 1\n",
     R304("Date: " D1 "\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nUpgrade: h2c\r\n"
          "Proxy-Connection: close\r\nTE: trailers\r\n"),
     "X-A: 1\nDate: " D1 "\n"},
    {"§3.1 the proxy's own authentication fields stay out", "X-A: 1\n",
     R304("Date: " D1 "\r\nProxy-Authenticate: Basic\r\nProxy-Authentication-Info: x\r\n"),
     "X-A: 1\nDate: " D1 "\n"},
    {"levee: Via and X-Request-Id are levee's own", "X-A: 1\n",
     R304("Date: " D1 "\r\nVia: 1.1 other\r\nX-Request-Id: abc\r\n"), "X-A: 1\nDate: " D1 "\n"},
    {"levee: Age merged for the new age (never stored)", "X-A: 1\n", R304("Date: " D1 "\r\nAge: 5\r\n"),
     "X-A: 1\nDate: " D1 "\nAge: 5\n"},
    {"levee: Set-Cookie merged, so the store refuses it", "X-A: 1\n",
     R304("Date: " D1 "\r\nSet-Cookie: s=1\r\n"), "X-A: 1\nDate: " D1 "\nSet-Cookie: s=1\n"},
    {"RFC 9110 §6.6.1 a 304 without Date: the time it came", "Date: " D0 "\nX-A: 1\n",
     R304("Cache-Control: max-age=5\r\n"), "Date: " D1 "\nX-A: 1\nCache-Control: max-age=5\n"},
    {"an empty 304 value replaces too", "X-A: 1\n", R304("Date: " D1 "\r\nX-A:\r\n"), "X-A: \nDate: " D1 "\n"},
    {"nothing stored but the body", "", R304("Date: " D1 "\r\nX-A: 1\r\n"), "Date: " D1 "\nX-A: 1\n"},
};

static void test_merge_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(merge_cases) / sizeof(merge_cases[0]); i++) {
		const struct merge_case *c = &merge_cases[i];
		struct stored s = {200, c->stored, "", -1};
		struct record_view v;
		void *buf = make_record(&s, &v);
		struct h1_fixture *r = parse_resp(c->resp);
		struct merged *m = calloc(1, sizeof(*m));
		if (!merge(&v, &r->head, T0 + 3600, m))
			fail_msg("%s: merge refused", c->rfc);
		char got[4096];
		dump(&m->head, got, sizeof(got));
		if (strcmp(got, c->want) != 0)
			fail_msg("%s:\n got: %s\nwant: %s", c->rfc, got, c->want);
		assert_int_equal(m->head.status, 200);
		assert_true(m->head.flags & H1F_HAS_CL);
		assert_int_equal(m->head.content_length, 5);
		free(m);
		free(r);
		free(buf);
	}
}

static void test_merge_too_small(void **state)
{
	(void)state;
	struct stored s = {200, "X-A: 1\nX-B: 2\n", "", -1};
	struct record_view v;
	void *buf = make_record(&s, &v);
	struct h1_fixture *r = parse_resp(R304("Date: " D1 "\r\nX-C: 3\r\n"));
	struct lv_hdr slots[8];
	char text[16];
	struct lv_head out = {.text = text, .cap = sizeof(text), .h = slots, .max = 8};
	assert_false(merge304_build(&v, &r->head, T0, &out)); /* text too small */
	char big[1024];
	out = (struct lv_head){.text = big, .cap = sizeof(big), .h = slots, .max = 2};
	assert_false(merge304_build(&v, &r->head, T0, &out)); /* slots too few */
	out = (struct lv_head){.text = big, .cap = sizeof(big), .h = slots, .max = 8};
	assert_true(merge304_build(&v, &r->head, T0, &out));
	assert_int_equal(out.n, 4);
	free(r);
	free(buf);
}

/* ---- which stored response a 304 selects (§4.3.4) ---------------------- */

struct select_case {
	const char *rfc;
	const char *etag;      /* stored */
	int64_t last_modified; /* stored */
	const char *resp;
	bool want;     /* to levee's own revalidation, with the stored validators */
	bool want_any; /* to a client's conditional, whose validators may be another's */
};

static const struct select_case select_cases[] = {
    {"strong ETag equal", "\"v1\"", -1, R304("ETag: \"v1\"\r\n"), true, true},
    {"strong ETag different: no update", "\"v1\"", -1, R304("ETag: \"v2\"\r\n"), false, false},
    {"strong 304 ETag, weak stored: no strong match", "W/\"v1\"", -1, R304("ETag: \"v1\"\r\n"), false, false},
    {"weak 304 ETag matches a strong stored one weakly", "\"v1\"", -1, R304("ETag: W/\"v1\"\r\n"), true, true},
    {"weak both", "W/\"v1\"", -1, R304("ETag: W/\"v1\"\r\n"), true, true},
    {"weak different", "W/\"v1\"", -1, R304("ETag: W/\"v2\"\r\n"), false, false},
    {"ETag in the 304, none stored", "", T0, R304("ETag: \"v1\"\r\n"), false, false},
    {"an empty ETag selects nothing", "", -1, R304("ETag: \r\n"), false, false},
    {"no ETag: Last-Modified equal", "", T0, R304("Last-Modified: " D0 "\r\n"), true, true},
    {"no ETag: Last-Modified different", "", T0, R304("Last-Modified: " D1 "\r\n"), false, false},
    {"no ETag: invalid Last-Modified", "", T0, R304("Last-Modified: yesterday\r\n"), false, false},
    {"no validator at all: the one stored response", "\"v1\"", T0, R304("Cache-Control: max-age=5\r\n"), true, false},
    {"no validator at all, none stored", "", -1, R304("Cache-Control: max-age=5\r\n"), true, true},
    {"no validator at all, a stored Last-Modified only", "", T0, R304("Cache-Control: max-age=5\r\n"), true, false},
    {"the ETag outranks Last-Modified", "\"v1\"", T0, R304("ETag: \"v1\"\r\nLast-Modified: " D1 "\r\n"), true, true},
};

static void test_selects(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(select_cases) / sizeof(select_cases[0]); i++) {
		const struct select_case *c = &select_cases[i];
		struct stored s = {200, "", c->etag, c->last_modified};
		struct record_view v;
		void *buf = make_record(&s, &v);
		struct h1_fixture *r = parse_resp(c->resp);
		if (merge304_selects(&v, &r->head, true) != c->want)
			fail_msg("%s, levee's own: want %d", c->rfc, c->want);
		if (merge304_selects(&v, &r->head, false) != c->want_any)
			fail_msg("%s, the client's: want %d", c->rfc, c->want_any);
		free(r);
		free(buf);
	}
}

/* ---- freshness recomputed from the merged fields ----------------------- */

struct fresh_case {
	const char *rfc;
	uint16_t status;
	const char *stored;
	const char *resp; /* the 304, received at T0 + 3600 */
	const char *why;  /* NULL: storable */
	int64_t lifetime, initial_age;
	bool no_cache, must_revalidate;
};

static const struct fresh_case fresh_cases[] = {
    {"the 304's max-age replaces max-age=1", 200, "Date: " D0 "\nCache-Control: max-age=1\n",
     R304("Date: " D1 "\r\nCache-Control: max-age=3600\r\n"), NULL, 3600, 0, false, false},
    {"the 304's Expires, against its own Date", 200, "Date: " D0 "\nExpires: " D0 "\n",
     R304("Date: " D1 "\r\nExpires: Sun, 06 Nov 1994 10:49:37 GMT\r\n"), NULL, 3600, 0, false, false},
    {"a stored Expires no longer in force: the 304's max-age", 200, "Date: " D0 "\nExpires: " D0 "\n",
     R304("Date: " D1 "\r\nCache-Control: max-age=60\r\n"), NULL, 60, 0, false, false},
    {"no Date on the 304: age from now, not the old Date", 200, "Date: " D0 "\nCache-Control: max-age=1\n",
     R304("Cache-Control: max-age=600\r\n"), NULL, 600, 0, false, false},
    {"the 304's Age counts", 200, "Date: " D0 "\n", R304("Date: " D1 "\r\nAge: 7\r\nCache-Control: max-age=60\r\n"),
     NULL, 60, 7, false, false},
    {"no-cache from the 304", 200, "Date: " D0 "\nETag: \"a\"\nCache-Control: max-age=600\n",
     R304("Date: " D1 "\r\nETag: \"a\"\r\nCache-Control: no-cache\r\n"), NULL, 0, 0, true, false},
    {"must-revalidate from the 304", 200, "Date: " D0 "\nCache-Control: max-age=1\n",
     R304("Date: " D1 "\r\nCache-Control: max-age=9, must-revalidate\r\n"), NULL, 9, 0, false, true},
    {"no-store on the 304: no longer stored", 200, "Date: " D0 "\nCache-Control: max-age=1\n",
     R304("Date: " D1 "\r\nCache-Control: no-store\r\n"), fresh_why_no_store, 0, 0, false, false},
    {"private on the 304", 200, "Date: " D0 "\nCache-Control: max-age=1\n",
     R304("Date: " D1 "\r\nCache-Control: private\r\n"), fresh_why_private, 0, 0, false, false},
    {"Set-Cookie on the 304", 200, "Date: " D0 "\nCache-Control: max-age=60\n",
     R304("Date: " D1 "\r\nSet-Cookie: s=1\r\n"), fresh_why_set_cookie, 0, 0, false, false},
    {"Vary: * on the 304", 200, "Date: " D0 "\nCache-Control: max-age=60\n", R304("Date: " D1 "\r\nVary: *\r\n"),
     fresh_why_vary_star, 0, 0, false, false},
    {"the stored Cache-Control stays when the 304 has none", 200, "Date: " D0 "\nCache-Control: max-age=120\n",
     R304("Date: " D1 "\r\n"), NULL, 120, 0, false, false},
    {"the status stays the stored one: a 404 with a new max-age", 404, "Date: " D0 "\nCache-Control: max-age=1\n",
     R304("Date: " D1 "\r\nCache-Control: max-age=30\r\n"), NULL, 30, 0, false, false},
};

static void test_merged_freshness(void **state)
{
	(void)state;
	static const char get[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	struct h1_fixture *rq = calloc(1, sizeof(*rq));
	assert_int_equal(h1_parse_request(rq, get, strlen(get), 0, &(enum lv_reason){0}, &(size_t){0}), 0);
	for (size_t i = 0; i < sizeof(fresh_cases) / sizeof(fresh_cases[0]); i++) {
		const struct fresh_case *c = &fresh_cases[i];
		struct stored s = {c->status, c->stored, "", -1};
		struct record_view v;
		void *buf = make_record(&s, &v);
		struct h1_fixture *r = parse_resp(c->resp);
		struct merged *m = calloc(1, sizeof(*m));
		assert_true(merge(&v, &r->head, T0 + 3600, m));
		struct fresh_options o;
		fresh_options_init(&o);
		struct fresh_eval ev;
		fresh_evaluate(&rq->head, &m->head, T0 + 3600, T0 + 3600, &o, &ev);
		if (ev.why_not != c->why)
			fail_msg("%s: why_not %s", c->rfc, ev.why_not ? ev.why_not : "(none)");
		if (!c->why && (ev.st.lifetime != c->lifetime || ev.st.initial_age != c->initial_age ||
		                ev.st.no_cache != c->no_cache || ev.st.must_revalidate != c->must_revalidate))
			fail_msg("%s: lifetime %lld age %lld no-cache %d must-revalidate %d", c->rfc,
			         (long long)ev.st.lifetime, (long long)ev.st.initial_age, ev.st.no_cache,
			         ev.st.must_revalidate);
		free(m);
		free(r);
		free(buf);
	}
	free(rq);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_merge_fields),
	    cmocka_unit_test(test_merge_too_small),
	    cmocka_unit_test(test_selects),
	    cmocka_unit_test(test_merged_freshness),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
