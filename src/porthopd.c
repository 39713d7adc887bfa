/*
 * porthopd: the moving-target-defense daemon.  This file only parses
 * arguments, wires the modules together and runs the event loop; the work
 * is done in src/lib.
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

#include "auth.h"
#include "bus.h"
#include "config.h"
#include "control.h"
#include "diag.h"
#include "engine.h"
#include "log.h"
#include "metrics.h"
#include "nftio.h"
#include "notify.h"
#include "shuffle.h"
#include "trigger.h"

#define DEFAULT_CONFIG "/etc/porthop/configuration.json"

/* The daemon's one context; main owns it. */
struct porthopd {
	const char *config_path;
	bool use_redis;
	unsigned interval_lo, interval_hi;	/* seconds; 0: no timer */

	struct event_base *base;
	struct nftio *io;
	struct engine *engine;
	struct bus *bus;
	struct shuffle *rng;			/* timer jitter */
	struct event *sig[4];
	struct event *pending_ev;		/* the one pending shuffle */
	struct trigger_queue *queue;		/* ... and what it serves */
	struct event *timer_ev;
	struct event *reconcile_ev;
	struct event *untrack_ev;		/* untrack_unwatched "auto" */
	struct event *watchdog_ev;
	struct timespec last_shuffle;		/* CLOCK_MONOTONIC */
	uint64_t triggers;
	uint64_t unknown_addresses;		/* triggers naming nobody */
	bool json_elements;
	const char *socket_override;		/* -s: the control socket */
	struct control *control;
	/* Rate limit of the control socket's notices, one per kind. */
	time_t control_log_at[CONTROL_NOTICE_ACCEPT_FAILED + 1];
	struct event *metrics_ev;
	struct metrics_histogram apply_hist;
	uint64_t by_source[SRC_COUNT];
	double start_time;
	struct auth *auth;			/* NULL: triggers unsigned */
	uint64_t refused[AUTH_BUSY + 1];	/* by enum auth_result */
	/* Whatever a sender controls logs through a limit. */
	struct log_ratelimit refusal_log, unknown_log, failure_log;
};

/* Lines a sender can cause: at most this many per kind every 10 s. */
#define LOG_BURST 5
#define LOG_INTERVAL_S 10

/* " (N more not logged)" when lines were held back, else "". */
static const char *suppressed_note(char *buf, size_t len, uint64_t n)
{
	buf[0] = '\0';
	if (n > 0)
		snprintf(buf, len, " (%llu more not logged)",
			 (unsigned long long)n);
	return buf;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: porthopd [-nTv] [-c file] [--interval L:U] [--no-redis]\n"
"\n"
"  -c, --config FILE   configuration (default " DEFAULT_CONFIG ")\n"
"  -n, --check         check the configuration and rule files (including a\n"
"                      kernel dry run of the rules) and exit: 0 or 78\n"
"  -i, --interval L:U  also shuffle every T seconds, T uniform in L..U\n"
"  -s, --socket PATH   the control socket (default: the configuration's\n"
"                      porthopd.control_socket, " CONFIG_DEFAULT_CONTROL_SOCKET ")\n"
"      --no-redis      do not subscribe to Redis (timer and signals only)\n"
"      --json-elements native mode: send map updates through libnftables'\n"
"                      JSON parser, not a netlink batch (for comparisons)\n"
"  -T, --timestamps    prefix log lines with the time (epoch seconds)\n"
"  -v, --verbose       debug logs (repeat for more)\n"
"  -V, --version       print the version and exit\n"
"  -h, --help          this help\n");
}

static void print_diag(const struct diag *d)
{
	for (size_t i = 0; i < diag_count(d); i++) {
		bool is_error;
		const char *m = diag_message(d, i, &is_error);

		if (is_error)
			log_warnx("error: %s", m);
		else
			log_warnx("warning: %s", m);
	}
}

/* Loads and checks a configuration as at start-up and on reload.  Returns
 * the configuration, or NULL after logging every error (the first one
 * also in *ret_error when given; the caller frees it). */
static struct config *load_checked(struct nftio *io, const char *path,
				   char **ret_error)
{
	struct diag *d = diag_new();
	struct config *c;

	if (d == NULL)
		return NULL;
	c = config_load(path, 0, d);
	if (c && engine_check(c, io, d) < 0) {
		config_free(c);
		c = NULL;
	}
	print_diag(d);
	if (c == NULL) {
		log_warnx("%s: %zu error%s; configuration refused", path,
			  diag_errors(d), diag_errors(d) == 1 ? "" : "s");
		if (ret_error && diag_first_error(d))
			*ret_error = strdup(diag_first_error(d));
	}
	diag_free(d);
	return c;
}

/* The one-line status systemctl shows. */
static void notify_status(struct porthopd *p)
{
	const struct engine_stats *st = engine_stats(p->engine);
	char buf[256];

	snprintf(buf, sizeof(buf), "STATUS=%zu pairs, %llu shuffles, %llu "
		 "failures, redis %s", st->last_pairs,
		 (unsigned long long)st->shuffles,
		 (unsigned long long)st->failures,
		 p->bus == NULL ? "off" : bus_is_up(p->bus) ? "up" : "down");
	notify_send(buf);
}

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void observe(struct porthopd *p)
{
	const struct engine_stats *st = engine_stats(p->engine);

	if (st->last_result == 0)
		metrics_observe(&p->apply_hist,
				(st->last_build_ms + st->last_apply_ms) / 1e3);
	if (st->last_result == 0 && st->last_redefined)
		log_warnx("table inet %s was gone (someone flushed the ruleset?): "
			  "defined anew", config_table_name(engine_config(p->engine)));
}

/* After a trigger's shuffle: someone else's change put back first? */
static void report_repair(struct porthopd *p, uint64_t repairs_before)
{
	/* A table found gone is said by observe(). */
	if (engine_stats(p->engine)->repairs != repairs_before &&
	    !engine_stats(p->engine)->last_redefined)
		log_warnx("reconcile: the rules in force had been removed or "
			  "altered; applied again before the shuffle");
}

