/* The control protocol end to end, without root or a namespace: a listener
 * on a UNIX socket in a scratch directory, served by a libevent loop this
 * test drives, and clients in a child process (control_call(), which
 * blocks) or on a non-blocking socket of the test's own (raw bytes).  The
 * API wants a path, not a socketpair: the peer checks and the socket
 * file's lifetime are part of what it does. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "control.h"

#define NOBODY 65534

struct fixture {
	char dir[64];
	char path[128];
	struct event_base *base;
	struct control *c;
	/* What the handler saw. */
	unsigned calls;
	uid_t peer;
	char command[64];
	size_t feed_len;	/* the "feed" string's length, if any */
	/* Replies deferred by the "defer" command, in order. */
	struct control_pending *pending[4];
	unsigned npending;
};

/* Answers "missing" with an error of its own, "free" by freeing the
 * control object that called it, "defer" later (the handle kept in f),
 * "defer_now" through a handle at once, anything else with an echo. */
static json_t *handler(void *arg, json_t *req, uid_t peer_uid)
{
	struct fixture *f = arg;
	const char *cmd = json_string_value(json_object_get(req, "command"));

	f->calls++;
	f->peer = peer_uid;
	snprintf(f->command, sizeof(f->command), "%s", cmd);
	f->feed_len = strlen(json_string_value(json_object_get(req, "feed")) ?
			     json_string_value(json_object_get(req, "feed")) :
			     "");
	if (strcmp(cmd, "defer") == 0) {
		struct control_pending *p = control_defer(f->c);

		assert_non_null(p);
		/* Once a request. */
		assert_null(control_defer(f->c));
		assert_true(f->npending < 4);
		f->pending[f->npending++] = p;
		return NULL;
	}
	if (strcmp(cmd, "defer_now") == 0) {
		control_answer(control_defer(f->c),
			       json_pack("{s:b,s:s}", "ok", 1, "answered",
					 "at once"));
		/* Dropped: the answer went through the handle. */
		return json_pack("{s:b}", "ok", 0);
	}
	if (strcmp(cmd, "missing") == 0)
		return control_error(CONTROL_CODE_NOT_WATCHED,
				     "nobody is watched there");
	if (strcmp(cmd, "free") == 0) {
		control_free(f->c);
		f->c = NULL;
		return json_pack("{s:b,s:s}", "ok", 1, "freed", "yes");
	}
	return json_pack("{s:b,s:s,s:I}", "ok", 1, "echo", cmd, "uid",
			 (json_int_t)peer_uid);
}

/* The group that admits this test besides root: none when it runs as
 * root (CI), its own primary group otherwise. */
