/*
 * porthopd: the moving-target-defense daemon.  This file parses options,
 * sets up logging and the event loop, and wires the modules: the timers,
 * signals, the Redis subscription (bus) and the control socket (control)
 * feed the daemon core (core, command), which holds every decision.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "bus.h"
#include "check.h"
#include "command.h"
#include "config.h"
#include "control.h"
#include "core.h"
#include "diag.h"
#include "evhook.h"
#include "evstream.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "nftio.h"
#include "notify.h"
#include "pktlog.h"
#include "rundir.h"
#include "shuffle.h"
#include "stream.h"

#define DEFAULT_CONFIG CONFIG_DEFAULT_PATH

/* The daemon's one context; main owns it. */
struct porthopd {
	const char *config_path;
	bool use_redis;
	unsigned interval_lo, interval_hi;	/* seconds; 0: no timer */
	bool json_elements;
	const char *socket_override;		/* -s: the control socket */
	int verbose;				/* -v count */

	struct event_base *base;
	struct nftio *io;
	struct core *core;
	struct bus *bus;
	struct stream *stream;			/* the fleet feed, instead of
						 * bus when configured */
	struct control *control;
	struct shuffle *rng;			/* timer jitter */
	struct event *sig[4];
	struct event *pending_ev;		/* the one pending shuffle */
	struct event *timer_ev;
	struct event *reconcile_ev;
	struct event *untrack_ev;		/* untrack_unwatched "auto" */
	struct event *metrics_ev;
	struct event *watchdog_ev;
	struct event *commit_ev;		/* the state file's group commit */
	struct event *expiry_ev;		/* the next runtime entry due */
	int64_t expiry_at;			/* epoch seconds; 0: none */
	/* The probe event feed: the nflog reader, where events go, and
	 * the tick that closes merge windows. */
	struct pktlog *pktlog;
	struct evstream *evstream;
	struct evhook *hook;
	struct event *events_ev;
	/* Events as native journal entries, when stderr is journald's
	 * stream (NULL otherwise: the log line); --journal-socket (tests)
	 * names the socket. */
	struct journal *journal;
	const char *journal_socket;
	/* The hooks' runs, failures and kills before the one in use (a
	 * reload starts a new one; the metrics' counts go on). */
	uint64_t hook_done[3];
	/* Single packet authorisation: the knocks' nflog reader. */
	struct pktlog *knock_log;
	/* The control socket's notices: a line every 10 s per kind. */
	struct log_ratelimit control_log[CONTROL_NOTICE_ACCEPT_FAILED + 1];
	struct event *derive_ev;		/* derived ports' slot boundaries */
	/* prestage: one chunk of the next mapping per turn of the loop,
	 * at the lowest priority. */
	struct event *stage_ev;
};

static const struct config *cfg_of(const struct porthopd *p)
{
	return core_config(p->core);
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: porthopd [-nTvV] [-c file] [-s socket] [-i L:U] [--no-redis]\n"
"                [--json-elements] [--journal-socket path]\n"
"\n"
"  -c, --config FILE   configuration (default " DEFAULT_CONFIG ")\n"
"  -n, --check         check the configuration and rule files (including a\n"
"                      kernel dry run of the rules) and exit: 0, 78, or\n"
"                      77 without CAP_NET_ADMIN\n"
"  -i, --interval L:U  also shuffle every T seconds, T uniform in L..U\n"
"  -s, --socket PATH   the control socket (default: the configuration's\n"
"                      porthopd.control_socket, " CONFIG_DEFAULT_CONTROL_SOCKET ")\n"
"      --no-redis      do not subscribe to Redis (timer and signals only)\n"
"      --json-elements native mode: send map updates through libnftables'\n"
"                      JSON parser, not a netlink batch (for comparisons)\n"
"      --journal-socket PATH  journald's socket for the event feed's entries\n"
"                      (default " JOURNAL_SOCKET "; for tests)\n"
"  -T, --timestamps    prefix log lines with the time (epoch seconds)\n"
"  -v, --verbose       debug logs (repeat for more)\n"
"  -V, --version       print the version and exit\n"
"  -h, --help          this help\n");
}

/* The core's lines, to the log. */
static void on_core_log(void *arg, enum core_level level, const char *line)
{
	(void)arg;
	if (level == CORE_WARN)
		log_warnx("%s", line);
	else if (level == CORE_INFO)
		log_info("%s", line);
	else
		log_debug("%s", line);
}

/* "up", "down" or "off": the subscription's, or the stream's. */
static const char *redis_state(const struct porthopd *p)
{
	struct stream_stats st;

	if (p->stream) {
		stream_get_stats(p->stream, &st);
		return st.up ? "up" : "down";
	}
	return p->bus == NULL ? "off" : bus_is_up(p->bus) ? "up" : "down";
}

