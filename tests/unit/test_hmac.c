/*
 * test_hmac.c - SHA-256 and HMAC-SHA256 of proxy/control/hmac.c.
 *
 * Known answers: the FIPS 180-2 examples (plus the empty message), RFC 4231
 * test cases 1-7, and messages and keys around the padding edges (55, 56,
 * 57, 63, 64, 65, 119, 120, 128 bytes; keys of 63, 64, 65 bytes), whose
 * digests were computed with an independent implementation (Python's
 * hashlib). Every message is also fed in pieces of every size from 1 to
 * 67 bytes, which must give the same digest as one call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/hmac.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void hex_of_sha(const void *p, size_t n, char out[SHA256_HEX_LEN + 1])
{
	unsigned char d[SHA256_LEN];
	sha256(p, n, d);
	hmac_hex(d, sizeof(d), out);
}

/* The digest of `p` fed `step` bytes at a time. */
static void hex_of_sha_steps(const unsigned char *p, size_t n, size_t step, char out[SHA256_HEX_LEN + 1])
{
	struct sha256 c;
	unsigned char d[SHA256_LEN];
	sha256_init(&c);
	for (size_t o = 0; o < n; o += step)
		sha256_update(&c, p + o, n - o < step ? n - o : step);
	sha256_final(&c, d);
	hmac_hex(d, sizeof(d), out);
}

static void test_fips_vectors(void **state)
{
	(void)state;
	static const struct {
		const char *msg, *hex;
	} t[] = {
	    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
	};
	char hex[SHA256_HEX_LEN + 1];
	for (size_t i = 0; i < N(t); i++) {
		hex_of_sha(t[i].msg, strlen(t[i].msg), hex);
		assert_string_equal(hex, t[i].hex);
		for (size_t step = 1; step < 68; step++) {
			hex_of_sha_steps((const unsigned char *)t[i].msg, strlen(t[i].msg), step, hex);
			assert_string_equal(hex, t[i].hex);
		}
	}
	/* one million 'a', fed in uneven pieces */
	unsigned char *a = malloc(1000000);
	assert_non_null(a);
	memset(a, 'a', 1000000);
	hex_of_sha_steps(a, 1000000, 997, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	hex_of_sha(a, 1000000, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(a);
}

/* byte i of the padding-edge messages is (7i + 1) mod 256 */
static void test_padding_edges(void **state)
{
	(void)state;
	static const struct {
		size_t n;
		const char *sha, *hmac; /* HMAC under 64 bytes of 'k' */
	} t[] = {
	    {55, "16fa57a0a3423a715d594516339f36189d6b5f93754a9714fef202616a9fabfe",
	     "afe5738cba3d701065037530173652d789ad5bea7114666c9543984a192d3f1a"},
	    {56, "c37b44e5f1b18554b36966f4f8e08bfbf3164c4b6c10374d12d89850892073c5",
	     "e3b53eecd845f161c34979e4dc5cf4ee4149f03513a164c7cafbbcbe9091d4ef"},
	    {57, "12b234922502022f755ab8550a3d4e202ad39c81d961a4f59ec39d5fd83d15a7",
	     "32ed4efc144556599ddadb85fabf423767c299b9cd89baed42535f2fdc89fa86"},
	    {63, "bbba992d2c85af960fb2987a1fd05e0aa82a3db3c740dd8982a9e273b75e36a3",
	     "ea016a733b794d655f1b1097acb88c0d7ae966c2fa6ffaba481a137cb2e81157"},
	    {64, "66bd4633ed6f71c4ecfa4763bf7ba1c8ec7612de9aa6c0578a7b675207c71e0b",
	     "8e673ee4a2d5c416daa8979d9837cfcbd167c97134ee380acbd38c2ce472e559"},
	    {65, "9f7dc47107b750a1f3d35db5d9547f24ef40da5b731b9540d4f43710a154f6c9",
	     "08fd3e54873a629c2e9ab17e369f2a256a580c08e8a1818251ded1c378510f9a"},
	    {119, "a3ed307b730fa77c07531300c6e4a282330011d4d4caf6bb7b63ae05950f4b66",
	     "713db326f53239dd0d62dee4334308d1bb9d552a556c5086c877724a50d4caed"},
	    {120, "8e3b15d9fea7472655aa069620b7f8c2e55ee1499f763200a7515fe826e99d20",
	     "b3f8fee992745467d98cbf993a1f00ad2a3be3b1aebfb8b53bd75e571c294636"},
	    {128, "e462c130fef8c97e34f7dc3ff3ad2f8b3533ab849af21c10531552a2852387a4",
	     "125488078f66718122fb41b73d3e932612816d013348b70606be3fdae6e0f6c4"},
	};
	unsigned char msg[128], key[64], d[SHA256_LEN];
	char hex[SHA256_HEX_LEN + 1];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)(i * 7 + 1);
	memset(key, 'k', sizeof(key));
	for (size_t i = 0; i < N(t); i++) {
		hex_of_sha(msg, t[i].n, hex);
		assert_string_equal(hex, t[i].sha);
		for (size_t step = 1; step < 68; step++) {
			hex_of_sha_steps(msg, t[i].n, step, hex);
			assert_string_equal(hex, t[i].sha);
		}
		hmac_sha256(key, sizeof(key), msg, t[i].n, d);
		hmac_hex(d, sizeof(d), hex);
		assert_string_equal(hex, t[i].hmac);
	}
}

/* byte i of the keys is (3i + 5) mod 256; the message is "levee" */
static void test_key_edges(void **state)
{
	(void)state;
	static const struct {
		size_t klen;
		const char *hex;
	} t[] = {
	    {63, "ec4ce6a492cffebbdba726b2031b2ef591c2e44added4d2047fa56143800c1a7"},
	    {64, "310064922629adb1fea4b6bd0d0958bdfe28075cdecba27600b00ce528d5fa63"},
	    {65, "6ceebfd3327840d61de490dec40561a59cacd50ea149bd37db9d0f78392848a4"},
	};
	unsigned char key[65], d[SHA256_LEN];
	char hex[SHA256_HEX_LEN + 1];
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 3 + 5);
	for (size_t i = 0; i < N(t); i++) {
		hmac_sha256(key, t[i].klen, "levee", 5, d);
		hmac_hex(d, sizeof(d), hex);
		assert_string_equal(hex, t[i].hex);
	}
}

