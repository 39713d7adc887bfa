#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonfile.h"

struct config {
	char *file;
	char *redis_host;
	int redis_port;
	char **channels;
	size_t nchannels;
	char *startup_path;
	char *rules_path;
	unsigned max_port;
	uint16_t *tcp_ports;
	size_t ntcp;
	struct config_watched *watched;
	size_t nwatched;
	size_t npairs;
	json_t *startup;
	struct template *tmpl;
	uint8_t used[65536 / 8];	/* bitmap of tcp_ports */
};

/* Walking state: the file name for messages and the running diag. */
struct walk {
	const char *file;
	struct diag *d;
};

static const char *const redis_keys[] = {
	"host", "port", "db", "charset", "decode_responses", NULL
};
static const char *const subscriber_keys[] = {
	"subscriber_channel_names", NULL
};
static const char *const nft_keys[] = {
	"nft_startup_commands_path", "nft_address_rules_path",
	"max_port_number", "tcp_ports", "watched_addresses", NULL
};
static const char *const watched_keys[] = { "ip", "tcp_ignore", NULL };
static const char *const root_keys[] = {
	"redis_connection_configuration", "redis_subscriber_configuration",
	"nftables_service_configuration", NULL
};

static void key_list(char *buf, size_t len, const char *const *keys)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; keys[i] && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
					i ? ", " : "", keys[i]);
}

/* Requires v to be an object; reports unknown keys.  Returns false (and
 * reports) if v is not an object. */
static bool check_object(struct walk *w, const json_t *v, const char *path,
			 const char *const *allowed)
{
	char kbuf[DIAG_VALUE_MAX + 8], list[512], cpath[DIAG_PATH_MAX];
	const char *key;
	json_t *child;

	if (!json_is_object(v)) {
		diag_error(w->d, "%s: %s: is %s; expected an object", w->file,
			   path[0] ? path : "(root)", diag_type_name(v));
		return false;
	}
	json_object_foreach((json_t *)v, key, child) {
		bool ok = false;

		for (size_t i = 0; allowed[i]; i++)
			if (strcmp(key, allowed[i]) == 0)
				ok = true;
		if (ok)
			continue;
		key_list(list, sizeof(list), allowed);
		diag_error(w->d, "%s: %s: unknown key %s; expected one of: %s",
			   w->file,
			   diag_path_key(cpath, sizeof(cpath), path, key),
			   diag_string(kbuf, sizeof(kbuf), key), list);
	}
	return true;
}

/* Returns the member, or NULL after reporting it missing. */
static json_t *require(struct walk *w, const json_t *obj, const char *path,
		       const char *key, const char *expected)
{
	char cpath[DIAG_PATH_MAX];
	json_t *v = json_object_get(obj, key);

	if (v == NULL)
		diag_error(w->d, "%s: %s: is missing; expected %s", w->file,
			   diag_path_key(cpath, sizeof(cpath), path, key),
			   expected);
	return v;
}

static int get_string(struct walk *w, const json_t *obj, const char *path,
		      const char *key, char **ret)
{
	char cpath[DIAG_PATH_MAX], vbuf[DIAG_VALUE_MAX + 8];
	json_t *v = require(w, obj, path, key, "a string");
	const char *s;

	if (v == NULL)
		return -1;
	diag_path_key(cpath, sizeof(cpath), path, key);
	if (!json_is_string(v)) {
		diag_error(w->d, "%s: %s: %s is %s; expected a string",
			   w->file, cpath, diag_value(vbuf, sizeof(vbuf), v),
			   diag_type_name(v));
		return -1;
	}
	s = json_string_value(v);
	if (json_string_length(v) == 0) {
		diag_error(w->d, "%s: %s: is empty; expected a non-empty string",
			   w->file, cpath);
		return -1;
	}
	if (json_string_length(v) > CONFIG_MAX_STRING ||
	    strlen(s) != json_string_length(v)) {
		diag_error(w->d, "%s: %s: %s is %zu bytes long or holds a NUL "
			   "byte; expected at most %u bytes of text", w->file,
			   cpath, diag_value(vbuf, sizeof(vbuf), v),
			   json_string_length(v), CONFIG_MAX_STRING);
		return -1;
	}
	if (ret) {
		*ret = strdup(s);
		if (*ret == NULL) {
			diag_error(w->d, "%s: %s: out of memory", w->file,
				   cpath);
			return -1;
		}
	}
	return 0;
}

