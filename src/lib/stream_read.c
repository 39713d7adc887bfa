/*
 * stream_read: the fleet stream's reads.  A read's entries decoded and
 * applied in runs, the reads in flight acknowledged in order once their
 * commits are done, a retry, triggers acknowledged after the next
 * shuffle.  See stream.h for the contract, stream_private.h for what is
 * shared with stream.c.
 */
#include "stream_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_fleet.h"
#include "timems.h"

static void batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	free(b->ids);
	free(b->verdict);
	free(b->held);
	free(b->tickets);
	free(b);
}

/* Orphans the reads in flight: their entries are read again from the
 * pending list at the next connection. */
void stream_orphan_reads(struct stream *s)
{
	struct batch *b = s->head, *next;

	s->head = s->tail = NULL;
	s->inflight = 0;
	s->retry_wait = s->restart_after_read = false;
	for (; b; b = next) {
		next = b->next;
		b->s = NULL;
		b->next = NULL;
		if (b->complete)
			batch_free(b);
	}
}

static void xack(struct stream *s, char (*ids)[FLEET_ID_MAX], size_t n)
{
	const char **argv;
	size_t i = 0;

	if (n == 0 || s->data.ac == NULL)
		return;
	argv = calloc(n + 3, sizeof(*argv));
	if (argv == NULL)
		return;	/* read again later: harmless */
	argv[i++] = "XACK";
	argv[i++] = s->name;
	argv[i++] = s->group;
	for (size_t k = 0; k < n; k++)
		argv[i++] = ids[k];
	redisAsyncCommandArgv(s->data.ac, NULL, NULL, (int)i, argv, NULL);
	free(argv);
	s->st.acknowledged += n;
	snprintf(s->st.last_acked, sizeof(s->st.last_acked), "%s", ids[n - 1]);
}

/* The head read decided: acknowledge what is done.  After an entry to
 * retry, nothing more (see retry_wait). */
static void batch_ack(struct stream *s, struct batch *b)
{
	char (*ack)[FLEET_ID_MAX] = calloc(b->n + 1, sizeof(*ack));
	size_t nack = 0;

	for (size_t i = 0; ack && i < b->n; i++) {
		if (b->held[i])
			continue;
		if (b->verdict[i] == FLEET_RETRY) {
			s->retry_wait = true;
			s->st.retried++;
		}
		if (s->retry_wait)
			continue;
		if (b->verdict[i] == FLEET_ACK_REFUSED)
			s->st.refused++;
		memcpy(ack[nack++], b->ids[i], FLEET_ID_MAX);
	}
	xack(s, ack, nack);
	free(ack);
}

/* Acknowledges the decided reads at the head, in order; reads on. */
static void drain(struct stream *s)
{
	struct batch *b;

	while ((b = s->head) != NULL && b->complete) {
		s->head = b->next;
		if (s->head == NULL)
			s->tail = NULL;
		s->inflight--;
		batch_ack(s, b);
		batch_free(b);
	}
	if (s->retry_wait) {
		/* The kernel or the state file refused: those entries (and
		 * the ones after them) stay pending; read them again in a
		 * second, once the reads in flight are decided. */
		if (s->head == NULL &&
		    (!evtimer_pending(s->read_ev, NULL) || s->read_paced)) {
			s->read_paced = false;
			stream_arm_ms(s->read_ev, 1000);
		}
		return;
	}
	stream_issue_read(s);
}

/* Every entry of the batch decided. */
static void batch_finish(struct batch *b)
{
	struct stream *s = b->s;

	if (s == NULL) {
		batch_free(b);
		return;
	}
	b->complete = true;
	drain(s);
}

/* A part of a run decided (now, or after the group commit). */
static void on_part_done(void *arg, size_t from, size_t n,
			 enum fleet_verdict v)
{
	struct ticket *t = arg;
	struct batch *b = t->b;

	for (size_t i = 0; i < n; i++)
		b->verdict[t->i + from + i] = v;
	b->outstanding -= n;
	if (b->outstanding == 0 && !b->dispatching)
		batch_finish(b);
}

