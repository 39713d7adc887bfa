/* Derived ports: the construction of docs/follow.md (vectors and an
 * independent recomputation), uniformity, no collisions. */
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clientkey.h"
#include "derive.h"
#include "diag.h"

/* The documented test key: bytes 0x00, 0x01, ..., 0x1f. */
static void test_key(unsigned char key[CLIENTKEY_SECRET_LEN])
{
	for (int i = 0; i < CLIENTKEY_SECRET_LEN; i++)
		key[i] = (unsigned char)i;
}

static struct derive *doc_derive(void)
{
	static const uint16_t tcp[] = { 443, 22 }, udp[] = { 53 };
	static const uint16_t ex[] = { 8080 };
	unsigned char key[CLIENTKEY_SECRET_LEN];
	struct diag *d = diag_new();
	struct derive *dv = NULL;

	test_key(key);
	assert_int_equal(derive_new(key, 1024, 65535, ex, 1, tcp, 2, udp, 1, d,
				    &dv), 0);
	diag_free(d);
	return dv;
}

/* The vectors docs/follow.md prints: key 00..1f, pool 1024-65535 minus
 * 8080, tcp 22 and 443, udp 53.  A change of any byte of the construction
 * changes them. */
static void test_vectors(void **state)
{
	static const struct {
		uint64_t t;
		uint16_t ports[3];	/* tcp/22, tcp/443, udp/53 */
	} vec[] = {
		{ 0, { 35238, 64227, 2766 } },
		{ 1, { 53350, 35671, 36859 } },
		{ 2, { 36062, 36716, 7289 } },
		{ 56666666, { 12050, 32609, 2477 } },
		{ 56666667, { 13950, 17406, 36279 } },
	};
	struct derive *dv = doc_derive();
	uint16_t ports[3];

	(void)state;
	assert_int_equal(derive_count(dv), 3);
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		assert_int_equal(derive_slot(dv, vec[i].t, ports), 0);
		print_message("  t=%llu: tcp/22 %u, tcp/443 %u, udp/53 %u\n",
			      (unsigned long long)vec[i].t, ports[0], ports[1],
			      ports[2]);
		for (int k = 0; k < 3; k++)
			assert_int_equal(ports[k], vec[i].ports[k]);
	}
	derive_free(dv);
}

/* The first TCP service's port recomputed from the text of docs/follow.md
 * alone, with the one-shot HMAC: the module's shares, mask and chunk order
 * must agree with it. */
static uint16_t follow_the_doc(const unsigned char *key, uint8_t proto,
			       uint16_t port, uint64_t t, uint16_t first,
			       uint16_t last, const uint16_t *excl, size_t n_ex)
{
	static uint16_t share[65536];
	size_t n = 0;
	uint32_t mask = 0;

	for (unsigned p = first; p <= last; p++) {
		bool out = p % 3 != t % 3 || p == port;

		for (size_t i = 0; i < n_ex; i++)
			out = out || p == excl[i];
		if (!out)
			share[n++] = (uint16_t)p;
	}
	while (mask < n - 1)
		mask = mask << 1 | 1;
	for (uint32_t ctr = 0;; ctr++) {
		uint8_t msg[17 + 15], mac[32];

		memcpy(msg, "porthop-follow-v1", 17);
		msg[17] = proto;
		msg[18] = (uint8_t)(port >> 8);
		msg[19] = (uint8_t)port;
		for (int i = 0; i < 8; i++)
			msg[20 + i] = (uint8_t)(t >> (56 - 8 * i));
		for (int i = 0; i < 4; i++)
			msg[28 + i] = (uint8_t)(ctr >> (24 - 8 * i));
		crypto_auth_hmacsha256(mac, msg, sizeof(msg), key);
		for (int j = 0; j < 32; j += 2) {
			uint32_t x = ((uint32_t)mac[j] << 8 | mac[j + 1]) & mask;

			if (x < n)
				return share[x];
		}
	}
}

