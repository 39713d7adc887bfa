/* The state file in a scratch directory: what is written reads back in
 * order, expired entries end at load, a file that cannot be trusted whole
 * is moved aside without a record of it replayed, a failed commit leaves
 * the file as it was, and a group costs one fdatasync().  The items are
 * built here: no watch list needed. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>
#include <cmocka.h>

#include "statefile.h"
#include "support.h"

struct fixture {
	char dir[64];
	char path[128];
	struct statefile *s;
	char log[8192];		/* what the callbacks saw */
	unsigned calls;
};

static void logf_(struct fixture *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void logf_(struct fixture *f, const char *fmt, ...)
{
	size_t used = strlen(f->log);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->log + used, sizeof(f->log) - used, fmt, ap);
	va_end(ap);
}

static int on_put(void *arg, const struct watchlist_item *it)
{
	struct fixture *f = arg;

	f->calls++;
	logf_(f, "+%s %s %lld %lld", it->net.text, it->origin,
	      (long long)it->added, (long long)it->expires);
	for (int p = 0; p < CONFIG_NPROTO; p++)
		for (size_t i = 0; i < it->nignore[p]; i++)
			logf_(f, "%s%u", i ? "," : p ? " udp:" : " tcp:",
			      it->ignore[p][i]);
	logf_(f, "|");
	return 0;
}

static int on_del(void *arg, const struct config_net *net, const char *origin)
{
	struct fixture *f = arg;

	f->calls++;
	logf_(f, "-%s %s|", net->text, origin);
	return 0;
}

static int on_flush(void *arg, const char *origin)
{
	struct fixture *f = arg;

	f->calls++;
	logf_(f, "!%s|", origin);
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/porthop-state.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/" STATEFILE_NAME, f->dir);
	*state = f;
	return 0;
}

/* Removes the scratch directory and whatever the tests left in it. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	struct dirent *e;
	DIR *d;

	statefile_free(f->s);
	d = opendir(f->dir);
	while (d && (e = readdir(d)) != NULL) {
		char p[512];

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
		if (unlink(p) < 0)
			rmdir(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Opens (a fresh object) and loads at now; returns the note. */
static char *reload(struct fixture *f, int64_t now)
{
	char *err = NULL, *note = NULL;

	statefile_free(f->s);
	f->s = statefile_open(f->dir, &err);
	if (f->s == NULL)
		fail_msg("statefile_open: %s", err);
	f->log[0] = '\0';
	f->calls = 0;
	if (statefile_load(f->s, now, on_put, on_del, on_flush, f, &note) != 0)
		fail_msg("statefile_load: %s", note ? note : "?");
	return note;
}

static struct watchlist_item item(const char *net, const char *origin,
				  int64_t added, int64_t expires)
{
	struct watchlist_item it;

	memset(&it, 0, sizeof(it));
	assert_int_equal(config_parse_net(net, true, &it.net), 0);
	snprintf(it.origin, sizeof(it.origin), "%s", origin);
	it.added = added;
	it.expires = expires;
	return it;
}

static void commit_ok(struct fixture *f)
{
	char *err = NULL;

	if (statefile_commit(f->s, &err) != 0)
		fail_msg("statefile_commit: %s", err);
}

