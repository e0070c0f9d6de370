/*
 * expr.h - the expression language of degradation tiers (docs/tiers.md,
 * "The expression language"): conditions over load signals such as
 *
 *     queue_wait_p99 > 20ms or (cpu > 85% and psi.cpu.some10 > 40%)
 *
 * parsed and checked once, at load time, into a compact postfix program
 * that expr_eval() runs with no allocation and no recursion.
 *
 * The caller names the signals: a table whose position i is the signal
 * with index i in the vector handed to expr_eval(). A name the table does
 * not hold is a load-time error, and so is a comparison between quantities
 * of different kinds ("inflight > 300ms").
 *
 * Values the caller puts in the signal vector, by kind:
 *   EXPR_COUNT     a plain number (requests in flight, messages of lag)
 *   EXPR_DURATION  milliseconds, fractions allowed (0.25 = 250us)
 *   EXPR_SIZE      bytes
 *   EXPR_PERCENT   the percent (80.0 for 80%); may pass 100 (cpu over threads)
 *   EXPR_FLAG      0 or 1; a flag is a condition by itself ("not redis.up")
 * A signal with no value yet is NaN: every comparison with it is false.
 *
 * A parsed expression is immutable and owns a copy of what it needs (its
 * text, for expr_render()); it does not keep the signal table. Any number
 * of threads may evaluate it at once.
 */
#ifndef LEVEE_EXPR_H
#define LEVEE_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define EXPR_TEXT_MAX 512  /* bytes of an expression */
#define EXPR_DEPTH_MAX 32  /* nesting of '(' and 'not' */
#define EXPR_NAME_MAX 128  /* bytes of a signal name */
#define EXPR_ERR_MAX 256   /* bytes of an error message, NUL included */

enum expr_kind { EXPR_COUNT, EXPR_DURATION, EXPR_SIZE, EXPR_PERCENT, EXPR_FLAG };

struct expr_signal {
	const char *name; /* e.g. "cpu", "upstream.route.users.p99" */
	enum expr_kind kind;
};

/* The signals an expression may read; index i in the vector is v[i]. */
struct expr_signals {
	const struct expr_signal *v;
	size_t n;
};

struct expr_error {
	int column;                 /* 1-based byte offset into the text */
	char message[EXPR_ERR_MAX]; /* what was expected, without "file:line:column: " */
};

struct expr;

/* Parses and checks `text` (NUL-terminated) against the signals `sig`. On
 * success *out holds a new expression (free with expr_free()). On failure
 * returns LV_ERR, leaves *out alone and fills `err` with the first problem:
 * its column and a message. Out of memory is reported as an error at
 * column 1. */
int expr_parse(const char *text, const struct expr_signals *sig, struct expr **out,
               struct expr_error *err) LV_WARN_UNUSED;

void expr_free(struct expr *e);

/* The expression's truth for the signal vector `signals`, which must hold
 * every index the expression reads (expr_mark_signals()). */
bool expr_eval(const struct expr *e, const double *signals);

/* Sets used[i] = true for every signal i the expression reads, leaving the
 * other entries alone, so a caller can collect what a set of expressions
 * needs and sample only that. `used` has one entry per signal of the table
 * the expression was parsed with. */
void expr_mark_signals(const struct expr *e, bool *used);

/* Writes the expression in its canonical form: single spaces around
 * operators, the parentheses precedence needs plus those around an 'and'
 * inside an 'or', and no others; numbers and names as written. The
 * canonical form parses to an expression with the same truth everywhere,
 * which renders to the same form. Returns the length of the whole form, like snprintf;
 * `buf` always ends in a NUL when `size` > 0. */
size_t expr_render(const struct expr *e, char *buf, size_t size);

#endif
