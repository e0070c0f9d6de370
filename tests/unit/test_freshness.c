/* test_freshness.c - RFC 9111 rules as tables: Cache-Control parsing, HTTP
 * dates, what is stored and for how long, reuse at lookup time, Vary and
 * conditional requests. Time is injected; T0 is the RFC's example date. */
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
#define GET "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
#define REQ(hdrs) "GET / HTTP/1.1\r\nHost: a\r\n" hdrs "\r\n"
#define RESP(status, hdrs) "HTTP/1.1 " status "\r\n" hdrs "Content-Length: 0\r\n\r\n"
#define OK200(hdrs) RESP("200 OK", DATE hdrs)

/* ---- fixtures ---------------------------------------------------------- */

static struct h1_fixture *parse_req(const char *raw)
{
	struct h1_fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	enum lv_reason r;
	size_t used;
	int st = h1_parse_request(f, raw, strlen(raw), 0, &r, &used);
	if (st != 0)
		fail_msg("request fixture refused (%d): %s", st, raw);
	return f;
}

static struct h1_fixture *parse_resp(const char *raw)
{
	struct h1_fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	if (!h1_parse_response_head(f, raw, strlen(raw)))
		fail_msg("response fixture not parsed or refused: %s", raw);
	return f;
}

/* ---- Cache-Control parsing --------------------------------------------- */

struct cc_case {
	const char *rfc;
	const char *lines[3]; /* one Cache-Control field line each */
	unsigned flags;
	int64_t max_age, s_maxage, swr, sie, max_stale, min_fresh;
};

static const struct cc_case cc_cases[] = {
        {"§5.2.2.1 max-age", {"max-age=60"}, 0, 60, A, A, A, A, A},
        {"§5.2 names are case-insensitive", {"MAX-AGE=60, Public"}, CC_PUBLIC, 60, A, A, A, A, A},
        {"§5.2 quoted-string argument accepted", {"max-age=\"60\""}, 0, 60, A, A, A, A, A},
        {"§4.2.1 duplicate across lines: smallest",
         {"max-age=60", "max-age=30"},
         0,
         30,
         A,
         A,
         A,
         A,
         A},
        {"§4.2.1 duplicate in one line: smallest",
         {"max-age=30, max-age=60"},
         0,
         30,
         A,
         A,
         A,
         A,
         A},
        {"§1.2.2 negative delta is invalid -> 0", {"max-age=-1"}, 0, 0, A, A, A, A, A},
        {"§1.2.2 non-numeric delta -> 0", {"max-age=abc"}, 0, 0, A, A, A, A, A},
        {"§5.2.2.1 max-age without value -> 0", {"max-age"}, 0, 0, A, A, A, A, A},
        {"§1.2.2 delta capped at 2^31",
         {"max-age=99999999999999999999"},
         0,
         CC_DELTA_MAX,
         A,
         A,
         A,
         A,
         A},
        {"§1.2.2 junk after value -> invalid",
         {"max-age=5 6, public"},
         CC_PUBLIC,
         0,
         A,
         A,
         A,
         A,
         A},
        {"§5.2 unterminated quote -> invalid", {"max-age=\"7"}, 0, 0, A, A, A, A, A},
        {"§5.2.2.4 qualified no-cache, comma inside quotes",
         {"no-cache=\"set-cookie, x-a\", max-age=5"},
         CC_NO_CACHE,
         5,
         A,
         A,
         A,
         A,
         A},
        {"§5.2.2.7 qualified private", {"private=\"x\""}, CC_PRIVATE, A, A, A, A, A, A},
        {"§5.2.2 boolean directives",
         {"no-store, must-revalidate, proxy-revalidate", "no-transform, immutable, only-if-cached"},
         CC_NO_STORE | CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE | CC_NO_TRANSFORM | CC_IMMUTABLE |
                 CC_ONLY_IF_CACHED,
         A,
         A,
         A,
         A,
         A,
         A},
        {"§5.2.2.10 s-maxage, RFC 5861 windows",
         {"s-maxage=10, stale-while-revalidate=30, stale-if-error=600"},
         0,
         A,
         10,
         30,
         600,
         A,
         A},
        {"RFC 5861 invalid stale-if-error -> 0", {"stale-if-error=-5"}, 0, A, A, A, 0, A, A},
        {"§5.2.1.2 max-stale without value: any",
         {"max-stale"},
         CC_MAX_STALE,
         A,
         A,
         A,
         A,
         CC_DELTA_MAX,
         A},
        {"§5.2.1.2 max-stale duplicates: smallest",
         {"max-stale=5, max-stale"},
         CC_MAX_STALE,
         A,
         A,
         A,
         A,
         5,
         A},
        {"§5.2.1.2 invalid max-stale ignored", {"max-stale=x"}, 0, A, A, A, A, A, A},
        {"§5.2.1.3 min-fresh duplicates: largest",
         {"min-fresh=10", "min-fresh=20"},
         0,
         A,
         A,
         A,
         A,
         A,
         20},
        {"§5.2.3 unknown directives ignored",
         {"foo=bar, x-ext=\"a,b\", public"},
         CC_PUBLIC,
         A,
         A,
         A,
         A,
         A,
         A},
        {"§5.2.2.3 must-understand parsed",
         {"must-understand, no-store"},
         CC_NO_STORE | CC_MUST_UNDERSTAND,
         A,
         A,
         A,
         A,
         A,
         A},
        {"§5.2 empty list members and OWS", {"  , ,max-age=7 ,, "}, 0, 7, A, A, A, A, A},
        {"§5.2.1.1 request max-age=0", {"max-age=0"}, 0, 0, A, A, A, A, A},
};

static void test_cc_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cc_cases) / sizeof(cc_cases[0]); i++) {
		const struct cc_case *c = &cc_cases[i];
		struct cc_directives d;
		cc_init(&d);
		for (int k = 0; k < 3 && c->lines[k]; k++)
			cc_parse(&d, c->lines[k], strlen(c->lines[k]));
		if (d.flags != c->flags || d.max_age != c->max_age || d.s_maxage != c->s_maxage ||
		    d.swr != c->swr || d.sie != c->sie || d.max_stale != c->max_stale ||
		    d.min_fresh != c->min_fresh || !d.present)
			fail_msg(
			        "%s: flags %#x max-age %lld s-maxage %lld swr %lld sie %lld max-stale %lld "
			        "min-fresh %lld",
			        c->rfc, d.flags, (long long)d.max_age, (long long)d.s_maxage,
			        (long long)d.swr, (long long)d.sie, (long long)d.max_stale,
			        (long long)d.min_fresh);
	}
}

