/*
 * core: porthopd's policy, without its event loop. See core.h for the
 * contract.
 */
#include "core_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "rundir.h"

void core_vsay(void (*log)(void *, enum core_level, const char *),
	       void *arg, enum core_level level, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	log(arg, level, line);
}

void core_say(struct core *c, enum core_level level, const char *fmt, ...)
{
	va_list ap;

	if (level == CORE_DEBUG && !log_debug_enabled())
		return;
	va_start(ap, fmt);
	core_vsay(c->hooks.log, c->hooks.arg, level, fmt, ap);
	va_end(ap);
}

/* " (N more not logged)" when lines were held back, else "". */
static const char *held_note(char *buf, size_t len, uint64_t n)
{
	buf[0] = '\0';
	if (n > 0)
		snprintf(buf, len, " (%llu more not logged)",
			 (unsigned long long)n);
	return buf;
}

struct core *core_new(struct nftio *io, struct config *cfg,
		      const char *config_path, const struct core_hooks *hooks)
{
	struct core *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		config_free(cfg);
		return NULL;
	}
	c->io = io;
	c->config_path = config_path;
	c->run_dir = RUNDIR_PATH;
	c->hooks = *hooks;
	/* The runtime entries kept from the last run join the
	 * configuration's before anything is drawn. */
	if (core_watch_restore(c, cfg) < 0) {
		warn(c, "watch: the runtime entries could not be restored; "
		     "starting from the configuration alone, runtime adds "
		     "refused until the state directory is usable");
		statefile_free(c->state);
		c->state = NULL;
		c->state_broken = true;
	}
	c->engine = engine_new(cfg, io);
	c->queue = trigger_queue_new();
	if (c->engine == NULL || c->queue == NULL ||
	    core_prepare_auth(c, engine_config(c->engine), &c->auth) < 0 ||
	    core_events_setup(c) < 0 || core_knock_setup(c) < 0) {
		core_free(c);
		return NULL;
	}
	return c;
}

void core_free(struct core *c)
{
	if (c == NULL)
		return;
	core_watch_free(c);
	core_events_free(c);
	core_knock_free(c);
	engine_free(c->engine);
	trigger_queue_free(c->queue);
	auth_free(c->auth);
	instance_free(c->claim);
	config_free(c->pending_reload);
	free(c);
}

void core_set_run_dir(struct core *c, const char *dir)
{
	c->run_dir = dir;
}

void core_set_json_elements(struct core *c, bool on)
{
	engine_set_json_elements(c->engine, on);
}


static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* prestage: after anything that may have used or dropped the standby,
 * its loading goes on (or starts over) at a low priority. */
static void stage_kick(struct core *c)
{
	const struct engine_stats *st = engine_stats(c->engine);

	if (c->hooks.stage && st->prestage && !st->standby_ready)
		c->hooks.stage(c->hooks.arg);
}

bool core_stage_step(struct core *c)
{
	const struct engine_stats *st = engine_stats(c->engine);
	uint64_t stagings = st->stagings, held;
	char *err = NULL, note[48];
	int r = engine_stage_step(c->engine, &err);

	if (r < 0 && log_ratelimit(&c->stage_log, time(NULL), LOG_BURST,
				   LOG_INTERVAL_S, &held))
		warn(c, "prestage: loading the next mapping failed (until it "
		     "is loaded, a shuffle replaces the maps whole): %s%s",
		     err ? err : strerror(-r), held_note(note, sizeof(note), held));
	else if (st->stagings != stagings)
		debug(c, "prestage: the next mapping is staged (generation "
		      "%u): %zu pairs in %.1f ms", st->generation ^ 1u,
		      st->last_pairs, st->last_stage_ms);
	free(err);
	return r > 0;
}

/* After an apply: its duration observed, a table found gone said. */
void core_observe(struct core *c)
{
	const struct engine_stats *st = engine_stats(c->engine);

	if (st->last_result == 0)
		metrics_observe(&c->apply_hist,
				(st->last_build_ms + st->last_apply_ms) / 1e3);
	if (st->last_result == 0 && st->last_redefined)
		warn(c, "table inet %s was gone (someone flushed the "
		     "ruleset?): defined anew",
		     config_table_name(engine_config(c->engine)));
	stage_kick(c);
}

/* After a trigger's apply: someone else's change put back first?  (A
 * table found gone is said by observe().) */
