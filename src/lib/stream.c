/*
 * stream: the fleet feed's consumer.  See stream.h for the contract.
 *
 * Three hiredis async contexts ("links"): the data connection to the
 * primary; a one-shot query to a sentinel (which primary?); and a
 * subscription to a sentinel's +switch-master.  hiredis frees a context
 * after its disconnect callback and must not be freed inside its own
 * callbacks: a link that must go is dropped from a zero-delay timer, its
 * data pointer cleared first so that no callback of ours runs for it.
 */
#include "stream.h"
#include "rconn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#include <hiredis/adapters/libevent.h>
#pragma GCC diagnostic pop

#include "core_fleet.h"
#include "fleet.h"

enum link_kind { LINK_DATA, LINK_QUERY, LINK_SUB };

struct link {
	struct stream *s;
	enum link_kind kind;
	redisAsyncContext *ac;		/* NULL while closed */
	struct event *timer;		/* connect timeout, or drop */
	bool dropping;			/* the timer drops the link */
	bool finished;			/* a query answered: its close is no
					 * failure */
	char why[512];
};

/* Reads whose entries are handed to the core and wait for their
 * commits, at most: when more entries are surely waiting (a full read,
 * or the pending list), the next read is issued as soon as one is handed
 * over, so that its answer is there when the commit is done; bounded, so
 * that a host whose disk is slow stops reading instead of holding ever
 * more.  Not otherwise: the group commit's fdatasync holds the loop, and
 * a BLOCK read sent before it returns with the first entry that arrives
 * during it, leaving the others for the read after the next commit
 * (measured: later than reading after the commit; docs/benchmarks.md). */
#define STREAM_INFLIGHT_MAX 4

/* One read's entries, while some wait for the group commit. */
struct batch {
	struct stream *s;		/* NULL: orphaned (reconnected, or
					 * the stream freed) */
	struct batch *next;		/* the read after it, in flight */
	size_t n, outstanding;
	bool dispatching;
	bool complete;			/* every entry decided */
	char (*ids)[FLEET_ID_MAX];
	enum fleet_verdict *verdict;
	bool *held;			/* not in this acknowledgement (a
					 * trigger's, or not an entry) */
	struct ticket {
		struct batch *b;
		size_t i;		/* a run's first entry */
	} *tickets;
};

struct stream {
	struct event_base *base;
	struct core *core;
	stream_state_fn on_state;
	void *arg;
	/* Options (owned copies). */
	char *host, *unix_path, *user, *password, *master_name;
	int port;
	struct config_sentinel *sentinels;
	size_t nsentinels;
	char *name, *group;
	char keys[3][160];		/* snapshot, position, expiry */
	unsigned batch_max, block_ms, resync_s, info_ms;
	unsigned backoff_min_ms, backoff_max_ms, connect_timeout_ms;
	bool trace;

	struct link data, query, sub;
	struct event *retry_ev;		/* resolve and connect again */
	struct event *sub_ev;		/* the subscription's reconnect */
	struct event *read_ev;		/* the next read, later */
	struct event *info_ev;		/* lag and pending, periodically */
	struct event *resync_ev;	/* the snapshot, periodically */
	size_t sentinel;		/* the one asked next */
	size_t asked;			/* sentinels asked in this round */
	unsigned attempt;		/* failures since the last success */
	bool down_reported;
	bool stopping;
	/* The primary to connect to. */
	char target_host[256];
	int target_port;
	/* Set-up at each connection. */
	bool stream_exists, group_exists;
	struct fleet_id last_read, first_entry;
	bool have_first;
	uint64_t entries_added, length;
	/* Reading. */
	bool pending_phase;		/* our own unacknowledged ones first */
	char cursor[FLEET_ID_MAX];	/* ... from after this ID */
	bool reading;			/* a read is on the wire */
	/* Reads handed to the core, in stream order: acknowledged from
	 * the head, each once it and every read before it is decided. */
	struct batch *head, *tail;
	size_t inflight;
	/* Some entry asked to be retried: the reads after it are
	 * acknowledged no more (they were applied out of order: they are
	 * applied again, after it); once none is in flight, the pending
	 * list is read again from its start a second later. */
	bool retry_wait;
	bool restart_after_read;	/* ... once the read on the wire is
					 * back (its entries discarded) */
	/* Trigger entries done at the next shuffle. */
	char (*trig)[FLEET_ID_MAX];
	size_t ntrig, cap_trig;
	uint64_t trig_mark;		/* shuffles when they were queued */

