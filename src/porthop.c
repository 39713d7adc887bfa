/*
 * porthop: the command-line tool.  `publish` is the reference's launcher;
 * `check` and `print` read a configuration as porthopd would; status,
 * shuffle, reload, mapping and metrics talk to a running porthopd over
 * its control socket.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>


#include "porthop.h"
#include "check.h"
#include "config.h"
#include "control.h"
#include "diag.h"
#include "engine.h"
#include "log.h"
#include "nftio.h"
#include "ruleset.h"
#include "shuffle.h"

#include <sched.h>

static void usage(FILE *f)
{
	fprintf(f,
"usage: porthop [-s socket | -c file] <command> [options]\n"
"\n"
"commands:\n"
"  status [--json]            what porthopd is doing\n"
"  shuffle [ADDRESS]          shuffle now: every entry, or the watched entry\n"
"                             that covers ADDRESS\n"
"  reload                     reload the configuration (as SIGHUP), with the\n"
"                             result\n"
"  mapping [ADDRESS] [--json] the mapping in force (root only)\n"
"  metrics                    porthopd's figures, Prometheus text format\n"
"  watch add ADDR[/LEN]... [--ttl S] [--origin NAME] [--tcp-ignore PORTS]\n"
"        [--udp-ignore PORTS] | add --file FILE|-   watch addresses now\n"
"  watch del ADDR[/LEN]... [--origin NAME]   stop (one origin's entries,\n"
"                             or every origin's)\n"
"  watch list [--origin NAME] [--json]       the runtime entries\n"
"  watch flush --origin NAME  delete every entry of one origin\n"
"  events [--follow] [--json] what porthop saw: moved, vacated, stale and\n"
"                             probe events (root only)\n"
"  check [-o] -c FILE         validate a configuration as porthopd does\n"
"                             (-o: offline, no kernel dry run)\n"
"  print -c FILE              the ruleset porthopd would apply, nft syntax\n"
"  watch add|del ... --fleet  the same, for every host of the fleet (the\n"
"                             configuration's stream; see docs/fleet.md)\n"
"  publish [options]          publish a trigger message on Redis (--stream:\n"
"                             on the fleet stream)\n"
"  fleet [--json]             the fleet stream's hosts (consumer groups),\n"
"                             their lag and pending entries\n"
"  keygen NAME -o FILE [--use knock|derive]  a client's key file\n"
"  follow HOST SERVICE [--key FILE] [--at TIME]  the port a keyed service\n"
"                             is on now (derived ports)\n"
"  knock HOST [--key FILE] [--port P] [--address A]  let this client in\n"
"  connect HOST PORT [--key FILE] [--knock-port P]  knock, connect, relay\n"
"                             stdin/stdout (ssh's ProxyCommand)\n"
"  -V, --version              print the version\n"
"  -h, --help                 this help\n"
"\n"
"Commands that talk to porthopd take -s PATH (default\n"
CONFIG_DEFAULT_CONTROL_SOCKET "), or -c FILE to use that configuration's\n"
"porthopd.control_socket; both may also come before the command.\n"
"`porthop <command> --help` describes each.\n");
}

/* The exit status of an error reply, by its code (control.h). */
static int exit_status(const char *code)
{
	static const int by_code[CONTROL_CODE_COUNT] = {
		[CONTROL_CODE_REQUEST] = EX_PROTOCOL,
		[CONTROL_CODE_PERMISSION] = EX_NOPERM,
		[CONTROL_CODE_NOT_WATCHED] = EX_DATAERR,
		[CONTROL_CODE_CONFIG] = EX_CONFIG,
		[CONTROL_CODE_KERNEL] = EX_SOFTWARE,
		[CONTROL_CODE_BUSY] = EX_TEMPFAIL,
		[CONTROL_CODE_INTERNAL] = EX_SOFTWARE,
		[CONTROL_CODE_INVALID] = EX_DATAERR,
		[CONTROL_CODE_STORAGE] = EX_IOERR,
	};
	int k = control_code_parse(code);

	/* A code without a row here (0) must never read as success. */
	return k < 0 || by_code[k] == 0 ? EX_SOFTWARE : by_code[k];
}

