/*
 * l2.c - the Redis cache tier's protocol: see l2.h for the key contract.
 *
 * Every multi-key step is one Lua script, run with EVALSHA. The SHA of each
 * script comes from SCRIPT LOAD, sent when Redis is available and no SHA is
 * known yet; until then, and whenever Redis answers NOSCRIPT (a restart, a
 * failover, SCRIPT FLUSH), the command is sent again as EVAL, which also
 * caches the script on the server. An operation therefore keeps its own
 * copy of its arguments until its reply.
 */
#include "l2.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "key.h"

/* ---- scripts ------------------------------------------------------------ */

/* Lookup. KEYS[1] = entry. Returns the record (bulk) when every generation
 * stored in the envelope is current; 0 when there is no entry; 1 when the
 * entry is dead or malformed, after deleting it. An absent generation is
 * never current (a purge deletes it). The generation keys come from the
 * envelope (see the Cluster note in l2.h). */
static const char LUA_LOOKUP[] = "local v = redis.call('GET', KEYS[1])\n"
                                 "if not v then return 0 end\n"
                                 "local len = #v\n"
                                 "if len < 5 or string.sub(v, 1, 4) ~= 'LVE1' then\n"
                                 "  redis.call('DEL', KEYS[1]) return 1\n"
                                 "end\n"
                                 "local n = string.byte(v, 5)\n"
                                 "local p = 6\n"
                                 "for i = 1, n do\n"
                                 "  if p + 1 > len then redis.call('DEL', KEYS[1]) return 1 end\n"
                                 "  local kl = string.byte(v, p) * 256 + string.byte(v, p + 1)\n"
                                 "  local k = string.sub(v, p + 2, p + 1 + kl)\n"
                                 "  p = p + 2 + kl\n"
                                 "  if p > len then redis.call('DEL', KEYS[1]) return 1 end\n"
                                 "  local gl = string.byte(v, p)\n"
                                 "  local g = string.sub(v, p + 1, p + gl)\n"
                                 "  p = p + 1 + gl\n"
                                 "  if p - 1 > len or redis.call('GET', k) ~= g then\n"
                                 "    redis.call('DEL', KEYS[1]) return 1\n"
                                 "  end\n"
                                 "end\n"
                                 "return string.sub(v, p)\n";

/* Fill begin. KEYS[1] = lease, KEYS[2..] = generation keys; ARGV[1] = our
 * token, ARGV[2] = lease TTL in ms, ARGV[3..] = a fresh generation for each
 * generation key. Returns {won (1|0), holder's token, generation of each
 * tag}: the lease and the generations are taken in one atomic step. A winner
 * creates the generations that are absent, with its fresh values and the
 * lease's TTL (the commit extends them to the entry's); a loser reads absent
 * ones as "0", which it never uses. */
static const char LUA_BEGIN[] =
        "local out = {}\n"
        "local won = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])\n"
        "if won then\n"
        "  out[1] = 1 out[2] = ARGV[1]\n"
        "else\n"
        "  out[1] = 0 out[2] = redis.call('GET', KEYS[1]) or ''\n"
        "end\n"
        "for i = 2, #KEYS do\n"
        "  local g = redis.call('GET', KEYS[i])\n"
        "  if not g and won then\n"
        "    g = ARGV[1 + i]\n"
        "    redis.call('SET', KEYS[i], g, 'PX', ARGV[2])\n"
        "  end\n"
        "  out[#out + 1] = g or '0'\n"
        "end\n"
        "return out\n";

/* Fill commit. KEYS[1] = entry, KEYS[2] = lease, KEYS[3..] = generation
 * keys: first the m tags given to begin, then late tags (learnt from the
 * response); ARGV[1] = token, ARGV[2] = entry TTL in ms, ARGV[3] = record,
 * ARGV[4] = m, ARGV[5..4+m] = the generations read at begin, then a fresh
 * generation for each late tag. Returns 1 stored; 0 the lease is not ours
 * (nothing touched); -1 a begin tag's generation moved or is gone (our lease
 * released, nothing stored). This check is what closes the fill/purge race.
 * Late tags are stored with their current generation (created when absent),
 * so purges of them apply from the commit on. Every generation the entry
 * names lives at least as long as the entry. */
