/* The shuffle cycle against the recording backend. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "check.h"
#include "diag.h"
#include "engine.h"
#include "ruleset.h"
#include "support.h"

/* The corpus configurations the tests' fixtures load (see support.h). */
#define IPV6_MANY "valid/ipv6_and_many.json"
#define NATIVE "valid/native_full.json"
#define REFERENCE "valid/reference.json"

static void test_shuffle_applies_one_batch(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e;
	json_t *last;

	assert_null(engine_map(e));
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), 1);
	last = nftio_recorder_last(io);
	/* 6 startup commands + 8 pairs x 9 rules, in one batch. */
	assert_int_equal(json_array_size(ruleset_commands(last)), 6 + 8 * 9);
	assert_non_null(engine_map(e));
	assert_int_equal(engine_stats(e)->shuffles, 1);
	assert_int_equal(engine_stats(e)->last_pairs, 8);
	assert_int_equal(engine_stats(e)->last_commands, 78);
}

static void test_failure_keeps_previous(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e;
	struct shuffle_pair before[8];
	json_t *applied;
	char *err = NULL;

	assert_int_equal(engine_shuffle(e, NULL), 0);
	applied = json_incref(nftio_recorder_last(io));
	memcpy(before, engine_map(e)->pool, sizeof(before));
	nftio_recorder_fail_next(io, 1, "Error: Could not process rule");
	assert_int_equal(engine_shuffle(e, &err), -EIO);
	assert_non_null(err);
	assert_non_null(strstr(err, "Could not process rule"));
	free(err);
	/* The engine still holds the mapping the kernel holds. */
	assert_memory_equal(engine_map(e)->pool, before, sizeof(before));
	assert_ptr_equal(nftio_recorder_last(io), applied);
	assert_int_equal(engine_stats(e)->failures, 1);
	assert_int_equal(engine_stats(e)->last_result, -EIO);
	/* And the next trigger works again. */
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->shuffles, 2);
	json_decref(applied);
}

static void test_shuffle_one_address(void **state)
{
	struct support_engine *f = *state;
	struct engine *e = f->e;
	struct shuffle_pair before[8];
	const struct shuffle_map *m;
	bool changed = false;
	char *err = NULL;

	assert_int_equal(engine_shuffle(e, NULL), 0);
	memcpy(before, engine_map(e)->pool, sizeof(before));
	/* Ten redraws of 3 ports out of 997: all equal has odds ~1e-80. */
	for (int i = 0; i < 10; i++) {
		assert_int_equal(engine_shuffle_address(e, "2001:db8::1", NULL), 0);
		m = engine_map(e);
		assert_memory_equal(m->entries[0].pairs, before, 2 * sizeof(before[0]));
		assert_memory_equal(m->entries[2].pairs, before + 5,
				    3 * sizeof(before[0]));
		changed |= memcmp(m->entries[1].pairs, before + 2,
				  3 * sizeof(before[0])) != 0;
	}
	assert_true(changed);
	assert_int_equal(engine_shuffle_address(e, "10.1.1.1", &err), -ENOENT);
	assert_non_null(strstr(err, "not a watched address"));
	free(err);
}

static void test_reload(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e;
	struct config *next = support_load(IPV6_MANY);
	char *err = NULL;

	assert_int_equal(engine_shuffle(e, NULL), 0);
	/* A refused apply keeps the old configuration. */
	nftio_recorder_fail_next(io, 1, "refused");
	assert_int_equal(engine_reload(e, next, &err), -EIO);
	free(err);
	assert_int_equal(config_watched_count(engine_config(e)), 1);
	assert_int_equal(engine_reload(e, next, NULL), 0);
	assert_ptr_equal(engine_config(e), next);
	assert_int_equal(engine_map(e)->nentries, 3);
}

static bool last_has(struct nftio *io, const char *needle);

/* A renamed table, or a switch of mode, deletes what the old
 * configuration owned in the transaction that applies the new one. */
