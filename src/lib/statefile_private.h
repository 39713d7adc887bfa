/*
 * statefile_private: what statefile.c (the writer) and statefile_load.c
 * (the loader) share, and nothing else may use.
 */
#ifndef PORTHOP_STATEFILE_PRIVATE_H
#define PORTHOP_STATEFILE_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "diag.h"
#include "statefile.h"

#define HEADER "porthop-state "
#define TMP_NAME STATEFILE_NAME ".tmp"
/* Ports in one list at most: every port once. */
#define PORTS_MAX 65536

struct statefile {
	char *dir;
	char *path;		/* dir/runtime.state */
	int dirfd;		/* locked: one porthopd per directory */
	int fd;			/* the file, O_APPEND; -1 before load */
	bool loaded;
	bool broken;		/* a failed commit could not be cut back */
	uint64_t committed;	/* the file's length after the last commit */
	char *buf;		/* records not yet committed */
	size_t len, cap, nbuf;
	/* The commit in flight (written, syncing): its records and bytes;
	 * 0 records: none. */
	size_t sync_nrec, sync_len;
	struct timespec sync_t0;
	struct statefile_syncer *syncer;	/* NULL: commits sync on the
						 * caller's thread */
	uint16_t *ports[CONFIG_NPROTO];	/* the loader's scratch lists */
	struct statefile_stats st;
};

/* One parsed line. */
struct record {
	char op;		/* '+', '-', '!' */
	struct watchlist_item it;
};

extern const char *const statefile_proto_names[CONFIG_NPROTO];

/* "state file PATH: " + what, the path JSON-encoded; returns -err. */
int statefile_error(char **ret, int err, const char *path, const char *fmt,
		    ...) DIAG_ATTR_PRINTF(4, 5);
/* What the loader takes back: an origin name, a canonical network, a
 * strictly increasing port list. */
bool statefile_origin_valid(const char *s, size_t len);
bool statefile_net_valid(const struct config_net *n);
bool statefile_ports_valid(const uint16_t *p, size_t n);
/* fsync of the state directory. */
int statefile_sync_dir(struct statefile *s);
/* A commit in two halves: the buffered records written (the group now in
 * flight; a failed write is finished, and returned, at once), and the
 * group's end given its sync's result r (0 or -errno): the file cut back
 * on a failure, as statefile_commit says. */
int statefile_commit_write(struct statefile *s, char **ret_error);
int statefile_commit_finish(struct statefile *s, int r, char **ret_error);
/* statefile_sync.c: the thread stopped (a commit in flight waited for). */
void statefile_syncer_free(struct statefile *s);

#endif