static const char LUA_COMMIT[] =
        "if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end\n"
        "local n = #KEYS - 2\n"
        "local m = tonumber(ARGV[4])\n"
        "local ttl = tonumber(ARGV[2])\n"
        "local gens = {}\n"
        "for i = 1, n do\n"
        "  local k = KEYS[2 + i]\n"
        "  local cur = redis.call('GET', k)\n"
        "  if i <= m then\n"
        "    if cur ~= ARGV[4 + i] then redis.call('DEL', KEYS[2]) return -1 end\n"
        "  elseif not cur then\n"
        "    cur = ARGV[4 + i]\n"
        "    redis.call('SET', k, cur, 'PX', ttl)\n"
        "  end\n"
        "  local t = redis.call('PTTL', k)\n"
        "  if t >= 0 and t < ttl then redis.call('PEXPIRE', k, ttl) end\n"
        "  gens[i] = cur\n"
        "end\n"
        "local parts = {'LVE1', string.char(n)}\n"
        "for i = 1, n do\n"
        "  local k, g = KEYS[2 + i], gens[i]\n"
        "  parts[#parts + 1] = string.char(math.floor(#k / 256), #k % 256)\n"
        "  parts[#parts + 1] = k\n"
        "  parts[#parts + 1] = string.char(#g)\n"
        "  parts[#parts + 1] = g\n"
        "end\n"
        "parts[#parts + 1] = ARGV[3]\n"
        "redis.call('SET', KEYS[1], table.concat(parts), 'PX', ARGV[2])\n"
        "redis.call('DEL', KEYS[2])\n"
        "return 1\n";

/* Fill abort. KEYS[1] = lease; ARGV[1] = token. Compare-and-delete: 1 when
 * our lease was released, 0 when it was not ours. */
