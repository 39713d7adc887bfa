/*
 * porthopd: the moving-target-defense daemon.  This file only parses
 * arguments, wires the modules together and runs the event loop; the work
 * is done in src/lib.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "auth.h"
#include "bus.h"
#include "config.h"
#include "diag.h"
#include "engine.h"
#include "log.h"
#include "nftio.h"
#include "notify.h"
#include "shuffle.h"

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
	struct event *timer_ev;
	struct event *reconcile_ev;
	struct event *watchdog_ev;
	const char *pending_reason;
	struct timespec last_shuffle;		/* CLOCK_MONOTONIC */
	uint64_t triggers;
	uint64_t reconciliations;
	bool json_elements;
	struct auth *auth;			/* NULL: triggers unsigned */
	uint64_t refused[AUTH_BUSY + 1];	/* by enum auth_result */
	time_t refusal_log_at;			/* rate limit of the log */
	uint64_t refusals_unlogged;
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: porthopd [-nTv] [-c file] [--interval L:U] [--no-redis]\n"
"\n"
"  -c, --config FILE   configuration (default " DEFAULT_CONFIG ")\n"
"  -n, --check         check the configuration and rule files (including a\n"
"                      kernel dry run of the rules) and exit: 0 or 78\n"
"  -i, --interval L:U  also shuffle every T seconds, T uniform in L..U\n"
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
 * the configuration, or NULL after logging every error. */
static struct config *load_checked(struct nftio *io, const char *path)
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
	if (c == NULL)
		log_warnx("%s: %zu error%s; configuration refused", path,
			  diag_errors(d), diag_errors(d) == 1 ? "" : "s");
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

static void do_shuffle(struct porthopd *p, const char *reason)
{
	const struct engine_stats *st;
	char *err = NULL;

	if (engine_shuffle(p->engine, &err) < 0) {
		log_warnx("shuffle (%s) failed, previous rules stay in force: "
			  "%s", reason, err ? err : "unknown error");
		free(err);
		return;
	}
	st = engine_stats(p->engine);
	log_info("shuffle %llu applied (%s): %zu pairs, %zu commands, "
		 "build %.1f ms, apply %.1f ms",
		 (unsigned long long)st->shuffles, reason, st->last_pairs,
		 st->last_commands, st->last_build_ms, st->last_apply_ms);
	notify_status(p);
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
	do_shuffle(p, p->pending_reason);
	clock_gettime(CLOCK_MONOTONIC, &p->last_shuffle);
}

/* Triggers that arrive while one is pending collapse into it: a burst of
 * messages costs one shuffle, and shuffles keep the configured distance
 * (min_shuffle_interval_ms) however fast messages come. */
static void request_shuffle(struct porthopd *p, const char *reason)
{
	unsigned min_ms = config_daemon(engine_config(p->engine))->min_shuffle_interval_ms;
	struct timeval tv = { 0, 0 };
	struct timespec now;
	long long since_ms;

	p->triggers++;
	/* event_pending() is true for an active event too. */
	if (event_pending(p->pending_ev, EV_TIMEOUT, NULL))
		return;
	p->pending_reason = reason;
	clock_gettime(CLOCK_MONOTONIC, &now);
	since_ms = (now.tv_sec - p->last_shuffle.tv_sec) * 1000LL +
		   (now.tv_nsec - p->last_shuffle.tv_nsec) / 1000000;
	if (min_ms > 0 && since_ms < (long long)min_ms) {
		long long wait = (long long)min_ms - since_ms;

		tv.tv_sec = (time_t)(wait / 1000);
		tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
		evtimer_add(p->pending_ev, &tv);
		return;
	}
	event_active(p->pending_ev, EV_TIMEOUT, 0);
}

/* One watched address's mapping only, when a message names it. */
static void shuffle_address(struct porthopd *p, const char *ip)
{
	const struct engine_stats *st;
	char *err = NULL;
	char vbuf[DIAG_VALUE_MAX + 8];

	p->triggers++;
	if (engine_shuffle_address(p->engine, ip, &err) < 0) {
		log_warnx("shuffle of %s refused: %s",
			  diag_string(vbuf, sizeof(vbuf), ip), err ? err : "?");
		free(err);
		return;
	}
	st = engine_stats(p->engine);
	log_info("shuffle %llu applied (address %s): %zu operations, "
		 "build %.1f ms, apply %.1f ms",
		 (unsigned long long)st->shuffles, ip, st->last_commands,
		 st->last_build_ms, st->last_apply_ms);
}

static void on_reconcile(evutil_socket_t fd, short what, void *arg)
{
	struct porthopd *p = arg;
	char *err = NULL;
	int r;

	(void)fd;
	(void)what;
	r = engine_reconcile(p->engine, &err);
	if (r < 0)
		log_warnx("reconcile: the rules in force could not be "
			  "restored: %s", err ? err : "?");
	else if (r > 0) {
		p->reconciliations++;
		log_warnx("reconcile: the rules in force had been removed or "
			  "altered; applied again (%.1f ms)",
			  engine_stats(p->engine)->last_apply_ms);
	}
	free(err);
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
	request_shuffle(p, "timer");
	arm_interval(p);
}

/* A refused trigger: counted always, logged at most every 10 seconds so a
 * flood of forgeries cannot flood the log. */
static void refuse(struct porthopd *p, enum auth_result r, const char *channel)
{
	char cbuf[DIAG_VALUE_MAX + 8];
	time_t now = time(NULL);

	p->refused[r]++;
	if (now - p->refusal_log_at < 10) {
		p->refusals_unlogged++;
		return;
	}
	log_warnx("trigger on channel %s refused: %s%s",
		  diag_string(cbuf, sizeof(cbuf), channel), auth_result_name(r),
		  p->refusals_unlogged ? " (and earlier refusals not logged)" : "");
	p->refusal_log_at = now;
	p->refusals_unlogged = 0;
}

