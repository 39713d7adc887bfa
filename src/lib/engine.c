#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ruleset.h"

struct engine {
	struct config *cfg;
	struct nftio *io;
	struct shuffle *rng;
	struct shuffle_map *map;	/* in force, or NULL */
	struct shuffle_plan *plan;	/* cfg's free ports, built at first use */
	struct engine_stats stats;
	/* Native mode: the table as the configuration defines it is in the
	 * kernel, so a shuffle only has to replace map elements. */
	bool native_ready;
	bool json_elements;	/* send map updates through libnftables */
	/* Reconciliation: the ruleset generation right after our last
	 * apply, and what our tables looked like then (taken lazily). */
	uint32_t applied_gen;
	bool have_gen;
	char *snapshot;
	/* Native mode: digests of the maps' elements and of the address
	 * sets' elements as the kernel held them after our last apply, so
	 * that a change to elements alone is noticed too. */
	uint64_t map_digest, set_digest;
	bool have_map_digest, have_set_digest;
	/* Maps without a digest: their elements asked for by key, a step of
	 * entries per reconciliation, from this entry on. */
	size_t verify_next;
	bool verifying;
	/* untrack_unwatched "auto": the generation the last look for other
	 * users of conntrack saw, and what the ruleset held then (looked at
	 * again only once it moves). */
	uint32_t watch_gen;
	uint32_t look_gen;
	bool have_look;
	int look_user;
	char look_who[ENGINE_WHO_MAX];
};

/* Up to this many pairs the maps' digest is taken right after each apply
 * and checked when someone else commits: about 10 ms at 10,000 pairs.
 * Above, the maps' elements are not checked: the kernel restarts its walk
 * of a set for every message of a dump, so a dump's cost grows with the
 * square of the elements (0.7 to 1 s at 100,000 pairs).  The address sets
 * are checked on their own up to as many entries, whatever the pairs (see
 * checked_sets): they are what keeps a watched address redirected
 * (tracked4/6) or a trusted one untouched, and usually far fewer. */
#define ELEMENT_CHECK_MAX 20000

/* Maps without a digest are checked element by element instead, once
 * someone else has committed: the kernel is asked for each element the
 * mapping in force has, linear (0.3-0.4 s per 100,000 pairs,
 * bench/reconcile_check.sh).  That sees an element deleted or changed,
 * not one added.  So as not to hold the event loop for seconds, it goes
 * this many pairs per reconciliation: a million pairs take ten. */
#define VERIFY_STEP_PAIRS 100000

/* What a batch has to carry. */
enum batch_kind {
	BATCH_FULL,	/* template: everything; native: table and elements */
	BATCH_SHUFFLE,	/* native: flush the maps, add every element */
	BATCH_ELEMENTS,	/* native: the same, and refill the address sets */
	BATCH_SETS,	/* native: refill the address sets alone */
	BATCH_ENTRY,	/* native: replace one entry's elements */
};

static double ms_since(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) * 1e3 +
	       (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

/* Whether nobody committed since our last apply (or its check): then
 * what the kernel holds is ours to take as the baseline.  When someone
 * has, the baseline taken meanwhile is dropped: the next reconciliation
 * compares and puts back. */
static bool still_ours(struct engine *e)
{
	uint32_t gen;

	if (e->have_gen && nftio_generation(e->io, &gen) == 0 &&
	    gen == e->applied_gen)
		return true;
	e->have_gen = false;
	return false;
}

/* Forgets a reason already stored: the failure was recovered from. */
static void drop_error(char **ret_error)
{
	if (ret_error) {
		free(*ret_error);
		*ret_error = NULL;
	}
}

static char *errstr(const char *fmt, const char *arg)
{
	char *s = NULL;

	if (asprintf(&s, fmt, arg) < 0)
		return NULL;
	return s;
}

struct engine *engine_new(struct config *c, struct nftio *io)
{
	struct engine *e = calloc(1, sizeof(*e));

	if (e == NULL || (e->rng = shuffle_new()) == NULL) {
		free(e);
		config_free(c);
		return NULL;
	}
	e->cfg = c;
	e->io = io;
	return e;
}

void engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	shuffle_map_free(e->map);
	shuffle_plan_free(e->plan);
	shuffle_free(e->rng);
	config_free(e->cfg);
	free(e->snapshot);
	free(e);
}

static int listing_of(struct engine *e, const struct config *cfg,
		      char **ret);
static int check_foreign(struct engine *e, uint32_t gen, char **ret_error);

struct owned_table {
	const char *family, *name;
};
#define OWNED_MAX 64

/* The tables porthop owns under cfg: its native table, or the tables the
 * startup commands add (after the reference's "flush ruleset"). */
static size_t owned_tables(const struct config *cfg, struct owned_table *t)
{
	json_t *cmd;
	size_t i, n = 0;

	if (config_mode(cfg) == CONFIG_MODE_NATIVE) {
		t[n].family = "inet";
		t[n++].name = config_table_name(cfg);
		return n;
	}
	json_array_foreach(config_startup_commands(cfg), i, cmd) {
		json_t *tb = json_object_get(json_object_get(cmd, "add"), "table");
		const char *f = json_string_value(json_object_get(tb, "family"));
		const char *name = json_string_value(json_object_get(tb, "name"));

		if (f && name && n < OWNED_MAX) {
			t[n].family = f;
			t[n++].name = name;
		}
	}
	return n;
}

