/*
 * porthop events: what porthop saw (docs/events.md), from porthopd's ring
 * over the control socket; --follow asks again every quarter second for
 * what came after the last event shown.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "porthop.h"
#include "config.h"

/* What porthopd answers to one events request at most (command.c). */
#define EVENTS_PER_REQUEST 1000

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void print_event(json_t *e, bool as_json)
{
	json_t *real = json_object_get(e, "real_port");
	char *line;

	if (as_json) {
		line = json_dumps(e, JSON_COMPACT);
		if (line)
			puts(line);
		free(line);
		return;
	}
	printf("%s %-7s %s %s/%lld", json_string_value(json_object_get(e, "time")),
	       json_string_value(json_object_get(e, "kind")),
	       json_string_value(json_object_get(e, "source")),
	       json_string_value(json_object_get(e, "proto")),
	       (long long)json_integer_value(json_object_get(e, "port")));
	if (json_is_integer(real))
		printf(" (real %lld)", (long long)json_integer_value(real));
	printf(" x%lld gen %lld\n",
	       (long long)json_integer_value(json_object_get(e, "count")),
	       (long long)json_integer_value(json_object_get(e, "generation")));
}

int cmd_events(const struct globals *gl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "follow", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct globals g = *gl;
	struct config *cfg = NULL;
	bool follow = false, as_json = false, more;
	json_int_t after = 0;
	const char *sock;
	int ch, r;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:c:fjh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			g.sock = optarg;
			break;
		case 'c':
			g.conf = optarg;
			break;
		case 'f':
			follow = true;
			break;
		case 'j':
			as_json = true;
			break;
		case 'h':
			printf("usage: porthop events [--follow] [--json] "
			       "[-s socket | -c file]\n\n"
			       "The probe events porthopd kept (moved, vacated, "
			       "stale, probe), oldest first; --follow waits for "
			       "more; --json prints one JSON object a line.  Root "
			       "only.\n");
			return EXIT_SUCCESS;
		default:
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "porthop events: unexpected argument \"%s\"\n",
			argv[optind]);
		return EX_USAGE;
	}
	r = cli_socket_path(&g, &cfg, &sock);
	if (r != 0)
		return r;
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	signal(SIGPIPE, on_stop);
	do {
		json_t *reply = NULL, *e;
		size_t i;

		more = false;

		r = cli_call(sock, json_pack("{s:s,s:I}", "command", "events",
					     "after", after), 30000, &reply);
		if (r != EXIT_SUCCESS)
			break;
		if (!follow && !json_is_true(json_object_get(reply, "on")))
			fprintf(stderr, "porthop events: the event feed is off "
				"(no porthopd.events or autowatch)\n");
		json_array_foreach(json_object_get(reply, "events"), i, e) {
			print_event(e, as_json);
			after = json_integer_value(json_object_get(e, "seq"));
		}
		/* Events the ring no longer held are skipped, not waited
		 * for. */
		if (json_array_size(json_object_get(reply, "events")) == 0)
			after = json_integer_value(json_object_get(reply, "last"));
		/* A full answer (porthopd gives 1000 at most): the ring
		 * holds more after it, asked for at once. */
		more = json_array_size(json_object_get(reply, "events")) >=
		       EVENTS_PER_REQUEST;
		fflush(stdout);
		json_decref(reply);
		if (follow && !more && !stop)
			nanosleep(&(struct timespec){ 0, 250000000 }, NULL);
	} while ((follow || more) && !stop);
	config_free(cfg);
	return stop ? EXIT_SUCCESS : r;
}
