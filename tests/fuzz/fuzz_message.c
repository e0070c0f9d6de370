/* fuzz_message.c - the invalidation message codec
 * (proxy/invalidate/message.c).
 *
 * Every input is decoded with a scratch buffer of exactly its length (the
 * documented minimum), so ASan catches a decoder that needs more. Whenever a
 * decode succeeds, the message is checked (version 1, items grouped by kind,
 * strings NUL-terminated inside the scratch buffer), encoded, and the
 * encoding decoded again; the invariants are that the encoding is no longer
 * than the input, that it decodes to the same message, and that encoding
 * that message gives the same bytes. Any other outcome calls abort(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "invalidate/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct inval_msg m1, m2;
static char enc[MSG_MAX_BYTES], enc2[MSG_MAX_BYTES], scratch2[MSG_MAX_BYTES];

static bool same_str(struct msg_str a, struct msg_str b)
{
	if ((a.p == NULL) != (b.p == NULL) || a.len != b.len)
		return false;
	return a.len == 0 || memcmp(a.p, b.p, a.len) == 0;
}

static void check_str(struct msg_str s, const char *scratch, size_t cap, bool may_be_absent)
{
	if (s.p == NULL) {
		if (!may_be_absent || s.len != 0)
			abort();
		return;
	}
	if (s.p < scratch || s.p + s.len >= scratch + cap || s.p[s.len] != '\0' ||
	    memchr(s.p, '\0', s.len) != NULL)
		abort();
}

static void check_msg(const struct inval_msg *m, const char *scratch, size_t cap)
{
	if (m->version != MSG_VERSION || m->ts < -1 || m->nitems > MSG_MAX_ITEMS ||
	    (m->nitems == 0 && !m->all))
		abort();
	check_str(m->id, scratch, cap, false);
	check_str(m->service, scratch, cap, false);
	check_str(m->origin, scratch, cap, true);
	for (size_t i = 0; i < m->nitems; i++) {
		if (m->items[i].kind > MSG_TAG ||
		    (i > 0 && m->items[i].kind < m->items[i - 1].kind))
			abort();
		check_str(m->items[i].s, scratch, cap, false);
	}
}

static void same_msg(const struct inval_msg *a, const struct inval_msg *b)
{
	if (a->version != b->version || !same_str(a->id, b->id) ||
	    !same_str(a->service, b->service) || !same_str(a->origin, b->origin) ||
	    a->ts != b->ts || a->all != b->all || a->nitems != b->nitems)
		abort();
	for (size_t i = 0; i < a->nitems; i++)
		if (a->items[i].kind != b->items[i].kind || !same_str(a->items[i].s, b->items[i].s))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_error err = {NULL, 0};
	if (size > MSG_MAX_BYTES) {
		if (msg_decode((const char *)data, size, scratch2, sizeof(scratch2), &m1, &err) !=
		    MSG_E_TOO_BIG)
			abort();
		return 0;
	}
	char *scratch = malloc(size > 0 ? size : 1);
	if (scratch == NULL)
		abort();
	int rc = msg_decode((const char *)data, size, scratch, size, &m1, &err);
	if (rc < 0 || rc >= MSG_E_COUNT || err.detail == NULL || err.offset > size)
		abort();
	if (rc != MSG_OK) {
		free(scratch);
		return 0;
	}
	check_msg(&m1, scratch, size);

	size_t n = msg_encode(&m1, enc, sizeof(enc));
	if (n == 0 || n > size)
		abort();
	if (msg_decode(enc, n, scratch2, sizeof(scratch2), &m2, &err) != MSG_OK)
		abort();
	check_msg(&m2, scratch2, sizeof(scratch2));
	same_msg(&m1, &m2);
	if (msg_encode(&m2, enc2, sizeof(enc2)) != n || memcmp(enc, enc2, n) != 0)
		abort();
	free(scratch);
	return 0;
}
