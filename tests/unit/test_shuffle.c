/* The port draw: distinct, never a used port, in range, uniform. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "shuffle.h"
#include "support.h"

struct used {
	unsigned lo, hi;	/* ports lo..hi are in use */
};

static int is_used(const void *arg, unsigned port)
{
	const struct used *u = arg;

	return port >= u->lo && port <= u->hi;
}

static void test_distinct_unused_in_range(void **state)
{
	struct shuffle *s = shuffle_new();
	struct used u = { 1, 5 };
	uint16_t ports[15];

	(void)state;
	for (int round = 0; round < 2000; round++) {
		bool seen[21] = { false };
		size_t count = 1 + (size_t)round % 15;

		assert_int_equal(shuffle_draw(s, 20, is_used, &u, count, ports), 0);
		for (size_t i = 0; i < count; i++) {
			assert_true(ports[i] >= 6 && ports[i] <= 20);
			assert_false(seen[ports[i]]);
			seen[ports[i]] = true;
		}
	}
	shuffle_free(s);
}

static void test_full_and_overfull(void **state)
{
	struct shuffle *s = shuffle_new();
	struct used u = { 1, 5 };
	uint16_t ports[70000];
	bool seen[65536] = { false };

	(void)state;
	/* Exactly as many as free: every free port once, in bounded time. */
	assert_int_equal(shuffle_draw(s, 20, is_used, &u, 15, ports), 0);
	for (size_t i = 0; i < 15; i++) {
		assert_false(seen[ports[i]]);
		seen[ports[i]] = true;
	}
	assert_int_equal(shuffle_draw(s, 20, is_used, &u, 16, ports), -ENOSPC);
	/* The whole port space. */
	u.lo = u.hi = 65535;
	assert_int_equal(shuffle_draw(s, 65535, is_used, &u, 65534, ports), 0);
	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < 65534; i++) {
		assert_true(ports[i] >= 1 && ports[i] <= 65534);
		assert_false(seen[ports[i]]);
		seen[ports[i]] = true;
	}
	assert_int_equal(shuffle_draw(s, 65536, is_used, &u, 1, ports), -EINVAL);
	shuffle_free(s);
}

/* Wilson-Hilferty: the chi-square quantile for k degrees of freedom at
 * the upper tail probability whose normal quantile is z. */
static double chi2_critical(double k, double z)
{
	double a = 2.0 / (9.0 * k);

	return k * pow(1.0 - a + z * sqrt(a), 3.0);
}

/* counts[1..20] of N draws: never 1-5 (the services), 6-20 uniform. */
static void assert_uniform_6_20(const long counts[21], long n, double crit,
				int position)
{
	double chi = 0, e = (double)n / 15;

	for (int p = 6; p <= 20; p++)
		chi += (counts[p] - e) * (counts[p] - e) / e;
	print_message("  position %d: chi2 = %.2f (critical %.2f)\n", position,
		      chi, crit);
	assert_true(chi < crit);
	for (int p = 1; p <= 5; p++)
		assert_int_equal(counts[p], 0);
}

/* Each free port must be as likely as any other, in every position.  With
 * z = 4.75 (p = 1e-6) a correct generator fails once in a million runs; a
 * modulo bias or an off-by-one fails every time. */
static void test_uniformity_chi_square(void **state)
{
	enum { N = 60000, FREE = 15, PICK = 3 };
	struct shuffle *s = shuffle_new();
	struct used u = { 1, 5 };
	long counts[PICK][21] = { { 0 } };
	uint16_t ports[PICK];
	double crit = chi2_critical(FREE - 1, 4.75);

	(void)state;
	for (int i = 0; i < N; i++) {
		assert_int_equal(shuffle_draw(s, 20, is_used, &u, PICK, ports), 0);
		for (int k = 0; k < PICK; k++)
			counts[k][ports[k]]++;
	}
	for (int k = 0; k < PICK; k++)
		assert_uniform_6_20(counts[k], N, crit, k);
	shuffle_free(s);
}

static void test_uniform_small_bounds(void **state)
{
	enum { N = 90000 };
	struct shuffle *s = shuffle_new();
	long counts[3] = { 0 };
	uint32_t x;
	double chi = 0, e = N / 3.0;

	(void)state;
	for (int i = 0; i < N; i++) {
		assert_int_equal(shuffle_uniform(s, 3, &x), 0);
		assert_true(x < 3);
		counts[x]++;
	}
	for (int i = 0; i < 3; i++)
		chi += (counts[i] - e) * (counts[i] - e) / e;
	assert_true(chi < chi2_critical(2, 4.75));
	assert_int_equal(shuffle_uniform(s, 1, &x), 0);
	assert_int_equal(x, 0);
	shuffle_free(s);
}

