/*
 * admin.h - the admin listener (127.0.0.1 by default), on the main thread:
 * /healthz, /readyz, /metrics, /status, /ui, POST /purge, POST /reload. Requests
 * that change state are authorized as auth.h says. The probe listener, off
 * by default, serves the same code for /healthz, /readyz and /metrics only.
 */
#ifndef LEVEE_ADMIN_H
#define LEVEE_ADMIN_H

#include <event2/event.h>
#include <stdbool.h>

#include "policy.h"

struct server;

/* Binds [levee] admin, and [levee] probe unless it is none; reads the
 * admin token from the environment. */
int admin_start(struct server *s, const struct lv_policy *p, char *err, size_t errlen) LV_WARN_UNUSED;
void admin_stop(void);

/* The upstream readiness probe (probe.c). */
int probe_start(struct server *s) LV_WARN_UNUSED;
void probe_stop(void);
/* Probe again now (after a reload changed the upstream). */
void probe_kick(void);

#endif
