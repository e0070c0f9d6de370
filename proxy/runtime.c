#include "runtime.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

int resolve_hostport(const struct lv_hostport *hp, struct sockaddr_storage *ss, socklen_t *len, char *err,
                     size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%u", hp->port);
	int rc = getaddrinfo(hp->host, port, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(err, errlen, "cannot resolve %s: %s", hp->host, gai_strerror(rc));
		return LV_ERR;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return LV_OK;
}

int runtime_build(struct lv_policy *p, struct runtime **out, char *err, size_t errlen)
{
	struct runtime *rt = calloc(1, sizeof(*rt));
	if (!rt) {
		snprintf(err, errlen, "out of memory");
		policy_unref(p);
		return LV_ERR;
	}
	atomic_init(&rt->refs, 1);
	rt->policy = p;
	if (resolve_hostport(&p->upstream, &rt->up_addr, &rt->up_len, err, errlen) != LV_OK) {
		runtime_unref(rt);
		return LV_ERR;
	}
	if (strchr(p->upstream.host, ':'))
		snprintf(rt->up_text, sizeof(rt->up_text), "[%s]:%u", p->upstream.host, p->upstream.port);
	else
		snprintf(rt->up_text, sizeof(rt->up_text), "%s:%u", p->upstream.host, p->upstream.port);
	rt->route_stat = calloc(p->nroutes ? p->nroutes : 1, sizeof(*rt->route_stat));
	if (!rt->route_stat) {
		snprintf(err, errlen, "out of memory");
		runtime_unref(rt);
		return LV_ERR;
	}
	for (size_t i = 0; i < p->nroutes; i++)
		rt->route_stat[i] = stats_route_index(p->routes[i].name);
	*out = rt;
	return LV_OK;
}

void runtime_ref(struct runtime *rt)
{
	atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
}

void runtime_unref(struct runtime *rt)
{
	if (!rt || atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (rt->detach)
		rt->detach(rt);
	policy_unref(rt->policy);
	free(rt->route_stat);
	free(rt);
}

void runtime_slot_init(struct runtime_slot *s)
{
	pthread_mutex_init(&s->lock, NULL);
	s->current = NULL;
}

void runtime_slot_destroy(struct runtime_slot *s)
{
	runtime_unref(s->current);
	s->current = NULL;
	pthread_mutex_destroy(&s->lock);
}

struct runtime *runtime_slot_acquire(struct runtime_slot *s)
{
	pthread_mutex_lock(&s->lock);
	struct runtime *rt = s->current;
	runtime_ref(rt);
	pthread_mutex_unlock(&s->lock);
	return rt;
}

struct runtime *runtime_slot_swap(struct runtime_slot *s, struct runtime *rt)
{
	pthread_mutex_lock(&s->lock);
	struct runtime *old = s->current;
	s->current = rt;
	pthread_mutex_unlock(&s->lock);
	return old;
}