/* The one-line status systemctl shows. */
static void notify_status(struct porthopd *p)
{
	char line[160], buf[256];

	snprintf(buf, sizeof(buf), "STATUS=%s, redis %s",
		 core_status_line(p->core, line, sizeof(line)),
		 redis_state(p));
	notify_send(buf);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	notify_send("WATCHDOG=1");
}

static void on_pending(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;

	(void)fd;
	(void)what;
	if (core_run_pending(p->core, NULL) == 0) {
		/* Trigger entries of the stream are done once applied. */
		stream_shuffled(p->stream);
		notify_status(p);
	}
}

/* The core's schedule hook: the one pending event, armed once. */
static void on_core_schedule(void *arg, long long wait_ms)
{
	struct porthopd *p = arg;
	struct timeval tv = { (time_t)(wait_ms / 1000),
			      (suseconds_t)(wait_ms % 1000) * 1000 };

	/* event_pending() is true for an active event too. */
	if (event_pending(p->pending_ev, EV_TIMEOUT, NULL))
		return;
	if (wait_ms > 0)
		evtimer_add(p->pending_ev, &tv);
	else
		event_active(p->pending_ev, EV_TIMEOUT, 0);
}

/* prestage: the loop's priorities.  Everything runs at the default
 * (middle) one; loading the next mapping at the lowest, so that a chunk
 * runs only when no trigger, request or Redis reply is ready. */
#define LOOP_PRIORITIES 3
#define STAGE_PRIORITY (LOOP_PRIORITIES - 1)

/* The next chunk, on the loop's next turn: a timer that is due at once,
 * not event_active, which from inside its own callback would put it back
 * in the queue being run, and the chunks would run back to back without
 * the loop looking at its sockets (measured: triggers held 2-3 s at
 * 100,000 pairs). */
static void stage_next_turn(struct porthopd *p)
{
	const struct timeval now = { 0, 0 };

	evtimer_add(p->stage_ev, &now);
}

static void on_stage(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;

	(void)fd;
	(void)what;
	if (core_stage_step(p->core))
		stage_next_turn(p);
}

static void on_core_stage(void *arg)
{
	struct porthopd *p = arg;

	/* Before the loop's events exist (the start-up shuffle), the first
	 * chunk waits for wire_events. */
	if (p->stage_ev && !event_pending(p->stage_ev, EV_TIMEOUT, NULL))
		stage_next_turn(p);
}

static void on_untrack(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;

	(void)fd;
	(void)what;
	core_untrack_look(p->core, false);
}

static void on_reconcile(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;

	(void)fd;
	(void)what;
	core_reconcile(p->core);
}

/* The quick look runs only where it has something to do. */
static void arm_untrack(struct porthopd *p)
{
	unsigned ms = core_untrack_watch_ms(p->core);
	struct timeval tv = { (time_t)(ms / 1000),
			      (suseconds_t)(ms % 1000) * 1000 };

	event_del(p->untrack_ev);
	if (ms > 0)
		evtimer_add(p->untrack_ev, &tv);
}

static void arm_reconcile(struct porthopd *p)
{
	unsigned s = config_daemon(cfg_of(p))->reconcile_interval_s;
	struct timeval tv = { (time_t)s, 0 };

	event_del(p->reconcile_ev);
	if (s > 0)
		evtimer_add(p->reconcile_ev, &tv);
}

/* Derived ports: the core moves the slots at each boundary and says when
 * the next is. */
static void on_derive(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;
	long ms = core_derive_tick(p->core);
	struct timeval tv = { (time_t)(ms / 1000),
			      (suseconds_t)(ms % 1000) * 1000 };

	(void)fd;
	(void)what;
	evtimer_add(p->derive_ev, &tv);
}

static void arm_interval(struct porthopd *p)
{
	uint32_t extra = 0;
	struct timeval tv;

	if (p->interval_hi == 0)
		return;
	if (shuffle_uniform(p->rng, p->interval_hi - p->interval_lo + 1,
			    &extra) < 0)
		extra = 0;
	tv.tv_sec = p->interval_lo + extra;
	tv.tv_usec = 0;
	log_debug("next timer shuffle in %ld s", (long)tv.tv_sec);
	evtimer_add(p->timer_ev, &tv);
}

static void on_interval(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;

	(void)fd;
	(void)what;
	core_trigger(p->core, SRC_TIMER);
	arm_interval(p);
}

static void on_message(void *arg, const char *channel, const char *payload,
		       size_t len)
{
	struct porthopd *p = arg;

	core_message(p->core, channel, payload, len);
}

