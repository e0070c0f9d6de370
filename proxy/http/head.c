/*
 * head.c - reading a parsed head's header fields. Pure: no allocation, no
 * event loop.
 */
#include "http/head.h"

#include <string.h>
#include <strings.h>

bool token_eq(const char *a, size_t alen, const char *lit, size_t litlen)
{
	return alen == litlen && strncasecmp(a, lit, litlen) == 0;
}

bool head_name_is(const struct lv_head *hd, int i, const char *name, size_t name_len)
{
	const struct lv_hdr *e = &hd->h[i];
	return token_eq(hd->text + e->name, e->name_len, name, name_len);
}

int head_find(const struct lv_head *hd, const char *name, size_t name_len, int from)
{
	for (uint32_t i = (uint32_t)from; i < hd->n; i++)
		if (head_name_is(hd, (int)i, name, name_len))
			return (int)i;
	return -1;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

void head_each_token(const char *v, size_t len, void (*cb)(const char *tok, size_t n, void *arg), void *arg)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && (is_ows(v[i]) || v[i] == ','))
			i++;
		size_t s = i;
		while (i < len && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && is_ows(v[e - 1]))
			e--;
		if (e > s)
			cb(v + s, e - s, arg);
	}
}

const char *head_cookie(const struct lv_head *hd, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	for (int i = head_find(hd, "cookie", 6, 0); i >= 0; i = head_find(hd, "cookie", 6, i + 1)) {
		const char *v = hd->text + hd->h[i].value, *end = v + hd->h[i].value_len;
		while (v < end) {
			while (v < end && (*v == ' ' || *v == ';'))
				v++;
			const char *semi = memchr(v, ';', (size_t)(end - v));
			const char *pair_end = semi ? semi : end;
			if ((size_t)(pair_end - v) > nl && memcmp(v, name, nl) == 0 && v[nl] == '=') {
				*len = (size_t)(pair_end - v - (ptrdiff_t)nl - 1);
				return v + nl + 1;
			}
			v = pair_end;
		}
	}
	return NULL;
}