	struct stream_stats st;
};

static void resolve(struct stream *s);
static void issue_read(struct stream *s);
static void link_failed(struct link *l, const char *why);

static void say(struct stream *s, enum stream_event ev, unsigned ms,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void say(struct stream *s, enum stream_event ev, unsigned ms,
		const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->on_state(s->arg, ev, line, ms);
}

static void arm_ms(struct event *ev, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

/* ---- links ---- */

static void link_close(struct link *l)
{
	redisAsyncContext *ac = l->ac;

	evtimer_del(l->timer);
	l->dropping = false;
	if (ac == NULL)
		return;
	l->ac = NULL;
	ac->data = NULL;
	redisAsyncFree(ac);
}

/* From inside a hiredis callback: close on the next turn, then fail. */
static void link_drop_later(struct link *l, const char *why)
{
	if (l->dropping)
		return;
	snprintf(l->why, sizeof(l->why), "%.400s", why);
	l->dropping = true;
	arm_ms(l->timer, 0);
}

static void on_link_timer(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	char why[512];

	(void)fd;
	(void)what;
	if (l->dropping)
		snprintf(why, sizeof(why), "%.400s", l->why);
	else
		snprintf(why, sizeof(why), "connect timed out");
	link_close(l);
	link_failed(l, why);
}

static void link_ready(struct link *l);

static void on_connect(const redisAsyncContext *cac, int status)
{
	struct link *l = cac->data;
	char why[512];

	if (l == NULL)
		return;
	evtimer_del(l->timer);
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		snprintf(why, sizeof(why), "%s", cac->errstr);
		l->ac = NULL;
		link_failed(l, why);
		return;
	}
	link_ready(l);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct link *l = ac->data;
	char why[512];

	if (l == NULL)
		return;
	l->ac = NULL;
	if (l->dropping) {
		/* The drop timer reports it; nothing to free any more. */
		return;
	}
	if (l->finished)
		return;
	if (status == REDIS_OK)
		snprintf(why, sizeof(why), "connection closed");
	else
		snprintf(why, sizeof(why), "connection lost: %s", ac->errstr);
	link_failed(l, why);
}

static int link_open(struct link *l, const char *host, int port,
		     const char *unix_path)
{
	struct stream *s = l->s;
	redisAsyncContext *ac;
	char why[512];

	link_close(l);
	l->finished = false;
	ac = rconn_open(s->base, host, port, unix_path, l, on_connect,
			on_disconnect, why, sizeof(why));
	if (ac == NULL) {
		link_failed(l, why);
		return -1;
	}
	l->ac = ac;
	/* hiredis 0.14 has no connect timeout of its own. */
	arm_ms(l->timer, s->connect_timeout_ms);
	return 0;
}

/* A reply for the current context of l, or NULL (stale, freed, or
 * after a drop was decided). */
static redisReply *reply_of(struct link *l, redisAsyncContext *ac, void *r)
{
	if (r == NULL || l == NULL || l->ac != ac || l->dropping ||
	    l->s->stopping)
		return NULL;
	return r;
}

/* ---- batches ---- */

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
static void batch_orphan(struct stream *s)
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
		if (s->head == NULL && !evtimer_pending(s->read_ev, NULL))
			arm_ms(s->read_ev, 1000);
		return;
	}
	issue_read(s);
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

