/* The batch builder against golden files, and its structure. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "ruleset.h"
#include "support.h"

/* The reference example with a fixed mapping 3->6, 4->7, 5->8. */
static json_t *reference_batch(struct config **ret_c)
{
	struct config *c = support_load("valid/reference.json");
	struct shuffle_map *m = shuffle_map_alloc(c);
	json_t *batch = NULL;

	assert_non_null(m);
	assert_int_equal(m->nentries, 1);
	assert_int_equal(m->entries[0].npairs, 3);
	for (size_t k = 0; k < 3; k++)
		m->entries[0].pairs[k].redirect = (uint16_t)(6 + k);
	assert_int_equal(ruleset_build(c, m, &batch), 0);
	shuffle_map_free(m);
	*ret_c = c;
	return batch;
}

static void test_golden_reference_batch(void **state)
{
	struct config *c;
	json_t *batch = reference_batch(&c), *golden;
	json_error_t e;

	(void)state;
	golden = json_load_file(GOLDEN_DIR "/reference_batch.json", 0, &e);
	if (golden == NULL)
		print_message("  %s:%d: %s\n", e.source, e.line, e.text);
	assert_non_null(golden);
	if (!json_equal(batch, golden)) {
		char *s = json_dumps(batch, JSON_INDENT(1));
		print_message("  built:\n%s\n", s);
		free(s);
	}
	assert_true(json_equal(batch, golden));
	json_decref(golden);
	json_decref(batch);
	config_free(c);
}

/* Native mode: a fixed mapping (each pair's redirect is the first free
 * port after the previous one) of corpus/valid/native_full.json. */
static json_t *native_batch_of(const char *file, struct config **ret_c,
			       struct shuffle_map **ret_m)
{
	struct config *c = support_load(file);
	struct shuffle_map *m = shuffle_map_alloc(c);
	json_t *batch = NULL;

	assert_non_null(m);
	for (size_t i = 0; i < m->nentries; i++) {
		unsigned next[CONFIG_NPROTO] = { 1, 1 };

		for (size_t k = 0; k < m->entries[i].npairs; k++) {
			struct shuffle_pair *p = &m->entries[i].pairs[k];

			while (config_proto_port_used(c, p->proto, next[p->proto]))
				next[p->proto]++;
			p->redirect = (uint16_t)next[p->proto]++;
		}
	}
	assert_int_equal(ruleset_build(c, m, &batch), 0);
	*ret_c = c;
	if (ret_m)
		*ret_m = m;
	else
		shuffle_map_free(m);
	return batch;
}

static json_t *native_batch(struct config **ret_c, struct shuffle_map **ret_m)
{
	return native_batch_of("valid/native_full.json", ret_c, ret_m);
}

/* batch equals the golden file `name` (rewritten first with
 * PORTHOP_UPDATE_GOLDEN set); consumes batch. */
static void assert_golden(json_t *batch, const char *name)
{
	char path[512];
	json_t *golden;
	json_error_t e;

	snprintf(path, sizeof(path), GOLDEN_DIR "/%s", name);
	if (getenv("PORTHOP_UPDATE_GOLDEN"))
		json_dump_file(batch, path, JSON_INDENT(1));
	golden = json_load_file(path, 0, &e);
	assert_non_null(golden);
	assert_true(json_equal(batch, golden));
	json_decref(golden);
	json_decref(batch);
}

/* The in-place definition under the corpus configuration `now` of a table
 * that `prev` defined, as compact JSON text (malloc'ed). */
static char *in_place_text(const char *now, const char *prev)
{
	struct config *n = support_load(now), *p = support_load(prev);
	json_t *cmds = json_array();
	char *text;

	assert_int_equal(ruleset_native_setup_after(n, p, cmds, true), 0);
	text = json_dumps(cmds, JSON_COMPACT);
	assert_non_null(text);
	json_decref(cmds);
	config_free(n);
	config_free(p);
	return text;
}

