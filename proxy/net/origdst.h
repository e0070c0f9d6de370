/*
 * origdst.h - where a redirected client connection was going.
 *
 * In transparent mode ([levee] transparent = on, docs/transparent.md) the
 * pod's nat rules REDIRECT connections for the app's port to levee's
 * listener. Netfilter keeps the address the client dialled in the
 * connection's conntrack entry; SO_ORIGINAL_DST (IP6T_SO_ORIGINAL_DST for
 * IPv6) reads it back. A connection that reached the listener directly has
 * an original destination equal to its local address (or, with no conntrack
 * entry at all, none): it was not redirected.
 */
#ifndef LEVEE_ORIGDST_H
#define LEVEE_ORIGDST_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* "[v6addr]:port" and its NUL */
#define ORIGDST_TEXT (INET6_ADDRSTRLEN + 8)

/* Whether <orig> (the original destination) differs from <local> (the
 * accepted socket's own address): family, address or port. */
bool origdst_redirected(const struct sockaddr *orig, const struct sockaddr *local);

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d, an IPv4 client on a
 * dual-stack listener) becomes the IPv4 address it maps, in place, so that
 * it compares with what SO_ORIGINAL_DST gives for it. */
void origdst_unmap(struct sockaddr_storage *ss);

/* Writes <sa> as "a.b.c.d:port" or "[v6]:port" into <out> (<n> bytes; ""
 * for another family). */
void origdst_format(const struct sockaddr *sa, char *out, size_t n);

/* For accepted socket <fd> of address family <family>: whether the
 * connection was redirected, and then its original destination in <orig>.
 * One getsockopt and one getsockname (two getsockopts for an IPv4 client of
 * an IPv6 listener). */
bool origdst_get(int fd, int family, struct sockaddr_storage *orig);

#endif
