/*
 * fleet: the pure parts of the fleet feed (see docs/fleet.md), shared by
 * porthopd's stream consumer (stream, core_fleet) and the publishers
 * (fleetpub): what a stream entry says and how it is written, stream IDs,
 * the snapshot's format and what converging to it changes, and which
 * outcome of an entry is acknowledged.  No I/O, no clock: the time is an
 * argument.
 *
 * A stream entry has one field, "m": an operation, as JSON, signed with
 * auth_sign when a trigger key is configured:
 *
 *   {"op": "watch", "address": A, "origin": O, "expires": EPOCH|0, "ts": T}
 *   {"op": "unwatch", "address": A, "origin": O, "ts": T}
 *   {"op": "trigger", "address": A?, "ts": T}
 *
 * Expiry is absolute (epoch seconds, 0: never), so hosts that apply an
 * entry at different times agree on when it ends.  A host holds a fleet
 * entry under the local origin "fleet." O, apart from its own detectors'.
 *
 * The snapshot is a hash, field NET, value a JSON object {O: EXPIRES},
 * plus a key holding the ID of the last entry it includes; the publishers'
 * script (fleet_script) changes both with the XADD, atomically.
 */
#ifndef PORTHOP_FLEET_H
#define PORTHOP_FLEET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "watchlist.h"

/* An operation's JSON is at most this long (before signing). */
#define FLEET_OP_MAX 1024
/* The prefix of the local origin of fleet entries. */
#define FLEET_ORIGIN_PREFIX "fleet."
#define FLEET_ORIGIN_MAX (WATCHLIST_ORIGIN_MAX - 6)
/* A stream ID's text: "MS-SEQ", both 64-bit. */
#define FLEET_ID_MAX 48
/* An address or prefix's text. */
#define FLEET_NET_MAX 64

enum fleet_kind { FLEET_TRIGGER, FLEET_WATCH, FLEET_UNWATCH };

struct fleet_op {
	enum fleet_kind kind;
	char address[FLEET_NET_MAX];		/* "": a trigger of every entry */
	char origin[FLEET_ORIGIN_MAX + 1];	/* watch, unwatch */
	int64_t expires;			/* watch: epoch s; 0: never */
	int64_t ts;				/* when it was published */
};

/* Writes op as compact JSON into a malloc'ed *ret (the caller frees it).
 * Returns 0, -EINVAL (an origin or address that decode would refuse), or
 * -ENOMEM. */
int fleet_op_encode(const struct fleet_op *op, char **ret);

/* Reads an operation (already verified, when signed).  Returns 0 with
 * *ret filled, or -EINVAL with why (what is wrong and what is expected;
 * no outside bytes) written to why[0..whylen). */
int fleet_op_decode(const char *text, size_t len, struct fleet_op *ret,
		    char *why, size_t whylen);

/* A control socket's watch_add or watch_del request ({"command",
 * "origin", "entries": [{"address", "ttl"?}]}, as the adapters build
 * them) as fleet operations: a watch's TTL becomes the absolute expiry
 * now + ttl (none: 0, never).  0 with *ret (malloc'ed, *ret_n of them;
 * the caller frees), -EINVAL (not such a request: an unknown command, an
 * origin or address too long for the fleet, a TTL not a positive whole
 * number) or -ENOMEM. */
int fleet_ops_from_request(const json_t *req, int64_t now,
			   struct fleet_op **ret, size_t *ret_n);

/* "fleet." origin into buf; -ENAMETOOLONG if it does not fit. */
int fleet_local_origin(const char *origin, char *buf, size_t len);
/* The fleet origin of a local one ("fleet.x" -> "x"), or NULL. */
const char *fleet_origin_of(const char *local);

/* Stream IDs. */
struct fleet_id {
	uint64_t ms, seq;
};
/* "MS-SEQ" or "MS" (SEQ 0).  0 or -EINVAL. */
int fleet_id_parse(const char *s, struct fleet_id *ret);
int fleet_id_cmp(const struct fleet_id *a, const struct fleet_id *b);
char *fleet_id_format(const struct fleet_id *id, char *buf, size_t len);

/* Whether a signed op was written to the stream near the time it was
 * signed: its signed time (op->ts, the publisher's clock) within
 * window_s seconds of its stream ID's time (id->ms, Redis' clock when
 * XADD gave it that ID; IDs are assigned at XADD and only grow).  An old
 * signed entry copied into the stream again gets a new ID, so it fails
 * this.  An ID more than window_s past now (this host's clock, unix
 * seconds) was not Redis' clock: anyone who may XADD can give an entry
 * an explicit ID in the future, and every later entry then gets one of
 * that time; such an ID's time counts as now.  0, or -ESTALE with why
 * (the two times, what is expected) written to why[0..whylen). */
int fleet_check_time(const struct fleet_op *op, const struct fleet_id *id,
		     int64_t now, unsigned window_s, char *why,
		     size_t whylen);

/* Whether a host must load the snapshot before following the stream:
 * its group is new, or entries it never read have been trimmed (the
 * stream had more entries added than it holds, and the group last read
 * before the first entry left).  Conservative: a group that read the entry
 * just before the first is told to load it too, which costs a read. */