/* The same with the probe event feed on: its sets, counter, chains and
 * rules (native_events_ruleset.nft is the kernel's listing of it, checked
 * by the kernel test). */
static void test_golden_native_events_batch(void **state)
{
	struct config *c;
	json_t *batch = native_batch_of("valid/native_events.json", &c, NULL);

	(void)state;
	assert_golden(batch, "native_events_batch.json");
	config_free(c);
}

/* A prestage configuration's definition and switch to generation 1
 * against their golden files (PREFIX_batch.json, PREFIX_switch.json;
 * PORTHOP_UPDATE_GOLDEN=1 rewrites them). */
static void check_prestage_golden(const char *config, const char *prefix)
{
	struct config *c;
	json_t *batch = native_batch_of(config, &c, NULL);
	json_t *sw = ruleset_batch_new(c, false), *golden;
	json_error_t e;
	char path[512];

	assert_non_null(sw);
	assert_int_equal(ruleset_native_switch(c, 1, ruleset_commands(sw)), 0);
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s_%s.json", GOLDEN_DIR,
			 prefix, i ? "switch" : "batch");
		if (getenv("PORTHOP_UPDATE_GOLDEN"))
			json_dump_file(i ? sw : batch, path, JSON_INDENT(1));
		golden = json_load_file(path, 0, &e);
		assert_non_null(golden);
		assert_true(json_equal(i ? sw : batch, golden));
		json_decref(golden);
	}
	json_decref(sw);
	json_decref(batch);
	config_free(c);
}

/* prestage true (without the event feed): both generations' maps, each
 * generation's chains of lookups, the base chains' goto to generation 0;
 * and the switch to generation 1 (native_prestage_ruleset.nft and
 * native_prestage_switched.nft are the kernel's listings, checked by the
 * kernel test). */
static void test_golden_native_prestage(void **state)
{
	(void)state;
	check_prestage_golden("valid/native_prestage.json", "native_prestage");
}

/* prestage true with the event feed: the feed's chains that look the
 * maps up come in both generations too, reached through dispatch chains
 * (ev_new, nat_svc4/6, nat_new) of one goto each; the switch flushes
 * pre_stateless, out_stateless and the dispatch chains, never pre_nat
 * (native_events_prestage_ruleset.nft and _switched.nft: the kernel
 * test). */
static void test_golden_native_events_prestage(void **state)
{
	(void)state;
	check_prestage_golden("valid/native_events_prestage.json",
			      "native_events_prestage");
}

/* The events+prestage switch binds no map: no lookup, no verdict map,
 * no element; every dispatch goes to generation 1 (and back to 0). */
static void test_events_prestage_switch_binds_nothing(void **state)
{
	struct config *c;
	json_t *batch = native_batch_of("valid/native_events_prestage.json",
					&c, NULL);

	(void)state;
	for (unsigned gen = 0; gen < 2; gen++) {
		json_t *sw = ruleset_batch_new(c, false);
		char *text, want[64];
		static const char *const targets[] = {
			"ev_new_g", "nat_svc4_g", "nat_svc6_g", "nat_g",
			"stateless_g", "out_g",
		};

		assert_int_equal(ruleset_native_switch(c, gen,
						       ruleset_commands(sw)), 0);
		text = json_dumps(sw, JSON_COMPACT);
		assert_non_null(text);
		assert_null(strstr(text, "\"map\""));
		assert_null(strstr(text, "\"vmap\""));
		assert_null(strstr(text, "\"elem"));
		assert_null(strstr(text, "@swap"));
		assert_null(strstr(text, "@net"));
		assert_null(strstr(text, "@service"));
		assert_null(strstr(text, "\"name\":\"pre_nat\""));
		assert_null(strstr(text, "\"chain\":\"pre_nat\""));
		for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
			snprintf(want, sizeof(want), "{\"target\":\"%s%u\"}",
				 targets[i], gen);
			assert_non_null(strstr(text, want));
			snprintf(want, sizeof(want), "{\"target\":\"%s%u\"}",
				 targets[i], gen ^ 1);
			assert_null(strstr(text, want));
		}
		free(text);
		json_decref(sw);
	}
	json_decref(batch);
	config_free(c);
}