static void write_file(struct fixture *f, const char *text)
{
	FILE *fp = fopen(f->path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static char *read_file(const char *path)
{
	static char buf[65536];
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static off_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* The one file in the directory named runtime.state.bad-*, or fails. */
static void find_aside(struct fixture *f, char *ret, size_t len)
{
	struct dirent *e;
	DIR *d = opendir(f->dir);
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, STATEFILE_NAME ".bad-",
			    strlen(STATEFILE_NAME ".bad-")) == 0) {
			if (snprintf(ret, len, "%s/%s", f->dir, e->d_name) >= (int)len)
				fail_msg("name too long");
			n++;
		}
	closedir(d);
	assert_int_equal(n, 1);
}

/* No file: nothing replayed, a fresh one made (0700 directory created if
 * missing); what is committed reads back, ignore lists too. */
static void test_round_trip(void **state)
{
	static const uint16_t tcp[] = { 22, 443 }, udp[] = { 53 };
	struct fixture *f = *state;
	struct watchlist_item a = item("192.0.2.7", "manual", 1000, 0);
	struct watchlist_item b = item("2001:db8::/32", "f2b.sshd", 1001, 5000);
	struct stat st;
	char *note;

	/* The directory does not exist yet: created, 0700. */
	rmdir(f->dir);
	note = reload(f, 100);
	assert_null(note);
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_string_equal(read_file(f->path), "porthop-state 1\n");
	assert_int_equal(f->calls, 0);
	a.ignore[CONFIG_TCP] = tcp;
	a.nignore[CONFIG_TCP] = 2;
	a.ignore[CONFIG_UDP] = udp;
	a.nignore[CONFIG_UDP] = 1;
	assert_int_equal(statefile_put(f->s, &a), 0);
	assert_int_equal(statefile_put(f->s, &b), 0);
	commit_ok(f);
	assert_string_equal(read_file(f->path), "porthop-state 1\n"
			    "+ 192.0.2.7 manual 1000 0 tcp=22,443 udp=53\n"
			    "+ 2001:db8::/32 f2b.sshd 1001 5000\n");
	note = reload(f, 100);
	assert_null(note);
	assert_string_equal(f->log, "+192.0.2.7 manual 1000 0 tcp:22,443 "
			    "udp:53|+2001:db8::/32 f2b.sshd 1001 5000|");
}

/* Records replay in the order they were committed: put, del, put again,
 * a flush of an origin. */
static void test_journal_order(void **state)
{
	struct fixture *f = *state;
	struct watchlist_item a = item("10.0.0.1", "ids", 10, 0);
	struct watchlist_item b = item("10.1.0.0/16", "op", 11, 0);

	assert_null(reload(f, 100));
	assert_int_equal(statefile_put(f->s, &a), 0);
	commit_ok(f);
	assert_int_equal(statefile_del(f->s, &a.net, "ids"), 0);
	a.added = 20;
	assert_int_equal(statefile_put(f->s, &a), 0);
	assert_int_equal(statefile_put(f->s, &b), 0);
	commit_ok(f);
	assert_int_equal(statefile_flush_origin(f->s, "op"), 0);
	commit_ok(f);
	assert_null(reload(f, 100));
	assert_string_equal(f->log, "+10.0.0.1 ids 10 0|-10.0.0.1 ids|"
			    "+10.0.0.1 ids 20 0|+10.1.0.0/16 op 11 0|!op|");
}

/* An expired entry (0 < expires <= now) is not put back; a refresh that
 * lapsed ends what an earlier record held (a del). */
static void test_expired_dropped(void **state)
{
	struct fixture *f = *state;
	struct watchlist_item a = item("10.0.0.1", "x", 1, 0);
	struct watchlist_item b = item("10.0.0.2", "x", 1, 100);
	struct watchlist_item c = item("10.0.0.3", "x", 1, 101);

	assert_null(reload(f, 50));
	assert_int_equal(statefile_put(f->s, &a), 0);
	a.expires = 90;		/* a refresh with a TTL that lapses */
	assert_int_equal(statefile_put(f->s, &a), 0);
	assert_int_equal(statefile_put(f->s, &b), 0);
	assert_int_equal(statefile_put(f->s, &c), 0);
	commit_ok(f);
	assert_null(reload(f, 100));
	assert_string_equal(f->log, "+10.0.0.1 x 1 0|-10.0.0.1 x|-10.0.0.2 x|"
			    "+10.0.0.3 x 1 101|");
}

/* Bad content: nothing of the file replayed, the file moved aside with a
 * note naming the line and the new name, then a fresh file works. */
static void expect_moved_aside(struct fixture *f, const char *content,
			       const char *line_why)
{
	struct watchlist_item a = item("198.51.100.1", "manual", 5, 0);
	char aside[512], *note;

	write_file(f, content);
	note = reload(f, 1767225600);	/* 2026-01-01T00:00:00Z */
	assert_non_null(note);
	if (strstr(note, line_why) == NULL || strstr(note, f->path) == NULL ||
	    strstr(note, "moved aside to \"") == NULL ||
	    strstr(note, ".bad-20260101T000000\"") == NULL)
		fail_msg("note \"%s\" does not say \"%s\" and where", note,
			 line_why);
	free(note);
	assert_int_equal(f->calls, 0);
	find_aside(f, aside, sizeof(aside));
	assert_string_equal(read_file(aside), content);
	unlink(aside);
	assert_string_equal(read_file(f->path), "porthop-state 1\n");
	assert_int_equal(statefile_put(f->s, &a), 0);
	commit_ok(f);
	assert_null(reload(f, 1767225600));
	assert_string_equal(f->log, "+198.51.100.1 manual 5 0|");
	unlink(f->path);
}

static void test_corrupt_moved_aside(void **state)
{
	static const struct {
		const char *content, *why;
	} cases[] = {
		{ "porthop-state 1\n+ 10.0.0.1 a 1 0\n+ 10.0.0.300 a 1 0\n",
		  "line 3: a bad address or prefix" },
		{ "porthop-state 1\n+ 10.0.0.1 a 1 0\n- 10.0.0.1 A\n",
		  "line 3: a bad origin" },
		{ "porthop-state 1\n+ 10.0.0.1 a 1 0 tcp=80,22\n",
		  "line 2: a bad port list" },
		{ "porthop-state 1\n+ 10.0.0.1 a 1 0 udp=1 tcp=2\n",
		  "line 2: a port list repeated or out of order" },
		{ "porthop-state 1\n+ 10.0.0.1 a 1\n",
		  "line 2: a bad expiry" },
		{ "porthop-state 1\n+  10.0.0.1 a 1 0\n",
		  "line 2: a bad address" },
		{ "porthop-state 1\n! a b\n",
		  "line 2: more words than the record has" },
		{ "porthop-state 1\n+ 10.0.0.0/8 a 1 0\n\n",
		  "line 3: not a record" },
		{ "porthop-state 1\n+ 10.0.0.1/8 a 1 0\n",
		  "line 2: a bad address" },
		{ "hello\n", "line 1: not a porthop state file" },
		{ "porthop-state 2\n+ 10.0.0.1 a 1 0\n",
		  "line 1: a newer version than this porthopd reads (1)" },
		{ "", "line 1: no header line" },
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_moved_aside(f, cases[i].content, cases[i].why);
}

/* A line with a NUL byte, and one longer than any record: corrupt too. */
static void test_nul_and_long_line(void **state)
{
	struct fixture *f = *state;
	char aside[512], *note;
	size_t n = STATEFILE_LINE_MAX + 100;
	char *big = malloc(n + 64);
	int fd;

	assert_non_null(big);
	fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "porthop-state 1\n! a\0b\n", 22), 22);
	close(fd);
	note = reload(f, 100);
	assert_non_null(strstr(note, "line 2: a NUL byte"));
	free(note);
	find_aside(f, aside, sizeof(aside));
	unlink(aside);

	strcpy(big, "porthop-state 1\n! ");
	memset(big + strlen(big), 'a', n);
	strcpy(big + 18 + n, "\n");
	write_file(f, big);
	free(big);
	note = reload(f, 100);
	assert_non_null(strstr(note, "line 2: a line too long"));
	free(note);
	assert_int_equal(f->calls, 0);
}

