/*
 * porthop knock and porthop connect: a client's side of single packet
 * authorisation (docs/knock.md).  knock sends one knock; connect knocks
 * (or, with a derive key, computes the port of the moment), connects and
 * relays standard input and output, for
 *   ssh -o ProxyCommand='porthop connect %h %p' HOST
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "porthop.h"
#include "clientkey.h"
#include "diag.h"
#include "knock.h"

#define KEY_ENV "PORTHOP_KEY"
#define KEY_HOME ".config/porthop/client.key"
/* connect: the first attempt this long after the knock, then backoff
 * from RETRY_MS doubling to RETRY_MAX_MS, a knock before each. */
#define FIRST_WAIT_MS 2
#define RETRY_MS 5
#define RETRY_MAX_MS 500
#define CONNECT_TIMEOUT_MS 3000

struct clientkey *cli_load_key(const char *cmd, const char *path,
			       int *ret_status)
{
	char buf[4096];
	struct clientkey *k = NULL;
	struct diag *d;

	if (path == NULL)
		path = getenv(KEY_ENV);
	if (path == NULL && getenv("HOME")) {
		snprintf(buf, sizeof(buf), "%s/" KEY_HOME, getenv("HOME"));
		if (access(buf, F_OK) == 0)
			path = buf;
	}
	if (path == NULL) {
		fprintf(stderr, "porthop %s: no key: give --key FILE (a key "
			"file from `porthop keygen`), or set " KEY_ENV "\n",
			cmd);
		*ret_status = EX_NOINPUT;
		return NULL;
	}
	d = diag_new();
	if (d == NULL || clientkey_load(path, d, &k) < 0) {
		fprintf(stderr, "porthop %s: the key cannot be used:\n", cmd);
		diag_print(d, stderr);
		*ret_status = EX_NOINPUT;
	}
	diag_free(d);
	return k;
}

/* host's addresses for port (proto: SOCK_DGRAM or SOCK_STREAM); NULL
 * after saying why. */
static struct addrinfo *resolve(const char *cmd, const char *host,
				unsigned port, int type)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = type },
			*res = NULL;
	char service[8];
	int r;

	snprintf(service, sizeof(service), "%u", port);
	r = getaddrinfo(host, service, &hints, &res);
	if (r != 0) {
		fprintf(stderr, "porthop %s: %s: %s\n", cmd, host,
			gai_strerror(r));
		return NULL;
	}
	return res;
}

/* A port number from text: 1 to 65535. */
static int parse_port(const char *cmd, const char *what, const char *s,
		      unsigned *ret)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s < '0' || *s > '9' || *end != '\0' || v < 1 || v > 65535) {
		fprintf(stderr, "porthop %s: %s \"%s\": expected a port from 1 "
			"to 65535\n", cmd, what, s);
		return -1;
	}
	*ret = (unsigned)v;
	return 0;
}

/* A fresh knock of k for family/addr (0: none), dated ts, in buf (at
 * least KNOCK_MAX bytes); its length, or -EINVAL. */
static int make_knock(const struct clientkey *k, int64_t ts, int family,
		      const unsigned char *addr, unsigned char *buf)
{
	unsigned char nonce[KNOCK_NONCE_LEN];

	randombytes_buf(nonce, sizeof(nonce));
	return knock_encode(k, ts, nonce, family, addr, buf, KNOCK_MAX);
}

/* Sends one fresh knock of k for family/addr (0: none) to ai. */
static int send_knock(const struct clientkey *k, const struct addrinfo *ai,
		      int family, const unsigned char *addr)
{
	unsigned char buf[KNOCK_MAX];
	int len, fd, r = 0;

	len = make_knock(k, (int64_t)time(NULL), family, addr, buf);
	if (len < 0)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, buf, (size_t)len, 0, ai->ai_addr, ai->ai_addrlen) !=
	    (ssize_t)len)
		r = -errno;
	close(fd);
	return r;
}

