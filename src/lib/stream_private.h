/*
 * stream_private.h: what stream.c (links, set-up, sentinels, the
 * periodic work) and stream_read.c (reads, batches in flight,
 * acknowledgements) share.  Not for other modules.
 */
#ifndef PORTHOP_STREAM_PRIVATE_H
#define PORTHOP_STREAM_PRIVATE_H

#include "stream.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "fleet.h"

enum link_kind { LINK_DATA, LINK_QUERY, LINK_SUB };

struct link {
	struct stream *s;
	enum link_kind kind;
	redisAsyncContext *ac;		/* NULL while closed */
	struct event *timer;		/* connect timeout, or drop */
	bool dropping;			/* the timer drops the link */
	bool finished;			/* a query answered: its close is no
					 * failure */
	char why[512];
};

/* Reads whose entries are handed to the core and wait for their
 * commits, at most: when more entries are surely waiting (a full read,
 * or the pending list), the next read is issued as soon as one is handed
 * over, so that its answer is there when the commit is done; bounded, so
 * that a host whose disk is slow stops reading instead of holding ever
 * more.  Not otherwise: the group commit's fdatasync holds the loop, and
 * a BLOCK read sent before it returns with the first entry that arrives
 * during it, leaving the others for the read after the next commit
 * (measured: later than reading after the commit; docs/benchmarks.md). */
#define STREAM_INFLIGHT_MAX 4

/* One read's entries, while some wait for the group commit. */
struct batch {
	struct stream *s;		/* NULL: orphaned (reconnected, or
					 * the stream freed) */
	struct batch *next;		/* the read after it, in flight */
	size_t n, outstanding;
	bool dispatching;
	bool complete;			/* every entry decided */
	char (*ids)[FLEET_ID_MAX];
	enum fleet_verdict *verdict;
	bool *held;			/* not in this acknowledgement (a
					 * trigger's, or not an entry) */
	struct ticket {
		struct batch *b;
		size_t i;		/* a run's first entry */
	} *tickets;
};

struct stream {
	struct event_base *base;
	struct core *core;
	stream_state_fn on_state;
	void *arg;
	/* Options (owned copies). */
	char *host, *unix_path, *user, *password, *master_name;
	int port;
	struct config_sentinel *sentinels;
	size_t nsentinels;
	char *name, *group;
	char keys[3][160];		/* snapshot, position, expiry */
	unsigned batch_max, block_ms, resync_s, info_ms, read_interval_ms;
	unsigned backoff_min_ms, backoff_max_ms, connect_timeout_ms;
	bool trace;
	char trace_buf[480];		/* STREAM_TRACE pairs not yet said */
	size_t trace_len;

	struct link data, query, sub;
	struct event *retry_ev;		/* resolve and connect again */
	struct event *sub_ev;		/* the subscription's reconnect */
	struct event *read_ev;		/* the next read, later */
	struct event *info_ev;		/* lag and pending, periodically */
	struct event *resync_ev;	/* the snapshot, periodically */
	size_t sentinel;		/* the one asked next */
	size_t asked;			/* sentinels asked in this round */
	unsigned attempt;		/* failures since the last success */
	bool down_reported;
	bool stopping;
	/* The primary to connect to. */
	char target_host[256];
	int target_port;
	/* Set-up at each connection. */
	bool stream_exists, group_exists;
	struct fleet_id last_read, first_entry;
	bool have_first;
	uint64_t entries_added, length;
	/* Reading. */
	bool pending_phase;		/* our own unacknowledged ones first */
	char cursor[FLEET_ID_MAX];	/* ... from after this ID */
	bool reading;			/* a read is on the wire */
	uint64_t last_read_ms;		/* when the last read of new entries
					 * was sent (monotonic) */
	bool read_paced;		/* read_ev waits out the interval */
	/* Reads handed to the core, in stream order: acknowledged from
	 * the head, each once it and every read before it is decided. */
	struct batch *head, *tail;
	size_t inflight;
	/* Some entry asked to be retried: the reads after it are
	 * acknowledged no more (they were applied out of order: they are
	 * applied again, after it); once none is in flight, the pending
	 * list is read again from its start a second later. */
	bool retry_wait;
	bool restart_after_read;	/* ... once the read on the wire is
					 * back (its entries discarded) */
	/* Trigger entries done at the next shuffle. */
	char (*trig)[FLEET_ID_MAX];
	size_t ntrig, cap_trig;
	uint64_t trig_mark;		/* shuffles when they were queued */

	struct stream_stats st;
};

/* stream.c */
void stream_say(struct stream *s, enum stream_event ev, unsigned ms,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void stream_arm_ms(struct event *ev, unsigned ms);
/* From inside a hiredis callback: close on the next turn, then fail. */
void stream_drop_later(struct link *l, const char *why);
/* r if it is a reply for l's current context and nothing is going away;
 * else NULL. */
redisReply *stream_reply_of(struct link *l, redisAsyncContext *ac, void *r);

/* stream_read.c */
/* The next read, unless one is on the wire, too many are in flight, or
 * a retry waits. */
void stream_issue_read(struct stream *s);
/* read_ev: the retry's restart of the pending list, or a read. */
void stream_on_read_timer(evutil_socket_t fd, short what, void *arg);
/* Orphans the reads in flight: their entries are read again from the
 * pending list at the next connection. */
void stream_orphan_reads(struct stream *s);
/* A field's value in a flat [name, value, ...] array, or NULL. */
const redisReply *stream_field(const redisReply *fields, const char *name);

#endif
