/*
 * control: the daemon's UNIX control socket. See control.h for the
 * contract.
 */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "diag.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59	/* Linux 4.13; older headers lack it */
#endif

/* At most this much is read and dropped after a reply, while the client
 * finishes sending what it had started. */
#define CONTROL_LINGER_MAX (64 * 1024)
/* The listener's pause after a failed accept(), doubled each time it
 * fails again: long enough not to spin on EMFILE, short enough that the
 * socket is back soon after descriptors are free. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
/* The kernel's limit on supplementary groups (NGROUPS_MAX). */
#define PEER_GROUPS_MAX 65536
/* How much one read takes from a connection in the bulk slot (libevent's
 * default, 16 KiB, would mean 4096 callbacks a 64 MiB request). */
#define BULK_READ_MAX (1u << 20)

/* Written without allocating: there may be nothing left to allocate. */
#define BUSY_REPLY "{\"ok\":false,\"code\":\"busy\",\"error\":\"porthopd " \
		   "is busy: too many control connections; try again\"}\n"
#define NOFD_REPLY "{\"ok\":false,\"code\":\"busy\",\"error\":\"porthopd " \
		   "is out of file descriptors; try again\"}\n"

struct control;
struct conn;

/* A reply owed (control_defer()): lives until control_answer(), whatever
 * happens to the connection meanwhile (k is NULL once it is gone). */
struct control_pending {
	struct conn *k;
};

/* One client, from accept to close.  The control object owns it (a list);
 * its callbacks reach the control object through it, never through a
 * pointer that could outlive either. */
struct conn {
	struct control *c;
	struct bufferevent *bev;
	struct event *deadline;
	struct conn *prev, *next;
	uid_t uid;
	size_t scanned;		/* input searched for the newline so far */
	size_t dropped;		/* read and dropped after the reply */
	struct control_pending *pending;	/* deferred: the handle */
	bool deferred_now;	/* control_defer() in this handler call */
	bool replied;		/* the reply is queued: input is dropped */
	bool written;		/* the reply is out and our side shut */
	bool peer_done;		/* the client shut its side */
};

struct control {
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *resume;	/* re-enables the listener after a backoff */
	char *path;
	dev_t dev;		/* the socket file bind() made */
	ino_t ino;
	gid_t gid;
	control_handler_fn handler;
	control_notice_fn notice;
	void *arg;
	struct conn *conns;
	size_t nconns, max_conns;
	int reserve_fd;		/* spare descriptor for EMFILE */
	unsigned backoff_ms;	/* 0 after a successful accept */
	struct conn *serving;	/* the connection inside the handler */
	struct conn *bulk;	/* the one reading a large request */
	size_t ndeferred;	/* connections waiting for control_answer() */
	/* Freed while the connection being served or deferred ones were
	 * still owed their replies: c goes with the last of them. */
	bool doomed;
	uint64_t accepted, refused_busy, refused_peer, accept_errors,
		 timeouts, bulk_busy;
};

static void conn_destroy(struct conn *k)
{
	struct control *c = k->c;

	if (k->prev)
		k->prev->next = k->next;
	else
		c->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	c->nconns--;
	if (c->bulk == k)
		c->bulk = NULL;
	/* Its handle outlives it: the answer is then dropped. */
	if (k->pending) {
		k->pending->k = NULL;
		c->ndeferred--;
	}
	event_free(k->deadline);
	bufferevent_free(k->bev);
	free(k);
	/* control_free() ran inside the handler or with replies owed: this
	 * was the last connection spared, and the last thing left of c. */
	if (c->doomed && c->conns == NULL)
		free(c);
}

static void conn_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *k = arg;

	(void)fd;
	(void)what;
	k->c->timeouts++;
	conn_destroy(k);
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *k = arg;

	(void)bev;
	/* The client shut its side after its request: the reply (queued or
	 * owed) still goes out (libevent stops reading, not writing), then
	 * the close. */
	if ((what & BEV_EVENT_EOF) && (k->replied || k->pending) &&
	    !k->written) {
		k->peer_done = true;
		return;
	}
	conn_destroy(k);
}