/* Knocks on every address of host (the one the connection will use is
 * among them).  Returns 0 if one went out. */
static int knock_all(const struct clientkey *k, const struct addrinfo *res,
		     int family, const unsigned char *addr, int *ret_errno)
{
	int sent = 0;

	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int r = send_knock(k, ai, family, addr);

		if (r == 0)
			sent++;
		else
			*ret_errno = -r;
	}
	return sent ? 0 : -1;
}

static void knock_usage(FILE *f)
{
	fprintf(f,
"usage: porthop knock HOST [--key FILE] [--port P] [--address A]\n"
"       porthop knock --hex [--time T] [--key FILE] [--address A]\n"
"\n"
"Sends one knock (one UDP datagram, signed with the key) to HOST's knock\n"
"port (default %d).  porthopd lets the address the knock comes from (or\n"
"A) reach its real ports for knock.trust_seconds.  The key: --key FILE,\n"
"else $" KEY_ENV ", else ~/" KEY_HOME ".  A knock has no answer: the\n"
"port looks closed either way.  --hex prints the knock (dated T, epoch\n"
"seconds, default now) in hex instead of sending it: for tests of\n"
"another sender, a replay or a clock that is off.\n", KNOCK_PORT_DEFAULT);
}

int cmd_knock(const struct globals *gl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "port", required_argument, NULL, 'p' },
		{ "address", required_argument, NULL, 'a' },
		{ "hex", no_argument, NULL, 'x' },
		{ "time", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keyfile = NULL, *address = NULL;
	int64_t when = (int64_t)time(NULL);
	bool hex = false;
	unsigned port = KNOCK_PORT_DEFAULT;
	unsigned char addr[16] = { 0 };
	struct addrinfo *res = NULL;
	struct clientkey *k = NULL;
	int ch, family = 0, status = EX_USAGE, err = 0;

	(void)gl;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "k:p:a:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			keyfile = optarg;
			break;
		case 'p':
			if (parse_port("knock", "--port", optarg, &port) < 0)
				return EX_USAGE;
			break;
		case 'a':
			address = optarg;
			break;
		case 'x':
			hex = true;
			break;
		case 'T':
			when = strtoll(optarg, NULL, 10);
			break;
		case 'h':
			knock_usage(stdout);
			return EXIT_SUCCESS;
		default:
			knock_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind + (hex ? 0 : 1) != argc) {
		knock_usage(stderr);
		return EX_USAGE;
	}
	if (address) {
		family = inet_pton(AF_INET, address, addr) == 1 ? AF_INET :
			 inet_pton(AF_INET6, address, addr) == 1 ? AF_INET6 : 0;
		if (family == 0) {
			fprintf(stderr, "porthop knock: --address \"%s\": "
				"expected an IPv4 or IPv6 address\n", address);
			return EX_USAGE;
		}
	}
	if (sodium_init() < 0)
		return EX_OSERR;
	k = cli_load_key("knock", keyfile, &status);
	if (k == NULL)
		return status;
	if (clientkey_use(k) != CLIENTKEY_KNOCK) {
		fprintf(stderr, "porthop knock: key \"%s\" is for %s; expected "
			"a knock key (porthop keygen --use knock)\n",
			clientkey_name(k), clientkey_use_name(clientkey_use(k)));
		status = EX_DATAERR;
		goto out;
	}
	if (hex) {
		unsigned char buf[KNOCK_MAX];
		int len = make_knock(k, when, family, addr, buf);

		for (int i = 0; i < len; i++)
			printf("%02x", buf[i]);
		printf("\n");
		status = len > 0 ? EXIT_SUCCESS : EX_SOFTWARE;
		goto out;
	}
	res = resolve("knock", argv[optind], port, SOCK_DGRAM);
	if (res == NULL) {
		status = EX_NOHOST;
		goto out;
	}
	if (knock_all(k, res, family, addr, &err) < 0) {
		fprintf(stderr, "porthop knock: %s: the knock could not be "
			"sent: %s\n", argv[optind], strerror(err));
		status = EX_UNAVAILABLE;
		goto out;
	}
	status = EXIT_SUCCESS;
