/*
 * reload.h - policy reload: SIGHUP, a change to the file (including the
 * Kubernetes ConfigMap symlink swap), or POST /reload on the admin port.
 *
 * A reload parses and validates the whole file into a new snapshot before
 * anything changes. If that fails, the running policy stays, the error is
 * logged with file:line, and levee_policy_reloads_total{result="error"}
 * counts it. If it succeeds, the snapshot is swapped atomically; requests in
 * flight finish under the snapshot they started with.
 */
#ifndef LEVEE_RELOAD_H
#define LEVEE_RELOAD_H

#include <event2/event.h>

#include "policy.h"

int reload_init(struct event_base *base) LV_WARN_UNUSED;
void reload_stop(void);
/* Main thread only. Errors are added to `diag` when it is not NULL. */
int reload_now(struct lv_diag *diag) LV_WARN_UNUSED;

#endif