static void test_reload_deletes_stale_tables(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e;
	struct config *next;

	/* Another table uses conntrack: untrack_unwatched "auto" adds no
	 * transaction of its own after the table's. */
	nftio_recorder_conntrack_user(io, "table ip filter, chain input: ct");
	assert_int_equal(engine_shuffle(e, NULL), 0);
	next = support_load("valid/native_udp_only.json");
	assert_int_equal(engine_reload(e, next, NULL), 0);
	assert_true(last_has(io, "{\"add\":{\"table\":{\"family\":\"inet\","
				 "\"name\":\"mtd_ports\"}}},{\"delete\":{\"table\":"
				 "{\"family\":\"inet\",\"name\":\"mtd_ports\"}}},"
				 "{\"add\":{\"table\":{\"family\":\"inet\","
				 "\"name\":\"porthop\"}}}"));
	/* Native to template: porthop's table goes, before the template's
	 * own startup commands. */
	next = support_load(REFERENCE);
	assert_int_equal(engine_reload(e, next, NULL), 0);
	assert_true(last_has(io, "[{\"add\":{\"table\":{\"family\":\"inet\","
				 "\"name\":\"porthop\"}}},{\"delete\":{\"table\":"
				 "{\"family\":\"inet\",\"name\":\"porthop\"}}},"
				 "{\"flush\":{\"ruleset\""));
	/* Template to native: the tables the startup commands added go. */
	next = support_load(NATIVE);
	assert_int_equal(engine_reload(e, next, NULL), 0);
	assert_true(last_has(io, "{\"delete\":{\"table\":{\"family\":\"ip\","
				 "\"name\":\"nat\"}}}"));
	/* Same table, same mode: nothing deleted. */
	next = support_load(NATIVE);
	assert_int_equal(engine_reload(e, next, NULL), 0);
	assert_false(last_has(io, "\"delete\""));
}

/* A native configuration of naddr watched addresses (10.0.1.1 on) with
 * nports TCP ports each, trusting `trusted` (a JSON array), with
 * untrack_unwatched `untrack` (JSON; NULL: the default). */
static struct config *load_shape(const char *trusted, const char *untrack,
				 int naddr, int nports)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct config *c;

	assert_non_null(f);
	fprintf(f, "\"max_port_number\": 65535, \"trusted_addresses\": %s,",
		trusted);
	if (untrack)
		fprintf(f, " \"untrack_unwatched\": %s,", untrack);
	fprintf(f, " \"tcp_ports\": [");
	for (int p = 1; p <= nports; p++)
		fprintf(f, "%s%d", p > 1 ? "," : "", p);
	fprintf(f, "], \"watched_addresses\": [");
	for (int a = 0; a < naddr; a++)
		fprintf(f, "%s{\"ip\": \"10.0.%d.%d\"}", a ? "," : "",
			a / 250 + 1, a % 250 + 1);
	fprintf(f, "]");
	assert_int_equal(fclose(f), 0);
	c = support_load_nftables(text);
	free(text);
	return c;
}

/* 21 addresses of 1,000 ports: 21,000 pairs. */
static struct config *load_big(const char *trusted, bool untrack)
{
	return load_shape(trusted, untrack ? "true" : "false", 21, 1000);
}

/* Above 20,000 pairs a table is defined, then filled, in two
 * transactions.  A reload that changes the definition of an intact table
 * keeps its sets and maps (no "delete table") so no packet meets empty
 * maps; if that is refused the table is defined anew.  A reload that
 * changes addresses alone (watched, trusted) replaces elements only. */
static void test_reload_big_in_place(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e = engine_new(load_big("[]", false), io);
	size_t applied;

	assert_int_equal(config_pair_count(engine_config(e)), 21000);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), 2);
	/* A new trusted list: the sets' and maps' elements, one transaction. */
	assert_int_equal(engine_reload(e, load_big("[\"10.9.9.7\"]", false),
				       NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), 3);
	assert_true(last_has(io, "{\"flush\":{\"set\""));
	assert_true(last_has(io, "\"10.9.9.7\""));
	assert_true(last_has(io, "\"10.0.1.21\""));
	assert_false(last_has(io, "\"chain\""));
	/* untrack_unwatched turned on: the definition changes in place; its
	 * rules come last, once tracked4 holds the watched addresses (before,
	 * they would untrack every packet). */
	nftio_recorder_fail_match(io, "\"delete\":{\"table\"", "no deletes");
	assert_int_equal(engine_reload(e, load_big("[\"10.9.9.9\"]", true),
				       NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), 6);
	assert_true(last_has(io, "\"notrack\""));
	assert_false(last_has(io, "\"element\""));
	/* Refused in place: defined anew, then filled, then its rules. */
	nftio_recorder_fail_match(io, "\"flush\":{\"chain\"", "no flush");
	applied = nftio_recorder_applied(io);
	assert_int_equal(engine_reload(e, load_big("[\"10.9.9.8\"]", false),
				       NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 2);
	/* A shuffle after either replaces the elements alone. */
	nftio_recorder_fail_match(io, NULL, NULL);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 3);
	assert_false(last_has(io, "\"chain\""));
}

/* Above 20,000 pairs the maps have no digest (their dump costs the
 * square of their count): their elements are asked for one by one; the
 * address sets are still digested.  Each is put back alone. */
