/*
 * shuffle: draws the redirect ports. See shuffle.h for the contract.
 */
#include "shuffle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* One getrandom() call serves 1024 draws. */
#define SHUFFLE_POOL 4096

struct shuffle {
	uint8_t pool[SHUFFLE_POOL];
	size_t left;
	/* Scratch list of free ports, reused between draws. */
	uint16_t free_ports[65536];
};

struct shuffle *shuffle_new(void)
{
	return calloc(1, sizeof(struct shuffle));
}

void shuffle_free(struct shuffle *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s->pool, sizeof(s->pool));
	free(s);
}

static int shuffle_u32(struct shuffle *s, uint32_t *ret)
{
	if (s->left < sizeof(uint32_t)) {
		size_t got = 0;

		while (got < sizeof(s->pool)) {
			ssize_t n = getrandom(s->pool + got,
					      sizeof(s->pool) - got, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -errno;
			got += (size_t)n;
		}
		s->left = sizeof(s->pool);
	}
	s->left -= sizeof(uint32_t);
	memcpy(ret, s->pool + s->left, sizeof(uint32_t));
	/* Used bytes are not kept around. */
	memset(s->pool + s->left, 0, sizeof(uint32_t));
	return 0;
}

int shuffle_uniform(struct shuffle *s, uint32_t bound, uint32_t *ret)
{
	/* 2^32 mod bound: values below it would make low results more
	 * likely, so they are drawn again.  bound <= 65536 here, so a retry
	 * happens with probability below 2^-16. */
	uint32_t min = (uint32_t)(-bound) % bound;
	uint32_t x = 0;

	if (bound < 2) {
		*ret = 0;
		return 0;
	}
	for (;;) {
		int r = shuffle_u32(s, &x);

		if (r < 0)
			return r;
		if (x >= min)
			break;
	}
	*ret = x % bound;
	return 0;
}

/* Partial Fisher-Yates over list[0..n): position i takes a uniform pick
 * among the ports not yet taken.  The list comes out permuted but still
 * holds the same ports, so the next draw may use it as it is. */
static int draw_from(struct shuffle *s, uint16_t *list, size_t n,
		     size_t count, uint16_t *ret_ports)
{
	if (count > n)
		return -ENOSPC;
	for (size_t i = 0; i < count; i++) {
		uint32_t j;
		int r = shuffle_uniform(s, (uint32_t)(n - i), &j);
		uint16_t t;

		if (r < 0)
			return r;
		j += (uint32_t)i;
		t = list[i];
		list[i] = list[j];
		list[j] = t;
		ret_ports[i] = list[i];
	}
	return 0;
}

int shuffle_draw(struct shuffle *s, unsigned max_port,
		 int (*is_used)(const void *arg, unsigned port),
		 const void *arg, size_t count, uint16_t *ret_ports)
{
	size_t n = 0;

	if (max_port > 65535)
		return -EINVAL;
	for (unsigned p = 1; p <= max_port; p++)
		if (!is_used(arg, p))
			s->free_ports[n++] = (uint16_t)p;
	return draw_from(s, s->free_ports, n, count, ret_ports);
}

struct shuffle_map *shuffle_map_alloc(const struct config *c)
{
	size_t n = config_watched_count(c);
	struct shuffle_map *m = calloc(1, sizeof(*m));
	struct shuffle_pair *pairs;

	if (m == NULL)
		return NULL;
	m->entries = calloc(n + 1, sizeof(*m->entries));
	/* One block for all pairs; entries point into it. */
	pairs = calloc(config_pair_count(c) + 1, sizeof(*pairs));
	if (m->entries == NULL || pairs == NULL) {
		free(pairs);
		free(m->entries);
		free(m);
		return NULL;
	}
	m->pool = pairs;
	for (size_t i = 0; i < n; i++) {
		const struct config_watched *w = config_watched(c, i);

		m->entries[i].watched = i;
		m->entries[i].pairs = pairs;
		for (int p = 0; p < CONFIG_NPROTO; p++)
			for (size_t k = 0; k < w->nports[p]; k++) {
				pairs->port = w->ports[p][k];
				pairs->proto = (uint8_t)p;
				pairs++;
			}
		m->entries[i].npairs = (size_t)(pairs - m->entries[i].pairs);
	}
	m->nentries = n;
	m->cap = n + 1;
	return m;
}

void shuffle_map_free(struct shuffle_map *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nentries; i++)
		if (m->entries[i].owned)
			free(m->entries[i].pairs);
	free(m->pool);
	free(m->entries);
	free(m);
}