/* A failed shuffle, logged through a limit: every trigger of a flood can
 * fail the same way. */
static void report_failure(struct porthopd *p, const char *what,
			   const char *err)
{
	char note[48];
	uint64_t held;

	if (log_ratelimit(&p->failure_log, time(NULL), LOG_BURST,
			  LOG_INTERVAL_S, &held))
		log_warnx("%s failed, previous rules stay in force: %s%s", what,
			  err ? err : "unknown error",
			  suppressed_note(note, sizeof(note), held));
}

/* Returns 0, or -1 with *ret_error set (the caller frees it) if given. */
static int do_shuffle(struct porthopd *p, const char *reason,
		      char **ret_error)
{
	const struct engine_stats *st;
	uint64_t repairs = engine_stats(p->engine)->repairs;
	char digest[48] = "", what[96];
	char *err = NULL;
	int r = engine_shuffle(p->engine, &err);

	observe(p);
	report_repair(p, repairs);
	if (r < 0) {
		snprintf(what, sizeof(what), "shuffle (%s)", reason);
		report_failure(p, what, err);
		if (ret_error)
			*ret_error = err;
		else
			free(err);
		return -1;
	}
	st = engine_stats(p->engine);
	if (st->last_digest_ms >= 0)
		snprintf(digest, sizeof(digest), ", digest %.1f ms",
			 st->last_digest_ms);
	log_info("shuffle %llu applied (%s): %zu pairs, %zu commands, "
		 "build %.1f ms, apply %.1f ms%s",
		 (unsigned long long)st->shuffles, reason, st->last_pairs,
		 st->last_commands, st->last_build_ms, st->last_apply_ms,
		 digest);
	notify_status(p);
	return 0;
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	notify_send("WATCHDOG=1");
}

/* The watched entries named by triggers, in one transaction.  Returns
 * 0, or -1 with *ret_error set (the caller frees it) if given. */
static int shuffle_entries(struct porthopd *p, const size_t *idx, size_t n,
			   const char *reason, char **ret_error)
{
	const struct config *c = engine_config(p->engine);
	const struct engine_stats *st;
	uint64_t repairs = engine_stats(p->engine)->repairs;
	char what[96], whom[64];
	char *err = NULL;
	int r;

	r = engine_shuffle_entries(p->engine, idx, n, &err);
	observe(p);
	report_repair(p, repairs);
	/* Configured entries only: their text is ours, not the sender's. */
	if (n == 1)
		snprintf(whom, sizeof(whom), "address %s",
			 config_watched(c, idx[0])->ip);
	else
		snprintf(whom, sizeof(whom), "%zu addresses", n);
	if (r < 0) {
		snprintf(what, sizeof(what), "shuffle of %s (%s)", whom, reason);
		report_failure(p, what, err);
		if (ret_error)
			*ret_error = err;
		else
			free(err);
		return -1;
	}
	st = engine_stats(p->engine);
	log_info("shuffle %llu applied (%s; %s): %zu operations, "
		 "build %.1f ms, apply %.1f ms",
		 (unsigned long long)st->shuffles, whom, reason,
		 st->last_commands, st->last_build_ms, st->last_apply_ms);
	return 0;
}

/* Runs the pending shuffle: every entry, or the entries triggers named.
 * Every trigger that collapsed into it is named: an operator's signal
 * served by a shuffle a message had already asked for shows as "redis,
 * signal", not as a lost signal.  Returns 0 (also with nothing pending),
 * or -1 with *ret_error as do_shuffle. */
static int run_pending(struct porthopd *p, char **ret_error)
{
	struct trigger_batch b;
	char reason[64] = "";
	size_t len = 0;
	int r;

	trigger_queue_peek(p->queue, &b);
	if (!b.all && b.nentries == 0)
		return 0;
	for (int i = 0; i < SRC_COUNT; i++)
		if (b.sources & (1u << i))
			len += (size_t)snprintf(reason + len, sizeof(reason) - len,
						"%s%s", len ? ", " : "",
						metrics_source_name((enum metrics_source)i));
	r = b.all ? do_shuffle(p, reason, ret_error) :
		    shuffle_entries(p, b.entries, b.nentries, reason, ret_error);
	trigger_queue_clear(p->queue);
	clock_gettime(CLOCK_MONOTONIC, &p->last_shuffle);
	return r;
}

static void on_pending(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_pending(arg, NULL);
}

/* How long the pending shuffle must still wait to keep
 * min_shuffle_interval_ms from the last one; 0: it may run now. */
static long long wait_ms(struct porthopd *p)
{
	unsigned min_ms = config_daemon(engine_config(p->engine))->min_shuffle_interval_ms;
	struct timespec now;
	long long since_ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	since_ms = (now.tv_sec - p->last_shuffle.tv_sec) * 1000LL +
		   (now.tv_nsec - p->last_shuffle.tv_nsec) / 1000000;
	return min_ms > 0 && since_ms < (long long)min_ms ?
	       (long long)min_ms - since_ms : 0;
}

/* Arms the pending shuffle, unless it is already.  Triggers that arrive
 * while one is pending collapse into it (see trigger.h): a burst of
 * messages costs one shuffle, and shuffles keep the configured distance
 * (min_shuffle_interval_ms) however fast messages come. */
static void schedule(struct porthopd *p)
{
	long long wait = wait_ms(p);
	struct timeval tv = { (time_t)(wait / 1000),
			      (suseconds_t)(wait % 1000) * 1000 };

	/* event_pending() is true for an active event too. */
	if (event_pending(p->pending_ev, EV_TIMEOUT, NULL))
		return;
	if (wait > 0)
		evtimer_add(p->pending_ev, &tv);
	else
		event_active(p->pending_ev, EV_TIMEOUT, 0);
}

static void request_shuffle(struct porthopd *p, enum metrics_source source)
{
	p->triggers++;
	p->by_source[source]++;
	trigger_queue_all(p->queue, source);
	schedule(p);
}