static int make_auth(struct porthopd *p, const struct config *c)
{
	const struct config_daemon *d = config_daemon(c);

	auth_free(p->auth);
	p->auth = NULL;
	if (d->trigger_key == NULL)
		return 0;
	/* A window's worth of triggers at a thousand a second. */
	p->auth = auth_new(d->trigger_key, d->trigger_key_len,
			   d->trigger_window_s, 1000 * (size_t)d->trigger_window_s);
	return p->auth ? 0 : -ENOMEM;
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
			shuffle_address(p, ip);
			json_decref(msg);
			return;
		}
		json_decref(msg);
	}
	request_shuffle(p, "redis");
}

static void on_bus_state(void *arg, enum bus_event ev, const char *detail,
			 unsigned retry_ms)
{
	struct porthopd *p = arg;
	const struct config *c = engine_config(p->engine);

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
			request_shuffle(p, "reconnect");
		break;
	case BUS_DOWN:
		log_warnx("redis %s:%d: %s; retrying (next in %u ms), rules in "
			  "force stay", config_redis_host(c),
			  config_redis_port(c), detail, retry_ms);
		break;
	case BUS_RETRY:
		log_debug("redis %s:%d: %s; next attempt in %u ms",
			  config_redis_host(c), config_redis_port(c), detail,
			  retry_ms);
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

static void reload(struct porthopd *p)
{
	struct config *c;
	bool redis_changed;
	char *err = NULL;

	log_info("reloading %s", p->config_path);
	c = load_checked(p->io, p->config_path);
	if (c == NULL) {
		log_warnx("reload refused; the running configuration and its "
			  "rules stay in force");
		return;
	}
	redis_changed = !same_redis(c, engine_config(p->engine));
	if (engine_reload(p->engine, c, &err) < 0) {
		log_warnx("reload: applying the new configuration failed, the "
			  "old one stays in force: %s", err ? err : "?");
		free(err);
		config_free(c);
		return;
	}
	log_info("reload applied: %zu watched addresses, %zu pairs",
		 config_watched_count(c), config_pair_count(c));
	arm_reconcile(p);
	if (make_auth(p, c) < 0)
		log_warnx("reload: out of memory for trigger authentication; "
			  "signed triggers are refused until the next reload");
	if (redis_changed && p->use_redis) {
		bus_free(p->bus);
		p->bus = make_bus(p);
		if (p->bus == NULL)
			log_warnx("reload: out of memory starting the Redis "
				  "subscription");
	}
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct porthopd *p = arg;

	(void)what;
	switch (sig) {
	case SIGHUP:
		notify_send("RELOADING=1");
		reload(p);
		notify_send("READY=1");
		notify_status(p);
		break;
	case SIGUSR1:
		request_shuffle(p, "signal");
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

	if (config_mode(c) != CONFIG_MODE_NATIVE || !config_remove_on_stop(c)) {
		log_info("the rules in force stay in the kernel");
		return;
	}
	if (engine_stop(p->engine, &err) < 0)
		log_warnx("removing table inet %s failed: %s",
			  config_table_name(c), err ? err : "?");
	else
		log_info("table inet %s removed", config_table_name(c));
	free(err);
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

	while ((ch = getopt_long(argc, argv, "c:ni:TvVh", longopts, NULL)) != -1) {
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
	cfg = load_checked(p.io, p.config_path);
	if (cfg == NULL) {
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
	p.engine = engine_new(cfg, p.io);
	p.rng = shuffle_new();
	p.base = event_base_new();
	if (p.engine == NULL || p.rng == NULL || p.base == NULL)
		fatalx(EX_OSERR, "out of memory");
	engine_set_json_elements(p.engine, p.json_elements);
	if (make_auth(&p, cfg) < 0)
		fatalx(EX_OSERR, "cannot set up trigger authentication");
	log_info("starting: %s, %zu watched address%s, %zu pairs",
		 p.config_path, config_watched_count(cfg),
		 config_watched_count(cfg) == 1 ? "" : "es",
		 config_pair_count(cfg));

	/* Cover the host before the first message arrives. */
	do_shuffle(&p, "start");
	clock_gettime(CLOCK_MONOTONIC, &p.last_shuffle);
	if (engine_stats(p.engine)->shuffles == 0) {
		log_warnx("the start-up shuffle failed; stopping");
		status = EX_UNAVAILABLE;
		goto out;
	}

	p.pending_ev = evtimer_new(p.base, on_pending, &p);
	p.timer_ev = evtimer_new(p.base, on_interval, &p);
	p.reconcile_ev = event_new(p.base, -1, EV_PERSIST, on_reconcile, &p);
	if (p.pending_ev == NULL || p.timer_ev == NULL || p.reconcile_ev == NULL)
		fatalx(EX_OSERR, "out of memory");
	arm_reconcile(&p);
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
	for (size_t i = 0; i < 4; i++)
		if (p.sig[i])
			event_free(p.sig[i]);
	if (p.pending_ev)
		event_free(p.pending_ev);
	if (p.timer_ev)
		event_free(p.timer_ev);
	if (p.reconcile_ev)
		event_free(p.reconcile_ev);
	if (p.watchdog_ev)
		event_free(p.watchdog_ev);
	engine_free(p.engine);
	auth_free(p.auth);
	shuffle_free(p.rng);
	nftio_free(p.io);
	if (p.base)
		event_base_free(p.base);
	libevent_global_shutdown();
	return status;
}
