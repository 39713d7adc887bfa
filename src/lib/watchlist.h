/*
 * watchlist: the runtime watch list's bookkeeping.  Entries keyed by
 * (address or prefix, origin), each with an expiry; how many origins hold
 * each network; the expiry order; per-origin counters.  Pure: no clock (the
 * caller passes `now`), no kernel, no files.  The core decides what a
 * change means for the mapping (a network's first holder: watch it; its
 * last holder gone: stop).
 */
#ifndef PORTHOP_WATCHLIST_H
#define PORTHOP_WATCHLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "diag.h"

#define WATCHLIST_ORIGIN_MAX 64
#define WATCHLIST_DEFAULT_MAX 1000000
/* Origins with their own counters at most (more are refused). */
#define WATCHLIST_MAX_ORIGINS 1024

struct watchlist;

/* One runtime entry, as the list holds it (borrowed; valid until the list
 * next changes). */
struct watchlist_item {
	struct config_net net;
	char origin[WATCHLIST_ORIGIN_MAX + 1];
	int64_t added;		/* epoch seconds, first added */
	int64_t expires;	/* epoch seconds; 0: never */
	/* Ports of each protocol this entry leaves alone (sorted, distinct). */
	const uint16_t *ignore[CONFIG_NPROTO];
	size_t nignore[CONFIG_NPROTO];
};

/* Per-origin figures for status and metrics. */
struct watchlist_origin_stats {
	char name[WATCHLIST_ORIGIN_MAX + 1];
	size_t entries;		/* live now */
	uint64_t adds;		/* new entries */
	uint64_t refreshes;	/* adds of an entry it held already */
	uint64_t deletes;
	uint64_t expiries;
	uint64_t refused;	/* adds refused (counted by the caller) */
};

/* max_entries: how many entries at most (over all origins).  NULL if out
 * of memory. */
struct watchlist *watchlist_new(size_t max_entries);
void watchlist_free(struct watchlist *w);	/* accepts NULL */

/* Whether name is a valid origin: [a-z0-9_.-]{1,64}. */
bool watchlist_origin_valid(const char *name);

/* Adds (net, origin) with expires (0: never), or refreshes it (new expiry
 * and ignore lists).  The ignore lists are copied; they must be sorted and
 * distinct (-EINVAL otherwise).  Returns 1 (new entry), 0 (refreshed), -E2BIG (max_entries
 * reached, or WATCHLIST_MAX_ORIGINS origins), -EINVAL (bad origin),
 * -ENOMEM.  Counts adds and refreshes per origin. */
int watchlist_put(struct watchlist *w, const struct config_net *net,
		  const char *origin, int64_t added, int64_t expires,
		  const uint16_t *const ignore[CONFIG_NPROTO],
		  const size_t nignore[CONFIG_NPROTO]);

/* Whether (net, origin) is held: watchlist_get without building an item,
 * for checks over many entries before a change. */
bool watchlist_has(const struct watchlist *w, const struct config_net *net,
		   const char *origin);

/* Removes (net, origin).  0, or -ENOENT.  Counts a delete. */
int watchlist_del(struct watchlist *w, const struct config_net *net,
		  const char *origin);

/* The entry (net, origin), or NULL (also if out of memory).  Each distinct
 * entry looked up (here or by watchlist_latest) between two changes is
 * built once, in memory the list holds until its next change. */
const struct watchlist_item *watchlist_get(const struct watchlist *w,
					   const struct config_net *net,
					   const char *origin);

/* How many origins hold net now (0: none). */
size_t watchlist_holders(const struct watchlist *w,
			 const struct config_net *net);

/* The entry of net that was put last (whose ignore lists apply), or NULL
 * if nobody holds net. */
const struct watchlist_item *watchlist_latest(const struct watchlist *w,
					      const struct config_net *net);

/* Removes every entry of origin, calling fn (may be NULL) for each before
 * it goes.  Returns how many; each counted as a delete. */
size_t watchlist_flush(struct watchlist *w, const char *origin,
		       void (*fn)(void *arg, const struct watchlist_item *it),
		       void *arg);

/* Removes every entry with 0 < expires <= now, calling fn for each before
 * it goes (counted as an expiry); at most `max` of them (0: no limit).
 * Returns how many. */
size_t watchlist_expire(struct watchlist *w, int64_t now, size_t max,
			void (*fn)(void *arg, const struct watchlist_item *it),
			void *arg);

/* The earliest expiry among entries (epoch seconds), or 0 if none
 * expires. */
int64_t watchlist_next_expiry(const struct watchlist *w);

/* Entries now, over all origins. */
size_t watchlist_count(const struct watchlist *w);

/* Calls fn for every entry (of origin only, if origin is not NULL), in a
 * stable order (by network, then origin).  Stops early and returns fn's
 * value if it returns non-zero; else 0.  fn must not change the list. */
int watchlist_foreach(const struct watchlist *w, const char *origin,
		      int (*fn)(void *arg, const struct watchlist_item *it),
		      void *arg);

/* Distinct networks held (by any origin), in the same order, through fn;
 * item is the latest entry of each. */
int watchlist_foreach_net(const struct watchlist *w,
			  int (*fn)(void *arg, const struct watchlist_item *it),
			  void *arg);

/* Per-origin counters: how many origins, and the i-th (in name order).
 * Origins stay listed once seen (their counters are history). */
size_t watchlist_origin_count(const struct watchlist *w);
const struct watchlist_origin_stats *watchlist_origin(const struct watchlist *w,
						      size_t i);
/* Counts a refused add for origin (if it is valid; creates its row). */
void watchlist_count_refused(struct watchlist *w, const char *origin);

/* Whether net may be watched at runtime: 0, or -EINVAL with a one-line
 * reason in why (may be NULL): a prefix shorter than min_len_v4 or
 * min_len_v6 for its family, the unspecified address, multicast, the
 * IPv4 broadcast address, IPv4-mapped IPv6 (or a prefix covering one of
 * them).  Loopback is allowed. */
int watchlist_check_net(const struct config_net *net, unsigned min_len_v4,
			unsigned min_len_v6, char *why, size_t why_len);

#endif
