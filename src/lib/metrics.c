/*
 * metrics: porthopd's figures in the Prometheus text format. See
 * metrics.h for the contract.
 */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "knock.h"
#include "watchlist.h"

static const double bounds[METRICS_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

static const char *const sources[SRC_COUNT] = {
	"redis", "timer", "signal", "control", "reconnect", "stream"
};

const char *metrics_source_name(enum metrics_source s)
{
	return s < SRC_COUNT ? sources[s] : "?";
}

void metrics_observe(struct metrics_histogram *h, double seconds)
{
	size_t i = 0;

	while (i < METRICS_BUCKETS && seconds > bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += seconds;
}

struct out {
	FILE *f;
};

static void metric(struct out *o, const char *name, const char *type,
		   const char *help)
{
	fprintf(o->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric of one sample without labels: its value printed with fmt. */
static void scalar(struct out *o, const char *name, const char *type,
		   const char *help, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void scalar(struct out *o, const char *name, const char *type,
		   const char *help, const char *fmt, ...)
{
	va_list ap;

	metric(o, name, type, help);
	fprintf(o->f, "%s ", name);
	va_start(ap, fmt);
	vfprintf(o->f, fmt, ap);
	va_end(ap);
	fputc('\n', o->f);
}

/* The runtime watch list, per origin (names are [a-z0-9_.-]: no label
 * escaping needed). */
static void render_watch(struct out *o, const struct metrics_snapshot *s)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} rows[] = {
		{ "porthop_runtime_entries", "gauge",
		  "Runtime watch entries held, by origin.",
		  offsetof(struct watchlist_origin_stats, entries) },
		{ "porthop_watch_adds_total", "counter",
		  "Runtime entries added, by origin.",
		  offsetof(struct watchlist_origin_stats, adds) },
		{ "porthop_watch_refreshes_total", "counter",
		  "Adds of an entry the origin held already (TTL refreshed).",
		  offsetof(struct watchlist_origin_stats, refreshes) },
		{ "porthop_watch_deletes_total", "counter",
		  "Runtime entries deleted, by origin.",
		  offsetof(struct watchlist_origin_stats, deletes) },
		{ "porthop_watch_expiries_total", "counter",
		  "Runtime entries that expired, by origin.",
		  offsetof(struct watchlist_origin_stats, expiries) },
		{ "porthop_watch_refused_total", "counter",
		  "Adds refused (bad entry, trusted, a limit, the kernel, the "
		  "state file), by origin.",
		  offsetof(struct watchlist_origin_stats, refused) },
	};

	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		metric(o, rows[r].name, rows[r].type, rows[r].help);
		for (size_t i = 0; i < watchlist_origin_count(s->watch); i++) {
			const struct watchlist_origin_stats *st =
				watchlist_origin(s->watch, i);
			const char *base = (const char *)st + rows[r].off;
			unsigned long long v = r == 0 ? (unsigned long long)
				*(const size_t *)(const void *)base :
				(unsigned long long)
				*(const uint64_t *)(const void *)base;

			fprintf(o->f, "%s{origin=\"%s\"} %llu\n", rows[r].name,
				st->name, v);
		}
	}
	if (s->state_file) {
		scalar(o, "porthop_state_file_syncs_total", "counter",
		       "fsyncs of the runtime entries' state file (a group "
		       "commit syncs once for many changes).",
		       "%llu", (unsigned long long)s->state_syncs);
		scalar(o, "porthop_state_file_commit_failures_total", "counter",
		       "Writes of the state file that failed (the adds they "
		       "carried were refused and taken back).",
		       "%llu", (unsigned long long)s->state_commit_failures);
	}
}

/* The probe event feed (docs/events.md). */
static void render_events(struct out *o, const struct probe_stats *e)
{
	metric(o, "porthop_events_packets_total", "counter",
	       "Packets the kernel logged to porthopd, by kind.");
	for (int k = 0; k < PROBE_KINDS; k++)
		fprintf(o->f, "porthop_events_packets_total{kind=\"%s\"} %llu\n",
			probe_kind_name(k), (unsigned long long)e->packets[k]);
	metric(o, "porthop_events_total", "counter",
	       "Merged probe events emitted, by kind.");
	for (int k = 0; k < PROBE_KINDS; k++)
		fprintf(o->f, "porthop_events_total{kind=\"%s\"} %llu\n",
			probe_kind_name(k), (unsigned long long)e->events[k]);
	metric(o, "porthop_events_dropped_total", "counter",
	       "Events lost, by reason: over the kernel's rate limit, lost "
	       "on the way, unreadable, the merge table full, not appended "
	       "to the Redis stream, not given to the hook.");
	for (int d = 0; d < PROBE_DROPS; d++)
		fprintf(o->f, "porthop_events_dropped_total{reason=\"%s\"} "
			"%llu\n", probe_drop_name(d),
			(unsigned long long)e->dropped[d]);
	scalar(o, "porthop_autowatch_added_total", "counter",
	       "Sources watched by autowatch.", "%llu",
	       (unsigned long long)e->autowatch_added);
	scalar(o, "porthop_autowatch_refreshed_total", "counter",
	       "Autowatch entries whose TTL a stale event started again.",
	       "%llu", (unsigned long long)e->autowatch_refreshed);
	scalar(o, "porthop_autowatch_refused_total", "counter",
	       "Scanners autowatch could not watch (trusted, a limit).",
	       "%llu", (unsigned long long)e->autowatch_refused);
	scalar(o, "porthop_autowatch_evicted_total", "counter",
	       "Autowatch entries deleted to stay within max_entries.",
	       "%llu", (unsigned long long)e->autowatch_evicted);
	scalar(o, "porthop_autowatch_sources", "gauge",
	       "Sources whose closed ports autowatch is counting.", "%zu",
	       e->autowatch_sources);
	scalar(o, "porthop_events_stale_skipped_total", "counter",
	       "Old redirect ports not kept because stale_max were.", "%llu",
	       (unsigned long long)e->stale_skipped);
}

/* Single packet authorisation (docs/knock.md). */
static void render_knock(struct out *o, const struct knock_stats *k)
{
	metric(o, "porthop_knocks_total", "counter",
	       "Knocks read, by result: ok, or why they were refused.");
	for (int r = 0; r < KNOCK_RESULTS; r++)
		fprintf(o->f, "porthop_knocks_total{result=\"%s\"} %llu\n",
			knock_result_name(r),
			(unsigned long long)k->results[r]);
	scalar(o, "porthop_knock_admit_failures_total", "counter",
	       "Verified knocks whose source the kernel did not let in.",
	       "%llu", (unsigned long long)k->admit_failed);
	scalar(o, "porthop_knock_kernel_limit_total", "counter",
	       "Knocks the kernel's rate limit held back (rate_per_second).",
	       "%llu", (unsigned long long)k->kernel_limit);
	scalar(o, "porthop_knock_lost_total", "counter",
	       "Knocks the kernel logged that never reached porthopd.",
	       "%llu", (unsigned long long)k->lost);
	scalar(o, "porthop_knock_keys", "gauge",
	       "Client keys loaded from the keys directory.", "%zu", k->keys);
	scalar(o, "porthop_knock_replay_entries", "gauge",
	       "Nonces of accepted knocks remembered (the replay table).",
	       "%zu", k->nonces);
}

/* The event feed's hook (docs/events.md). */
static void render_hook(struct out *o, const struct metrics_snapshot *s)
{
	scalar(o, "porthop_events_hook_runs_total", "counter",
	       "Runs of the event hook started.", "%llu",
	       (unsigned long long)s->hook_runs);
	scalar(o, "porthop_events_hook_failures_total", "counter",
	       "Runs of the event hook that exited non-zero or were killed.",
	       "%llu", (unsigned long long)s->hook_failures);
	scalar(o, "porthop_events_hook_killed_total", "counter",
	       "Runs of the event hook killed, still running after 10 s.",
	       "%llu", (unsigned long long)s->hook_killed);
}

static void histogram(struct out *o, const char *name, const char *help,
		      const struct metrics_histogram *h)
{
	uint64_t cum = 0;

	metric(o, name, "histogram", help);
	for (size_t i = 0; i < METRICS_BUCKETS; i++) {
		cum += h->counts[i];
		fprintf(o->f, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
			(unsigned long long)cum);
	}
	fprintf(o->f, "%s_bucket{le=\"+Inf\"} %llu\n", name,
		(unsigned long long)h->count);
	fprintf(o->f, "%s_sum %.6f\n", name, h->sum);
	fprintf(o->f, "%s_count %llu\n", name, (unsigned long long)h->count);
}

/* The fleet stream: lag and pending as Redis last said (absent while
 * unknown), the rest counted here. */
static void render_stream(struct out *o, const struct metrics_snapshot *s)
{
	scalar(o, "porthop_stream_connected", "gauge",
	       "1 while following the fleet stream on its primary.",
	       "%d", s->stream_up);
	if (s->stream_lag >= 0)
		scalar(o, "porthop_stream_lag", "gauge",
		       "Entries of the stream this host's group has not read "
		       "yet.", "%lld", (long long)s->stream_lag);
	if (s->stream_pending >= 0)
		scalar(o, "porthop_stream_pending", "gauge",
		       "Entries read by this host's group and not yet "
		       "acknowledged.", "%lld", (long long)s->stream_pending);
	scalar(o, "porthop_stream_read_total", "counter",
	       "Stream entries read (redelivered ones included).",
	       "%llu", (unsigned long long)s->stream_read);
	scalar(o, "porthop_stream_acknowledged_total", "counter",
	       "Stream entries acknowledged once applied (or refused).",
	       "%llu", (unsigned long long)s->stream_acknowledged);
	scalar(o, "porthop_stream_redelivered_total", "counter",
	       "Stream entries read again from the pending list (after a "
	       "restart, a reconnection or a retry).",
	       "%llu", (unsigned long long)s->stream_redelivered);
	scalar(o, "porthop_stream_refused_total", "counter",
	       "Stream entries refused as invalid here (acknowledged).",
	       "%llu", (unsigned long long)s->stream_refused);
	scalar(o, "porthop_stream_replayed_total", "counter",
	       "Signed stream entries refused because their signed time is "
	       "outside the trigger window of their stream ID's time (old "
	       "entries added again; also in refused).",
	       "%llu", (unsigned long long)s->stream_replayed);
	scalar(o, "porthop_stream_snapshot_loads_total", "counter",
	       "Times this host caught up from the fleet's snapshot.",
	       "%llu", (unsigned long long)s->stream_snapshot_loads);
	if (s->stream_delay)
		histogram(o, "porthop_stream_apply_delay_seconds",
			  "From a stream entry's XADD (its ID's time) to its "
			  "apply on this host.", s->stream_delay);
}

char *metrics_render(const struct metrics_snapshot *s)
{
	char *text = NULL;
	size_t len = 0;
	struct out o = { open_memstream(&text, &len) };
	if (o.f == NULL)
		return NULL;
	metric(&o, "porthop_info", "gauge", "porthopd's version and mode.");
	fprintf(o.f, "porthop_info{version=\"%s\",mode=\"%s\"} 1\n",
		s->version, s->mode);
	scalar(&o, "porthop_start_time_seconds", "gauge",
	       "When porthopd started, in seconds since the epoch.",
	       "%.3f", s->start_time);
	scalar(&o, "porthop_shuffles_total", "counter",
	       "Shuffles applied to the kernel.",
	       "%llu", (unsigned long long)s->shuffles);
	scalar(&o, "porthop_shuffle_failures_total", "counter",
	       "Shuffles the kernel refused; the previous rules stayed.",
	       "%llu", (unsigned long long)s->failures);
	scalar(&o, "porthop_last_shuffle_time_seconds", "gauge",
	       "When the last shuffle was applied, in seconds since the epoch.",
	       "%.3f", s->last_shuffle_time);
	histogram(&o, "porthop_apply_duration_seconds",
		  "Time to build and apply one shuffle.", s->apply);
	scalar(&o, "porthop_pairs", "gauge",
	       "(address, port) pairs in the mapping in force.",
	       "%zu", s->pairs);
	scalar(&o, "porthop_watched_addresses", "gauge",
	       "Watched addresses and prefixes.",
	       "%zu", s->watched);
	if (s->redis_connected >= 0)
		scalar(&o, "porthop_redis_connected", "gauge",
		       "1 while subscribed to every channel.",
		       "%d", s->redis_connected);
	metric(&o, "porthop_triggers_received_total", "counter",
	       "Triggers received, by source.");
	for (int i = 0; i < SRC_COUNT; i++)
		fprintf(o.f, "porthop_triggers_received_total{source=\"%s\"} "
			"%llu\n", sources[i], (unsigned long long)s->triggers[i]);
	metric(&o, "porthop_triggers_refused_total", "counter",
	       "Trigger messages refused, by reason.");
	for (int i = 1; i < METRICS_REASONS; i++)
		fprintf(o.f, "porthop_triggers_refused_total{source=\"redis\","
			"reason=\"%s\"} %llu\n",
			auth_result_name((enum auth_result)i),
			(unsigned long long)s->refused[i]);
	scalar(&o, "porthop_reconciliations_total", "counter",
	       "Times the rules in force were found removed or altered and "
	       "applied again.",
	       "%llu", (unsigned long long)s->reconciliations);
	scalar(&o, "porthop_reconcile_checks_total", "counter",
	       "Times reconciliation compared porthop's rules with the "
	       "kernel's after someone else's commit (large maps: each step).",
	       "%llu", (unsigned long long)s->checks);
	scalar(&o, "porthop_reconcile_last_check_seconds", "gauge",
	       "How long the last of those checks took.",
	       "%.6f", s->last_check_seconds);
	if (s->untracking >= 0) {
		scalar(&o, "porthop_unwatched_untracked", "gauge",
		       "1 while untrack_unwatched's rules keep unwatched "
		       "clients out of connection tracking.",
		       "%d", s->untracking);
		scalar(&o, "porthop_untrack_switches_total", "counter",
		       "Times untrack_unwatched \"auto\" turned those rules on "
		       "or off as other tables started or stopped using "
		       "conntrack.",
		       "%llu", (unsigned long long)s->untrack_switches);
	}
	if (s->prestage > 0) {
		scalar(&o, "porthop_prestage_standby_ready", "gauge",
		       "1 while the next mapping is loaded whole in the standby "
		       "maps, so that a shuffle is one small switch.",
		       "%d", s->standby_ready ? 1 : 0);
		scalar(&o, "porthop_prestage_switches_total", "counter",
		       "Shuffles served by switching to the staged mapping.",
		       "%llu", (unsigned long long)s->prestage_switches);
		scalar(&o, "porthop_prestage_fallbacks_total", "counter",
		       "Shuffles that found no staged mapping ready and "
		       "replaced the maps whole.",
		       "%llu", (unsigned long long)s->prestage_fallbacks);
		scalar(&o, "porthop_prestage_last_staging_seconds", "gauge",
		       "How long the last staging took, from its draw to the "
		       "standby loaded whole.",
		       "%.6f", s->last_stage_seconds);
	}
	if (s->watch)
		render_watch(&o, s);
	if (s->events)
		render_events(&o, s->events);
	if (s->events && s->hook)
		render_hook(&o, s);
	if (s->stream)
		render_stream(&o, s);
	if (s->knock)
		render_knock(&o, s->knock);
	if (fclose(o.f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

int metrics_write_file(const char *path, const char *text)
{
	char tmp[4096];
	size_t len = strlen(text);
	int fd, r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0644);
	if (fd < 0)
		return -errno;
	/* 0644 whatever the umask (the unit's is 0077): node_exporter,
	 * another user, reads it. */
	if (fchmod(fd, 0644) < 0 ||
	    write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}
