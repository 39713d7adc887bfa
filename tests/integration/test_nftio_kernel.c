/*
 * nftio against the real kernel.  Run inside a fresh network namespace
 * (`unshare -n`), never on the host's ruleset.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "check.h"
#include "diag.h"
#include "config.h"
#include "engine.h"
#include "jsonfile.h"
#include "nftio.h"
#include "ruleset.h"
#include "support.h"

/* Handles differ between listings; compare without them. */
static json_t *listing(struct nftio *io)
{
	json_t *l = NULL, *item, *body;
	char *err = NULL;
	size_t i;
	const char *k;

	assert_int_equal(nftio_list(io, &l, &err), 0);
	json_array_foreach(json_object_get(l, "nftables"), i, item)
		json_object_foreach(item, k, body)
			json_object_del(body, "handle");
	return l;
}

static size_t count_rules(json_t *l)
{
	json_t *item;
	size_t i, n = 0;

	json_array_foreach(json_object_get(l, "nftables"), i, item)
		n += json_object_get(item, "rule") != NULL;
	return n;
}

static struct config *example(void)
{
	assert_int_equal(chdir(EXAMPLES_DIR "/.."), 0);
	return support_load("examples/configuration.json");
}

static json_t *batch_for(struct config *c, uint16_t base)
{
	struct shuffle_map *m = shuffle_map_alloc(c);
	json_t *batch = NULL;

	for (size_t k = 0; k < m->entries[0].npairs; k++)
		m->entries[0].pairs[k].redirect = (uint16_t)(base + k);
	assert_int_equal(ruleset_build(c, m, &batch), 0);
	shuffle_map_free(m);
	return batch;
}

static void test_apply_then_atomic_failure(void **state)
{
	struct nftio *io = nftio_new_kernel();
	struct config *c = example();
	json_t *good = batch_for(c, 6), *bad = batch_for(c, 9);
	json_t *before, *after;
	char *err = NULL;

	(void)state;
	assert_int_equal(nftio_apply(io, good, false, &err), 0);
	/* What the kernel holds is, line for line, the reference's nine
	 * rules per pair as the specification writes them in nft syntax. */
	assert_int_equal(system("nft list ruleset | diff -u " GOLDEN_DIR
				"/reference_ruleset.nft -"), 0);
	before = listing(io);
	assert_int_equal(count_rules(before), 27);
	/* The same batch with new ports plus one command the kernel refuses
	 * (a rule in a chain that does not exist), at the very end. */
	json_array_append_new(ruleset_commands(bad), json_pack(
		"{s:{s:{s:s,s:s,s:s,s:[{s:n}]}}}", "add", "rule", "family",
		"ip", "table", "nat", "chain", "nonexistent", "expr",
		"accept"));
	/* Refused with the errno libnftables quotes (the chain: none). */
	assert_int_equal(nftio_apply(io, bad, false, &err), -ENOENT);
	assert_non_null(err);
	print_message("  refused as expected: %s\n", err);
	assert_null(strstr(err, "internal:0:0-0"));
	free(err);
	err = NULL;
	after = listing(io);
	/* All or nothing: not even the flush of the refused batch stayed. */
	assert_true(json_equal(before, after));
	json_decref(after);
	/* A dry run commits nothing either. */
	json_array_remove(ruleset_commands(bad),
			  json_array_size(ruleset_commands(bad)) - 1);
	assert_int_equal(nftio_apply(io, bad, true, &err), 0);
	after = listing(io);
	assert_true(json_equal(before, after));
	json_decref(after);
	json_decref(before);
	json_decref(good);
	json_decref(bad);
	config_free(c);
	nftio_free(io);
}

static void test_output_is_failure(void **state)
{
	struct nftio *io = nftio_new_kernel();
	char *err = NULL;

	(void)state;
	/* A listing inside a batch prints: that counts as failure. */
	assert_int_equal(nftio_apply_text(io, "{\"nftables\":[{\"add\":{\"table\""
					  ":{\"family\":\"ip\",\"name\":\"o\"}}},"
					  "{\"list\":{\"tables\":null}}]}",
					  false, &err), -EIO);
	assert_non_null(err);
	free(err);
	nftio_free(io);
}

static void test_check_refuses_ipv6_in_ip_template(void **state)
{
	struct nftio *io = nftio_new_kernel();
	struct diag *d = diag_new();
	struct config *c;

	(void)state;
	assert_int_equal(chdir(EXAMPLES_DIR "/.."), 0);
	/* The reference's template matches "ip saddr": an IPv6 address
	 * cannot go there, and only the kernel's dry run can tell. */
	c = support_load_nftables("\"nft_startup_commands_path\": "
		"\"examples/nft_startup_commands.json\", \"nft_address_rules_path\":"
		" \"examples/nft_address_rules.json\", \"max_port_number\": 20, "
		"\"tcp_ports\": [1, 2, 3], \"watched_addresses\": [{\"ip\": "
		"\"10.0.0.3\"}, {\"ip\": \"2001:db8::3\", \"tcp_ignore\": []}]");
	assert_int_equal(check_config(c, io, d), -EINVAL);
	assert_int_equal(diag_errors(d), 1);
	print_message("  %s\n", diag_first_error(d));
	assert_non_null(strstr(diag_first_error(d),
			       "examples/nft_address_rules.json: rules[0]: rejected "
			       "by libnftables when instantiated for "
			       "watched_addresses[1] (ip 2001:db8::3"));
	config_free(c);
	diag_free(d);
	nftio_free(io);
}

