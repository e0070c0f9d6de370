/*
 * server.c - the server's life cycle. The instance is main.c's; nothing
 * here names it.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/l2.h"
#include "cache/redis.h"
#include "net/worker.h"

void server_init(struct server *s)
{
	memset(s, 0, sizeof(*s));
	runtime_slot_init(&s->runtime);
}

int server_workers_create(struct server *s, unsigned n, char *err, size_t errlen)
{
	s->workers = calloc(n, sizeof(*s->workers));
	if (!s->workers) {
		snprintf(err, errlen, "out of memory");
		return LV_ERR;
	}
	for (unsigned i = 0; i < n; i++) {
		s->workers[i] = malloc(sizeof(struct worker));
		if (!s->workers[i]) {
			snprintf(err, errlen, "out of memory");
			return LV_ERR;
		}
		if (worker_create(s->workers[i], i, &s->runtime, &s->conns, err, errlen) != LV_OK)
			return LV_ERR;
		s->nworkers = i + 1;
	}
	return LV_OK;
}

void server_destroy(struct server *s)
{
	for (unsigned i = 0; i < s->nworkers; i++) {
		worker_destroy(s->workers[i]);
		free(s->workers[i]);
	}
	free(s->workers);
	s->workers = NULL;
	s->nworkers = 0;
	l2_free(s->l2);
	if (s->redis)
		redis_free(s->redis);
	s->l2 = NULL;
	s->redis = NULL;
	if (s->main_base)
		event_base_free(s->main_base);
	s->main_base = NULL;
	runtime_slot_destroy(&s->runtime);
}

struct runtime *server_runtime_acquire(struct server *s)
{
	return runtime_slot_acquire(&s->runtime);
}
