/* test_vary.c - the secondary cache key and Vary normalisation
 * (proxy/cache/vary.c): a table of request heads and the key each gives
 * for some Vary names, then pairs of values that must share a key and pairs
 * that must not, for each field levee knows and for an unknown one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h> /* after the headers it needs */

#include "cache/vary.h"
#include "h1_feed.h"

static struct h1_fixture *parse_req(const char *hdrs)
{
	char raw[2048];
	snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: h\r\n%s\r\n", hdrs);
	struct h1_fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	enum lv_reason r;
	size_t used;
	if (h1_parse_request(f, raw, strlen(raw), 0, &r, &used) != 0)
		fail_msg("request fixture refused: %s", raw);
	return f;
}

/* The key of <hdrs> for <names>, into <out> (cap <cap>); its length. */
static size_t key_of(const char *names, const char *hdrs, char *out, size_t cap)
{
	struct h1_fixture *rq = parse_req(hdrs);
	size_t n = vary_secondary_key(&rq->head, names, strlen(names), out, cap);
	free(rq);
	return n;
}

static void test_secondary_key_table(void **state)
{
	static const struct {
		const char *what, *names, *hdrs;
		size_t cap;
		const char *key; /* NULL: returns 0 */
	} cases[] = {
	    {"present value", "accept-encoding", "Accept-Encoding: gzip\r\n", 128, "accept-encoding:gzip\n"},
	    {"absent field", "accept-encoding", "", 128, "accept-encoding\n"},
	    {"empty field differs from absent", "accept-encoding", "Accept-Encoding:\r\n", 128, "accept-encoding:\n"},
	    {"lines combined as one list", "accept", "Accept: a/b\r\nAccept:  c/d \r\n", 128, "accept:a/b,c/d\n"},
	    {"several names", "accept,accept-encoding", "Accept: x/y\r\n", 128, "accept:x/y\naccept-encoding\n"},
	    {"names matched case-insensitively", "x-a", "X-A: 1\r\n", 128, "x-a:1\n"},
	    {"unknown field: empty line adds nothing", "x-a", "X-A: 1\r\nX-A:\r\n", 128, "x-a:1\n"},
	    {"does not fit", "accept-encoding", "Accept-Encoding: gzip\r\n", 10, NULL},
	    {"exact fit with the NUL", "a", "A: 1\r\n", 5, "a:1\n"},
	    {"one byte short", "a", "A: 1\r\n", 4, NULL},
	    {"value one byte short", "a", "A: 12\r\n", 5, NULL},
	    {"no names", "", "A: 1\r\n", 128, NULL},
	    {"accept-encoding sorted and lowercased", "accept-encoding", "Accept-Encoding: GZip, br ,deflate\r\n", 128,
	     "accept-encoding:br,deflate,gzip\n"},
	    {"accept-encoding weights without OWS", "accept-encoding", "Accept-Encoding: gzip ; Q=0.5, br\r\n", 128,
	     "accept-encoding:br,gzip;q=0.5\n"},
	    {"accept-encoding empty members dropped", "accept-encoding", "Accept-Encoding: ,gzip,, br,\r\n", 128,
	     "accept-encoding:br,gzip\n"},
	    {"accept-encoding over lines, sorted together", "accept-encoding",
	     "Accept-Encoding: gzip\r\nAccept-Encoding: br\r\n", 128, "accept-encoding:br,gzip\n"},
	    {"accept-language lowercased, order kept", "accept-language", "Accept-Language: FR-ch, en;q=0.5\r\n", 128,
	     "accept-language:fr-ch,en;q=0.5\n"},
	    {"accept-charset lowercased, order kept", "accept-charset", "Accept-Charset: UTF-8 , ISO-8859-1\r\n", 128,
	     "accept-charset:utf-8,iso-8859-1\n"},
	    {"accept: type and parameter names folded, values kept", "accept",
	     "Accept: Text/HTML; Level=A, */*;q=0.1\r\n", 128, "accept:text/html;level=A,*/*;q=0.1\n"},
	    {"accept: quoted value kept, comma inside not a separator", "accept",
	     "Accept: a/b;x=\"P, Q\" , c/d\r\n", 128, "accept:a/b;x=\"P, Q\",c/d\n"},
	    {"unknown: OWS around members only", "x-thing", "X-Thing: B ,  a,c d\r\n", 128, "x-thing:B,a,c d\n"},
	    {"unknown: empty members kept", "x-thing", "X-Thing: a,,b,\r\n", 128, "x-thing:a,,b,\n"},
	    {"unknown: no case folding", "user-agent", "User-Agent: Mozilla/5.0 (X11; Linux)\r\n", 128,
	     "user-agent:Mozilla/5.0 (X11; Linux)\n"},
	};
	int bad = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[128];
		size_t n = key_of(cases[i].names, cases[i].hdrs, out, cases[i].cap);
		bool ok = cases[i].key ? n == strlen(cases[i].key) && strcmp(out, cases[i].key) == 0 : n == 0;
		if (!ok) {
			print_error("%s: %zu \"%.*s\"\n", cases[i].what, n, (int)n, out);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* Pairs of one field's values: whether they share a variant. */
static void test_shared_or_not(void **state)
{
	static const struct {
		const char *field, *a, *b;
		bool same;
	} cases[] = {
	    {"Accept-Encoding", "gzip, br", "br,gzip", true},
	    {"Accept-Encoding", "gzip, br", "BR, GZIP", true},
	    {"Accept-Encoding", "gzip;q=1.0, identity; q=0", "identity;q=0,gzip;q=1.0", true},
	    {"Accept-Encoding", "gzip", "br", false},
	    {"Accept-Encoding", "gzip", "gzip, br", false},
	    {"Accept-Encoding", "gzip;q=0.5", "gzip;q=0.6", false},
	    {"Accept-Language", "en-US, fr", "EN-us,fr", true},
	    {"Accept-Language", "en, fr", "fr, en", false}, /* order may be preference */
	    {"Accept", "text/html, application/json", "TEXT/HTML,application/JSON", true},
	    {"Accept", "text/html, application/json", "application/json, text/html", false},
	    {"Accept", "a/b;p=X", "a/b;p=x", false}, /* a parameter value may be case-sensitive */
	    {"X-Custom", "a, b", "a,b", true},
	    {"X-Custom", "a, b", "b, a", false},
	    {"X-Custom", "Abc", "abc", false},
	    {"X-Custom", "a b", "a  b", false}, /* whitespace inside a member is kept */
	};
	int bad = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char names[64], ha[256], hb[256], ka[256], kb[256];
		size_t j;
		for (j = 0; cases[i].field[j]; j++)
			names[j] = (char)(cases[i].field[j] | (cases[i].field[j] >= 'A' && cases[i].field[j] <= 'Z' ? 0x20 : 0));
		names[j] = '\0';
		snprintf(ha, sizeof(ha), "%s: %s\r\n", cases[i].field, cases[i].a);
		snprintf(hb, sizeof(hb), "%s: %s\r\n", cases[i].field, cases[i].b);
		size_t na = key_of(names, ha, ka, sizeof(ka)), nb = key_of(names, hb, kb, sizeof(kb));
		bool same = na && na == nb && memcmp(ka, kb, na) == 0;
		if (same != cases[i].same) {
			print_error("%s: \"%s\" vs \"%s\": keys \"%s\" and \"%s\"\n", cases[i].field, cases[i].a, cases[i].b,
			            ka, kb);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* More members than levee sorts: the value keeps its order, and is still
 * its own key. */
static void test_many_members(void **state)
{
	char hdr[1024] = "Accept-Encoding: ";
	for (int i = 40; i > 0; i--) {
		char m[16];
		snprintf(m, sizeof(m), "c%02d%s", i, i > 1 ? ", " : "\r\n");
		strcat(hdr, m);
	}
	char k1[1024], k2[1024];
	size_t n1 = key_of("accept-encoding", hdr, k1, sizeof(k1));
	size_t n2 = key_of("accept-encoding", hdr, k2, sizeof(k2));
	assert_true(n1 > 0);
	assert_int_equal(n1, n2);
	assert_memory_equal(k1, k2, n1);
	assert_non_null(strstr(k1, "accept-encoding:c40,c39,"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_secondary_key_table),
	    cmocka_unit_test(test_shared_or_not),
	    cmocka_unit_test(test_many_members),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
