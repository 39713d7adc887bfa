/*
 * trigger: what the triggers that arrived ask for, until the shuffle that
 * serves them runs.  A burst costs one shuffle: requests for every entry
 * collapse into one; requests naming watched entries collapse per entry
 * and are served together, in one transaction; a pending shuffle of every
 * entry absorbs the requests for single entries.  Bookkeeping only (no
 * clock, no kernel): the daemon decides when the pending shuffle runs.
 */
#ifndef PORTHOP_TRIGGER_H
#define PORTHOP_TRIGGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Distinct entries that may wait at once; one more and the queue asks for
 * every entry instead (a full shuffle serves them all, in memory bounded
 * whatever a flood names). */
#define TRIGGER_MAX_ENTRIES 4096

struct trigger_queue;

/* What is pending.  entries (owned by the queue) stays valid until the
 * queue next changes. */
struct trigger_batch {
	bool all;		/* every entry */
	const size_t *entries;	/* else these, distinct */
	size_t nentries;
	unsigned sources;	/* a bit (1 << source) for each source */
};

/* NULL on allocation failure. */
struct trigger_queue *trigger_queue_new(void);
/* Accepts NULL. */
void trigger_queue_free(struct trigger_queue *q);

/* A request for every entry, from source (< 32). */
void trigger_queue_all(struct trigger_queue *q, unsigned source);

/* A request for watched entry idx, from source (< 32).  Returns 1 if it
 * joined a request already pending (the same entry, or every entry), 0
 * if it is new.  Out of memory, or past TRIGGER_MAX_ENTRIES, the queue
 * asks for every entry. */
int trigger_queue_entry(struct trigger_queue *q, size_t idx, unsigned source);

bool trigger_queue_pending(const struct trigger_queue *q);
void trigger_queue_peek(const struct trigger_queue *q,
			struct trigger_batch *ret);
/* A watched entry went: entry `to` is forgotten, and entry `from` now
 * lives at index `to` (from == to: nothing moved). */
void trigger_queue_moved(struct trigger_queue *q, size_t to, size_t from);

/* Forgets what is pending (served, or superseded by a reload). */
void trigger_queue_clear(struct trigger_queue *q);

#endif
