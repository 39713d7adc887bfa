/*
 * statefile: the runtime watch list on disk. See statefile.h for the
 * contract and the format.
 */
#include "statefile.h"

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

#define HEADER "porthop-state "
#define TMP_NAME STATEFILE_NAME ".tmp"
/* Ports in one list at most: every port once. */
#define PORTS_MAX 65536

struct statefile {
	char *dir;
	char *path;		/* dir/runtime.state */
	int dirfd;		/* locked: one porthopd per directory */
	int fd;			/* the file, O_APPEND; -1 before load */
	bool loaded;
	bool broken;		/* a failed commit could not be cut back */
	uint64_t committed;	/* the file's length after the last commit */
	char *buf;		/* records not yet committed */
	size_t len, cap, nbuf;
	uint16_t *ports[CONFIG_NPROTO];	/* the loader's scratch lists */
	struct statefile_stats st;
};

/* One parsed line. */
struct record {
	char op;		/* '+', '-', '!' */
	struct watchlist_item it;
};

static const char *const proto_names[CONFIG_NPROTO] = { "tcp", "udp" };

/* "state file PATH: " + what, the path JSON-encoded; returns -err. */
static int file_error(char **ret, int err, const char *path, const char *fmt,
		      ...) DIAG_ATTR_PRINTF(4, 5);
