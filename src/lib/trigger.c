/*
 * trigger: what the triggers that arrived ask for, until the shuffle that
 * See trigger.h for the contract.
 */
#include "trigger.h"

#include <stdlib.h>
#include <string.h>

struct trigger_queue {
	bool all;
	unsigned sources;
	size_t *entries;	/* distinct, in arrival order */
	size_t nentries, cap;
	/* A bit per watched entry, set while it is in entries: a repeat is
	 * found in constant time.  Grown to the largest index seen. */
	uint64_t *seen;
	size_t nwords;
};

struct trigger_queue *trigger_queue_new(void)
{
	return calloc(1, sizeof(struct trigger_queue));
}

void trigger_queue_free(struct trigger_queue *q)
{
	if (q == NULL)
		return;
	free(q->entries);
	free(q->seen);
	free(q);
}

void trigger_queue_all(struct trigger_queue *q, unsigned source)
{
	q->all = true;
	q->sources |= 1u << source;
}

/* Room for idx in seen and for one more entry; false if out of memory. */
static bool make_room(struct trigger_queue *q, size_t idx)
{
	size_t words = idx / 64 + 1;

	if (words > q->nwords) {
		size_t n = q->nwords ? q->nwords : 16;
		uint64_t *grown;

		while (n < words)
			n *= 2;
		grown = realloc(q->seen, n * sizeof(*grown));
		if (grown == NULL)
			return false;
		memset(grown + q->nwords, 0, (n - q->nwords) * sizeof(*grown));
		q->seen = grown;
		q->nwords = n;
	}
	if (q->nentries == q->cap) {
		size_t n = q->cap ? q->cap * 2 : 16;
		size_t *grown = realloc(q->entries, n * sizeof(*grown));

		if (grown == NULL)
			return false;
		q->entries = grown;
		q->cap = n;
	}
	return true;
}

int trigger_queue_entry(struct trigger_queue *q, size_t idx, unsigned source)
{
	q->sources |= 1u << source;
	if (q->all)
		return 1;
	if (idx / 64 < q->nwords && (q->seen[idx / 64] >> (idx % 64)) & 1)
		return 1;
	if (q->nentries >= TRIGGER_MAX_ENTRIES || !make_room(q, idx)) {
		trigger_queue_all(q, source);
		return 0;
	}
	q->seen[idx / 64] |= 1ull << (idx % 64);
	q->entries[q->nentries++] = idx;
	return 0;
}

bool trigger_queue_pending(const struct trigger_queue *q)
{
	return q->all || q->nentries > 0;
}

void trigger_queue_peek(const struct trigger_queue *q,
			struct trigger_batch *ret)
{
	ret->all = q->all;
	ret->entries = q->all ? NULL : q->entries;
	ret->nentries = q->all ? 0 : q->nentries;
	ret->sources = q->sources;
}

void trigger_queue_clear(struct trigger_queue *q)
{
	for (size_t i = 0; i < q->nentries; i++)
		q->seen[q->entries[i] / 64] &= ~(1ull << (q->entries[i] % 64));
	q->nentries = 0;
	q->all = false;
	q->sources = 0;
}

static bool queued(const struct trigger_queue *q, size_t idx)
{
	return idx / 64 < q->nwords && (q->seen[idx / 64] >> (idx % 64)) & 1;
}

void trigger_queue_moved(struct trigger_queue *q, size_t to, size_t from)
{
	bool carry = from != to && queued(q, from);

	for (size_t i = 0; i < q->nentries; i++) {
		if (q->entries[i] == to)
			q->entries[i--] = q->entries[--q->nentries];
		else if (carry && q->entries[i] == from)
			q->entries[i] = to;
	}
	if (queued(q, to))
		q->seen[to / 64] &= ~(1ull << (to % 64));
	if (carry) {
		q->seen[from / 64] &= ~(1ull << (from % 64));
		q->seen[to / 64] |= 1ull << (to % 64);
	}
}
