/*
 * watchlist_store: the structures under the watch list (see
 * watchlist_private.h): the network hash, each network's chain of
 * entries, the expiry heap, the slabs' growth and the item cache.
 */
#include "watchlist_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint16_t no_ports[1];

/* --- networks ---------------------------------------------------------- */

int wl_key_of(const struct config_net *n, struct wl_key *k)
{
	unsigned full;

	if (n == NULL || (n->family != AF_INET && n->family != AF_INET6))
		return -EINVAL;
	full = n->family == AF_INET ? 32 : 128;
	if (n->prefix_len > full)
		return -EINVAL;
	memset(k, 0, sizeof(*k));
	k->family = (uint8_t)n->family;
	memcpy(k->addr, n->addr, full / 8);
	k->plen = (uint8_t)n->prefix_len;
	return 0;
}

/* The canonical config_net of k: a full-length prefix reads as an
 * address, as the kernel's maps see it. */
void wl_net_of(const struct wl_key *k, struct config_net *n)
{
	memset(n, 0, sizeof(*n));
	n->family = k->family;
	memcpy(n->addr, k->addr, sizeof(k->addr));
	n->prefix_len = k->plen;
	n->is_prefix = k->plen < (k->family == AF_INET ? 32u : 128u);
	inet_ntop(n->family, n->addr, n->addr_text, sizeof(n->addr_text));
	if (n->is_prefix)
		snprintf(n->text, sizeof(n->text), "%s/%u", n->addr_text,
			 n->prefix_len);
	else
		snprintf(n->text, sizeof(n->text), "%s", n->addr_text);
}

uint32_t wl_hash(const struct watchlist *w, const struct wl_key *k)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint32_t h;

	crypto_shorthash(out, (const unsigned char *)k, sizeof(*k), w->seed);
	memcpy(&h, out, sizeof(h));
	return h;
}

uint32_t wl_net_find(const struct watchlist *w, const struct wl_key *k,
			 uint32_t h)
{
	if (w->nbucket == 0)
		return NIL;
	for (uint32_t i = w->bucket[h & (w->nbucket - 1)]; i != NIL;
	     i = w->net[i].hnext)
		if (w->net[i].hash == h &&
		    memcmp(&w->net[i].key, k, sizeof(*k)) == 0)
			return i;
	return NIL;
}

uint32_t wl_net_lookup(const struct watchlist *w,
			   const struct config_net *net)
{
	struct wl_key k;

	if (wl_key_of(net, &k) < 0)
		return NIL;
	return wl_net_find(w, &k, wl_hash(w, &k));
}

/* The entry of origin o in network ni's chain, or NIL. */
uint32_t wl_chain_find(const struct watchlist *w, uint32_t ni, int o)
{
	uint32_t e = w->net[ni].head;

	while (e != NIL && w->ent[e].origin != o)
		e = w->ent[e].next;
	return e;
}

/* Takes e out of its network's chain (at most one step per origin). */
static void chain_unlink(struct watchlist *w, uint32_t e)
{
	uint32_t *p = &w->net[w->ent[e].net].head;

	while (*p != e)
		p = &w->ent[*p].next;
	*p = w->ent[e].next;
}

static void chain_push(struct watchlist *w, uint32_t e)
{
	struct wl_net *n = &w->net[w->ent[e].net];

	w->ent[e].next = n->head;
	n->head = e;
}

void wl_make_latest(struct watchlist *w, uint32_t e)
{
	chain_unlink(w, e);
	chain_push(w, e);
}

/* --- the expiry heap --------------------------------------------------- */

static bool heap_less(const struct watchlist *w, uint32_t a, uint32_t b)
{
	/* Ties by index: the order is a function of the calls made. */
	if (w->ent[a].expires != w->ent[b].expires)
		return w->ent[a].expires < w->ent[b].expires;
	return a < b;
}

static void heap_set(struct watchlist *w, uint32_t i, uint32_t e)
{
	w->heap[i] = e;
	w->ent[e].heap = i;
}

static void heap_fix(struct watchlist *w, uint32_t i)
{
	uint32_t e = w->heap[i];

	while (i > 0 && heap_less(w, e, w->heap[(i - 1) / 2])) {
		heap_set(w, i, w->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= w->nheap)
			break;
		if (c + 1 < w->nheap && heap_less(w, w->heap[c + 1], w->heap[c]))
			c++;
		if (!heap_less(w, w->heap[c], e))
			break;
		heap_set(w, i, w->heap[c]);
		i = c;
	}
	heap_set(w, i, e);
}

static void heap_remove(struct watchlist *w, uint32_t e)
{
	uint32_t i = w->ent[e].heap, last;

	if (i == NIL)
		return;
	w->ent[e].heap = NIL;
	last = w->heap[--w->nheap];
	if (i < w->nheap) {
		w->heap[i] = last;
		heap_fix(w, i);
	}
}