bool fleet_need_snapshot(bool group_exists, const struct fleet_id *last_read,
			 uint64_t entries_added, uint64_t length,
			 const struct fleet_id *first_entry);

/* Whether a host following the stream missed entries that were trimmed
 * before it read them: it has been given the stream's last entry
 * (last_delivered equals last_generated) and Redis still counts entries
 * it never read (lag > 0: Redis 7 counts the entries a group was given,
 * so trimmed ones stay in its lag).  lag < 0: unknown, no gap said. */
bool fleet_gap(const struct fleet_id *last_delivered,
	       const struct fleet_id *last_generated, int64_t lag);

/* What becomes of an entry, once applied (or refused). */
enum fleet_verdict {
	FLEET_ACK,		/* done: acknowledge */
	FLEET_ACK_REFUSED,	/* invalid here: acknowledge, counted */
	FLEET_RETRY,		/* not applied (the kernel, the state file,
				 * memory): leave pending, retry */
};
enum fleet_verdict fleet_verdict(enum core_watch_status st);

/* How a read's entries are applied: runs of consecutive entries that
 * reach the core as one change (one kernel transaction, one state-file
 * commit), in stream order. */
enum fleet_run_kind {
	FLEET_RUN_SKIP,		/* not an operation (refused, trimmed): one
				 * entry, decided already */
	FLEET_RUN_TRIGGER,	/* one trigger: it ends a run, so that it
				 * sees the watches before it applied */
	FLEET_RUN_ADD,		/* live watches of one origin: one
				 * core_watch_add */
	FLEET_RUN_DEL,		/* unwatches and watches whose time is over,
				 * of one origin: one core_watch_del */
};

/* What ops[0] becomes at now (ok false: not an operation). */
enum fleet_run_kind fleet_run_kind_of(const struct fleet_op *op, bool ok,
				      int64_t now);

/* The run that starts at ops[0] among the n (> 0) entries that follow
 * (ok[i] false: entry i is not an operation): its kind in *ret_kind, its
 * length (1 to max) returned.  An add or delete run takes the entries
 * that follow while they are of its kind and origin; an add run also
 * ends before an address it holds already (core_watch_add refuses a
 * request that names one twice; a refresh in the same read comes in the
 * next run, so the later expiry wins as in stream order).  Skipped
 * entries and triggers are runs of one. */
size_t fleet_run(const struct fleet_op *ops, const bool *ok, size_t n,
		 int64_t now, size_t max, enum fleet_run_kind *ret_kind);

/* One (network, origin) of the snapshot, or of the local list (origin
 * without the "fleet." prefix). */
struct fleet_item {
	char net[FLEET_NET_MAX];
	char origin[FLEET_ORIGIN_MAX + 1];
	int64_t expires;	/* epoch seconds; 0: never */
};

/* Appends the items of one snapshot field (NET, {"O": EXPIRES, ...}) that
 * are still live at now to *items (grown with realloc; *n, *cap).
 * Returns the number appended, or -EINVAL (a value that is not such an
 * object: nothing appended) or -ENOMEM. */
int fleet_snap_parse(const char *net, const char *value, size_t vlen,
		     int64_t now, struct fleet_item **items, size_t *n,
		     size_t *cap);

/* What converging the local fleet entries (local) to the snapshot (snap)
 * takes: the snapshot's items missing or with another expiry locally go
 * to *ret_add, local items the snapshot does not hold to *ret_del (both
 * malloc'ed, sorted by origin then network; the caller frees them).  Both
 * inputs are sorted in place.  0 or -ENOMEM. */
int fleet_diff(struct fleet_item *local, size_t nlocal, struct fleet_item *snap,
	       size_t nsnap, struct fleet_item **ret_add, size_t *ret_nadd,
	       struct fleet_item **ret_del, size_t *ret_ndel);

/* The publishers' script: XADD every operation (MAXLEN ~), update the
 * snapshot and its position, prune a few expired snapshot entries, all at
 * once.  KEYS: stream, snapshot hash, position key, expiry sorted set.
 * ARGV: maxlen, then per operation: kind ("w", "u", "t"), network,
 * origin, expires, message.  Returns the entries' IDs. */
extern const char fleet_script[];
/* Reads the snapshot and its position at once.  KEYS: snapshot hash,
 * position key.  Returns {HGETALL, position or false}. */
extern const char fleet_snapshot_script[];

/* The stream's and its groups' figures at once.  KEYS: stream.  Returns
 * {XINFO STREAM, XINFO GROUPS}, or nil when there is no stream. */
extern const char fleet_info_script[];

/* The keys next to stream (written into buf): "<stream>:snapshot",
 * "<stream>:snapshot:pos", "<stream>:snapshot:expiry". */
enum fleet_key { FLEET_KEY_SNAPSHOT, FLEET_KEY_POS, FLEET_KEY_EXPIRY };
char *fleet_key(const char *stream, enum fleet_key k, char *buf, size_t len);

#endif