/* Sends one request to porthopd; prints errors; returns a sysexits code
 * and, on success, the reply in *ret. */
int cli_call(const char *sock, json_t *req, int timeout_ms, json_t **ret)
{
	json_t *reply = NULL;
	int r = control_call(sock, req, timeout_ms, &reply);

	json_decref(req);
	if (r < 0) {
		fprintf(stderr, "porthop: cannot talk to porthopd at %s: %s%s\n",
			sock, strerror(-r), r == -ENOENT || r == -ECONNREFUSED ?
			" (is porthopd running? -s names another socket)" :
			r == -EACCES ? " (root or the control group only)" : "");
		return r == -EACCES ? EX_NOPERM : EX_UNAVAILABLE;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		const char *e = json_string_value(json_object_get(reply, "error"));

		fprintf(stderr, "porthop: %s\n", e ? e : "porthopd refused");
		r = exit_status(json_string_value(json_object_get(reply,
								  "code")));
		json_decref(reply);
		return r;
	}
	*ret = reply;
	return EXIT_SUCCESS;
}

void cli_dump_json(json_t *v)
{
	json_object_del(v, "ok");
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}

static void print_stream(json_t *st);

static void print_status(json_t *s)
{
	json_t *last = json_object_get(s, "last_shuffle");
	json_t *redis = json_object_get(s, "redis");
	json_t *unw = json_object_get(s, "unwatched_clients");
	json_t *ch;
	size_t i;
	long long next = json_integer_value(json_object_get(s, "next_timer_seconds"));

	printf("porthopd %s, up %.0f s, %s mode%s%s\n",
	       json_string_value(json_object_get(s, "version")),
	       json_real_value(json_object_get(s, "uptime_seconds")),
	       json_string_value(json_object_get(s, "mode")),
	       json_object_get(s, "table") ? ", table " : "",
	       json_object_get(s, "table") ?
		       json_string_value(json_object_get(s, "table")) : "");
	printf("configuration    %s\n", json_string_value(json_object_get(s, "config")));
	printf("watched          %lld addresses, %lld pairs\n",
	       (long long)json_integer_value(json_object_get(s, "watched_addresses")),
	       (long long)json_integer_value(json_object_get(s, "pairs")));
	printf("shuffles         %lld applied, %lld failed, %lld triggers, %lld "
	       "reconciliations\n",
	       (long long)json_integer_value(json_object_get(s, "shuffles")),
	       (long long)json_integer_value(json_object_get(s, "failures")),
	       (long long)json_integer_value(json_object_get(s, "triggers")),
	       (long long)json_integer_value(json_object_get(s, "reconciliations")));
	if (unw) {
		const char *who = json_string_value(json_object_get(unw,
							"conntrack_user"));

		printf("unwatched        %s (untrack_unwatched %s)%s%s\n",
		       json_string_value(json_object_get(unw,
						"connection_tracking")),
		       json_string_value(json_object_get(unw,
						"untrack_unwatched")),
		       who ? ": conntrack used by " : "", who ? who : "");
	}
	if (json_object_get(s, "prestage")) {
		json_t *ps = json_object_get(s, "prestage");

		printf("prestage         %s (prestage %s)",
		       !json_is_true(json_object_get(ps, "active")) ? "off" :
		       json_is_true(json_object_get(ps, "standby_ready")) ?
		       "next mapping staged" : "staging",
		       json_string_value(json_object_get(ps, "setting")));
		if (json_is_true(json_object_get(ps, "active")))
			printf(", %lld switches, %lld replaced whole, last "
			       "staging %.0f ms",
			       (long long)json_integer_value(json_object_get(ps,
								"switches")),
			       (long long)json_integer_value(json_object_get(ps,
								"fallbacks")),
			       json_real_value(json_object_get(ps,
							"last_staging_ms")));
		printf("\n");
	}
	if (json_object_get(s, "maps")) {
		json_t *m = json_object_get(s, "maps");

		printf("maps             IPv4 %lld of %lld pairs, IPv6 %lld of "
		       "%lld (map_capacity %lld)\n",
		       (long long)json_integer_value(json_object_get(m, "pairs_ipv4")),
		       (long long)json_integer_value(json_object_get(m, "pairs_max")),
		       (long long)json_integer_value(json_object_get(m, "pairs_ipv6")),
		       (long long)json_integer_value(json_object_get(m, "pairs_max")),
		       (long long)json_integer_value(json_object_get(m, "map_capacity")));
	}
	if (json_object_get(s, "runtime")) {
		json_t *rt = json_object_get(s, "runtime"), *o;
		const char *name;
		const char *dir = json_string_value(json_object_get(rt,
							"state_directory"));

		printf("runtime          %lld entries",
		       (long long)json_integer_value(json_object_get(rt, "entries")));
		json_object_foreach(json_object_get(rt, "origins"), name, o)
			printf("%s%s %lld", name == json_object_iter_key(
				json_object_iter(json_object_get(rt, "origins"))) ?
			       " (" : ", ", name,
			       (long long)json_integer_value(json_object_get(o, "entries")));
		if (json_object_size(json_object_get(rt, "origins")))
			printf(")");
		printf(", %s\n", dir && dir[0] ? dir : "in memory only");
	}
	if (json_object_get(s, "derived_ports")) {
		json_t *dp = json_object_get(s, "derived_ports");

		printf("derived ports    %lld slot changes, the last %lld "
		       "operations in %.2f ms\n",
		       (long long)json_integer_value(json_object_get(dp,
							"slot_changes")),
		       (long long)json_integer_value(json_object_get(dp,
							"last_operations")),
		       json_real_value(json_object_get(dp, "last_change_ms")));
	}
	if (last) {
		time_t t = (time_t)json_integer_value(json_object_get(last, "time"));
		char when[64];

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
		printf("last shuffle     %s, %s, %.1f ms\n", when,
		       json_string_value(json_object_get(last, "result")),
		       json_real_value(json_object_get(last, "duration_ms")));
	}
	printf("redis            %s (%s:%lld), %lld messages, channels:",
	       json_string_value(json_object_get(redis, "state")),
	       json_string_value(json_object_get(redis, "host")),
	       (long long)json_integer_value(json_object_get(redis, "port")),
	       (long long)json_integer_value(json_object_get(redis, "messages")));
	json_array_foreach(json_object_get(redis, "channels"), i, ch)
		printf(" %s", json_string_value(ch));
	printf("\n");
	print_stream(json_object_get(s, "stream"));
	if (next >= 0)
		printf("next timer       in %lld s\n", next);
	printf("triggers         %s\n",
	       json_is_true(json_object_get(s, "authenticated_triggers")) ?
		       "authenticated (HMAC-SHA256)" : "unauthenticated");
}

