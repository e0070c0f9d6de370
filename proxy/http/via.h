/*
 * via.h - levee's own name in Via, and the loop check that reads it back.
 *
 * Each levee process names itself with a pseudonym drawn at start-up,
 * "levee-" and 16 hex digits, and writes it as the received-by of the Via
 * member it appends to every upstream request (RFC 9110 §7.6.3: Via is how
 * an intermediary notices a request loop). A request that arrives carrying
 * that pseudonym has been through this same process already: it is refused
 * (508) instead of being sent on again. Another levee (the next pod of a
 * chain of services) has another pseudonym, so a request may cross many
 * levees, but never one twice.
 *
 * A leaf: pure string work, no sockets, no event loop.
 */
#ifndef LEVEE_HTTP_VIA_H
#define LEVEE_HTTP_VIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/head.h"

/* "levee-" + 16 hex digits + NUL */
#define VIA_PSEUDONYM_SIZE 23

/* Writes the pseudonym made of <random> into <out>. */
void via_pseudonym(char out[VIA_PSEUDONYM_SIZE], uint64_t random);

/* Whether the Via value <v> (<n> bytes: one field's value, a comma-separated
 * list of "protocol received-by [comment]" members) has a member whose
 * received-by is exactly <pseudonym>. Comments (in parentheses, which may
 * hold commas) are skipped, so a pseudonym quoted in one is not a match. */
bool via_value_names(const char *v, size_t n, const char *pseudonym);

/* Whether any Via field of <hd> names <pseudonym>. */
bool via_head_names(const struct lv_head *hd, const char *pseudonym);

#endif