static json_t *load_golden(const char *name)
{
	char path[512];
	json_error_t e;
	json_t *v;

	snprintf(path, sizeof(path), GOLDEN_DIR "/%s", name);
	v = json_load_file(path, 0, &e);
	assert_non_null(v);
	return v;
}

static json_t *list_maps(struct nftio *io)
{
	json_t *cmds = json_pack("{s:[{s:{s:{s:s,s:s}}}]}", "nftables", "list",
				 "table", "family", "inet", "name", "mtd_ports");
	json_t *l = NULL, *item, *body;
	const char *k;
	size_t i;

	assert_int_equal(nftio_list_json(io, cmds, false, &l, NULL), 0);
	json_decref(cmds);
	json_array_foreach(json_object_get(l, "nftables"), i, item)
		json_object_foreach(item, k, body)
			json_object_del(body, "handle");
	return l;
}

/* The native golden batch alone in this namespace: the earlier tests'
 * tables go. */
static void golden_alone(struct nftio *io, json_t *golden)
{
	char *err = NULL;

	assert_int_equal(nftio_apply_text(io, "{\"nftables\":[{\"flush\":"
					  "{\"ruleset\":null}}]}", false, &err), 0);
	assert_int_equal(nftio_apply(io, golden, false, &err), 0);
}

/* The native golden batch, as the kernel lists it, is the reviewed
 * native_ruleset.nft; map updates sent as our own netlink batch land
 * exactly as the same updates sent through libnftables; a refused update
 * changes nothing. */
static void test_native_golden_and_netlink(void **state)
{
	struct nftio *io = nftio_new_kernel();
	json_t *golden = load_golden("native_batch.json"), *a, *b, *c;
	struct nftio_elems *e = nftio_elems_new("mtd_ports");
	struct nftio_key k4 = { .family = AF_INET, .addr = { 10, 0, 0, 3 },
				.prefix_len = 32, .l4proto = IPPROTO_TCP, .port = 80 };
	struct nftio_key k6 = { .family = AF_INET6, .addr = { 0x20, 0x01, 0x0d, 0xb8 },
				.prefix_len = 48, .l4proto = IPPROTO_UDP, .port = 53 };
	char *err = NULL;

	(void)state;
	golden_alone(io, golden);
	assert_int_equal(system("nft list ruleset | diff -u " GOLDEN_DIR
				"/native_ruleset.nft -"), 0);
	/* One update, two ways. */
	nftio_elems_flush(e, "swap4");
	nftio_elems_flush(e, "net6");
	nftio_elems_add(e, "swap4", &k4, 700);
	k4.port = 700;
	nftio_elems_add(e, "swap4", &k4, 80);
	nftio_elems_add(e, "net6", &k6, 701);
	k6.port = 701;
	nftio_elems_add(e, "net6", &k6, 53);
	assert_int_equal(nftio_apply_elems(io, e, false, &err), 0);
	a = list_maps(io);
	assert_int_equal(nftio_apply(io, golden, false, &err), 0);
	assert_int_equal(nftio_apply_elems(io, e, true, &err), 0);
	b = list_maps(io);
	assert_true(json_equal(a, b));
	{
		char *text = json_dumps(a, 0);

		assert_non_null(strstr(text, "700"));
		free(text);
	}
	/* A refused batch (a map that does not exist, last) leaves all. */
	nftio_elems_flush(e, "swap6");
	nftio_elems_add(e, "no_such_map", &k4, 1);
	assert_true(nftio_apply_elems(io, e, false, &err) < 0);
	print_message("  refused as expected: %s\n", err);
	free(err);
	c = list_maps(io);
	assert_true(json_equal(b, c));
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(golden);
	nftio_elems_free(e);
	nftio_free(io);
}

/* prestage's golden batch (both generations, the event feed off) goes
 * into the kernel as it is, listed as the reviewed
 * native_prestage_ruleset.nft; the switch to generation 1 changes the
 * base chains' goto alone (native_prestage_switched.nft). */
static void test_native_prestage_golden(void **state)
{
	struct nftio *io = nftio_new_kernel();
	json_t *golden = load_golden("native_prestage_batch.json");
	json_t *sw = load_golden("native_prestage_switch.json");
	char *err = NULL;

	(void)state;
	golden_alone(io, golden);
	assert_int_equal(system("nft list ruleset | sed '/expires/d' | diff -u "
				GOLDEN_DIR "/native_prestage_ruleset.nft -"), 0);
	assert_int_equal(nftio_apply(io, sw, false, &err), 0);
	assert_int_equal(system("nft list ruleset | sed '/expires/d' | diff -u "
				GOLDEN_DIR "/native_prestage_switched.nft -"), 0);
	json_decref(sw);
	json_decref(golden);
	nftio_free(io);
}

