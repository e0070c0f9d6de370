/*
 * range.h - the Range and If-Range request fields (RFC 9110 §14.2, §13.1.5),
 * read against a stored representation of known length. Pure: no event
 * loop, no allocation.
 *
 * levee answers one byte range from a stored 200 and nothing else: a set of
 * several ranges, another unit, or a field it cannot read is answered with
 * the whole representation, which RFC 9110 §14.2 allows any recipient to do
 * ("a server MAY ignore the Range header field").
 */
#ifndef LEVEE_HTTP_RANGE_H
#define LEVEE_HTTP_RANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum range_rc {
	RANGE_OK,            /* one satisfiable byte range: *first..*last, inclusive */
	RANGE_UNSATISFIABLE, /* one byte range that selects nothing: 416 */
	RANGE_MULTIPLE,      /* more than one range: the whole representation */
	RANGE_OTHER_UNIT,    /* a unit other than bytes: the whole representation */
	RANGE_INVALID,       /* not a ranges-specifier: the whole representation */
};

/* Reads Range value <v> (<n> bytes; OWS around it allowed) against a
 * representation of <len> bytes. On RANGE_OK, *first <= *last < len. Numbers
 * past UINT64_MAX saturate: a first-pos that large is unsatisfiable, a
 * last-pos or suffix-length that large reaches the end. Empty list members
 * are ignored (RFC 9110 §5.6.1.2). */
enum range_rc range_parse(const char *v, size_t n, uint64_t len, uint64_t *first, uint64_t *last);

/* Whether If-Range value <v> (<n> bytes) lets a range be answered from a
 * stored response with entity tag <etag> (as sent, quotes included; empty for
 * none), Last-Modified <last_modified> and Date <date> (Unix seconds, -1 for
 * none). <v_date> is <v> read as an HTTP-date by the caller (-1 when it is
 * not one), so that this leaf needs no date parser. RFC 9110 §13.1.5: an
 * entity tag must match by the strong comparison (neither weak); an
 * HTTP-date must equal a Last-Modified that is a strong validator, which a
 * cache can tell only when the stored Date is at least 60 seconds later
 * (§8.8.2.2). Anything else is false: the whole representation. */
bool range_if_range(const char *v, size_t n, int64_t v_date, const char *etag, size_t etag_len,
                    int64_t last_modified, int64_t date);

#endif
