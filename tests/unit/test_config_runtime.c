/* Runtime watched entries in the configuration (config_runtime.c): add,
 * remove, take and put back round-trips; lookups, covers and the entries
 * inside a network after many changes, against a brute-force model; the
 * refusals (template mode, trusted, overlapping prefixes, repeats, too few
 * free ports) and the ports an entry's ignore lists leave. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "support.h"

static const char *const NFT =
	"\"max_port_number\": 1000, \"tcp_ports\": [22, 80, 443], "
	"\"udp_ports\": [53, 123], \"table_name\": \"mtd_ports\", "
	"\"watched_addresses\": [{\"ip\": \"10.0.0.3\"}, "
	"{\"ip\": \"10.2.2.0/26\"}, {\"ip\": \"10.2.2.9\"}, "
	"{\"ip\": \"2001:db8::/48\"}], "
	"\"trusted_addresses\": [\"10.2.3.0/25\", \"10.2.1.17\", "
	"\"2001:db8:5::c0/123\"]";

static const size_t no_n[CONFIG_NPROTO];

static struct config_net net(const char *s)
{
	struct config_net n;

	assert_int_equal(config_parse_net(s, true, &n), 0);
	return n;
}

static int add(struct config *c, const char *s, size_t *ret_idx)
{
	struct config_net n = net(s);
	char why[512] = "";
	size_t idx = SIZE_MAX;
	int r = config_watched_add(c, &n, NULL, no_n, why, sizeof(why), &idx);

	/* Every refusal but a repeat (and memory) says why. */
	if (r < 0 && r != -EEXIST)
		assert_true(why[0] != '\0');
	if (ret_idx)
		*ret_idx = idx;
	return r;
}

/* The entries in index order, with what each holds. */
static char *dump(const struct config *c)
{
	size_t cap = 1 << 16, len = 0;
	char *s = malloc(cap);

	assert_non_null(s);
	len += (size_t)snprintf(s, cap, "%zu pairs;", config_pair_count(c));
	for (size_t i = 0; i < config_watched_count(c); i++) {
		const struct config_watched *w = config_watched(c, i);

		len += (size_t)snprintf(s + len, cap - len, " %zu:%s%s", i,
					w->net.text, w->runtime ? "*" : "");
		for (int p = 0; p < CONFIG_NPROTO; p++)
			for (size_t k = 0; k < w->nports[p]; k++)
				len += (size_t)snprintf(s + len, cap - len,
							"%c%u", p ? 'u' : 't',
							w->ports[p][k]);
		assert_true(len < cap - 256);
	}
	return s;
}

/* Every entry is found at its index, by its text and by lookup. */
static void check_index(const struct config *c)
{
	size_t pairs = 0;

	for (size_t i = 0; i < config_watched_count(c); i++) {
		const struct config_watched *w = config_watched(c, i);

		assert_string_equal(w->ip, w->net.text);
		assert_int_equal(w->family, w->net.family);
		assert_int_equal(config_watched_find(c, w->net.text), (long)i);
		assert_int_equal(config_watched_lookup(c, w->net.text), (long)i);
		assert_int_equal(w->runtime, i >= config_configured_count(c));
		pairs += w->nports[0] + w->nports[1];
	}
	assert_int_equal(pairs, config_pair_count(c));
}

