/*
 * key.h - cache keys.
 *
 * A key names what a GET asked for, exactly as levee sends it upstream:
 *
 *   <service> 0x1f <target> 0x1f <host[:port]> [0x1f <name>=<value> ...]
 *
 * - service keeps replicas of different services apart in a shared Redis;
 * - target is the request target as sent upstream (path and full query, no
 *   decoding or reordering: the origin may treat "?a=1&b=2" and "?b=2&a=1"
 *   differently);
 * - host is lowercased, and a default ":80" is dropped, since both name the
 *   same resource (RFC 9110 §4.2.3); or, by policy (`key_host`), one
 *   canonical name for all of a service's names, or nothing;
 * - then the values of the route's cache_key_headers, in policy order.
 *
 * The target comes right after the service so that a purge by path prefix
 * is a purge by key prefix. GET and HEAD share a key: HEAD is answered from
 * a stored GET response, and only GET responses are stored, so the method
 * needs no field of its own. Variants chosen by Vary extend the key with
 * KEY_VARY_SEP and the request's values for the Vary fields.
 */
#ifndef LEVEE_CACHE_KEY_H
#define LEVEE_CACHE_KEY_H

#include <stddef.h>

#include "http/head.h"

#define KEY_SEP '\x1f'
#define KEY_VARY_SEP '\x1e'
#define KEY_MAX 16384

/* Writes the primary key of request `hd` into `out`; returns its length, or
 * 0 when it does not fit in `cap`. `extra` is a route's cache_key_headers
 * ("a,b", lowercase). */
size_t key_build(const char *service, const struct lv_head *hd, const char *extra, char *out, size_t cap);

/* key_build() with the host part given: NULL, the request's (as
 * key_build); "", none (the separator stays, so the layout does not
 * change); else `host`, lowercased, standing for every name the request
 * may have used. */
size_t key_build_as(const char *service, const struct lv_head *hd, const char *host, const char *extra, char *out,
                    size_t cap);

/* Appends field `name` (lowercase) to a key of `len` bytes in `out`, as
 * key_build does for `extra`; the new length, or 0 when it does not fit. */
size_t key_add_field(const struct lv_head *hd, const char *name, size_t nlen, char *out, size_t len, size_t cap);

/* The key prefix that a purge of path prefix `path` covers. */
size_t key_path_prefix(const char *service, const char *path, size_t plen, char *out, size_t cap);

#endif
