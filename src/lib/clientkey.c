/* clientkey: a client's key file, parsed, checked, generated and written. */
#include "clientkey.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "jsonfile.h"

#define CLIENTKEY_VERSION 1

/* A derive key's port lists, in this order in lists[]. */
enum { LIST_TCP, LIST_UDP, LIST_EXCLUDE, LIST_COUNT };
static const char *const list_keys[LIST_COUNT] = { "tcp", "udp", "exclude" };

struct port_list {
	uint16_t *v;
	size_t n;
};

struct clientkey {
	char name[CLIENTKEY_NAME_MAX + 1];
	enum clientkey_use use;
	unsigned slot_seconds;
	uint16_t pool_first, pool_last;
	struct port_list lists[LIST_COUNT];
	unsigned char secret[CLIENTKEY_SECRET_LEN];
};

static const char *const use_names[] = {
	[CLIENTKEY_KNOCK] = "knock",
	[CLIENTKEY_DERIVE] = "derive",
};

const char *clientkey_use_name(enum clientkey_use use)
{
	return (unsigned)use < sizeof(use_names) / sizeof(use_names[0]) ?
		       use_names[use] : "unknown";
}

bool clientkey_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > CLIENTKEY_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

static int name_error(struct diag *d, const char *label, const char *name)
{
	char vbuf[DIAG_VALUE_MAX + 8];

	diag_error(d, "%s: name: %s is not a key name; expected 1 to %d "
		   "letters, digits, '.', '_' or '-', not starting with '.'",
		   label, diag_string(vbuf, sizeof(vbuf), name),
		   CLIENTKEY_NAME_MAX);
	return -EINVAL;
}

int clientkey_generate(const char *name, enum clientkey_use use,
		       struct diag *d, struct clientkey **ret_key)
{
	struct clientkey *k;

	if (!clientkey_name_valid(name))
		return name_error(d, "keygen", name);
	if (sodium_init() < 0)
		return -ENOMEM;
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return -ENOMEM;
	memcpy(k->name, name, strlen(name) + 1);
	k->use = use;
	k->slot_seconds = CLIENTKEY_SLOT_DEFAULT;
	k->pool_first = CLIENTKEY_POOL_FIRST_DEFAULT;
	k->pool_last = CLIENTKEY_POOL_LAST_DEFAULT;
	randombytes_buf(k->secret, sizeof(k->secret));
	*ret_key = k;
	return 0;
}

