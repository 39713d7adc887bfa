/*
 * porthop-sshguard: an sshguard firewall backend that watches, instead
 * of blocking.  sshguard's blocker writes block / release / flush /
 * flushonexit lines on our standard input (sshgproto.h); each one becomes
 * a runtime watch list request to porthopd (docs/watch.md) under one
 * origin, "sshguard" by default; with --fleet, an operation on the fleet
 * stream instead (docs/fleet.md), which every host of the fleet applies.
 *
 * sshguard restarts nothing: a backend that exits leaves its pipeline
 * broken until sshguard is restarted.  So nothing on the input makes
 * this program exit; a bad line, a refusal or an unreachable porthopd is
 * one line on stderr, and the next line is read.  Only a bad command line
 * exits (64), and the end of the input or SIGTERM, SIGINT or SIGHUP end
 * it normally (0), after the flush sshguard asked for with flushonexit.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <jansson.h>

#include "config.h"
#include "control.h"
#include "diag.h"
#include "fleetpub.h"
#include "log.h"
#include "sshgproto.h"
#include "watchlist.h"

/* One request's deadline: watch_add returns once the mapping is in the
 * kernel and the entry on disk. */
#define CALL_TIMEOUT_MS 10000
/* How long one command is retried while porthopd is unreachable or busy
 * (a restart, a reload), with a backoff from 100 ms to 1 s.  sshguard's
 * blocker does not wait for us (its lines queue in the pipe), but the
 * commands behind this one do. */
#define RETRY_MS 5000
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 1000

/* The default origin; PORTHOP_SSHGUARD_ORIGIN and
 * PORTHOP_SSHGUARD_SOCKET stand in for --origin and -s, because
 * sshguard runs BACKEND= as one path without arguments (sshguard.conf is
 * a shell file: it may export them). */
#define DEFAULT_ORIGIN "sshguard"
#define ENV_SOCKET "PORTHOP_SSHGUARD_SOCKET"
#define ENV_ORIGIN "PORTHOP_SSHGUARD_ORIGIN"
#define ENV_FLEET "PORTHOP_SSHGUARD_FLEET"

struct backend {
	const char *socket;
	const char *origin;
	struct config *fleet;		/* NULL: the control socket */
	bool flushonexit;
	unsigned long line_no;
};

/* The terminating signal received; the only global, set by the handler. */
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: porthop-sshguard [-s SOCKET | --fleet CONFIG] [--origin NAME]\n"
"\n"
"An sshguard backend (BACKEND= in sshguard.conf): reads sshguard's block,\n"
"release and flush commands on standard input and has porthopd watch the\n"
"blocked addresses, under one origin, instead of dropping them.\n"
"\n"
"  -s, --socket SOCKET  porthopd's control socket (default\n"
"                       " CONFIG_DEFAULT_CONTROL_SOCKET ", or $" ENV_SOCKET ")\n"
"  -f, --fleet CONFIG   publish to the fleet stream of porthop's\n"
"                       configuration CONFIG instead (or $" ENV_FLEET ");\n"
"                       every host applies the entries as fleet.NAME\n"
"  -o, --origin NAME    the runtime entries' origin, [a-z0-9_.-]{1,64}\n"
"                       (default " DEFAULT_ORIGIN ", or $" ENV_ORIGIN ")\n"
"  -v, --verbose        log every command read\n"
"  -V, --version        print the version\n"
"  -h, --help           this help\n");
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms milliseconds; a signal ends the wait early. */
static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* What the command did, for the log line of its success. */
static void log_done(const struct backend *b, const struct sshgproto_cmd *cmd,
		     const json_t *reply)
{
	json_int_t deleted;

	switch (cmd->kind) {
	case SSHGPROTO_BLOCK:
		log_info("block %s: watched (origin %s)", cmd->net, b->origin);
		break;
	case SSHGPROTO_RELEASE:
		log_info("release %s: no longer watched by origin %s%s",
			 cmd->net, b->origin,
			 json_is_true(json_object_get(reply, "ok")) ? "" :
			 " (it held no entry)");
		break;
	case SSHGPROTO_FLUSH:
		deleted = json_integer_value(json_object_get(reply, "deleted"));
		log_info("flush: %lld entr%s of origin %s no longer watched",
			 (long long)deleted, deleted == 1 ? "y" : "ies",
			 b->origin);
		break;
	case SSHGPROTO_FLUSHONEXIT:
		break;
	}
}

/* The command as the log names it: "block 192.0.2.7", "flush". */
static const char *command_text(const struct sshgproto_cmd *cmd, char *buf,
				size_t size)
{
	if (cmd->kind == SSHGPROTO_BLOCK || cmd->kind == SSHGPROTO_RELEASE)
		snprintf(buf, size, "%s %s", sshgproto_kind_name(cmd->kind),
			 cmd->net);
	else
		snprintf(buf, size, "%s", sshgproto_kind_name(cmd->kind));
	return buf;
}

