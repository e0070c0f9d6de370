/*
 * policy_internal.h - what the files of policy/ share with each other and
 * with their unit tests, and nobody else.
 *
 * The key table (keys.c) is the single description of every policy key:
 * parsing, defaults, bounds, documentation and the reload flag all come from
 * it. policy.c drives inih and reports errors; it knows no key by name except
 * for the few cross-key checks.
 */
#ifndef LEVEE_POLICY_INTERNAL_H
#define LEVEE_POLICY_INTERNAL_H

#include "policy.h"

/* Longest line a policy file may have, without its line terminator. inih (as
 * Debian builds it) reads into a 200-byte buffer including the NUL. */
#define POLICY_LINE_MAX 199

/* Longest value after ${VAR} expansion, NUL included. */
#define POLICY_VALUE_MAX LV_PATH_MAX

/* Room for one formatted reason, e.g. "must be between 1KiB and 1MiB". */
#define KEYS_ERR_MAX 256

enum keys_type {
	KT_NAME,     /* 1-63 of [A-Za-z0-9_.-], into char[] */
	KT_HOSTPORT, /* struct lv_hostport; `words` may name a word meaning "not set" ("none") */
	KT_DURATION, /* uint64_t milliseconds */
	KT_SIZE,     /* uint64_t bytes */
	KT_UINT,     /* uint64_t; `words` may name a word meaning 0 ("auto") */
	KT_BOOL,     /* bool */
	KT_PERCENT,  /* double, 0-100 */
	KT_ENUM,     /* int: index of the value in `words` ("a|b|c") */
	KT_PATH,     /* char[]: an absolute path or one of `words` */
	KT_METHODS,  /* unsigned LV_M_* mask */
	KT_GLOB,     /* struct lv_route pattern, kind = LV_MATCH_GLOB */
	KT_PREFIX,   /* struct lv_route pattern, kind = LV_MATCH_PREFIX */
	KT_TTL,      /* uint64_t ms, or LV_TTL_OFF ("off") / LV_TTL_ORIGIN ("origin") */
	KT_STATUSES, /* struct lv_statuses: comma-separated HTTP statuses 100-599 */
	KT_HEADERS,  /* char[]: comma-separated header names, stored lowercase "a,b"; `words` may
	                name a word meaning the empty list ("none") */
	KT_TAGS,     /* char[]: comma-separated cache tags, may hold {1}..{9}, stored "a,b" */
	KT_HOSTPORTS,/* char[]: comma-separated host:port list, stored "h:p,h:p" */
	KT_TOPIC,    /* char[]: a Kafka topic name, 1-249 of [A-Za-z0-9._-] */
	KT_INVALIDATIONS, /* char[]: "/path{N}", "/prefix*" or "tag:name{N}", stored "a,b" */
	KT_TEXT,     /* char[]: printable ASCII without blanks (a user name, a password); may be "" */
	KT_WINDOW,   /* struct lv_window: a duration, or "N calls" */
	KT_STATUS_SET, /* struct lv_status_set: statuses, ranges (502-599) and classes (5xx), comma-separated */
	KT_FLAGS,    /* unsigned: a comma-separated subset of `words` (bit i = word i), or "none" */
	KT_CHAIN,    /* struct lv_fallback_chain: distinct `words` in the order given, or "none" */
	KT_FIELDS,   /* struct lv_alog_fields: distinct `words` in the order given, at least one */
	KT_LINE,     /* char[]: one line of printable text, blanks included; may be "" */
	KT_SHED,     /* struct lv_shed: "optional, normal 30%" (whole priorities, or a share), or "none" */
	KT_COHORT,   /* struct lv_cohort_key: "address", "header:NAME" or "cookie:NAME" */
	KT_SECRET,   /* char[]: as KT_TEXT, but secret: `levee check --print` masks it (policy/walk.c),
	                and LV_SECRET_MASK itself is refused */
};

/* A section of the policy file. A named section ([route "users"]) may appear
 * many times and each instance becomes one element of an array inside
 * struct lv_policy; the other sections appear at most once and their keys
 * live directly in struct lv_policy. */
struct keys_section {
	const char *name;
	bool named;
	const char *doc;
	/* named sections only: the element type and where the array lives */
	size_t elem_size;
	size_t array_off; /* T * in struct lv_policy */
	size_t count_off; /* size_t in struct lv_policy */
	size_t max;       /* most instances allowed */
	size_t name_off;  /* char[LV_NAME_MAX] in the element */
	size_t line_off;  /* int in the element: line of its header */
};

struct keys_def {
	const char *section;
	const char *name;
	enum keys_type type;
	size_t off;  /* into struct lv_policy, or into the element of a named section */
	size_t size; /* of the field, checked against the type */
	const char *def; /* default, in policy syntax; NULL: none (the key is required or optional) */
	const char *min, *max; /* bounds, in policy syntax; NULL: none */
	const char *words;     /* see enum keys_type */
	const char *unit;      /* for the documentation */
	bool reload;           /* may change on reload */
	int one_of;            /* keys sharing a nonzero group: exactly one per section */
	const char *doc;
};

/* ---- keys.c ------------------------------------------------------------ */