static int cmp_port(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

/* Replaces list l with a sorted copy of ports[0..n) without repeats. */
static int list_set(struct port_list *l, const uint16_t *ports, size_t n)
{
	uint16_t *v = NULL;
	size_t m = 0;

	if (n > 0) {
		v = malloc(n * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		memcpy(v, ports, n * sizeof(*v));
		qsort(v, n, sizeof(*v), cmp_port);
		for (size_t i = 0; i < n; i++)
			if (m == 0 || v[m - 1] != v[i])
				v[m++] = v[i];
	}
	free(l->v);
	l->v = v;
	l->n = m;
	return 0;
}

/* A JSON array of ports ("tcp", "udp", "exclude") into list l. */
static int parse_list(struct port_list *l, const char *label,
		      const char *key, json_t *v, struct diag *d)
{
	char vbuf[DIAG_VALUE_MAX + 8];
	uint16_t *ports;
	size_t i, n;
	json_t *e;
	int r;

	if (!json_is_array(v) || json_array_size(v) > CLIENTKEY_LIST_MAX) {
		diag_error(d, "%s: %s: %s is not a port list; expected an "
			   "array of at most %d ports", label, key,
			   diag_value(vbuf, sizeof(vbuf), v),
			   CLIENTKEY_LIST_MAX);
		return -EINVAL;
	}
	n = json_array_size(v);
	ports = calloc(n + 1, sizeof(*ports));
	if (ports == NULL)
		return -ENOMEM;
	json_array_foreach(v, i, e) {
		if (!json_is_integer(e) || json_integer_value(e) < 1 ||
		    json_integer_value(e) > 65535) {
			diag_error(d, "%s: %s[%zu]: %s is not a port; expected "
				   "an integer from 1 to 65535", label, key, i,
				   diag_value(vbuf, sizeof(vbuf), e));
			free(ports);
			return -EINVAL;
		}
		ports[i] = (uint16_t)json_integer_value(e);
	}
	r = list_set(l, ports, n);
	free(ports);
	return r;
}

/* "pool": [first, last]. */
static int parse_pool(struct clientkey *k, const char *label, json_t *v,
		      struct diag *d)
{
	char vbuf[DIAG_VALUE_MAX + 8];
	json_t *a = json_array_get(v, 0), *b = json_array_get(v, 1);

	if (!json_is_array(v) || json_array_size(v) != 2 ||
	    !json_is_integer(a) || !json_is_integer(b) ||
	    json_integer_value(a) < 1 ||
	    json_integer_value(a) > json_integer_value(b) ||
	    json_integer_value(b) > 65535) {
		diag_error(d, "%s: pool: %s is not a port range; expected "
			   "[first, last] with 1 <= first <= last <= 65535",
			   label, diag_value(vbuf, sizeof(vbuf), v));
		return -EINVAL;
	}
	k->pool_first = (uint16_t)json_integer_value(a);
	k->pool_last = (uint16_t)json_integer_value(b);
	return 0;
}

/* One member of the object, checked against what it may hold. */
static int parse_member(struct clientkey *k, const char *label,
			const char *key, json_t *v, const char **derive_only,
			struct diag *d)
{
	char vbuf[DIAG_VALUE_MAX + 8];
	const char *shown = diag_value(vbuf, sizeof(vbuf), v);

	if (strcmp(key, "porthop_client_key") == 0) {
		if (!json_is_integer(v) ||
		    json_integer_value(v) != CLIENTKEY_VERSION) {
			diag_error(d, "%s: porthop_client_key: %s is not a "
				   "version this porthop reads; expected %d",
				   label, shown, CLIENTKEY_VERSION);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(key, "name") == 0) {
		if (!json_is_string(v)) {
			diag_error(d, "%s: name: %s is %s; expected a string",
				   label, shown, diag_type_name(v));
			return -EINVAL;
		}
		if (!clientkey_name_valid(json_string_value(v)) ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return name_error(d, label, json_string_value(v));
		memcpy(k->name, json_string_value(v), json_string_length(v) + 1);
		return 0;
	}
	if (strcmp(key, "use") == 0) {
		const char *s = json_is_string(v) ? json_string_value(v) : "";

		if (strcmp(s, "knock") == 0)
			k->use = CLIENTKEY_KNOCK;
		else if (strcmp(s, "derive") == 0)
			k->use = CLIENTKEY_DERIVE;
		else {
			diag_error(d, "%s: use: %s is not a use of a key; "
				   "expected \"knock\" or \"derive\"", label,
				   shown);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(key, "secret") == 0) {
		const char *s = json_is_string(v) ? json_string_value(v) : "";
		size_t bin_len = 0;

		/* The secret is never echoed into a message. */
		if (strlen(s) != 2 * CLIENTKEY_SECRET_LEN ||
		    sodium_hex2bin(k->secret, sizeof(k->secret), s, strlen(s),
				   NULL, &bin_len, NULL) != 0 ||
		    bin_len != CLIENTKEY_SECRET_LEN) {
			diag_error(d, "%s: secret: not %d hex digits; expected "
				   "the secret `porthop keygen` wrote", label,
				   2 * CLIENTKEY_SECRET_LEN);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(key, "slot_seconds") == 0) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > CLIENTKEY_SLOT_MAX) {
			diag_error(d, "%s: slot_seconds: %s is not a slot "
				   "length; expected an integer from 1 to %d",
				   label, shown, CLIENTKEY_SLOT_MAX);
			return -EINVAL;
		}
		k->slot_seconds = (unsigned)json_integer_value(v);
		*derive_only = "slot_seconds";
		return 0;
	}
	if (strcmp(key, "pool") == 0) {
		*derive_only = "pool";
		return parse_pool(k, label, v, d);
	}
	for (int i = 0; i < LIST_COUNT; i++)
		if (strcmp(key, list_keys[i]) == 0) {
			*derive_only = list_keys[i];
			return parse_list(&k->lists[i], label, key, v, d);
		}
	diag_error(d, "%s: %s: unknown key; expected porthop_client_key, name, "
		   "use, secret, slot_seconds, tcp, udp, pool or exclude",
		   label, diag_string(vbuf, sizeof(vbuf), key));
	return -EINVAL;
}

int clientkey_parse(const char *label, const char *text, size_t len,
		    struct diag *d, struct clientkey **ret_key)
{
	static const char *const required[] = {
		"porthop_client_key", "name", "use", "secret",
	};
	struct clientkey *k = NULL;
	json_t *root = NULL, *v;
	const char *derive_only = NULL;
	const char *key;
	int r;

	r = jsonfile_parse(label, text, len, d, &root);
	if (r < 0)
		return r;
	r = -EINVAL;
	if (!json_is_object(root)) {
		diag_error(d, "%s: the file holds %s; expected a key object "
			   "as `porthop keygen` writes it", label,
			   diag_type_name(root));
		goto out;
	}
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (json_object_get(root, required[i]) == NULL) {
			diag_error(d, "%s: %s is missing; expected a key file "
				   "as `porthop keygen` writes it", label,
				   required[i]);
			goto out;
		}
	k = calloc(1, sizeof(*k));
	if (k == NULL) {
		r = -ENOMEM;
		goto out;
	}
	k->slot_seconds = CLIENTKEY_SLOT_DEFAULT;
	k->pool_first = CLIENTKEY_POOL_FIRST_DEFAULT;
	k->pool_last = CLIENTKEY_POOL_LAST_DEFAULT;
	json_object_foreach(root, key, v) {
		r = parse_member(k, label, key, v, &derive_only, d);
		if (r < 0)
			goto out;
	}
	r = -EINVAL;
	if (derive_only != NULL && k->use != CLIENTKEY_DERIVE) {
		diag_error(d, "%s: %s: given for a key of use \"knock\"; "
			   "expected it only with \"use\": \"derive\"", label,
			   derive_only);
		goto out;
	}
	*ret_key = k;
	k = NULL;
	r = 0;
out:
	clientkey_free(k);
	json_decref(root);
	return r;
}

int clientkey_load(const char *path, struct diag *d,
		   struct clientkey **ret_key)
{
	const size_t size = CLIENTKEY_FILE_MAX + 1;
	char label[DIAG_VALUE_MAX + 8];
	size_t len = 0;
	char *buf;
	int fd, r;

	diag_string(label, sizeof(label), path);
	r = auth_open_key_file(path, label, d, &fd);
	if (r < 0)
		return r;
	buf = malloc(size);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (len < size) {
		ssize_t n = read(fd, buf + len, size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			diag_error(d, "%s: cannot be read: %s", label,
				   strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > CLIENTKEY_FILE_MAX) {
		diag_error(d, "%s: larger than %d bytes; expected a key file "
			   "as `porthop keygen` writes it", label,
			   CLIENTKEY_FILE_MAX);
		r = -EFBIG;
		goto out;
	}
	r = clientkey_parse(label, buf, len, d, ret_key);
out:
	sodium_memzero(buf, size);
	free(buf);
	close(fd);
	return r;
}

static json_t *list_json(const struct port_list *l)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < l->n; i++)
		if (json_array_append_new(a, json_integer(l->v[i])) < 0) {
			json_decref(a);
			a = NULL;
		}
	return a;
}

/* A derive key's members: the slot, the pool, the lists that have ports. */
static int derive_text(const struct clientkey *k, json_t *o)
{
	if (json_object_set_new(o, "slot_seconds",
				json_integer(k->slot_seconds)) < 0)
		return -ENOMEM;
	for (int i = 0; i < LIST_COUNT; i++)
		if (i != LIST_EXCLUDE && k->lists[i].n > 0 &&
		    json_object_set_new(o, list_keys[i],
					list_json(&k->lists[i])) < 0)
			return -ENOMEM;
	if (json_object_set_new(o, "pool", json_pack("[ii]", k->pool_first,
						     k->pool_last)) < 0)
		return -ENOMEM;
	if (k->lists[LIST_EXCLUDE].n > 0 &&
	    json_object_set_new(o, "exclude",
				list_json(&k->lists[LIST_EXCLUDE])) < 0)
		return -ENOMEM;
	return 0;
}

char *clientkey_text(const struct clientkey *k)
{
	char hex[2 * CLIENTKEY_SECRET_LEN + 1];
	json_t *o;
	char *text = NULL;

	sodium_bin2hex(hex, sizeof(hex), k->secret, sizeof(k->secret));
	o = json_pack("{s:i,s:s,s:s,s:s}", "porthop_client_key",
		      CLIENTKEY_VERSION, "name", k->name, "use",
		      clientkey_use_name(k->use), "secret", hex);
	if (o != NULL && k->use == CLIENTKEY_DERIVE && derive_text(k, o) < 0) {
		json_decref(o);
		o = NULL;
	}
	if (o != NULL)
		text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	sodium_memzero(hex, sizeof(hex));
	return text;
}

int clientkey_write(const struct clientkey *k, const char *path,
		    struct diag *d)
{
	char label[DIAG_VALUE_MAX + 8];
	char *text = clientkey_text(k);
	size_t len;
	int fd, r;

	diag_string(label, sizeof(label), path);
	if (text == NULL) {
		diag_error(d, "%s: out of memory", label);
		return -ENOMEM;
	}
	len = strlen(text);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0) {
		r = -errno;
		diag_error(d, "%s: cannot be created: %s%s", label,
			   strerror(errno), errno == EEXIST ?
			   "; expected a new file (a key is never "
			   "overwritten: remove the old one first)" : "");
		goto out;
	}
	/* A new regular file: dprintf's stdio writes it whole or fails. */
	errno = EIO;
	r = dprintf(fd, "%s\n", text) == (int)len + 1 ? 0 : -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0) {
		diag_error(d, "%s: cannot be written: %s", label,
			   strerror(-r));
		unlink(path);
	}
out:
	sodium_memzero(text, len);
	free(text);
	return r;
}

const char *clientkey_name(const struct clientkey *k)
{
	return k->name;
}

enum clientkey_use clientkey_use(const struct clientkey *k)
{
	return k->use;
}

const unsigned char *clientkey_secret(const struct clientkey *k)
{
	return k->secret;
}

unsigned clientkey_slot_seconds(const struct clientkey *k)
{
	return k->slot_seconds;
}

int clientkey_set_slot_seconds(struct clientkey *k, unsigned seconds,
			       struct diag *d)
{
	if (k->use != CLIENTKEY_DERIVE) {
		diag_error(d, "slot_seconds: given for a key of use \"knock\"; "
			   "expected it only with \"use\": \"derive\"");
		return -EINVAL;
	}
	if (seconds < 1 || seconds > CLIENTKEY_SLOT_MAX) {
		diag_error(d, "slot_seconds: %u is not a slot length; expected "
			   "an integer from 1 to %d", seconds,
			   CLIENTKEY_SLOT_MAX);
		return -EINVAL;
	}
	k->slot_seconds = seconds;
	return 0;
}

const uint16_t *clientkey_services(const struct clientkey *k, bool tcp,
				   size_t *ret_n)
{
	const struct port_list *l = &k->lists[tcp ? LIST_TCP : LIST_UDP];

	*ret_n = l->n;
	return l->v;
}

void clientkey_pool(const struct clientkey *k, uint16_t *ret_first,
		    uint16_t *ret_last)
{
	*ret_first = k->pool_first;
	*ret_last = k->pool_last;
}

const uint16_t *clientkey_exclude(const struct clientkey *k, size_t *ret_n)
{
	*ret_n = k->lists[LIST_EXCLUDE].n;
	return k->lists[LIST_EXCLUDE].v;
}

static int derive_only(const struct clientkey *k, const char *what,
		       struct diag *d)
{
	if (k->use == CLIENTKEY_DERIVE)
		return 0;
	diag_error(d, "%s: given for a key of use \"knock\"; expected it only "
		   "with \"use\": \"derive\"", what);
	return -EINVAL;
}

static int set_list(struct clientkey *k, int which, const uint16_t *ports,
		    size_t n, struct diag *d)
{
	int r = derive_only(k, list_keys[which], d);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (ports[i] == 0) {
			diag_error(d, "%s: 0 is not a port; expected ports "
				   "from 1 to 65535", list_keys[which]);
			return -EINVAL;
		}
	if (n > CLIENTKEY_LIST_MAX) {
		diag_error(d, "%s: %zu ports; expected at most %d",
			   list_keys[which], n, CLIENTKEY_LIST_MAX);
		return -EINVAL;
	}
	return list_set(&k->lists[which], ports, n);
}

int clientkey_set_services(struct clientkey *k, bool tcp,
			   const uint16_t *ports, size_t n, struct diag *d)
{
	return set_list(k, tcp ? LIST_TCP : LIST_UDP, ports, n, d);
}

int clientkey_set_exclude(struct clientkey *k, const uint16_t *ports,
			  size_t n, struct diag *d)
{
	return set_list(k, LIST_EXCLUDE, ports, n, d);
}

int clientkey_set_pool(struct clientkey *k, uint16_t first, uint16_t last,
		       struct diag *d)
{
	int r = derive_only(k, "pool", d);

	if (r < 0)
		return r;
	if (first < 1 || first > last) {
		diag_error(d, "pool: %u-%u is not a port range; expected "
			   "first-last with 1 <= first <= last <= 65535",
			   first, last);
		return -EINVAL;
	}
	k->pool_first = first;
	k->pool_last = last;
	return 0;
}

void clientkey_free(struct clientkey *k)
{
	if (k == NULL)
		return;
	for (int i = 0; i < LIST_COUNT; i++)
		free(k->lists[i].v);
	sodium_memzero(k, sizeof(*k));
	free(k);
}