/* The free ports of each protocol: 1..max_port minus its used ports. */
struct shuffle_plan {
	uint16_t *list[CONFIG_NPROTO];
	size_t n[CONFIG_NPROTO];
};

/* The knock port is never a redirect port: a watched client's datagrams
 * to its moved service would be read as knocks (and counted as junk). */
static bool is_knock_port(const struct config *c, int proto, unsigned port)
{
	const struct config_knock *k = &config_daemon(c)->knock;

	return proto == CONFIG_UDP && k->on && port == k->port;
}

struct shuffle_plan *shuffle_plan_new(const struct config *c)
{
	struct shuffle_plan *fl = calloc(1, sizeof(*fl));

	if (fl == NULL)
		return NULL;
	for (int p = 0; p < CONFIG_NPROTO; p++) {
		size_t nports;

		/* A protocol without ports has no pairs to draw for. */
		config_proto_ports(c, p, &nports);
		if (nports == 0)
			continue;
		fl->list[p] = malloc(65536 * sizeof(uint16_t));
		if (fl->list[p] == NULL) {
			shuffle_plan_free(fl);
			return NULL;
		}
		for (unsigned port = 1; port <= config_max_port(c); port++)
			if (!config_proto_port_used(c, p, port) &&
			    !is_knock_port(c, p, port))
				fl->list[p][fl->n[p]++] = (uint16_t)port;
	}
	return fl;
}

void shuffle_plan_free(struct shuffle_plan *fl)
{
	if (fl == NULL)
		return;
	for (int p = 0; p < CONFIG_NPROTO; p++)
		free(fl->list[p]);
	free(fl);
}

/* Pairs are grouped by protocol: each group is drawn at once, so the
 * ports of one protocol are distinct.  The entry changes only when every
 * draw succeeded. */
static int draw_entry(struct shuffle *s, struct shuffle_plan *fl,
		      struct shuffle_entry *e)
{
	uint16_t *ports = malloc((e->npairs + 1) * sizeof(*ports));
	int r = 0;

	if (ports == NULL)
		return -ENOMEM;
	for (size_t k = 0; r == 0 && k < e->npairs;) {
		uint8_t proto = e->pairs[k].proto;
		size_t n = 0;

		while (k + n < e->npairs && e->pairs[k + n].proto == proto)
			n++;
		r = draw_from(s, fl->list[proto], fl->n[proto], n, ports + k);
		k += n;
	}
	for (size_t k = 0; r == 0 && k < e->npairs; k++)
		e->pairs[k].redirect = ports[k];
	free(ports);
	return r;
}

int shuffle_map_redraw(struct shuffle *s, const struct config *c,
		       struct shuffle_plan *plan, struct shuffle_map *map,
		       size_t watched)
{
	struct shuffle_plan *own = NULL;
	int r;

	if (watched >= map->nentries)
		return -EINVAL;
	if (plan == NULL && (plan = own = shuffle_plan_new(c)) == NULL)
		return -ENOMEM;
	r = draw_entry(s, plan, &map->entries[watched]);
	shuffle_plan_free(own);
	return r;
}

int shuffle_map_new(struct shuffle *s, const struct config *c,
		    struct shuffle_plan *plan, struct shuffle_map **ret_map)
{
	struct shuffle_map *m = shuffle_map_alloc(c);
	struct shuffle_plan *own = NULL;
	int r = 0;

