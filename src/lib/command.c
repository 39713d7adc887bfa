/*
 * command: the control socket's commands, one table of them. See command.h
 * for the contract.
 */
#include "command_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "diag.h"
#include "ruleset.h"
#include "statefile.h"
#include "watchlist.h"

struct command {
	const char *name;
	bool root_only;		/* whatever the socket's group allows */
	json_t *(*run)(struct core *c, struct control *ctl, json_t *req);
};

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The runtime watch list: entries per origin, the state file. */
static json_t *runtime_status(struct core *c)
{
	const struct watchlist *wl = core_watchlist(c);
	const struct config_daemon *d = config_daemon(core_config(c));
	json_t *origins = json_object();
	struct statefile_stats ss;

	for (size_t i = 0; origins && i < watchlist_origin_count(wl); i++) {
		const struct watchlist_origin_stats *o = watchlist_origin(wl, i);

		json_object_set_new(origins, o->name, json_pack(
			"{s:I,s:I,s:I,s:I,s:I,s:I}", "entries",
			(json_int_t)o->entries, "adds", (json_int_t)o->adds,
			"refreshes", (json_int_t)o->refreshes, "deletes",
			(json_int_t)o->deletes, "expiries",
			(json_int_t)o->expiries, "refused",
			(json_int_t)o->refused));
	}
	/* What the state file's group commit has cost: syncs against the
	 * changes acknowledged. */
	core_watch_stats(c, &ss);
	return json_pack("{s:I,s:I,s:o,s:s,s:{s:I,s:I,s:f,s:I,s:I,s:I,s:I}}",
			 "entries", (json_int_t)watchlist_count(wl),
			 "max_entries", (json_int_t)d->max_runtime_entries,
			 "origins", origins ? origins : json_object(),
			 "state_directory",
			 d->state_directory ? d->state_directory : "",
			 "state_file", "syncs", (json_int_t)ss.syncs,
			 "commits", (json_int_t)ss.commits,
			 "commit_ms", ss.commit_ms,
			 "commit_failures", (json_int_t)ss.commit_failures,
			 "rewrites", (json_int_t)ss.rewrites,
			 "journal_records", (json_int_t)ss.journal_records,
			 "bytes", (json_int_t)ss.file_bytes);
}

