/* test_freshness_targeted.c - RFC 9213 targeted fields as tables: which
 * field cc_for_storage() picks (precedence, invalid and empty fields, the
 * route's list), how a Structured Fields dictionary maps onto struct
 * cc_directives (types, last-wins, parameters, lines), and what
 * fresh_evaluate() then stores (Expires ignored, both directions of the
 * override, fixed-TTL routes, §3.5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h> /* after the headers it needs */

#include "cache/freshness.h"
#include "h1_feed.h"

#define T0 INT64_C(784111777) /* Sun, 06 Nov 1994 08:49:37 GMT */
#define A CC_ABSENT
#define DATE "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
#define EXPIRES_100 "Expires: Sun, 06 Nov 1994 08:51:17 GMT\r\n"
#define DEFAULT_FIELDS "levee-cache-control,cdn-cache-control"

static struct h1_fixture *parse(llhttp_type_t type, const char *raw)
{
	struct h1_fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	enum lv_reason r;
	if (h1_parse_message(f, type, raw, strlen(raw), 0, &r) != 0)
		fail_msg("fixture refused: %s", raw);
	return f;
}

static struct h1_fixture *resp200(const char *hdrs)
{
	char raw[8192];
	snprintf(raw, sizeof(raw), "HTTP/1.1 200 OK\r\n" DATE "%sContent-Length: 0\r\n\r\n", hdrs);
	return parse(HTTP_RESPONSE, raw);
}

/* ---- choosing the field and mapping it ---------------------------------- */

struct pick_case {
	const char *what;
	const char *hdrs;
	const char *fields; /* NULL: the default list */
	bool targeted;
	unsigned flags;
	int64_t max_age, s_maxage, swr, sie;
};

static const struct pick_case pick_cases[] = {
        {"§3 CDN-CC replaces CC: store", "Cache-Control: no-store\r\nCDN-Cache-Control: max-age=60\r\n",
         NULL, true, 0, 60, A, A, A},
        {"§3 CDN-CC replaces CC: no-store", "Cache-Control: max-age=60\r\nCDN-Cache-Control: no-store\r\n",
         NULL, true, CC_NO_STORE, A, A, A, A},
        {"§2.1 first on the list wins",
         "CDN-Cache-Control: max-age=60\r\nLevee-Cache-Control: max-age=10\r\n", NULL, true, 0, 10, A, A,
         A},
        {"§2.1 an invalid first falls to the next",
         "Levee-Cache-Control: max-age=10,\r\nCDN-Cache-Control: max-age=60\r\n", NULL, true, 0, 60, A, A,
         A},
        {"§2.2 invalid: Cache-Control rules",
         "Cache-Control: max-age=5\r\nCDN-Cache-Control: Max-Age=60\r\n", NULL, false, 0, 5, A, A, A},
        {"§2.2 empty: Cache-Control rules", "Cache-Control: max-age=5\r\nCDN-Cache-Control: \r\n", NULL,
         false, 0, 5, A, A, A},
        {"§2.2 only SP: Cache-Control rules", "Cache-Control: max-age=5\r\nCDN-Cache-Control:    \r\n",
         NULL, false, 0, 5, A, A, A},
        {"§2.2 a String is no delta-seconds", "Cache-Control: max-age=5\r\nCDN-Cache-Control: max-age=\"60\"\r\n",
         NULL, true, 0, A, A, A, A},
        {"§2.2 a Decimal is no delta-seconds", "CDN-Cache-Control: max-age=1.5, s-maxage=2\r\n", NULL, true,
         0, A, 2, A, A},
        {"§2.2 nor a negative Integer", "CDN-Cache-Control: max-age=-1\r\n", NULL, true, 0, A, A, A, A},
        {"§2.2 nor a Token", "CDN-Cache-Control: max-age=sixty\r\n", NULL, true, 0, A, A, A, A},
        {"§1.2.2 saturates", "CDN-Cache-Control: max-age=999999999999999\r\n", NULL, true, 0,
         CC_DELTA_MAX, A, A, A},
        {"restrictive flags count whatever their value",
         "CDN-Cache-Control: no-store=?0, private=\"set-cookie\", no-cache=\"x\", must-revalidate=1, "
         "proxy-revalidate=a\r\n",
         NULL, true, CC_NO_STORE | CC_PRIVATE | CC_NO_CACHE | CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE, A, A,
         A, A},
        {"permissive flags need true", "CDN-Cache-Control: public=?0, immutable=1\r\n", NULL, true, 0, A, A,
         A, A},
        {"permissive flags", "CDN-Cache-Control: public, immutable=?1\r\n", NULL, true,
         CC_PUBLIC | CC_IMMUTABLE, A, A, A, A},
        {"RFC 8941 last wins (not the smallest)", "CDN-Cache-Control: max-age=30, max-age=60\r\n", NULL, true,
         0, 60, A, A, A},
        {"parameters ignored", "CDN-Cache-Control: max-age=60;foo=bar, no-store;x\r\n", NULL, true,
         CC_NO_STORE, 60, A, A, A},
        {"unknown directives ignored", "CDN-Cache-Control: foo=(1 2), max-age=5, bar\r\n", NULL, true, 0, 5,
         A, A, A},
        {"the stale windows", "CDN-Cache-Control: stale-while-revalidate=30, stale-if-error=60, s-maxage=10\r\n",
         NULL, true, 0, A, 10, 30, 60},
        {"RFC 9213 §3 'none' is valid and says nothing", "Cache-Control: no-store\r\nCDN-Cache-Control: none\r\n",
         NULL, true, 0, A, A, A, A},
        {"two lines, one dictionary", "CDN-Cache-Control: max-age=60\r\nCDN-Cache-Control: s-maxage=30\r\n",
         NULL, true, 0, 60, 30, A, A},
        {"a String across two lines", "CDN-Cache-Control: no-cache=\"a\r\nCDN-Cache-Control: b\"\r\n", NULL,
         true, CC_NO_CACHE, A, A, A, A},
        {"an empty line among them", "CDN-Cache-Control: max-age=60\r\nCDN-Cache-Control: \r\n", NULL, true,
         0, 60, A, A, A},
        {"one bad line spoils the field", "Cache-Control: max-age=5\r\nCDN-Cache-Control: max-age=60\r\n"
                                          "CDN-Cache-Control: ,\r\n",
         NULL, false, 0, 5, A, A, A},
        {"names are case-insensitive", "cdn-CACHE-control: max-age=60\r\n", NULL, true, 0, 60, A, A, A},
        {"none: only Cache-Control", "Cache-Control: max-age=5\r\nCDN-Cache-Control: max-age=60\r\n", "",
         false, 0, 5, A, A, A},
        {"a field not on the list changes nothing",
         "Cache-Control: max-age=5\r\nCDN-Cache-Control: max-age=60\r\nAcme-CC: max-age=7\r\n", "acme-cc",
         true, 0, 7, A, A, A},
        {"no targeted field at all", "Cache-Control: private, max-age=5\r\n", NULL, false, CC_PRIVATE, 5, A,
         A, A},
};