/* prestage with the event feed: the golden batch (both generations of
 * the feed's chains too) goes into the kernel as it is, listed as the
 * reviewed native_events_prestage_ruleset.nft; the switch to generation
 * 1 changes the gotos of pre_stateless, out_stateless and the dispatch
 * chains alone (native_events_prestage_switched.nft), and pre_nat not
 * at all. */
static void test_native_events_prestage_golden(void **state)
{
	struct nftio *io = nftio_new_kernel();
	json_t *golden = load_golden("native_events_prestage_batch.json");
	json_t *sw = load_golden("native_events_prestage_switch.json");
	char *err = NULL;

	(void)state;
	golden_alone(io, golden);
	assert_int_equal(system("nft list ruleset | sed '/expires/d' | diff -u "
				GOLDEN_DIR "/native_events_prestage_ruleset.nft -"),
			 0);
	assert_int_equal(nftio_apply(io, sw, false, &err), 0);
	assert_int_equal(system("nft list ruleset | sed '/expires/d' | diff -u "
				GOLDEN_DIR "/native_events_prestage_switched.nft -"),
			 0);
	json_decref(sw);
	json_decref(golden);
	nftio_free(io);
}

static char *nft_list_table(const char *family, const char *name);

/* Redefines the table in place for configuration now (the corpus' file)
 * after prev, generation gen in force; returns the table's listing. */
static char *events_redefine(struct nftio *io, const char *now,
			     const char *prev, unsigned gen, bool had_two)
{
	struct config *n = support_load(now), *p = support_load(prev);
	json_t *batch = ruleset_batch_new(n, false);
	char *err = NULL;

	assert_int_equal(ruleset_native_setup_gen(n, p, gen,
						  config_prestage_active(n),
						  had_two,
						  ruleset_commands(batch), true),
			 0);
	if (nftio_apply(io, batch, false, &err) < 0)
		print_message("  %s: %s\n", now, err);
	assert_null(err);
	json_decref(batch);
	config_free(n);
	config_free(p);
	return nft_list_table("inet", "mtd_ports");
}

/* Reloads in place between the event feed with prestage, prestage alone
 * and the feed alone: each generation's chains of the feed come and go
 * with them, the dispatch chains name the generation in force. */
static void test_native_events_prestage_in_place(void **state)
{
	const char *ep = CORPUS_DIR "/valid/native_events_prestage.json";
	const char *p = CORPUS_DIR "/valid/native_prestage.json";
	const char *e = CORPUS_DIR "/valid/native_events.json";
	struct nftio *io = nftio_new_kernel();
	json_t *golden = load_golden("native_events_prestage_batch.json");
	json_t *sw = load_golden("native_events_prestage_switch.json");
	char *err = NULL, *l;

	(void)state;
	golden_alone(io, golden);
	assert_int_equal(nftio_apply(io, sw, false, &err), 0);
	/* The same again, generation 1 in force. */
	l = events_redefine(io, ep, ep, 1, true);
	assert_non_null(strstr(l, "goto ev_new_g1"));
	assert_non_null(strstr(l, "goto nat_svc4_g1"));
	assert_non_null(strstr(l, "goto nat_g1"));
	assert_null(strstr(l, "goto ev_new_g0"));
	free(l);
	/* The feed off: its chains go, both generations'. */
	l = events_redefine(io, p, ep, 1, true);
	assert_null(strstr(l, "ev_new"));
	assert_null(strstr(l, "nat_svc4"));
	assert_null(strstr(l, "nat_new"));
	assert_non_null(strstr(l, "goto nat_g1"));
	free(l);
	/* On again. */
	l = events_redefine(io, ep, p, 1, true);
	assert_non_null(strstr(l, "goto ev_new_g1"));
	assert_non_null(strstr(l, "goto nat_new"));
	free(l);
	/* One generation (generation 0 in force): the feed's own chains
	 * look the maps up again. */
	golden_alone(io, golden);
	l = events_redefine(io, e, ep, 0, true);
	assert_null(strstr(l, "_g0"));
	assert_null(strstr(l, "_g1"));
	assert_null(strstr(l, "nat_new"));
	assert_null(strstr(l, "swap4_b"));
	assert_non_null(strstr(l, "@swap4 goto ev_moved"));
	free(l);
	/* And back to two. */
	l = events_redefine(io, ep, e, 0, false);
	assert_non_null(strstr(l, "goto ev_new_g0"));
	assert_non_null(strstr(l, "@swap4_b goto ev_moved"));
	free(l);
	json_decref(sw);
	json_decref(golden);
	nftio_free(io);
}

/* The event feed's golden batch goes into the kernel as it is (the
 * kernel takes the lookups of maps as sets, the named counter, the
 * limits), listed as the reviewed native_events_ruleset.nft; old redirect
 * ports go into stale4 (a prefix's into stalenet4) with their timeout,
 * over netlink and JSON alike. */