static void test_reconcile_big_sets(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e = engine_new(load_big("[\"10.9.9.7\"]", true),
					     io);
	size_t applied;

	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_reconcile(e, NULL), 0);
	applied = nftio_recorder_applied(io);
	nftio_recorder_tamper_elements(io, "swap4");
	assert_int_equal(engine_reconcile(e, NULL), 1);
	assert_int_equal(nftio_recorder_applied(io), applied + 1);
	assert_true(last_has(io, "{\"flush\":{\"map\""));
	assert_false(last_has(io, "\"set\""));
	assert_int_equal(engine_reconcile(e, NULL), 0);
	nftio_recorder_tamper_elements(io, "tracked4");
	assert_int_equal(engine_reconcile(e, NULL), 1);
	assert_int_equal(nftio_recorder_applied(io), applied + 2);
	assert_true(last_has(io, "{\"flush\":{\"set\""));
	assert_true(last_has(io, "\"10.9.9.7\""));
	assert_false(last_has(io, "\"map\""));
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 2);
}

/* A watched list too long for tracked4/6 to be digested (over 20,000
 * addresses, "auto"): the trusted sets still are, and put back. */
static void test_reconcile_long_list_trusted(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e = engine_new(load_shape("[\"10.9.9.7\"]", NULL,
							20001, 1), io);
	size_t applied;

	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_reconcile(e, NULL), 0);
	applied = nftio_recorder_applied(io);
	nftio_recorder_tamper_elements(io, "tracked4");
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied);
	nftio_recorder_tamper_elements(io, "trusted4");
	assert_int_equal(engine_reconcile(e, NULL), 1);
	assert_int_equal(nftio_recorder_applied(io), applied + 1);
	assert_true(last_has(io, "{\"flush\":{\"set\""));
	assert_true(last_has(io, "\"10.9.9.7\""));
}


/* Someone tampers with porthop's table, and at once a trigger comes: the
 * trigger's apply must not make the tampering the new baseline.  For each
 * kind of trigger (every entry, one entry, a reload that keeps the
 * definition) and each kind of tampering (a set's elements, a map's
 * elements, the definition), what was changed is put back before the
 * trigger's batch, the repair is counted, and the next reconciliation
 * finds everything intact. */
enum trigger_kind { TRIGGER_ALL, TRIGGER_ENTRY, TRIGGER_RELOAD, TRIGGER_KINDS };

static int fire(struct engine *e, enum trigger_kind k)
{
	size_t one = 0;

	switch (k) {
	case TRIGGER_ALL:
		return engine_shuffle(e, NULL);
	case TRIGGER_ENTRY:
		return engine_shuffle_entries(e, &one, 1, NULL);
	default:
		return engine_reload(e, load_shape("[\"10.9.9.7\"]", NULL,
						   3, 4), NULL);
	}
}

static void test_trigger_never_blesses_tampering(void **state)
{
	static const char *const targets[] = { "tracked4", "trusted4", "swap4",
						"net4", NULL /* definition */ };

	(void)state;
	for (int k = 0; k < TRIGGER_KINDS; k++)
		for (size_t t = 0; t < sizeof(targets) / sizeof(*targets); t++) {
			struct nftio *io = nftio_new_recorder();
			struct engine *e = engine_new(load_shape(
				"[\"10.9.9.7\"]", NULL, 3, 4), io);
			uint64_t repairs;

			assert_int_equal(engine_shuffle(e, NULL), 0);
			assert_int_equal(engine_reconcile(e, NULL), 0);
			repairs = engine_stats(e)->repairs;
			if (targets[t])
				nftio_recorder_tamper_elements(io, targets[t]);
			else
				nftio_recorder_tamper(io);
			assert_int_equal(fire(e, (enum trigger_kind)k), 0);
			assert_int_equal(engine_stats(e)->repairs, repairs + 1);
			assert_false(nftio_recorder_tampered(io));
			if (targets[t] == NULL)
				assert_int_equal(engine_reconcile(e, NULL), 0);
			assert_int_equal(engine_reconcile(e, NULL), 0);
			assert_int_equal(engine_stats(e)->repairs, repairs + 1);
			engine_free(e);
			nftio_free(io);
		}
}

/* Someone commits between our apply and our next look at the
 * generation: what they changed is never taken for ours, and the next
 * reconciliation puts it back. */
static void test_commit_during_apply(void **state)
{
	static const char *const targets[] = { "tracked4", "swap4" };

	(void)state;
	for (size_t t = 0; t < 2; t++) {
		struct nftio *io = nftio_new_recorder();
		struct engine *e = engine_new(load_shape("[\"10.9.9.7\"]", NULL,
							 3, 4), io);

		assert_int_equal(engine_shuffle(e, NULL), 0);
		nftio_recorder_tamper_next_apply(io, targets[t]);
		assert_int_equal(engine_shuffle(e, NULL), 0);
		assert_true(nftio_recorder_tampered(io));
		assert_int_equal(engine_reconcile(e, NULL), 1);
		assert_false(nftio_recorder_tampered(io));
		/* The definition was kept to compare with: elements only. */
		assert_false(last_has(io, "\"table\":{\"family\""));
		assert_int_equal(engine_reconcile(e, NULL), 0);
		engine_free(e);
		nftio_free(io);
	}
}

