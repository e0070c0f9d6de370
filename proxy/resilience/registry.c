/*
 * registry.c - see registry.h.
 */
#include "resilience/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

static struct named *registry_lookup(struct registry *rg, const char *name)
{
	struct named *n = rg->head;
	while (n && strcmp(n->name, name) != 0)
		n = n->next;
	return n;
}

struct named *registry_get(struct registry *rg, const char *name, struct named *(*make)(const void *arg),
                           const void *arg)
{
	pthread_mutex_lock(&rg->lock);
	struct named *n = registry_lookup(rg, name);
	if (!n) {
		n = make(arg);
		if (!n) {
			pthread_mutex_unlock(&rg->lock);
			return NULL;
		}
		snprintf(n->name, sizeof(n->name), "%s", name);
		n->next = rg->head;
		rg->head = n;
	}
	n->refs++;
	pthread_mutex_unlock(&rg->lock);
	return n;
}

bool registry_put(struct registry *rg, struct named *n)
{
	pthread_mutex_lock(&rg->lock);
	if (--n->refs > 0) {
		pthread_mutex_unlock(&rg->lock);
		return false;
	}
	for (struct named **pp = &rg->head; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	pthread_mutex_unlock(&rg->lock);
	return true;
}

int registry_snapshot(struct registry *rg, size_t size, void (*fill)(struct named *n, void *out, void *arg),
                      void *arg, struct registry_snapshot *out)
{
	pthread_mutex_lock(&rg->lock);
	size_t n = 0;
	for (struct named *x = rg->head; x; x = x->next)
		n++;
	out->n = n;
	out->figures = n ? calloc(n, size) : NULL;
	out->names = n ? calloc(n, sizeof(*out->names)) : NULL;
	if (n && (!out->figures || !out->names)) {
		pthread_mutex_unlock(&rg->lock);
		free(out->figures);
		free(out->names);
		return LV_ERR;
	}
	size_t i = 0;
	for (struct named *x = rg->head; x; x = x->next, i++) {
		fill(x, (char *)out->figures + i * size, arg);
		out->names[i] = x->name;
	}
	return LV_OK;
}

void registry_snapshot_done(struct registry *rg, struct registry_snapshot *s)
{
	pthread_mutex_unlock(&rg->lock);
	free(s->figures);
	free(s->names);
}