static void test_native_events_golden(void **state)
{
	struct nftio *io = nftio_new_kernel();
	json_t *golden = load_golden("native_events_batch.json");
	struct nftio_elems *e = nftio_elems_new("mtd_ports");
	struct nftio_key k4 = { .family = AF_INET, .addr = { 10, 0, 0, 3 },
				.prefix_len = 32, .l4proto = IPPROTO_TCP,
				.port = 700 };
	char *err = NULL;

	(void)state;
	golden_alone(io, golden);
	assert_int_equal(system("nft list ruleset | sed '/expires/d' | diff -u "
				GOLDEN_DIR "/native_events_ruleset.nft -"), 0);
	assert_int_equal(nftio_elems_add_timeout(e, "stale4", &k4, 60000), 0);
	assert_int_equal(nftio_apply_elems(io, e, false, &err), 0);
	assert_int_equal(system("nft list set inet mtd_ports stale4 | grep -q "
				"'10.0.0.3 . tcp . 700 timeout 1m'"), 0);
	k4.port = 701;
	nftio_elems_free(e);
	e = nftio_elems_new("mtd_ports");
	assert_int_equal(nftio_elems_add_timeout(e, "stale4", &k4, 60000), 0);
	assert_int_equal(nftio_apply_elems(io, e, true, &err), 0);
	assert_int_equal(system("nft list set inet mtd_ports stale4 | grep -q "
				"'10.0.0.3 . tcp . 701 timeout 1m'"), 0);
	/* A prefix's old port, in the interval set: an address inside the
	 * prefix finds it, one outside does not. */
	for (int json = 0; json < 2; json++) {
		struct nftio_key p4 = { .family = AF_INET,
					.addr = { 10, 1, 0, 0 },
					.prefix_len = 16, .l4proto = IPPROTO_TCP,
					.port = (uint16_t)(702 + json) };

		nftio_elems_free(e);
		e = nftio_elems_new("mtd_ports");
		assert_int_equal(nftio_elems_add_timeout(e, "stalenet4", &p4,
							 60000), 0);
		assert_int_equal(nftio_apply_elems(io, e, json, &err), 0);
	}
	assert_int_equal(system("nft get element inet mtd_ports stalenet4 "
				"'{ 10.1.2.3 . tcp . 702 }' >/dev/null && "
				"nft get element inet mtd_ports stalenet4 "
				"'{ 10.1.200.9 . tcp . 703 }' >/dev/null"), 0);
	assert_int_not_equal(system("nft get element inet mtd_ports stalenet4 "
				    "'{ 10.2.0.1 . tcp . 702 }' >/dev/null 2>&1"), 0);
	json_decref(golden);
	nftio_elems_free(e);
	nftio_free(io);
}

/* Knocks on: the golden batch goes into the kernel as it is, listed as
 * the reviewed native_knock_ruleset.nft; a knocked address goes into
 * knocked4/6 with its timeout over netlink and JSON alike, and the
 * admission's add, delete, add takes an address that is there already. */
static void test_native_knock_golden(void **state)
{
	struct nftio *io = nftio_new_kernel();
	json_t *golden = load_golden("native_knock_batch.json");
	unsigned char a4[16] = { 192, 0, 2, 7 };
	unsigned char a6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 9 };
	char *err = NULL;

	(void)state;
	golden_alone(io, golden);
	assert_int_equal(system("nft list ruleset | sed '/expires/d' | diff -u "
				GOLDEN_DIR "/native_knock_ruleset.nft -"), 0);
	for (int json = 0; json < 2; json++)
		for (int again = 0; again < 2; again++) {
			struct nftio_elems *e = nftio_elems_new("mtd_ports");

			a4[3] = (unsigned char)(7 + json);
			assert_int_equal(nftio_elems_add_addr_timeout(e, "knocked4",
				AF_INET, a4, 60000), 0);
			assert_int_equal(nftio_elems_delete_addr(e, "knocked4",
				AF_INET, a4), 0);
			assert_int_equal(nftio_elems_add_addr_timeout(e, "knocked4",
				AF_INET, a4, 60000), 0);
			assert_int_equal(nftio_elems_add_addr_timeout(e, "knocked6",
				AF_INET6, a6, 120000), 0);
			assert_int_equal(nftio_apply_elems(io, e, json, &err), 0);
			nftio_elems_free(e);
		}
	assert_int_equal(system("nft list set inet mtd_ports knocked4 | grep -q "
				"'192.0.2.7 timeout 1m' && nft list set inet "
				"mtd_ports knocked4 | grep -q '192.0.2.8 timeout 1m'"
				" && nft list set inet mtd_ports knocked6 | grep -q "
				"'2001:db8::9 timeout 2m'"), 0);
	json_decref(golden);
	nftio_free(io);
}

/* Elements asked for one by one: those there with their values pass,
 * in the hash and the interval maps of both families; a wrong value, a
 * missing key, an element someone deleted, each fails; and across
 * requests (more than a hundred elements) the answers stay in order. */