static const redisReply *field(const redisReply *fields, const char *name)
{
	for (size_t i = 0; fields && i + 1 < fields->elements; i += 2)
		if (fields->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(fields->element[i]->str, name) == 0)
			return fields->element[i + 1];
	return NULL;
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
		say(s, STREAM_TRACE, 0, "%s %.3f", id, ms);
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
		link_drop_later(&s->data, "out of memory");
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
		m = field(e->element[1]->type == REDIS_REPLY_ARRAY ?
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
	free(ops);
	free(ok);
	b->dispatching = false;
	if (b->outstanding == 0)
		batch_finish(b);
	else if (s->pending_phase || n >= s->batch_max)
		issue_read(s);	/* while the commit is outstanding */
}

static void on_read(redisAsyncContext *ac, void *reply, void *priv)
{
	struct stream *s = priv;
	redisReply *r = reply_of(&s->data, ac, reply);
	const redisReply *entries;

	if (r == NULL)
		return;
	s->reading = false;
	if (s->retry_wait || s->restart_after_read) {
		/* Entries after one to retry: they stay pending, and are
		 * read again in order. */
		if (s->restart_after_read) {
			s->restart_after_read = false;
			issue_read(s);
		}
		return;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		char why[512];

		/* NOGROUP: the stream or the group went (a failover to a
		 * replica that had not seen them): set up again. */
		snprintf(why, sizeof(why), "XREADGROUP refused: %.200s", r->str);
		link_drop_later(&s->data, why);
		return;
	}
	if (r->type == REDIS_REPLY_NIL) {	/* BLOCK timed out */
		issue_read(s);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_ARRAY ||
	    r->element[0]->elements < 2 ||
	    r->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
		link_drop_later(&s->data, "XREADGROUP: unexpected reply");
		return;
	}
	entries = r->element[0]->element[1];
	if (entries->elements == 0) {
		/* The pending list is read through: new entries now. */
		s->pending_phase = false;
		issue_read(s);
		return;
	}
	dispatch(s, entries);
}

static void issue_read(struct stream *s)
{
	char count[16], block[16];

	if (s->data.ac == NULL || s->reading || s->stopping || !s->st.up ||
	    s->retry_wait || s->restart_after_read ||
	    s->inflight >= STREAM_INFLIGHT_MAX)
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

static void on_read_timer(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;

	(void)fd;
	(void)what;
	if (s->retry_wait) {
		/* Every read in flight is decided: the pending list again,
		 * from its start, once the read on the wire is back. */
		s->retry_wait = false;
		s->pending_phase = true;
		snprintf(s->cursor, sizeof(s->cursor), "0");
		s->restart_after_read = s->reading;
	}
	issue_read(s);
}

/* ---- set-up on the primary ---- */

static void start_reading(struct stream *s, const char *how)
{
	s->st.up = true;
	s->attempt = 0;
	s->down_reported = false;
	s->st.connections++;
	s->pending_phase = true;
	snprintf(s->cursor, sizeof(s->cursor), "0");
	say(s, STREAM_UP, 0, "%s", how);
	issue_read(s);
}

static void on_group(redisAsyncContext *ac, void *reply, void *priv)
{
	struct stream *s = priv;
	redisReply *r = reply_of(&s->data, ac, reply);

	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "BUSYGROUP", 9) != 0) {
		char why[512];

		snprintf(why, sizeof(why), "XGROUP refused: %.200s", r->str);
		link_drop_later(&s->data, why);
		return;
	}
	start_reading(s, s->group_exists ? "group behind the stream's "
		      "trimming: caught up from the snapshot" :
		      "new group: started from the snapshot");
}

/* reply: {HGETALL's flat array, position or nil} into items. */
static int snapshot_items(const redisReply *r, struct fleet_item **items,
			  size_t *n, char *pos, size_t poslen)
{
	const redisReply *h;
	size_t cap = 0;
	int64_t now = (int64_t)time(NULL);
	int bad = 0;

	*items = NULL;
	*n = 0;
	pos[0] = '\0';
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_ARRAY)
		return -EINVAL;
	h = r->element[0];
	if (r->elements > 1 && r->element[1]->type == REDIS_REPLY_STRING)
		snprintf(pos, poslen, "%s", r->element[1]->str);
	for (size_t i = 0; i + 1 < h->elements; i += 2) {
		const redisReply *k = h->element[i], *v = h->element[i + 1];
		int x;

		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		x = fleet_snap_parse(k->str, v->str, v->len, now, items, n, &cap);
		if (x == -ENOMEM)
			return -ENOMEM;
		bad += x < 0;
	}
	return bad;
}