static void conn_written(struct bufferevent *bev, void *arg)
{
	struct conn *k = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	k->written = true;
	if (k->peer_done) {
		conn_destroy(k);
		return;
	}
	/* Tell the client we are done; close once it has hung up too. */
	shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void linger_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct conn *k = arg;

	k->dropped += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (k->dropped > CONTROL_LINGER_MAX)
		conn_destroy(k);
}

/* Queues r (consumed) as one line. */
static void write_reply(struct bufferevent *bev, json_t *r)
{
	char *text = r ? json_dumps(r, JSON_COMPACT) : NULL;

	if (text == NULL)
		text = strdup("{\"ok\":false,\"error\":\"out of memory\"}");
	if (text) {
		bufferevent_write(bev, text, strlen(text));
		bufferevent_write(bev, "\n", 1);
	}
	free(text);
	json_decref(r);
}

/* Every reply, whether the request was read whole or refused before:
 * closing at once could leave unread bytes in our receive queue, and the
 * kernel then resets the connection and the client loses the reply.  So:
 * the reply, a half-close, then what the client still sends is dropped
 * until it hangs up (or the deadline, or 64 KiB). */
static void conn_reply(struct conn *k, json_t *r)
{
	struct bufferevent *bev = k->bev;
	struct timeval tv = { CONTROL_DEADLINE_MS / 1000,
			      (CONTROL_DEADLINE_MS % 1000) * 1000 };

	evbuffer_drain(bufferevent_get_input(bev),
		       evbuffer_get_length(bufferevent_get_input(bev)));
	if (k->c->bulk == k)
		k->c->bulk = NULL;
	k->replied = true;
	bufferevent_setcb(bev, linger_read, conn_written, conn_event, k);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	/* The request's deadline has done its work; the reply gets one of
	 * its own, so that a slow handler does not cut it short. */
	event_add(k->deadline, &tv);
	write_reply(bev, r);
}

static const char *const code_names[CONTROL_CODE_COUNT] = {
	[CONTROL_CODE_REQUEST] = "request",
	[CONTROL_CODE_PERMISSION] = "permission",
	[CONTROL_CODE_NOT_WATCHED] = "not_watched",
	[CONTROL_CODE_CONFIG] = "config",
	[CONTROL_CODE_KERNEL] = "kernel",
	[CONTROL_CODE_BUSY] = "busy",
	[CONTROL_CODE_INTERNAL] = "internal",
	[CONTROL_CODE_INVALID] = "invalid",
	[CONTROL_CODE_STORAGE] = "storage",
};

const char *control_code_name(enum control_code code)
{
	/* A code left out of the table above reads as "internal". */
	return (unsigned)code < CONTROL_CODE_COUNT && code_names[code] ?
	       code_names[code] : "internal";
}

int control_code_parse(const char *name)
{
	for (int i = 0; name && i < CONTROL_CODE_COUNT; i++)
		if (code_names[i] && strcmp(name, code_names[i]) == 0)
			return i;
	return -1;
}

json_t *control_error(enum control_code code, const char *message)
{
	return json_pack("{s:b,s:s,s:s}", "ok", 0, "code",
			 control_code_name(code), "error", message);
}

/* Whether the input starts as a large request must (control.h): the
 * command is known before the line is complete. */
static bool bulk_prefix(struct evbuffer *in)
{
	static const char *const prefixes[] = {
		"{\"command\":\"watch_add\"", "{\"command\":\"watch_del\"",
	};
	size_t n = strlen(prefixes[0]);
	unsigned char *head;

	if (evbuffer_get_length(in) < n || (head = evbuffer_pullup(in, n)) == NULL)
		return false;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (memcmp(head, prefixes[i], n) == 0)
			return true;
	return false;
}

static bool bulk_command(const char *cmd)
{
	return strcmp(cmd, "watch_add") == 0 || strcmp(cmd, "watch_del") == 0;
}

static void reply_too_large(struct conn *k, bool bulk)
{
	char msg[120];

	if (bulk)
		snprintf(msg, sizeof(msg), "request too large; at most %u bytes "
			 "on one line for watch_add and watch_del",
			 (unsigned)CONTROL_MAX_BULK);
	else
		snprintf(msg, sizeof(msg), "request too large; at most %d "
			 "bytes on one line", CONTROL_MAX_REQUEST);
	conn_reply(k, control_error(CONTROL_CODE_REQUEST, msg));
}