/* An integer in [min, max] at path. */
static int check_int(struct walk *w, const json_t *v, const char *path,
		     long long min, long long max, const char *what, int *ret)
{
	char vbuf[DIAG_VALUE_MAX + 8];

	if (!json_is_integer(v)) {
		diag_error(w->d, "%s: %s: %s is %s; expected %s, an integer "
			   "from %lld to %lld", w->file, path,
			   diag_value(vbuf, sizeof(vbuf), v),
			   diag_type_name(v), what, min, max);
		return -1;
	}
	if (json_integer_value(v) < min || json_integer_value(v) > max) {
		diag_error(w->d, "%s: %s: %lld is out of range; expected %s, "
			   "an integer from %lld to %lld", w->file, path,
			   (long long)json_integer_value(v), what, min, max);
		return -1;
	}
	if (ret)
		*ret = (int)json_integer_value(v);
	return 0;
}

static int get_int(struct walk *w, const json_t *obj, const char *path,
		   const char *key, long long min, long long max,
		   const char *what, int *ret)
{
	char cpath[DIAG_PATH_MAX];
	json_t *v = require(w, obj, path, key, what);

	if (v == NULL)
		return -1;
	return check_int(w, v, diag_path_key(cpath, sizeof(cpath), path, key),
			 min, max, what, ret);
}

/* An array of distinct ports.  On success *ret is malloc'ed (or NULL for
 * an empty array). */
static int get_ports(struct walk *w, const json_t *v, const char *path,
		     bool nonempty, uint16_t **ret, size_t *ret_n)
{
	char cpath[DIAG_PATH_MAX], vbuf[DIAG_VALUE_MAX + 8];
	uint8_t seen[65536 / 8] = { 0 };
	uint16_t *ports;
	json_t *e;
	size_t i, n = 0;
	int bad = 0;

	if (!json_is_array(v)) {
		diag_error(w->d, "%s: %s: %s is %s; expected an array of port "
			   "numbers (1 to 65535)", w->file, path,
			   diag_value(vbuf, sizeof(vbuf), v),
			   diag_type_name(v));
		return -1;
	}
	if (nonempty && json_array_size(v) == 0) {
		diag_error(w->d, "%s: %s: is empty; expected at least one port",
			   w->file, path);
		return -1;
	}
	if (json_array_size(v) > 65535) {
		diag_error(w->d, "%s: %s: has %zu entries; a port list has at "
			   "most 65535", w->file, path, json_array_size(v));
		return -1;
	}
	ports = malloc((json_array_size(v) + 1) * sizeof(*ports));
	if (ports == NULL) {
		diag_error(w->d, "%s: %s: out of memory", w->file, path);
		return -1;
	}
	json_array_foreach(v, i, e) {
		int p;

		diag_path_index(cpath, sizeof(cpath), path, i);
		if (check_int(w, e, cpath, 1, 65535, "a port number", &p) < 0) {
			bad = 1;
			continue;
		}
		if (seen[p / 8] & (1 << (p % 8))) {
			diag_error(w->d, "%s: %s: port %d appears more than "
				   "once; expected each port once", w->file,
				   cpath, p);
			bad = 1;
			continue;
		}
		seen[p / 8] |= (uint8_t)(1 << (p % 8));
		ports[n++] = (uint16_t)p;
	}
	if (bad) {
		free(ports);
		return -1;
	}
	*ret = ports;
	*ret_n = n;
	return 0;
}

