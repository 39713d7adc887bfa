/*
 * core_reload: what changes porthopd's configuration.  Loading and
 * checking a configuration, a reload (at once, or queued inside
 * min_shuffle_interval_ms and checked again when its turn comes), the
 * trigger key's verifier kept across reloads that keep the key, and the
 * claim on a table moved with it.  See core.h for the contract.
 */
#include "core_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "diag.h"

static int reload_with(struct core *c, struct config *cfg, char **ret_error);
static int recheck(struct core *c, struct config *cfg);

static void load_say(void (*log)(void *, enum core_level, const char *),
		     void *arg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void load_say(void (*log)(void *, enum core_level, const char *),
		     void *arg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	core_vsay(log, arg, CORE_WARN, fmt, ap);
	va_end(ap);
}

/* Where core_load's diagnostics go. */
struct load_log {
	void (*log)(void *, enum core_level, const char *);
	void *arg;
};

static void report_diag_line(void *arg, const char *text)
{
	struct load_log *to = arg;

	to->log(to->arg, CORE_WARN, text);
}

struct config *core_load(struct nftio *io, const char *path,
			 void (*log)(void *, enum core_level, const char *),
			 void *arg, char **ret_error)
{
	struct diag *d = diag_new();
	struct load_log to = { log, arg };
	struct config *c;

	if (d == NULL)
		return NULL;
	c = config_load(path, 0, d);
	if (c && check_config(c, io, d) < 0) {
		config_free(c);
		c = NULL;
	}
	diag_report(d, report_diag_line, &to);
	if (c == NULL) {
		load_say(log, arg, "%s: %zu error%s; configuration refused",
			 path, diag_errors(d), diag_errors(d) == 1 ? "" : "s");
		if (ret_error && diag_first_error(d))
			*ret_error = strdup(diag_first_error(d));
	}
	diag_free(d);
	return c;
}

/* The verifier of cfg's trigger key: the one in force if the key is the
 * same (it keeps the nonces it has seen, so a trigger captured before a
 * reload is still a replay after it), else a new one; NULL without a key.
 * Returns 0 or -ENOMEM. */
int core_prepare_auth(struct core *c, const struct config *cfg,
		      struct auth **ret)
{
	const struct config_daemon *d = config_daemon(cfg);

	*ret = NULL;
	if (d->trigger_key == NULL)
		return 0;
	if (c->auth && auth_same_key(c->auth, d->trigger_key,
				     d->trigger_key_len)) {
		*ret = c->auth;
		return 0;
	}
	/* A window's worth of triggers at a thousand a second. */
	*ret = auth_new(d->trigger_key, d->trigger_key_len,
			d->trigger_window_s, 1000 * (size_t)d->trigger_window_s);
	return *ret ? 0 : -ENOMEM;
}

/* Puts a (from core_prepare_auth) in force under cfg. */
static void adopt_auth(struct core *c, const struct config *cfg,
		       struct auth *a)
{
	const struct config_daemon *d = config_daemon(cfg);

	if (a != c->auth)
		auth_free(c->auth);
	c->auth = a;
	if (a && auth_set_window(a, d->trigger_window_s,
				 1000 * (size_t)d->trigger_window_s) < 0)
		warn(c, "reload: out of memory resizing the replay table; "
		     "trigger_window_seconds keeps its previous bound");
}

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* Whether the two configurations subscribe the same way. */
/* The fleet stream: what the consumer reads with (publishers' settings
 * aside). */
static bool same_stream(const struct config_stream *a,
			const struct config_stream *b)
{
	return same_str(a->stream, b->stream) && same_str(a->group, b->group) &&
	       a->resync_interval_s == b->resync_interval_s &&
	       a->batch == b->batch;
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
	    x->retry_max_ms != y->retry_max_ms ||
	    !same_str(x->master_name, y->master_name) ||
	    x->nsentinels != y->nsentinels ||
	    !same_stream(config_stream(a), config_stream(b)))
		return false;
	for (size_t i = 0; i < x->nsentinels; i++)
		if (strcmp(x->sentinels[i].host, y->sentinels[i].host) != 0 ||
		    x->sentinels[i].port != y->sentinels[i].port)
			return false;
	for (size_t i = 0; i < config_channel_count(a); i++)
		if (strcmp(config_channel(a, i), config_channel(b, i)) != 0)
			return false;
	return true;
}

static void core_log_cb(void *arg, enum core_level level, const char *line)
{
	struct core *c = arg;

	c->hooks.log(c->hooks.arg, level, line);
}

/* A queued reload's configuration checked again when its turn comes
 * (consumed on failure, said).  Returns 0 or -1. */
static int recheck(struct core *c, struct config *cfg)
{
	struct diag *d = diag_new();
	struct load_log to = { c->hooks.log, c->hooks.arg };
	int r = d ? check_config(cfg, c->io, d) : -ENOMEM;

	if (d)
		diag_report(d, report_diag_line, &to);
	diag_free(d);
	if (r == 0)
		return 0;
	warn(c, "queued reload refused when its turn came; the running "
	     "configuration and its rules stay in force");
	config_free(cfg);
	return -1;
}