void core_report_repair(struct core *c, uint64_t repairs_before,
			  const char *what)
{
	const struct engine_stats *st = engine_stats(c->engine);

	if (st->repairs != repairs_before && !st->last_redefined)
		warn(c, "reconcile: the rules in force had been removed or "
		     "altered; applied again before the %s", what);
}

/* A failed shuffle, logged through a limit: every trigger of a flood can
 * fail the same way. */
static void report_failure(struct core *c, const char *what, const char *err)
{
	char note[48];
	uint64_t held;

	if (log_ratelimit(&c->failure_log, time(NULL), LOG_BURST,
			  LOG_INTERVAL_S, &held))
		warn(c, "%s failed, previous rules stay in force: %s%s", what,
		     err ? err : "unknown error",
		     held_note(note, sizeof(note), held));
}

/* Every entry.  Returns 0, or -1 with *ret_error set (the caller frees
 * it) if given. */
static int run_all(struct core *c, const char *reason, char **ret_error)
{
	const struct engine_stats *st = engine_stats(c->engine);
	uint64_t repairs = st->repairs, switches = st->switches;
	uint64_t fallbacks = st->fallbacks;
	char digest[48] = "", what[96];
	const char *how = "";
	char *err = NULL;
	int r = engine_shuffle(c->engine, &err);

	core_observe(c);
	core_report_repair(c, repairs, "shuffle");
	if (r < 0) {
		snprintf(what, sizeof(what), "shuffle (%s)", reason);
		report_failure(c, what, err);
		if (ret_error)
			*ret_error = err;
		else
			free(err);
		return -1;
	}
	if (st->last_digest_ms >= 0)
		snprintf(digest, sizeof(digest), ", digest %.1f ms",
			 st->last_digest_ms);
	if (st->switches != switches)
		how = ", switched to the staged mapping";
	else if (st->fallbacks != fallbacks)
		how = ", no staged mapping ready: replaced whole";
	info(c, "shuffle %llu applied (%s): %zu pairs, %zu commands, "
	     "build %.1f ms, apply %.1f ms%s%s",
	     (unsigned long long)st->shuffles, reason, st->last_pairs,
	     st->last_commands, st->last_build_ms, st->last_apply_ms, digest,
	     how);
	return 0;
}

/* The watched entries named by triggers, in one transaction; as
 * run_all otherwise. */
static int run_entries(struct core *c, const size_t *idx, size_t n,
			   const char *reason, char **ret_error)
{
	const struct config *cfg = engine_config(c->engine);
	const struct engine_stats *st = engine_stats(c->engine);
	uint64_t repairs = st->repairs;
	char what[96], whom[64];
	char *err = NULL;
	int r;

	r = engine_shuffle_entries(c->engine, idx, n, &err);
	core_observe(c);
	core_report_repair(c, repairs, "shuffle");
	/* Configured entries only: their text is ours, not the sender's. */
	if (n == 1)
		snprintf(whom, sizeof(whom), "address %s",
			 config_watched(cfg, idx[0])->ip);
	else
		snprintf(whom, sizeof(whom), "%zu addresses", n);
	if (r < 0) {
		snprintf(what, sizeof(what), "shuffle of %s (%s)", whom, reason);
		report_failure(c, what, err);
		if (ret_error)
			*ret_error = err;
		else
			free(err);
		return -1;
	}
	info(c, "shuffle %llu applied (%s; %s): %zu operations, build %.1f "
	     "ms, apply %.1f ms", (unsigned long long)st->shuffles, whom,
	     reason, st->last_commands, st->last_build_ms, st->last_apply_ms);
	return 0;
}

int core_start(struct core *c)
{
	const struct config *cfg = engine_config(c->engine);
	char *err = NULL;

	info(c, "starting: %s, %zu watched address%s, %zu pairs",
	     c->config_path, config_watched_count(cfg),
	     config_watched_count(cfg) == 1 ? "" : "es",
	     config_pair_count(cfg));
	c->start_time = wall_now();
	/* Before the kernel is touched: nobody else serves it. */
	c->claim = instance_claim(c->run_dir, cfg, &err);
	if (c->claim == NULL) {
		warn(c, "%s", err ? err : "out of memory");
		free(err);
		return -1;
	}
	run_all(c, "start", NULL);
	clock_gettime(CLOCK_MONOTONIC, &c->last_shuffle);
	core_report_untrack_state(c);
	if (engine_stats(c->engine)->shuffles == 0) {
		warn(c, "the start-up shuffle failed; stopping");
		return -1;
	}
	return 0;
}