/* Something at the path that cannot be read as a file (a directory):
 * moved aside too, the note says why. */
static void test_unreadable_moved_aside(void **state)
{
	struct fixture *f = *state;
	char aside[512], *note;
	struct stat st;

	assert_int_equal(mkdir(f->path, 0700), 0);
	note = reload(f, 100);
	assert_non_null(note);
	assert_non_null(strstr(note, "reading it: Is a directory; moved aside"));
	free(note);
	find_aside(f, aside, sizeof(aside));
	assert_int_equal(stat(aside, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_string_equal(read_file(f->path), "porthop-state 1\n");
}

/* Neither runtime.state nor runtime.state.tmp is followed if it is a
 * symbolic link (whoever can write the directory would have root write
 * where it points), and a FIFO is moved aside, never read (read() would
 * block porthopd for ever). */
static void test_not_regular(void **state)
{
	struct fixture *f = *state;
	char victim[256], tmp[256], aside[512], *note;
	struct stat st;
	FILE *fp;

	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	snprintf(tmp, sizeof(tmp), "%s/" STATEFILE_NAME ".tmp", f->dir);
	fp = fopen(victim, "w");
	assert_non_null(fp);
	fputs("precious\n", fp);
	fclose(fp);
	/* The temporary file's name a link: replaced, not followed. */
	assert_int_equal(symlink(victim, tmp), 0);
	assert_null(reload(f, 100));
	assert_string_equal(read_file(victim), "precious\n");
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_string_equal(read_file(f->path), "porthop-state 1\n");
	/* The file a link: moved aside, the link alone. */
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(symlink(victim, f->path), 0);
	note = reload(f, 100);
	assert_non_null(note);
	assert_non_null(strstr(note, "symbolic link"));
	free(note);
	find_aside(f, aside, sizeof(aside));
	assert_int_equal(lstat(aside, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	unlink(aside);
	assert_string_equal(read_file(victim), "precious\n");
	/* A FIFO: moved aside at once. */
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(mkfifo(f->path, 0600), 0);
	note = reload(f, 100);
	assert_non_null(note);
	assert_non_null(strstr(note, "not a regular file"));
	free(note);
	find_aside(f, aside, sizeof(aside));
	assert_int_equal(lstat(aside, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_string_equal(read_file(f->path), "porthop-state 1\n");
}

/* A last line without its newline (a torn append): dropped and cut from
 * the file, the rest replayed, and appends go on cleanly. */
static void test_torn_last_line(void **state)
{
	struct fixture *f = *state;
	struct watchlist_item b = item("10.0.0.2", "b", 2, 0);
	char *note;

	write_file(f, "porthop-state 1\n+ 10.0.0.1 a 1 0\n+ 10.0.0.9 a 1");
	note = reload(f, 100);
	assert_non_null(note);
	assert_non_null(strstr(note, "dropped a torn last line"));
	free(note);
	assert_string_equal(f->log, "+10.0.0.1 a 1 0|");
	assert_string_equal(read_file(f->path),
			    "porthop-state 1\n+ 10.0.0.1 a 1 0\n");
	assert_int_equal(statefile_put(f->s, &b), 0);
	commit_ok(f);
	assert_null(reload(f, 100));
	assert_string_equal(f->log, "+10.0.0.1 a 1 0|+10.0.0.2 b 2 0|");
}

/* N records, one commit: exactly one fdatasync(). */
static void test_group_commit(void **state)
{
	struct fixture *f = *state;
	struct statefile_stats before, after;
	char net[32];

	assert_null(reload(f, 100));
	statefile_get_stats(f->s, &before);
	assert_false(statefile_pending(f->s));
	for (int i = 0; i < 500; i++) {
		struct watchlist_item it;

		snprintf(net, sizeof(net), "10.0.%d.%d", i / 256, i % 256);
		it = item(net, "bulk", 1, 0);
		assert_int_equal(statefile_put(f->s, &it), 0);
	}
	assert_true(statefile_pending(f->s));
	statefile_get_stats(f->s, &after);
	assert_int_equal(after.pending_records, 500);
	assert_int_equal(after.syncs, before.syncs);
	commit_ok(f);
	statefile_get_stats(f->s, &after);
	assert_int_equal(after.syncs - before.syncs, 1);
	assert_int_equal(after.commits - before.commits, 1);
	assert_int_equal(after.journal_records, 500);
	assert_false(statefile_pending(f->s));
	/* Nothing pending: a commit is free. */
	commit_ok(f);
	statefile_get_stats(f->s, &before);
	assert_int_equal(before.syncs, after.syncs);
}


/* A commit that cannot be written: -EFBIG, a message naming the file, the
 * file cut back to its last committed length (the part of the group that
 * made it to the file is gone), the buffer dropped; then commits work
 * again. */
static void test_commit_fails(void **state)
{
	struct fixture *f = *state;
	struct watchlist_item a = item("10.0.0.1", "a", 1, 0);
	char *err = NULL, net[32];
	off_t committed;
	int r;

	assert_null(reload(f, 100));
	assert_int_equal(statefile_put(f->s, &a), 0);
	commit_ok(f);
	committed = file_size(f->path);
	for (int i = 0; i < 200; i++) {
		struct watchlist_item it;

		snprintf(net, sizeof(net), "10.9.%d.%d", i / 256, i % 256);
		it = item(net, "full", 1, 0);
		assert_int_equal(statefile_put(f->s, &it), 0);
	}
	/* Room for a few records: the group is half written when it fails. */
	support_limit_file_size((rlim_t)committed + 100);
	r = statefile_commit(f->s, &err);
	support_limit_file_size(0);
	assert_int_equal(r, -EFBIG);
	assert_non_null(err);
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "writing 200 records: File too large; "
			       "none of them kept"));
	free(err);
	assert_int_equal(file_size(f->path), committed);
	assert_false(statefile_pending(f->s));
	a = item("10.0.0.2", "a", 2, 0);
	assert_int_equal(statefile_put(f->s, &a), 0);
	commit_ok(f);
	assert_null(reload(f, 100));
	assert_string_equal(f->log, "+10.0.0.1 a 1 0|+10.0.0.2 a 2 0|");
}

/* The rewrite's source: an array of items. */
struct items {
	const struct watchlist_item *v;
	size_t n;
};

static int each_item(void *arg,
		     int (*emit)(void *ctx, const struct watchlist_item *it),
		     void *ctx)
{
	const struct items *list = arg;

	for (size_t i = 0; i < list->n; i++) {
		int r = emit(ctx, &list->v[i]);

		if (r)
			return r;
	}
	return 0;
}

/* Compaction: the snapshot replaces the journal atomically (no temporary
 * file left), the journal goes on after it; a snapshot that cannot be
 * written leaves the old file and the pending records as they were. */
static void test_rewrite(void **state)
{
	static const uint16_t udp[] = { 53, 123 };
	struct fixture *f = *state;
	struct watchlist_item v[2] = { item("10.0.0.1", "a", 1, 0),
				       item("2001:db8::1", "b", 2, 900) };
	struct items list = { v, 2 };
	struct watchlist_item c = item("10.0.0.3", "c", 3, 0);
	struct statefile_stats st;
	char *err = NULL, tmp[160], *before;
	int r;

	v[1].ignore[CONFIG_UDP] = udp;
	v[1].nignore[CONFIG_UDP] = 2;
	assert_null(reload(f, 100));
	for (int i = 0; i < STATEFILE_REWRITE_MIN + 1; i++) {
		assert_int_equal(statefile_put(f->s, &v[0]), 0);
		assert_int_equal(statefile_del(f->s, &v[0].net, "a"), 0);
	}
	commit_ok(f);
	assert_true(statefile_should_rewrite(f->s, 2));
	assert_false(statefile_should_rewrite(f->s, 100000));
	/* Pending records are in the snapshot (the list holds them). */
	assert_int_equal(statefile_put(f->s, &v[0]), 0);
	if (statefile_rewrite(f->s, each_item, &list, &err) != 0)
		fail_msg("statefile_rewrite: %s", err);
	assert_false(statefile_pending(f->s));
	assert_false(statefile_should_rewrite(f->s, 2));
	statefile_get_stats(f->s, &st);
	assert_int_equal(st.journal_records, 0);
	assert_int_equal(st.rewrites, 2);	/* the fresh file's, this one */
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_string_equal(read_file(f->path), "porthop-state 1\n"
			    "+ 10.0.0.1 a 1 0\n"
			    "+ 2001:db8::1 b 2 900 udp=53,123\n");
	assert_int_equal(statefile_put(f->s, &c), 0);
	commit_ok(f);

	/* A snapshot that cannot be written (EFBIG). */
	before = strdup(read_file(f->path));
	assert_int_equal(statefile_flush_origin(f->s, "c"), 0);
	support_limit_file_size(20);
	r = statefile_rewrite(f->s, each_item, &list, &err);
	support_limit_file_size(0);
	assert_int_equal(r, -EFBIG);
	assert_non_null(strstr(err, "new snapshot: writing: File too large"));
	free(err);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_true(statefile_pending(f->s));
	commit_ok(f);
	assert_null(reload(f, 100));
	assert_string_equal(f->log, "+10.0.0.1 a 1 0|+2001:db8::1 b 2 900 "
			    "udp:53,123|+10.0.0.3 c 3 0|!c|");
	free(before);
}

/* What the loader would refuse is refused at put, so that every file
 * written reads back. */
static void test_put_refuses(void **state)
{
	static const uint16_t unsorted[] = { 80, 22 };
	struct fixture *f = *state;
	struct watchlist_item a = item("10.0.0.1", "a", 1, 0);

	assert_null(reload(f, 100));
	snprintf(a.origin, sizeof(a.origin), "Bad");
	assert_int_equal(statefile_put(f->s, &a), -EINVAL);
	snprintf(a.origin, sizeof(a.origin), "a");
	a.ignore[CONFIG_TCP] = unsorted;
	a.nignore[CONFIG_TCP] = 2;
	assert_int_equal(statefile_put(f->s, &a), -EINVAL);
	a.nignore[CONFIG_TCP] = 0;
	a.expires = -1;
	assert_int_equal(statefile_put(f->s, &a), -EINVAL);
	assert_int_equal(statefile_flush_origin(f->s, "a b"), -EINVAL);
	assert_int_equal(statefile_del(f->s, &a.net, ""), -EINVAL);
	assert_false(statefile_pending(f->s));
}

/* One porthopd per state directory; a directory whose parent is missing
 * is not built. */
static void test_open(void **state)
{
	struct fixture *f = *state;
	struct statefile *other;
	char *err = NULL, path[160];

	assert_null(reload(f, 100));
	other = statefile_open(f->dir, &err);
	assert_null(other);
	assert_non_null(strstr(err, "in use by another porthopd"));
	free(err);
	snprintf(path, sizeof(path), "%s/missing/state", f->dir);
	assert_null(statefile_open(path, &err));
	assert_non_null(strstr(err, "creating its directory: No such file"));
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_journal_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_expired_dropped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_moved_aside, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_nul_and_long_line, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_moved_aside,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_regular, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_torn_last_line, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_commit_fails, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rewrite, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_refuses, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_open, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
