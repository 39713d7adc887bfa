/*
 * instance: one porthopd per table and network namespace.  Two daemons
 * serving one table would undo each other's applies at every
 * reconciliation, and one's stop would delete the table the other serves.
 * The claim is a lock (flock) on a file in /run/porthop, which only root
 * writes, named after the network namespace and what porthopd owns: nobody
 * else can take it first, and it goes with the process however it ends,
 * so a crashed porthopd never blocks the next one.
 */
#ifndef PORTHOP_INSTANCE_H
#define PORTHOP_INSTANCE_H

#include <stdbool.h>

#include "config.h"

struct instance;

/* Claims what c makes porthopd own in this network namespace: its native
 * table ("table inet NAME"), or in template mode the ruleset it flushes;
 * the lock file goes in dir (made if missing: porthopd's is RUNDIR_PATH).
 * Returns the claim, or NULL with *ret_error (the caller frees it): held
 * by another porthopd (errno EWOULDBLOCK), or the file failed. */
struct instance *instance_claim(const char *dir, const struct config *c,
				char **ret_error);

/* instance_claim for a reload while held (the running claim) is kept: a
 * switch of mode converts held's lock on the ruleset (shared for native,
 * exclusive for template) into the new claim instead of waiting on
 * itself.  On failure held is as it was (its lock in its old mode). */
struct instance *instance_reclaim(const char *dir, const struct config *c,
				  struct instance *held, char **ret_error);

/* Whether i is the claim c would make (a reload that keeps it). */
bool instance_same(const struct instance *i, const struct config *c);

/* Lets the claim go; accepts NULL. */
void instance_free(struct instance *i);

#endif