static long long num(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* The fleet stream, when porthopd reads one (lag and pending: -1 while
 * unknown). */
static void print_stream(json_t *st)
{
	char lag[24] = "?", pending[24] = "?";

	if (st == NULL)
		return;
	if (num(st, "lag") >= 0)
		snprintf(lag, sizeof(lag), "%lld", num(st, "lag"));
	if (num(st, "pending") >= 0)
		snprintf(pending, sizeof(pending), "%lld", num(st, "pending"));
	printf("fleet stream     %s %s, group %s, primary %s%s: lag %s, pending "
	       "%s\n", json_string_value(json_object_get(st, "stream")),
	       json_string_value(json_object_get(st, "state")),
	       json_string_value(json_object_get(st, "group")),
	       json_string_value(json_object_get(st, "primary")),
	       json_is_true(json_object_get(st, "sentinel")) ?
	       " (from the sentinels)" : "", lag, pending);
	printf("                 %lld read, %lld acknowledged, %lld refused, "
	       "%lld redelivered, %lld snapshot loads\n", num(st, "read"),
	       num(st, "acknowledged"), num(st, "refused"),
	       num(st, "redelivered"), num(st, "snapshot_loads"));
}

static void print_mapping(json_t *m)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(m, "mapping"), i, e) {
		static const char *const protos[] = { "tcp", "udp" };

		printf("%s\n", json_string_value(json_object_get(e, "address")));
		for (int p = 0; p < 2; p++) {
			const char *port;
			json_t *to;

			json_object_foreach(json_object_get(e, protos[p]), port, to)
				printf("  %s %5s -> %lld\n", protos[p], port,
				       (long long)json_integer_value(to));
		}
	}
}

