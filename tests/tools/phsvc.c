/*
 * phsvc: the demo's and the acceptance tests' stand-in services.
 *
 *   phsvc serve [-6] PORT...     listen on each TCP port; every connection
 *                                gets "porthop-demo service on port N\n",
 *                                then everything it sends echoed back.
 *                                "u:N" is a UDP port instead: every
 *                                datagram is answered with
 *                                "porthop-demo udp service on port N\n"
 *   phsvc rate HOST PORT SECONDS open connections one after the other for
 *                                SECONDS, read each banner, close with a
 *                                reset (no TIME_WAIT), print connections/s
 *   phsvc dgram PATH SECONDS     bind a UNIX datagram socket at PATH and
 *                                print each datagram received (one per
 *                                line, newlines as '|') for SECONDS
 *   phsvc echo HOST PORT         connect; print the banner; then for each
 *                                line on stdin send it and check that the
 *                                same line comes back: print "ok LINE", or
 *                                exit 1 on a mismatch, a reset or a 5 s
 *                                silence
 *   phsvc udprounds HOST FIRST LAST STOPFILE SPORT NSPORT
 *                                rounds of one datagram to each UDP port
 *                                FIRST..LAST of HOST in turn, each from a
 *                                fresh socket bound to the next source
 *                                port of SPORT..SPORT+NSPORT-1 (a new
 *                                conntrack entry, so a new NAT lookup;
 *                                short of them, it waits for STOPFILE),
 *                                until STOPFILE exists, then one round
 *                                more:
 *                                print "PORT N" for each (N: the port of
 *                                the service that answered, 0: no answer
 *                                within 1 s), and "round" after each
 *                                (then a pause of 2 ms)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 512

static int listen_on(int family, int port, int type)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;
	int fd = socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	memset(&ss, 0, sizeof(ss));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s6->sin6_addr = in6addr_any;
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
		len = sizeof(*s4);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 64) < 0)) {
		fprintf(stderr, "phsvc: port %d: %s\n", port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int serve(int argc, char **argv)
{
	struct pollfd pfd[MAX_FDS];
	int port_of[MAX_FDS], udp_of[MAX_FDS];
	int nlisten = 0, n, v6 = 0, first = 0;

	signal(SIGPIPE, SIG_IGN);
	if (argc > 0 && strcmp(argv[0], "-6") == 0) {
		v6 = 1;
		first = 1;
	}
	for (int i = first; i < argc; i++) {
		int udp = strncmp(argv[i], "u:", 2) == 0;
		int port = atoi(argv[i] + (udp ? 2 : 0));

		for (int fam = 0; fam <= v6; fam++) {
			int fd = listen_on(fam ? AF_INET6 : AF_INET, port,
					   udp ? SOCK_DGRAM : SOCK_STREAM);

			if (fd < 0)
				return 1;
			pfd[nlisten].fd = fd;
			pfd[nlisten].events = POLLIN;
			port_of[nlisten] = port;
			udp_of[nlisten] = udp;
			nlisten++;
		}
	}
	n = nlisten;
	for (;;) {
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		for (int i = 0; i < n; i++) {
			char buf[4096];
			ssize_t r;

			if (!pfd[i].revents)
				continue;
			if (i < nlisten && udp_of[i]) {
				struct sockaddr_storage from;
				socklen_t flen = sizeof(from);
				int len;

				if (recvfrom(pfd[i].fd, buf, sizeof(buf), 0,
					     (struct sockaddr *)&from, &flen) < 0)
					continue;
				len = snprintf(buf, sizeof(buf),
					       "porthop-demo udp service on port %d\n",
					       port_of[i]);
				sendto(pfd[i].fd, buf, (size_t)len, 0,
				       (struct sockaddr *)&from, flen);
				continue;
			}
			if (i < nlisten) {
				int c = accept4(pfd[i].fd, NULL, NULL,
						SOCK_CLOEXEC);
				int len;

				if (c < 0)
					continue;
				if (n == MAX_FDS) {
					close(c);
					continue;
				}
				len = snprintf(buf, sizeof(buf),
					       "porthop-demo service on port %d\n",
					       port_of[i]);
				if (write(c, buf, (size_t)len) != len) {
					close(c);
					continue;
				}
				pfd[n].fd = c;
				pfd[n].events = POLLIN;
				pfd[n].revents = 0;
				n++;
				continue;
			}
			r = read(pfd[i].fd, buf, sizeof(buf));
			if (r <= 0 || write(pfd[i].fd, buf, (size_t)r) != r) {
				close(pfd[i].fd);
				pfd[i] = pfd[n - 1];
				n--;
				i--;
			}
		}
	}
}

/* Reads one line (up to the newline) with a deadline. */
static int read_line(int fd, char *buf, size_t size)
{
	size_t len = 0;

	while (len + 1 < size) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 5000) <= 0)
			return -1;
		r = read(fd, buf + len, 1);
		if (r <= 0)
			return -1;
		if (buf[len] == '\n') {
			buf[len] = '\0';
			return 0;
		}
		len++;
	}
	return -1;
}

