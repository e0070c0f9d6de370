/* test_origdst.c - transparent mode's original destination: which
 * addresses count as redirected, how they are written for the access log,
 * and what a socket that no nat rule touched reads as (nothing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <string.h>
#include <unistd.h>

#include "net/origdst.h"

static struct sockaddr_storage v4(const char *ip, unsigned port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *ip, unsigned port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
	a->sin6_family = AF_INET6;
	a->sin6_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void test_redirected_table(void **state)
{
	static const struct {
		int fam_o;
		const char *ip_o;
		unsigned port_o;
		int fam_l;
		const char *ip_l;
		unsigned port_l;
		bool redirected;
	} cases[] = {
	    {4, "10.0.0.5", 8080, 4, "10.0.0.5", 15006, true},  /* REDIRECT: same address, levee's port */
	    {4, "10.0.0.5", 8080, 4, "127.0.0.1", 15006, true}, /* from OUTPUT: loopback */
	    {4, "10.0.0.5", 15006, 4, "10.0.0.5", 15006, false}, /* came straight to the listener */
	    {4, "10.0.0.5", 15006, 4, "10.0.0.6", 15006, true},  /* DNAT to another address */
	    {6, "fd00::5", 8080, 6, "fd00::5", 15006, true},
	    {6, "fd00::5", 15006, 6, "fd00::5", 15006, false},
	    {6, "fd00::5", 15006, 6, "fd00::6", 15006, true},
	    {4, "10.0.0.5", 15006, 6, "::ffff:10.0.0.5", 15006, true}, /* families differ */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage o = cases[i].fam_o == 4 ? v4(cases[i].ip_o, cases[i].port_o)
		                                                : v6(cases[i].ip_o, cases[i].port_o);
		struct sockaddr_storage l = cases[i].fam_l == 4 ? v4(cases[i].ip_l, cases[i].port_l)
		                                                : v6(cases[i].ip_l, cases[i].port_l);
		if (origdst_redirected(SA(o), SA(l)) != cases[i].redirected) {
			print_error("case %zu: %s:%u vs %s:%u\n", i, cases[i].ip_o, cases[i].port_o, cases[i].ip_l,
			            cases[i].port_l);
			fail();
		}
	}
}

static void test_unmap(void **state)
{
	struct sockaddr_storage m = v6("::ffff:10.0.0.5", 15006);
	origdst_unmap(&m);
	assert_int_equal(m.ss_family, AF_INET);
	struct sockaddr_storage want = v4("10.0.0.5", 15006);
	assert_memory_equal(&m, &want, sizeof(struct sockaddr_in));
	/* now it compares with SO_ORIGINAL_DST's IPv4 answer */
	assert_false(origdst_redirected(SA(want), SA(m)));
	/* a real IPv6 address, and IPv4, stay as they are */
	struct sockaddr_storage r = v6("fd00::5", 80), r0 = r;
	origdst_unmap(&r);
	assert_memory_equal(&r, &r0, sizeof(r));
	struct sockaddr_storage f = v4("10.0.0.5", 80), f0 = f;
	origdst_unmap(&f);
	assert_memory_equal(&f, &f0, sizeof(f));
}

static void test_format(void **state)
{
	char out[ORIGDST_TEXT];
	struct sockaddr_storage a = v4("10.1.2.3", 8080);
	origdst_format(SA(a), out, sizeof(out));
	assert_string_equal(out, "10.1.2.3:8080");
	a = v6("fd00::1", 65535);
	origdst_format(SA(a), out, sizeof(out));
	assert_string_equal(out, "[fd00::1]:65535");
	/* the longest address fits */
	a = v6("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535);
	origdst_format(SA(a), out, sizeof(out));
	assert_string_equal(out, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
	struct sockaddr_storage u;
	memset(&u, 0, sizeof(u));
	u.ss_family = AF_UNIX;
	strcpy(out, "x");
	origdst_format(SA(u), out, sizeof(out));
	assert_string_equal(out, "");
}

/* A socket no nat rule redirected: SO_ORIGINAL_DST fails (no conntrack
 * entry) or gives the local address back; either way nothing is read. */
static void test_read_not_redirected(void **state)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(l >= 0);
	struct sockaddr_storage a = v4("127.0.0.1", 0);
	assert_int_equal(bind(l, SA(a), sizeof(struct sockaddr_in)), 0);
	assert_int_equal(listen(l, 1), 0);
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c, SA(a), len), 0);
	int s = accept(l, NULL, NULL);
	assert_true(s >= 0);
	struct sockaddr_storage orig;
	assert_false(origdst_get(s, AF_INET, &orig));
	/* not a socket at all: nothing, no crash */
	assert_false(origdst_get(-1, AF_INET6, &orig));
	close(s);
	close(c);
	close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_redirected_table),
	    cmocka_unit_test(test_unmap),
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_read_not_redirected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
