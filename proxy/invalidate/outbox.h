/*
 * outbox.h - the on-disk queue of invalidation events not yet delivered.
 *
 * When an event cannot be published to Kafka (broker down, delivery timeout,
 * producer queue full, shutdown), it is appended here and replayed, in append
 * order, once Kafka is back and at every start-up. Nothing is lost silently:
 * an event is either stored (outbox_append() returned LV_OK), refused with a
 * status the caller must act on (OUTBOX_FULL, LV_ERR), or, after a crash,
 * dropped at recovery with a log line and a counter.
 *
 * Threads: one thread (the invalidate thread) owns an outbox and makes every
 * call except outbox_stats(), which any thread may call while the outbox is
 * open. No locks: the owner is the only writer of every field, and the
 * figures outbox_stats() reads are atomics.
 *
 * Positions. A position is a logical byte offset in the stream of all records
 * ever appended to this outbox. It only grows, and it survives the data file
 * being reset or compacted (each data file stores the position of its first
 * record, its "base"), so a position the caller holds stays valid across
 * outbox_ack(). Record r occupies [pos(r), pos(r) + 16 + klen + vlen).
 *
 * Invariants:
 *  - base <= cursor <= end. [base, end) is the data file after its header,
 *    byte for byte; `cursor` is the first undelivered record (outbox_start());
 *    `end` is the end of the last complete record (outbox_end()).
 *  - cursor and end are always record boundaries; every record in
 *    [cursor, end) passed its checksum when it was appended or recovered.
 *  - The file only grows by whole-record appends. A failed write is cut back
 *    at once (ftruncate to `end`); if even that fails the outbox refuses all
 *    further work (see "Failure" below) rather than append behind a torn
 *    record.
 *  - Only two things ever shrink or replace data: recovery cutting a torn
 *    tail, and outbox_ack() replacing the file once records are delivered.
 *
 * Files, in the directory given at open (created like mkdir -p, mode 0750):
 *   outbox.lvq       the data file: a header, then the records
 *   outbox.state     the delivered cursor, in two alternating slots
 *   outbox.lvq.tmp   transient: a replacement data file being built; removed
 *                    at open if a crash left it behind
 * The directory itself is locked with flock(LOCK_EX | LOCK_NB) for as long as
 * the outbox is open, so two processes never share an outbox.
 *
 * File format, version 1. Integers are little-endian. XXH64 is
 * record_checksum() (XXH64, seed 0, see cache/record.h).
 *
 *   outbox.lvq header, 32 bytes, written once when the file is created and
 *   never modified:
 *     offset size  field
 *          0    4  magic "LVOB" (4c 56 4f 42)
 *          4    1  version = 1
 *          5    3  reserved, 0
 *          8    8  file id: 64 random bits, new for every data file
 *         16    8  base: the position of the first record in this file
 *         24    8  XXH64 of bytes [0, 24)
 *
 *   each record, from offset 32 on, back to back (16 + klen + vlen bytes):
 *          0    4  klen, <= OUTBOX_MAX_KEY
 *          4    4  vlen, <= OUTBOX_MAX_VAL
 *          8 klen  key
 *     8+klen vlen  value
 *   8+klen+vlen 8  XXH64 of the record's bytes [0, 8 + klen + vlen)
 *
 *   outbox.state: two 40-byte slots, at offsets 0 and 512 (separate sectors,
 *   so a torn write damages at most the slot being written). Writes
 *   alternate; the valid slot with the higher seq wins:
 *          0    4  magic "LVOS" (4c 56 4f 53)
 *          4    1  version = 1
 *          5    3  reserved, 0
 *          8    8  seq, + 1 on every write
 *         16    8  file id of the data file the cursor refers to
 *         24    8  cursor: position of the first undelivered record
 *         32    8  XXH64 of bytes [0, 32)
 *   A state whose file id is not the data file's (the file was replaced but
 *   the state write did not reach the disk) means "replay the whole data
 *   file": a replacement file holds only undelivered records.
 *
 * Durability (enum outbox_sync). "Process crash" = levee dies, the kernel
 * survives; "machine crash" = power loss or kernel panic.
 *   - Whatever the policy, a record is in the kernel (one write(2), no stdio
 *     buffer) when outbox_append() returns LV_OK, so a process crash loses
 *     nothing and an acknowledged record is never replayed after a process
 *     crash either.
 *   - OUTBOX_SYNC_ALWAYS: outbox_append() calls fdatasync() before it returns
 *     and outbox_ack() before it returns, so a machine crash loses no appended
 *     record and replays no acknowledged one. One disk flush per call.
 *   - OUTBOX_SYNC_BATCH: appends and acks only mark the outbox dirty; the
 *     caller calls outbox_sync() after a batch (the data file first, then the
 *     state). A machine crash loses at most the records appended since the
 *     last outbox_sync() and replays at most the records acknowledged since
 *     then.
 *   - OUTBOX_SYNC_NEVER: no flushes; after a machine crash the records the
 *     kernel had not yet written are lost (up to ~30 s of appends with the
 *     default dirty writeback), and deliveries may be replayed.
 *   - Under every policy, creating or replacing the data file is made durable
 *     before it is used (fsync of the new file, rename, fsync of the
 *     directory): it happens once per drain, and a header lost in a machine
 *     crash would leave a file outbox_open() refuses.
 *
 * The bound. "Pending bytes" = end - cursor, framing included: what is still
 * to deliver, whatever the file size. An append that would take pending bytes
 * beyond max_bytes - reserve_bytes returns OUTBOX_FULL and stores nothing;
 * with use_reserve it may go up to max_bytes, so the caller can still append
 * one final "purge everything" marker when it hits the bound. A record that
 * brings pending bytes exactly to the limit is accepted. Pending bytes found
 * at open are kept even if they exceed a smaller max_bytes than before; every
 * append is then FULL until enough is acknowledged.
 *
 * Reclaiming space. When outbox_ack() reaches `end`, the data file is
 * replaced by an empty one (base = end). When the delivered head
 * (cursor - base) reaches max(max_bytes, 1 MiB) without the queue draining,
 * the undelivered tail is copied into a new file (base = cursor). The data
 * file therefore stays below about 2 x max(max_bytes, 1 MiB); a file with a
 * large delivered head never counts as full. A failed replacement is logged,
 * leaves the old file in use and is retried after another such stretch.
 *
 * Crash recovery, at open:
 *  - A data file or state file that is not ours (bad magic, bad header
 *    checksum, unknown version, shorter than a header) makes outbox_open()
 *    fail and is never modified. A missing data file is created empty.
 *  - Records are verified from the cursor to the end of the file. At the
 *    first record that is short, has an absurd length or a bad checksum, the
 *    rest of the file is cut off; the bytes and records dropped and the file
 *    offset are reported (struct outbox_recovery, outbox_stats()) and logged
 *    with log_warn. An appending write interrupted by a crash can only leave
 *    such a torn record at the very end. If intact records follow the bad one
 *    the damage is not a torn write but corruption of the disk or the file:
 *    they are dropped too (the cursor cannot skip a record whose length it
 *    cannot trust), and that is logged with log_error.
 *  - A cursor beyond the end of the file (the machine crashed after the state
 *    reached the disk but before the data did) is brought back to the end.
 *
 * Failure. After a failed fdatasync() of the data file, or a failed write
 * that could not be cut back, the kernel's copy of the file can no longer be
 * trusted to match what is on disk: every later call returns LV_ERR with the
 * original error, until the outbox is closed and reopened (which re-runs
 * recovery). Other I/O errors affect only the call that met them.
 */
