/*
 * proxyline.c - the PROXY protocol v1 header (proxyline.h).
 */
#include "net/proxyline.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "net/origdst.h"

static unsigned proxyline_port(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
	                                : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static const void *proxyline_addr(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
	                                : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
}

static size_t proxyline_copy(struct sockaddr_storage *to, const struct sockaddr *from)
{
	size_t len = from->sa_family == AF_INET ? sizeof(struct sockaddr_in)
	             : from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                           : 0;
	memset(to, 0, sizeof(*to));
	if (len)
		memcpy(to, from, len);
	else
		to->ss_family = from->sa_family;
	return len;
}

size_t proxyline_v1(char out[PROXYLINE_MAX], const struct sockaddr *src, const struct sockaddr *dst)
{
	struct sockaddr_storage s, d;
	if (!proxyline_copy(&s, src) || !proxyline_copy(&d, dst))
		goto unknown;
	origdst_unmap(&s);
	origdst_unmap(&d);
	if (s.ss_family != d.ss_family)
		goto unknown;
	char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
	inet_ntop(s.ss_family, proxyline_addr(&s), sa, sizeof(sa));
	inet_ntop(d.ss_family, proxyline_addr(&d), da, sizeof(da));
	int n = snprintf(out, PROXYLINE_MAX, "PROXY %s %s %s %u %u\r\n", s.ss_family == AF_INET ? "TCP4" : "TCP6", sa,
	                 da, proxyline_port(&s), proxyline_port(&d));
	if (n > 0 && n < PROXYLINE_MAX)
		return (size_t)n;
unknown:
	memcpy(out, PROXYLINE_UNKNOWN, sizeof(PROXYLINE_UNKNOWN));
	return sizeof(PROXYLINE_UNKNOWN) - 1;
}