struct pragma_case {
	const char *rfc;
	const char *req;
	unsigned flags;
	bool present;
};

static const struct pragma_case pragma_cases[] = {
        {"§5.4 Pragma: no-cache without Cache-Control", REQ("Pragma: no-cache\r\n"), CC_NO_CACHE,
         false},
        {"§5.4 Cache-Control wins over Pragma",
         REQ("Pragma: no-cache\r\nCache-Control: max-age=5\r\n"), 0, true},
        {"§5.4 other pragmas mean nothing", REQ("Pragma: x-foo\r\n"), 0, false},
        {"§5.2 request Cache-Control lines",
         REQ("Cache-Control: no-cache\r\nCache-Control: only-if-cached\r\n"),
         CC_NO_CACHE | CC_ONLY_IF_CACHED, true},
};

static void test_cc_request(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pragma_cases) / sizeof(pragma_cases[0]); i++) {
		const struct pragma_case *c = &pragma_cases[i];
		struct h1_fixture *f = parse_req(c->req);
		struct cc_directives d;
		cc_from_request(&d, &f->head);
		if (d.flags != c->flags || d.present != c->present)
			fail_msg("%s: flags %#x present %d", c->rfc, d.flags, d.present);
		free(f);
	}
	struct cc_directives d;
	cc_init(&d);
	cc_parse(&d, LIT("only-if-cached"));
	assert_true(cc_only_if_cached(&d)); /* §5.2.1.7: caller answers 504 */
}

/* ---- HTTP dates -------------------------------------------------------- */

struct date_case {
	const char *rfc;
	const char *s;
	int64_t t;
};

static const struct date_case date_cases[] = {
        {"RFC 9110 §5.6.7 IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", T0},
        {"§5.6.7 obsolete RFC 850", "Sunday, 06-Nov-94 08:49:37 GMT", T0},
        {"§5.6.7 obsolete asctime, space-padded day", "Sun Nov  6 08:49:37 1994", T0},
        {"§5.6.7 asctime with a two-digit day", "Sun Nov 06 08:49:37 1994", T0},
        {"§5.6.7 RFC 850 year < 70 is 20yy", "Monday, 01-Jan-24 00:00:00 GMT", 1704067200},
        {"§5.6.7 epoch", "Thu, 01 Jan 1970 00:00:00 GMT", 0},
        {"§5.6.7 leap day", "Thu, 29 Feb 2024 12:00:00 GMT", 1709208000},
        {"§5.6.7 robust: case-insensitive names", "sun, 06 nov 1994 08:49:37 gmt", T0},
        {"§5.6.7 surrounding OWS", " Sun, 06 Nov 1994 08:49:37 GMT\t", T0},
        {"levee: before 1970 clamps to 0", "Wed, 31 Dec 1969 23:59:59 GMT", 0},
        {"§5.6.7 Feb 30 invalid", "Fri, 30 Feb 2024 12:00:00 GMT", -1},
        {"§5.6.7 Feb 29 in a common year invalid", "Wed, 29 Feb 2023 12:00:00 GMT", -1},
        {"RFC 9111 §5.3 \"0\" invalid", "0", -1},
        {"§5.6.7 empty", "", -1},
        {"§5.6.7 trailing junk", "Sun, 06 Nov 1994 08:49:37 GMT junk", -1},
        {"§5.6.7 hour 24 invalid", "Sun, 06 Nov 1994 24:00:00 GMT", -1},
        {"§5.6.7 zone must be GMT", "Sun, 06 Nov 1994 08:49:37 UTC", -1},
        {"§5.6.7 missing space after comma", "Sun,06 Nov 1994 08:49:37 GMT", -1},
        {"§5.6.7 unknown month", "Sun, 06 Foo 1994 08:49:37 GMT", -1},
        {"§5.6.7 RFC 850 needs the long day name", "Sun, 06-Nov-94 08:49:37 GMT", -1},
        {"§5.6.7 three-digit year", "Sun, 06 Nov 994 08:49:37 GMT", -1},
};

static void test_http_date_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(date_cases) / sizeof(date_cases[0]); i++) {
		const struct date_case *c = &date_cases[i];
		int64_t t = http_date_parse(c->s, strlen(c->s));
		if (t != c->t)
			fail_msg("%s: \"%s\" -> %lld, want %lld", c->rfc, c->s, (long long)t,
			         (long long)c->t);
	}
}

static void test_http_date_format(void **state)
{
	(void)state;
	static const struct date_case fmt[] = {
	        {"epoch", "Thu, 01 Jan 1970 00:00:00 GMT", 0},
	        {"RFC example", "Sun, 06 Nov 1994 08:49:37 GMT", T0},
	        {"leap day", "Thu, 29 Feb 2024 12:00:00 GMT", 1709208000},
	        {"negative clamps to epoch", "Thu, 01 Jan 1970 00:00:00 GMT", -5},
	        {"far future clamps to 9999", "Fri, 31 Dec 9999 23:59:59 GMT", INT64_C(1) << 50},
	};
	char out[32];
	for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
		assert_int_equal(http_date_format(fmt[i].t, out), HTTP_DATE_LEN);
		if (strcmp(out, fmt[i].s) != 0)
			fail_msg("%s: %s", fmt[i].rfc, out);
	}
	/* round trip over ~130 years, with a step that visits every weekday,
	 * month and leap-year case */
	for (int64_t t = 0; t < INT64_C(4102444800); t += 86400 * 7 + 3601) {
		size_t n = http_date_format(t, out);
		assert_int_equal(http_date_parse(out, n), t);
	}
}

/* ---- evaluating responses ---------------------------------------------- */

enum opt_preset {
	O_DEF,   /* origin mode, defaults */
	O_ROUTE, /* origin mode, route swr 30 / sie 300 */
	O_ALLOW, /* origin mode, Authorization and Set-Cookie allowed */
	O_FIXED, /* fixed TTL 300, route swr 30 / sie 300 */
	O_NOH,   /* origin mode, heuristics disabled */
	O_ANY,   /* origin mode, any_status (the route's cache_any_status) */
	O_FANY,  /* fixed TTL 300 with any_status: the key does nothing there */
};