static void test_independent(void **state)
{
	static const uint16_t tcp[] = { 22 }, ex[] = { 80, 443 };
	unsigned char key[CLIENTKEY_SECRET_LEN];
	struct diag *d = diag_new();
	struct derive *dv = NULL;
	uint16_t p;

	(void)state;
	randombytes_buf(key, sizeof(key));
	assert_int_equal(derive_new(key, 1, 65535, ex, 2, tcp, 1, NULL, 0, d,
				    &dv), 0);
	for (uint64_t t = 1000000; t < 1000200; t++) {
		assert_int_equal(derive_port(dv, t, DERIVE_PROTO_TCP, 22, &p), 0);
		assert_int_equal(p, follow_the_doc(key, DERIVE_PROTO_TCP, 22, t,
						   1, 65535, ex, 2));
	}
	assert_int_equal(derive_port(dv, 1, DERIVE_PROTO_UDP, 22, &p), -ENOENT);
	derive_free(dv);
	diag_free(d);
}

/* Wilson-Hilferty, as in test_shuffle: the chi-square quantile for k
 * degrees of freedom at the normal quantile z. */
static double chi2_critical(double k, double z)
{
	double a = 2.0 / (9.0 * k);

	return k * pow(1.0 - a + z * sqrt(a), 3.0);
}

/* Pool 100-159 minus the services 120 and 150: over slots t with
 * t mod 3 = 0, each port of that share (p mod 3 = 0, 18 ports) must be as
 * likely as any other, for the first service and for the second (drawn
 * without the first's port).  z = 4.75: a correct construction fails once in a
 * million runs; a modulo bias fails every time. */
static void test_uniform(void **state)
{
	enum { N = 60000 };
	static const uint16_t tcp[] = { 120, 150 };
	unsigned char key[CLIENTKEY_SECRET_LEN];
	struct diag *d = diag_new();
	struct derive *dv = NULL;
	long counts[2][160] = { { 0 } };
	int free_ports = 0;

	(void)state;
	randombytes_buf(key, sizeof(key));
	assert_int_equal(derive_new(key, 100, 159, NULL, 0, tcp, 2, NULL, 0, d,
				    &dv), 0);
	for (long i = 0; i < N; i++) {
		uint16_t ports[2];

		assert_int_equal(derive_slot(dv, (uint64_t)i * 3, ports), 0);
		assert_int_not_equal(ports[0], ports[1]);
		counts[0][ports[0]]++;
		counts[1][ports[1]]++;
	}
	for (int p = 100; p < 160; p++)
		if (p % 3 == 0 && p != 120 && p != 150)
			free_ports++;
	for (int k = 0; k < 2; k++) {
		double chi = 0, e = (double)N / free_ports;
		double crit = chi2_critical(free_ports - 1, 4.75);

		for (int p = 100; p < 160; p++) {
			if (p % 3 != 0 || p == 120 || p == 150) {
				assert_int_equal(counts[k][p], 0);
				continue;
			}
			chi += (counts[k][p] - e) * (counts[k][p] - e) / e;
		}
		print_message("  service %d: chi2 = %.2f over %d ports "
			      "(critical %.2f)\n", k, chi, free_ports, crit);
		assert_true(chi < crit);
	}
	derive_free(dv);
	diag_free(d);
}

/* 60 TCP and 40 UDP services on a pool just wide enough: over many slots,
 * no two services of a protocol share a port in a slot, no port of slot t
 * is one of slot t-1 or t+1, and none is excluded, a service's real port
 * or outside the pool. */
static void test_no_collisions(void **state)
{
	enum { NT = 60, NU = 40, SLOTS = 3000 };
	uint16_t tcp[NT], udp[NU], ex[] = { 2000, 2001, 2002 };
	unsigned char key[CLIENTKEY_SECRET_LEN];
	struct diag *d = diag_new();
	struct derive *dv = NULL;
	static uint16_t ports[SLOTS + 2][NT + NU];
	bool is_service[65536] = { false };

	(void)state;
	randombytes_buf(key, sizeof(key));
	for (int i = 0; i < NT; i++)
		tcp[i] = (uint16_t)(1900 + i);
	for (int i = 0; i < NU; i++)
		udp[i] = (uint16_t)(1950 + i);
	for (int i = 0; i < NT; i++)
		is_service[tcp[i]] = true;
	for (int i = 0; i < NU; i++)
		is_service[udp[i]] = true;
	/* 1900-2400 minus 3 excluded and 90 distinct service ports. */
	assert_int_equal(derive_new(key, 1900, 2400, ex, 3, tcp, NT, udp, NU, d,
				    &dv), 0);
	for (int s = 0; s < SLOTS + 2; s++)
		assert_int_equal(derive_slot(dv, (uint64_t)s + 77, ports[s]), 0);
	for (int s = 1; s <= SLOTS; s++) {
		uint8_t seen[65536] = { 0 };	/* bit 0 tcp, bit 1 udp */

		for (int i = 0; i < NT + NU; i++) {
			uint16_t p = ports[s][i];
			uint8_t bit = i < NT ? 1 : 2;

			assert_true(p >= 1900 && p <= 2400);
			assert_false(is_service[p]);
			assert_true(p < 2000 || p > 2002);
			assert_int_equal(p % 3, ((uint64_t)s + 77) % 3);
			assert_false(seen[p] & bit);
			seen[p] |= bit;
		}
		for (int i = 0; i < NT + NU; i++) {
			uint8_t bit = i < NT ? 1 : 2;

			assert_false(seen[ports[s - 1][i]] & bit);
			assert_false(seen[ports[s + 1][i]] & bit);
		}
	}
	derive_free(dv);
	diag_free(d);
}