/* Turning the feed off in place deletes its chains, sets and counter;
 * a table that never had them gets no deletes. */
static void test_events_off_in_place(void **state)
{
	char *ta = in_place_text("valid/native_full.json",
				 "valid/native_events.json");
	char *tb = in_place_text("valid/native_full.json",
				 "valid/native_full.json");

	(void)state;
	assert_non_null(strstr(ta, "{\"delete\":{\"chain\":{\"family\":\"inet\","
			       "\"table\":\"mtd_ports\",\"name\":\"ev_new\"}}}"));
	assert_non_null(strstr(ta, "\"delete\":{\"counter\""));
	assert_null(strstr(tb, "ev_new"));
	assert_null(strstr(tb, "stale4"));
	free(ta);
	free(tb);
}

/* Knocks on (corpus/valid/native_knock.json, events too): the knocked
 * sets before the rules that look them up, a return for them wherever
 * trusted sources return, the knock chain (native_knock_ruleset.nft is
 * the kernel's listing, checked by the kernel test). */
static void test_golden_native_knock_batch(void **state)
{
	struct config *c;
	json_t *batch = native_batch_of("valid/native_knock.json", &c, NULL);
	char *text = json_dumps(batch, JSON_COMPACT);

	(void)state;
	/* The set comes before any rule that names it. */
	assert_true(strstr(text, "\"name\":\"knocked4\"") <
		    strstr(text, "\"right\":\"@knocked4\""));
	free(text);
	assert_golden(batch, "native_knock_batch.json");
	config_free(c);
}

/* Turning knocks off in place deletes their chain, sets and counter;
 * a table that never had them gets no deletes. */
static void test_knock_off_in_place(void **state)
{
	char *ta = in_place_text("valid/native_events.json",
				 "valid/native_knock.json");
	char *tb = in_place_text("valid/native_events.json",
				 "valid/native_events.json");

	(void)state;
	assert_non_null(strstr(ta, "{\"delete\":{\"chain\":{\"family\":\"inet\","
			       "\"table\":\"mtd_ports\",\"name\":\"pre_knock\"}}}"));
	assert_non_null(strstr(ta, "{\"delete\":{\"set\":{\"family\":\"inet\","
			       "\"table\":\"mtd_ports\",\"name\":\"knocked6\"}}}"));
	assert_null(strstr(ta, "@knocked4"));
	assert_null(strstr(tb, "knock"));
	free(ta);
	free(tb);
}

/* A knock's admission: add, delete, add of the address with the trust's
 * timeout, so that a second knock starts the timeout again. */
static void test_knocked_elements(void **state)
{
	struct config *c = support_load("valid/native_knock.json");
	struct nftio_elems *b = nftio_elems_new("mtd_ports");
	unsigned char a[16] = { 192, 0, 2, 7 };
	json_t *j;
	char *text;

	(void)state;
	assert_int_equal(ruleset_native_knocked(c, AF_INET, a, b), 0);
	j = nftio_elems_json(b);
	text = json_dumps(j, JSON_COMPACT);
	assert_string_equal(text, "{\"nftables\":["
		"{\"add\":{\"element\":{\"family\":\"inet\",\"table\":\"mtd_ports\","
		"\"name\":\"knocked4\",\"elem\":[{\"elem\":{\"val\":\"192.0.2.7\","
		"\"timeout\":60}}]}}},"
		"{\"delete\":{\"element\":{\"family\":\"inet\",\"table\":\"mtd_ports\","
		"\"name\":\"knocked4\",\"elem\":[\"192.0.2.7\"]}}},"
		"{\"add\":{\"element\":{\"family\":\"inet\",\"table\":\"mtd_ports\","
		"\"name\":\"knocked4\",\"elem\":[{\"elem\":{\"val\":\"192.0.2.7\","
		"\"timeout\":60}}]}}}]}");
	free(text);
	json_decref(j);
	nftio_elems_free(b);
	config_free(c);
}

