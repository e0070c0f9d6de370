/* fuzz_sfv.c - RFC 8941 Dictionaries (proxy/http/sfv.c) from hostile bytes.
 *
 * The input is parsed as a field value. The invariants: a parse either
 * fails without calling back or calls back once per member it counted;
 * whatever it accepted, its canonical form (tests/unit/sfv_canon.h) parses
 * again, to the same number of distinct members, and is its own canonical
 * form; every String and Byte Sequence it handed out copies and decodes
 * within the §3 sizes. Any other outcome calls abort(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/sfv_canon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char canon1[1 << 18], canon2[1 << 18];

struct walk {
	int calls;
};

static void check_bare(const struct sfv_bare *v)
{
	static char str[SFV_STRING_MAX];
	static unsigned char bytes[SFV_BYTES_MAX];
	if (v->type == SFV_STRING && sfv_string_copy(v, str, sizeof(str)) < 0)
		abort();
	if (v->type == SFV_BYTES && sfv_bytes_decode(v, bytes, sizeof(bytes)) < 0)
		abort();
	if (v->type == SFV_BOOLEAN && v->num != 0 && v->num != 1)
		abort();
	if (v->type == SFV_INTEGER && (v->num > 999999999999999 || v->num < -999999999999999))
		abort();
}

static void check_params(const struct sfv_item *it)
{
	size_t pos = 0, kl;
	const char *k;
	struct sfv_bare v;
	int n = 0;
	while (sfv_param_next(it, &pos, &k, &kl, &v)) {
		if (kl == 0 || kl > SFV_KEY_MAX || ++n > SFV_PARAMS_MAX || v.type == SFV_INNER_LIST)
			abort();
		check_bare(&v);
	}
	if (pos != it->params_len) /* the readers cover exactly what was parsed */
		abort();
}

static void member_cb(const char *key, size_t len, const struct sfv_item *it, void *arg)
{
	struct walk *w = arg;
	w->calls++;
	if (len == 0 || len > SFV_KEY_MAX || (key[0] != '*' && (key[0] < 'a' || key[0] > 'z')))
		abort();
	check_params(it);
	if (it->v.type != SFV_INNER_LIST) {
		check_bare(&it->v);
		return;
	}
	size_t pos = 0;
	struct sfv_item m;
	int n = 0;
	while (sfv_inner_next(it, &pos, &m)) {
		if (++n > SFV_INNER_MAX || m.v.type == SFV_INNER_LIST)
			abort();
		check_bare(&m.v);
		check_params(&m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct walk w = {0};
	int rc = sfv_dict_parse((const char *)data, size, member_cb, &w);
	if (rc < 0) {
		if (w.calls != 0 || (rc != SFV_EINVAL && rc != SFV_ELIMIT))
			abort();
		return 0;
	}
	if (w.calls != rc)
		abort();
	bool over = false;
	if (canon_dict((const char *)data, size, canon1, sizeof(canon1), &over) != rc)
		abort();
	if (over)
		return 0; /* the canonical form grew past the buffer: nothing to compare */
	int again = canon_dict(canon1, strlen(canon1), canon2, sizeof(canon2), &over);
	if (again < 0 || again > rc || over || strcmp(canon1, canon2) != 0)
		abort();
	return 0;
}
