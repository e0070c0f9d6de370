/*
 * l2_purge.c - the L2 half of a purge (l2_purge.h).
 */
#include "cache/l2_purge.h"

#include <stdlib.h>
#include <string.h>

#include "cache/key.h"
#include "cache/l2.h"
#include "log.h"

size_t cache_url_tag(const char *svc, const char *target, size_t len, char *out, size_t cap)
{
	if (cap < 4)
		return 0;
	size_t kl = key_path_prefix(svc, target, len, out + 2, cap - 3);
	if (!kl)
		return 0;
	memcpy(out, "u:", 2);
	out[2 + kl] = KEY_SEP;
	return kl + 3;
}

struct l2_purge_done {
	cache_purge_cb cb;
	void *arg;
};

static void l2_on_purge(struct l2 *l2, enum l2_err err, long long value, void *arg)
{
	if (err != L2_ENONE)
		log_debug("cache: a purge did not reach Redis (%s)", l2_strerror(err));
	struct l2_purge_done *d = arg;
	if (d) {
		d->cb(d->arg, err == L2_ENONE);
		free(d);
	}
}

size_t cache_l2_purge_tag(enum cache_purge_kind kind, const char *svc, const char *s, size_t len, char *tag,
                          size_t cap)
{
	switch (kind) {
	case CACHE_PURGE_URL:
		return cache_url_tag(svc, s, len, tag, cap);
	case CACHE_PURGE_PREFIX:
		/* only '/'-terminated prefixes are tags of every entry under them */
		if (!len || s[len - 1] != '/')
			return 0;
		return l2_tag_prefix(svc, s, len, tag, cap);
	case CACHE_PURGE_TAG:
		return l2_tag_key(svc, s, len, tag, cap);
	case CACHE_PURGE_ALL:
		return l2_tag_prefix(svc, "/", 1, tag, cap);
	}
	return 0;
}

bool cache_l2_purge(struct l2 *l2, enum cache_purge_kind kind, const char *svc, const char *s, size_t len,
                    cache_purge_cb cb, void *arg)
{
	if (!l2)
		return false;
	char tag[L2_TAG_MAX];
	size_t tl = cache_l2_purge_tag(kind, svc, s, len, tag, sizeof(tag));
	if (!tl)
		return false;
	struct l2_purge_done *d = NULL;
	if (cb && !(d = malloc(sizeof(*d))))
		return false;
	if (d)
		*d = (struct l2_purge_done){cb, arg};
	if (l2_purge_tag(l2, tag, tl, l2_on_purge, d) != LV_OK) {
		log_debug("cache: could not send a purge to Redis");
		free(d);
		return false;
	}
	return d != NULL;
}
