/* The runtime watch list's bookkeeping: holders across origins, refresh,
 * expiry to the second, limits, origins and their counters, the order of
 * the walks, and a list of 100,000 entries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>

#include "watchlist.h"

static const size_t no_n[CONFIG_NPROTO];

static struct config_net net(const char *s)
{
	struct config_net n;

	assert_int_equal(config_parse_net(s, true, &n), 0);
	return n;
}

static int put(struct watchlist *w, const char *s, const char *origin,
	       int64_t expires)
{
	struct config_net n = net(s);

	return watchlist_put(w, &n, origin, 1000, expires, NULL, no_n);
}

static size_t holders(const struct watchlist *w, const char *s)
{
	struct config_net n = net(s);

	return watchlist_holders(w, &n);
}

static const struct watchlist_item *get(const struct watchlist *w,
					const char *s, const char *origin)
{
	struct config_net n = net(s);

	return watchlist_get(w, &n, origin);
}

static int del(struct watchlist *w, const char *s, const char *origin)
{
	struct config_net n = net(s);

	return watchlist_del(w, &n, origin);
}

static const struct watchlist_origin_stats *stats(const struct watchlist *w,
						  const char *name)
{
	for (size_t i = 0; i < watchlist_origin_count(w); i++)
		if (strcmp(watchlist_origin(w, i)->name, name) == 0)
			return watchlist_origin(w, i);
	fail_msg("no origin %s", name);
	return NULL;
}

/* Collects "net origin expires" lines, one string. */
struct collect {
	char text[4096];
	size_t n;
};

static int collect(void *arg, const struct watchlist_item *it)
{
	struct collect *c = arg;
	size_t o = strlen(c->text);

	snprintf(c->text + o, sizeof(c->text) - o, "%s %s %lld\n",
		 it->net.text, it->origin, (long long)it->expires);
	c->n++;
	return 0;
}

static void collect_void(void *arg, const struct watchlist_item *it)
{
	collect(arg, it);
}

/* One jail's unban never undoes another's ban. */
static void test_holders_across_origins(void **state)
{
	struct watchlist *w = watchlist_new(100);
	const struct watchlist_item *it;

	(void)state;
	assert_int_equal(put(w, "192.0.2.7", "f2b.sshd", 0), 1);
	assert_int_equal(put(w, "192.0.2.7", "ids", 0), 1);
	assert_int_equal(put(w, "192.0.2.8", "ids", 0), 1);
	assert_int_equal(holders(w, "192.0.2.7"), 2);
	assert_int_equal(holders(w, "192.0.2.9"), 0);
	assert_int_equal(watchlist_count(w), 3);
	assert_int_equal(del(w, "192.0.2.7", "f2b.sshd"), 0);
	assert_int_equal(holders(w, "192.0.2.7"), 1);
	assert_null(get(w, "192.0.2.7", "f2b.sshd"));
	it = get(w, "192.0.2.7", "ids");
	assert_non_null(it);
	assert_string_equal(it->origin, "ids");
	assert_string_equal(it->net.text, "192.0.2.7");
	assert_int_equal(del(w, "192.0.2.7", "f2b.sshd"), -ENOENT);
	assert_int_equal(del(w, "192.0.2.7", "nobody"), -ENOENT);
	assert_int_equal(del(w, "192.0.2.7", "ids"), 0);
	assert_int_equal(holders(w, "192.0.2.7"), 0);
	{
		struct config_net n = net("192.0.2.7");

		assert_null(watchlist_latest(w, &n));
		assert_false(watchlist_has(w, &n, "ids"));
	}
	assert_int_equal(watchlist_count(w), 1);
	/* "a/32" and "a" are one network. */
	assert_int_equal(put(w, "192.0.2.8/32", "ids", 0), 0);
	assert_int_equal(holders(w, "192.0.2.8"), 1);
	watchlist_free(w);
	watchlist_free(NULL);
}