/* Why a request did not succeed, in a few words: the socket's errno, or
 * porthopd's code and message (escaped: it is text from a peer). */
static const char *failure_text(const struct backend *b, int r,
				const json_t *reply, char *buf, size_t size)
{
	const char *code, *error;
	char msg[384];

	if (r < 0) {
		snprintf(buf, size, "cannot talk to porthopd at %s: %s",
			 b->socket, strerror(-r));
		return buf;
	}
	code = json_string_value(json_object_get(reply, "code"));
	error = json_string_value(json_object_get(reply, "error"));
	diag_line(msg, sizeof(msg), error ? error : "no reason given");
	snprintf(buf, size, "refused by porthopd (%s): %s",
		 code ? code : "no code", msg);
	return buf;
}

/* Fleet mode: cmd as one stream operation (a block without expiry: it
 * ends with sshguard's release), published; flush has no fleet
 * counterpart.  Retried like a request (what fails is only the
 * connection or the primary; publishing twice is harmless). */
static void execute_fleet(const struct backend *b,
			  const struct sshgproto_cmd *cmd, bool at_exit)
{
	struct fleet_op op = { .kind = cmd->kind == SSHGPROTO_BLOCK ?
				       FLEET_WATCH : FLEET_UNWATCH };
	long deadline = now_ms() + RETRY_MS, delay = BACKOFF_FIRST_MS;
	char what[SSHGPROTO_NET_MAX + 16], err[768];
	int attempts = 0, r;

	command_text(cmd, what, sizeof(what));
	if (cmd->kind == SSHGPROTO_FLUSH) {
		log_warnx("flush: the fleet stream has no flush; the fleet's "
			  "entries of origin %s stay until released", b->origin);
		return;
	}
	snprintf(op.address, sizeof(op.address), "%s", cmd->net);
	snprintf(op.origin, sizeof(op.origin), "%s", b->origin);
	for (;;) {
		r = fleetpub_publish(b->fleet, &op, 1, err, sizeof(err));
		attempts++;
		if (r == 0) {
			log_info("%s: published to the fleet stream (origin %s)",
				 what, b->origin);
			return;
		}
		if (r == -EINVAL || r == -ENOMEM || now_ms() + delay > deadline ||
		    (stop_signal && !at_exit))
			break;
		if (attempts == 1)
			log_warnx("%s: %s; retrying for up to %d s", what, err,
				  RETRY_MS / 1000);
		pause_ms(delay);
		delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
	}
	log_warnx("%s failed after %d attempt%s: %s", what, attempts,
		  attempts == 1 ? "" : "s", err);
}

/* Sends cmd's request to porthopd, retrying for RETRY_MS while porthopd
 * is unreachable or busy; logs the outcome (and, once, that it retries).
 * A stop signal ends the retries, unless this is the flush at exit. */
static void execute(const struct backend *b, const struct sshgproto_cmd *cmd,
		    bool at_exit)
{
	json_t *req = sshgproto_request(cmd, b->origin);
	long deadline = now_ms() + RETRY_MS, delay = BACKOFF_FIRST_MS;
	char what[SSHGPROTO_NET_MAX + 16], why[640];
	int attempts = 0;

	if (b->fleet) {
		json_decref(req);
		execute_fleet(b, cmd, at_exit);
		return;
	}
	command_text(cmd, what, sizeof(what));
	if (req == NULL) {
		log_warnx("%s: out of memory", what);
		return;
	}
	for (;;) {
		json_t *reply = NULL;
		int r = control_call(b->socket, req, CALL_TIMEOUT_MS, &reply);
		enum sshgproto_verdict v = sshgproto_verdict(cmd, r, reply);
		bool again = v == SSHGPROTO_RETRY &&
			     now_ms() + delay <= deadline &&
			     !(stop_signal && !at_exit);

		attempts++;
		if (v == SSHGPROTO_DONE)
			log_done(b, cmd, reply);
		else if (again && attempts == 1)
			log_warnx("%s: %s; retrying for up to %d s", what,
				  failure_text(b, r, reply, why, sizeof(why)),
				  RETRY_MS / 1000);
		else if (!again)
			log_warnx("%s failed after %d attempt%s: %s", what,
				  attempts, attempts == 1 ? "" : "s",
				  failure_text(b, r, reply, why, sizeof(why)));
		json_decref(reply);
		if (!again)
			break;
		pause_ms(delay);
		delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
	}
	json_decref(req);
}

/* Reads one line of at most SSHGPROTO_LINE_MAX - 1 bytes into buf
 * (size SSHGPROTO_LINE_MAX + 1).  Returns 1 (a line), 0 (the end of the
 * input, or a stop signal), or -1 (a line too long, skipped). */
