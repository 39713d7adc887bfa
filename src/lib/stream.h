/*
 * stream: the fleet feed's consumer (see docs/fleet.md): one Redis
 * Stream, this host's consumer group, at-least-once.
 *
 * hiredis' async API on the daemon's libevent loop, like bus.  With
 * sentinels configured it asks one of them for the primary (plain
 * SENTINEL commands: hiredis 0.14 has no helper), connects, checks with
 * ROLE that it is the primary, and asks again when the connection is lost
 * or a sentinel announces +switch-master.  At every connection it looks
 * at its group: new, or behind the stream's trimming, it converges to
 * the snapshot first and starts its group at the snapshot's position.
 * Then it reads its pending entries, then new ones; a read's entries are
 * decoded (core_fleet_decode) and applied in runs (fleet_run,
 * core_fleet_apply: one kernel transaction and one state-file commit
 * per run of watches or unwatches of one origin), and acknowledged
 * (XACK) once their effect is committed (a trigger: once the next
 * shuffle is applied), or refused.
 * Every resync_interval_s it converges to the snapshot again.  It never
 * gives up (backoff with jitter) and does not log: it reports through
 * the state callback.
 */
#ifndef PORTHOP_STREAM_H
#define PORTHOP_STREAM_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"

struct core;
struct stream;

enum stream_event {
	STREAM_UP,	/* following the stream (detail: what was done) */
	STREAM_DOWN,	/* was up, or first failure since: detail why */
	STREAM_RETRY,	/* a further failure while down */
	STREAM_NOTE,	/* something worth a line (a snapshot, a switch) */
	STREAM_TRACE,	/* entries applied (only with opt.trace): "ID
			 * DELAY_MS [ID DELAY_MS ...]", each the delay from
			 * its XADD (its ID's time, Redis' clock) to its
			 * apply here */
};

typedef void (*stream_state_fn)(void *arg, enum stream_event ev,
				const char *detail, unsigned retry_ms);

struct stream_options {
	const char *host;		/* the primary, or the first guess */
	int port;
	const char *unix_path;		/* no sentinels: a UNIX socket */
	const char *user, *password;	/* the data connection's AUTH */
	const struct config_sentinel *sentinels;
	size_t nsentinels;
	const char *master_name;
	const char *stream, *group;
	unsigned batch;			/* entries per read (256) */
	unsigned block_ms;		/* XREADGROUP BLOCK (1000) */
	unsigned read_interval_ms;	/* new entries read at most once in
					 * this long (0: at once) */
	unsigned resync_interval_s;	/* 0: never */
	unsigned info_interval_ms;	/* lag and pending (2000) */
	unsigned backoff_min_ms, backoff_max_ms, connect_timeout_ms;
	bool trace;			/* STREAM_TRACE for every entry */
};

struct stream_stats {
	bool up;
	char primary[300];		/* "host:port" last connected */
	int64_t lag;			/* entries not yet read; -1 unknown */
	int64_t pending;		/* read, not acknowledged; -1 unknown */
	uint64_t read, acknowledged, refused, redelivered, retried;
	uint64_t snapshot_loads, resyncs, connections, switches;
	uint64_t replayed;		/* refused: signed too far from
					 * their stream ID's time (also in
					 * refused) */
	char last_acked[48];		/* the last ID acknowledged, or "" */
	/* From an entry's XADD (its ID's time) to its apply here (kernel
	 * changed; the acknowledgement follows the state file's commit):
	 * how long this host lagged the fleet's decision. */
	struct metrics_histogram delay;
};

/* Copies what it needs from opt; borrows core (which must outlive it).
 * NULL on allocation failure. */
struct stream *stream_new(struct event_base *base,
			  const struct stream_options *opt, struct core *core,
			  stream_state_fn on_state, void *arg);
/* Starts the first connection; 0 or -ENOMEM. */
int stream_start(struct stream *s);
/* Closes every connection and frees s; accepts NULL.  Entries waiting
 * for a commit stay unacknowledged (read again at the next start). */
void stream_free(struct stream *s);

/* A shuffle was applied: trigger entries read before it are done. */
void stream_shuffled(struct stream *s);

void stream_get_stats(const struct stream *s, struct stream_stats *ret);
/* The delay histogram (see struct stream_stats), borrowed. */
const struct metrics_histogram *stream_delay(const struct stream *s);
/* status: {"stream", "group", "state", "primary", "lag", ...}. */
json_t *stream_status(const struct stream *s);

#endif
