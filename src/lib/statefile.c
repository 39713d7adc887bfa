/*
 * statefile: the runtime watch list on disk. See statefile.h for the
 * contract and the format.
 */
#include "statefile_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "diag.h"


const char *const statefile_proto_names[CONFIG_NPROTO] = { "tcp", "udp" };

/* "state file PATH: " + what, the path JSON-encoded; returns -err. */
int statefile_error(char **ret, int err, const char *path, const char *fmt,
		      ...)
{
	char q[DIAG_VALUE_MAX + 8], *what = NULL;
	va_list ap;

	if (ret == NULL)
		return -err;
	va_start(ap, fmt);
	if (vasprintf(&what, fmt, ap) < 0)
		what = NULL;
	va_end(ap);
	if (asprintf(ret, "state file %s: %s", diag_string(q, sizeof(q), path),
		     what ? what : "out of memory") < 0)
		*ret = NULL;
	free(what);
	return -err;
}

bool statefile_origin_valid(const char *s, size_t len)
{
	if (len == 0 || len > WATCHLIST_ORIGIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_' || s[i] == '.' || s[i] == '-'))
			return false;
	return true;
}

/* The network as the file writes it: canonical, as config_parse_net
 * renders it (so that what is written always reads back). */
bool statefile_net_valid(const struct config_net *n)
{
	struct config_net p;

	return memchr(n->text, '\0', sizeof(n->text)) != NULL &&
	       config_parse_net(n->text, true, &p) == 0 &&
	       strcmp(p.text, n->text) == 0;
}

bool statefile_ports_valid(const uint16_t *p, size_t n)
{
	if (n > 0 && p == NULL)
		return false;
	for (size_t i = 1; i < n; i++)
		if (p[i] <= p[i - 1])
			return false;
	return true;
}

int statefile_sync_dir(struct statefile *s)
{
	return fsync(s->dirfd) < 0 ? -errno : 0;
}

struct statefile *statefile_open(const char *dir, char **ret_error)
{
	struct statefile *s;
	struct stat st;
	int e;

	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		statefile_error(ret_error, ENOMEM, dir, "out of memory");
		return NULL;
	}
	s->dirfd = -1;
	s->fd = -1;
	if ((s->dir = strdup(dir)) == NULL ||
	    asprintf(&s->path, "%s/%s", dir, STATEFILE_NAME) < 0) {
		s->path = NULL;
		statefile_error(ret_error, ENOMEM, dir, "out of memory");
		goto fail;
	}
	/* Only the last component: a missing parent is a mistake in the
	 * configuration, not something to build. */
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		e = errno;
		statefile_error(ret_error, e, s->path, "creating its directory: %s",
			   strerror(e));
		goto fail;
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0 || fstat(s->dirfd, &st) < 0) {
		e = errno;
		statefile_error(ret_error, e, s->path, "its directory: %s",
			   strerror(e));
		goto fail;
	}
	/* Two daemons (two tables) appending to one file would interleave
	 * their journals: each needs a state_directory of its own. */
	if (flock(s->dirfd, LOCK_EX | LOCK_NB) < 0) {
		e = errno;
		statefile_error(ret_error, e, s->path, "its directory is %s",
			   e == EWOULDBLOCK ? "in use by another porthopd; "
			   "expected a state_directory for each" :
			   strerror(e));
		goto fail;
	}
	return s;
fail:
	statefile_free(s);
	return NULL;
}

void statefile_free(struct statefile *s)
{
	if (s == NULL)
		return;
	if (s->fd >= 0)
		close(s->fd);
	if (s->dirfd >= 0)
		close(s->dirfd);	/* and the lock with it */
	for (int p = 0; p < CONFIG_NPROTO; p++)
		free(s->ports[p]);
	free(s->buf);
	free(s->path);
	free(s->dir);
	free(s);
}

/* Makes room for n more bytes in the buffer. */
static int reserve(struct statefile *s, size_t n)
{
	size_t cap;
	char *b;

	if (s->cap - s->len >= n)
		return 0;
	cap = s->cap ? s->cap : 4096;
	while (cap - s->len < n) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	b = realloc(s->buf, cap);
	if (b == NULL)
		return -ENOMEM;
	s->buf = b;
	s->cap = cap;
	return 0;
}