static gid_t admitted_gid(void)
{
	return getuid() == 0 ? (gid_t)-1 : getgid();
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *err = NULL;

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/porthop-control.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/control.sock", f->dir);
	f->base = event_base_new();
	if (f->base == NULL)
		return -1;
	f->c = control_new(f->base, f->path, admitted_gid(), handler, NULL, f,
			   &err);
	if (f->c == NULL) {
		fprintf(stderr, "control_new: %s\n", err ? err : "?");
		free(err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char other[160];

	control_free(f->c);
	/* Let the loop finish what is in flight (a connection that outlived
	 * its control object closes when its client has hung up). */
	for (int i = 0; i < 10; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	event_base_free(f->base);
	unlink(f->path);
	snprintf(other, sizeof(other), "%s/other.sock", f->dir);
	unlink(other);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Serves the loop until done(arg), or fails after 5 s: a broken test
 * fails instead of hanging. */
static void serve_until(struct fixture *f, bool (*done)(void *), void *arg)
{
	struct timespec end, now;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += 5;
	while (!done(arg)) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > end.tv_sec ||
		    (now.tv_sec == end.tv_sec && now.tv_nsec > end.tv_nsec))
			fail_msg("timed out serving the control socket");
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

/* A child's answer, read from a pipe as it comes. */
struct child {
	int fd;
	char buf[16384];
	size_t len;
};

static bool child_done(void *arg)
{
	struct child *k = arg;
	ssize_t n;

	while ((n = read(k->fd, k->buf + k->len,
			 sizeof(k->buf) - 1 - k->len)) > 0)
		k->len += (size_t)n;
	return n == 0;
}

/* In the child: control_call() with request (JSON text) on path, the
 * reply written to fd as one JSON text.  Never returns. */
static void call_in_child(const char *path, const char *request, int fd,
			  bool as_nobody, int timeout_ms)
{
	json_t *req = json_loads(request, 0, NULL), *reply = NULL;
	char *text = NULL;
	int r;

	if (as_nobody && (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 ||
			  setuid(NOBODY) < 0))
		_exit(2);
	r = control_call(path, req, timeout_ms, &reply);
	if (r == 0)
		text = json_dumps(reply, JSON_COMPACT);
	if (text == NULL) {
		dprintf(fd, "control_call: %s", strerror(-r));
		_exit(1);
	}
	_exit(write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : 1);
}

/* Starts control_call() with request in a child process (as nobody if
 * asked); call_finish() collects the reply. */
static pid_t call_start(const char *path, const char *request,
			bool as_nobody, int timeout_ms, struct child *k)
{
	int p[2];
	pid_t pid;

	memset(k, 0, sizeof(*k));
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		call_in_child(path, request, p[1], as_nobody, timeout_ms);
	}
	close(p[1]);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	k->fd = p[0];
	return pid;
}

/* Serves the loop until the child started by call_start() has its
 * reply; returns it (a new object). */
static json_t *call_finish(struct fixture *f, pid_t pid, struct child *kp)
{
	struct child k;
	int status;
	json_t *reply;

	serve_until(f, child_done, kp);
	k = *kp;
	close(k.fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	k.buf[k.len] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("client failed (status %d): %s", status, k.buf);
	reply = json_loads(k.buf, 0, NULL);
	if (reply == NULL)
		fail_msg("client got no JSON: %s", k.buf);
	return reply;
}

/* The reply to request through control_call() in a child process (as
 * nobody if asked), the loop served meanwhile.  Returns a new object. */
static json_t *call(struct fixture *f, const char *path, const char *request,
		    bool as_nobody)
{
	struct child k;
	pid_t pid = call_start(path, request, as_nobody, 3000, &k);

	return call_finish(f, pid, &k);
}

/* A client on a non-blocking socket: sends out (then shuts its side if
 * asked), reads until an end of file or a reset. */
struct raw {
	int fd;
	const char *out;
	size_t outlen, sent;
	bool shut;
	char in[16384];
	size_t inlen;
	bool eof, reset;
};

static void raw_open(struct raw *r, const char *path, const char *out,
		     size_t outlen, bool shut)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(r, 0, sizeof(*r));
	r->out = out;
	r->outlen = outlen;
	r->shut = shut;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(r->fd >= 0);
	assert_int_equal(connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

static bool raw_done(void *arg)
{
	struct raw *r = arg;
	ssize_t n;

	while (r->sent < r->outlen) {
		n = send(r->fd, r->out + r->sent, r->outlen - r->sent,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			/* Closed on us: what it said is still to be read. */
			r->sent = r->outlen;
			break;
		}
		r->sent += (size_t)n;
	}
	if (r->sent == r->outlen && r->shut) {
		shutdown(r->fd, SHUT_WR);
		r->shut = false;
	}
	for (;;) {
		n = recv(r->fd, r->in + r->inlen, sizeof(r->in) - 1 - r->inlen,
			 MSG_DONTWAIT);
		if (n > 0) {
			r->inlen += (size_t)n;
			continue;
		}
		if (n == 0)
			r->eof = true;
		else if (errno == ECONNRESET)
			r->reset = true;
		break;
	}
	return r->eof || r->reset;
}

/* Sends out on a raw connection and returns the one-line reply, after
 * an end of file and never a reset. */
static json_t *raw_exchange(struct fixture *f, const char *out, size_t outlen,
			    bool shut)
{
	struct raw r;
	json_t *reply;

	raw_open(&r, f->path, out, outlen, shut);
	serve_until(f, raw_done, &r);
	close(r.fd);
	r.in[r.inlen] = '\0';
	if (r.reset)
		fail_msg("reset after %zu bytes: %s", r.inlen, r.in);
	assert_true(r.inlen > 0 && r.in[r.inlen - 1] == '\n');
	assert_ptr_equal(strchr(r.in, '\n'), r.in + r.inlen - 1);
	reply = json_loads(r.in, 0, NULL);
	if (reply == NULL)
		fail_msg("not one JSON line: %s", r.in);
	return reply;
}

static void assert_refused(json_t *reply, const char *code, const char *error)
{
	assert_true(json_is_false(json_object_get(reply, "ok")));
	assert_string_equal(json_string_value(json_object_get(reply, "code")),
			    code);
	assert_non_null(strstr(json_string_value(json_object_get(reply, "error")),
			       error));
	json_decref(reply);
}

/* A request gets the handler's reply; the handler sees the command and
 * the peer's uid; the socket is 0600 (0660 with a group). */
static void test_request_answered(void **state)
{
	struct fixture *f = *state;
	struct control_stats st;
	struct stat sb;
	json_t *reply;

	assert_int_equal(lstat(f->path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777,
			 admitted_gid() == (gid_t)-1 ? 0600 : 0660);
	reply = call(f, f->path, "{\"command\": \"hello\", \"x\": [1]}", false);
	assert_true(json_is_true(json_object_get(reply, "ok")));
	assert_string_equal(json_string_value(json_object_get(reply, "echo")),
			    "hello");
	assert_int_equal(json_integer_value(json_object_get(reply, "uid")),
			 getuid());
	json_decref(reply);
	assert_int_equal(f->calls, 1);
	assert_int_equal(f->peer, getuid());
	assert_string_equal(f->command, "hello");
	control_get_stats(f->c, &st);
	assert_int_equal(st.accepted, 1);
	assert_int_equal(st.refused_peer, 0);
}

/* An error reply carries its code, which names one of the codes. */
static void test_error_code(void **state)
{
	struct fixture *f = *state;
	json_t *reply = call(f, f->path, "{\"command\": \"missing\"}", false);

	assert_int_equal(control_code_parse(json_string_value(
				 json_object_get(reply, "code"))),
			 CONTROL_CODE_NOT_WATCHED);
	assert_refused(reply, "not_watched", "nobody is watched there");
	for (int i = 0; i < CONTROL_CODE_COUNT; i++)
		assert_int_equal(control_code_parse(control_code_name(i)), i);
	assert_int_equal(control_code_parse("nonsense"), -1);
	assert_int_equal(control_code_parse(NULL), -1);
	assert_string_equal(control_code_name(CONTROL_CODE_COUNT), "internal");
}

/* Malformed requests: code "request", and the handler never called. */
static void test_malformed(void **state)
{
	static const char *const bad[] = {
		"not json\n",
		"{\"command\": 5}\n",
		"[\"status\"]\n",
		"{\"verb\": \"status\"}\n",
		"{\"command\": \"a\", \"command\": \"b\"}\n",
		"\n",
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(raw_exchange(f, bad[i], strlen(bad[i]), false),
			       "request", "malformed request; expected a JSON "
			       "object with a \"command\" string");
	assert_int_equal(f->calls, 0);
}

/* Oversized: the "too large" reply, then an end of file, never a reset,
 * however much more the client sends; by control_call() too. */
static void test_oversized(void **state)
{
	struct fixture *f = *state;
	size_t n = 3 * CONTROL_MAX_REQUEST;
	char *big = malloc(n + 32);

	assert_non_null(big);
	memset(big, 'x', n);
	assert_refused(raw_exchange(f, big, n, true), "request",
		       "request too large; at most 4096 bytes on one line");
	/* A whole line, just over the limit. */
	memcpy(big, "{\"command\": \"", 13);
	memset(big + 13, 'y', CONTROL_MAX_REQUEST);
	strcpy(big + 13 + CONTROL_MAX_REQUEST, "\"}");
	assert_refused(call(f, f->path, big, false), "request",
		       "request too large");
	free(big);
	assert_int_equal(f->calls, 0);
}

/* A request followed by more lines: the reply to the first, the rest
 * read and dropped, an end of file. */
static void test_more_after_request(void **state)
{
	static const char two[] = "{\"command\": \"one\"}\n{\"command\": \"two\"}\nmore\n";
	struct fixture *f = *state;
	json_t *reply = raw_exchange(f, two, strlen(two), true);

	assert_string_equal(json_string_value(json_object_get(reply, "echo")),
			    "one");
	json_decref(reply);
	assert_int_equal(f->calls, 1);
}

/* Neither root nor a member: the refusal arrives, the handler is not
 * called.  As root (CI) the client drops to nobody, the socket opened to
 * it; otherwise a listener for root only refuses this test itself. */
static void test_refused_peer(void **state)
{
	struct fixture *f = *state;
	struct control_stats st;
	struct control *root_only;
	char path[160];

	snprintf(path, sizeof(path), "%s/other.sock", f->dir);
	root_only = control_new(f->base, path, (gid_t)-1, handler, NULL, f,
				NULL);
	assert_non_null(root_only);
	if (getuid() == 0) {
		/* Past the file's permissions: porthopd's own check. */
		assert_int_equal(chmod(f->dir, 0711), 0);
		assert_int_equal(chmod(path, 0666), 0);
	}
	assert_refused(call(f, path, "{\"command\": \"hello\"}", getuid() == 0),
		       "permission", "permission denied: root or the "
		       "configured control group only");
	assert_int_equal(f->calls, 0);
	control_get_stats(root_only, &st);
	assert_int_equal(st.refused_peer, 1);
	control_free(root_only);
	assert_int_equal(access(path, F_OK), -1);
}

/* control_check_path(path) fails with -err, its message naming the path
 * and saying what; what is at the path is left there. */
static void expect_bad_path(const char *path, int err, const char *what)
{
	char *msg = NULL;
	struct stat before, after;
	bool there = lstat(path, &before) == 0;

	assert_int_equal(control_check_path(path, &msg), -err);
	assert_non_null(msg);
	assert_int_equal(strncmp(msg, "control socket \"", 16), 0);
	if (strstr(msg, what) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", msg, what);
	free(msg);
	if (there) {
		assert_int_equal(lstat(path, &after), 0);
		assert_int_equal(before.st_ino, after.st_ino);
	}
}

/* What is at the path: nothing or a leftover socket is accepted; a live
 * socket (another daemon's), a regular file or a directory refused and
 * left alone (control_new too), and so is a path whose directory is
 * missing or that is too long for a socket. */
static void test_check_path(void **state)
{
	struct fixture *f = *state;
	char path[256], *err = NULL;
	int fd;

	/* The fixture's socket is live: another daemon's, never replaced. */
	expect_bad_path(f->path, EADDRINUSE, "another process listens there");
	assert_null(control_new(f->base, f->path, (gid_t)-1, handler, NULL, f,
				&err));
	assert_non_null(strstr(err, "another process listens there"));
	free(err);
	err = NULL;
	snprintf(path, sizeof(path), "%s/nothing.sock", f->dir);
	assert_int_equal(control_check_path(path, NULL), 0);
	/* A leftover socket (bound, nobody listening) is accepted. */
	snprintf(path, sizeof(path), "%s/left.sock", f->dir);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		assert_true(s >= 0);
		assert_true(strlen(path) < sizeof(sa.sun_path));
		memcpy(sa.sun_path, path, strlen(path) + 1);
		assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(s);
	}
	assert_int_equal(control_check_path(path, &err), 0);
	assert_null(err);
	unlink(path);

	snprintf(path, sizeof(path), "%s/file.sock", f->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	expect_bad_path(path, EEXIST, "file.sock\" exists and is not a "
			"socket (a regular file)");
	assert_null(control_new(f->base, path, (gid_t)-1, handler, NULL, f,
				&err));
	assert_non_null(strstr(err, "(a regular file)"));
	free(err);
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);

	snprintf(path, sizeof(path), "%s/dir.sock", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	expect_bad_path(path, EEXIST, "exists and is not a socket (a directory)");
	rmdir(path);

	snprintf(path, sizeof(path), "%s/missing/x.sock", f->dir);
	expect_bad_path(path, ENOENT, ": its directory does not exist");

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	expect_bad_path(path, ENAMETOOLONG, "too long for a UNIX socket");
}

static bool one_open(void *arg)
{
	struct fixture *f = arg;
	struct control_stats st;

	control_get_stats(f->c, &st);
	return st.open == 1;
}

/* control_free() with a request half sent: the connection is closed (an
 * end of file or a reset, never a hang) and the socket file removed. */
static void test_free_closes_connections(void **state)
{
	static const char half[] = "{\"command\":";
	struct fixture *f = *state;
	struct raw r;

	raw_open(&r, f->path, half, strlen(half), false);
	assert_false(raw_done(&r));
	/* Accepted, and waiting for the rest. */
	serve_until(f, one_open, f);
	control_free(f->c);
	f->c = NULL;
	assert_int_equal(access(f->path, F_OK), -1);
	serve_until(f, raw_done, &r);
	close(r.fd);
	assert_int_equal(r.inlen, 0);
	assert_int_equal(f->calls, 0);
}

/* The handler may free the control object that called it: its reply is
 * still delivered, and the socket file goes. */
static void test_free_from_handler(void **state)
{
	struct fixture *f = *state;
	json_t *reply = call(f, f->path, "{\"command\": \"free\"}", false);

	assert_true(json_is_true(json_object_get(reply, "ok")));
	assert_string_equal(json_string_value(json_object_get(reply, "freed")),
			    "yes");
	json_decref(reply);
	assert_null(f->c);
	assert_int_equal(access(f->path, F_OK), -1);
}

/* A request line of about size bytes, newline included:
 * {"command":CMD,"feed":"aaa..."}, compact as the CLI writes it
 * (json_dumps keeps the keys' order); sep goes after the colon. */
static char *big_request(const char *cmd, size_t size, const char *sep)
{
	char *r = malloc(size + 64);
	int n;

	assert_non_null(r);
	n = sprintf(r, "{\"command\":%s\"%s\",\"feed\":\"", sep, cmd);
	memset(r + n, 'a', size);
	strcpy(r + n + size, "\"}\n");
	return r;
}

/* watch_add and watch_del may be large (1 MiB here): read whole, handled;
 * any other command, or a line not written as the CLI writes it, is
 * still "too large" at 4096 bytes. */
static void test_bulk_accepted(void **state)
{
	static const size_t mib = 1u << 20;
	struct fixture *f = *state;
	struct control_stats st;
	json_t *reply;
	char *req;

	req = big_request("watch_add", mib, "");
	reply = call(f, f->path, req, false);
	free(req);
	assert_true(json_is_true(json_object_get(reply, "ok")));
	json_decref(reply);
	assert_string_equal(f->command, "watch_add");
	assert_int_equal(f->feed_len, mib);
	req = big_request("watch_del", mib, "");
	reply = call(f, f->path, req, false);
	free(req);
	assert_true(json_is_true(json_object_get(reply, "ok")));
	json_decref(reply);
	assert_string_equal(f->command, "watch_del");
	assert_int_equal(f->calls, 2);
	control_get_stats(f->c, &st);
	assert_false(st.bulk_reading);

	req = big_request("status", mib, "");
	assert_refused(call(f, f->path, req, false), "request",
		       "request too large; at most 4096 bytes on one line");
	free(req);
	/* A command that only starts like one. */
	req = big_request("watch_addx", mib, "");
	assert_refused(call(f, f->path, req, false), "request",
		       "request too large; at most 4096 bytes");
	free(req);
	/* Not compact: the command is not known in time (8 KiB: within
	 * what is read and dropped after a refusal, so an end of file,
	 * never a reset). */
	req = big_request("watch_add", 8192, " ");
	assert_refused(raw_exchange(f, req, strlen(req), true), "request",
		       "request too large; at most 4096 bytes");
	free(req);
	assert_int_equal(f->calls, 2);
	/* Small requests are as they were. */
	reply = call(f, f->path, "{\"command\": \"hello\"}", false);
	assert_true(json_is_true(json_object_get(reply, "ok")));
	json_decref(reply);
	assert_int_equal(f->calls, 3);
}

/* A raw client pushed along while the loop is served, until pred(f). */
struct pushing {
	struct fixture *f;
	struct raw *r;
	bool (*pred)(struct fixture *f);
};

static bool push_until(void *arg)
{
	struct pushing *p = arg;

	(void)raw_done(p->r);
	return p->pred(p->f);
}

static void serve_pushing(struct fixture *f, struct raw *r,
			  bool (*pred)(struct fixture *f))
{
	struct pushing p = { f, r, pred };

	serve_until(f, push_until, &p);
}

static bool slot_taken(struct fixture *f)
{
	struct control_stats st;

	control_get_stats(f->c, &st);
	return st.bulk_reading;
}

/* One large request at a time: while one is being read, another gets
 * "busy"; the first is then answered, and the slot is free again. */
static void test_bulk_slot_taken(void **state)
{
	struct fixture *f = *state;
	struct control_stats st;
	char *first = big_request("watch_add", 8192, ""), *second;
	struct raw r;
	json_t *reply;

	/* The first sends all of its line but the end, and holds. */
	raw_open(&r, f->path, first, strlen(first) - 10, false);
	serve_pushing(f, &r, slot_taken);
	second = big_request("watch_del", 1u << 20, "");
	assert_refused(call(f, f->path, second, false), "busy",
		       "porthopd is reading another large request; try again");
	control_get_stats(f->c, &st);
	assert_int_equal(st.bulk_busy, 1);
	assert_int_equal(f->calls, 0);
	/* The first finishes its line: answered. */
	r.outlen = strlen(first);
	r.shut = true;
	serve_until(f, raw_done, &r);
	close(r.fd);
	r.in[r.inlen] = '\0';
	reply = json_loads(r.in, 0, NULL);
	assert_non_null(reply);
	assert_true(json_is_true(json_object_get(reply, "ok")));
	json_decref(reply);
	assert_int_equal(f->feed_len, 8192);
	assert_false(slot_taken(f));
	/* Free again. */
	reply = call(f, f->path, second, false);
	assert_true(json_is_true(json_object_get(reply, "ok")));
	json_decref(reply);
	assert_string_equal(f->command, "watch_del");
	free(first);
	free(second);
}

static bool one_pending(struct fixture *f)
{
	return f->npending >= 1;
}

static bool two_pending(struct fixture *f)
{
	return f->npending >= 2;
}

static bool pending_pred(void *arg)
{
	struct fixture *f = arg;

	return f->npending >= 1;
}

/* A deferred reply arrives when answered, even after longer than the
 * request deadline (no deadline while porthopd owes it); a handler may
 * also answer through its handle at once. */
static void test_deferred_answer(void **state)
{
	struct fixture *f = *state;
	struct control_stats st;
	struct timespec end, now;
	struct child k;
	json_t *reply;
	pid_t pid;

	pid = call_start(f->path, "{\"command\": \"defer\"}", false,
			 CONTROL_DEADLINE_MS + 5000, &k);
	serve_until(f, pending_pred, f);
	control_get_stats(f->c, &st);
	assert_int_equal(st.deferred, 1);
	/* Past the request's deadline: the connection is still there. */
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += CONTROL_DEADLINE_MS / 1000 + 1;
	do {
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(10000);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec < end.tv_sec);
	control_get_stats(f->c, &st);
	assert_int_equal(st.open, 1);
	assert_int_equal(st.timeouts, 0);
	control_answer(f->pending[0], json_pack("{s:b,s:s}", "ok", 1,
						"answered", "later"));
	reply = call_finish(f, pid, &k);
	assert_string_equal(json_string_value(json_object_get(reply,
							      "answered")),
			    "later");
	json_decref(reply);
	control_get_stats(f->c, &st);
	assert_int_equal(st.deferred, 0);

	reply = call(f, f->path, "{\"command\": \"defer_now\"}", false);
	assert_true(json_is_true(json_object_get(reply, "ok")));
	assert_string_equal(json_string_value(json_object_get(reply,
							      "answered")),
			    "at once");
	json_decref(reply);
	control_get_stats(f->c, &st);
	assert_int_equal(st.deferred, 0);
}

static bool none_open(struct fixture *f)
{
	struct control_stats st;

	control_get_stats(f->c, &st);
	return st.open == 0;
}

static bool none_open_pred(void *arg)
{
	return none_open(arg);
}

static bool two_pending_none_open(struct fixture *f)
{
	return two_pending(f) && none_open(f);
}

/* The client goes before the answer: hung up (the reply is written into
 * nothing, the connection closes), or cut off for sending on and on (the
 * connection is gone first; the answer only frees the handle). */
static void test_deferred_client_gone(void **state)
{
	static const char defer[] = "{\"command\":\"defer\"}\n";
	struct fixture *f = *state;
	size_t junk = 2 * 64 * 1024;
	struct control_stats st;
	struct raw r;
	char *out;

	raw_open(&r, f->path, defer, strlen(defer), false);
	serve_pushing(f, &r, one_pending);
	close(r.fd);
	control_answer(f->pending[0], json_pack("{s:b}", "ok", 1));
	serve_until(f, none_open_pred, f);
	control_get_stats(f->c, &st);
	assert_int_equal(st.deferred, 0);

	out = malloc(strlen(defer) + junk);
	assert_non_null(out);
	memcpy(out, defer, strlen(defer));
	memset(out + strlen(defer), 'j', junk);
	raw_open(&r, f->path, out, strlen(defer) + junk, false);
	serve_pushing(f, &r, two_pending_none_open);
	close(r.fd);
	free(out);
	control_get_stats(f->c, &st);
	assert_int_equal(st.deferred, 0);
	/* Nobody to answer: the handle goes, nothing else happens. */
	control_answer(f->pending[1], json_pack("{s:b}", "ok", 1));
	for (int i = 0; i < 5; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(f->calls, 2);
}

/* control_free() with replies owed: the socket goes at once, the owed
 * connections stay until answered (the reply delivered, or dropped if
 * the client left), and the control object goes with the last of them
 * (ASan builds check that nothing is left or used after). */
static void test_free_with_pending(void **state)
{
	static const char defer[] = "{\"command\":\"defer\"}\n";
	struct fixture *f = *state;
	struct child k;
	struct raw r;
	json_t *reply;
	pid_t pid;

	pid = call_start(f->path, "{\"command\": \"defer\"}", false, 5000, &k);
	serve_until(f, pending_pred, f);
	raw_open(&r, f->path, defer, strlen(defer), false);
	serve_pushing(f, &r, two_pending);
	close(r.fd);
	control_free(f->c);
	f->c = NULL;
	assert_int_equal(access(f->path, F_OK), -1);
	/* A handle is no longer to be had outside a handler. */
	assert_null(control_defer(NULL));
	control_answer(f->pending[1], json_pack("{s:b}", "ok", 1));
	for (int i = 0; i < 5; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	control_answer(f->pending[0], json_pack("{s:b,s:s}", "ok", 1,
						"answered", "after free"));
	reply = call_finish(f, pid, &k);
	assert_string_equal(json_string_value(json_object_get(reply,
							      "answered")),
			    "after free");
	json_decref(reply);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request_answered, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_error_code, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_oversized, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_more_after_request, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refused_peer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_check_path, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_free_closes_connections,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_from_handler, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bulk_accepted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bulk_slot_taken, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deferred_answer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deferred_client_gone,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_with_pending, setup,
						teardown),
	};

	/* A client that went away must not kill the test with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