static void converge(struct stream *s, const redisReply *r, char *pos,
		     size_t poslen, const char *why)
{
	struct fleet_item *items = NULL;
	size_t n = 0, added = 0, deleted = 0;
	int bad = snapshot_items(r, &items, &n, pos, poslen);

	if (bad < 0) {
		say(s, STREAM_NOTE, 0, "%s: the snapshot could not be read (%s)",
		    why, bad == -ENOMEM ? "out of memory" : "not a snapshot");
		free(items);
		return;
	}
	core_fleet_converge(s->core, items, n, &added, &deleted);
	say(s, STREAM_NOTE, 0, "%s: snapshot at %s, %zu live entries; %zu "
	    "added or refreshed here, %zu deleted%s", why, pos[0] ? pos : "-",
	    n, added, deleted, bad ? "; fields not understood skipped" : "");
	free(items);
}

static void on_snapshot_initial(redisAsyncContext *ac, void *reply, void *priv)
{
	struct stream *s = priv;
	redisReply *r = reply_of(&s->data, ac, reply);
	char pos[FLEET_ID_MAX];
	struct fleet_id id;

	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		char why[512];

		snprintf(why, sizeof(why), "snapshot: %.200s", r->str);
		link_drop_later(&s->data, why);
		return;
	}
	s->st.snapshot_loads++;
	converge(s, r, pos, sizeof(pos), "fleet start-up");
	/* No position (nothing published through the script yet): the
	 * whole stream. */
	if (fleet_id_parse(pos, &id) < 0)
		snprintf(pos, sizeof(pos), "0");
	if (s->group_exists) {
		const char *argv[] = { "XGROUP", "SETID", s->name, s->group, pos };

		redisAsyncCommandArgv(ac, on_group, s, 5, argv, NULL);
	} else {
		const char *argv[] = { "XGROUP", "CREATE", s->name, s->group,
				       pos, "MKSTREAM" };

		redisAsyncCommandArgv(ac, on_group, s, 6, argv, NULL);
	}
}

static void ask_snapshot(struct stream *s, redisCallbackFn *fn)
{
	const char *argv[] = { "EVAL", fleet_snapshot_script, "2",
			       s->keys[FLEET_KEY_SNAPSHOT], s->keys[FLEET_KEY_POS] };

	redisAsyncCommandArgv(s->data.ac, fn, s, 5, argv, NULL);
}

/* XINFO's flat [name, value, ...] arrays. */
static const redisReply *info_get(const redisReply *r, const char *name)
{
	return field(r->type == REDIS_REPLY_ARRAY ? r : NULL, name);
}

static void on_xinfo_stream(redisAsyncContext *ac, void *reply, void *priv)
{
	struct stream *s = priv;
	redisReply *r = reply_of(&s->data, ac, reply);
	const redisReply *v;

	if (r == NULL)
		return;
	s->stream_exists = r->type == REDIS_REPLY_ARRAY;
	s->have_first = false;
	s->entries_added = s->length = 0;
	if (!s->stream_exists)
		return;	/* "no such key": no stream yet */
	if ((v = info_get(r, "length")) && v->type == REDIS_REPLY_INTEGER)
		s->length = (uint64_t)v->integer;
	if ((v = info_get(r, "entries-added")) && v->type == REDIS_REPLY_INTEGER)
		s->entries_added = (uint64_t)v->integer;
	if ((v = info_get(r, "first-entry")) && v->type == REDIS_REPLY_ARRAY &&
	    v->elements > 0 && v->element[0]->type == REDIS_REPLY_STRING &&
	    fleet_id_parse(v->element[0]->str, &s->first_entry) == 0)
		s->have_first = true;
}

/* Our group's row of XINFO GROUPS, or NULL. */
static const redisReply *our_group(struct stream *s, const redisReply *r)
{
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *name = info_get(r->element[i], "name");

		if (name && name->type == REDIS_REPLY_STRING &&
		    strcmp(name->str, s->group) == 0)
			return r->element[i];
	}
	return NULL;
}

static int64_t int_or(const redisReply *v, int64_t dflt)
{
	return v && v->type == REDIS_REPLY_INTEGER ? (int64_t)v->integer : dflt;
}