/* Appends a `+` record for it to the buffer at its end. */
static int append_put(struct statefile *s, const struct watchlist_item *it)
{
	size_t need;
	int n;

	if (!statefile_net_valid(&it->net) ||
	    !statefile_origin_valid(it->origin, strnlen(it->origin, sizeof(it->origin))) ||
	    it->added < 0 || it->expires < 0 ||
	    it->added > 999999999999999999LL ||
	    it->expires > 999999999999999999LL)
		return -EINVAL;
	for (int p = 0; p < CONFIG_NPROTO; p++)
		if (!statefile_ports_valid(it->ignore[p], it->nignore[p]))
			return -EINVAL;
	/* Two words of up to 19 characters, a space before each; 6 bytes a
	 * port at most; "tcp=" and a space a list. */
	need = 2 + sizeof(it->net.text) + 1 + sizeof(it->origin) + 2 * 20 +
	       2 * 6 + 6 * (it->nignore[0] + it->nignore[1]) + 2;
	if (reserve(s, need) < 0)
		return -ENOMEM;
	n = snprintf(s->buf + s->len, s->cap - s->len, "+ %s %s %lld %lld",
		     it->net.text, it->origin, (long long)it->added,
		     (long long)it->expires);
	s->len += (size_t)n;
	for (int p = 0; p < CONFIG_NPROTO; p++) {
		for (size_t i = 0; i < it->nignore[p]; i++) {
			if (i == 0)
				n = snprintf(s->buf + s->len, s->cap - s->len,
					     " %s=%u", statefile_proto_names[p],
					     (unsigned)it->ignore[p][i]);
			else
				n = snprintf(s->buf + s->len, s->cap - s->len,
					     ",%u", (unsigned)it->ignore[p][i]);
			s->len += (size_t)n;
		}
	}
	s->buf[s->len++] = '\n';
	return 0;
}

int statefile_put(struct statefile *s, const struct watchlist_item *it)
{
	int r = append_put(s, it);

	if (r == 0)
		s->nbuf++;
	return r;
}

int statefile_del(struct statefile *s, const struct config_net *net,
		  const char *origin)
{
	size_t olen;

	if (!statefile_net_valid(net) || origin == NULL ||
	    !statefile_origin_valid(origin, strnlen(origin, WATCHLIST_ORIGIN_MAX + 1)))
		return -EINVAL;
	olen = strlen(origin);
	if (reserve(s, 4 + strlen(net->text) + olen + 1) < 0)
		return -ENOMEM;
	s->len += (size_t)sprintf(s->buf + s->len, "- %s %s\n", net->text,
				  origin);
	s->nbuf++;
	return 0;
}

int statefile_flush_origin(struct statefile *s, const char *origin)
{
	size_t olen;

	if (origin == NULL ||
	    !statefile_origin_valid(origin, strnlen(origin, WATCHLIST_ORIGIN_MAX + 1)))
		return -EINVAL;
	olen = strlen(origin);
	if (reserve(s, 3 + olen + 1) < 0)
		return -ENOMEM;
	s->len += (size_t)sprintf(s->buf + s->len, "! %s\n", origin);
	s->nbuf++;
	return 0;
}

bool statefile_pending(const struct statefile *s)
{
	return s->nbuf > 0;
}

void statefile_discard(struct statefile *s)
{
	s->len = 0;
	s->nbuf = 0;
}

/* Writes all of buf to fd. */
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

