/*
 * explain_req.h - the request `levee explain` explains, parsed by levee's
 * own HTTP/1 code (explain_req.c).
 */
#ifndef LEVEE_CLI_EXPLAIN_REQ_H
#define LEVEE_CLI_EXPLAIN_REQ_H

#include <stdbool.h>

#include "cache/key.h"
#include "http/head.h"
#include "policy.h"

#define KEY_MAX_EXPLAIN KEY_MAX

struct explain_req {
	struct lv_head head; /* its arena and slots below, owned */
	char *text;
	struct lv_hdr *slots;
	unsigned method_bit; /* LV_M_* */
	bool has_body;       /* Content-Length above 0, or chunked */
	bool default_host;   /* no Host given: "localhost" */
};

/* Builds and parses the request under p's limits; LV_OK, or LV_ERR with a
 * message in `err` (a bad argument, or the refusal levee would answer). */
int explain_req_build(struct explain_req *q, const struct lv_policy *p, const char *method, const char *url,
                      char **headers, int nheaders, char *err, size_t errsz) LV_WARN_UNUSED;
void explain_req_free(struct explain_req *q);

#endif
