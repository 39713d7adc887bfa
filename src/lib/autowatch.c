/*
 * autowatch: distinct closed ports per source within a window (see
 * autowatch.h).  Sources live in one array, found through an open-
 * addressing index hashed with a random key (SipHash: a sender picks its
 * addresses) and kept in least-recently-seen order on a list; each has
 * room for `ports` (protocol, port, time) cells in one pool, so memory is
 * fixed at creation.
 */
#include "autowatch.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX

struct cell {
	int64_t ms;
	uint32_t port;		/* proto << 16 | port */
};

struct source {
	uint8_t family;
	uint8_t addr[16];
	uint64_t hash;
	uint32_t prev, next;	/* the recency list; prev is newer */
	uint32_t n;		/* cells in use */
};

struct autowatch {
	unsigned ports;
	int64_t window_ms;
	size_t max, used;
	struct source *src;
	struct cell *cells;	/* max * ports */
	uint32_t *index;	/* 0: empty; else a source + 1 */
	size_t mask;
	uint32_t newest, oldest, free_head;
	uint64_t evicted;
	unsigned char key[crypto_shorthash_KEYBYTES];
};

size_t autowatch_default_sources(unsigned ports)
{
	size_t n = (4u << 20) / (ports ? ports : 1);

	return n > 65536 ? 65536 : n < 1024 ? 1024 : n;
}

struct autowatch *autowatch_new(unsigned ports, unsigned seconds,
				size_t max_sources)
{
	struct autowatch *a = calloc(1, sizeof(*a));
	size_t isize = 16;

	if (a == NULL || ports < 2 || max_sources == 0 ||
	    max_sources >= NIL / 4)
		goto fail;
	while (isize < max_sources * 2)
		isize *= 2;
	a->src = calloc(max_sources, sizeof(*a->src));
	a->cells = calloc(max_sources * ports, sizeof(*a->cells));
	a->index = calloc(isize, sizeof(*a->index));
	if (a->src == NULL || a->cells == NULL || a->index == NULL)
		goto fail;
	a->ports = ports;
	a->window_ms = (int64_t)seconds * 1000;
	a->max = max_sources;
	a->mask = isize - 1;
	a->newest = a->oldest = NIL;
	/* The free list threads through next. */
	for (size_t i = 0; i < max_sources; i++)
		a->src[i].next = i + 1 < max_sources ? (uint32_t)i + 1 : NIL;
	a->free_head = 0;
	randombytes_buf(a->key, sizeof(a->key));
	return a;
fail:
	autowatch_free(a);
	return NULL;
}

void autowatch_free(struct autowatch *a)
{
	if (a == NULL)
		return;
	free(a->src);
	free(a->cells);
	free(a->index);
	free(a);
}

static uint64_t src_hash(const struct autowatch *a, uint8_t family,
			 const uint8_t addr[16])
{
	unsigned char in[17], out[crypto_shorthash_BYTES];
	uint64_t h;

	in[0] = family;
	memcpy(in + 1, addr, 16);
	crypto_shorthash(out, in, sizeof(in), a->key);
	memcpy(&h, out, sizeof(h));
	return h;
}

static void unlink_src(struct autowatch *a, uint32_t i)
{
	struct source *s = &a->src[i];

	if (s->prev != NIL)
		a->src[s->prev].next = s->next;
	else
		a->newest = s->next;
	if (s->next != NIL)
		a->src[s->next].prev = s->prev;
	else
		a->oldest = s->prev;
}

static void push_newest(struct autowatch *a, uint32_t i)
{
	struct source *s = &a->src[i];

	s->prev = NIL;
	s->next = a->newest;
	if (a->newest != NIL)
		a->src[a->newest].prev = i;
	a->newest = i;
	if (a->oldest == NIL)
		a->oldest = i;
}

/* Source i out of the index (backward-shift deletion) and the list, its
 * slot freed. */
static void drop_src(struct autowatch *a, uint32_t i)
{
	size_t p = (size_t)a->src[i].hash & a->mask;

	while (a->index[p] != i + 1)
		p = (p + 1) & a->mask;
	for (size_t j = (p + 1) & a->mask; a->index[j] != 0;
	     j = (j + 1) & a->mask) {
		size_t home = (size_t)a->src[a->index[j] - 1].hash & a->mask;

		if (p <= j ? (home <= p || home > j) : (home <= p && home > j)) {
			a->index[p] = a->index[j];
			p = j;
		}
	}
	a->index[p] = 0;
	unlink_src(a, i);
	a->src[i].next = a->free_head;
	a->free_head = i;
	a->used--;
}

/* The source's slot, found or made (the least recently seen evicted
 * when full). */
static uint32_t find_or_add(struct autowatch *a, const struct probe_event *e)
{
	uint64_t h = src_hash(a, e->family, e->addr);
	size_t p = (size_t)h & a->mask;
	uint32_t i;

	for (; a->index[p] != 0; p = (p + 1) & a->mask) {
		struct source *s = &a->src[a->index[p] - 1];

		if (s->hash == h && s->family == e->family &&
		    memcmp(s->addr, e->addr, 16) == 0)
			return a->index[p] - 1;
	}
	if (a->used == a->max) {
		drop_src(a, a->oldest);
		a->evicted++;
		/* The index changed: find the empty slot again. */
		for (p = (size_t)h & a->mask; a->index[p] != 0;
		     p = (p + 1) & a->mask)
			;
	}
	i = a->free_head;
	a->free_head = a->src[i].next;
	a->used++;
	a->src[i] = (struct source){ .family = e->family, .hash = h };
	memcpy(a->src[i].addr, e->addr, 16);
	a->index[p] = i + 1;
	push_newest(a, i);
	return i;
}

int autowatch_see(struct autowatch *a, const struct probe_event *e,
		  int64_t now_ms)
{
	uint32_t i = find_or_add(a, e), k = 0;
	struct source *s = &a->src[i];
	struct cell *c = &a->cells[(size_t)i * a->ports];
	uint32_t port = (uint32_t)e->proto << 16 | e->port;
	bool seen = false;

	unlink_src(a, i);
	push_newest(a, i);
	/* Cells out of the window go; a port seen again is fresh. */
	for (uint32_t j = 0; j < s->n; j++) {
		if (c[j].ms + a->window_ms <= now_ms)
			continue;
		if (c[j].port == port) {
			c[j].ms = now_ms;
			seen = true;
		}
		c[k++] = c[j];
	}
	s->n = k;
	if (!seen)
		c[s->n++] = (struct cell){ now_ms, port };
	if (s->n < a->ports)
		return 0;
	drop_src(a, i);
	return 1;
}

size_t autowatch_sources(const struct autowatch *a)
{
	return a->used;
}

uint64_t autowatch_evicted(const struct autowatch *a)
{
	return a->evicted;
}
