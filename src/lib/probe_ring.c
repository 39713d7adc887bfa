/*
 * probe_ring: the last merged events, numbered, for `porthop events`
 * (see probe.h).
 */
#include "probe.h"

#include <stdlib.h>

struct probe_ring {
	struct probe_event *ev;
	size_t cap, n, head;	/* head: the oldest */
	uint64_t last;		/* the newest seq */
};

struct probe_ring *probe_ring_new(size_t capacity)
{
	struct probe_ring *r = calloc(1, sizeof(*r));

	if (r == NULL || capacity == 0 ||
	    (r->ev = calloc(capacity, sizeof(*r->ev))) == NULL) {
		free(r);
		return NULL;
	}
	r->cap = capacity;
	return r;
}

void probe_ring_free(struct probe_ring *r)
{
	if (r == NULL)
		return;
	free(r->ev);
	free(r);
}

uint64_t probe_ring_push(struct probe_ring *r, struct probe_event *ev)
{
	ev->seq = ++r->last;
	if (r->n == r->cap) {
		r->ev[r->head] = *ev;
		r->head = (r->head + 1) % r->cap;
	} else {
		r->ev[(r->head + r->n++) % r->cap] = *ev;
	}
	return ev->seq;
}

size_t probe_ring_since(const struct probe_ring *r, uint64_t after, size_t max,
			void (*fn)(void *arg, const struct probe_event *e),
			void *arg)
{
	uint64_t first = r->last - r->n + 1;	/* the oldest held */
	size_t skip, done = 0;

	if (r->n == 0 || after >= r->last)
		return 0;
	skip = after < first ? 0 : (size_t)(after - first + 1);
	for (size_t i = skip; i < r->n && done < max; i++, done++)
		fn(arg, &r->ev[(r->head + i) % r->cap]);
	return done;
}

uint64_t probe_ring_last(const struct probe_ring *r)
{
	return r->last;
}
