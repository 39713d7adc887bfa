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
#include <unistd.h>
#include <cmocka.h>

#include "diag.h"
#include "engine.h"
#include "jsonfile.h"
#include "nftio.h"
#include "ruleset.h"

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
	struct diag *d = diag_new();
	struct config *c;

	assert_int_equal(chdir(EXAMPLES_DIR "/.."), 0);
	c = config_load("examples/configuration.json", 0, d);
	assert_non_null(c);
	diag_free(d);
	return c;
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
	assert_int_equal(nftio_apply(io, bad, false, &err), -EIO);
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
	char path[] = "/tmp/porthop-cfg-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	(void)state;
	assert_int_equal(chdir(EXAMPLES_DIR "/.."), 0);
	/* The reference's template matches "ip saddr": an IPv6 address
	 * cannot go there, and only the kernel's dry run can tell. */
	fprintf(f, "{\"redis_connection_configuration\": {\"host\": \"127.0.0.1\","
		"\"port\": 6379, \"db\": 0, \"charset\": \"utf-8\", "
		"\"decode_responses\": true}, \"redis_subscriber_configuration\":"
		" {\"subscriber_channel_names\": [\"c\"]}, "
		"\"nftables_service_configuration\": {\"nft_startup_commands_path\":"
		" \"examples/nft_startup_commands.json\", \"nft_address_rules_path\":"
		" \"examples/nft_address_rules.json\", \"max_port_number\": 20, "
		"\"tcp_ports\": [1, 2, 3], \"watched_addresses\": [{\"ip\": "
		"\"10.0.0.3\"}, {\"ip\": \"2001:db8::3\", \"tcp_ignore\": []}]}}");
	fclose(f);
	c = config_load(path, 0, d);
	assert_non_null(c);
	assert_int_equal(engine_check(c, io, d), -EINVAL);
	assert_int_equal(diag_errors(d), 1);
	print_message("  %s\n", diag_first_error(d));
	assert_non_null(strstr(diag_first_error(d),
			       "examples/nft_address_rules.json: rules[0]: rejected "
			       "by libnftables when instantiated for "
			       "watched_addresses[1] (ip 2001:db8::3"));
	unlink(path);
	config_free(c);
	diag_free(d);
	nftio_free(io);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply_then_atomic_failure),
		cmocka_unit_test(test_output_is_failure),
		cmocka_unit_test(test_check_refuses_ipv6_in_ip_template),
	};
	if (geteuid() != 0)
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
