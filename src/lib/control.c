#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

/* The client reads at most this much of a reply. */
#define CONTROL_MAX_REPLY (64 * 1024 * 1024)

struct control {
	struct evconnlistener *listener;
	char *path;
	gid_t gid;
	control_handler_fn handler;
	void *arg;
};

static void conn_close(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void conn_drained(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
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

static void reply(struct bufferevent *bev, json_t *r)
{
	/* No more input: write the answer, close once it is out. */
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, conn_drained, conn_close, NULL);
	write_reply(bev, r);
}

/* At most this much is read and dropped after a request refused as too
 * large, while the client finishes sending it. */
#define CONTROL_LINGER_MAX (64 * 1024)

static void linger_free(struct bufferevent *bev, size_t *dropped)
{
	free(dropped);
	bufferevent_free(bev);
}

static void linger_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t *dropped = arg;

	*dropped += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (*dropped > CONTROL_LINGER_MAX)
		linger_free(bev, dropped);
}

static void linger_written(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void linger_event(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	linger_free(bev, arg);
}

/* The reply to a request refused before it was all read: closing at once
 * would reset the connection under a client still writing, and it would
 * lose the reply.  So: the reply, a half-close, then what the client still
 * sends is dropped until it hangs up (or the timeout, or 64 KiB). */
static void reply_lingering(struct bufferevent *bev, json_t *r)
{
	size_t *dropped = calloc(1, sizeof(*dropped));

	if (dropped == NULL) {
		reply(bev, r);
		return;
	}
	evbuffer_drain(bufferevent_get_input(bev),
		       evbuffer_get_length(bufferevent_get_input(bev)));
	bufferevent_setcb(bev, linger_read, linger_written, linger_event,
			  dropped);
	write_reply(bev, r);
}

static json_t *error_reply(const char *msg)
{
	return json_pack("{s:b,s:s}", "ok", 0, "error", msg);
}

static uid_t peer_uid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return (uid_t)-1;
	return cred.uid;
}

static void conn_read(struct bufferevent *bev, void *arg)
{
	struct control *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr nl = evbuffer_search(in, "\n", 1, NULL);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	json_t *req;
	char *line;

	if ((nl.pos < 0 && len > CONTROL_MAX_REQUEST) ||
	    (nl.pos >= 0 && (size_t)nl.pos > CONTROL_MAX_REQUEST)) {
		reply_lingering(bev, error_reply("request too large; at most "
						 "4096 bytes on one line"));
		return;
	}
	if (nl.pos < 0)
		return;
	line = malloc((size_t)nl.pos + 1);
	if (line == NULL) {
		reply(bev, error_reply("out of memory"));
		return;
	}
	evbuffer_remove(in, line, (size_t)nl.pos);
	line[nl.pos] = '\0';
	req = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
	free(line);
	if (!json_is_object(req) ||
	    !json_is_string(json_object_get(req, "command"))) {
		json_decref(req);
		reply(bev, error_reply("malformed request; expected a JSON "
				       "object with a \"command\" string"));
		return;
	}
	reply(bev, c->handler(c->arg, req, peer_uid(bufferevent_getfd(bev))));
	json_decref(req);
}

/* root, or a member of the configured group. */
static bool peer_allowed(struct control *c, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	if (cred.uid == 0)
		return true;
	return c->gid != (gid_t)-1 && cred.gid == c->gid;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
		      struct sockaddr *sa, int socklen, void *arg)
{
	struct control *c = arg;
	struct bufferevent *bev;
	struct timeval tv = { 5, 0 };

	(void)l;
	(void)sa;
	(void)socklen;
	bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
				     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		return;
	}
	if (!peer_allowed(c, fd)) {
		reply(bev, error_reply("permission denied: root or the "
				       "configured control group only"));
		bufferevent_enable(bev, EV_WRITE);
		return;
	}
	/* A request larger than the limit is never buffered whole. */
	bufferevent_setwatermark(bev, EV_READ, 0, CONTROL_MAX_REQUEST + 2);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_setcb(bev, conn_read, NULL, conn_close, c);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

struct control *control_new(struct event_base *base, const char *path,
			    gid_t gid, control_handler_fn handler, void *arg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct control *c;
	mode_t old;
	int fd, e;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->path = strdup(path)) == NULL)
		goto fail;
	c->gid = gid;
	c->handler = handler;
	c->arg = arg;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto fail;
	unlink(path);
	/* Created 0600 (or 0660): never a moment when others could
	 * connect. */
	old = umask(gid == (gid_t)-1 ? 0177 : 0117);
	e = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (e < 0 || (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)) {
		e = errno;
		close(fd);
		errno = e;
		goto fail;
	}
	c->listener = evconnlistener_new(base, on_accept, c,
					 LEV_OPT_CLOSE_ON_FREE, 16, fd);
	if (c->listener == NULL) {
		close(fd);
		goto fail;
	}
	return c;
fail:
	e = errno;
	if (c && c->path)
		free(c->path);
	free(c);
	errno = e;
	return NULL;
}

void control_free(struct control *c)
{
	if (c == NULL)
		return;
	if (c->listener)
		evconnlistener_free(c->listener);
	unlink(c->path);
	free(c->path);
	free(c);
}

static long ms_left(const struct timespec *end)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(end->tv_sec - now.tv_sec) * 1000 +
	       (end->tv_nsec - now.tv_nsec) / 1000000;
}

int control_call(const char *path, json_t *request, int timeout_ms,
		 json_t **ret_reply)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	char *text = json_dumps(request, JSON_COMPACT);
	char *buf = NULL, *nl = NULL;
	size_t len = 0, cap = 0, tlen, sent = 0;
	struct timespec end;
	int fd = -1, r, send_err = 0;

	if (text == NULL)
		return -ENOMEM;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += timeout_ms / 1000;
	end.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (end.tv_nsec >= 1000000000) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		r = -ENAMETOOLONG;
		goto out;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	/* connect() waits while the listener's queue is full: bounded by
	 * the send timeout, as the writes are. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = errno == EAGAIN ? -ETIMEDOUT : -errno;
		goto out;
	}
	tlen = strlen(text);
	text[tlen++] = '\n';	/* json_dumps left room: it ended in NUL */
	while (sent < tlen) {
		ssize_t n = send(fd, text + sent, tlen - sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* porthopd may have answered (a refusal) and
			 * closed: its reply is still there to read. */
			send_err = errno == EAGAIN ? ETIMEDOUT : errno;
			break;
		}
		sent += (size_t)n;
	}
	/* One line is the whole reply: stop there, whatever follows (a
	 * reset after the line does not make the reply less valid). */
	while (nl == NULL) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = ms_left(&end);
		ssize_t n;

		if (left <= 0 || (n = poll(&p, 1, (int)left)) == 0) {
			r = -ETIMEDOUT;
			goto out;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (len + 65536 > cap) {
			char *b;

			if (cap >= CONTROL_MAX_REPLY) {
				r = -EMSGSIZE;
				goto out;
			}
			b = realloc(buf, cap + 65536 + 1);
			if (b == NULL) {
				r = -ENOMEM;
				goto out;
			}
			buf = b;
			cap += 65536;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (len > 0 && n == 0)
				break;
			r = send_err ? -send_err : n < 0 ? -errno : -EPROTO;
			goto out;
		}
		nl = memchr(buf + len, '\n', (size_t)n);
		len += (size_t)n;
	}
	if (nl)
		len = (size_t)(nl - buf);
	*ret_reply = json_loadb(buf, len, 0, NULL);
	r = *ret_reply ? 0 : -EPROTO;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(text);
	return r;
}
