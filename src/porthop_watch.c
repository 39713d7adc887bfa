/*
 * porthop watch: the runtime watch list from the command line (add, del,
 * list, flush; see docs/watch.md).  The CLI reads feed files and stdin
 * itself and sends their text: porthopd never opens a file a client
 * names, and checks every line (numbered) whoever sent it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "config.h"
#include "control.h"
#include "diag.h"
#include "fleet.h"
#include "porthop.h"
#include "watchfeed.h"

/* Bulk requests may take a while: a million entries drawn and applied. */
#define WATCH_TIMEOUT_MS 120000

static void watch_usage(FILE *f)
{
	fprintf(f,
"usage: porthop watch add ADDR[/LEN]... [--ttl SECONDS] [--origin NAME]\n"
"                         [--tcp-ignore PORTS] [--udp-ignore PORTS]\n"
"       porthop watch add --file FILE|- [--ttl SECONDS] [--origin NAME] ...\n"
"       porthop watch del ADDR[/LEN]... [--origin NAME]\n"
"       porthop watch list [--origin NAME] [--json]\n"
"       porthop watch flush --origin NAME\n"
"       porthop watch add|del ... --fleet [-c FILE]\n"
"\n"
"Runtime watched addresses (native mode).  An entry is an address or\n"
"prefix held by an origin (default \"manual\"); an address is watched while\n"
"the configuration lists it or any origin holds it.  `add` returns once\n"
"the new mapping is in force and the entry is on disk; adding again\n"
"refreshes the TTL (none: until deleted).  `del` without --origin deletes\n"
"every origin's entry.  A feed file holds one address or prefix a line,\n"
"optionally followed by a TTL; `#` starts a comment line; it is applied\n"
"whole or not at all.  PORTS: comma-separated.  Also -s PATH / -c FILE as\n"
"for every command.  Exit 0, 65 (refused entry, or nothing to delete), 74\n"
"(state file not written), 78 (template mode).\n"
"\n"
"--fleet: add or del for every host of the fleet: written to the\n"
"configuration's stream (its primary found through its sentinels), held\n"
"on each host under origin \"fleet.NAME\"; no ignore lists.  A delete\n"
"names one origin (default \"manual\").  Exit 0 once the primary took it\n"
"(and wait_replicas replicas), 69 without a primary, 75 when fewer\n"
"replicas acknowledged (see docs/fleet.md).\n");
}

static char *slurp(const char *path, size_t *ret_len);

/* --fleet: the addresses (or the feed's lines) as fleet operations,
 * written to the stream.  Returns an exit status. */
static int watch_fleet(const char *conf, bool add, const char *origin,
		       long long ttl, const char *file, char **addrs,
		       size_t naddrs)
{
	struct watchfeed_limits lim = { 0, 0, 86400LL * 3650, 10000000 };
	struct watchfeed_line *lines = NULL;
	struct fleet_op *ops = NULL;
	struct config *cfg = NULL;
	struct diag *d = diag_new();
	int64_t now = (int64_t)time(NULL);
	size_t n = naddrs;
	char *text = NULL;
	int r = EX_DATAERR;

	if (d == NULL)
		return EX_OSERR;
	if (origin && (strlen(origin) > FLEET_ORIGIN_MAX ||
		       !watchlist_origin_valid(origin))) {
		fprintf(stderr, "porthop watch: --origin \"%s\": expected 1 to "
			"%d characters a-z, 0-9, '_', '.', '-'\n", origin,
			FLEET_ORIGIN_MAX);
		goto out;
	}
	if (file) {
		size_t len;

		text = slurp(file, &len);
		if (text == NULL) {
			r = EX_NOINPUT;
			goto out;
		}
		if (watchfeed_parse(text, len, &lim, &lines, &n, d) < 0) {
			diag_print(d, stderr);
			goto out;
		}
	}
	ops = calloc(n + 1, sizeof(*ops));
	if (ops == NULL) {
		r = EX_OSERR;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct fleet_op *op = &ops[i];
		int64_t t = lines && lines[i].ttl > 0 ? lines[i].ttl : ttl;

		op->kind = add ? FLEET_WATCH : FLEET_UNWATCH;
		snprintf(op->address, sizeof(op->address), "%s",
			 lines ? lines[i].net.text : addrs[i]);
		snprintf(op->origin, sizeof(op->origin), "%s",
			 origin ? origin : "manual");
		op->expires = add && t > 0 ? now + t : 0;
		op->ts = now;
	}
	cfg = cli_fleet_config(conf);
	if (cfg == NULL) {
		r = EX_CONFIG;
		goto out;
	}
	r = cli_fleet_send(cfg, NULL, 0, ops, n, -1, NULL, 0, false);
out:
	free(ops);
	free(lines);
	free(text);
	config_free(cfg);
	diag_free(d);
	return r;
}

