/*
 * config_daemon: the optional "porthopd" section, porthopd's own settings:
 * reconciliation and the pace of shuffles, the control socket and the
 * group that may use it, the trigger key, the metrics textfile.
 */
#include "config_private.h"

#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

static const char *const daemon_keys[] = {
	"reconcile_interval_seconds", "min_shuffle_interval_ms",
	"shuffle_on_reconnect", "trigger_key_file", "trigger_window_seconds",
	"control_socket", "control_group", "metrics_textfile",
	"metrics_interval_seconds", "state_directory", "max_runtime_entries",
	"min_prefix_len_v4", "min_prefix_len_v6", "max_ttl_seconds", "events",
	"autowatch", "knock", NULL
};

/* The runtime watch list: where its entries are kept ("" keeps them in
 * memory only) and its limits. */
static int walk_runtime(struct walk *w, struct config *c, const json_t *o,
			const char *p)
{
	char vbuf[DIAG_VALUE_MAX + 8];
	json_t *v = json_object_get(o, "state_directory");
	int r = 0;

	if (v) {
		char *s = NULL;

		if (json_is_string(v) && json_string_length(v) == 0)
			s = strdup("");
		else if (walk_string(w, o, p, "state_directory", &s) == 0 &&
			 s[0] != '/') {
			diag_error(w->d, "%s: porthopd.state_directory: %s is not "
				   "an absolute path; expected e.g. \""
				   CONFIG_DEFAULT_STATE_DIRECTORY "\" (or \"\" "
				   "to keep runtime entries in memory only)",
				   w->file, diag_string(vbuf, sizeof(vbuf), s));
			r = -1;
		}
		if (s == NULL)
			r = -1;
		else {
			free((void *)c->daemon.state_directory);
			c->daemon.state_directory = s;
		}
	}
	r |= walk_opt_int(w, o, p, "max_runtime_entries", 0, CONFIG_MAX_WATCHED,
			  "the most runtime watch entries kept at once",
			  &c->daemon.max_runtime_entries);
	r |= walk_opt_int(w, o, p, "min_prefix_len_v4", 0, 32,
			  "the shortest IPv4 prefix a runtime entry may have",
			  &c->daemon.min_prefix_len_v4);
	r |= walk_opt_int(w, o, p, "min_prefix_len_v6", 0, 128,
			  "the shortest IPv6 prefix a runtime entry may have",
			  &c->daemon.min_prefix_len_v6);
	r |= walk_opt_int(w, o, p, "max_ttl_seconds", 1, 315360000,
			  "the longest TTL of a runtime entry in seconds",
			  &c->daemon.max_ttl_s);
	return r;
}

/* control_socket ("" turns the socket off) and control_group. */
static int walk_control(struct walk *w, struct config *c, const json_t *o,
			const char *p)
{
	char vbuf[DIAG_VALUE_MAX + 8];
	int r = 0;

	if (json_object_get(o, "control_socket")) {
		json_t *v = json_object_get(o, "control_socket");
		char *s = NULL;

		/* An empty string turns the socket off. */
		if (json_is_string(v) && json_string_length(v) == 0)
			s = strdup("");
		else if (walk_string(w, o, p, "control_socket", &s) == 0 &&
			 (s[0] != '/' || strlen(s) > 107)) {
			diag_error(w->d, "%s: porthopd.control_socket: %s is not "
				   "an absolute path of at most 107 bytes; expected "
				   "e.g. \"" CONFIG_DEFAULT_CONTROL_SOCKET "\"",
				   w->file, diag_string(vbuf, sizeof(vbuf), s));
			r = -1;
		}
		/* The default, replaced (walk_daemon's strdup). */
		free((void *)c->daemon.control_socket);
		c->daemon.control_socket = s;
	}
	if (json_object_get(o, "control_group")) {
		char *g = NULL;

		if (walk_string(w, o, p, "control_group", &g) == 0) {
			struct group *gr = getgrnam(g);

			if (gr == NULL) {
				diag_error(w->d, "%s: porthopd.control_group: %s "
					   "is not a group of this system; expected "
					   "a group name from /etc/group", w->file,
					   diag_string(vbuf, sizeof(vbuf), g));
				r = -1;
			} else {
				c->daemon.control_gid = gr->gr_gid;
			}
		} else {
			r = -1;
		}
		free(g);
	}
	return r;
}

