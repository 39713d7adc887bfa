/*
 * metrics: porthopd's figures in the Prometheus text format (version
 * 0.0.4), for `porthop metrics` and for node_exporter's textfile
 * collector.  Rendering is pure: a snapshot in, text out.
 */
#ifndef PORTHOP_METRICS_H
#define PORTHOP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "probe.h"

struct watchlist;
struct knock_stats;

#define METRICS_BUCKETS 13

/* A histogram of durations in seconds, with fixed bucket bounds. */
struct metrics_histogram {
	uint64_t counts[METRICS_BUCKETS + 1];	/* last: above every bound */
	uint64_t count;
	double sum;
};

/* Trigger sources and refusal reasons, as label values. */
enum metrics_source { SRC_REDIS, SRC_TIMER, SRC_SIGNAL, SRC_CONTROL,
		      SRC_RECONNECT, SRC_STREAM, SRC_COUNT };
#define METRICS_REASONS 6	/* enum auth_result values */

/* The label value of a source ("redis", ...), also used in the log. */
const char *metrics_source_name(enum metrics_source s);

struct metrics_snapshot {
	const char *version;
	const char *mode;		/* "template" or "native" */
	uint64_t shuffles;
	uint64_t failures;
	uint64_t reconciliations;
	uint64_t checks;		/* reconciliation's checks of our tables */
	double last_check_seconds;	/* ... the last one's duration */
	int untracking;			/* native: 1 if unwatched clients are
					 * untracked, 0 if not; -1 template */
	uint64_t untrack_switches;	/* ... turned on or off by "auto" */
	int prestage;			/* native: 1 if the next mapping is
					 * staged (prestage), 0 if not; -1
					 * template */
	bool standby_ready;		/* ... and loaded whole now */
	uint64_t prestage_switches, prestage_fallbacks;
	double last_stage_seconds;	/* the last staging, draw to ready */
	size_t pairs;
	size_t watched;
	int redis_connected;		/* 1, 0, or -1 when Redis is off */
	uint64_t triggers[SRC_COUNT];
	uint64_t refused[METRICS_REASONS];	/* index: enum auth_result */
	const struct metrics_histogram *apply;
	double start_time;		/* epoch seconds */
	double last_shuffle_time;	/* epoch seconds, 0: never */
	/* The runtime watch list (NULL: template mode), its state file. */
	const struct watchlist *watch;
	uint64_t state_syncs, state_commit_failures;
	bool state_file;		/* a state directory is in use */
	/* The probe event feed (NULL: off). */
	const struct probe_stats *events;
	/* Single packet authorisation (NULL: off). */
	const struct knock_stats *knock;
	/* The fleet stream (stream false: pub/sub, nothing shown). */
	bool stream;
	int stream_up;
	int64_t stream_lag, stream_pending;	/* -1: unknown */
	uint64_t stream_read, stream_acknowledged, stream_redelivered;
	uint64_t stream_refused, stream_snapshot_loads;
	uint64_t stream_replayed;
	const struct metrics_histogram *stream_delay;
	/* The event feed's hook (hook false: none configured). */
	bool hook;
	uint64_t hook_runs, hook_failures, hook_killed;
};

/* Adds one observation. */
void metrics_observe(struct metrics_histogram *h, double seconds);

/* Renders s.  Returns malloc'ed text (the caller frees it), or NULL. */
char *metrics_render(const struct metrics_snapshot *s);

/* Writes text to path atomically (a temporary file in the same directory,
 * then rename), mode 0644.  Returns 0 or a negative errno. */
int metrics_write_file(const char *path, const char *text);

#endif