static int read_line(char *buf, size_t size)
{
	size_t len;

	for (;;) {
		if (stop_signal)
			return 0;
		if (fgets(buf, (int)size, stdin) != NULL)
			break;
		if (feof(stdin))
			return 0;
		if (errno != EINTR) {
			log_warn("reading standard input");
			return 0;
		}
		clearerr(stdin);
	}
	len = strlen(buf);
	if ((len > 0 && buf[len - 1] == '\n') || len < size - 1)
		return 1;	/* a line, or the last one without its newline */
	/* Longer than the buffer: drop the rest of it. */
	for (int c; (c = getchar()) != EOF && c != '\n';)
		;
	return -1;
}

static void serve(struct backend *b)
{
	char buf[SSHGPROTO_LINE_MAX + 1];
	int n;

	while ((n = read_line(buf, sizeof(buf))) != 0) {
		struct sshgproto_cmd cmd;
		const char *why = "line too long";
		char shown[128];

		b->line_no++;
		if (n > 0 && sshgproto_parse(buf, &cmd, &why) == 0) {
			if (log_debug_enabled())
				log_debug("line %lu: %s %s", b->line_no,
					  sshgproto_kind_name(cmd.kind),
					  cmd.net);
			if (cmd.kind == SSHGPROTO_FLUSHONEXIT)
				b->flushonexit = true;
			else
				execute(b, &cmd, false);
			continue;
		}
		buf[strcspn(buf, "\n")] = '\0';
		log_warnx("line %lu: %s: %s; expected block, release, flush "
			  "or flushonexit", b->line_no,
			  diag_string(shown, sizeof(shown), buf), why);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "origin", required_argument, NULL, 'o' },
		{ "fleet", required_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct backend b = {
		.socket = getenv(ENV_SOCKET),
		.origin = getenv(ENV_ORIGIN),
	};
	const char *fleet = getenv(ENV_FLEET);
	struct sigaction sa = { .sa_handler = on_signal };
	int ch, verbose = 0;

	while ((ch = getopt_long(argc, argv, "s:o:f:vVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			b.socket = optarg;
			break;
		case 'o':
			b.origin = optarg;
			break;
		case 'f':
			fleet = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'V':
			printf("porthop-sshguard %s\n", PORTHOP_VERSION);
			return EXIT_SUCCESS;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "porthop-sshguard: unexpected argument \"%s\"\n",
			argv[optind]);
		usage(stderr);
		return EX_USAGE;
	}
	if (b.socket == NULL || *b.socket == '\0')
		b.socket = CONFIG_DEFAULT_CONTROL_SOCKET;
	if (b.origin == NULL || *b.origin == '\0')
		b.origin = DEFAULT_ORIGIN;
	if (!watchlist_origin_valid(b.origin)) {
		char shown[128];

		fprintf(stderr, "porthop-sshguard: origin %s is not valid; "
			"expected [a-z0-9_.-]{1,64}\n",
			diag_string(shown, sizeof(shown), b.origin));
		return EX_USAGE;
	}
	log_init("porthop-sshguard", verbose, false);
	if (fleet && *fleet) {
		struct diag *d = diag_new();

		b.fleet = d ? config_load(fleet, CONFIG_LOAD_NO_RULES, d) : NULL;
		if (d)
			diag_print(d, stderr);
		diag_free(d);
		if (b.fleet && config_stream(b.fleet)->stream == NULL) {
			fprintf(stderr, "porthop-sshguard: %s has no "
				"redis_stream_configuration; expected one for "
				"--fleet\n", fleet);
			config_free(b.fleet);
			b.fleet = NULL;
		}
		if (b.fleet == NULL)
			return EX_CONFIG;
		if (strlen(b.origin) > FLEET_ORIGIN_MAX) {
			fprintf(stderr, "porthop-sshguard: origin \"%s\" is too "
				"long for the fleet; expected at most %d "
				"characters (hosts hold it as fleet.NAME)\n",
				b.origin, FLEET_ORIGIN_MAX);
			config_free(b.fleet);
			return EX_USAGE;
		}
	}

	/* No SA_RESTART: a stop signal interrupts the read and the waits.
	 * sshguard's "kill 0" sends SIGTERM to its whole pipeline. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* control_call sends with MSG_NOSIGNAL; nothing else writes to a
	 * socket or pipe. */
	signal(SIGPIPE, SIG_IGN);

	if (b.fleet)
		log_info("watching sshguard's blocks through the fleet stream "
			 "\"%s\" of %s, origin %s",
			 config_stream(b.fleet)->stream, fleet, b.origin);
	else
		log_info("watching sshguard's blocks through porthopd at %s, "
			 "origin %s", b.socket, b.origin);
	serve(&b);
	if (b.flushonexit) {
		struct sshgproto_cmd flush = { .kind = SSHGPROTO_FLUSH };

		execute(&b, &flush, true);
	}
	log_info("%s; exiting", stop_signal ? "stopped by a signal" :
		 "end of input");
	config_free(b.fleet);
	return EXIT_SUCCESS;
}