/* After e's expiry changed: in the heap while it expires at all. */
void wl_heap_update(struct watchlist *w, uint32_t e)
{
	if (w->ent[e].expires <= 0) {
		heap_remove(w, e);
	} else if (w->ent[e].heap == NIL) {
		w->heap[w->nheap] = e;
		heap_fix(w, w->nheap++);
	} else {
		heap_fix(w, w->ent[e].heap);
	}
}

/* --- the item cache ---------------------------------------------------- */

void wl_fill_item(const struct watchlist *w, uint32_t e,
		      struct watchlist_item *it)
{
	const struct wl_entry *en = &w->ent[e];
	const uint16_t *p = en->ign ? en->ign->port : no_ports;

	memset(it, 0, sizeof(*it));
	wl_net_of(&w->net[en->net].key, &it->net);
	memcpy(it->origin, w->orig[en->origin].name, sizeof(it->origin));
	it->added = en->added;
	it->expires = en->expires;
	for (int i = 0; i < CONFIG_NPROTO; i++) {
		it->nignore[i] = en->ign ? en->ign->n[i] : 0;
		it->ignore[i] = it->nignore[i] ? p : no_ports;
		p += it->nignore[i];
	}
}

static size_t cache_slot(const struct wl_cache *c, uint32_t e)
{
	size_t i = ((uint64_t)e * 0x9e3779b97f4a7c15ull) >> 40;

	for (i &= c->mapcap - 1; c->map[2 * i] != NIL && c->map[2 * i] != e;
	     i = (i + 1) & (c->mapcap - 1))
		;
	return i;
}

int wl_cache_grow(struct wl_cache *c)
{
	size_t cap = c->mapcap ? 2 * c->mapcap : 128, oldcap;
	uint32_t *old = c->map, *map = malloc(2 * cap * sizeof(*map));

	if (map == NULL)
		return -ENOMEM;
	memset(map, 0xff, 2 * cap * sizeof(*map));
	oldcap = c->mapcap;
	c->map = map;
	c->mapcap = cap;
	for (size_t i = 0; i < oldcap; i++) {
		size_t s;

		if (old[2 * i] == NIL)
			continue;
		s = cache_slot(c, old[2 * i]);
		map[2 * s] = old[2 * i];
		map[2 * s + 1] = old[2 * i + 1];
	}
	free(old);
	return 0;
}

/* The item of entry e, built once until the list changes; NULL if out of
 * memory.  The cache is behind a pointer: a const list may fill it. */
const struct watchlist_item *wl_cached(const struct watchlist *w,
					   uint32_t e)
{
	struct wl_cache *c = w->cache;
	struct watchlist_item *it;
	size_t s;

	if (e == NIL)
		return NULL;
	if (2 * (c->n + 1) > c->mapcap && wl_cache_grow(c) < 0)
		return NULL;
	s = cache_slot(c, e);
	if (c->map[2 * s] == e)
		return &c->chunk[c->map[2 * s + 1] / CACHE_CHUNK]
				[c->map[2 * s + 1] % CACHE_CHUNK];
	if (c->n == c->nchunk * CACHE_CHUNK) {
		struct watchlist_item **v, *chunk;

		v = realloc(c->chunk, (c->nchunk + 1) * sizeof(*v));
		if (v == NULL)
			return NULL;
		c->chunk = v;
		chunk = malloc(CACHE_CHUNK * sizeof(*chunk));
		if (chunk == NULL)
			return NULL;
		c->chunk[c->nchunk++] = chunk;
	}
	it = &c->chunk[c->n / CACHE_CHUNK][c->n % CACHE_CHUNK];
	wl_fill_item(w, e, it);
	c->map[2 * s] = e;
	c->map[2 * s + 1] = (uint32_t)c->n++;
	return it;
}

/* The list changed: every item handed out is void.  The first chunk and
 * a small map stay, for the common lookup after each change. */
void wl_cache_reset(struct wl_cache *c)
{
	if (c->n == 0)
		return;
	while (c->nchunk > 1)
		free(c->chunk[--c->nchunk]);
	if (c->mapcap > 128) {
		free(c->map);
		c->map = NULL;
		c->mapcap = 0;
		wl_cache_grow(c);	/* on failure, wl_cached() tries again */
	} else {
		memset(c->map, 0xff, 2 * c->mapcap * sizeof(*c->map));
	}
	c->n = 0;
}


static uint32_t grown_cap(uint32_t cap, size_t max)
{
	size_t n = cap ? (size_t)cap * 2 : 256;

	return (uint32_t)(n < max ? n : max);
}

/* Room for one more entry (and network, if new_net) in every structure,
 * so that the change itself cannot fail half-way. */
