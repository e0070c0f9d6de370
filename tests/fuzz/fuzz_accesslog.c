/* fuzz_accesslog.c - the access log line (proxy/accesslog.c) from hostile
 * values.
 *
 * The first byte picks the format and which fields are chosen; the rest is
 * split at each 0x00 into string values, given to the fields in turn (the
 * numeric ones get the bytes as a number), and read whole as Cache-Status
 * parameters. The invariants: the line fits ALOG_LINE_MAX, ends with its
 * only '\n', holds only printable ASCII; in text, its quoted values balance
 * (no value closes its own quotes); and the cache outcome is one of the
 * documented words, with a layer only for an answer from the cache. Any
 * other outcome calls abort(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "accesslog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_line(const char *line, size_t n, enum lv_alog_format fmt)
{
	if (n == 0 || n > ALOG_LINE_MAX || line[n - 1] != '\n')
		abort();
	bool quoted = false;
	for (size_t i = 0; i + 1 < n; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < ' ' || c > 0x7e)
			abort();
		if (fmt == LV_ALOG_TEXT && quoted && c == '\\') {
			i++; /* an escape: the next byte is its own */
			continue;
		}
		if (fmt == LV_ALOG_TEXT && c == '"')
			quoted = !quoted;
	}
	if (quoted)
		abort();
}

static void check_cache(const char *params)
{
	static const char *const words[] = {"hit", "stale", "miss", "expired", "revalidated", "bypass"};
	const char *layer = "x";
	const char *o = alog_cache_outcome(params, &layer);
	if (!o) {
		if (layer)
			abort();
		return;
	}
	bool known = false;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		known |= strcmp(o, words[i]) == 0;
	if (!known)
		abort();
	bool answered = strcmp(o, "hit") == 0 || strcmp(o, "stale") == 0 || strcmp(o, "revalidated") == 0;
	if (answered != (layer != NULL))
		abort();
	if (layer && strcmp(layer, "l1") != 0 && strcmp(layer, "l2") != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum lv_alog_format fmt = data[0] & 1 ? LV_ALOG_TEXT : LV_ALOG_JSON;
	struct lv_alog_fields fields = {0};
	/* all of them, or every field whose bit of a mixing of the byte is set */
	for (unsigned f = 0; f < LV_AF__COUNT; f++)
		if ((data[0] & 2) || ((data[0] * 2654435761u) >> (f % 32)) & 1)
			fields.f[fields.n++] = (uint8_t)f;
	struct alog_entry e;
	memset(&e, 0, sizeof(e));
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	for (unsigned f = 0; f < LV_AF__COUNT && p <= end; f++) {
		const char *z = memchr(p, 0, (size_t)(end - p));
		size_t n = z ? (size_t)(z - p) : (size_t)(end - p);
		if (f == LV_AF_STATUS || f == LV_AF_BYTES_SENT || f == LV_AF_REQUEST_MS || f == LV_AF_TIME) {
			uint64_t u = 0;
			memcpy(&u, p, n < sizeof(u) ? n : sizeof(u));
			alog_set_num(&e, (enum lv_alog_field)f,
			             f == LV_AF_TIME ? ALOG_TIME : f == LV_AF_REQUEST_MS ? ALOG_USEC : ALOG_UINT,
			             f == LV_AF_TIME ? u % (4102444800ull * 1000000) : u);
		} else if (n || z) {
			alog_set_str(&e, (enum lv_alog_field)f, p, n);
		}
		p += n + 1;
	}
	static char line[ALOG_LINE_MAX + 1];
	size_t n = alog_format(line, &fields, fmt, &e);
	check_line(line, n, fmt);

	char *params = malloc(size);
	if (!params)
		return 0;
	memcpy(params, data + 1, size - 1);
	params[size - 1] = '\0';
	check_cache(params);
	free(params);
	return 0;
}