/* Puts cfg (loaded and checked; consumed) in force. */
static int reload_with(struct core *c, struct config *cfg, char **ret_error)
{
	uint64_t repairs = engine_stats(c->engine)->repairs;
	struct instance *claim = NULL;
	struct auth *auth = NULL;
	unsigned changes;
	size_t no_room;
	char *err = NULL;
	int r;

	/* Before anything changes: without its verifier, signed triggers
	 * could not be checked (and must never be taken unsigned). */
	if (core_prepare_auth(c, cfg, &auth) < 0) {
		warn(c, "reload refused: out of memory for trigger "
		     "authentication; the running configuration stays");
		if (ret_error)
			*ret_error = strdup("reload refused: out of memory for "
					    "trigger authentication");
		config_free(cfg);
		return -ENOMEM;
	}
	/* A new table (or mode) is claimed before it is touched. */
	if (c->claim && !instance_same(c->claim, cfg) &&
	    (claim = instance_reclaim(c->run_dir, cfg, c->claim, &err)) == NULL) {
		warn(c, "reload refused, the running configuration stays: %s",
		     err ? err : "out of memory");
		if (auth != c->auth)
			auth_free(auth);
		if (ret_error)
			*ret_error = err;
		else
			free(err);
		config_free(cfg);
		return -EINVAL;
	}
	changes = same_redis(cfg, engine_config(c->engine)) ? 0 :
		  CORE_CHANGED_REDIS;
	/* The runtime entries stay watched across the reload; a
	 * configuration without room for them all is refused (the entries
	 * would stay listed, out of force, until a restart). */
	if (core_watch_merge(c, cfg, &no_room) < 0 || no_room > 0) {
		r = no_room ? -EINVAL : -ENOMEM;
		if (no_room && asprintf(&err, "reload refused, the running "
					"configuration stays: it has no room "
					"for %zu runtime entr%s (see the lines "
					"above); expected a map_capacity or "
					"max_port_number that holds them, or "
					"fewer entries (porthop watch del)",
					no_room, no_room == 1 ? "y" : "ies") < 0)
			err = NULL;
		warn(c, "%s", err ? err : "reload refused: out of memory for "
		     "the runtime entries; the running configuration stays");
		instance_free(claim);
		if (auth != c->auth)
			auth_free(auth);
		if (ret_error)
			*ret_error = err ? err :
				     strdup("reload refused: out of memory");
		else
			free(err);
		config_free(cfg);
		return r;
	}
	if (c->hooks.reloading)
		c->hooks.reloading(c->hooks.arg, true);
	r = engine_reload(c->engine, cfg, &err);
	if (c->hooks.reloading)
		c->hooks.reloading(c->hooks.arg, false);
	if (r < 0) {
		instance_free(claim);
		if (auth != c->auth)
			auth_free(auth);
		warn(c, "reload: applying the new configuration failed, the "
		     "old one stays in force: %s", err ? err : "?");
		if (ret_error)
			*ret_error = err;
		else
			free(err);
		config_free(cfg);
		return -EIO;
	}
	core_observe(c);
	core_report_repair(c, repairs, "reload");
	/* The reload drew a fresh mapping for every entry: what triggers
	 * asked for is served, and their indexes meant the old list. */
	trigger_queue_clear(c->queue);
	clock_gettime(CLOCK_MONOTONIC, &c->last_shuffle);
	info(c, "reload applied: %zu watched addresses, %zu pairs",
	     config_watched_count(cfg), config_pair_count(cfg));
	core_report_untrack_state(c);
	if (core_events_setup(c) < 0)
		warn(c, "events: out of memory after the reload; the feed is "
		     "off until the next one");
	if (core_knock_setup(c) < 0)
		warn(c, "knock: out of memory after the reload; knocks are "
		     "refused until the next one");
	adopt_auth(c, cfg, auth);
	if (claim) {
		instance_free(c->claim);
		c->claim = claim;
	}
	if (c->hooks.reloaded)
		c->hooks.reloaded(c->hooks.arg, changes);
	return 0;
}

int core_reload(struct core *c, enum metrics_source source, char **ret_error)
{
	struct config *cfg;
	long long wait;

	info(c, "reloading %s (%s)", c->config_path,
	     metrics_source_name(source));
	cfg = core_load(c->io, c->config_path, core_log_cb, c, ret_error);
	if (cfg == NULL) {
		/* The newest word: an earlier reload still queued goes too. */
		config_free(c->pending_reload);
		c->pending_reload = NULL;
		warn(c, "reload refused; the running configuration and its "
		     "rules stay in force");
		return -EINVAL;
	}
	/* A reload draws a mapping for every entry: a shuffle like any
	 * other, kept min_shuffle_interval_ms from the last one.  Checked
	 * now (errors said at once), applied when the pending shuffle runs;
	 * a later reload replaces it. */
	wait = core_wait_ms(c);
	if (wait > 0) {
		config_free(c->pending_reload);
		c->pending_reload = cfg;
		info(c, "reload queued: applied in %lld ms "
		     "(min_shuffle_interval_ms)", wait);
		core_schedule(c);
		return 1;
	}
	config_free(c->pending_reload);
	c->pending_reload = NULL;
	return reload_with(c, cfg, ret_error);
}

int core_apply_pending_reload(struct core *c, char **ret_error)
{
	struct config *cfg = c->pending_reload;

	c->pending_reload = NULL;
	/* What was checked when it was asked for may not hold any more (a
	 * table of its name made meanwhile): checked again. */
	if (recheck(c, cfg) < 0)
		return -1;
	return reload_with(c, cfg, ret_error) < 0 ? -1 : 0;
}
