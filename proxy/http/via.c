/*
 * via.c - levee's own name in Via, and the loop check (see via.h).
 */
#include "http/via.h"

#include <stdio.h>
#include <string.h>

void via_pseudonym(char out[VIA_PSEUDONYM_SIZE], uint64_t random)
{
	snprintf(out, VIA_PSEUDONYM_SIZE, "levee-%016llx", (unsigned long long)random);
}

static bool via_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Skips a comment that starts at v[i] == '(' (nested, with quoted-pairs,
 * RFC 9110 §5.6.5); returns the index after it, or n if it never closes. */
static size_t via_skip_comment(const char *v, size_t n, size_t i)
{
	unsigned depth = 0;
	for (; i < n; i++) {
		if (v[i] == '\\' && i + 1 < n)
			i++;
		else if (v[i] == '(')
			depth++;
		else if (v[i] == ')' && --depth == 0)
			return i + 1;
	}
	return n;
}

bool via_value_names(const char *v, size_t n, const char *pseudonym)
{
	size_t plen = strlen(pseudonym);
	size_t i = 0;
	while (i < n) {
		/* one member: OWS protocol RWS received-by [RWS comment] OWS */
		while (i < n && (via_ows(v[i]) || v[i] == ','))
			i++;
		size_t word = 0; /* the member's words so far: 1 protocol, 2 received-by */
		while (i < n && v[i] != ',') {
			if (via_ows(v[i])) {
				i++;
				continue;
			}
			if (v[i] == '(') {
				i = via_skip_comment(v, n, i);
				continue;
			}
			size_t start = i;
			while (i < n && !via_ows(v[i]) && v[i] != ',' && v[i] != '(')
				i++;
			if (++word == 2 && i - start == plen && memcmp(v + start, pseudonym, plen) == 0)
				return true;
		}
	}
	return false;
}

bool via_head_names(const struct lv_head *hd, const char *pseudonym)
{
	for (int i = head_find(hd, LIT("via"), 0); i >= 0; i = head_find(hd, LIT("via"), i + 1))
		if (via_value_names(hd->text + hd->h[i].value, hd->h[i].value_len, pseudonym))
			return true;
	return false;
}
