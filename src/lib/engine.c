/*
 * engine: the shuffle cycle. See engine.h for the contract.
 */
#include "engine.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "drift.h"
#include "engine_private.h"
#include "ruleset.h"
#include "timems.h"
#include "untrack.h"

double engine_ms_since(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) * 1e3 +
	       (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

/* The figures the drift and untrack modules keep, copied into the stats
 * after each change: they own the state, the stats only show it. */
void engine_sync_stats(struct engine *e)
{
	const struct drift_stats *d = drift_stats(e->drift);

	e->stats.checks = d->checks;
	e->stats.last_check_ms = d->last_check_ms;
	e->stats.check_continues = d->check_continues;
	e->stats.last_digest_ms = d->last_digest_ms;
	e->stats.untracking = untrack_on(e->untrack);
	e->stats.untrack_switches = untrack_switches(e->untrack);
	snprintf(e->stats.conntrack_user, sizeof(e->stats.conntrack_user),
		 "%s", untrack_user(e->untrack));
	e->stats.prestage = e->two;
	e->stats.generation = e->gen;
}

/* Forgets a reason already stored: the failure was recovered from. */
static void drop_error(char **ret_error)
{
	if (ret_error) {
		free(*ret_error);
		*ret_error = NULL;
	}
}

char *engine_errstr(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
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
	e->drift = drift_new(io);
	e->untrack = untrack_new(io);
	if (e->drift == NULL || e->untrack == NULL) {
		engine_free(e);
		return NULL;
	}
	return e;
}

void engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	shuffle_map_free(e->map);
	shuffle_map_free(e->standby);
	shuffle_plan_free(e->plan);
	shuffle_free(e->rng);
	config_free(e->cfg);
	drift_free(e->drift);
	untrack_free(e->untrack);
	nftio_elems_free(e->watch_elems);
	free(e);
}

static int repair_foreign(struct engine *e, uint32_t gen, char **ret_error);

/* Commands that delete the tables old owned and next does not (a renamed
 * native table, a switch between modes), whether or not they exist: they
 * go in the transaction that puts next's rules in force, so the two never
 * translate the same packet twice. */
static json_t *stale_tables(const struct config *old, const struct config *next)
{
	const char *af[DRIFT_OWNED_MAX], *an[DRIFT_OWNED_MAX];
	const char *bf[DRIFT_OWNED_MAX], *bn[DRIFT_OWNED_MAX];
	size_t na = drift_owned_tables(old, af, an);
	size_t nb = drift_owned_tables(next, bf, bn);
	json_t *cmds = json_array();

	for (size_t i = 0; cmds && i < na; i++) {
		bool kept = false;

		for (size_t j = 0; j < nb && !kept; j++)
			kept = strcmp(af[i], bf[j]) == 0 &&
			       strcmp(an[i], bn[j]) == 0;
		for (int k = 0; !kept && k < 2; k++) {
			json_t *c = json_pack("{s:{s:{s:s,s:s}}}",
					      k ? "delete" : "add", "table",
					      "family", af[i], "name", an[i]);

			if (c == NULL || json_array_append_new(cmds, c) < 0) {
				json_decref(cmds);
				return NULL;
			}
		}
	}
	return cmds;
}

/* The probe event feed: the redirect ports of old[0..n), about to be
 * replaced, go into stale4/6 in the same transaction, as many as
 * stale_max leaves room for. */
int engine_queue_stale(struct engine *e, struct config *cfg,
		       const struct shuffle_entry *old, size_t n,
		       struct nftio_elems *b)
{
	const struct config_events *ev = &config_daemon(cfg)->events;
	int64_t now = timems_wall();
	size_t live = 0, k = 0, added = 0, total = 0, budget;
	int r;

	if (!ev->on || ev->stale_seconds == 0 || n == 0)
		return 0;
	for (size_t i = 0; i < e->stale_nlog; i++)
		if (e->stale_log[i].until_ms > now) {
			live += e->stale_log[i].n;
			e->stale_log[k++] = e->stale_log[i];
		}
	e->stale_nlog = k;
	budget = live < ev->stale_max ? ev->stale_max - live : 0;
	r = ruleset_native_stale(cfg, old, n, budget, b, &added);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		total += old[i].npairs;
	e->stale_skipped += total - added;
	if (added == 0)
		return 0;
	/* Full: the last batch stands for this one too (it times out
	 * sooner, so the count errs on the safe side only briefly). */
	if (e->stale_nlog == sizeof(e->stale_log) / sizeof(e->stale_log[0]))
		e->stale_nlog--;
	e->stale_log[e->stale_nlog].until_ms = now +
		(int64_t)ev->stale_seconds * 1000;
	e->stale_log[e->stale_nlog++].n = added;
	for (size_t i = 0; e->stale_fn && i < n; i++) {
		const struct config_watched *w = config_watched(cfg,
							       old[i].watched);

		for (size_t j = 0; j < old[i].npairs; j++)
			e->stale_fn(e->stale_arg, w, &old[i].pairs[j],
				    e->stats.shuffles);
	}
	return 0;
}

