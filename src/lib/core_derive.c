/*
 * core_derive: derived ports' slot boundaries, at porthopd's timer: the
 * engine's one transaction per boundary, what it did said, and when to
 * look next.
 */
#include "core_private.h"

#include <stdlib.h>
#include <time.h>

/* Without keyed entries, a look a second: a reload may bring some. */
#define CORE_DERIVE_IDLE_MS 1000

long core_derive_tick(struct core *c)
{
	const struct engine_stats *st = engine_stats(c->engine);
	char *err = NULL;
	int r = engine_derive_tick(c->engine, &err);
	uint64_t held;
	int64_t next;

	/* Through a limit: a failure is tried again at the next call, a
	 * second later at most, until it works. */
	if (r < 0 && log_ratelimit(&c->failure_log, time(NULL), LOG_BURST,
				   LOG_INTERVAL_S, &held))
		warn(c, "slot change: the derived ports could not be moved: %s "
		     "(tried again; %llu such lines held back)", err ? err : "?",
		     (unsigned long long)held);
	else if (r > 0)
		debug(c, "slot change: %zu element operations in %.2f ms",
		      st->derive_last_elements, st->derive_last_apply_ms);
	free(err);
	next = engine_derive_next_ms(c->engine);
	if (next < 0 || next > CORE_DERIVE_IDLE_MS)
		return CORE_DERIVE_IDLE_MS;
	/* Just past the boundary, so that the clock has moved on. */
	return (long)next + 2;
}
