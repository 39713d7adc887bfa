/*
 * config_redis: the two Redis sections, "redis_connection_configuration"
 * (where the server is, how to log in, how long to wait) and
 * "redis_subscriber_configuration" (the channels whose messages trigger a
 * shuffle).
 */
#include "config_private.h"

#include <stdlib.h>
#include <string.h>

static const char *const redis_keys[] = {
	"host", "port", "db", "charset", "decode_responses",
	"password", "username", "unix_socket", "connect_timeout_ms",
	"retry_max_ms", "sentinels", "master_name", NULL
};
static const char *const subscriber_keys[] = {
	"subscriber_channel_names", NULL
};

int walk_redis(struct walk *w, struct config *c, const json_t *root)
{
	const char *p = "redis_connection_configuration";
	json_t *o = walk_require(w, root, "", p, "an object with host, port, "
				 "db, charset and decode_responses");
	json_t *v;
	char vbuf[DIAG_VALUE_MAX + 8], cpath[DIAG_PATH_MAX];
	char *password = NULL, *username = NULL, *unix_socket = NULL;
	int r = 0;

	if (o == NULL || !walk_object(w, o, p, redis_keys))
		return -1;
	r |= walk_string(w, o, p, "host", &c->redis_host);
	r |= walk_int(w, o, p, "port", 1, 65535, "a TCP port", &c->redis_port);
	/* db selects a keyspace; pub/sub channels are global to the server,
	 * so it is validated and otherwise ignored. */
	r |= walk_int(w, o, p, "db", 0, 2147483647, "a database number", NULL);
	/* Messages are never decoded (the payload is not interpreted), so
	 * charset and decode_responses are validated and ignored. */
	r |= walk_string(w, o, p, "charset", NULL);
	v = walk_require(w, o, p, "decode_responses", "a boolean");
	if (v && !json_is_boolean(v)) {
		diag_error(w->d, "%s: %s: %s is %s; expected a boolean",
			   w->file,
			   diag_path_key(cpath, sizeof(cpath), p,
					 "decode_responses"),
			   diag_value(vbuf, sizeof(vbuf), v),
			   diag_type_name(v));
		r = -1;
	}
	r |= walk_opt_string(w, o, p, "password", &password);
	r |= walk_opt_string(w, o, p, "username", &username);
	r |= walk_opt_string(w, o, p, "unix_socket", &unix_socket);
	/* Owned by the configuration from here on (config_free). */
	c->redis_extra.password = password;
	c->redis_extra.username = username;
	c->redis_extra.unix_socket = unix_socket;
	c->redis_extra.connect_timeout_ms = 5000;
	c->redis_extra.retry_max_ms = 30000;
	r |= walk_opt_int(w, o, p, "connect_timeout_ms", 100, 600000,
			  "a timeout in milliseconds",
			  &c->redis_extra.connect_timeout_ms);
	r |= walk_opt_int(w, o, p, "retry_max_ms", 250, 3600000,
			  "the longest delay between reconnection attempts in "
			  "milliseconds", &c->redis_extra.retry_max_ms);
	r |= walk_sentinels(w, c, o, p);
	if (username && !password) {
		diag_error(w->d, "%s: %s.username: is set without a password; "
			   "expected password as well (ACL users authenticate "
			   "with both)", w->file, p);
		r = -1;
	}
	return r ? -1 : 0;
}

int walk_subscriber(struct walk *w, struct config *c, const json_t *root)
{
	const char *p = "redis_subscriber_configuration";
	char path[DIAG_PATH_MAX], cpath[DIAG_PATH_MAX];
	char vbuf[DIAG_VALUE_MAX + 8];
	json_t *o, *arr, *e;
	size_t i;
	int r = 0;

	o = walk_require(w, root, "", p, "an object with subscriber_channel_names");
	if (o == NULL || !walk_object(w, o, p, subscriber_keys))
		return -1;
	arr = walk_require(w, o, p, "subscriber_channel_names",
			   "an array of channel names");
	if (arr == NULL)
		return -1;
	diag_path_key(path, sizeof(path), p, "subscriber_channel_names");
	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > CONFIG_MAX_CHANNELS) {
		diag_error(w->d, "%s: %s: %s is %s; expected an array of 1 to "
			   "%d channel names", w->file, path,
			   diag_value(vbuf, sizeof(vbuf), arr),
			   json_is_array(arr) ? "of the wrong size" :
						diag_type_name(arr),
			   CONFIG_MAX_CHANNELS);
		return -1;
	}
	c->channels = calloc(json_array_size(arr), sizeof(char *));
	if (c->channels == NULL)
		return -1;
	json_array_foreach(arr, i, e) {
		bool dup = false;

		diag_path_index(cpath, sizeof(cpath), path, i);
		if (!json_is_string(e) || json_string_length(e) == 0 ||
		    json_string_length(e) > CONFIG_MAX_STRING ||
		    strlen(json_string_value(e)) != json_string_length(e)) {
			diag_error(w->d, "%s: %s: %s is not a valid channel "
				   "name; expected a non-empty string of at "
				   "most %d bytes", w->file, cpath,
				   diag_value(vbuf, sizeof(vbuf), e),
				   CONFIG_MAX_STRING);
			r = -1;
			continue;
		}
		for (size_t j = 0; j < c->nchannels; j++)
			if (strcmp(c->channels[j], json_string_value(e)) == 0)
				dup = true;
		if (dup) {
			diag_error(w->d, "%s: %s: %s appears more than once; "
				   "expected each channel once", w->file, cpath,
				   diag_value(vbuf, sizeof(vbuf), e));
			r = -1;
			continue;
		}
		c->channels[c->nchannels] = strdup(json_string_value(e));
		if (c->channels[c->nchannels] == NULL)
			return -1;
		c->nchannels++;
	}
	return r;
}
