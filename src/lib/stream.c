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
#include "stream_private.h"
#include "rconn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#include <hiredis/adapters/libevent.h>
#pragma GCC diagnostic pop

#include "core_fleet.h"
#include "fleet.h"

static void resolve(struct stream *s);
static void link_failed(struct link *l, const char *why);

void stream_say(struct stream *s, enum stream_event ev, unsigned ms,
		const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->on_state(s->arg, ev, line, ms);
}

void stream_arm_ms(struct event *ev, unsigned ms)
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
void stream_drop_later(struct link *l, const char *why)
{
	if (l->dropping)
		return;
	snprintf(l->why, sizeof(l->why), "%.400s", why);
	l->dropping = true;
	stream_arm_ms(l->timer, 0);
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
	stream_arm_ms(l->timer, s->connect_timeout_ms);
	return 0;
}

/* A reply for the current context of l, or NULL (stale, freed, or
 * after a drop was decided). */
redisReply *stream_reply_of(struct link *l, redisAsyncContext *ac, void *r)
{
	if (r == NULL || l == NULL || l->ac != ac || l->dropping ||
	    l->s->stopping)
		return NULL;
	return r;
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
	stream_say(s, STREAM_UP, 0, "%s", how);
	stream_issue_read(s);
}

static void on_group(redisAsyncContext *ac, void *reply, void *priv)
{
	struct stream *s = priv;
	redisReply *r = stream_reply_of(&s->data, ac, reply);

	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "BUSYGROUP", 9) != 0) {
		char why[512];

		snprintf(why, sizeof(why), "XGROUP refused: %.200s", r->str);
		stream_drop_later(&s->data, why);
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
		stream_say(s, STREAM_NOTE, 0, "%s: the snapshot could not be "
			   "read (%s)", why, bad == -ENOMEM ? "out of memory" :
			   "not a snapshot");
		free(items);
		return;
	}
	core_fleet_converge(s->core, items, n, &added, &deleted);
	stream_say(s, STREAM_NOTE, 0, "%s: snapshot at %s, %zu live entries; "
		   "%zu added or refreshed here, %zu deleted%s", why,
		   pos[0] ? pos : "-", n, added, deleted,
		   bad ? "; fields not understood skipped" : "");
	free(items);
}

static void on_snapshot_initial(redisAsyncContext *ac, void *reply, void *priv)
{
	struct stream *s = priv;
	redisReply *r = stream_reply_of(&s->data, ac, reply);
	char pos[FLEET_ID_MAX];
	struct fleet_id id;

	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		char why[512];

		snprintf(why, sizeof(why), "snapshot: %.200s", r->str);
		stream_drop_later(&s->data, why);
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
	return stream_field(r->type == REDIS_REPLY_ARRAY ? r : NULL, name);
}

static void on_xinfo_stream(redisAsyncContext *ac, void *reply, void *priv)
{
	struct stream *s = priv;
	redisReply *r = stream_reply_of(&s->data, ac, reply);
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
	redisReply *r = stream_reply_of(&s->data, ac, reply);
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
	redisReply *r = stream_reply_of(&s->data, ac, reply);
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
		stream_drop_later(&s->data, why);
		return;
	}
	redisAsyncCommandArgv(ac, on_xinfo_stream, s, 3, xs, NULL);
	redisAsyncCommandArgv(ac, on_xinfo_groups, s, 3, xg, NULL);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
	struct link *l = priv;
	redisReply *r = stream_reply_of(l, ac, reply);

	if (r && r->type == REDIS_REPLY_ERROR) {
		char why[512];

		snprintf(why, sizeof(why), "AUTH refused: %.200s", r->str);
		stream_drop_later(l, why);
	}
}

/* ---- sentinels ---- */

static void on_master_addr(redisAsyncContext *ac, void *reply, void *priv)
{
	struct link *l = priv;
	struct stream *s = l->s;
	redisReply *r = stream_reply_of(l, ac, reply);
	char why[512];

	if (r == NULL)
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		snprintf(why, sizeof(why), "sentinel %.200s:%d does not know %.200s",
			 s->sentinels[s->sentinel].host,
			 s->sentinels[s->sentinel].port, s->master_name);
		stream_drop_later(l, why);
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
	redisReply *r = stream_reply_of(l, ac, reply);
	size_t nlen = strlen(s->master_name);
	const char *msg;

	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		stream_drop_later(l, r->str);
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
	stream_say(s, STREAM_NOTE, 0, "sentinel: +switch-master %.200s", msg);
	/* Ask again now, whatever the backoff said. */
	s->attempt = 0;
	evtimer_del(s->retry_ev);
	stream_arm_ms(s->retry_ev, 0);
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
	stream_say(s, s->st.up || !s->down_reported ? STREAM_DOWN :
		   STREAM_RETRY, delay, "%s", why);
	s->st.up = false;
	s->down_reported = true;
	s->st.lag = s->st.pending = -1;
	stream_arm_ms(s->retry_ev, delay);
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
		stream_orphan_reads(s);
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
			stream_say(s, STREAM_NOTE, 0, "%s; asking the next",
				   buf);
			link_open(&s->query, s->sentinels[s->sentinel].host,
				  s->sentinels[s->sentinel].port, NULL);
		} else {
			fail_round(s, buf);
		}
		break;
	case LINK_SUB:
		/* Another sentinel next time; the data connection goes on. */
		stream_arm_ms(s->sub_ev, 1000);
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
	stream_orphan_reads(s);
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
	redisReply *r = stream_reply_of(&s->data, ac, reply);
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
	redisReply *r = stream_reply_of(&s->data, ac, reply);
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
	redisReply *r = stream_reply_of(&s->data, ac, reply);
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
	s->read_interval_ms = opt->read_interval_ms;
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
	s->read_ev = evtimer_new(base, stream_on_read_timer, s);
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
	stream_arm_ms(s->info_ev, s->info_ms);
	if (s->resync_s)
		stream_arm_ms(s->resync_ev, s->resync_s * 1000);
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
	stream_orphan_reads(s);
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
