/*
 * rundir: where the control socket lives.  Its path (the -s override, or
 * the configuration's), the check before the kernel is touched (only a
 * socket is ever replaced there), and /run/porthop, which porthopd makes,
 * group-owned by control_group so that its members can reach the socket
 * and nobody else can.
 */
#ifndef PORTHOP_RUNDIR_H
#define PORTHOP_RUNDIR_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"

#define RUNDIR_PATH "/run/porthop"

/* The control socket's path: override (-s) if given, else c's; NULL for
 * none (an empty control_socket). */
const char *rundir_socket(const char *override, const struct config *c);

/* Whether path is directly in RUNDIR_PATH. */
bool rundir_holds(const char *path);

/* Before the kernel is touched: whatever is at path must be a leftover
 * socket (replaced) or nothing in an existing directory (RUNDIR_PATH
 * counts as existing: it is made at start), or porthopd would stop after
 * its start-up shuffle with its rules left behind.  live_ok (porthopd -n,
 * which opens nothing): a socket something listens on, the running
 * porthopd's, is fine too.  Returns 0, or a negative errno with
 * *ret_error (the caller frees it). */
int rundir_check(const char *path, bool live_ok, char **ret_error);

/* RUNDIR_PATH, made if missing, mode 0750 and group-owned by gid (root's
 * for (gid_t)-1).  Without CAP_CHOWN (the systemd unit), porthopd can give
 * it only to a group it is in: SupplementaryGroups=.  Returns 0, or a
 * negative errno with *ret_error. */
int rundir_prepare(gid_t gid, char **ret_error);

#endif
