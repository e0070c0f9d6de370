/*
 * proxyline.h - the PROXY protocol v1 header (HAProxy's text form) that
 * tells an upstream which client a connection carries.
 *
 * With [upstream] proxy_protocol = v1, every upstream connection starts with
 * one line, "PROXY TCP4 <client> <dest> <client port> <dest port>\r\n" (TCP6
 * for IPv6), before its first request: the app, if it speaks the protocol,
 * takes the client's own address from it instead of levee's 127.0.0.1. The
 * destination is the client's original destination in transparent mode,
 * else levee's listening address. Such a connection belongs to one client:
 * it is reused only for requests of the client connection whose line it
 * sent (upstream.c compares the lines).
 */
#ifndef LEVEE_PROXYLINE_H
#define LEVEE_PROXYLINE_H

#include <stddef.h>
#include <sys/socket.h>

/* "PROXY TCP6 " + two 39-character addresses + two ports + spaces + CRLF +
 * NUL, with room to spare */
#define PROXYLINE_MAX 112

/* The line for a connection of nobody levee can name: the upstream uses the
 * connection's own addresses (a background revalidation, a client accepted
 * before the key was turned on). */
#define PROXYLINE_UNKNOWN "PROXY UNKNOWN\r\n"

/* Writes the line for client <src> dialling <dst> into <out>
 * (PROXYLINE_MAX bytes). IPv4-mapped IPv6 addresses are written as IPv4;
 * two families that still differ, or another family, give
 * PROXYLINE_UNKNOWN. Returns the line's length. */
size_t proxyline_v1(char out[PROXYLINE_MAX], const struct sockaddr *src, const struct sockaddr *dst);

#endif