/* The latest put's entry is the one whose ignore lists apply. */
static void test_latest_and_ignore(void **state)
{
	struct watchlist *w = watchlist_new(100);
	struct config_net n = net("2001:db8::/48");
	static const uint16_t tcp[] = { 22, 443 }, udp[] = { 53 };
	static const uint16_t bad[] = { 443, 22 };
	const uint16_t *ign[CONFIG_NPROTO] = { tcp, udp };
	size_t nign[CONFIG_NPROTO] = { 2, 1 };
	const struct watchlist_item *a, *b;

	(void)state;
	assert_int_equal(watchlist_put(w, &n, "x", 10, 0, ign, nign), 1);
	assert_int_equal(watchlist_put(w, &n, "y", 20, 0, NULL, NULL), 1);
	assert_string_equal(watchlist_latest(w, &n)->origin, "y");
	a = watchlist_get(w, &n, "x");
	b = watchlist_get(w, &n, "y");
	/* Both stay valid until the list changes; a lookup again is the
	 * same item. */
	assert_ptr_equal(watchlist_get(w, &n, "x"), a);
	assert_ptr_equal(watchlist_latest(w, &n), b);
	assert_int_equal(a->nignore[CONFIG_TCP], 2);
	assert_int_equal(a->ignore[CONFIG_TCP][0], 22);
	assert_int_equal(a->ignore[CONFIG_TCP][1], 443);
	assert_int_equal(a->nignore[CONFIG_UDP], 1);
	assert_int_equal(a->ignore[CONFIG_UDP][0], 53);
	assert_int_equal(b->nignore[CONFIG_TCP], 0);
	assert_non_null(b->ignore[CONFIG_TCP]);
	assert_string_equal(a->net.text, "2001:db8::/48");
	assert_true(a->net.is_prefix);
	assert_int_equal(a->added, 10);
	/* A refresh of x makes it the latest, with its new lists. */
	nign[CONFIG_TCP] = 1;
	nign[CONFIG_UDP] = 0;
	assert_int_equal(watchlist_put(w, &n, "x", 30, 0, ign, nign), 0);
	a = watchlist_latest(w, &n);
	assert_string_equal(a->origin, "x");
	assert_int_equal(a->added, 10);
	assert_int_equal(a->nignore[CONFIG_TCP], 1);
	assert_int_equal(a->nignore[CONFIG_UDP], 0);
	assert_int_equal(watchlist_del(w, &n, "x"), 0);
	assert_string_equal(watchlist_latest(w, &n)->origin, "y");
	/* Lists must be sorted and distinct. */
	ign[CONFIG_TCP] = bad;
	nign[CONFIG_TCP] = 2;
	assert_int_equal(watchlist_put(w, &n, "z", 30, 0, ign, nign), -EINVAL);
	assert_int_equal(watchlist_count(w), 1);
	watchlist_free(w);
}

/* A refresh moves the expiry, either way, or takes it away. */
static void test_refresh(void **state)
{
	struct watchlist *w = watchlist_new(100);

	(void)state;
	assert_int_equal(put(w, "198.51.100.0/24", "ids", 5000), 1);
	assert_int_equal(watchlist_next_expiry(w), 5000);
	assert_int_equal(put(w, "198.51.100.0/24", "ids", 7000), 0);
	assert_int_equal(get(w, "198.51.100.0/24", "ids")->expires, 7000);
	assert_int_equal(watchlist_next_expiry(w), 7000);
	assert_int_equal(put(w, "198.51.100.0/24", "ids", 3000), 0);
	assert_int_equal(watchlist_next_expiry(w), 3000);
	assert_int_equal(watchlist_expire(w, 5000, 0, NULL, NULL), 1);
	assert_int_equal(put(w, "198.51.100.0/24", "ids", 3000), 1);
	assert_int_equal(put(w, "198.51.100.0/24", "ids", 0), 0);
	assert_int_equal(watchlist_next_expiry(w), 0);
	assert_int_equal(watchlist_expire(w, INT64_MAX, 0, NULL, NULL), 0);
	assert_int_equal(watchlist_count(w), 1);
	assert_int_equal(stats(w, "ids")->adds, 2);
	assert_int_equal(stats(w, "ids")->refreshes, 3);
	assert_int_equal(stats(w, "ids")->expiries, 1);
	watchlist_free(w);
}