static void check_pick(const struct pick_case *c, const char *hdrs)
{
	struct h1_fixture *rs = resp200(hdrs);
	struct cc_directives d;
	cc_for_storage(&d, &rs->head, c->fields ? c->fields : DEFAULT_FIELDS);
	if (d.targeted != c->targeted || d.flags != c->flags || d.max_age != c->max_age ||
	    d.s_maxage != c->s_maxage || d.swr != c->swr || d.sie != c->sie || !d.present)
		fail_msg("%s: targeted %d flags %#x max-age %lld s-maxage %lld swr %lld sie %lld", c->what,
		         d.targeted, d.flags, (long long)d.max_age, (long long)d.s_maxage, (long long)d.swr,
		         (long long)d.sie);
	free(rs);
}

static void test_pick(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pick_cases) / sizeof(pick_cases[0]); i++)
		check_pick(&pick_cases[i], pick_cases[i].hdrs);
}

/* A field over CC_TARGETED_MAX bytes is ignored, on one line or joined
 * from two; one of exactly CC_TARGETED_MAX counts. */
static void test_pick_long(void **state)
{
	(void)state;
	static const struct pick_case over = {"over", NULL, NULL, false, 0, 5, A, A, A};
	static const struct pick_case fits = {"fits", NULL, NULL, true, 0, 60, A, A, A};
	char hdrs[CC_TARGETED_MAX + 256], rest[CC_TARGETED_MAX + 1];
	for (size_t want = CC_TARGETED_MAX - 4; want <= CC_TARGETED_MAX + 4; want++) {
		/* "max-age=60" then ", x" members and one ", y=ttt" token: <want> bytes */
		size_t r = want - strlen("max-age=60"), k = 1 + (r - 5) % 3, o = 0;
		for (size_t u = (r - 4 - k) / 3; u > 0; u--)
			o += (size_t)snprintf(rest + o, sizeof(rest) - o, ", x");
		o += (size_t)snprintf(rest + o, sizeof(rest) - o, ", y=");
		memset(rest + o, 't', k);
		rest[o + k] = '\0';
		assert_int_equal(o + k, r);
		snprintf(hdrs, sizeof(hdrs), "Cache-Control: max-age=5\r\nCDN-Cache-Control: max-age=60%s\r\n", rest);
		check_pick(want <= CC_TARGETED_MAX ? &fits : &over, hdrs);
		/* the same bytes once the two lines are joined with ", " */
		snprintf(hdrs, sizeof(hdrs),
		         "Cache-Control: max-age=5\r\nCDN-Cache-Control: max-age=60\r\nCDN-Cache-Control: %s\r\n",
		         rest + 2);
		check_pick(want <= CC_TARGETED_MAX ? &fits : &over, hdrs);
	}
}