int wl_reserve(struct watchlist *w, bool new_net)
{
	if (w->ent_free == NIL && w->ent_top == w->ent_cap) {
		uint32_t cap = grown_cap(w->ent_cap, w->max);
		void *p;

		p = realloc(w->ent, cap * sizeof(*w->ent));
		if (p == NULL)
			return -ENOMEM;
		w->ent = p;
		p = realloc(w->heap, cap * sizeof(*w->heap));
		if (p == NULL)
			return -ENOMEM;
		w->heap = p;
		w->ent_cap = cap;
	}
	if (!new_net)
		return 0;
	if (w->net_free == NIL && w->net_top == w->net_cap) {
		uint32_t cap = grown_cap(w->net_cap, w->max);
		void *p = realloc(w->net, cap * sizeof(*w->net));

		if (p == NULL)
			return -ENOMEM;
		w->net = p;
		w->net_cap = cap;
	}
	if (w->nnets + 1 > w->nbucket && w->nbucket < (1u << 31)) {
		uint32_t n = w->nbucket ? 2 * w->nbucket : 256;
		uint32_t *b = malloc(n * sizeof(*b));

		if (b == NULL)
			return -ENOMEM;
		memset(b, 0xff, n * sizeof(*b));
		for (uint32_t i = 0; i < w->net_top; i++) {
			if (w->net[i].head == NIL)
				continue;
			w->net[i].hnext = b[w->net[i].hash & (n - 1)];
			b[w->net[i].hash & (n - 1)] = i;
		}
		free(w->bucket);
		w->bucket = b;
		w->nbucket = n;
	}
	return 0;
}

/* A copy of the ignore lists in one block (NULL when both are empty);
 * -EINVAL if a list is not sorted and distinct. */
int wl_ign_copy(const uint16_t *const ignore[CONFIG_NPROTO],
		    const size_t nignore[CONFIG_NPROTO], struct wl_ign **ret)
{
	struct wl_ign *g;
	size_t total = 0, o = 0;

	*ret = NULL;
	if (ignore == NULL || nignore == NULL)
		return 0;
	for (int i = 0; i < CONFIG_NPROTO; i++) {
		if (nignore[i] > 65536 || (nignore[i] && ignore[i] == NULL))
			return -EINVAL;
		for (size_t j = 1; j < nignore[i]; j++)
			if (ignore[i][j] <= ignore[i][j - 1])
				return -EINVAL;
		total += nignore[i];
	}
	if (total == 0)
		return 0;
	g = malloc(sizeof(*g) + total * sizeof(g->port[0]));
	if (g == NULL)
		return -ENOMEM;
	for (int i = 0; i < CONFIG_NPROTO; i++) {
		g->n[i] = nignore[i];
		if (nignore[i])
			memcpy(g->port + o, ignore[i],
			       nignore[i] * sizeof(g->port[0]));
		o += nignore[i];
	}
	*ret = g;
	return 0;
}


uint32_t wl_entry_add(struct watchlist *w, uint32_t ni,
		      const struct wl_key *k, uint32_t h, int o,
		      int64_t added, int64_t expires, struct wl_ign *ign)
{
	uint32_t e;

	if (ni == NIL) {
		if (w->net_free != NIL) {
			ni = w->net_free;
			w->net_free = w->net[ni].hnext;
		} else {
			ni = w->net_top++;
		}
		w->net[ni] = (struct wl_net){ .key = *k, .hash = h,
			.hnext = w->bucket[h & (w->nbucket - 1)], .head = NIL };
		w->bucket[h & (w->nbucket - 1)] = ni;
		w->nnets++;
	}
	if (w->ent_free != NIL) {
		e = w->ent_free;
		w->ent_free = w->ent[e].next;
	} else {
		e = w->ent_top++;
	}
	w->ent[e] = (struct wl_entry){ .net = ni, .heap = NIL,
		.origin = (uint16_t)o, .added = added, .expires = expires,
		.ign = ign };
	chain_push(w, e);
	w->net[ni].holders++;
	wl_heap_update(w, e);
	w->count++;
	w->orig[o].entries++;
	return e;
}

void wl_entry_remove(struct watchlist *w, uint32_t e)
{
	struct wl_entry *en = &w->ent[e];
	struct wl_net *n = &w->net[en->net];

	chain_unlink(w, e);
	if (--n->holders == 0) {
		uint32_t *p = &w->bucket[n->hash & (w->nbucket - 1)];

		while (*p != en->net)
			p = &w->net[*p].hnext;
		*p = n->hnext;
		n->head = NIL;
		n->hnext = w->net_free;
		w->net_free = en->net;
		w->nnets--;
	}
	heap_remove(w, e);
	free(en->ign);
	en->ign = NULL;
	w->orig[en->origin].entries--;
	w->count--;
	en->net = NIL;
	en->next = w->ent_free;
	w->ent_free = e;
}

void wl_cache_free(struct wl_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nchunk; i++)
		free(c->chunk[i]);
	free(c->chunk);
	free(c->map);
	free(c);
}