static void test_map_for_config(void **state)
{
	struct shuffle *s = shuffle_new();
	struct config *c;
	struct shuffle_map *m = NULL, *m2 = NULL;

	(void)state;
	assert_int_equal(chdir(CORPUS_DIR), 0);
	c = support_load("valid/ipv6_and_many.json");
	assert_int_equal(shuffle_map_new(s, c, NULL, &m), 0);
	assert_int_equal(m->nentries, 3);
	for (size_t i = 0; i < m->nentries; i++) {
		const struct shuffle_entry *e = &m->entries[i];
		const struct config_watched *w = config_watched(c, i);

		assert_int_equal(e->npairs, w->nports[CONFIG_TCP]);
		for (size_t k = 0; k < e->npairs; k++) {
			assert_int_equal(e->pairs[k].port, w->ports[CONFIG_TCP][k]);
			assert_true(e->pairs[k].redirect >= 1 &&
				    e->pairs[k].redirect <= 1000);
			assert_false(config_port_used(c, e->pairs[k].redirect));
			for (size_t j = 0; j < k; j++)
				assert_int_not_equal(e->pairs[j].redirect,
						     e->pairs[k].redirect);
		}
	}
	/* Redrawing one address leaves the others alone. */
	assert_int_equal(shuffle_map_new(s, c, NULL, &m2), 0);
	memcpy(m2->pool, m->pool, config_pair_count(c) * sizeof(*m->pool));
	assert_int_equal(shuffle_map_redraw(s, c, NULL, m2, 1), 0);
	assert_memory_equal(m2->entries[0].pairs, m->entries[0].pairs,
			    2 * sizeof(struct shuffle_pair));
	assert_memory_equal(m2->entries[2].pairs, m->entries[2].pairs,
			    3 * sizeof(struct shuffle_pair));
	assert_int_equal(shuffle_map_redraw(s, c, NULL, m2, 3), -EINVAL);
	shuffle_map_free(m);
	shuffle_map_free(m2);
	config_free(c);
	shuffle_free(s);
}

/* One plan serves every draw: each leaves its lists permuted, and the
 * next must still pick uniformly and never a service's port. */
static void test_plan_reused_uniform(void **state)
{
	enum { N = 60000, FREE = 15, PICK = 3 };
	struct shuffle *s = shuffle_new();
	struct config *c;
	struct shuffle_plan *plan;
	long counts[PICK][21] = { { 0 } };
	double crit = chi2_critical(FREE - 1, 4.75);

	(void)state;
	assert_int_equal(chdir(CORPUS_DIR), 0);
	/* max_port 20, services 1-5, ports 3 4 5 of 10.0.0.3 moved. */
	c = support_load("valid/reference.json");
	plan = shuffle_plan_new(c);
	assert_non_null(plan);
	for (int i = 0; i < N; i++) {
		struct shuffle_map *m = NULL;

		assert_int_equal(shuffle_map_new(s, c, plan, &m), 0);
		assert_int_equal(m->entries[0].npairs, PICK);
		for (int k = 0; k < PICK; k++) {
			uint16_t r = m->entries[0].pairs[k].redirect;

			assert_true(r >= 1 && r <= 20);
			counts[k][r]++;
			for (int j = 0; j < k; j++)
				assert_int_not_equal(m->entries[0].pairs[j].redirect, r);
		}
		shuffle_map_free(m);
	}
	for (int k = 0; k < PICK; k++)
		assert_uniform_6_20(counts[k], N, crit, k);
	shuffle_plan_free(plan);
	config_free(c);
	shuffle_free(s);
}

/* The knock port is free of services but never drawn: a watched client's
 * UDP service moved onto it would have its datagrams read as knocks. */
static void test_knock_port_never_drawn(void **state)
{
	static const char text[] =
		"{\"redis_connection_configuration\": {\"host\": \"127.0.0.1\","
		" \"port\": 6379, \"db\": 0, \"charset\": \"utf-8\","
		" \"decode_responses\": true},"
		" \"redis_subscriber_configuration\":"
		" {\"subscriber_channel_names\": [\"c\"]},"
		" \"nftables_service_configuration\": {\"max_port_number\": 20,"
		" \"tcp_ports\": [1], \"udp_ports\": [1],"
		" \"watched_addresses\": [{\"ip\": \"10.0.0.3\"}]},"
		" \"porthopd\": {\"state_directory\": \"\","
		" \"knock\": {\"port\": 10}}}";
	struct shuffle *s = shuffle_new();
	struct shuffle_map *m = NULL;
	struct config *c = support_load_text(text);
	unsigned tcp_on_10 = 0;

	(void)state;
	assert_non_null(c);
	assert_true(config_daemon(c)->knock.on);
	assert_int_equal(shuffle_map_new(s, c, NULL, &m), 0);
	/* 19 free ports for each protocol: 2,000 draws would land on 10
	 * about 105 times each if it were in the UDP pool. */
	for (int i = 0; i < 2000; i++) {
		assert_int_equal(shuffle_map_redraw(s, c, NULL, m, 0), 0);
		for (size_t k = 0; k < m->entries[0].npairs; k++) {
			const struct shuffle_pair *pr = &m->entries[0].pairs[k];

			if (pr->proto == CONFIG_UDP)
				assert_int_not_equal(pr->redirect, 10);
			else if (pr->redirect == 10)
				tcp_on_10++;
		}
	}
	/* TCP's pool keeps it: the knock is UDP only. */
	assert_true(tcp_on_10 > 0);
	shuffle_map_free(m);
	config_free(c);
	shuffle_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_distinct_unused_in_range),
		cmocka_unit_test(test_full_and_overfull),
		cmocka_unit_test(test_uniformity_chi_square),
		cmocka_unit_test(test_uniform_small_bounds),
		cmocka_unit_test(test_map_for_config),
		cmocka_unit_test(test_knock_port_never_drawn),
		cmocka_unit_test(test_plan_reused_uniform),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