/* "22,80,443" into a JSON array. */
static json_t *ports_arg(const char *s, const char *opt)
{
	json_t *a = json_array();
	char *end;

	while (a && *s) {
		long v = strtol(s, &end, 10);

		if (end == s || v < 1 || v > 65535 || (*end && *end != ',')) {
			fprintf(stderr, "porthop watch: %s \"%s\": expected "
				"ports 1 to 65535, comma-separated\n", opt, s);
			json_decref(a);
			return NULL;
		}
		json_array_append_new(a, json_integer(v));
		s = *end ? end + 1 : end;
	}
	return a;
}

/* The whole of f (a file, or stdin), as one string. */
static char *slurp(const char *path, size_t *ret_len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap), *grown;

	if (f == NULL || buf == NULL) {
		fprintf(stderr, "porthop watch: cannot read %s: %s\n", path,
			strerror(f ? ENOMEM : errno));
		free(buf);
		return NULL;
	}
	for (;;) {
		size_t got = fread(buf + len, 1, cap - len - 1, f);

		len += got;
		if (got == 0)
			break;
		if (len + 1 == cap) {
			if (cap >= CONTROL_MAX_BULK) {
				fprintf(stderr, "porthop watch: %s is larger "
					"than %u bytes\n", path, CONTROL_MAX_BULK);
				goto fail;
			}
			grown = realloc(buf, cap * 2);
			if (grown == NULL)
				goto fail;
			buf = grown;
			cap *= 2;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "porthop watch: cannot read %s\n", path);
		goto fail;
	}
	if (f != stdin)
		fclose(f);
	buf[len] = '\0';
	*ret_len = len;
	return buf;
fail:
	if (f != stdin)
		fclose(f);
	free(buf);
	return NULL;
}

static void print_list(json_t *reply)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(reply, "entries"), i, e) {
		json_t *left = json_object_get(e, "ttl_left");
		char ttl[32] = "no expiry";

		if (json_is_integer(left))
			snprintf(ttl, sizeof(ttl), "%llds left",
				 (long long)json_integer_value(left));
		printf("%-40s %-20s %s\n",
		       json_string_value(json_object_get(e, "address")),
		       json_string_value(json_object_get(e, "origin")), ttl);
	}
}

