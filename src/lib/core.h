/*
 * core: porthopd's policy, without its event loop.  What a trigger, a
 * Redis message, a reload, a reconciliation or a stop does; when the
 * pending shuffle may run; what is said about it.  porthopd.c owns the
 * loop, the timers, the Redis subscription and the control socket and
 * wires them to this; unit tests drive it against the recorder.
 *
 * The core does not log: every line goes through the log hook, already
 * escaped where a value came from outside, and limited where a sender
 * could cause it.
 */
#ifndef PORTHOP_CORE_H
#define PORTHOP_CORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "bus.h"
#include "config.h"
#include "engine.h"
#include "metrics.h"
#include "nftio.h"
#include "probe.h"
#include "watchlist.h"

struct core;

enum core_level { CORE_DEBUG, CORE_INFO, CORE_WARN };

/* What a reload changed that the caller owns (bits). */
enum { CORE_CHANGED_REDIS = 1 };

struct core_hooks {
	void *arg;
	/* One log line. */
	void (*log)(void *arg, enum core_level level, const char *line);
	/* Arm the pending shuffle to run in wait_ms (0: as soon as the loop
	 * can), unless it is armed already; when it runs, call
	 * core_run_pending. */
	void (*schedule)(void *arg, long long wait_ms);
	/* A reload was applied (changes: CORE_CHANGED_* bits): rewire
	 * timers, the subscription, the control socket.  May be NULL. */
	void (*reloaded)(void *arg, unsigned changes);
	/* The kernel is being changed by a reload (begin), or no longer
	 * (!begin, applied or not): systemd's RELOADING=1, then READY=1.
	 * May be NULL. */
	void (*reloading)(void *arg, bool begin);
	/* Adds the caller's parts to a status reply (Redis, the control
	 * socket, the timer).  May be NULL. */
	void (*status)(void *arg, json_t *reply);
	/* Fills the caller's parts of a metrics snapshot.  May be NULL. */
	void (*metrics)(void *arg, struct metrics_snapshot *m);
	/* Runtime watch list: call core_watch_commit once the events ready
	 * now are served (the group commit of the state file), unless
	 * armed already.  May be NULL (then nothing is waited for). */
	void (*commit)(void *arg);
	/* Call core_watch_expire at epoch second `when` (0: disarm),
	 * replacing any earlier time.  May be NULL. */
	void (*expiry)(void *arg, int64_t when);
	/* A merged probe event (json: its text, len bytes), for the log,
	 * the Redis stream and the hook; returns the drops it caused
	 * (PROBE_DROP_STREAM, PROBE_DROP_HOOK) as bits (1 << reason).
	 * May be NULL. */
	unsigned (*event)(void *arg, const struct probe_event *e,
			  const char *json, size_t len);
	/* prestage: arm core_stage_step to run when the loop has nothing
	 * more urgent to do (a low priority), unless armed already.  May be
	 * NULL (then nothing is staged: every trigger replaces the maps). */
	void (*stage)(void *arg);
};

/* Counters of what arrived, for status and metrics. */
struct core_counters {
	uint64_t triggers;			/* every kind, every source */
	uint64_t by_source[SRC_COUNT];
	uint64_t unknown_addresses;		/* address triggers naming
						 * nobody */
	uint64_t refused[METRICS_REASONS];	/* by enum auth_result */
	uint64_t watch_refused;			/* watch messages refused */
};

/* Loads and checks the configuration at path as at start-up and on
 * reload (a kernel dry run through io), sending every diagnostic to log
 * (arg as for the hook).  Returns the configuration, or NULL after the
 * errors (the first also in *ret_error when given; the caller frees
 * it). */
struct config *core_load(struct nftio *io, const char *path,
			 void (*log)(void *arg, enum core_level level,
				     const char *line),
			 void *arg, char **ret_error);

/* Takes ownership of cfg (freed on failure too); borrows io and
 * config_path, which must outlive the core; copies hooks.  NULL if out of
 * memory. */
struct core *core_new(struct nftio *io, struct config *cfg,
		      const char *config_path, const struct core_hooks *hooks);
/* Commits what waits for the state file and tells its requesters (their
 * done callbacks), calling none of the hooks but log: the loop's timers
 * may be gone. */
void core_free(struct core *c);

/* Where the claim that one porthopd serves the table is kept (borrowed;
 * default RUNDIR_PATH, which only root writes): tests give their own. */
