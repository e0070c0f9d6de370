/*
 * status_page.h - GET /ui on the admin listener: one HTML page that says
 * how levee is doing, in the spirit of HAProxy's stats page. Per route:
 * traffic, hit ratio, p99, breaker and bulkhead; the tier in force and its
 * signals; the upstream, Redis, Kafka and the outbox; version, uptime and
 * the policy's reload state.
 *
 * Server-rendered from the same internal data /status and /metrics read, so
 * that it is whole with JavaScript off; it has no script and no external
 * asset, and reloads itself with <meta http-equiv="refresh">. Every string
 * that comes from the policy or the environment is HTML-escaped. Its size
 * is bounded: at most STATUS_PAGE_ROWS rows per table, the rest counted.
 *
 * Main thread, like the rest of admin/.
 */
#ifndef LEVEE_ADMIN_STATUS_PAGE_H
#define LEVEE_ADMIN_STATUS_PAGE_H

#include <stddef.h>
#include <stdio.h>

#include "policy.h"

struct server;

#define STATUS_PAGE_REFRESH_DEFAULT 5 /* seconds */
#define STATUS_PAGE_REFRESH_MIN 1
#define STATUS_PAGE_REFRESH_MAX 3600
#define STATUS_PAGE_ROWS 200
#define STATUS_PAGE_CTYPE "text/html; charset=utf-8"

/* At admin start: notes the start time (the page's uptime) and hashes the
 * page's style sheet for its Content-Security-Policy. */
void status_page_init(void);

/* The header lines the page goes out with ("Name: value\r\n" each):
 * Content-Security-Policy and the like. Valid after status_page_init(). */
const char *status_page_headers(void);

/* The refresh interval in seconds asked for by the value of ?refresh=
 * (`value` NULL: not given, the default). LV_ERR with *why set when it is
 * not a whole number of seconds within the bounds. */
int status_page_refresh(const char *value, unsigned *secs, const char **why) LV_WARN_UNUSED;

/* The whole page for server `s`, refreshing every `refresh_s` seconds. */
void status_page_render(FILE *f, struct server *s, unsigned refresh_s);

/* `s` (at most `max` bytes of it) with & < > " ' as character references
 * and control characters as U+FFFD, for text and quoted attributes. */
void html_escape(FILE *f, const char *s, size_t max);

#endif