/* With the feed on, the rule that untracks an unwatched source's packets
 * also sends those to a port that is not a service on to ev_untracked (in
 * the same rule: a packet to a service meets no rule more); the rules of
 * the output chain, and all of them with the feed off, do not. */
static void test_events_untracked_rules(void **state)
{
	const char *names[2] = { "valid/native_events.json",
				 "valid/native_untrack.json" };

	(void)state;
	for (int k = 0; k < 2; k++) {
		struct config *c = support_load(names[k]);
		json_t *cmds = json_array(), *cmd;
		size_t i, to_events = 0, rules = 0;

		assert_int_equal(ruleset_native_untrack_rules(c, true, cmds), 0);
		json_array_foreach(cmds, i, cmd) {
			json_t *r = json_object_get(json_object_get(cmd, "add"),
						    "rule");
			char *text;

			if (r == NULL)
				continue;
			rules++;
			text = json_dumps(r, JSON_COMPACT);
			assert_non_null(text);
			if (strstr(text, "\"@services\"") &&
			    strstr(text, "{\"goto\":{\"target\":\"ev_untracked\"}}")) {
				to_events++;
				assert_non_null(strstr(text, "\"raw_pre\""));
				assert_non_null(strstr(text, "{\"notrack\":null}"));
			}
			free(text);
		}
		assert_int_equal(rules, 4);
		/* IPv4 and IPv6 prerouting, with the feed on. */
		assert_int_equal(to_events, k == 0 ? 2 : 0);
		json_decref(cmds);
		config_free(c);
	}
}

static void test_golden_native_batch(void **state)
{
	struct config *c;
	json_t *batch = native_batch(&c, NULL), *golden;
	json_error_t e;

	(void)state;
	/* PORTHOP_UPDATE_GOLDEN=1 rewrites the file; review it with the
	 * kernel test, which compares the kernel's listing with
	 * native_ruleset.nft. */
	if (getenv("PORTHOP_UPDATE_GOLDEN"))
		json_dump_file(batch, GOLDEN_DIR "/native_batch.json", JSON_INDENT(1));
	golden = json_load_file(GOLDEN_DIR "/native_batch.json", 0, &e);
	assert_non_null(golden);
	assert_true(json_equal(batch, golden));
	json_decref(golden);
	json_decref(batch);
	config_free(c);
}

/* Every pair is two elements, real -> redirect and back, in the map of
 * its entry's kind; trusted entries land in the trusted sets. */
static void test_native_elements(void **state)
{
	struct config *c;
	struct shuffle_map *m;
	json_t *batch = native_batch(&c, &m), *cmd;
	size_t i, elems[RULESET_MAP_COUNT] = { 0 }, trusted = 0;
	size_t want[RULESET_MAP_COUNT] = { 0 };

	(void)state;
	json_array_foreach(ruleset_commands(batch), i, cmd) {
		json_t *el = json_object_get(json_object_get(cmd, "add"), "element");
		const char *name = json_string_value(json_object_get(el, "name"));

		if (el == NULL)
			continue;
		for (int k = 0; k < RULESET_MAP_COUNT; k++)
			if (strcmp(name, ruleset_native_maps[k]) == 0)
				elems[k] += json_array_size(json_object_get(el, "elem"));
		if (strncmp(name, "trusted", 7) == 0)
			trusted += json_array_size(json_object_get(el, "elem"));
	}
	for (i = 0; i < m->nentries; i++)
		want[ruleset_native_map(config_watched(c, i))] += 2 * m->entries[i].npairs;
	for (int k = 0; k < RULESET_MAP_COUNT; k++)
		assert_int_equal(elems[k], want[k]);
	assert_int_equal(trusted, 3);
	json_decref(batch);
	shuffle_map_free(m);
	config_free(c);
}

/* map_capacity: the swap maps of both generations declare their size
 * (2 elements a pair, map_capacity addresses of every service), the
 * interval maps none; without it, none does. */
