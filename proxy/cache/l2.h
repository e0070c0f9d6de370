/*
 * l2.h - the Redis cache tier (L2): shared entries, fill leases and
 * generational tags, as asynchronous operations over struct redis.
 *
 * Redis key contract (persistent: levee versions share L2 during a rollout).
 * <key> is a cache key from key_build() (it starts with the service), taken
 * as opaque bytes; <tag> is a tag built by the l2_tag_*() helpers below.
 *
 *   levee:{<key>}:e    the entry: an envelope (below), SET with PX ttl
 *   levee:{<key>}:l    the fill lease: a random token, SET NX PX lease_ttl
 *   levee:{<key>}:l    or the hit-for-miss marker L2_PASS_MARK, SET PX
 *                      uncacheable_ttl: the key's last answer was not
 *                      storable, so nobody waits for a fill of it
 *   levee:g:{<tag>}    a tag's generation: a random decimal below 2^63,
 *                      created by the first fill that needs it, deleted by a
 *                      purge. Absent is never current. Its TTL is at least
 *                      that of every entry naming it.
 *
 * Tags (the l2_tag_* helpers; S = service, US = 0x1f):
 *   "u:" <service US target US host>  the URL identity: the first three
 *        fields of the key, so it covers every Vary and cache_key_headers
 *        variant of one URL;
 *   "p:" S US <prefix>   one per '/'-terminated prefix of the path
 *        (l2_prefix_lens()), so a purge of "/api/users/" is one tag purge;
 *   "k:" S US <name>     a Surrogate-Key or a route's declared tag.
 *
 * Envelope v1, the value of an entry key (built by the commit script):
 *   "LVE1" u8 n, then n x (u16be len, generation key name, u8 len, generation
 *   as decimal), then the record bytes (record.h), untouched, to the end.
 *
 * Generations instead of scans. A lookup returns the record only if every
 * generation stored in its envelope still exists and equals the current one;
 * a purge is one DEL of a generation (O(1): no SCAN, no DEL of entries it
 * cannot list). A purge is a DEL because Redis takes a DEL when it refuses
 * writes for memory (maxmemory with noeviction): a purge then still lands,
 * while new entries do not. A dead entry is deleted by the lookup that finds
 * it, or by its own TTL.
 *
 * Why the fill/purge race is closed. fill_begin reads the generations of the
 * entry's tags atomically with taking the lease (one script). Every
 * invalidation of that entry bumps at least one of those generations. The
 * commit script, atomic in Redis, stores the entry only if the lease still
 * holds our token and every generation still equals the value read at
 * begin; so a purge that lands anywhere between begin and commit makes the
 * commit refuse (L2_COMMIT_PURGED), and a purge after the commit makes every
 * later lookup miss. Purges need not touch leases.
 *
 * Limits and requirements:
 *  - Tags known at fill_begin are checked at commit. Late tags (learnt from
 *    the response, e.g. Surrogate-Key) may follow them in the commit's tag
 *    list: they are stored with their generation at commit time, so a purge
 *    of one applies from the commit on; a purge that lands between the
 *    origin's answer and the commit is not seen for that tag.
 *  - Any maxmemory-policy is safe: an evicted or expired generation only
 *    makes the entries naming it miss, and a new one never takes an old
 *    value. Their number follows the tags of live entries.
 *  - During a rollout from a levee that INCRs generations and reads absent
 *    ones as "0": its purges still move the new generations, but its lookups
 *    may serve an entry it stored at "0" after a new levee's purge deleted
 *    that generation, until the entry's TTL.
 *  - Redis Cluster: entry and lease share the hash tag {<key>}, so begin,
 *    commit and abort stay in one slot per key. Generation keys live in other
 *    slots; the scripts declare them in KEYS where they are known (begin,
 *    commit), but lookup reads them from the envelope. Under Cluster the
 *    generations must be read with separate per-slot commands (GET entry,
 *    MGET gens per slot, compare here) and commit must re-check them the
 *    same way, or be replicated per slot. Today: one primary, or Sentinel.
 *
 * Callbacks: every operation that returned LV_OK calls its callback exactly
 * once, on the worker's event loop, never inside the call that started it.
 * Borrowed pointers in a callback are valid only until it returns.
 * Thread: that of the struct redis.
 */
#ifndef LEVEE_CACHE_L2_H
#define LEVEE_CACHE_L2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis.h"

#define L2_MAX_TAGS 32u
#define L2_TAG_MAX 1024u           /* bytes of one tag */
#define L2_KEY_MAX 32768u          /* bytes of one cache key */
#define L2_RECORD_MAX (256u << 20) /* bytes of one record */
#define L2_TOKEN_MAX 40u           /* bytes of a lease token */
/* The hit-for-miss marker, in place of a lease (tokens always hold a '.'). */
#define L2_PASS_MARK "hfm"

struct l2;

/* A byte string: not terminated, may hold NUL. */
struct l2_str {
	const char *p;
	size_t len;
};

enum l2_err {
	L2_ENONE = 0,
	L2_EREDIS,  /* no usable reply: timeout, down, busy, lost connection */
	L2_EPROTO,  /* a reply that breaks the contract (a script error...) */
	L2_ECLOSED, /* l2_free() or redis_free() was called */
};

const char *l2_strerror(enum l2_err err);

enum l2_lookup_res {
	L2_MISS,  /* no entry */
	L2_STALE, /* an entry whose generations moved on (now deleted) */
	L2_HIT,
	L2_PASS, /* no entry, and the hit-for-miss marker: go upstream, don't wait */
};

