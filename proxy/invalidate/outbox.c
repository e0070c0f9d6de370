/*
 * outbox.c - the on-disk queue of undelivered invalidation events.
 *
 * Format, durability rules and invariants are in outbox.h. Notes on the
 * implementation:
 *  - Reads go through one read-ahead window (rbuf) of the size of the largest
 *    record, filled with pread(2): a replay of small records costs one system
 *    call per window, and outbox_next() hands out pointers into it.
 *  - Appends assemble the record in wbuf (the checksum needs the bytes in one
 *    piece anyway) and write it with a single write(2) on an O_APPEND
 *    descriptor. wbuf also serves as the copy buffer when the data file is
 *    replaced; both happen on the owner thread only.
 *  - The data file is never rewritten in place: it is replaced by building
 *    outbox.lvq.tmp, fsyncing it and renaming it over outbox.lvq. A new file
 *    gets a new random id, which tells a stale state slot from a current one.
 */
#include "invalidate/outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/record.h"
#include "log.h"

#define DATA_NAME "outbox.lvq"
#define TMP_NAME "outbox.lvq.tmp"
#define STATE_NAME "outbox.state"

#define DATA_MAGIC "LVOB"
#define STATE_MAGIC "LVOS"
#define FORMAT_VERSION 1u

#define HDR_SIZE OUTBOX_FILE_HEADER_SIZE
#define SLOT_SIZE 40u
#define SLOT_STRIDE 512u
#define REC_MAX ((size_t)OUTBOX_REC_OVERHEAD + OUTBOX_MAX_KEY + OUTBOX_MAX_VAL)
#define COMPACT_MIN (1u << 20)

struct outbox {
	char *dir;
	enum outbox_sync sync;
	int dfd; /* the directory; holds the flock */
	int fd;  /* outbox.lvq, O_RDWR | O_APPEND */
	int sfd; /* outbox.state */

	uint64_t id;     /* of the current data file */
	uint64_t base;   /* position of the data file's first record */
	uint64_t cursor; /* first undelivered record */
	uint64_t end;    /* end of the last complete record */
	uint64_t max_bytes, reserve_bytes;
	uint64_t state_seq;
	uint64_t replace_not_before; /* after a failed replacement, wait for cursor to pass this */
	bool dirty_data, dirty_state;
	bool failed; /* see "Failure" in outbox.h */

	uint8_t *rbuf; /* read window: log bytes [win_pos, win_pos + win_len) */
	uint64_t win_pos;
	size_t win_len;
	uint8_t *wbuf; /* one record being appended, or a copy chunk */

	_Atomic uint64_t pending_records, pending_bytes, gmax_bytes, file_bytes;
	_Atomic uint64_t appended, acked, dropped_records, dropped_bytes;

	char err[512];
};

