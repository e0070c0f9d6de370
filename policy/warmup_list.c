/*
 * warmup_list.c - the [warmup] list of URLs: its parser (warmup_list_parse,
 * also the fuzz target's) and its reading at load, so that `levee check`
 * and a reload catch a bad line before a start trips on it.
 *
 * The parsed list lives in the snapshot (lv_policy.warmup.list) and is
 * freed with it. Items are checked here once; the warm-up only sends them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_parse.h"

/* Visible ASCII: what an origin-form target or an authority may hold on the
 * wire without escaping (RFC 9112 §3.2 forbids blanks and controls). */
static bool warm_visible(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

/* An authority of a warm-up URL: host[:port], host of [A-Za-z0-9.-_] or an
 * [IPv6] literal, port of 1-5 digits. */
static bool warm_authority_ok(const char *s, size_t n)
{
	if (n == 0 || n >= LV_HOST_MAX)
		return false;
	size_t i = 0;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return false;
		for (const char *q = s + 1; q < close; q++)
			if (*q == '\0' || !strchr("0123456789abcdefABCDEF:.", *q)) /* strchr finds the NUL */
				return false;
		i = (size_t)(close - s) + 1;
	} else {
		while (i < n && s[i] != ':') {
			char c = s[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
			      c == '-' || c == '_'))
				return false;
			i++;
		}
		if (i == 0)
			return false;
	}
	if (i == n)
		return true;
	if (s[i] != ':' || n - i - 1 == 0 || n - i - 1 > 5)
		return false;
	for (i++; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int warm_append(struct lv_warm_list *out, const char *auth, size_t al, const char *tgt, size_t tl)
{
	char *grown = realloc(out->data, out->len + al + tl + 2);
	if (!grown)
		return LV_ERR;
	out->data = grown;
	memcpy(out->data + out->len, auth, al);
	out->data[out->len + al] = '\0';
	memcpy(out->data + out->len + al + 1, tgt, tl);
	out->data[out->len + al + 1 + tl] = '\0';
	out->len += al + tl + 2;
	out->n++;
	return LV_OK;
}

/* One item: NULL when it was added, else why not. */
static const char *warm_item(struct lv_warm_list *out, const char *s, size_t n)
{
	const char *auth = "";
	size_t al = 0;
	if (n >= 7 && strncmp(s, "http://", 7) == 0) {
		auth = s + 7;
		const char *slash = memchr(auth, '/', n - 7);
		al = slash ? (size_t)(slash - auth) : n - 7;
		if (!warm_authority_ok(auth, al))
			return "bad host in URL (expected http://HOST[:PORT]/path)";
		s = slash ? slash : "/";
		n = slash ? n - 7 - al : 1;
	} else if (n >= 8 && strncmp(s, "https://", 8) == 0) {
		return "https URLs are not fetched: levee speaks plain HTTP to its origin";
	}
	if (n == 0 || s[0] != '/')
		return "expected a target starting with / or an http:// URL";
	if (n > LV_WARM_TARGET_MAX)
		return "URL too long (max 8192 bytes)";
	if (!warm_visible(s, n))
		return "URL holds a blank or a control character";
	if (memchr(s, '#', n))
		return "URL holds a fragment (#), which is never sent";
	if (out->n >= LV_WARM_LIST_MAX)
		return "too many URLs (max 10000)";
	if (warm_append(out, auth, al, s, n) != LV_OK)
		return "out of memory";
	return NULL;
}

int warmup_list_parse(const char *text, size_t len, bool lines, struct lv_warm_list *out, unsigned *at, char *err,
                      size_t errlen)
{
	const char *p = text, *e = text + len;
	unsigned no = 0;
	while (p < e) {
		const char *s, *q;
		if (lines) {
			s = p;
			q = memchr(p, '\n', (size_t)(e - p));
			if (!q)
				q = e;
			p = q < e ? q + 1 : e;
			no++;
			/* trim blanks and a CR (a file written on Windows) */
			while (s < q && (*s == ' ' || *s == '\t'))
				s++;
			while (q > s && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\r'))
				q--;
			if (s == q || *s == '#')
				continue;
		} else {
			while (p < e && (*p == ' ' || *p == '\t'))
				p++;
			if (p == e)
				break;
			s = p;
			while (p < e && *p != ' ' && *p != '\t')
				p++;
			q = p;
			no++;
		}
		const char *why = warm_item(out, s, (size_t)(q - s));
		if (why) {
			*at = no;
			snprintf(err, errlen, "%s", why);
			return LV_ERR;
		}
	}
	return LV_OK;
}

bool warmup_list_next(const struct lv_warm_list *l, size_t *pos, const char **authority, const char **target)
{
	if (!l->data || *pos >= l->len)
		return false;
	*authority = l->data + *pos;
	*pos += strlen(*authority) + 1;
	*target = l->data + *pos;
	*pos += strlen(*target) + 1;
	return true;
}

static int warm_key_line(struct policy_parse *st, const char *key)
{
	const struct keys_def *k = keys_find("warmup", key);
	size_t n;
	const struct keys_def *table = keys_table(&n);
	return k ? st->seen_top[k - table] : 0;
}

void policy_warmup_list(struct policy_parse *st)
{
	struct lv_policy *p = st->p;
	char err[256];
	unsigned at = 0;
	if (p->warmup.urls[0] &&
	    warmup_list_parse(p->warmup.urls, strlen(p->warmup.urls), false, &p->warmup.list, &at, err,
	                      sizeof(err)) != LV_OK) {
		policy_verr_at(st, warm_key_line(st, "urls"), "[warmup] urls", "URL %u: %s", at, err);
		return;
	}
	if (strcmp(p->warmup.urls_file, "none") == 0)
		return;
	int line = warm_key_line(st, "urls_file");
	FILE *f = fopen(p->warmup.urls_file, "rb");
	if (!f) {
		policy_verr_at(st, line, "[warmup] urls_file", "cannot open %s: %s", p->warmup.urls_file,
		               strerror(errno));
		return;
	}
	char *buf = malloc(LV_WARM_LIST_FILE_MAX + 1);
	size_t n = buf ? fread(buf, 1, LV_WARM_LIST_FILE_MAX + 1, f) : 0;
	bool bad = !buf || ferror(f);
	fclose(f);
	if (bad)
		policy_verr_at(st, line, "[warmup] urls_file", "cannot read %s", p->warmup.urls_file);
	else if (n > LV_WARM_LIST_FILE_MAX)
		policy_verr_at(st, line, "[warmup] urls_file", "%s is larger than 1 MiB", p->warmup.urls_file);
	else if (warmup_list_parse(buf, n, true, &p->warmup.list, &at, err, sizeof(err)) != LV_OK)
		policy_verr_at(st, line, "[warmup] urls_file", "%s:%u: %s", p->warmup.urls_file, at, err);
	free(buf);
}