/* Someone else commits elsewhere during each of our applies (a busy
 * host): what our batches did not write keeps its digest, so the checks
 * that follow find our table intact and repair nothing. */
static void test_busy_neighbour_no_false_repair(void **state)
{
	struct nftio *io = nftio_new_recorder();
	struct engine *e = engine_new(load_shape("[\"10.9.9.7\"]", NULL, 3, 4),
				      io);
	size_t one = 1;

	(void)state;
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_reconcile(e, NULL), 0);
	for (int i = 0; i < 20; i++) {
		nftio_recorder_foreign_commit_next_apply(io);
		if (i % 2)
			assert_int_equal(engine_shuffle(e, NULL), 0);
		else
			assert_int_equal(engine_shuffle_entries(e, &one, 1,
								NULL), 0);
		assert_int_equal(engine_reconcile(e, NULL), 0);
	}
	assert_int_equal(engine_stats(e)->repairs, 0);
	engine_free(e);
	nftio_free(io);
}

/* A reload that changes the table's definition (untrack_unwatched auto
 * to true) writes the address sets' elements again (here another
 * trusted address), their digest with them: someone else's commit after
 * it finds our table intact and repairs nothing. */
static void test_reload_redefines_no_false_repair(void **state)
{
	struct nftio *io = nftio_new_recorder();
	struct engine *e = engine_new(load_shape("[\"10.9.9.7\"]", NULL, 3, 4),
				      io);

	(void)state;
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(engine_reload(e, load_shape("[\"10.9.9.8\"]", "true",
						     3, 4), NULL), 0);
	/* Someone else commits (the generation moves, nothing of ours
	 * changes). */
	nftio_recorder_conntrack_user(io, NULL);
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(engine_stats(e)->repairs, 0);
	engine_free(e);
	nftio_free(io);
}

/* Without anyone else's commit, a trigger costs no check: one apply. */
static void test_trigger_quiet_costs_one_apply(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e = engine_new(load_shape("[\"10.9.9.7\"]", NULL,
							3, 4), io);
	size_t applied, idx[2] = { 2, 0 };

	assert_int_equal(engine_shuffle(e, NULL), 0);
	applied = nftio_recorder_applied(io);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_shuffle_entries(e, idx, 2, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 2);
	/* Two entries, one transaction, no flush. */
	assert_true(last_has(io, "\"10.0.1.3\""));
	assert_true(last_has(io, "\"10.0.1.1\""));
	assert_false(last_has(io, "\"10.0.1.2\""));
	assert_false(last_has(io, "\"flush\""));
	assert_int_equal(engine_shuffle_entries(e, (size_t[]){ 3 }, 1, NULL),
			 -EINVAL);
	assert_int_equal(engine_stats(e)->repairs, 0);
}

/* An address inside a watched prefix names that prefix's entry: its whole
 * mapping moves; an address no entry covers is refused, escaped. */
static void test_address_inside_prefix(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e;
	const struct config *c = engine_config(e);
	long prefix = config_watched_find(c, "10.1.0.0/16");
	char *err = NULL;

	assert_true(prefix >= 0);
	assert_int_equal(config_watched_lookup(c, "10.1.200.7"), prefix);
	assert_int_equal(config_watched_lookup(c, "10.1.0.0/16"), prefix);
	assert_int_equal(config_watched_lookup(c, "10.2.0.1"), -1);
	assert_int_equal(config_watched_lookup(c, "not an address"), -1);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_shuffle_address(e, "10.1.200.7", NULL), 0);
	assert_true(last_has(io, "\"delete\":{\"element\""));
	assert_int_equal(engine_shuffle_address(e, "x\nporthopd: forged", &err),
			 -ENOENT);
	assert_non_null(err);
	assert_null(strchr(err, '\n'));
	assert_non_null(strstr(err, "\"x\\nporthopd: forged\""));
	free(err);
}

static void test_check_names_the_rule(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct config *c = support_load(REFERENCE);
	struct diag *d = diag_new();

	assert_int_equal(check_config(c, io, d), 0);
	assert_int_equal(nftio_recorder_dry_runs(io), 1);
	assert_int_equal(nftio_recorder_applied(io), 0);
	/* The kernel refuses anything with "notrack": the raw rules. */
	nftio_recorder_fail_match(io, "notrack", "Error: Could not process rule: "
				  "No such file or directory");
	assert_int_equal(check_config(c, io, d), -EINVAL);
	assert_int_equal(diag_errors(d), 1);
	print_message("  %s\n", diag_message(d, 0, NULL));
	assert_non_null(strstr(diag_message(d, 0, NULL),
			       "rules/address_rules.json: rules[2]: rejected by "
			       "libnftables when instantiated for "
			       "watched_addresses[0] (ip 10.0.0.3, port 3, "
			       "redirect 6): \"Error: Could not process rule"));
	diag_free(d);
	config_free(c);
}

