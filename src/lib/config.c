#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config_private.h"
#include "jsonfile.h"

static const char *const redis_keys[] = {
	"host", "port", "db", "charset", "decode_responses",
	"password", "username", "unix_socket", "connect_timeout_ms",
	"retry_max_ms", NULL
};
static const char *const subscriber_keys[] = {
	"subscriber_channel_names", NULL
};
static const char *const root_keys[] = {
	"redis_connection_configuration", "redis_subscriber_configuration",
	"nftables_service_configuration", "porthopd", NULL
};

static int parse_redis(struct walk *w, struct config *c, const json_t *root)
{
	const char *p = "redis_connection_configuration";
	json_t *o = walk_require(w, root, "", p, "an object with host, port, db, "
				 "charset and decode_responses");
	json_t *v;
	char vbuf[DIAG_VALUE_MAX + 8], cpath[DIAG_PATH_MAX];
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
	r |= walk_opt_string(w, o, p, "password", &c->redis_password);
	r |= walk_opt_string(w, o, p, "username", &c->redis_username);
	r |= walk_opt_string(w, o, p, "unix_socket", &c->redis_unix);
	c->redis_extra.connect_timeout_ms = 5000;
	c->redis_extra.retry_max_ms = 30000;
	r |= walk_opt_int(w, o, p, "connect_timeout_ms", 100, 600000,
			  "a timeout in milliseconds",
			  &c->redis_extra.connect_timeout_ms);
	r |= walk_opt_int(w, o, p, "retry_max_ms", 250, 3600000,
			  "the longest delay between reconnection attempts in "
			  "milliseconds", &c->redis_extra.retry_max_ms);
	if (c->redis_username && !c->redis_password) {
		diag_error(w->d, "%s: %s.username: is set without a password; "
			   "expected password as well (ACL users authenticate "
			   "with both)", w->file, p);
		r = -1;
	}
	c->redis_extra.password = c->redis_password;
	c->redis_extra.username = c->redis_username;
	c->redis_extra.unix_socket = c->redis_unix;
	return r ? -1 : 0;
}

static int parse_subscriber(struct walk *w, struct config *c,
			    const json_t *root)
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

static int load_rule_files(struct config *c, struct diag *d)
{
	struct walk w = { .d = d };
	json_t *root = NULL;
	json_t *v;
	int r = -1;

	w.file = c->startup_path;
	if (jsonfile_load(c->startup_path, CONFIG_MAX_RULES_SIZE, d, &root) == 0) {
		static const char *const keys[] = { "commands", NULL };

		if (walk_object(&w, root, "", keys) &&
		    (v = walk_require(&w, root, "", "commands",
				      "an array of nftables commands"))) {
			if (!json_is_array(v))
				diag_error(d, "%s: commands: is %s; expected an "
					   "array of nftables commands",
					   w.file, diag_type_name(v));
			else if (template_forbid_tokens(v, w.file, "commands",
							d) == 0)
				c->startup = json_incref(v);
			for (size_t i = 0; c->startup && i < json_array_size(v); i++)
				if (!json_is_object(json_array_get(v, i))) {
					diag_error(d, "%s: commands[%zu]: is %s; "
						   "expected an nftables command "
						   "object", w.file, i,
						   diag_type_name(json_array_get(v, i)));
					json_decref(c->startup);
					c->startup = NULL;
				}
		}
		json_decref(root);
		root = NULL;
	}
	w.file = c->rules_path;
	if (jsonfile_load(c->rules_path, CONFIG_MAX_RULES_SIZE, d, &root) == 0) {
		static const char *const keys[] = { "rules", NULL };

		if (walk_object(&w, root, "", keys) &&
		    (v = walk_require(&w, root, "", "rules",
				      "an array of nftables commands")))
			c->tmpl = template_compile(v, w.file, "rules", d);
		json_decref(root);
	}
	if (c->startup && c->tmpl)
		r = 0;
	return r;
}