#ifndef LEVEE_INVALIDATE_OUTBOX_H
#define LEVEE_INVALIDATE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h" /* LV_OK, LV_ERR, LV_WARN_UNUSED */

#define OUTBOX_MAX_KEY (64u * 1024u)   /* key bytes, inclusive */
#define OUTBOX_MAX_VAL (1024u * 1024u) /* value bytes, inclusive */
#define OUTBOX_FILE_HEADER_SIZE 32u    /* outbox.lvq header */
#define OUTBOX_REC_OVERHEAD 16u        /* per record: lengths and checksum */

/* Status of outbox_append() besides LV_OK and LV_ERR. */
enum outbox_status {
	OUTBOX_FULL = -2, /* the record would exceed the bound; nothing stored */
};

enum outbox_sync {
	OUTBOX_SYNC_ALWAYS, /* fdatasync in every append and ack */
	OUTBOX_SYNC_BATCH,  /* fdatasync in outbox_sync(), called by the owner */
	OUTBOX_SYNC_NEVER,  /* leave write-back to the kernel */
};

struct outbox_cfg {
	const char *dir;        /* directory of the outbox; created if absent */
	uint64_t max_bytes;     /* bound on pending bytes, framing included; > 0 */
	uint64_t reserve_bytes; /* part of max_bytes kept for use_reserve appends; < max_bytes */
	enum outbox_sync sync;
};