static bool last_has(struct nftio *io, const char *needle)
{
	char *text = json_dumps(nftio_recorder_last(io), JSON_COMPACT);
	bool r = text && strstr(text, needle);

	free(text);
	return r;
}

/* untrack_unwatched "auto" (the default): its rules in force while no
 * other table uses conntrack, in a transaction after the table's; out as
 * soon as someone commits a table that does (the quick look), back when
 * it is gone (the full look after reconciliation).  The switches are
 * porthop's own commits: reconciliation does not apply anything again. */
static void test_untrack_auto(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e;
	const struct engine_stats *st = engine_stats(e);
	size_t applied, looks;

	assert_int_equal(config_untrack(engine_config(e)), CONFIG_UNTRACK_AUTO);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), 2);
	assert_true(last_has(io, "\"notrack\""));
	assert_false(last_has(io, "\"element\""));
	assert_true(st->untracking);
	assert_string_equal(st->conntrack_user, "");
	/* Nobody committed: nothing changed; the ruleset is looked at
	 * again only once the generation has moved (here: by our own
	 * untrack rules, after the first look). */
	assert_int_equal(engine_untrack_check(e, false, NULL), 0);
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(engine_untrack_check(e, true, NULL), 0);
	looks = nftio_recorder_conntrack_looks(io);
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(engine_untrack_check(e, true, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), 2);
	assert_int_equal(nftio_recorder_conntrack_looks(io), looks);

	/* Someone loads a table that uses conntrack. */
	nftio_recorder_conntrack_user(io, "table ip fw, chain input: ct");
	assert_int_equal(engine_untrack_check(e, false, NULL), 1);
	assert_int_equal(nftio_recorder_conntrack_looks(io), looks + 1);
	assert_int_equal(nftio_recorder_applied(io), 3);
	assert_true(last_has(io, "{\"flush\":{\"chain\""));
	assert_false(last_has(io, "\"notrack\""));
	assert_false(st->untracking);
	assert_string_equal(st->conntrack_user, "table ip fw, chain input: ct");
	assert_int_equal(st->untrack_switches, 1);
	/* Their commit is judged by reconciliation (our table intact), ours
	 * is not taken for someone else's. */
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(engine_untrack_check(e, true, NULL), 0);
	assert_int_equal(engine_untrack_check(e, false, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), 3);
	/* Shuffles replace elements only; tracked stays tracked. */
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_false(last_has(io, "\"chain\""));
	assert_false(st->untracking);
	applied = nftio_recorder_applied(io);
	/* A whole apply with the user there: the table alone. */
	assert_int_equal(engine_reapply(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 1);
	assert_false(last_has(io, "\"notrack\""));

	/* The table is gone: the quick look does not turn the rules back
	 * on (not urgent), the full one does. */
	nftio_recorder_conntrack_user(io, NULL);
	assert_int_equal(engine_untrack_check(e, false, NULL), 0);
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(engine_untrack_check(e, true, NULL), 1);
	assert_int_equal(nftio_recorder_applied(io), applied + 2);
	assert_true(last_has(io, "\"notrack\""));
	assert_true(st->untracking);
	assert_string_equal(st->conntrack_user, "");
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 2);

	/* Turning them on refused after a whole apply: the table stays in
	 * force, every client tracked, and reconciliation tries again. */
	nftio_recorder_conntrack_user(io, NULL);
	nftio_recorder_fail_match(io, "\"notrack\"", "refused");
	applied = nftio_recorder_applied(io);
	assert_int_equal(engine_reapply(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 1);
	assert_false(st->untracking);
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(engine_untrack_check(e, true, NULL), -EIO);
	nftio_recorder_fail_match(io, NULL, NULL);
	assert_int_equal(engine_untrack_check(e, true, NULL), 1);
	assert_true(st->untracking);
	/* A refused switch leaves the rules as they were, and says so. */
	nftio_recorder_conntrack_user(io, "table ip fw, chain input: ct");
	nftio_recorder_fail_next(io, 1, "refused");
	assert_int_equal(engine_untrack_check(e, false, NULL), -EIO);
	assert_true(st->untracking);
}

/* untrack_unwatched true or false: no looking for other users; a reload
 * to another mode redefines the table (rules with it, or none). */
static void test_untrack_modes(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e;

	nftio_recorder_conntrack_user(io, "table ip fw, chain input: ct");
	assert_int_equal(config_untrack(engine_config(e)), CONFIG_UNTRACK_ON);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), 1);
	assert_true(last_has(io, "\"notrack\""));
	assert_true(engine_stats(e)->untracking);
	assert_int_equal(engine_untrack_check(e, true, NULL), 0);
	assert_int_equal(engine_reload(e, support_load(NATIVE), NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), 2);
	assert_false(last_has(io, "\"notrack\""));
	assert_false(engine_stats(e)->untracking);
}

