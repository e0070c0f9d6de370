/*
 * registry.h - process-wide objects kept by name across reloads.
 *
 * A bulkhead or a breaker is one object per name for the whole process: a
 * reload that keeps the name keeps the object (its slots, its window, its
 * state), and the object lives until the last runtime naming it is gone.
 * Each such object starts with a `struct named`; a registry is the list of
 * them under one mutex, taken on reloads and scrapes only, never per
 * request.
 */
#ifndef LEVEE_REGISTRY_H
#define LEVEE_REGISTRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

struct named {
	char name[LV_NAME_MAX];
	int refs;           /* runtimes that name it; under the registry's lock */
	struct named *next; /* in the registry */
};

struct registry {
	pthread_mutex_t lock;
	struct named *head; /* newest first */
};
#define REGISTRY_INIT {PTHREAD_MUTEX_INITIALIZER, NULL}

/* The object named `name`, with one more reference: found, or made by
 * make(arg) (which returns it with its `named` zeroed, or NULL when out of
 * memory). make runs under the registry's lock. */
struct named *registry_get(struct registry *rg, const char *name, struct named *(*make)(const void *arg),
                           const void *arg);
/* Drops a reference; true when it was the last, the object is off the list
 * and the caller frees it. */
bool registry_put(struct registry *rg, struct named *n);

/* What a renderer reads: each live object's figures (`size` bytes each,
 * written by fill(n, out, arg)) and its name, in registry order. On LV_OK
 * the registry's lock is held, so the names stay valid, until
 * registry_snapshot_done(); LV_ERR (out of memory): nothing is held. */
struct registry_snapshot {
	size_t n;
	void *figures;
	const char **names;
};
int registry_snapshot(struct registry *rg, size_t size, void (*fill)(struct named *n, void *out, void *arg),
                      void *arg, struct registry_snapshot *out);
void registry_snapshot_done(struct registry *rg, struct registry_snapshot *s);

/* The object whose `struct named` is `n`. */
#define registry_of(n, type, field) ((type *)(void *)((char *)(n) - offsetof(type, field)))

/* Each live object, under the registry's lock (for renderers). */
#define REGISTRY_EACH(rg, type, field, var)                                                        \
	for (struct named *var##_n = (rg)->head; var##_n; var##_n = var##_n->next)                  \
		for (type *var = registry_of(var##_n, type, field); var; var = NULL)

#endif
