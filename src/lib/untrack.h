/*
 * untrack: untrack_unwatched's rules, and the "auto" watcher behind them.
 * Whether unwatched clients belong out of connection tracking (always,
 * never, or while no other table uses conntrack), who uses it when
 * someone does, the rules switched on or off in a transaction of their
 * own, and the generation mark that tells the watcher whether anyone
 * committed since it last looked.
 */
#ifndef PORTHOP_UNTRACK_H
#define PORTHOP_UNTRACK_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "nftio.h"

#define UNTRACK_WHO_MAX 192

struct untrack;

/* Borrows io.  NULL if out of memory. */
struct untrack *untrack_new(struct nftio *io);
void untrack_free(struct untrack *u);

/* Whether untrack_unwatched's rules belong in force under cfg: always
 * (true), never (false), or ("auto") while no other table uses conntrack;
 * not knowing counts as someone using it, tracking being the safe side.
 * The ruleset is looked at again only once the generation moved (an
 * iptables-legacy table, which moves none, every time); who uses
 * conntrack is kept (untrack_user). */
bool untrack_wanted(struct untrack *u, const struct config *cfg);

/* Whether anyone committed since the watcher's mark, which moves to now:
 * the quick look's question, one netlink round trip. */
bool untrack_moved(struct untrack *u);

/* After porthop's own commits (the generation was before, is after): the
 * mark moves past them if the watcher had seen everything before them,
 * or if (fresh) whether the rules belong was just decided. */
void untrack_seen(struct untrack *u, uint32_t before, uint32_t after,
		  bool fresh);

/* The rules on or off (their chains flushed), in a transaction of their
 * own.  Returns 0 or a negative errno with *ret_error. */
int untrack_apply(struct untrack *u, const struct config *cfg, bool on,
		  char **ret_error);

/* What is in force: set by the caller after an apply that put the rules
 * in (or took them out); switched: an "auto" switch, counted. */
void untrack_set(struct untrack *u, bool on, bool switched);
bool untrack_on(const struct untrack *u);
uint64_t untrack_switches(const struct untrack *u);
/* What uses conntrack, as last seen, or "". */
const char *untrack_user(const struct untrack *u);

#endif