static const char LUA_ABORT[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                "  return redis.call('DEL', KEYS[1])\n"
                                "end\n"
                                "return 0\n";

/* Hit-for-miss. KEYS[1] = lease; ARGV[1] = our token ("" without a lease),
 * ARGV[2] = TTL in ms. Puts the marker in place of our lease, of no lease or
 * of an older marker, never in place of another replica's lease: 1 when it
 * was set. */
static const char LUA_PASS[] = "local v = redis.call('GET', KEYS[1])\n"
                               "if not v or v == ARGV[1] or v == '" L2_PASS_MARK "' then\n"
                               "  redis.call('SET', KEYS[1], '" L2_PASS_MARK "', 'PX', ARGV[2]) return 1\n"
                               "end\n"
                               "return 0\n";

enum { S_LOOKUP, S_BEGIN, S_COMMIT, S_ABORT, S_PASS, S_COUNT };

static const char *const script_body[S_COUNT] = {LUA_LOOKUP, LUA_BEGIN, LUA_COMMIT, LUA_ABORT, LUA_PASS};

/* ---- state -------------------------------------------------------------- */

enum op_kind { OP_LOAD, OP_LOOKUP, OP_MLOOKUP, OP_BEGIN, OP_COMMIT, OP_ABORT, OP_PURGE, OP_PASS };

struct l2_op {
	struct l2 *l2; /* NULL once detached by l2_free(): the reply only frees */
	struct l2_op *prev, *next;
	enum op_kind kind;
	int script; /* S_*, or -1 for a plain command */
	bool sent_sha;
	union {
		l2_lookup_cb lookup;
		l2_begin_cb begin;
		l2_commit_cb commit;
		l2_int_cb integer;
	} cb;
	void *arg;
	struct l2_lease lease; /* OP_BEGIN: our token and the tag count */
	int argc, cap;
	const char **argv; /* for scripts, argv[0..1] are "EVAL[SHA]", body or SHA */
	size_t *argvlen;
	char *cur, *end; /* where the next argument's bytes go; the buffer's end */
	char data[];     /* argv, argvlen, then the argument bytes */
};

struct l2_script {
	char sha[41];
	bool loading;
};

struct l2 {
	struct redis *r;
	struct l2_op *ops; /* outstanding, including SCRIPT LOADs */
	struct l2_script scripts[S_COUNT];
	bool closing;
	char seed[17]; /* hex; a token is seed "." counter */
	uint64_t seedv;
	uint64_t counter;
};

const char *l2_strerror(enum l2_err err)
{
	switch (err) {
	case L2_ENONE:
		return "ok";
	case L2_EREDIS:
		return "redis unavailable";
	case L2_EPROTO:
		return "unexpected reply";
	case L2_ECLOSED:
		return "closed";
	}
	return "unknown";
}

/* ---- ops ---------------------------------------------------------------- */

/* Allocates an op with room for argc arguments totalling <bytes>. */
static struct l2_op *op_new(struct l2 *l2, enum op_kind kind, int script, int argc, size_t bytes)
{
	size_t head = sizeof(struct l2_op) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
	if (bytes > SIZE_MAX - head)
		return NULL;
	struct l2_op *op = calloc(1, head + bytes);
	if (!op)
		return NULL;
	op->l2 = l2;
	op->kind = kind;
	op->script = script;
	op->cap = argc;
	op->argv = (const char **)(void *)op->data;
	op->argvlen = (size_t *)(void *)(op->data + (size_t)argc * sizeof(char *));
	op->cur = op->data + (size_t)argc * (sizeof(char *) + sizeof(size_t));
	op->end = op->cur + bytes;
	return op;
}

/* Reserves the next argument, <len> bytes at the cursor, and returns where
 * to write them. op_new sized the buffer for every argument. */
static char *op_reserve(struct l2_op *op, size_t len)
{
	assert(op->argc < op->cap && len <= (size_t)(op->end - op->cur));
	char *dst = op->cur;
	op->argv[op->argc] = dst;
	op->argvlen[op->argc] = len;
	op->argc++;
	op->cur += len;
	return dst;
}

static void op_arg(struct l2_op *op, const void *p, size_t len)
{
	char *dst = op_reserve(op, len);
	if (len)
		memcpy(dst, p, len);
}

/* Reserves the two script slots (filled at send time). */
static void op_script_slots(struct l2_op *op)
{
	op->argv[0] = NULL;
	op->argv[1] = NULL;
	op->argvlen[0] = op->argvlen[1] = 0;
	op->argc = 2;
}

static void op_link(struct l2 *l2, struct l2_op *op)
{
	op->prev = NULL;
	op->next = l2->ops;
	if (l2->ops)
		l2->ops->prev = op;
	l2->ops = op;
}

static void op_unlink(struct l2 *l2, struct l2_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		l2->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->prev = op->next = NULL;
}

static void on_reply(struct redis *r, const redisReply *reply, enum redis_err err, void *arg);

static void script_load(struct l2 *l2, int s)
{
	struct l2_script *sc = &l2->scripts[s];
	if (sc->sha[0] || sc->loading || l2->closing || !redis_available(l2->r))
		return;
	size_t blen = strlen(script_body[s]);
	struct l2_op *op = op_new(l2, OP_LOAD, s, 3, 6 + 4 + blen);
	if (!op)
		return;
	op_arg(op, "SCRIPT", 6);
	op_arg(op, "LOAD", 4);
	op_arg(op, script_body[s], blen);
	if (redis_command(l2->r, on_reply, op, op->argc, op->argv, op->argvlen) != LV_OK) {
		free(op);
		return;
	}
	sc->loading = true;
	op_link(l2, op);
}

/* Sends op: scripts as EVALSHA when the SHA is known, else as EVAL. */
static int op_send(struct l2 *l2, struct l2_op *op, bool force_eval)
{
	if (op->script >= 0) {
		struct l2_script *sc = &l2->scripts[op->script];
		op->sent_sha = sc->sha[0] && !force_eval;
		if (op->sent_sha) {
			op->argv[0] = "EVALSHA";
			op->argvlen[0] = 7;
			op->argv[1] = sc->sha;
			op->argvlen[1] = 40;
		} else {
			op->argv[0] = "EVAL";
			op->argvlen[0] = 4;
			op->argv[1] = script_body[op->script];
			op->argvlen[1] = strlen(script_body[op->script]);
			script_load(l2, op->script);
		}
	}
	return redis_command(l2->r, on_reply, op, op->argc, op->argv, op->argvlen);
}

static int op_start(struct l2 *l2, struct l2_op *op)
{
	if (op_send(l2, op, false) != LV_OK) {
		free(op);
		return LV_ERR;
	}
	op_link(l2, op);
	return LV_OK;
}

/* Calls op's callback with an error and no result. */
static void op_fail(struct l2 *l2, struct l2_op *op, enum l2_err e)
{
	switch (op->kind) {
	case OP_LOAD:
		break;
	case OP_LOOKUP:
	case OP_MLOOKUP:
		op->cb.lookup(l2, e, L2_MISS, NULL, 0, op->arg);
		break;
	case OP_BEGIN:
		op->cb.begin(l2, e, NULL, op->arg);
		break;
	case OP_COMMIT:
		op->cb.commit(l2, e, L2_COMMIT_LEASE_LOST, op->arg);
		break;
	case OP_ABORT:
	case OP_PURGE:
	case OP_PASS:
		op->cb.integer(l2, e, 0, op->arg);
		break;
	}
}

/* Strict decimal u64. */
static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
	if (len == 0 || len > 20)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static bool is_bulk(const redisReply *x)
{
	return x->type == REDIS_REPLY_STRING;
}

/* OP_MLOOKUP: `MGET entry lease gen...` answered. The envelope's
 * generations are compared here with the ones the same MGET read (one
 * command: one snapshot); an absent one is never current. An envelope naming
 * a tag this request could not name (a late tag, from Surrogate-Key) goes to
 * the script lookup instead. No entry and the hit-for-miss marker in the
 * lease is L2_PASS. */
static void mlookup_deliver(struct l2 *l2, struct l2_op *op, const redisReply *rep)
{
	unsigned ntags = (unsigned)op->argc - 3;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 + (size_t)ntags) {
		op_fail(l2, op, L2_EPROTO);
		return;
	}
	const redisReply *e = rep->element[0];
	if (e->type == REDIS_REPLY_NIL) {
		const redisReply *ls = rep->element[1];
		bool pass = is_bulk(ls) && ls->len == sizeof(L2_PASS_MARK) - 1 && memcmp(ls->str, L2_PASS_MARK, ls->len) == 0;
		op->cb.lookup(l2, L2_ENONE, pass ? L2_PASS : L2_MISS, NULL, 0, op->arg);
		return;
	}
	if (!is_bulk(e)) {
		op_fail(l2, op, L2_EPROTO);
		return;
	}
	const unsigned char *v = (const unsigned char *)e->str;
	size_t len = e->len, p = 5;
	bool ok = len >= 5 && memcmp(v, "LVE1", 4) == 0, late = false;
	unsigned n = ok ? v[4] : 0;
	for (unsigned i = 0; ok && i < n; i++) {
		if (p + 2 > len) {
			ok = false;
			break;
		}
		size_t kl = (size_t)v[p] << 8 | v[p + 1];
		const unsigned char *k = v + p + 2;
		p += 2 + kl;
		if (p + 1 > len || p + 1 + v[p] > len) {
			ok = false;
			break;
		}
		size_t gl = v[p];
		const unsigned char *g = v + p + 1;
		p += 1 + gl;
		unsigned j = 0;
		while (j < ntags && !(op->argvlen[3 + j] == kl && memcmp(op->argv[3 + j], k, kl) == 0))
			j++;
		if (j == ntags) {
			late = true;
			continue;
		}
		const redisReply *cur = rep->element[2 + j];
		if (!is_bulk(cur) || cur->len != gl || memcmp(cur->str, g, gl) != 0)
			ok = false; /* a purge moved or deleted this generation */
	}
	if (!ok) {
		op->cb.lookup(l2, L2_ENONE, L2_STALE, NULL, 0, op->arg);
		return;
	}
	if (late) {
		/* "levee:{<key>}:e" -> <key> */
		if (l2_lookup(l2, op->argv[1] + 7, op->argvlen[1] - 10, op->cb.lookup, op->arg) != LV_OK)
			op->cb.lookup(l2, L2_EREDIS, L2_MISS, NULL, 0, op->arg);
		return;
	}
	op->cb.lookup(l2, L2_ENONE, L2_HIT, (const char *)v + p, len - p, op->arg);
}

