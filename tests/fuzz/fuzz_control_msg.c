/* fuzz_control_msg.c - the control command decoder (proxy/control/
 * control_msg.c).
 *
 * Each input is decoded from a heap copy of exactly its size, so ASan
 * catches any read past it. The verdict must be one the decoder may give
 * (APPLY, EVENT, MALFORMED) with a reason; an accepted command must keep
 * every documented rule (NUL-terminated strings within their bounds, an
 * until in range), encode, and decode again to the same command, whose
 * encoding is the same bytes. The signature check runs over the input too,
 * under a fixed key, and must refuse it (the input carries no valid
 * signature). Any other outcome calls abort(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/control_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t cap, size_t min)
{
	size_t n = strnlen(s, cap);
	if (n == cap || n < min)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size ? size : 1);
	if (!in)
		abort();
	memcpy(in, data, size);
	static struct ctl_cmd c, back;
	const char *why = NULL;
	enum ctl_verdict v = ctl_decode(in, size, &c, &why);
	if ((v != CTL_APPLY && v != CTL_EVENT && v != CTL_MALFORMED) || !why)
		abort();
	static const char key[] = "fuzzing key, 16+ bytes";
	static const char sig[CTL_SIG_LEN + 1] = CTL_SIG_PREFIX "00000000000000000000000000000000"
	                                                         "00000000000000000000000000000000";
	enum ctl_verdict s = ctl_verify(key, sizeof(key) - 1, size >= CTL_SIG_LEN ? in : sig, CTL_SIG_LEN, in, size);
	if (s != CTL_BAD_SIGNATURE)
		abort();
	if (v == CTL_APPLY) {
		check_str(c.id, sizeof(c.id), 1);
		check_str(c.service, sizeof(c.service), 1);
		check_str(c.reason, sizeof(c.reason), 0);
		check_str(c.issued_by, sizeof(c.issued_by), 0);
		if (c.type == CTL_FORCE) {
			check_str(c.tier, sizeof(c.tier), 1);
			if (c.until_unix_ms < 1 || c.until_unix_ms > (uint64_t)CTL_UNTIL_MAX || c.clear[0])
				abort();
		} else if (c.type == CTL_CLEAR) {
			check_str(c.clear, sizeof(c.clear), 1);
			if (c.tier[0] || c.until_unix_ms)
				abort();
		} else
			abort();
		static char enc[CTL_MAX_BYTES + 1], enc2[CTL_MAX_BYTES + 1];
		size_t n = ctl_encode(&c, enc, sizeof(enc));
		if (n == 0 || ctl_decode(enc, n, &back, &why) != CTL_APPLY || memcmp(&c, &back, sizeof(c)) != 0)
			abort();
		if (ctl_encode(&back, enc2, sizeof(enc2)) != n || memcmp(enc, enc2, n) != 0)
			abort();
	}
	free(in);
	return 0;
}
