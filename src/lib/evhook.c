/*
 * evhook: the hook command, spawned per merged event (see evhook.h).
 */
#include "evhook.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

struct child {
	pid_t pid;
	time_t started;		/* CLOCK_MONOTONIC seconds */
	bool killed;		/* SIGKILL sent (counted once) */
};

struct evhook {
	char **argv;
	struct event *reaper;
	struct child kids[EVHOOK_CHILDREN];
	size_t nkids;
	double tokens, per_minute;
	struct timespec refilled;
	uint64_t runs, failures, killed;
};

static char env_path[] =
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
static char env_lang[] = "LANG=C.UTF-8";
static char *const hook_env[] = { env_path, env_lang, NULL };

static void reap(struct evhook *h, bool kill_all)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	for (size_t i = 0; i < h->nkids;) {
		struct child *c = &h->kids[i];
		int st = 0;
		pid_t r;

		if (kill_all)
			kill(c->pid, SIGKILL);
		else if (!c->killed &&
			 now.tv_sec - c->started >= EVHOOK_TIMEOUT_S &&
			 kill(c->pid, SIGKILL) == 0)
			c->killed = true;
		r = waitpid(c->pid, &st, kill_all ? 0 : WNOHANG);
		if (r == 0) {
			i++;
			continue;
		}
		if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			h->failures++;
		/* Counted once reaped, so a kill is always a failure too. */
		if (c->killed)
			h->killed++;
		*c = h->kids[--h->nkids];
	}
}

static void on_reaper(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	reap(arg, false);
}

struct evhook *evhook_new(struct event_base *base, char *const *argv,
			  unsigned per_minute)
{
	struct evhook *h = calloc(1, sizeof(*h));
	struct timeval second = { 1, 0 };
	size_t n = 0;

	if (h == NULL)
		return NULL;
	while (argv[n])
		n++;
	h->argv = calloc(n + 1, sizeof(*h->argv));
	for (size_t i = 0; h->argv && i < n; i++)
		if ((h->argv[i] = strdup(argv[i])) == NULL)
			goto fail;
	h->reaper = event_new(base, -1, EV_PERSIST, on_reaper, h);
	if (h->argv == NULL || h->reaper == NULL ||
	    evtimer_add(h->reaper, &second) < 0)
		goto fail;
	h->per_minute = per_minute;
	h->tokens = per_minute;
	clock_gettime(CLOCK_MONOTONIC, &h->refilled);
	return h;
fail:
	evhook_free(h);
	return NULL;
}

void evhook_free(struct evhook *h)
{
	if (h == NULL)
		return;
	reap(h, true);
	if (h->reaper)
		event_free(h->reaper);
	for (size_t i = 0; h->argv && h->argv[i]; i++)
		free(h->argv[i]);
	free(h->argv);
	free(h);
}

/* The token bucket: per_minute tokens at most, refilled continuously. */
static bool take_token(struct evhook *h)
{
	struct timespec now;
	double dt;

	clock_gettime(CLOCK_MONOTONIC, &now);
	dt = (double)(now.tv_sec - h->refilled.tv_sec) +
	     (double)(now.tv_nsec - h->refilled.tv_nsec) / 1e9;
	h->refilled = now;
	h->tokens += dt * h->per_minute / 60.0;
	if (h->tokens > h->per_minute)
		h->tokens = h->per_minute;
	if (h->tokens < 1.0)
		return false;
	h->tokens -= 1.0;
	return true;
}

int evhook_run(struct evhook *h, const char *json, size_t len)
{
	posix_spawn_file_actions_t fa;
	int fds[2], r;
	struct timespec now;
	char line[PIPE_BUF];
	pid_t pid;

	if (len + 1 > sizeof(line))
		return -E2BIG;
	if (h->nkids == EVHOOK_CHILDREN)
		reap(h, false);		/* room made by those that ended */
	if (h->nkids == EVHOOK_CHILDREN || !take_token(h))
		return -EAGAIN;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	memcpy(line, json, len);
	line[len] = '\n';
	/* An empty pipe takes PIPE_BUF bytes at once: never blocks. */
	if (write(fds[1], line, len + 1) != (ssize_t)(len + 1)) {
		r = -EIO;
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	close(fds[1]);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[0], STDIN_FILENO);
	posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
	r = posix_spawn(&pid, h->argv[0], &fa, NULL, h->argv, hook_env);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[0]);
	if (r != 0)
		return -r;
	clock_gettime(CLOCK_MONOTONIC, &now);
	h->kids[h->nkids++] = (struct child){ pid, now.tv_sec, false };
	h->runs++;
	return 0;
}

uint64_t evhook_runs(const struct evhook *h)
{
	return h ? h->runs : 0;
}

uint64_t evhook_failures(const struct evhook *h)
{
	return h ? h->failures : 0;
}

uint64_t evhook_killed(const struct evhook *h)
{
	return h ? h->killed : 0;
}