static void test_map_size(void **state)
{
	static const char *const files[] = { "valid/map_capacity.json",
					      "valid/native_full.json" };

	(void)state;
	for (size_t f = 0; f < 2; f++) {
		struct config *c;
		json_t *batch = native_batch_of(files[f], &c, NULL), *cmd;
		size_t i, sized = 0, maps = 0;

		json_array_foreach(ruleset_commands(batch), i, cmd) {
			json_t *def = json_object_get(json_object_get(cmd, "add"),
						      "map");
			json_t *size = json_object_get(def, "size");
			bool interval = json_object_get(def, "flags") != NULL;

			if (def == NULL)
				continue;
			maps++;
			if (size == NULL)
				continue;
			assert_false(interval);
			assert_int_equal(json_integer_value(size),
					 config_map_size(c));
			sized++;
		}
		assert_true(maps >= RULESET_MAP_COUNT);
		/* map_capacity 2 of 5 services: 20 elements, swap4 and
		 * swap6 (and their second generation, if defined). */
		if (f == 0) {
			assert_int_equal(config_map_size(c), 20);
			assert_int_equal(sized, maps / 2);
		} else {
			assert_int_equal(sized, 0);
		}
		json_decref(batch);
		config_free(c);
	}
}

/* The four maps: each name with its family and kind, and every watched
 * entry in the map of its own family and kind. */
static void test_map_kinds(void **state)
{
	static const struct {
		const char *name;
		int family;
		bool interval;
	} want[RULESET_MAP_COUNT] = {
		[RULESET_MAP_SWAP4] = { "swap4", AF_INET, false },
		[RULESET_MAP_NET4] = { "net4", AF_INET, true },
		[RULESET_MAP_SWAP6] = { "swap6", AF_INET6, false },
		[RULESET_MAP_NET6] = { "net6", AF_INET6, true },
	};
	struct config *c = support_load("valid/native_full.json");
	bool seen[RULESET_MAP_COUNT] = { false };

	(void)state;
	for (enum ruleset_map m = 0; m < RULESET_MAP_COUNT; m++) {
		assert_string_equal(ruleset_native_maps[m], want[m].name);
		assert_int_equal(ruleset_map_family(m), want[m].family);
		assert_int_equal(ruleset_map_interval(m), want[m].interval);
	}
	for (size_t i = 0; i < config_watched_count(c); i++) {
		const struct config_watched *w = config_watched(c, i);
		enum ruleset_map m = ruleset_native_map(w);

		assert_int_equal(ruleset_map_family(m), w->family);
		assert_int_equal(ruleset_map_interval(m), w->net.is_prefix);
		seen[m] = true;
	}
	/* native_full.json has entries of every kind. */
	for (enum ruleset_map m = 0; m < RULESET_MAP_COUNT; m++)
		assert_true(seen[m]);
	config_free(c);
}

/* A per-address update touches only that address's elements. */
static void test_native_entry(void **state)
{
	struct config *c;
	struct shuffle_map *m;
	json_t *batch = native_batch(&c, &m), *j;
	struct nftio_elems *b = nftio_elems_new(config_table_name(c));
	struct shuffle_entry next = m->entries[1];
	struct shuffle_pair pairs[16];
	char *text;

	(void)state;
	memcpy(pairs, next.pairs, next.npairs * sizeof(*pairs));
	next.pairs = pairs;
	for (size_t k = 0; k < next.npairs; k++)
		pairs[k].redirect = (uint16_t)(900 + k);
	assert_int_equal(ruleset_native_entry(c, &m->entries[1], &next, b), 0);
	/* delete 2 per old pair, add 2 per new pair */
	assert_int_equal(nftio_elems_count(b), 4 * next.npairs);
	j = nftio_elems_json(b);
	text = json_dumps(j, JSON_COMPACT);
	assert_non_null(strstr(text, "\"delete\":{\"element\":{\"family\":\"inet\","
			       "\"table\":\"mtd_ports\",\"name\":\"net4\""));
	assert_non_null(strstr(text, "{\"prefix\":{\"addr\":\"10.1.0.0\",\"len\":16}}"));
	assert_null(strstr(text, "10.0.0.3"));
	free(text);
	json_decref(j);
	nftio_elems_free(b);
	json_decref(batch);
	shuffle_map_free(m);
	config_free(c);
}