static void preset(enum opt_preset p, struct fresh_options *o)
{
	fresh_options_init(o);
	switch (p) {
	case O_DEF:
		break;
	case O_ROUTE:
		o->route_swr = 30;
		o->route_sie = 300;
		break;
	case O_ALLOW:
		o->allow_authorization = o->allow_set_cookie = true;
		break;
	case O_FIXED:
		o->origin_mode = false;
		o->fixed_ttl = 300;
		o->route_swr = 30;
		o->route_sie = 300;
		break;
	case O_NOH:
		o->heuristic_max = 0;
		break;
	case O_ANY:
		o->any_status = true;
		break;
	case O_FANY:
		o->origin_mode = false;
		o->fixed_ttl = 300;
		o->any_status = true;
		break;
	}
}

struct eval_case {
	const char *rfc;
	const char *req; /* NULL: plain GET */
	const char *resp;
	enum opt_preset opt;
	int64_t req_dt, resp_dt; /* request_time, response_time relative to T0 */
	const char *why;         /* NULL: storable */
	int64_t lifetime, initial_age, swr, sie;
	unsigned flags; /* F_* */
};

enum { F_HEUR = 1, F_MUSTREV = 2, F_NOCACHE = 4 };

/* storable, with the expected lifetime, initial age, stale windows, flags */
#define KEEP(rfc, req, resp, opt, rq_dt, rs_dt, life, age, swr, sie, fl)                           \
	{                                                                                          \
		rfc, req, resp, opt, rq_dt, rs_dt, NULL, life, age, swr, sie, fl                   \
	}
/* not storable, for reason <why> */
#define DROP(rfc, req, resp, opt, why)                                                             \
	{                                                                                          \
		rfc, req, resp, opt, 0, 0, why, 0, 0, 0, 0, 0                                      \
	}

#define LM_5D "Last-Modified: Tue, 01 Nov 1994 08:49:37 GMT\r\n"   /* T0 - 5 days */
#define LM_100D "Last-Modified: Fri, 29 Jul 1994 08:49:37 GMT\r\n" /* T0 - 100 days */

