/* test_proxyline.c - the PROXY protocol v1 line levee opens upstream
 * connections with: IPv4, IPv6, IPv4-mapped clients of a dual-stack
 * listener written as IPv4, and UNKNOWN for what cannot be named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <string.h>

#include "net/proxyline.h"

static struct sockaddr_storage addr(const char *ip, unsigned port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	}
	return ss;
}

static void test_lines(void **state)
{
	static const struct {
		const char *src;
		unsigned sport;
		const char *dst;
		unsigned dport;
		const char *line;
	} cases[] = {
	    {"10.213.0.1", 40000, "10.213.0.2", 8080, "PROXY TCP4 10.213.0.1 10.213.0.2 40000 8080\r\n"},
	    {"fd00::1", 1, "fd00::2", 65535, "PROXY TCP6 fd00::1 fd00::2 1 65535\r\n"},
	    /* an IPv4 client of an IPv6 listener */
	    {"::ffff:192.0.2.7", 5555, "::ffff:192.0.2.1", 15006, "PROXY TCP4 192.0.2.7 192.0.2.1 5555 15006\r\n"},
	    {"::ffff:192.0.2.7", 5555, "192.0.2.1", 8080, "PROXY TCP4 192.0.2.7 192.0.2.1 5555 8080\r\n"},
	    /* families that still differ */
	    {"192.0.2.7", 5555, "fd00::2", 8080, PROXYLINE_UNKNOWN},
	    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
	     "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage s = addr(cases[i].src, cases[i].sport), d = addr(cases[i].dst, cases[i].dport);
		char out[PROXYLINE_MAX];
		size_t n = proxyline_v1(out, (struct sockaddr *)&s, (struct sockaddr *)&d);
		assert_string_equal(out, cases[i].line);
		assert_int_equal(n, strlen(cases[i].line));
		/* the spec's bound: 107 bytes with CRLF */
		assert_true(n <= 107);
	}
}

static void test_unknown_family(void **state)
{
	struct sockaddr_storage s = addr("10.0.0.1", 1), u;
	memset(&u, 0, sizeof(u));
	u.ss_family = AF_UNSPEC;
	char out[PROXYLINE_MAX];
	assert_int_equal(proxyline_v1(out, (struct sockaddr *)&s, (struct sockaddr *)&u), strlen(PROXYLINE_UNKNOWN));
	assert_string_equal(out, "PROXY UNKNOWN\r\n");
	u.ss_family = AF_UNIX;
	proxyline_v1(out, (struct sockaddr *)&u, (struct sockaddr *)&s);
	assert_string_equal(out, "PROXY UNKNOWN\r\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test(test_unknown_family),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