/* Entries go at their second, not before, earliest first. */
static void test_expiry_order(void **state)
{
	struct watchlist *w = watchlist_new(100);
	struct collect c = { "", 0 };

	(void)state;
	assert_int_equal(put(w, "10.0.0.1", "a", 10), 1);
	assert_int_equal(put(w, "10.0.0.2", "a", 5), 1);
	assert_int_equal(put(w, "10.0.0.3", "b", 7), 1);
	assert_int_equal(put(w, "10.0.0.4", "a", 0), 1);
	assert_int_equal(put(w, "10.0.0.5", "b", 5), 1);
	assert_int_equal(put(w, "10.0.0.1", "b", 6), 1);
	assert_int_equal(watchlist_next_expiry(w), 5);
	assert_int_equal(watchlist_expire(w, 4, 0, collect_void, &c), 0);
	assert_int_equal(watchlist_expire(w, 5, 0, collect_void, &c), 2);
	assert_string_equal(c.text, "10.0.0.2 a 5\n10.0.0.5 b 5\n");
	assert_int_equal(watchlist_next_expiry(w), 6);
	/* At most max of them per call. */
	c.text[0] = '\0';
	assert_int_equal(watchlist_expire(w, 100, 1, collect_void, &c), 1);
	assert_string_equal(c.text, "10.0.0.1 b 6\n");
	assert_int_equal(holders(w, "10.0.0.1"), 1);
	assert_int_equal(watchlist_next_expiry(w), 7);
	assert_int_equal(watchlist_expire(w, 9, 0, collect_void, &c), 1);
	assert_int_equal(watchlist_next_expiry(w), 10);
	assert_int_equal(watchlist_expire(w, 10, 0, NULL, NULL), 1);
	assert_int_equal(watchlist_next_expiry(w), 0);
	assert_int_equal(watchlist_count(w), 1);
	assert_non_null(get(w, "10.0.0.4", "a"));
	assert_int_equal(stats(w, "a")->expiries, 2);
	assert_int_equal(stats(w, "b")->expiries, 3);
	assert_int_equal(stats(w, "b")->entries, 0);
	watchlist_free(w);
}

static void test_limits(void **state)
{
	struct watchlist *w = watchlist_new(3);
	char name[WATCHLIST_ORIGIN_MAX + 2];

	(void)state;
	assert_int_equal(put(w, "10.0.0.1", "a", 0), 1);
	assert_int_equal(put(w, "10.0.0.1", "b", 0), 1);
	assert_int_equal(put(w, "10.0.0.2", "a", 0), 1);
	assert_int_equal(put(w, "10.0.0.3", "a", 0), -E2BIG);
	assert_int_equal(put(w, "10.0.0.1", "c", 0), -E2BIG);
	/* A refresh needs no room. */
	assert_int_equal(put(w, "10.0.0.1", "b", 9), 0);
	assert_int_equal(del(w, "10.0.0.1", "a"), 0);
	assert_int_equal(put(w, "10.0.0.3", "a", 0), 1);
	assert_int_equal(watchlist_count(w), 3);
	/* Origin names. */
	assert_true(watchlist_origin_valid("f2b.sshd-2_x"));
	assert_false(watchlist_origin_valid(""));
	assert_false(watchlist_origin_valid(NULL));
	assert_false(watchlist_origin_valid("Manual"));
	assert_false(watchlist_origin_valid("a b"));
	assert_false(watchlist_origin_valid("a/b"));
	assert_false(watchlist_origin_valid("a\n"));
	memset(name, 'a', sizeof(name));
	name[WATCHLIST_ORIGIN_MAX] = '\0';
	assert_true(watchlist_origin_valid(name));
	name[WATCHLIST_ORIGIN_MAX] = 'a';
	name[WATCHLIST_ORIGIN_MAX + 1] = '\0';
	assert_false(watchlist_origin_valid(name));
	assert_int_equal(del(w, "10.0.0.3", "a"), 0);
	assert_int_equal(put(w, "10.0.0.3", name, 0), -EINVAL);
	assert_int_equal(put(w, "10.0.0.3", "Bad", 0), -EINVAL);
	assert_int_equal(watchlist_count(w), 2);
	watchlist_free(w);

	/* WATCHLIST_MAX_ORIGINS origins, and no more. */
	w = watchlist_new(WATCHLIST_MAX_ORIGINS + 10);
	for (int i = 0; i < WATCHLIST_MAX_ORIGINS; i++) {
		snprintf(name, sizeof(name), "o%d", i);
		assert_int_equal(put(w, "10.0.0.1", name, 0), 1);
	}
	assert_int_equal(holders(w, "10.0.0.1"), WATCHLIST_MAX_ORIGINS);
	assert_int_equal(put(w, "10.0.0.1", "one.more", 0), -E2BIG);
	assert_int_equal(put(w, "10.0.0.2", "o7", 0), 1);
	assert_int_equal(del(w, "10.0.0.1", "o1000"), 0);
	assert_int_equal(holders(w, "10.0.0.1"), WATCHLIST_MAX_ORIGINS - 1);
	assert_int_equal(watchlist_origin_count(w), WATCHLIST_MAX_ORIGINS);
	watchlist_free(w);
}

