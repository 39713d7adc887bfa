/*
 * statefile: the runtime watch list on disk, so that runtime entries
 * survive a restart.  One text file, DIR/runtime.state: a header line
 * "porthop-state 1", then one record a line:
 *
 *   + NET ORIGIN ADDED EXPIRES [tcp=P,P,..] [udp=P,..]   put (add, refresh)
 *   - NET ORIGIN                                          delete
 *   ! ORIGIN                                              flush of an origin
 *
 * (ADDED, EXPIRES: epoch seconds; EXPIRES 0: never.)  A snapshot is the
 * header and `+` records; changes since are appended to the same file as a
 * journal, many records to one fdatasync() (group commit), until the
 * journal outgrows the list and a new snapshot replaces the file
 * atomically.
 *
 * A file that cannot be trusted whole (a bad line, a future version, a
 * read error) is never half-replayed: it is moved aside, named in a note,
 * and the list starts empty.  The module does not log and knows nothing
 * of the list itself: records go in as struct watchlist_item values and
 * come out through callbacks.
 */
#ifndef PORTHOP_STATEFILE_H
#define PORTHOP_STATEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "watchlist.h"

#define STATEFILE_NAME "runtime.state"
#define STATEFILE_VERSION 1
/* porthopd's state_directory unless configured. */
#define STATEFILE_DEFAULT_DIR "/var/lib/porthop"
/* A new snapshot is worth writing once the journal holds more records
 * than the list has entries, and at least this many. */
#define STATEFILE_REWRITE_MIN 4096
/* The longest line the loader reads (two full port lists fit). */
#define STATEFILE_LINE_MAX (1u << 20)

struct statefile;

/* Figures since statefile_open(), for status, metrics and tests. */
struct statefile_stats {
	uint64_t syncs;			/* fdatasync()/fsync() of state files */
	uint64_t commits;		/* groups written */
	double commit_ms;		/* spent writing and syncing them,
					 * the loop waiting on the disk */
	uint64_t commit_failures;
	uint64_t rewrites;		/* snapshots written */
	uint64_t journal_records;	/* in the file since its snapshot */
	size_t pending_records;		/* buffered, not yet committed */
	uint64_t file_bytes;		/* the file's committed length */
};

/* Uses the directory dir (created 0700 if missing and its parent exists)
 * and locks it: one porthopd per state directory.  Nothing is read yet.
 * Returns a new object, or NULL with *ret_error (when not NULL) a message
 * naming the directory (the caller frees it). */
struct statefile *statefile_open(const char *dir, char **ret_error);

/* Closes the file and drops what is buffered (not committed); accepts
 * NULL. */
void statefile_free(struct statefile *s);

/* Replays the file through the callbacks, in file order; then the journal
 * continues on it (a missing file is created, empty).  Must be called once,
 * before anything else but statefile_free().
 *
 * A `+` record whose entry has expired (0 < EXPIRES <= now) is replayed as
 * a del: a refresh that has lapsed since ends the entry, whatever an
 * earlier record said.  So del and flush may name entries the caller does
 * not hold (an expired one, one its put refused): that is no error, return
 * 0.  The item passed to put is borrowed for the call only.  A callback
 * returning a negative errno stops the replay, and load returns it (what
 * was replayed before stays with the caller, who discards it).
 *
 * The file is checked whole before anything is replayed.  A bad line, a
 * header of a future version, or a read error: the file is renamed to
 * runtime.state.bad-YYYYMMDDTHHMMSS (UTC of now), nothing is replayed, a
 * fresh file is started, and 0 is returned with *ret_note saying which line
 * was wrong and where the file went.  A last line without its newline (an
 * append cut by a crash) is dropped and cut from the file, also with a
 * note.  Otherwise *ret_note is NULL.  On failure (a negative errno: the
 * file could not be moved aside or created, a callback's error) *ret_note
 * is the message.  *ret_note, when set, is the caller's to free. */
int statefile_load(struct statefile *s, int64_t now,
		   int (*put)(void *arg, const struct watchlist_item *it),
		   int (*del)(void *arg, const struct config_net *net,
			      const char *origin),
		   int (*flush)(void *arg, const char *origin),
		   void *arg, char **ret_note);

/* Buffer one journal record (nothing is written until statefile_commit()).
 * Returns 0, -EINVAL (a bad origin, network, time or port list: what the
 * loader would refuse), -ENOMEM.  The item is only read. */
int statefile_put(struct statefile *s, const struct watchlist_item *it);
int statefile_del(struct statefile *s, const struct config_net *net,
		  const char *origin);
int statefile_flush_origin(struct statefile *s, const char *origin);

/* Whether records are buffered, waiting for a commit. */
bool statefile_pending(const struct statefile *s);

/* Drops the buffered records without writing them. */
void statefile_discard(struct statefile *s);

/* Writes every buffered record and fdatasync()s once.  Returns 0 (also
 * with nothing buffered), or a negative errno (-ENOSPC, -EROFS, -EIO,
 * -EFBIG...) with *ret_error (when not NULL; the caller frees it) a message
 * naming the file: then the file is cut back to its length after the last
 * successful commit, so no part of this group is ever replayed, and the
 * buffer is dropped; the caller undoes those changes in its list.  If even
 * the cut fails, every later commit fails until a statefile_rewrite()
 * succeeds. */
int statefile_commit(struct statefile *s, char **ret_error);

/* Writes a snapshot atomically: a temporary file in the directory, the
 * records, fsync, rename over runtime.state, fsync of the directory; the
 * journal continues on the new file.  each(arg, emit, ctx) must call
 * emit(ctx, item) for every live entry and return emit's value if it is
 * not 0 (watchlist_foreach(list, NULL, emit, ctx) does exactly that).  The
 * snapshot holds what the buffered records say, so they are dropped.
 * Returns 0, or a negative errno with *ret_error (when not NULL) a message;
 * then the old file and the buffer are as they were, except when only the
 * directory's fsync (or reopening the new file) failed: then the new file
 * is in place, the buffer is dropped, and commits fail until a rewrite
 * succeeds. */
int statefile_rewrite(struct statefile *s,
		      int (*each)(void *arg,
				  int (*emit)(void *ctx,
					      const struct watchlist_item *it),
				  void *ctx),
		      void *arg, char **ret_error);

/* Whether a snapshot is due: the journal's records since the last one
 * outnumber live (the caller's entry count now) and STATEFILE_REWRITE_MIN. */
bool statefile_should_rewrite(const struct statefile *s, size_t live);

/* The file's path (borrowed, lives as long as s). */
const char *statefile_path(const struct statefile *s);

/* Fills *ret with s's figures. */
void statefile_get_stats(const struct statefile *s,
			 struct statefile_stats *ret);

#endif