void engine_set_stale_hook(struct engine *e, engine_stale_fn fn, void *arg)
{
	e->stale_fn = fn;
	e->stale_arg = arg;
}

uint64_t engine_stale_skipped(const struct engine *e)
{
	return e->stale_skipped;
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
	int64_t derive_now = engine_derive_now(e);
	struct timespec t1;
	int r = 0;

	if (kind == BATCH_WATCH) {
		nftio_elems_free(b);
		b = e->watch_elems;
		e->watch_elems = NULL;
	}
	if (b == NULL)
		return -ENOMEM;
	if (kind == BATCH_ELEMENTS || kind == BATCH_SETS)
		r = ruleset_native_set_elements(cfg, b);
	/* The keyed entries' maps go with the sets: written with them,
	 * digested with them; a shuffle leaves them alone. */
	if (r == 0 && (kind == BATCH_ELEMENTS || kind == BATCH_SETS))
		r = ruleset_derive_elements(cfg, derive_now, b);
	if (kind == BATCH_ELEMENTS || kind == BATCH_SHUFFLE)
		r = r ? r : ruleset_native_elements_gen(cfg, map, e->gen, true,
							b);
	for (size_t i = 0; kind == BATCH_ENTRY && r == 0 && i < nold; i++)
		r = ruleset_native_entry_gen(cfg, &old[i],
					     &map->entries[old[i].watched],
					     e->gen, b);
	if (r == 0 && kind == BATCH_ENTRY)
		r = engine_queue_stale(e, cfg, old, nold, b);
	else if (r == 0 && kind == BATCH_SHUFFLE && old)
		r = engine_queue_stale(e, cfg, old, nold, b);	/* a fresh draw */
	if (r < 0) {
		if (ret_error)
			*ret_error = engine_errstr("%s", "out of memory building the "
					    "map update");
		goto out;
	}
	e->stats.last_commands = nftio_elems_count(b);
	e->stats.last_build_ms = engine_ms_since(t0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r = nftio_apply_elems(e->io, b, e->json_elements, ret_error);
	e->stats.last_apply_ms = engine_ms_since(&t1);
	if (r == 0 && (kind == BATCH_ELEMENTS || kind == BATCH_SETS))
		e->derive_at = derive_now;
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
	int64_t derive_now = engine_derive_now(e);
	struct timespec t1;
	json_t *batch = NULL;
	char *text = NULL;
	int r;

	if (ruleset_build(cfg, map, &batch) < 0 ||
	    engine_derive_append(cfg, derive_now, batch) < 0 ||
	    insert_prelude(ruleset_commands(batch), prelude) < 0 ||
	    (text = json_dumps(batch, JSON_COMPACT)) == NULL) {
		json_decref(batch);
		if (ret_error)
			*ret_error = engine_errstr("%s", "out of memory building the "
					    "rule batch");
		return -ENOMEM;
	}
	e->stats.last_commands = json_array_size(ruleset_commands(batch));
	/* The tree can go before the kernel call: only the text is sent. */
	json_decref(batch);
	e->stats.last_build_ms = engine_ms_since(t0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r = nftio_apply_text(e->io, text, false, ret_error);
	e->stats.last_apply_ms = engine_ms_since(&t1);
	free(text);
	if (r == 0)
		e->derive_at = derive_now;
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

/* prestage: a table redefined in place keeps the generation its rules
 * name (the other may hold a standby half loaded); one defined anew
 * starts at generation 0, as does one without a standby generation. */
static unsigned setup_generation(const struct engine *e,
				 const struct config *cfg, bool in_place)
{
	return in_place && config_prestage_active(cfg) ? e->gen : 0;
}

/* The table's generations as the last definition left them. */
static void set_layout(struct engine *e, unsigned gen, bool two)
{
	e->gen = gen;
	e->two = two;
	drift_set_generation(e->drift, gen);
}

static int apply_setup(struct engine *e, struct config *cfg,
		       const json_t *prelude, bool in_place, char **ret_error)
{
	json_t *batch = ruleset_batch_new(cfg, false);
	unsigned gen = setup_generation(e, cfg, in_place);
	int r = -ENOMEM;

	if (batch &&
	    insert_prelude(ruleset_commands(batch), prelude) == 0 &&
	    ruleset_native_setup_gen(cfg, config_mode(e->cfg) ==
				     CONFIG_MODE_NATIVE ? e->cfg : NULL, gen,
				     config_prestage_active(cfg),
				     in_place && e->two,
				     ruleset_commands(batch), in_place) == 0)
		r = nftio_apply(e->io, batch, false, ret_error);
	json_decref(batch);
	if (r == 0)
		set_layout(e, gen, config_prestage_active(cfg));
	return r;
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
	setup_ms = engine_ms_since(t0);
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

	/* The standby's maps are about to be flushed or redefined. */
	engine_stage_reset(e);
	/* Rules in place that name the second generation, which the new
	 * definition drops (prestage turned off): defined anew instead, or
	 * packets would meet the half-loaded standby until the elements
	 * come. */
	if (in_place && e->gen == 1 && !config_prestage_active(cfg))
		in_place = false;
	r = split ? apply_setup_then_elements(e, cfg, map, t0, prelude,
					      in_place, ret_error)
		  : apply_full(e, cfg, map, t0, prelude, ret_error);
	if (r < 0)
		return r;
	if (!split)	/* ruleset_build defines the table anew */
		set_layout(e, 0, native && config_prestage_active(cfg));
	if (native && config_untrack(cfg) != CONFIG_UNTRACK_OFF) {
		on = untrack_wanted(e->untrack, cfg);
		if (on && (split || config_untrack(cfg) == CONFIG_UNTRACK_AUTO))
			r = untrack_apply(e->untrack, cfg, true, ret_error);
	}
	if (r < 0 && config_untrack(cfg) == CONFIG_UNTRACK_AUTO) {
		/* The table is in force, every client tracked: safe, and
		 * the next reconciliation tries again. */
		drop_error(ret_error);
		r = 0;
		on = false;
	}
	untrack_set(e->untrack, r == 0 && on, false);
	return r;
}

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
 * (the callers check first, see settle_before_apply), and only when no
 * one else committed during the apply either (the generation moved by
 * our own commits alone).  Otherwise the baseline is dropped, and the
 * next reconciliation compares again. */
int engine_apply_map(struct engine *e, struct config *cfg,
		     struct shuffle_map *map, enum batch_kind kind,
		     const struct shuffle_entry *old, size_t nold,
		     const struct timespec *t0, const struct redefine *rd,
		     char **ret_error)
{
	const json_t *prelude = rd ? rd->prelude : NULL;
	bool in_place = rd && rd->in_place;
	bool elements = config_mode(cfg) == CONFIG_MODE_NATIVE &&
			e->native_ready && kind != BATCH_FULL;
	bool writes_all = !elements && !in_place;
	struct drift_mark mark;
	unsigned how = 0;
	uint32_t after;
	int r;

	if (elements)
		drift_begin_elements(e->drift, &mark);
	else
		drift_begin(e->drift, &mark);
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
	if (writes_all)
		how |= DRIFT_WROTE_ALL;
	else if (elements)
		how |= DRIFT_KEPT_DEFINITION;
	if (kind != BATCH_SETS && kind != BATCH_ENTRY && kind != BATCH_WATCH)
		how |= DRIFT_MAPS_WHOLE;
	if (kind != BATCH_SETS)
		how |= DRIFT_WROTE_MAPS;
	/* (A full batch in place rewrites the sets' elements too: their
	 * digest is taken again, or the next check after someone else's
	 * commit would compare with the one of before the reload.) */
	if (kind == BATCH_SETS || kind == BATCH_ELEMENTS || kind == BATCH_WATCH ||
	    !elements)
		how |= DRIFT_WROTE_SETS;
	if (config_mode(cfg) != CONFIG_MODE_NATIVE &&
	    e->stats.last_commands >= 5000)
		how |= DRIFT_FINGERPRINT_LATER;
	/* The untrack watcher's mark moves past our commits only if it had
	 * seen everything before them. */
	if (drift_applied(e->drift, cfg, &mark, how, &after))
		untrack_seen(e->untrack, mark.gen, after, writes_all);
	engine_sync_stats(e);
	return r;
}

/* The digests reconciliation compares with, once the native table is in
 * place. */
void engine_take_digests(struct engine *e)
{
	if (e->native_ready)
		drift_take_digests(e->drift, e->cfg);
	engine_sync_stats(e);
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
	engine_take_digests(e);
	return 0;
}

/* The plan of the configuration in force, built at first use; NULL if
 * out of memory (the draw then builds one of its own, or fails). */
struct shuffle_plan *engine_plan(struct engine *e)
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
int engine_settle(struct engine *e, char **ret_error)
{
	uint32_t gen;
	int r;

	e->stats.last_redefined = false;
	if (config_mode(e->cfg) != CONFIG_MODE_NATIVE || !e->native_ready ||
	    e->map == NULL)
		return 0;
	r = drift_moved(e->drift, &gen);
	if (r == 0)
		return 0;
	r = r < 0 ? r : repair_foreign(e, gen, ret_error);
	if (r < 0 && ret_error && *ret_error == NULL)
		*ret_error = engine_errstr("cannot check porthop's table before the "
				    "shuffle: %s", strerror(-r));
	return r < 0 ? r : 0;
}

int engine_shuffle(struct engine *e, char **ret_error)
{
	struct shuffle_map *map = NULL;
	struct timespec t0;
	int r;

	r = engine_settle(e, ret_error);
	if (r < 0)
		return r;
	/* The next mapping is loaded: one small transaction puts it in
	 * force.  If that fails (the table gone, say), the full replace
	 * below still serves the trigger. */
	if (engine_can_switch(e)) {
		if (engine_switch(e, ret_error) == 0)
			return 0;
		drop_error(ret_error);
	} else if (e->two && e->map && e->native_ready) {
		/* Not ready yet: a full replace now rather than a wait of
		 * up to the whole staging (docs/native-mode.md). */
		e->stats.fallbacks++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = shuffle_map_new(e->rng, e->cfg, engine_plan(e), &map);
	if (r < 0) {
		if (ret_error)
			*ret_error = engine_errstr("cannot draw redirect ports: %s",
					    strerror(-r));
		return r;
	}
	/* The mapping in force goes with it: its ports become stale. */
	r = engine_apply_map(e, e->cfg, map, BATCH_SHUFFLE,
			     e->map ? e->map->entries : NULL,
			     e->map ? e->map->nentries : 0, &t0, NULL,
			     ret_error);
	return adopt(e, map, r);
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
	r = engine_settle(e, ret_error);
	if (r < 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Drawn in place, the entries' pairs in force kept aside and put
	 * back if the apply fails: nothing here costs more than their own
	 * ports, however many pairs are loaded. */
	saved = shuffle_entries_save(e->map, idx, n);
	if (saved == NULL)
		return -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++)
		r = shuffle_map_redraw(e->rng, e->cfg, engine_plan(e), e->map, idx[i]);
	/* Template mode flushes and rebuilds: the whole batch goes again,
	 * with only these entries' ports changed.  Native mode replaces
	 * their elements only, in one transaction. */
	if (r == 0)
		r = engine_apply_map(e, e->cfg, e->map, BATCH_ENTRY, saved, n, &t0,
			      NULL, ret_error);
	for (size_t i = 0; i < n; i++) {
		if (r < 0)
			memcpy(e->map->entries[idx[i]].pairs, saved[i].pairs,
			       saved[i].npairs * sizeof(*saved[i].pairs));
		free(saved[i].pairs);
	}
	free(saved);
	if (r == 0)
		engine_take_digests(e);
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
			*ret_error = engine_errstr("%s is not a watched address nor "
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
	r = engine_settle(e, ret_error);
	if (r < 0)
		return r;
	/* The standby was drawn for the old configuration. */
	engine_stage_reset(e);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	next_plan = shuffle_plan_new(c);
	r = next_plan ? shuffle_map_new(e->rng, c, next_plan, &map) : -ENOMEM;
	if (r < 0) {
		shuffle_plan_free(next_plan);
		if (ret_error)
			*ret_error = engine_errstr("cannot draw redirect ports: %s",
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
		/* Not with another size of the swap maps (map_capacity):
		 * an "add map" naming an existing map keeps its hash table,
		 * and its size too when the new definition has none, so
		 * the kernel would go on counting with the old one. */
		rd.in_place = e->native_ready &&
			      config_mode(c) == CONFIG_MODE_NATIVE &&
			      strcmp(config_table_name(c),
				     config_table_name(e->cfg)) == 0 &&
			      config_map_size(c) == config_map_size(e->cfg);
		e->native_ready = false;
	}
	prelude = stale_tables(e->cfg, c);
	rd.prelude = prelude;
	r = prelude ? engine_apply_map(e, c, map, kind, NULL, 0, &t0, &rd, ret_error)
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
	engine_take_digests(e);
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
	map = shuffle_map_copy(e->cfg, e->map);
	if (map == NULL)
		return -ENOMEM;
	if (kind == BATCH_FULL)
		e->native_ready = false;
	return adopt(e, map, engine_apply_map(e, e->cfg, map, kind, NULL, 0, &t0,
				       NULL, ret_error));
}

int engine_reapply(struct engine *e, char **ret_error)
{
	return apply_again(e, BATCH_FULL, ret_error);
}

/* Someone committed since our last apply (the generation is gen now):
 * compares our tables with what we applied and puts back what differs.
 * Returns 0 (intact), 1 (put back) or a negative errno. */
static int repair_foreign(struct engine *e, uint32_t gen, char **ret_error)
{
	enum drift_result found = drift_compare(e->drift, e->cfg, e->map, gen);
	int r;

	/* The standby is not compared: whatever someone else did, it is
	 * loaded again before it can be switched in. */
	engine_stage_reset(e);
	engine_sync_stats(e);
	switch (found) {
	case DRIFT_INTACT:
		return 0;
	case DRIFT_DEFINITION:
	case DRIFT_GONE:
		r = engine_reapply(e, ret_error);
		if (r < 0)
			return r;
		e->stats.last_redefined = e->stats.last_redefined ||
					  found == DRIFT_GONE;
		break;
	default:
		/* What changed is put back in one transaction, as for a
		 * shuffle: the maps', the address sets', or both. */
		r = apply_again(e, found == DRIFT_MAPS ? BATCH_SHUFFLE :
				found == DRIFT_SETS ? BATCH_SETS :
				BATCH_ELEMENTS, ret_error);
		if (r < 0) {
			drift_unsettle(e->drift);
			return r;
		}
	}
	e->stats.repairs++;
	return 1;
}

int engine_reconcile(struct engine *e, char **ret_error)
{
	uint32_t gen;
	int r;

	e->stats.last_redefined = false;
	if (e->map == NULL)
		return 0;
	r = drift_moved(e->drift, &gen);
	if (r < 0) {
		if (ret_error)
			*ret_error = engine_errstr("cannot read the ruleset generation: "
					    "%s", strerror(-r));
		return r;
	}
	if (r > 0)
		return repair_foreign(e, gen, ret_error);
	/* Nothing committed since our apply: a check by key of someone
	 * else's earlier commit may go on. */
	if (!e->native_ready)
		return 0;
	r = drift_quiet_step(e->drift, e->cfg, e->map) == DRIFT_MAPS;
	engine_sync_stats(e);
	if (!r)
		return 0;
	r = apply_again(e, BATCH_SHUFFLE, ret_error);
	if (r < 0)
		return r;
	e->stats.repairs++;
	return 1;
}

/* Turns untrack_unwatched's rules on or off: a change of our own, which
 * the next reconciliation must not take for someone else's (see
 * drift_own_begin). */
static int switch_untrack(struct engine *e, bool on, char **ret_error)
{
	struct drift_own own;
	uint32_t gen;
	int r;

	drift_own_begin(e->drift, e->cfg, &own);
	r = untrack_apply(e->untrack, e->cfg, on, ret_error);
	if (r < 0 && !on && drift_table_gone(e->drift, e->cfg)) {
		/* Our table is gone (a flush ruleset), its rules with it:
		 * reconciliation defines it anew, and looks again. */
		drop_error(ret_error);
		untrack_set(e->untrack, false, false);
		engine_sync_stats(e);
		return 0;
	}
	if (r < 0)
		return r;
	untrack_set(e->untrack, on, true);
	drift_own_end(e->drift, e->cfg, &own);
	if (nftio_generation(e->io, &gen) == 0)
		untrack_seen(e->untrack, 0, gen, true);
	engine_sync_stats(e);
	return 1;
}

int engine_untrack_check(struct engine *e, bool all, char **ret_error)
{
	bool want;

	if (config_mode(e->cfg) != CONFIG_MODE_NATIVE || !e->native_ready ||
	    config_untrack(e->cfg) != CONFIG_UNTRACK_AUTO)
		return 0;
	/* Without all, only the urgent direction, and only once someone has
	 * committed: one netlink round trip otherwise. */
	if (!all && (!untrack_on(e->untrack) || !untrack_moved(e->untrack)))
		return 0;
	want = untrack_wanted(e->untrack, e->cfg);
	engine_sync_stats(e);
	if (want == untrack_on(e->untrack))
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
		    !untrack_on(e->untrack))
			return 0;
		r = untrack_apply(e->untrack, e->cfg, false, ret_error);
		if (r == 0)
			untrack_set(e->untrack, false, false);
		engine_sync_stats(e);
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
		/* Refused because someone removed it already? */
		if (!drift_table_gone(e->drift, e->cfg))
			return r;
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
