/*
 * drift: has anyone changed porthop's rules since porthop applied them?
 *
 * The baseline is what the kernel held right after porthop's own apply:
 * the ruleset generation, a fingerprint of porthop's tables without their
 * elements, and (native mode, up to ELEMENT_CHECK_MAX entries) digests of
 * the maps' and the address sets' elements; maps above that are checked
 * element by element against the mapping in force instead.  A baseline is
 * only ever taken of porthop's own state: after an apply that rewrote
 * everything, or when the generation moved by porthop's own commits
 * alone since it was last checked.  Anything else drops it, and the next
 * check compares again.
 */
#ifndef PORTHOP_DRIFT_H
#define PORTHOP_DRIFT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "nftio.h"
#include "shuffle.h"

struct drift;

/* What a check found changed in porthop's tables. */
enum drift_result {
	DRIFT_INTACT,		/* nothing */
	DRIFT_MAPS,		/* the maps' elements */
	DRIFT_SETS,		/* the address sets' elements */
	DRIFT_ELEMENTS,		/* both */
	DRIFT_DEFINITION,	/* chains, rules, sets or maps themselves, or
				 * no baseline to compare with */
	DRIFT_GONE,		/* a table is missing */
};

/* The figures status and metrics show. */
struct drift_stats {
	uint64_t checks;	/* checks after someone else's commit */
	double last_check_ms;	/* the last one: listing, digests, by key */
	bool check_continues;	/* ... left maps' elements to the next */
	double last_digest_ms;	/* the last digests taken; < 0: none */
};

/* Noted before one of porthop's applies (see drift_begin). */
struct drift_mark {
	uint32_t gen;		/* the generation before */
	uint64_t commits;	/* porthop's commits before */
	bool have;		/* gen could be read */
	bool quiet;		/* ... and was the baseline's */
};

/* Borrows io.  NULL if out of memory. */
struct drift *drift_new(struct nftio *io);
void drift_free(struct drift *d);

/* The tables porthop owns under cfg: its native table, or the tables the
 * startup commands add.  Fills family[] and name[] (borrowed from cfg) up
 * to DRIFT_OWNED_MAX; returns how many. */
#define DRIFT_OWNED_MAX 64
size_t drift_owned_tables(const struct config *cfg, const char **family,
			  const char **name);

void drift_begin(struct drift *d, struct drift_mark *ret);

/* drift_begin before a batch of elements only (DRIFT_KEPT_DEFINITION):
 * takes the generation the last drift_moved read, if porthop committed
 * nothing since, instead of asking the kernel again. */
void drift_begin_elements(struct drift *d, struct drift_mark *ret);

/* What an apply did, for drift_applied (bits). */
enum {
	DRIFT_WROTE_ALL = 1,		/* everything porthop owns, anew */
	DRIFT_KEPT_DEFINITION = 2,	/* elements only: the definition is
					 * as it was */
	DRIFT_MAPS_WHOLE = 4,		/* the maps replaced whole */
	DRIFT_FINGERPRINT_LATER = 8,	/* a large template ruleset: its
					 * fingerprint at the next quiet
					 * check */
	DRIFT_WROTE_MAPS = 16,		/* the maps' elements (all or some) */
	DRIFT_WROTE_SETS = 32,		/* the address sets' elements */
};

/* After one of porthop's applies under cfg succeeded (m from
 * drift_begin, how: DRIFT_* bits): the kernel's state becomes the
 * baseline if the apply wrote everything or if nobody else committed
 * since the baseline was checked, nor during the apply.  Otherwise the
 * baseline is dropped (but for the definition's fingerprint when it was
 * kept), and the next check compares everything.  Returns whether it
 * rebased, with the generation now in *ret_gen. */
bool drift_applied(struct drift *d, const struct config *cfg,
		   const struct drift_mark *m, unsigned how, uint32_t *ret_gen);

/* Takes the digests a check compares with, those missing (native mode,
 * reconciliation on), unless someone committed since the baseline. */
void drift_take_digests(struct drift *d, const struct config *cfg);

/* Whether someone committed since the baseline (1) or not (0), the
 * generation now in *ret_gen; a negative errno if it cannot be read. */
int drift_moved(struct drift *d, uint32_t *ret_gen);

/* Someone committed (the generation is gen now): compares porthop's
 * tables under cfg with the baseline (map: the mapping in force).  The
 * comparison moves the baseline to gen: what differs is the caller's to
 * put back (then drift_applied rebases), or drift_unsettle if it cannot. */
enum drift_result drift_compare(struct drift *d, const struct config *cfg,
				const struct shuffle_map *map, uint32_t gen);

/* Nobody committed since the baseline: keeps a copy of the fingerprint if
 * there is none yet, takes missing digests, and goes one step further in
 * a check by key still in progress.  DRIFT_INTACT or DRIFT_MAPS. */
enum drift_result drift_quiet_step(struct drift *d, const struct config *cfg,
				   const struct shuffle_map *map);

/* What drift_compare found could not be put back: the next check looks
 * again. */
void drift_unsettle(struct drift *d);

/* A change of porthop's own outside an apply (untrack_unwatched "auto"
 * switching its rules).  Before it: whether porthop's tables are intact
 * (nobody committed, or their fingerprint is the baseline's).  After it:
 * the fingerprint taken again if they were, and the generation too if
 * porthop's was the only commit since the baseline. */
struct drift_own {
	bool intact, quiet;
	uint32_t gen;
};
void drift_own_begin(struct drift *d, const struct config *cfg,
		     struct drift_own *ret);
void drift_own_end(struct drift *d, const struct config *cfg,
		   const struct drift_own *o);
/* drift_own_begin for a change of elements that no baseline covers (a
 * knock's element in knocked4/6): the definition's fingerprint cannot
 * change, so only the generation is followed (one round trip before,
 * one in drift_own_end), never a fingerprint. */
void drift_own_elements_begin(struct drift *d, struct drift_own *ret);

/* Whether porthop's table under cfg is missing (a listing answers
 * -ENOENT). */
bool drift_table_gone(struct drift *d, const struct config *cfg);

/* prestage: the generation of maps in force (0 or 1, see ruleset.h),
 * whose elements the checks compare; a change drops their digest. */
void drift_set_generation(struct drift *d, unsigned gen);

const struct drift_stats *drift_stats(const struct drift *d);

#endif