static void test_refused(void **state)
{
	static const uint16_t tcp[] = { 22, 23, 24 };
	unsigned char key[CLIENTKEY_SECRET_LEN] = { 0 };
	struct diag *d = diag_new();
	struct derive *dv = NULL;

	(void)state;
	/* 100-114: 5 ports a share; 3 services need 6. */
	assert_int_equal(derive_new(key, 100, 114, NULL, 0, tcp, 3, NULL, 0, d,
				    &dv), -EINVAL);
	assert_non_null(strstr(diag_first_error(d), "expected at least twice"));
	assert_int_equal(derive_new(key, 100, 99, NULL, 0, tcp, 3, NULL, 0, d,
				    &dv), -EINVAL);
	assert_int_equal(derive_new(key, 100, 9999, NULL, 0, NULL, 0, NULL, 0,
				    d, &dv), -EINVAL);
	assert_null(dv);
	assert_int_equal(derive_slot_at(59, 30), 1);
	assert_int_equal(derive_slot_at(60, 30), 2);
	assert_int_equal(derive_slot_at(-5, 30), 0);
	diag_free(d);
}

/* A key file's members reach the derivation: the same ports as by hand. */
static void test_from_key(void **state)
{
	static const char text[] =
		"{\"porthop_client_key\": 1, \"name\": \"alice\", \"use\": "
		"\"derive\", \"secret\": \"000102030405060708090a0b0c0d0e0f"
		"101112131415161718191a1b1c1d1e1f\", \"slot_seconds\": 5, "
		"\"tcp\": [443, 22], \"udp\": [53], \"pool\": [1024, 65535], "
		"\"exclude\": [8080]}";
	struct diag *d = diag_new();
	struct clientkey *k = NULL;
	struct derive *a = NULL, *b = doc_derive();
	uint16_t pa[3], pb[3];

	(void)state;
	assert_int_equal(clientkey_parse("k", text, strlen(text), d, &k), 0);
	assert_int_equal(derive_from_key(k, d, &a), 0);
	for (uint64_t t = 5; t < 50; t++) {
		uint16_t p;

		assert_int_equal(derive_slot(a, t, pa), 0);
		assert_int_equal(derive_slot(b, t, pb), 0);
		assert_memory_equal(pa, pb, sizeof(pa));
		/* What a client asks (porthop follow, connect): by real port
		 * and time, slots of 5 s. */
		assert_int_equal(derive_key_port(k, 443, (int64_t)t * 5 + 4,
						 &p), 0);
		assert_int_equal(p, pb[1]);
		assert_int_equal(derive_key_port(k, 53, (int64_t)t * 5, &p), 0);
		assert_int_equal(p, pb[2]);
	}
	{
		uint16_t p;

		assert_int_equal(derive_key_port(k, 80, 100, &p), -ENOENT);
		assert_int_equal(derive_key_port(k, 0, 100, &p), -ENOENT);
	}
	{
		struct clientkey *knock = NULL;
		uint16_t p;

		assert_int_equal(clientkey_generate("k", CLIENTKEY_KNOCK, d,
						    &knock), 0);
		assert_int_equal(derive_key_port(knock, 22, 100, &p), -EINVAL);
		clientkey_free(knock);
	}
	derive_free(a);
	derive_free(b);
	clientkey_free(k);
	diag_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_independent),
		cmocka_unit_test(test_uniform),
		cmocka_unit_test(test_no_collisions),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_from_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