void core_set_run_dir(struct core *c, const char *dir);

/* Native mode: map updates through libnftables' JSON parser. */
void core_set_json_elements(struct core *c, bool on);

/* The start-up shuffle, which covers the host.  0, or -1 (logged). */
int core_start(struct core *c);

/* A trigger for every entry (timer, signal, reconnection). */
void core_trigger(struct core *c, enum metrics_source source);

/* A trigger naming an address: the watched entry that covers it joins the
 * pending shuffle.  -ENOENT (counted, logged through a limit) if none
 * does. */
int core_trigger_address(struct core *c, const char *ip,
			 enum metrics_source source);

/* A Redis message: verified when a trigger key is configured (refusals
 * counted, logged through a limit), then a trigger; a payload that is
 * exactly {"address": "..."} names an address; one with "op" ("watch",
 * "unwatch") is a runtime watch entry (origin "redis" unless named). */
void core_message(struct core *c, const char *channel, const char *payload,
		  size_t len);

/* How long the pending shuffle must still wait to keep
 * min_shuffle_interval_ms; 0: it may run now. */
long long core_wait_ms(const struct core *c);

/* Runs the pending shuffle (nothing pending: 0).  Returns 0, or -1 with
 * *ret_error set if given (the caller frees it). */
int core_run_pending(struct core *c, char **ret_error);

/* Reloads the configuration file (asked for by source): refused as a
 * whole (-EINVAL: the configuration; -EIO: the kernel; -ENOMEM) with the
 * running one left in force, or applied (0), then the reloaded hook.  A
 * reload is a shuffle of every entry: inside min_shuffle_interval_ms of
 * the last one it is checked now and applied when the pending shuffle
 * runs (1), a later reload replacing it.  *ret_error as above. */
int core_reload(struct core *c, enum metrics_source source, char **ret_error);

/* The Redis subscription's news (see bus.h): said, and on a reconnection
 * (connections > 1) one catch-up shuffle if shuffle_on_reconnect (pub/sub
 * loses what was published meanwhile). */
void core_redis_event(struct core *c, enum bus_event ev, const char *detail,
		      unsigned retry_ms, uint64_t connections);

/* How often the untrack "auto" watcher's quick look runs (ms), 0 for
 * never (template mode, untrack_unwatched true or false). */
unsigned core_untrack_watch_ms(const struct core *c);

/* The periodic check of our rules (see engine_reconcile) and the untrack
 * "auto" watcher (see engine_untrack_check: all, or the quick look). */
void core_reconcile(struct core *c);
void core_untrack_look(struct core *c, bool all);

/* prestage: loads one chunk of the next mapping (see engine_stage_step);
 * returns true if more is left (arm the stage hook again).  The core
 * arms the hook itself after every apply and reconciliation. */
bool core_stage_step(struct core *c);

/* A clean stop: what happens to the rules (see engine_stop). */
void core_stop(struct core *c);

/* The metrics (the caller's parts through the metrics hook). */
void core_metrics_snapshot(struct core *c, struct metrics_snapshot *m);

/* The one-line status systemd shows (written into buf). */
const char *core_status_line(struct core *c, char *buf, size_t len);

/*
 * The runtime watch list (native mode; see docs/watch.md).  Entries are
 * keyed by (address or prefix, origin); a network is watched while the
 * configuration lists it or any origin holds it.
 */
struct core_watch_req {
	const char *address;			/* "a.b.c.d" or "net/len" */
	int64_t ttl;				/* seconds; 0: until deleted */
	int64_t expires;			/* epoch seconds: when set,
						 * instead of ttl (fleet
						 * entries: every host the
						 * same second) */
	const uint16_t *ignore[CONFIG_NPROTO];	/* sorted, distinct; NULL */
	size_t nignore[CONFIG_NPROTO];
};

enum core_watch_status {
	CORE_WATCH_OK,
	CORE_WATCH_INVALID,	/* bad input, trusted, a limit */
	CORE_WATCH_MODE,	/* template mode */
	CORE_WATCH_NOT_FOUND,	/* a delete that matched nothing */
	CORE_WATCH_STORAGE,	/* the state file could not be written */
	CORE_WATCH_KERNEL,	/* the kernel refused the change */
	CORE_WATCH_MEMORY,
};