static void test_structure(void **state)
{
	struct config *c;
	json_t *batch = reference_batch(&c);
	json_t *cmds = ruleset_commands(batch);
	size_t redirects = 0;

	(void)state;
	/* Six startup commands, then nine rules for each of three pairs. */
	assert_int_equal(json_array_size(cmds), 6 + 3 * 9);
	assert_non_null(json_object_get(json_array_get(cmds, 0), "flush"));
	for (size_t i = 6; i < json_array_size(cmds); i++) {
		json_t *rule = json_object_get(json_object_get(
			json_array_get(cmds, i), "add"), "rule");
		json_t *expr = json_object_get(rule, "expr");
		json_t *last = json_array_get(expr, json_array_size(expr) - 1);
		json_t *saddr = json_object_get(json_object_get(
			json_array_get(expr, 0), "match"), "right");

		assert_non_null(rule);
		if (json_object_get(last, "redirect")) {
			json_int_t to = json_integer_value(json_object_get(
				json_object_get(last, "redirect"), "port"));

			assert_true(to >= 3 && to <= 8);
			redirects++;
		}
		if (strcmp(json_string_value(json_object_get(rule, "chain")),
			   "output") != 0)
			assert_string_equal(json_string_value(saddr), "10.0.0.3");
	}
	assert_int_equal(redirects, 6);
	json_decref(batch);
	config_free(c);
}

/* The untrack_unwatched commands of a definition, counted by kind. */
struct untrack_count {
	size_t notrack, delete_chain, raw_chains;
	json_t *tracked[2];	/* the elements of tracked4, tracked6 */
	json_t *trusted[2];	/* the elements of trusted4, trusted6 */
};

static struct untrack_count untrack_of(const struct config *c, bool in_place)
{
	struct untrack_count n = { .tracked = { json_array(), json_array() },
				   .trusted = { json_array(), json_array() } };
	struct nftio_elems *b = nftio_elems_new(config_table_name(c));
	json_t *cmds = json_array(), *elems, *cmd, *v;
	char *text;
	size_t i, j;

	/* The definition (no rule that untracks, no element), the rules,
	 * then the elements the sets get beside the maps'. */
	assert_int_equal(ruleset_native_setup(c, cmds, in_place), 0);
	text = json_dumps(cmds, JSON_COMPACT);
	assert_non_null(text);
	assert_null(strstr(text, "notrack"));
	assert_null(strstr(text, "\"element\""));
	free(text);
	assert_int_equal(ruleset_native_untrack_rules(c, true, cmds), 0);
	assert_int_equal(ruleset_native_set_elements(c, b), 0);
	elems = nftio_elems_json(b);
	assert_non_null(elems);
	json_array_extend(cmds, ruleset_commands(elems));
	json_decref(elems);
	nftio_elems_free(b);
	json_array_foreach(cmds, i, cmd) {
		json_t *add = json_object_get(cmd, "add");
		json_t *del = json_object_get(json_object_get(cmd, "delete"), "chain");
		json_t *r = json_object_get(add, "rule");
		json_t *el = json_object_get(add, "element");
		json_t *ch = json_object_get(add, "chain");
		const char *name = json_string_value(json_object_get(el, "name"));

		if (r)
			json_array_foreach(json_object_get(r, "expr"), j, v)
				n.notrack += json_object_get(v, "notrack") != NULL;
		for (int f = 0; name && f < 2; f++) {
			if (strcmp(name, f ? "tracked6" : "tracked4") == 0)
				json_array_extend(n.tracked[f],
						  json_object_get(el, "elem"));
			if (strcmp(name, f ? "trusted6" : "trusted4") == 0)
				json_array_extend(n.trusted[f],
						  json_object_get(el, "elem"));
		}
		/* The event chains' deletes (events off, in place) are
		 * not untrack's. */
		if (del && strncmp(json_string_value(json_object_get(del, "name")),
				   "raw_", 4) == 0)
			n.delete_chain++;
		if (ch && strncmp(json_string_value(json_object_get(ch, "name")),
				  "raw_", 4) == 0)
			n.raw_chains++;
	}
	json_decref(cmds);
	return n;
}

