/*
 * shuffle: draws the redirect ports.
 *
 * Randomness comes from getrandom(2), read in blocks.  A bounded integer is
 * drawn by rejection (as arc4random_uniform does), so there is no modulo
 * bias; a partial Fisher-Yates shuffle over the free ports gives `count`
 * distinct ports in exactly `count` draws, however full the range is.
 */
#ifndef PORTHOP_SHUFFLE_H
#define PORTHOP_SHUFFLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct shuffle;

/* One (real port, redirect port) pair. */
struct shuffle_pair {
	uint16_t port;
	uint16_t redirect;
	uint8_t proto;		/* enum config_proto */
};

/* The mapping of one watched address (index into the configuration). */
struct shuffle_entry {
	size_t watched;
	size_t npairs;
	struct shuffle_pair *pairs;
	bool owned;		/* pairs malloc'ed for this entry, not in pool */
};

/* A whole mapping.  Plain data so that tests can build one by hand. */
struct shuffle_map {
	size_t nentries;
	struct shuffle_entry *entries;
	struct shuffle_pair *pool;	/* one block holding every entry's pairs */
	size_t cap;			/* room in entries (0: nentries) */
};

/* A random source reading getrandom(2).  Returns NULL on allocation
 * failure. */
struct shuffle *shuffle_new(void);
void shuffle_free(struct shuffle *s);

/* A uniform integer in [0, bound), bound >= 1.  Returns 0 or -errno (the
 * kernel's random source failed). */
int shuffle_uniform(struct shuffle *s, uint32_t bound, uint32_t *ret);

/* Draws `count` distinct ports, uniformly, from 1..max_port minus the ports
 * for which is_used(arg, port) is true.  Returns 0, -ENOSPC if fewer than
 * count ports are free, or -errno. */
int shuffle_draw(struct shuffle *s, unsigned max_port,
		 int (*is_used)(const void *arg, unsigned port),
		 const void *arg, size_t count, uint16_t *ret_ports);

/* The ports each protocol may draw from under one configuration (1 to
 * max_port minus its services), built once: a draw permutes them but
 * keeps the same ports, and picks uniformly whatever their order, so
 * every draw under that configuration can reuse them.  NULL on allocation
 * failure. */
struct shuffle_plan;
struct shuffle_plan *shuffle_plan_new(const struct config *c);
void shuffle_plan_free(struct shuffle_plan *p);

/* Draws a fresh mapping for every watched address of c, from plan (built
 * from c; NULL: one is built for this call).  On success *ret_map is a
 * new map the caller frees with shuffle_map_free(). */
int shuffle_map_new(struct shuffle *s, const struct config *c,
		    struct shuffle_plan *plan, struct shuffle_map **ret_map);

/* Draws a fresh mapping for one watched address (index) and stores it in
 * map's entry for that address, leaving the others as they are.  Each
 * protocol draws on its own: a TCP redirect never takes a tcp_ports port,
 * a UDP one never a udp_ports port.  plan as for shuffle_map_new. */
int shuffle_map_redraw(struct shuffle *s, const struct config *c,
		       struct shuffle_plan *plan, struct shuffle_map *map,
		       size_t watched);

/* Allocates an empty map with room for every watched address of c, with
 * each entry's real ports filled in and redirects zero.  For tests and for
 * the builders above. */
struct shuffle_map *shuffle_map_alloc(const struct config *c);

void shuffle_map_free(struct shuffle_map *m);

/* A copy of src (drawn under c) under c: its entries' pairs.  NULL if out
 * of memory. */
struct shuffle_map *shuffle_map_copy(const struct config *c,
				     const struct shuffle_map *src);

/* Runtime entries: appends an entry for watched entry `watched` (the
 * next index, just added to c) with a fresh draw.  0, or -ENOMEM,
 * -ENOSPC, -errno; the map is unchanged on failure. */
int shuffle_map_append(struct shuffle *s, const struct config *c,
		       struct shuffle_plan *plan, struct shuffle_map *m,
		       size_t watched);
/* Removes entry idx as config_watched_remove removed its watched entry:
 * the last entry moves into its place. */
void shuffle_map_remove(struct shuffle_map *m, size_t idx);
/* shuffle_map_remove, the entry handed to the caller; put back undoes
 * it exactly (in reverse order); release frees its pairs if it owns
 * them. */
void shuffle_map_take(struct shuffle_map *m, size_t idx,
		      struct shuffle_entry *ret);
void shuffle_map_put_back(struct shuffle_map *m, size_t idx,
			  const struct shuffle_entry *e);
void shuffle_entry_release(struct shuffle_entry *e);

/* Copies of the entries idx[0..n) of m, their pairs malloc'ed each (the
 * caller frees each .pairs, then the array), so that a failed apply can
 * put them back.  NULL if out of memory. */
struct shuffle_entry *shuffle_entries_save(const struct shuffle_map *m,
					   const size_t *idx, size_t n);

#endif
