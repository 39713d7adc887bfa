/*
 * config_events: porthopd.events (the probe event feed: what the kernel
 * logs, how events merge, where they go) and porthopd.autowatch (sources
 * that probe enough closed ports become runtime watch entries).  See
 * docs/events.md.
 */
#include "config_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const event_keys[] = {
	"nflog_group", "rate_per_second", "burst", "merge_ms", "ring",
	"stale_seconds", "stale_max", "log", "redis_stream",
	"redis_stream_maxlen", "hook", "hook_per_minute", NULL
};

static const char *const autowatch_keys[] = {
	"ports", "seconds", "ttl_seconds", "max_entries", NULL
};

void config_events_defaults(struct config *c)
{
	struct config_events *e = &c->daemon.events;
	struct config_autowatch *a = &c->daemon.autowatch;

	*e = (struct config_events){
		.nflog_group = 7,
		.rate = 500,
		.burst = 1000,
		.merge_ms = 2000,
		.ring = 4096,
		.stale_seconds = 900,
		.stale_max = 65536,
		.log = true,
		.stream_maxlen = 100000,
		.hook_per_minute = 60,
	};
	/* Zeek's port-scan notice: 15 ports in 5 minutes. */
	*a = (struct config_autowatch){
		.ports = 15,
		.seconds = 300,
		.ttl_s = 3600,
		.max_entries = 4096,
	};
}

void config_events_free(struct config *c)
{
	char **h = c->daemon.events.hook;

	for (size_t i = 0; h && h[i]; i++)
		free(h[i]);
	free(h);
	free((void *)c->daemon.events.stream);
	c->daemon.events.hook = NULL;
	c->daemon.events.stream = NULL;
}

/* hook: an argv array, its first element an absolute path. */
static int walk_hook(struct walk *w, struct config *c, const json_t *o)
{
	char vbuf[DIAG_VALUE_MAX + 8], cpath[DIAG_PATH_MAX];
	const json_t *v = json_object_get(o, "hook");
	char **argv;
	size_t n;

	if (v == NULL)
		return 0;
	n = json_array_size(v);
	if (!json_is_array(v) || n == 0 || n > 64) {
		diag_error(w->d, "%s: porthopd.events.hook: %s is not an array "
			   "of 1 to 64 strings; expected e.g. "
			   "[\"/usr/local/bin/on-probe\", \"--quiet\"]",
			   w->file, diag_value(vbuf, sizeof(vbuf), v));
		return -1;
	}
	argv = calloc(n + 1, sizeof(*argv));
	if (argv == NULL)
		return -1;
	c->daemon.events.hook = argv;
	for (size_t i = 0; i < n; i++) {
		const json_t *a = json_array_get(v, i);
		const char *s = json_string_value(a);

		snprintf(cpath, sizeof(cpath), "porthopd.events.hook[%zu]", i);
		if (s == NULL || strlen(s) != json_string_length(a) ||
		    s[0] == '\0' || strlen(s) > CONFIG_MAX_STRING ||
		    (i == 0 && s[0] != '/')) {
			diag_error(w->d, "%s: %s: %s is not %s; expected %s",
				   w->file, cpath,
				   diag_value(vbuf, sizeof(vbuf), a),
				   i == 0 ? "an absolute path" : "a string",
				   i == 0 ? "the program to run, e.g. "
				   "\"/usr/local/bin/on-probe\"" :
				   "a non-empty string without NUL");
			return -1;
		}
		argv[i] = strdup(s);
		if (argv[i] == NULL)
			return -1;
	}
	return 0;
}

static int walk_event_keys(struct walk *w, struct config *c, const json_t *o)
{
	const char *p = "porthopd.events";
	struct config_events *e = &c->daemon.events;
	char vbuf[DIAG_VALUE_MAX + 8], *s = NULL;
	int r = 0;

	if (!walk_object(w, o, p, event_keys))
		return -1;
	r |= walk_opt_int(w, o, p, "nflog_group", 0, 65535,
			  "the nflog group the kernel logs events to",
			  &e->nflog_group);
	r |= walk_opt_int(w, o, p, "rate_per_second", 1, 1000000,
			  "the most packets per second and kind the kernel logs",
			  &e->rate);
	r |= walk_opt_int(w, o, p, "burst", 1, 1000000,
			  "the packets a kind may log at once above its rate",
			  &e->burst);
	r |= walk_opt_int(w, o, p, "merge_ms", 0, 600000,
			  "the window identical events merge over, in ms",
			  &e->merge_ms);
	r |= walk_opt_int(w, o, p, "ring", 1, 1000000,
			  "the events kept for `porthop events`", &e->ring);
	r |= walk_opt_int(w, o, p, "stale_seconds", 0, 86400,
			  "how long old redirect ports stay known (0: never)",
			  &e->stale_seconds);
	r |= walk_opt_int(w, o, p, "stale_max", 1, 10000000,
			  "the most old redirect ports known at once",
			  &e->stale_max);
	r |= walk_opt_bool(w, o, p, "log", &e->log);
	r |= walk_opt_int(w, o, p, "redis_stream_maxlen", 1, 1000000000,
			  "the stream's approximate length (XADD MAXLEN ~)",
			  &e->stream_maxlen);
	r |= walk_opt_int(w, o, p, "hook_per_minute", 1, 60000,
			  "the most hook runs per minute", &e->hook_per_minute);
	if (walk_opt_string(w, o, p, "redis_stream", &s) < 0) {
		r = -1;
	} else if (s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
			       "OPQRSTUVWXYZ0123456789:_.-{}") != strlen(s)) {
		diag_error(w->d, "%s: porthopd.events.redis_stream: %s is not a "
			   "stream key of letters, digits and \":_.-{}\"; "
			   "expected e.g. \"porthop:events\"", w->file,
			   diag_string(vbuf, sizeof(vbuf), s));
		r = -1;
	}
	e->stream = s;
	r |= walk_hook(w, c, o);
	return r;
}

int walk_events(struct walk *w, struct config *c, const json_t *o)
{
	const json_t *ev = json_object_get(o, "events");
	const json_t *aw = json_object_get(o, "autowatch");
	struct config_autowatch *a = &c->daemon.autowatch;
	const char *p = "porthopd.autowatch";
	int r = 0;

	if (ev == NULL && aw == NULL)
		return 0;
	if (c->mode != CONFIG_MODE_NATIVE) {
		diag_error(w->d, "%s: porthopd.%s: the probe event feed needs "
			   "native mode; expected no nft_address_rules_path "
			   "(template mode's rules come from the reference's "
			   "files)", w->file, ev ? "events" : "autowatch");
		return -1;
	}
	c->daemon.events.on = true;
	if (ev)
		r |= walk_event_keys(w, c, ev);
	if (aw == NULL)
		return r;
	if (!walk_object(w, aw, p, autowatch_keys))
		return -1;
	a->on = true;
	r |= walk_opt_int(w, aw, p, "ports", 2, 1024,
			  "the distinct closed ports that make a scanner",
			  &a->ports);
	r |= walk_opt_int(w, aw, p, "seconds", 1, 86400,
			  "the window those ports are counted over, in seconds",
			  &a->seconds);
	r |= walk_opt_int(w, aw, p, "ttl_seconds", 1, 315360000,
			  "the TTL of an autowatch entry in seconds",
			  &a->ttl_s);
	r |= walk_opt_int(w, aw, p, "max_entries", 1, CONFIG_MAX_WATCHED,
			  "the most autowatch entries at once (the oldest go)",
			  &a->max_entries);
	return r;
}