static const struct eval_case eval_cases[] = {
        /* freshness lifetime, §4.2.1 */
        KEEP("§5.2.2.9 max-age", NULL, OK200("Cache-Control: max-age=60\r\n"), O_DEF, 0, 0, 60, 0,
             0, 0, 0),
        KEEP("§4.2.1 s-maxage overrides max-age; implies proxy-revalidate", NULL,
             OK200("Cache-Control: max-age=60, s-maxage=120\r\n"), O_ROUTE, 0, 0, 120, 0, 0, 0,
             F_MUSTREV),
        KEEP("§5.2.2.10 + RFC 5861: s-maxage keeps the origin's own swr, not the route's", NULL,
             OK200("Cache-Control: s-maxage=120, stale-while-revalidate=30\r\n"), O_ROUTE, 0, 0,
             120, 0, 30, 0, F_MUSTREV),
        KEEP("§1.2.2 invalid s-maxage -> 0", NULL, OK200("Cache-Control: s-maxage=x\r\n"), O_DEF, 0,
             0, 0, 0, 0, 0, F_MUSTREV),
        KEEP("§5.3 Expires - Date", NULL, OK200("Expires: Sun, 06 Nov 1994 09:49:37 GMT\r\n"),
             O_DEF, 0, 0, 3600, 0, 0, 0, 0),
        KEEP("§4.2.1 Expires in the past: stored, already stale", NULL,
             OK200("Expires: Sun, 06 Nov 1994 07:49:37 GMT\r\n"), O_DEF, 0, 0, 0, 0, 0, 0, 0),
        KEEP("§5.3 invalid Expires (\"0\") means expired", NULL, OK200("Expires: 0\r\n"), O_DEF, 0,
             0, 0, 0, 0, 0, 0),
        KEEP("§5.3 max-age overrides Expires", NULL,
             OK200("Cache-Control: max-age=60\r\nExpires: Sun, 06 Nov 1994 09:49:37 GMT\r\n"),
             O_DEF, 0, 0, 60, 0, 0, 0, 0),
        KEEP("§4.2.1 no Date: Expires - response_time", NULL,
             RESP("200 OK", "Expires: Sun, 06 Nov 1994 08:51:17 GMT\r\n"), O_DEF, 0, 0, 100, 0, 0,
             0, 0),
        KEEP("§4.2.1 two Expires lines: stale", NULL,
             OK200("Expires: Sun, 06 Nov 1994 09:49:37 GMT\r\nExpires: Sun, 06 Nov 1994 09:49:37 GMT\r\n"),
             O_DEF, 0, 0, 0, 0, 0, 0, 0),
        KEEP("§4.2.1 duplicate max-age lines: smallest", NULL,
             OK200("Cache-Control: max-age=60\r\nCache-Control: max-age=10\r\n"), O_DEF, 0, 0, 10,
             0, 0, 0, 0),
        KEEP("§1.2.2 invalid max-age: stored, stale", NULL, OK200("Cache-Control: max-age=abc\r\n"),
             O_DEF, 0, 0, 0, 0, 0, 0, 0),
        KEEP("§3 explicit freshness makes a 302 storable", NULL,
             RESP("302 Found", DATE "Location: /x\r\nCache-Control: max-age=60\r\n"), O_DEF, 0, 0,
             60, 0, 0, 0, 0),
        /* age, §4.2.3 */
        KEEP("§4.2.3 Age adds to the initial age", NULL,
             OK200("Age: 30\r\nCache-Control: max-age=60\r\n"), O_DEF, 0, 0, 60, 30, 0, 0, 0),
        KEEP("§4.2.3 corrected_age_value = Age + response_delay", NULL,
             OK200("Age: 10\r\nCache-Control: max-age=60\r\n"), O_DEF, -2, 0, 60, 12, 0, 0, 0),
        KEEP("§4.2.3 apparent_age from Date wins when larger", NULL,
             RESP("200 OK",
                  "Date: Sun, 06 Nov 1994 08:47:57 GMT\r\nAge: 5\r\nCache-Control: max-age=600\r\n"),
             O_DEF, 0, 0, 600, 100, 0, 0, 0),
        KEEP("§5.1 invalid Age ignored", NULL, OK200("Age: abc\r\nCache-Control: max-age=60\r\n"),
             O_DEF, 0, 0, 60, 0, 0, 0, 0),
        KEEP("§5.1 list Age: first member", NULL,
             OK200("Age: 7, 9\r\nCache-Control: max-age=60\r\n"), O_DEF, 0, 0, 60, 7, 0, 0, 0),
        KEEP("§4.2.3 Date in the future: apparent age 0", NULL,
             RESP("200 OK", "Date: Sun, 06 Nov 1994 09:49:37 GMT\r\nCache-Control: max-age=60\r\n"),
             O_DEF, 0, 0, 60, 0, 0, 0, 0),
        /* heuristics, §4.2.2 */
        KEEP("§4.2.2 heuristic: 10% of Date - Last-Modified", NULL, OK200(LM_5D), O_DEF, 0, 0,
             43200, 0, 0, 0, F_HEUR),
        KEEP("§4.2.2 heuristic capped at heuristic_max", NULL, OK200(LM_100D), O_DEF, 0, 0, 86400,
             0, 0, 0, F_HEUR),
        KEEP("RFC 9110 §15.1 404 is heuristically cacheable", NULL,
             RESP("404 Not Found", DATE LM_5D), O_DEF, 0, 0, 43200, 0, 0, 0, F_HEUR),
        DROP("RFC 9110 §15.1 302 is not heuristically cacheable", NULL,
             RESP("302 Found", DATE "Location: /x\r\n" LM_5D), O_DEF, fresh_why_no_freshness),
        KEEP("§4.2.2 public allows heuristics for any status", NULL,
             RESP("302 Found", DATE "Location: /x\r\nCache-Control: public\r\n" LM_5D), O_DEF, 0, 0,
             43200, 0, 0, 0, F_HEUR),
        DROP("§3 public alone gives no lifetime", NULL, OK200("Cache-Control: public\r\n"), O_DEF,
             fresh_why_no_freshness),
        DROP("§3 nothing says it may be reused", NULL, OK200(""), O_DEF, fresh_why_no_freshness),
        DROP("§4.2.2 heuristics disabled by the route", NULL, OK200(LM_5D), O_NOH,
             fresh_why_no_freshness),
        /* no-cache, §5.2.2.4 */
        KEEP("§5.2.2.4 no-cache with a validator: store, always revalidate, never stale", NULL,
             OK200("Cache-Control: no-cache\r\nETag: \"a\"\r\n"), O_ROUTE, 0, 0, 0, 0, 0, 0,
             F_NOCACHE),
        DROP("§5.2.2.4 no-cache without a validator", NULL, OK200("Cache-Control: no-cache\r\n"),
             O_DEF, fresh_why_no_freshness),
        KEEP("§5.2.2.4 qualified no-cache acts as no-cache", NULL,
             OK200("Cache-Control: no-cache=\"set-cookie\", max-age=60\r\n"), O_DEF, 0, 0, 60, 0, 0,
             0, F_NOCACHE),
        /* storing, §3 */
        DROP("§5.2.2.7 private", NULL, OK200("Cache-Control: private, max-age=60\r\n"), O_DEF,
             fresh_why_private),
        DROP("§5.2.2.7 qualified private", NULL,
             OK200("Cache-Control: private=\"x\", max-age=60\r\n"), O_DEF, fresh_why_private),
        DROP("§5.2.2.5 no-store in the response", NULL,
             OK200("Cache-Control: no-store, max-age=60\r\n"), O_DEF, fresh_why_no_store),
        DROP("§5.2.1.5 no-store in the request", REQ("Cache-Control: no-store\r\n"),
             OK200("Cache-Control: max-age=60\r\n"), O_DEF, fresh_why_no_store),
        KEEP("§5.2.1.4 request no-cache does not prevent storing",
             REQ("Cache-Control: no-cache\r\n"), OK200("Cache-Control: max-age=60\r\n"), O_DEF, 0,
             0, 60, 0, 0, 0, 0),
        DROP("levee: Set-Cookie not stored", NULL,
             OK200("Set-Cookie: a=b\r\nCache-Control: max-age=60\r\n"), O_DEF,
             fresh_why_set_cookie),
        KEEP("levee: Set-Cookie allowed by the route", NULL,
             OK200("Set-Cookie: a=b\r\nCache-Control: max-age=60\r\n"), O_ALLOW, 0, 0, 60, 0, 0, 0,
             0),
        DROP("§3.5 Authorization without permission", REQ("Authorization: Basic eDp5\r\n"),
             OK200("Cache-Control: max-age=60\r\n"), O_DEF, fresh_why_authorization),
        KEEP("§3.5 Authorization with public", REQ("Authorization: Basic eDp5\r\n"),
             OK200("Cache-Control: public, max-age=60\r\n"), O_DEF, 0, 0, 60, 0, 0, 0, 0),
        KEEP("§3.5 Authorization with s-maxage", REQ("Authorization: Basic eDp5\r\n"),
             OK200("Cache-Control: s-maxage=60\r\n"), O_DEF, 0, 0, 60, 0, 0, 0, F_MUSTREV),
        KEEP("§3.5 Authorization with must-revalidate", REQ("Authorization: Basic eDp5\r\n"),
             OK200("Cache-Control: must-revalidate, max-age=60\r\n"), O_DEF, 0, 0, 60, 0, 0, 0,
             F_MUSTREV),
        KEEP("§3.5 Authorization allowed by the route", REQ("Authorization: Basic eDp5\r\n"),
             OK200("Cache-Control: max-age=60\r\n"), O_ALLOW, 0, 0, 60, 0, 0, 0, 0),
        DROP("§3.4 / levee: 206 never stored", NULL,
             RESP("206 Partial Content",
                  DATE "Content-Range: bytes 0-0/10\r\nCache-Control: max-age=60\r\n"),
             O_DEF, fresh_why_partial),
        DROP("levee: 500 never stored", NULL,
             RESP("500 Internal Server Error", DATE "Cache-Control: max-age=60\r\n"), O_DEF,
             fresh_why_status),
        DROP("levee: 503 never stored", NULL,
             RESP("503 Service Unavailable", DATE "Cache-Control: max-age=60\r\n"), O_DEF,
             fresh_why_status),
        KEEP("§4.2.2: 501 is heuristically cacheable (RFC 9110 §15.1)", NULL,
             RESP("501 Not Implemented", DATE LM_5D), O_DEF, 0, 0, 43200, 0, 0, 0, F_HEUR),
        KEEP("§3: 501 with max-age", NULL,
             RESP("501 Not Implemented", DATE "Cache-Control: max-age=30\r\n"), O_DEF, 0, 0, 30, 0, 0, 0, 0),
        DROP("levee: 502 with max-age is a passing failure", NULL,
             RESP("502 Bad Gateway", DATE "Cache-Control: max-age=30\r\n"), O_DEF, fresh_why_status),
        DROP("§4.3.4 304 freshens, is not stored", NULL,
             RESP("304 Not Modified", DATE "Cache-Control: max-age=60\r\n"), O_DEF,
             fresh_why_status),
        DROP("§3 unknown status", NULL, RESP("299 Whatever", DATE "Cache-Control: max-age=60\r\n"),
             O_DEF, fresh_why_status),
        DROP("§3 / levee: HEAD responses not stored", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
             OK200("Cache-Control: max-age=60\r\n"), O_DEF, fresh_why_method),
        DROP("§3 / levee: POST responses not stored",
             "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
             OK200("Cache-Control: max-age=60\r\n"), O_DEF, fresh_why_method),
        DROP("§4.1 Vary: * never matches", NULL, OK200("Vary: *\r\nCache-Control: max-age=60\r\n"),
             O_DEF, fresh_why_vary_star),
        DROP("§4.1 Vary: * on a later line", NULL,
             OK200("Vary: Accept\r\nVary: *\r\nCache-Control: max-age=60\r\n"), O_DEF,
             fresh_why_vary_star),
        KEEP("§4.1 Vary with field names is storable", NULL,
             OK200("Vary: Accept-Encoding\r\nCache-Control: max-age=60\r\n"), O_DEF, 0, 0, 60, 0, 0,
             0, 0),
        DROP("§4.1 safety reason outranks missing freshness", NULL,
             OK200("Cache-Control: private\r\n"), O_DEF, fresh_why_private),
        /* stale windows */
        KEEP("RFC 5861 route windows apply", NULL, OK200("Cache-Control: max-age=60\r\n"), O_ROUTE,
             0, 0, 60, 0, 30, 300, 0),
        KEEP("RFC 5861 larger of response and route", NULL,
             OK200("Cache-Control: max-age=60, stale-while-revalidate=100, stale-if-error=10\r\n"),
             O_ROUTE, 0, 0, 60, 0, 100, 300, 0),
        KEEP("§5.2.2.2 must-revalidate: no stale serving", NULL,
             OK200("Cache-Control: must-revalidate, max-age=60, stale-if-error=600\r\n"), O_ROUTE,
             0, 0, 60, 0, 0, 0, F_MUSTREV),
        KEEP("§5.2.2.8 proxy-revalidate: no stale serving", NULL,
             OK200("Cache-Control: proxy-revalidate, max-age=60\r\n"), O_ROUTE, 0, 0, 60, 0, 0, 0,
             F_MUSTREV),
        /* fixed-TTL mode */
        KEEP("levee fixed: origin max-age=0 ignored", NULL,
             OK200("Cache-Control: max-age=0, must-revalidate\r\n"), O_FIXED, 0, 0, 300, 0, 30, 300,
             0),
        KEEP("levee fixed: origin no-cache ignored", NULL, OK200("Cache-Control: no-cache\r\n"),
             O_FIXED, 0, 0, 300, 0, 30, 300, 0),
        KEEP("levee fixed: no headers needed", NULL, OK200(""), O_FIXED, 0, 0, 300, 0, 30, 300, 0),
        KEEP("levee fixed: Age still counts (§4.2.3)", NULL, OK200("Age: 20\r\n"), O_FIXED, 0, 0,
             300, 20, 30, 300, 0),
        DROP("levee fixed: no-store still forbids", NULL, OK200("Cache-Control: no-store\r\n"),
             O_FIXED, fresh_why_no_store),
        DROP("levee fixed: private still forbids", NULL, OK200("Cache-Control: private\r\n"),
             O_FIXED, fresh_why_private),
        DROP("levee fixed: Set-Cookie still forbids", NULL, OK200("Set-Cookie: a=b\r\n"), O_FIXED,
             fresh_why_set_cookie),
        DROP("levee fixed: Authorization still needs permission",
             REQ("Authorization: Basic eDp5\r\n"), OK200(""), O_FIXED, fresh_why_authorization),
        DROP("levee fixed: only heuristically cacheable statuses", NULL,
             RESP("302 Found", DATE "Location: /x\r\nCache-Control: max-age=60\r\n"), O_FIXED,
             fresh_why_status),
        KEEP("levee fixed: 404 stored", NULL, RESP("404 Not Found", DATE), O_FIXED, 0, 0, 300, 0,
             30, 300, 0),
        DROP("levee fixed: 501 heuristic, yet a 5xx", NULL, RESP("501 Not Implemented", DATE), O_FIXED,
             fresh_why_status),
        /* statuses with explicit freshness, §3 (cache_any_status) */
        KEEP("§3 any_status: 500 with max-age", NULL,
             RESP("500 Internal Server Error", DATE "Cache-Control: max-age=30\r\n"), O_ANY, 0, 0, 30, 0, 0, 0, 0),
        DROP("levee: 500 with max-age, no any_status", NULL,
             RESP("500 Internal Server Error", DATE "Cache-Control: max-age=30\r\n"), O_DEF, fresh_why_status),
        KEEP("§3 any_status: unknown 418 with Expires", NULL,
             RESP("418 I'm a teapot", DATE "Expires: Sun, 06 Nov 1994 08:50:37 GMT\r\n"), O_ANY, 0, 0, 60, 0, 0, 0,
             0),
        DROP("levee: unknown 418 with max-age, no any_status", NULL,
             RESP("418 I'm a teapot", DATE "Cache-Control: max-age=30\r\n"), O_DEF, fresh_why_status),
        DROP("§3 any_status: 500 without freshness", NULL, RESP("500 Internal Server Error", DATE LM_5D), O_ANY,
             fresh_why_no_freshness),
        KEEP("§4.2.2 any_status: 501 is heuristically cacheable", NULL, RESP("501 Not Implemented", DATE LM_5D),
             O_ANY, 0, 0, 43200, 0, 0, 0, F_HEUR),
        KEEP("§4.2.2 any_status: public 503 heuristic", NULL,
             RESP("503 Service Unavailable", DATE LM_5D "Cache-Control: public\r\n"), O_ANY, 0, 0, 43200, 0, 0, 0,
             F_HEUR),
        DROP("§3 any_status never stores 206", NULL,
             RESP("206 Partial Content", DATE "Content-Range: bytes 0-0/1\r\nCache-Control: max-age=60\r\n"),
             O_ANY, fresh_why_partial),
        DROP("levee fixed: any_status does not apply", NULL,
             RESP("500 Internal Server Error", DATE "Cache-Control: max-age=30\r\n"), O_FANY, fresh_why_status),
        DROP("levee fixed, any_status: 302 still not stored", NULL,
             RESP("302 Found", DATE "Location: /x\r\n"), O_FANY, fresh_why_status),
        /* must-understand, §5.2.2.3 */
        KEEP("§5.2.2.3 must-understand + understood status: no-store ignored", NULL,
             OK200("Cache-Control: must-understand, no-store, max-age=60\r\n"), O_DEF, 0, 0, 60, 0, 0, 0, 0),
        DROP("§5.2.2.3 must-understand + unknown status: not stored", NULL,
             RESP("299 Whatever", DATE "Cache-Control: must-understand, max-age=60\r\n"), O_ANY, fresh_why_status),
        DROP("§5.2.2.3 must-understand, unknown 418, any_status: not stored", NULL,
             RESP("418 I'm a teapot", DATE "Cache-Control: must-understand, no-store, max-age=60\r\n"), O_ANY,
             fresh_why_status),
        DROP("§5.2.2.3 the request's no-store still counts", REQ("Cache-Control: no-store\r\n"),
             OK200("Cache-Control: must-understand, no-store, max-age=60\r\n"), O_DEF, fresh_why_no_store),
        DROP("§5.2.2.3 must-understand does not lift private", NULL,
             OK200("Cache-Control: must-understand, private, max-age=60\r\n"), O_DEF, fresh_why_private),
        KEEP("§5.2.2.3 must-understand without no-store: the other directives", NULL,
             OK200("Cache-Control: must-understand, max-age=5\r\n"), O_DEF, 0, 0, 5, 0, 0, 0, 0),
};