static void untrack_free(struct untrack_count *n)
{
	for (int f = 0; f < 2; f++) {
		json_decref(n->tracked[f]);
		json_decref(n->trusted[f]);
	}
}

static void assert_json(json_t *got, const char *want)
{
	json_t *w = json_loads(want, 0, NULL);
	char *g = json_dumps(got, JSON_COMPACT);

	assert_non_null(w);
	if (!json_equal(got, w))
		fail_msg("got %s, expected %s", g, want);
	free(g);
	json_decref(w);
}

/* untrack_unwatched: two raw chains whose rules untrack what is not in
 * tracked4/6, both ways, both families; the sets hold the watched
 * networks minus the trusted ones, merged; off, nothing of it, unless a
 * definition is replaced in place, where what an earlier one had goes. */
static void test_untrack_unwatched(void **state)
{
	struct config *on = support_load("valid/native_untrack.json");
	struct config *off = support_load("valid/native_tracked.json");
	struct config *in_auto = support_load("valid/native_full.json");
	struct untrack_count n;
	json_t *cmds = json_array();
	char *text;

	(void)state;
	n = untrack_of(on, false);
	assert_int_equal(n.raw_chains, 2);
	assert_int_equal(n.notrack, 4);
	assert_int_equal(n.delete_chain, 0);
	/* 10.0.0.3, 10.1.0.0/16 (10.1.2.3 inside it) minus 10.1.7.0/24 and
	 * 10.1.9.9; 2001:db8::/48 minus 2001:db8::1, and 2001:db8:1::7. */
	assert_json(n.tracked[0], "[\"10.0.0.3\","
		    "{\"range\": [\"10.1.0.0\", \"10.1.6.255\"]},"
		    "{\"range\": [\"10.1.8.0\", \"10.1.9.8\"]},"
		    "{\"range\": [\"10.1.9.10\", \"10.1.255.255\"]}]");
	assert_json(n.tracked[1], "[\"2001:db8::\","
		    "{\"range\": [\"2001:db8::2\", "
		    "\"2001:db8:0:ffff:ffff:ffff:ffff:ffff\"]},"
		    "\"2001:db8:1::7\"]");
	untrack_free(&n);
	/* The trusted sets are filled the same way, with or without. */
	n = untrack_of(off, false);
	assert_json(n.trusted[0], "[{\"range\": [\"10.1.7.0\", \"10.1.7.255\"]},"
		    "\"10.1.9.9\"]");
	assert_json(n.trusted[1], "[\"2001:db8::1\"]");
	assert_int_equal(n.raw_chains + n.notrack + n.delete_chain, 0);
	assert_int_equal(json_array_size(n.tracked[0]) +
			 json_array_size(n.tracked[1]), 0);
	untrack_free(&n);
	n = untrack_of(off, true);
	assert_int_equal(n.raw_chains, 2);
	assert_int_equal(n.delete_chain, 2);
	assert_int_equal(n.notrack + json_array_size(n.tracked[0]) +
			 json_array_size(n.tracked[1]), 0);
	untrack_free(&n);
	/* "auto", the default: the sets and chains always there, filled
	 * alike; the rules on (as with true) or off (their chains flushed)
	 * as the engine decides; none in the batch ruleset_build makes. */
	n = untrack_of(in_auto, false);
	assert_int_equal(n.raw_chains, 2);
	assert_int_equal(n.notrack, 4);
	assert_int_equal(json_array_size(n.tracked[0]), 4);
	untrack_free(&n);
	assert_int_equal(ruleset_native_untrack_rules(in_auto, false, cmds), 0);
	text = json_dumps(cmds, JSON_COMPACT);
	assert_string_equal(text, "[{\"flush\":{\"chain\":{\"family\":\"inet\","
			    "\"table\":\"mtd_ports\",\"name\":\"raw_pre\"}}},"
			    "{\"flush\":{\"chain\":{\"family\":\"inet\","
			    "\"table\":\"mtd_ports\",\"name\":\"raw_out\"}}}]");
	free(text);
	json_decref(cmds);
	config_free(in_auto);
	config_free(on);
	config_free(off);
}