const struct keys_def *keys_table(size_t *n);
const struct keys_section *keys_sections(size_t *n);
const struct keys_section *keys_section_find(const char *name);
const struct keys_def *keys_find(const char *section, const char *name);

/* Closest known section (or key of `section`) within edit distance 2 of
 * `name`, for "did you mean" hints; NULL when none is close. */
/* "a|b|c" as "a" SEP "b" SEP "c", for messages and documentation. */
void keys_words_list(const char *words, const char *sep, char *buf, size_t sz);
const char *keys_suggest_section(const char *name);
const char *keys_suggest_key(const char *section, const char *name);

/* Parses `text` as the value of `k` and stores it at `base` + k->off. On
 * error leaves the field unchanged and writes the reason into `err`. */
int keys_set(const struct keys_def *k, void *base, const char *text, char *err,
             size_t errsz) LV_WARN_UNUSED;

/* Stores the default of every key of `section` that has one. Fails only if
 * the table itself is wrong (the unit tests make sure it is not). */
int keys_defaults(const struct keys_section *s, void *base, char *err, size_t errsz) LV_WARN_UNUSED;

bool keys_equal(const struct keys_def *k, const void *a, const void *b);

/* Keeps `cand` in *best when it is within edit distance 2 of `name` and
 * closer than *bestd (start with *best = NULL, *bestd = SIZE_MAX). */
void keys_suggest_consider(const char *name, const char *cand, const char **best, size_t *bestd);

/* ---- keys_lists.c ------------------------------------------------------ */

/* The index of `s` among `words` ("a|b|c"), or -1 (keys.c). */
int keys_word(const char *words, const char *s);
/* The list-valued types of keys_set(): each LV_OK, or LV_ERR with the
 * reason in `err`. */
int keys_statuses(const char *text, struct lv_statuses *out, char *err, size_t errsz);
int keys_status_set(const char *text, struct lv_status_set *out, char *err, size_t errsz);
int keys_flags(const char *words, const char *text, unsigned *out, char *err, size_t errsz);
int keys_chain(const char *words, const char *text, struct lv_fallback_chain *out, char *err, size_t errsz);
int keys_fields(const char *words, const char *text, struct lv_alog_fields *out, char *err, size_t errsz);
int keys_shed(const char *text, struct lv_shed *out, char *err, size_t errsz);
int keys_cohort(const char *text, struct lv_cohort_key *out, char *err, size_t errsz);

/* ---- tiers_check.c ----------------------------------------------------- */

/* An error found by tiers_check(): at `line` and `col` of the file (0:
 * unknown), about `what` ("[tier \"a\"] enter"; NULL: the whole file). */
typedef void (*tiers_check_err)(void *arg, int line, int col, const char *what, const char *message);
/* Parses every tier's enter and exit against p's signals and derives what
 * each level does (p->signals, p->tier_levels); `text` up to `end` is the
 * file, for the columns of errors (NULL: none). */
void tiers_check(struct lv_policy *p, const char *text, const char *end, tiers_check_err err, void *arg);

/* ---- value.c ----------------------------------------------------------- */

/* Listening addresses: any address of the machine ("0.0.0.0", "::"), a
 * loopback one, and whether two would take the same port. */
bool value_host_wildcard(const char *host);
bool value_host_loopback(const char *host);
bool value_hostport_overlap(const struct lv_hostport *a, const struct lv_hostport *b);

/* What a number of an expression (policy/expr.c) measures, from its unit. */
enum value_qty {
	VQ_NUMBER,   /* no unit: "12", "0.5" */
	VQ_DURATION, /* ns, us, ms, s, m, h: in milliseconds, "1us" = 0.001 */
	VQ_SIZE,     /* B, KiB..TiB, KB..TB: in bytes */
	VQ_PERCENT,  /* "80%" = 80.0, at most 100 */
};

/* Parses a whole number token of an expression, its unit included: the
 * kind comes from the unit, the value is in that kind's base (above). Whole
 * numbers only, except for a bare number and a percentage ("0.5", "12.5%"),
 * as everywhere in the policy. */
int value_quantity(const char *s, enum value_qty *kind, double *out, const char **why) LV_WARN_UNUSED;

/* ---- route.c ----------------------------------------------------------- */

/* True when every path that <b>'s pattern matches, <a>'s matches too
 * (methods aside). Only sure answers: false may also mean "cannot tell". */
bool route_covers(const struct lv_route *a, const struct lv_route *b);

/* The first byte of the route's pattern that no request path can carry
 * (strict HTTP parsing refuses bytes above 0x7f in a request target), or -1. */
int route_unmatchable_byte(const struct lv_route *r);

/* ---- route_index.c ----------------------------------------------------- */

/* The index of a snapshot's routes (struct lv_policy): read-only once built,
 * and valid while `routes` is, whose patterns it points into. */
int route_index_build(const struct lv_route *routes, size_t n, struct route_index **out) LV_WARN_UNUSED;
void route_index_free(struct route_index *ix);

/* What a scan of the routes in order with route_matches() would return,
 * captures included; `caps` is left alone when no route matches. */
const struct lv_route *route_index_match(const struct route_index *ix, const char *path, size_t len,
                                         unsigned method_bit, struct lv_captures *caps);

#endif