static void test_flush(void **state)
{
	struct watchlist *w = watchlist_new(100);
	struct collect c = { "", 0 };

	(void)state;
	assert_int_equal(put(w, "10.0.0.1", "a", 0), 1);
	assert_int_equal(put(w, "10.0.0.1", "b", 0), 1);
	assert_int_equal(put(w, "10.0.1.0/24", "a", 50), 1);
	assert_int_equal(put(w, "10.0.0.2", "b", 60), 1);
	assert_int_equal(watchlist_flush(w, "a", collect_void, &c), 2);
	assert_int_equal(c.n, 2);
	assert_non_null(strstr(c.text, "10.0.0.1 a 0\n"));
	assert_non_null(strstr(c.text, "10.0.1.0/24 a 50\n"));
	assert_int_equal(holders(w, "10.0.0.1"), 1);
	assert_int_equal(holders(w, "10.0.1.0/24"), 0);
	assert_int_equal(watchlist_next_expiry(w), 60);
	assert_int_equal(watchlist_count(w), 2);
	assert_int_equal(watchlist_flush(w, "a", NULL, NULL), 0);
	assert_int_equal(watchlist_flush(w, "nobody", NULL, NULL), 0);
	assert_int_equal(watchlist_flush(w, "b", NULL, NULL), 2);
	assert_int_equal(watchlist_count(w), 0);
	assert_int_equal(watchlist_next_expiry(w), 0);
	assert_int_equal(stats(w, "a")->deletes, 2);
	assert_int_equal(stats(w, "b")->deletes, 2);
	/* Freed records are used again. */
	assert_int_equal(put(w, "10.0.0.9", "b", 0), 1);
	assert_int_equal(holders(w, "10.0.0.9"), 1);
	watchlist_free(w);
}

static void test_origin_counters(void **state)
{
	struct watchlist *w = watchlist_new(100);
	const struct watchlist_origin_stats *s;

	(void)state;
	assert_int_equal(put(w, "10.0.0.1", "redis", 0), 1);
	assert_int_equal(put(w, "10.0.0.1", "redis", 0), 0);
	assert_int_equal(put(w, "10.0.0.2", "redis", 5), 1);
	assert_int_equal(put(w, "10.0.0.3", "manual", 0), 1);
	assert_int_equal(del(w, "10.0.0.1", "redis"), 0);
	assert_int_equal(watchlist_expire(w, 5, 0, NULL, NULL), 1);
	watchlist_count_refused(w, "redis");
	watchlist_count_refused(w, "crowdsec");
	watchlist_count_refused(w, "No Such");
	/* In name order, the refused-only origin too. */
	assert_int_equal(watchlist_origin_count(w), 3);
	assert_string_equal(watchlist_origin(w, 0)->name, "crowdsec");
	assert_string_equal(watchlist_origin(w, 1)->name, "manual");
	assert_string_equal(watchlist_origin(w, 2)->name, "redis");
	assert_null(watchlist_origin(w, 3));
	s = stats(w, "redis");
	assert_int_equal(s->entries, 0);
	assert_int_equal(s->adds, 2);
	assert_int_equal(s->refreshes, 1);
	assert_int_equal(s->deletes, 1);
	assert_int_equal(s->expiries, 1);
	assert_int_equal(s->refused, 1);
	s = stats(w, "crowdsec");
	assert_int_equal(s->refused, 1);
	assert_int_equal(s->adds, 0);
	assert_int_equal(stats(w, "manual")->entries, 1);
	watchlist_free(w);
}

static int stop_at_third(void *arg, const struct watchlist_item *it)
{
	size_t *n = arg;

	(void)it;
	return ++*n == 3 ? 42 : 0;
}

