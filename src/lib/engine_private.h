/*
 * engine_private: what engine.c shares with engine_watch.c (runtime
 * entries) and nothing else may use.
 */
#ifndef PORTHOP_ENGINE_PRIVATE_H
#define PORTHOP_ENGINE_PRIVATE_H

#include <jansson.h>
#include <time.h>

#include "drift.h"
#include "engine.h"

struct engine {
	struct config *cfg;
	struct nftio *io;
	struct shuffle *rng;
	struct shuffle_map *map;	/* in force, or NULL */
	struct shuffle_plan *plan;	/* cfg's free ports, built at first use */
	struct drift *drift;		/* has anyone changed our rules? */
	struct untrack *untrack;	/* untrack_unwatched and "auto" */
	struct engine_stats stats;	/* partly copied from the two above */
	/* Native mode: the table as the configuration defines it is in the
	 * kernel, so a shuffle only has to replace map elements. */
	bool native_ready;
	bool json_elements;	/* send map updates through libnftables */
	/* BATCH_WATCH's elements, built by engine_watch.c. */
	struct nftio_elems *watch_elems;
	/* The probe event feed: old redirect ports put into stale4/6 in
	 * the last stale_seconds (batches of them, by when they time
	 * out), so that no more than stale_max are there at once; and who
	 * hears of each. */
	struct { int64_t until_ms; size_t n; } stale_log[32];
	size_t stale_nlog;
	uint64_t stale_skipped;
	engine_stale_fn stale_fn;
	void *stale_arg;
	/* Derived ports (engine_derive.c): the time (unix seconds) whose
	 * slots the keyed entries' elements in force are for, and the
	 * clock (NULL: time()). */
	int64_t derive_at;
	int64_t (*derive_clock)(void *arg);
	void *derive_clock_arg;
	/* prestage (engine_stage.c): the generation of maps the rules name
	 * (0 or 1); the next mapping, drawn, loaded into the other
	 * generation's maps up to entry stage_next; ready once all of it
	 * is there and nobody else has committed since. */
	unsigned gen;
	bool two;		/* the table has both generations */
	struct shuffle_map *standby;
	size_t stage_next;
	bool standby_ready;
	struct timespec stage_t0;	/* when the standby was drawn */
};

/* What a batch has to carry. */
enum batch_kind {
	BATCH_FULL,	/* template: everything; native: table and elements */
	BATCH_SHUFFLE,	/* native: flush the maps, add every element */
	BATCH_ELEMENTS,	/* native: the same, and refill the address sets */
	BATCH_SETS,	/* native: refill the address sets alone */
	BATCH_ENTRY,	/* native: replace one entry's elements */
	BATCH_WATCH,	/* native: e->watch_elems, runtime entries' change */
};

/* How a BATCH_FULL goes: commands that come first (tables to delete), and
 * whether the native table may be redefined in place. */
struct redefine {
	const json_t *prelude;
	bool in_place;
};

/* Builds and applies map under cfg (see engine.c). */
int engine_apply_map(struct engine *e, struct config *cfg,
		     struct shuffle_map *map, enum batch_kind kind,
		     const struct shuffle_entry *old, size_t nold,
		     const struct timespec *t0, const struct redefine *rd,
		     char **ret_error);
/* Before a trigger's partial apply: puts back what someone else changed. */
int engine_settle(struct engine *e, char **ret_error);
/* The digests reconciliation compares with. */
void engine_take_digests(struct engine *e);
/* The plan of the configuration in force, built at first use. */
struct shuffle_plan *engine_plan(struct engine *e);
double engine_ms_since(const struct timespec *a);
/* Derived ports (engine_derive.c): now by the engine's clock; the keyed
 * entries' elements at now appended to a full batch. */
int64_t engine_derive_now(const struct engine *e);
int engine_derive_append(const struct config *cfg, int64_t now,
			 json_t *batch);
/* The probe event feed: queues old[0..n)'s redirect ports on b. */
int engine_queue_stale(struct engine *e, struct config *cfg,
		       const struct shuffle_entry *old, size_t n,
		       struct nftio_elems *b);
/* The figures drift and untrack keep, copied into the stats. */
void engine_sync_stats(struct engine *e);
/* prestage (engine_stage.c): forgets the standby (its maps are flushed
 * when staging starts again), after anything that makes it unfit to be
 * switched in: a reload, a runtime entry, someone else's commit. */
void engine_stage_reset(struct engine *e);
/* Whether a trigger can switch to the standby now. */
bool engine_can_switch(const struct engine *e);
/* Puts the standby in force in one small transaction (see
 * ruleset_native_switch); the mapping it replaces goes to stale4/6. */
int engine_switch(struct engine *e, char **ret_error);
char *engine_errstr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