/* The set difference at its edges: a trusted prefix that covers a watched
 * address whole, two watched prefixes that touch (merged) with trusted
 * ones cut at both sides of the seam, a trusted network equal to a
 * watched one, and the top of the IPv6 space. */
static void test_tracked_edges(void **state)
{
	struct config *c = support_load_nftables(
		"\"max_port_number\": 1000, \"tcp_ports\": [22], "
		"\"untrack_unwatched\": true,"
		"\"watched_addresses\": [{\"ip\": \"10.1.2.3\"}, "
		"{\"ip\": \"10.3.0.0/16\"}, {\"ip\": \"10.2.0.0/16\"}, "
		"{\"ip\": \"2001:db8::/32\"}, {\"ip\": \"ffff::/16\"}],"
		"\"trusted_addresses\": [\"10.1.0.0/16\", \"10.3.0.0/24\", "
		"\"10.2.255.0/24\", \"2001:db8::/32\", \"ffff:ffff::/32\"]");
	struct untrack_count n;

	(void)state;
	n = untrack_of(c, false);
	assert_json(n.tracked[0], "[{\"range\": [\"10.2.0.0\", \"10.2.254.255\"]},"
		    "{\"range\": [\"10.3.1.0\", \"10.3.255.255\"]}]");
	assert_json(n.tracked[1], "[{\"range\": [\"ffff::\", "
		    "\"ffff:fffe:ffff:ffff:ffff:ffff:ffff:ffff\"]}]");
	/* Trusted prefixes that touch are one range. */
	assert_json(n.trusted[0], "[{\"range\": [\"10.1.0.0\", \"10.1.255.255\"]},"
		    "{\"range\": [\"10.2.255.0\", \"10.3.0.255\"]}]");
	untrack_free(&n);
	config_free(c);
}

static void test_empty_map_is_startup_only(void **state)
{
	struct config *c = support_load("valid/no_watched.json");
	struct shuffle_map *m = shuffle_map_alloc(c);
	json_t *batch = NULL;

	(void)state;
	assert_int_equal(ruleset_build(c, m, &batch), 0);
	assert_true(json_equal(ruleset_commands(batch),
			       config_startup_commands(c)));
	json_decref(batch);
	shuffle_map_free(m);
	config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_reference_batch),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_golden_native_batch),
		cmocka_unit_test(test_golden_native_events_batch),
		cmocka_unit_test(test_events_off_in_place),
		cmocka_unit_test(test_events_untracked_rules),
		cmocka_unit_test(test_golden_native_knock_batch),
		cmocka_unit_test(test_knock_off_in_place),
		cmocka_unit_test(test_knocked_elements),
		cmocka_unit_test(test_golden_native_prestage),
		cmocka_unit_test(test_golden_native_events_prestage),
		cmocka_unit_test(test_events_prestage_switch_binds_nothing),
		cmocka_unit_test(test_native_elements),
		cmocka_unit_test(test_map_size),
		cmocka_unit_test(test_map_kinds),
		cmocka_unit_test(test_native_entry),
		cmocka_unit_test(test_empty_map_is_startup_only),
		cmocka_unit_test(test_untrack_unwatched),
		cmocka_unit_test(test_tracked_edges),
	};
	if (chdir(CORPUS_DIR) < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