/* Delivers a reply of a script or command to op's callback. */
static void op_deliver(struct l2 *l2, struct l2_op *op, const redisReply *rep)
{
	switch (op->kind) {
	case OP_LOAD:
		break;
	case OP_MLOOKUP:
		mlookup_deliver(l2, op, rep);
		break;
	case OP_LOOKUP:
		if (is_bulk(rep))
			op->cb.lookup(l2, L2_ENONE, L2_HIT, rep->str, rep->len, op->arg);
		else if (rep->type == REDIS_REPLY_INTEGER &&
		         (rep->integer == 0 || rep->integer == 1))
			op->cb.lookup(l2, L2_ENONE, rep->integer ? L2_STALE : L2_MISS, NULL, 0,
			              op->arg);
		else
			op_fail(l2, op, L2_EPROTO);
		break;
	case OP_BEGIN: {
		struct l2_lease *ls = &op->lease;
		if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 + (size_t)ls->ngens ||
		    rep->element[0]->type != REDIS_REPLY_INTEGER || !is_bulk(rep->element[1]) ||
		    rep->element[1]->len > L2_TOKEN_MAX) {
			op_fail(l2, op, L2_EPROTO);
			break;
		}
		for (unsigned i = 0; i < ls->ngens; i++) {
			const redisReply *g = rep->element[2 + i];
			if (!is_bulk(g) || !parse_u64(g->str, g->len, &ls->gens[i])) {
				op_fail(l2, op, L2_EPROTO);
				return;
			}
		}
		ls->won = rep->element[0]->integer == 1;
		if (!ls->won) {
			memcpy(ls->token, rep->element[1]->str, rep->element[1]->len);
			ls->token[rep->element[1]->len] = '\0';
			ls->token_len = rep->element[1]->len;
			ls->pass = ls->token_len == sizeof(L2_PASS_MARK) - 1 &&
			           memcmp(ls->token, L2_PASS_MARK, ls->token_len) == 0;
		}
		op->cb.begin(l2, L2_ENONE, ls, op->arg);
		break;
	}
	case OP_COMMIT:
		if (rep->type != REDIS_REPLY_INTEGER || rep->integer < -1 || rep->integer > 1)
			op_fail(l2, op, L2_EPROTO);
		else
			op->cb.commit(l2, L2_ENONE,
			              rep->integer == 1   ? L2_COMMIT_STORED
			              : rep->integer == 0 ? L2_COMMIT_LEASE_LOST
			                                  : L2_COMMIT_PURGED,
			              op->arg);
		break;
	case OP_ABORT:
	case OP_PURGE:
	case OP_PASS:
		if (rep->type != REDIS_REPLY_INTEGER)
			op_fail(l2, op, L2_EPROTO);
		else
			op->cb.integer(l2, L2_ENONE, rep->integer, op->arg);
		break;
	}
}