/* Commands that delete the tables old owned and next does not (a renamed
 * native table, a switch between modes), whether or not they exist: they
 * go in the transaction that puts next's rules in force, so the two never
 * translate the same packet twice. */
static json_t *stale_tables(const struct config *old, const struct config *next)
{
	struct owned_table a[OWNED_MAX], b[OWNED_MAX];
	size_t na = owned_tables(old, a), nb = owned_tables(next, b);
	json_t *cmds = json_array();

	for (size_t i = 0; cmds && i < na; i++) {
		bool kept = false;

		for (size_t j = 0; j < nb && !kept; j++)
			kept = strcmp(a[i].family, b[j].family) == 0 &&
			       strcmp(a[i].name, b[j].name) == 0;
		for (int k = 0; !kept && k < 2; k++) {
			json_t *c = json_pack("{s:{s:{s:s,s:s}}}",
					      k ? "delete" : "add", "table",
					      "family", a[i].family,
					      "name", a[i].name);

			if (c == NULL || json_array_append_new(cmds, c) < 0) {
				json_decref(cmds);
				return NULL;
			}
		}
	}
	return cmds;
}

/* Native mode with the table in place: only elements change (the maps',
 * and with BATCH_ELEMENTS the address sets' too), sent as one netlink
 * batch. */