/* By family, address bytes, prefix length, then origin name. */
/* Refusals with made-up origins take at most half the origin table: a
 * detector's first add always finds room. */
static void test_refusals_leave_room(void **state)
{
	struct watchlist *w = watchlist_new(100);
	char name[32];

	(void)state;
	assert_non_null(w);
	for (int i = 0; i < WATCHLIST_MAX_ORIGINS; i++) {
		snprintf(name, sizeof(name), "junk%d", i);
		watchlist_count_refused(w, name);
	}
	assert_int_equal(watchlist_origin_count(w), WATCHLIST_MAX_ORIGINS / 2);
	assert_int_equal(put(w, "10.0.0.1", "crowdsec", 0), 1);
	watchlist_count_refused(w, "crowdsec");	/* known: counted */
	assert_int_equal(watchlist_origin_count(w),
			 WATCHLIST_MAX_ORIGINS / 2 + 1);
	watchlist_free(w);
}

static void test_foreach_order(void **state)
{
	struct watchlist *w = watchlist_new(100);
	struct collect c = { "", 0 };
	size_t n = 0;

	(void)state;
	assert_int_equal(put(w, "2001:db8::1", "b", 0), 1);
	assert_int_equal(put(w, "10.0.0.0/24", "b", 0), 1);
	assert_int_equal(put(w, "10.0.0.0/16", "b", 0), 1);
	assert_int_equal(put(w, "9.255.255.255", "a", 0), 1);
	assert_int_equal(put(w, "10.0.0.1", "zz", 3), 1);
	assert_int_equal(put(w, "10.0.0.1", "a", 4), 1);
	assert_int_equal(put(w, "10.0.0.1", "m", 5), 1);
	assert_int_equal(put(w, "2001:db8::/32", "a", 0), 1);
	assert_int_equal(watchlist_foreach(w, NULL, collect, &c), 0);
	assert_string_equal(c.text,
			    "9.255.255.255 a 0\n"
			    "10.0.0.0/16 b 0\n"
			    "10.0.0.0/24 b 0\n"
			    "10.0.0.1 a 4\n"
			    "10.0.0.1 m 5\n"
			    "10.0.0.1 zz 3\n"
			    "2001:db8::/32 a 0\n"
			    "2001:db8::1 b 0\n");
	c.text[0] = '\0';
	assert_int_equal(watchlist_foreach(w, "a", collect, &c), 0);
	assert_string_equal(c.text, "9.255.255.255 a 0\n10.0.0.1 a 4\n"
			    "2001:db8::/32 a 0\n");
	c.text[0] = '\0';
	assert_int_equal(watchlist_foreach(w, "nobody", collect, &c), 0);
	assert_string_equal(c.text, "");
	/* One per network: the latest put. */
	assert_int_equal(watchlist_foreach_net(w, collect, &c), 0);
	assert_string_equal(c.text,
			    "9.255.255.255 a 0\n"
			    "10.0.0.0/16 b 0\n"
			    "10.0.0.0/24 b 0\n"
			    "10.0.0.1 m 5\n"
			    "2001:db8::/32 a 0\n"
			    "2001:db8::1 b 0\n");
	assert_int_equal(watchlist_foreach(w, NULL, stop_at_third, &n), 42);
	assert_int_equal(n, 3);
	watchlist_free(w);
}