static int echo(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai;
	char line[4096], back[4096];
	int fd;

	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return 2;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		fprintf(stderr, "phsvc: connect %s:%s: %s\n", host, port,
			strerror(errno));
		return 1;
	}
	freeaddrinfo(ai);
	if (read_line(fd, back, sizeof(back)) < 0) {
		fprintf(stderr, "phsvc: no banner\n");
		return 1;
	}
	printf("banner %s\n", back);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		size_t len = strlen(line);

		if (write(fd, line, len) != (ssize_t)len ||
		    read_line(fd, back, sizeof(back)) < 0) {
			printf("error %s", line);
			return 1;
		}
		line[len - 1] = '\0';
		if (strcmp(line, back) != 0) {
			printf("mismatch %s != %s\n", line, back);
			return 1;
		}
		printf("ok %s\n", line);
		fflush(stdout);
	}
	close(fd);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rate(const char *host, const char *port, double seconds)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct linger lg = { 1, 0 };
	struct addrinfo *ai;
	double start, end;
	long n = 0, failed = 0;
	char buf[256];

	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return 2;
	start = now_s();
	end = start + seconds;
	while (now_s() < end) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return 1;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    read_line(fd, buf, sizeof(buf)) == 0)
			n++;
		else
			failed++;
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
	}
	freeaddrinfo(ai);
	printf("%.0f\n", (double)n / (now_s() - start));
	if (failed)
		fprintf(stderr, "phsvc: %ld connections failed\n", failed);
	return failed > n / 100 ? 1 : 0;
}

static int dgram(const char *path, double seconds)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	double end = now_s() + seconds;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	char buf[4096];

	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		return 1;
	strcpy(sa.sun_path, path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return 1;
	while (now_s() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		for (char *c = buf; *c; c++)
			if (*c == '\n')
				*c = '|';
		printf("%s\n", buf);
		fflush(stdout);
	}
	unlink(path);
	return 0;
}

/* One datagram to host:port from a fresh socket: the port of the
 * service that answered ("... udp service on port N"), or 0. */
static int udp_ask(const struct sockaddr_in *host, int port, int sport)
{
	struct sockaddr_in to = *host, from = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	const char *at;
	char buf[128];
	ssize_t n;
	int got = 0;

	if (fd < 0)
		return 0;
	to.sin_port = htons((uint16_t)port);
	from.sin_port = htons((uint16_t)sport);
	if (bind(fd, (struct sockaddr *)&from, sizeof(from)) == 0 &&
	    sendto(fd, "?", 1, 0, (struct sockaddr *)&to, sizeof(to)) == 1 &&
	    poll(&p, 1, 1000) == 1 &&
	    (n = recv(fd, buf, sizeof(buf) - 1, 0)) > 0) {
		buf[n] = '\0';
		at = strstr(buf, "on port ");
		got = at ? atoi(at + 8) : 0;
	}
	close(fd);
	return got;
}

static int udprounds(const char *host, int first, int last,
		     const char *stopfile, int sport, int nsport)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int end = sport + nsport;
	bool stop = false;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || first < 1 ||
	    last > 65535 || first > last || sport < 1 || end > 65536)
		return 2;
	do {
		stop = access(stopfile, F_OK) == 0;
		/* The last round's ports are kept for it: short of the
		 * others, wait for STOPFILE (up to a minute). */
		for (int i = 0; !stop && sport + 2 * (last - first + 1) > end &&
		     i < 60000; i++) {
			nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
			stop = access(stopfile, F_OK) == 0;
		}
		if (sport + (last - first + 1) > end)
			return 3;
		for (int port = first; port <= last; port++)
			printf("%d %d\n", port, udp_ask(&sa, port, sport++));
		printf("round\n");
		fflush(stdout);
		/* A pause between rounds, so that the source ports last
		 * while the trigger is on its way. */
		nanosleep(&(struct timespec){ 0, 2000000 }, NULL);
	} while (!stop);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 8 && strcmp(argv[1], "udprounds") == 0)
		return udprounds(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5],
				 atoi(argv[6]), atoi(argv[7]));
	if (argc >= 3 && strcmp(argv[1], "serve") == 0)
		return serve(argc - 2, argv + 2);
	if (argc == 4 && strcmp(argv[1], "dgram") == 0)
		return dgram(argv[2], atof(argv[3]));
	if (argc == 5 && strcmp(argv[1], "rate") == 0)
		return rate(argv[2], argv[3], atof(argv[4]));
	if (argc == 4 && strcmp(argv[1], "echo") == 0)
		return echo(argv[2], argv[3]);
	fprintf(stderr, "usage: phsvc serve [-6] PORT... | phsvc echo HOST PORT | "
		"phsvc rate HOST PORT SECONDS\n");
	return 64;
}