out:
	freeaddrinfo(res);
	clientkey_free(k);
	return status;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Connects to ai within timeout_ms: the socket, or -1 with errno. */
static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
	struct pollfd pfd;
	int fd, e = 0;
	socklen_t elen = sizeof(e);

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS)
		goto fail;
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&pfd, 1, timeout_ms) <= 0) {
		errno = ETIMEDOUT;
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
		goto fail;
	if (e == 0)
		return fd;
	errno = e;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* Writes all of buf to fd; -1 on error. */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };

			if (errno != EAGAIN || poll(&p, 1, -1) < 0)
				return -1;
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* stdin to the socket, the socket to stdout, until the socket ends.
 * Returns the exit status. */
static int relay(int s)
{
	char buf[16384];
	struct pollfd p[2] = {
		{ .fd = STDIN_FILENO, .events = POLLIN },
		{ .fd = s, .events = POLLIN },
	};

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return EX_IOERR;
		}
		if (p[0].revents) {
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

			if (n < 0 && errno != EINTR && errno != EAGAIN)
				return EX_IOERR;
			if (n == 0) {
				/* The other side may still answer. */
				shutdown(s, SHUT_WR);
				p[0].fd = -1;
			} else if (n > 0 && write_all(s, buf, (size_t)n) < 0) {
				return EX_IOERR;
			}
		}
		if (p[1].revents) {
			ssize_t n = read(s, buf, sizeof(buf));

			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0)
				return n == 0 ? EXIT_SUCCESS : EX_IOERR;
			if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
				return EX_IOERR;
		}
	}
}

static void connect_usage(FILE *f)
{
	fprintf(f,
"usage: porthop connect HOST PORT [--key FILE] [--knock-port P]\n"
"                       [--timeout S] [--at TIME]\n"
"\n"
"Connects to HOST's service PORT and relays standard input and output:\n"
"  ssh -o ProxyCommand='porthop connect %%h %%p' HOST\n"
"With a knock key it knocks first (on port P, default %d) and again\n"
"before each new attempt; with a derive key it connects to the port the\n"
"key derives for PORT now (--at TIME: at another time, as for follow:\n"
"to check a clock's skew).  Gives up after S seconds (default 10).  The\n"
"key: --key FILE, else $" KEY_ENV ", else ~/" KEY_HOME ".\n"
"Exit status: 66 no key, 65 a key of the wrong kind, 68 unknown host,\n"
"69 connection refused, 75 no answer.\n", KNOCK_PORT_DEFAULT);
}