/* ---- helpers -------------------------------------------------------------- */

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void seterr(struct outbox *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(struct outbox *o, const char *fmt, ...)
{
	int n = snprintf(o->err, sizeof(o->err), "outbox %s: ", o->dir);
	if (n < 0 || (size_t)n >= sizeof(o->err))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->err + n, sizeof(o->err) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Marks the outbox failed (outbox.h, "Failure"); the message stays. */
static int fail(struct outbox *o)
{
	o->failed = true;
	log_error("%s; the outbox refuses further work until it is reopened", o->err);
	return LV_ERR;
}

static int write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads up to n bytes at off; returns how many (short only at end of file),
 * or -1. */
static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	uint8_t *p = buf;
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, p + got, n - got, (off_t)(off + got));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static uint64_t random_id(void)
{
	uint64_t v;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
		return v;
	/* No entropy yet (early boot): ids only need to differ from the last
	 * file's, which time and pid ensure in practice. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return record_checksum(&ts, sizeof(ts)) ^ (uint64_t)getpid();
}

/* File offset in outbox.lvq of log position pos (base <= pos). */
static uint64_t foff(const struct outbox *o, uint64_t pos)
{
	return HDR_SIZE + (pos - o->base);
}

static void set_pending(struct outbox *o, uint64_t records)
{
	atomic_store_explicit(&o->pending_records, records, memory_order_relaxed);
	atomic_store_explicit(&o->pending_bytes, o->end - o->cursor, memory_order_relaxed);
	atomic_store_explicit(&o->file_bytes, foff(o, o->end), memory_order_relaxed);
}

static uint64_t pending_records(const struct outbox *o)
{
	return atomic_load_explicit(&o->pending_records, memory_order_relaxed);
}

/* ---- the read window ------------------------------------------------------ */

/* The len bytes at position pos, with pos + len <= limit <= what the file
 * holds; reads ahead up to the window size. NULL on error (o->err set). */
static const uint8_t *win_get(struct outbox *o, uint64_t pos, size_t len, uint64_t limit)
{
	if (pos >= o->win_pos && pos + len <= o->win_pos + o->win_len)
		return o->rbuf + (pos - o->win_pos);
	size_t n = limit - pos < REC_MAX ? (size_t)(limit - pos) : REC_MAX;
	o->win_len = 0;
	ssize_t r = pread_full(o->fd, o->rbuf, n, foff(o, pos));
	if (r < 0) {
		seterr(o, "cannot read %s at offset %" PRIu64 ": %s", DATA_NAME, foff(o, pos),
		       strerror(errno));
		return NULL;
	}
	if ((size_t)r < len) {
		seterr(o,
		       "%s ends at offset %" PRIu64 ", before the record there: was it truncated "
		       "by another program?",
		       DATA_NAME, foff(o, pos) + (uint64_t)r);
		return NULL;
	}
	o->win_pos = pos;
	o->win_len = (size_t)r;
	return o->rbuf;
}

enum check { CHECK_OK = 1, CHECK_BAD = 0 };

/* Verifies the record at pos, which must end by limit. Returns CHECK_OK and
 * fills *rec, CHECK_BAD with *why set, or LV_ERR on I/O error. */
static int rec_check(struct outbox *o, uint64_t pos, uint64_t limit, struct outbox_rec *rec,
                     const char **why)
{
	if (limit - pos < OUTBOX_REC_OVERHEAD) {
		*why = "short record";
		return CHECK_BAD;
	}
	const uint8_t *p = win_get(o, pos, 8, limit);
	if (p == NULL)
		return LV_ERR;
	uint32_t klen = rd32(p), vlen = rd32(p + 4);
	if (klen > OUTBOX_MAX_KEY || vlen > OUTBOX_MAX_VAL) {
		*why = "absurd length";
		return CHECK_BAD;
	}
	uint64_t size = (uint64_t)OUTBOX_REC_OVERHEAD + klen + vlen;
	if (limit - pos < size) {
		*why = "short record";
		return CHECK_BAD;
	}
	p = win_get(o, pos, (size_t)size, limit);
	if (p == NULL)
		return LV_ERR;
	if (record_checksum(p, (size_t)size - 8) != rd64(p + size - 8)) {
		*why = "checksum mismatch";
		return CHECK_BAD;
	}
	rec->key = p + 8;
	rec->klen = klen;
	rec->val = p + 8 + klen;
	rec->vlen = vlen;
	rec->pos = pos;
	rec->next = pos + size;
	return CHECK_OK;
}

/* Size of the record at pos, from its lengths only: for records verified
 * before, between cursor and end. 0 on error (o->err set). */
static uint64_t rec_size_at(struct outbox *o, uint64_t pos)
{
	uint8_t hb[8];
	const uint8_t *p = hb;
	if (pos >= o->win_pos && pos + 8 <= o->win_pos + o->win_len) {
		p = o->rbuf + (pos - o->win_pos);
	} else {
		ssize_t r = pread_full(o->fd, hb, 8, foff(o, pos));
		if (r != 8) {
			seterr(o, "cannot read %s at offset %" PRIu64 ": %s", DATA_NAME,
			       foff(o, pos), r < 0 ? strerror(errno) : "unexpected end of file");
			return 0;
		}
	}
	uint32_t klen = rd32(p), vlen = rd32(p + 4);
	uint64_t size = (uint64_t)OUTBOX_REC_OVERHEAD + klen + vlen;
	if (klen > OUTBOX_MAX_KEY || vlen > OUTBOX_MAX_VAL || size > o->end - pos) {
		seterr(o, "record at offset %" PRIu64 " of %s changed after it was verified",
		       foff(o, pos), DATA_NAME);
		return 0;
	}
	return size;
}

/* ---- the state file ------------------------------------------------------- */

struct state {
	bool valid;
	uint64_t seq, id, cursor;
};

static int state_load(struct outbox *o, struct state *st)
{
	uint8_t b[SLOT_STRIDE + SLOT_SIZE];
	memset(b, 0, sizeof(b));
	ssize_t n = pread_full(o->sfd, b, sizeof(b), 0);
	if (n < 0) {
		seterr(o, "cannot read %s: %s", STATE_NAME, strerror(errno));
		return LV_ERR;
	}
	memset(st, 0, sizeof(*st));
	if (n == 0)
		return LV_OK; /* new */
	/* Zeros are what a torn first write leaves; anything else is not ours. */
	static const uint8_t zero[4];
	if (n >= 4 && memcmp(b, STATE_MAGIC, 4) != 0 && memcmp(b, zero, 4) != 0) {
		seterr(o, "%s is not an outbox state file (bad magic); refusing to touch it",
		       STATE_NAME);
		return LV_ERR;
	}
	for (unsigned i = 0; i < 2; i++) {
		const uint8_t *s = b + i * SLOT_STRIDE;
		if ((size_t)n < i * SLOT_STRIDE + SLOT_SIZE || memcmp(s, STATE_MAGIC, 4) != 0 ||
		    record_checksum(s, SLOT_SIZE - 8) != rd64(s + SLOT_SIZE - 8))
			continue; /* never written, or torn */
		if (s[4] != FORMAT_VERSION) {
			seterr(o,
			       "%s has version %u, this levee reads version %u; refusing to touch it",
			       STATE_NAME, s[4], FORMAT_VERSION);
			return LV_ERR;
		}
		uint64_t seq = rd64(s + 8);
		if (!st->valid || seq > st->seq)
			*st = (struct state){true, seq, rd64(s + 16), rd64(s + 24)};
	}
	if (!st->valid)
		log_warn("outbox %s: %s has no intact slot (a crash during its first write?); "
		         "replaying the whole data file",
		         o->dir, STATE_NAME);
	return LV_OK;
}

/* Persists (id, cursor) in the slot not holding the latest state. */
static int state_write(struct outbox *o)
{
	uint8_t s[SLOT_SIZE] = {0};
	uint64_t seq = ++o->state_seq;
	memcpy(s, STATE_MAGIC, 4);
	s[4] = FORMAT_VERSION;
	wr64(s + 8, seq);
	wr64(s + 16, o->id);
	wr64(s + 24, o->cursor);
	wr64(s + 32, record_checksum(s, SLOT_SIZE - 8));
	ssize_t w;
	do
		w = pwrite(o->sfd, s, SLOT_SIZE, (off_t)(((seq - 1) & 1) * SLOT_STRIDE));
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)SLOT_SIZE) {
		seterr(o, "cannot write %s: %s", STATE_NAME,
		       w < 0 ? strerror(errno) : "short write");
		return LV_ERR;
	}
	if (o->sync == OUTBOX_SYNC_ALWAYS) {
		if (fdatasync(o->sfd) != 0) {
			seterr(o, "cannot flush %s: %s", STATE_NAME, strerror(errno));
			return LV_ERR;
		}
	} else {
		o->dirty_state = true;
	}
	return LV_OK;
}