static int trig_push(struct stream *s, const char *id)
{
	if (s->ntrig == s->cap_trig) {
		size_t cap = s->cap_trig ? s->cap_trig * 2 : 64;
		char (*p)[FLEET_ID_MAX] = realloc(s->trig, cap * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		s->trig = p;
		s->cap_trig = cap;
	}
	if (s->ntrig == 0)
		s->trig_mark = core_shuffles(s->core);
	snprintf(s->trig[s->ntrig++], FLEET_ID_MAX, "%s", id);
	return 0;
}

void stream_shuffled(struct stream *s)
{
	if (s == NULL || s->ntrig == 0 ||
	    core_shuffles(s->core) <= s->trig_mark)
		return;
	/* Disconnected: they are read again from the pending list. */
	xack(s, s->trig, s->ntrig);
	s->ntrig = 0;
}

/* ---- reading ---- */

const redisReply *stream_field(const redisReply *fields, const char *name)
{
	for (size_t i = 0; fields && i + 1 < fields->elements; i += 2)
		if (fields->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(fields->element[i]->str, name) == 0)
			return fields->element[i + 1];
	return NULL;
}

/* The trace of entries applied: "ID DELAY_MS" pairs, a line for many
 * (one write a line: with 50 hosts on one machine, a write per entry was
 * a measurable share of the load the trace measures). */
static void trace_flush(struct stream *s)
{
	if (s->trace_len == 0)
		return;
	stream_say(s, STREAM_TRACE, 0, "%s", s->trace_buf);
	s->trace_len = 0;
	s->trace_buf[0] = '\0';
}

static void trace_add(struct stream *s, const char *id, double ms)
{
	char one[FLEET_ID_MAX + 32];
	int n = snprintf(one, sizeof(one), "%s%s %.3f", s->trace_len ? " " : "",
			 id, ms);

	if (n < 0 || (size_t)n >= sizeof(one))
		return;
	if (s->trace_len + (size_t)n >= sizeof(s->trace_buf))
		trace_flush(s);
	if (s->trace_len == 0 && one[0] == ' ')
		memmove(one, one + 1, (size_t)n--);
	memcpy(s->trace_buf + s->trace_len, one, (size_t)n + 1);
	s->trace_len += (size_t)n;
}

/* An entry applied (or refused) now: its delay since its XADD. */
static void observe(struct stream *s, const char *id)
{
	struct fleet_id fid;
	struct timespec now;
	double ms;

	if (fleet_id_parse(id, &fid) < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	ms = (double)now.tv_sec * 1e3 + (double)now.tv_nsec / 1e6 -
	     (double)fid.ms;
	if (ms < 0)
		ms = 0;	/* clocks apart */
	metrics_observe(&s->st.delay, ms / 1e3);
	if (s->trace)
		trace_add(s, id, ms);
}

/* entries: [[id, [field, value, ...] | nil], ...]
 *
 * Each entry is decoded first; then the read is applied in runs
 * (fleet_run): consecutive watches of one origin in one core_watch_add,
 * consecutive unwatches in one core_watch_del, each a kernel transaction
 * and a group commit for the run instead of one per entry; a trigger
 * ends a run, so that it sees the watches before it.  The read is
 * acknowledged with one XACK once every entry is decided. */
static void dispatch(struct stream *s, const redisReply *entries)
{
	struct batch *b = calloc(1, sizeof(*b));
	size_t n = entries->elements, len;
	struct fleet_op *ops = calloc(n + 1, sizeof(*ops));
	bool *ok = calloc(n + 1, sizeof(*ok));
	int64_t now = (int64_t)time(NULL);

	if (b == NULL || ops == NULL || ok == NULL ||
	    (b->ids = calloc(n + 1, sizeof(*b->ids))) == NULL ||
	    (b->verdict = calloc(n + 1, sizeof(*b->verdict))) == NULL ||
	    (b->held = calloc(n + 1, sizeof(*b->held))) == NULL ||
	    (b->tickets = calloc(n + 1, sizeof(*b->tickets))) == NULL) {
		batch_free(b);
		free(ops);
		free(ok);
		stream_drop_later(&s->data, "out of memory");
		return;
	}
	b->s = s;
	b->n = n;
	b->dispatching = true;
	if (s->tail)
		s->tail->next = b;
	else
		s->head = b;
	s->tail = b;
	s->inflight++;
	for (size_t i = 0; i < n; i++) {
		const redisReply *e = entries->element[i], *m;
		struct fleet_id fid;
		int x = 0;

		b->verdict[i] = FLEET_ACK;
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING) {
			b->held[i] = true;
			continue;
		}
		snprintf(b->ids[i], FLEET_ID_MAX, "%s", e->element[0]->str);
		s->st.read++;
		if (s->pending_phase) {
			s->st.redelivered++;
			snprintf(s->cursor, sizeof(s->cursor), "%s",
				 e->element[0]->str);
		}
		m = stream_field(e->element[1]->type == REDIS_REPLY_ARRAY ?
			  e->element[1] : NULL, "m");
		if (m == NULL || m->type != REDIS_REPLY_STRING) {
			/* Trimmed while pending (nil), or not ours: done. */
			if (e->element[1]->type == REDIS_REPLY_ARRAY)
				b->verdict[i] = FLEET_ACK_REFUSED;
			continue;
		}
		if (fleet_id_parse(b->ids[i], &fid) < 0 ||
		    (x = core_fleet_decode(s->core, m->str, m->len, &fid,
					   &ops[i])) < 0) {
			s->st.replayed += x == -ESTALE;
			b->verdict[i] = FLEET_ACK_REFUSED;
			observe(s, b->ids[i]);
			continue;
		}
		ok[i] = true;
	}
	for (size_t i = 0; i < n; i += len) {
		enum fleet_run_kind kind;
		enum core_fleet_outcome out;

		len = fleet_run(&ops[i], &ok[i], n - i, now, n, &kind);
		switch (kind) {
		case FLEET_RUN_SKIP:
			break;
		case FLEET_RUN_TRIGGER:
			out = core_fleet_trigger(s->core, &ops[i],
						 &b->verdict[i]);
			observe(s, b->ids[i]);
			/* Acknowledged after the next shuffle, apart. */
			if (out == CORE_FLEET_AFTER_SHUFFLE &&
			    trig_push(s, b->ids[i]) == 0)
				b->held[i] = true;
			break;
		case FLEET_RUN_ADD:
		case FLEET_RUN_DEL:
			b->tickets[i] = (struct ticket){ b, i };
			b->outstanding += len;
			core_fleet_apply(s->core, kind, &ops[i], len,
					 on_part_done, &b->tickets[i]);
			/* The kernel has them (or refused them). */
			for (size_t k = i; k < i + len; k++)
				observe(s, b->ids[k]);
			break;
		}
	}
	trace_flush(s);
	free(ops);
	free(ok);
	b->dispatching = false;
	if (b->outstanding == 0)
		batch_finish(b);
	else if (s->pending_phase || n >= s->batch_max)
		stream_issue_read(s);	/* while the commit is outstanding */
}

static void on_read(redisAsyncContext *ac, void *reply, void *priv)
{
	struct stream *s = priv;
	redisReply *r = stream_reply_of(&s->data, ac, reply);
	const redisReply *entries;

	if (r == NULL)
		return;
	s->reading = false;
	if (s->retry_wait || s->restart_after_read) {
		/* Entries after one to retry: they stay pending, and are
		 * read again in order. */
		if (s->restart_after_read) {
			s->restart_after_read = false;
			stream_issue_read(s);
		}
		return;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		char why[512];

		/* NOGROUP: the stream or the group went (a failover to a
		 * replica that had not seen them): set up again. */
		snprintf(why, sizeof(why), "XREADGROUP refused: %.200s", r->str);
		stream_drop_later(&s->data, why);
		return;
	}
	if (r->type == REDIS_REPLY_NIL) {	/* BLOCK timed out */
		stream_issue_read(s);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_ARRAY ||
	    r->element[0]->elements < 2 ||
	    r->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
		stream_drop_later(&s->data, "XREADGROUP: unexpected reply");
		return;
	}
	entries = r->element[0]->element[1];
	/* An entry without a string ID is no stream entry Redis sends: its
	 * server is not to be followed (and a pending read that cannot move
	 * its cursor past it would ask again at once, for ever). */
	for (size_t i = 0; i < entries->elements; i++) {
		const redisReply *e = entries->element[i];

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING) {
			stream_drop_later(&s->data, "XREADGROUP: an entry "
					  "without a string ID");
			return;
		}
	}
	if (entries->elements == 0) {
		/* The pending list is read through: new entries now. */
		s->pending_phase = false;
		stream_issue_read(s);
		return;
	}
	dispatch(s, entries);
}

