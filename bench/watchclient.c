/*
 * watchclient: the client side of bench/watch.sh.  Talks to porthopd's
 * control socket with control_call() (what the CLI uses), without the
 * CLI's process start-up in every figure, and times the floors that live
 * on the file system.  Addresses are 10.a.b.c, the i-th as
 * bench/reshuffle.sh and bench/nlfloor.c number them.
 *
 *   watchclient add SOCKET COUNT FIRST [del]
 *	COUNT watch_add requests one after the other, one address each
 *	(FIRST, FIRST+1, ...; origin "bench"), each timed from before its
 *	connect to its reply; with "del", a watch_del of the same address
 *	(not timed) after each, so that the list keeps its size.  Prints
 *	each add's milliseconds, one a line.
 *   watchclient load SOCKET CONNS RATE SECONDS FIRST
 *	RATE * SECONDS adds of one new address each, over CONNS
 *	connections side by side (threads), request i due at i / RATE
 *	seconds (open loop: one sent late does not delay those after it).
 *	Prints "requests ok failed seconds p50_ms p99_ms max_ms late_ms":
 *	late_ms is how far behind its schedule the last request went.
 *   watchclient sync FILE COUNT
 *	COUNT appends of a 64-byte record to FILE, each followed by
 *	fdatasync(); prints each one's milliseconds.
 *   watchclient write FILE BYTES
 *	writes BYTES to a new FILE and fdatasync()s it; prints the
 *	milliseconds.
 *
 * Exits 1 if any request failed (the first reply that was not ok goes to
 * standard error).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control.h"

#define CALL_TIMEOUT_MS 30000

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void nth_address(unsigned long i, char *buf, size_t len)
{
	snprintf(buf, len, "10.%lu.%lu.%lu", i / 62500 % 250, i / 250 % 250,
		 i % 250 + 1);
}

/* One watch_add or watch_del of the i-th address: 0 if the reply was ok.
 * The first failure is told on standard error. */
static int call(const char *sock, const char *command, unsigned long i)
{
	static pthread_mutex_t told_lock = PTHREAD_MUTEX_INITIALIZER;
	static int told;
	char addr[32];
	json_t *req, *reply = NULL;
	int r;

	nth_address(i, addr, sizeof(addr));
	req = json_pack("{s:s,s:s,s:[{s:s}]}", "command", command, "origin",
			"bench", "entries", "address", addr);
	if (req == NULL)
		return -ENOMEM;
	r = control_call(sock, req, CALL_TIMEOUT_MS, &reply);
	if (r == 0 && !json_is_true(json_object_get(reply, "ok")))
		r = -EPROTO;
	if (r < 0) {
		pthread_mutex_lock(&told_lock);
		if (!told++) {
			char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;

			fprintf(stderr, "watchclient: %s %s: %s\n", command, addr,
				text ? text : strerror(-r));
			free(text);
		}
		pthread_mutex_unlock(&told_lock);
	}
	json_decref(reply);
	json_decref(req);
	return r;
}

static int run_add(const char *sock, unsigned long count, unsigned long first,
		   int del)
{
	int bad = 0;

	for (unsigned long i = first; i < first + count; i++) {
		double t0 = now_ms();

		if (call(sock, "watch_add", i) < 0) {
			bad = 1;
			continue;
		}
		printf("%.3f\n", now_ms() - t0);
		if (del && call(sock, "watch_del", i) < 0)
			bad = 1;
	}
	return bad;
}

struct load {
	const char *sock;
	unsigned long total, first, conns;
	double rate, t0;
	double *lat;			/* per request, ms; < 0: failed */
	double *late;			/* per thread: the most behind */
};

struct worker {
	struct load *l;
	unsigned long k;
};

