/*
 * engine_stage: prestaged mappings (native mode, prestage; see
 * docs/native-mode.md#prestaged-mappings).  Right after each full
 * shuffle the next mapping is drawn and loaded into the standby
 * generation's maps in bounded chunks, each a transaction of elements
 * that no rule reads yet; a trigger then points the rules that name the
 * maps at that generation in one small transaction, whatever the number
 * of pairs, and the generation it leaves is loaded with the one after.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_private.h"
#include "ruleset.h"

/* Pairs per chunk: about 40 ms of kernel work at 3.7 us a pair (twice
 * the elements of a pair, bench/reshuffle.sh), so a trigger, a control
 * request or Redis waits at most that long behind one. */
#define STAGE_CHUNK_PAIRS 10000

void engine_stage_reset(struct engine *e)
{
	shuffle_map_free(e->standby);
	e->standby = NULL;
	e->stage_next = 0;
	e->standby_ready = false;
	e->stats.standby_ready = false;
}

bool engine_can_switch(const struct engine *e)
{
	return e->standby_ready && e->native_ready && e->map && e->two;
}

/* Sends b, a change of porthop's own that leaves the maps in force and
 * the table's definition as they were.  *ret_alone: whether nobody else
 * committed since the baseline or meanwhile (the baseline then moves
 * past it); if someone did, what the standby holds is not known to be
 * ours. */
static int own_elements(struct engine *e, const struct nftio_elems *b,
			bool *ret_alone, char **ret_error)
{
	struct drift_mark mark;
	uint32_t after;
	bool alone;
	int r;

	drift_begin(e->drift, &mark);
	r = nftio_apply_elems(e->io, b, e->json_elements, ret_error);
	if (r < 0)
		return r;
	alone = drift_applied(e->drift, e->cfg, &mark, DRIFT_KEPT_DEFINITION,
			      &after);
	if (alone)
		untrack_seen(e->untrack, mark.gen, after, false);
	*ret_alone = alone;
	return 0;
}

int engine_stage_step(struct engine *e, char **ret_error)
{
	unsigned standby = e->gen ^ 1;
	struct nftio_elems *b;
	size_t i, pairs = 0;
	uint32_t gen;
	bool alone = false;
	int r;

	if (config_mode(e->cfg) != CONFIG_MODE_NATIVE || !e->two ||
	    !e->native_ready || e->map == NULL || e->standby_ready)
		return 0;
	/* Someone else committed: reconciliation (or the next trigger's
	 * check) goes first, and staging starts over after it. */
	r = drift_moved(e->drift, &gen);
	if (r != 0) {
		engine_stage_reset(e);
		if (r < 0 && ret_error)
			*ret_error = engine_errstr("cannot read the ruleset "
						   "generation: %s",
						   strerror(-r));
		return r < 0 ? r : 0;
	}
	if (e->standby == NULL) {
		clock_gettime(CLOCK_MONOTONIC, &e->stage_t0);
		r = shuffle_map_new(e->rng, e->cfg, engine_plan(e),
				    &e->standby);
		if (r < 0) {
			e->standby = NULL;
			if (ret_error)
				*ret_error = engine_errstr("cannot draw the next "
							   "mapping: %s",
							   strerror(-r));
			return r;
		}
		e->stage_next = 0;
	}
	b = nftio_elems_new(config_table_name(e->cfg));
	if (b == NULL)
		return -ENOMEM;
	/* The first chunk empties what the generation held (the mapping
	 * that was in force before the last switch). */
	r = e->stage_next == 0 ? ruleset_native_flush_gen(standby, b) : 0;
	for (i = e->stage_next; r == 0 && i < e->standby->nentries &&
	     pairs < STAGE_CHUNK_PAIRS; i++) {
		r = ruleset_native_entry_elements_gen(e->cfg,
						      &e->standby->entries[i],
						      standby, b);
		pairs += e->standby->entries[i].npairs;
	}
	if (r < 0 && ret_error)
		*ret_error = engine_errstr("%s", "out of memory building the "
					   "next mapping's elements");
	r = r < 0 ? r : own_elements(e, b, &alone, ret_error);
	nftio_elems_free(b);
	if (r < 0 || !alone) {
		engine_stage_reset(e);
		return r;
	}
	e->stage_next = i;
	if (i < e->standby->nentries)
		return 1;
	e->standby_ready = true;
	e->stats.standby_ready = true;
	e->stats.stagings++;
	e->stats.last_stage_ms = engine_ms_since(&e->stage_t0);
	return 0;
}

/* The old mapping's redirect ports, for the probe event feed: after the
 * switch, in a transaction of their own (libnftables would parse up to
 * stale_max of them from JSON inside the switch's).  Until they are in,
 * a probe of one is labelled as any closed port's.  Best effort. */
static void stale_after_switch(struct engine *e, const struct shuffle_map *old)
{
	struct nftio_elems *b = nftio_elems_new(config_table_name(e->cfg));
	bool alone;

	if (b && engine_queue_stale(e, e->cfg, old->entries, old->nentries,
				    b) == 0 && nftio_elems_count(b) > 0)
		(void)own_elements(e, b, &alone, NULL);
	nftio_elems_free(b);
}

int engine_switch(struct engine *e, char **ret_error)
{
	unsigned next = e->gen ^ 1;
	struct shuffle_map *old;
	struct drift_mark mark;
	struct timespec t0, t1;
	json_t *batch;
	uint32_t after;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	batch = ruleset_batch_new(e->cfg, false);
	if (batch == NULL ||
	    ruleset_native_switch(e->cfg, next, ruleset_commands(batch)) < 0) {
		json_decref(batch);
		if (ret_error)
			*ret_error = engine_errstr("%s", "out of memory building "
						   "the switch");
		return -ENOMEM;
	}
	e->stats.last_commands = json_array_size(ruleset_commands(batch));
	e->stats.last_build_ms = engine_ms_since(&t0);
	drift_begin(e->drift, &mark);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r = nftio_apply(e->io, batch, false, ret_error);
	e->stats.last_apply_ms = engine_ms_since(&t1);
	json_decref(batch);
	clock_gettime(CLOCK_REALTIME, &e->stats.last_time);
	e->stats.last_result = r;
	if (r < 0) {
		e->stats.failures++;
		return r;
	}
	e->stats.last_switch_ms = e->stats.last_apply_ms;
	e->gen = next;
	drift_set_generation(e->drift, next);
	/* The rules changed (they name other maps): the fingerprint is
	 * taken again, the maps in force are others. */
	if (drift_applied(e->drift, e->cfg, &mark,
			  DRIFT_WROTE_MAPS | DRIFT_MAPS_WHOLE, &after))
		untrack_seen(e->untrack, mark.gen, after, false);
	old = e->map;
	e->map = e->standby;
	e->standby = NULL;
	engine_stage_reset(e);
	stale_after_switch(e, old);
	shuffle_map_free(old);
	e->stats.shuffles++;
	e->stats.switches++;
	e->stats.last_pairs = config_pair_count(e->cfg);
	engine_take_digests(e);
	return 0;
}
