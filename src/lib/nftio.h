/*
 * nftio: the narrow door to the kernel's ruleset.
 *
 * One contract, several backends behind it (as fwknop's fw_util.h puts
 * several firewalls behind one): the kernel's (nftio_kernel.c:
 * libnftables, which applies a JSON batch in one kernel transaction, and
 * raw netlink for bulk element updates and cheap dumps), and a recorder
 * for unit tests (tests/support/recorder.h) that keeps what it was given
 * and can be told to fail.  Every function below goes through the
 * backend's table of operations (nftio_backend.h).
 */
#ifndef PORTHOP_NFTIO_H
#define PORTHOP_NFTIO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nftio;

/* A libnftables backend.  It opens a netlink socket, so create it once at
 * start-up (libnftables exits the process if that fails).  Returns NULL on
 * allocation failure. */
struct nftio *nftio_new_kernel(void);

/* Frees any backend; accepts NULL. */
void nftio_free(struct nftio *io);

/* Applies batch ({"nftables": [...]}) in one transaction; with dry_run the
 * kernel checks it and commits nothing.  A non-zero return from libnftables
 * or any output counts as failure.  Returns 0, or a negative errno with a
 * one-line message in *ret_error (malloc'ed, the caller frees it): the
 * errno libnftables' message quotes (-EOPNOTSUPP, -ENOENT, -EPERM,
 * -EINTR...), -EIO if it quotes none (a parse error, unexpected output).
 * Asynchronous signals are held back during the call (libnftables 1.0.6
 * loses the kernel's verdict when one interrupts it), and a call still
 * reported interrupted is made again, up to 5 times in all. */
int nftio_apply(struct nftio *io, const json_t *batch, bool dry_run,
		char **ret_error);

/* Applies an already serialised batch; same contract as nftio_apply. */
int nftio_apply_text(struct nftio *io, const char *text, bool dry_run,
		     char **ret_error);

/* The current ruleset as libnftables JSON ({"nftables": [...]}).  On
 * success stores a new reference in *ret and returns 0; an interrupted
 * listing is made again, as nftio_apply's calls. */
int nftio_list(struct nftio *io, json_t **ret, char **ret_error);

/* The current ruleset in nft syntax, as `nft list ruleset` prints it.
 * On success stores malloc'ed text in *ret_text (the caller frees it)
 * and returns 0; otherwise as nftio_list. */
int nftio_list_text(struct nftio *io, char **ret_text, char **ret_error);

/*
 * Bulk map updates.  A reshuffle of a native table replaces hundreds of
 * thousands of map elements; libnftables would parse them from JSON one
 * by one, so they go to the kernel as one raw netlink batch (one
 * transaction) built by the kernel backend.  nftio_elems_json turns the
 * same operations into the equivalent libnftables JSON, which is what the
 * recorder applies, so tests see what would be sent.
 */
struct nftio_elems;

/* A map element's key: address (or prefix) . protocol . port; with
 * family AF_UNSPEC, protocol . port alone (a map of type inet_proto .
 * inet_service: the derived ports' maps). */