static void on_reply(struct redis *r, const redisReply *reply, enum redis_err err, void *arg)
{
	struct l2_op *op = arg;
	struct l2 *l2 = op->l2;
	if (!l2) { /* detached by l2_free() */
		free(op);
		return;
	}
	op_unlink(l2, op);

	if (op->kind == OP_LOAD) {
		struct l2_script *sc = &l2->scripts[op->script];
		sc->loading = false;
		if (err == REDIS_ENONE && reply->type == REDIS_REPLY_STRING && reply->len == 40)
			memcpy(sc->sha, reply->str, 41);
		free(op);
		return;
	}

	if (err == REDIS_ENONE && op->sent_sha && reply->type == REDIS_REPLY_ERROR &&
	    strncmp(reply->str, "NOSCRIPT", 8) == 0) {
		/* The server lost the script: forget the SHA, resend as EVAL. */
		l2->scripts[op->script].sha[0] = '\0';
		if (op_send(l2, op, true) == LV_OK) {
			op_link(l2, op);
			return;
		}
		op_fail(l2, op, L2_EREDIS);
		free(op);
		return;
	}

	if (err == REDIS_ECLOSED)
		op_fail(l2, op, L2_ECLOSED);
	else if (err != REDIS_ENONE)
		op_fail(l2, op, L2_EREDIS);
	else if (reply->type == REDIS_REPLY_ERROR)
		op_fail(l2, op, L2_EPROTO);
	else
		op_deliver(l2, op, reply);
	free(op);
}

/* ---- public ------------------------------------------------------------- */

struct l2 *l2_new(struct redis *r)
{
	struct l2 *l2 = calloc(1, sizeof(*l2));
	if (!l2)
		return NULL;
	l2->r = r;
	uint64_t seed;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
		/* Tokens only need to differ between replicas and restarts. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
		       ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)l2;
	}
	snprintf(l2->seed, sizeof(l2->seed), "%016llx", (unsigned long long)seed);
	l2->seedv = seed;
	for (int s = 0; s < S_COUNT; s++)
		script_load(l2, s);
	return l2;
}

void l2_free(struct l2 *l2)
{
	if (!l2)
		return;
	l2->closing = true;
	while (l2->ops) {
		struct l2_op *op = l2->ops;
		op_unlink(l2, op);
		op->l2 = NULL; /* its reply still comes, and only frees it */
		op_fail(l2, op, L2_ECLOSED);
	}
	free(l2);
}

