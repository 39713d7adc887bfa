/* Knocks: the datagram's layout, verification, every refusal reason, the
 * replay table's bound, the keys directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "knock.h"

#define NOW 1700000000

static const char hex64[] =
	"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static struct clientkey *key_named(const char *name, const char *use,
				   const char *secret_hex)
{
	char text[512];
	struct diag *d = diag_new();
	struct clientkey *k = NULL;

	snprintf(text, sizeof(text), "{\"porthop_client_key\": 1, \"name\": "
		 "\"%s\", \"use\": \"%s\", \"secret\": \"%s\"}", name, use,
		 secret_hex);
	assert_int_equal(clientkey_parse("k", text, strlen(text), d, &k), 0);
	diag_free(d);
	return k;
}

static void nonce_of(unsigned char n[KNOCK_NONCE_LEN], unsigned char b)
{
	memset(n, b, KNOCK_NONCE_LEN);
}

/* The layout docs/knock.md gives, byte by byte. */
static void test_layout(void **state)
{
	struct clientkey *k = key_named("alice", "knock", hex64);
	unsigned char buf[KNOCK_MAX], nonce[KNOCK_NONCE_LEN], a4[4] = {
		192, 0, 2, 7 };
	struct knock_msg m;
	int len;

	(void)state;
	nonce_of(nonce, 0xab);
	len = knock_encode(k, 0x0102030405060708LL, nonce, 0, NULL, buf,
			   sizeof(buf));
	assert_int_equal(len, 32 + 5 + 32);
	assert_memory_equal(buf, "PHK\x01\x05\x00\x00\x00", 8);
	assert_memory_equal(buf + 8, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	assert_int_equal(buf[16], 0xab);
	assert_int_equal(buf[31], 0xab);
	assert_memory_equal(buf + 32, "alice", 5);
	assert_int_equal(knock_parse(buf, (size_t)len, &m), KNOCK_OK);
	assert_string_equal(m.name, "alice");
	assert_int_equal(m.ts, 0x0102030405060708LL);
	assert_int_equal(m.family, 0);

	len = knock_encode(k, NOW, nonce, AF_INET, a4, buf, sizeof(buf));
	assert_int_equal(len, 32 + 5 + 4 + 32);
	assert_int_equal(buf[5], 4);
	assert_memory_equal(buf + 37, a4, 4);
	assert_int_equal(knock_parse(buf, (size_t)len, &m), KNOCK_OK);
	assert_int_equal(m.family, AF_INET);
	assert_memory_equal(m.addr, a4, 4);
	assert_int_equal(knock_encode(k, NOW, nonce, 99, a4, buf, sizeof(buf)),
			 -EINVAL);
	clientkey_free(k);
}

/* The MAC is HMAC-SHA256(secret, "porthop-knock-v1" || bytes before it),
 * checked against an independent computation (libsodium's one-shot
 * HMAC over the concatenation). */
#include <sodium.h>
static void test_mac_construction(void **state)
{
	struct clientkey *k = key_named("bob", "knock", hex64);
	unsigned char buf[KNOCK_MAX], nonce[KNOCK_NONCE_LEN], msg[256],
		      mac[32];
	size_t dl = strlen(KNOCK_DOMAIN);
	int len;

	(void)state;
	nonce_of(nonce, 1);
	len = knock_encode(k, NOW, nonce, 0, NULL, buf, sizeof(buf));
	memcpy(msg, KNOCK_DOMAIN, dl);
	memcpy(msg + dl, buf, (size_t)len - 32);
	crypto_auth_hmacsha256(mac, msg, dl + (size_t)len - 32,
			       clientkey_secret(k));
	assert_memory_equal(mac, buf + len - 32, 32);
	clientkey_free(k);
}

static void test_verify_reasons(void **state)
{
	struct clientkey *k = key_named("alice", "knock", hex64);
	struct clientkey *other = key_named("alice", "knock",
		"ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100");
	struct clientkey *carol = key_named("carol", "knock", hex64);
	struct knock_verifier *v = knock_verifier_new(30, 16);
	unsigned char buf[KNOCK_MAX + 8], nonce[KNOCK_NONCE_LEN];
	struct knock_msg m;
	int len;

	(void)state;
	assert_non_null(v);
	assert_int_equal(knock_verifier_add_key(v, k), 0);
	nonce_of(nonce, 1);
	len = knock_encode(k, NOW, nonce, 0, NULL, buf, sizeof(buf));
	/* Accepted once; the same bytes again are a replay. */
	assert_int_equal(knock_verify(v, buf, (size_t)len, NOW, &m), KNOCK_OK);
	assert_string_equal(m.name, "alice");
	assert_int_equal(knock_verifier_nonces(v), 1);
	assert_int_equal(knock_verify(v, buf, (size_t)len, NOW + 5, &m),
			 KNOCK_REPLAY);
	/* Truncated, oversized, malformed. */
	assert_int_equal(knock_verify(v, buf, (size_t)len - 1, NOW, &m),
			 KNOCK_TRUNCATED);
	assert_int_equal(knock_verify(v, buf, 5, NOW, &m), KNOCK_TRUNCATED);
	buf[len] = 0;
	assert_int_equal(knock_verify(v, buf, (size_t)len + 1, NOW, &m),
			 KNOCK_OVERSIZED);
	assert_int_equal(knock_verify(v, buf, KNOCK_MAX + 1, NOW, &m),
			 KNOCK_OVERSIZED);
	buf[3] = 2;
	assert_int_equal(knock_verify(v, buf, (size_t)len, NOW, &m),
			 KNOCK_MALFORMED);
	buf[3] = 1;
	buf[0] = 'X';
	assert_int_equal(knock_verify(v, buf, (size_t)len, NOW, &m),
			 KNOCK_MALFORMED);
	/* Another secret under the same name; an unknown name. */
	nonce_of(nonce, 2);
	len = knock_encode(other, NOW, nonce, 0, NULL, buf, sizeof(buf));
	assert_int_equal(knock_verify(v, buf, (size_t)len, NOW, &m),
			 KNOCK_BAD_MAC);
	len = knock_encode(carol, NOW, nonce, 0, NULL, buf, sizeof(buf));
	assert_int_equal(knock_verify(v, buf, (size_t)len, NOW, &m),
			 KNOCK_UNKNOWN_KEY);
	/* One bit flipped anywhere in the signed part. */
	len = knock_encode(k, NOW, nonce, 0, NULL, buf, sizeof(buf));
	buf[20] ^= 1;
	assert_int_equal(knock_verify(v, buf, (size_t)len, NOW, &m),
			 KNOCK_BAD_MAC);
	/* The window's edges: 30 s either way accepted, 31 not. */
	nonce_of(nonce, 3);
	len = knock_encode(k, NOW - 31, nonce, 0, NULL, buf, sizeof(buf));
	assert_int_equal(knock_verify(v, buf, (size_t)len, NOW, &m),
			 KNOCK_STALE);
	len = knock_encode(k, NOW + 31, nonce, 0, NULL, buf, sizeof(buf));
	assert_int_equal(knock_verify(v, buf, (size_t)len, NOW, &m),
			 KNOCK_FUTURE);
	len = knock_encode(k, NOW + 30, nonce, 0, NULL, buf, sizeof(buf));
	assert_int_equal(knock_verify(v, buf, (size_t)len, NOW, &m), KNOCK_OK);
	nonce_of(nonce, 4);
	len = knock_encode(k, NOW - 30, nonce, 0, NULL, buf, sizeof(buf));
	assert_int_equal(knock_verify(v, buf, (size_t)len, NOW, &m), KNOCK_OK);
	knock_verifier_free(v);
	clientkey_free(k);
	clientkey_free(other);
	clientkey_free(carol);
}

/* An address inside is signed and checked: unspecified or multicast is
 * refused. */
static void test_address_inside(void **state)
{
	struct clientkey *k = key_named("alice", "knock", hex64);
	unsigned char buf[KNOCK_MAX], nonce[KNOCK_NONCE_LEN], a6[16];
	unsigned char zero[4] = { 0 }, mc[4] = { 224, 0, 0, 1 };
	struct knock_msg m;
	int len;

	(void)state;
	nonce_of(nonce, 9);
	inet_pton(AF_INET6, "2001:db8::5", a6);
	len = knock_encode(k, NOW, nonce, AF_INET6, a6, buf, sizeof(buf));
	assert_int_equal(len, KNOCK_HEAD + 5 + 16 + KNOCK_MAC_LEN);
	assert_int_equal(knock_parse(buf, (size_t)len, &m), KNOCK_OK);
	assert_int_equal(m.family, AF_INET6);
	assert_memory_equal(m.addr, a6, 16);
	len = knock_encode(k, NOW, nonce, AF_INET, zero, buf, sizeof(buf));
	assert_int_equal(knock_parse(buf, (size_t)len, &m), KNOCK_MALFORMED);
	len = knock_encode(k, NOW, nonce, AF_INET, mc, buf, sizeof(buf));
	assert_int_equal(knock_parse(buf, (size_t)len, &m), KNOCK_MALFORMED);
	clientkey_free(k);
}

/* The replay table never holds more than its bound: full of nonces still
 * in the window, a new knock is refused (busy); once they leave the
 * window, room is made. */
static void test_replay_bounded(void **state)
{
	struct clientkey *k = key_named("alice", "knock", hex64);
	struct knock_verifier *v = knock_verifier_new(30, 8);
	unsigned char buf[KNOCK_MAX], nonce[KNOCK_NONCE_LEN];
	struct knock_msg m;
	int len;

	(void)state;
	assert_int_equal(knock_verifier_add_key(v, k), 0);
	for (int i = 0; i < 8; i++) {
		nonce_of(nonce, (unsigned char)(i + 1));
		len = knock_encode(k, NOW, nonce, 0, NULL, buf, sizeof(buf));
		assert_int_equal(knock_verify(v, buf, (size_t)len, NOW, &m),
				 KNOCK_OK);
	}
	nonce_of(nonce, 100);
	len = knock_encode(k, NOW, nonce, 0, NULL, buf, sizeof(buf));
	assert_int_equal(knock_verify(v, buf, (size_t)len, NOW, &m),
			 KNOCK_BUSY);
	assert_int_equal(knock_verifier_nonces(v), 8);
	len = knock_encode(k, NOW + 31, nonce, 0, NULL, buf, sizeof(buf));
	assert_int_equal(knock_verify(v, buf, (size_t)len, NOW + 31, &m),
			 KNOCK_OK);
	assert_int_equal(knock_verifier_nonces(v), 1);
	knock_verifier_free(v);
	clientkey_free(k);
}

/* A knock's UDP payload out of an IPv4 packet as nflog copies it. */
static void test_udp_payload(void **state)
{
	unsigned char pkt[20 + 8 + 4] = { 0x45 }, src[16];
	const uint8_t *pl;
	size_t plen;
	int fam;

	(void)state;
	pkt[9] = 17;
	memcpy(pkt + 12, "\xc0\x00\x02\x07", 4);
	pkt[22] = 62201 >> 8;
	pkt[23] = 62201 & 0xff;
	pkt[25] = 12;
	memcpy(pkt + 28, "abcd", 4);
	assert_int_equal(knock_udp_payload(pkt, sizeof(pkt), 62201, &fam, src,
					   &pl, &plen), 0);
	assert_int_equal(fam, AF_INET);
	assert_memory_equal(src, "\xc0\x00\x02\x07", 4);
	assert_int_equal(plen, 4);
	assert_memory_equal(pl, "abcd", 4);
	/* Another port, TCP, cut short. */
	assert_int_equal(knock_udp_payload(pkt, sizeof(pkt), 62202, &fam, src,
					   &pl, &plen), -EINVAL);
	assert_int_equal(knock_udp_payload(pkt, 25, 62201, &fam, src, &pl,
					   &plen), -EINVAL);
	pkt[9] = 6;
	assert_int_equal(knock_udp_payload(pkt, sizeof(pkt), 62201, &fam, src,
					   &pl, &plen), -EINVAL);
}

static void write_key(const char *dir, const char *file, const char *name,
		      const char *use, mode_t mode)
{
	char path[512], text[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	snprintf(text, sizeof(text), "{\"porthop_client_key\": 1, \"name\": "
		 "\"%s\", \"use\": \"%s\", \"secret\": \"%s\"}\n", name, use,
		 hex64);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	fchmod(fd, mode);
	close(fd);
}

/* The directory: good keys load; a file others can read, a name that is
 * not the file's, are refused and named, the others still load; derive
 * keys and other files are skipped; a deleted file is gone on reload. */
static void test_keys_directory(void **state)
{
	char dir[] = "/tmp/test_knock.XXXXXX", path[512];
	struct knock_verifier *v = knock_verifier_new(30, 16);
	struct diag *d = diag_new();

	(void)state;
	assert_non_null(mkdtemp(dir));
	write_key(dir, "alice.key", "alice", "knock", 0600);
	write_key(dir, "bob.key", "bob", "knock", 0644);
	write_key(dir, "carol.key", "dave", "knock", 0600);
	write_key(dir, "erin.key", "erin", "derive", 0600);
	write_key(dir, "frank.key", "frank", "knock", 0640);
	write_key(dir, "notes.txt", "x", "knock", 0600);
	assert_int_equal(knock_load_keys(v, dir, d), 2);
	assert_int_equal(knock_verifier_keys(v), 2);
	assert_int_equal(diag_errors(d), 2);
	for (size_t i = 0; i < diag_count(d); i++) {
		bool is_error;
		const char *msg = diag_message(d, i, &is_error);

		assert_true(strstr(msg, "bob.key") != NULL ?
			    strstr(msg, "readable or writable by others") != NULL :
			    strstr(msg, "\"dave\" is not the file's name") != NULL);
	}
	diag_clear(d);
	snprintf(path, sizeof(path), "%s/alice.key", dir);
	unlink(path);
	assert_int_equal(knock_load_keys(v, dir, d), 1);
	assert_int_equal(knock_verifier_keys(v), 1);
	diag_clear(d);
	assert_true(knock_load_keys(v, "/nonexistent/porthop", d) < 0);
	assert_int_equal(knock_verifier_keys(v), 1);
	assert_non_null(strstr(diag_first_error(d), "cannot be read"));
	for (const char *const *f = (const char *const[]){ "bob.key",
	     "carol.key", "erin.key", "frank.key", "notes.txt", NULL }; *f;
	     f++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *f);
		unlink(path);
	}
	rmdir(dir);
	diag_free(d);
	knock_verifier_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_mac_construction),
		cmocka_unit_test(test_verify_reasons),
		cmocka_unit_test(test_address_inside),
		cmocka_unit_test(test_replay_bounded),
		cmocka_unit_test(test_udp_payload),
		cmocka_unit_test(test_keys_directory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