static void on_xinfo_groups(redisAsyncContext *ac, void *reply, void *priv)
{
	struct stream *s = priv;
	redisReply *r = reply_of(&s->data, ac, reply);
	const redisReply *g, *v;

	if (r == NULL)
		return;
	g = s->stream_exists ? our_group(s, r) : NULL;
	s->group_exists = g != NULL;
	s->last_read = (struct fleet_id){ 0, 0 };
	if (g && (v = info_get(g, "last-delivered-id")) &&
	    v->type == REDIS_REPLY_STRING)
		fleet_id_parse(v->str, &s->last_read);
	if (g) {
		s->st.lag = int_or(info_get(g, "lag"), -1);
		s->st.pending = int_or(info_get(g, "pending"), -1);
	}
	if (fleet_need_snapshot(s->group_exists, &s->last_read,
				s->entries_added, s->length,
				s->have_first ? &s->first_entry : NULL)) {
		ask_snapshot(s, on_snapshot_initial);
		return;
	}
	start_reading(s, "following the group");
}

static void on_role(redisAsyncContext *ac, void *reply, void *priv)
{
	struct stream *s = priv;
	redisReply *r = reply_of(&s->data, ac, reply);
	const char *xs[] = { "XINFO", "STREAM", s->name };
	const char *xg[] = { "XINFO", "GROUPS", s->name };

	if (r == NULL)
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(r->element[0]->str, "master") != 0) {
		char why[512];

		snprintf(why, sizeof(why), "%.256s:%d is not the primary (ROLE: "
			 "%.40s)", s->target_host, s->target_port,
			 r->type == REDIS_REPLY_ERROR ? r->str :
			 r->type == REDIS_REPLY_ARRAY && r->elements &&
			 r->element[0]->type == REDIS_REPLY_STRING ?
			 r->element[0]->str : "?");
		link_drop_later(&s->data, why);
		return;
	}
	redisAsyncCommandArgv(ac, on_xinfo_stream, s, 3, xs, NULL);
	redisAsyncCommandArgv(ac, on_xinfo_groups, s, 3, xg, NULL);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
	struct link *l = priv;
	redisReply *r = reply_of(l, ac, reply);

	if (r && r->type == REDIS_REPLY_ERROR) {
		char why[512];

		snprintf(why, sizeof(why), "AUTH refused: %.200s", r->str);
		link_drop_later(l, why);
	}
}

/* ---- sentinels ---- */

static void on_master_addr(redisAsyncContext *ac, void *reply, void *priv)
{
	struct link *l = priv;
	struct stream *s = l->s;
	redisReply *r = reply_of(l, ac, reply);
	char why[512];

	if (r == NULL)
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		snprintf(why, sizeof(why), "sentinel %.200s:%d does not know %.200s",
			 s->sentinels[s->sentinel].host,
			 s->sentinels[s->sentinel].port, s->master_name);
		link_drop_later(l, why);
		return;
	}
	snprintf(s->target_host, sizeof(s->target_host), "%s",
		 r->element[0]->str);
	s->target_port = atoi(r->element[1]->str);
	l->finished = true;
	redisAsyncDisconnect(ac);
	link_open(&s->data, s->target_host, s->target_port, NULL);
}

static void on_switch(redisAsyncContext *ac, void *reply, void *priv)
{
	struct link *l = priv;
	struct stream *s = l->s;
	redisReply *r = reply_of(l, ac, reply);
	size_t nlen = strlen(s->master_name);
	const char *msg;

	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		link_drop_later(l, r->str);
		return;
	}
	/* ["message", "+switch-master", "NAME OLDIP OLDPORT NEWIP NEWPORT"] */
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[2]->type != REDIS_REPLY_STRING)
		return;
	msg = r->element[2]->str;
	if (strncmp(msg, s->master_name, nlen) != 0 || msg[nlen] != ' ')
		return;
	s->st.switches++;
	say(s, STREAM_NOTE, 0, "sentinel: +switch-master %.200s", msg);
	/* Ask again now, whatever the backoff said. */
	s->attempt = 0;
	evtimer_del(s->retry_ev);
	arm_ms(s->retry_ev, 0);
}