/* ---- what is stored ---------------------------------------------------- */

struct store_case {
	const char *what;
	const char *req_hdrs;
	const char *resp_hdrs;
	const char *fields;
	bool fixed;
	const char *why; /* NULL: storable */
	int64_t lifetime;
	bool must_revalidate;
};

static const struct store_case store_cases[] = {
        {"CC no-store, CDN-CC max-age: stored", "", "Cache-Control: no-store\r\nCDN-Cache-Control: max-age=60\r\n",
         DEFAULT_FIELDS, false, NULL, 60, false},
        {"CC max-age, CDN-CC no-store: not stored", "",
         "Cache-Control: max-age=60\r\nCDN-Cache-Control: no-store\r\n", DEFAULT_FIELDS, false,
         fresh_why_no_store, 0, false},
        {"CC private, Levee-CC max-age: stored", "",
         "Cache-Control: private\r\nLevee-Cache-Control: max-age=30\r\nCDN-Cache-Control: no-store\r\n",
         DEFAULT_FIELDS, false, NULL, 30, false},
        {"CDN-CC private: not stored", "", "Cache-Control: public, max-age=60\r\nCDN-Cache-Control: private\r\n",
         DEFAULT_FIELDS, false, fresh_why_private, 0, false},
        {"§2.1 Expires ignored under a targeted field", "",
         EXPIRES_100 "CDN-Cache-Control: must-revalidate\r\n", DEFAULT_FIELDS, false, fresh_why_no_freshness,
         0, false},
        {"... and counts without one", "", EXPIRES_100 "CDN-Cache-Control: must-revalidate\r\n", "", false, NULL,
         100, false},
        {"an invalid CDN-CC leaves CC and Expires", "",
         EXPIRES_100 "Cache-Control: no-store\r\nCDN-Cache-Control: max-age=60;\r\n", DEFAULT_FIELDS, false,
         fresh_why_no_store, 0, false},
        {"fixed TTL: the targeted field lifts no-store", "",
         "Cache-Control: no-store\r\nCDN-Cache-Control: max-age=5\r\n", DEFAULT_FIELDS, true, NULL, 300,
         false},
        {"fixed TTL: the targeted field forbids", "", "CDN-Cache-Control: no-store\r\n", DEFAULT_FIELDS, true,
         fresh_why_no_store, 0, false},
        {"§3.5 s-maxage in CDN-CC allows Authorization", "Authorization: Bearer x\r\n",
         "Cache-Control: private\r\nCDN-Cache-Control: s-maxage=60\r\n", DEFAULT_FIELDS, false, NULL, 60,
         true},
        {"§3.5 CC's public does not count under CDN-CC", "Authorization: Bearer x\r\n",
         "Cache-Control: public\r\nCDN-Cache-Control: max-age=60\r\n", DEFAULT_FIELDS, false,
         fresh_why_authorization, 0, false},
};

static void test_store(void **state)
{
	(void)state;
	char raw[1024];
	for (size_t i = 0; i < sizeof(store_cases) / sizeof(store_cases[0]); i++) {
		const struct store_case *c = &store_cases[i];
		snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n", c->req_hdrs);
		struct h1_fixture *rq = parse(HTTP_REQUEST, raw);
		struct h1_fixture *rs = resp200(c->resp_hdrs);
		struct fresh_options o;
		fresh_options_init(&o);
		o.cc_fields = c->fields;
		if (c->fixed) {
			o.origin_mode = false;
			o.fixed_ttl = 300;
		}
		struct fresh_eval ev;
		fresh_evaluate(&rq->head, &rs->head, T0, T0, &o, &ev);
		if (ev.why_not != c->why)
			fail_msg("%s: why_not %s, want %s", c->what, ev.why_not ? ev.why_not : "(none)",
			         c->why ? c->why : "(none)");
		if (!c->why && (ev.st.lifetime != c->lifetime || ev.st.must_revalidate != c->must_revalidate))
			fail_msg("%s: lifetime %lld must-revalidate %d", c->what, (long long)ev.st.lifetime,
			         ev.st.must_revalidate);
		free(rq);
		free(rs);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_pick),
	        cmocka_unit_test(test_pick_long),
	        cmocka_unit_test(test_store),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
