/*
 * bouncer_config: porthop-crowdsec's configuration file and its API key
 * file, validated completely: every error names the file, the JSON path,
 * the value (JSON-encoded) and what was expected.
 */
#include "bouncer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "jsonfile.h"

#define DEFAULT_SOCKET "/run/porthop/porthopd.sock"
#define URL_MAX 1024
#define TYPES_MAX 16
#define TYPE_MAX 31
/* porthopd's default max_ttl_seconds: a year. */
#define DEFAULT_MAX_TTL 31536000

static const char *const bouncer_keys[] = {
	"api_url", "api_key_file", "update_frequency_seconds",
	"decision_types", "control_socket", "origin", "max_ttl_seconds",
	"fleet_configuration", NULL
};

void bouncer_config_free(struct bouncer_config *c)
{
	if (c == NULL)
		return;
	free(c->file);
	free(c->api_url);
	free(c->api_key_file);
	if (c->api_key) {
		explicit_bzero(c->api_key, strlen(c->api_key));
		free(c->api_key);
	}
	for (size_t i = 0; i < c->ntypes; i++)
		free(c->types[i]);
	free(c->types);
	free(c->control_socket);
	free(c->fleet_configuration);
	free(c);
}

/* Whether every byte of s is printable ASCII and not a space: nothing
 * that could break an HTTP header or a log line. */
static bool plain_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* A string member, or NULL (reported) when it is there but not a
 * non-empty string of at most max bytes without NUL.  *present says
 * whether it is there at all. */
static const char *get_string(const char *file, const json_t *root,
			      const char *key, size_t max, struct diag *d,
			      bool *present)
{
	char vbuf[DIAG_VALUE_MAX + 8];
	json_t *v = json_object_get(root, key);

	*present = v != NULL;
	if (v == NULL)
		return NULL;
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		diag_error(d, "%s: %s: %s is %s; expected a non-empty string "
			   "of at most %zu bytes without NUL", file, key,
			   diag_value(vbuf, sizeof(vbuf), v),
			   json_is_string(v) ? "not such a string" :
			   diag_type_name(v), max);
		return NULL;
	}
	return json_string_value(v);
}

static int get_int(const char *file, const json_t *root, const char *key,
		   long long min, long long max, long long def, struct diag *d,
		   long long *ret)
{
	char vbuf[DIAG_VALUE_MAX + 8];
	json_t *v = json_object_get(root, key);

	if (v == NULL) {
		*ret = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max) {
		diag_error(d, "%s: %s: %s is %s; expected an integer from %lld "
			   "to %lld", file, key,
			   diag_value(vbuf, sizeof(vbuf), v),
			   json_is_integer(v) ? "out of range" :
			   diag_type_name(v), min, max);
		return -1;
	}
	*ret = json_integer_value(v);
	return 0;
}

static void check_url(struct bouncer_config *c, const char *url,
		      struct diag *d)
{
	char vbuf[DIAG_VALUE_MAX + 8];
	const char *host;
	size_t len = strlen(url);

	if (strncmp(url, "http://", 7) == 0)
		host = url + 7;
	else if (strncmp(url, "https://", 8) == 0)
		host = url + 8;
	else
		host = NULL;
	if (host == NULL || *host == '\0' || *host == '/' || !plain_text(url) ||
	    strchr(url, '?') || strchr(url, '#')) {
		diag_error(d, "%s: api_url: %s is not a URL the bouncer takes; "
			   "expected http:// or https://, a host, an optional "
			   "port and path, no query, no spaces (e.g. "
			   "\"http://127.0.0.1:8080/\")", c->file,
			   diag_string(vbuf, sizeof(vbuf), url));
		return;
	}
	/* With a trailing '/': the stream's path is appended. */
	c->api_url = malloc(len + 2);
	if (c->api_url == NULL) {
		diag_error(d, "%s: api_url: out of memory", c->file);
		return;
	}
	memcpy(c->api_url, url, len + 1);
	if (url[len - 1] != '/')
		strcpy(c->api_url + len, "/");
}

static void check_types(struct bouncer_config *c, const json_t *root,
			struct diag *d)
{
	char vbuf[DIAG_VALUE_MAX + 8], path[DIAG_PATH_MAX];
	json_t *v = json_object_get(root, "decision_types"), *t;
	size_t i, n = v ? json_array_size(v) : 1;

