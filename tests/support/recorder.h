/*
 * recorder: an nftio backend for unit tests.  It never touches the
 * kernel: it keeps what it was given, answers from it, and can be told
 * to fail or that someone else changed the ruleset.  Only tests link it
 * (the porthop_test_support library); the daemon and the CLI do not.
 *
 * What each operation of nftio.h answers here:
 *   apply: parses the batch and keeps it (a dry run only counts); fails
 *     as told, with the errno its failure message quotes (as the kernel
 *     backend does with libnftables' messages);
 *   apply_elems: the queue as nftio_elems_json's batch, through apply;
 *   list, list_json: the last accepted batch (an empty ruleset if none);
 *   list_text: the same, as indented JSON text;
 *   generation: counts accepted batches and the changes of others below;
 *   table_fingerprint: the last batch, serialised;
 *   table_marked: follows the tables batches add and delete and the
 *     comments of the rules they add; 0 for nftio_recorder_foreign_table's;
 *   map_digest: the last batch that held tables, sets, maps or elements
 *     (not chains and rules alone), and the salt
 *     nftio_recorder_tamper_elements changes;
 *   elems_verify: 1 for a map nftio_recorder_tamper_elements named, until
 *     the next accepted batch;
 *   conntrack_user: for the ruleset, what nftio_recorder_conntrack_user
 *     set; never an iptables-legacy table.
 *
 * The nftio_recorder_* functions below take a recorder's nftio only.
 */
#ifndef PORTHOP_TEST_RECORDER_H
#define PORTHOP_TEST_RECORDER_H

#include "nftio.h"

/* A recording backend.  NULL on allocation failure; nftio_free frees it. */
struct nftio *nftio_new_recorder(void);

/* How many batches were accepted (dry runs not counted), how many dry
 * runs were asked for, the last accepted batch (borrowed, NULL if none),
 * and making the next n applies fail with msg. */
size_t nftio_recorder_applied(const struct nftio *io);
size_t nftio_recorder_dry_runs(const struct nftio *io);
json_t *nftio_recorder_last(const struct nftio *io);
void nftio_recorder_fail_next(struct nftio *io, unsigned n, const char *msg);
/* Every apply whose text holds `needle` fails with msg, as the kernel
 * refuses a batch holding one bad command; NULL clears it. */
void nftio_recorder_fail_match(struct nftio *io, const char *needle,
			       const char *msg);
/* Someone else committed a table that uses conntrack (who) or removed it
 * (NULL): what nftio_conntrack_user answers; the generation moves. */
void nftio_recorder_conntrack_user(struct nftio *io, const char *who);
/* How many times nftio_conntrack_user looked at the ruleset. */
size_t nftio_recorder_conntrack_looks(const struct nftio *io);
/* Someone else's table named `name` exists (NULL: none), as
 * nftio_table_marked sees it. */
void nftio_recorder_foreign_table(struct nftio *io, const char *name);
/* Someone else changed the ruleset (the generation moves and the listing
 * becomes an empty ruleset). */
void nftio_recorder_tamper(struct nftio *io);
/* Someone changed the elements of map or set `name` alone (the
 * generation and that digest move, the fingerprint does not). */
void nftio_recorder_tamper_elements(struct nftio *io, const char *name);
/* Whether the elements nftio_recorder_tamper_elements changed are still
 * changed: no batch since rewrote that map or set whole (flushed it, or
 * deleted the table to define it anew). */
bool nftio_recorder_tampered(const struct nftio *io);
/* Right after the next accepted batch, someone changes the elements of
 * `name` (as nftio_recorder_tamper_elements): a commit of theirs between
 * ours and our next look at the generation. */
void nftio_recorder_tamper_next_apply(struct nftio *io, const char *name);
/* Right after the next accepted batch, someone else commits something
 * that is not porthop's (the generation moves, nothing of ours changes). */
void nftio_recorder_foreign_commit_next_apply(struct nftio *io);

#endif