static void link_ready(struct link *l)
{
	struct stream *s = l->s;

	switch (l->kind) {
	case LINK_DATA:
		if (s->unix_path == NULL)
			redisEnableKeepAlive(&l->ac->c);
		rconn_auth(l->ac, on_auth, l, s->user, s->password);
		snprintf(s->st.primary, sizeof(s->st.primary), "%s:%d",
			 s->target_host, s->target_port);
		redisAsyncCommand(l->ac, on_role, s, "ROLE");
		break;
	case LINK_QUERY:
		redisAsyncCommand(l->ac, on_master_addr, l,
				  "SENTINEL get-master-addr-by-name %s",
				  s->master_name);
		break;
	case LINK_SUB:
		redisAsyncCommand(l->ac, on_switch, l, "SUBSCRIBE %s",
				  "+switch-master");
		break;
	}
}

static void fail_round(struct stream *s, const char *why)
{
	unsigned delay;

	if (s->stopping)
		return;
	delay = rconn_backoff_ms(s->backoff_min_ms, s->backoff_max_ms,
				 s->attempt);
	s->attempt++;
	say(s, s->st.up || !s->down_reported ? STREAM_DOWN : STREAM_RETRY,
	    delay, "%s", why);
	s->st.up = false;
	s->down_reported = true;
	s->st.lag = s->st.pending = -1;
	arm_ms(s->retry_ev, delay);
}

static void link_failed(struct link *l, const char *why)
{
	struct stream *s = l->s;
	char buf[800];

	if (s->stopping)
		return;
	switch (l->kind) {
	case LINK_DATA:
		s->reading = false;
		batch_orphan(s);
		s->ntrig = 0;	/* read again from the pending list */
		snprintf(buf, sizeof(buf), "%s:%d: %s", s->target_host,
			 s->target_port, why);
		fail_round(s, buf);
		break;
	case LINK_QUERY:
		snprintf(buf, sizeof(buf), "sentinel %s:%d: %s",
			 s->sentinels[s->sentinel].host,
			 s->sentinels[s->sentinel].port, why);
		s->sentinel = (s->sentinel + 1) % s->nsentinels;
		if (++s->asked < s->nsentinels) {
			say(s, STREAM_NOTE, 0, "%s; asking the next", buf);
			link_open(&s->query, s->sentinels[s->sentinel].host,
				  s->sentinels[s->sentinel].port, NULL);
		} else {
			fail_round(s, buf);
		}
		break;
	case LINK_SUB:
		/* Another sentinel next time; the data connection goes on. */
		arm_ms(s->sub_ev, 1000);
		break;
	}
}

static void on_sub_timer(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	size_t i = (s->sentinel + 1) % s->nsentinels;

	(void)fd;
	(void)what;
	link_open(&s->sub, s->sentinels[i].host, s->sentinels[i].port, NULL);
}

/* Forget the primary; ask (a sentinel) and connect. */
static void resolve(struct stream *s)
{
	link_close(&s->data);
	link_close(&s->query);
	s->reading = false;
	batch_orphan(s);
	s->ntrig = 0;
	s->st.up = false;
	if (s->nsentinels == 0) {
		snprintf(s->target_host, sizeof(s->target_host), "%s",
			 s->unix_path ? s->unix_path : s->host);
		s->target_port = s->unix_path ? 0 : s->port;
		link_open(&s->data, s->host, s->port, s->unix_path);
		return;
	}
	if (s->sub.ac == NULL && !evtimer_pending(s->sub_ev, NULL))
		link_open(&s->sub, s->sentinels[s->sentinel].host,
			  s->sentinels[s->sentinel].port, NULL);
	s->asked = 0;
	link_open(&s->query, s->sentinels[s->sentinel].host,
		  s->sentinels[s->sentinel].port, NULL);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	resolve(arg);
}

/* ---- periodic ---- */

static void on_snapshot_gap(redisAsyncContext *ac, void *reply, void *priv)
{
	struct stream *s = priv;
	redisReply *r = reply_of(&s->data, ac, reply);
	char pos[FLEET_ID_MAX], id[FLEET_ID_MAX], added[24];

	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		return;
	s->st.snapshot_loads++;
	converge(s, r, pos, sizeof(pos), "fleet: entries trimmed before this "
		 "host read them");
	/* The group's count of entries read made whole again, so that its
	 * lag says 0 (Redis 7's XGROUP SETID ... ENTRIESREAD). */
	fleet_id_format(&s->last_read, id, sizeof(id));
	snprintf(added, sizeof(added), "%llu",
		 (unsigned long long)s->entries_added);
	{
		const char *argv[] = { "XGROUP", "SETID", s->name, s->group, id,
				       "ENTRIESREAD", added };

		redisAsyncCommandArgv(ac, NULL, NULL, 7, argv, NULL);
	}
}

