/*
 * porthop fleet, and the fleet's side of publish and watch: operations
 * written to the fleet stream (see docs/fleet.md), and the consumer
 * groups listed with their lag, so an operator sees which host is behind.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "config.h"
#include "diag.h"
#include "fleetpub.h"
#include "porthop.h"

struct config *cli_fleet_config(const char *conf)
{
	struct diag *d = diag_new();
	struct config *cfg;

	if (d == NULL)
		return NULL;
	cfg = config_load(conf ? conf : CONFIG_DEFAULT_PATH,
			  CONFIG_LOAD_NO_RULES, d);
	diag_print(d, stderr);
	diag_free(d);
	if (cfg && config_stream(cfg)->stream == NULL) {
		fprintf(stderr, "porthop: %s has no redis_stream_configuration; "
			"expected one for the fleet stream\n", config_file(cfg));
		config_free(cfg);
		cfg = NULL;
	}
	return cfg;
}

int cli_fleet_send(const struct config *cfg, const char *host, int port,
		   const struct fleet_op *ops, size_t n, int wait_replicas,
		   const unsigned char *key, size_t keylen, bool quiet)
{
	const struct config_daemon *d = config_daemon(cfg);
	struct fleetpub *p = NULL;
	char err[768];
	size_t sent = 0;
	int r;

	if (keylen == 0 && d->trigger_key) {
		key = d->trigger_key;
		keylen = d->trigger_key_len;
	}
	r = fleetpub_connect(cfg, host, port, &p, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "porthop: fleet: no primary: %s; nothing "
			"published\n", err);
		return r == -EINVAL ? EX_CONFIG : EX_UNAVAILABLE;
	}
	r = fleetpub_send(p, ops, n, key, keylen, wait_replicas, &sent, err,
			  sizeof(err));
	if (r == 0 && !quiet)
		printf("published %zu entr%s to stream \"%s\" on %s\n", sent,
		       sent == 1 ? "y" : "ies", config_stream(cfg)->stream,
		       fleetpub_primary(p));
	if (r < 0)
		fprintf(stderr, "porthop: fleet: %s (%zu of %zu published)\n",
			err, sent, n);
	fleetpub_free(p);
	if (r == -ETIMEDOUT)
		return EX_TEMPFAIL;
	return r == 0 ? EXIT_SUCCESS : r == -EINVAL ? EX_DATAERR :
	       EX_UNAVAILABLE;
}

static void fleet_usage(FILE *f)
{
	fprintf(f,
"usage: porthop fleet [-c file] [--json]\n"
"\n"
"The fleet stream's consumer groups (one per host) with their lag (entries\n"
"not read yet) and pending entries (read, not acknowledged), from the\n"
"primary the configuration's sentinels name.  Exit 69 if there is none.\n");
}

static long long int_or(json_t *v, long long dflt)
{
	return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

int cmd_fleet(const struct globals *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = g->conf;
	struct config *cfg = NULL;
	struct fleetpub *p = NULL;
	json_t *info = NULL, *e;
	bool as_json = false;
	char err[768];
	size_t i;
	int ch, status = EX_UNAVAILABLE;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'j':
			as_json = true;
			break;
		case 'h':
			fleet_usage(stdout);
			return EXIT_SUCCESS;
		default:
			fleet_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fleet_usage(stderr);
		return EX_USAGE;
	}
	cfg = cli_fleet_config(conf);
	if (cfg == NULL)
		return EX_CONFIG;
	if (fleetpub_connect(cfg, NULL, 0, &p, err, sizeof(err)) < 0 ||
	    (info = fleetpub_groups(p, err, sizeof(err))) == NULL) {
		fprintf(stderr, "porthop fleet: %s\n", err);
		goto out;
	}
	status = EXIT_SUCCESS;
	if (as_json) {
		cli_dump_json(info);
		goto out;
	}
	printf("stream %s on %s: %lld entries, last %s\n",
	       json_string_value(json_object_get(info, "stream")),
	       json_string_value(json_object_get(info, "primary")),
	       int_or(json_object_get(info, "length"), -1),
	       json_string_value(json_object_get(info, "last_id")) ?
	       json_string_value(json_object_get(info, "last_id")) : "-");
	printf("%-32s %10s %10s  %s\n", "group", "lag", "pending",
	       "last delivered");
	json_array_foreach(json_object_get(info, "groups"), i, e) {
		long long lag = int_or(json_object_get(e, "lag"), -1);
		char lbuf[24];

		snprintf(lbuf, sizeof(lbuf), "%lld", lag);
		printf("%-32s %10s %10lld  %s\n",
		       json_string_value(json_object_get(e, "name")),
		       lag < 0 ? "?" : lbuf,
		       int_or(json_object_get(e, "pending"), 0),
		       json_string_value(json_object_get(e, "last_delivered")) ?
		       json_string_value(json_object_get(e, "last_delivered")) :
		       "-");
	}
out:
	json_decref(info);
	fleetpub_free(p);
	config_free(cfg);
	return status;
}
