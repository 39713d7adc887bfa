/*
 * instance: one porthopd per table and network namespace.  Two daemons
 * serving one table would undo each other's applies at every
 * reconciliation, and one's stop would delete the table the other serves.
 * The claim is an abstract UNIX socket named after what porthopd owns:
 * abstract names belong to the network namespace, and go with the process
 * however it ends, so a crashed porthopd never blocks the next one.
 */
#ifndef PORTHOP_INSTANCE_H
#define PORTHOP_INSTANCE_H

#include <stdbool.h>

#include "config.h"

struct instance;

/* Claims what c makes porthopd own in this network namespace: its native
 * table ("table inet NAME"), or in template mode the ruleset it flushes.
 * Returns the claim, or NULL with *ret_error (the caller frees it): held
 * by another process (errno EADDRINUSE), or the socket failed. */
struct instance *instance_claim(const struct config *c, char **ret_error);

/* Whether i is the claim c would make (a reload that keeps it). */
bool instance_same(const struct instance *i, const struct config *c);

/* Lets the claim go; accepts NULL. */
void instance_free(struct instance *i);

#endif
