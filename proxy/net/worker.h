/*
 * worker.h - one worker thread: it runs one loop (struct worker, net/loop.h)
 * with its own SO_REUSEPORT listener, or, for a bulkhead's thread, without
 * one; it accepts, drains, stops, and tears the loop down. The top of net/:
 * it calls the connection, request and upstream modules, none calls it.
 *
 * Nothing in a worker is touched by another thread except through its
 * mailbox and the relaxed reads of its counters by the admin thread.
 */
#ifndef LEVEE_WORKER_H
#define LEVEE_WORKER_H

#include <stdatomic.h>

#include "net/loop.h"
#include "runtime.h"

/* <runtimes> and <open_conns> are shared by all workers and outlive them;
 * the worker starts on the runtime <runtimes> holds. <loop_name> NULL: a
 * listener worker ("worker ID"); else a loop without a listener, which
 * serves only the connections handed to it (a bulkhead's thread). */
int worker_create(struct worker *w, unsigned id, const char *loop_name, struct runtime_slot *runtimes,
                  atomic_uint_fast64_t *open_conns, char *err, size_t errlen) LV_WARN_UNUSED;
int worker_start(struct worker *w) LV_WARN_UNUSED;
void worker_join(struct worker *w);
void worker_destroy(struct worker *w);

/* Main thread → worker. */
void worker_notify_policy(struct worker *w);
void worker_notify_drain(struct worker *w);
void worker_notify_stop(struct worker *w);

#endif