static void on_bus_state(void *arg, enum bus_event ev, const char *detail,
			 unsigned retry_ms)
{
	struct porthopd *p = arg;

	if (ev == BUS_UP)
		notify_status(p);
	core_redis_event(p->core, ev, detail, retry_ms,
			 bus_connections(p->bus));
}

/* The probe event feed's parts (docs/events.md). */
static void on_packet(void *arg, const char *prefix, const uint8_t *pkt,
		      size_t len)
{
	struct porthopd *p = arg;

	core_event_packet(p->core, prefix, pkt, len);
}

static void on_lost(void *arg, uint64_t n)
{
	struct porthopd *p = arg;

	core_event_lost(p->core, PROBE_DROP_SOCKET, n);
}

/* Appends the Redis stream lost after taking them. */
static void on_stream_lost(void *arg, uint64_t n)
{
	struct porthopd *p = arg;

	core_event_lost(p->core, PROBE_DROP_STREAM, n);
}

static void on_events_tick(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;

	(void)fd;
	(void)what;
	core_events_tick(p->core);
}

/* The event as a native journal entry with its fields, when stderr is
 * journald's; false when not sent (then the log line says it). */
static bool journal_event(struct porthopd *p, const struct probe_event *e,
			  const char *json, size_t len)
{
	struct journal_entry *je;
	bool sent;

	if (p->journal == NULL)
		return false;
	je = journal_event_entry(e, json, len, "porthopd");
	sent = je && journal_send(p->journal, je) == 0;
	journal_entry_free(je);
	return sent;
}

/* A merged event: one JSON line to the log, the Redis stream, the hook.
 * Returns what could not be done, as drop reasons. */
static unsigned on_core_event(void *arg, const struct probe_event *e,
			      const char *json, size_t len)
{
	struct porthopd *p = arg;
	const struct config_events *ev = &config_daemon(cfg_of(p))->events;
	unsigned drops = 0;

	if (ev->log && !journal_event(p, e, json, len))
		log_info("event %s", json);
	if (p->evstream && evstream_add(p->evstream, json, len) < 0)
		drops |= 1u << PROBE_DROP_STREAM;
	if (p->hook && evhook_run(p->hook, json, len) < 0)
		drops |= 1u << PROBE_DROP_HOOK;
	return drops;
}

static void stop_events(struct porthopd *p)
{
	pktlog_free(p->pktlog);
	evstream_free(p->evstream);
	p->hook_done[0] += evhook_runs(p->hook);
	p->hook_done[1] += evhook_failures(p->hook);
	p->hook_done[2] += evhook_killed(p->hook);
	evhook_free(p->hook);
	if (p->events_ev)
		event_free(p->events_ev);
	p->pktlog = NULL;
	p->evstream = NULL;
	p->hook = NULL;
	p->events_ev = NULL;
}

/* (Re)starts the feed's parts as the configuration in force asks: a
 * reader that cannot bind its group is said, and the rest goes on. */
static void start_events(struct porthopd *p)
{
	const struct config *c = cfg_of(p);
	const struct config_events *ev = &config_daemon(c)->events;
	const struct config_redis_extra *x = config_redis_extra(c);
	struct timeval tick = { 0, 200000 };
	char *err = NULL;

	stop_events(p);
	if (!core_events_on(p->core))
		return;
	p->pktlog = pktlog_new(p->base, ev->nflog_group, on_packet, on_lost,
			       p, &err);
	if (p->pktlog == NULL) {
		log_warnx("events: %s; no events are read", err ? err :
			  "out of memory");
		free(err);
	}
	if (ev->stream) {
		struct evstream_options o = {
			.host = config_redis_host(c),
			.port = config_redis_port(c),
			.unix_path = x->unix_socket,
			.user = x->username,
			.password = x->password,
			.key = ev->stream,
			.maxlen = ev->stream_maxlen,
			.on_lost = on_stream_lost,
			.arg = p,
		};

		p->evstream = evstream_new(p->base, &o);
	}
	if (ev->hook)
		p->hook = evhook_new(p->base, ev->hook, ev->hook_per_minute);
	p->events_ev = event_new(p->base, -1, EV_PERSIST, on_events_tick, p);
	if ((ev->stream && p->evstream == NULL) || (ev->hook && p->hook == NULL) ||
	    p->events_ev == NULL || evtimer_add(p->events_ev, &tick) < 0)
		log_warnx("events: out of memory starting the feed");
}

/* Single packet authorisation (docs/knock.md): the knocks' own nflog
 * reader, each knock handed over at once (a client waits on it). */
static void on_knock_packet(void *arg, const char *prefix, const uint8_t *pkt,
			    size_t len)
{
	struct porthopd *p = arg;

	core_knock_packet(p->core, prefix, pkt, len);
}

static void on_knock_lost(void *arg, uint64_t n)
{
	struct porthopd *p = arg;

	core_knock_lost(p->core, n);
}