static void test_fresh_evaluate(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(eval_cases) / sizeof(eval_cases[0]); i++) {
		const struct eval_case *c = &eval_cases[i];
		struct h1_fixture *rq = parse_req(c->req ? c->req : GET);
		struct h1_fixture *rs = parse_resp(c->resp);
		struct fresh_options o;
		preset(c->opt, &o);
		struct fresh_eval ev;
		fresh_evaluate(&rq->head, &rs->head, T0 + c->req_dt, T0 + c->resp_dt, &o, &ev);
		if (ev.why_not != c->why || ev.storable != (c->why == NULL))
			fail_msg("%s: why_not %s, want %s", c->rfc,
			         ev.why_not ? ev.why_not : "(none)", c->why ? c->why : "(none)");
		if (!c->why && (ev.st.lifetime != c->lifetime ||
		                ev.st.initial_age != c->initial_age || ev.st.swr != c->swr ||
		                ev.st.sie != c->sie || ev.heuristic != !!(c->flags & F_HEUR) ||
		                ev.st.must_revalidate != !!(c->flags & F_MUSTREV) ||
		                ev.st.no_cache != !!(c->flags & F_NOCACHE) ||
		                ev.st.response_time != T0 + c->resp_dt))
			fail_msg(
			        "%s: lifetime %lld age %lld swr %lld sie %lld heuristic %d must-reval %d "
			        "no-cache %d",
			        c->rfc, (long long)ev.st.lifetime, (long long)ev.st.initial_age,
			        (long long)ev.st.swr, (long long)ev.st.sie, ev.heuristic,
			        ev.st.must_revalidate, ev.st.no_cache);
		free(rq);
		free(rs);
	}
}