/* ---- the data file -------------------------------------------------------- */

/* Builds a new data file holding the records [base, end) of the current one
 * (none when there is no current file), makes it durable and renames it over
 * outbox.lvq. LV_ERR with o->failed unchanged: nothing changed, the old file
 * is still in use. LV_ERR with o->failed set: the rename happened but may not
 * be durable. */
static int file_replace(struct outbox *o, uint64_t base)
{
	uint64_t id = random_id();
	int tfd = openat(o->dfd, TMP_NAME, O_RDWR | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (tfd < 0) {
		seterr(o, "cannot create %s: %s", TMP_NAME, strerror(errno));
		return LV_ERR;
	}
	uint8_t h[HDR_SIZE] = {0};
	memcpy(h, DATA_MAGIC, 4);
	h[4] = FORMAT_VERSION;
	wr64(h + 8, id);
	wr64(h + 16, base);
	wr64(h + 24, record_checksum(h, 24));
	const char *what = "write";
	if (write_all(tfd, h, sizeof(h)) != 0)
		goto fail;
	for (uint64_t pos = base; o->fd >= 0 && pos < o->end;) {
		size_t n = o->end - pos < REC_MAX ? (size_t)(o->end - pos) : REC_MAX;
		ssize_t r = pread_full(o->fd, o->wbuf, n, foff(o, pos));
		if (r != (ssize_t)n) {
			if (r >= 0)
				errno = EIO; /* the file shrank under us */
			what = "copy records into";
			goto fail;
		}
		if (write_all(tfd, o->wbuf, n) != 0)
			goto fail;
		pos += n;
	}
	what = "flush";
	if (fsync(tfd) != 0)
		goto fail;
	what = "rename";
	if (renameat(o->dfd, TMP_NAME, o->dfd, DATA_NAME) != 0)
		goto fail;

	if (o->fd >= 0)
		close(o->fd);
	o->fd = tfd;
	o->id = id;
	o->base = base;
	o->win_len = 0;
	o->dirty_data = false;
	atomic_store_explicit(&o->file_bytes, foff(o, o->end), memory_order_relaxed);
	if (fsync(o->dfd) != 0) {
		seterr(o, "cannot flush the directory after renaming %s over %s: %s", TMP_NAME,
		       DATA_NAME, strerror(errno));
		return fail(o);
	}
	return LV_OK;

fail:
	seterr(o, "cannot %s %s: %s", what, TMP_NAME, strerror(errno));
	close(tfd);
	unlinkat(o->dfd, TMP_NAME, 0);
	return LV_ERR;
}

/* Opens outbox.lvq, or creates it; sets id, base and *eof (the position at
 * the end of the file). */
static int data_open(struct outbox *o, const struct state *st, uint64_t *eof)
{
	o->fd = openat(o->dfd, DATA_NAME, O_RDWR | O_APPEND | O_CLOEXEC);
	if (o->fd < 0 && errno == ENOENT) {
		if (st->valid)
			log_warn(
			        "outbox %s: %s is missing although %s exists; starting empty (records "
			        "not delivered yet, if there were any, are gone)",
			        o->dir, DATA_NAME, STATE_NAME);
		o->end = st->valid ? st->cursor : 0;
		if (file_replace(o, o->end) != LV_OK)
			return LV_ERR;
		*eof = o->end;
		return LV_OK;
	}
	if (o->fd < 0) {
		seterr(o, "cannot open %s: %s", DATA_NAME, strerror(errno));
		return LV_ERR;
	}
	struct stat sb;
	if (fstat(o->fd, &sb) != 0) {
		seterr(o, "cannot stat %s: %s", DATA_NAME, strerror(errno));
		return LV_ERR;
	}
	uint8_t h[HDR_SIZE];
	ssize_t n = pread_full(o->fd, h, sizeof(h), 0);
	if (n < 0) {
		seterr(o, "cannot read %s: %s", DATA_NAME, strerror(errno));
		return LV_ERR;
	}
	/* magic and version first: a later version may lay the rest out
	 * differently */
	const char *why = NULL;
	if (n < (ssize_t)HDR_SIZE)
		why = "shorter than a header";
	else if (memcmp(h, DATA_MAGIC, 4) != 0)
		why = "bad magic";
	if (why == NULL && h[4] != FORMAT_VERSION) {
		seterr(o, "%s has version %u, this levee reads version %u; refusing to touch it",
		       DATA_NAME, h[4], FORMAT_VERSION);
		return LV_ERR;
	}
	if (why == NULL && record_checksum(h, 24) != rd64(h + 24))
		why = "bad header checksum";
	if (why != NULL) {
		seterr(o,
		       "%s is not an outbox data file (%s); refusing to touch it: move it away to "
		       "start an empty outbox",
		       DATA_NAME, why);
		return LV_ERR;
	}
	o->id = rd64(h + 8);
	o->base = rd64(h + 16);
	if ((uint64_t)sb.st_size - HDR_SIZE > UINT64_MAX - o->base) {
		seterr(o, "%s: base position %" PRIu64 " is absurd", DATA_NAME, o->base);
		return LV_ERR;
	}
	*eof = o->base + ((uint64_t)sb.st_size - HDR_SIZE);
	return LV_OK;
}

/* Verifies the records from the cursor to eof and cuts off a bad tail. */
static int recover(struct outbox *o, uint64_t eof, struct outbox_recovery *rep)
{
	struct outbox_rec rec;
	const char *why = NULL;
	uint64_t pos = o->cursor, n = 0;
	int r = CHECK_OK;
	while (pos < eof && (r = rec_check(o, pos, eof, &rec, &why)) == CHECK_OK) {
		pos = rec.next;
		n++;
	}
	if (r < 0)
		return LV_ERR;
	o->end = pos;
	if (pos < eof) {
		/* Count what goes: the bad record, and the intact records after it
		 * when its length can be followed. */
		uint64_t lost = 1, intact = 0, at = foff(o, pos);
		const uint8_t *p = eof - pos >= 8 ? win_get(o, pos, 8, eof) : NULL;
		if (p != NULL && rd32(p) <= OUTBOX_MAX_KEY && rd32(p + 4) <= OUTBOX_MAX_VAL) {
			uint64_t q = pos + OUTBOX_REC_OVERHEAD + rd32(p) + rd32(p + 4);
			const char *ignored;
			while (q < eof && rec_check(o, q, eof, &rec, &ignored) == CHECK_OK) {
				intact++;
				q = rec.next;
			}
		}
		lost += intact;
		o->win_len = 0; /* it may hold bytes of the tail being cut */
		if (ftruncate(o->fd, (off_t)at) != 0 ||
		    (o->sync != OUTBOX_SYNC_NEVER && fdatasync(o->fd) != 0)) {
			seterr(o, "cannot cut the corrupt tail of %s at offset %" PRIu64 ": %s",
			       DATA_NAME, at, strerror(errno));
			return LV_ERR;
		}
		log_warn(
		        "outbox %s: dropped %" PRIu64 " bytes (%" PRIu64
		        " record%s) from offset %" PRIu64
		        " of %s: %s. A crash in the middle of an append leaves such a torn record at "
		        "the end of the file; the records before it are intact.",
		        o->dir, eof - pos, lost, lost == 1 ? "" : "s", at, DATA_NAME, why);
		if (intact > 0)
			log_error(
			        "outbox %s: %" PRIu64
			        " intact records followed the bad one at offset %" PRIu64
			        " of %s and were dropped with it: this is not a torn write but corruption "
			        "of the file or the disk",
			        o->dir, intact, at, DATA_NAME);
		atomic_store_explicit(&o->dropped_records, lost, memory_order_relaxed);
		atomic_store_explicit(&o->dropped_bytes, eof - pos, memory_order_relaxed);
		if (rep != NULL) {
			rep->dropped_records = lost;
			rep->dropped_bytes = eof - pos;
			rep->dropped_offset = at;
		}
	}
	set_pending(o, n);
	if (n > 0)
		log_info("outbox %s: %" PRIu64 " undelivered records (%" PRIu64 " bytes) to replay",
		         o->dir, n, o->end - o->cursor);
	if (rep != NULL) {
		rep->pending_records = n;
		rep->pending_bytes = o->end - o->cursor;
	}
	return LV_OK;
}

/* ---- open and close ------------------------------------------------------- */

/* Creates a directory, fsyncing its parent so the new entry survives a
 * machine crash. */
static int mkdir_durable(const char *path, mode_t mode)
{
	if (mkdir(path, mode) != 0)
		return errno == EEXIST ? 0 : -1;
	char parent[LV_PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(parent, sizeof(parent), ".");
	else if (slash == path)
		snprintf(parent, sizeof(parent), "/");
	else
		snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
	int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd); /* best effort: the directory exists either way */
		close(fd);
	}
	return 0;
}

