/*
 * statefile_load: the state file read back at start, checked whole before
 * anything is replayed (see statefile.h).
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
	if (w == NULL || !statefile_origin_valid(w, strlen(w)))
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
	(void)statefile_sync_dir(s);
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
			return statefile_error(ret_note, ENOMEM, s->path,
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
		r = statefile_error(ret_note, ENOMEM, s->path, "out of memory");
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
			statefile_error(ret_note, -r, s->path, "replaying line %zu: "
				   "%s", lineno, strerror(-r));
		goto out;
	}
	if (torn) {
		if (ftruncate(rd.fd, (off_t)good) < 0 || fdatasync(rd.fd) < 0) {
			e = errno;
			r = statefile_error(ret_note, e, s->path, "cutting a torn "
				       "last line: %s", strerror(e));
			goto out;
		}
		s->st.syncs++;
		statefile_error(ret_note, 0, s->path, "dropped a torn last line "
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
		statefile_error(ret_note, -r, s->path, "%s%s; moving it aside "
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
	statefile_error(&note, 0, s->path, "%s%s; moved aside to %s, starting "
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

