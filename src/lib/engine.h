/*
 * engine: the shuffle cycle.  Draw a mapping, build the batch, apply it in
 * one transaction, remember what is in force.  It owns the configuration
 * and the random source and borrows the nftio backend, so it runs the same
 * against the kernel and against the recorder in unit tests.
 */
#ifndef PORTHOP_ENGINE_H
#define PORTHOP_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "diag.h"
#include "nftio.h"
#include "shuffle.h"
#include "untrack.h"

struct engine;

/* What uses conntrack, as untrack keeps it. */
#define ENGINE_CONNTRACK_USER_MAX UNTRACK_WHO_MAX

struct engine_stats {
	uint64_t shuffles;	/* applied successfully */
	uint64_t failures;	/* attempts the kernel refused */
	size_t last_pairs;	/* pairs in the last applied mapping */
	size_t last_commands;	/* commands in the last batch */
	double last_build_ms;	/* draw, build and serialise */
	double last_apply_ms;	/* the libnftables call */
	double last_digest_ms;	/* native: the elements' digest; < 0: none */
	uint64_t repairs;	/* our rules found removed or altered by
				 * someone else and put back (reconciliation,
				 * or a check before a trigger's apply) */
	uint64_t checks;	/* reconciliations that found someone else's
				 * commit and compared our tables */
	double last_check_ms;	/* ... the last one: listing, digests or
				 * elements asked for one by one */
	bool check_continues;	/* ... which left maps' elements to the
				 * next reconciliations (large maps) */
	struct timespec last_time; /* CLOCK_REALTIME of the last attempt */
	int last_result;	/* 0 or the negative errno of the last attempt */
	bool last_redefined;	/* native: the table was gone, defined anew */
	bool untracking;	/* native: untrack_unwatched's rules in force */
	uint64_t untrack_switches; /* ... turned on or off by "auto" */
	char conntrack_user[ENGINE_CONNTRACK_USER_MAX]; /* "auto": what uses
				 * conntrack, as last seen, or "" */
	uint64_t derive_steps;	/* slot boundaries applied (keyed entries) */
	size_t derive_last_elements; /* ... operations in the last one */
	double derive_last_apply_ms; /* ... its kernel call */
	/* prestage (native mode): */
	bool prestage;		/* staging the next mapping (config) */
	bool standby_ready;	/* the next mapping is loaded whole */
	unsigned generation;	/* the maps in force: 0 (swap4...), 1 (_b) */
	uint64_t switches;	/* full shuffles served by a switch */
	uint64_t fallbacks;	/* ... by a full replace, no standby ready */
	uint64_t stagings;	/* standbys loaded whole */
	double last_stage_ms;	/* the last: from its draw to ready, the
				 * loop's other work between chunks included */
	double last_switch_ms;	/* the last switch's transaction */
};

/* Takes ownership of c; borrows io, which must outlive the engine.
 * Returns NULL on allocation failure (c is then freed). */
struct engine *engine_new(struct config *c, struct nftio *io);

/* Frees the engine and its configuration; accepts NULL.  The rules in
 * force stay in the kernel. */
void engine_free(struct engine *e);

/* Draws a new mapping for every watched address and applies it (native
 * mode: after putting back whatever someone else changed in porthop's
 * table since the last apply, so the apply never makes their change its
 * own).  On failure nothing changes, in the kernel (one transaction) or here; a
 * one-line reason is stored in *ret_error (caller frees). */
int engine_shuffle(struct engine *e, char **ret_error);

/* Draws a new mapping for the watched entries idx[0..n) (distinct
 * indexes into the configuration's watched list) only, in one
 * transaction; the other entries keep theirs.  Native mode replaces their
 * elements alone, after putting back whatever someone else changed in
 * porthop's table since the last apply.  -EINVAL for an index out of
 * range. */
int engine_shuffle_entries(struct engine *e, const size_t *idx, size_t n,
			   char **ret_error);

/* engine_shuffle_entries for the one entry that covers ip: that watched
 * address or prefix, or the watched prefix ip lies inside (its whole
 * mapping moves).  -ENOENT if none covers it. */
int engine_shuffle_address(struct engine *e, const char *ip,
			   char **ret_error);

/* Replaces the configuration with c (already loaded and checked) and
 * applies a fresh mapping under it.  On success the engine owns c and the
 * old configuration is freed; on failure the old configuration and the
 * rules in force stay, and c is left to the caller. */
int engine_reload(struct engine *e, struct config *c, char **ret_error);

/* Applies the mapping in force again, whole (native mode: the table's
 * definition too), for when someone removed or altered the rules. */
int engine_reapply(struct engine *e, char **ret_error);

/* Checks that the rules last applied are still in the kernel as they
 * were applied, and applies the mapping in force again if someone removed
 * or altered them.  Cheap when nothing changed: one netlink round trip for
 * the ruleset's generation.  Native mode compares porthop's table without
 * its elements, then a digest of the elements, or above 20,000 pairs the
 * maps' elements one by one, 100,000 pairs per call (changed elements
 * alone are put back in one transaction); template mode the tables its
 * startup commands create.
 * Returns 0 (intact), 1 (re-applied) or a negative errno. */
int engine_reconcile(struct engine *e, char **ret_error);

