/* fuzz_json.c - the strict JSON pull reader (proxy/invalidate/json.c).
 *
 * Each input is walked twice per depth limit: once with json_skip(), once
 * value by value with the typed readers (strings decoded, integers read,
 * member names decoded and compared). The invariant is that both walks agree:
 * accept or reject, and on rejection the same reason at the same offset.
 * Decoded strings must be valid UTF-8, no longer than their JSON form, and a
 * member name must compare equal to its own decoding. Any other outcome
 * calls abort(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "invalidate/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_utf8(const char *p, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n = json_utf8_len(p + i, len - i);
		if (n == 0)
			abort();
		i += n;
	}
}

static void check_name(const struct json_str *name, char *buf, size_t cap)
{
	size_t len;
	if (json_str_decode(name, buf, cap, &len) != JSON_OK || len > name->len || buf[len] != '\0')
		abort();
	check_utf8(buf, len);
	if (memchr(buf, '\0', len) == NULL) {
		if (!json_str_eq(name, buf))
			abort();
		if (len > 0) {
			buf[len - 1] = '\0';
			if (json_str_eq(name, buf))
				abort();
		}
	}
}

/* Reads the expected value with the typed calls; `buf` holds `cap` bytes,
 * enough for any string of the input. */
static int read_value(struct json_reader *r, char *buf, size_t cap)
{
	struct json_str name;
	size_t len;
	bool nul, b;
	int64_t v;

	switch (json_peek(r)) {
	case JSON_OBJECT:
		while (json_object_next(r, &name)) {
			check_name(&name, buf, cap);
			if (read_value(r, buf, cap) != JSON_OK)
				return JSON_ERR;
		}
		return json_error(r, NULL) == NULL ? JSON_OK : JSON_ERR;
	case JSON_ARRAY:
		while (json_array_next(r))
			if (read_value(r, buf, cap) != JSON_OK)
				return JSON_ERR;
		return json_error(r, NULL) == NULL ? JSON_OK : JSON_ERR;
	case JSON_STRING:
		if (json_read_string(r, buf, cap, &len, &nul) != JSON_OK)
			return JSON_ERR;
		if (buf[len] != '\0' || nul != (memchr(buf, '\0', len) != NULL))
			abort();
		check_utf8(buf, len);
		return JSON_OK;
	case JSON_NUMBER: {
		int rc = json_read_int64(r, &v);
		return rc == JSON_ERANGE ? JSON_OK : rc;
	}
	case JSON_TRUE:
	case JSON_FALSE:
		if (json_read_bool(r, &b) != JSON_OK)
			abort(); /* peek said it is a boolean */
		return JSON_OK;
	case JSON_NULL:
		return json_skip(r);
	case JSON_END:
	case JSON_ERROR:
		break;
	}
	return JSON_ERR;
}

static void walk_both(const char *text, size_t size, unsigned depth, char *buf)
{
	struct json_reader a, b;
	json_init(&a, text, size, depth);
	json_init(&b, text, size, depth);
	int ra = json_skip(&a);
	if (ra == JSON_OK)
		ra = json_finish(&a);
	int rb = read_value(&b, buf, size + 1);
	if (rb == JSON_OK)
		rb = json_finish(&b);
	size_t oa = 0, ob = 0;
	const char *wa = json_error(&a, &oa), *wb = json_error(&b, &ob);
	if (ra != rb || (ra == JSON_OK) != (wa == NULL) || wa != wb || oa != ob || oa > size)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* exactly `size` bytes, so that ASan sees a read past the end */
	char *text = malloc(size > 0 ? size : 1);
	char *buf = malloc(size + 1);
	if (text == NULL || buf == NULL)
		abort();
	memcpy(text, data, size);
	walk_both(text, size, 0, buf);
	walk_both(text, size, 3, buf);
	free(text);
	free(buf);
	return 0;
}