int statefile_commit(struct statefile *s, char **ret_error)
{
	size_t nrec = s->nbuf, len = s->len;
	struct timespec t0, t1;
	int r;

	if (s->nbuf == 0)
		return 0;
	if (s->fd < 0 || s->broken) {
		statefile_discard(s);
		s->st.commit_failures++;
		return statefile_error(ret_error, EIO, s->path, !s->loaded ?
				  "not loaded" : "a failed write could not be "
				  "undone; nothing is written until a new "
				  "snapshot replaces the file");
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = write_all(s->fd, s->buf, s->len);
	if (r == 0) {
		r = fdatasync(s->fd) < 0 ? -errno : 0;
		s->st.syncs++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s->st.commit_ms += (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			   (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	statefile_discard(s);
	if (r < 0) {
		s->st.commit_failures++;
		/* Cut back, so that a half-written group never replays.  After
		 * a failed fdatasync() the page cache cannot be trusted
		 * either: the cut is synced too. */
		if (ftruncate(s->fd, (off_t)s->committed) < 0 ||
		    fdatasync(s->fd) < 0)
			s->broken = true;
		return statefile_error(ret_error, -r, s->path, "writing %zu "
				  "record%s: %s; none of them kept", nrec,
				  nrec == 1 ? "" : "s", strerror(-r));
	}
	s->committed += len;
	s->st.commits++;
	s->st.journal_records += nrec;
	s->st.file_bytes = s->committed;
	return 0;
}

/* The snapshot writer: records go through a buffer to the temporary
 * file. */
struct snap {
	struct statefile *s;
	int fd;
	char *buf;
	size_t len, cap;
	uint64_t written, records;
	int err;		/* the first write error */
};

static int snap_flush(struct snap *w)
{
	int r;

	if (w->err == 0 && w->len > 0) {
		r = write_all(w->fd, w->buf, w->len);
		if (r < 0)
			w->err = r;
		else
			w->written += w->len;
	}
	w->len = 0;
	return w->err;
}

static int emit(void *ctx, const struct watchlist_item *it)
{
	struct snap *w = ctx;
	struct statefile *s = w->s;
	int r;

	/* The statefile's own buffer builds the line (it is empty: the
	 * snapshot supersedes it); then it moves to the snapshot's. */
	s->len = 0;
	r = append_put(s, it);
	if (r < 0)
		return r;
	if (w->len + s->len > w->cap && snap_flush(w) < 0)
		return w->err;
	if (s->len > w->cap) {
		/* A line longer than the buffer (long port lists). */
		r = write_all(w->fd, s->buf, s->len);
		if (r < 0)
			return w->err = r;
		w->written += s->len;
	} else {
		memcpy(w->buf + w->len, s->buf, s->len);
		w->len += s->len;
	}
	w->records++;
	return 0;
}

int statefile_rewrite(struct statefile *s,
		      int (*each)(void *arg,
				  int (*emit)(void *ctx,
					      const struct watchlist_item *it),
				  void *ctx),
		      void *arg, char **ret_error)
{
	struct snap w = { .s = s, .fd = -1, .cap = 1u << 16 };
	char *saved = NULL;
	size_t saved_len = s->len, saved_nbuf = s->nbuf;
	const char *what = "writing";
	int r, fd = -1;

	/* The caller's pending records are kept aside: emit() uses the
	 * buffer, and a failure must leave it as it was. */
	if (s->len > 0) {
		saved = malloc(s->len);
		if (saved == NULL)
			return statefile_error(ret_error, ENOMEM, s->path,
					  "out of memory");
		memcpy(saved, s->buf, s->len);
	}
	w.buf = malloc(w.cap);
	if (w.buf == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	/* A new file of our own: whatever the name holds (a link planted
	 * by whoever can write the directory) is removed, never followed. */
	if (unlinkat(s->dirfd, TMP_NAME, 0) < 0 && errno != ENOENT) {
		r = -errno;
		what = "removing an old " TMP_NAME;
		goto fail;
	}
	w.fd = openat(s->dirfd, TMP_NAME, O_WRONLY | O_CREAT | O_EXCL |
		      O_NOFOLLOW | O_CLOEXEC, 0600);
	if (w.fd < 0) {
		r = -errno;
		what = "creating " TMP_NAME;
		goto fail;
	}
	w.len = (size_t)snprintf(w.buf, w.cap, "%s%d\n", HEADER,
				 STATEFILE_VERSION);
	r = each ? each(arg, emit, &w) : 0;
	if (r == 0)
		r = snap_flush(&w);
	if (r < 0)
		goto fail;
	what = "syncing";
	if (fsync(w.fd) < 0) {
		r = -errno;
		goto fail;
	}
	s->st.syncs++;
	what = "replacing the file";
	if (renameat(s->dirfd, TMP_NAME, s->dirfd, STATEFILE_NAME) < 0) {
		r = -errno;
		goto fail;
	}
	/* Renamed: the new file is the state now, whatever follows. */
	what = "syncing its directory";
	r = statefile_sync_dir(s);
	close(w.fd);
	w.fd = -1;
	fd = openat(s->dirfd, STATEFILE_NAME, O_RDWR | O_APPEND | O_CLOEXEC |
		    O_NOFOLLOW);
	if (fd < 0 && r == 0) {
		r = -errno;
		what = "reopening the new file";
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = fd;
	/* Renamed but perhaps not durably (or not reopened): the file on
	 * disk may not be what the caller will believe after this error,
	 * so nothing more is appended until a rewrite succeeds. */
	s->broken = r < 0;
	s->committed = w.written;
	statefile_discard(s);
	s->st.rewrites++;
	s->st.journal_records = 0;
	s->st.file_bytes = w.written;
	free(saved);
	free(w.buf);
	if (r < 0)
		return statefile_error(ret_error, -r, s->path, "new snapshot: %s: %s",
				  what, strerror(-r));
	return 0;
fail:
	if (w.fd >= 0) {
		close(w.fd);
		unlinkat(s->dirfd, TMP_NAME, 0);
	}
	free(w.buf);
	s->len = saved_len;
	s->nbuf = saved_nbuf;
	if (saved)
		memcpy(s->buf, saved, saved_len);
	free(saved);
	return statefile_error(ret_error, -r, s->path, "new snapshot: %s: %s", what,
			  strerror(-r));
}

bool statefile_should_rewrite(const struct statefile *s, size_t live)
{
	return s->st.journal_records > live &&
	       s->st.journal_records > STATEFILE_REWRITE_MIN;
}

const char *statefile_path(const struct statefile *s)
{
	return s->path;
}

void statefile_get_stats(const struct statefile *s,
			 struct statefile_stats *ret)
{
	*ret = s->st;
	ret->pending_records = s->nbuf;
}
