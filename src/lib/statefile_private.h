/*
 * statefile_private: what statefile.c (the writer) and statefile_load.c
 * (the loader) share, and nothing else may use.
 */
#ifndef PORTHOP_STATEFILE_PRIVATE_H
#define PORTHOP_STATEFILE_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

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

#endif