struct config *config_load(const char *path, unsigned flags, struct diag *d)
{
	struct walk w = { .file = path, .d = d };
	struct config *c;
	json_t *root = NULL;
	size_t before = diag_errors(d);

	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->file = strdup(path)) == NULL) {
		diag_error(d, "%s: out of memory", path);
		goto fail;
	}
	if (jsonfile_load(path, CONFIG_MAX_FILE_SIZE, d, &root) < 0)
		goto fail;
	if (!walk_object(&w, root, "", root_keys))
		goto fail;
	/* Each part reports its own errors; go on so that one run lists
	 * every problem. */
	parse_redis(&w, c, root);
	parse_subscriber(&w, c, root);
	walk_nftables(&w, c, root);
	walk_daemon(&w, c, root);
	if (diag_errors(d) > before)
		goto fail;
	if (c->mode == CONFIG_MODE_TEMPLATE && !(flags & CONFIG_LOAD_NO_RULES) &&
	    load_rule_files(c, d) < 0)
		goto fail;
	if (diag_errors(d) > before)
		goto fail;
	json_decref(root);
	return c;
fail:
	json_decref(root);
	config_free(c);
	return NULL;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	free(c->file);
	free(c->redis_host);
	if (c->redis_password)
		explicit_bzero(c->redis_password, strlen(c->redis_password));
	free(c->redis_password);
	free(c->redis_username);
	free(c->redis_unix);
	for (size_t i = 0; c->channels && i < c->nchannels; i++)
		free(c->channels[i]);
	free(c->channels);
	free(c->startup_path);
	free(c->rules_path);
	free(c->table_name);
	for (int p = 0; p < CONFIG_NPROTO; p++)
		free(c->proto_ports[p]);
	for (size_t i = 0; c->watched && i < c->nwatched; i++)
		for (int p = 0; p < CONFIG_NPROTO; p++) {
			free((void *)c->watched[i].ports[p]);
			free((void *)c->watched[i].ignore[p]);
		}
	free(c->watched);
	free(c->by_net);
	free(c->trusted);
	json_decref(c->startup);
	template_free(c->tmpl);
	if (c->trigger_key)
		explicit_bzero(c->trigger_key, c->daemon.trigger_key_len);
	free(c->trigger_key);
	free(c->control_socket);
	free(c->metrics_textfile);
	free(c);
}

const char *config_file(const struct config *c) { return c->file; }
enum config_mode config_mode(const struct config *c) { return c->mode; }
const char *config_redis_host(const struct config *c) { return c->redis_host; }
int config_redis_port(const struct config *c) { return c->redis_port; }
size_t config_channel_count(const struct config *c) { return c->nchannels; }
const char *config_startup_path(const struct config *c) { return c->startup_path; }
const char *config_rules_path(const struct config *c) { return c->rules_path; }
unsigned config_max_port(const struct config *c) { return c->max_port; }
size_t config_watched_count(const struct config *c) { return c->nwatched; }
size_t config_pair_count(const struct config *c) { return c->npairs; }
json_t *config_startup_commands(const struct config *c) { return c->startup; }
const struct template *config_template(const struct config *c) { return c->tmpl; }
const char *config_table_name(const struct config *c) { return c->table_name; }
size_t config_trusted_count(const struct config *c) { return c->ntrusted; }
bool config_remove_on_stop(const struct config *c) { return c->remove_on_stop; }
enum config_untrack config_untrack(const struct config *c) { return c->untrack; }
const struct config_daemon *config_daemon(const struct config *c) { return &c->daemon; }

const struct config_redis_extra *config_redis_extra(const struct config *c)
{
	return &c->redis_extra;
}

const struct config_net *config_trusted(const struct config *c, size_t i)
{
	return i < c->ntrusted ? &c->trusted[i] : NULL;
}

const char *config_channel(const struct config *c, size_t i)
{
	return i < c->nchannels ? c->channels[i] : NULL;
}

const uint16_t *config_tcp_ports(const struct config *c, size_t *ret_n)
{
	return config_proto_ports(c, CONFIG_TCP, ret_n);
}

const uint16_t *config_proto_ports(const struct config *c,
				   enum config_proto p, size_t *ret_n)
{
	*ret_n = c->nproto[p];
	return c->proto_ports[p];
}

bool config_port_used(const struct config *c, unsigned port)
{
	return config_proto_port_used(c, CONFIG_TCP, port);
}

bool config_proto_port_used(const struct config *c, enum config_proto p,
			    unsigned port)
{
	return port < 65536 && (c->used[p][port / 8] & (1 << (port % 8)));
}

const struct config_watched *config_watched(const struct config *c, size_t i)
{
	return i < c->nwatched ? &c->watched[i] : NULL;
}

