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
	CORE_FLEET_AFTER_SHUFFLE, /* a trigger: done once the next
				 * shuffle is applied (core_shuffles) */
};

/* One entry's message (field "m", len bytes) whose stream ID is id: its
 * MAC checked when a trigger key is configured, then decoded into
 * *ret_op; signed, its signed time must be within the trigger window of
 * its ID's time (fleet_check_time: a copy of an old signed entry XADDed
 * again is refused; not "now": a host may read an entry long after it
 * was written).  Returns 0, -EINVAL (refused) or -ESTALE (refused as a
 * replay); refusals are counted and logged through a limit; acknowledge
 * them. */
int core_fleet_decode(struct core *c, const char *msg, size_t len,
		      const struct fleet_id *id, struct fleet_op *ret_op);

/* A trigger entry (op->kind FLEET_TRIGGER): it joins the pending shuffle
 * (CORE_FLEET_AFTER_SHUFFLE), or names an address not watched here
 * (CORE_FLEET_NOW, *ret_verdict FLEET_ACK: counted and said by the
 * core). */
enum core_fleet_outcome core_fleet_trigger(struct core *c,
					   const struct fleet_op *op,
					   enum fleet_verdict *ret_verdict);

/* Called for ops [from, from + n) of a core_fleet_apply with what becomes
 * of them; every op is reported exactly once. */
typedef void (*core_fleet_done_fn)(void *arg, size_t from, size_t n,
				   enum fleet_verdict v);

/* Applies a run (see fleet_run: kind FLEET_RUN_ADD or FLEET_RUN_DEL,
 * every op of one origin) as one change: a watch holds its address under
 * origin "fleet." ORIGIN until its absolute expiry, an unwatch (or a
 * watch whose time is over) deletes (address, "fleet." ORIGIN).  One
 * kernel transaction and one group commit for the run; a run the core
 * refuses (an address trusted here, a limit, the kernel) is split in
 * halves, applied in order, until each refusal is one op's own, so that
 * one bad op never holds back the others.  done(arg, from, n, verdict)
 * for each part: before this returns when decided now (refused, no state
 * file), after the group commit otherwise.  Every op is idempotent:
 * applied twice, the list and the kernel end as after once.  Refusals
 * are counted and logged through a limit.  Borrows ops until it
 * returns. */
void core_fleet_apply(struct core *c, enum fleet_run_kind kind,
		      const struct fleet_op *ops, size_t n,
		      core_fleet_done_fn done, void *arg);

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