static void test_check_net(void **state)
{
	static const struct {
		const char *net;
		const char *why;	/* NULL: accepted */
	} cases[] = {
		{ "127.0.0.0/8", NULL },
		{ "192.0.2.7", NULL },
		{ "10.0.0.0/16", NULL },
		{ "2001:db8::/32", NULL },
		{ "::1", NULL },
		{ "10.0.0.0/8", "prefix 10.0.0.0/8 is wider than /16, the least "
		  "porthop accepts (min_prefix_len_v4)" },
		{ "2001:db8::/31", "prefix 2001:db8::/31 is wider than /32, the "
		  "least porthop accepts (min_prefix_len_v6)" },
		{ "0.0.0.0", "0.0.0.0 is the unspecified address; expected a "
		  "unicast address or prefix" },
		{ "0.0.0.0/16", "0.0.0.0/16 covers the unspecified address; "
		  "expected a unicast address or prefix" },
		{ "::", "::" " is the unspecified address; expected a unicast "
		  "address or prefix" },
		{ "224.0.0.1", "224.0.0.1 lies in multicast (224.0.0.0/4); "
		  "expected a unicast address or prefix" },
		{ "239.255.0.0/16", "239.255.0.0/16 lies in multicast "
		  "(224.0.0.0/4); expected a unicast address or prefix" },
		{ "255.255.255.255", "255.255.255.255 is the broadcast address; "
		  "expected a unicast address or prefix" },
		{ "ff02::1", "ff02::1 lies in multicast (ff00::/8); expected a "
		  "unicast address or prefix" },
		{ "::ffff:192.0.2.7", "::ffff:192.0.2.7 lies in the IPv4-mapped "
		  "addresses (::ffff:0:0/96), which no packet carries; expected "
		  "the IPv4 form" },
	};
	char why[200];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config_net n = net(cases[i].net);
		int r;

		why[0] = '\0';
		r = watchlist_check_net(&n, cases[i].why ? 16 : 8, 32, why,
					sizeof(why));
		if (cases[i].why == NULL) {
			assert_int_equal(r, 0);
			continue;
		}
		assert_int_equal(r, -EINVAL);
		assert_string_equal(why, cases[i].why);
	}
	/* A wide prefix over multicast, with no minimum. */
	{
		struct config_net n = net("192.0.0.0/2");

		assert_int_equal(watchlist_check_net(&n, 0, 0, NULL, 0), -EINVAL);
		n.family = 0;
		assert_int_equal(watchlist_check_net(&n, 0, 0, why, sizeof(why)),
				 -EINVAL);
	}
}

struct order {
	struct config_net prev;
	size_t n;
	int bad;
};

static int check_order(void *arg, const struct watchlist_item *it)
{
	struct order *o = arg;

	if (o->n > 0 && memcmp(o->prev.addr, it->net.addr, 16) >= 0)
		o->bad++;
	o->prev = it->net;
	o->n++;
	return 0;
}

/* Random puts, deletes, flushes and expiries against a plain array of
 * (network, origin) -> expiry: every figure agrees after each step. */
static void test_against_model(void **state)
{
	enum { NETS = 48, ORIGINS = 4, STEPS = 20000 };
	static const char *const names[ORIGINS] = { "a", "b", "c", "d" };
	int64_t model[NETS][ORIGINS];	/* -1: absent */
	struct watchlist *w = watchlist_new(NETS * ORIGINS / 2);
	struct config_net nets[NETS];
	uint64_t rnd = 42;
	int64_t now = 0;
	size_t full = 0, shared = 0;

	(void)state;
	for (int i = 0; i < NETS; i++) {
		char text[32];

		snprintf(text, sizeof(text), i % 2 ? "10.0.%d.0/24" :
			 "2001:db8:%x::1", i);
		nets[i] = net(text);
		for (int o = 0; o < ORIGINS; o++)
			model[i][o] = -1;
	}
	for (int step = 0; step < STEPS; step++) {
		size_t count = 0, h, op, i, o;
		int64_t next = 0, exp;

		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		op = (rnd >> 33) % 100;
		i = (rnd >> 40) % NETS;
		o = (rnd >> 50) % ORIGINS;
		/* A quarter never expire; the rest within 200 s. */
		exp = (rnd >> 20) % 4 ? now + (int64_t)((rnd >> 24) % 200) + 1
				      : 0;
		for (size_t a = 0; a < NETS; a++)
			for (size_t b = 0; b < ORIGINS; b++)
				count += model[a][b] >= 0;
		if (op < 65) {
			int r = watchlist_put(w, &nets[i], names[o], now, exp,
					      NULL, no_n);

			if (model[i][o] >= 0) {
				assert_int_equal(r, 0);
				model[i][o] = exp;
			} else if (count == NETS * ORIGINS / 2) {
				full++;
				assert_int_equal(r, -E2BIG);
			} else {
				assert_int_equal(r, 1);
				model[i][o] = exp;
			}
		} else if (op < 80) {
			assert_int_equal(watchlist_del(w, &nets[i], names[o]),
					 model[i][o] >= 0 ? 0 : -ENOENT);
			model[i][o] = -1;
		} else if (op < 81) {
			size_t want = 0;

			for (size_t a = 0; a < NETS; a++) {
				want += model[a][o] >= 0;
				model[a][o] = -1;
			}
			assert_int_equal(watchlist_flush(w, names[o], NULL, NULL),
					 want);
		} else {
			size_t want = 0;

			now += op % 4 == 0;
			for (size_t a = 0; a < NETS; a++)
				for (size_t b = 0; b < ORIGINS; b++)
					if (model[a][b] > 0 &&
					    model[a][b] <= now) {
						want++;
						model[a][b] = -1;
					}
			assert_int_equal(watchlist_expire(w, now, 0, NULL, NULL),
					 want);
		}
		count = 0;
		for (size_t a = 0; a < NETS; a++) {
			h = 0;
			for (size_t b = 0; b < ORIGINS; b++) {
				const struct watchlist_item *it;

				it = watchlist_get(w, &nets[a], names[b]);
				if (model[a][b] < 0) {
					assert_null(it);
					continue;
				}
				h++;
				assert_non_null(it);
				assert_int_equal(it->expires, model[a][b]);
				if (model[a][b] > 0 &&
				    (next == 0 || model[a][b] < next))
					next = model[a][b];
			}
			assert_int_equal(watchlist_holders(w, &nets[a]), h);
			shared += h > 1;
			count += h;
		}
		assert_int_equal(watchlist_count(w), count);
		assert_int_equal(watchlist_next_expiry(w), next);
	}
	/* The walk met the limit and networks with several holders. */
	assert_true(full > 100);
	assert_true(shared > 1000);
	watchlist_free(w);
}