int core_run_pending(struct core *c, char **ret_error)
{
	struct trigger_batch b;
	char reason[64] = "";
	size_t len = 0;
	int r;

	/* A queued reload first; refused, the triggers waiting with it
	 * still run. */
	if (c->pending_reload && core_apply_pending_reload(c, ret_error) == 0)
		return 0;
	trigger_queue_peek(c->queue, &b);
	if (!b.all && b.nentries == 0)
		return 0;
	/* Every trigger that collapsed into this shuffle is named: an
	 * operator's signal served by a shuffle a message had already asked
	 * for shows as "redis, signal", not as a lost signal. */
	for (int i = 0; i < SRC_COUNT; i++)
		if (b.sources & (1u << i))
			len += (size_t)snprintf(reason + len, sizeof(reason) - len,
						"%s%s", len ? ", " : "",
						metrics_source_name((enum metrics_source)i));
	r = b.all ? run_all(c, reason, ret_error) :
		    run_entries(c, b.entries, b.nentries, reason, ret_error);
	trigger_queue_clear(c->queue);
	clock_gettime(CLOCK_MONOTONIC, &c->last_shuffle);
	return r;
}

long long core_wait_ms(const struct core *c)
{
	unsigned min_ms = config_daemon(engine_config(c->engine))->min_shuffle_interval_ms;
	struct timespec now;
	long long since_ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	since_ms = (now.tv_sec - c->last_shuffle.tv_sec) * 1000LL +
		   (now.tv_nsec - c->last_shuffle.tv_nsec) / 1000000;
	return min_ms > 0 && since_ms < (long long)min_ms ?
	       (long long)min_ms - since_ms : 0;
}

/* Triggers that arrive while one is pending collapse into it (see
 * trigger.h): a burst of messages costs one shuffle, and shuffles keep
 * min_shuffle_interval_ms however fast messages come. */
void core_schedule(struct core *c)
{
	c->hooks.schedule(c->hooks.arg, core_wait_ms(c));
}

void core_trigger(struct core *c, enum metrics_source source)
{
	c->counters.triggers++;
	c->counters.by_source[source]++;
	trigger_queue_all(c->queue, source);
	core_schedule(c);
}

int core_trigger_address(struct core *c, const char *ip,
			 enum metrics_source source)
{
	long idx = config_watched_lookup(engine_config(c->engine), ip);
	char vbuf[DIAG_VALUE_MAX + 8], note[48];
	uint64_t held;

	c->counters.triggers++;
	c->counters.by_source[source]++;
	if (idx < 0) {
		c->counters.unknown_addresses++;
		if (log_ratelimit(&c->unknown_log, time(NULL), LOG_BURST,
				  LOG_INTERVAL_S, &held))
			warn(c, "shuffle of %s (%s) refused: not a watched "
			     "address nor inside a watched prefix%s",
			     diag_string(vbuf, sizeof(vbuf), ip),
			     metrics_source_name(source),
			     held_note(note, sizeof(note), held));
		return -ENOENT;
	}
	trigger_queue_entry(c->queue, (size_t)idx, source);
	core_schedule(c);
	return 0;
}

/* The longest Redis message parsed for "address" or "op". */
#define WATCH_MESSAGE_MAX 4096

/* A watch message refused: logged through a limit (a sender causes it). */
static void watch_message_refused(struct core *c, const char *why)
{
	char wbuf[DIAG_VALUE_MAX + 8], note[48];
	uint64_t held;

	c->counters.watch_refused++;
	if (log_ratelimit(&c->refusal_log, time(NULL), LOG_BURST,
			  LOG_INTERVAL_S, &held))
		warn(c, "watch message refused: %s%s",
		     diag_line(wbuf, sizeof(wbuf), why),
		     held_note(note, sizeof(note), held));
}

/* A refused trigger: counted always, logged through a limit so a flood
 * of forgeries cannot flood the log. */
static void refuse(struct core *c, enum auth_result r, const char *channel)
{
	char cbuf[DIAG_VALUE_MAX + 8], note[48];
	uint64_t held;

	c->counters.refused[r]++;
	if (log_ratelimit(&c->refusal_log, time(NULL), LOG_BURST,
			  LOG_INTERVAL_S, &held))
		warn(c, "trigger on channel %s refused: %s%s",
		     diag_string(cbuf, sizeof(cbuf), channel),
		     auth_result_name(r), held_note(note, sizeof(note), held));
}

