/*
 * fuzz_warmup_list.c - the [warmup] list parser (policy/warmup_list.c) on
 * arbitrary bytes, as a file (lines) and inline (blank-separated).
 *
 * Whatever the input, warmup_list_parse() must return without crashing,
 * reading out of bounds or leaking. An error names an item within the
 * input and a reason. A list it accepts walks back to exactly `n` items,
 * each target an origin-form target of visible ASCII no longer than the
 * bound, each authority empty or of host characters, and the walk ends
 * exactly at the end of the data.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_one(const char *text, size_t size, bool lines)
{
	struct lv_warm_list l = {0};
	unsigned at = 0;
	char err[256] = "";
	if (warmup_list_parse(text, size, lines, &l, &at, err, sizeof(err)) != LV_OK) {
		if (at < 1 || at > size + 1 || err[0] == '\0')
			abort();
		free(l.data);
		return;
	}
	size_t pos = 0;
	unsigned n = 0;
	const char *auth, *target;
	while (warmup_list_next(&l, &pos, &auth, &target)) {
		size_t tl = strlen(target);
		if (target[0] != '/' || tl > LV_WARM_TARGET_MAX || strchr(target, '#'))
			abort();
		for (size_t i = 0; i < tl; i++)
			if ((unsigned char)target[i] <= ' ' || (unsigned char)target[i] >= 0x7f)
				abort();
		if (strlen(auth) >= LV_HOST_MAX || strpbrk(auth, " /@\t"))
			abort();
		n++;
	}
	if (n != l.n || pos != l.len || n > LV_WARM_LIST_MAX)
		abort();
	free(l.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_one((const char *)data, size, true);
	check_one((const char *)data, size, false);
	return 0;
}