	if (v != NULL && (!json_is_array(v) || n == 0 || n > TYPES_MAX)) {
		diag_error(d, "%s: decision_types: %s is %s; expected an array "
			   "of 1 to %d type names (e.g. [\"ban\"])", c->file,
			   diag_value(vbuf, sizeof(vbuf), v),
			   json_is_array(v) ? "empty or too long" :
			   diag_type_name(v), TYPES_MAX);
		return;
	}
	c->types = calloc(n, sizeof(*c->types));
	if (c->types == NULL) {
		diag_error(d, "%s: decision_types: out of memory", c->file);
		return;
	}
	if (v == NULL) {
		c->types[0] = strdup("ban");
		c->ntypes = c->types[0] ? 1 : 0;
		if (c->ntypes == 0)
			diag_error(d, "%s: decision_types: out of memory",
				   c->file);
		return;
	}
	json_array_foreach(v, i, t) {
		const char *s = json_string_value(t);
		bool dup = false;

		diag_path_index(path, sizeof(path), "decision_types", i);
		if (!json_is_string(t) || json_string_length(t) == 0 ||
		    json_string_length(t) > TYPE_MAX || strlen(s) !=
		    json_string_length(t) || !plain_text(s)) {
			diag_error(d, "%s: %s: %s is not a decision type; "
				   "expected a string of 1 to %d printable "
				   "characters (e.g. \"ban\")", c->file, path,
				   diag_value(vbuf, sizeof(vbuf), t), TYPE_MAX);
			continue;
		}
		for (size_t k = 0; k < c->ntypes; k++)
			dup |= strcmp(c->types[k], s) == 0;
		if (dup) {
			diag_error(d, "%s: %s: %s is repeated; expected each "
				   "type once", c->file, path,
				   diag_value(vbuf, sizeof(vbuf), t));
			continue;
		}
		c->types[c->ntypes] = strdup(s);
		if (c->types[c->ntypes] == NULL) {
			diag_error(d, "%s: %s: out of memory", c->file, path);
			return;
		}
		c->ntypes++;
	}
}

static bool origin_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > BOUNCER_ORIGIN_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '.' || *s == '-'))
			return false;
	return true;
}

/* Reads the key file: a regular file nobody but its owner and group can
 * read, nobody but its owner can write; one line of printable text. */
static void load_key(struct bouncer_config *c, const char *path,
		     const char *label, struct diag *d)
{
	char pbuf[DIAG_VALUE_MAX + 8], buf[BOUNCER_KEY_MAX + 2];
	struct stat st;
	ssize_t n;
	size_t len;
	int fd;

	diag_string(pbuf, sizeof(pbuf), path);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		diag_error(d, "%s: %s: %s cannot be opened: %s", c->file, label,
			   pbuf, strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		diag_error(d, "%s: %s: %s is not a regular file; expected the "
			   "file holding the bouncer's API key", c->file,
			   label, pbuf);
		goto out;
	}
	if (st.st_mode & (S_IRWXO | S_IWGRP)) {
		diag_error(d, "%s: %s: %s has mode %04o (others may read or "
			   "write it, or its group write it); expected 0600 or "
			   "0640", c->file, label, pbuf,
			   (unsigned)(st.st_mode & 07777));
		goto out;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		diag_error(d, "%s: %s: %s cannot be read: %s", c->file, label,
			   pbuf, strerror(errno));
		goto out;
	}
	len = (size_t)n;
	buf[len] = '\0';
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
			   buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		buf[--len] = '\0';
	if (len == 0 || len > BOUNCER_KEY_MAX || strlen(buf) != len ||
	    !plain_text(buf)) {
		diag_error(d, "%s: %s: %s does not hold a key; expected one "
			   "line of 1 to %d printable characters (cscli "
			   "bouncers add NAME -o raw)", c->file, label, pbuf,
			   BOUNCER_KEY_MAX);
		goto out;
	}
	c->api_key = strdup(buf);
	if (c->api_key == NULL)
		diag_error(d, "%s: %s: out of memory", c->file, label);
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
}