/* New entries are read at most once a read interval: true if this read
 * must wait (read_ev is armed for it).  The pending list is read at once:
 * it is there already. */
static bool paced(struct stream *s)
{
	uint64_t now;

	if (s->pending_phase || s->read_interval_ms == 0)
		return false;
	if (s->read_paced)
		return true;
	now = timems_mono();
	if (s->last_read_ms != 0 &&
	    now < s->last_read_ms + s->read_interval_ms) {
		if (evtimer_pending(s->read_ev, NULL))
			return true;	/* a retry's timer reads then */
		s->read_paced = true;
		stream_arm_ms(s->read_ev,
			      (unsigned)(s->last_read_ms + s->read_interval_ms -
					 now));
		return true;
	}
	s->last_read_ms = now;
	return false;
}

void stream_issue_read(struct stream *s)
{
	char count[16], block[16];

	if (s->data.ac == NULL || s->reading || s->stopping || !s->st.up ||
	    s->retry_wait || s->restart_after_read ||
	    s->inflight >= STREAM_INFLIGHT_MAX || paced(s))
		return;
	snprintf(count, sizeof(count), "%u", s->batch_max);
	snprintf(block, sizeof(block), "%u", s->block_ms);
	if (s->pending_phase) {
		const char *argv[] = { "XREADGROUP", "GROUP", s->group,
				       s->group, "COUNT", count, "STREAMS",
				       s->name, s->cursor };

		redisAsyncCommandArgv(s->data.ac, on_read, s, 9, argv, NULL);
	} else {
		const char *argv[] = { "XREADGROUP", "GROUP", s->group,
				       s->group, "COUNT", count, "BLOCK",
				       block, "STREAMS", s->name, ">" };

		redisAsyncCommandArgv(s->data.ac, on_read, s, 11, argv, NULL);
	}
	s->reading = true;
}

void stream_on_read_timer(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;

	(void)fd;
	(void)what;
	s->read_paced = false;
	if (s->retry_wait && s->head != NULL)
		return;	/* the pacing's timer: drain() arms the retry's once
			 * the reads in flight are decided */
	if (s->retry_wait) {
		/* Every read in flight is decided: the pending list again,
		 * from its start, once the read on the wire is back. */
		s->retry_wait = false;
		s->pending_phase = true;
		snprintf(s->cursor, sizeof(s->cursor), "0");
		s->restart_after_read = s->reading;
	}
	stream_issue_read(s);
}