	if (m == NULL)
		return -ENOMEM;
	if (plan == NULL && (plan = own = shuffle_plan_new(c)) == NULL)
		r = -ENOMEM;
	/* The free lists are the same for every address. */
	for (size_t i = 0; r == 0 && i < m->nentries; i++)
		r = draw_entry(s, plan, &m->entries[i]);
	shuffle_plan_free(own);
	if (r < 0) {
		shuffle_map_free(m);
		return r;
	}
	*ret_map = m;
	return 0;
}

int shuffle_map_append(struct shuffle *s, const struct config *c,
		       struct shuffle_plan *plan, struct shuffle_map *m,
		       size_t watched)
{
	const struct config_watched *w = config_watched(c, watched);
	struct shuffle_plan *own = NULL;
	struct shuffle_entry e = { .watched = watched, .owned = true };
	int r;

	if (w == NULL || watched != m->nentries)
		return -EINVAL;
	if (m->nentries + 1 > m->cap) {
		size_t cap = (m->nentries + 1) * 2;
		struct shuffle_entry *n = realloc(m->entries, cap * sizeof(*n));

		if (n == NULL)
			return -ENOMEM;
		m->entries = n;
		m->cap = cap;
	}
	e.pairs = malloc((w->nports[0] + w->nports[1] + 1) * sizeof(*e.pairs));
	if (e.pairs == NULL)
		return -ENOMEM;
	for (int p = 0; p < CONFIG_NPROTO; p++)
		for (size_t k = 0; k < w->nports[p]; k++)
			e.pairs[e.npairs++] = (struct shuffle_pair){
				.port = w->ports[p][k], .proto = (uint8_t)p };
	if (plan == NULL && (plan = own = shuffle_plan_new(c)) == NULL)
		r = -ENOMEM;
	else
		r = draw_entry(s, plan, &e);
	shuffle_plan_free(own);
	if (r < 0) {
		free(e.pairs);
		return r;
	}
	m->entries[m->nentries++] = e;
	return 0;
}

void shuffle_map_take(struct shuffle_map *m, size_t idx,
		      struct shuffle_entry *ret)
{
	*ret = m->entries[idx];
	m->entries[idx] = m->entries[--m->nentries];
	m->entries[idx].watched = idx;
}

void shuffle_map_put_back(struct shuffle_map *m, size_t idx,
			  const struct shuffle_entry *e)
{
	if (idx != m->nentries) {
		m->entries[m->nentries] = m->entries[idx];
		m->entries[m->nentries].watched = m->nentries;
	}
	m->nentries++;
	m->entries[idx] = *e;
	m->entries[idx].watched = idx;
}

void shuffle_entry_release(struct shuffle_entry *e)
{
	if (e->owned)
		free(e->pairs);
	e->pairs = NULL;
	e->npairs = 0;
}

void shuffle_map_remove(struct shuffle_map *m, size_t idx)
{
	struct shuffle_entry e;

	if (idx >= m->nentries)
		return;
	shuffle_map_take(m, idx, &e);
	shuffle_entry_release(&e);
}

struct shuffle_map *shuffle_map_copy(const struct config *c,
				     const struct shuffle_map *src)
{
	struct shuffle_map *m = shuffle_map_alloc(c);

	if (m == NULL)
		return NULL;
	for (size_t i = 0; i < m->nentries && i < src->nentries; i++)
		memcpy(m->entries[i].pairs, src->entries[i].pairs,
		       m->entries[i].npairs * sizeof(struct shuffle_pair));
	return m;
}

struct shuffle_entry *shuffle_entries_save(const struct shuffle_map *m,
					   const size_t *idx, size_t n)
{
	struct shuffle_entry *saved = calloc(n, sizeof(*saved));

	for (size_t i = 0; saved && i < n; i++) {
		const struct shuffle_entry *cur = &m->entries[idx[i]];

		saved[i] = *cur;
		saved[i].pairs = malloc((cur->npairs + 1) * sizeof(*cur->pairs));
		if (saved[i].pairs == NULL) {
			for (size_t k = 0; k < i; k++)
				free(saved[k].pairs);
			free(saved);
			return NULL;
		}
		memcpy(saved[i].pairs, cur->pairs,
		       cur->npairs * sizeof(*cur->pairs));
	}
	return saved;
}