static void test_native_cycle(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e;
	struct shuffle_pair before[64];
	size_t npairs = config_pair_count(engine_config(e));
	char *err = NULL;

	assert_true(npairs <= 64);
	nftio_recorder_conntrack_user(io, "table ip filter, chain input: ct");
	/* The first apply defines the table and fills the maps at once. */
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_true(last_has(io, "{\"add\":{\"table\":{\"family\":\"inet\","
				 "\"name\":\"mtd_ports\"}}"));
	assert_true(last_has(io, "\"name\":\"net6\""));
	/* Later shuffles only replace elements, maps flushed first. */
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_false(last_has(io, "\"table\":{\"family\""));
	assert_true(last_has(io, "{\"flush\":{\"map\":{\"family\":\"inet\","
				 "\"table\":\"mtd_ports\",\"name\":\"swap4\"}}}"));
	assert_int_equal(engine_stats(e)->last_commands, 4 + 2 * npairs);
	/* One address: its elements only. */
	memcpy(before, engine_map(e)->pool, npairs * sizeof(before[0]));
	assert_int_equal(engine_shuffle_address(e, "10.1.0.0/16", NULL), 0);
	assert_true(last_has(io, "\"delete\":{\"element\""));
	assert_false(last_has(io, "\"flush\""));
	assert_false(last_has(io, "10.0.0.3"));
	assert_memory_equal(engine_map(e)->entries[0].pairs, before,
			    engine_map(e)->entries[0].npairs * sizeof(before[0]));
	/* Refused, it leaves the mapping in force as it was (the address's
	 * pairs are drawn in place and put back). */
	memcpy(before, engine_map(e)->pool, npairs * sizeof(before[0]));
	nftio_recorder_fail_next(io, 1, "refused");
	assert_int_equal(engine_shuffle_address(e, "10.1.0.0/16", &err), -EIO);
	free(err);
	err = NULL;
	assert_memory_equal(engine_map(e)->pool, before, npairs * sizeof(before[0]));
	/* Reconciliation: nothing changed, nothing applied. */
	size_t applied = nftio_recorder_applied(io);
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied);
	/* Someone flushed the ruleset: the same mapping is applied again,
	 * table and all. */
	memcpy(before, engine_map(e)->pool, npairs * sizeof(before[0]));
	nftio_recorder_tamper(io);
	assert_int_equal(engine_reconcile(e, &err), 1);
	assert_int_equal(nftio_recorder_applied(io), applied + 1);
	assert_true(last_has(io, "{\"add\":{\"table\""));
	assert_memory_equal(engine_map(e)->pool, before, npairs * sizeof(before[0]));
	assert_int_equal(engine_reconcile(e, NULL), 0);
	/* Someone changed elements alone: they are put back, the table's
	 * definition left alone, the mapping the same. */
	applied = nftio_recorder_applied(io);
	nftio_recorder_tamper_elements(io, "swap4");
	assert_int_equal(engine_reconcile(e, NULL), 1);
	assert_int_equal(nftio_recorder_applied(io), applied + 1);
	assert_true(last_has(io, "{\"flush\":{\"map\""));
	assert_false(last_has(io, "\"table\":{\"family\""));
	assert_memory_equal(engine_map(e)->pool, before, npairs * sizeof(before[0]));
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 1);
	/* Someone changed the trusted set's elements: they alone are put
	 * back, the maps and the table's definition left alone, the mapping
	 * the same. */
	nftio_recorder_tamper_elements(io, "trusted4");
	assert_int_equal(engine_reconcile(e, NULL), 1);
	assert_int_equal(nftio_recorder_applied(io), applied + 2);
	assert_true(last_has(io, "{\"flush\":{\"set\""));
	assert_false(last_has(io, "{\"flush\":{\"map\""));
	assert_true(last_has(io, "\"10.1.7.255\""));
	assert_false(last_has(io, "\"table\":{\"family\""));
	assert_memory_equal(engine_map(e)->pool, before, npairs * sizeof(before[0]));
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 2);
	applied += 1;
	/* A clean stop deletes the table when configured to (here: not). */
	assert_int_equal(engine_stop(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 1);
}

static void test_native_stop_removes(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e;

	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stop(e, NULL), 0);
	assert_true(last_has(io, "{\"delete\":{\"table\":{\"family\":\"inet\","
				 "\"name\":\"porthop\"}}}"));
}

/* A table kept on stop keeps its mapping, not "auto"'s untracking: with
 * porthopd gone, nobody would take it out for another table's sake. */