static void test_add_remove_round_trip(void **state)
{
	struct config *c = support_load_nftables(NFT);
	size_t n0 = config_watched_count(c), p0 = config_pair_count(c);
	char *before = dump(c), *after;
	size_t idx, moved;

	(void)state;
	assert_int_equal(config_configured_count(c), n0);
	assert_int_equal(add(c, "10.2.0.5", &idx), 0);
	assert_int_equal(idx, n0);
	assert_int_equal(config_watched_count(c), n0 + 1);
	assert_int_equal(config_pair_count(c), p0 + 5);
	assert_true(config_watched(c, idx)->runtime);
	assert_int_equal(config_watched_find(c, "10.2.0.5"), (long)idx);
	assert_int_equal(config_watched_find(c, "10.2.0.5/32"), (long)idx);
	/* A repeat names the entry it repeats. */
	assert_int_equal(add(c, "10.2.0.5", &idx), -EEXIST);
	assert_int_equal(idx, n0);
	assert_int_equal(add(c, "10.0.0.3", &idx), -EEXIST);
	assert_int_equal(idx, 0);
	/* The file's entries stay. */
	assert_int_equal(config_watched_remove(c, 0, &moved), -EPERM);
	assert_int_equal(config_watched_remove(c, n0 + 1, &moved), -EPERM);
	assert_int_equal(config_watched_remove(c, n0, &moved), 0);
	assert_int_equal(moved, n0);
	assert_int_equal(config_watched_find(c, "10.2.0.5"), -1);
	after = dump(c);
	assert_string_equal(after, before);
	free(after);
	/* Many, removed from the middle: the last takes the place. */
	for (unsigned i = 0; i < 40; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.2.0.%u", 100 + i);
		assert_int_equal(add(c, a, &idx), 0);
		assert_int_equal(idx, n0 + i);
	}
	check_index(c);
	assert_int_equal(config_watched_remove(c, n0 + 3, &moved), 0);
	assert_int_equal(moved, n0 + 39);
	assert_string_equal(config_watched(c, n0 + 3)->net.text, "10.2.0.139");
	assert_int_equal(config_watched_find(c, "10.2.0.103"), -1);
	check_index(c);
	while (config_watched_count(c) > n0)
		assert_int_equal(config_watched_remove(c, n0, &moved), 0);
	check_index(c);
	after = dump(c);
	assert_string_equal(after, before);
	free(after);
	free(before);
	config_free(c);
}

/* Taken in some order, put back in the reverse: exactly as before. */
static void test_take_put_back(void **state)
{
	struct config *c = support_load_nftables(NFT);
	static const char *const a[] = { "10.2.0.0/24", "10.2.0.7", "10.2.1.1",
					 "2001:db8:5::7", "10.2.1.2",
					 "2001:db8:5::/124", "10.2.1.3" };
	size_t n0 = config_watched_count(c), order[] = { 2, 0, 4, 3 };
	struct config_watched taken[4];
	size_t at[4], from[4], idx;
	char *before, *after;

	(void)state;
	for (size_t i = 0; i < 7; i++)
		assert_int_equal(add(c, a[i], &idx), 0);
	before = dump(c);
	for (size_t k = 0; k < 4; k++) {
		at[k] = config_watched_find(c, a[order[k]]);
		assert_int_equal(config_watched_take(c, at[k], &taken[k],
						     &from[k]), 0);
		assert_string_equal(taken[k].net.text, a[order[k]]);
		assert_int_equal(config_watched_find(c, a[order[k]]), -1);
		assert_int_equal(from[k], config_watched_count(c));
		check_index(c);
	}
	assert_int_equal(config_watched_count(c), n0 + 3);
	for (size_t k = 4; k-- > 0;) {
		config_watched_put_back(c, at[k], &taken[k]);
		check_index(c);
	}
	after = dump(c);
	assert_string_equal(after, before);
	free(after);
	/* Taken and released: gone for good. */
	at[0] = config_watched_find(c, "10.2.0.0/24");
	assert_int_equal(config_watched_take(c, at[0], &taken[0], &from[0]), 0);
	config_watched_release(&taken[0]);
	assert_int_equal(config_watched_lookup(c, "10.2.0.8"), -1);
	assert_int_equal(config_watched_lookup(c, "10.2.0.7"),
			 config_watched_find(c, "10.2.0.7"));
	check_index(c);
	free(before);
	config_free(c);
}

/* --- the brute-force model ------------------------------------------------ */

static bool inside(const struct config_net *in, const struct config_net *out)
{
	return in->family == out->family &&
	       config_net_value(out, false) <= config_net_value(in, false) &&
	       config_net_value(in, true) <= config_net_value(out, true);
}

static bool overlap(const struct config_net *x, const struct config_net *y)
{
	return inside(x, y) || inside(y, x);
}

/* What config_watched_add should answer for n. */
static int expected_add(const struct config *c, const struct config_net *n)
{
	for (size_t i = 0; i < config_watched_count(c); i++)
		if (config_net_cmp(&config_watched(c, i)->net, n) == 0)
			return -EEXIST;
	for (size_t i = 0; i < config_trusted_count(c); i++)
		if (inside(n, config_trusted(c, i)))
			return -EPERM;
	for (size_t i = 0; n->is_prefix && i < config_watched_count(c); i++) {
		const struct config_watched *w = config_watched(c, i);

		if (w->net.is_prefix && overlap(&w->net, n))
			return -EINVAL;
	}
	return 0;
}

