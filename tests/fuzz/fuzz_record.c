/* fuzz_record.c - the cache record decoder (proxy/cache/record.c).
 *
 * The input is decoded twice: as it is, and with its length field and
 * checksum rewritten to match, so that the fuzzer reaches the structural
 * checks behind the checksum instead of stopping at it. Whenever a decode
 * succeeds, every list is walked and the record is encoded again from the
 * view; the invariants checked are that the walk ends exactly at the body,
 * and that the re-encoding equals the input byte for byte (encoder and
 * decoder enforce the same rules), and that the decode that skips the
 * checksum (for records already checked) reads a record that passed the
 * same way and stays within any bytes it is given. Any other outcome calls
 * abort(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct record_str vary_names[RECORD_MAX_VARY], vary_values[RECORD_MAX_VARY];
static struct record_str tags[RECORD_MAX_TAGS];
static struct record_hdr hdrs[RECORD_MAX_HDRS];

static void check_round_trip(const uint8_t *data, size_t size)
{
	struct record_view v;
	if (record_decode(data, size, &v) != RECORD_OK)
		return;
	if (v.size != size || v.version != RECORD_VERSION)
		abort();
	/* a record that passed reads the same without its checksum compared */
	struct record_view t;
	if (record_decode_checked(data, size, &t) != RECORD_OK || t.size != v.size || t.body_len != v.body_len ||
	    t.nhdrs != v.nhdrs || t.ntags != v.ntags || t.nvary != v.nvary || t.status != v.status ||
	    t.body != v.body)
		abort();

	struct record_in in = {
		.status = v.status,
		.flags = v.flags,
		.request_time = v.request_time,
		.response_time = v.response_time,
		.initial_age = v.initial_age,
		.lifetime = v.lifetime,
		.swr = v.swr,
		.sie = v.sie,
		.last_modified = v.last_modified,
		.etag = v.etag,
		.vary_names = vary_names,
		.vary_values = vary_values,
		.tags = tags,
		.hdrs = hdrs,
	};
	struct record_cursor c = {0};
	while (record_next_vary(&v, &c, &vary_names[in.nvary], &vary_values[in.nvary]))
		if (++in.nvary > v.nvary)
			abort();
	c = (struct record_cursor){0};
	while (record_next_tag(&v, &c, &tags[in.ntags]))
		if (++in.ntags > v.ntags)
			abort();
	c = (struct record_cursor){0};
	while (record_next_hdr(&v, &c, &hdrs[in.nhdrs]))
		if (++in.nhdrs > v.nhdrs)
			abort();
	if (in.nvary != v.nvary || in.ntags != v.ntags || in.nhdrs != v.nhdrs ||
	    v.hdrs_at + c.off != (const uint8_t *)v.body)
		abort();
	struct iovec body = {(void *)v.body, v.body_len};
	in.body = &body;
	in.nbody = 1;

	if (record_size(&in) != size)
		abort();
	uint8_t *again = malloc(size);
	if (again == NULL)
		abort();
	if (record_encode(&in, again, size) != RECORD_OK || memcmp(again, data, size) != 0)
		abort();
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_round_trip(data, size);
	/* without the checksum, whatever the bytes: refused or read within them */
	struct record_view any;
	if (record_decode_checked(data, size, &any) == RECORD_OK && any.size != size)
		abort();

	/* the same bytes, sealed: total (offset 16, see record.h) = size and
	 * the checksum recomputed */
	if (size < RECORD_MIN_SIZE || size > UINT32_MAX)
		return 0;
	uint8_t *copy = malloc(size);
	if (copy == NULL)
		abort();
	memcpy(copy, data, size);
	for (int i = 0; i < 4; i++)
		copy[16 + i] = (uint8_t)(size >> (8 * i));
	uint64_t sum = record_checksum(copy, size - RECORD_CHECKSUM_SIZE);
	for (int i = 0; i < 8; i++)
		copy[size - 8 + i] = (uint8_t)(sum >> (8 * i));
	check_round_trip(copy, size);
	free(copy);
	return 0;
}
