/*
 * statefile_sync: the state file's background commit.  One thread of the
 * state file's own runs the group commit's fdatasync() while porthopd's
 * loop goes on (the next read applied to the kernel meanwhile); an
 * eventfd tells the loop it is done.  What a commit means is unchanged
 * (see statefile.h): the caller answers the group's requesters only at
 * statefile_commit_end.
 */
#include "statefile_private.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct statefile_syncer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int efd;		/* readable once a sync is done */
	int fd;			/* the file the thread syncs next */
	bool asked;		/* a sync is asked, not yet started */
	bool busy;		/* asked or running, not yet taken */
	bool quit;
	int result;		/* the last sync's: 0 or -errno */
};

static void *syncer_main(void *arg)
{
	struct statefile_syncer *y = arg;
	const uint64_t one = 1;

	/* Its own name, for top -H and /proc (15 characters at most). */
	(void)pthread_setname_np(pthread_self(), "porthopd-sync");
	pthread_mutex_lock(&y->lock);
	for (;;) {
		int fd, r;

		while (!y->asked && !y->quit)
			pthread_cond_wait(&y->cond, &y->lock);
		if (!y->asked)
			break;	/* quit, nothing left to sync */
		y->asked = false;
		fd = y->fd;
		pthread_mutex_unlock(&y->lock);
		r = fdatasync(fd) < 0 ? -errno : 0;
		pthread_mutex_lock(&y->lock);
		y->result = r;
		y->busy = false;
		pthread_cond_broadcast(&y->cond);
		/* A full counter cannot happen: one sync at a time, each
		 * taken before the next is asked. */
		(void)!write(y->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&y->lock);
	return NULL;
}

static void syncer_free(struct statefile_syncer *y)
{
	pthread_mutex_lock(&y->lock);
	y->quit = true;
	pthread_cond_broadcast(&y->cond);
	pthread_mutex_unlock(&y->lock);
	pthread_join(y->thread, NULL);
	pthread_cond_destroy(&y->cond);
	pthread_mutex_destroy(&y->lock);
	close(y->efd);
	free(y);
}

int statefile_background(struct statefile *s)
{
	struct statefile_syncer *y;
	int r;

	if (s->syncer)
		return s->syncer->efd;
	y = calloc(1, sizeof(*y));
	if (y == NULL)
		return -ENOMEM;
	y->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (y->efd < 0) {
		r = -errno;
		free(y);
		return r;
	}
	pthread_mutex_init(&y->lock, NULL);
	pthread_cond_init(&y->cond, NULL);
	r = -pthread_create(&y->thread, NULL, syncer_main, y);
	if (r < 0) {
		pthread_cond_destroy(&y->cond);
		pthread_mutex_destroy(&y->lock);
		close(y->efd);
		free(y);
		return r;
	}
	s->syncer = y;
	return y->efd;
}

bool statefile_committing(const struct statefile *s)
{
	return s->sync_nrec > 0;
}

int statefile_commit_begin(struct statefile *s, char **ret_error)
{
	struct statefile_syncer *y = s->syncer;
	int r;

	if (statefile_committing(s))
		return -EBUSY;
	if (y == NULL) {
		r = statefile_commit(s, ret_error);
		return r < 0 ? r : 0;
	}
	if (s->nbuf == 0)
		return 0;
	r = statefile_commit_write(s, ret_error);
	if (r < 0)
		return r;
	pthread_mutex_lock(&y->lock);
	y->fd = s->fd;
	y->asked = y->busy = true;
	pthread_cond_broadcast(&y->cond);
	pthread_mutex_unlock(&y->lock);
	return 1;
}

int statefile_commit_end(struct statefile *s, char **ret_error)
{
	struct statefile_syncer *y = s->syncer;
	uint64_t n;
	int r;

	if (!statefile_committing(s) || y == NULL)
		return 0;
	pthread_mutex_lock(&y->lock);
	while (y->busy)
		pthread_cond_wait(&y->cond, &y->lock);
	r = y->result;
	pthread_mutex_unlock(&y->lock);
	(void)!read(y->efd, &n, sizeof(n));
	s->st.syncs++;
	return statefile_commit_finish(s, r, ret_error);
}

void statefile_syncer_free(struct statefile *s)
{
	if (s->syncer == NULL)
		return;
	if (statefile_committing(s))
		(void)statefile_commit_end(s, NULL);
	syncer_free(s->syncer);
	s->syncer = NULL;
}