struct core_watch_result {
	enum core_watch_status status;
	size_t added, refreshed, deleted;
	size_t entries;		/* runtime entries held after the change */
	bool durable;		/* on disk (no state file: false) */
	char error[512];	/* status != OK: what and where */
};

/* Called once with the result when the change is on disk (or could not
 * be: an add is then taken back). */
typedef void (*core_watch_done_fn)(void *arg,
				   const struct core_watch_result *res);

/* Adds or refreshes (address, origin) for every req, all or nothing: the
 * networks not watched yet get fresh mappings in one transaction before
 * this returns.  Returns 0 with *res filled (refused, or complete with no
 * state file), or 1: done(arg, result) comes after the group commit
 * (done may be NULL). */
int core_watch_add(struct core *c, const char *origin,
		   const struct core_watch_req *req, size_t n,
		   struct core_watch_result *res, core_watch_done_fn done,
		   void *arg);
/* Deletes the entries of origin (NULL: of every origin) for each
 * address; networks nobody holds any more leave the mapping in one
 * transaction.  Returns as core_watch_add; CORE_WATCH_NOT_FOUND when
 * nothing matched.  A delete stays done when the state file cannot be
 * written (res.durable false). */
int core_watch_del(struct core *c, const char *origin,
		   const char *const *addr, size_t n,
		   struct core_watch_result *res, core_watch_done_fn done,
		   void *arg);
/* Deletes every entry of origin (none: 0 deleted, no error). */
int core_watch_flush(struct core *c, const char *origin,
		     struct core_watch_result *res, core_watch_done_fn done,
		     void *arg);
/* The group commit (see the commit hook), and the expiry timer. */
void core_watch_commit(struct core *c);
void core_watch_expire(struct core *c);
/* The list (NULL before core_new finished), for list, status, metrics. */
const struct watchlist *core_watchlist(const struct core *c);
struct statefile_stats;
void core_watch_stats(const struct core *c, struct statefile_stats *ret);

/*
 * The probe event feed (core_events.c; docs/events.md): packets the
 * kernel logged become events, merged over events.merge_ms, kept in a
 * ring, handed to the event hook; probes count towards autowatch.
 */

/* One packet from the nflog group (see pktlog.h). */
void core_event_packet(struct core *c, const char *prefix,
		       const uint8_t *pkt, size_t len);
/* n events lost before they reached the core, and why. */
void core_event_lost(struct core *c, enum probe_drop why, uint64_t n);
/* Emits the merged events whose window closed; call it a few times a
 * second while events are on. */
void core_events_tick(struct core *c);
/* Whether the feed is on (events or autowatch configured). */
bool core_events_on(const struct core *c);
/* The figures, the kernel's rate-limit counter read first (one
 * libnftables call). */
const struct probe_stats *core_event_stats(struct core *c);
/* The ring's events after seq `after`, at most max, to fn; the newest
 * seq in *ret_last.  0 events when the feed is off. */
size_t core_events_since(const struct core *c, uint64_t after, size_t max,
			 void (*fn)(void *arg, const struct probe_event *e),
			 void *arg, uint64_t *ret_last);

/* What the control commands (command.h) read. */
const struct config *core_config(const struct core *c);
const struct engine *core_engine(const struct core *c);
const struct core_counters *core_counters(const struct core *c);
const char *core_config_path(const struct core *c);
const struct core_hooks *core_hooks(const struct core *c);
bool core_authenticated(const struct core *c);
double core_start_time(const struct core *c);	/* epoch seconds */

/* Derived ports (core_derive.c): moves the keyed entries' slots if a
 * boundary has passed (one transaction), says what failed; returns the
 * milliseconds until it should be called again. */
long core_derive_tick(struct core *c);

/* Single packet authorisation (docs/knock.md, core_knock.c). */
/* One packet from the knock's nflog group: verified, its source (or the
 * address inside) let in for trust_seconds; a refusal counted by reason
 * and logged through a limit. */
void core_knock_packet(struct core *c, const char *prefix,
		       const uint8_t *pkt, size_t len);
/* n knocks the kernel logged that never reached porthopd. */
void core_knock_lost(struct core *c, uint64_t n);
/* Whether knocks are on (porthopd.knock configured). */
bool core_knock_on(const struct core *c);
/* The figures (keys and replay entries as of now). */
const struct knock_stats *core_knock_stats(struct core *c);

#endif
