/*
 * engine_derive: derived ports' slot boundaries (see engine.h).  Full
 * applies write the keyed entries' elements with the address sets
 * (engine.c); here, each boundary is one small elements transaction of
 * its own, with the drift baseline moved past it as after any apply of
 * ours.
 */
#include "engine_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ruleset.h"

int64_t engine_derive_now(const struct engine *e)
{
	return e->derive_clock ? e->derive_clock(e->derive_clock_arg) :
				 (int64_t)time(NULL);
}

void engine_set_derive_clock(struct engine *e, int64_t (*now)(void *arg),
			     void *arg)
{
	e->derive_clock = now;
	e->derive_clock_arg = arg;
}

int engine_derive_append(const struct config *cfg, int64_t now,
			 json_t *batch)
{
	struct nftio_elems *b;
	json_t *elems = NULL;
	int r;

	if (config_mode(cfg) != CONFIG_MODE_NATIVE || !ruleset_derive_on(cfg))
		return 0;
	b = nftio_elems_new(config_table_name(cfg));
	r = b ? ruleset_derive_elements(cfg, now, b) : -ENOMEM;
	if (r == 0 && (elems = nftio_elems_json(b)) == NULL)
		r = -ENOMEM;
	if (r == 0 && json_array_extend(ruleset_commands(batch),
					ruleset_commands(elems)) < 0)
		r = -ENOMEM;
	json_decref(elems);
	nftio_elems_free(b);
	return r;
}

int64_t engine_derive_next_ms(const struct engine *e)
{
	struct timespec ts;
	int64_t now_ms, next;

	if (e->derive_clock) {
		now_ms = e->derive_clock(e->derive_clock_arg) * 1000;
	} else {
		/* To the millisecond: a boundary is met on time, not up to a
		 * second after it. */
		clock_gettime(CLOCK_REALTIME, &ts);
		now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	next = ruleset_derive_next(e->cfg, now_ms / 1000);
	return next < 0 ? -1 : next * 1000 - now_ms;
}

int engine_derive_tick(struct engine *e, char **ret_error)
{
	struct nftio_elems *b = NULL;
	struct drift_mark mark;
	struct timespec t0;
	size_t changed = 0;
	uint32_t after;
	int64_t now;
	int r;

	if (!e->native_ready || e->map == NULL || !ruleset_derive_on(e->cfg))
		return 0;
	now = engine_derive_now(e);
	/* Not "the next boundary after derive_at has come": a clock stepped
	 * back would hold later slots' ports until it got there again. */
	if (e->derive_at > 0 && !ruleset_derive_moved(e->cfg, e->derive_at, now))
		return 0;
	/* Someone else's change is put back first (that apply writes the
	 * keyed entries' elements at now too), never blessed by ours. */
	r = engine_settle(e, ret_error);
	if (r < 0)
		return r;
	b = nftio_elems_new(config_table_name(e->cfg));
	r = b ? 0 : -ENOMEM;
	/* Elements at a known time are in force after every apply; should
	 * none be, they are written whole rather than stepped. */
	if (r == 0 && e->derive_at <= 0) {
		r = ruleset_derive_elements(e->cfg, now, b);
		changed = 1;
	} else if (r == 0) {
		r = ruleset_derive_step(e->cfg, e->derive_at, now, b, &changed);
	}
	if (r < 0) {
		if (ret_error)
			*ret_error = engine_errstr("%s", "out of memory building "
						   "the slot change");
		goto out;
	}
	if (changed == 0)
		goto out;
	drift_begin(e->drift, &mark);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = nftio_apply_elems(e->io, b, e->json_elements, ret_error);
	e->stats.derive_last_apply_ms = engine_ms_since(&t0);
	if (r < 0)
		goto out;
	e->derive_at = now;
	e->stats.derive_steps++;
	e->stats.derive_last_elements = nftio_elems_count(b);
	if (drift_applied(e->drift, e->cfg, &mark,
			  DRIFT_KEPT_DEFINITION | DRIFT_WROTE_SETS, &after))
		untrack_seen(e->untrack, mark.gen, after, false);
	engine_take_digests(e);
	r = 1;
out:
	nftio_elems_free(b);
	return r;
}
