/*
 * core_fleet: what porthopd does with the fleet stream's entries and its
 * snapshot (see docs/fleet.md).  The transport (stream.c) reads entries
 * and acknowledges them; the decisions are here: verification, the local
 * origin, absolute expiries, triggers, and converging to the snapshot.
 */
#ifndef PORTHOP_CORE_FLEET_H
#define PORTHOP_CORE_FLEET_H

#include "core.h"
#include "fleet.h"

enum core_fleet_outcome {
	CORE_FLEET_NOW,		/* done: *ret_verdict says what to do */
	CORE_FLEET_LATER,	/* done(arg, res) after the group commit;
				 * fleet_verdict(res->status) */
	CORE_FLEET_AFTER_SHUFFLE, /* a trigger: done once the next
				 * shuffle is applied (core_shuffles) */
};

/* One entry's message (field "m", len bytes): its MAC checked when a
 * trigger key is configured (no time window: a host may read an entry
 * long after it was signed), decoded, applied.  A watch holds the address
 * under origin "fleet." ORIGIN until its absolute expiry (one already
 * past deletes that entry instead); an unwatch deletes (address,
 * "fleet." ORIGIN); a trigger joins the pending shuffle.  Every one is
 * idempotent: applied twice, the list and the kernel end as after once
 * (a trigger shuffles again, which is a shuffle).  Refusals are counted
 * and logged through a limit. */
enum core_fleet_outcome core_fleet_entry(struct core *c, const char *msg,
					 size_t len, core_watch_done_fn done,
					 void *arg,
					 enum fleet_verdict *ret_verdict);

/* Shuffles applied so far (a trigger's entry is done when this grows). */
uint64_t core_shuffles(const struct core *c);

/* Converges this host's fleet entries to the snapshot's items (live
 * ones; sorted in place): the entries it lacks are deleted, the ones
 * missing or with another expiry added, an origin's adds at once (one
 * by one when refused together).  Nothing waits for the commit.
 * *ret_added, *ret_deleted: entries changed.  0 or -ENOMEM. */
int core_fleet_converge(struct core *c, struct fleet_item *snap, size_t n,
			size_t *ret_added, size_t *ret_deleted);

#endif
