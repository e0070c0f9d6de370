/* fuzz_vary.c - the normalisation of Vary's selecting values
 * (proxy/cache/vary.c) on hostile values.
 *
 * The first byte picks the field (one of those levee knows, or an unknown
 * one); the rest is split at each '\n' into the field's lines, each copied
 * into a buffer of exactly its size. The invariants: the result is never
 * longer than the lines and the commas between them; a buffer one byte too
 * small is refused, never overrun; the same lines give the same result
 * twice; and, for values without quoted strings or escapes, normalising is
 * idempotent: the result, read again as one line, gives itself (a quote
 * left open would swallow what follows it once the lines are joined). Any
 * other outcome calls abort(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/vary.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LINES 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const fields[] = {"accept-encoding", "accept-language", "accept-charset", "accept", "x-thing"};
	if (size < 1)
		return 0;
	const char *name = fields[data[0] % 5];
	data++;
	size--;
	char *lines[LINES];
	const char *cl[LINES];
	size_t lens[LINES], total = 0;
	unsigned n = 0;
	while (n < LINES) {
		const uint8_t *nl = memchr(data, '\n', size);
		size_t k = nl ? (size_t)(nl - data) : size;
		lines[n] = malloc(k ? k : 1);
		if (!lines[n])
			break;
		memcpy(lines[n], data, k);
		cl[n] = lines[n];
		lens[n++] = k;
		total += k;
		if (!nl)
			break;
		data = nl + 1;
		size -= k + 1;
	}
	size_t cap = total + n + 1;
	char *out = malloc(cap), *again = malloc(cap);
	if (!out || !again)
		abort();
	size_t w = vary_normalise(name, strlen(name), cl, lens, n, out, cap);
	if (w == SIZE_MAX || w > total + n)
		abort();
	if (w) {
		char *tight = malloc(w - 1 ? w - 1 : 1);
		if (!tight || vary_normalise(name, strlen(name), cl, lens, n, tight, w - 1) != SIZE_MAX)
			abort(); /* one byte short: refused */
		free(tight);
	}
	size_t w2 = vary_normalise(name, strlen(name), cl, lens, n, again, cap);
	if (w2 != w || memcmp(again, out, w) != 0)
		abort();
	const char *one = out;
	w2 = vary_normalise(name, strlen(name), &one, &w, 1, again, cap);
	if (!memchr(out, '"', w) && !memchr(out, '\\', w) && (w2 != w || memcmp(again, out, w) != 0))
		abort();
	for (unsigned i = 0; i < n; i++)
		free(lines[i]);
	free(out);
	free(again);
	return 0;
}
