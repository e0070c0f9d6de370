/*
 * registry.c - see registry.h.
 */
#include "resilience/registry.h"

#include <stdio.h>
#include <string.h>

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