/* What outbox_open() found. */
struct outbox_recovery {
	uint64_t pending_records; /* to deliver, from the cursor on */
	uint64_t pending_bytes;
	uint64_t dropped_records; /* cut off with a torn or corrupt tail */
	uint64_t dropped_bytes;
	uint64_t dropped_offset; /* offset in outbox.lvq where the cut was made */
};

/* A snapshot of the gauges and counters; any thread. */
struct outbox_stats {
	uint64_t pending_records;           /* gauge: appended, not yet acknowledged */
	uint64_t pending_bytes;             /* gauge: end - cursor */
	uint64_t max_bytes;                 /* gauge: the bound given at open */
	uint64_t file_bytes;                /* gauge: size of outbox.lvq */
	uint64_t appended;                  /* counter: records appended since open */
	uint64_t acked;                     /* counter: records acknowledged since open */
	uint64_t dropped_at_recovery;       /* counter: records dropped at open */
	uint64_t dropped_bytes_at_recovery; /* counter: bytes dropped at open */
};

/* One record returned by outbox_next(). The pointers point into the outbox's
 * read buffer and stay valid until the next outbox_next() or outbox_close();
 * outbox_append() and outbox_ack() leave them alone. */
struct outbox_rec {
	const void *key;
	size_t klen;
	const void *val;
	size_t vlen;
	uint64_t pos;  /* position of this record */
	uint64_t next; /* position of the following record: pass it to outbox_ack() */
};

struct outbox;

/* Opens (creating if needed) the outbox in cfg->dir, locks it and runs crash
 * recovery. On success *out is the outbox and *rep (may be NULL) says what
 * recovery found. On failure returns LV_ERR, leaves *out untouched and writes
 * a message naming the path into err[errsz], such as
 * "outbox /var/lib/levee/outbox: locked by another process (...)". */
int outbox_open(const struct outbox_cfg *cfg, struct outbox **out, struct outbox_recovery *rep,
                char *err, size_t errsz) LV_WARN_UNUSED;

/* Syncs according to the policy (outbox_sync() for ALWAYS and BATCH, nothing
 * for NEVER), closes the files and releases the lock. A failure is logged
 * with log_error; the outbox is freed either way. NULL is ignored. */
void outbox_close(struct outbox *o);

/* Appends one record: klen <= OUTBOX_MAX_KEY, vlen <= OUTBOX_MAX_VAL; the
 * pointers may be NULL when their length is 0. Returns LV_OK (stored, see the
 * durability rules above), OUTBOX_FULL (over the bound, nothing stored), or
 * LV_ERR (too large, I/O error or failed outbox; outbox_error() says which;
 * nothing stored). */
int outbox_append(struct outbox *o, const void *key, size_t klen, const void *val, size_t vlen,
                  bool use_reserve) LV_WARN_UNUSED;

/* Flushes whatever appends and acks are not yet on disk, whatever the policy
 * (data file first, then the state). No system call when nothing is dirty. */
int outbox_sync(struct outbox *o) LV_WARN_UNUSED;

/* Position of the first undelivered record: where a replay starts. */
uint64_t outbox_start(const struct outbox *o);
/* Position just after the last record. */
uint64_t outbox_end(const struct outbox *o);

/* Reads the record at *pos, which must be a record boundary in
 * [outbox_start(o), outbox_end(o)] (or an acknowledged one not yet
 * reclaimed). Returns 1 and fills *rec, advancing *pos to rec->next; 0 at the
 * end (*pos == outbox_end(o)); LV_ERR for a position outside the outbox, a
 * record that fails its checksum, or an I/O error. Records appended after a
 * replay started are returned after the ones before them. */
int outbox_next(struct outbox *o, uint64_t *pos, struct outbox_rec *rec) LV_WARN_UNUSED;

/* Marks every record before `upto` as delivered. `upto` is a record boundary
 * (usually some rec.next); one at or before outbox_start() is a no-op. The
 * cursor is written to outbox.state (and flushed under SYNC_ALWAYS); the data
 * file is reset or compacted as described above. Returns LV_ERR for a
 * position past the end or inside a record (nothing changes), or when the
 * cursor could not be written (the ack still holds in memory; a restart may
 * replay those records). */
int outbox_ack(struct outbox *o, uint64_t upto) LV_WARN_UNUSED;

/* The message of the last LV_ERR, naming the path; "" when none. */
const char *outbox_error(const struct outbox *o);

/* Reads the gauges and counters. Any thread, while the outbox is open. */
void outbox_stats(const struct outbox *o, struct outbox_stats *out);

#endif