static void test_native_stop_keeps(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e;
	size_t applied;

	assert_false(config_remove_on_stop(engine_config(e)));
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_true(engine_stats(e)->untracking);
	applied = nftio_recorder_applied(io);
	assert_int_equal(engine_stop(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 1);
	assert_true(last_has(io, "{\"flush\":{\"chain\""));
	assert_false(last_has(io, "\"notrack\""));
	assert_false(last_has(io, "\"delete\""));
	assert_false(engine_stats(e)->untracking);
}

/* What nftio makes of libnftables' messages: the errno they quote (the
 * earliest), -EIO when none; interrupted calls are tried again. */
static void test_nftio_errors(void **state)
{
	static const struct {
		const char *msg;
		int r;
	} cases[] = {
		{ "netlink: Error: Could not process rule: Interrupted system call",
		  -EINTR },
		{ "Error: Could not process rule: Operation not supported", -EOPNOTSUPP },
		{ "Error: Could not process rule: No such file or directory", -ENOENT },
		{ "Error: Could not process rule: Operation not permitted", -EPERM },
		{ "Error: Could not process rule: Invalid argument; Error: Could "
		  "not process rule: No such file or directory", -EINVAL },
		{ "Error: syntax error, unexpected junk", -EIO },
		{ "refused", -EIO },
	};
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	char *err = NULL;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* Interrupted: up to five attempts, so ten failures. */
		nftio_recorder_fail_next(io, 10, cases[i].msg);
		assert_int_equal(nftio_apply_text(io, "{\"nftables\":[]}", true,
						  &err), cases[i].r);
		assert_string_equal(err, cases[i].msg);
		free(err);
		err = NULL;
	}
	/* Interrupted four times, then through: a success. */
	nftio_recorder_fail_next(io, 4, cases[0].msg);
	assert_int_equal(nftio_apply_text(io, "{\"nftables\":[]}", true, &err), 0);
	assert_null(err);
}

/* porthopd -n and reloads check a native table with one dry run.  An
 * interrupted one is tried again; one interrupted every time is said as
 * such, not blamed on the kernel's age, which only a refusal of the
 * definition is. */
static void test_check_native_errors(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct config *c = support_load(NATIVE);
	struct diag *d = diag_new();

	nftio_recorder_fail_next(io, 2, "netlink: Error: Could not process "
				 "rule: Interrupted system call");
	assert_int_equal(check_config(c, io, d), 0);
	assert_int_equal(diag_errors(d), 0);
	assert_int_equal(nftio_recorder_dry_runs(io), 1);

	nftio_recorder_fail_next(io, 100, "netlink: Error: Could not process "
				 "rule: Interrupted system call");
	assert_int_equal(check_config(c, io, d), -EINVAL);
	assert_int_equal(diag_errors(d), 1);
	print_message("  %s\n", diag_first_error(d));
	assert_non_null(strstr(diag_first_error(d), "valid/native_full.json: "
			       "nftables_service_configuration: the kernel's dry "
			       "run of porthop's native table (inet mtd_ports) did "
			       "not complete: \"netlink: Error: Could not process "
			       "rule: Interrupted system call\"; nothing was judged"));
	assert_null(strstr(diag_first_error(d), "expected a kernel"));
	diag_clear(d);

	nftio_recorder_fail_next(io, 1, "Error: Could not process rule: "
				 "Operation not permitted");
	assert_int_equal(check_config(c, io, d), -EINVAL);
	assert_non_null(strstr(diag_first_error(d), "was not permitted: \"Error: "
			       "Could not process rule: Operation not permitted\"; "
			       "expected CAP_NET_ADMIN"));
	diag_clear(d);

	nftio_recorder_fail_next(io, 1, "Error: Could not process rule: "
				 "Operation not supported");
	assert_int_equal(check_config(c, io, d), -EINVAL);
	assert_non_null(strstr(diag_first_error(d), "the kernel refused porthop's "
			       "native table (inet mtd_ports): \"Error: Could not "
			       "process rule: Operation not supported\"; expected a "
			       "kernel with nftables maps"));
	diag_free(d);
	config_free(c);
}

/* Template mode: an interrupted dry run does not blame a rule. */
static void test_check_template_interrupted(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct config *c = support_load(REFERENCE);
	struct diag *d = diag_new();

	nftio_recorder_fail_next(io, 100, "netlink: Error: Could not process "
				 "rule: Interrupted system call");
	assert_int_equal(check_config(c, io, d), -EINVAL);
	assert_int_equal(diag_errors(d), 1);
	assert_non_null(strstr(diag_first_error(d), "rules/address_rules.json: "
			       "rules: the kernel's dry run for watched_addresses[0] "
			       "(ip 10.0.0.3) did not complete"));
	assert_null(strstr(diag_first_error(d), "rejected"));
	diag_free(d);
	config_free(c);
}