/* Input after a deferred request: dropped (the reply is owed, not read
 * for), and a client that sends on and on is cut off. */
static void deferred_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct conn *k = arg;

	k->dropped += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (k->dropped > CONTROL_LINGER_MAX)
		conn_destroy(k);
}

static void conn_read(struct bufferevent *bev, void *arg)
{
	struct conn *k = arg;
	struct control *c = k->c;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in), linelen;
	struct evbuffer_ptr from, nl;
	json_error_t jerr;
	json_t *req, *r;
	char *line;
	bool bulk;

	/* Searched from where the last call stopped: a 64 MiB request read
	 * in many pieces must not be searched again from its start each
	 * time. */
	if (k->scanned > len ||
	    evbuffer_ptr_set(in, &from, k->scanned, EVBUFFER_PTR_SET) < 0)
		evbuffer_ptr_set(in, &from, 0, EVBUFFER_PTR_SET);
	nl = evbuffer_search(in, "\n", 1, &from);
	linelen = nl.pos >= 0 ? (size_t)nl.pos : len;
	k->scanned = nl.pos >= 0 ? (size_t)nl.pos : len;
	if (linelen > CONTROL_MAX_REQUEST && c->bulk != k) {
		/* One large request is read at a time: each may take 64 MiB
		 * of buffers, and more JSON still when it is parsed. */
		if (!bulk_prefix(in)) {
			reply_too_large(k, false);
			return;
		}
		if (c->bulk) {
			c->bulk_busy++;
			conn_reply(k, control_error(CONTROL_CODE_BUSY,
						    "porthopd is reading another "
						    "large request; try again"));
			return;
		}
		c->bulk = k;
		bufferevent_setwatermark(bev, EV_READ, 0, CONTROL_MAX_BULK + 2);
		bufferevent_set_max_single_read(bev, BULK_READ_MAX);
	}
	if (linelen > CONTROL_MAX_BULK) {
		reply_too_large(k, true);
		return;
	}
	if (nl.pos < 0)
		return;
	bulk = c->bulk == k;
	line = malloc(linelen + 1);
	if (line == NULL) {
		conn_reply(k, control_error(CONTROL_CODE_INTERNAL,
					    "out of memory"));
		return;
	}
	evbuffer_remove(in, line, linelen);
	line[linelen] = '\0';
	/* The request is read: the slot is free for the next one. */
	if (bulk)
		c->bulk = NULL;
	req = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
	free(line);
	if (!json_is_object(req) ||
	    !json_is_string(json_object_get(req, "command"))) {
		json_decref(req);
		conn_reply(k, control_error(CONTROL_CODE_REQUEST,
					    "malformed request; expected a JSON "
					    "object with a \"command\" string"));
		return;
	}
	if (bulk && !bulk_command(json_string_value(json_object_get(req,
							"command")))) {
		json_decref(req);
		reply_too_large(k, false);
		return;
	}
	/* The handler may free c (a reload that moves the socket):
	 * control_free() then spares k, and k takes c with it when it
	 * closes.  Neither is touched here but through k. */
	c->serving = k;
	r = c->handler(c->arg, req, k->uid);
	c->serving = NULL;
	json_decref(req);
	if (k->deferred_now) {
		/* The reply comes through control_answer() (maybe already
		 * has, from inside the handler). */
		k->deferred_now = false;
		json_decref(r);
		return;
	}
	conn_reply(k, r);
}

struct control_pending *control_defer(struct control *c)
{
	struct conn *k = c ? c->serving : NULL;
	struct control_pending *p;

	if (k == NULL || k->deferred_now)
		return NULL;
	p = malloc(sizeof(*p));
	if (p == NULL)
		return NULL;
	p->k = k;
	k->pending = p;
	k->deferred_now = true;
	c->ndeferred++;
	/* The request is in; the answer is porthopd's to give, so no
	 * client can stretch the wait, and the deadline must not free the
	 * connection under its handle.  The reply gets its deadline when
	 * it is sent.  What the client still sends is dropped. */
	event_del(k->deadline);
	bufferevent_setcb(k->bev, deferred_read, NULL, conn_event, k);
	bufferevent_enable(k->bev, EV_READ);
	return p;
}