static void test_fresh_evaluate_validators(void **state)
{
	(void)state;
	struct h1_fixture *rq = parse_req(GET);
	struct h1_fixture *rs = parse_resp(
	        RESP("200 OK", "ETag: W/\"x\"\r\n" LM_5D "Cache-Control: max-age=1\r\n"));
	struct fresh_options o;
	fresh_options_init(&o);
	struct fresh_eval ev;
	fresh_evaluate(&rq->head, &rs->head, T0, T0 + 3, &o, &ev);
	assert_true(ev.has_etag);
	assert_int_equal(ev.last_modified, T0 - 432000);
	assert_int_equal(ev.date, T0 + 3); /* no Date: the caller adds response_time */
	free(rq);
	free(rs);
}

/* ---- reuse at lookup time ---------------------------------------------- */

struct state_case {
	const char *rfc;
	struct fresh_stored st;
	const char *req_cc; /* NULL: no request directives */
	int64_t now_dt;     /* now - T0 */
	enum fresh_state want;
};

/* stored at T0, lifetime 60 */
#define ST(age, swr, sie, mr, nc)                                                                  \
	{                                                                                          \
		T0, age, 60, swr, sie, mr, nc                                                      \
	}

static const struct state_case state_cases[] = {
        {"§4.2 fresh while age < lifetime", ST(0, 0, 0, false, false), NULL, 30, FRESH_OK},
        {"§4.2 age == lifetime is stale", ST(0, 0, 0, false, false), NULL, 60,
         FRESH_STALE_REVALIDATE},
        {"§4.2.3 initial age counts", ST(50, 0, 0, false, false), NULL, 20, FRESH_STALE_REVALIDATE},
        {"§4.2.3 a clock going backwards adds no age", ST(0, 0, 0, false, false), NULL, -100,
         FRESH_OK},
        {"RFC 5861 §3 within stale-while-revalidate", ST(0, 30, 0, false, false), NULL, 70,
         FRESH_STALE_SWR},
        {"RFC 5861 §3 past stale-while-revalidate", ST(0, 30, 0, false, false), NULL, 95,
         FRESH_STALE_REVALIDATE},
        {"RFC 5861 §4 past swr, within stale-if-error", ST(0, 30, 300, false, false), NULL, 95,
         FRESH_STALE_SIE},
        {"RFC 5861 §4 past stale-if-error", ST(0, 30, 300, false, false), NULL, 400,
         FRESH_STALE_REVALIDATE},
        {"§5.2.1.1 request max-age rejects an older fresh copy", ST(0, 0, 0, false, false),
         "max-age=10", 30, FRESH_STALE_SIE},
        {"§5.2.1.1 request max-age accepts a younger copy", ST(0, 0, 0, false, false), "max-age=10",
         5, FRESH_OK},
        {"§5.2.1.1 request max-age=0 skips swr", ST(0, 30, 0, false, false), "max-age=0", 70,
         FRESH_STALE_REVALIDATE},
        {"§5.2.1.3 min-fresh not met", ST(0, 0, 0, false, false), "min-fresh=40", 30,
         FRESH_STALE_SIE},
        {"§5.2.1.3 min-fresh met", ST(0, 0, 0, false, false), "min-fresh=20", 30, FRESH_OK},
        {"§5.2.1.2 max-stale within", ST(0, 0, 0, false, false), "max-stale=20", 70, FRESH_OK},
        {"§5.2.1.2 max-stale exceeded", ST(0, 0, 0, false, false), "max-stale=5", 70,
         FRESH_STALE_REVALIDATE},
        {"§5.2.1.2 max-stale without value: any", ST(0, 0, 0, false, false), "max-stale", 100000,
         FRESH_OK},
        {"§5.2.2.2 must-revalidate outranks max-stale", ST(0, 0, 0, true, false), "max-stale", 70,
         FRESH_STALE_REVALIDATE},
        {"§5.2.2.10 s-maxage with the origin's own swr", ST(0, 30, 0, true, false), NULL, 70,
         FRESH_STALE_SWR},
        {"§5.2.1.4 request no-cache always validates", ST(0, 0, 300, false, false), "no-cache", 10,
         FRESH_STALE_REVALIDATE},
        {"§5.2.2.4 stored no-cache always validates", ST(0, 0, 0, false, true), NULL, 10,
         FRESH_STALE_REVALIDATE},
        {"§5.2.1.7 only-if-cached changes nothing here", ST(0, 0, 0, false, false),
         "only-if-cached", 30, FRESH_OK},
};

