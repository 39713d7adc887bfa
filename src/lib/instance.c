/*
 * instance: one porthopd per table and network namespace. See instance.h
 * for the contract.
 */
#include "instance.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct instance {
	int fd;
	char key[80];
};

/* What c owns, as the claim's name. */
static void key_of(const struct config *c, char *key, size_t len)
{
	if (config_mode(c) == CONFIG_MODE_NATIVE)
		snprintf(key, len, "table inet %s", config_table_name(c));
	else
		snprintf(key, len, "ruleset");
}

struct instance *instance_claim(const struct config *c, char **ret_error)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct instance *i = calloc(1, sizeof(*i));
	socklen_t len;
	int e;

	if (i == NULL) {
		*ret_error = strdup("out of memory");
		return NULL;
	}
	key_of(c, i->key, sizeof(i->key));
	/* sun_path[0] = '\0': an abstract name, no file. */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			  (size_t)snprintf(sa.sun_path + 1,
					   sizeof(sa.sun_path) - 1,
					   "porthop %s", i->key));
	i->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (i->fd >= 0 && bind(i->fd, (struct sockaddr *)&sa, len) == 0)
		return i;
	e = errno;
	if ((e == EADDRINUSE ?
	     asprintf(ret_error, "another porthopd serves %s in this network "
		      "namespace; stop it first (two would undo each other's "
		      "rules)", i->key) :
	     asprintf(ret_error, "cannot claim %s: %s", i->key,
		      strerror(e))) < 0)
		*ret_error = NULL;
	if (i->fd >= 0)
		close(i->fd);
	free(i);
	errno = e;
	return NULL;
}

bool instance_same(const struct instance *i, const struct config *c)
{
	char key[sizeof(i->key)];

	key_of(c, key, sizeof(key));
	return strcmp(key, i->key) == 0;
}

void instance_free(struct instance *i)
{
	if (i == NULL)
		return;
	close(i->fd);
	free(i);
}