static int parse_redis(struct walk *w, struct config *c, const json_t *root)
{
	const char *p = "redis_connection_configuration";
	json_t *o = require(w, root, "", p, "an object with host, port, db, "
			    "charset and decode_responses");
	json_t *v;
	char vbuf[DIAG_VALUE_MAX + 8], cpath[DIAG_PATH_MAX];
	int r = 0;

	if (o == NULL || !check_object(w, o, p, redis_keys))
		return -1;
	r |= get_string(w, o, p, "host", &c->redis_host);
	r |= get_int(w, o, p, "port", 1, 65535, "a TCP port", &c->redis_port);
	/* db selects a keyspace; pub/sub channels are global to the server,
	 * so it is validated and otherwise ignored. */
	r |= get_int(w, o, p, "db", 0, 2147483647, "a database number", NULL);
	/* Messages are never decoded (the payload is not interpreted), so
	 * charset and decode_responses are validated and ignored. */
	r |= get_string(w, o, p, "charset", NULL);
	v = require(w, o, p, "decode_responses", "a boolean");
	if (v && !json_is_boolean(v)) {
		diag_error(w->d, "%s: %s: %s is %s; expected a boolean",
			   w->file,
			   diag_path_key(cpath, sizeof(cpath), p,
					 "decode_responses"),
			   diag_value(vbuf, sizeof(vbuf), v),
			   diag_type_name(v));
		r = -1;
	}
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

	o = require(w, root, "", p, "an object with subscriber_channel_names");
	if (o == NULL || !check_object(w, o, p, subscriber_keys))
		return -1;
	arr = require(w, o, p, "subscriber_channel_names",
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
			if (strcmp(c->channels[j], json_string_value(e)) == 0) {
				diag_error(w->d, "%s: %s: %s appears more than "
					   "once; expected each channel once",
					   w->file, cpath,
					   diag_value(vbuf, sizeof(vbuf), e));
				r = -1;
			}
		if (r == 0) {
			c->channels[c->nchannels] =
				strdup(json_string_value(e));
			if (c->channels[c->nchannels] == NULL)
				return -1;
			c->nchannels++;
		}
	}
	return r;
}

static int parse_watched_entry(struct walk *w, struct config *c,
			       const json_t *e, const char *path,
			       struct config_watched *out)
{
	char cpath[DIAG_PATH_MAX], vbuf[DIAG_VALUE_MAX + 8];
	json_t *ip, *ign;
	uint16_t *ignore = NULL, *ports;
	size_t nignore = 0, n = 0;
	int r = 0;

	if (!check_object(w, e, path, watched_keys))
		return -1;
	ip = require(w, e, path, "ip", "an IPv4 or IPv6 address");
	if (ip) {
		const char *s = json_string_value(ip);

		diag_path_key(cpath, sizeof(cpath), path, "ip");
		/* inet_pton only: libnftables would resolve a name with a
		 * blocking DNS lookup. */
		if (s && strlen(s) == json_string_length(ip) &&
		    inet_pton(AF_INET, s, out->addr) == 1) {
			out->family = AF_INET;
		} else if (s && strlen(s) == json_string_length(ip) &&
			   inet_pton(AF_INET6, s, out->addr) == 1) {
			out->family = AF_INET6;
		} else {
			diag_error(w->d, "%s: %s: %s is not an IPv4 or IPv6 "
				   "address", w->file, cpath,
				   diag_value(vbuf, sizeof(vbuf), ip));
			r = -1;
		}
		if (r == 0)
			inet_ntop(out->family, out->addr, out->ip,
				  sizeof(out->ip));
	} else {
		r = -1;
	}
	/* tcp_ignore is optional: an absent list ignores nothing. */
	ign = json_object_get(e, "tcp_ignore");
	if (ign) {
		diag_path_key(cpath, sizeof(cpath), path, "tcp_ignore");
		if (get_ports(w, ign, cpath, false, &ignore, &nignore) < 0)
			r = -1;
		for (size_t i = 0; r == 0 && i < nignore; i++)
			if (!config_port_used(c, ignore[i]))
				diag_warning(w->d, "%s: %s[%zu]: port %u is "
					     "not in tcp_ports; ignoring it "
					     "has no effect", w->file, cpath,
					     i, ignore[i]);
	}
	if (r < 0) {
		free(ignore);
		return -1;
	}
	ports = malloc((c->ntcp + 1) * sizeof(*ports));
	if (ports == NULL) {
		free(ignore);
		return -1;
	}
	for (size_t i = 0; i < c->ntcp; i++) {
		bool skip = false;

		for (size_t j = 0; j < nignore; j++)
			skip |= ignore[j] == c->tcp_ports[i];
		if (!skip)
			ports[n++] = c->tcp_ports[i];
	}
	out->ports = ports;
	out->nports = n;
	out->ignore = ignore;
	out->nignore = nignore;
	return 0;
}

