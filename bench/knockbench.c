/*
 * knockbench: the timed parts of bench/knock.sh, each printing one figure
 * in microseconds (not installed).
 *
 *   knockbench knock KEYFILE HOST PORT KNOCKPORT
 *       the clock starts, one knock goes out, then connects to HOST:PORT
 *       one after the other (each refused one at once: before porthopd
 *       lets the client in, its SYN meets a redirect port where nothing
 *       listens) until one succeeds: prints the time and the attempts;
 *       then, let in, times one more connect (the floor's second part)
 *       and prints it third.
 *   knockbench elemadd
 *       one element with a timeout added to a set of addresses of a
 *       scratch table, one netlink transaction through nftio, as
 *       porthopd's admission does (the floor's first part; run in the
 *       protected host's namespace).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clientkey.h"
#include "knock.h"
#include "nftio.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static struct sockaddr_in addr_of(const char *host, const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)atoi(port)) };

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "knockbench: %s: not an IPv4 address\n", host);
		exit(64);
	}
	return sa;
}

/* 0 if a connection to sa succeeded (closed again), else -1. */
static int connect_once(const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));

	close(fd);
	return r;
}

static int cmd_knock(char **argv)
{
	struct sockaddr_in sa = addr_of(argv[1], argv[2]);
	struct sockaddr_in ka = addr_of(argv[1], argv[3]);
	unsigned char buf[KNOCK_MAX], nonce[KNOCK_NONCE_LEN];
	struct diag *d = diag_new();
	struct clientkey *k = NULL;
	unsigned attempts = 0;
	double t0, deadline;
	int len, fd;

	if (sodium_init() < 0 || clientkey_load(argv[0], d, &k) < 0) {
		diag_print(d, stderr);
		return 66;
	}
	diag_free(d);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	randombytes_buf(nonce, sizeof(nonce));
	len = knock_encode(k, (int64_t)time(NULL), nonce, 0, NULL, buf,
			   sizeof(buf));
	t0 = now_us();
	deadline = t0 + 5e6;
	if (sendto(fd, buf, (size_t)len, 0, (struct sockaddr *)&ka,
		   sizeof(ka)) != len)
		return 69;
	do {
		attempts++;
		if (connect_once(&sa) == 0) {
			double t1 = now_us(), t2;

			if (connect_once(&sa) < 0)
				return 69;
			t2 = now_us();
			printf("%.0f %u %.0f\n", t1 - t0, attempts, t2 - t1);
			clientkey_free(k);
			close(fd);
			return 0;
		}
	} while (now_us() < deadline);
	fprintf(stderr, "knockbench: no connection within 5 s (%u attempts)\n",
		attempts);
	return 69;
}

static int cmd_elemadd(void)
{
	struct nftio *io = nftio_new_kernel();
	struct nftio_elems *b = nftio_elems_new("knockfloor");
	unsigned char a[16] = { 192, 0, 2, 0 };
	char *err = NULL;
	double t0;
	int r;

	r = nftio_apply_text(io, "{\"nftables\":[{\"add\":{\"table\":{\"family\":"
			     "\"inet\",\"name\":\"knockfloor\"}}},{\"add\":{\"set\":"
			     "{\"family\":\"inet\",\"table\":\"knockfloor\",\"name\":"
			     "\"s4\",\"type\":\"ipv4_addr\",\"flags\":[\"timeout\"]}}}]}",
			     false, &err);
	if (r < 0) {
		fprintf(stderr, "knockbench: %s\n", err);
		return 70;
	}
	randombytes_buf(a + 3, 1);
	nftio_elems_add_addr_timeout(b, "s4", AF_INET, a, 60000);
	t0 = now_us();
	r = nftio_apply_elems(io, b, false, &err);
	printf("%.0f\n", now_us() - t0);
	nftio_elems_free(b);
	nftio_free(io);
	return r < 0 ? 70 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "knock") == 0)
		return cmd_knock(argv + 2);
	if (argc == 2 && strcmp(argv[1], "elemadd") == 0)
		return cmd_elemadd();
	fprintf(stderr, "usage: knockbench knock KEYFILE HOST PORT KNOCKPORT | "
		"elemadd\n");
	return 64;
}
