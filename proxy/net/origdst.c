/*
 * origdst.c - where a redirected client connection was going (origdst.h).
 */
#include "net/origdst.h"

#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <stdio.h>
#include <string.h>

bool origdst_redirected(const struct sockaddr *orig, const struct sockaddr *local)
{
	if (orig->sa_family != local->sa_family)
		return true;
	if (orig->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)orig;
		const struct sockaddr_in *b = (const struct sockaddr_in *)local;
		return a->sin_port != b->sin_port || a->sin_addr.s_addr != b->sin_addr.s_addr;
	}
	if (orig->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)orig;
		const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)local;
		return a->sin6_port != b->sin6_port || memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) != 0;
	}
	return false;
}

void origdst_unmap(struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
		return;
	struct sockaddr_in v4;
	memset(&v4, 0, sizeof(v4));
	v4.sin_family = AF_INET;
	v4.sin_port = a->sin6_port;
	memcpy(&v4.sin_addr, &a->sin6_addr.s6_addr[12], 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &v4, sizeof(v4));
}

void origdst_format(const struct sockaddr *sa, char *out, size_t n)
{
	char host[INET6_ADDRSTRLEN];
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(out, n, "%s:%u", host, (unsigned)ntohs(a->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(out, n, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
	} else if (n) {
		out[0] = '\0';
	}
}

bool origdst_get(int fd, int family, struct sockaddr_storage *orig)
{
	struct sockaddr_storage local;
	socklen_t olen = sizeof(*orig), llen = sizeof(local);
	memset(orig, 0, sizeof(*orig));
	/* ENOENT: no conntrack entry (nat not loaded, or not NATed); either
	 * way the connection came straight to the listener */
	int rc = -1;
	if (family == AF_INET6)
		rc = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, orig, &olen);
	if (rc != 0) { /* an IPv4 listener, or an IPv4 client of an IPv6 one */
		olen = sizeof(*orig);
		rc = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, orig, &olen);
	}
	if (rc != 0 || getsockname(fd, (struct sockaddr *)&local, &llen) != 0)
		return false;
	origdst_unmap(&local);
	return origdst_redirected((struct sockaddr *)orig, (struct sockaddr *)&local);
}
