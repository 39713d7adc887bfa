/*
 * config: loading the configuration.  The top of the walk (the root
 * object, then each section's walk in the file beside this one), the two
 * rule files of template mode, freeing, and the accessors.
 */
#include "config_private.h"

#include <stdlib.h>
#include <string.h>

#include "jsonfile.h"

static const char *const root_keys[] = {
	"redis_connection_configuration", "redis_subscriber_configuration",
	"nftables_service_configuration", "porthopd",
	"redis_stream_configuration", NULL
};

/* The two rule files of template mode.  Their paths come from the
 * configuration, so messages name each file as diag_name() renders it:
 * as it is when it is a plain path, JSON-encoded otherwise, so that no
 * path can forge a log line. */
static int load_rule_files(struct config *c, struct diag *d)
{
	char name[CONFIG_MAX_STRING + 1];
	struct walk w = { .d = d };
	json_t *root = NULL;
	json_t *v;
	int r = -1;

	w.file = diag_name(name, sizeof(name), c->startup_path);
	if (jsonfile_load_as(c->startup_path, w.file, CONFIG_MAX_RULES_SIZE, d,
			     &root) == 0) {
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
	w.file = diag_name(name, sizeof(name), c->rules_path);
	if (jsonfile_load_as(c->rules_path, w.file, CONFIG_MAX_RULES_SIZE, d,
			     &root) == 0) {
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
	int r = 0;

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
	 * every problem.  A part that failed without a word ran out of
	 * memory: never a configuration with parts missing. */
	r |= walk_redis(&w, c, root);
	r |= walk_subscriber(&w, c, root);
	r |= walk_nftables(&w, c, root);
	r |= walk_daemon(&w, c, root);
	r |= walk_stream(&w, c, root);
	if (r < 0 && diag_errors(d) == before)
		diag_error(d, "%s: out of memory", path);
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
	/* The views' pointers own what they point to: const for callers,
	 * freed here only. */
	if (c->redis_extra.password)
		explicit_bzero((void *)c->redis_extra.password,
			       strlen(c->redis_extra.password));
	free((void *)c->redis_extra.password);
	free((void *)c->redis_extra.username);
	free((void *)c->redis_extra.unix_socket);
	for (size_t i = 0; i < c->redis_extra.nsentinels; i++)
		free((void *)c->redis_extra.sentinels[i].host);
	free((void *)c->redis_extra.sentinels);
	free((void *)c->redis_extra.master_name);
	free((void *)c->stream.stream);
	free((void *)c->stream.group);
	for (size_t i = 0; c->channels && i < c->nchannels; i++)
		free(c->channels[i]);
	free(c->channels);
	free(c->startup_path);
	free(c->rules_path);
	free(c->table_name);
	free((void *)c->daemon.state_directory);
	config_events_free(c);
	config_knock_free(c);
	for (int p = 0; p < CONFIG_NPROTO; p++)
		free(c->proto_ports[p]);
	for (size_t i = 0; c->watched && i < c->nwatched; i++) {
		for (int p = 0; p < CONFIG_NPROTO; p++) {
			free((void *)c->watched[i].ports[p]);
			free((void *)c->watched[i].ignore[p]);
		}
		config_derive_release(&c->watched[i]);
	}
	free(c->watched);
	free(c->by_net);
	free(c->trusted);
	json_decref(c->startup);
	template_free(c->tmpl);
	if (c->daemon.trigger_key)
		explicit_bzero((void *)c->daemon.trigger_key,
			       c->daemon.trigger_key_len);
	free((void *)c->daemon.trigger_key);
	free((void *)c->daemon.control_socket);
	free((void *)c->daemon.metrics_textfile);
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
unsigned config_map_capacity(const struct config *c) { return c->map_capacity; }
size_t config_services(const struct config *c)
{
	return c->nproto[CONFIG_TCP] + c->nproto[CONFIG_UDP];
}
uint64_t config_map_pairs(const struct config *c)
{
	return (uint64_t)c->map_capacity * config_services(c);
}
size_t config_swap_pairs(const struct config *c, bool v6) { return c->swap_pairs[v6]; }
uint64_t config_map_size(const struct config *c) { return 2 * config_map_pairs(c); }
json_t *config_startup_commands(const struct config *c) { return c->startup; }
const struct template *config_template(const struct config *c) { return c->tmpl; }
const char *config_table_name(const struct config *c) { return c->table_name; }
size_t config_trusted_count(const struct config *c) { return c->ntrusted; }
bool config_remove_on_stop(const struct config *c) { return c->remove_on_stop; }
enum config_untrack config_untrack(const struct config *c) { return c->untrack; }
enum config_prestage config_prestage(const struct config *c)
{
	return c->mode == CONFIG_MODE_NATIVE ? c->prestage : CONFIG_PRESTAGE_OFF;
}

bool config_prestage_active(const struct config *c)
{
	enum config_prestage p = config_prestage(c);

	return p == CONFIG_PRESTAGE_ON ||
	       (p == CONFIG_PRESTAGE_AUTO &&
		config_pair_count(c) >= CONFIG_PRESTAGE_AUTO_PAIRS);
}
const struct config_daemon *config_daemon(const struct config *c) { return &c->daemon; }

const struct config_stream *config_stream(const struct config *c)
{
	return &c->stream;
}

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