static void fill(unsigned char *p, unsigned char v, size_t n)
{
	memset(p, v, n);
}

static void test_rfc4231(void **state)
{
	(void)state;
	unsigned char k1[20], k3[20], d3[50], k4[25], d4[50], k5[20], k6[131];
	fill(k1, 0x0b, sizeof(k1));
	fill(k3, 0xaa, sizeof(k3));
	fill(d3, 0xdd, sizeof(d3));
	for (size_t i = 0; i < sizeof(k4); i++)
		k4[i] = (unsigned char)(i + 1);
	fill(d4, 0xcd, sizeof(d4));
	fill(k5, 0x0c, sizeof(k5));
	fill(k6, 0xaa, sizeof(k6));
	static const char m6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
	static const char m7[] = "This is a test using a larger than block-size key and a larger than block-size data. "
	                         "The key needs to be hashed before being used by the HMAC algorithm.";
	const struct {
		const void *key;
		size_t klen;
		const void *msg;
		size_t mlen;
		const char *hex; /* case 5 is truncated to 128 bits by the RFC */
	} t[] = {
	    {k1, sizeof(k1), "Hi There", 8, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
	    {"Jefe", 4, "what do ya want for nothing?", 28,
	     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
	    {k3, sizeof(k3), d3, sizeof(d3), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
	    {k4, sizeof(k4), d4, sizeof(d4), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
	    {k5, sizeof(k5), "Test With Truncation", 20, "a3b6167473100ee06e0c796c2955552b"},
	    {k6, sizeof(k6), m6, sizeof(m6) - 1, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
	    {k6, sizeof(k6), m7, sizeof(m7) - 1, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
	};
	for (size_t i = 0; i < N(t); i++) {
		unsigned char d[SHA256_LEN];
		char hex[SHA256_HEX_LEN + 1];
		hmac_sha256(t[i].key, t[i].klen, t[i].msg, t[i].mlen, d);
		hmac_hex(d, sizeof(d), hex);
		size_t want = strlen(t[i].hex);
		assert_memory_equal(hex, t[i].hex, want);
	}
}

static void test_equal(void **state)
{
	(void)state;
	unsigned char a[32], b[32];
	memset(a, 0x5a, sizeof(a));
	memcpy(b, a, sizeof(b));
	assert_true(hmac_equal(a, b, sizeof(a)));
	assert_true(hmac_equal(a, b, 0));
	for (size_t i = 0; i < sizeof(a); i++) {
		b[i] ^= 1;
		assert_false(hmac_equal(a, b, sizeof(a)));
		b[i] ^= 1;
	}
	b[31] ^= 0x80;
	assert_true(hmac_equal(a, b, 31));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fips_vectors), cmocka_unit_test(test_padding_edges), cmocka_unit_test(test_key_edges),
	    cmocka_unit_test(test_rfc4231),      cmocka_unit_test(test_equal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