/* A fresh generation value: 63 random-looking bits, never 0, so that a
 * generation deleted by a purge and created again never takes a value an
 * entry still names (and an older levee's INCR of it still works). */
static size_t fresh_gen(struct l2 *l2, char out[24])
{
	uint64_t z = l2->seedv + 0x9e3779b97f4a7c15ull * ++l2->counter;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	z &= INT64_MAX;
	return (size_t)snprintf(out, 24, "%llu", (unsigned long long)(z ? z : 1));
}

static bool tags_ok(const struct l2_str *tags, unsigned ntags, size_t *bytes)
{
	if (ntags > L2_MAX_TAGS || (ntags && !tags))
		return false;
	for (unsigned i = 0; i < ntags; i++) {
		if (tags[i].len == 0 || tags[i].len > L2_TAG_MAX || !tags[i].p)
			return false;
		*bytes += tags[i].len + 10; /* "levee:g:{" "}" */
	}
	return true;
}

static bool key_ok(struct l2 *l2, const char *key, size_t keylen)
{
	return !l2->closing && key && keylen > 0 && keylen <= L2_KEY_MAX;
}

/* Appends "levee:{<key>}:<suffix>". */
static void arg_entry_key(struct l2_op *op, const char *key, size_t keylen, char suffix)
{
	char *d = op_reserve(op, keylen + 10);
	memcpy(d, "levee:{", 7);
	memcpy(d + 7, key, keylen);
	memcpy(d + 7 + keylen, "}:", 2);
	d[9 + keylen] = suffix;
}

/* Appends "levee:g:{<tag>}". */
static void arg_gen_key(struct l2_op *op, const struct l2_str *tag)
{
	char *d = op_reserve(op, tag->len + 10);
	memcpy(d, "levee:g:{", 9);
	memcpy(d + 9, tag->p, tag->len);
	d[9 + tag->len] = '}';
}

/* A script op on one key of <key> ("levee:{<key>}:<suffix>"), with room for
 * <nargs> more arguments of <bytes> bytes; its callback is the caller's to
 * set. */
static struct l2_op *op_key_script(struct l2 *l2, enum op_kind kind, int script, const char *key, size_t keylen,
                                   char suffix, int nargs, size_t bytes)
{
	struct l2_op *op = op_new(l2, kind, script, 4 + nargs, 1 + keylen + 10 + bytes);
	if (!op)
		return NULL;
	op_script_slots(op);
	op_arg(op, "1", 1);
	arg_entry_key(op, key, keylen, suffix);
	return op;
}

int l2_lookup(struct l2 *l2, const char *key, size_t keylen, l2_lookup_cb cb, void *arg)
{
	if (!key_ok(l2, key, keylen) || !cb)
		return LV_ERR;
	struct l2_op *op = op_key_script(l2, OP_LOOKUP, S_LOOKUP, key, keylen, 'e', 0, 0);
	if (!op)
		return LV_ERR;
	op->cb.lookup = cb;
	op->arg = arg;
	return op_start(l2, op);
}

int l2_lookup_tags(struct l2 *l2, const char *key, size_t keylen, const struct l2_str *tags, unsigned ntags,
                   l2_lookup_cb cb, void *arg)
{
	size_t bytes = 0;
	if (!key_ok(l2, key, keylen) || !cb || !tags_ok(tags, ntags, &bytes))
		return LV_ERR;
	struct l2_op *op = op_new(l2, OP_MLOOKUP, -1, 3 + (int)ntags, 4 + 2 * (keylen + 10) + bytes);
	if (!op)
		return LV_ERR;
	op->cb.lookup = cb;
	op->arg = arg;
	op_arg(op, "MGET", 4);
	arg_entry_key(op, key, keylen, 'e');
	arg_entry_key(op, key, keylen, 'l');
	for (unsigned i = 0; i < ntags; i++)
		arg_gen_key(op, &tags[i]);
	return op_start(l2, op);
}