static void *load_worker(void *arg)
{
	struct worker *w = arg;
	struct load *l = w->l;

	for (unsigned long i = w->k; i < l->total; i += l->conns) {
		double due = l->t0 + (double)i * 1e3 / l->rate, t;

		t = now_ms();
		if (t < due) {
			double d = due - t;
			struct timespec ts = { (time_t)(d / 1e3),
					       (long)((d - (double)(long)(d / 1e3) * 1e3) * 1e6) };

			nanosleep(&ts, NULL);
		} else if (t - due > l->late[w->k]) {
			l->late[w->k] = t - due;
		}
		t = now_ms();
		l->lat[i] = call(l->sock, "watch_add", l->first + i) < 0 ?
			    -1 : now_ms() - t;
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int run_load(const char *sock, unsigned long conns, double rate,
		    double secs, unsigned long first)
{
	struct load l = { .sock = sock, .first = first, .conns = conns,
			  .rate = rate };
	pthread_t *th = calloc(conns, sizeof(*th));
	struct worker *w = calloc(conns, sizeof(*w));
	unsigned long ok = 0;
	double late = 0, elapsed;
	int r = 0;

	l.total = (unsigned long)(rate * secs);
	l.lat = calloc(l.total + 1, sizeof(*l.lat));
	l.late = calloc(conns, sizeof(*l.late));
	if (th == NULL || w == NULL || l.lat == NULL || l.late == NULL)
		return 1;
	l.t0 = now_ms();
	for (unsigned long k = 0; k < conns; k++) {
		w[k] = (struct worker){ &l, k };
		if (pthread_create(&th[k], NULL, load_worker, &w[k]) != 0)
			return 1;
	}
	for (unsigned long k = 0; k < conns; k++) {
		pthread_join(th[k], NULL);
		if (l.late[k] > late)
			late = l.late[k];
	}
	elapsed = (now_ms() - l.t0) / 1e3;
	/* The failed ones (-1) sort first. */
	qsort(l.lat, l.total, sizeof(*l.lat), cmp_double);
	for (unsigned long i = 0; i < l.total; i++)
		ok += l.lat[i] >= 0;
	if (ok) {
		double *o = l.lat + (l.total - ok);

		printf("%lu %lu %lu %.2f %.2f %.2f %.2f %.0f\n", l.total, ok,
		       l.total - ok, elapsed, o[ok / 2], o[(ok * 99) / 100],
		       o[ok - 1], late);
	} else {
		printf("%lu 0 %lu %.2f - - - %.0f\n", l.total, l.total, elapsed,
		       late);
	}
	r = ok != l.total;
	free(l.lat);
	free(l.late);
	free(th);
	free(w);
	return r;
}

static int run_sync(const char *path, unsigned long count)
{
	static const char rec[] = "+ 10.0.0.1 bench 1764460800 0 tcp=22,443 "
				  "udp=53 padding.......\n";
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd < 0)
		return 1;
	for (unsigned long i = 0; i < count; i++) {
		double t0 = now_ms();

		if (write(fd, rec, sizeof(rec) - 1) != (ssize_t)(sizeof(rec) - 1) ||
		    fdatasync(fd) < 0)
			return 1;
		printf("%.3f\n", now_ms() - t0);
	}
	close(fd);
	return 0;
}

static int run_write(const char *path, size_t bytes)
{
	char *buf = malloc(bytes + 1);
	double t0;
	size_t done = 0;
	int fd;

	if (buf == NULL)
		return 1;
	memset(buf, 'x', bytes);
	t0 = now_ms();
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return 1;
	while (done < bytes) {
		ssize_t n = write(fd, buf + done, bytes - done);

		if (n < 0)
			return 1;
		done += (size_t)n;
	}
	if (fdatasync(fd) < 0)
		return 1;
	close(fd);
	printf("%.3f\n", now_ms() - t0);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && strcmp(argv[1], "add") == 0)
		return run_add(argv[2], strtoul(argv[3], NULL, 10),
			       strtoul(argv[4], NULL, 10),
			       argc > 5 && strcmp(argv[5], "del") == 0);
	if (argc == 7 && strcmp(argv[1], "load") == 0)
		return run_load(argv[2], strtoul(argv[3], NULL, 10),
				strtod(argv[4], NULL), strtod(argv[5], NULL),
				strtoul(argv[6], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "sync") == 0)
		return run_sync(argv[2], strtoul(argv[3], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "write") == 0)
		return run_write(argv[2], strtoul(argv[3], NULL, 10));
	fprintf(stderr, "usage: watchclient add SOCKET COUNT FIRST [del] | "
		"load SOCKET CONNS RATE SECONDS FIRST | sync FILE COUNT | "
		"write FILE BYTES\n");
	return 64;
}
