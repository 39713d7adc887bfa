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

/* A held lock: the file's path and descriptor. */
struct lock {
	int fd;
	char path[160];
};

struct instance {
	char key[80];		/* what is claimed: "table inet NAME" */
	/* The ruleset's lock, shared by native instances (each owns one
	 * table), exclusive in template mode (which flushes the ruleset);
	 * and native mode's table lock, exclusive. */
	struct lock ruleset, table;
};

/* What c owns, as the claim's name. */
static void key_of(const struct config *c, char *key, size_t len)
{
	if (config_mode(c) == CONFIG_MODE_NATIVE)
		snprintf(key, len, "table inet %s", config_table_name(c));
	else
		snprintf(key, len, "ruleset");
}

/* Takes the lock named name in dir for this network namespace (ns, its
 * inode), shared or exclusive (op), without waiting.  0 or a negative
 * errno (-EWOULDBLOCK: held by another). */
static int take(struct lock *l, const char *dir, unsigned long long ns,
		const char *name, int op)
{
	struct stat held, now;

	snprintf(l->path, sizeof(l->path), "%s/claim-%llu-%s.lock", dir, ns,
		 name);
	for (char *sp = strchr(l->path, ' '); sp; sp = strchr(sp, ' '))
		*sp = '_';
	/* A file unlinked by its last holder between our open and our lock
	 * is not the claim: open the path again. */
	for (int attempt = 0; attempt < 5; attempt++) {
		l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
			     0600);
		if (l->fd < 0)
			return -errno;
		if (flock(l->fd, op | LOCK_NB) < 0) {
			int e = errno;

			close(l->fd);
			l->fd = -1;
			return -e;
		}
		if (fstat(l->fd, &held) == 0 && stat(l->path, &now) == 0 &&
		    held.st_ino == now.st_ino && held.st_dev == now.st_dev)
			return 0;
		close(l->fd);
		l->fd = -1;
	}
	return -EAGAIN;
}

/* Lets a lock go.  Whoever held it alone unlinks the file: nothing is left
 * behind, and whoever opened it meanwhile finds it no longer the claim
 * (see take).  A shared one still held by others stays. */
static void release(struct lock *l)
{
	if (l->fd < 0)
		return;
	if (flock(l->fd, LOCK_EX | LOCK_NB) == 0)
		unlink(l->path);
	close(l->fd);
	l->fd = -1;
}

/* The ruleset's lock of held, moved into i in the mode i needs (a
 * reload that switches mode converts the lock it holds rather than ask
 * for a second one, which its own would block).  flock() converts by
 * letting go first: a failed conversion takes the old mode back. */
static int convert(struct lock *to, struct lock *held, int op)
{
	int old = op == LOCK_SH ? LOCK_EX : LOCK_SH;

	if (flock(held->fd, op | LOCK_NB) < 0) {
		int e = errno;

		if (flock(held->fd, old | LOCK_NB) < 0)
			return -errno;	/* lost: held->fd keeps no lock */
		return -e;
	}
	*to = *held;
	held->fd = -1;
	return 0;
}

struct instance *instance_claim(const char *dir, const struct config *c,
				char **ret_error)
{
	return instance_reclaim(dir, c, NULL, ret_error);
}

struct instance *instance_reclaim(const char *dir, const struct config *c,
				  struct instance *held, char **ret_error)
{
	struct instance *i = calloc(1, sizeof(*i));
	bool native = config_mode(c) == CONFIG_MODE_NATIVE;
	struct lock *failed = NULL;
	struct stat ns;
	int r;

	if (i == NULL) {
		*ret_error = strdup("out of memory");
		return NULL;
	}
	i->ruleset.fd = i->table.fd = -1;
	key_of(c, i->key, sizeof(i->key));
	/* In the directory only root writes, named after the network
	 * namespace: nobody else can take them first, and they go with the
	 * process however it ends.  Made here if missing; its owner and
	 * mode are rundir_prepare's. */
	r = stat("/proc/self/ns/net", &ns) < 0 ||
	    (mkdir(dir, 0750) < 0 && errno != EEXIST) ? -errno : 0;
	if (r == 0) {
		bool held_native = held && held->table.fd >= 0;

		failed = &i->ruleset;
		if (held && held->ruleset.fd >= 0 && held_native != native)
			r = convert(&i->ruleset, &held->ruleset,
				    native ? LOCK_SH : LOCK_EX);
		else
			r = take(&i->ruleset, dir, (unsigned long long)ns.st_ino,
				 "ruleset", native ? LOCK_SH : LOCK_EX);
	}
	if (r == 0 && native) {
		failed = &i->table;
		r = take(&i->table, dir, (unsigned long long)ns.st_ino, i->key,
			 LOCK_EX);
	}
	if (r == 0)
		return i;
	if (r != -EWOULDBLOCK) {
		if (asprintf(ret_error, "cannot claim %s (%s): %s", i->key,
			     failed ? failed->path : dir, strerror(-r)) < 0)
			*ret_error = NULL;
	} else if (failed == &i->table) {
		if (asprintf(ret_error, "another porthopd serves %s in this "
			     "network namespace; stop it first (two would undo "
			     "each other's rules)", i->key) < 0)
			*ret_error = NULL;
	} else {
		*ret_error = strdup(native ?
			"a porthopd in template mode serves this network "
			"namespace's whole ruleset (it flushes it); stop it "
			"first" :
			"a porthopd in native mode serves a table in this "
			"network namespace, which template mode's flush "
			"ruleset would take away; stop it first");
	}
	/* A converted lock goes back to its holder, in its old mode. */
	if (held && held->ruleset.fd < 0 && i->ruleset.fd >= 0 &&
	    (held->table.fd >= 0) != native) {
		held->ruleset = i->ruleset;
		i->ruleset.fd = -1;
		flock(held->ruleset.fd, (native ? LOCK_EX : LOCK_SH) | LOCK_NB);
	}
	instance_free(i);
	errno = -r;
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
	release(&i->table);
	release(&i->ruleset);
	free(i);
}