int cmd_watch(const struct globals *gin, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "ttl", required_argument, NULL, 't' },
		{ "origin", required_argument, NULL, 'o' },
		{ "tcp-ignore", required_argument, NULL, 'T' },
		{ "udp-ignore", required_argument, NULL, 'U' },
		{ "file", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "fleet", no_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct globals g = *gin;
	const char *sub, *origin = NULL, *file = NULL, *sock;
	json_t *tcp = NULL, *udp = NULL, *req = NULL, *reply = NULL;
	struct config *cfg = NULL;
	long long ttl = 0;
	bool as_json = false, fleet = false;
	char *end, *text = NULL;
	size_t len;
	int ch, r = EX_USAGE;

	/* -s PATH, -c FILE may come before the subcommand too. */
	while (argc > 3 && (strcmp(argv[1], "-s") == 0 ||
			    strcmp(argv[1], "--socket") == 0 ||
			    strcmp(argv[1], "-c") == 0 ||
			    strcmp(argv[1], "--config") == 0)) {
		if (argv[1][1] == 's' || argv[1][2] == 's')
			g.sock = argv[2];
		else
			g.conf = argv[2];
		argv[2] = argv[0];
		argc -= 2;
		argv += 2;
	}
	if (argc < 2 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		watch_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EX_USAGE : EXIT_SUCCESS;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:c:f:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			g.sock = optarg;
			break;
		case 'c':
			g.conf = optarg;
			break;
		case 't':
			errno = 0;
			ttl = strtoll(optarg, &end, 10);
			if (errno || *end || ttl < 1) {
				fprintf(stderr, "porthop watch: --ttl \"%s\": "
					"expected whole seconds, 1 or more\n",
					optarg);
				goto out;
			}
			break;
		case 'o':
			origin = optarg;
			break;
		case 'T':
		case 'U':
			json_decref(ch == 'T' ? tcp : udp);
			if (ch == 'T' && (tcp = ports_arg(optarg, "--tcp-ignore")) == NULL)
				goto out;
			if (ch == 'U' && (udp = ports_arg(optarg, "--udp-ignore")) == NULL)
				goto out;
			break;
		case 'f':
			file = optarg;
			break;
		case 'j':
			as_json = true;
			break;
		case 'F':
			fleet = true;
			break;
		case 'h':
			watch_usage(stdout);
			r = EXIT_SUCCESS;
			goto out;
		default:
			goto out;
		}
	}
	if (fleet) {
		bool add = strcmp(sub, "add") == 0;

		if ((!add && strcmp(sub, "del") != 0) || tcp || udp ||
		    (file && optind < argc) || (!add && file) ||
		    (!file && optind >= argc)) {
			fprintf(stderr, "porthop watch: --fleet goes with add "
				"(addresses or --file, --ttl, --origin) or del "
				"(addresses, --origin)\n");
			goto out;
		}
		r = watch_fleet(g.conf, add, origin, ttl, file, argv + optind,
				(size_t)(argc - optind));
		goto out;
	}
	/* "command" first, compact: a large request must start with it. */
	if (strcmp(sub, "add") == 0) {
		req = json_pack("{s:s}", "command", "watch_add");
		if (file && optind < argc) {
			fprintf(stderr, "porthop watch add: addresses or --file, "
				"not both\n");
			goto out;
		}
		if (file) {
			text = slurp(file, &len);
			if (text == NULL) {
				r = EX_NOINPUT;
				goto out;
			}
			json_object_set_new(req, "feed", json_stringn(text, len));
		} else {
			json_t *list = json_array();

			for (int i = optind; i < argc; i++)
				json_array_append_new(list, json_pack(
					"{s:s}", "address", argv[i]));
			json_object_set_new(req, "entries", list);
		}
		if (ttl)
			json_object_set_new(req, "ttl", json_integer(ttl));
		if (tcp)
			json_object_set(req, "tcp_ignore", tcp);
		if (udp)
			json_object_set(req, "udp_ignore", udp);
	} else if (strcmp(sub, "del") == 0) {
		json_t *list = json_array();

		req = json_pack("{s:s}", "command", "watch_del");
		for (int i = optind; i < argc; i++)
			json_array_append_new(list, json_pack("{s:s}", "address",
							      argv[i]));
		json_object_set_new(req, "entries", list);
	} else if (strcmp(sub, "list") == 0 || strcmp(sub, "flush") == 0) {
		req = json_pack("{s:s}", "command", strcmp(sub, "list") == 0 ?
				"watch_list" : "watch_flush");
		if (optind < argc) {
			fprintf(stderr, "porthop watch %s: unexpected argument "
				"\"%s\"\n", sub, argv[optind]);
			goto out;
		}
	} else {
		fprintf(stderr, "porthop watch: unknown subcommand \"%s\"; "
			"expected add, del, list or flush\n", sub);
		goto out;
	}
	if ((strcmp(sub, "add") == 0 || strcmp(sub, "del") == 0) && !file &&
	    optind >= argc) {
		fprintf(stderr, "porthop watch %s: expected at least one "
			"ADDR[/LEN]%s\n", sub, strcmp(sub, "add") == 0 ?
			" (or --file FILE)" : "");
		goto out;
	}
	if (strcmp(sub, "flush") == 0 && origin == NULL) {
		fprintf(stderr, "porthop watch flush: --origin NAME is required\n");
		goto out;
	}
	if (origin)
		json_object_set_new(req, "origin", json_string(origin));
	r = cli_socket_path(&g, &cfg, &sock);
	if (r != 0)
		goto out;
	r = cli_call(sock, req, WATCH_TIMEOUT_MS, &reply);
	req = NULL;
	if (r != EXIT_SUCCESS)
		goto out;
	if (as_json)
		cli_dump_json(reply);
	else if (strcmp(sub, "list") == 0)
		print_list(reply);
	else if (strcmp(sub, "add") == 0)
		printf("%lld added, %lld refreshed (%lld runtime entries)%s\n",
		       (long long)json_integer_value(json_object_get(reply, "added")),
		       (long long)json_integer_value(json_object_get(reply, "refreshed")),
		       (long long)json_integer_value(json_object_get(reply, "runtime_entries")),
		       json_is_true(json_object_get(reply, "durable")) ? "" :
		       "; not on disk (no state_directory, or it could not "
		       "be written)");
	else
		printf("%lld deleted (%lld runtime entries)%s\n",
		       (long long)json_integer_value(json_object_get(reply, "deleted")),
		       (long long)json_integer_value(json_object_get(reply, "runtime_entries")),
		       json_is_true(json_object_get(reply, "durable")) ? "" :
		       "; not on disk");
out:
	json_decref(reply);
	json_decref(req);
	json_decref(tcp);
	json_decref(udp);
	free(text);
	config_free(cfg);
	return r;
}
