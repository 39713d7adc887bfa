/*
 * watchlist: the runtime watch list's bookkeeping (see watchlist.h):
 * origins and their counters, changes, lookups and the ordered walks.
 * The structures under it are watchlist_store.c's (watchlist_private.h
 * says how they are laid out).
 */
#include "watchlist_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

bool watchlist_origin_valid(const char *name)
{
	size_t n = 0;

	if (name == NULL)
		return false;
	for (; name[n]; n++) {
		char c = name[n];

		if (n >= WATCHLIST_ORIGIN_MAX ||
		    !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return n > 0;
}

/* --- origins ----------------------------------------------------------- */

/* The index of origin name, or -1; *ret_pos: its place in name order. */
static int origin_find(const struct watchlist *w, const char *name,
		       size_t *ret_pos)
{
	size_t lo = 0, hi = w->norig;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int r = strcmp(w->orig[w->by_name[mid]].name, name);

		if (r == 0) {
			if (ret_pos)
				*ret_pos = mid;
			return w->by_name[mid];
		}
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (ret_pos)
		*ret_pos = lo;
	return -1;
}

/* Origin name (valid) interned: its index, or -E2BIG when full. */
static int origin_intern(struct watchlist *w, const char *name)
{
	size_t pos;
	int o = origin_find(w, name, &pos);

	if (o >= 0)
		return o;
	if (w->norig >= WATCHLIST_MAX_ORIGINS)
		return -E2BIG;
	o = (int)w->norig;
	snprintf(w->orig[o].name, sizeof(w->orig[o].name), "%s", name);
	memmove(w->by_name + pos + 1, w->by_name + pos,
		(w->norig - pos) * sizeof(*w->by_name));
	w->by_name[pos] = (uint16_t)o;
	w->norig++;
	return o;
}

/* --- construction ------------------------------------------------------ */

struct watchlist *watchlist_new(size_t max_entries)
{
	struct watchlist *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	/* Indexes are 32 bits, NIL reserved. */
	w->max = max_entries < NIL - 1 ? max_entries : NIL - 1;
	w->ent_free = w->net_free = NIL;
	w->orig = calloc(WATCHLIST_MAX_ORIGINS, sizeof(*w->orig));
	w->by_name = calloc(WATCHLIST_MAX_ORIGINS, sizeof(*w->by_name));
	w->cache = calloc(1, sizeof(*w->cache));
	if (w->orig == NULL || w->by_name == NULL || w->cache == NULL ||
	    wl_cache_grow(w->cache) < 0)
		goto fail;
	/* Without entropy (early boot) a fixed key still hashes correctly;
	 * only the flooding defence is lost. */
	if (getrandom(w->seed, sizeof(w->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(w->seed))
		memset(w->seed, 0x5a, sizeof(w->seed));
	return w;
fail:
	watchlist_free(w);
	return NULL;
}

void watchlist_free(struct watchlist *w)
{
	if (w == NULL)
		return;
	for (uint32_t e = 0; e < w->ent_top; e++)
		if (w->ent[e].net != NIL)
			free(w->ent[e].ign);
	wl_cache_free(w->cache);
	free(w->ent);
	free(w->net);
	free(w->bucket);
	free(w->heap);
	free(w->orig);
	free(w->by_name);
	free(w);
}

/* --- changes ----------------------------------------------------------- */

int watchlist_put(struct watchlist *w, const struct config_net *net,
		  const char *origin, int64_t added, int64_t expires,
		  const uint16_t *const ignore[CONFIG_NPROTO],
		  const size_t nignore[CONFIG_NPROTO])
{
	struct wl_key k;
	struct wl_ign *ign;
	uint32_t h, ni, e = NIL;
	int o, r;

	if (!watchlist_origin_valid(origin) || wl_key_of(net, &k) < 0)
		return -EINVAL;
	r = wl_ign_copy(ignore, nignore, &ign);
	if (r < 0)
		return r;
	h = wl_hash(w, &k);
	ni = wl_net_find(w, &k, h);
	o = origin_find(w, origin, NULL);
	if (ni != NIL && o >= 0)
		e = wl_chain_find(w, ni, o);
	if (e != NIL) {
		free(w->ent[e].ign);
		w->ent[e].ign = ign;
		w->ent[e].expires = expires;
		wl_heap_update(w, e);
		wl_make_latest(w, e);
		w->orig[o].refreshes++;
		wl_cache_reset(w->cache);
		return 0;
	}
	r = -E2BIG;
	if (w->count >= w->max ||
	    (o < 0 && w->norig >= WATCHLIST_MAX_ORIGINS))
		goto fail;
	r = wl_reserve(w, ni == NIL);
	if (r < 0)
		goto fail;
	if (o < 0)
		o = origin_intern(w, origin);
	wl_entry_add(w, ni, &k, h, o, added, expires, ign);
	w->orig[o].adds++;
	wl_cache_reset(w->cache);
	return 1;
fail:
	free(ign);
	return r;
}

int watchlist_del(struct watchlist *w, const struct config_net *net,
		  const char *origin)
{
	uint32_t ni = wl_net_lookup(w, net), e;
	int o = origin ? origin_find(w, origin, NULL) : -1;

	if (ni == NIL || o < 0 || (e = wl_chain_find(w, ni, o)) == NIL)
		return -ENOENT;
	w->orig[o].deletes++;
	wl_entry_remove(w, e);
	wl_cache_reset(w->cache);
	return 0;
}

size_t watchlist_flush(struct watchlist *w, const char *origin,
		       void (*fn)(void *arg, const struct watchlist_item *it),
		       void *arg)
{
	int o = origin ? origin_find(w, origin, NULL) : -1;
	struct watchlist_item it;
	size_t n = 0;

	if (o < 0)
		return 0;
	for (uint32_t e = 0; e < w->ent_top && w->orig[o].entries; e++) {
		if (w->ent[e].net == NIL || w->ent[e].origin != o)
			continue;
		if (fn) {
			wl_fill_item(w, e, &it);
			fn(arg, &it);
		}
		w->orig[o].deletes++;
		wl_entry_remove(w, e);
		n++;
	}
	if (n)
		wl_cache_reset(w->cache);
	return n;
}

size_t watchlist_expire(struct watchlist *w, int64_t now, size_t max,
			void (*fn)(void *arg, const struct watchlist_item *it),
			void *arg)
{
	struct watchlist_item it;
	size_t n = 0;

	while (w->nheap && w->ent[w->heap[0]].expires <= now &&
	       (max == 0 || n < max)) {
		uint32_t e = w->heap[0];

		if (fn) {
			wl_fill_item(w, e, &it);
			fn(arg, &it);
		}
		w->orig[w->ent[e].origin].expiries++;
		wl_entry_remove(w, e);
		n++;
	}
	if (n)
		wl_cache_reset(w->cache);
	return n;
}

/* --- lookups ----------------------------------------------------------- */

const struct watchlist_item *watchlist_get(const struct watchlist *w,
					   const struct config_net *net,
					   const char *origin)
{
	uint32_t ni = wl_net_lookup(w, net);
	int o = origin ? origin_find(w, origin, NULL) : -1;

	if (ni == NIL || o < 0)
		return NULL;
	return wl_cached(w, wl_chain_find(w, ni, o));
}

bool watchlist_has(const struct watchlist *w, const struct config_net *net,
		   const char *origin)
{
	uint32_t ni = wl_net_lookup(w, net);
	int o = origin ? origin_find(w, origin, NULL) : -1;

	return ni != NIL && o >= 0 && wl_chain_find(w, ni, o) != NIL;
}

size_t watchlist_holders(const struct watchlist *w,
			 const struct config_net *net)
{
	uint32_t ni = wl_net_lookup(w, net);

	return ni == NIL ? 0 : w->net[ni].holders;
}

const struct watchlist_item *watchlist_latest(const struct watchlist *w,
					      const struct config_net *net)
{
	uint32_t ni = wl_net_lookup(w, net);

	return ni == NIL ? NULL : wl_cached(w, w->net[ni].head);
}

int64_t watchlist_next_expiry(const struct watchlist *w)
{
	return w->nheap ? w->ent[w->heap[0]].expires : 0;
}

size_t watchlist_count(const struct watchlist *w)
{
	return w->count;
}

/* --- ordered walks ----------------------------------------------------- */

struct wl_sort {
	struct wl_key key;
	uint16_t rank;		/* the origin's place in name order */
	uint32_t e;
};

static int sort_cmp(const void *a, const void *b)
{
	const struct wl_sort *x = a, *y = b;
	int r = memcmp(&x->key, &y->key, sizeof(x->key));

	return r ? r : (int)x->rank - (int)y->rank;
}

/* Calls fn on entries in order; by_net: one (the latest) per network. */
static int walk(const struct watchlist *w, const char *origin, bool by_net,
		int (*fn)(void *arg, const struct watchlist_item *it),
		void *arg)
{
	uint16_t rank[WATCHLIST_MAX_ORIGINS];
	struct watchlist_item it;
	struct wl_sort *v;
	size_t n = 0;
	int o = -1, r = 0;

	if (origin && (o = origin_find(w, origin, NULL)) < 0)
		return 0;
	v = malloc(((by_net ? w->nnets : w->count) + 1) * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < w->norig; i++)
		rank[w->by_name[i]] = (uint16_t)i;
	if (by_net) {
		for (uint32_t i = 0; i < w->net_top; i++)
			if (w->net[i].head != NIL)
				v[n++] = (struct wl_sort){ w->net[i].key, 0,
							   w->net[i].head };
	} else {
		for (uint32_t e = 0; e < w->ent_top; e++)
			if (w->ent[e].net != NIL &&
			    (o < 0 || w->ent[e].origin == o))
				v[n++] = (struct wl_sort){
					w->net[w->ent[e].net].key,
					rank[w->ent[e].origin], e };
	}
	qsort(v, n, sizeof(*v), sort_cmp);
	for (size_t i = 0; i < n && r == 0; i++) {
		wl_fill_item(w, v[i].e, &it);
		r = fn(arg, &it);
	}
	free(v);
	return r;
}

int watchlist_foreach(const struct watchlist *w, const char *origin,
		      int (*fn)(void *arg, const struct watchlist_item *it),
		      void *arg)
{
	return walk(w, origin, false, fn, arg);
}

int watchlist_foreach_net(const struct watchlist *w,
			  int (*fn)(void *arg, const struct watchlist_item *it),
			  void *arg)
{
	return walk(w, NULL, true, fn, arg);
}

/* --- origin counters --------------------------------------------------- */

size_t watchlist_origin_count(const struct watchlist *w)
{
	return w->norig;
}

const struct watchlist_origin_stats *watchlist_origin(const struct watchlist *w,
						      size_t i)
{
	return i < w->norig ? &w->orig[w->by_name[i]] : NULL;
}

void watchlist_count_refused(struct watchlist *w, const char *origin)
{
	int o;

	if (!watchlist_origin_valid(origin))
		return;
	/* A refusal costs its sender nothing: it may make a new origin only
	 * while half the table is free, so that refusals with made-up
	 * origins never leave a detector's first add nowhere to go. */
	o = w->norig < WATCHLIST_MAX_ORIGINS / 2 ? origin_intern(w, origin) :
						  origin_find(w, origin, NULL);
	if (o >= 0)
		w->orig[o].refused++;
}

/* --- what may be watched ----------------------------------------------- */

/* Whether n and the range (addr, len) of the same family share an
 * address: their first min(len) bits agree. */
static bool overlaps(const struct config_net *n, const unsigned char *addr,
		     unsigned len)
{
	unsigned bits = n->prefix_len < len ? n->prefix_len : len;

	for (unsigned i = 0; i < bits; i++) {
		unsigned m = 0x80u >> (i % 8);

		if ((n->addr[i / 8] & m) != (addr[i / 8] & m))
			return false;
	}
	return true;
}

int watchlist_check_net(const struct config_net *net, unsigned min_len_v4,
			unsigned min_len_v6, char *why, size_t why_len)
{
	static const struct {
		int family;
		unsigned char addr[16];
		unsigned len;
		const char *what, *expected;
	} refused[] = {
		{ AF_INET, { 0 }, 32, "the unspecified address", NULL },
		{ AF_INET, { 255, 255, 255, 255 }, 32, "the broadcast address",
		  NULL },
		{ AF_INET, { 224 }, 4, "multicast (224.0.0.0/4)", NULL },
		{ AF_INET6, { 0 }, 128, "the unspecified address", NULL },
		{ AF_INET6, { 0xff }, 8, "multicast (ff00::/8)", NULL },
		/* Linux drops IPv6 packets from such sources; an inet table
		 * sees IPv4 clients as IPv4. */
		{ AF_INET6, { [10] = 0xff, [11] = 0xff }, 96,
		  "the IPv4-mapped addresses (::ffff:0:0/96), which no packet "
		  "carries", "the IPv4 form" },
	};
	struct config_net n;
	struct wl_key k;
	unsigned full, min;
	char dummy[1];

	if (why == NULL || why_len == 0) {
		why = dummy;
		why_len = sizeof(dummy);
	}
	if (wl_key_of(net, &k) < 0) {
		snprintf(why, why_len, "not an IPv4 or IPv6 address or prefix");
		return -EINVAL;
	}
	wl_net_of(&k, &n);
	full = n.family == AF_INET ? 32 : 128;
	min = n.family == AF_INET ? min_len_v4 : min_len_v6;
	if (n.prefix_len < min) {
		snprintf(why, why_len, "prefix %s is wider than /%u, the least "
			 "porthop accepts (min_prefix_len_v%c)", n.text, min,
			 n.family == AF_INET ? '4' : '6');
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (refused[i].family != n.family ||
		    !overlaps(&n, refused[i].addr, refused[i].len))
			continue;
		snprintf(why, why_len, "%s %s %s; expected %s", n.text,
			 n.prefix_len < refused[i].len ? "covers" :
			 refused[i].len == full ? "is" : "lies in",
			 refused[i].what, refused[i].expected ?
			 refused[i].expected : "a unicast address or prefix");
		return -EINVAL;
	}
	return 0;
}