/* {XINFO STREAM, XINFO GROUPS} of one instant: lag and pending for
 * status, and a gap (entries trimmed before this host read them: it is
 * at the stream's head and Redis still counts some as unread) converged
 * from the snapshot. */
static void on_info_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct stream *s = priv;
	redisReply *r = reply_of(&s->data, ac, reply);
	const redisReply *g, *v;
	struct fleet_id delivered = { 0, 0 }, generated = { 0, 0 };

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
		return;
	g = our_group(s, r->element[1]);
	if (g == NULL)
		return;
	s->st.lag = int_or(info_get(g, "lag"), -1);
	s->st.pending = int_or(info_get(g, "pending"), -1);
	if ((v = info_get(g, "last-delivered-id")) == NULL ||
	    v->type != REDIS_REPLY_STRING ||
	    fleet_id_parse(v->str, &delivered) < 0 ||
	    (v = info_get(r->element[0], "last-generated-id")) == NULL ||
	    v->type != REDIS_REPLY_STRING ||
	    fleet_id_parse(v->str, &generated) < 0)
		return;
	if (!fleet_gap(&delivered, &generated, s->st.lag))
		return;
	s->last_read = delivered;
	s->entries_added = (uint64_t)int_or(info_get(r->element[0],
						     "entries-added"), 0);
	ask_snapshot(s, on_snapshot_gap);
}

static void on_info_timer(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	const char *argv[] = { "EVAL", fleet_info_script, "1", s->name };

	(void)fd;
	(void)what;
	if (s->st.up && s->data.ac)
		redisAsyncCommandArgv(s->data.ac, on_info_reply, s, 4, argv,
				      NULL);
}

static void on_snapshot_resync(redisAsyncContext *ac, void *reply, void *priv)
{
	struct stream *s = priv;
	redisReply *r = reply_of(&s->data, ac, reply);
	char pos[FLEET_ID_MAX];

	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		return;
	s->st.resyncs++;
	converge(s, r, pos, sizeof(pos), "fleet resync");
}

static void on_resync_timer(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;

	(void)fd;
	(void)what;
	if (s->st.up && s->data.ac)
		ask_snapshot(s, on_snapshot_resync);
}

/* ---- life ---- */

static char *dup_or_null(const char *s, bool *fail)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*fail = true;
	return d;
}

static bool link_init(struct stream *s, struct link *l, enum link_kind k)
{
	l->s = s;
	l->kind = k;
	l->timer = evtimer_new(s->base, on_link_timer, l);
	return l->timer != NULL;
}

