/*
 * reload_status.h - what the reload attempts did, as /status, /metrics and
 * POST /reload say it. Plain bookkeeping without the event loop, so that its
 * rules are tested on their own (tests/unit/test_reload_status.c).
 *
 * The rules an alert depends on:
 *   - an attempt that finds the file equal to the running policy is a
 *     success: restoring the last good file after a bad edit clears the
 *     failure, although nothing is swapped;
 *   - a refusal keeps its error lines until the next success;
 *   - the restart-only keys whose file value is not the running one are
 *     those of the last applied file: an unchanged or refused attempt leaves
 *     them as they are, since the running policy did not change.
 */
#ifndef LEVEE_RELOAD_STATUS_H
#define LEVEE_RELOAD_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

/* Zero is the start-up load: a status that was never updated reads "ok". */
enum reload_result { RELOAD_APPLIED, RELOAD_UNCHANGED, RELOAD_REFUSED, RELOAD__COUNT };

#define RELOAD_ERROR_MAX 1024
#define RELOAD_KEYS_MAX 512

struct reload_status {
	uint64_t count[RELOAD__COUNT]; /* attempts, by result */
	enum reload_result last;       /* of the last attempt */
	double last_ts;                /* wall clock of the last attempt; 0 before any */
	char error[RELOAD_ERROR_MAX];  /* the last refusal's lines, '\n' separated; "" after a success */
	/* "levee.workers,levee.listen": keys the applied file sets to values that
	 * take a restart; the running process keeps its own until then */
	char restart_keys[RELOAD_KEYS_MAX];
	char started_checksum[17]; /* of the file levee started with, whose restart-only values run */
};

/* "applied", "unchanged", "refused". */
const char *reload_result_name(enum reload_result r);

/* Records an attempt at wall-clock time `now`. For RELOAD_APPLIED,
 * `restart_keys` is the new list ("" for none); for RELOAD_REFUSED, lines
 * `from`.. of `d` are the errors. Other arguments are ignored. */
void reload_status_record(struct reload_status *s, enum reload_result r, const char *restart_keys,
                          const struct lv_diag *d, size_t from, double now);

static inline bool reload_status_ok(const struct reload_status *s)
{
	return s->last != RELOAD_REFUSED;
}

static inline bool reload_status_restart_pending(const struct reload_status *s)
{
	return s->restart_keys[0] != '\0';
}

#endif
