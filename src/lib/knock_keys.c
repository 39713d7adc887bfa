/*
 * knock_keys: the keys directory read into a knock verifier (see
 * knock_load_keys in knock.h): one NAME.key file per client.
 */
#include "knock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_SUFFIX ".key"

/* The key id a file name stands for (NAME of NAME.key), in name; false
 * for any other file. */
static bool key_file_name(const char *file, char name[CLIENTKEY_NAME_MAX + 1])
{
	size_t len = strlen(file), sl = strlen(KEY_SUFFIX);

	if (len <= sl || len - sl > CLIENTKEY_NAME_MAX ||
	    strcmp(file + len - sl, KEY_SUFFIX) != 0)
		return false;
	memcpy(name, file, len - sl);
	name[len - sl] = '\0';
	return clientkey_name_valid(name);
}

/* Loads one file into v: its name must be its key's, its use knock.
 * 1 if loaded, 0 if skipped (a derive key), negative if refused (d). */
static int load_one(struct knock_verifier *v, const char *path,
		    const char *name, struct diag *d)
{
	char pbuf[DIAG_VALUE_MAX + 8], nbuf[DIAG_VALUE_MAX + 8];
	struct clientkey *k = NULL;
	int r = clientkey_load(path, d, &k);

	if (r < 0)
		return r;
	if (strcmp(clientkey_name(k), name) != 0) {
		diag_error(d, "%s: name: %s is not the file's name; expected "
			   "%s (NAME.key holds the key named NAME)",
			   diag_string(pbuf, sizeof(pbuf), path),
			   diag_string(nbuf, sizeof(nbuf), clientkey_name(k)),
			   name);
		r = -EINVAL;
	} else if (clientkey_use(k) != CLIENTKEY_KNOCK) {
		r = 0;
	} else {
		r = knock_verifier_add_key(v, k);
		if (r == -ENOSPC)
			diag_error(d, "%s: more than %d keys; expected at most "
				   "%d files", diag_string(pbuf, sizeof(pbuf),
							   path),
				   KNOCK_KEYS_MAX, KNOCK_KEYS_MAX);
		r = r == 0 ? 1 : r;
	}
	clientkey_free(k);
	return r;
}

int knock_load_keys(struct knock_verifier *v, const char *dir,
		    struct diag *d)
{
	char dbuf[DIAG_VALUE_MAX + 8];
	char name[CLIENTKEY_NAME_MAX + 1];
	struct dirent *de;
	int loaded = 0, fd;
	DIR *dh;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dh = fd >= 0 ? fdopendir(fd) : NULL;
	if (dh == NULL) {
		int r = -errno;

		if (fd >= 0)
			close(fd);
		diag_error(d, "keys directory %s cannot be read: %s",
			   diag_string(dbuf, sizeof(dbuf), dir),
			   strerror(-r));
		return r;
	}
	knock_verifier_clear_keys(v);
	while ((de = readdir(dh)) != NULL) {
		char *path = NULL;

		if (!key_file_name(de->d_name, name))
			continue;
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
			diag_error(d, "keys directory %s: out of memory",
				   diag_string(dbuf, sizeof(dbuf), dir));
			break;
		}
		if (load_one(v, path, name, d) > 0)
			loaded++;
		free(path);
	}
	closedir(dh);
	return loaded;
}