void control_answer(struct control_pending *p, json_t *reply)
{
	struct conn *k;

	if (p == NULL) {
		json_decref(reply);
		return;
	}
	k = p->k;
	free(p);
	if (k == NULL) {
		/* The client is gone (or cut off): nobody to tell. */
		json_decref(reply);
		return;
	}
	k->pending = NULL;
	k->c->ndeferred--;
	conn_reply(k, reply);
}

static bool peer_cred(int fd, struct ucred *ret)
{
	socklen_t len = sizeof(*ret);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ret, &len) == 0;
}

/* Whether gid is one of the peer's supplementary groups, as they were
 * when it connected.  The kernel's list, not the group database: a lookup
 * by name could block the loop (NSS over the network) and could disagree
 * with what the kernel checked when it let the peer connect. */
static bool peer_in_group(int fd, gid_t gid)
{
	gid_t small[32], *groups = small;
	socklen_t len = sizeof(small);
	bool found = false;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
		/* ERANGE: len now says how much the list needs. */
		if (errno != ERANGE || len == 0 ||
		    len > PEER_GROUPS_MAX * sizeof(gid_t))
			return false;
		groups = malloc(len);
		if (groups == NULL ||
		    getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
			goto out;
	}
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == gid)
			found = true;
out:
	if (groups != small)
		free(groups);
	return found;
}

/* Answers fd without keeping it: the reply, a half-close, what the client
 * already sent read (so that the close is not a reset), the close. */
static void refuse_now(int fd, const char *text)
{
	char buf[4096];

	(void)send(fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 4; i++)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			break;
	close(fd);
}

static struct conn *conn_new(struct control *c, int fd, uid_t uid)
{
	struct timeval tv = { CONTROL_DEADLINE_MS / 1000,
			      (CONTROL_DEADLINE_MS % 1000) * 1000 };
	struct conn *k = calloc(1, sizeof(*k));

	if (k == NULL)
		return NULL;
	k->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	k->deadline = evtimer_new(c->base, conn_timeout, k);
	if (k->bev == NULL || k->deadline == NULL) {
		if (k->deadline)
			event_free(k->deadline);
		if (k->bev)
			bufferevent_free(k->bev);	/* closes fd */
		else
			close(fd);
		free(k);
		return NULL;
	}
	/* One deadline for the whole request, from now: a timeout per read
	 * would let a byte every few seconds hold the connection forever. */
	event_add(k->deadline, &tv);
	k->c = c;
	k->uid = uid;
	k->next = c->conns;
	if (c->conns)
		c->conns->prev = k;
	c->conns = k;
	c->nconns++;
	return k;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
		      struct sockaddr *sa, int socklen, void *arg)
{
	struct control *c = arg;
	struct ucred cred;
	bool known, root;
	struct conn *k;

	(void)l;
	(void)sa;
	(void)socklen;
	c->backoff_ms = 0;
	known = peer_cred(fd, &cred);
	root = known && cred.uid == 0;
	if (c->nconns >= c->max_conns + (root ? CONTROL_ROOT_RESERVE : 0)) {
		c->refused_busy++;
		refuse_now(fd, BUSY_REPLY);
		if (c->notice)
			c->notice(c->arg, CONTROL_NOTICE_BUSY, 0);
		return;
	}
	k = conn_new(c, fd, known ? cred.uid : (uid_t)-1);
	if (k == NULL)
		return;
	c->accepted++;
	/* root, or a member of the configured group, by its primary or a
	 * supplementary group (the same rule the kernel applied to the
	 * socket file's group permission). */
	if (!root && !(known && c->gid != (gid_t)-1 &&
		       (cred.gid == c->gid || peer_in_group(fd, c->gid)))) {
		c->refused_peer++;
		conn_reply(k, control_error(CONTROL_CODE_PERMISSION,
					    "permission denied: root or the "
					    "configured control group only"));
		return;
	}
	/* A request larger than the limit is never buffered whole. */
	bufferevent_setwatermark(k->bev, EV_READ, 0, CONTROL_MAX_REQUEST + 2);
	bufferevent_setcb(k->bev, conn_read, NULL, conn_event, k);
	bufferevent_enable(k->bev, EV_READ | EV_WRITE);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct control *c = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(c->listener);
}

