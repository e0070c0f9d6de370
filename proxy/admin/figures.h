/*
 * figures.h - what the admin endpoints (admin.c) and the status page
 * (status_page.c) both report, computed from the server. Main thread.
 */
#ifndef LEVEE_ADMIN_FIGURES_H
#define LEVEE_ADMIN_FIGURES_H

#include <stdbool.h>

struct server;
struct redis_stats;

/* Ready = policy loaded, not draining, upstream reachable, and this
 * replica's Kafka group not shared; *why says what is missing. */
bool admin_ready(struct server *s, const char **why);

/* The workers' Redis snapshots, summed, with how many connections are
 * ready and how many breakers not closed; false without Redis. */
bool admin_redis_sum(const struct server *s, struct redis_stats *sum, unsigned *ready, unsigned *open);

#endif