/* mkdir -p, with mode 0750 for the directories it creates. */
static int mkdir_p(struct outbox *o)
{
	char path[LV_PATH_MAX];
	size_t len = strlen(o->dir);
	if (len == 0 || len >= sizeof(path)) {
		seterr(o, "the directory name is empty or longer than %d bytes", LV_PATH_MAX - 1);
		return LV_ERR;
	}
	memcpy(path, o->dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char c = path[i];
		path[i] = '\0';
		if (mkdir_durable(path, 0750) != 0) {
			if (i == len)
				seterr(o, "cannot create: %s", strerror(errno));
			else
				seterr(o, "cannot create %s: %s", path, strerror(errno));
			return LV_ERR;
		}
		path[i] = c;
	}
	return LV_OK;
}

static void outbox_free(struct outbox *o)
{
	if (o->fd >= 0)
		close(o->fd);
	if (o->sfd >= 0)
		close(o->sfd);
	if (o->dfd >= 0)
		close(o->dfd); /* releases the lock */
	free(o->rbuf);
	free(o->wbuf);
	free(o->dir);
	free(o);
}

static int open_locked(struct outbox *o, const struct outbox_cfg *cfg, struct outbox_recovery *rep)
{
	if (cfg->max_bytes == 0 || cfg->reserve_bytes >= cfg->max_bytes) {
		seterr(o,
		       "max_bytes (%" PRIu64 ") must be > 0 and more than reserve_bytes (%" PRIu64
		       ")",
		       cfg->max_bytes, cfg->reserve_bytes);
		return LV_ERR;
	}
	if (mkdir_p(o) != LV_OK)
		return LV_ERR;
	o->dfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o->dfd < 0) {
		seterr(o, "cannot open: %s", strerror(errno));
		return LV_ERR;
	}
	if (flock(o->dfd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			seterr(o, "locked by another process (is another levee using this outbox "
			          "directory?)");
		else
			seterr(o, "cannot lock: %s", strerror(errno));
		return LV_ERR;
	}
	if (unlinkat(o->dfd, TMP_NAME, 0) != 0 && errno != ENOENT) {
		seterr(o, "cannot remove the leftover %s: %s", TMP_NAME, strerror(errno));
		return LV_ERR;
	}
	o->sfd = openat(o->dfd, STATE_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (o->sfd < 0) {
		seterr(o, "cannot open %s: %s", STATE_NAME, strerror(errno));
		return LV_ERR;
	}
	struct state st;
	uint64_t eof;
	if (state_load(o, &st) != LV_OK || data_open(o, &st, &eof) != LV_OK)
		return LV_ERR;
	o->state_seq = st.seq;

	/* The cursor: from the state when it refers to this file; otherwise the
	 * file was replaced after the state was written, and a replacement file
	 * holds only undelivered records. */
	o->cursor = o->base;
	if (st.valid && st.id == o->id) {
		if (st.cursor > eof)
			log_warn("outbox %s: the delivered cursor (%" PRIu64
			         ") is beyond the end of %s "
			         "(%" PRIu64
			         "): the machine crashed before appended data reached the "
			         "disk; resuming at the end",
			         o->dir, st.cursor, DATA_NAME, eof);
		if (st.cursor >= o->base)
			o->cursor = st.cursor < eof ? st.cursor : eof;
	} else if (st.valid) {
		log_info(
		        "outbox %s: %s was replaced after the last cursor update; replaying all of it",
		        o->dir, DATA_NAME);
	}
	if (recover(o, eof, rep) != LV_OK)
		return LV_ERR;
	if (!st.valid || st.id != o->id || st.cursor != o->cursor)
		return state_write(o);
	return LV_OK;
}

int outbox_open(const struct outbox_cfg *cfg, struct outbox **out, struct outbox_recovery *rep,
                char *err, size_t errsz)
{
	if (rep != NULL)
		memset(rep, 0, sizeof(*rep));
	struct outbox *o = calloc(1, sizeof(*o));
	if (o == NULL || (o->dir = strdup(cfg->dir != NULL ? cfg->dir : "")) == NULL ||
	    (o->rbuf = malloc(REC_MAX)) == NULL || (o->wbuf = malloc(REC_MAX)) == NULL) {
		snprintf(err, errsz, "outbox %s: out of memory", cfg->dir != NULL ? cfg->dir : "");
		if (o != NULL) {
			free(o->rbuf);
			free(o->dir);
			free(o);
		}
		return LV_ERR;
	}
	o->dfd = o->fd = o->sfd = -1;
	o->sync = cfg->sync;
	o->max_bytes = cfg->max_bytes;
	o->reserve_bytes = cfg->reserve_bytes;
	atomic_store_explicit(&o->gmax_bytes, cfg->max_bytes, memory_order_relaxed);
	if (open_locked(o, cfg, rep) != LV_OK) {
		snprintf(err, errsz, "%s", o->err);
		outbox_free(o);
		return LV_ERR;
	}
	*out = o;
	return LV_OK;
}

void outbox_close(struct outbox *o)
{
	if (o == NULL)
		return;
	if (o->sync != OUTBOX_SYNC_NEVER && !o->failed && outbox_sync(o) != LV_OK)
		log_error("%s (at close)", o->err);
	outbox_free(o);
}

/* ---- the queue ------------------------------------------------------------ */

int outbox_append(struct outbox *o, const void *key, size_t klen, const void *val, size_t vlen,
                  bool use_reserve)
{
	if (o->failed)
		return LV_ERR;
	if (klen > OUTBOX_MAX_KEY || vlen > OUTBOX_MAX_VAL) {
		seterr(o,
		       "cannot append a record with a %zu-byte key and a %zu-byte value: the limits "
		       "are %u and %u",
		       klen, vlen, OUTBOX_MAX_KEY, OUTBOX_MAX_VAL);
		return LV_ERR;
	}
	uint64_t size = (uint64_t)OUTBOX_REC_OVERHEAD + klen + vlen;
	uint64_t limit = use_reserve ? o->max_bytes : o->max_bytes - o->reserve_bytes;
	if (o->end - o->cursor > limit || size > limit - (o->end - o->cursor))
		return OUTBOX_FULL;

	uint8_t *p = o->wbuf;
	wr32(p, (uint32_t)klen);
	wr32(p + 4, (uint32_t)vlen);
	if (klen > 0)
		memcpy(p + 8, key, klen);
	if (vlen > 0)
		memcpy(p + 8 + klen, val, vlen);
	wr64(p + size - 8, record_checksum(p, (size_t)size - 8));
	if (write_all(o->fd, p, (size_t)size) != 0) {
		int e = errno;
		/* A partial write left a torn record: cut it, or nothing appended
		 * behind it could ever be read back. */
		if (ftruncate(o->fd, (off_t)foff(o, o->end)) != 0) {
			seterr(o,
			       "cannot append to %s: %s; then cannot cut the partial record at offset "
			       "%" PRIu64 ": %s",
			       DATA_NAME, strerror(e), foff(o, o->end), strerror(errno));
			return fail(o);
		}
		seterr(o, "cannot append to %s: %s", DATA_NAME, strerror(e));
		return LV_ERR;
	}
	o->end += size;
	set_pending(o, pending_records(o) + 1);
	atomic_fetch_add_explicit(&o->appended, 1, memory_order_relaxed);
	if (o->sync == OUTBOX_SYNC_ALWAYS) {
		if (fdatasync(o->fd) != 0) {
			seterr(o, "cannot flush %s: %s", DATA_NAME, strerror(errno));
			return fail(o);
		}
	} else {
		o->dirty_data = true;
	}
	return LV_OK;
}

int outbox_sync(struct outbox *o)
{
	if (o->failed)
		return LV_ERR;
	if (o->dirty_data) {
		if (fdatasync(o->fd) != 0) {
			seterr(o, "cannot flush %s: %s", DATA_NAME, strerror(errno));
			return fail(o);
		}
		o->dirty_data = false;
	}
	if (o->dirty_state) {
		if (fdatasync(o->sfd) != 0) {
			seterr(o, "cannot flush %s: %s", STATE_NAME, strerror(errno));
			return LV_ERR;
		}
		o->dirty_state = false;
	}
	return LV_OK;
}

uint64_t outbox_start(const struct outbox *o)
{
	return o->cursor;
}

uint64_t outbox_end(const struct outbox *o)
{
	return o->end;
}

int outbox_next(struct outbox *o, uint64_t *pos, struct outbox_rec *rec)
{
	if (o->failed)
		return LV_ERR;
	uint64_t p = *pos;
	if (p == o->end)
		return 0;
	if (p < o->base || p > o->end) {
		seterr(o, "cannot read at position %" PRIu64 ": outside [%" PRIu64 ", %" PRIu64 "]",
		       p, o->base, o->end);
		return LV_ERR;
	}
	const char *why;
	int r = rec_check(o, p, o->end, rec, &why);
	if (r < 0)
		return LV_ERR;
	if (r == CHECK_BAD) {
		seterr(o,
		       "record at offset %" PRIu64 " of %s is corrupt (%s): either the position is "
		       "not a record boundary or the file changed after it was written",
		       foff(o, p), DATA_NAME, why);
		return LV_ERR;
	}
	*pos = rec->next;
	return 1;
}

int outbox_ack(struct outbox *o, uint64_t upto)
{
	if (o->failed)
		return LV_ERR;
	if (upto <= o->cursor)
		return LV_OK;
	if (upto > o->end) {
		seterr(o,
		       "cannot acknowledge up to position %" PRIu64 ": past the end (%" PRIu64 ")",
		       upto, o->end);
		return LV_ERR;
	}
	/* Count the records, which also proves upto is a boundary. */
	uint64_t n = 0, pos = o->cursor;
	if (upto == o->end) {
		n = pending_records(o);
	} else {
		while (pos < upto) {
			uint64_t size = rec_size_at(o, pos);
			if (size == 0)
				return LV_ERR;
			pos += size;
			n++;
		}
		if (pos != upto) {
			seterr(o,
			       "cannot acknowledge up to position %" PRIu64
			       ": not a record boundary",
			       upto);
			return LV_ERR;
		}
	}
	o->cursor = upto;
	set_pending(o, pending_records(o) - n);
	atomic_fetch_add_explicit(&o->acked, n, memory_order_relaxed);

	/* Reclaim space: a drained queue gets an empty file; a long delivered
	 * head is dropped by copying the rest. Either is an optimisation, so a
	 * failure only postpones it, unless the new file may not be durable. */
	uint64_t head_max = o->max_bytes > COMPACT_MIN ? o->max_bytes : COMPACT_MIN;
	if (o->cursor >= o->replace_not_before &&
	    (o->cursor == o->end || o->cursor - o->base >= head_max)) {
		if (file_replace(o, o->cursor) != LV_OK) {
			if (o->failed)
				return LV_ERR;
			log_warn("%s; keeping the current file for now", o->err);
			o->replace_not_before = o->cursor + head_max;
		}
	}
	return state_write(o);
}

const char *outbox_error(const struct outbox *o)
{
	return o->err;
}

void outbox_stats(const struct outbox *o, struct outbox_stats *out)
{
	out->pending_records = atomic_load_explicit(&o->pending_records, memory_order_relaxed);
	out->pending_bytes = atomic_load_explicit(&o->pending_bytes, memory_order_relaxed);
	out->max_bytes = atomic_load_explicit(&o->gmax_bytes, memory_order_relaxed);
	out->file_bytes = atomic_load_explicit(&o->file_bytes, memory_order_relaxed);
	out->appended = atomic_load_explicit(&o->appended, memory_order_relaxed);
	out->acked = atomic_load_explicit(&o->acked, memory_order_relaxed);
	out->dropped_at_recovery = atomic_load_explicit(&o->dropped_records, memory_order_relaxed);
	out->dropped_bytes_at_recovery =
	        atomic_load_explicit(&o->dropped_bytes, memory_order_relaxed);
}
