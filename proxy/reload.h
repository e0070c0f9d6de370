/*
 * reload.h - policy reload: SIGHUP, a change to the file (including the
 * Kubernetes ConfigMap symlink swap), or POST /reload on the admin port.
 *
 * A reload parses and validates the whole file into a new snapshot before
 * anything changes. If that fails, the running policy stays, the error is
 * logged with file:line, and levee_policy_reloads_total{result="error"}
 * counts it. A file equal to the running policy's changes nothing and counts
 * as a success (result="unchanged"). Otherwise the snapshot is swapped
 * atomically; requests in flight finish under the snapshot they started
 * with, and keys that take a restart keep their running values
 * (policy_keep_static()).
 */
#ifndef LEVEE_RELOAD_H
#define LEVEE_RELOAD_H

#include <event2/event.h>

#include "policy.h"
#include "reload_status.h"

struct server;

/* What asked for a reload, for the log. */
enum reload_trigger { RELOAD_BY_SIGHUP, RELOAD_BY_ADMIN, RELOAD_BY_WATCH };

int reload_init(struct server *s) LV_WARN_UNUSED;
void reload_stop(void);
/* Main thread only. Reads the policy file and applies it when it is good and
 * differs from the running policy; logs the outcome and records it in
 * the server's `reload`. Errors are added to `diag` when it is not NULL. Without a
 * policy file (built-in defaults) nothing is read or recorded, and the
 * answer is RELOAD_REFUSED with the reason in `diag`. Since the outcome is
 * logged and recorded here, only a caller that answers someone needs it. */
enum reload_result reload_now(enum reload_trigger by, struct lv_diag *diag);

#endif