struct nftio_key {
	int family;			/* AF_INET, AF_INET6 or AF_UNSPEC */
	unsigned char addr[16];
	unsigned prefix_len;		/* < 32/128: an interval map's prefix */
	uint8_t l4proto;		/* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t port;
};

/* A builder of operations on the maps (and sets) of one inet table.
 * NULL on allocation failure. */
struct nftio_elems *nftio_elems_new(const char *table);
void nftio_elems_free(struct nftio_elems *b);
/* Queue an operation; 0 or -ENOMEM.  `map` must stay valid as long as b. */
int nftio_elems_flush(struct nftio_elems *b, const char *map);
int nftio_elems_add(struct nftio_elems *b, const char *map,
		    const struct nftio_key *key, uint16_t value);
int nftio_elems_delete(struct nftio_elems *b, const char *map,
		       const struct nftio_key *key);
/* An element of a set (not a map) of concatenations, with a timeout in
 * milliseconds (the set has flags timeout); adding one that is there
 * already is no error. */
int nftio_elems_add_timeout(struct nftio_elems *b, const char *set,
			    const struct nftio_key *key, uint32_t timeout_ms);
/* Sets of address intervals (type ipv4_addr or ipv6_addr, flags
 * interval): empty one, or add the range first..last (network byte
 * order, the first 4 bytes for AF_INET).  Ranges of one set are queued
 * after its flush, in ascending order and apart from one another, as nft
 * itself would send them. */
int nftio_elems_flush_set(struct nftio_elems *b, const char *set);
int nftio_elems_add_range(struct nftio_elems *b, const char *set, int family,
			  const unsigned char first[16],
			  const unsigned char last[16]);
/* Removes the range first..last, queued exactly as it was added (a
 * runtime entry's, one at a time, not after a flush). */
int nftio_elems_delete_range(struct nftio_elems *b, const char *set,
			     int family, const unsigned char first[16],
			     const unsigned char last[16]);
size_t nftio_elems_count(const struct nftio_elems *b);
/* The same operations as a libnftables batch (new reference), or NULL. */
json_t *nftio_elems_json(const struct nftio_elems *b);

/* Sends every queued operation in one transaction.  The kernel backend
 * builds a netlink batch itself unless use_json is set, in which case it
 * goes through nftio_apply as nftio_elems_json's batch (for comparison).
 * Same contract as nftio_apply. */
int nftio_apply_elems(struct nftio *io, const struct nftio_elems *b,
		      bool use_json, char **ret_error);

/* How many transactions this backend committed (dry runs not counted):
 * beside the generation, which counts everyone's, it tells whether
 * someone else committed between two reads of the generation. */
uint64_t nftio_commits(const struct nftio *io);

/* Every netlink call below goes on through signals (EINTR), starts on a
 * socket drained of whatever an earlier failed call left unread, and
 * makes a dump again when the kernel flags it inconsistent (someone
 * committed meanwhile), up to 5 times. */

/* The kernel's ruleset generation: it changes with every committed
 * transaction, anyone's. */
int nftio_generation(struct nftio *io, uint32_t *ret_gen);

/* A fingerprint of one table's definition: its flags (dormant), its
 * chains, sets and maps
 * (without elements) and rules, as the kernel dumps them over netlink,
 * handles left out.  Cheap however many elements the maps hold (listing
 * through libnftables would load them all).  family is "ip", "ip6",
 * "inet", "arp", "bridge" or "netdev".  On success *ret is malloc'ed text
 * (the caller frees it); -ENOENT if the table does not exist. */
int nftio_table_fingerprint(struct nftio *io, const char *family,
			    const char *table, char **ret);

/* Whether porthop made the table `table` of `family`: 1 if one of its
 * rules carries the comment `mark` (porthop's native table has it on
 * every rule: see RULESET_NATIVE_MARK), 0 if the table exists without,
 * -ENOENT if it does not exist, or a negative errno.  Two netlink round
 * trips (the table, its rules without their set elements). */
int nftio_table_marked(struct nftio *io, const char *family,
		       const char *table, const char *mark);

/* An order-independent digest of the elements of one map or set of an
 * inet table, as the kernel dumps them: equal digests, equal contents (up to a
 * 64-bit hash collision).  -ENOENT if the table or map does not exist. */
int nftio_map_digest(struct nftio *io, const char *table, const char *map,
		     uint64_t *ret);

/* Asks the kernel for every map element b adds (its other items are
 * left out), in requests of a hundred or so, each answered in order: 0
 * if every one is there with its value, 1 if one is missing or holds
 * another value, a negative errno otherwise.  Linear in the elements
 * (about 1.5 us each), where a dump costs their square; elements that
 * someone else added are not seen. */
int nftio_elems_verify(struct nftio *io, const struct nftio_elems *b);

/* Runs libnftables JSON list commands (e.g. {"nftables": [{"list":
 * {"table": {...}}}]}) and parses what they print; terse leaves set and
 * map elements out.  An interrupted listing is made again. */
int nftio_list_json(struct nftio *io, const json_t *cmds, bool terse,
		    json_t **ret, char **ret_error);

/* Who else uses connection tracking, looked for where `where` says
 * (NFTIO_CT_RULESET, NFTIO_CT_LEGACY or both): in the ruleset, a table
 * other than porthop's own (inet `table`) with a nat chain, a ct
 * expression, NAT, flow offload, connection limits, ct objects or
 * iptables-nft compat matches (counted unseen); outside it, an
 * iptables-legacy table in this network namespace (which moves no
 * generation).  Returns 1 and names the first one found in who (up to len
 * bytes), 0 if none, or a negative errno. */
enum { NFTIO_CT_RULESET = 1, NFTIO_CT_LEGACY = 2 };
int nftio_conntrack_user(struct nftio *io, const char *table, int where,
			 char *who, size_t len);

#endif
