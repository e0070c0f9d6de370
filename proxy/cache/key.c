#include "cache/key.h"

#include <ctype.h>
#include <string.h>

struct kw {
	char *p, *end;
	bool overflow;
};

static void kw_put(struct kw *w, const char *s, size_t n)
{
	if ((size_t)(w->end - w->p) < n) {
		w->overflow = true;
		return;
	}
	memcpy(w->p, s, n);
	w->p += n;
}

static void kw_char(struct kw *w, char c)
{
	kw_put(w, &c, 1);
}

/* Host, lowercased, without a default port. */
static void kw_host(struct kw *w, const char *h, size_t n)
{
	if (n > 3 && memcmp(h + n - 3, ":80", 3) == 0 && h[n - 4] != ':')
		n -= 3;
	for (size_t i = 0; i < n && !w->overflow; i++)
		kw_char(w, (char)tolower((unsigned char)h[i]));
}

/* The values of one field across all its lines, joined by ", ": the same
 * combination a recipient may make (RFC 9110 §5.3). An absent field writes
 * nothing after '=', and a marker distinguishes it from an empty one. */
static void kw_field(struct kw *w, const struct lv_head *hd, const char *name, size_t nlen)
{
	kw_char(w, KEY_SEP);
	kw_put(w, name, nlen);
	int i = head_find(hd, name, nlen, 0);
	if (i < 0) {
		kw_char(w, '!');
		return;
	}
	kw_char(w, '=');
	for (bool first = true; i >= 0; i = head_find(hd, name, nlen, i + 1), first = false) {
		if (!first)
			kw_put(w, ", ", 2);
		kw_put(w, hd->text + hd->h[i].value, hd->h[i].value_len);
	}
}

size_t key_build(const char *service, const struct lv_head *hd, const char *extra, char *out, size_t cap)
{
	return key_build_as(service, hd, NULL, extra, out, cap);
}

size_t key_build_as(const char *service, const struct lv_head *hd, const char *host, const char *extra, char *out,
                    size_t cap)
{
	struct kw w = {out, out + cap, false};
	kw_put(&w, service, strlen(service));
	kw_char(&w, KEY_SEP);
	kw_put(&w, hd->text + hd->target_off, hd->target_len);
	kw_char(&w, KEY_SEP);
	if (host)
		kw_host(&w, host, strlen(host));
	else
		kw_host(&w, hd->text + hd->authority_off, hd->authority_len);
	for (const char *p = extra; p && *p;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		kw_field(&w, hd, p, n);
		p = e ? e + 1 : p + n;
	}
	return w.overflow ? 0 : (size_t)(w.p - out);
}

size_t key_add_field(const struct lv_head *hd, const char *name, size_t nlen, char *out, size_t len, size_t cap)
{
	struct kw w = {out + len, out + cap, false};
	kw_field(&w, hd, name, nlen);
	return w.overflow ? 0 : (size_t)(w.p - out);
}

size_t key_path_prefix(const char *service, const char *path, size_t plen, char *out, size_t cap)
{
	struct kw w = {out, out + cap, false};
	kw_put(&w, service, strlen(service));
	kw_char(&w, KEY_SEP);
	kw_put(&w, path, plen);
	return w.overflow ? 0 : (size_t)(w.p - out);
}
