/* fuzz_range.c - the Range and If-Range readers (proxy/http/range.c) on
 * hostile values.
 *
 * The first 8 bytes (when there are) are the representation's length,
 * little-endian, with the top bits masked away every other input so that
 * short lengths are common; the rest is the Range value, then, after a
 * 0x00, an If-Range value. Each value is copied into a buffer of exactly
 * its size, so a read past it is caught under ASan. The invariants: a
 * satisfiable range lies inside the representation (first <= last < len);
 * any range, satisfiable or not, has a '-'; the same value gives the same
 * answer twice; an If-Range value that matches itself as the stored tag is
 * a strong entity tag. Any
 * other outcome calls abort(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t len = 0;
	if (size >= 8) {
		for (int i = 7; i >= 0; i--)
			len = (len << 8) | data[i];
		if (data[0] & 1)
			len &= 0xfffff;
		data += 8;
		size -= 8;
	}
	const uint8_t *nul = memchr(data, 0, size);
	size_t rn = nul ? (size_t)(nul - data) : size;
	char *v = malloc(rn ? rn : 1);
	if (!v)
		return 0;
	memcpy(v, data, rn);
	uint64_t first = 0, last = 0;
	enum range_rc rc = range_parse(v, rn, len, &first, &last);
	if (rc == RANGE_OK && !(first <= last && last < len))
		abort();
	if ((rc == RANGE_UNSATISFIABLE || rc == RANGE_OK) && !memchr(v, '-', rn))
		abort();
	if (rc > RANGE_INVALID)
		abort();
	uint64_t f2 = 0, l2 = 0;
	if (range_parse(v, rn, len, &f2, &l2) != rc || (rc == RANGE_OK && (f2 != first || l2 != last)))
		abort(); /* pure: the same answer twice */
	free(v);
	if (nul) {
		const char *ir = (const char *)nul + 1;
		size_t in = size - rn - 1;
		char *w = malloc(in ? in : 1);
		if (!w)
			return 0;
		memcpy(w, ir, in);
		/* an If-Range value compared with itself as the stored tag
		 * matches only when it is a strong entity tag (once trimmed of OWS) */
		bool self = range_if_range(w, in, -1, w, in, -1, -1);
		size_t s = 0, e = in;
		while (s < e && (w[s] == ' ' || w[s] == '\t'))
			s++;
		while (e > s && (w[e - 1] == ' ' || w[e - 1] == '\t'))
			e--;
		if (self && (e - s < 2 || w[s] != '"' || w[e - 1] != '"'))
			abort();
		/* a date If-Range: the length's low 40 bits stand for the dates, so
		 * "date - last_modified" stays representable */
		int64_t d = (int64_t)(len & 0xffffffffffULL);
		(void)range_if_range(w, in, d, "\"x\"", 3, d, d + 60);
		free(w);
	}
	return 0;
}