static void start_knock(struct porthopd *p)
{
	const struct config_knock *k = &config_daemon(cfg_of(p))->knock;
	char *err = NULL;

	pktlog_free(p->knock_log);
	p->knock_log = NULL;
	if (!core_knock_on(p->core))
		return;
	/* An IPv6 header, a UDP header and the largest knock fit. */
	p->knock_log = pktlog_new(p->base, k->nflog_group, on_knock_packet,
				  on_knock_lost, p, &err);
	if (p->knock_log && pktlog_configure(p->knock_log, 256, 1, 0) < 0) {
		pktlog_free(p->knock_log);
		p->knock_log = NULL;
	}
	if (p->knock_log == NULL) {
		log_warnx("knock: %s; no knocks are read", err ? err :
			  "cannot configure the nflog group");
		free(err);
	}
}

static struct bus *make_bus(struct porthopd *p);

static void on_stream_state(void *arg, enum stream_event ev,
			    const char *detail, unsigned retry_ms)
{
	struct porthopd *p = arg;
	const struct config_stream *cs = config_stream(cfg_of(p));
	char dbuf[600];

	/* Redis' and sentinels' words, escaped. */
	diag_line(dbuf, sizeof(dbuf), detail);
	switch (ev) {
	case STREAM_UP:
		log_info("fleet: stream %s, group %s: %s", cs->stream,
			 cs->group, dbuf);
		notify_status(p);
		break;
	case STREAM_DOWN:
		log_warnx("fleet: stream %s: %s; retrying (next in %u ms), "
			  "rules in force stay", cs->stream, dbuf, retry_ms);
		notify_status(p);
		break;
	case STREAM_RETRY:
		log_debug("fleet: stream %s: %s; next attempt in %u ms",
			  cs->stream, dbuf, retry_ms);
		break;
	case STREAM_NOTE:
		log_info("fleet: %s", dbuf);
		break;
	case STREAM_TRACE:
		log_debug("fleet: applied %s ms", dbuf);
		break;
	}
}

static struct stream *make_stream(struct porthopd *p)
{
	const struct config *c = cfg_of(p);
	const struct config_redis_extra *x = config_redis_extra(c);
	const struct config_stream *cs = config_stream(c);
	struct stream_options opt = {
		.host = config_redis_host(c),
		.port = config_redis_port(c),
		.unix_path = x->unix_socket,
		.user = x->username,
		.password = x->password,
		.sentinels = x->sentinels,
		.nsentinels = x->nsentinels,
		.master_name = x->master_name,
		.stream = cs->stream,
		.group = cs->group,
		.batch = cs->batch,
		.read_interval_ms = cs->read_interval_ms,
		.resync_interval_s = cs->resync_interval_s,
		.backoff_max_ms = x->retry_max_ms < 5000 ? x->retry_max_ms : 5000,
		.connect_timeout_ms = x->connect_timeout_ms,
		.trace = p->verbose >= 2,
	};
	struct stream *st = stream_new(p->base, &opt, p->core, on_stream_state, p);

	if (st)
		stream_start(st);
	return st;
}

/* The fleet stream when configured, else the reference's subscription. */
static int make_feed(struct porthopd *p)
{
	if (config_stream(cfg_of(p))->stream) {
		p->stream = make_stream(p);
		return p->stream ? 0 : -1;
	}
	p->bus = make_bus(p);
	return p->bus ? 0 : -1;
}

static struct bus *make_bus(struct porthopd *p)
{
	const struct config *c = cfg_of(p);
	const char *channels[CONFIG_MAX_CHANNELS];
	const struct config_redis_extra *x = config_redis_extra(c);
	struct bus_options opt = {
		.host = config_redis_host(c),
		.port = config_redis_port(c),
		.unix_path = x->unix_socket,
		.user = x->username,
		.password = x->password,
		.channels = channels,
		.nchannels = config_channel_count(c),
		.backoff_max_ms = x->retry_max_ms,
		.connect_timeout_ms = x->connect_timeout_ms,
	};
	struct bus *b;

	for (size_t i = 0; i < opt.nchannels; i++)
		channels[i] = config_channel(c, i);
	b = bus_new(p->base, &opt, on_message, on_bus_state, p);
	if (b)
		bus_start(b);
	return b;
}

static void arm_metrics(struct porthopd *p);
static void reopen_control(struct porthopd *p);

