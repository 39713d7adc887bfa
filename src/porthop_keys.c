/*
 * porthop keygen: a client's key file (clientkey.h), for `porthop knock`,
 * `follow` and `connect` on the client and, copied into porthopd's keys
 * directory, for porthopd.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "porthop.h"
#include "clientkey.h"
#include "diag.h"

static void keygen_usage(FILE *f)
{
	fprintf(f,
"usage: porthop keygen NAME -o FILE [--use knock|derive] [--slot-seconds S]\n"
"         [--tcp PORTS] [--udp PORTS] [--pool FIRST-LAST] [--exclude PORTS]\n"
"\n"
"Writes a new key file for the client NAME (the key id: letters, digits,\n"
"'.', '_', '-'; at most %d characters), mode 0600, never over an existing\n"
"file.  The client uses it with --key FILE; the same file copied into\n"
"porthopd's knock.keys_directory as NAME.key lets the client in.  --use\n"
"derive makes a key for derived (time-slot) ports, whose slots last S\n"
"seconds (default %d).  A derive key also names the keyed services\n"
"(--tcp, --udp: their real ports) and the pool their ports are drawn\n"
"from: --pool (default %d-%d) minus --exclude (every other port the\n"
"host serves: porthopd refuses a key whose pool holds one).  PORTS:\n"
"ports and ranges, comma-separated (22,443,1000-1999).  See\n"
"docs/follow.md.\n",
		CLIENTKEY_NAME_MAX, CLIENTKEY_SLOT_DEFAULT,
		CLIENTKEY_POOL_FIRST_DEFAULT, CLIENTKEY_POOL_LAST_DEFAULT);
}

/* "22,443,1000-1999" into *ret (malloc'ed) and *ret_n; 0, or -1 after
 * saying what is wrong. */
static int ports_arg(const char *opt, const char *s, uint16_t **ret,
		     size_t *ret_n)
{
	uint16_t *v = NULL;
	size_t n = 0;
	const char *p = s;

	while (*p != '\0') {
		char *end;
		long a = strtol(p, &end, 10), b = a;

		if (end != p && *end == '-') {
			const char *q = end + 1;

			b = strtol(q, &end, 10);
			if (end == q)
				b = 0;
		}
		if (end == p || a < 1 || b > 65535 || a > b ||
		    (*end != '\0' && *end != ',') ||
		    n + (size_t)(b - a + 1) > CLIENTKEY_LIST_MAX) {
			fprintf(stderr, "porthop keygen: %s \"%s\": expected "
				"ports 1 to 65535 and ranges FIRST-LAST, "
				"comma-separated, at most %d ports\n", opt, s,
				CLIENTKEY_LIST_MAX);
			free(v);
			return -1;
		}
		{
			uint16_t *grown = realloc(v, (n + (size_t)(b - a + 1)) *
						     sizeof(*v));

			if (grown == NULL) {
				free(v);
				fprintf(stderr, "porthop keygen: out of memory\n");
				return -1;
			}
			v = grown;
		}
		for (long x = a; x <= b; x++)
			v[n++] = (uint16_t)x;
		p = *end != '\0' ? end + 1 : end;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* --tcp, --udp, --pool and --exclude into k (a derive key). */
static int derive_args(struct clientkey *k, const char *const arg[4],
		       struct diag *d)
{
	static const char *const opt[4] = { "--tcp", "--udp", "--pool",
					     "--exclude" };
	int r = 0;

	for (int i = 0; r == 0 && i < 4; i++) {
		uint16_t *v = NULL;
		size_t n = 0;

		if (arg[i] == NULL)
			continue;
		if (i == 2) {
			const char *q = arg[i];
			char *end;
			unsigned long a = 0, b = 0;

			/* Digits only: strtoul (and sscanf's %u) would take
			 * signs and spaces, and 131073 cast to a port is 1. */
			if (*q >= '0' && *q <= '9')
				a = strtoul(q, &end, 10);
			if (*q < '0' || *q > '9' || *end != '-' ||
			    end[1] < '0' || end[1] > '9' ||
			    (b = strtoul(end + 1, &end, 10), *end != '\0') ||
			    a > 65535 || b > 65535) {
				fprintf(stderr, "porthop keygen: --pool \"%s\": "
					"expected FIRST-LAST\n", arg[i]);
				return -1;
			}
			r = clientkey_set_pool(k, (uint16_t)a, (uint16_t)b, d);
			continue;
		}
		if (ports_arg(opt[i], arg[i], &v, &n) < 0)
			return -1;
		if (i == 3)
			r = clientkey_set_exclude(k, v, n, d);
		else
			r = clientkey_set_services(k, i == 0, v, n, d);
		free(v);
	}
	return r;
}

int cmd_keygen(const struct globals *gl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "use", required_argument, NULL, 'u' },
		{ "slot-seconds", required_argument, NULL, 'S' },
		{ "tcp", required_argument, NULL, 't' },
		{ "udp", required_argument, NULL, 'U' },
		{ "pool", required_argument, NULL, 'P' },
		{ "exclude", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum clientkey_use use = CLIENTKEY_KNOCK;
	const char *out = NULL, *slot = NULL;
	const char *derive[4] = { NULL, NULL, NULL, NULL };
	struct clientkey *k = NULL;
	struct diag *d;
	int ch, status = EX_SOFTWARE;

	(void)gl;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "o:u:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			out = optarg;
			break;
		case 'u':
			if (strcmp(optarg, "knock") == 0)
				use = CLIENTKEY_KNOCK;
			else if (strcmp(optarg, "derive") == 0)
				use = CLIENTKEY_DERIVE;
			else {
				fprintf(stderr, "porthop keygen: --use \"%s\": "
					"expected knock or derive\n", optarg);
				return EX_USAGE;
			}
			break;
		case 'S':
			slot = optarg;
			break;
		case 't':
			derive[0] = optarg;
			break;
		case 'U':
			derive[1] = optarg;
			break;
		case 'P':
			derive[2] = optarg;
			break;
		case 'x':
			derive[3] = optarg;
			break;
		case 'h':
			keygen_usage(stdout);
			return EXIT_SUCCESS;
		default:
			keygen_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind + 1 != argc || out == NULL) {
		keygen_usage(stderr);
		return EX_USAGE;
	}
	d = diag_new();
	if (d == NULL)
		return EX_OSERR;
	if (clientkey_generate(argv[optind], use, d, &k) < 0) {
		status = diag_errors(d) ? EX_USAGE : EX_OSERR;
		goto out;
	}
	if (slot != NULL) {
		char *end;
		unsigned long v = strtoul(slot, &end, 10);

		if (*slot < '0' || *slot > '9' || *end != '\0' ||
		    clientkey_set_slot_seconds(k, v > UINT_MAX ? 0 : (unsigned)v,
					       d) < 0) {
			if (diag_errors(d) == 0)
				fprintf(stderr, "porthop keygen: --slot-seconds "
					"\"%s\": expected an integer from 1 to "
					"%d\n", slot, CLIENTKEY_SLOT_MAX);
			status = EX_USAGE;
			goto out;
		}
	}
	if (derive_args(k, derive, d) < 0) {
		status = EX_USAGE;
		goto out;
	}
	if (clientkey_write(k, out, d) < 0) {
		status = EX_CANTCREAT;
		goto out;
	}
	printf("%s: key \"%s\" for %s written\n", out, clientkey_name(k),
	       clientkey_use_name(clientkey_use(k)));
	status = EXIT_SUCCESS;
out:
	diag_print(d, stderr);
	diag_free(d);
	clientkey_free(k);
	return status;
}
