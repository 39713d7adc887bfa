/*
 * porthop publish: the reference's launcher, `porthop publish`: a trigger
 * message on a Redis channel, once or every L..U seconds, signed when a
 * trigger key is configured.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "auth.h"
#include "config.h"
#include "diag.h"
#include "fleet.h"
#include "porthop.h"
#include "shuffle.h"

/* Set from the signal handler; the loop in publish checks it. */
static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void publish_usage(FILE *f)
{
	fprintf(f,
"usage: porthop publish [-c file] [-r host] [-p port] [-C channel]\n"
"                       [-m message] [-l L -u U] [-n count] [-k key-file]\n"
"                       [-q] [-t] [--stream [--wait N]]\n"
"\n"
"  -c, --config FILE    take host, port and channel from a configuration\n"
"  -r, --host HOST      Redis host (default 127.0.0.1)\n"
"  -p, --port PORT      Redis port (default 6379)\n"
"  -C, --channel NAME   channel (default: the configuration's first,\n"
"                       else test_channel_1)\n"
"  -m, --message TEXT   payload (default \"shuffle\")\n"
"  -l, --lower L        with -u: publish every T seconds, T uniform in L..U,\n"
"  -u, --upper U        until interrupted (Ctrl-C)\n"
"  -n, --count N        with -l/-u: stop after N messages\n"
"  -q, --quiet          print nothing on success\n"
"  -k, --key-file FILE  sign each message (authenticated triggers); the\n"
"                       configuration's porthopd.trigger_key_file with -c\n"
"  -t, --print-time     print the wall-clock time each PUBLISH is sent\n"
"                       (epoch seconds; for latency measurements)\n"
"  -S, --stream         write a trigger to the fleet stream of the\n"
"                       configuration (-c, else the default path) instead:\n"
"                       every host applies it; the primary is found through\n"
"                       the configuration's sentinels.  -m '{\"address\":A}'\n"
"                       names an address; any other message shuffles all\n"
"  -w, --wait N         with --stream: wait for N replicas (WAIT; default:\n"
"                       the configuration's wait_replicas).  Exit 69 when\n"
"                       no primary took it, 75 when fewer replicas did\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end != '\0' || v > max || s[0] == '-')
		return -1;
	*ret = v;
	return 0;
}

/* Sleeps up to ms, returning early when a stop was requested. */
static void nap(unsigned long ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000 };

	while (!stop_requested && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* What `porthop publish` was asked for. */
struct publish {
	const char *conf, *host, *channel, *key_file, *message;
	unsigned long port, lo, hi, count;
	bool have_lo, have_hi, quiet, print_time, stream;
	int wait;			/* --wait; -1: the configuration's */
	unsigned char *key;		/* the trigger key, or NULL */
	size_t keylen;
};

/* Parses publish's options into o.  Returns -1 to go on, or an exit
 * status. */
static int publish_options(struct publish *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "host", required_argument, NULL, 'r' },
		{ "port", required_argument, NULL, 'p' },
		{ "channel", required_argument, NULL, 'C' },
		{ "message", required_argument, NULL, 'm' },
		{ "lower", required_argument, NULL, 'l' },
		{ "upper", required_argument, NULL, 'u' },
		{ "count", required_argument, NULL, 'n' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "print-time", no_argument, NULL, 't' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "stream", no_argument, NULL, 'S' },
		{ "wait", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long v;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:r:p:C:m:l:u:n:qtk:Sw:h", longopts,
				 NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->conf = optarg;
			break;
		case 'r':
			o->host = optarg;
			break;
		case 'p':
			if (parse_uint(optarg, 65535, &o->port) < 0 ||
			    o->port == 0) {
				fprintf(stderr, "porthop publish: -p %s: expected "
					"a port from 1 to 65535\n", optarg);
				return EX_USAGE;
			}
			break;
		case 'C':
			o->channel = optarg;
			break;
		case 'm':
			o->message = optarg;
			break;
		case 'l':
		case 'u':
		case 'n':
			if (parse_uint(optarg, 86400 * 365, &v) < 0 ||
			    (ch != 'n' && v == 0)) {
				fprintf(stderr, "porthop publish: -%c %s: expected "
					"a whole number%s\n", ch, optarg,
					ch == 'n' ? "" : " of seconds >= 1");
				return EX_USAGE;
			}
			if (ch == 'l') {
				o->lo = v;
				o->have_lo = true;
			} else if (ch == 'u') {
				o->hi = v;
				o->have_hi = true;
			} else {
				o->count = v;
			}
			break;
		case 'q':
			o->quiet = true;
			break;
		case 't':
			o->print_time = true;
			break;
		case 'k':
			o->key_file = optarg;
			break;
		case 'S':
			o->stream = true;
			break;
		case 'w':
			if (parse_uint(optarg, 16, &v) < 0) {
				fprintf(stderr, "porthop publish: --wait %s: "
					"expected 0 to 16 replicas\n", optarg);
				return EX_USAGE;
			}
			o->wait = (int)v;
			break;
		case 'h':
			publish_usage(stdout);
			return EXIT_SUCCESS;
		default:
			publish_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc || o->have_lo != o->have_hi ||
	    (o->have_lo && o->hi < o->lo)) {
		fprintf(stderr, "porthop publish: %s\n", optind != argc ?
			"unexpected argument" :
			"-l and -u go together, with L <= U");
		publish_usage(stderr);
		return EX_USAGE;
	}
	return -1;
}

/* What the options left open, from the configuration (-c) or the
 * reference's defaults; the key from -k or the configuration.  cfg is
 * kept (its strings are borrowed).  Returns -1 to go on, or an exit
 * status. */
static int publish_settings(struct publish *o, struct config **cfg)
{
	struct diag *d = diag_new();
	int r = -1;

	if (d == NULL)
		return EX_OSERR;
	if (o->conf) {
		*cfg = config_load(o->conf, CONFIG_LOAD_NO_RULES, d);
		diag_print(d, stderr);
		if (*cfg == NULL) {
			r = EX_CONFIG;
			goto out;
		}
		if (o->host == NULL)
			o->host = config_redis_host(*cfg);
		if (o->port == 0)
			o->port = (unsigned long)config_redis_port(*cfg);
		if (o->channel == NULL)
			o->channel = config_channel(*cfg, 0);
		if (o->key_file == NULL && config_daemon(*cfg)->trigger_key) {
			o->keylen = config_daemon(*cfg)->trigger_key_len;
			o->key = malloc(o->keylen);
			if (o->key == NULL) {
				r = EX_OSERR;
				goto out;
			}
			memcpy(o->key, config_daemon(*cfg)->trigger_key, o->keylen);
		}
	}
	if (o->key_file && auth_load_key(o->key_file, "porthop publish: -k", d,
					 &o->key, &o->keylen) < 0) {
		fprintf(stderr, "%s\n", diag_first_error(d));
		r = EX_CONFIG;
		goto out;
	}
	if (o->host == NULL)
		o->host = "127.0.0.1";
	if (o->port == 0)
		o->port = 6379;
	if (o->channel == NULL)
		o->channel = "test_channel_1";
out:
	diag_free(d);
	return r;
}

/* Publishes until done (-n, or one message without -l/-u) or stopped.
 * Returns an exit status. */
static int publish_loop(struct publish *o, redisContext *rc)
{
	struct shuffle *rng = shuffle_new();
	unsigned long sent = 0;
	int status = EXIT_SUCCESS;

	if (rng == NULL)
		return EX_OSERR;
	while (!stop_requested) {
		struct timespec now;
		char *signed_msg = NULL;
		uint32_t extra = 0;
		redisReply *r;

		clock_gettime(CLOCK_REALTIME, &now);
		if (o->key && auth_sign(o->key, o->keylen, now.tv_sec,
					o->message, &signed_msg) < 0) {
			status = EX_OSERR;
			break;
		}
		r = redisCommand(rc, "PUBLISH %s %s", o->channel,
				 signed_msg ? signed_msg : o->message);
		free(signed_msg);
		if (o->print_time)
			printf("sent at %lld.%06ld\n", (long long)now.tv_sec,
			       now.tv_nsec / 1000);
		if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
			if (!stop_requested) {
				fprintf(stderr, "porthop publish: PUBLISH on "
					"%s:%lu failed: %s\n", o->host, o->port,
					r ? (r->str ? r->str : "unexpected "
					     "reply") : rc->errstr);
				status = EX_UNAVAILABLE;
			}
			freeReplyObject(r);
			break;
		}
		sent++;
		if (!o->quiet)
			printf("published to \"%s\" on %s:%lu: %lld "
			       "subscriber%s\n", o->channel, o->host, o->port,
			       r->integer, r->integer == 1 ? "" : "s");
		fflush(stdout);
		freeReplyObject(r);
		if (!o->have_lo || (o->count && sent >= o->count))
			break;
		if (shuffle_uniform(rng, (uint32_t)(o->hi - o->lo + 1),
				    &extra) < 0)
			extra = 0;
		if (!o->quiet)
			printf("next in %lu s\n", o->lo + extra);
		fflush(stdout);
		nap((o->lo + extra) * 1000);
	}
	if (stop_requested && !o->quiet)
		printf("stopped after %lu message%s\n", sent,
		       sent == 1 ? "" : "s");
	shuffle_free(rng);
	return status;
}

