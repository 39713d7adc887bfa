/*
 * prestage against the recording backend: the next mapping staged in the
 * standby maps, the switch, the fallbacks, one-address shuffles and
 * runtime entries, a tampered standby, a reload while staging.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "engine.h"
#include "ruleset.h"
#include "support.h"

/* The members of nftables_service_configuration for naddr watched
 * addresses (10.0.x.y) with nports TCP ports each, prestage `prestage`
 * (JSON text), and the members extra (JSON text, each followed by a
 * comma).  The caller frees it. */
static char *shape_text(const char *prestage, int naddr, int nports,
			const char *extra)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	fprintf(f, "%s\"max_port_number\": 65535, \"prestage\": %s, "
		"\"tcp_ports\": [", extra, prestage);
	for (int p = 1; p <= nports; p++)
		fprintf(f, "%s%d", p > 1 ? "," : "", p);
	fprintf(f, "], \"watched_addresses\": [");
	for (int a = 0; a < naddr; a++)
		fprintf(f, "%s{\"ip\": \"10.0.%d.%d\"}", a ? "," : "",
			(a + 1) / 250, (a + 1) % 250 + 1);
	fprintf(f, "]");
	fclose(f);
	return text;
}

/* A native configuration of that shape (see shape_text). */
static struct config *load_shape(const char *prestage, int naddr, int nports,
				 const char *extra)
{
	char *text = shape_text(prestage, naddr, nports, extra);
	struct config *c = support_load_nftables(text);

	free(text);
	return c;
}

/* The same with the probe event feed on (porthopd.events). */
static struct config *load_events_shape(const char *prestage, int naddr,
					int nports)
{
	char *text = shape_text(prestage, naddr, nports, ""), *all = NULL;
	struct config *c;

	assert_true(asprintf(&all, "{\"redis_connection_configuration\": "
			     "{\"host\": \"127.0.0.1\", \"port\": 6379, "
			     "\"db\": 0, \"charset\": \"utf-8\", "
			     "\"decode_responses\": true}, "
			     "\"redis_subscriber_configuration\": "
			     "{\"subscriber_channel_names\": [\"c\"]}, "
			     "\"nftables_service_configuration\": {%s}, "
			     "\"porthopd\": {\"state_directory\": \"\", "
			     "\"events\": {}}}\n", text) > 0);
	c = support_load_text(all);
	free(all);
	free(text);
	return c;
}

static char *last_text(struct nftio *io)
{
	char *text = json_dumps(nftio_recorder_last(io), JSON_COMPACT);

	assert_non_null(text);
	return text;
}

static bool last_has(struct nftio *io, const char *needle)
{
	char *text = last_text(io);
	bool r = strstr(text, needle) != NULL;

	free(text);
	return r;
}

/* Whether the last batch emptied map. */
static bool last_flushes(struct nftio *io, const char *map)
{
	char needle[128];

	snprintf(needle, sizeof(needle), "{\"flush\":{\"map\":{\"family\":"
		 "\"inet\",\"table\":\"porthop\",\"name\":\"%s\"}}}", map);
	return last_has(io, needle);
}

/* Whether the last batch changed the elements of generation gen's
 * exact IPv4 map. */
static bool last_writes(struct nftio *io, unsigned gen)
{
	char needle[64];

	snprintf(needle, sizeof(needle), "\"name\":\"%s\"",
		 ruleset_native_gen_maps[gen][RULESET_MAP_SWAP4]);
	return last_has(io, needle);
}

/* The elements of map in generation gen, as the batch that adds them. */
static json_t *elements_of(const struct engine *e,
			   const struct shuffle_map *map, unsigned gen)
{
	const struct config *c = engine_config(e);
	struct nftio_elems *b = nftio_elems_new(config_table_name(c));
	json_t *j;

	assert_non_null(b);
	assert_int_equal(ruleset_native_elements_gen(c, map, gen, false, b), 0);
	j = nftio_elems_json(b);
	nftio_elems_free(b);
	return j;
}

