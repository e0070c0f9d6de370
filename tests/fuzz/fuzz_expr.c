/*
 * fuzz_expr.c - the tier expression parser (policy/expr.c) on arbitrary
 * bytes.
 *
 * Whatever the input, expr_parse() must return without crashing, reading
 * out of bounds or leaking; an error must have a column inside the text
 * (or just past its end) and a message. An expression it accepts must
 * render to a canonical form that parses again, renders to itself and has
 * the same truth on a signal vector taken from the input's bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct expr_signal fuzz_signal_table[] = {
	{"inflight", EXPR_COUNT},      {"queue_wait_p99", EXPR_DURATION}, {"cpu", EXPR_PERCENT},
	{"psi.cpu.some10", EXPR_PERCENT}, {"memory.used", EXPR_SIZE},    {"redis.up", EXPR_FLAG},
	{"kafka.lag", EXPR_COUNT},
};
#define FUZZ_NSIG (sizeof(fuzz_signal_table) / sizeof(fuzz_signal_table[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct expr_signals sig = {fuzz_signal_table, FUZZ_NSIG};
	char *text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0'; /* an embedded NUL simply ends the text early */
	size_t len = strlen(text);

	struct expr *e = NULL;
	struct expr_error err;
	if (expr_parse(text, &sig, &e, &err) != LV_OK) {
		if (err.column < 1 || (size_t)err.column > len + 1 || err.message[0] == '\0')
			abort();
		free(text);
		return 0;
	}

	/* signal values from the input's bytes, NaN among them */
	double v[FUZZ_NSIG];
	for (size_t i = 0; i < FUZZ_NSIG; i++) {
		uint8_t b = size > i ? data[size - 1 - i] : 0;
		v[i] = b == 0xff ? __builtin_nan("") : (double)b;
	}
	bool used[FUZZ_NSIG] = {false};
	expr_mark_signals(e, used);

	char canon[EXPR_TEXT_MAX * 3];
	size_t n = expr_render(e, canon, sizeof(canon));
	if (n >= sizeof(canon) || strlen(canon) != n)
		abort();
	struct expr *again = NULL;
	if (n <= EXPR_TEXT_MAX) {
		if (expr_parse(canon, &sig, &again, &err) != LV_OK)
			abort();
		char canon2[sizeof(canon)];
		expr_render(again, canon2, sizeof(canon2));
		if (strcmp(canon, canon2) != 0 || expr_eval(e, v) != expr_eval(again, v))
			abort();
		expr_free(again);
	}
	expr_free(e);
	free(text);
	return 0;
}
