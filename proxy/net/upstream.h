/*
 * upstream.h - the upstream side of a request: pooled keep-alive connections
 * per worker, sending the rebuilt request, streaming the body with
 * backpressure, parsing the response and streaming it to the client.
 */
#ifndef LEVEE_UPSTREAM_H
#define LEVEE_UPSTREAM_H

#include <event2/bufferevent.h>
#include <stdbool.h>

#include "net/loop.h"

struct request;

struct upconn {
	struct upconn *next;          /* idle list */
	struct worker *w;
	struct bufferevent *bev;
	struct request *req;          /* the request using it, NULL when idle */
	struct sockaddr_storage addr; /* where it is connected, to drop stale pool entries after a reload */
	socklen_t addr_len;
	uint64_t idle_since;
	unsigned uses;
	bool connected;
	bool got_bytes;               /* any response byte seen for the current request */
};

/* The pipeline's last stage: send the request upstream; its `done` hook
 * releases the connection. */
struct stage;
extern const struct stage upstream_stage_def;
int upstream_stage(struct request *r);
/* The request's client end kept its exchange: only the abandon timer
 * bounds it now, and the late answer is read even if the client was slow. */
void upstream_keep(struct request *r);
/* Client side has request body bytes (or EOF) for the upstream. */
void upstream_pump_body(struct request *r);
/* The client drained its output; resume reading the upstream. */
void upstream_resume_response(struct request *r);
/* Release the upstream connection: to the pool if reusable, else close. */
void upstream_release(struct request *r);
/* Close idle connections older than the keep-alive timeout (worker tick). */
void upstream_pool_reap(struct worker *w, uint64_t now);
void upstream_pool_clear(struct worker *w);

#endif