int cmd_connect(const struct globals *gl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "knock-port", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "at", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keyfile = NULL, *host;
	unsigned kport = KNOCK_PORT_DEFAULT, port, timeout_s = 10, knocks = 0;
	struct addrinfo *kres = NULL, *res = NULL;
	struct clientkey *k = NULL;
	int ch, status = EX_USAGE, fd = -1, err = 0, wait_ms = RETRY_MS;
	int64_t deadline;
	time_t at = time(NULL);
	unsigned slot_s = 0;	/* a derive key's slot length, for the hint */

	(void)gl;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "k:p:t:a:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			if (cli_parse_time(optarg, &at) < 0) {
				fprintf(stderr, "porthop connect: --at \"%s\": "
					"expected seconds since 1970, now, "
					"now+N or now-N\n", optarg);
				return EX_USAGE;
			}
			break;
		case 'k':
			keyfile = optarg;
			break;
		case 'p':
			if (parse_port("connect", "--knock-port", optarg,
				       &kport) < 0)
				return EX_USAGE;
			break;
		case 't':
			timeout_s = (unsigned)strtoul(optarg, NULL, 10);
			if (timeout_s < 1 || timeout_s > 3600) {
				fprintf(stderr, "porthop connect: --timeout "
					"\"%s\": expected 1 to 3600 seconds\n",
					optarg);
				return EX_USAGE;
			}
			break;
		case 'h':
			connect_usage(stdout);
			return EXIT_SUCCESS;
		default:
			connect_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind + 2 != argc) {
		connect_usage(stderr);
		return EX_USAGE;
	}
	host = argv[optind];
	if (parse_port("connect", "PORT", argv[optind + 1], &port) < 0)
		return EX_USAGE;
	if (sodium_init() < 0)
		return EX_OSERR;
	k = cli_load_key("connect", keyfile, &status);
	if (k == NULL)
		return status;
	if (clientkey_use(k) == CLIENTKEY_DERIVE) {
		unsigned derived;
		int r = cli_derive_port(k, port, at, &derived);

		if (r < 0) {
			fprintf(stderr, "porthop connect: key \"%s\": %s\n",
				clientkey_name(k), r == -ENOENT ?
				"the port is not one of the key's services" :
				r == -EINVAL ? "not a usable derive key" :
				strerror(-r));
			status = r == -ENOMEM ? EX_OSERR : EX_DATAERR;
			goto out;
		}
		port = derived;
		slot_s = clientkey_slot_seconds(k);
	}
	res = resolve("connect", host, port, SOCK_STREAM);
	if (res == NULL) {
		status = EX_NOHOST;
		goto out;
	}
	if (clientkey_use(k) == CLIENTKEY_KNOCK) {
		kres = resolve("connect", host, kport, SOCK_DGRAM);
		if (kres == NULL) {
			status = EX_NOHOST;
			goto out;
		}
	}
	deadline = mono_ms() + (int64_t)timeout_s * 1000;
	for (;;) {
		int64_t left;

		if (kres) {
			if (knock_all(k, kres, 0, NULL, &err) < 0) {
				fprintf(stderr, "porthop connect: %s: the knock "
					"could not be sent: %s\n", host,
					strerror(err));
				status = EX_UNAVAILABLE;
				goto out;
			}
			knocks++;
			/* porthopd needs a moment to let us in. */
			if (knocks == 1)
				usleep(FIRST_WAIT_MS * 1000);
		}
		left = deadline - mono_ms();
		for (const struct addrinfo *ai = res; ai && fd < 0 && left > 0;
		     ai = ai->ai_next) {
			fd = connect_one(ai, (int)(left < CONNECT_TIMEOUT_MS ?
						   left : CONNECT_TIMEOUT_MS));
			err = errno;
		}
		if (fd >= 0 || mono_ms() + wait_ms >= deadline)
			break;
		usleep((useconds_t)wait_ms * 1000);
		wait_ms = wait_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : wait_ms * 2;
	}
	if (fd < 0) {
		fprintf(stderr, "porthop connect: %s port %u: %s%s", host,
			port, err == ECONNREFUSED ? "connection refused" :
			err == ETIMEDOUT ? "no answer" : strerror(err),
			kres ? " after knocking: is the key in porthopd's keys "
			"directory, the knock port right, and the clock "
			"within the window?" : "");
		/* A derived port nobody answers on: most often a clock more
		 * than one slot off the host's (it keeps t-1, t, t+1). */
		if (slot_s > 0)
			fprintf(stderr, " (the port key \"%s\" derives for this "
				"%u s slot: is this clock within one slot of "
				"%s's? porthop follow -v says which slot)",
				clientkey_name(k), slot_s, host);
		fputc('\n', stderr);
		status = err == ETIMEDOUT ? EX_TEMPFAIL : EX_UNAVAILABLE;
		goto out;
	}
	status = relay(fd);
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	freeaddrinfo(kres);
	clientkey_free(k);
	return status;
}