/* The core's reloaded hook: everything that follows the configuration. */
static void on_core_reloaded(void *arg, unsigned changes)
{
	struct porthopd *p = arg;

	arm_untrack(p);
	arm_reconcile(p);
	if ((changes & CORE_CHANGED_REDIS) && p->use_redis) {
		bus_free(p->bus);
		stream_free(p->stream);
		p->bus = NULL;
		p->stream = NULL;
		if (make_feed(p) < 0)
			log_warnx("reload: out of memory starting the Redis "
				  "subscription");
	}
	arm_metrics(p);
	start_events(p);
	start_knock(p);
	if (p->socket_override == NULL)
		reopen_control(p);
	notify_status(p);
}

/* The core's reloading hook: systemd hears of a reload as it happens. */
static void on_core_reloading(void *arg, bool begin)
{
	(void)arg;
	notify_send(begin ? "RELOADING=1" : "READY=1");
}

/* The core's status hook: Redis, the control socket, the timer. */
static void on_core_status(void *arg, json_t *r)
{
	struct porthopd *p = arg;
	const struct config *c = cfg_of(p);
	json_t *chans = json_array();
	struct control_stats cs;
	struct timeval next;

	if (p->interval_hi && evtimer_pending(p->timer_ev, &next)) {
		struct timeval now;

		event_base_gettimeofday_cached(p->base, &now);
		json_object_set_new(r, "next_timer_seconds", json_integer(
			(json_int_t)(next.tv_sec - now.tv_sec)));
	}
	for (size_t i = 0; i < config_channel_count(c); i++)
		json_array_append_new(chans, json_string(config_channel(c, i)));
	if (p->stream)
		json_object_set_new(r, "stream", stream_status(p->stream));
	json_object_set_new(r, "redis", json_pack("{s:s,s:s,s:i,s:o,s:I}",
		"state", redis_state(p),
		"host", config_redis_host(c), "port", config_redis_port(c),
		"channels", chans,
		"messages", (json_int_t)(p->bus ? bus_messages(p->bus) : 0)));
	if (p->control) {
		control_get_stats(p->control, &cs);
		json_object_set_new(r, "control", json_pack(
			"{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
			"open", (json_int_t)cs.open,
			"limit", (json_int_t)cs.limit,
			"refused_busy", (json_int_t)cs.refused_busy,
			"refused_peer", (json_int_t)cs.refused_peer,
			"accept_errors", (json_int_t)cs.accept_errors,
			"timeouts", (json_int_t)cs.timeouts,
			"deferred", (json_int_t)cs.deferred,
			"bulk_busy", (json_int_t)cs.bulk_busy));
	}
}

static void on_core_metrics(void *arg, struct metrics_snapshot *m)
{
	struct porthopd *p = arg;

	m->redis_connected = p->bus ? bus_is_up(p->bus) : -1;
	m->hook = p->hook || p->hook_done[0];
	m->hook_runs = p->hook_done[0] + evhook_runs(p->hook);
	m->hook_failures = p->hook_done[1] + evhook_failures(p->hook);
	m->hook_killed = p->hook_done[2] + evhook_killed(p->hook);
	if (p->stream) {
		struct stream_stats st;

		stream_get_stats(p->stream, &st);
		m->stream = true;
		m->stream_up = st.up;
		m->redis_connected = st.up;
		m->stream_lag = st.lag;
		m->stream_pending = st.pending;
		m->stream_read = st.read;
		m->stream_acknowledged = st.acknowledged;
		m->stream_redelivered = st.redelivered;
		m->stream_refused = st.refused;
		m->stream_snapshot_loads = st.snapshot_loads;
		m->stream_replayed = st.replayed;
		m->stream_delay = stream_delay(p->stream);
	}
}

static json_t *on_control(void *arg, json_t *req, uid_t uid)
{
	struct porthopd *p = arg;

	return command_run(p->core, p->control, req, uid);
}

/* The group commit: after every event ready now (the requests that
 * arrived together) has been served, one write and one sync for all. */
static void on_commit(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;

	(void)fd;
	(void)what;
	core_watch_commit(p->core);
}

static void on_core_commit(void *arg)
{
	struct porthopd *p = arg;
	struct timeval zero = { 0, 0 };

	if (p->commit_ev && !event_pending(p->commit_ev, EV_TIMEOUT, NULL))
		evtimer_add(p->commit_ev, &zero);
}

static void on_expiry(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;

	(void)fd;
	(void)what;
	core_watch_expire(p->core);
	notify_status(p);
}

static void arm_expiry(struct porthopd *p)
{
	struct timeval tv = { 0, 0 };
	int64_t now = (int64_t)time(NULL);

	if (p->expiry_ev == NULL)
		return;
	evtimer_del(p->expiry_ev);
	if (p->expiry_at == 0)
		return;
	if (p->expiry_at > now)
		tv.tv_sec = (time_t)(p->expiry_at - now);
	evtimer_add(p->expiry_ev, &tv);
}

/* The core's expiry hook (also before the loop exists: kept, armed in
 * wire_events). */