/* Whether one "add element" command of got adds elem to map. */
static bool adds(json_t *got, const char *map, json_t *elem)
{
	size_t i, j;
	json_t *g, *x;

	json_array_foreach(ruleset_commands(got), i, g) {
		json_t *el = json_object_get(json_object_get(g, "add"),
					     "element");

		if (el == NULL || strcmp(json_string_value(json_object_get(
				el, "name")), map) != 0)
			continue;
		json_array_foreach(json_object_get(el, "elem"), j, x)
			if (json_equal(x, elem))
				return true;
	}
	return false;
}

/* Whether every element want's batch adds, got's adds too (in whatever
 * commands). */
static bool batch_holds(json_t *got, json_t *want)
{
	size_t i, j;
	json_t *w, *x;

	json_array_foreach(ruleset_commands(want), i, w) {
		json_t *el = json_object_get(json_object_get(w, "add"),
					     "element");
		const char *map = json_string_value(json_object_get(el, "name"));

		json_array_foreach(json_object_get(el, "elem"), j, x)
			if (!adds(got, map, x))
				return false;
	}
	return json_array_size(ruleset_commands(want)) > 0;
}

/* Stages the next mapping whole; returns how many chunks it took. */
static int stage_all(struct engine *e)
{
	int r, chunks = 0;

	do {
		r = engine_stage_step(e, NULL);
		assert_true(r >= 0);
		chunks++;
	} while (r == 1);
	assert_true(engine_stats(e)->standby_ready);
	return chunks;
}

/* The switch: one small transaction of rules naming the other
 * generation's maps, no element; the mapping it puts in force is the one
 * staged, whole. */
static void test_switch(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e = engine_new(load_shape("true", 3, 4, ""), io);
	json_t *staged, *want;
	size_t applied;

	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_true(engine_stats(e)->prestage);
	assert_false(engine_stats(e)->standby_ready);
	applied = nftio_recorder_applied(io);
	assert_int_equal(stage_all(e), 1);
	assert_int_equal(nftio_recorder_applied(io), applied + 1);
	/* Staged into generation 1 alone, after its flush. */
	assert_true(last_flushes(io, "swap4_b"));
	assert_true(last_writes(io, 1));
	assert_false(last_writes(io, 0));
	staged = json_incref(nftio_recorder_last(io));
	/* Nothing more to stage. */
	assert_int_equal(engine_stage_step(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 1);

	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 2);
	assert_int_equal(engine_stats(e)->switches, 1);
	assert_int_equal(engine_stats(e)->fallbacks, 0);
	assert_int_equal(engine_stats(e)->generation, 1);
	assert_int_equal(engine_stats(e)->shuffles, 2);
	assert_false(engine_stats(e)->standby_ready);
	/* The base chains goto generation 1's chains; no rule that binds
	 * a map (the kernel would walk its elements). */
	assert_true(last_has(io, "{\"goto\":{\"target\":\"nat_g1\"}}"));
	assert_true(last_has(io, "{\"goto\":{\"target\":\"stateless_g1\"}}"));
	assert_true(last_has(io, "{\"goto\":{\"target\":\"out_g1\"}}"));
	assert_false(last_has(io, "_g0\""));
	assert_false(last_has(io, "\"@swap4"));
	assert_false(last_has(io, "\"element\""));
	assert_true(last_has(io, "{\"flush\":{\"chain\""));
	assert_true(json_array_size(ruleset_commands(nftio_recorder_last(io)))
		    < 40);
	want = elements_of(e, engine_map(e), 1);
	assert_true(batch_holds(staged, want));
	json_decref(want);
	/* (Not the same elements in the other generation's maps.) */
	want = elements_of(e, engine_map(e), 0);
	assert_false(batch_holds(staged, want));
	json_decref(want);
	json_decref(staged);

	/* The next one goes to generation 0, and back. */
	stage_all(e);
	assert_true(last_writes(io, 0));
	assert_false(last_writes(io, 1));
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->generation, 0);
	assert_true(last_has(io, "{\"goto\":{\"target\":\"nat_g0\"}}"));
	assert_false(last_has(io, "_g1\""));
}