enum l2_commit_res {
	L2_COMMIT_STORED,
	L2_COMMIT_LEASE_LOST, /* our lease expired or is another's: not stored */
	L2_COMMIT_PURGED,     /* a tag was purged during the fill: not stored */
};

/* The outcome of fill_begin. When won, pass it unchanged to commit or abort.
 * When not, token is the holder's (for logs) and the caller polls lookup. */
struct l2_lease {
	bool won;
	bool pass; /* not won, and the holder is the hit-for-miss marker */
	char token[L2_TOKEN_MAX + 1];
	size_t token_len;
	unsigned ngens;
	uint64_t gens[L2_MAX_TAGS]; /* in the order of the tags given to begin */
};

/* In every callback, res/value mean something only when err == L2_ENONE.
 * On L2_HIT, rec/len is the stored record; otherwise NULL/0. */
typedef void (*l2_lookup_cb)(struct l2 *l2, enum l2_err err, enum l2_lookup_res res,
                             const char *rec, size_t len, void *arg);
/* lease is NULL exactly when err != L2_ENONE. */
typedef void (*l2_begin_cb)(struct l2 *l2, enum l2_err err, const struct l2_lease *lease,
                            void *arg);
typedef void (*l2_commit_cb)(struct l2 *l2, enum l2_err err, enum l2_commit_res res, void *arg);
/* abort: value 1 when our lease was released, 0 when it was not ours any
 * more. purge: the tag's new generation. */
typedef void (*l2_int_cb)(struct l2 *l2, enum l2_err err, long long value, void *arg);

/* <r> is borrowed and must outlive the l2 or be freed after it. Starts
 * loading the scripts when Redis is available. NULL when out of memory. */
struct l2 *l2_new(struct redis *r) LV_WARN_UNUSED;

/* Calls every pending callback with L2_ECLOSED (they must not call into
 * this l2), then frees. Safe inside an l2 callback. */
void l2_free(struct l2 *l2);

/* Every operation returns LV_OK when its callback will run, LV_ERR (bad
 * arguments, a bound exceeded, out of memory, l2 closing) when it will not. */
int l2_lookup(struct l2 *l2, const char *key, size_t keylen, l2_lookup_cb cb,
              void *arg) LV_WARN_UNUSED;

/* Takes the lease for <key> for lease_ttl_ms if nobody holds it, and reads
 * the generations of <tags> (at most L2_MAX_TAGS) in the same atomic step. */
/* The same lookup without a script: one MGET of the entry and of the
 * generations of `tags` (the tags the caller knows the entry has), compared
 * in levee. Cheaper for Redis; an entry with tags beyond `tags` (late tags)
 * is looked up again with the script. Stale entries are left to their TTL. */
int l2_lookup_tags(struct l2 *l2, const char *key, size_t keylen, const struct l2_str *tags, unsigned ntags,
                   l2_lookup_cb cb, void *arg) LV_WARN_UNUSED;
int l2_fill_begin(struct l2 *l2, const char *key, size_t keylen, const struct l2_str *tags,
                  unsigned ntags, uint64_t lease_ttl_ms, l2_begin_cb cb, void *arg) LV_WARN_UNUSED;

/* Stores <rec> for ttl_ms if <lease> (won) still holds and no tag was
 * purged since begin. <tags> must be the ones given to begin, in order. */
int l2_fill_commit(struct l2 *l2, const char *key, size_t keylen, const struct l2_lease *lease,
                   const struct l2_str *tags, unsigned ntags, const char *rec, size_t reclen,
                   uint64_t ttl_ms, l2_commit_cb cb, void *arg) LV_WARN_UNUSED;

/* Releases the lease if it is still ours (compare-and-delete). */
int l2_fill_abort(struct l2 *l2, const char *key, size_t keylen, const struct l2_lease *lease,
                  l2_int_cb cb, void *arg) LV_WARN_UNUSED;

/* Deletes the generation of one tag: every entry carrying it dies, and every
 * fill that read it refuses to commit. value: 1 when a generation existed. */
int l2_purge_tag(struct l2 *l2, const char *tag, size_t taglen, l2_int_cb cb,
                 void *arg) LV_WARN_UNUSED;

/* Hit-for-miss: the key's answer could not be stored. Puts the marker in
 * place of <lease> (when won; else only where no replica holds a lease) for
 * ttl_ms, so that other replicas' misses go upstream at once instead of
 * waiting for a fill that will store nothing. value: 1 when it was set. */
int l2_fill_pass(struct l2 *l2, const char *key, size_t keylen, const struct l2_lease *lease, uint64_t ttl_ms,
                 l2_int_cb cb, void *arg) LV_WARN_UNUSED;
/* Removes the marker (the key's answers can be stored again). */
int l2_pass_clear(struct l2 *l2, const char *key, size_t keylen, l2_int_cb cb, void *arg) LV_WARN_UNUSED;

/* Tag builders: write the tag into out and return its length, or 0 when it
 * does not fit in min(cap, L2_TAG_MAX) or the input is malformed. */
size_t l2_tag_url(const char *key, size_t keylen, char *out, size_t cap);
size_t l2_tag_prefix(const char *service, const char *prefix, size_t plen, char *out, size_t cap);
size_t l2_tag_key(const char *service, const char *name, size_t nlen, char *out, size_t cap);

/* The lengths of the '/'-terminated prefixes of <path> (its query, if any,
 * ignored), shortest first, at most max of them; returns how many. For
 * "/api/users/7": 1 ("/"), 5 ("/api/"), 11 ("/api/users/"). */
unsigned l2_prefix_lens(const char *path, size_t plen, size_t *lens, unsigned max);

#endif
