/*
 * probe_merge: identical events merged over a window (see probe.h).  The
 * events waiting are a FIFO in one array (windows close in the order they
 * opened: every window is as long), found by key through an open-
 * addressing index.  The index hashes with a random key (SipHash), so a
 * sender who picks addresses and ports cannot make its lookups slow.
 */
#include "probe.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	struct probe_event ev;
	uint64_t hash;
};

struct probe_merge {
	struct slot *q;		/* the FIFO: head, then n events */
	size_t cap, head, n;
	uint32_t *index;	/* 0: empty; else a queue position + 1 */
	size_t mask;
	unsigned window_ms;
	unsigned char key[crypto_shorthash_KEYBYTES];
};

/* What makes two events the same. */
struct merge_key {
	uint8_t kind, family, proto, pad;
	uint16_t port;
	uint8_t addr[16];
};

static uint64_t key_hash(const struct probe_merge *m,
			 const struct probe_event *e)
{
	struct merge_key k;
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t h;

	memset(&k, 0, sizeof(k));
	k.kind = e->kind;
	k.family = e->family;
	k.proto = e->proto;
	k.port = e->port;
	memcpy(k.addr, e->addr, sizeof(k.addr));
	crypto_shorthash(out, (const unsigned char *)&k, sizeof(k), m->key);
	memcpy(&h, out, sizeof(h));
	return h;
}

static bool same(const struct probe_event *a, const struct probe_event *b)
{
	return a->kind == b->kind && a->family == b->family &&
	       a->proto == b->proto && a->port == b->port &&
	       memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

struct probe_merge *probe_merge_new(size_t capacity, unsigned window_ms)
{
	struct probe_merge *m = calloc(1, sizeof(*m));
	size_t isize = 16;

	if (m == NULL || capacity == 0 || capacity > UINT32_MAX / 4)
		goto fail;
	/* At most half full: short probe sequences. */
	while (isize < capacity * 2)
		isize *= 2;
	m->q = calloc(capacity, sizeof(*m->q));
	m->index = calloc(isize, sizeof(*m->index));
	if (m->q == NULL || m->index == NULL)
		goto fail;
	m->cap = capacity;
	m->mask = isize - 1;
	m->window_ms = window_ms;
	randombytes_buf(m->key, sizeof(m->key));
	return m;
fail:
	probe_merge_free(m);
	return NULL;
}

void probe_merge_free(struct probe_merge *m)
{
	if (m == NULL)
		return;
	free(m->q);
	free(m->index);
	free(m);
}

int probe_merge_add(struct probe_merge *m, const struct probe_event *ev)
{
	uint64_t h = key_hash(m, ev);
	size_t i = (size_t)h & m->mask, pos;

	for (; m->index[i] != 0; i = (i + 1) & m->mask) {
		struct slot *s = &m->q[m->index[i] - 1];

		if (s->hash == h && same(&s->ev, ev)) {
			s->ev.count += ev->count;
			if (ev->last_ms > s->ev.last_ms)
				s->ev.last_ms = ev->last_ms;
			/* The mapping the latest packet met. */
			s->ev.generation = ev->generation;
			s->ev.real_port = ev->real_port;
			return 0;
		}
	}
	if (m->n == m->cap)
		return -ENOSPC;
	pos = (m->head + m->n++) % m->cap;
	m->q[pos].ev = *ev;
	m->q[pos].hash = h;
	m->index[i] = (uint32_t)pos + 1;
	return 1;
}

/* Takes queue position pos out of the index (backward-shift deletion:
 * no tombstones, so lookups never slow down with time). */
static void index_remove(struct probe_merge *m, size_t pos)
{
	size_t i = (size_t)m->q[pos].hash & m->mask;

	while (m->index[i] != pos + 1)
		i = (i + 1) & m->mask;
	for (size_t j = (i + 1) & m->mask; m->index[j] != 0;
	     j = (j + 1) & m->mask) {
		size_t home = (size_t)m->q[m->index[j] - 1].hash & m->mask;

		/* Entry j may move to i if its home is not in (i, j]. */
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			m->index[i] = m->index[j];
			i = j;
		}
	}
	m->index[i] = 0;
}

size_t probe_merge_flush(struct probe_merge *m, int64_t now_ms, bool all,
			 void (*emit)(void *arg, const struct probe_event *e),
			 void *arg)
{
	size_t done = 0;

	while (m->n > 0) {
		struct slot *s = &m->q[m->head];
		struct probe_event ev;

		if (!all && s->ev.time_ms + (int64_t)m->window_ms > now_ms)
			break;
		ev = s->ev;
		index_remove(m, m->head);
		m->head = (m->head + 1) % m->cap;
		m->n--;
		emit(arg, &ev);
		done++;
	}
	return done;
}

size_t probe_merge_pending(const struct probe_merge *m)
{
	return m->n;
}