/* The old mapping's redirect ports as the probe event feed's stale
 * elements. */
static json_t *stale_of(const struct engine *e)
{
	const struct config *c = engine_config(e);
	const struct shuffle_map *m = engine_map(e);
	struct nftio_elems *b = nftio_elems_new(config_table_name(c));
	size_t added;
	json_t *j;

	assert_non_null(b);
	assert_int_equal(ruleset_native_stale(c, m->entries, m->nentries,
					      (size_t)-1, b, &added), 0);
	j = nftio_elems_json(b);
	nftio_elems_free(b);
	return j;
}

/* With the probe event feed on, prestage is on too: the switch rewrites
 * pre_stateless, out_stateless and the feed's dispatch chains (their
 * gotos to the new generation's chains), never pre_nat and no rule that
 * binds a map; the mapping it leaves goes into the stale sets in a
 * transaction of its own right after, and the table stays ours. */
static void test_switch_with_events(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e = engine_new(load_events_shape("true", 3, 4),
					     io);
	static const char *const dispatch[] = {
		"ev_new_g", "nat_svc4_g", "nat_svc6_g", "nat_g", "stateless_g",
		"out_g",
	};
	char needle[64];
	size_t applied;
	json_t *want;

	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_true(engine_stats(e)->prestage);
	stage_all(e);
	/* The stale elements refused: the switch is the last batch. */
	nftio_recorder_fail_match(io, "stale4", "Error: refused by the test");
	applied = nftio_recorder_applied(io);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 1);
	assert_int_equal(engine_stats(e)->switches, 1);
	assert_int_equal(engine_stats(e)->generation, 1);
	for (size_t i = 0; i < sizeof(dispatch) / sizeof(dispatch[0]); i++) {
		snprintf(needle, sizeof(needle),
			 "{\"goto\":{\"target\":\"%s1\"}}", dispatch[i]);
		assert_true(last_has(io, needle));
		snprintf(needle, sizeof(needle),
			 "{\"goto\":{\"target\":\"%s0\"}}", dispatch[i]);
		assert_false(last_has(io, needle));
	}
	assert_false(last_has(io, "pre_nat"));
	assert_false(last_has(io, "\"map\""));
	assert_false(last_has(io, "\"vmap\""));
	/* (The trusted sets, small, as in the switch without the feed.) */
	assert_false(last_has(io, "\"@swap"));
	assert_false(last_has(io, "\"@net"));
	assert_false(last_has(io, "\"@service"));
	assert_false(last_has(io, "\"element\""));
	assert_true(json_array_size(ruleset_commands(nftio_recorder_last(io)))
		    < 40);

	/* Back to generation 0, the stale elements accepted: the ports
	 * the old mapping redirected to, each with its timeout. */
	nftio_recorder_fail_match(io, NULL, NULL);
	stage_all(e);
	want = stale_of(e);
	applied = nftio_recorder_applied(io);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied + 2);
	assert_int_equal(engine_stats(e)->switches, 2);
	assert_int_equal(engine_stats(e)->generation, 0);
	assert_true(last_has(io, "\"name\":\"stale4\""));
	assert_true(last_has(io, "\"timeout\":900"));
	assert_true(batch_holds(nftio_recorder_last(io), want));
	json_decref(want);
	/* Our own commit: nothing to repair. */
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(engine_stats(e)->repairs, 0);
}

/* No standby ready: the trigger replaces the maps in force whole (a
 * fallback, counted), and the staging goes on where it was. */