struct bouncer_config *bouncer_config_load(const char *path,
					   const char *key_file,
					   struct diag *d)
{
	struct sockaddr_un sa;
	char vbuf[DIAG_VALUE_MAX + 8], list[256], kbuf[DIAG_VALUE_MAX + 8];
	struct bouncer_config *c = calloc(1, sizeof(*c));
	size_t errors = diag_errors(d);
	json_t *root = NULL, *v;
	const char *s, *key;
	long long n;
	bool present;

	if (c == NULL || (c->file = strdup(path)) == NULL) {
		diag_error(d, "%s: out of memory", path);
		goto fail;
	}
	if (jsonfile_load(path, BOUNCER_CONFIG_MAX_SIZE, d, &root) < 0)
		goto fail;
	if (!json_is_object(root)) {
		diag_error(d, "%s: (root): is %s; expected an object", path,
			   diag_type_name(root));
		goto fail;
	}
	list[0] = '\0';
	for (size_t i = 0; bouncer_keys[i]; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
			 "%s%s", i ? ", " : "", bouncer_keys[i]);
	json_object_foreach(root, key, v) {
		bool known = false;

		for (size_t i = 0; bouncer_keys[i]; i++)
			known |= strcmp(key, bouncer_keys[i]) == 0;
		if (!known)
			diag_error(d, "%s: %s: unknown key; expected one of: %s",
				   path, diag_string(kbuf, sizeof(kbuf), key),
				   list);
	}

	s = get_string(path, root, "api_url", URL_MAX, d, &present);
	if (!present)
		diag_error(d, "%s: api_url: is missing; expected the Local "
			   "API's URL (e.g. \"http://127.0.0.1:8080/\")", path);
	else if (s)
		check_url(c, s, d);

	s = get_string(path, root, "api_key_file", 4096, d, &present);
	if (!present && key_file == NULL)
		diag_error(d, "%s: api_key_file: is missing; expected the path "
			   "of the file holding the bouncer's API key", path);
	if (key_file) {
		c->api_key_file = strdup(key_file);
		if (c->api_key_file)
			load_key(c, key_file, "-k", d);
	} else if (s) {
		if (s[0] != '/')
			diag_error(d, "%s: api_key_file: %s is relative; "
				   "expected an absolute path", path,
				   diag_string(vbuf, sizeof(vbuf), s));
		else if ((c->api_key_file = strdup(s)) != NULL)
			load_key(c, s, "api_key_file", d);
	}

	if (get_int(path, root, "update_frequency_seconds", 1, 3600, 10, d,
		    &n) == 0)
		c->update_frequency = (int)n;
	if (get_int(path, root, "max_ttl_seconds", 1, 10LL * 365 * 86400,
		    DEFAULT_MAX_TTL, d, &n) == 0)
		c->max_ttl = n;

	check_types(c, root, d);

	s = get_string(path, root, "control_socket", sizeof(sa.sun_path) - 1,
		       d, &present);
	if (!present)
		s = DEFAULT_SOCKET;
	if (s && s[0] != '/')
		diag_error(d, "%s: control_socket: %s is relative; expected "
			   "an absolute path (porthopd's control socket)", path,
			   diag_string(vbuf, sizeof(vbuf), s));
	else if (s && (c->control_socket = strdup(s)) == NULL)
		diag_error(d, "%s: control_socket: out of memory", path);

	s = get_string(path, root, "fleet_configuration", 4096, d, &present);
	if (s && s[0] != '/')
		diag_error(d, "%s: fleet_configuration: %s is relative; "
			   "expected an absolute path (a porthop configuration "
			   "with redis_stream_configuration)", path,
			   diag_string(vbuf, sizeof(vbuf), s));
	else if (s && (c->fleet_configuration = strdup(s)) == NULL)
		diag_error(d, "%s: fleet_configuration: out of memory", path);

	s = get_string(path, root, "origin", BOUNCER_ORIGIN_MAX, d, &present);
	if (!present)
		s = "crowdsec";
	if (s && !origin_valid(s))
		diag_error(d, "%s: origin: %s is not an origin name; expected "
			   "1 to 64 of a-z, 0-9, '_', '.', '-'", path,
			   diag_string(vbuf, sizeof(vbuf), s));
	else if (s)
		strcpy(c->origin, s);

	if (diag_errors(d) > errors)
		goto fail;
	json_decref(root);
	return c;
fail:
	json_decref(root);
	bouncer_config_free(c);
	return NULL;
}
