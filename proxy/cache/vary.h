/*
 * vary.h - the secondary cache key: a request's values for the fields a
 * response names in Vary, normalised so that requests the origin cannot
 * tell apart share one variant (RFC 9111 §4.1). A leaf: no event loop.
 */
#ifndef LEVEE_CACHE_VARY_H
#define LEVEE_CACHE_VARY_H

#include <stddef.h>

#include "http/head.h"

/* Builds the secondary cache key: for each name of <names> (as written by
 * vary_names()), "name:value\n" where value is the request's lines for it,
 * normalised as vary_normalise() does, or "name\n" when the request lacks
 * the field, so an absent field differs from an empty one. NUL-terminated.
 * Returns the length, or 0 when it does not fit in <cap> (or <names> is
 * empty). */
size_t vary_secondary_key(const struct lv_head *req, const char *names, size_t names_len, char *out,
                          size_t cap);

/* Writes the normalised value of field <name> (lowercase, <nlen> bytes) from
 * its <nlines> lines (<lines>[i], <lens>[i]) into <out>; returns the length,
 * or SIZE_MAX when it does not fit <cap>. Every field is read as a comma
 * list, as combining its lines already does (RFC 9110 §5.3), and OWS around
 * members and commas is dropped; commas inside quoted strings are not
 * separators. The fields levee knows get more (docs/caching.md, "Vary"):
 *  - accept-encoding: members lowercased, empty ones dropped, OWS around
 *    ';' and '=' dropped, and members sorted (codings are case-insensitive
 *    and their order means nothing, RFC 9110 §12.5.3);
 *  - accept-language, accept-charset: the same, but order kept (§12.5.4:
 *    recipients may read order as preference);
 *  - accept: the same, with only type/subtype and parameter names
 *    lowercased (§8.3.1; parameter values may be case-sensitive), order
 *    kept;
 *  - any other field: only the OWS around members, nothing reordered, no
 *    case changed, empty members kept. */
size_t vary_normalise(const char *name, size_t nlen, const char *const *lines, const size_t *lens,
                      unsigned nlines, char *out, size_t cap);

#endif
