/* fuzz_outbox.c - the outbox's crash recovery (proxy/invalidate/outbox.c):
 * whatever a crash or a bad disk leaves in outbox.lvq, opening it must not
 * crash, must keep only whole records, and must leave an outbox that works.
 *
 * The input becomes the record area of a data file behind a valid header
 * (so the fuzzer is not stopped by the header checksum), in two versions:
 * as it is, and with every record checksum that the lengths let us find
 * rewritten to match (so it reaches what lies behind a good record). For
 * each: open (recovery), read every record back, append one, close, open
 * again. Invariants, else abort(): opening a file with a valid header
 * succeeds; records read are within the size limits; after the reopen the
 * records are the recovered ones plus the appended one, in order. */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/record.h"
#include "invalidate/outbox.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR OUTBOX_FILE_HEADER_SIZE
#define FUZZ_MAX_INPUT (1u << 20)

static char dir[64];
static char path[128];

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The scratch directory goes at exit, whatever files the outbox left in it. */
static void cleanup(void)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			char f[400];
			if (e->d_name[0] == '.')
				continue;
			snprintf(f, sizeof(f), "%s/%s", dir, e->d_name);
			unlink(f);
		}
		closedir(d);
	}
	rmdir(dir);
}

static void setup(void)
{
	if (dir[0])
		return;
	log_set_level((enum lv_log_level)(LV_LOG_ERROR + 1)); /* recovery warnings are expected here */
	snprintf(dir, sizeof(dir), "/tmp/levee-fuzz-outbox-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/outbox.lvq", dir);
	atexit(cleanup);
}

static void write_file(const uint8_t *body, size_t n)
{
	uint8_t h[HDR] = {'L', 'V', 'O', 'B', 1, 0, 0, 0};
	put_le64(h + 8, 0x0123456789abcdefull); /* file id */
	put_le64(h + 16, 0);                    /* base */
	put_le64(h + 24, record_checksum(h, 24));
	unlink(path);
	char state[160];
	snprintf(state, sizeof(state), "%s/outbox.state", dir);
	unlink(state);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, h, HDR) != HDR || (n && write(fd, body, n) != (ssize_t)n))
		abort();
	close(fd);
}

/* Rewrites the checksum of each record whose framing fits in the input. */
static void repair(uint8_t *b, size_t n)
{
	size_t o = 0;
	while (o + 16 <= n) {
		uint64_t kl = get_le32(b + o), vl = get_le32(b + o + 4);
		if (kl > OUTBOX_MAX_KEY || vl > OUTBOX_MAX_VAL || o + 16 + kl + vl > n)
			return;
		put_le64(b + o + 8 + kl + vl, record_checksum(b + o, 8 + kl + vl));
		o += 16 + kl + vl;
	}
}

struct seen {
	uint64_t n;
	uint64_t sum; /* of the checksums of every key and value, in order */
};

static struct seen read_all(struct outbox *o)
{
	struct seen s = {0, 0};
	uint64_t pos = outbox_start(o);
	struct outbox_rec rec;
	int rc;
	while ((rc = outbox_next(o, &pos, &rec)) == 1) {
		if (rec.klen > OUTBOX_MAX_KEY || rec.vlen > OUTBOX_MAX_VAL || rec.next <= rec.pos)
			abort();
		s.n++;
		s.sum = s.sum * 31 + record_checksum(rec.key, rec.klen) + record_checksum(rec.val, rec.vlen);
	}
	if (rc != 0 || pos != outbox_end(o))
		abort(); /* recovery kept a record that does not read back */
	return s;
}

static void run(const uint8_t *body, size_t n)
{
	write_file(body, n);
	struct outbox_cfg cfg = {dir, 64u << 20, 4096, OUTBOX_SYNC_NEVER};
	struct outbox *o = NULL;
	char err[512];
	if (outbox_open(&cfg, &o, NULL, err, sizeof(err)) != LV_OK)
		abort(); /* a valid header must always open, whatever follows it */
	struct seen before = read_all(o);
	if (outbox_append(o, "k", 1, "v", 1, false) != LV_OK)
		abort();
	outbox_close(o);
	if (outbox_open(&cfg, &o, NULL, err, sizeof(err)) != LV_OK)
		abort();
	struct seen after = read_all(o);
	uint64_t want = before.sum * 31 + record_checksum("k", 1) + record_checksum("v", 1);
	if (after.n != before.n + 1 || after.sum != want)
		abort();
	outbox_close(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_MAX_INPUT)
		return 0;
	setup();
	run(data, size);
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	repair(copy, size);
	run(copy, size);
	free(copy);
	return 0;
}