static int cmp_watched(const void *a, const void *b)
{
	const struct config_watched *x = *(const struct config_watched *const *)a;
	const struct config_watched *y = *(const struct config_watched *const *)b;

	if (x->family != y->family)
		return x->family - y->family;
	return memcmp(x->addr, y->addr, 16);
}

/* Duplicates are found by sorting pointers, so a million entries cost
 * n log n, not n squared. */
static int check_duplicates(struct walk *w, struct config *c,
			    const char *path)
{
	const struct config_watched **sorted;
	int r = 0;

	if (c->nwatched < 2)
		return 0;
	sorted = malloc(c->nwatched * sizeof(*sorted));
	if (sorted == NULL)
		return -1;
	for (size_t i = 0; i < c->nwatched; i++)
		sorted[i] = &c->watched[i];
	qsort(sorted, c->nwatched, sizeof(*sorted), cmp_watched);
	for (size_t i = 1; i < c->nwatched; i++) {
		if (cmp_watched(&sorted[i - 1], &sorted[i]) != 0)
			continue;
		size_t a = (size_t)(sorted[i - 1] - c->watched);
		size_t b = (size_t)(sorted[i] - c->watched);

		if (a > b) {
			size_t t = a;
			a = b;
			b = t;
		}
		diag_error(w->d, "%s: %s[%zu].ip: \"%s\" is the same address as "
			   "%s[%zu].ip; expected each watched address once",
			   w->file, path, b, c->watched[b].ip, path, a);
		r = -1;
	}
	free(sorted);
	return r;
}

/* The reference loops forever when an address needs more redirect ports
 * than 1..max_port_number has free; refuse that here instead. */
static int check_capacity(struct walk *w, struct config *c, const char *p)
{
	size_t used_below = 0, need = 0, worst = 0, free_ports, min_max;

	for (size_t i = 0; i < c->ntcp; i++)
		used_below += c->tcp_ports[i] <= c->max_port;
	free_ports = c->max_port - used_below;
	for (size_t i = 0; i < c->nwatched; i++)
		if (c->watched[i].nports > need) {
			need = c->watched[i].nports;
			worst = i;
		}
	if (need <= free_ports)
		return 0;
	/* The smallest max_port_number that leaves `need` ports free. */
	for (min_max = c->max_port; min_max <= 65535; min_max++) {
		size_t u = 0;

		for (size_t i = 0; i < c->ntcp; i++)
			u += c->tcp_ports[i] <= min_max;
		if (min_max - u >= need)
			break;
	}
	if (min_max > 65535)
		diag_error(w->d, "%s: %s.watched_addresses[%zu]: needs %zu "
			   "redirect ports but only %zu are free even with "
			   "max_port_number 65535", w->file, p, worst, need,
			   (size_t)65535 - c->ntcp);
	else
		diag_error(w->d, "%s: %s.max_port_number: %u leaves %zu free "
			   "redirect ports (1..%u minus %zu of tcp_ports) but "
			   "watched_addresses[%zu] needs %zu; expected at least "
			   "%zu", w->file, p, c->max_port, free_ports,
			   c->max_port, used_below, worst, need, min_max);
	return -1;
}