/* A trigger that names an address (an intrusion detector naming the
 * scanner it saw): the watched entry that covers it joins the pending
 * shuffle.  -ENOENT (counted, logged through a limit) if none does. */
static int request_address(struct porthopd *p, const char *ip,
			   enum metrics_source source)
{
	long idx = config_watched_lookup(engine_config(p->engine), ip);
	char vbuf[DIAG_VALUE_MAX + 8], note[48];
	uint64_t held;

	p->triggers++;
	p->by_source[source]++;
	if (idx < 0) {
		p->unknown_addresses++;
		if (log_ratelimit(&p->unknown_log, time(NULL), LOG_BURST,
				  LOG_INTERVAL_S, &held))
			log_warnx("shuffle of %s (%s) refused: not a watched "
				  "address nor inside a watched prefix%s",
				  diag_string(vbuf, sizeof(vbuf), ip),
				  metrics_source_name(source),
				  suppressed_note(note, sizeof(note), held));
		return -ENOENT;
	}
	trigger_queue_entry(p->queue, (size_t)idx, source);
	schedule(p);
	return 0;
}

/* untrack_unwatched "auto": how often porthopd looks whether someone
 * committed, while unwatched clients are untracked.  A table that starts
 * using conntrack (a firewall loaded, Docker started) sees unwatched
 * clients untracked until then: its `ct state established` rules miss
 * their replies.  A look is one netlink round trip. */
#define UNTRACK_WATCH_MS 250

/* Says what engine_untrack_check (r, err) did. */
static void report_untrack(struct porthopd *p, int r, const char *err)
{
	const struct engine_stats *st = engine_stats(p->engine);

	if (r < 0)
		log_warnx("conntrack: turning untrack_unwatched's rules %s "
			  "failed: %s", st->untracking ? "off" : "on",
			  err ? err : "?");
	else if (r > 0 && st->untracking)
		log_info("conntrack: no other table uses connection tracking "
			 "now; unwatched clients are untracked");
	else if (r > 0)
		log_warnx("conntrack: %s uses connection tracking; unwatched "
			  "clients are tracked again", st->conntrack_user);
}

/* After a start or reload: whether unwatched clients are tracked, and
 * why, unless untrack_unwatched is false. */
static void log_untrack_state(struct porthopd *p)
{
	const struct config *c = engine_config(p->engine);
	const struct engine_stats *st = engine_stats(p->engine);

	if (config_mode(c) != CONFIG_MODE_NATIVE ||
	    config_untrack(c) == CONFIG_UNTRACK_OFF)
		return;
	if (st->untracking)
		log_info("unwatched clients are untracked (untrack_unwatched "
			 "%s)", config_untrack(c) == CONFIG_UNTRACK_ON ? "true" :
			 "\"auto\": no other table uses connection tracking");
	else if (config_untrack(c) == CONFIG_UNTRACK_AUTO)
		log_info("unwatched clients are tracked: %s uses connection "
			 "tracking (untrack_unwatched \"auto\")",
			 st->conntrack_user);
}

static void on_untrack(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;
	char *err = NULL;
	int r;

	(void)fd;
	(void)what;
	r = engine_untrack_check(p->engine, false, &err);
	report_untrack(p, r, err);
	free(err);
}

static void on_reconcile(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;
	uint64_t checks = engine_stats(p->engine)->checks;
	char *err = NULL;
	int r;

	/* The urgent look first: a large table's check below can take a
	 * few hundred milliseconds. */
	on_untrack(fd, what, arg);
	r = engine_reconcile(p->engine, &err);
	if (r == 0 && engine_stats(p->engine)->checks != checks)
		log_debug("reconcile: someone else committed; our rules are "
			  "intact (checked in %.1f ms%s)",
			  engine_stats(p->engine)->last_check_ms,
			  engine_stats(p->engine)->check_continues ?
			  "; more of the maps next time" : "");
	if (r < 0)
		log_warnx("reconcile: the rules in force could not be "
			  "restored: %s", err ? err : "?");
	else if (r > 0) {
		log_warnx("reconcile: the rules in force had been removed or "
			  "altered; applied again (%.1f ms)",
			  engine_stats(p->engine)->last_apply_ms);
	}
	free(err);
	err = NULL;
	r = engine_untrack_check(p->engine, true, &err);
	report_untrack(p, r, err);
	free(err);
}

/* The quick look runs only where it has something to do. */
static void arm_untrack(struct porthopd *p)
{
	const struct config *c = engine_config(p->engine);
	struct timeval tv = { 0, UNTRACK_WATCH_MS * 1000 };

	event_del(p->untrack_ev);
	if (config_mode(c) == CONFIG_MODE_NATIVE &&
	    config_untrack(c) == CONFIG_UNTRACK_AUTO)
		evtimer_add(p->untrack_ev, &tv);
}

static void arm_reconcile(struct porthopd *p)
{
	unsigned s = config_daemon(engine_config(p->engine))->reconcile_interval_s;
	struct timeval tv = { (time_t)s, 0 };

	event_del(p->reconcile_ev);
	if (s > 0)
		evtimer_add(p->reconcile_ev, &tv);
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
	request_shuffle(p, SRC_TIMER);
	arm_interval(p);
}

/* A refused trigger: counted always, logged through a limit so a flood
 * of forgeries cannot flood the log. */
static void refuse(struct porthopd *p, enum auth_result r, const char *channel)
{
	char cbuf[DIAG_VALUE_MAX + 8], note[48];
	uint64_t held;

	p->refused[r]++;
	if (log_ratelimit(&p->refusal_log, time(NULL), LOG_BURST,
			  LOG_INTERVAL_S, &held))
		log_warnx("trigger on channel %s refused: %s%s",
			  diag_string(cbuf, sizeof(cbuf), channel),
			  auth_result_name(r),
			  suppressed_note(note, sizeof(note), held));
}

