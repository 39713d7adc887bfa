/*
 * probe: what porthop saw (docs/events.md).  A probe event is one kind of
 * packet the kernel logged to porthopd (moved, vacated, stale, probe),
 * parsed from the packet's headers; identical events merge over a short
 * window (probe_merge.c) and the merged ones are kept in a ring for
 * `porthop events` (probe_ring.c).  Pure: no clock, no I/O.
 */
#ifndef PORTHOP_PROBE_H
#define PORTHOP_PROBE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum probe_kind {
	PROBE_MOVED,	/* a watched source reached a moved service through
			 * its current redirect port */
	PROBE_VACATED,	/* a watched source probed a real port moved away
			 * from it */
	PROBE_STALE,	/* a watched source probed a redirect port of one of
			 * its previous mappings */
	PROBE_PROBE,	/* an unwatched, untrusted source probed a port where
			 * nothing listens */
	PROBE_KINDS
};

/* Why an event was lost; each is counted (porthop_events_dropped_total). */
enum probe_drop {
	PROBE_DROP_KERNEL,	/* over the kernel's rate limit */
	PROBE_DROP_SOCKET,	/* lost between the kernel and porthopd */
	PROBE_DROP_MALFORMED,	/* a logged packet porthopd cannot read */
	PROBE_DROP_MERGE,	/* the merge table was full */
	PROBE_DROP_STREAM,	/* the Redis stream's backlog was full */
	PROBE_DROP_HOOK,	/* the hook's rate or its children's limit */
	PROBE_DROPS
};

/* The feed's figures (core keeps them; metrics and status show them). */
struct probe_stats {
	uint64_t packets[PROBE_KINDS];	/* logged packets read, by kind */
	uint64_t events[PROBE_KINDS];	/* merged events emitted */
	uint64_t dropped[PROBE_DROPS];	/* lost, by reason */
	uint64_t autowatch_added, autowatch_refreshed, autowatch_refused,
		 autowatch_evicted;
	uint64_t stale_skipped;		/* old ports stale_max left out */
	size_t autowatch_sources;	/* sources being counted now */
};

/* The nflog prefix of each kind's rule: "porthop:" and the kind. */
#define PROBE_PREFIX "porthop:"

struct probe_event {
	int64_t time_ms;	/* first seen, epoch milliseconds */
	int64_t last_ms;	/* last seen (merged) */
	uint64_t count;		/* packets merged into it */
	uint64_t generation;	/* the mapping's generation */
	uint64_t seq;		/* the ring's number; 0 until pushed */
	uint8_t kind;		/* enum probe_kind */
	uint8_t family;		/* 4 or 6 */
	uint8_t proto;		/* IPPROTO_TCP or IPPROTO_UDP */
	uint8_t addr[16];	/* the source (the first 4 bytes for IPv4) */
	uint16_t port;		/* the destination port probed */
	uint16_t real_port;	/* the service it leads (led) to; 0: none */
};

/* The label of a kind ("moved", ...) or of a drop reason ("kernel_limit",
 * ...); NULL out of range. */
const char *probe_kind_name(enum probe_kind k);
const char *probe_drop_name(enum probe_drop d);

/* Fills *ret from one logged packet: prefix (the rule's nflog prefix,
 * NUL-terminated), pkt (len bytes from the network header on, as nflog
 * copies it) at now_ms.  count 1, generation and real_port 0.  -EINVAL if
 * the prefix is not one of ours or the headers are cut short or of another
 * protocol (the caller counts it). */
int probe_parse(const char *prefix, const uint8_t *pkt, size_t len,
		int64_t now_ms, struct probe_event *ret);

/* The source as text (buf of at least 46 bytes); returns buf. */
const char *probe_source(const struct probe_event *e, char *buf, size_t len);

/* The event as a JSON object (new reference, NULL if out of memory):
 * {"time","last","kind","source","proto","port","real_port"|null,
 *  "generation","count","seq"}; times as RFC 3339 UTC with milliseconds. */
json_t *probe_json(const struct probe_event *e);

/*
 * The merge window: events of the same (source, kind, protocol, port)
 * within window_ms of the first become one, with a count.  Bounded: at
 * most capacity events wait at once; an event that finds the table full
 * is refused (-ENOSPC), for the caller to count.  Windows close in the
 * order they opened.
 */
struct probe_merge;

/* NULL if out of memory.  capacity >= 1. */
struct probe_merge *probe_merge_new(size_t capacity, unsigned window_ms);
void probe_merge_free(struct probe_merge *m);	/* accepts NULL */
/* Adds ev (copied): 1 if it opened a window, 0 if merged, -ENOSPC. */
int probe_merge_add(struct probe_merge *m, const struct probe_event *ev);
/* Emits (oldest first) every event whose window has closed by now_ms, or
 * every one with all; each is gone once emitted.  Returns the count. */
size_t probe_merge_flush(struct probe_merge *m, int64_t now_ms, bool all,
			 void (*emit)(void *arg, const struct probe_event *e),
			 void *arg);
size_t probe_merge_pending(const struct probe_merge *m);

/*
 * The ring of the last merged events, numbered from 1 (seq) so that a
 * reader asks for what came after the last it saw.
 */
struct probe_ring;

struct probe_ring *probe_ring_new(size_t capacity);	/* NULL: no memory */
void probe_ring_free(struct probe_ring *r);		/* accepts NULL */
/* Copies ev in (the oldest goes when full); sets and returns its seq. */
uint64_t probe_ring_push(struct probe_ring *r, struct probe_event *ev);
/* The events with seq > after, oldest first, at most max: each to fn.
 * Returns how many. */
size_t probe_ring_since(const struct probe_ring *r, uint64_t after, size_t max,
			void (*fn)(void *arg, const struct probe_event *e),
			void *arg);
/* The newest seq (0: none yet). */
uint64_t probe_ring_last(const struct probe_ring *r);

#endif
