/* clientkey: a client's key file, parsed, checked, generated and written. */
#include "clientkey.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "jsonfile.h"

#define CLIENTKEY_VERSION 1

struct clientkey {
	char name[CLIENTKEY_NAME_MAX + 1];
	enum clientkey_use use;
	unsigned slot_seconds;
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
	randombytes_buf(k->secret, sizeof(k->secret));
	*ret_key = k;
	return 0;
}

/* One member of the object, checked against what it may hold. */
static int parse_member(struct clientkey *k, const char *label,
			const char *key, json_t *v, bool *has_slot,
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
		*has_slot = true;
		return 0;
	}
	diag_error(d, "%s: %s: unknown key; expected porthop_client_key, name, "
		   "use, secret or slot_seconds",
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
	bool has_slot = false;
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
	json_object_foreach(root, key, v)
		if (parse_member(k, label, key, v, &has_slot, d) < 0)
			goto out;
	if (has_slot && k->use != CLIENTKEY_DERIVE) {
		diag_error(d, "%s: slot_seconds: given for a key of use "
			   "\"knock\"; expected it only with \"use\": "
			   "\"derive\"", label);
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
	char buf[CLIENTKEY_FILE_MAX + 1];
	char label[DIAG_VALUE_MAX + 8];
	size_t len = 0;
	int fd, r;

	diag_string(label, sizeof(label), path);
	r = auth_open_key_file(path, label, d, &fd);
	if (r < 0)
		return r;
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

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
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return r;
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
	if (o != NULL && k->use == CLIENTKEY_DERIVE &&
	    json_object_set_new(o, "slot_seconds",
				json_integer(k->slot_seconds)) < 0) {
		json_decref(o);
		o = NULL;
	}
	if (o != NULL)
		text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	sodium_memzero(hex, sizeof(hex));
	return text;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
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
	r = write_all(fd, text, len);
	if (r == 0)
		r = write_all(fd, "\n", 1);
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

void clientkey_free(struct clientkey *k)
{
	if (k == NULL)
		return;
	sodium_memzero(k, sizeof(*k));
	free(k);
}