/* Native mode replaces its table whole: a table of that name must be
 * porthop's (its rules carry the mark) or none.  Someone else's is
 * refused before anything reaches the kernel, a dry run included. */
static void test_check_foreign_table(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct config *c = support_load(NATIVE);
	struct engine *e;
	struct diag *d = diag_new();

	/* No such table: checked with one dry run. */
	assert_int_equal(nftio_table_marked(io, "inet", "mtd_ports",
					    RULESET_NATIVE_MARK), -ENOENT);
	assert_int_equal(check_config(c, io, d), 0);
	assert_int_equal(nftio_recorder_dry_runs(io), 1);

	/* The admin's: refused, named, with the way out; no dry run. */
	nftio_recorder_foreign_table(io, "mtd_ports");
	assert_int_equal(check_config(c, io, d), -EINVAL);
	assert_int_equal(nftio_recorder_dry_runs(io), 1);
	assert_int_equal(nftio_recorder_applied(io), 0);
	assert_int_equal(diag_errors(d), 1);
	print_message("  %s\n", diag_first_error(d));
	assert_string_equal(diag_first_error(d), "valid/native_full.json: "
		"nftables_service_configuration.table_name: \"mtd_ports\" names "
		"a table that exists and is not porthop's (table inet mtd_ports: "
		"none of its rules carries porthop's comment \"porthop\"), which "
		"porthop would replace; expected the name of no table or of "
		"porthop's own: choose another table_name, or, if the table is a "
		"leftover, delete it with `nft delete table inet mtd_ports`");
	nftio_recorder_foreign_table(io, NULL);
	diag_clear(d);

	/* porthop's own, as a porthopd killed with -9 leaves it: every
	 * rule carries the mark, and the table is taken over. */
	e = f->e = engine_new(support_load(NATIVE), io);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_true(last_has(io, "\"comment\":\"porthop\""));
	assert_int_equal(nftio_table_marked(io, "inet", "mtd_ports",
					    RULESET_NATIVE_MARK), 1);
	assert_int_equal(check_config(c, io, d), 0);
	assert_int_equal(diag_errors(d), 0);

	/* Deleted, and a table of that name made by someone else (no
	 * mark): refused. */
	assert_int_equal(nftio_apply_text(io, "{\"nftables\":[{\"delete\":"
					  "{\"table\":{\"family\":\"inet\","
					  "\"name\":\"mtd_ports\"}}},{\"add\":"
					  "{\"table\":{\"family\":\"inet\","
					  "\"name\":\"mtd_ports\"}}}]}", false,
					  NULL), 0);
	assert_int_equal(nftio_table_marked(io, "inet", "mtd_ports",
					    RULESET_NATIVE_MARK), 0);
	assert_int_equal(check_config(c, io, d), -EINVAL);
	diag_free(d);
	config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		SUPPORT_ENGINE_TEST(test_shuffle_applies_one_batch, IPV6_MANY),
		SUPPORT_ENGINE_TEST(test_failure_keeps_previous, IPV6_MANY),
		SUPPORT_ENGINE_TEST(test_shuffle_one_address, IPV6_MANY),
		SUPPORT_ENGINE_TEST(test_reload, REFERENCE),
		SUPPORT_ENGINE_TEST(test_reload_deletes_stale_tables, NATIVE),
		SUPPORT_RECORDER_TEST(test_reload_big_in_place),
		SUPPORT_RECORDER_TEST(test_reconcile_big_sets),
		SUPPORT_RECORDER_TEST(test_reconcile_long_list_trusted),
		SUPPORT_RECORDER_TEST(test_check_names_the_rule),
		SUPPORT_ENGINE_TEST(test_native_cycle, NATIVE),
		SUPPORT_ENGINE_TEST(test_untrack_auto, NATIVE),
		SUPPORT_ENGINE_TEST(test_untrack_modes, "valid/native_untrack.json"),
		SUPPORT_ENGINE_TEST(test_native_stop_removes, "valid/native_udp_only.json"),
		SUPPORT_ENGINE_TEST(test_native_stop_keeps, NATIVE),
		cmocka_unit_test(test_trigger_never_blesses_tampering),
		SUPPORT_RECORDER_TEST(test_trigger_quiet_costs_one_apply),
		cmocka_unit_test(test_commit_during_apply),
		cmocka_unit_test(test_busy_neighbour_no_false_repair),
		cmocka_unit_test(test_reload_redefines_no_false_repair),
		SUPPORT_ENGINE_TEST(test_address_inside_prefix, NATIVE),
		SUPPORT_RECORDER_TEST(test_nftio_errors),
		SUPPORT_RECORDER_TEST(test_check_native_errors),
		SUPPORT_RECORDER_TEST(test_check_template_interrupted),
		SUPPORT_RECORDER_TEST(test_check_foreign_table),
	};
	if (chdir(CORPUS_DIR) < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
