/*
 * merge304.h - what a 304 makes of a stored response (RFC 9111 §3.2,
 * §4.3.4): which stored response it may update, and the head that results,
 * from which the store (store.c) computes freshness again exactly as for a
 * full response. No event loop; the caller owns every buffer.
 *
 * Invariants:
 *  - Every field line of the 304 replaces all the stored lines of the same
 *    name, in the place of the first of them (a new name goes last), except
 *    those §3.2 and §3.1 exclude: hop-by-hop fields and the fields the 304's
 *    own Connection names, Content-Length, Proxy-Authenticate,
 *    Proxy-Authentication-Info and Proxy-Authorization, and the fields levee
 *    sets on every answer itself (Via, X-Request-Id).
 *  - The 304's Age and Set-Cookie are merged like any field: the store needs
 *    Age to compute the new age and refuses a response with Set-Cookie as it
 *    would a 200; neither is ever stored (store.c's field_stored()).
 *  - A 304 without Date gets the time it arrived as its Date (RFC 9110
 *    §6.6.1), so the stored Date never makes the refreshed copy look old.
 *  - The merged head has the stored status, HTTP/1.1, and the stored body's
 *    length as its Content-Length (not a field: the store's size checks).
 */
#ifndef LEVEE_CACHE_MERGE304_H
#define LEVEE_CACHE_MERGE304_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/record.h"
#include "http/head.h"

/* The most field lines of a 304 merged (a head holds fewer). */
#define MERGE304_MAX_304 256u

/* Whether the 304 <resp> may update stored response <v> (§4.3.4): a strong
 * ETag in the 304 must equal the stored one, strongly; a weak one must match
 * it weakly; without an ETag, a Last-Modified must equal the stored one.
 * A 304 with neither validator selects a stored response that has none
 * either; one that has some only when <own>: the conditional request was
 * levee's, carrying exactly <v>'s validators, and one stored response
 * answers it (a deliberate reading of the third rule, docs/caching.md). A
 * client's own conditionals may name another representation's validators:
 * then a validator-less 304 says nothing about <v>. */
bool merge304_selects(const struct record_view *v, const struct lv_head *resp, bool own);

/* Whether field <i> of the 304 <resp> is one §3.2 keeps out of the merge. */
bool merge304_excluded(const struct lv_head *resp, int i);

/* The sizes merge304_build() needs: bytes of text and header slots. */
size_t merge304_text_cap(const struct record_view *v, const struct lv_head *resp);
uint32_t merge304_slots(const struct record_view *v, const struct lv_head *resp);

/* Builds in <out> the head of stored response <v> updated by the 304
 * <resp>, received at <now> (unix seconds). The caller sets out->text and
 * out->cap (at least merge304_text_cap()), out->h and out->max (at least
 * merge304_slots()); everything else is filled. Returns false when they are
 * too small (out is then unusable). */
bool merge304_build(const struct record_view *v, const struct lv_head *resp, int64_t now, struct lv_head *out);

#endif