static int apply_elements(struct engine *e, struct config *cfg,
			  struct shuffle_map *map, enum batch_kind kind,
			  const struct shuffle_entry *old, size_t nold,
			  const struct timespec *t0, char **ret_error)
{
	struct nftio_elems *b = nftio_elems_new(config_table_name(cfg));
	struct timespec t1;
	int r = 0;

	if (b == NULL)
		return -ENOMEM;
	if (kind == BATCH_ELEMENTS || kind == BATCH_SETS)
		r = ruleset_native_set_elements(cfg, b);
	if (kind == BATCH_ELEMENTS || kind == BATCH_SHUFFLE)
		r = r ? r : ruleset_native_elements(cfg, map, true, b);
	for (size_t i = 0; kind == BATCH_ENTRY && r == 0 && i < nold; i++)
		r = ruleset_native_entry(cfg, &old[i],
					 &map->entries[old[i].watched], b);
	if (r < 0) {
		if (ret_error)
			*ret_error = errstr("%s", "out of memory building the "
					    "map update");
		goto out;
	}
	e->stats.last_commands = nftio_elems_count(b);
	e->stats.last_build_ms = ms_since(t0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r = nftio_apply_elems(e->io, b, e->json_elements, ret_error);
	e->stats.last_apply_ms = ms_since(&t1);
out:
	nftio_elems_free(b);
	return r;
}

/* Puts prelude's commands (borrowed; NULL: none) first in cmds. */
static int insert_prelude(json_t *cmds, const json_t *prelude)
{
	for (size_t i = json_array_size(prelude); i > 0; i--)
		if (json_array_insert(cmds, 0, json_array_get(prelude, i - 1)) < 0)
			return -ENOMEM;
	return 0;
}

/* Template mode, or a native table to (re)define: one libnftables JSON
 * batch with everything, after the prelude. */
static int apply_full(struct engine *e, struct config *cfg,
		      struct shuffle_map *map, const struct timespec *t0,
		      const json_t *prelude, char **ret_error)
{
	struct timespec t1;
	json_t *batch = NULL;
	char *text = NULL;
	int r;

	if (ruleset_build(cfg, map, &batch) < 0 ||
	    insert_prelude(ruleset_commands(batch), prelude) < 0 ||
	    (text = json_dumps(batch, JSON_COMPACT)) == NULL) {
		json_decref(batch);
		if (ret_error)
			*ret_error = errstr("%s", "out of memory building the "
					    "rule batch");
		return -ENOMEM;
	}
	e->stats.last_commands = json_array_size(ruleset_commands(batch));
	/* The tree can go before the kernel call: only the text is sent. */
	json_decref(batch);
	e->stats.last_build_ms = ms_since(t0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r = nftio_apply_text(e->io, text, false, ret_error);
	e->stats.last_apply_ms = ms_since(&t1);
	free(text);
	return r;
}

/* Up to this many pairs a native table is (re)defined together with its
 * elements in one libnftables transaction.  Above it, libnftables' JSON
 * parser would need gigabytes (a million pairs are two million elements),
 * so the definition goes first and the elements follow in a netlink batch
 * of their own: two transactions (three with untrack_unwatched, whose
 * rules wait for their sets' elements).  A table of ours that is intact
 * keeps its sets and maps with their elements through the first (in
 * place), so packets meet the old mapping or the new one, never empty
 * maps; a table that was missing or altered is defined anew, its maps
 * empty until the second. */
#define NATIVE_ATOMIC_SETUP_MAX 20000

static int apply_setup(struct engine *e, struct config *cfg,
		       const json_t *prelude, bool in_place, char **ret_error)
{
	json_t *batch = ruleset_batch_new(cfg, false);
	int r = -ENOMEM;

	if (batch &&
	    insert_prelude(ruleset_commands(batch), prelude) == 0 &&
	    ruleset_native_setup(cfg, ruleset_commands(batch), in_place) == 0)
		r = nftio_apply(e->io, batch, false, ret_error);
	json_decref(batch);
	return r;
}

/* untrack_unwatched's rules, on or off (their chains flushed), in a
 * transaction of their own: the last of a table filled in two, now that
 * tracked4/6 hold the watched addresses; or "auto" switching. */
static int apply_untrack_rules(struct engine *e, struct config *cfg, bool on,
			       char **ret_error)
{
	json_t *batch = ruleset_batch_new(cfg, false);
	int r = -ENOMEM;

	if (batch && ruleset_native_untrack_rules(cfg, on,
						  ruleset_commands(batch)) == 0)
		r = nftio_apply(e->io, batch, false, ret_error);
	json_decref(batch);
	return r;
}

/* Whether untrack_unwatched's rules belong in force under cfg: always
 * (true), never (false), or ("auto") while no other table uses conntrack;
 * not knowing counts as someone using it, tracking being the safe side.
 * Notes who uses it in the stats. */
static bool untrack_wanted(struct engine *e, const struct config *cfg)
{
	char *who = e->stats.conntrack_user;
	size_t len = sizeof(e->stats.conntrack_user);
	const char *t = config_table_name(cfg);
	uint32_t gen = 0;
	bool have_gen;
	int r;

	who[0] = '\0';
	if (config_untrack(cfg) != CONFIG_UNTRACK_AUTO)
		return config_untrack(cfg) == CONFIG_UNTRACK_ON;
	/* The ruleset, unless nobody committed since the last look. */
	have_gen = nftio_generation(e->io, &gen) == 0;
	if (!have_gen || !e->have_look || gen != e->look_gen) {
		e->look_user = nftio_conntrack_user(e->io, t, NFTIO_CT_RULESET,
						    e->look_who,
						    sizeof(e->look_who));
		e->look_gen = gen;
		e->have_look = have_gen && e->look_user >= 0;
	}
	r = e->look_user;
	if (r != 0)
		snprintf(who, len, "%s", e->look_who);
	if (r == 0)
		r = nftio_conntrack_user(e->io, t, NFTIO_CT_LEGACY, who, len);
	if (r < 0)
		snprintf(who, len, "unknown (the ruleset could not be read: "
			 "%s)", strerror(-r));
	return r == 0;
}

static int apply_setup_then_elements(struct engine *e, struct config *cfg,
				     struct shuffle_map *map,
				     const struct timespec *t0,
				     const json_t *prelude, bool in_place,
				     char **ret_error)
{
	double setup_ms;
	int r;

	r = apply_setup(e, cfg, prelude, in_place, ret_error);
	if (r < 0 && in_place) {
		/* Not as we left it after all: define it anew. */
		drop_error(ret_error);
		r = apply_setup(e, cfg, prelude, false, ret_error);
	}
	if (r < 0)
		return r;
	setup_ms = ms_since(t0);
	r = apply_elements(e, cfg, map, BATCH_ELEMENTS, NULL, 0, t0,
			   ret_error);
	e->stats.last_apply_ms += setup_ms;
	return r;
}

/* Everything: a native table defined (in place: redefined, keeping its
 * elements) with its elements, or a template ruleset.  untrack_unwatched's
 * rules come last, in a transaction of their own, unless they could come
 * with the table (true, one transaction); until then every packet is
 * tracked, which is safe. */
static int apply_whole(struct engine *e, struct config *cfg,
		       struct shuffle_map *map, const struct timespec *t0,
		       const json_t *prelude, bool in_place, char **ret_error)
{
	bool native = config_mode(cfg) == CONFIG_MODE_NATIVE;
	bool split = native && config_pair_count(cfg) > NATIVE_ATOMIC_SETUP_MAX;
	bool on = false;
	int r;

	r = split ? apply_setup_then_elements(e, cfg, map, t0, prelude,
					      in_place, ret_error)
		  : apply_full(e, cfg, map, t0, prelude, ret_error);
	if (r < 0)
		return r;
	if (native && config_untrack(cfg) != CONFIG_UNTRACK_OFF) {
		on = untrack_wanted(e, cfg);
		if (on && (split || config_untrack(cfg) == CONFIG_UNTRACK_AUTO))
			r = apply_untrack_rules(e, cfg, true, ret_error);
	}
	if (r < 0 && config_untrack(cfg) == CONFIG_UNTRACK_AUTO) {
		/* The table is in force, every client tracked: safe, and
		 * the next reconciliation tries again. */
		drop_error(ret_error);
		r = 0;
		on = false;
	}
	e->stats.untracking = r == 0 && on;
	return r;
}

/* How a BATCH_FULL goes: commands that come first (tables to delete), and
 * whether the native table may be redefined in place. */
struct redefine {
	const json_t *prelude;
	bool in_place;
};

/* Builds and applies map under cfg; the caller adopts both on success.
 * old, nold: for BATCH_ENTRY, the entries' pairs in force (their new ones
 * are in map).  rd: NULL, or how a full batch goes.
 *
 * After the apply, what the kernel holds becomes the baseline that
 * reconciliation compares with.  That is only right for what this batch
 * wrote, or when nobody else committed since the baseline was last
 * checked: an apply must never bless someone else's change.  A batch that
 * rewrites everything (a table defined anew, a template ruleset) may
 * always rebase; one that rewrites part (elements, a table redefined in
 * place) only when the generation before it is the one we last checked
 * (the callers check first, see check_before_apply), and only when no
 * one else committed during the apply either (the generation moved by
 * our own commits alone).  Otherwise the baseline is dropped, and the
 * next reconciliation compares again. */
static int apply_map(struct engine *e, struct config *cfg,
		     struct shuffle_map *map, enum batch_kind kind,
		     const struct shuffle_entry *old, size_t nold,
		     const struct timespec *t0, const struct redefine *rd,
		     char **ret_error)
{
	const json_t *prelude = rd ? rd->prelude : NULL;
	bool in_place = rd && rd->in_place;
	bool elements = config_mode(cfg) == CONFIG_MODE_NATIVE &&
			e->native_ready && kind != BATCH_FULL;
	bool writes_all = !elements && !in_place, quiet, alone;
	uint64_t commits = nftio_commits(e->io);
	uint32_t before = 0, after = 0;
	bool have_before = nftio_generation(e->io, &before) == 0;
	int r;

	quiet = have_before && e->have_gen && before == e->applied_gen;
	if (elements) {
		r = apply_elements(e, cfg, map, kind, old, nold, t0, ret_error);
		if (r == -ENOENT) {
			/* Our table or a map of it is gone: someone flushed
			 * the ruleset since the last reconciliation (or none
			 * runs).  Define it anew with this mapping rather
			 * than refuse the trigger. */
			drop_error(ret_error);
			e->native_ready = false;
			e->stats.last_redefined = true;
			writes_all = true;
			r = apply_whole(e, cfg, map, t0, prelude, false,
					ret_error);
		}
	} else {
		r = apply_whole(e, cfg, map, t0, prelude, in_place, ret_error);
	}
	clock_gettime(CLOCK_REALTIME, &e->stats.last_time);
	e->stats.last_result = r;
	if (r < 0) {
		e->stats.failures++;
		return r;
	}
	e->stats.shuffles++;
	e->stats.last_pairs = config_pair_count(cfg);
	e->native_ready = config_mode(cfg) == CONFIG_MODE_NATIVE;
	e->have_map_digest = e->have_set_digest = false;
	e->stats.last_digest_ms = -1;
	/* Only our transactions moved the generation since `before`? */
	alone = have_before && nftio_generation(e->io, &after) == 0 &&
		after - before == (uint32_t)(nftio_commits(e->io) - commits);
	if (!alone || (!writes_all && !quiet)) {
		/* Someone committed between our check and our apply, or
		 * during it (or the generation could not be read): what
		 * the kernel holds is not all ours to vouch for.  An
		 * elements batch left the definition as we wrote it: its
		 * fingerprint stays to compare with, the elements are
		 * checked again.  Anything else is applied again whole. */
		e->have_gen = false;
		e->verifying = false;
		if (!elements || writes_all) {
			free(e->snapshot);
			e->snapshot = NULL;
		}
		return r;
	}
	free(e->snapshot);
	e->snapshot = NULL;
	e->have_gen = true;
	e->applied_gen = after;
	/* The untrack watcher's mark moves past our commits only if it had
	 * seen everything before them. */
	if (writes_all || e->watch_gen == before)
		e->watch_gen = after;
	/* A snapshot now lets the next reconciliation tell our change from
	 * someone else's.  Native fingerprints leave the elements out and
	 * are cheap; a large template ruleset is fingerprinted lazily, at
	 * the next quiet reconciliation. */
	if ((config_mode(cfg) == CONFIG_MODE_NATIVE ||
	     e->stats.last_commands < 5000) &&
	    listing_of(e, cfg, &e->snapshot) < 0)
		e->snapshot = NULL;
	/* Someone committed between our apply and the listing: it may
	 * hold their change. */
	if (e->snapshot && !still_ours(e)) {
		free(e->snapshot);
		e->snapshot = NULL;
	}
	/* Maps replaced whole need no further check. */
	if (kind != BATCH_SETS && kind != BATCH_ENTRY)
		e->verifying = false;
	return r;
}

/* One digest of the elements of the native table's maps or sets named. */
static int digest_of(struct engine *e, const char *const *names, size_t n,
		     uint64_t *ret)
{
	uint64_t all = 0, d;
	int r;

	for (size_t i = 0; i < n; i++) {
		r = nftio_map_digest(e->io, config_table_name(e->cfg),
				     names[i], &d);
		if (r < 0)
			return r;
		all = all * 0x100000001b3ULL + d;
	}
	*ret = all;
	return 0;
}

/* The address sets reconciliation digests under c (see ELEMENT_CHECK_MAX):
 * each pair of them whose ranges are few enough at most, trusted4/6
 * (the trusted networks) and tracked4/6 (the watched networks, cut by the
 * trusted ones), so that a long watched list leaves the trusted sets
 * checked.  Fills names, returns how many. */
static size_t checked_sets(const struct config *c, const char *names[4])
{
	const char *all[4];
	size_t n = ruleset_native_sets(c, all), k = 0;
	size_t trusted = config_trusted_count(c);

	for (size_t i = 0; i < n; i++)
		if (i < 2 ? trusted <= ELEMENT_CHECK_MAX :
			    config_watched_count(c) + trusted <= ELEMENT_CHECK_MAX)
			names[k++] = all[i];
	return k;
}

/* Takes the digests reconciliation compares with, those it lacks and
 * may take (see ELEMENT_CHECK_MAX). */
static void take_elements_digest(struct engine *e)
{
	const char *names[4];
	size_t n = checked_sets(e->cfg, names);
	bool maps, sets;
	struct timespec t0;

	/* Only reconciliation reads them. */
	if (config_mode(e->cfg) != CONFIG_MODE_NATIVE || !e->native_ready ||
	    config_daemon(e->cfg)->reconcile_interval_s == 0)
		return;
	maps = !e->have_map_digest &&
	       config_pair_count(e->cfg) <= ELEMENT_CHECK_MAX;
	sets = !e->have_set_digest && n > 0;
	if (!maps && !sets)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (maps)
		e->have_map_digest = digest_of(e, ruleset_native_maps, 4,
					       &e->map_digest) == 0;
	if (sets)
		e->have_set_digest = digest_of(e, names, n,
					       &e->set_digest) == 0;
	/* Taken after someone else's commit, they could hold it. */
	if (!still_ours(e))
		e->have_map_digest = e->have_set_digest = false;
	e->stats.last_digest_ms = ms_since(&t0);
}

/* One step of the check by key (see VERIFY_STEP_PAIRS): the entries from
 * e->verify_next on.  Whether an element was missing or changed; e->verifying
 * says whether entries are left for the next step. */
static bool verify_step(struct engine *e)
{
	struct nftio_elems *b = nftio_elems_new(config_table_name(e->cfg));
	size_t i = e->verify_next, pairs = 0;
	int r = b ? 0 : -ENOMEM;

	for (; r == 0 && i < e->map->nentries && pairs < VERIFY_STEP_PAIRS;
	     i++) {
		r = ruleset_native_entry_elements(e->cfg, &e->map->entries[i], b);
		pairs += e->map->entries[i].npairs;
	}
	r = r < 0 ? r : nftio_elems_verify(e->io, b);
	nftio_elems_free(b);
	e->verify_next = i;
	e->verifying = r == 0 && i < e->map->nentries;
	return r > 0;
}

/* Whether the maps' (sets' if sets) elements differ from their digest, or
 * the maps' first step from the mapping in force (no digest); false when
 * not known. */
static bool elements_changed(struct engine *e, bool sets)
{
	const char *names[4];
	size_t n = checked_sets(e->cfg, names);
	uint64_t d;

	/* Sets that can be checked but have no digest (none taken since
	 * someone committed) are not known to be ours: rewritten. */
	if (sets)
		return n > 0 && (!e->have_set_digest ||
				 digest_of(e, names, n, &d) != 0 ||
				 d != e->set_digest);
	if (!e->have_map_digest) {
		e->verify_next = 0;
		return verify_step(e);
	}
	return digest_of(e, ruleset_native_maps, 4, &d) == 0 &&
	       d != e->map_digest;
}

/* Adopts map as the mapping in force if r is 0, or drops it; returns r. */
static int adopt(struct engine *e, struct shuffle_map *map, int r)
{
	if (r < 0) {
		shuffle_map_free(map);
		return r;
	}
	shuffle_map_free(e->map);
	e->map = map;
	take_elements_digest(e);
	return 0;
}

/* The plan of the configuration in force, built at first use; NULL if
 * out of memory (the draw then builds one of its own, or fails). */
static struct shuffle_plan *plan(struct engine *e)
{
	if (e->plan == NULL)
		e->plan = shuffle_plan_new(e->cfg);
	return e->plan;
}

/* Native mode: if anyone else committed since our last apply, compares
 * our table with what we applied and puts back what they changed, before
 * a trigger's batch, which rewrites only part of it, makes the kernel's
 * state the new baseline (see apply_map).  Template mode and a table to
 * define anew rewrite everything anyway. */
static int check_before_apply(struct engine *e, char **ret_error)
{
	uint32_t gen;
	int r;

	e->stats.last_redefined = false;
	if (config_mode(e->cfg) != CONFIG_MODE_NATIVE || !e->native_ready ||
	    e->map == NULL)
		return 0;
	r = nftio_generation(e->io, &gen);
	if (r == 0 && e->have_gen && gen == e->applied_gen)
		return 0;
	r = r < 0 ? r : check_foreign(e, gen, ret_error);
	if (r < 0 && ret_error && *ret_error == NULL)
		*ret_error = errstr("cannot check porthop's table before the "
				    "shuffle: %s", strerror(-r));
	return r < 0 ? r : 0;
}

int engine_shuffle(struct engine *e, char **ret_error)
{
	struct shuffle_map *map = NULL;
	struct timespec t0;
	int r;

	r = check_before_apply(e, ret_error);
	if (r < 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = shuffle_map_new(e->rng, e->cfg, plan(e), &map);
	if (r < 0) {
		if (ret_error)
			*ret_error = errstr("cannot draw redirect ports: %s",
					    strerror(-r));
		return r;
	}
	r = apply_map(e, e->cfg, map, BATCH_SHUFFLE, NULL, 0, &t0, NULL,
		      ret_error);
	return adopt(e, map, r);
}

/* A copy of the map in force, so a failed apply leaves it untouched. */
static struct shuffle_map *map_copy(const struct config *c,
				    const struct shuffle_map *src)
{
	struct shuffle_map *m = shuffle_map_alloc(c);

	if (m == NULL)
		return NULL;
	for (size_t i = 0; i < m->nentries && i < src->nentries; i++)
		memcpy(m->entries[i].pairs, src->entries[i].pairs,
		       m->entries[i].npairs * sizeof(struct shuffle_pair));
	return m;
}

/* The pairs in force of the entries named, kept aside so that a failed
 * apply can put them back; NULL if out of memory. */
static struct shuffle_entry *save_entries(const struct shuffle_map *m,
					  const size_t *idx, size_t n)
{
	struct shuffle_entry *saved = calloc(n, sizeof(*saved));

	for (size_t i = 0; saved && i < n; i++) {
		const struct shuffle_entry *cur = &m->entries[idx[i]];

		saved[i] = *cur;
		saved[i].pairs = malloc((cur->npairs + 1) * sizeof(*cur->pairs));
		if (saved[i].pairs == NULL) {
			for (size_t k = 0; k < i; k++)
				free(saved[k].pairs);
			free(saved);
			return NULL;
		}
		memcpy(saved[i].pairs, cur->pairs,
		       cur->npairs * sizeof(*cur->pairs));
	}
	return saved;
}

int engine_shuffle_entries(struct engine *e, const size_t *idx, size_t n,
			   char **ret_error)
{
	struct shuffle_entry *saved;
	struct timespec t0;
	int r = 0;

	for (size_t i = 0; i < n; i++)
		if (idx[i] >= config_watched_count(e->cfg))
			return -EINVAL;
	if (e->map == NULL)
		return engine_shuffle(e, ret_error);
	if (n == 0)
		return 0;
	r = check_before_apply(e, ret_error);
	if (r < 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Drawn in place, the entries' pairs in force kept aside and put
	 * back if the apply fails: nothing here costs more than their own
	 * ports, however many pairs are loaded. */
	saved = save_entries(e->map, idx, n);
	if (saved == NULL)
		return -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++)
		r = shuffle_map_redraw(e->rng, e->cfg, plan(e), e->map, idx[i]);
	/* Template mode flushes and rebuilds: the whole batch goes again,
	 * with only these entries' ports changed.  Native mode replaces
	 * their elements only, in one transaction. */
	if (r == 0)
		r = apply_map(e, e->cfg, e->map, BATCH_ENTRY, saved, n, &t0,
			      NULL, ret_error);
	for (size_t i = 0; i < n; i++) {
		if (r < 0)
			memcpy(e->map->entries[idx[i]].pairs, saved[i].pairs,
			       saved[i].npairs * sizeof(*saved[i].pairs));
		free(saved[i].pairs);
	}
	free(saved);
	if (r == 0)
		take_elements_digest(e);
	return r;
}

int engine_shuffle_address(struct engine *e, const char *ip,
			   char **ret_error)
{
	char vbuf[DIAG_VALUE_MAX + 8];
	long idx = config_watched_lookup(e->cfg, ip);
	size_t one;

	if (idx < 0) {
		if (ret_error)
			*ret_error = errstr("%s is not a watched address nor "
					    "inside a watched prefix",
					    diag_string(vbuf, sizeof(vbuf), ip));
		return -ENOENT;
	}
	one = (size_t)idx;
	return engine_shuffle_entries(e, &one, 1, ret_error);
}

/* Would the two configurations define the same native table? */
static bool same_definition(const struct config *a, const struct config *b)
{
	json_t *x = json_array(), *y = json_array();
	bool same;

	same = config_mode(a) == CONFIG_MODE_NATIVE &&
	       config_mode(b) == CONFIG_MODE_NATIVE && x && y &&
	       config_untrack(a) == config_untrack(b) &&
	       ruleset_native_setup(a, x, false) == 0 &&
	       ruleset_native_setup(b, y, false) == 0 && json_equal(x, y);
	json_decref(x);
	json_decref(y);
	return same;
}

int engine_reload(struct engine *e, struct config *c, char **ret_error)
{
	struct shuffle_plan *next_plan;
	struct shuffle_map *map = NULL;
	struct redefine rd;
	json_t *prelude;
	enum batch_kind kind;
	struct timespec t0;
	int r;

	/* Under the old configuration: what the reload keeps in place must
	 * be ours. */
	r = check_before_apply(e, ret_error);
	if (r < 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	next_plan = shuffle_plan_new(c);
	r = next_plan ? shuffle_map_new(e->rng, c, next_plan, &map) : -ENOMEM;
	if (r < 0) {
		shuffle_plan_free(next_plan);
		if (ret_error)
			*ret_error = errstr("cannot draw redirect ports: %s",
					    strerror(-r));
		return r;
	}
	/* A new configuration may change the table's definition: then it
	 * goes whole, with the elements.  If the definition is the same (the
	 * watched addresses changed, say), only the elements are replaced,
	 * in one transaction as for any shuffle. */
	kind = BATCH_FULL;
	rd.in_place = false;
	if (e->native_ready && same_definition(e->cfg, c)) {
		kind = BATCH_ELEMENTS;
	} else {
		rd.in_place = e->native_ready &&
			      config_mode(c) == CONFIG_MODE_NATIVE &&
			      strcmp(config_table_name(c),
				     config_table_name(e->cfg)) == 0;
		e->native_ready = false;
	}
	prelude = stale_tables(e->cfg, c);
	rd.prelude = prelude;
	r = prelude ? apply_map(e, c, map, kind, NULL, 0, &t0, &rd, ret_error)
		    : -ENOMEM;
	json_decref(prelude);
	if (r < 0) {
		/* The old table is still in force, as it was. */
		e->native_ready = config_mode(e->cfg) == CONFIG_MODE_NATIVE &&
				  e->map != NULL;
		shuffle_map_free(map);
		shuffle_plan_free(next_plan);
		return r;
	}
	shuffle_map_free(e->map);
	shuffle_plan_free(e->plan);
	config_free(e->cfg);
	e->map = map;
	e->plan = next_plan;
	e->cfg = c;
	take_elements_digest(e);
	return 0;
}

/* Applies the mapping in force again: whole (BATCH_FULL), or, the native
 * table being intact, its elements only (BATCH_SHUFFLE: the maps';
 * BATCH_SETS: the address sets'; BATCH_ELEMENTS: both). */
static int apply_again(struct engine *e, enum batch_kind kind,
		       char **ret_error)
{
	struct shuffle_map *map;
	struct timespec t0;

	if (e->map == NULL)
		return engine_shuffle(e, ret_error);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	map = map_copy(e->cfg, e->map);
	if (map == NULL)
		return -ENOMEM;
	if (kind == BATCH_FULL)
		e->native_ready = false;
	return adopt(e, map, apply_map(e, e->cfg, map, kind, NULL, 0, &t0,
				       NULL, ret_error));
}

int engine_reapply(struct engine *e, char **ret_error)
{
	return apply_again(e, BATCH_FULL, ret_error);
}

/* The fingerprints of the tables porthop owns (its native table, or the
 * tables the startup commands add), joined.  -ENOENT if one is missing. */
static int listing_of(struct engine *e, const struct config *cfg,
		      char **ret)
{
	struct owned_table tables[OWNED_MAX];
	size_t n = owned_tables(cfg, tables), len = 0;
	char *all = NULL;
	size_t i;
	int r = 0;

	for (i = 0; r == 0 && i < n; i++) {
		char *fp = NULL, *grown;

		r = nftio_table_fingerprint(e->io, tables[i].family,
					    tables[i].name, &fp);
		if (r < 0)
			break;
		grown = realloc(all, len + strlen(fp) + 1);
		if (grown == NULL) {
			free(fp);
			r = -ENOMEM;
			break;
		}
		all = grown;
		memcpy(all + len, fp, strlen(fp) + 1);
		len += strlen(fp);
		free(fp);
	}
	if (r == 0 && all == NULL)
		all = strdup("");
	if (r < 0 || all == NULL) {
		free(all);
		return r < 0 ? r : -ENOMEM;
	}
	*ret = all;
	return 0;
}

static int listing(struct engine *e, char **ret)
{
	return listing_of(e, e->cfg, ret);
}

/* Someone committed since our last apply (the generation is gen now):
 * compares our tables with what we applied and puts back what differs.
 * The comparison is what moves the baseline to gen: then the batch that
 * puts back what changed may rebase on it (see apply_map).  Returns 0
 * (intact), 1 (put back) or a negative errno. */
static int check_foreign(struct engine *e, uint32_t gen, char **ret_error)
{
	struct timespec t0;
	char *now = NULL;
	bool maps, sets;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	e->stats.checks++;
	r = e->snapshot ? listing(e, &now) : -ESTALE;
	if (r < 0 || strcmp(now, e->snapshot) != 0) {
		bool gone = r == -ENOENT;

		free(now);
		e->stats.last_check_ms = ms_since(&t0);
		e->stats.check_continues = false;
		r = engine_reapply(e, ret_error);
		if (r < 0)
			return r;
		e->stats.repairs++;
		e->stats.last_redefined = e->stats.last_redefined || gone;
		return 1;
	}
	free(now);
	/* The definition is intact; the elements too?  What changed is put
	 * back in one transaction, as for a shuffle: the maps', the address
	 * sets' (trusted, tracked), or both. */
	maps = elements_changed(e, false);
	sets = elements_changed(e, true);
	e->stats.last_check_ms = ms_since(&t0);
	e->stats.check_continues = e->verifying && !maps;
	e->applied_gen = gen;
	e->have_gen = true;
	if (!maps && !sets)
		return 0;
	r = apply_again(e, !sets ? BATCH_SHUFFLE : maps ? BATCH_ELEMENTS :
			BATCH_SETS, ret_error);
	if (r < 0) {
		/* Not put back: the next reconciliation looks again. */
		e->have_gen = false;
		return r;
	}
	e->stats.repairs++;
	return 1;
}

int engine_reconcile(struct engine *e, char **ret_error)
{
	uint32_t gen;
	struct timespec t0;
	int r;

	e->stats.last_redefined = false;
	if (e->map == NULL)
		return 0;
	r = nftio_generation(e->io, &gen);
	if (r < 0) {
		if (ret_error)
			*ret_error = errstr("cannot read the ruleset generation: "
					    "%s", strerror(-r));
		return r;
	}
	if (!e->have_gen || gen != e->applied_gen)
		return check_foreign(e, gen, ret_error);
	/* Nothing committed since our apply: what is there now is what we
	 * applied.  Keep a copy to compare with later. */
	if (e->snapshot == NULL && listing(e, &e->snapshot) < 0)
		e->snapshot = NULL;
	if (e->snapshot && !still_ours(e)) {
		free(e->snapshot);
		e->snapshot = NULL;
		return 0;
	}
	take_elements_digest(e);
	if (!e->verifying)
		return 0;
	/* The check by key of someone else's earlier commit goes on. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	e->stats.checks++;
	if (!verify_step(e)) {
		e->stats.last_check_ms = ms_since(&t0);
		e->stats.check_continues = e->verifying;
		return 0;
	}
	e->stats.last_check_ms = ms_since(&t0);
	e->stats.check_continues = false;
	r = apply_again(e, BATCH_SHUFFLE, ret_error);
	if (r < 0)
		return r;
	e->stats.repairs++;
	return 1;
}

/* Turns untrack_unwatched's rules on or off.  If our table was intact
 * before (nobody committed since our last apply, or its listing is the
 * one we took), the change is ours and the next reconciliation must not
 * take it for someone else's: the snapshot is taken again, and the
 * generation too when ours is the only commit since. */
static int switch_untrack(struct engine *e, bool on, char **ret_error)
{
	uint32_t gen0 = 0, gen1;
	char *now = NULL;
	bool quiet, intact;
	int r;

	quiet = e->have_gen && nftio_generation(e->io, &gen0) == 0 &&
		gen0 == e->applied_gen;
	intact = quiet || (e->snapshot && listing(e, &now) == 0 &&
			   strcmp(now, e->snapshot) == 0);
	free(now);
	now = NULL;
	r = apply_untrack_rules(e, e->cfg, on, ret_error);
	if (r < 0 && !on && listing(e, &now) == -ENOENT) {
		/* Our table is gone (a flush ruleset), its rules with it:
		 * reconciliation defines it anew, and looks again. */
		drop_error(ret_error);
		e->stats.untracking = false;
		return 0;
	}
	free(now);
	if (r < 0)
		return r;
	e->stats.untracking = on;
	e->stats.untrack_switches++;
	if (intact) {
		free(e->snapshot);
		if (listing(e, &e->snapshot) < 0)
			e->snapshot = NULL;
	}
	if (nftio_generation(e->io, &gen1) == 0) {
		if (quiet && gen1 == gen0 + 1)
			e->applied_gen = gen1;
		e->watch_gen = gen1;
	}
	return 1;
}

int engine_untrack_check(struct engine *e, bool all, char **ret_error)
{
	uint32_t gen;
	bool want;

	if (config_mode(e->cfg) != CONFIG_MODE_NATIVE || !e->native_ready ||
	    config_untrack(e->cfg) != CONFIG_UNTRACK_AUTO)
		return 0;
	if (!all) {
		/* Only the urgent direction, and only once someone has
		 * committed: one netlink round trip otherwise. */
		if (!e->stats.untracking ||
		    nftio_generation(e->io, &gen) < 0 || gen == e->watch_gen)
			return 0;
		e->watch_gen = gen;
	}
	want = untrack_wanted(e, e->cfg);
	if (want == e->stats.untracking)
		return 0;
	return switch_untrack(e, want, ret_error);
}

int engine_stop(struct engine *e, char **ret_error)
{
	json_t *batch;
	int r;

	if (config_mode(e->cfg) != CONFIG_MODE_NATIVE || !e->native_ready)
		return 0;
	if (!config_remove_on_stop(e->cfg)) {
		/* The table stays, with nobody to take "auto"'s untracking
		 * out when another table starts using conntrack: out now. */
		if (config_untrack(e->cfg) != CONFIG_UNTRACK_AUTO ||
		    !e->stats.untracking)
			return 0;
		r = apply_untrack_rules(e, e->cfg, false, ret_error);
		if (r == 0)
			e->stats.untracking = false;
		return r;
	}
	batch = ruleset_batch_new(e->cfg, false);
	if (batch == NULL ||
	    ruleset_native_teardown(e->cfg, ruleset_commands(batch)) < 0) {
		json_decref(batch);
		return -ENOMEM;
	}
	r = nftio_apply(e->io, batch, false, ret_error);
	json_decref(batch);
	if (r < 0) {
		char *fp = NULL;

		/* Refused because someone removed it already? */
		if (nftio_table_fingerprint(e->io, "inet", config_table_name(e->cfg),
					    &fp) != -ENOENT) {
			free(fp);
			return r;
		}
		drop_error(ret_error);
		r = 1;
	}
	e->native_ready = false;
	return r;
}

void engine_set_json_elements(struct engine *e, bool on)
{
	e->json_elements = on;
}

const struct config *engine_config(const struct engine *e)
{
	return e->cfg;
}

const struct shuffle_map *engine_map(const struct engine *e)
{
	return e->map;
}

const struct engine_stats *engine_stats(const struct engine *e)
{
	return &e->stats;
}