/* The control socket: -s, else the configuration's (-c FILE), else the
 * default.  Returns 0, or a sysexits code after saying why. */
int cli_socket_path(const struct globals *g, struct config **ret_cfg,
		    const char **ret)
{
	struct diag *d;
	struct config *cfg;

	*ret = g->sock ? g->sock : CONFIG_DEFAULT_CONTROL_SOCKET;
	if (g->sock || g->conf == NULL)
		return 0;
	d = diag_new();
	if (d == NULL)
		return EX_OSERR;
	cfg = config_load(g->conf, CONFIG_LOAD_NO_RULES, d);
	diag_print(d, stderr);
	diag_free(d);
	if (cfg == NULL)
		return EX_CONFIG;
	if (config_daemon(cfg)->control_socket == NULL ||
	    config_daemon(cfg)->control_socket[0] == '\0') {
		fprintf(stderr, "porthop: %s has no control socket "
			"(porthopd.control_socket is empty)\n", g->conf);
		config_free(cfg);
		return EX_CONFIG;
	}
	*ret = config_daemon(cfg)->control_socket;
	*ret_cfg = cfg;
	return 0;
}

/* status, shuffle, reload, mapping, metrics. */
static int cmd_daemon(const char *cmd, struct globals g, int argc,
		      char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock, *addr = NULL;
	struct config *cfg = NULL;
	bool as_json = false, takes_addr;
	json_t *req, *reply = NULL;
	int ch, r;

	takes_addr = strcmp(cmd, "shuffle") == 0 || strcmp(cmd, "mapping") == 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:c:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			g.sock = optarg;
			break;
		case 'c':
			g.conf = optarg;
			break;
		case 'j':
			as_json = true;
			break;
		case 'h':
			printf("usage: porthop %s%s [-s socket | -c file]%s\n\n"
			       "Asks the running porthopd over its control "
			       "socket: -s names the socket, -c takes it from "
			       "that configuration's porthopd.control_socket "
			       "(default " CONFIG_DEFAULT_CONTROL_SOCKET ").%s\n",
			       cmd, takes_addr ? " [ADDRESS]" : "",
			       strcmp(cmd, "metrics") == 0 ? "" : " [--json]",
			       strcmp(cmd, "mapping") == 0 ? " Root only." : "");
			return EXIT_SUCCESS;
		default:
			return EX_USAGE;
		}
	}
	if (takes_addr && optind < argc)
		addr = argv[optind++];
	if (optind != argc) {
		fprintf(stderr, "porthop %s: unexpected argument \"%s\"\n", cmd,
			argv[optind]);
		return EX_USAGE;
	}
	r = cli_socket_path(&g, &cfg, &sock);
	if (r != 0)
		return r;
	req = addr ? json_pack("{s:s,s:s}", "command", cmd, "address", addr) :
		     json_pack("{s:s}", "command", cmd);
	r = cli_call(sock, req, 30000, &reply);
	config_free(cfg);
	if (r != EXIT_SUCCESS)
		return r;
	if (strcmp(cmd, "metrics") == 0)
		fputs(json_string_value(json_object_get(reply, "text")), stdout);
	else if (as_json)
		cli_dump_json(reply);
	else if (strcmp(cmd, "status") == 0)
		print_status(reply);
	else if (strcmp(cmd, "mapping") == 0)
		print_mapping(reply);
	else if (strcmp(cmd, "shuffle") == 0 &&
		 json_is_true(json_object_get(reply, "queued")))
		printf("shuffle%s%s queued: it runs in %lld ms "
		       "(min_shuffle_interval_ms)\n", addr ? " of " : "",
		       addr ? addr : "",
		       (long long)json_integer_value(json_object_get(reply, "due_ms")));
	else if (strcmp(cmd, "shuffle") == 0)
		printf("shuffled%s%s in %.1f ms\n", addr ? " " : "",
		       addr ? addr : "",
		       json_real_value(json_object_get(reply, "duration_ms")));
	else if (json_is_true(json_object_get(reply, "queued")))
		printf("reload checked and queued: it is applied in %lld ms "
		       "(min_shuffle_interval_ms)\n",
		       (long long)json_integer_value(json_object_get(reply, "due_ms")));
	else
		printf("reloaded: %lld watched addresses, %lld pairs\n",
		       (long long)json_integer_value(json_object_get(reply, "watched_addresses")),
		       (long long)json_integer_value(json_object_get(reply, "pairs")));
	json_decref(reply);
	return EXIT_SUCCESS;
}