static void on_core_expiry(void *arg, int64_t when)
{
	struct porthopd *p = arg;

	p->expiry_at = when;
	arm_expiry(p);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct porthopd *p = arg;

	(void)what;
	switch (sig) {
	case SIGHUP:
		core_reload(p->core, SRC_SIGNAL, NULL);
		break;
	case SIGUSR1:
		core_trigger(p->core, SRC_SIGNAL);
		break;
	default:
		log_info("%s received, stopping", strsignal((int)sig));
		notify_send("STOPPING=1");
		event_base_loopbreak(p->base);
		break;
	}
}

/* Before the kernel is touched: see rundir_check. */
static int check_control_path(const struct porthopd *p, const struct config *c,
			      bool check_only)
{
	const char *path = rundir_socket(p->socket_override, c);
	char *err = NULL;

	if (path == NULL || rundir_check(path, check_only, &err) == 0)
		return 0;
	log_warnx("%s: %s", p->socket_override ? "--socket" : p->config_path,
		  err ? err : "control socket: out of memory");
	free(err);
	return -1;
}

/* RUNDIR_PATH for the socket at path, if it lives there. */
static void prepare_run_dir(const char *path, gid_t gid)
{
	char *err = NULL;

	if (rundir_holds(path) && rundir_prepare(gid, &err) < 0)
		log_warnx("%s", err ? err : RUNDIR_PATH ": out of memory");
	free(err);
}

/* A flood of clients must not become a flood of log lines: one line
 * every 10 s at most; status counts them all. */
static void on_control_notice(void *arg, enum control_notice what, int err)
{
	struct porthopd *p = arg;
	struct control_stats cs;
	uint64_t held;

	if (p->control == NULL ||
	    !log_ratelimit(&p->control_log[what], time(NULL), 1, 10, &held))
		return;
	control_get_stats(p->control, &cs);
	if (what == CONTROL_NOTICE_ACCEPT_FAILED)
		log_warnx("control socket: accept: %s; paused for up to 1 s "
			  "at a time (%llu failures so far)", strerror(err),
			  (unsigned long long)cs.accept_errors);
	else
		log_warnx("control socket: %zu connections open, the limit; "
			  "clients turned away (%llu so far)", cs.open,
			  (unsigned long long)cs.refused_busy);
}

/* Opens the socket at path, and on success replaces p->control with it. */
static int open_control_at(struct porthopd *p, const char *path, gid_t gid)
{
	struct control *c;
	char *err = NULL;

	prepare_run_dir(path, gid);
	c = control_new(p->base, path, gid, on_control, on_control_notice, p,
			&err);
	if (c == NULL) {
		log_warnx("%s", err ? err : "control socket: out of memory");
		free(err);
		return -1;
	}
	/* Freed after the new one is bound: it removes its file only if
	 * that is still its own.  Inside its own handler (porthop reload),
	 * the request being served is still answered. */
	control_free(p->control);
	p->control = c;
	return 0;
}

static int open_control(struct porthopd *p)
{
	const struct config *c = cfg_of(p);
	const char *path = rundir_socket(p->socket_override, c);

	if (path == NULL)
		return 0;
	return open_control_at(p, path, config_daemon(c)->control_gid);
}

/* After a reload: the same path and group keep the socket as it is (and
 * the connections on it); anything else replaces it, and a new socket
 * that cannot be opened leaves the old one in place. */
static void reopen_control(struct porthopd *p)
{
	const struct config *c = cfg_of(p);
	const char *path = rundir_socket(p->socket_override, c);
	gid_t gid = config_daemon(c)->control_gid;

	if (path == NULL) {
		control_free(p->control);
		p->control = NULL;
	} else if (control_is(p->control, path, gid)) {
		prepare_run_dir(path, gid);
	} else if (open_control_at(p, path, gid) < 0 && p->control) {
		log_warnx("reload: the control socket stays where it was");
	}
}

static void on_metrics(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;
	const char *path = config_daemon(cfg_of(p))->metrics_textfile;
	struct metrics_snapshot m;
	char *text;
	int r;

	(void)fd;
	(void)what;
	if (path == NULL)
		return;
	core_metrics_snapshot(p->core, &m);
	text = metrics_render(&m);
	r = text ? metrics_write_file(path, text) : -ENOMEM;
	if (r < 0)
		log_warnx("metrics: cannot write %s: %s", path, strerror(-r));
	free(text);
}

static void arm_metrics(struct porthopd *p)
{
	const struct config_daemon *d = config_daemon(cfg_of(p));
	struct timeval tv = { (time_t)d->metrics_interval_s, 0 };

	event_del(p->metrics_ev);
	if (d->metrics_textfile) {
		on_metrics(-1, 0, p);
		evtimer_add(p->metrics_ev, &tv);
	}
}