/* The narrowest entry covering n (n's own first), strictly wider only if
 * strict; -1 if none. */
static long expected_cover(const struct config *c, const struct config_net *n,
			   bool strict)
{
	long best = -1;

	for (size_t i = 0; i < config_watched_count(c); i++) {
		const struct config_net *w = &config_watched(c, i)->net;

		if (!inside(n, w) || (strict && w->prefix_len >= n->prefix_len))
			continue;
		if (best < 0 ||
		    w->prefix_len > config_watched(c, best)->net.prefix_len)
			best = (long)i;
	}
	return best;
}

struct seen_inside {
	bool hit[512];
	size_t n;
};

static int note_inside(void *arg, size_t idx)
{
	struct seen_inside *s = arg;

	assert_true(idx < 512);
	assert_false(s->hit[idx]);
	s->hit[idx] = true;
	s->n++;
	return 0;
}

static uint64_t rnd_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 0x2545f4914f6cdd1dull;
}

/* A network in 10.2.0.0/22 or 2001:db8:5::/120 (lengths that nest). */
static struct config_net random_net(void)
{
	static const unsigned v4len[] = { 32, 32, 32, 31, 30, 28, 26, 24, 23,
					  22 };
	static const unsigned v6len[] = { 128, 128, 126, 124, 122, 120 };
	char buf[64];

	if (rnd() % 4) {
		unsigned l = v4len[rnd() % 10];
		uint32_t a = (10u << 24) | (2u << 16) | (uint32_t)(rnd() % 1024);
		struct in_addr in;
		char s[INET_ADDRSTRLEN];

		if (l < 32)
			a &= ~((1u << (32 - l)) - 1);
		in.s_addr = htonl(a);
		inet_ntop(AF_INET, &in, s, sizeof(s));
		snprintf(buf, sizeof(buf), l < 32 ? "%s/%u" : "%s", s, l);
	} else {
		unsigned l = v6len[rnd() % 6];
		unsigned low = (unsigned)(rnd() % 256);

		if (l < 128)
			low &= ~((1u << (128 - l)) - 1);
		snprintf(buf, sizeof(buf), l < 128 ? "2001:db8:5::%x/%u" :
			 "2001:db8:5::%x", low, l);
	}
	return net(buf);
}

static void check_queries(const struct config *c)
{
	for (int q = 0; q < 40; q++) {
		struct config_net n = random_net();
		struct seen_inside s = { { false }, 0 };
		size_t want = 0;

		assert_int_equal(config_watched_lookup(c, n.text),
				 expected_cover(c, &n, false));
		assert_int_equal(config_watched_cover(c, &n),
				 expected_cover(c, &n, true));
		assert_int_equal(config_watched_inside(c, &n, note_inside, &s),
				 0);
		for (size_t i = 0; i < config_watched_count(c); i++) {
			const struct config_net *w = &config_watched(c, i)->net;
			bool in = inside(w, &n) && config_net_cmp(w, &n) != 0;

			if (in != s.hit[i])
				fail_msg("inside %s: %s %s", n.text, w->text,
					 in ? "missed" : "reported");
			want += in;
		}
		assert_int_equal(s.n, want);
	}
}

static void test_against_model(void **state)
{
	struct config *c = support_load_nftables(NFT);
	size_t n0 = config_watched_count(c);
	size_t counts[5] = { 0 };	/* 0, EEXIST, EPERM, EINVAL, removes */

	(void)state;
	check_queries(c);
	for (int step = 0; step < 3000; step++) {
		size_t nrt = config_watched_count(c) - n0, idx, moved;

		if (nrt == 0 || (nrt < 200 && rnd() % 3)) {
			struct config_net n = random_net();
			int want = expected_add(c, &n);
			char why[512];
			int r = config_watched_add(c, &n, NULL, no_n, why,
						   sizeof(why), &idx);

			if (r != want)
				fail_msg("add %s: %d, expected %d", n.text, r,
					 want);
			counts[r == 0 ? 0 : r == -EEXIST ? 1 :
			       r == -EPERM ? 2 : 3]++;
			if (r == -EEXIST)
				assert_int_equal(config_net_cmp(
					&config_watched(c, idx)->net, &n), 0);
		} else {
			char *gone;
			size_t last = config_watched_count(c) - 1;

			idx = n0 + rnd() % nrt;
			gone = strdup(config_watched(c, idx)->net.text);
			assert_int_equal(config_watched_remove(c, idx, &moved),
					 0);
			assert_int_equal(moved, last);
			assert_int_equal(config_watched_find(c, gone), -1);
			free(gone);
			counts[4]++;
		}
		check_index(c);
		if (step % 10 == 0)
			check_queries(c);
	}
	for (int k = 0; k < 5; k++)
		assert_true(counts[k] > 50);
	config_free(c);
}

