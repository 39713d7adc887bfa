/*
 * config_walk: the steps every section of the configuration is walked
 * with.  Each checks one member or value, reports what is wrong with the
 * file, the JSON path, the value JSON-encoded and what was expected, and
 * returns so that the walk goes on: one run lists every error.
 */
#include "config_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "a, b, c": the keys an object may hold, for the unknown-key message. */
static void key_list(char *buf, size_t len, const char *const *keys)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; keys[i] && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
					i ? ", " : "", keys[i]);
}

bool walk_object(struct walk *w, const json_t *v, const char *path,
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

json_t *walk_require(struct walk *w, const json_t *obj, const char *path,
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

int walk_string(struct walk *w, const json_t *obj, const char *path,
		const char *key, char **ret)
{
	char cpath[DIAG_PATH_MAX], vbuf[DIAG_VALUE_MAX + 8];
	json_t *v = walk_require(w, obj, path, key, "a string");
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

int walk_int_value(struct walk *w, const json_t *v, const char *path,
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

int walk_int(struct walk *w, const json_t *obj, const char *path,
	     const char *key, long long min, long long max, const char *what,
	     int *ret)
{
	char cpath[DIAG_PATH_MAX];
	json_t *v = walk_require(w, obj, path, key, what);

	if (v == NULL)
		return -1;
	diag_path_key(cpath, sizeof(cpath), path, key);
	return walk_int_value(w, v, cpath, min, max, what, ret);
}

int walk_ports(struct walk *w, const json_t *v, const char *path,
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
		if (walk_int_value(w, e, cpath, 1, 65535, "a port number",
				   &p) < 0) {
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

int walk_opt_int(struct walk *w, const json_t *obj, const char *path,
		 const char *key, long long min, long long max,
		 const char *what, unsigned *ret)
{
	char cpath[DIAG_PATH_MAX];
	json_t *v = json_object_get(obj, key);
	int x;

	if (v == NULL)
		return 0;
	diag_path_key(cpath, sizeof(cpath), path, key);
	if (walk_int_value(w, v, cpath, min, max, what, &x) < 0)
		return -1;
	*ret = (unsigned)x;
	return 0;
}

int walk_opt_bool(struct walk *w, const json_t *obj, const char *path,
		  const char *key, bool *ret)
{
	char cpath[DIAG_PATH_MAX], vbuf[DIAG_VALUE_MAX + 8];
	json_t *v = json_object_get(obj, key);

	if (v == NULL)
		return 0;
	if (!json_is_boolean(v)) {
		diag_error(w->d, "%s: %s: %s is %s; expected a boolean",
			   w->file, diag_path_key(cpath, sizeof(cpath), path, key),
			   diag_value(vbuf, sizeof(vbuf), v), diag_type_name(v));
		return -1;
	}
	*ret = json_is_true(v);
	return 0;
}

int walk_opt_string(struct walk *w, const json_t *obj, const char *path,
		    const char *key, char **ret)
{
	if (json_object_get(obj, key) == NULL)
		return 0;
	return walk_string(w, obj, path, key, ret);
}