/* porthop print: the batch porthopd would apply, in nft syntax.  Only the
 * kernel turns a JSON batch into nft syntax, so it is applied inside a
 * network namespace of this process's own, listed, and thrown away (the
 * namespace first: the kernel backend opens its sockets in it). */
static int cmd_print(const struct globals *g, int argc, char **argv)
{
	const char *conf = g->conf ? g->conf : CONFIG_DEFAULT_PATH;
	struct diag *d = diag_new();
	struct shuffle *rng = shuffle_new();
	struct shuffle_map *map = NULL;
	struct config *cfg;
	struct nftio *io = NULL;
	json_t *batch = NULL;
	char *text = NULL, *err = NULL;
	int ch, status = EXIT_SUCCESS;

	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		if (ch == 'c') {
			conf = optarg;
		} else {
			fprintf(ch == 'h' ? stdout : stderr,
				"usage: porthop print [-c file]\n\nPrints, in "
				"nft syntax, the ruleset porthopd would apply "
				"(with a freshly drawn mapping), without "
				"applying it.\nNeeds CAP_SYS_ADMIN and "
				"CAP_NET_ADMIN (root): the batch is checked in a "
				"network namespace of its own.\n");
			return ch == 'h' ? EXIT_SUCCESS : EX_USAGE;
		}
	}
	cfg = config_load(conf, 0, d);
	diag_print(d, stderr);
	if (cfg == NULL) {
		status = EX_CONFIG;
		goto out;
	}
	if (rng == NULL || shuffle_map_new(rng, cfg, NULL, &map) < 0 ||
	    ruleset_build(cfg, map, &batch) < 0) {
		status = EX_OSERR;
		goto out;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "porthop print: cannot make a network namespace "
			"to check the ruleset in: %s (run as root)\n",
			strerror(errno));
		status = EX_NOPERM;
		goto out;
	}
	if ((io = nftio_new_kernel()) == NULL) {
		fprintf(stderr, "porthop print: cannot open nftables' netlink "
			"socket\n");
		status = EX_OSERR;
		goto out;
	}
	if (nftio_apply(io, batch, false, &err) < 0) {
		fprintf(stderr, "%s\nporthop print: the kernel refuses this "
			"ruleset\n", err ? err : "");
		status = EX_CONFIG;
		goto out;
	}
	if (nftio_list_text(io, &text, &err) < 0) {
		fprintf(stderr, "porthop print: cannot list the ruleset: %s\n",
			err ? err : "");
		status = EX_SOFTWARE;
		goto out;
	}
	fputs(text, stdout);
out:
	nftio_free(io);
	free(err);
	free(text);
	json_decref(batch);
	shuffle_map_free(map);
	shuffle_free(rng);
	config_free(cfg);
	diag_free(d);
	return status;
}