/* An address inside a watched prefix that starts where it does: the
 * prefix is around the address, not inside it. */
static void test_inside_same_start(void **state)
{
	struct config *c = support_load_nftables(NFT);
	struct config_net a = net("10.2.2.0"), p = net("10.2.2.0/28");
	struct seen_inside s = { { false }, 0 };

	(void)state;
	assert_int_equal(config_watched_inside(c, &a, note_inside, &s), 0);
	assert_int_equal(s.n, 0);	/* 10.2.2.0/26 is around it */
	assert_int_equal(config_watched_inside(c, &p, note_inside, &s), 0);
	assert_int_equal(s.n, 1);	/* 10.2.2.9 */
	assert_true(s.hit[config_watched_find(c, "10.2.2.9")]);
	config_free(c);
}

/* Ignore lists leave the other ports; ports not of the protocol's are no
 * matter. */
static void test_ignore_ports(void **state)
{
	struct config *c = support_load_nftables(NFT);
	static const uint16_t tcp[] = { 22, 443, 999 }, udp[] = { 53, 123 };
	const uint16_t *ign[CONFIG_NPROTO] = { tcp, udp };
	size_t nign[CONFIG_NPROTO] = { 3, 2 };
	size_t p0 = config_pair_count(c), idx;
	const struct config_watched *w;
	struct config_net n = net("2001:db8:5::/124");
	char why[512];

	(void)state;
	assert_int_equal(config_watched_add(c, &n, ign, nign, why, sizeof(why),
					    &idx), 0);
	w = config_watched(c, idx);
	assert_int_equal(w->nports[CONFIG_TCP], 1);
	assert_int_equal(w->ports[CONFIG_TCP][0], 80);
	assert_int_equal(w->nports[CONFIG_UDP], 0);
	assert_int_equal(w->nignore[CONFIG_TCP], 3);
	assert_memory_equal(w->ignore[CONFIG_TCP], tcp, sizeof(tcp));
	assert_int_equal(w->nignore[CONFIG_UDP], 2);
	assert_memory_equal(w->ignore[CONFIG_UDP], udp, sizeof(udp));
	assert_int_equal(config_pair_count(c), p0 + 1);
	/* Only UDP ignored; NULL lists: every port. */
	nign[CONFIG_TCP] = 0;
	ign[CONFIG_TCP] = NULL;
	nign[CONFIG_UDP] = 1;
	n = net("10.2.0.1");
	assert_int_equal(config_watched_add(c, &n, ign, nign, why, sizeof(why),
					    &idx), 0);
	w = config_watched(c, idx);
	assert_int_equal(w->nports[CONFIG_TCP], 3);
	assert_int_equal(w->nports[CONFIG_UDP], 1);
	assert_int_equal(w->ports[CONFIG_UDP][0], 123);
	n = net("10.2.0.2");
	assert_int_equal(config_watched_add(c, &n, NULL, NULL, why, sizeof(why),
					    &idx), 0);
	assert_int_equal(config_watched(c, idx)->nports[CONFIG_TCP], 3);
	assert_int_equal(config_watched(c, idx)->nports[CONFIG_UDP], 2);
	assert_int_equal(config_pair_count(c), p0 + 1 + 4 + 5);
	check_index(c);
	config_free(c);
}

