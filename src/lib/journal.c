/*
 * journal: journald's native protocol, entries built and sent (see
 * journal.h).  The protocol is small and stable (systemd's
 * docs/JOURNAL_NATIVE_PROTOCOL.md); writing it here keeps libsystemd out
 * of porthopd and lets a test point it at a socket of its own.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

bool journal_stream_is(const char *journal_stream, int fd)
{
	unsigned long long dev, ino;
	struct stat st;
	int n = 0;

	if (journal_stream == NULL ||
	    sscanf(journal_stream, "%llu:%llu%n", &dev, &ino, &n) != 2 ||
	    journal_stream[n] != '\0' || journal_stream[0] == '-' ||
	    fstat(fd, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

struct journal_entry {
	char *buf;
	size_t len, cap;
};

struct journal_entry *journal_entry_new(void)
{
	return calloc(1, sizeof(struct journal_entry));
}

void journal_entry_free(struct journal_entry *e)
{
	if (e == NULL)
		return;
	free(e->buf);
	free(e);
}

static int put(struct journal_entry *e, const void *p, size_t n)
{
	if (e->cap - e->len < n) {
		size_t cap = e->cap ? e->cap : 256;
		char *b;

		while (cap - e->len < n) {
			if (cap > SIZE_MAX / 2)
				return -ENOMEM;
			cap *= 2;
		}
		b = realloc(e->buf, cap);
		if (b == NULL)
			return -ENOMEM;
		e->buf = b;
		e->cap = cap;
	}
	memcpy(e->buf + e->len, p, n);
	e->len += n;
	return 0;
}

static bool field_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64 || name[0] == '_' ||
	    (name[0] >= '0' && name[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
			return false;
	return true;
}

int journal_entry_add(struct journal_entry *e, const char *name,
		      const char *value, size_t len)
{
	size_t start = e->len;
	int r;

	if (!field_name_ok(name))
		return -EINVAL;
	r = put(e, name, strlen(name));
	if (r == 0 && memchr(value, '\n', len) == NULL) {
		r = put(e, "=", 1);
	} else if (r == 0) {
		/* The binary form: the length, 64-bit little-endian. */
		uint8_t le[8];
		uint64_t v = len;

		for (int i = 0; i < 8; i++, v >>= 8)
			le[i] = (uint8_t)(v & 0xff);
		r = put(e, "\n", 1);
		if (r == 0)
			r = put(e, le, sizeof(le));
	}
	if (r == 0)
		r = put(e, value, len);
	if (r == 0)
		r = put(e, "\n", 1);
	if (r < 0)
		e->len = start;
	return r;
}

const char *journal_entry_data(const struct journal_entry *e,
			       size_t *ret_len)
{
	*ret_len = e->len;
	return e->buf;
}

static int add_str(struct journal_entry *e, const char *name, const char *v)
{
	return journal_entry_add(e, name, v, strlen(v));
}

static int add_u64(struct journal_entry *e, const char *name, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return add_str(e, name, buf);
}

struct journal_entry *journal_event_entry(const struct probe_event *ev,
					  const char *json, size_t len,
					  const char *ident)
{
	struct journal_entry *e = journal_entry_new();
	const char *kind = probe_kind_name((enum probe_kind)ev->kind);
	char src[64];
	int r;

	if (e == NULL)
		return NULL;
	r = journal_entry_add(e, "MESSAGE", json, len);
	r = r ? r : add_str(e, "PRIORITY", "6");
	r = r ? r : add_str(e, "SYSLOG_IDENTIFIER", ident);
	r = r ? r : add_str(e, "PORTHOP_KIND", kind ? kind : "unknown");
	r = r ? r : add_str(e, "PORTHOP_SOURCE",
			    probe_source(ev, src, sizeof(src)));
	r = r ? r : add_str(e, "PORTHOP_PROTO",
			    ev->proto == IPPROTO_UDP ? "udp" : "tcp");
	r = r ? r : add_u64(e, "PORTHOP_PORT", ev->port);
	if (ev->real_port)
		r = r ? r : add_u64(e, "PORTHOP_REAL_PORT", ev->real_port);
	r = r ? r : add_u64(e, "PORTHOP_GENERATION", ev->generation);
	r = r ? r : add_u64(e, "PORTHOP_COUNT", ev->count);
	if (r < 0) {
		journal_entry_free(e);
		return NULL;
	}
	return e;
}

struct journal {
	int fd;
	struct sockaddr_un addr;
	socklen_t addr_len;
};

struct journal *journal_open(const char *path)
{
	struct journal *j;
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(j->addr.sun_path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return NULL;
	j->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (j->fd < 0) {
		int saved = errno;

		free(j);
		errno = saved;
		return NULL;
	}
	j->addr.sun_family = AF_UNIX;
	memcpy(j->addr.sun_path, path, n + 1);
	j->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return j;
}

void journal_free(struct journal *j)
{
	if (j == NULL)
		return;
	close(j->fd);
	free(j);
}

int journal_send(struct journal *j, const struct journal_entry *e)
{
	ssize_t n;

	n = sendto(j->fd, e->buf, e->len, MSG_NOSIGNAL,
		   (const struct sockaddr *)&j->addr, j->addr_len);
	if (n < 0)
		return -errno;
	return (size_t)n == e->len ? 0 : -EMSGSIZE;
}