static void test_fresh_state(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(state_cases) / sizeof(state_cases[0]); i++) {
		const struct state_case *c = &state_cases[i];
		struct cc_directives d;
		cc_init(&d);
		if (c->req_cc)
			cc_parse(&d, c->req_cc, strlen(c->req_cc));
		enum fresh_state s = fresh_state(&c->st, c->req_cc ? &d : NULL, T0 + c->now_dt);
		if (s != c->want)
			fail_msg("%s: state %d, want %d", c->rfc, s, c->want);
	}
	/* §4.2.3 current_age */
	assert_int_equal(fresh_current_age(10, T0, T0 + 5), 15);
	assert_int_equal(fresh_current_age(10, T0, T0 - 5), 10);
	assert_int_equal(fresh_current_age(CC_DELTA_MAX, T0, T0 + 5), CC_DELTA_MAX);
	assert_int_equal(fresh_current_age(0, 0, INT64_MAX), CC_DELTA_MAX);
}

/* ---- stretch-ttl ------------------------------------------------------- */

struct stretch_case {
	const char *why;
	int64_t lifetime, initial_age, swr;
	uint64_t factor;
	const char *req_cc;
	int64_t now_dt;
	enum fresh_state want;
	int64_t want_lifetime;
};

static const struct stretch_case stretch_cases[] = {
        {"factor 1 changes nothing", 60, 0, 0, 1, NULL, 90, FRESH_STALE_REVALIDATE, 60},
        {"factor 0 counts as 1", 60, 0, 0, 0, NULL, 90, FRESH_STALE_REVALIDATE, 60},
        {"stale copy fresh again under x4", 60, 0, 0, 4, NULL, 90, FRESH_OK, 240},
        {"x4 ends at 4 lifetimes", 60, 0, 0, 4, NULL, 240, FRESH_STALE_REVALIDATE, 240},
        {"initial age counts against the stretched lifetime", 60, 200, 0, 4, NULL, 50,
         FRESH_STALE_REVALIDATE, 240},
        {"swr counts from the stretched end", 60, 0, 30, 4, NULL, 250, FRESH_STALE_SWR, 240},
        {"a request's max-age still rejects (fresh: it may serve an error)", 60, 0, 0, 4, "max-age=10",
         90, FRESH_STALE_SIE, 240},
        {"lifetime 0 (revalidate each use) stays 0", 0, 0, 0, 100, NULL, 0, FRESH_STALE_REVALIDATE,
         0},
        {"saturates at 2^31, no overflow", CC_DELTA_MAX, 0, 0, 100, NULL, 1, FRESH_OK, CC_DELTA_MAX},
        {"saturates with a huge factor", 2, 0, 0, UINT64_MAX, NULL, 1, FRESH_OK, CC_DELTA_MAX},
        {"just below saturation", CC_DELTA_MAX / 4, 0, 0, 4, NULL, 1, FRESH_OK,
         (CC_DELTA_MAX / 4) * 4},
        {"a negative lifetime is clamped first", -5, 0, 0, 4, NULL, 1, FRESH_STALE_REVALIDATE, -5},
};

static void test_fresh_stretch(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(stretch_cases) / sizeof(stretch_cases[0]); i++) {
		const struct stretch_case *c = &stretch_cases[i];
		struct fresh_stored st = {T0, c->initial_age, c->lifetime, c->swr, 0, false, false};
		fresh_stretch(&st, c->factor);
		if (st.lifetime != c->want_lifetime)
			fail_msg("%s: lifetime %lld, want %lld", c->why, (long long)st.lifetime,
			         (long long)c->want_lifetime);
		struct cc_directives d;
		cc_init(&d);
		if (c->req_cc)
			cc_parse(&d, c->req_cc, strlen(c->req_cc));
		enum fresh_state s = fresh_state(&st, c->req_cc ? &d : NULL, T0 + c->now_dt);
		if (s != c->want)
			fail_msg("%s: state %d, want %d", c->why, s, c->want);
	}
}

/* ---- Vary -------------------------------------------------------------- */

struct vary_case {
	const char *rfc;
	const char *hdrs;
	size_t cap;
	enum vary_kind kind;
	const char *names;
};

