/*
 * core_private: what core.c and core_reload.c share, and nothing else
 * includes: the core's state and the helpers both sides use.
 */
#ifndef PORTHOP_CORE_PRIVATE_H
#define PORTHOP_CORE_PRIVATE_H

#include <stdarg.h>
#include <time.h>

#include "core.h"
#include "instance.h"
#include "knock.h"
#include "log.h"
#include "statefile.h"
#include "trigger.h"
#include "watchlist.h"

/* Refusals are counted by enum auth_result, shown by metrics' reasons. */
_Static_assert(METRICS_REASONS == AUTH_BUSY + 1,
	       "metrics' refusal reasons and enum auth_result disagree");

/* Lines a sender can cause: at most this many per kind every 10 s. */
#define LOG_BURST 5
#define LOG_INTERVAL_S 10

struct core {
	const char *config_path;
	struct nftio *io;
	struct engine *engine;
	struct core_hooks hooks;
	struct trigger_queue *queue;		/* what the pending shuffle
						 * serves */
	struct timespec last_shuffle;		/* CLOCK_MONOTONIC */
	struct core_counters counters;
	struct metrics_histogram apply_hist;	/* build + apply, seconds */
	double start_time;			/* epoch seconds */
	struct auth *auth;			/* NULL: triggers unsigned */
	struct instance *claim;			/* held while it serves its table */
	const char *run_dir;			/* where the claim's lock is */
	struct config *pending_reload;		/* checked, waiting out
						 * min_shuffle_interval_ms */
	/* Whatever a sender controls logs through a limit. */
	struct log_ratelimit refusal_log, unknown_log, failure_log, watch_log;
	/* The runtime watch list (core_watch.c): the list, its state file
	 * (NULL: memory only), what the next commit would take back and
	 * who waits for it. */
	struct watchlist *watchlist;
	struct statefile *state;
	struct watch_undo *undo;
	size_t nundo, cap_undo;
	struct watch_waiter *waiters;
	size_t nwaiters, cap_waiters;
	bool commit_armed;
	bool state_stale;	/* a commit failed: the next one rewrites */
	bool state_broken;	/* the state directory was unusable at start:
				 * adds are refused */
	bool sweep;		/* a removal failed: look for entries nobody
				 * holds */
	/* The probe event feed (core_events.c); NULL: off.  Its figures
	 * outlive it (a reload that turns it off and on again). */
	struct core_events *events;
	struct probe_stats ev_stats;
	struct log_ratelimit autowatch_log;
	/* Single packet authorisation (core_knock.c); NULL: off.  Its
	 * figures outlive it, as the feed's. */
	struct knock_verifier *knock;
	struct knock_stats knock_stats;
	uint64_t knock_kernel_last;		/* knock_over as last read */
	struct log_ratelimit knock_log;
	struct log_ratelimit stage_log;		/* prestage's failures */
};

/* One line, formatted, to log (as the log hook). */
void core_vsay(void (*log)(void *, enum core_level, const char *),
	       void *arg, enum core_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
/* One line to c's log hook (debug lines only when debug is on). */
void core_say(struct core *c, enum core_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define debug(c, ...) core_say(c, CORE_DEBUG, __VA_ARGS__)
#define info(c, ...) core_say(c, CORE_INFO, __VA_ARGS__)
#define warn(c, ...) core_say(c, CORE_WARN, __VA_ARGS__)

/* After an apply: its duration observed, a table found gone said. */
void core_observe(struct core *c);
/* After a trigger's (or a reload's, what) apply: someone else's change put
 * back first is said. */
void core_report_repair(struct core *c, uint64_t repairs_before,
			const char *what);
/* After a start or reload: whether unwatched clients are tracked, and
 * why. */
void core_report_untrack_state(struct core *c);
/* Arms the pending shuffle (see trigger.h) through the schedule hook. */
void core_schedule(struct core *c);
/* The verifier of cfg's trigger key (core_reload.c). */
int core_prepare_auth(struct core *c, const struct config *cfg,
		      struct auth **ret);
/* The queued reload, checked again and applied (core_reload.c).
 * Returns 0, or -1 (refused, said; the reload is dropped). */
int core_apply_pending_reload(struct core *c, char **ret_error);


/* core_watch.c and core_watch_state.c: the runtime watch list's shared
 * parts. */
/* A change since the last commit, undone if the commit fails. */
struct watch_undo {
	struct config_net net;
	char origin[WATCHLIST_ORIGIN_MAX + 1];
	bool was_new;			/* else a refresh: the old times */
	int64_t added, expires;
	uint16_t *ignore[CONFIG_NPROTO];	/* ... and the old lists */
	size_t nignore[CONFIG_NPROTO];
};

/* A request whose reply waits for the commit. */
struct watch_waiter {
	core_watch_done_fn done;
	void *arg;
	struct core_watch_result res;
	bool adds;			/* undone (refused) if the commit fails */
};

/* Deletes pairs (net, origin) that exist; the kernel first. */
struct del_list {
	struct config_net *nets;	/* per pair */
	const char **origins;
	size_t n, cap;
};

int64_t core_watch_now(void);
void core_watch_error(struct core_watch_result *res, enum core_watch_status st,
		      const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* What the next commit could take back is no more. */
void core_watch_undo_clear(struct core *c);
/* The next expiry, to the timer hook. */
void core_watch_arm_expiry(struct core *c);
/* Runtime entries nobody holds any more, taken out of the mapping in one
 * transaction.  On failure they stay in force and a later sweep retries. */
int core_watch_unwatch(struct core *c, const struct config_net *nets,
		       size_t n, char **ret_error);
int core_watch_del_push(struct del_list *l, const struct config_net *net,
			const char *origin);
/* One line per change, through a limit: a bulk add is one line. */
void core_watch_say(struct core *c, const char *what, size_t n,
		    const char *one, const char *origin);

/* core_watch_state.c: the list and the state file restored into cfg (at
 * core_new); the runtime entries put into cfg (before a reload). */
int core_watch_restore(struct core *c, struct config *cfg);
int core_watch_merge(struct core *c, struct config *cfg, size_t *ret_no_room);
/* Frees the list, the state file and the waiters (answered: stopping). */
void core_watch_free(struct core *c);

/* core_events.c: the feed made, remade or dropped to match the
 * configuration in force (at core_new, after a reload); freed. */
int core_events_setup(struct core *c);
void core_events_free(struct core *c);
/* The packets counted by the named counter of porthop's table (one
 * libnftables listing): 0, or -ENOENT if it cannot be read.  A counter
 * read again: *total grows by what it counted since *last (all of it if
 * the table was defined anew, its counter at 0 again). */
int core_table_counter(struct core *c, const char *name, uint64_t *ret);
void core_counter_advance(uint64_t now, uint64_t *last, uint64_t *total);

/* core_knock.c: the verifier made or dropped to match the configuration
 * in force, its keys read again (at core_new, after every reload);
 * freed. */
int core_knock_setup(struct core *c);
void core_knock_free(struct core *c);

#endif
