/*
 * auth.h - who may use the admin endpoints that change state: POST /purge,
 * POST /reload, and any request whose method is not GET or HEAD.
 *
 * The token comes from the environment variable that [levee] admin_token_env
 * names, read once at start: nothing outside a process can change its
 * environment once it runs, so a reload could not bring a new one, and
 * rotating the token is a restart. It is never read from the policy text and
 * never logged. With a token, such a request needs "Authorization: Bearer
 * TOKEN", compared in constant time. Without one, it depends on where the
 * admin listener is bound: on loopback only this host (in Kubernetes, this
 * pod) can reach it, and the endpoints stay open; on any other address they
 * are refused with 403, unless [levee] admin_insecure opts out.
 *
 * No event loop here: the rules are unit-tested (tests/unit/test_auth.c).
 */
#ifndef LEVEE_AUTH_H
#define LEVEE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "policy.h"

/* A shorter token is refused at start: it could be guessed. */
#define AUTH_TOKEN_MIN 16
#define AUTH_TOKEN_MAX 256

enum auth_mode {
	AUTH_LOOPBACK, /* no token, loopback listener: open */
	AUTH_TOKEN,    /* a token is required */
	AUTH_LOCKED,   /* no token, other address: refused */
	AUTH_INSECURE, /* no token, other address, admin_insecure: open */
};

enum auth_verdict {
	AUTH_OK,
	AUTH_MISSING,   /* no Bearer credentials (401) */
	AUTH_WRONG,     /* credentials, but not the token (401) */
	AUTH_FORBIDDEN, /* AUTH_LOCKED: nothing could be right (403) */
	AUTH__COUNT
};

struct auth {
	enum auth_mode mode;
	size_t len;
	char token[AUTH_TOKEN_MAX];
};

/* `token` is the variable's value, NULL when it is unset; an empty value
 * counts as unset. `loopback` says where the admin listener is bound. Fails,
 * with `err` naming the problem but never the value, on a token shorter than
 * AUTH_TOKEN_MIN, longer than AUTH_TOKEN_MAX - 1, or with bytes other than
 * visible ASCII (it travels in a header field). */
int auth_init(struct auth *a, const char *token, bool loopback, bool insecure, char *err,
              size_t errlen) LV_WARN_UNUSED;

/* `authz` is the request's Authorization value (`n` bytes), NULL when the
 * request has none. */
enum auth_verdict auth_check(const struct auth *a, const char *authz, size_t n);

/* Whether `got` is `want`, in a time that depends on `wlen` only. */
bool auth_equal(const char *got, size_t glen, const char *want, size_t wlen);

/* Whether a socket address is a loopback one (127/8, ::1, ::ffff:127/104). */
bool auth_loopback(const struct sockaddr *sa);

/* "missing", "wrong", "forbidden": metric labels. */
const char *auth_verdict_name(enum auth_verdict v);
/* "loopback", "token", "locked", "insecure": for /status. */
const char *auth_mode_name(enum auth_mode m);

#endif
