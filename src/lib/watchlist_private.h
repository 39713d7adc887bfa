/*
 * watchlist_private.h: what watchlist.c (the API: origins, changes and
 * their counters, lookups, walks) and watchlist_store.c (the structures
 * under it: network hash, entry chains, expiry heap, item cache) share.
 *
 * Sized for a million entries.  Entries and networks live in two slabs of
 * small fixed records addressed by 32-bit indexes, so an entry costs no
 * malloc of its own unless it has ignore lists.  A hash of networks leads
 * to each network's chain of entries (one per origin, most recently put
 * first, so the head is the latest); a binary min-heap of the entries that
 * expire gives the next expiry at once.  Origins are interned: an entry
 * holds a 16-bit index into the origin table.
 *
 * The API hands out struct watchlist_item pointers, which are far larger
 * than an entry; they are built on demand in a cache that lives until the
 * list next changes, one per distinct entry looked up.
 */
#ifndef PORTHOP_WATCHLIST_PRIVATE_H
#define PORTHOP_WATCHLIST_PRIVATE_H

#include <sodium.h>

#include "watchlist.h"

#define NIL UINT32_MAX
/* Items built per cache chunk; a chunk never moves once handed out. */
#define CACHE_CHUNK 64

/* A network as the hash and the sort see it: memcmp over the whole key
 * orders by family, address bytes, then prefix length. */
struct wl_key {
	uint8_t family;
	uint8_t addr[16];
	uint8_t plen;
};

struct wl_net {
	struct wl_key key;
	uint16_t holders;	/* entries in the chain (<= origins) */
	uint32_t hash;
	uint32_t hnext;		/* next in its bucket, or the free list */
	uint32_t head;		/* latest entry; NIL: the record is free */
};

/* One allocation for both ignore lists: TCP's ports, then UDP's. */
struct wl_ign {
	size_t n[CONFIG_NPROTO];
	uint16_t port[];
};

struct wl_entry {
	uint32_t net;		/* NIL: the record is free */
	uint32_t next;		/* next of its network, or the free list */
	uint32_t heap;		/* position in the heap; NIL: never expires */
	uint16_t origin;
	int64_t added;
	int64_t expires;
	struct wl_ign *ign;	/* NULL: no ignore lists */
};

/* Items handed out since the list last changed, found by entry index
 * (open addressing) so that a second lookup returns the same pointer. */
struct wl_cache {
	struct watchlist_item **chunk;
	size_t nchunk, n;
	uint32_t *map;		/* pairs (entry, slot); entry NIL: empty */
	size_t mapcap;		/* pairs, a power of two */
};

struct watchlist {
	size_t max, count;
	struct wl_entry *ent;
	uint32_t ent_cap, ent_top, ent_free;
	struct wl_net *net;
	uint32_t net_cap, net_top, net_free, nnets;
	uint32_t *bucket;
	uint32_t nbucket;	/* a power of two, or 0 */
	uint32_t *heap;		/* entry indexes; capacity ent_cap */
	uint32_t nheap;
	struct watchlist_origin_stats *orig;	/* WATCHLIST_MAX_ORIGINS */
	uint16_t *by_name;	/* origin indexes in name order */
	size_t norig;
	/* Addresses come from attackers' packets: a secret hash key keeps
	 * them from choosing networks that share one bucket. */
	unsigned char seed[crypto_shorthash_KEYBYTES];
	struct wl_cache *cache;
};

/* The key of n; -EINVAL if n is no IPv4 or IPv6 network. */
int wl_key_of(const struct config_net *n, struct wl_key *k);
/* The canonical config_net of k: a full-length prefix reads as an
 * address, as the kernel's maps see it. */
void wl_net_of(const struct wl_key *k, struct config_net *n);
uint32_t wl_hash(const struct watchlist *w, const struct wl_key *k);
/* The network record of k (hash h) or of net, or NIL. */
uint32_t wl_net_find(const struct watchlist *w, const struct wl_key *k,
		     uint32_t h);
uint32_t wl_net_lookup(const struct watchlist *w,
		       const struct config_net *net);
/* The entry of origin o in network ni's chain, or NIL. */
uint32_t wl_chain_find(const struct watchlist *w, uint32_t ni, int o);
/* Entry e becomes its network's latest. */
void wl_make_latest(struct watchlist *w, uint32_t e);
/* After e's expiry changed: in the heap while it expires at all. */
void wl_heap_update(struct watchlist *w, uint32_t e);

/* Room for one more entry (and network, if new_net) in every structure,
 * so that the change itself cannot fail half-way.  0 or -ENOMEM. */
int wl_reserve(struct watchlist *w, bool new_net);
/* A copy of the ignore lists in one block (NULL when both are empty);
 * -EINVAL if a list is not sorted and distinct, -ENOMEM. */
int wl_ign_copy(const uint16_t *const ignore[CONFIG_NPROTO],
		const size_t nignore[CONFIG_NPROTO], struct wl_ign **ret);
/* A new entry (after wl_reserve): of network ni, or of a new network k
 * (hash h) if ni is NIL; it takes ign.  Returns its index.  The caller
 * counts it. */
uint32_t wl_entry_add(struct watchlist *w, uint32_t ni,
		      const struct wl_key *k, uint32_t h, int o,
		      int64_t added, int64_t expires, struct wl_ign *ign);
/* Takes entry e out of every structure; the caller counts why. */
void wl_entry_remove(struct watchlist *w, uint32_t e);

/* The item of entry e, written into *it. */
void wl_fill_item(const struct watchlist *w, uint32_t e,
		  struct watchlist_item *it);
/* The item of entry e (NIL: NULL), built once until the list changes;
 * NULL if out of memory. */
const struct watchlist_item *wl_cached(const struct watchlist *w,
				       uint32_t e);
int wl_cache_grow(struct wl_cache *c);
/* The list changed: every item handed out is void. */
void wl_cache_reset(struct wl_cache *c);
void wl_cache_free(struct wl_cache *c);

#endif
