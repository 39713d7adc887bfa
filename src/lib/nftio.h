/*
 * nftio: the narrow door to the kernel's ruleset.
 *
 * Two backends behind one contract (as fwknop's fw_util.h puts several
 * firewalls behind one): libnftables, which applies a JSON batch in one
 * kernel transaction, and a recorder for unit tests that keeps what it was
 * given and can be told to fail.
 */
#ifndef PORTHOP_NFTIO_H
#define PORTHOP_NFTIO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct nftio;

/* A libnftables backend.  It opens a netlink socket, so create it once at
 * start-up (libnftables exits the process if that fails).  Returns NULL on
 * allocation failure. */
struct nftio *nftio_new_kernel(void);

/* A recording backend for tests: never touches the kernel. */
struct nftio *nftio_new_recorder(void);

/* Frees either backend; accepts NULL. */
void nftio_free(struct nftio *io);

/* Applies batch ({"nftables": [...]}) in one transaction; with dry_run the
 * kernel checks it and commits nothing.  A non-zero return from libnftables
 * or any output counts as failure.  Returns 0, or a negative errno with a
 * one-line message in *ret_error (malloc'ed, the caller frees it). */
int nftio_apply(struct nftio *io, const json_t *batch, bool dry_run,
		char **ret_error);

/* Applies an already serialised batch; same contract as nftio_apply. */
int nftio_apply_text(struct nftio *io, const char *text, bool dry_run,
		     char **ret_error);

/* The current ruleset as libnftables JSON ({"nftables": [...]}); the
 * recorder answers with the last batch it accepted.  On success stores a
 * new reference in *ret and returns 0. */
int nftio_list(struct nftio *io, json_t **ret, char **ret_error);

/* Recorder only: how many batches were accepted (dry runs not counted),
 * how many dry runs were asked for, the last accepted batch (borrowed, NULL
 * if none), and making the next n applies fail with msg. */
size_t nftio_recorder_applied(const struct nftio *io);
size_t nftio_recorder_dry_runs(const struct nftio *io);
json_t *nftio_recorder_last(const struct nftio *io);
void nftio_recorder_fail_next(struct nftio *io, unsigned n, const char *msg);
/* Recorder only: every apply whose text holds `needle` fails with msg, as
 * the kernel refuses a batch holding one bad command; NULL clears it. */
void nftio_recorder_fail_match(struct nftio *io, const char *needle,
			       const char *msg);

#endif
