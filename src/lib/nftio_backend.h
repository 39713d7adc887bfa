/*
 * nftio_backend: the contract a backend of nftio fulfils, for backends
 * only (the kernel's in this library, the recorder in tests/support).
 * Users of nftio include nftio.h alone.
 *
 * A backend is a table of operations and a pointer to its own state.
 * nftio.c dispatches every public call through the table and keeps what
 * is the same for all backends: counting commits, trying an interrupted
 * call again, serialising batches.  An operation is called once per
 * attempt and answers for itself alone.
 */
#ifndef PORTHOP_NFTIO_BACKEND_H
#define PORTHOP_NFTIO_BACKEND_H

#include "nftio.h"

/* What one queued element operation does. */
enum nftio_elem_op { NFTIO_ELEM_FLUSH, NFTIO_ELEM_ADD, NFTIO_ELEM_DELETE };

/* What an item's key is: a map's concatenation, or an address of a set
 * of address intervals, where a range is two items (its first address,
 * then its last). */
enum nftio_elem_kind {
	NFTIO_KEY_CONCAT, NFTIO_KEY_RANGE_START, NFTIO_KEY_RANGE_END,
	NFTIO_KEY_SET_CONCAT,	/* a set's concatenation, with a timeout */
	NFTIO_KEY_SET_ADDR	/* an address of a set of addresses (type
				 * ipv4_addr/ipv6_addr, flags timeout), with
				 * a timeout when added */
};

/* One queued operation on one map or set. */
struct nftio_elem_item {
	struct nftio_key key;
	const char *map;	/* borrowed from the caller, compared by address */
	uint16_t value;		/* an added map element's value */
	uint32_t timeout_ms;	/* NFTIO_KEY_SET_CONCAT, _SET_ADDR: its timeout */
	uint8_t op;		/* enum nftio_elem_op */
	uint8_t kind;		/* enum nftio_elem_kind */
};

/* The builder's queue (nftio_elems.c fills it; backends read it): the
 * items in the order they were queued, all on the inet table `table`. */
struct nftio_elems {
	char *table;
	struct nftio_elem_item *items;
	size_t n;
	size_t cap;
};

/*
 * The operations.  Each gets the nftio it serves (its state through
 * nftio_backend_data) and has the contract of the public function of the
 * same name in nftio.h, with these differences: messages go to
 * *ret_error only when ret_error is not NULL; a call interrupted by a
 * signal returns -EINTR and the contract makes it again (apply, list,
 * list_json and list_text); commits are counted by the contract.  None
 * may be NULL.
 */
struct nftio_ops {
	/* Applies serialised libnftables JSON, or checks it (dry_run). */
	int (*apply)(struct nftio *io, const char *text, bool dry_run,
		     char **ret_error);
	/* Sends b's operations in one transaction its own way (use_json is
	 * the contract's: it goes through apply). */
	int (*apply_elems)(struct nftio *io, const struct nftio_elems *b,
			   char **ret_error);
	int (*list)(struct nftio *io, json_t **ret, char **ret_error);
	int (*list_json)(struct nftio *io, const json_t *cmds, bool terse,
			 json_t **ret, char **ret_error);
	int (*list_text)(struct nftio *io, char **ret_text, char **ret_error);
	int (*generation)(struct nftio *io, uint32_t *ret_gen);
	int (*table_fingerprint)(struct nftio *io, const char *family,
				 const char *table, char **ret);
	int (*table_marked)(struct nftio *io, const char *family,
			    const char *table, const char *mark);
	int (*map_digest)(struct nftio *io, const char *table,
			  const char *map, uint64_t *ret);
	int (*elems_verify)(struct nftio *io, const struct nftio_elems *b);
	int (*conntrack_user)(struct nftio *io, const char *table, int where,
			      char *who, size_t len);
	/* Frees the backend's state (never NULL when called). */
	void (*free)(void *data);
};

/* A new nftio served by ops (static, outliving it) with the backend's
 * state data, which nftio_free hands to ops->free.  NULL on allocation
 * failure; data then stays the caller's. */
struct nftio *nftio_backend_new(const struct nftio_ops *ops, void *data);

/* The state nftio_backend_new was given (borrowed); NULL if io is not
 * served by ops, so a backend's own functions can refuse another's io. */
void *nftio_backend_data(const struct nftio *io, const struct nftio_ops *ops);

/* Sends b's operations as one libnftables JSON batch through nftio_apply
 * (and so through ops->apply): what use_json asks for, and an
 * apply_elems for a backend with no faster way. */
int nftio_backend_apply_elems_json(struct nftio *io,
				   const struct nftio_elems *b,
				   char **ret_error);

/* The errno a libnftables message reports, from the strerror() text it
 * quotes ("Could not process rule: Operation not supported"), the
 * earliest in text; -EIO when none is known or text is NULL. */
int nftio_libnft_errno(const char *text);

/* 64-bit FNV-1a of n bytes from seed, then a splitmix64 finaliser so
 * that sums of hashes do not cancel out: what map digests add up. */
uint64_t nftio_hash(const void *p, size_t n, uint64_t seed);

#endif