/* accept() failed with something other than a retry (libevent filters
 * EAGAIN, EINTR, ECONNABORTED).  Without this callback libevent logs the
 * error and returns, the socket is still readable, and the loop spins on
 * it: millions of lines a minute on EMFILE. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct control *c = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv;

	c->accept_errors++;
	/* Out of descriptors: the spare one lets us answer the client at
	 * the head of the queue instead of leaving it hanging. */
	if ((err == EMFILE || err == ENFILE) && c->reserve_fd >= 0) {
		int fd;

		close(c->reserve_fd);
		fd = accept4(evconnlistener_get_fd(l), NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			refuse_now(fd, NOFD_REPLY);
		c->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	c->backoff_ms = c->backoff_ms == 0 ? BACKOFF_MIN_MS :
			c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
			c->backoff_ms * 2;
	tv.tv_sec = c->backoff_ms / 1000;
	tv.tv_usec = (suseconds_t)(c->backoff_ms % 1000) * 1000;
	evconnlistener_disable(l);
	evtimer_add(c->resume, &tv);
	if (c->notice)
		c->notice(c->arg, CONTROL_NOTICE_ACCEPT_FAILED, err);
}

static const char *file_kind(mode_t m)
{
	return S_ISREG(m) ? "a regular file" : S_ISDIR(m) ? "a directory" :
	       S_ISLNK(m) ? "a symbolic link" : S_ISFIFO(m) ? "a FIFO" :
	       S_ISCHR(m) || S_ISBLK(m) ? "a device" : "not a socket";
}

/* Fills *ret_error (when asked for) with "control socket PATH" and what,
 * the path JSON-encoded; returns -err. */
static int path_error(char **ret_error, int err, const char *path,
		      const char *what)
{
	char q[DIAG_VALUE_MAX + 8];

	if (ret_error) {
		diag_string(q, sizeof(q), path);
		if (asprintf(ret_error, "control socket %s%s", q, what) < 0)
			*ret_error = NULL;
	}
	return -err;
}

bool control_socket_alive(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	bool alive;

	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path)) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	strcpy(sa.sun_path, path);
	alive = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
		errno == EAGAIN || errno == EINPROGRESS;
	close(fd);
	return alive;
}

int control_check_path(const char *path, char **ret_error)
{
	struct sockaddr_un sa;
	struct stat st;
	char what[160], *dir, *slash;
	int r = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return path_error(ret_error, ENAMETOOLONG, path, ": too long "
				  "for a UNIX socket; at most 107 bytes");
	if (lstat(path, &st) == 0) {
		if (S_ISSOCK(st.st_mode) && control_socket_alive(path))
			return path_error(ret_error, EADDRINUSE, path, ": "
					  "another process listens there (a "
					  "porthopd already running?)");
		if (S_ISSOCK(st.st_mode))
			return 0;
		/* Never removed: a file put there by mistake is someone's,
		 * and a directory cannot be replaced anyway. */
		snprintf(what, sizeof(what), " exists and is not a socket "
			 "(%s); porthopd replaces only a socket there",
			 file_kind(st.st_mode));
		return path_error(ret_error, EEXIST, path, what);
	}
	if (errno != ENOENT) {
		r = errno;
		snprintf(what, sizeof(what), ": %s", strerror(r));
		return path_error(ret_error, r, path, what);
	}
	dir = strdup(path);
	if (dir == NULL)
		return path_error(ret_error, ENOMEM, path, ": out of memory");
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	if (stat(dir, &st) < 0) {
		r = errno;
		snprintf(what, sizeof(what), ": its directory %s",
			 r == ENOENT ? "does not exist" : strerror(r));
		r = path_error(ret_error, r, path, what);
	} else if (!S_ISDIR(st.st_mode)) {
		r = path_error(ret_error, ENOTDIR, path, ": its directory is "
			       "not a directory");
	}
	free(dir);
	return r;
}

/* Whether the file at c->path is still the socket c made. */
static bool socket_is_ours(const struct control *c)
{
	struct stat st;

	return lstat(c->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	       st.st_dev == c->dev && st.st_ino == c->ino;
}

/* At most a quarter of the descriptor limit: the rest stays for netlink,
 * Redis and its reconnections, rule files and the metrics file, whatever
 * clients do. */
static size_t connection_limit(void)
{
	struct rlimit rl;
	size_t n = CONTROL_MAX_CONNECTIONS;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 4 < n)
		n = rl.rlim_cur / 4;
	return n < 4 ? 4 : n;
}

