/*
 * auth.c - the admin token and the rules around it (see auth.h).
 */
#include "admin/auth.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const auth_verdict_names[AUTH__COUNT] = {"ok", "missing", "wrong", "forbidden"};
static const char *const auth_mode_names[] = {"loopback", "token", "locked", "insecure"};

const char *auth_verdict_name(enum auth_verdict v)
{
	return auth_verdict_names[v];
}

const char *auth_mode_name(enum auth_mode m)
{
	return auth_mode_names[m];
}

int auth_init(struct auth *a, const char *token, bool loopback, bool insecure, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	if (token == NULL || token[0] == '\0') {
		a->mode = loopback ? AUTH_LOOPBACK : insecure ? AUTH_INSECURE : AUTH_LOCKED;
		return LV_OK;
	}
	size_t n = strlen(token);
	if (n < AUTH_TOKEN_MIN || n >= sizeof(a->token)) {
		snprintf(err, errlen, "must be %d to %zu bytes (it is %zu); e.g. openssl rand -hex 32", AUTH_TOKEN_MIN,
		         sizeof(a->token) - 1, n);
		return LV_ERR;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)token[i];
		if (c <= ' ' || c >= 0x7f) {
			snprintf(err, errlen, "must be visible ASCII without blanks (byte %zu is not)", i + 1);
			return LV_ERR;
		}
	}
	a->mode = AUTH_TOKEN;
	a->len = n;
	memcpy(a->token, token, n);
	return LV_OK;
}

bool auth_equal(const char *got, size_t glen, const char *want, size_t wlen)
{
	/* no early exit: every byte of `want` is looked at, whatever `got` is */
	volatile unsigned char diff = glen != wlen;
	for (size_t i = 0; i < wlen; i++)
		diff |= (unsigned char)want[i] ^ (unsigned char)(i < glen ? got[i] : 0);
	return diff == 0;
}

enum auth_verdict auth_check(const struct auth *a, const char *authz, size_t n)
{
	switch (a->mode) {
	case AUTH_LOOPBACK:
	case AUTH_INSECURE:
		return AUTH_OK;
	case AUTH_LOCKED:
		return AUTH_FORBIDDEN;
	case AUTH_TOKEN:
		break;
	}
	/* "Bearer" SP token68 (RFC 6750 §2.1); the scheme is case-insensitive */
	if (authz == NULL || n < 7 || strncasecmp(authz, "Bearer ", 7) != 0)
		return AUTH_MISSING;
	size_t i = 7;
	while (i < n && authz[i] == ' ')
		i++;
	while (n > i && (authz[n - 1] == ' ' || authz[n - 1] == '\t'))
		n--;
	return auth_equal(authz + i, n - i, a->token, a->len) ? AUTH_OK : AUTH_WRONG;
}

bool auth_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family != AF_INET6)
		return false;
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
}
