/*
 * control.h - coordinated degradation over the Kafka control topic
 * (`[kafka] control_topic`): every replica of a service applies the signed
 * force-tier and clear-tier commands for it, and publishes its own tier
 * changes, signed, for controllers to watch. The messages are
 * control_msg.h's; docs/control-message.md is the contract.
 *
 * One per process, with its own thread and librdkafka handles (control.c
 * says why). Commands reach the tier core through tiers_force() and
 * tiers_clear(), which any thread may call; the tier core's change
 * callback publishes on the main thread without blocking.
 *
 * Thread: every function here is called on the main thread.
 */
#ifndef LEVEE_CONTROL_H
#define LEVEE_CONTROL_H

#include <stddef.h>

#include "policy.h"

/* Start-up, after the tier core (tiers_start): reads the key from the
 * variable `[kafka] control_key_env` names, starts the thread, registers for
 * tier changes. LV_OK without doing anything when there are no [kafka]
 * brokers or no control topic; LV_ERR (err set) only when librdkafka or the
 * thread cannot be created. Kafka being down is not an error: the thread
 * keeps trying, and nothing waits for it. */
int control_start(const struct lv_policy *p, char *err, size_t errlen) LV_WARN_UNUSED;

/* Shutdown: stops publishing, gives events in flight up to `timeout_ms`,
 * stops the thread and frees the handles. */
void control_stop(int timeout_ms);

/* /status: the member `"control":{...}` (no comma around it). */
void control_status_json(void *file);
/* /metrics: levee_control_* in the Prometheus text format. */
void control_render_prometheus(void *file);

/* Sets on `conf` (an rd_kafka_conf_t) the brokers and, when `p` is not
 * NULL, the security settings of its [kafka] section: what both levee and
 * the CLI connect with. LV_ERR with err set for a value librdkafka refuses. */
int control_kafka_conf(void *conf, const struct lv_policy *p, const char *brokers, char *err,
                       size_t errlen) LV_WARN_UNUSED;

/* `levee tier force|clear ...` (cli.c): argv[0] is "tier". Returns the exit
 * status: 0 published, 1 failed, 2 usage. */
int control_cli(int argc, char **argv);
void control_cli_usage(void *file);

#endif