static int parse_interval(const char *s, unsigned *lo, unsigned *hi)
{
	char *end;
	unsigned long a, b;

	errno = 0;
	a = strtoul(s, &end, 10);
	if (errno || end == s || (*end != ':' && *end != '\0'))
		return -1;
	b = a;
	if (*end == ':') {
		const char *t = end + 1;

		b = strtoul(t, &end, 10);
		if (errno || end == t || *end != '\0')
			return -1;
	}
	if (a < 1 || b < a || b > 86400)
		return -1;
	*lo = (unsigned)a;
	*hi = (unsigned)b;
	return 0;
}

/* Command-line options, besides what struct porthopd holds. */
struct options {
	bool check_only, timestamps;
	int verbose;
};

/* Parses the command line into p and o.  Returns -1 to go on, or the
 * exit status (help, version, a usage error). */
static int parse_options(int argc, char **argv, struct porthopd *p,
			 struct options *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'n' },
		{ "interval", required_argument, NULL, 'i' },
		{ "no-redis", no_argument, NULL, 'R' },
		{ "json-elements", no_argument, NULL, 'J' },
		{ "journal-socket", required_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' },
		{ "timestamps", no_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "c:ni:s:TvVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			p->config_path = optarg;
			break;
		case 'n':
			o->check_only = true;
			break;
		case 'i':
			if (parse_interval(optarg, &p->interval_lo,
					   &p->interval_hi) < 0) {
				fprintf(stderr, "porthopd: --interval %s: "
					"expected L:U, whole seconds with "
					"1 <= L <= U <= 86400\n", optarg);
				return EX_USAGE;
			}
			break;
		case 'R':
			p->use_redis = false;
			break;
		case 'J':
			p->json_elements = true;
			break;
		case 'j':
			p->journal_socket = optarg;
			break;
		case 's':
			p->socket_override = optarg;
			break;
		case 'T':
			o->timestamps = true;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'V':
			printf("porthopd %s\n", PORTHOP_VERSION);
			return EXIT_SUCCESS;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "porthopd: unexpected argument \"%s\"\n",
			argv[optind]);
		usage(stderr);
		return EX_USAGE;
	}
	return -1;
}

/* The loop's events: timers, signals, the Redis subscription, systemd's
 * watchdog.  Exits (start-up failure) if one cannot be made. */
static void wire_events(struct porthopd *p)
{
	static const int signals[4] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1 };

	p->pending_ev = evtimer_new(p->base, on_pending, p);
	p->timer_ev = evtimer_new(p->base, on_interval, p);
	p->reconcile_ev = event_new(p->base, -1, EV_PERSIST, on_reconcile, p);
	p->metrics_ev = event_new(p->base, -1, EV_PERSIST, on_metrics, p);
	p->untrack_ev = event_new(p->base, -1, EV_PERSIST, on_untrack, p);
	p->commit_ev = evtimer_new(p->base, on_commit, p);
	p->expiry_ev = evtimer_new(p->base, on_expiry, p);
	p->stage_ev = evtimer_new(p->base, on_stage, p);
	if (p->commit_ev == NULL || p->expiry_ev == NULL ||
	    p->stage_ev == NULL ||
	    event_priority_set(p->stage_ev, STAGE_PRIORITY) < 0)
		fatalx(EX_OSERR, "out of memory");
	on_core_stage(p);
	arm_expiry(p);
	if (p->pending_ev == NULL || p->timer_ev == NULL ||
	    p->reconcile_ev == NULL || p->metrics_ev == NULL ||
	    p->untrack_ev == NULL)
		fatalx(EX_OSERR, "out of memory");
	arm_untrack(p);
	arm_reconcile(p);
	arm_metrics(p);
	for (size_t i = 0; i < 4; i++) {
		p->sig[i] = evsignal_new(p->base, signals[i], on_signal, p);
		if (p->sig[i] == NULL || evsignal_add(p->sig[i], NULL) < 0)
			fatalx(EX_OSERR, "cannot install signal handlers");
	}
	signal(SIGPIPE, SIG_IGN);
	arm_interval(p);
	p->derive_ev = evtimer_new(p->base, on_derive, p);
	if (p->derive_ev == NULL)
		fatalx(EX_OSERR, "out of memory");
	event_active(p->derive_ev, EV_TIMEOUT, 0);
	start_events(p);
	start_knock(p);
	if (p->use_redis && make_feed(p) < 0)
		fatalx(EX_OSERR, "out of memory");
	/* Keep systemd's watchdog fed at half the interval it asked for. */
	if (notify_watchdog_usec() > 0) {
		uint64_t half = notify_watchdog_usec() / 2;
		struct timeval tv = { (time_t)(half / 1000000),
				      (suseconds_t)(half % 1000000) };

		p->watchdog_ev = event_new(p->base, -1, EV_PERSIST, on_watchdog, p);
		if (p->watchdog_ev == NULL || evtimer_add(p->watchdog_ev, &tv) < 0)
			fatalx(EX_OSERR, "cannot arm the watchdog timer");
	}
}