/* untrack_unwatched "auto": puts untrack_unwatched's rules in force
 * while no other table uses connection tracking, takes them out when one
 * does (stats: untracking, conntrack_user).  Without all, only looks,
 * while they are in force, whether someone committed since the last
 * look (one netlink round trip) and then for a new user of conntrack:
 * cheap enough to run every fraction of a second.  With all, always
 * looks, both ways (iptables-legacy tables too, which move no
 * generation).  Run it after engine_reconcile, which it leaves to judge
 * someone else's commit.  Returns 0 (nothing to change), 1 (switched) or
 * a negative errno. */
int engine_untrack_check(struct engine *e, bool all, char **ret_error);

/* Native mode with remove_table_on_stop: deletes porthop's table.
 * Without it, the table stays, but untrack_unwatched "auto"'s rules are
 * taken out (nobody would take them out when another table starts using
 * conntrack).  Does nothing otherwise.  Returns 0, 1 if the table was gone already, or a
 * negative errno with *ret_error. */
int engine_stop(struct engine *e, char **ret_error);

/* A runtime entry to watch (see config_watched_add). */
struct engine_watch {
	struct config_net net;
	const uint16_t *ignore[CONFIG_NPROTO];	/* sorted, distinct; NULL */
	size_t nignore[CONFIG_NPROTO];
};

/* Native mode: watches w[0..n) (none watched yet) with fresh mappings,
 * in one transaction: their map elements and their tracked4/6 ranges.
 * On failure nothing changes; -EPERM, -EINVAL, -ENOSPC, -EEXIST,
 * -EOPNOTSUPP as config_watched_add, with *ret_error naming the entry,
 * or the kernel's refusal.  Before the first shuffle only the
 * configuration changes (the first shuffle covers them). */
int engine_watch_add(struct engine *e, const struct engine_watch *w, size_t n,
		     char **ret_error);

/* Stops watching the runtime entries idx[0..n) (distinct), in one
 * transaction.  Indexes move as entries go: for each entry gone,
 * moved(arg, to, from) says that entry `to` is gone and entry `from` now
 * lives at `to` (from == to: nothing moved); idx is read before any
 * change.  On failure nothing changes (no moved calls).  -EPERM for an
 * entry of the configuration's. */
int engine_watch_remove(struct engine *e, const size_t *idx, size_t n,
			void (*moved)(void *arg, size_t to, size_t from),
			void *arg, char **ret_error);

/* prestage: loads one bounded chunk of the next mapping into the standby
 * generation's maps (the first also draws it and flushes them), one
 * transaction of elements that nothing reads yet.  Run it from the loop
 * at a low priority after every full shuffle until it returns 0: 1 means
 * more is left; 0 nothing to do (prestage off, the standby ready, no
 * mapping in force yet, or someone else's commit to reconcile first); a
 * negative errno with *ret_error: the standby is dropped (a later call
 * starts over). */
int engine_stage_step(struct engine *e, char **ret_error);

/* Native mode: send map updates through libnftables' JSON parser instead
 * of a netlink batch built here (slower; for comparisons). */
void engine_set_json_elements(struct engine *e, bool on);

const struct config *engine_config(const struct engine *e);
/* The mapping in force, or NULL before the first successful shuffle. */
const struct shuffle_map *engine_map(const struct engine *e);
const struct engine_stats *engine_stats(const struct engine *e);

/* The probe event feed: each redirect port of a replaced mapping (an
 * address's or a prefix's) that goes into stale4/6 or stalenet4/6, with
 * the real port it led to
 * and the generation (engine_stats' shuffles) of the mapping it belonged
 * to.  fn NULL: none. */
typedef void (*engine_stale_fn)(void *arg, const struct config_watched *w,
				const struct shuffle_pair *p,
				uint64_t generation);
void engine_set_stale_hook(struct engine *e, engine_stale_fn fn, void *arg);
/* Old redirect ports left out of stale4/6 because stale_max were there. */
uint64_t engine_stale_skipped(const struct engine *e);

/* Derived ports (engine_derive.c, docs/follow.md).  At a slot boundary of
 * a keyed entry, one small transaction: the slots that leave out, those
 * that come in (the mapping of shuffled entries untouched), after the
 * check that nobody else changed our table.  Returns 1 (applied), 0
 * (nothing to do: no boundary passed, no keyed entry, the table not in
 * place yet) or a negative errno with *ret_error (malloc'ed, may be
 * NULL). */
int engine_derive_tick(struct engine *e, char **ret_error);
/* Milliseconds from now to the next slot boundary, or -1 without keyed
 * entries. */
int64_t engine_derive_next_ms(const struct engine *e);
/* The clock derived ports use (unix seconds; NULL: time()).  For tests. */
void engine_set_derive_clock(struct engine *e, int64_t (*now)(void *arg),
			     void *arg);

/* Native mode with knocks on: lets addr (family AF_INET or AF_INET6) in
 * for knock.trust_seconds (knocked4/6), in one transaction.  0, or a
 * negative errno with *ret_error (malloc'ed) set: -EAGAIN when knocks are
 * off or the table is not in place yet. */
int engine_knock_admit(struct engine *e, int family,
		       const unsigned char addr[16], char **ret_error);

#endif
