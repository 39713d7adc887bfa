/*
 * instance: one porthopd per table and network namespace. See instance.h
 * for the contract.
 */
#include "instance.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct instance {
	int fd;
	char key[80];		/* what is claimed: "table inet NAME" */
	char path[160];		/* the lock file */
};

/* What c owns, as the claim's name. */
static void key_of(const struct config *c, char *key, size_t len)
{
	if (config_mode(c) == CONFIG_MODE_NATIVE)
		snprintf(key, len, "table inet %s", config_table_name(c));
	else
		snprintf(key, len, "ruleset");
}

static struct instance *refuse(struct instance *i, int e, char **ret_error)
{
	int n = e == EWOULDBLOCK ?
		asprintf(ret_error, "another porthopd serves %s in this "
			 "network namespace; stop it first (two would undo "
			 "each other's rules)", i->key) :
		asprintf(ret_error, "cannot claim %s (%s): %s", i->key,
			 i->path, strerror(e));

	if (n < 0)
		*ret_error = NULL;
	if (i->fd >= 0)
		close(i->fd);
	free(i);
	errno = e;
	return NULL;
}

struct instance *instance_claim(const char *dir, const struct config *c,
				char **ret_error)
{
	struct instance *i = calloc(1, sizeof(*i));
	struct stat ns, held, now;
	char *sp;

	if (i == NULL) {
		*ret_error = strdup("out of memory");
		return NULL;
	}
	i->fd = -1;
	key_of(c, i->key, sizeof(i->key));
	/* The lock file: in the directory only root writes, named after the
	 * network namespace (its inode) and the key.  A lock, not a name:
	 * nobody else can hold it, and it goes with the process however it
	 * ends. */
	if (stat("/proc/self/ns/net", &ns) < 0)
		return refuse(i, errno, ret_error);
	snprintf(i->path, sizeof(i->path), "%s/claim-%llu-%s.lock", dir,
		 (unsigned long long)ns.st_ino, i->key);
	for (sp = strchr(i->path, ' '); sp; sp = strchr(sp, ' '))
		*sp = '_';
	/* Made here if missing; its owner and mode are rundir_prepare's. */
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return refuse(i, errno, ret_error);
	/* A file unlinked by the holder between our open and our lock is
	 * not the claim: open the path again. */
	for (int attempt = 0; attempt < 5; attempt++) {
		i->fd = open(i->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
			     0600);
		if (i->fd < 0)
			return refuse(i, errno, ret_error);
		if (flock(i->fd, LOCK_EX | LOCK_NB) < 0)
			return refuse(i, errno, ret_error);
		if (fstat(i->fd, &held) == 0 && stat(i->path, &now) == 0 &&
		    held.st_ino == now.st_ino && held.st_dev == now.st_dev)
			return i;
		close(i->fd);
		i->fd = -1;
	}
	return refuse(i, EAGAIN, ret_error);
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
	/* Unlinked while held: nothing is left behind, and whoever opened
	 * it meanwhile finds it no longer the claim (see instance_claim). */
	unlink(i->path);
	close(i->fd);
	free(i);
}