static int parse_nftables(struct walk *w, struct config *c,
			  const json_t *root)
{
	const char *p = "nftables_service_configuration";
	char path[DIAG_PATH_MAX], cpath[DIAG_PATH_MAX];
	char vbuf[DIAG_VALUE_MAX + 8];
	json_t *o, *v, *e;
	size_t i;
	int r = 0, max = 0;

	o = require(w, root, "", p, "an object");
	if (o == NULL || !check_object(w, o, p, nft_keys))
		return -1;
	r |= get_string(w, o, p, "nft_startup_commands_path", &c->startup_path);
	r |= get_string(w, o, p, "nft_address_rules_path", &c->rules_path);
	if (get_int(w, o, p, "max_port_number", 1, 65535,
		    "the highest redirect port", &max) == 0)
		c->max_port = (unsigned)max;
	else
		r = -1;
	v = require(w, o, p, "tcp_ports", "an array of port numbers");
	/* Without valid tcp_ports the watched entries are still checked, so
	 * one run lists every error. */
	if (v == NULL ||
	    get_ports(w, v, diag_path_key(path, sizeof(path), p, "tcp_ports"),
		      true, &c->tcp_ports, &c->ntcp) < 0)
		r = -1;
	for (i = 0; i < c->ntcp; i++)
		c->used[c->tcp_ports[i] / 8] |= (uint8_t)(1 << (c->tcp_ports[i] % 8));

	v = require(w, o, p, "watched_addresses",
		    "an array of {\"ip\": ..., \"tcp_ignore\": [...]}");
	if (v == NULL)
		return -1;
	diag_path_key(path, sizeof(path), p, "watched_addresses");
	if (!json_is_array(v)) {
		diag_error(w->d, "%s: %s: %s is %s; expected an array of "
			   "{\"ip\": ..., \"tcp_ignore\": [...]}", w->file,
			   path, diag_value(vbuf, sizeof(vbuf), v),
			   diag_type_name(v));
		return -1;
	}
	if (json_array_size(v) > CONFIG_MAX_WATCHED) {
		diag_error(w->d, "%s: %s: has %zu entries; at most %d are "
			   "accepted", w->file, path, json_array_size(v),
			   CONFIG_MAX_WATCHED);
		return -1;
	}
	c->watched = calloc(json_array_size(v) + 1, sizeof(*c->watched));
	if (c->watched == NULL)
		return -1;
	json_array_foreach(v, i, e) {
		diag_path_index(cpath, sizeof(cpath), path, i);
		if (parse_watched_entry(w, c, e, cpath,
					&c->watched[c->nwatched]) < 0) {
			r = -1;
			continue;
		}
		c->npairs += c->watched[c->nwatched].nports;
		c->nwatched++;
	}
	if (r == 0)
		r = check_duplicates(w, c, path);
	if (r == 0 && c->max_port)
		r = check_capacity(w, c, p);
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

		if (check_object(&w, root, "", keys) &&
		    (v = require(&w, root, "", "commands",
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

		if (check_object(&w, root, "", keys) &&
		    (v = require(&w, root, "", "rules",
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
	if (!check_object(&w, root, "", root_keys))
		goto fail;
	/* Each part reports its own errors; go on so that one run lists
	 * every problem. */
	parse_redis(&w, c, root);
	parse_subscriber(&w, c, root);
	parse_nftables(&w, c, root);
	if (diag_errors(d) > before)
		goto fail;
	if (!(flags & CONFIG_LOAD_NO_RULES) && load_rule_files(c, d) < 0)
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
	for (size_t i = 0; c->channels && i < c->nchannels; i++)
		free(c->channels[i]);
	free(c->channels);
	free(c->startup_path);
	free(c->rules_path);
	free(c->tcp_ports);
	for (size_t i = 0; c->watched && i < c->nwatched; i++) {
		free((void *)c->watched[i].ports);
		free((void *)c->watched[i].ignore);
	}
	free(c->watched);
	json_decref(c->startup);
	template_free(c->tmpl);
	free(c);
}

const char *config_file(const struct config *c) { return c->file; }
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

const char *config_channel(const struct config *c, size_t i)
{
	return i < c->nchannels ? c->channels[i] : NULL;
}

const uint16_t *config_tcp_ports(const struct config *c, size_t *ret_n)
{
	*ret_n = c->ntcp;
	return c->tcp_ports;
}

bool config_port_used(const struct config *c, unsigned port)
{
	return port < 65536 && (c->used[port / 8] & (1 << (port % 8)));
}

const struct config_watched *config_watched(const struct config *c, size_t i)
{
	return i < c->nwatched ? &c->watched[i] : NULL;
}

long config_watched_find(const struct config *c, const char *ip)
{
	unsigned char addr[16] = { 0 };
	int family;

	if (inet_pton(AF_INET, ip, addr) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, ip, addr) == 1)
		family = AF_INET6;
	else
		return -1;
	for (size_t i = 0; i < c->nwatched; i++)
		if (c->watched[i].family == family &&
		    memcmp(c->watched[i].addr, addr, 16) == 0)
			return (long)i;
	return -1;
}
