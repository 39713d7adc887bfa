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
	if (count > n)
		return -ENOSPC;
	/* Partial Fisher-Yates: position i takes a uniform pick among the
	 * ports not yet taken. */
	for (size_t i = 0; i < count; i++) {
		uint32_t j;
		int r = shuffle_uniform(s, (uint32_t)(n - i), &j);
		uint16_t t;

		if (r < 0)
			return r;
		j += (uint32_t)i;
		t = s->free_ports[i];
		s->free_ports[i] = s->free_ports[j];
		s->free_ports[j] = t;
		ret_ports[i] = s->free_ports[i];
	}
	return 0;
}

struct used_arg {
	const struct config *c;
	enum config_proto proto;
};

static int config_used_cb(const void *arg, unsigned port)
{
	const struct used_arg *u = arg;

	return config_proto_port_used(u->c, u->proto, port);
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
	return m;
}

void shuffle_map_free(struct shuffle_map *m)
{
	if (m == NULL)
		return;
	free(m->pool);
	free(m->entries);
	free(m);
}

int shuffle_map_redraw(struct shuffle *s, const struct config *c,
		       struct shuffle_map *map, size_t watched)
{
	struct shuffle_entry *e;
	uint16_t *ports;
	int r = 0;

	if (watched >= map->nentries)
		return -EINVAL;
	e = &map->entries[watched];
	ports = malloc((e->npairs + 1) * sizeof(*ports));
	if (ports == NULL)
		return -ENOMEM;
	/* Pairs are grouped by protocol: draw each group at once, so the
	 * ports of one protocol are distinct. */
	for (size_t k = 0; r == 0 && k < e->npairs;) {
		struct used_arg u = { c, e->pairs[k].proto };
		size_t n = 0;

		while (k + n < e->npairs && e->pairs[k + n].proto == u.proto)
			n++;
		r = shuffle_draw(s, config_max_port(c), config_used_cb, &u, n,
				 ports + k);
		k += n;
	}
	/* The entry changes only when the whole draw succeeded. */
	for (size_t k = 0; r == 0 && k < e->npairs; k++)
		e->pairs[k].redirect = ports[k];
	free(ports);
	return r;
}

int shuffle_map_new(struct shuffle *s, const struct config *c,
		    struct shuffle_map **ret_map)
{
	struct shuffle_map *m = shuffle_map_alloc(c);
	int r = 0;

	if (m == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < m->nentries; i++) {
		r = shuffle_map_redraw(s, c, m, i);
		if (r < 0)
			goto out;
	}
	*ret_map = m;
	m = NULL;
out:
	shuffle_map_free(m);
	return r;
}
