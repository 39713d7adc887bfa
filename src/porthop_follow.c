/*
 * porthop follow HOST SERVICE: the port a keyed service is on now (or at
 * --at TIME), computed from the client's key file alone (derive.h,
 * docs/follow.md).  cli_derive_port is what `porthop connect` calls for
 * derive keys.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "porthop.h"
#include "clientkey.h"
#include "derive.h"
#include "diag.h"

static void follow_usage(FILE *f)
{
	fprintf(f,
"usage: porthop follow HOST SERVICE [--key FILE] [--at TIME] [-v]\n"
"\n"
"Prints the port SERVICE (a real port: 22, tcp/22 or udp/53) of HOST is on\n"
"in the current time slot, as the derive key FILE (default $PORTHOP_KEY,\n"
"else ~/.config/porthop/client.key) computes it.  --at TIME: at another\n"
"time (seconds since 1970, now, now+N or now-N seconds).  -v says on stderr\n"
"which slot it used.  The client's clock must be within one slot of the\n"
"host's.  See docs/follow.md.\n");
}

int cli_derive_port(const struct clientkey *k, unsigned service, time_t now,
		    unsigned *ret_port)
{
	uint16_t port;
	int r = derive_key_port(k, service, (int64_t)now, &port);

	if (r == 0)
		*ret_port = port;
	return r;
}

/* "now", "now+N", "now-N" or seconds since 1970. */
int cli_parse_time(const char *s, time_t *ret)
{
	char *end;
	long long v;

	if (strncmp(s, "now", 3) == 0) {
		long long off = 0;

		if (s[3] != '\0') {
			if (s[3] != '+' && s[3] != '-')
				return -1;
			off = strtoll(s + 4, &end, 10);
			if (end == s + 4 || *end != '\0' || off < 0 ||
			    off > 100LL * 365 * 86400)
				return -1;
			if (s[3] == '-')
				off = -off;
		}
		*ret = time(NULL) + (time_t)off;
		return 0;
	}
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || v < 0)
		return -1;
	*ret = (time_t)v;
	return 0;
}

/* "22", "tcp/22" or "udp/53". */
static int parse_service(const char *s, int *ret_proto, unsigned *ret_port)
{
	char *end;
	long v;

	*ret_proto = 0;
	if (strncmp(s, "tcp/", 4) == 0 || strncmp(s, "udp/", 4) == 0) {
		*ret_proto = s[0] == 't' ? DERIVE_PROTO_TCP : DERIVE_PROTO_UDP;
		s += 4;
	}
	v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || v < 1 || v > 65535)
		return -1;
	*ret_port = (unsigned)v;
	return 0;
}

int cmd_follow(const struct globals *gl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "at", required_argument, NULL, 'a' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keyfile = NULL;
	struct clientkey *k = NULL;
	struct derive *dv = NULL;
	struct diag *d = NULL;
	time_t at = time(NULL);
	bool verbose = false;
	unsigned port;
	uint16_t got;
	uint64_t slot;
	int ch, proto, status = EX_SOFTWARE, r;

	(void)gl;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "k:a:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			keyfile = optarg;
			break;
		case 'a':
			if (cli_parse_time(optarg, &at) < 0) {
				fprintf(stderr, "porthop follow: --at \"%s\": "
					"expected seconds since 1970, now, "
					"now+N or now-N\n", optarg);
				return EX_USAGE;
			}
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			follow_usage(stdout);
			return EXIT_SUCCESS;
		default:
			follow_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind + 2 != argc) {
		follow_usage(stderr);
		return EX_USAGE;
	}
	if (parse_service(argv[optind + 1], &proto, &port) < 0) {
		fprintf(stderr, "porthop follow: service \"%s\": expected a "
			"port (22), tcp/PORT or udp/PORT\n", argv[optind + 1]);
		return EX_USAGE;
	}
	k = cli_load_key("follow", keyfile, &status);
	if (k == NULL)
		goto out;
	d = diag_new();
	if (d == NULL) {
		status = EX_OSERR;
		goto out;
	}
	if (derive_from_key(k, d, &dv) < 0) {
		status = EX_DATAERR;
		goto out;
	}
	if (proto == 0)
		proto = derive_key_proto(k, port);
	slot = derive_slot_at((int64_t)at, clientkey_slot_seconds(k));
	r = derive_port(dv, slot, (uint8_t)proto, (uint16_t)port, &got);
	if (r == -ENOENT) {
		fprintf(stderr, "porthop follow: %s: %s/%u is not a service "
			"of key \"%s\"; expected one of its tcp or udp ports\n",
			keyfile ? keyfile : "the key", proto == DERIVE_PROTO_TCP ? "tcp" : "udp",
			port, clientkey_name(k));
		status = EX_DATAERR;
		goto out;
	}
	if (r < 0) {
		fprintf(stderr, "porthop follow: %s\n", strerror(-r));
		goto out;
	}
	if (verbose)
		fprintf(stderr, "porthop follow: key \"%s\", slot %" PRIu64
			" (%u s slots, %u s left at %lld): %s/%u is on %u\n",
			clientkey_name(k), slot, clientkey_slot_seconds(k),
			clientkey_slot_seconds(k) -
				(unsigned)((uint64_t)at %
					   clientkey_slot_seconds(k)),
			(long long)at, proto == DERIVE_PROTO_TCP ? "tcp" : "udp",
			port, got);
	printf("%u\n", got);
	status = EXIT_SUCCESS;
out:
	diag_print(d, stderr);
	diag_free(d);
	derive_free(dv);
	clientkey_free(k);
	return status;
}