static void test_verify_elements(void **state)
{
	struct nftio *io = nftio_new_kernel();
	json_t *golden = load_golden("native_batch.json");
	struct nftio_elems *e = nftio_elems_new("mtd_ports");
	struct nftio_elems *many = nftio_elems_new("mtd_ports");
	struct nftio_key k4 = { .family = AF_INET, .addr = { 10, 0, 0, 3 },
				.prefix_len = 32, .l4proto = IPPROTO_TCP, .port = 1 };
	struct nftio_key n4 = { .family = AF_INET, .addr = { 10, 1 },
				.prefix_len = 16, .l4proto = IPPROTO_TCP, .port = 22 };
	struct nftio_key k6 = { .family = AF_INET6, .addr = { 0x20, 0x01, 0x0d,
				0xb8, 0, 1, [15] = 7 }, .prefix_len = 128,
				.l4proto = IPPROTO_TCP, .port = 1 };
	struct nftio_key n6 = { .family = AF_INET6, .addr = { 0x20, 0x01, 0x0d, 0xb8 },
				.prefix_len = 48, .l4proto = IPPROTO_UDP, .port = 53 };
	char *err = NULL;

	(void)state;
	golden_alone(io, golden);
	nftio_elems_add(e, "swap4", &k4, 80);
	nftio_elems_add(e, "net4", &n4, 1);
	nftio_elems_add(e, "swap6", &k6, 22);
	nftio_elems_add(e, "net6", &n6, 1);
	assert_int_equal(nftio_elems_verify(io, e), 0);
	nftio_elems_add(e, "swap4", &k4, 81);
	assert_int_equal(nftio_elems_verify(io, e), 1);
	nftio_elems_free(e);
	e = nftio_elems_new("mtd_ports");
	k4.addr[3] = 99;
	nftio_elems_add(e, "swap4", &k4, 80);
	assert_int_equal(nftio_elems_verify(io, e), 1);
	nftio_elems_free(e);
	e = nftio_elems_new("mtd_ports");
	nftio_elems_add(e, "net4", &n4, 1);
	assert_int_equal(nftio_elems_verify(io, e), 0);
	assert_int_equal(system("nft delete element inet mtd_ports net4 "
				"'{ 10.1.0.0/16 . tcp . 22 }'"), 0);
	assert_int_equal(nftio_elems_verify(io, e), 1);
	/* 300 elements, three requests. */
	for (unsigned p = 1000; p < 1300; p++) {
		k4.port = (uint16_t)p;
		nftio_elems_add(many, "swap4", &k4, (uint16_t)(p + 1000));
	}
	assert_int_equal(nftio_apply_elems(io, many, false, &err), 0);
	assert_int_equal(nftio_elems_verify(io, many), 0);
	k4.port = 1250;
	assert_int_equal(nftio_elems_add(many, "swap4", &k4, 1), 0);
	assert_int_equal(nftio_elems_verify(io, many), 1);
	json_decref(golden);
	nftio_elems_free(e);
	nftio_elems_free(many);
	nftio_free(io);
}

/* The elements of set `name` in table t as the kernel lists them. */
static json_t *set_elems(struct nftio *io, const char *name)
{
	json_t *l = listing(io), *item, *elem = NULL;
	size_t i;

	json_array_foreach(json_object_get(l, "nftables"), i, item) {
		json_t *set = json_object_get(item, "set");

		if (set && strcmp(json_string_value(json_object_get(set, "name")),
				  name) == 0)
			elem = json_incref(json_object_get(set, "elem"));
	}
	json_decref(l);
	return elem ? elem : json_array();
}

/* Ranges of addresses sent as our own netlink batch land as nft itself
 * sends them: the same listing, and the same bytes in the kernel (the
 * digest hashes every attribute of every element), from the bottom of
 * the address space to its top. */
static void test_interval_sets_netlink(void **state)
{
	static const char *const def = "{\"nftables\":[{\"flush\":{\"ruleset\":"
		"null}},{\"add\":{\"table\":{\"family\":\"inet\",\"name\":\"t\"}}},"
		"{\"add\":{\"set\":{\"family\":\"inet\",\"table\":\"t\",\"name\":"
		"\"s4\",\"type\":\"ipv4_addr\",\"flags\":[\"interval\"]}}},"
		"{\"add\":{\"set\":{\"family\":\"inet\",\"table\":\"t\",\"name\":"
		"\"s6\",\"type\":\"ipv6_addr\",\"flags\":[\"interval\"]}}}]}";
	static const unsigned char r4[][2][16] = {
		{ { 10, 0, 0, 3 }, { 10, 0, 0, 3 } },
		{ { 10, 0, 0, 10 }, { 10, 0, 0, 20 } },
		{ { 10, 9, 0, 0 }, { 10, 9, 0, 255 } },
		{ { 255, 255, 255, 0 }, { 255, 255, 255, 255 } },
	};
	unsigned char r6[3][2][16] = {
		{ { 0 }, { [15] = 0xff } },
		{ { 0x20, 0x01, 0x0d, 0xb8, [15] = 2 },
		  { 0x20, 0x01, 0x0d, 0xb8, 0, 0 } },
		{ { 0xff, 0xff }, { 0 } },
	};
	struct nftio *io = nftio_new_kernel();
	struct nftio_elems *e = nftio_elems_new("t");
	json_t *want, *a4 = NULL, *a6 = NULL, *b4 = NULL, *b6 = NULL;
	uint64_t d[2][2];
	char *err = NULL;

	(void)state;
	memset(r6[1][1] + 6, 0xff, 10);
	memset(r6[2][1], 0xff, 16);
	for (int f = 0; f < 2; f++)
		nftio_elems_flush_set(e, f ? "s6" : "s4");
	for (size_t i = 0; i < 4; i++)
		nftio_elems_add_range(e, "s4", AF_INET, r4[i][0], r4[i][1]);
	for (size_t i = 0; i < 3; i++)
		nftio_elems_add_range(e, "s6", AF_INET6, r6[i][0], r6[i][1]);
	for (int way = 0; way < 2; way++) {
		assert_int_equal(nftio_apply_text(io, def, false, &err), 0);
		assert_int_equal(nftio_apply_elems(io, e, way == 1, &err), 0);
		assert_int_equal(nftio_map_digest(io, "t", "s4", &d[way][0]), 0);
		assert_int_equal(nftio_map_digest(io, "t", "s6", &d[way][1]), 0);
		if (way == 0) {
			a4 = set_elems(io, "s4");
			a6 = set_elems(io, "s6");
		} else {
			b4 = set_elems(io, "s4");
			b6 = set_elems(io, "s6");
		}
	}
	want = json_loads("[\"10.0.0.3\", {\"range\": [\"10.0.0.10\", "
			  "\"10.0.0.20\"]}, {\"prefix\": {\"addr\": \"10.9.0.0\", "
			  "\"len\": 24}}, {\"prefix\": {\"addr\": \"255.255.255.0\", "
			  "\"len\": 24}}]", 0, NULL);
	assert_true(json_equal(a4, want));
	json_decref(want);
	want = json_loads("[{\"prefix\": {\"addr\": \"::\", \"len\": 120}}, "
			  "{\"range\": [\"2001:db8::2\", "
			  "\"2001:db8:0:ffff:ffff:ffff:ffff:ffff\"]}, "
			  "{\"prefix\": {\"addr\": \"ffff::\", \"len\": 16}}]",
			  0, NULL);
	assert_true(json_equal(a6, want));
	json_decref(want);
	assert_true(json_equal(a4, b4));
	assert_true(json_equal(a6, b6));
	assert_true(d[0][0] == d[1][0]);
	assert_true(d[0][1] == d[1][1]);
	json_decref(a4);
	json_decref(a6);
	json_decref(b4);
	json_decref(b6);
	nftio_elems_free(e);
	nftio_free(io);
}

