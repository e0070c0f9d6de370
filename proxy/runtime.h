/*
 * runtime.h - a policy snapshot plus what levee derives from it at load time
 * (the resolved upstream address, route metric indexes).
 *
 * Built on the main thread, immutable afterwards, shared by reference count:
 * the server holds one reference to the current runtime, each worker holds
 * one, and each request holds one for its whole life, so a reload never
 * changes the rules under a request in flight.
 */
#ifndef LEVEE_RUNTIME_H
#define LEVEE_RUNTIME_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "policy.h"

struct runtime {
	atomic_int refs;
	struct lv_policy *policy;
	struct sockaddr_storage up_addr;
	socklen_t up_len;
	char up_text[LV_HOST_MAX + 8]; /* "host:port", for Host on HTTP/1.0 requests */
	unsigned *route_stat; /* per route of `policy`: its index in the stats registry */
	/* the process-wide objects the policy names, kept by name across
	 * reloads; attached by the layer that knows them (pipeline.c), which
	 * also gives `detach`, run when the last reference goes */
	struct bulkhead **bulkheads; /* per [bulkhead] of `policy` (ref held) */
	struct breaker **breakers;   /* per [breaker] of `policy`, the same way */
	void (*detach)(struct runtime *rt);
};

/* Takes over the caller's reference to `p`. Resolves the upstream (numeric
 * addresses only at this point: a name is resolved with getaddrinfo, which
 * may block, so it runs on the main thread at load time, never per request). */
int runtime_build(struct lv_policy *p, struct runtime **out, char *err, size_t errlen) LV_WARN_UNUSED;
void runtime_ref(struct runtime *rt);
void runtime_unref(struct runtime *rt);

/* Where the newest runtime is published: the server owns one, swaps it on
 * the main thread, and hands it down to the workers, which take the newest
 * runtime from it when told one exists. `current` holds a reference; it is
 * written under `lock` and read under it by any thread other than the
 * writer's. */
struct runtime_slot {
	pthread_mutex_t lock;
	struct runtime *current;
};

void runtime_slot_init(struct runtime_slot *s);
/* Drops the slot's reference. */
void runtime_slot_destroy(struct runtime_slot *s);
/* The current runtime, with a reference the caller must drop. */
struct runtime *runtime_slot_acquire(struct runtime_slot *s);
/* Publishes `rt`, taking over the caller's reference, and returns the
 * runtime it replaces with the slot's reference, for the caller to drop. */
struct runtime *runtime_slot_swap(struct runtime_slot *s, struct runtime *rt);

/* Resolves host:port to a socket address; LV_OK or LV_ERR with `err` set. */
int resolve_hostport(const struct lv_hostport *hp, struct sockaddr_storage *ss, socklen_t *len, char *err,
                     size_t errlen) LV_WARN_UNUSED;

#endif