/* The Redis message's answer, when the commit is in (or could not be). */
static void watch_message_done(void *arg, const struct core_watch_result *res)
{
	struct core *c = arg;

	if (res->status != CORE_WATCH_OK)
		watch_message_refused(c, res->error);
}

/* {"op": "watch" | "unwatch", "address": ..., "ttl": ..., "origin": ...}:
 * a detector's runtime entry, as over the control socket (the message was
 * verified already when a trigger key is configured). */
static void watch_message(struct core *c, json_t *msg)
{
	static const char *const keys[] = { "op", "address", "ttl", "origin",
					    NULL };
	const char *op = json_string_value(json_object_get(msg, "op"));
	const char *addr = json_string_value(json_object_get(msg, "address"));
	json_t *ttl = json_object_get(msg, "ttl");
	json_t *o = json_object_get(msg, "origin");
	const char *origin = o ? json_string_value(o) : "redis";
	struct core_watch_result res;
	struct core_watch_req req = { .address = addr };
	const char *key;
	json_t *v;
	int pending;

	json_object_foreach(msg, key, v) {
		size_t k = 0;

		while (keys[k] && strcmp(keys[k], key) != 0)
			k++;
		if (keys[k] == NULL) {
			watch_message_refused(c, "unknown key; expected op, "
					      "address, ttl, origin");
			return;
		}
	}
	if (op == NULL || addr == NULL || origin == NULL ||
	    (strcmp(op, "watch") != 0 && strcmp(op, "unwatch") != 0) ||
	    (ttl && (!json_is_integer(ttl) || json_integer_value(ttl) < 1))) {
		watch_message_refused(c, "expected {\"op\": \"watch\" or "
				      "\"unwatch\", \"address\": ADDR[/LEN], "
				      "\"ttl\": SECONDS (optional), \"origin\": "
				      "NAME (optional)}");
		return;
	}
	req.ttl = ttl ? json_integer_value(ttl) : 0;
	if (strcmp(op, "watch") == 0)
		pending = core_watch_add(c, origin, &req, 1, &res,
					 watch_message_done, c);
	else
		pending = core_watch_del(c, o ? origin : NULL, &addr, 1, &res,
					 watch_message_done, c);
	if (!pending && res.status != CORE_WATCH_OK &&
	    res.status != CORE_WATCH_NOT_FOUND)
		watch_message_refused(c, res.error);
}

void core_message(struct core *c, const char *channel, const char *payload,
		  size_t len)
{
	char cbuf[DIAG_VALUE_MAX + 8];
	json_t *msg;

	debug(c, "trigger on channel %s (%zu bytes)",
	      diag_string(cbuf, sizeof(cbuf), channel), len);
	if (c->auth) {
		enum auth_result r = auth_verify(c->auth, payload, len,
						 time(NULL), &payload, &len);

		if (r != AUTH_OK) {
			refuse(c, r, channel);
			return;
		}
	}
	/* As in the reference, a payload means nothing, except
	 * {"address": "..."}: then only that entry's mapping moves (an
	 * intrusion detector naming the scanner it saw). */
	msg = len < WATCH_MESSAGE_MAX && len > 0 && payload[0] == '{' ?
	      json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
	/* A watch message is never a trigger: one too long to parse, or
	 * not JSON, is refused (a runtime entry's message is short). */
	if (msg == NULL && len > 0 && payload[0] == '{' &&
	    memmem(payload, len, "\"op\"", 4)) {
		watch_message_refused(c, len >= WATCH_MESSAGE_MAX ?
				      "a message with \"op\" of 4096 bytes "
				      "or more" : "a message with \"op\" that "
				      "is not JSON");
		return;
	}
	if (msg) {
		const char *ip = json_string_value(json_object_get(msg, "address"));

		if (json_object_get(msg, "op")) {
			watch_message(c, msg);
			json_decref(msg);
			return;
		}
		if (ip && json_object_size(msg) == 1) {
			core_trigger_address(c, ip, SRC_REDIS);
			json_decref(msg);
			return;
		}
		json_decref(msg);
	}
	core_trigger(c, SRC_REDIS);
}

/* untrack_unwatched "auto": how often porthopd looks whether someone
 * committed, while unwatched clients are untracked.  A table that starts
 * using conntrack (a firewall loaded, Docker started) sees unwatched
 * clients untracked until then: its `ct state established` rules miss
 * their replies.  A look is one netlink round trip. */