static int cmd_check(const struct globals *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "offline", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = g->conf ? g->conf : CONFIG_DEFAULT_PATH;
	bool offline = false;
	struct config *cfg;
	struct nftio *io = NULL;
	struct diag *d;
	int ch, status;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:oh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'o':
			offline = true;
			break;
		case 'h':
			printf("usage: porthop check [-o] [-c file]\n\n"
			       "  -c, --config FILE  the configuration to check\n"
			       "  -o, --offline      skip the kernel dry run "
			       "(no CAP_NET_ADMIN needed)\n"
			       "\nExit 0 if valid, 78 with every error "
			       "listed if not.\n");
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "usage: porthop check [-o] [-c file]\n");
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: porthop check [-o] [-c file]\n");
		return EX_USAGE;
	}
	d = diag_new();
	if (d == NULL)
		return EX_OSERR;
	cfg = config_load(conf, 0, d);
	if (cfg && !offline) {
		io = nftio_new_kernel();
		if (io == NULL || check_config(cfg, io, d) < 0) {
			config_free(cfg);
			cfg = NULL;
		}
	}
	diag_print(d, stderr);
	if (cfg) {
		printf("%s: configuration OK: %zu watched address%s, %zu pairs\n",
		       conf, config_watched_count(cfg),
		       config_watched_count(cfg) == 1 ? "" : "es",
		       config_pair_count(cfg));
		status = EXIT_SUCCESS;
	} else {
		fprintf(stderr, "%s: %zu error%s\n", conf, diag_errors(d),
			diag_errors(d) == 1 ? "" : "s");
		status = EX_CONFIG;
	}
	config_free(cfg);
	nftio_free(io);
	diag_free(d);
	return status;
}

int main(int argc, char **argv)
{
	struct globals g = { NULL, NULL };
	const char *cmd;
	int i = 1;

	log_init("porthop", 0, false);
	/* -s PATH and -c FILE may come before the command too. */
	while (i + 1 < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-s") == 0 ||
		    strcmp(argv[i], "--socket") == 0)
			g.sock = argv[i + 1];
		else if (strcmp(argv[i], "-c") == 0 ||
			 strcmp(argv[i], "--config") == 0)
			g.conf = argv[i + 1];
		else
			break;
		i += 2;
	}
	if (i >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	cmd = argv[i];
	argc -= i;
	argv += i;
	if (strcmp(cmd, "publish") == 0)
		return cmd_publish(&g, argc, argv);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(&g, argc, argv);
	if (strcmp(cmd, "watch") == 0)
		return cmd_watch(&g, argc, argv);
	if (strcmp(cmd, "events") == 0)
		return cmd_events(&g, argc, argv);
	if (strcmp(cmd, "fleet") == 0)
		return cmd_fleet(&g, argc, argv);
	if (strcmp(cmd, "keygen") == 0)
		return cmd_keygen(&g, argc, argv);
	if (strcmp(cmd, "follow") == 0)
		return cmd_follow(&g, argc, argv);
	if (strcmp(cmd, "knock") == 0)
		return cmd_knock(&g, argc, argv);
	if (strcmp(cmd, "connect") == 0)
		return cmd_connect(&g, argc, argv);
	if (strcmp(cmd, "print") == 0)
		return cmd_print(&g, argc, argv);
	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "shuffle") == 0 ||
	    strcmp(cmd, "reload") == 0 || strcmp(cmd, "mapping") == 0 ||
	    strcmp(cmd, "metrics") == 0)
		return cmd_daemon(cmd, g, argc, argv);
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
		usage(stdout);
		return EXIT_SUCCESS;
	}
	if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
		printf("porthop %s\n", PORTHOP_VERSION);
		return EXIT_SUCCESS;
	}
	fprintf(stderr, "porthop: unknown command \"%s\"\n", cmd);
	usage(stderr);
	return EX_USAGE;
}