static void test_fallback(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	/* 12,500 pairs: two chunks. */
	struct engine *e = f->e = engine_new(load_shape("true", 2500, 5, ""), io);

	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->fallbacks, 1);
	assert_true(last_writes(io, 0));
	assert_false(last_writes(io, 1));
	assert_int_equal(engine_stage_step(e, NULL), 1);
	assert_true(last_has(io, "{\"flush\":{\"map\""));
	/* Half staged: still a fallback, into the maps in force. */
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->fallbacks, 2);
	assert_int_equal(engine_stats(e)->switches, 0);
	assert_true(last_writes(io, 0));
	assert_false(last_writes(io, 1));
	/* The rest of the standby: no flush this time. */
	assert_int_equal(engine_stage_step(e, NULL), 0);
	assert_false(last_has(io, "{\"flush\":{\"map\""));
	assert_true(last_writes(io, 1));
	assert_true(engine_stats(e)->standby_ready);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->switches, 1);
	/* The switch refused: the full replace still serves the trigger. */
	stage_all(e);
	nftio_recorder_fail_next(io, 1, "Error: Could not process rule: "
				 "No such file or directory");
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->switches, 1);
	assert_int_equal(engine_stats(e)->shuffles, 5);
	assert_true(last_writes(io, 1));
}

/* prestage false: one generation, as before; so is "auto" below the
 * pairs it needs. */
static void test_off_and_auto(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e = engine_new(load_shape("false", 3, 4, "\"untrack_unwatched\": true, "), io);
	size_t applied;

	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_false(last_has(io, "swap4_b"));
	applied = nftio_recorder_applied(io);
	assert_int_equal(engine_stage_step(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->fallbacks, 0);
	engine_free(e);

	e = f->e = engine_new(load_shape("\"auto\"", 3, 4, "\"untrack_unwatched\": true, "), io);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_false(last_has(io, "\"swap4_b\""));
	assert_false(last_has(io, "nat_g0"));
	assert_false(engine_stats(e)->prestage);
	applied = nftio_recorder_applied(io);
	assert_int_equal(engine_stage_step(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied);
	engine_free(e);

	e = f->e = engine_new(load_shape("\"auto\"", 2000, 5, ""), io);
	assert_int_equal(config_pair_count(engine_config(e)),
			 CONFIG_PRESTAGE_AUTO_PAIRS);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_true(engine_stats(e)->prestage);
	stage_all(e);
}

/* One address reshuffled: its elements in force change alone; the
 * standby's draw for it was never in force and stays, ready. */
static void test_address_shuffle(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e = engine_new(load_shape("true", 3, 4, ""), io);
	json_t *staged, *want;

	assert_int_equal(engine_shuffle(e, NULL), 0);
	stage_all(e);
	staged = json_incref(nftio_recorder_last(io));
	assert_int_equal(engine_shuffle_address(e, "10.0.0.3", NULL), 0);
	assert_true(last_writes(io, 0));
	assert_false(last_writes(io, 1));
	assert_true(engine_stats(e)->standby_ready);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->switches, 1);
	want = elements_of(e, engine_map(e), 1);
	assert_true(batch_holds(staged, want));
	json_decref(want);
	json_decref(staged);
	/* Now in generation 1: an address shuffle writes there. */
	assert_int_equal(engine_shuffle_address(e, "10.0.0.2", NULL), 0);
	assert_true(last_writes(io, 1));
	assert_false(last_writes(io, 0));
}

/* Runtime entries: added or removed, they are in (or out of) the maps in
 * force and the standby loaded whole in the same transaction, the
 * standby staying ready; a standby half loaded gets an added entry from
 * its chunks, and starts over after a removal. */
static void test_watch_changes(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e = engine_new(load_shape("true", 3, 4, ""), io);
	struct engine_watch w = { .net = { .family = 0 } };
	json_t *batch, *want;
	size_t idx;

	assert_int_equal(config_parse_net("10.7.7.7", false, &w.net), 0);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	stage_all(e);
	assert_int_equal(engine_shuffle(e, NULL), 0);	/* now generation 1 */
	stage_all(e);
	batch = json_incref(nftio_recorder_last(io));
	assert_int_equal(engine_watch_add(e, &w, 1, NULL), 0);
	assert_true(last_has(io, "\"10.7.7.7\""));
	assert_true(last_writes(io, 1));
	assert_true(last_writes(io, 0));
	assert_true(engine_stats(e)->standby_ready);
	/* The switch puts in force the standby with the new entry, whose
	 * elements came with the add. */
	json_array_extend(ruleset_commands(batch),
			  ruleset_commands(nftio_recorder_last(io)));
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->switches, 2);
	assert_int_equal(engine_stats(e)->fallbacks, 0);
	assert_int_equal(engine_map(e)->nentries, 4);
	want = elements_of(e, engine_map(e), 0);
	assert_true(batch_holds(batch, want));
	json_decref(want);
	json_decref(batch);

	/* Removed: from both in one transaction. */
	stage_all(e);
	idx = (size_t)config_watched_lookup(engine_config(e), "10.7.7.7");
	assert_int_equal(engine_watch_remove(e, &idx, 1, NULL, NULL, NULL), 0);
	assert_true(last_has(io, "\"10.7.7.7\""));
	assert_true(last_has(io, "{\"delete\":{\"element\""));
	assert_true(last_writes(io, 0));
	assert_true(last_writes(io, 1));
	assert_true(engine_stats(e)->standby_ready);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->switches, 3);
	assert_int_equal(engine_map(e)->nentries, 3);

	/* The kernel refuses the removal: both stay as they were. */
	stage_all(e);
	assert_int_equal(engine_watch_add(e, &w, 1, NULL), 0);
	idx = (size_t)config_watched_lookup(engine_config(e), "10.7.7.7");
	nftio_recorder_fail_next(io, 1, "Error: Could not process rule");
	assert_true(engine_watch_remove(e, &idx, 1, NULL, NULL, NULL) < 0);
	assert_true(engine_stats(e)->standby_ready);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_map(e)->nentries, 4);
}

