/*
 * config_stream: the fleet's parts of the configuration: the optional
 * "redis_stream_configuration" object (the stream, this host's consumer
 * group, trimming, what publishers wait for, the snapshot's re-read) and
 * the connection object's "sentinels" and "master_name".
 */
#include "config_private.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const stream_keys[] = {
	"stream", "group", "maxlen", "wait_replicas", "wait_timeout_ms",
	"resync_interval_seconds", "batch", "read_interval_ms", NULL
};
static const char *const sentinel_keys[] = { "host", "port", NULL };

/* Stream and group names: what a Redis key or group name may safely be
 * in logs and in the snapshot's key names. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("_.:-", *s)))
			return false;
	return true;
}

static int walk_name(struct walk *w, const json_t *o, const char *p,
		     const char *key, char **ret)
{
	char cpath[DIAG_PATH_MAX], vbuf[DIAG_VALUE_MAX + 8];
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return 0;
	if (!json_is_string(v) || !name_ok(json_string_value(v)) ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		diag_error(w->d, "%s: %s: %s is not a valid name; expected 1 "
			   "to 64 characters A-Z, a-z, 0-9, '_', '.', ':', '-'",
			   w->file, diag_path_key(cpath, sizeof(cpath), p, key),
			   diag_value(vbuf, sizeof(vbuf), v));
		return -1;
	}
	*ret = strdup(json_string_value(v));
	return *ret ? 0 : -1;
}

int walk_stream(struct walk *w, struct config *c, const json_t *root)
{
	const char *p = "redis_stream_configuration";
	const json_t *o = json_object_get(root, p);
	char *stream = NULL, *group = NULL, host[HOST_NAME_MAX + 1];
	int r = 0;

	c->stream.maxlen = 100000;
	c->stream.wait_replicas = 0;
	c->stream.wait_timeout_ms = 1000;
	c->stream.resync_interval_s = 300;
	c->stream.batch = 256;
	c->stream.read_interval_ms = STREAM_READ_INTERVAL_DEFAULT_MS;
	if (o == NULL)
		return 0;
	if (!walk_object(w, o, p, stream_keys))
		return -1;
	if (walk_require(w, o, p, "stream", "a stream name") == NULL)
		r = -1;
	r |= walk_name(w, o, p, "stream", &stream);
	r |= walk_name(w, o, p, "group", &group);
	r |= walk_opt_int(w, o, p, "maxlen", 10, 1000000000,
			  "the stream's approximate length (MAXLEN ~)",
			  &c->stream.maxlen);
	r |= walk_opt_int(w, o, p, "wait_replicas", 0, 16,
			  "the replicas a publisher waits for (WAIT)",
			  &c->stream.wait_replicas);
	r |= walk_opt_int(w, o, p, "wait_timeout_ms", 1, 600000,
			  "how long a publisher waits for them, in "
			  "milliseconds", &c->stream.wait_timeout_ms);
	r |= walk_opt_int(w, o, p, "resync_interval_seconds", 0, 86400,
			  "seconds between re-reads of the snapshot (0: never)",
			  &c->stream.resync_interval_s);
	r |= walk_opt_int(w, o, p, "batch", 1, 10000,
			  "entries per read", &c->stream.batch);
	r |= walk_opt_int(w, o, p, "read_interval_ms", 0, 1000,
			  "the least milliseconds between reads (0: none)",
			  &c->stream.read_interval_ms);
	/* The group defaults to the host's name: each host its own group,
	 * so that every host reads every entry. */
	if (group == NULL && gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		if (name_ok(host))
			group = strdup(host);
		else
			diag_error(w->d, "%s: %s.group: is not set and the host "
				   "name is not a valid group name; expected a "
				   "group name of 1 to 64 characters A-Z, a-z, "
				   "0-9, '_', '.', ':', '-'", w->file, p);
	}
	if (group == NULL)
		r = -1;
	c->stream.stream = stream;
	c->stream.group = group;
	return r;
}

int walk_sentinels(struct walk *w, struct config *c, const json_t *o,
		   const char *p)
{
	char path[DIAG_PATH_MAX], cpath[DIAG_PATH_MAX];
	char vbuf[DIAG_VALUE_MAX + 8];
	struct config_sentinel *s;
	json_t *arr = json_object_get(o, "sentinels"), *e;
	char *name = NULL;
	size_t i;
	int r = 0;

	r |= walk_opt_string(w, o, p, "master_name", &name);
	c->redis_extra.master_name = name;
	if (arr == NULL) {
		if (name) {
			diag_error(w->d, "%s: %s.master_name: is set without "
				   "sentinels; expected sentinels as well",
				   w->file, p);
			r = -1;
		}
		return r;
	}
	diag_path_key(path, sizeof(path), p, "sentinels");
	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > CONFIG_MAX_SENTINELS) {
		diag_error(w->d, "%s: %s: %s is %s; expected an array of 1 to "
			   "%d objects {\"host\": ..., \"port\": ...}", w->file,
			   path, diag_value(vbuf, sizeof(vbuf), arr),
			   json_is_array(arr) ? "of the wrong size" :
						diag_type_name(arr),
			   CONFIG_MAX_SENTINELS);
		return -1;
	}
	if (name == NULL) {
		diag_error(w->d, "%s: %s.sentinels: is set without master_name; "
			   "expected master_name, the name the sentinels "
			   "monitor the primary by", w->file, p);
		r = -1;
	}
	s = calloc(json_array_size(arr), sizeof(*s));
	if (s == NULL)
		return -1;
	c->redis_extra.sentinels = s;
	json_array_foreach(arr, i, e) {
		char *host = NULL;
		int port = 0;

		diag_path_index(cpath, sizeof(cpath), path, i);
		if (!walk_object(w, e, cpath, sentinel_keys)) {
			r = -1;
			continue;
		}
		if (walk_string(w, e, cpath, "host", &host) < 0 ||
		    walk_int(w, e, cpath, "port", 1, 65535, "a TCP port",
			     &port) < 0) {
			free(host);
			r = -1;
			continue;
		}
		s[c->redis_extra.nsentinels].host = host;
		s[c->redis_extra.nsentinels++].port = port;
	}
	return r;
}
