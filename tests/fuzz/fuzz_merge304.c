/* fuzz_merge304.c - a 304's update of a stored response (merge304.c).
 *
 * Input: two HTTP response heads separated by a NUL byte: the first is the
 * stored response (its fields become a record), the second the 304. The
 * invariants checked: no crash or sanitizer report; the merged head fits
 * the sizes merge304_text_cap() and merge304_slots() promised; every merged
 * field lies inside its text; no field §3.2 excludes comes from the 304;
 * and fresh_evaluate() accepts the merged head. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/h1_feed.h"
#include "cache/freshness.h"
#include "cache/merge304.h"
#include "cache/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct h1_fixture stored, r304, req;
	static struct record_hdr hdrs[128];
	const uint8_t *nul = memchr(data, 0, size);
	if (!nul)
		return 0;
	size_t n1 = (size_t)(nul - data);
	if (!h1_parse_response_head(&stored, (const char *)data, n1) ||
	    !h1_parse_response_head(&r304, (const char *)nul + 1, size - n1 - 1))
		return 0;
	const struct lv_head *s = &stored.head;
	uint32_t nh = 0;
	for (uint32_t i = 0; i < s->n && nh < 128; i++, nh++) {
		hdrs[nh].name = (struct record_str){s->text + s->h[i].name, s->h[i].name_len};
		hdrs[nh].value = (struct record_str){s->text + s->h[i].value, s->h[i].value_len};
	}
	int et = head_find(s, LIT("etag"), 0);
	struct iovec body = {(void *)"body", 4};
	struct record_in in = {
	    .status = s->status,
	    .last_modified = -1,
	    .etag = et >= 0 ? (struct record_str){s->text + s->h[et].value, s->h[et].value_len}
	                    : (struct record_str){"", 0},
	    .hdrs = hdrs,
	    .nhdrs = nh,
	    .body = &body,
	    .nbody = 1,
	};
	size_t rs = record_size(&in);
	void *buf = rs ? malloc(rs) : NULL;
	struct record_view v;
	if (!buf || record_encode(&in, buf, rs) != RECORD_OK || record_decode(buf, rs, &v) != RECORD_OK) {
		free(buf);
		return 0;
	}
	(void)merge304_selects(&v, &r304.head, true);
	(void)merge304_selects(&v, &r304.head, false);
	struct lv_head out = {0};
	out.cap = (uint32_t)merge304_text_cap(&v, &r304.head);
	out.max = merge304_slots(&v, &r304.head);
	out.text = malloc(out.cap);
	out.h = malloc(out.max * sizeof(*out.h));
	if (!merge304_build(&v, &r304.head, 784111777, &out))
		abort(); /* the promised sizes must be enough */
	for (uint32_t i = 0; i < out.n; i++) {
		const struct lv_hdr *h = &out.h[i];
		if ((uint64_t)h->name + h->name_len > out.len || (uint64_t)h->value + h->value_len > out.len)
			abort();
	}
	for (uint32_t i = 0; i < r304.head.n; i++) {
		if (!merge304_excluded(&r304.head, (int)i))
			continue;
		/* an excluded 304 field is merged only if it was stored already */
		const struct lv_hdr *e = &r304.head.h[i];
		int j = head_find(&out, r304.head.text + e->name, e->name_len, 0);
		if (j >= 0 && head_find(s, r304.head.text + e->name, e->name_len, 0) < 0)
			abort();
	}
	h1_parse_request(&req, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, 0, &(enum lv_reason){0}, &(size_t){0});
	struct fresh_options o;
	fresh_options_init(&o);
	struct fresh_eval ev;
	fresh_evaluate(&req.head, &out, 784111777, 784111777, &o, &ev);
	if (ev.st.lifetime < 0 || ev.st.lifetime > CC_DELTA_MAX)
		abort();
	free(out.text);
	free(out.h);
	free(buf);
	return 0;
}