#define UNTRACK_WATCH_MS 250

unsigned core_untrack_watch_ms(const struct core *c)
{
	const struct config *cfg = engine_config(c->engine);

	return config_mode(cfg) == CONFIG_MODE_NATIVE &&
	       config_untrack(cfg) == CONFIG_UNTRACK_AUTO ? UNTRACK_WATCH_MS : 0;
}

void core_redis_event(struct core *c, enum bus_event ev, const char *detail,
		      unsigned retry_ms, uint64_t connections)
{
	const struct config *cfg = engine_config(c->engine);
	char dbuf[512];	/* a Redis server's words, escaped */

	switch (ev) {
	case BUS_UP:
		info(c, "redis %s:%d: subscribed to %zu channel%s",
		     config_redis_host(cfg), config_redis_port(cfg),
		     config_channel_count(cfg),
		     config_channel_count(cfg) == 1 ? "" : "s");
		/* Messages published while we were away are lost (pub/sub
		 * is at most once): catch up with one shuffle. */
		if (connections > 1 && config_daemon(cfg)->shuffle_on_reconnect)
			core_trigger(c, SRC_RECONNECT);
		break;
	case BUS_DOWN:
		warn(c, "redis %s:%d: %s; retrying (next in %u ms), rules in "
		     "force stay", config_redis_host(cfg),
		     config_redis_port(cfg),
		     diag_line(dbuf, sizeof(dbuf), detail), retry_ms);
		break;
	case BUS_RETRY:
		debug(c, "redis %s:%d: %s; next attempt in %u ms",
		      config_redis_host(cfg), config_redis_port(cfg),
		      diag_line(dbuf, sizeof(dbuf), detail), retry_ms);
		break;
	}
}

/* Says what engine_untrack_check (r, err) did. */
static void report_untrack(struct core *c, int r, const char *err)
{
	const struct engine_stats *st = engine_stats(c->engine);

	if (r < 0)
		warn(c, "conntrack: turning untrack_unwatched's rules %s "
		     "failed: %s", st->untracking ? "off" : "on",
		     err ? err : "?");
	else if (r > 0 && st->untracking)
		info(c, "conntrack: no other table uses connection tracking "
		     "now; unwatched clients are untracked");
	else if (r > 0)
		warn(c, "conntrack: %s uses connection tracking; unwatched "
		     "clients are tracked again", st->conntrack_user);
}

/* After a start or reload: whether unwatched clients are tracked, and
 * why, unless untrack_unwatched is false. */
void core_report_untrack_state(struct core *c)
{
	const struct config *cfg = engine_config(c->engine);
	const struct engine_stats *st = engine_stats(c->engine);

	if (config_mode(cfg) != CONFIG_MODE_NATIVE ||
	    config_untrack(cfg) == CONFIG_UNTRACK_OFF)
		return;
	if (st->untracking)
		info(c, "unwatched clients are untracked (untrack_unwatched "
		     "%s)", config_untrack(cfg) == CONFIG_UNTRACK_ON ? "true" :
		     "\"auto\": no other table uses connection tracking");
	else if (config_untrack(cfg) == CONFIG_UNTRACK_AUTO)
		info(c, "unwatched clients are tracked: %s uses connection "
		     "tracking (untrack_unwatched \"auto\")",
		     st->conntrack_user);
}

void core_untrack_look(struct core *c, bool all)
{
	char *err = NULL;
	int r;

	r = engine_untrack_check(c->engine, all, &err);
	report_untrack(c, r, err);
	free(err);
}

void core_reconcile(struct core *c)
{
	const struct engine_stats *st = engine_stats(c->engine);
	uint64_t checks = st->checks;
	char *err = NULL;
	int r;

	/* The urgent look first: a large table's check below can take a
	 * few hundred milliseconds. */
	core_untrack_look(c, false);
	r = engine_reconcile(c->engine, &err);
	if (r == 0 && st->checks != checks)
		debug(c, "reconcile: someone else committed; our rules are "
		      "intact (checked in %.1f ms%s)", st->last_check_ms,
		      st->check_continues ? "; more of the maps next time" : "");
	if (r < 0)
		warn(c, "reconcile: the rules in force could not be restored: "
		     "%s", err ? err : "?");
	else if (r > 0)
		warn(c, "reconcile: the rules in force had been removed or "
		     "altered; applied again (%.1f ms)", st->last_apply_ms);
	free(err);
	core_untrack_look(c, true);
	/* Someone else's commit stopped the staging: it starts over. */
	stage_kick(c);
}