/* --stream: the trigger as a fleet operation, once or every L..U s.
 * Returns an exit status. */
static int publish_stream(struct publish *o)
{
	struct config *cfg = cli_fleet_config(o->conf);
	struct shuffle *rng = shuffle_new();
	struct fleet_op op = { .kind = FLEET_TRIGGER };
	json_t *m = json_loads(o->message, 0, NULL);
	const char *addr = json_string_value(json_object_get(m, "address"));
	unsigned long sent = 0;
	int status = EXIT_SUCCESS;

	if (cfg == NULL || rng == NULL) {
		status = cfg ? EX_OSERR : EX_CONFIG;
		goto out;
	}
	if (o->key_file) {
		struct diag *d = diag_new();

		if (d == NULL || auth_load_key(o->key_file, "porthop publish: -k",
					       d, &o->key, &o->keylen) < 0) {
			fprintf(stderr, "%s\n", d ? diag_first_error(d) :
				"out of memory");
			diag_free(d);
			status = EX_CONFIG;
			goto out;
		}
		diag_free(d);
	}
	if (addr && json_object_size(m) == 1)
		snprintf(op.address, sizeof(op.address), "%s", addr);
	while (!stop_requested) {
		uint32_t extra = 0;

		op.ts = 0;
		status = cli_fleet_send(cfg, o->host, (int)o->port, &op, 1,
					o->wait, o->key, o->keylen, o->quiet);
		if (status != EXIT_SUCCESS)
			break;
		sent++;
		fflush(stdout);
		if (!o->have_lo || (o->count && sent >= o->count))
			break;
		if (shuffle_uniform(rng, (uint32_t)(o->hi - o->lo + 1),
				    &extra) < 0)
			extra = 0;
		nap((o->lo + extra) * 1000);
	}
out:
	json_decref(m);
	shuffle_free(rng);
	config_free(cfg);
	return status;
}

int cmd_publish(const struct globals *g, int argc, char **argv)
{
	struct publish o = { .conf = g->conf, .message = "shuffle",
			     .wait = -1 };
	struct config *cfg = NULL;
	struct timeval tv = { 5, 0 };
	redisContext *rc = NULL;
	struct sigaction sa;
	int status;

	status = publish_options(&o, argc, argv);
	if (status >= 0)
		return status;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (o.stream) {
		status = publish_stream(&o);
		goto out;
	}
	status = publish_settings(&o, &cfg);
	if (status >= 0)
		goto out;
	rc = redisConnectWithTimeout(o.host, (int)o.port, tv);
	if (rc == NULL || rc->err) {
		fprintf(stderr, "porthop publish: cannot connect to Redis at "
			"%s:%lu: %s\n", o.host, o.port,
			rc ? rc->errstr : "out of memory");
		status = EX_UNAVAILABLE;
		goto out;
	}
	redisSetTimeout(rc, tv);
	status = publish_loop(&o, rc);
out:
	if (rc)
		redisFree(rc);
	if (o.key)
		explicit_bzero(o.key, o.keylen);
	free(o.key);
	config_free(cfg);
	return status;
}