struct stream *stream_new(struct event_base *base,
			  const struct stream_options *opt, struct core *core,
			  stream_state_fn on_state, void *arg)
{
	struct stream *s = calloc(1, sizeof(*s));
	bool fail = false;

	if (s == NULL)
		return NULL;
	s->base = base;
	s->core = core;
	s->on_state = on_state;
	s->arg = arg;
	s->host = dup_or_null(opt->host ? opt->host : "127.0.0.1", &fail);
	s->port = opt->port;
	s->unix_path = dup_or_null(opt->unix_path, &fail);
	s->user = dup_or_null(opt->user, &fail);
	s->password = dup_or_null(opt->password, &fail);
	s->master_name = dup_or_null(opt->master_name, &fail);
	s->name = dup_or_null(opt->stream, &fail);
	s->group = dup_or_null(opt->group, &fail);
	if (opt->nsentinels && opt->master_name) {
		s->sentinels = calloc(opt->nsentinels, sizeof(*s->sentinels));
		fail |= s->sentinels == NULL;
		for (size_t i = 0; !fail && i < opt->nsentinels; i++) {
			char *h = dup_or_null(opt->sentinels[i].host, &fail);

			s->sentinels[i].host = h;
			s->sentinels[i].port = opt->sentinels[i].port;
			s->nsentinels += !fail;
		}
	}
	s->batch_max = opt->batch ? opt->batch : 256;
	s->block_ms = opt->block_ms ? opt->block_ms : 1000;
	s->resync_s = opt->resync_interval_s;
	s->info_ms = opt->info_interval_ms ? opt->info_interval_ms : 2000;
	s->backoff_min_ms = opt->backoff_min_ms ? opt->backoff_min_ms : 100;
	s->backoff_max_ms = opt->backoff_max_ms ? opt->backoff_max_ms : 5000;
	if (s->backoff_max_ms < s->backoff_min_ms)
		s->backoff_max_ms = s->backoff_min_ms;
	s->connect_timeout_ms = opt->connect_timeout_ms ?
				opt->connect_timeout_ms : 2000;
	s->st.lag = s->st.pending = -1;
	s->trace = opt->trace;
	if (s->name) {
		for (int k = 0; k < 3; k++)
			fleet_key(s->name, (enum fleet_key)k, s->keys[k],
				  sizeof(s->keys[k]));
	}
	fail |= !link_init(s, &s->data, LINK_DATA) ||
		!link_init(s, &s->query, LINK_QUERY) ||
		!link_init(s, &s->sub, LINK_SUB);
	s->retry_ev = evtimer_new(base, on_retry, s);
	s->sub_ev = evtimer_new(base, on_sub_timer, s);
	s->read_ev = evtimer_new(base, on_read_timer, s);
	s->info_ev = event_new(base, -1, EV_PERSIST, on_info_timer, s);
	s->resync_ev = event_new(base, -1, EV_PERSIST, on_resync_timer, s);
	if (fail || !s->name || !s->group || !s->retry_ev || !s->sub_ev ||
	    !s->read_ev || !s->info_ev || !s->resync_ev) {
		stream_free(s);
		return NULL;
	}
	return s;
}

int stream_start(struct stream *s)
{
	arm_ms(s->info_ev, s->info_ms);
	if (s->resync_s)
		arm_ms(s->resync_ev, s->resync_s * 1000);
	resolve(s);
	return 0;
}

static void free_ev(struct event *ev)
{
	if (ev)
		event_free(ev);
}

void stream_free(struct stream *s)
{
	if (s == NULL)
		return;
	s->stopping = true;
	batch_orphan(s);
	link_close(&s->data);
	link_close(&s->query);
	link_close(&s->sub);
	free_ev(s->data.timer);
	free_ev(s->query.timer);
	free_ev(s->sub.timer);
	free_ev(s->retry_ev);
	free_ev(s->sub_ev);
	free_ev(s->read_ev);
	free_ev(s->info_ev);
	free_ev(s->resync_ev);
	free(s->host);
	free(s->unix_path);
	free(s->user);
	if (s->password)
		explicit_bzero(s->password, strlen(s->password));
	free(s->password);
	free(s->master_name);
	free(s->name);
	free(s->group);
	for (size_t i = 0; i < s->nsentinels; i++)
		free((void *)s->sentinels[i].host);
	free(s->sentinels);
	free(s->trig);
	free(s);
}

void stream_get_stats(const struct stream *s, struct stream_stats *ret)
{
	*ret = s->st;
}

const struct metrics_histogram *stream_delay(const struct stream *s)
{
	return &s->st.delay;
}

json_t *stream_status(const struct stream *s)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
			 "s:I,s:I,s:s,s:b,s:I}",
		"stream", s->name, "group", s->group,
		"state", s->st.up ? "up" : "down",
		"primary", s->st.primary,
		"lag", (json_int_t)s->st.lag,
		"pending", (json_int_t)s->st.pending,
		"read", (json_int_t)s->st.read,
		"acknowledged", (json_int_t)s->st.acknowledged,
		"refused", (json_int_t)s->st.refused,
		"redelivered", (json_int_t)s->st.redelivered,
		"retried", (json_int_t)s->st.retried,
		"snapshot_loads", (json_int_t)s->st.snapshot_loads,
		"resyncs", (json_int_t)s->st.resyncs,
		"switches", (json_int_t)s->st.switches,
		"last_acknowledged", s->st.last_acked,
		"sentinel", s->nsentinels > 0,
		"replayed", (json_int_t)s->st.replayed);
}