/* Too few free redirect ports: -ENOSPC, with the numbers. */
static void test_no_space(void **state)
{
	struct config *c = support_load_nftables(
		"\"max_port_number\": 10, \"tcp_ports\": [1, 2, 3, 4, 5, 6], "
		"\"udp_ports\": [7], \"table_name\": \"mtd_ports\", "
		"\"watched_addresses\": [{\"ip\": \"10.0.0.3\", "
		"\"tcp_ignore\": [1, 2, 3, 4]}]");
	static const uint16_t two[] = { 1, 2 };
	const uint16_t *ign[CONFIG_NPROTO] = { two, NULL };
	size_t nign[CONFIG_NPROTO] = { 2, 0 };
	struct config_net n = net("10.2.0.1");
	char *before = dump(c), *after;
	char why[512] = "";
	size_t idx;

	(void)state;
	/* Six TCP ports to redirect, 10 - 6 = 4 free. */
	assert_int_equal(config_watched_add(c, &n, NULL, NULL, why, sizeof(why),
					    &idx), -ENOSPC);
	assert_non_null(strstr(why, "\"10.2.0.1\" needs 6 free TCP redirect ports"));
	assert_non_null(strstr(why, "leaves 4"));
	after = dump(c);
	assert_string_equal(after, before);
	free(after);
	/* Four: enough. */
	assert_int_equal(config_watched_add(c, &n, ign, nign, why, sizeof(why),
					    &idx), 0);
	assert_int_equal(config_watched(c, idx)->nports[CONFIG_TCP], 4);
	free(before);
	config_free(c);
}

/* map_capacity: an address past the swap maps' pairs of its family is
 * refused (nothing changes), prefixes and the other family are not
 * counted, and what goes out (removed, or taken) makes room. */
static void test_map_capacity(void **state)
{
	struct config *c = support_load_nftables(
		"\"max_port_number\": 1000, \"tcp_ports\": [22, 80, 443], "
		"\"udp_ports\": [53, 123], \"map_capacity\": 2, "
		"\"watched_addresses\": [{\"ip\": \"10.0.0.3\"}]");
	struct config_watched w;
	struct config_net n = net("10.9.0.2");
	char why[512] = "", *before, *after;
	size_t a, b, moved;

	(void)state;
	/* 2 addresses of 5 services: 10 pairs a family, 20 elements. */
	assert_int_equal(config_map_pairs(c), 10);
	assert_int_equal(config_map_size(c), 20);
	assert_int_equal(add(c, "10.9.0.1", &a), 0);
	before = dump(c);
	assert_int_equal(config_watched_add(c, &n, NULL, no_n, why,
					    sizeof(why), &b), -ENOSPC);
	assert_non_null(strstr(why, "\"10.9.0.2\" needs 5 pairs and the IPv4 "
				    "maps have room for 0 more (10 of 10 "
				    "pairs: map_capacity 2)"));
	after = dump(c);
	assert_string_equal(after, before);
	free(after);
	free(before);
	assert_int_equal(add(c, "10.8.0.0/24", NULL), 0);
	assert_int_equal(add(c, "2001:db8:7::1", NULL), 0);
	assert_int_equal(add(c, "2001:db8:7::2", NULL), 0);
	assert_int_equal(add(c, "2001:db8:7::3", NULL), -ENOSPC);
	/* Taken out, it makes room; put back, the room is gone again. */
	assert_int_equal(config_watched_take(c, a, &w, &moved), 0);
	assert_int_equal(add(c, "10.9.0.2", &b), 0);
	assert_int_equal(config_watched_remove(c, b, &moved), 0);
	config_watched_put_back(c, a, &w);
	assert_int_equal(add(c, "10.9.0.2", NULL), -ENOSPC);
	assert_int_equal(config_watched_remove(c, a, &moved), 0);
	assert_int_equal(add(c, "10.9.0.2", NULL), 0);
	config_free(c);
}

/* Template mode holds no runtime entries. */
static void test_template_refused(void **state)
{
	struct config *c = support_load("valid/reference.json");
	size_t n0 = config_watched_count(c), idx;
	struct config_net n = net("10.2.0.1");
	char why[512] = "";

	(void)state;
	assert_int_equal(config_mode(c), CONFIG_MODE_TEMPLATE);
	assert_int_equal(config_watched_add(c, &n, NULL, NULL, why, sizeof(why),
					    &idx), -EOPNOTSUPP);
	assert_non_null(strstr(why, "native mode"));
	assert_int_equal(config_watched_count(c), n0);
	config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_remove_round_trip),
		cmocka_unit_test(test_take_put_back),
		cmocka_unit_test(test_against_model),
		cmocka_unit_test(test_inside_same_start),
		cmocka_unit_test(test_ignore_ports),
		cmocka_unit_test(test_no_space),
		cmocka_unit_test(test_map_capacity),
		cmocka_unit_test(test_template_refused),
	};

	if (chdir(CORPUS_DIR) < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