static void free_event(struct event *ev)
{
	if (ev)
		event_free(ev);
}

/* Frees what p holds; the rules stay as core_stop left them. */
static void teardown(struct porthopd *p)
{
	stop_events(p);
	journal_free(p->journal);
	pktlog_free(p->knock_log);
	bus_free(p->bus);
	/* Before the core: entries waiting for its last commit stay
	 * unacknowledged, and are read again at the next start. */
	stream_free(p->stream);
	for (size_t i = 0; i < 4; i++)
		free_event(p->sig[i]);
	free_event(p->metrics_ev);
	free_event(p->pending_ev);
	free_event(p->timer_ev);
	free_event(p->reconcile_ev);
	free_event(p->untrack_ev);
	free_event(p->watchdog_ev);
	free_event(p->commit_ev);
	free_event(p->expiry_ev);
	free_event(p->derive_ev);
	free_event(p->stage_ev);
	core_free(p->core);
	/* After the core: its last commits answer the requests still
	 * waiting for them (the loop is over, so no reply goes out), and
	 * only then are their connections free to go with the rest. */
	control_free(p->control);
	shuffle_free(p->rng);
	nftio_free(p->io);
	if (p->base)
		event_base_free(p->base);
	libevent_global_shutdown();
}

int main(int argc, char **argv)
{
	struct porthopd p = {
		.config_path = DEFAULT_CONFIG,
		.use_redis = true,
	};
	const struct core_hooks hooks = {
		.arg = &p,
		.log = on_core_log,
		.schedule = on_core_schedule,
		.reloaded = on_core_reloaded,
		.reloading = on_core_reloading,
		.status = on_core_status,
		.metrics = on_core_metrics,
		.commit = on_core_commit,
		.expiry = on_core_expiry,
		.event = on_core_event,
		.stage = on_core_stage,
	};
	struct options o = { 0 };
	struct config *cfg;
	int status = parse_options(argc, argv, &p, &o);

	if (status >= 0)
		return status;
	status = EXIT_SUCCESS;
	log_init("porthopd", o.verbose, o.timestamps);
	p.verbose = o.verbose;
	/* journald's stream on stderr: events go as entries of their own,
	 * with fields (a socket that is not there: the log line). */
	if (journal_stream_is(getenv("JOURNAL_STREAM"), STDERR_FILENO))
		p.journal = journal_open(p.journal_socket ? p.journal_socket :
					 JOURNAL_SOCKET);
	p.io = nftio_new_kernel();
	if (p.io == NULL)
		fatalx(EX_OSERR, "cannot create the libnftables context");
	if (!check_permitted(p.io)) {
		nftio_free(p.io);
		fatalx(EX_NOPERM, "nftables: operation not permitted; porthopd "
		       "needs CAP_NET_ADMIN (run it as root)");
	}
	cfg = core_load(p.io, p.config_path, on_core_log, NULL, NULL);
	if (cfg == NULL || check_control_path(&p, cfg, o.check_only) < 0) {
		config_free(cfg);
		nftio_free(p.io);
		return EX_CONFIG;
	}
	if (o.check_only) {
		printf("%s: configuration OK: %zu watched address%s, %zu "
		       "pairs\n", p.config_path, config_watched_count(cfg),
		       config_watched_count(cfg) == 1 ? "" : "es",
		       config_pair_count(cfg));
		config_free(cfg);
		nftio_free(p.io);
		return EXIT_SUCCESS;
	}
	p.core = core_new(p.io, cfg, p.config_path, &hooks);
	p.rng = shuffle_new();
	p.base = event_base_new();
	if (p.core == NULL || p.rng == NULL || p.base == NULL ||
	    event_base_priority_init(p.base, LOOP_PRIORITIES) < 0)
		fatalx(EX_OSERR, "out of memory");
	core_set_json_elements(p.core, p.json_elements);
	/* Cover the host before the first message arrives; only then the
	 * control socket, metrics and the rest. */
	if (core_start(p.core) < 0) {
		status = EX_UNAVAILABLE;
		goto out;
	}
	if (open_control(&p) < 0) {
		/* As on any stop: no half-started daemon's rules left. */
		core_stop(p.core);
		status = EX_OSERR;
		goto out;
	}
	wire_events(&p);
	notify_send("READY=1");
	notify_status(&p);
	event_base_dispatch(p.base);
	core_stop(p.core);
out:
	teardown(&p);
	return status;
}
