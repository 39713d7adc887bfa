/*
 * control_client: the client side of the control socket, for the CLI and
 * the tests: one request, its one-line reply, one deadline.  See
 * control.h for the contract.
 */
#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The client reads at most this much of a reply. */
#define CONTROL_MAX_REPLY (64 * 1024 * 1024)

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
