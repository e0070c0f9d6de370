/*
 * resolver.h - host names resolved off the event loops.
 *
 * getaddrinfo() blocks, for as long as the DNS server takes (seconds, with
 * glibc's retries, when it does not answer). So one thread per process
 * calls it on behalf of every event loop that asks, and hands each answer
 * back to the loop that asked through an eventfd. Why a thread and not the
 * alternatives:
 *  - evdns (libevent's resolver) would not block a loop, but it is not the
 *    system's resolver: no nsswitch (so no /etc/hosts unless loaded by hand,
 *    no other NSS source), its own reading of resolv.conf, and another
 *    library (libevent_extra). levee resolves the upstream and its
 *    listeners with getaddrinfo() at start-up; a Redis name must resolve
 *    the same way, Kubernetes search domains and ndots included.
 *  - getaddrinfo_a() is glibc's own thread pool with a signal or a new
 *    thread per notification, and it cannot cancel a lookup in progress
 *    either: the same lifetime problem as a thread, with less control.
 * One thread serialises lookups, so a dead DNS server delays every lookup
 * behind the slow one, never a loop. Lookups of the same name waiting in
 * the queue share the next answer, so N workers reconnecting at once cost
 * one lookup, not N.
 *
 * Thread: resolve_start() and resolve_cancel() run on the loop given to
 * resolve_start(), and the callback runs there. The lookup function runs on
 * the resolver's thread.
 */
#ifndef LEVEE_RESOLVER_H
#define LEVEE_RESOLVER_H

#include <netinet/in.h>
#include <stdbool.h>

#include "policy.h"

struct event_base;

#define RESOLVE_MAX_ADDRS 8

struct resolve_result {
	int status;      /* 0, or getaddrinfo's EAI_* code */
	char why[160];   /* "" on success; else "cannot resolve NAME: reason" */
	unsigned n;      /* numeric addresses, in getaddrinfo's order */
	char addrs[RESOLVE_MAX_ADDRS][INET6_ADDRSTRLEN];
};

/* Runs on the resolver's thread: fills <out> for <host>. The default is
 * getaddrinfo(); tests pass their own, to make a name move. */
typedef void (*resolve_fn)(void *arg, const char *host, struct resolve_result *out);

typedef void (*resolve_cb)(void *arg, const struct resolve_result *res);

struct resolver;
struct resolve_req;

/* <fn> NULL: getaddrinfo(). The thread starts with the first lookup. */
struct resolver *resolver_new(resolve_fn fn, void *fn_arg);
/* Every request must have been answered or cancelled. Waits for a lookup
 * in progress to return. */
void resolver_free(struct resolver *res);

/* The process's one resolver (getaddrinfo), created on first use, never
 * freed: its thread may be blocked in a lookup when the process exits. */
struct resolver *resolver_process(void);

/* Looks <host> up. <cb> runs on <base>'s loop exactly once, never inside
 * this call, unless resolve_cancel() comes first. NULL when out of memory
 * (or the thread cannot start): <cb> will not run. */
struct resolve_req *resolve_start(struct resolver *res, struct event_base *base, const char *host,
                                  resolve_cb cb, void *arg) LV_WARN_UNUSED;
/* <req>'s callback will not run; <req> is gone. Not from inside its callback
 * (it is gone by then already). */
void resolve_cancel(struct resolve_req *req);

/* Whether <host> is an IPv4 or IPv6 literal, which needs no lookup. */
bool resolve_is_numeric(const char *host);

#endif