int l2_fill_begin(struct l2 *l2, const char *key, size_t keylen, const struct l2_str *tags,
                  unsigned ntags, uint64_t lease_ttl_ms, l2_begin_cb cb, void *arg)
{
	size_t bytes = 0;
	if (!key_ok(l2, key, keylen) || !cb || lease_ttl_ms == 0 || !tags_ok(tags, ntags, &bytes))
		return LV_ERR;
	int cap = 6 + 2 * (int)ntags; /* 2 slots, numkeys, lease, gens, token, ttl, fresh gens */
	char token[L2_TOKEN_MAX + 1], num[24], ttl[24];
	int tlen = snprintf(token, sizeof(token), "%s.%llx", l2->seed,
	                    (unsigned long long)++l2->counter);
	int nlen = snprintf(num, sizeof(num), "%u", 1 + ntags);
	int ttlen = snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)lease_ttl_ms);
	struct l2_op *op =
	        op_new(l2, OP_BEGIN, S_BEGIN, cap,
	               bytes + (size_t)nlen + keylen + 10 + (size_t)tlen + (size_t)ttlen + (size_t)ntags * 24);
	if (!op)
		return LV_ERR;
	op->cb.begin = cb;
	op->arg = arg;
	memcpy(op->lease.token, token, (size_t)tlen + 1);
	op->lease.token_len = (size_t)tlen;
	op->lease.ngens = ntags;
	op_script_slots(op);
	op_arg(op, num, (size_t)nlen);
	arg_entry_key(op, key, keylen, 'l');
	for (unsigned i = 0; i < ntags; i++)
		arg_gen_key(op, &tags[i]);
	op_arg(op, token, (size_t)tlen);
	op_arg(op, ttl, (size_t)ttlen);
	for (unsigned i = 0; i < ntags; i++) {
		char g[24];
		size_t gl = fresh_gen(l2, g);
		op_arg(op, g, gl);
	}
	return op_start(l2, op);
}

int l2_fill_commit(struct l2 *l2, const char *key, size_t keylen, const struct l2_lease *lease,
                   const struct l2_str *tags, unsigned ntags, const char *rec, size_t reclen,
                   uint64_t ttl_ms, l2_commit_cb cb, void *arg)
{
	size_t bytes = 0;
	if (!key_ok(l2, key, keylen) || !cb || !lease || !lease->won || lease->ngens > ntags ||
	    lease->token_len == 0 || lease->token_len > L2_TOKEN_MAX || ttl_ms == 0 ||
	    (reclen && !rec) || reclen > L2_RECORD_MAX || !tags_ok(tags, ntags, &bytes))
		return LV_ERR;
	/* 2 slots, numkeys, entry, lease, gen keys, token, ttl, record, m, begin
	 * gens, fresh gens for late tags */
	int cap = 9 + 2 * (int)ntags;
	char num[24], ttl[24], m[24];
	int nlen = snprintf(num, sizeof(num), "%u", 2 + ntags);
	int ttlen = snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
	int mlen = snprintf(m, sizeof(m), "%u", lease->ngens);
	bytes += (size_t)nlen + 2 * (keylen + 10) + lease->token_len + (size_t)ttlen + reclen + (size_t)mlen +
	         (size_t)ntags * 24;
	struct l2_op *op = op_new(l2, OP_COMMIT, S_COMMIT, cap, bytes);
	if (!op)
		return LV_ERR;
	op->cb.commit = cb;
	op->arg = arg;
	op_script_slots(op);
	op_arg(op, num, (size_t)nlen);
	arg_entry_key(op, key, keylen, 'e');
	arg_entry_key(op, key, keylen, 'l');
	for (unsigned i = 0; i < ntags; i++)
		arg_gen_key(op, &tags[i]);
	op_arg(op, lease->token, lease->token_len);
	op_arg(op, ttl, (size_t)ttlen);
	op_arg(op, rec, reclen);
	op_arg(op, m, (size_t)mlen);
	for (unsigned i = 0; i < ntags; i++) {
		char g[24];
		size_t glen = i < lease->ngens ? (size_t)snprintf(g, sizeof(g), "%llu", (unsigned long long)lease->gens[i])
		                               : fresh_gen(l2, g);
		op_arg(op, g, glen);
	}
	return op_start(l2, op);
}

int l2_fill_abort(struct l2 *l2, const char *key, size_t keylen, const struct l2_lease *lease,
                  l2_int_cb cb, void *arg)
{
	if (!key_ok(l2, key, keylen) || !cb || !lease || lease->token_len == 0 ||
	    lease->token_len > L2_TOKEN_MAX)
		return LV_ERR;
	struct l2_op *op = op_key_script(l2, OP_ABORT, S_ABORT, key, keylen, 'l', 1, lease->token_len);
	if (!op)
		return LV_ERR;
	op->cb.integer = cb;
	op->arg = arg;
	op_arg(op, lease->token, lease->token_len);
	return op_start(l2, op);
}