void core_stop(struct core *c)
{
	const struct config *cfg = engine_config(c->engine);
	bool untracking = engine_stats(c->engine)->untracking;
	char *err = NULL;
	int r = engine_stop(c->engine, &err);

	if (config_mode(cfg) != CONFIG_MODE_NATIVE ||
	    !config_remove_on_stop(cfg)) {
		if (r < 0)
			warn(c, "taking untrack_unwatched's rules out failed: "
			     "%s", err ? err : "?");
		info(c, "the rules in force stay in the kernel%s",
		     untracking && r == 0 &&
		     !engine_stats(c->engine)->untracking ?
		     ", unwatched clients tracked (untrack_unwatched \"auto\" "
		     "has nobody to watch for other users of conntrack)" : "");
	} else if (r < 0) {
		warn(c, "removing table inet %s failed: %s",
		     config_table_name(cfg), err ? err : "?");
	} else if (r > 0) {
		info(c, "table inet %s was gone already", config_table_name(cfg));
	} else {
		info(c, "table inet %s removed", config_table_name(cfg));
	}
	free(err);
}

const char *core_status_line(struct core *c, char *buf, size_t len)
{
	const struct engine_stats *st = engine_stats(c->engine);

	snprintf(buf, len, "%zu pairs, %llu shuffles, %llu failures",
		 st->last_pairs, (unsigned long long)st->shuffles,
		 (unsigned long long)st->failures);
	return buf;
}

const struct config *core_config(const struct core *c)
{
	return engine_config(c->engine);
}

const struct engine *core_engine(const struct core *c)
{
	return c->engine;
}

const struct core_counters *core_counters(const struct core *c)
{
	return &c->counters;
}

const char *core_config_path(const struct core *c)
{
	return c->config_path;
}

bool core_authenticated(const struct core *c)
{
	return c->auth != NULL;
}

const struct core_hooks *core_hooks(const struct core *c)
{
	return &c->hooks;
}

double core_start_time(const struct core *c)
{
	return c->start_time;
}

void core_metrics_snapshot(struct core *c, struct metrics_snapshot *m)
{
	const struct engine_stats *st = engine_stats(c->engine);
	const struct config *cfg = engine_config(c->engine);

	memset(m, 0, sizeof(*m));
	m->version = PORTHOP_VERSION;
	m->mode = config_mode(cfg) == CONFIG_MODE_NATIVE ? "native" : "template";
	m->shuffles = st->shuffles;
	m->failures = st->failures;
	m->reconciliations = st->repairs;
	m->checks = st->checks;
	m->last_check_seconds = st->last_check_ms / 1e3;
	m->untracking = config_mode(cfg) != CONFIG_MODE_NATIVE ? -1 :
			st->untracking;
	m->untrack_switches = st->untrack_switches;
	m->prestage = config_mode(cfg) != CONFIG_MODE_NATIVE ? -1 :
		      st->prestage;
	m->standby_ready = st->standby_ready;
	m->prestage_switches = st->switches;
	m->prestage_fallbacks = st->fallbacks;
	m->last_stage_seconds = st->last_stage_ms / 1e3;
	m->pairs = engine_map(c->engine) ? st->last_pairs : 0;
	m->watched = config_watched_count(cfg);
	m->redis_connected = -1;
	memcpy(m->triggers, c->counters.by_source, sizeof(m->triggers));
	memcpy(m->refused, c->counters.refused, sizeof(m->refused));
	m->apply = &c->apply_hist;
	m->start_time = c->start_time;
	m->last_shuffle_time = st->shuffles ? (double)st->last_time.tv_sec +
			       (double)st->last_time.tv_nsec / 1e9 : 0;
	if (config_mode(cfg) == CONFIG_MODE_NATIVE && c->watchlist) {
		struct statefile_stats ss;

		m->watch = c->watchlist;
		core_watch_stats(c, &ss);
		m->state_file = c->state != NULL;
		m->state_syncs = ss.syncs;
		m->state_commit_failures = ss.commit_failures;
	}
	if (core_events_on(c))
		m->events = core_event_stats(c);
	if (core_knock_on(c))
		m->knock = core_knock_stats(c);
	if (c->hooks.metrics)
		c->hooks.metrics(c->hooks.arg, m);
}