/* A standby half loaded: an entry added is staged by the chunks still to
 * come; one removed sends the staging back to its start. */
static void test_watch_while_staging(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e = engine_new(load_shape("true", 2500, 5, ""),
					     io);
	struct engine_watch w = { .net = { .family = 0 } };
	size_t idx;

	assert_int_equal(config_parse_net("10.7.7.7", false, &w.net), 0);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stage_step(e, NULL), 1);
	assert_int_equal(engine_watch_add(e, &w, 1, NULL), 0);
	assert_false(last_writes(io, 1));
	assert_int_equal(engine_stage_step(e, NULL), 0);
	assert_true(last_has(io, "\"10.7.7.7\""));
	assert_true(last_writes(io, 1));
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->switches, 1);
	assert_int_equal(engine_stage_step(e, NULL), 1);
	idx = (size_t)config_watched_lookup(engine_config(e), "10.7.7.7");
	assert_int_equal(engine_watch_remove(e, &idx, 1, NULL, NULL, NULL), 0);
	assert_false(engine_stats(e)->standby_ready);
	assert_int_equal(engine_stage_step(e, NULL), 1);
	assert_true(last_flushes(io, "swap4"));
}

/* Someone changes the standby: reconciliation drops it, and it is loaded
 * again (from its flush) before any switch; a trigger that comes first
 * replaces the maps in force instead. */
static void test_tampered_standby(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e = engine_new(load_shape("true", 3, 4, ""), io);

	assert_int_equal(engine_shuffle(e, NULL), 0);
	stage_all(e);
	nftio_recorder_tamper_elements(io, "swap4_b");
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_false(engine_stats(e)->standby_ready);
	stage_all(e);
	assert_true(last_flushes(io, "swap4_b"));
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->switches, 1);

	/* The standby (generation 0 now) tampered, then a trigger before
	 * any reconciliation: the maps in force replaced whole. */
	stage_all(e);
	nftio_recorder_tamper_elements(io, "swap4");
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->switches, 1);
	assert_int_equal(engine_stats(e)->fallbacks, 1);
	assert_true(last_writes(io, 1));
	assert_false(last_writes(io, 0));

	/* Someone changes the maps in force: the check puts them back and
	 * drops the standby too, loaded again before the next switch. */
	stage_all(e);
	nftio_recorder_tamper_elements(io, "swap4_b");
	assert_int_equal(engine_reconcile(e, NULL), 1);
	assert_false(engine_stats(e)->standby_ready);
	stage_all(e);
	assert_true(last_flushes(io, "swap4"));
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->switches, 2);
}