static json_t *status(struct core *c, struct control *ctl, json_t *req)
{
	(void)ctl;
	const struct engine_stats *st = engine_stats(core_engine(c));
	const struct config *cfg = core_config(c);
	const struct core_hooks *h = core_hooks(c);
	json_t *r;

	(void)req;
	r = json_pack("{s:b,s:s,s:s,s:s,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		"ok", 1, "version", PORTHOP_VERSION, "config",
		core_config_path(c), "mode",
		config_mode(cfg) == CONFIG_MODE_NATIVE ? "native" : "template",
		"uptime_seconds", wall_now() - core_start_time(c),
		"watched_addresses", (json_int_t)config_watched_count(cfg),
		"pairs", (json_int_t)config_pair_count(cfg),
		"shuffles", (json_int_t)st->shuffles,
		"failures", (json_int_t)st->failures,
		"triggers", (json_int_t)core_counters(c)->triggers,
		"reconciliations", (json_int_t)st->repairs,
		"next_timer_seconds", (json_int_t)-1);
	if (r == NULL)
		return NULL;
	if (config_mode(cfg) == CONFIG_MODE_NATIVE) {
		static const char *const modes[] = { "false", "true", "auto" };

		json_object_set_new(r, "table", json_sprintf("inet %s",
							     config_table_name(cfg)));
		json_object_set_new(r, "unwatched_clients", json_pack(
			"{s:s,s:s,s:s?,s:I}", "connection_tracking",
			st->untracking ? "untracked" : "tracked",
			"untrack_unwatched", modes[config_untrack(cfg)],
			"conntrack_user", st->conntrack_user[0] ?
			st->conntrack_user : NULL, "switches",
			(json_int_t)st->untrack_switches));
		json_object_set_new(r, "prestage", json_pack(
			"{s:s,s:b,s:b,s:i,s:I,s:I,s:I,s:f}", "setting",
			modes[config_prestage(cfg)], "active", st->prestage,
			"standby_ready", st->standby_ready, "generation",
			(int)st->generation, "switches",
			(json_int_t)st->switches, "fallbacks",
			(json_int_t)st->fallbacks, "stagings",
			(json_int_t)st->stagings, "last_staging_ms",
			st->last_stage_ms));
		/* map_capacity: the swap maps' room, pairs of each family. */
		if (config_map_size(cfg))
			json_object_set_new(r, "maps", json_pack(
				"{s:I,s:I,s:I,s:I}", "map_capacity",
				(json_int_t)config_map_capacity(cfg),
				"pairs_max", (json_int_t)config_map_pairs(cfg),
				"pairs_ipv4", (json_int_t)config_swap_pairs(cfg, false),
				"pairs_ipv6", (json_int_t)config_swap_pairs(cfg, true)));
	}
	if (st->shuffles + st->failures > 0)
		json_object_set_new(r, "last_shuffle", json_pack(
			"{s:I,s:f,s:s,s:I}", "time", (json_int_t)st->last_time.tv_sec,
			"duration_ms", st->last_build_ms + st->last_apply_ms,
			"result", st->last_result == 0 ? "applied" : "failed",
			"commands", (json_int_t)st->last_commands));
	if (core_watchlist(c) && config_mode(cfg) == CONFIG_MODE_NATIVE)
		json_object_set_new(r, "runtime", runtime_status(c));
	/* Derived ports (docs/follow.md): how many slot changes, the last
	 * one's operations and kernel time. */
	if (ruleset_derive_on(cfg))
		json_object_set_new(r, "derived_ports", json_pack(
			"{s:I,s:I,s:f}", "slot_changes",
			(json_int_t)st->derive_steps, "last_operations",
			(json_int_t)st->derive_last_elements, "last_change_ms",
			st->derive_last_apply_ms));
	if (core_events_on(c)) {
		const struct probe_stats *es = core_event_stats(c);
		json_t *ev = json_object(), *k = json_object(), *d = json_object();

		for (int i = 0; i < PROBE_KINDS; i++)
			json_object_set_new(k, probe_kind_name(i), json_integer(
				(json_int_t)es->events[i]));
		for (int i = 0; i < PROBE_DROPS; i++)
			json_object_set_new(d, probe_drop_name(i), json_integer(
				(json_int_t)es->dropped[i]));
		json_object_set_new(ev, "events", k);
		json_object_set_new(ev, "dropped", d);
		json_object_set_new(ev, "autowatch_added", json_integer(
			(json_int_t)es->autowatch_added));
		json_object_set_new(r, "events", ev);
	}
	json_object_set_new(r, "authenticated_triggers",
			    json_boolean(core_authenticated(c)));
	json_object_set_new(r, "address_triggers_unknown", json_integer(
		(json_int_t)core_counters(c)->unknown_addresses));
	if (h->status)
		h->status(h->arg, r);
	return r;
}

static json_t *metrics(struct core *c, struct control *ctl, json_t *req)
{
	(void)ctl;
	struct metrics_snapshot m;
	char *text;
	json_t *r;

	(void)req;
	core_metrics_snapshot(c, &m);
	text = metrics_render(&m);
	if (text == NULL)
		return control_error(CONTROL_CODE_INTERNAL, "out of memory");
	r = json_pack("{s:b,s:s}", "ok", 1, "text", text);
	free(text);
	return r;
}

/* The mapping in force, or one entry's: the secret the shuffling hides,
 * so root only. */
static json_t *mapping(struct core *c, struct control *ctl, json_t *req)
{
	(void)ctl;
	const char *only = json_string_value(json_object_get(req, "address"));
	const struct shuffle_map *m = engine_map(core_engine(c));
	const struct config *cfg = core_config(c);
	long want = only ? config_watched_find(cfg, only) : -1;
	json_t *list;

	if (only && want < 0)
		return control_error(CONTROL_CODE_NOT_WATCHED,
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
			"address", config_watched(cfg, e->watched)->ip,
			"tcp", proto[0], "udp", proto[1]));
	}
	return json_pack("{s:b,s:o}", "ok", 1, "mapping", list);
}

/* A shuffle asked for over the control socket joins the pending one like
 * any trigger.  If it may run now, it runs before the reply, which says
 * how it went; inside min_shuffle_interval_ms it is queued (the trigger
 * armed the pending shuffle) and the reply says when it runs. */