static int file_error(char **ret, int err, const char *path, const char *fmt,
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

static bool origin_valid(const char *s, size_t len)
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
static bool net_valid(const struct config_net *n)
{
	struct config_net p;

	return memchr(n->text, '\0', sizeof(n->text)) != NULL &&
	       config_parse_net(n->text, true, &p) == 0 &&
	       strcmp(p.text, n->text) == 0;
}

static bool ports_valid(const uint16_t *p, size_t n)
{
	if (n > 0 && p == NULL)
		return false;
	for (size_t i = 1; i < n; i++)
		if (p[i] <= p[i - 1])
			return false;
	return true;
}

static int sync_dir(struct statefile *s)
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
		file_error(ret_error, ENOMEM, dir, "out of memory");
		return NULL;
	}
	s->dirfd = -1;
	s->fd = -1;
	if ((s->dir = strdup(dir)) == NULL ||
	    asprintf(&s->path, "%s/%s", dir, STATEFILE_NAME) < 0) {
		s->path = NULL;
		file_error(ret_error, ENOMEM, dir, "out of memory");
		goto fail;
	}
	/* Only the last component: a missing parent is a mistake in the
	 * configuration, not something to build. */
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		e = errno;
		file_error(ret_error, e, s->path, "creating its directory: %s",
			   strerror(e));
		goto fail;
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0 || fstat(s->dirfd, &st) < 0) {
		e = errno;
		file_error(ret_error, e, s->path, "its directory: %s",
			   strerror(e));
		goto fail;
	}
	/* Two daemons (two tables) appending to one file would interleave
	 * their journals: each needs a state_directory of its own. */
	if (flock(s->dirfd, LOCK_EX | LOCK_NB) < 0) {
		e = errno;
		file_error(ret_error, e, s->path, "its directory is %s",
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

/* Reads a file a line at a time, lines of up to STATEFILE_LINE_MAX bytes,
 * with a bounded buffer whatever the file holds. */
struct reader {
	int fd;
	char *buf;
	size_t cap, start, end;
	bool eof;
	uint64_t consumed;	/* bytes of the lines returned, newlines too */
};

/* 1: a line in *ret (NUL-terminated in place, without its newline);
 * *ret_torn when it had no newline (the end of the file).  0: the end.
 * -E2BIG: a line too long.  Other negative errno: a read error. */
static int reader_next(struct reader *r, char **ret, size_t *ret_len,
		       bool *ret_torn)
{
	for (;;) {
		char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
		ssize_t n;

		if (nl) {
			*ret = r->buf + r->start;
			*ret_len = (size_t)(nl - *ret);
			*nl = '\0';
			r->start += *ret_len + 1;
			r->consumed += *ret_len + 1;
			*ret_torn = false;
			return 1;
		}
		if (r->eof) {
			if (r->start == r->end)
				return 0;
			*ret = r->buf + r->start;
			*ret_len = r->end - r->start;
			r->buf[r->end] = '\0';	/* cap leaves room */
			r->start = r->end;
			*ret_torn = true;
			return 1;
		}
		if (r->end - r->start > STATEFILE_LINE_MAX)
			return -E2BIG;
		if (r->start > 0) {
			memmove(r->buf, r->buf + r->start, r->end - r->start);
			r->end -= r->start;
			r->start = 0;
		}
		n = read(r->fd, r->buf + r->end, r->cap - 1 - r->end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			r->eof = true;
		r->end += (size_t)n;
	}
}

/* A decimal number of at most 18 digits (no sign, no leading zero but
 * "0"): epoch seconds, far beyond any date, never overflowing. */
static bool parse_time(const char *t, int64_t *ret)
{
	int64_t v = 0;
	size_t n = strlen(t);

	if (n == 0 || n > 18 || (n > 1 && t[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (t[i] < '0' || t[i] > '9')
			return false;
		v = v * 10 + (t[i] - '0');
	}
	*ret = v;
	return true;
}

/* "P,P,.." into ports (strictly increasing, each 0..65535). */
static bool parse_ports(const char *t, uint16_t *ports, size_t *ret_n)
{
	size_t n = 0;

	for (;;) {
		unsigned v = 0;
		size_t digits = 0;

		while (*t >= '0' && *t <= '9' && digits < 6) {
			v = v * 10 + (unsigned)(*t++ - '0');
			digits++;
		}
		if (digits == 0 || (digits > 1 && t[-(long)digits] == '0') ||
		    v > 65535 || n == PORTS_MAX || (n > 0 && v <= ports[n - 1]))
			return false;
		ports[n++] = (uint16_t)v;
		if (*t == '\0')
			break;
		if (*t++ != ',')
			return false;
	}
	*ret_n = n;
	return true;
}

/* The next space-separated word of *p (cut in place), or NULL.  Words are
 * separated by exactly one space: anything else is not a line we wrote. */
static char *word(char **p)
{
	char *w = *p, *sp;

	if (w == NULL || *w == '\0' || *w == ' ')
		return NULL;
	sp = strchr(w, ' ');
	if (sp) {
		*sp = '\0';
		*p = sp + 1;
	} else {
		*p = NULL;
	}
	return w;
}

/* Parses line (cut in place) into *r, the ports into s's scratch lists.
 * Returns NULL, or what is wrong with it. */
static const char *parse_record(struct statefile *s, char *line, size_t len,
				struct record *r)
{
	char *p = line, *op, *w;
	bool seen[CONFIG_NPROTO] = { false, false };

	memset(r, 0, sizeof(*r));
	if (memchr(line, '\0', len))
		return "a NUL byte";
	op = word(&p);
	if (op == NULL || op[1] != '\0' ||
	    (op[0] != '+' && op[0] != '-' && op[0] != '!'))
		return "not a record (expected +, - or ! and one space)";
	r->op = op[0];
	if (r->op != '!') {
		w = word(&p);
		if (w == NULL || config_parse_net(w, true, &r->it.net) < 0 ||
		    strcmp(w, r->it.net.text) != 0)
			return "a bad address or prefix";
	}
	w = word(&p);
	if (w == NULL || !origin_valid(w, strlen(w)))
		return "a bad origin";
	memcpy(r->it.origin, w, strlen(w) + 1);
	if (r->op != '+')
		return p == NULL ? NULL : "more words than the record has";
	w = word(&p);
	if (w == NULL || !parse_time(w, &r->it.added))
		return "a bad time added";
	w = word(&p);
	if (w == NULL || !parse_time(w, &r->it.expires))
		return "a bad expiry";
	while (p) {
		int proto;

		w = word(&p);
		if (w == NULL)
			return "a stray space";
		if (strncmp(w, "tcp=", 4) == 0)
			proto = CONFIG_TCP;
		else if (strncmp(w, "udp=", 4) == 0)
			proto = CONFIG_UDP;
		else
			return "an unknown word (expected tcp= or udp=)";
		/* In protocol order, each once: one way to write a record. */
		if (seen[proto] || (proto == CONFIG_TCP && seen[CONFIG_UDP]))
			return "a port list repeated or out of order";
		seen[proto] = true;
		if (!parse_ports(w + 4, s->ports[proto], &r->it.nignore[proto]))
			return "a bad port list (expected increasing ports "
			       "0-65535, comma-separated)";
		r->it.ignore[proto] = s->ports[proto];
	}
	return NULL;
}

/* "20260131T235959", UTC. */
static void stamp(char *buf, size_t len, int64_t now)
{
	time_t t = (time_t)now;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y%m%dT%H%M%S", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)now);
}

/* Renames the file aside, never over another: bad-STAMP, then
 * bad-STAMP.1, .2...  *ret_path is the new path. */
static int move_aside(struct statefile *s, int64_t now, char **ret_path)
{
	char ts[32], name[80];
	int r = -EEXIST;

	stamp(ts, sizeof(ts), now);
	for (int i = 0; i < 100 && r == -EEXIST; i++) {
		if (i == 0)
			snprintf(name, sizeof(name), "%s.bad-%s",
				 STATEFILE_NAME, ts);
		else
			snprintf(name, sizeof(name), "%s.bad-%s.%d",
				 STATEFILE_NAME, ts, i);
		r = renameat2(s->dirfd, STATEFILE_NAME, s->dirfd, name,
			      RENAME_NOREPLACE) < 0 ? -errno : 0;
	}
	if (r < 0)
		return r;
	(void)sync_dir(s);
	if (asprintf(ret_path, "%s/%s", s->dir, name) < 0) {
		*ret_path = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Checks the whole file (pass 1), or replays it (pass 2: the file was
 * checked, only callbacks can fail).  *ret_good is the length of its whole
 * lines, *ret_torn whether a torn last line follows; *ret_line and
 * *ret_why say what is wrong (r > 0 for a bad file). */
struct replay {
	int64_t now;
	int (*put)(void *arg, const struct watchlist_item *it);
	int (*del)(void *arg, const struct config_net *net,
		   const char *origin);
	int (*flush)(void *arg, const char *origin);
	void *arg;
};

static int scan(struct statefile *s, struct reader *rd,
		const struct replay *rp, uint64_t *ret_good, bool *ret_torn,
		uint64_t *ret_records, size_t *ret_line, const char **ret_why)
{
	uint64_t records = 0;
	size_t lineno = 0;
	struct record rec;
	bool torn = false;
	char *line = NULL;
	size_t len = 0;
	int r;

	while ((r = reader_next(rd, &line, &len, &torn)) == 1) {
		const char *why;

		lineno++;
		if (torn) {
			/* A crash cut the last append short.  Its group's
			 * fdatasync() never returned, so nobody was told it
			 * was kept: dropping the line loses nothing that was
			 * acknowledged. */
			break;
		}
		if (lineno == 1) {
			int64_t v;

			if (strncmp(line, HEADER, strlen(HEADER)) != 0 ||
			    !parse_time(line + strlen(HEADER), &v)) {
				*ret_line = lineno;
				*ret_why = "not a porthop state file (expected "
					   "\"porthop-state 1\")";
				return 1;
			}
			if (v != STATEFILE_VERSION) {
				*ret_line = lineno;
				*ret_why = v > STATEFILE_VERSION ?
					   "a newer version than this porthopd "
					   "reads (1)" : "an unknown version";
				return 1;
			}
			continue;
		}
		why = parse_record(s, line, len, &rec);
		if (why) {
			*ret_line = lineno;
			*ret_why = why;
			return 1;
		}
		records++;
		if (rp == NULL)
			continue;
		if (rec.op == '!')
			r = rp->flush(rp->arg, rec.it.origin);
		else if (rec.op == '-' ||
			 (rec.it.expires > 0 && rec.it.expires <= rp->now))
			r = rp->del(rp->arg, &rec.it.net, rec.it.origin);
		else
			r = rp->put(rp->arg, &rec.it);
		if (r < 0)
			return r;
	}
	if (r == -E2BIG) {
		*ret_line = lineno + 1;
		*ret_why = "a line too long";
		return 1;
	}
	if (r < 0)
		return r;
	if (lineno == 0 || (lineno == 1 && torn)) {
		/* Files are created whole (rename of a synced file): one
		 * without its header was not made by us. */
		*ret_line = 1;
		*ret_why = "no header line";
		return 1;
	}
	*ret_good = rd->consumed;	/* whole lines only */
	*ret_torn = torn;
	*ret_records = records;
	return 0;
}

/* Starts the journal on a new empty file (a snapshot of nothing). */
static int start_fresh(struct statefile *s, char **ret_error)
{
	return statefile_rewrite(s, NULL, NULL, ret_error);
}

int statefile_load(struct statefile *s, int64_t now,
		   int (*put)(void *arg, const struct watchlist_item *it),
		   int (*del)(void *arg, const struct config_net *net,
			      const char *origin),
		   int (*flush)(void *arg, const char *origin),
		   void *arg, char **ret_note)
{
	struct replay rp = { now, put, del, flush, arg };
	struct reader rd = { .fd = -1 };
	const char *why = NULL;
	char *aside = NULL, *err = NULL, *note = NULL, q[DIAG_VALUE_MAX + 8];
	char where[48];
	uint64_t good = 0, records = 0;
	size_t lineno = 0;
	bool torn = false;
	int r, e;

	if (ret_note)
		*ret_note = NULL;
	if (s->loaded)
		return -EALREADY;
	s->loaded = true;
	for (int p = 0; p < CONFIG_NPROTO; p++)
		if (s->ports[p] == NULL &&
		    (s->ports[p] = malloc(PORTS_MAX * sizeof(uint16_t))) == NULL)
			return file_error(ret_note, ENOMEM, s->path,
					  "out of memory");
	/* Never through a symbolic link, and a regular file only: a FIFO
	 * would block the loop in read() for ever, a link would have root
	 * append to whatever it names. */
	rd.fd = openat(s->dirfd, STATEFILE_NAME, O_RDWR | O_APPEND | O_CLOEXEC |
		       O_NOFOLLOW | O_NONBLOCK);
	if (rd.fd < 0 && errno == ENOENT)
		return start_fresh(s, ret_note);
	if (rd.fd < 0) {
		e = errno;
		lineno = 0;
		why = e == ELOOP ? "a symbolic link, not a regular file" :
				   strerror(e);
		goto bad;
	}
	{
		struct stat st;

		if (fstat(rd.fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    fcntl(rd.fd, F_SETFL, O_RDWR | O_APPEND) < 0) {
			lineno = 0;
			why = "not a regular file";
			goto bad;
		}
	}
	rd.cap = STATEFILE_LINE_MAX + 2;
	rd.buf = malloc(rd.cap);
	if (rd.buf == NULL) {
		r = file_error(ret_note, ENOMEM, s->path, "out of memory");
		goto out;
	}
	r = scan(s, &rd, NULL, &good, &torn, &records, &lineno, &why);
	if (r < 0) {
		why = strerror(-r);	/* a read error: the file is unusable */
		lineno = 0;
		goto bad;
	}
	if (r > 0)
		goto bad;
	/* Checked whole: now replay it, reading it again (holding every
	 * record in memory instead could cost hundreds of megabytes). */
	if (lseek(rd.fd, 0, SEEK_SET) < 0) {
		why = strerror(errno);
		goto bad;
	}
	rd.start = rd.end = 0;
	rd.eof = false;
	rd.consumed = 0;
	r = scan(s, &rd, &rp, &good, &torn, &records, &lineno, &why);
	if (r != 0) {
		/* The file changed under us (r > 0), or a callback failed. */
		if (r > 0)
			r = -EIO;
		if (ret_note && *ret_note == NULL)
			file_error(ret_note, -r, s->path, "replaying line %zu: "
				   "%s", lineno, strerror(-r));
		goto out;
	}
	if (torn) {
		if (ftruncate(rd.fd, (off_t)good) < 0 || fdatasync(rd.fd) < 0) {
			e = errno;
			r = file_error(ret_note, e, s->path, "cutting a torn "
				       "last line: %s", strerror(e));
			goto out;
		}
		s->st.syncs++;
		file_error(ret_note, 0, s->path, "dropped a torn last line "
			   "(an append cut short by a crash, never "
			   "acknowledged)");
	}
	s->fd = rd.fd;
	rd.fd = -1;
	s->committed = good;
	s->st.file_bytes = good;
	s->st.journal_records = records;
	r = 0;
	goto out;
bad:
	if (rd.fd >= 0) {
		close(rd.fd);
		rd.fd = -1;
	}
	if (lineno)
		snprintf(where, sizeof(where), "line %zu: ", lineno);
	else
		snprintf(where, sizeof(where), "reading it: ");
	r = move_aside(s, now, &aside);
	if (r < 0) {
		file_error(ret_note, -r, s->path, "%s%s; moving it aside "
			   "failed: %s", where, why, strerror(-r));
		goto out;
	}
	r = start_fresh(s, &err);
	if (r < 0) {
		if (ret_note) {
			*ret_note = err;
			err = NULL;
		}
		goto out;
	}
	file_error(&note, 0, s->path, "%s%s; moved aside to %s, starting "
		   "with no runtime entries", where, why,
		   diag_string(q, sizeof(q), aside));
	if (ret_note)
		*ret_note = note;
	else
		free(note);
	r = 0;
out:
	if (rd.fd >= 0)
		close(rd.fd);
	free(rd.buf);
	free(aside);
	free(err);
	return r;
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

	if (!net_valid(&it->net) ||
	    !origin_valid(it->origin, strnlen(it->origin, sizeof(it->origin))) ||
	    it->added < 0 || it->expires < 0 ||
	    it->added > 999999999999999999LL ||
	    it->expires > 999999999999999999LL)
		return -EINVAL;
	for (int p = 0; p < CONFIG_NPROTO; p++)
		if (!ports_valid(it->ignore[p], it->nignore[p]))
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
					     " %s=%u", proto_names[p],
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

	if (!net_valid(net) || origin == NULL ||
	    !origin_valid(origin, strnlen(origin, WATCHLIST_ORIGIN_MAX + 1)))
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
	    !origin_valid(origin, strnlen(origin, WATCHLIST_ORIGIN_MAX + 1)))
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
		return file_error(ret_error, EIO, s->path, !s->loaded ?
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
		return file_error(ret_error, -r, s->path, "writing %zu "
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
			return file_error(ret_error, ENOMEM, s->path,
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
	r = sync_dir(s);
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
		return file_error(ret_error, -r, s->path, "new snapshot: %s: %s",
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
	return file_error(ret_error, -r, s->path, "new snapshot: %s: %s", what,
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