/* metrics_textfile, an absolute path, and metrics_interval_seconds. */
static int walk_metrics(struct walk *w, struct config *c, const json_t *o,
			const char *p)
{
	char vbuf[DIAG_VALUE_MAX + 8], *m = NULL;
	int r = 0;

	if (walk_opt_string(w, o, p, "metrics_textfile", &m) < 0)
		r = -1;
	else if (m && m[0] != '/') {
		diag_error(w->d, "%s: porthopd.metrics_textfile: %s is not an "
			   "absolute path; expected e.g. \"/var/lib/"
			   "prometheus/node-exporter/porthop.prom\"", w->file,
			   diag_string(vbuf, sizeof(vbuf), m));
		r = -1;
	}
	c->daemon.metrics_textfile = m;
	r |= walk_opt_int(w, o, p, "metrics_interval_seconds", 1, 86400,
			  "seconds between writes of the metrics textfile",
			  &c->daemon.metrics_interval_s);
	return r;
}

/* trigger_key_file: the key itself, checked and read by auth. */
static int walk_trigger_key(struct walk *w, struct config *c,
			    const json_t *o, const char *p)
{
	char *path = NULL, label[DIAG_PATH_MAX + 256];
	unsigned char *key = NULL;
	size_t len = 0;
	int r = 0;

	if (json_object_get(o, "trigger_key_file") == NULL)
		return 0;
	if (walk_string(w, o, p, "trigger_key_file", &path) == 0) {
		snprintf(label, sizeof(label), "%s: porthopd.trigger_key_file",
			 w->file);
		if (auth_load_key(path, label, w->d, &key, &len) < 0)
			r = -1;
		c->daemon.trigger_key = key;
		c->daemon.trigger_key_len = len;
	} else {
		r = -1;
	}
	free(path);
	return r;
}

int walk_daemon(struct walk *w, struct config *c, const json_t *root)
{
	const char *p = "porthopd";
	json_t *o = json_object_get(root, p);
	int r = 0;

	c->daemon.reconcile_interval_s = 5;
	c->daemon.min_shuffle_interval_ms = 0;
	c->daemon.shuffle_on_reconnect = true;
	c->daemon.trigger_window_s = 30;
	c->daemon.control_gid = (gid_t)-1;
	c->daemon.metrics_interval_s = 15;
	c->daemon.control_socket = strdup(CONFIG_DEFAULT_CONTROL_SOCKET);
	c->daemon.state_directory = strdup(CONFIG_DEFAULT_STATE_DIRECTORY);
	c->daemon.max_runtime_entries = CONFIG_MAX_WATCHED;
	c->daemon.min_prefix_len_v4 = 16;
	c->daemon.min_prefix_len_v6 = 32;
	c->daemon.max_ttl_s = 31536000;
	config_events_defaults(c);
	config_knock_defaults(c);
	if (c->daemon.control_socket == NULL ||
	    c->daemon.state_directory == NULL)
		return -1;
	if (o == NULL)
		return 0;
	if (!walk_object(w, o, p, daemon_keys))
		return -1;
	r |= walk_opt_int(w, o, p, "reconcile_interval_seconds", 0, 86400,
			  "seconds between checks of the rules in force (0: never)",
			  &c->daemon.reconcile_interval_s);
	r |= walk_opt_int(w, o, p, "min_shuffle_interval_ms", 0, 3600000,
			  "the least time between two shuffles in milliseconds",
			  &c->daemon.min_shuffle_interval_ms);
	r |= walk_opt_bool(w, o, p, "shuffle_on_reconnect",
			   &c->daemon.shuffle_on_reconnect);
	r |= walk_opt_int(w, o, p, "trigger_window_seconds", 1, 3600,
			  "the accepted age of a signed trigger in seconds",
			  &c->daemon.trigger_window_s);
	r |= walk_control(w, c, o, p);
	r |= walk_metrics(w, c, o, p);
	r |= walk_trigger_key(w, c, o, p);
	r |= walk_runtime(w, c, o, p);
	r |= walk_events(w, c, o);
	r |= walk_knock(w, c, o);
	return r;
}