/* The verifier of c's trigger key: the one in force if the key is the
 * same (it keeps the nonces it has seen, so a trigger captured before a
 * reload is still a replay after it), else a new one; NULL without a key.
 * Returns 0 or -ENOMEM. */
static int prepare_auth(struct porthopd *p, const struct config *c,
			struct auth **ret)
{
	const struct config_daemon *d = config_daemon(c);

	*ret = NULL;
	if (d->trigger_key == NULL)
		return 0;
	if (p->auth && auth_same_key(p->auth, d->trigger_key,
				     d->trigger_key_len)) {
		*ret = p->auth;
		return 0;
	}
	/* A window's worth of triggers at a thousand a second. */
	*ret = auth_new(d->trigger_key, d->trigger_key_len,
			d->trigger_window_s, 1000 * (size_t)d->trigger_window_s);
	return *ret ? 0 : -ENOMEM;
}

/* Puts a (from prepare_auth) in force under c. */
static void adopt_auth(struct porthopd *p, const struct config *c,
		       struct auth *a)
{
	const struct config_daemon *d = config_daemon(c);

	if (a != p->auth)
		auth_free(p->auth);
	p->auth = a;
	if (a && auth_set_window(a, d->trigger_window_s,
				 1000 * (size_t)d->trigger_window_s) < 0)
		log_warnx("reload: out of memory resizing the replay table; "
			  "trigger_window_seconds keeps its previous bound");
}

static void on_message(void *arg, const char *channel, const char *payload,
		       size_t len)
{
	struct porthopd *p = arg;
	char cbuf[DIAG_VALUE_MAX + 8];
	json_t *msg;

	log_debug("trigger on channel %s (%zu bytes)",
		  diag_string(cbuf, sizeof(cbuf), channel), len);
	if (p->auth) {
		enum auth_result r = auth_verify(p->auth, payload, len,
						 time(NULL), &payload, &len);

		if (r != AUTH_OK) {
			refuse(p, r, channel);
			return;
		}
	}
	/* As in the reference, a payload means nothing, except
	 * {"address": "..."}: then only that address's mapping moves (an
	 * intrusion detector naming the scanner it saw). */
	if (len < 256 && payload[0] == '{' &&
	    (msg = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL))) {
		const char *ip = json_string_value(json_object_get(msg, "address"));

		if (ip && json_object_size(msg) == 1) {
			request_address(p, ip, SRC_REDIS);
			json_decref(msg);
			return;
		}
		json_decref(msg);
	}
	request_shuffle(p, SRC_REDIS);
}

static void on_bus_state(void *arg, enum bus_event ev, const char *detail,
			 unsigned retry_ms)
{
	struct porthopd *p = arg;
	const struct config *c = engine_config(p->engine);
	char dbuf[512];	/* a Redis server's words, escaped */

	switch (ev) {
	case BUS_UP:
		notify_status(p);
		log_info("redis %s:%d: subscribed to %zu channel%s",
			 config_redis_host(c), config_redis_port(c),
			 config_channel_count(c),
			 config_channel_count(c) == 1 ? "" : "s");
		/* Messages published while we were away are lost (pub/sub
		 * is at most once): catch up with one shuffle. */
		if (bus_connections(p->bus) > 1 &&
		    config_daemon(c)->shuffle_on_reconnect)
			request_shuffle(p, SRC_RECONNECT);
		break;
	case BUS_DOWN:
		log_warnx("redis %s:%d: %s; retrying (next in %u ms), rules in "
			  "force stay", config_redis_host(c),
			  config_redis_port(c),
			  diag_line(dbuf, sizeof(dbuf), detail), retry_ms);
		break;
	case BUS_RETRY:
		log_debug("redis %s:%d: %s; next attempt in %u ms",
			  config_redis_host(c), config_redis_port(c),
			  diag_line(dbuf, sizeof(dbuf), detail), retry_ms);
		break;
	}
}