/* Someone else commits while the standby is half loaded: staging stops
 * until a check has looked, then starts over from the flush. */
static void test_commit_while_staging(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e = engine_new(load_shape("true", 2500, 5, ""),
					     io);
	size_t applied;

	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stage_step(e, NULL), 1);
	nftio_recorder_tamper_elements(io, "swap4_b");
	applied = nftio_recorder_applied(io);
	assert_int_equal(engine_stage_step(e, NULL), 0);
	assert_int_equal(nftio_recorder_applied(io), applied);
	assert_false(engine_stats(e)->standby_ready);
	assert_int_equal(engine_reconcile(e, NULL), 0);
	assert_int_equal(engine_stage_step(e, NULL), 1);
	assert_true(last_flushes(io, "swap4_b"));
	assert_int_equal(engine_stage_step(e, NULL), 0);
	assert_true(engine_stats(e)->standby_ready);
}

/* A reload while the standby is half loaded: it starts over under the
 * new configuration.  A definition redefined in place above 20,000 pairs
 * keeps the generation in force, the standby's maps untouched by the
 * rules. */
static void test_reload_during_staging(void **state)
{
	struct support_engine *f = *state;
	struct nftio *io = f->io;
	struct engine *e = f->e = engine_new(load_shape("true", 4200, 5, ""),
					     io);

	assert_int_equal(engine_shuffle(e, NULL), 0);
	stage_all(e);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->generation, 1);
	assert_int_equal(engine_stage_step(e, NULL), 1);
	/* Same definition, one more address: the elements in force. */
	assert_int_equal(engine_reload(e, load_shape("true", 4201, 5, ""),
				       NULL), 0);
	assert_true(last_writes(io, 1));
	assert_false(last_writes(io, 0));
	assert_false(engine_stats(e)->standby_ready);
	assert_int_equal(engine_stage_step(e, NULL), 1);
	assert_true(last_flushes(io, "swap4"));
	/* Another definition (untrack_unwatched false) while staging:
	 * redefined in place, its rules still name generation 1, whose
	 * maps get the new mapping; the standby starts over. */
	assert_int_equal(engine_reload(e, load_shape("true", 4201, 5,
			"\"untrack_unwatched\": false, "), NULL), 0);
	assert_int_equal(engine_stats(e)->generation, 1);
	assert_false(engine_stats(e)->standby_ready);
	assert_true(last_writes(io, 1));
	assert_false(last_writes(io, 0));
	assert_int_equal(stage_all(e), 3);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->generation, 0);
	/* prestage turned off while generation 0 is in force: in place,
	 * the standby maps deleted after the rules. */
	stage_all(e);
	assert_int_equal(engine_shuffle(e, NULL), 0);
	assert_int_equal(engine_stats(e)->generation, 1);
	assert_int_equal(engine_reload(e, load_shape("false", 4201, 5,
			"\"untrack_unwatched\": false, "), NULL), 0);
	assert_int_equal(engine_stats(e)->generation, 0);
	assert_int_equal(engine_stage_step(e, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		SUPPORT_RECORDER_TEST(test_switch),
		SUPPORT_RECORDER_TEST(test_switch_with_events),
		SUPPORT_RECORDER_TEST(test_fallback),
		SUPPORT_RECORDER_TEST(test_off_and_auto),
		SUPPORT_RECORDER_TEST(test_address_shuffle),
		SUPPORT_RECORDER_TEST(test_watch_changes),
		SUPPORT_RECORDER_TEST(test_watch_while_staging),
		SUPPORT_RECORDER_TEST(test_tampered_standby),
		SUPPORT_RECORDER_TEST(test_commit_while_staging),
		SUPPORT_RECORDER_TEST(test_reload_during_staging),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