struct control *control_new(struct event_base *base, const char *path,
			    gid_t gid, control_handler_fn handler,
			    control_notice_fn notice, void *arg,
			    char **ret_error)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct control *c;
	const char *what = "?";
	bool bound = false;
	struct stat st;
	mode_t old;
	int fd = -1, e;

	if (control_check_path(path, ret_error) < 0)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		path_error(ret_error, ENOMEM, path, ": out of memory");
		return NULL;
	}
	c->reserve_fd = -1;
	c->base = base;
	c->gid = gid;
	c->handler = handler;
	c->notice = notice;
	c->arg = arg;
	c->max_conns = connection_limit();
	if ((c->path = strdup(path)) == NULL ||
	    (c->resume = evtimer_new(base, on_resume, c)) == NULL) {
		what = "setting up";
		errno = ENOMEM;
		goto fail;
	}
	c->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (c->reserve_fd < 0) {
		what = "a spare descriptor on /dev/null";
		goto fail;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		what = "socket";
		goto fail;
	}
	/* Only a socket nobody listens on is replaced (control_check_path()
	 * refused anything else; this is its last word, should something
	 * have appeared). */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		if (control_socket_alive(path)) {
			errno = EADDRINUSE;
			what = "another process listens there (a porthopd "
			       "already running?)";
			goto fail;
		}
		unlink(path);
	}
	/* Created 0600 (or 0660): never a moment when others could
	 * connect. */
	old = umask(gid == (gid_t)-1 ? 0177 : 0117);
	e = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (e < 0) {
		what = "bind";
		goto fail;
	}
	bound = true;
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0) {
		what = "giving it to control_group";
		goto fail;
	}
	if (lstat(path, &st) < 0) {
		what = "stat";
		goto fail;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->listener = evconnlistener_new(base, on_accept, c,
					 LEV_OPT_CLOSE_ON_FREE |
					 LEV_OPT_CLOSE_ON_EXEC, 16, fd);
	if (c->listener == NULL) {
		what = "listen";
		goto fail;
	}
	evconnlistener_set_error_cb(c->listener, on_accept_error);
	return c;
fail:
	e = errno;
	if (ret_error) {
		char detail[160];

		snprintf(detail, sizeof(detail), ": %s: %s", what, strerror(e));
		path_error(ret_error, e, path, detail);
	}
	if (bound)
		unlink(path);
	if (fd >= 0)
		close(fd);
	if (c->reserve_fd >= 0)
		close(c->reserve_fd);
	if (c->resume)
		event_free(c->resume);
	free(c->path);
	free(c);
	errno = e;
	return NULL;
}

bool control_is(const struct control *c, const char *path, gid_t gid)
{
	return c && !c->doomed && strcmp(c->path, path) == 0 &&
	       c->gid == gid && socket_is_ours(c);
}

void control_get_stats(const struct control *c, struct control_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->open = c->nconns;
	ret->limit = c->max_conns;
	ret->accepted = c->accepted;
	ret->refused_busy = c->refused_busy;
	ret->refused_peer = c->refused_peer;
	ret->accept_errors = c->accept_errors;
	ret->timeouts = c->timeouts;
	ret->deferred = c->ndeferred;
	ret->bulk_reading = c->bulk != NULL;
	ret->bulk_busy = c->bulk_busy;
}

void control_free(struct control *c)
{
	struct conn *k, *next;

	if (c == NULL || c->doomed)
		return;
	evconnlistener_free(c->listener);
	event_free(c->resume);
	if (c->reserve_fd >= 0)
		close(c->reserve_fd);
	/* A newer socket may have taken the path (a reload that changed
	 * only the group): that one stays. */
	if (socket_is_ours(c))
		unlink(c->path);
	free(c->path);
	c->path = NULL;
	for (k = c->conns; k; k = next) {
		next = k->next;
		if (k != c->serving && k->pending == NULL)
			conn_destroy(k);
	}
	/* Called from the handler, or with replies owed: those connections
	 * still need c, and get their replies; conn_destroy() frees c with
	 * the last of them. */
	if (c->conns) {
		c->doomed = true;
		return;
	}
	free(c);
}
