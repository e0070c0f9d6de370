/*
 * fuzz_policy.c - the policy loader on arbitrary bytes.
 *
 * Whatever the input, policy_load_string() must return without crashing,
 * reading out of bounds or leaking, and must produce either a snapshot or
 * at least one error line, never both and never neither.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0'; /* an embedded NUL simply ends the text early */

	struct lv_policy *p = NULL;
	struct lv_diag diag = {0};
	int rc = policy_load_string("fuzz.ini", text, NULL, &p, &diag);
	if ((rc == LV_OK) != (p != NULL) || (rc == LV_OK) != (diag.n == 0))
		abort();
	if (p != NULL) {
		struct lv_captures caps;
		(void)policy_route_match(p, text, strnlen(text, size), LV_M_GET, &caps);
		policy_unref(p);
	}
	diag_free(&diag);
	free(text);
	return 0;
}