static json_t *shuffle(struct core *c, struct control *ctl, json_t *req)
{
	(void)ctl;
	const char *addr = json_string_value(json_object_get(req, "address"));
	char vbuf[DIAG_VALUE_MAX + 8], msg[DIAG_VALUE_MAX + 64];
	const struct engine_stats *st = engine_stats(core_engine(c));
	char *err = NULL;
	long long wait;
	json_t *r;

	if (addr == NULL) {
		core_trigger(c, SRC_CONTROL);
	} else if (core_trigger_address(c, addr, SRC_CONTROL) < 0) {
		snprintf(msg, sizeof(msg), "%s is not a watched address nor "
			 "inside a watched prefix",
			 diag_string(vbuf, sizeof(vbuf), addr));
		return control_error(CONTROL_CODE_NOT_WATCHED, msg);
	}
	wait = core_wait_ms(c);
	if (wait > 0)
		return json_pack("{s:b,s:b,s:I}", "ok", 1, "queued", 1,
				 "due_ms", (json_int_t)wait);
	/* The pending shuffle, armed by the trigger, then finds nothing
	 * left to do. */
	if (core_run_pending(c, &err) < 0) {
		r = control_error(CONTROL_CODE_KERNEL, err ? err :
				  "the kernel refused the shuffle; see "
				  "porthopd's log");
		free(err);
		return r;
	}
	return json_pack("{s:b,s:f}", "ok", 1, "duration_ms",
			 st->last_build_ms + st->last_apply_ms);
}

static json_t *reload(struct core *c, struct control *ctl, json_t *req)
{
	(void)ctl;
	const struct config *cfg;
	char *err = NULL;
	json_t *r;
	int rc;

	(void)req;
	rc = core_reload(c, SRC_CONTROL, &err);
	if (rc > 0)
		return json_pack("{s:b,s:b,s:I}", "ok", 1, "queued", 1,
				 "due_ms", (json_int_t)core_wait_ms(c));
	if (rc < 0) {
		r = control_error(rc == -EINVAL ? CONTROL_CODE_CONFIG :
				  rc == -EIO ? CONTROL_CODE_KERNEL :
				  CONTROL_CODE_INTERNAL,
				  err ? err : "reload refused");
		free(err);
		return r;
	}
	cfg = core_config(c);
	return json_pack("{s:b,s:I,s:I}", "ok", 1, "watched_addresses",
			 (json_int_t)config_watched_count(cfg), "pairs",
			 (json_int_t)config_pair_count(cfg));
}

/* The probe events after "after" (a seq; 0: all the ring holds), at most
 * "max" (default and limit 1000); "last" says where the next request
 * picks up. */
static void event_out(void *arg, const struct probe_event *e)
{
	json_array_append_new(arg, probe_json(e));
}

static json_t *events(struct core *c, struct control *ctl, json_t *req)
{
	json_t *after = json_object_get(req, "after");
	json_t *max = json_object_get(req, "max");
	json_t *list = json_array();
	uint64_t last = 0;
	json_int_t m = 1000;

	(void)ctl;
	if ((after && (!json_is_integer(after) || json_integer_value(after) < 0)) ||
	    (max && (!json_is_integer(max) || json_integer_value(max) < 1))) {
		json_decref(list);
		return control_error(CONTROL_CODE_REQUEST, "malformed request: "
				     "\"after\" and \"max\" must be "
				     "non-negative integers");
	}
	if (max && json_integer_value(max) < m)
		m = json_integer_value(max);
	if (list == NULL)
		return NULL;
	core_events_since(c, after ? (uint64_t)json_integer_value(after) : 0,
			  (size_t)m, event_out, list, &last);
	return json_pack("{s:b,s:b,s:o,s:I}", "ok", 1, "on", core_events_on(c),
			 "events", list, "last", (json_int_t)last);
}

static const struct command commands[] = {
	{ "status", false, status },
	{ "metrics", false, metrics },
	{ "mapping", true, mapping },
	{ "shuffle", false, shuffle },
	{ "reload", false, reload },
	{ "watch_add", false, command_watch_add },
	{ "watch_del", false, command_watch_del },
	{ "watch_list", false, command_watch_list },
	{ "watch_flush", false, command_watch_flush },
	{ "events", true, events },
};

json_t *command_run(struct core *c, struct control *ctl, json_t *request,
		    uid_t uid)
{
	const char *name = json_string_value(json_object_get(request,
							      "command"));
	json_t *addr = json_object_get(request, "address");
	char msg[256];
	size_t len = 0;

	/* An address that is not a string is a mistake, never "every
	 * address". */
	if (addr && !json_is_string(addr))
		return control_error(CONTROL_CODE_REQUEST, "malformed request: "
				     "\"address\" must be a string");

	for (size_t i = 0; name && i < sizeof(commands) / sizeof(*commands); i++) {
		if (strcmp(name, commands[i].name) != 0)
			continue;
		if (commands[i].root_only && uid != 0) {
			snprintf(msg, sizeof(msg), "permission denied: %s is "
				 "for root only", name);
			return control_error(CONTROL_CODE_PERMISSION, msg);
		}
		return commands[i].run(c, ctl, request);
	}
	len = (size_t)snprintf(msg, sizeof(msg), "unknown command; expected");
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s %s",
					i ? "," : "", commands[i].name);
	return control_error(CONTROL_CODE_REQUEST, msg);
}