int l2_purge_tag(struct l2 *l2, const char *tag, size_t taglen, l2_int_cb cb, void *arg)
{
	struct l2_str t = {tag, taglen};
	size_t bytes = 0;
	if (l2->closing || !cb || !tags_ok(&t, 1, &bytes))
		return LV_ERR;
	struct l2_op *op = op_new(l2, OP_PURGE, -1, 2, 3 + bytes);
	if (!op)
		return LV_ERR;
	op->cb.integer = cb;
	op->arg = arg;
	/* DEL, not a new value: Redis takes a DEL even at maxmemory with
	 * noeviction, when it refuses every command that adds data */
	op_arg(op, "DEL", 3);
	arg_gen_key(op, &t);
	return op_start(l2, op);
}

int l2_fill_pass(struct l2 *l2, const char *key, size_t keylen, const struct l2_lease *lease, uint64_t ttl_ms,
                 l2_int_cb cb, void *arg)
{
	const char *tok = lease && lease->won ? lease->token : "";
	size_t toklen = lease && lease->won ? lease->token_len : 0;
	if (!key_ok(l2, key, keylen) || !cb || ttl_ms == 0 || toklen > L2_TOKEN_MAX)
		return LV_ERR;
	char ttl[24];
	int ttlen = snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
	struct l2_op *op = op_key_script(l2, OP_PASS, S_PASS, key, keylen, 'l', 2, toklen + (size_t)ttlen);
	if (!op)
		return LV_ERR;
	op->cb.integer = cb;
	op->arg = arg;
	op_arg(op, tok, toklen);
	op_arg(op, ttl, (size_t)ttlen);
	return op_start(l2, op);
}

int l2_pass_clear(struct l2 *l2, const char *key, size_t keylen, l2_int_cb cb, void *arg)
{
	struct l2_lease mark = {.token_len = sizeof(L2_PASS_MARK) - 1};
	memcpy(mark.token, L2_PASS_MARK, sizeof(L2_PASS_MARK));
	return l2_fill_abort(l2, key, keylen, &mark, cb, arg);
}

/* ---- tags --------------------------------------------------------------- */

static size_t tag_build(char kind, const char *a, size_t alen, const char *b, size_t blen,
                        char *out, size_t cap)
{
	size_t need = 2 + alen + (b ? 1 + blen : 0);
	if (cap > L2_TAG_MAX)
		cap = L2_TAG_MAX;
	if (need > cap)
		return 0;
	out[0] = kind;
	out[1] = ':';
	memcpy(out + 2, a, alen);
	if (b) {
		out[2 + alen] = KEY_SEP;
		memcpy(out + 3 + alen, b, blen);
	}
	return need;
}

size_t l2_tag_url(const char *key, size_t keylen, char *out, size_t cap)
{
	/* service US target US host: stop before the third separator or the
	 * Vary extension, whichever comes first. */
	unsigned seps = 0;
	size_t end = 0;
	while (end < keylen && key[end] != KEY_VARY_SEP) {
		if (key[end] == KEY_SEP && ++seps == 3)
			break;
		end++;
	}
	if (seps < 2)
		return 0;
	return tag_build('u', key, end, NULL, 0, out, cap);
}

size_t l2_tag_prefix(const char *service, const char *prefix, size_t plen, char *out, size_t cap)
{
	if (!service || !*service || !prefix || plen == 0)
		return 0;
	return tag_build('p', service, strlen(service), prefix, plen, out, cap);
}

size_t l2_tag_key(const char *service, const char *name, size_t nlen, char *out, size_t cap)
{
	if (!service || !*service || !name || nlen == 0)
		return 0;
	return tag_build('k', service, strlen(service), name, nlen, out, cap);
}

unsigned l2_prefix_lens(const char *path, size_t plen, size_t *lens, unsigned max)
{
	unsigned n = 0;
	for (size_t i = 0; i < plen && n < max; i++) {
		if (path[i] == '?' || path[i] == '#')
			break;
		if (path[i] == '/')
			lens[n++] = i + 1;
	}
	return n;
}
