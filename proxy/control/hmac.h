/*
 * hmac.h - SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), written here so
 * that signing control commands needs no crypto library.
 *
 * Pure: no allocation, no I/O, no global state. The streaming context may
 * be fed any number of bytes per call; sha256_final() leaves it unusable
 * until sha256_init() again.
 */
#ifndef LEVEE_CONTROL_HMAC_H
#define LEVEE_CONTROL_HMAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_BLOCK 64
#define SHA256_LEN 32
#define SHA256_HEX_LEN 64 /* lowercase hex, without the NUL */

struct sha256 {
	uint32_t h[8];
	uint64_t total;                /* bytes fed so far */
	unsigned char buf[SHA256_BLOCK]; /* a partial block */
	size_t nbuf;
};

void sha256_init(struct sha256 *c);
void sha256_update(struct sha256 *c, const void *data, size_t len);
void sha256_final(struct sha256 *c, unsigned char out[SHA256_LEN]);
void sha256(const void *data, size_t len, unsigned char out[SHA256_LEN]);

/* HMAC-SHA256 of `msg` under `key` (any length: a key longer than a block is
 * hashed first, as RFC 2104 says). */
void hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[SHA256_LEN]);

/* `n` bytes as lowercase hex into `out`, NUL-terminated (2n + 1 bytes). */
void hmac_hex(const unsigned char *in, size_t n, char *out);

/* Whether a and b hold the same `n` bytes, in time that depends on n only. */
bool hmac_equal(const void *a, const void *b, size_t n);

#endif