static struct bus *make_bus(struct porthopd *p)
{
	const struct config *c = engine_config(p->engine);
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

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool same_redis(const struct config *a, const struct config *b)
{
	const struct config_redis_extra *x = config_redis_extra(a);
	const struct config_redis_extra *y = config_redis_extra(b);

	if (strcmp(config_redis_host(a), config_redis_host(b)) != 0 ||
	    config_redis_port(a) != config_redis_port(b) ||
	    config_channel_count(a) != config_channel_count(b) ||
	    !same_str(x->password, y->password) ||
	    !same_str(x->username, y->username) ||
	    !same_str(x->unix_socket, y->unix_socket) ||
	    x->connect_timeout_ms != y->connect_timeout_ms ||
	    x->retry_max_ms != y->retry_max_ms)
		return false;
	for (size_t i = 0; i < config_channel_count(a); i++)
		if (strcmp(config_channel(a, i), config_channel(b, i)) != 0)
			return false;
	return true;
}

static void arm_metrics(struct porthopd *p);
static void reopen_control(struct porthopd *p);

/* Returns 0, or -1 with *ret_error (the caller frees it) if given. */
static int reload(struct porthopd *p, char **ret_error)
{
	struct config *c;
	struct auth *auth = NULL;
	bool redis_changed;
	uint64_t repairs = engine_stats(p->engine)->repairs;
	char *err = NULL;

	log_info("reloading %s", p->config_path);
	c = load_checked(p->io, p->config_path, ret_error);
	if (c == NULL) {
		log_warnx("reload refused; the running configuration and its "
			  "rules stay in force");
		return -1;
	}
	/* Before anything changes: without its verifier, signed triggers
	 * could not be checked (and must never be taken unsigned). */
	if (prepare_auth(p, c, &auth) < 0) {
		log_warnx("reload refused: out of memory for trigger "
			  "authentication; the running configuration stays");
		if (ret_error)
			*ret_error = strdup("reload refused: out of memory for "
					    "trigger authentication");
		config_free(c);
		return -1;
	}
	redis_changed = !same_redis(c, engine_config(p->engine));
	if (engine_reload(p->engine, c, &err) < 0) {
		if (auth != p->auth)
			auth_free(auth);
		log_warnx("reload: applying the new configuration failed, the "
			  "old one stays in force: %s", err ? err : "?");
		if (ret_error)
			*ret_error = err;
		else
			free(err);
		config_free(c);
		return -1;
	}
	observe(p);
	if (engine_stats(p->engine)->repairs != repairs &&
	    !engine_stats(p->engine)->last_redefined)
		log_warnx("reconcile: the rules in force had been removed or "
			  "altered; applied again before the reload");
	/* The reload drew a fresh mapping for every entry: what triggers
	 * asked for is served, and their indexes meant the old list. */
	trigger_queue_clear(p->queue);
	log_info("reload applied: %zu watched addresses, %zu pairs",
		 config_watched_count(c), config_pair_count(c));
	log_untrack_state(p);
	arm_untrack(p);
	arm_reconcile(p);
	adopt_auth(p, c, auth);
	if (redis_changed && p->use_redis) {
		bus_free(p->bus);
		p->bus = make_bus(p);
		if (p->bus == NULL)
			log_warnx("reload: out of memory starting the Redis "
				  "subscription");
	}
	arm_metrics(p);
	if (p->socket_override == NULL)
		reopen_control(p);
	return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct porthopd *p = arg;

	(void)what;
	switch (sig) {
	case SIGHUP:
		notify_send("RELOADING=1");
		reload(p, NULL);
		notify_send("READY=1");
		notify_status(p);
		break;
	case SIGUSR1:
		request_shuffle(p, SRC_SIGNAL);
		break;
	default:
		log_info("%s received, stopping", strsignal((int)sig));
		notify_send("STOPPING=1");
		event_base_loopbreak(p->base);
		break;
	}
}

/* On a clean stop: native mode removes its table unless configured to
 * keep it; template mode leaves the rules in force. */
static void stop_rules(struct porthopd *p)
{
	const struct config *c = engine_config(p->engine);
	char *err = NULL;
	int r;

	if (config_mode(c) != CONFIG_MODE_NATIVE || !config_remove_on_stop(c)) {
		bool untracking = engine_stats(p->engine)->untracking;

		r = engine_stop(p->engine, &err);
		if (r < 0)
			log_warnx("taking untrack_unwatched's rules out failed: "
				  "%s", err ? err : "?");
		log_info("the rules in force stay in the kernel%s",
			 untracking && r == 0 &&
			 !engine_stats(p->engine)->untracking ?
			 ", unwatched clients tracked (untrack_unwatched "
			 "\"auto\" has nobody to watch for other users of "
			 "conntrack)" : "");
		free(err);
		return;
	}
	r = engine_stop(p->engine, &err);
	if (r < 0)
		log_warnx("removing table inet %s failed: %s",
			  config_table_name(c), err ? err : "?");
	else if (r > 0)
		log_info("table inet %s was gone already", config_table_name(c));
	else
		log_info("table inet %s removed", config_table_name(c));
	free(err);
}

static void snapshot(struct porthopd *p, struct metrics_snapshot *m)
{
	const struct engine_stats *st = engine_stats(p->engine);
	const struct config *c = engine_config(p->engine);

	memset(m, 0, sizeof(*m));
	m->version = PORTHOP_VERSION;
	m->mode = config_mode(c) == CONFIG_MODE_NATIVE ? "native" : "template";
	m->shuffles = st->shuffles;
	m->failures = st->failures;
	m->reconciliations = st->repairs;
	m->checks = st->checks;
	m->last_check_seconds = st->last_check_ms / 1e3;
	m->untracking = config_mode(c) != CONFIG_MODE_NATIVE ? -1 :
			st->untracking;
	m->untrack_switches = st->untrack_switches;
	m->pairs = engine_map(p->engine) ? st->last_pairs : 0;
	m->watched = config_watched_count(c);
	m->redis_connected = p->bus ? bus_is_up(p->bus) : -1;
	memcpy(m->triggers, p->by_source, sizeof(m->triggers));
	memcpy(m->refused, p->refused, sizeof(m->refused));
	m->apply = &p->apply_hist;
	m->start_time = p->start_time;
	m->last_shuffle_time = st->shuffles ?
		(double)st->last_time.tv_sec + (double)st->last_time.tv_nsec / 1e9 : 0;
}

static json_t *status_reply(struct porthopd *p)
{
	const struct engine_stats *st = engine_stats(p->engine);
	const struct config *c = engine_config(p->engine);
	json_t *chans = json_array(), *r;
	struct timeval next;
	json_int_t next_timer = -1;

	for (size_t i = 0; i < config_channel_count(c); i++)
		json_array_append_new(chans, json_string(config_channel(c, i)));
	if (p->interval_hi && evtimer_pending(p->timer_ev, &next)) {
		struct timeval now;

		event_base_gettimeofday_cached(p->base, &now);
		next_timer = (json_int_t)(next.tv_sec - now.tv_sec);
	}
	r = json_pack("{s:b,s:s,s:s,s:s,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		"ok", 1, "version", PORTHOP_VERSION, "config", p->config_path,
		"mode", config_mode(c) == CONFIG_MODE_NATIVE ? "native" : "template",
		"uptime_seconds", wall_now() - p->start_time,
		"watched_addresses", (json_int_t)config_watched_count(c),
		"pairs", (json_int_t)config_pair_count(c),
		"shuffles", (json_int_t)st->shuffles,
		"failures", (json_int_t)st->failures,
		"triggers", (json_int_t)p->triggers,
		"reconciliations", (json_int_t)st->repairs,
		"next_timer_seconds", next_timer);
	if (r == NULL)
		return NULL;
	if (config_mode(c) == CONFIG_MODE_NATIVE) {
		static const char *const modes[] = { "false", "true", "auto" };

		json_object_set_new(r, "table", json_sprintf("inet %s",
							     config_table_name(c)));
		json_object_set_new(r, "unwatched_clients", json_pack(
			"{s:s,s:s,s:s?,s:I}", "connection_tracking",
			st->untracking ? "untracked" : "tracked",
			"untrack_unwatched", modes[config_untrack(c)],
			"conntrack_user", st->conntrack_user[0] ?
			st->conntrack_user : NULL, "switches",
			(json_int_t)st->untrack_switches));
	}
	if (st->shuffles + st->failures > 0)
		json_object_set_new(r, "last_shuffle", json_pack(
			"{s:I,s:f,s:s,s:I}", "time", (json_int_t)st->last_time.tv_sec,
			"duration_ms", st->last_build_ms + st->last_apply_ms,
			"result", st->last_result == 0 ? "applied" : "failed",
			"commands", (json_int_t)st->last_commands));
	json_object_set_new(r, "redis", json_pack("{s:s,s:s,s:i,s:o,s:I}",
		"state", p->bus == NULL ? "off" : bus_is_up(p->bus) ? "up" : "down",
		"host", config_redis_host(c), "port", config_redis_port(c),
		"channels", chans,
		"messages", (json_int_t)(p->bus ? bus_messages(p->bus) : 0)));
	json_object_set_new(r, "authenticated_triggers", json_boolean(p->auth != NULL));
	return r;
}

static json_t *mapping_reply(struct porthopd *p, const char *only)
{
	const struct shuffle_map *m = engine_map(p->engine);
	const struct config *c = engine_config(p->engine);
	long want = only ? config_watched_find(c, only) : -1;
	json_t *list;

	if (only && want < 0)
		return json_pack("{s:b,s:s}", "ok", 0, "error",
				 "not a watched address or prefix");
	list = json_array();
	for (size_t i = 0; m && i < m->nentries; i++) {
		const struct shuffle_entry *e = &m->entries[i];
		json_t *proto[2];

		if (only && (long)e->watched != want)
			continue;
		proto[0] = json_object();
		proto[1] = json_object();
		for (size_t k = 0; k < e->npairs; k++) {
			char port[8];

			snprintf(port, sizeof(port), "%u", e->pairs[k].port);
			json_object_set_new(proto[e->pairs[k].proto], port,
					    json_integer(e->pairs[k].redirect));
		}
		json_array_append_new(list, json_pack("{s:s,s:o,s:o}",
			"address", config_watched(c, e->watched)->ip,
			"tcp", proto[0], "udp", proto[1]));
	}
	return json_pack("{s:b,s:o}", "ok", 1, "mapping", list);
}

/* A shuffle asked for over the control socket joins the pending one like
 * any trigger.  If it may run now, it runs before the reply, which says
 * how it went; inside min_shuffle_interval_ms it is queued and the reply
 * says when it will run. */
static json_t *control_shuffle(struct porthopd *p, const char *addr)
{
	char vbuf[DIAG_VALUE_MAX + 8], *msg = NULL, *err = NULL;
	long long wait;
	json_t *r;

	if (addr == NULL) {
		request_shuffle(p, SRC_CONTROL);
	} else if (request_address(p, addr, SRC_CONTROL) < 0) {
		if (asprintf(&msg, "%s is not a watched address nor inside a "
			     "watched prefix",
			     diag_string(vbuf, sizeof(vbuf), addr)) < 0)
			msg = NULL;
		r = json_pack("{s:b,s:s}", "ok", 0, "error",
			      msg ? msg : "not a watched address");
		free(msg);
		return r;
	}
	wait = wait_ms(p);
	if (wait > 0)
		return json_pack("{s:b,s:b,s:I}", "ok", 1, "queued", 1,
				 "due_ms", (json_int_t)wait);
	event_del(p->pending_ev);
	if (run_pending(p, &err) < 0) {
		r = json_pack("{s:b,s:s}", "ok", 0, "error",
			      err ? err : "the kernel refused the shuffle; "
			      "see porthopd's log");
		free(err);
		return r;
	}
	return json_pack("{s:b,s:f}", "ok", 1, "duration_ms",
			 engine_stats(p->engine)->last_build_ms +
			 engine_stats(p->engine)->last_apply_ms);
}

static json_t *on_control(void *arg, json_t *req, uid_t uid)
{
	struct porthopd *p = arg;
	const char *cmd = json_string_value(json_object_get(req, "command"));
	const char *addr = json_string_value(json_object_get(req, "address"));
	char *err = NULL;
	json_t *r;

	if (strcmp(cmd, "status") == 0) {
		struct control_stats cs;

		r = status_reply(p);
		if (r && p->control) {
			control_get_stats(p->control, &cs);
			json_object_set_new(r, "control", json_pack(
				"{s:I,s:I,s:I,s:I,s:I,s:I}",
				"open", (json_int_t)cs.open,
				"limit", (json_int_t)cs.limit,
				"refused_busy", (json_int_t)cs.refused_busy,
				"refused_peer", (json_int_t)cs.refused_peer,
				"accept_errors", (json_int_t)cs.accept_errors,
				"timeouts", (json_int_t)cs.timeouts));
		}
		return r;
	}
	if (strcmp(cmd, "metrics") == 0) {
		struct metrics_snapshot m;
		char *text;

		snapshot(p, &m);
		text = metrics_render(&m);
		r = json_pack("{s:b,s:s}", "ok", 1, "text", text ? text : "");
		free(text);
		return r;
	}
	if (strcmp(cmd, "mapping") == 0) {
		/* The mapping is the secret: root only, whatever the
		 * socket's group allows. */
		if (uid != 0)
			return json_pack("{s:b,s:s}", "ok", 0, "error",
					 "permission denied: the mapping is for "
					 "root only");
		log_debug("mapping requested over the control socket");
		return mapping_reply(p, addr);
	}
	if (strcmp(cmd, "shuffle") == 0)
		return control_shuffle(p, addr);
	if (strcmp(cmd, "reload") == 0) {
		notify_send("RELOADING=1");
		if (reload(p, &err) < 0) {
			r = json_pack("{s:b,s:s}", "ok", 0, "error",
				      err ? err : "reload refused");
			free(err);
		} else {
			r = json_pack("{s:b,s:I,s:I}", "ok", 1, "watched_addresses",
				      (json_int_t)config_watched_count(engine_config(p->engine)),
				      "pairs",
				      (json_int_t)config_pair_count(engine_config(p->engine)));
		}
		notify_send("READY=1");
		return r;
	}
	return json_pack("{s:b,s:s}", "ok", 0, "error",
			 "unknown command; expected status, shuffle, reload, "
			 "mapping or metrics");
}

#define RUN_DIR "/run/porthop"

/* The control socket's path: -s, else c's; NULL for none. */
static const char *control_path(const struct porthopd *p,
				const struct config *c)
{
	const char *path = p->socket_override ? p->socket_override :
			   config_daemon(c)->control_socket;

	return path && path[0] ? path : NULL;
}

/* Whether path is directly in RUN_DIR, the directory porthopd makes. */
static bool in_run_dir(const char *path)
{
	return strncmp(path, RUN_DIR "/", sizeof(RUN_DIR)) == 0 &&
	       strchr(path + sizeof(RUN_DIR), '/') == NULL;
}

/* Before the kernel is touched: whatever is at the socket's path must be
 * a socket (replaced) or nothing in an existing directory, or porthopd
 * would stop after its start-up shuffle with its rules left behind. */
static int check_control_path(const struct porthopd *p, const struct config *c)
{
	const char *path = control_path(p, c);
	char *err = NULL;
	struct stat st;

	if (path == NULL ||
	    (in_run_dir(path) && stat(RUN_DIR, &st) < 0 && errno == ENOENT))
		return 0;	/* RUN_DIR is made at start */
	if (control_check_path(path, &err) == 0)
		return 0;
	log_warnx("%s: %s", p->socket_override ? "--socket" : p->config_path,
		  err ? err : "control socket: out of memory");
	free(err);
	return -1;
}

/* RUN_DIR, made if missing, mode 0750 and group-owned by the control
 * group (root's without one), so that its members can reach the socket
 * and nobody else can.  Without CAP_CHOWN (the systemd unit), porthopd
 * can give it only to a group it is in: SupplementaryGroups=. */
static void prepare_run_dir(gid_t gid)
{
	gid_t want = gid == (gid_t)-1 ? 0 : gid;
	struct stat st;
	int fd;

	if (mkdir(RUN_DIR, 0750) < 0 && errno != EEXIST) {
		log_warn("%s", RUN_DIR);
		return;
	}
	fd = open(RUN_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		log_warn("%s", RUN_DIR);
	else if ((st.st_gid != want && fchown(fd, (uid_t)-1, want) < 0) ||
		 ((st.st_mode & 07777) != 0750 && fchmod(fd, 0750) < 0))
		log_warn("%s: control_group cannot reach the socket: giving "
			 "the directory to the group", RUN_DIR);
	if (fd >= 0)
		close(fd);
}

/* A flood of clients must not become a flood of log lines: one line
 * every 10 s at most; status counts them all. */
static void on_control_notice(void *arg, enum control_notice what, int err)
{
	struct porthopd *p = arg;
	struct control_stats cs;
	time_t now = time(NULL);

	if (p->control == NULL || now - p->control_log_at[what] < 10)
		return;
	p->control_log_at[what] = now;
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

	if (in_run_dir(path))
		prepare_run_dir(gid);
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
	const struct config *c = engine_config(p->engine);
	const char *path = control_path(p, c);

	if (path == NULL)
		return 0;
	return open_control_at(p, path, config_daemon(c)->control_gid);
}

/* After a reload: the same path and group keep the socket as it is (and
 * the connections on it); anything else replaces it, and a new socket
 * that cannot be opened leaves the old one in place. */
static void reopen_control(struct porthopd *p)
{
	const struct config *c = engine_config(p->engine);
	const char *path = control_path(p, c);
	gid_t gid = config_daemon(c)->control_gid;

	if (path == NULL) {
		control_free(p->control);
		p->control = NULL;
	} else if (control_is(p->control, path, gid)) {
		if (in_run_dir(path))
			prepare_run_dir(gid);
	} else if (open_control_at(p, path, gid) < 0 && p->control) {
		log_warnx("reload: the control socket stays where it was");
	}
}

static void on_metrics(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;
	const char *path = config_daemon(engine_config(p->engine))->metrics_textfile;
	struct metrics_snapshot m;
	char *text;
	int r;

	(void)fd;
	(void)what;
	if (path == NULL)
		return;
	snapshot(p, &m);
	text = metrics_render(&m);
	r = text ? metrics_write_file(path, text) : -ENOMEM;
	if (r < 0)
		log_warnx("metrics: cannot write %s: %s", path, strerror(-r));
	free(text);
}

static void arm_metrics(struct porthopd *p)
{
	const struct config_daemon *d = config_daemon(engine_config(p->engine));
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

/* Can we talk to the kernel's nftables at all?  Tells a missing privilege
 * apart from a rule the kernel refuses. */
static bool nft_permitted(struct nftio *io)
{
	char *err = NULL;
	int r = nftio_apply_text(io, "{\"nftables\":[{\"add\":{\"table\":"
				 "{\"family\":\"inet\",\"name\":"
				 "\"porthop_probe\"}}}]}", true, &err);
	bool ok = r == 0 || (err && !strstr(err, "Operation not permitted"));

	free(err);
	return ok;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'n' },
		{ "interval", required_argument, NULL, 'i' },
		{ "no-redis", no_argument, NULL, 'R' },
		{ "json-elements", no_argument, NULL, 'J' },
		{ "socket", required_argument, NULL, 's' },
		{ "timestamps", no_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const int signals[4] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1 };
	struct porthopd p = {
		.config_path = DEFAULT_CONFIG,
		.use_redis = true,
	};
	struct config *cfg;
	bool check_only = false, timestamps = false;
	int verbose = 0, ch, status = EXIT_SUCCESS;

	while ((ch = getopt_long(argc, argv, "c:ni:s:TvVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			p.config_path = optarg;
			break;
		case 'n':
			check_only = true;
			break;
		case 'i':
			if (parse_interval(optarg, &p.interval_lo,
					   &p.interval_hi) < 0) {
				fprintf(stderr, "porthopd: --interval %s: "
					"expected L:U, whole seconds with "
					"1 <= L <= U <= 86400\n", optarg);
				return EX_USAGE;
			}
			break;
		case 'R':
			p.use_redis = false;
			break;
		case 'J':
			p.json_elements = true;
			break;
		case 's':
			p.socket_override = optarg;
			break;
		case 'T':
			timestamps = true;
			break;
		case 'v':
			verbose++;
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
	log_init("porthopd", verbose, timestamps);

	p.io = nftio_new_kernel();
	if (p.io == NULL)
		fatalx(EX_OSERR, "cannot create the libnftables context");
	if (!nft_permitted(p.io)) {
		nftio_free(p.io);
		fatalx(EX_NOPERM, "nftables: operation not permitted; porthopd "
		       "needs CAP_NET_ADMIN (run it as root)");
	}
	cfg = load_checked(p.io, p.config_path, NULL);
	if (cfg == NULL || check_control_path(&p, cfg) < 0) {
		config_free(cfg);
		nftio_free(p.io);
		return EX_CONFIG;
	}
	if (check_only) {
		printf("%s: configuration OK: %zu watched address%s, %zu "
		       "pairs\n", p.config_path, config_watched_count(cfg),
		       config_watched_count(cfg) == 1 ? "" : "es",
		       config_pair_count(cfg));
		config_free(cfg);
		nftio_free(p.io);
		return EXIT_SUCCESS;
	}
	p.start_time = wall_now();
	p.engine = engine_new(cfg, p.io);
	p.rng = shuffle_new();
	p.base = event_base_new();
	p.queue = trigger_queue_new();
	if (p.engine == NULL || p.rng == NULL || p.base == NULL ||
	    p.queue == NULL)
		fatalx(EX_OSERR, "out of memory");
	engine_set_json_elements(p.engine, p.json_elements);
	if (prepare_auth(&p, cfg, &p.auth) < 0)
		fatalx(EX_OSERR, "cannot set up trigger authentication");
	log_info("starting: %s, %zu watched address%s, %zu pairs",
		 p.config_path, config_watched_count(cfg),
		 config_watched_count(cfg) == 1 ? "" : "es",
		 config_pair_count(cfg));

	/* Cover the host before the first message arrives. */
	do_shuffle(&p, "start", NULL);
	clock_gettime(CLOCK_MONOTONIC, &p.last_shuffle);
	log_untrack_state(&p);
	/* Only now, with the host covered: control socket and metrics. */
	if (engine_stats(p.engine)->shuffles == 0) {
		log_warnx("the start-up shuffle failed; stopping");
		status = EX_UNAVAILABLE;
		goto out;
	}

	p.pending_ev = evtimer_new(p.base, on_pending, &p);
	p.timer_ev = evtimer_new(p.base, on_interval, &p);
	p.reconcile_ev = event_new(p.base, -1, EV_PERSIST, on_reconcile, &p);
	p.metrics_ev = event_new(p.base, -1, EV_PERSIST, on_metrics, &p);
	p.untrack_ev = event_new(p.base, -1, EV_PERSIST, on_untrack, &p);
	if (p.pending_ev == NULL || p.timer_ev == NULL ||
	    p.reconcile_ev == NULL || p.metrics_ev == NULL ||
	    p.untrack_ev == NULL)
		fatalx(EX_OSERR, "out of memory");
	arm_untrack(&p);
	arm_reconcile(&p);
	arm_metrics(&p);
	if (open_control(&p) < 0) {
		/* As on any stop: no half-started daemon's rules left. */
		stop_rules(&p);
		status = EX_OSERR;
		goto out;
	}
	for (size_t i = 0; i < 4; i++) {
		p.sig[i] = evsignal_new(p.base, signals[i], on_signal, &p);
		if (p.sig[i] == NULL || evsignal_add(p.sig[i], NULL) < 0)
			fatalx(EX_OSERR, "cannot install signal handlers");
	}
	signal(SIGPIPE, SIG_IGN);
	arm_interval(&p);
	if (p.use_redis) {
		p.bus = make_bus(&p);
		if (p.bus == NULL)
			fatalx(EX_OSERR, "out of memory");
	}
	/* The host is covered: tell systemd, and keep its watchdog fed at
	 * half the interval it asked for. */
	notify_send("READY=1");
	notify_status(&p);
	if (notify_watchdog_usec() > 0) {
		uint64_t half = notify_watchdog_usec() / 2;
		struct timeval tv = { (time_t)(half / 1000000),
				      (suseconds_t)(half % 1000000) };

		p.watchdog_ev = event_new(p.base, -1, EV_PERSIST, on_watchdog, &p);
		if (p.watchdog_ev == NULL || evtimer_add(p.watchdog_ev, &tv) < 0)
			fatalx(EX_OSERR, "cannot arm the watchdog timer");
	}
	event_base_dispatch(p.base);
	stop_rules(&p);
out:
	bus_free(p.bus);
	control_free(p.control);
	if (p.metrics_ev)
		event_free(p.metrics_ev);
	for (size_t i = 0; i < 4; i++)
		if (p.sig[i])
			event_free(p.sig[i]);
	if (p.pending_ev)
		event_free(p.pending_ev);
	if (p.timer_ev)
		event_free(p.timer_ev);
	if (p.reconcile_ev)
		event_free(p.reconcile_ev);
	if (p.untrack_ev)
		event_free(p.untrack_ev);
	if (p.watchdog_ev)
		event_free(p.watchdog_ev);
	engine_free(p.engine);
	trigger_queue_free(p.queue);
	auth_free(p.auth);
	shuffle_free(p.rng);
	nftio_free(p.io);
	if (p.base)
		event_base_free(p.base);
	libevent_global_shutdown();
	return status;
}