static const struct vary_case vary_cases[] = {
        {"§4.1 no Vary", "", 64, VARY_NONE, ""},
        {"§4.1 one name, lowercased", "Vary: Accept-Encoding\r\n", 64, VARY_LIST,
         "accept-encoding"},
        {"§4.1 sorted", "Vary: Accept-Language, accept-encoding\r\n", 64, VARY_LIST,
         "accept-encoding,accept-language"},
        {"§4.1 several lines, duplicates dropped",
         "Vary: User-Agent\r\nVary: Accept, user-agent\r\n", 64, VARY_LIST, "accept,user-agent"},
        {"§4.1 insertion in the middle", "Vary: b, a, c, b\r\n", 64, VARY_LIST, "a,b,c"},
        {"§4.1 star", "Vary: *\r\n", 64, VARY_STAR, ""},
        {"§4.1 star on a later line", "Vary: Accept\r\nVary: *\r\n", 64, VARY_STAR, ""},
        {"§4.1 a member that is no field name", "Vary: a b\r\n", 64, VARY_STAR, ""},
        {"§4.1 empty Vary", "Vary: \r\n", 64, VARY_NONE, ""},
        {"levee: does not fit", "Vary: Accept-Encoding\r\n", 8, VARY_TOO_LONG, ""},
        {"levee: exact fit with the NUL", "Vary: abc, d\r\n", 6, VARY_LIST, "abc,d"},
        {"levee: one byte short", "Vary: abc, d\r\n", 5, VARY_TOO_LONG, ""},
};

static void test_vary_names(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vary_cases) / sizeof(vary_cases[0]); i++) {
		const struct vary_case *c = &vary_cases[i];
		char raw[256];
		snprintf(raw, sizeof(raw), "HTTP/1.1 200 OK\r\n%sContent-Length: 0\r\n\r\n",
		         c->hdrs);
		struct h1_fixture *rs = parse_resp(raw);
		char out[64];
		size_t len = 99;
		enum vary_kind k = vary_names(&rs->head, out, c->cap, &len);
		if (k != c->kind || len != strlen(c->names) ||
		    (k == VARY_LIST && strcmp(out, c->names) != 0))
			fail_msg("%s: kind %d len %zu \"%.*s\"", c->rfc, k, len, (int)len, out);
		free(rs);
	}
}

/* ---- conditional requests ---------------------------------------------- */

struct cond_case {
	const char *rfc;
	const char *req;
	const char *etag;
	int64_t last_modified;
	bool want;
};

#define IMS_T0 "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"

static const struct cond_case cond_cases[] = {
        {"RFC 9110 §13.1.2 strong tags match", REQ("If-None-Match: \"a\"\r\n"), "\"a\"", -1, true},
        {"§13.1.2 weak comparison: W/\"a\" vs \"a\"", REQ("If-None-Match: W/\"a\"\r\n"), "\"a\"",
         -1, true},
        {"§13.1.2 weak comparison: \"a\" vs W/\"a\"", REQ("If-None-Match: \"a\"\r\n"), "W/\"a\"",
         -1, true},
        {"§13.1.2 different tags", REQ("If-None-Match: \"b\"\r\n"), "\"a\"", -1, false},
        {"§13.1.2 list", REQ("If-None-Match: \"x\", W/\"y\", \"a\"\r\n"), "\"a\"", -1, true},
        {"§13.1.2 list over several lines", REQ("If-None-Match: \"x\"\r\nIf-None-Match: \"a\"\r\n"),
         "\"a\"", -1, true},
        {"§13.1.2 star", REQ("If-None-Match: *\r\n"), "\"a\"", -1, true},
        {"§13.1.2 star without a stored tag", REQ("If-None-Match: *\r\n"), "", -1, true},
        {"§8.8.3 a comma inside an opaque tag", REQ("If-None-Match: \"a,b\"\r\n"), "\"a,b\"", -1,
         true},
        {"§8.8.3 no stored tag never matches", REQ("If-None-Match: \"a\"\r\n"), "", T0, false},
        {"§8.8.3 unquoted member is malformed", REQ("If-None-Match: a\r\n"), "a", -1, false},
        {"§13.1.3 If-None-Match outranks If-Modified-Since", REQ("If-None-Match: \"x\"\r\n" IMS_T0),
         "\"a\"", T0 - 100, false},
        {"§13.1.3 not modified since", REQ(IMS_T0), "", T0 - 100, true},
        {"§13.1.3 equal dates: not modified", REQ(IMS_T0), "", T0, true},
        {"§13.1.3 modified after", REQ(IMS_T0), "", T0 + 100, false},
        {"§13.1.3 invalid date ignored", REQ("If-Modified-Since: yesterday\r\n"), "", T0 - 100,
         false},
        {"§13.1.3 obsolete date format accepted",
         REQ("If-Modified-Since: Sunday, 06-Nov-94 08:49:37 GMT\r\n"), "", T0 - 100, true},
        {"§4.3.2 nothing to compare", REQ(IMS_T0), "", -1, false},
        {"§13.1.3 only GET and HEAD",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n" IMS_T0 "\r\n", "", T0 - 100, false},
        {"§13.1.3 HEAD qualifies", "HEAD / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"a\"\r\n\r\n",
         "\"a\"", -1, true},
        {"§13.1 no conditionals", GET, "\"a\"", T0, false},
};

static void test_cond_not_modified(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cond_cases) / sizeof(cond_cases[0]); i++) {
		const struct cond_case *c = &cond_cases[i];
		struct h1_fixture *rq = parse_req(c->req);
		bool got = cond_not_modified(&rq->head, c->etag, strlen(c->etag), c->last_modified);
		if (got != c->want)
			fail_msg("%s: got %d", c->rfc, got);
		free(rq);
	}
}

static void test_cond_has_conditionals(void **state)
{
	(void)state;
	static const struct {
		const char *req;
		bool want;
	} cases[] = {
	        {GET, false},
	        {REQ("If-None-Match: \"a\"\r\n"), true},
	        {REQ(IMS_T0), true},
	        {REQ("If-Match: \"a\"\r\n"), true},
	        {REQ("If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"), true},
	        {REQ("If-Range: \"a\"\r\n"), true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct h1_fixture *rq = parse_req(cases[i].req);
		assert_int_equal(cond_has_conditionals(&rq->head), cases[i].want);
		free(rq);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cc_parse),
	        cmocka_unit_test(test_cc_request),
	        cmocka_unit_test(test_http_date_parse),
	        cmocka_unit_test(test_http_date_format),
	        cmocka_unit_test(test_fresh_evaluate),
	        cmocka_unit_test(test_fresh_evaluate_validators),
	        cmocka_unit_test(test_fresh_state),
	        cmocka_unit_test(test_fresh_stretch),
	        cmocka_unit_test(test_vary_names),
	        cmocka_unit_test(test_cond_not_modified),
	        cmocka_unit_test(test_cond_has_conditionals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