/* 100,000 entries: the structures grow, shrink and stay consistent (no
 * timing: the CI's machines vary). */
static void test_scale(void **state)
{
	enum { N = 100000 };
	struct watchlist *w = watchlist_new(WATCHLIST_DEFAULT_MAX);
	struct order o = { .n = 0 };
	struct config_net n;
	int64_t next;

	(void)state;
	memset(&n, 0, sizeof(n));
	n.family = AF_INET;
	n.prefix_len = 32;
	for (uint32_t i = 0; i < N; i++) {
		/* A permutation of 0..N-1: inserted out of order. */
		uint32_t v = (uint32_t)(((uint64_t)i * 7919) % N);

		n.addr[0] = 10;
		n.addr[1] = (unsigned char)(v >> 16);
		n.addr[2] = (unsigned char)(v >> 8);
		n.addr[3] = (unsigned char)v;
		assert_int_equal(watchlist_put(w, &n, i % 2 ? "odd" : "even",
					       0, 1000 + v, NULL, no_n), 1);
	}
	assert_int_equal(watchlist_count(w), N);
	assert_int_equal(watchlist_next_expiry(w), 1000);
	assert_int_equal(watchlist_foreach(w, NULL, check_order, &o), 0);
	assert_int_equal(o.n, N);
	assert_int_equal(o.bad, 0);
	assert_int_equal(holders(w, "10.0.1.0"), 1);
	assert_int_equal(stats(w, "odd")->entries, N / 2);
	/* The first half expires, exactly. */
	assert_int_equal(watchlist_expire(w, 1000 + N / 2 - 1, 0, NULL, NULL),
			 N / 2);
	assert_int_equal(watchlist_next_expiry(w), 1000 + N / 2);
	assert_int_equal(holders(w, "10.0.0.1"), 0);
	next = watchlist_next_expiry(w);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(watchlist_expire(w, next, 1, NULL, NULL), 1);
		assert_true(watchlist_next_expiry(w) > next);
		next = watchlist_next_expiry(w);
	}
	assert_int_equal(watchlist_flush(w, "odd", NULL, NULL) +
			 watchlist_flush(w, "even", NULL, NULL), N / 2 - 1000);
	assert_int_equal(watchlist_count(w), 0);
	assert_int_equal(watchlist_next_expiry(w), 0);
	watchlist_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_holders_across_origins),
		cmocka_unit_test(test_latest_and_ignore),
		cmocka_unit_test(test_refresh),
		cmocka_unit_test(test_expiry_order),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_origin_counters),
		cmocka_unit_test(test_refusals_leave_room),
		cmocka_unit_test(test_foreach_order),
		cmocka_unit_test(test_check_net),
		cmocka_unit_test(test_against_model),
		cmocka_unit_test(test_scale),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