/* The generation moves with every transaction, ours or anyone's. */
static void test_generation(void **state)
{
	struct nftio *io = nftio_new_kernel();
	uint32_t g1, g2, g3;

	(void)state;
	assert_int_equal(nftio_generation(io, &g1), 0);
	assert_int_equal(nftio_generation(io, &g2), 0);
	assert_int_equal(g1, g2);
	assert_int_equal(system("nft add table ip gen_probe"), 0);
	assert_int_equal(nftio_generation(io, &g3), 0);
	assert_int_not_equal(g2, g3);
	nftio_free(io);
}

/* Applies an nft script (text) on top of what is there. */
static void nft_script(const char *text)
{
	FILE *f = popen("nft -f -", "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(pclose(f), 0);
}

/* Who else uses conntrack: not porthop's own table (whose nat chain and
 * ct state rules are its own business), a filter without ct: nobody; a
 * ct state rule, a nat chain with no rule, a connection limit inside a
 * dynamic set update: somebody, named. */
static void test_conntrack_user(void **state)
{
	struct nftio *io = nftio_new_kernel();
	json_t *golden = load_golden("native_batch.json");
	char who[192];

	(void)state;
	golden_alone(io, golden);
	assert_int_equal(nftio_conntrack_user(io, "mtd_ports", NFTIO_CT_RULESET, who,
					      sizeof(who)), 0);
	assert_string_equal(who, "");
	/* Under another name, our table is someone else's. */
	assert_int_equal(nftio_conntrack_user(io, "porthop", NFTIO_CT_RULESET, who,
					      sizeof(who)), 1);
	print_message("  %s\n", who);
	assert_non_null(strstr(who, "table inet mtd_ports, chain "));
	nft_script("table ip fw {\n"
		   " chain input { type filter hook input priority 0;\n"
		   "  meta mark 1 accept; tcp dport 22 counter accept; }\n}\n");
	assert_int_equal(nftio_conntrack_user(io, "mtd_ports", NFTIO_CT_RULESET, who,
					      sizeof(who)), 0);
	nft_script("add rule ip fw input ct state established accept\n");
	assert_int_equal(nftio_conntrack_user(io, "mtd_ports", NFTIO_CT_RULESET, who,
					      sizeof(who)), 1);
	assert_string_equal(who, "table ip fw, chain input: ct");
	nft_script("delete table ip fw\n"
		   "table ip6 nat6 {\n"
		   " chain post { type nat hook postrouting priority srcnat; }\n}\n");
	assert_int_equal(nftio_conntrack_user(io, "mtd_ports", NFTIO_CT_RULESET, who,
					      sizeof(who)), 1);
	assert_string_equal(who, "table ip6 nat6, chain post: a nat chain");
	nft_script("delete table ip6 nat6\n"
		   "table inet lim {\n"
		   " set s { type ipv4_addr; flags dynamic; }\n"
		   " chain input { type filter hook input priority 0;\n"
		   "  add @s { ip saddr ct count over 10 } drop; }\n}\n");
	assert_int_equal(nftio_conntrack_user(io, "mtd_ports", NFTIO_CT_RULESET, who,
					      sizeof(who)), 1);
	assert_string_equal(who, "table inet lim, chain input: connlimit");
	nft_script("delete table inet lim\n");
	assert_int_equal(nftio_conntrack_user(io, "mtd_ports", NFTIO_CT_RULESET, who,
					      sizeof(who)), 0);
	json_decref(golden);
	nftio_free(io);
}

/* What `nft list table FAMILY NAME` prints (malloc'ed). */
static char *nft_list_table(const char *family, const char *name)
{
	char cmd[128], *out = NULL;
	size_t len = 0;
	FILE *f, *mem = open_memstream(&out, &len);
	int ch;

	snprintf(cmd, sizeof(cmd), "nft list table %s %s 2>&1", family, name);
	f = popen(cmd, "r");
	assert_non_null(f);
	assert_non_null(mem);
	while ((ch = fgetc(f)) != EOF)
		fputc(ch, mem);
	pclose(f);
	fclose(mem);
	return out;
}

/* Whose table: none, the admin's (a table inet filter with a drop policy,
 * as Debian's /etc/nftables.conf has it), one whose rule comments only
 * look like the mark, and porthop's own.  check_config refuses a native
 * configuration naming the admin's table, and the table is left exactly
 * as it was. */
static void test_table_owner(void **state)
{
	static const char *const filter = "\"max_port_number\": 100, "
		"\"tcp_ports\": [22], \"watched_addresses\": [{\"ip\": "
		"\"10.0.0.3\"}], \"table_name\": \"filter\"";
	struct nftio *io = nftio_new_kernel();
	json_t *golden = load_golden("native_batch.json");
	struct diag *d = diag_new();
	char *before, *after;
	struct config *c;

	(void)state;
	golden_alone(io, golden);
	assert_int_equal(nftio_table_marked(io, "inet", "filter", "porthop"),
			 -ENOENT);
	assert_int_equal(nftio_table_marked(io, "inet", "mtd_ports", "porthop"), 1);
	/* The same name in another family is another table. */
	assert_int_equal(nftio_table_marked(io, "ip", "mtd_ports", "porthop"),
			 -ENOENT);
	nft_script("table inet filter {\n"
		   " chain input { type filter hook input priority 0; policy drop;\n"
		   "  iif lo accept comment \"porthop-like\"\n"
		   "  tcp dport 22 accept comment \"allow porthop\"\n }\n}\n");
	assert_int_equal(nftio_table_marked(io, "inet", "filter", "porthop"), 0);
	nft_script("table inet empty {\n}\n");
	assert_int_equal(nftio_table_marked(io, "inet", "empty", "porthop"), 0);

	c = support_load_nftables(filter);
	before = nft_list_table("inet", "filter");
	assert_int_equal(check_config(c, io, d), -EINVAL);
	print_message("  %s\n", diag_first_error(d));
	assert_non_null(strstr(diag_first_error(d), "table_name: \"filter\" "
			       "names a table that exists and is not porthop's"));
	assert_non_null(strstr(diag_first_error(d), "nft delete table inet "
			       "filter"));
	after = nft_list_table("inet", "filter");
	assert_string_equal(before, after);
	free(before);
	free(after);
	config_free(c);
	/* Gone, the same name is free for porthop. */
	nft_script("delete table inet filter\n");
	c = support_load_nftables(filter);
	diag_clear(d);
	assert_int_equal(check_config(c, io, d), 0);
	config_free(c);
	diag_free(d);
	json_decref(golden);
	nftio_free(io);
}

static volatile sig_atomic_t ticks;

static void on_tick(int sig)
{
	(void)sig;
	ticks++;
}

/* A signal every 50 us, handled with SA_RESTART as libevent installs its
 * handlers: every call into the kernel goes on as if none came.
 * libnftables 1.0.6 reported "Interrupted system call" for a batch the
 * kernel had processed (porthopd refused valid reloads in SIGUSR1 and
 * SIGHUP storms), and netlink reads were not tried again. */
static void test_signal_storm(void **state)
{
	struct nftio *io = nftio_new_kernel();
	json_t *golden = load_golden("native_batch.json");
	struct sigaction sa = { .sa_handler = on_tick, .sa_flags = SA_RESTART };
	struct sigaction old;
	struct itimerval every = { { 0, 50 }, { 0, 50 } }, off = { 0 };
	unsigned failures = 0;
	char *err = NULL;

	(void)state;
	golden_alone(io, golden);
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	ticks = 0;
	assert_int_equal(setitimer(ITIMER_REAL, &every, NULL), 0);
	for (int i = 0; i < 300; i++) {
		uint32_t gen;
		uint64_t digest;
		char *fp = NULL;

		if (nftio_apply(io, golden, i % 2 == 0, &err) < 0) {
			if (failures++ < 3)
				print_message("  apply %d: %s\n", i, err);
			free(err);
			err = NULL;
		}
		if (nftio_generation(io, &gen) < 0 ||
		    nftio_map_digest(io, "mtd_ports", "swap4", &digest) < 0 ||
		    nftio_table_fingerprint(io, "inet", "mtd_ports", &fp) < 0) {
			if (failures++ < 3)
				print_message("  netlink call %d failed\n", i);
		}
		free(fp);
	}
	assert_int_equal(setitimer(ITIMER_REAL, &off, NULL), 0);
	assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
	print_message("  %d signals, %u failures\n", (int)ticks, failures);
	assert_true(ticks > 300);
	assert_int_equal(failures, 0);
	json_decref(golden);
	nftio_free(io);
}

/* Someone else commits while porthop dumps its table or a map: the
 * kernel flags a dump of several reads inconsistent (NLM_F_DUMP_INTR)
 * and the dump is made again, instead of failing (engine_reconcile took
 * a failed fingerprint for a tampered table and applied everything
 * again, in template mode with "flush ruleset"). */
static void test_dump_during_commits(void **state)
{
	struct nftio *io = nftio_new_kernel();
	json_t *golden = load_golden("native_batch.json");
	struct nftio_elems *e = nftio_elems_new("mtd_ports");
	unsigned failures = 0, calls = 0;
	struct timespec t0, now;
	char *err = NULL;
	pid_t child;
	int status;

	(void)state;
	golden_alone(io, golden);
	/* 20,000 elements: a dump of many reads. */
	for (unsigned i = 0; i < 10000; i++) {
		struct nftio_key k = { .family = AF_INET,
				       .addr = { 10, 9, (uint8_t)(i >> 8), (uint8_t)i },
				       .prefix_len = 32, .l4proto = IPPROTO_TCP,
				       .port = 80 };

		assert_int_equal(nftio_elems_add(e, "swap4", &k, 700), 0);
		k.port = 700;
		assert_int_equal(nftio_elems_add(e, "swap4", &k, 80), 0);
	}
	assert_int_equal(nftio_apply_elems(io, e, false, &err), 0);
	/* Someone else's 2,000 rules in the same family: a dump of rules
	 * (they are dumped per family, ours picked out) of many reads. */
	{
		FILE *f = popen("nft -f -", "w");

		assert_non_null(f);
		fprintf(f, "table inet other {\n chain c {\n");
		for (unsigned i = 0; i < 2000; i++)
			fprintf(f, "  ip saddr 10.8.%u.%u counter\n", i / 250,
				i % 250);
		fprintf(f, " }\n}\n");
		assert_int_equal(pclose(f), 0);
	}
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* Another table, changed every 10 ms for 2 s. */
		for (int i = 0; i < 200; i++) {
			if (system(i % 2 ? "nft delete table ip churn" :
				   "nft add table ip churn") != 0)
				_exit(1);
			usleep(10000);
		}
		_exit(0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		uint64_t digest;
		char *fp = NULL;

		calls++;
		if (nftio_map_digest(io, "mtd_ports", "swap4", &digest) < 0 ||
		    nftio_table_fingerprint(io, "inet", "mtd_ports", &fp) < 0)
			failures++;
		free(fp);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec - t0.tv_sec < 2);
	assert_int_equal(waitpid(child, &status, 0), child);
	print_message("  %u dumps during commits, %u failures\n", calls,
		      failures);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(failures, 0);
	/* And the socket is in step afterwards (a dump given up half way
	 * used to leave its rest to the next request, which read it as its
	 * answer and failed, leaving its own: every later call failed). */
	{
		uint32_t gen;
		char *fp = NULL;

		assert_int_equal(nftio_generation(io, &gen), 0);
		assert_int_equal(nftio_table_fingerprint(io, "inet", "mtd_ports",
							 &fp), 0);
		free(fp);
	}
	assert_int_equal(system("nft delete table inet other"), 0);
	if (system("nft delete table ip churn 2>/dev/null") != 0)
		print_message("  (no churn table left)\n");
	nftio_elems_free(e);
	json_decref(golden);
	nftio_free(io);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply_then_atomic_failure),
		cmocka_unit_test(test_output_is_failure),
		cmocka_unit_test(test_check_refuses_ipv6_in_ip_template),
		cmocka_unit_test(test_native_golden_and_netlink),
		cmocka_unit_test(test_native_events_golden),
		cmocka_unit_test(test_native_prestage_golden),
		cmocka_unit_test(test_native_events_prestage_golden),
		cmocka_unit_test(test_native_events_prestage_in_place),
		cmocka_unit_test(test_interval_sets_netlink),
		cmocka_unit_test(test_verify_elements),
		cmocka_unit_test(test_native_knock_golden),
		cmocka_unit_test(test_generation),
		cmocka_unit_test(test_conntrack_user),
		cmocka_unit_test(test_table_owner),
		cmocka_unit_test(test_signal_storm),
		cmocka_unit_test(test_dump_during_commits),
	};
	struct stat self, init;

	if (geteuid() != 0)
		return 77;
	/* These tests flush the ruleset: never in the host's own network
	 * namespace.  CTest runs them as `unshare -n env
	 * PORTHOP_TEST_NETNS=1 ...`; where init's namespace is visible, it
	 * must differ from ours as well. */
	if (getenv("PORTHOP_TEST_NETNS") == NULL ||
	    (stat("/proc/self/ns/net", &self) == 0 &&
	     stat("/proc/1/ns/net", &init) == 0 && self.st_ino == init.st_ino)) {
		fprintf(stderr, "test_nftio_kernel: refusing to run in the "
			"host's network namespace; run it under unshare -n\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
