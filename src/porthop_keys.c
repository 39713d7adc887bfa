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
"\n"
"Writes a new key file for the client NAME (the key id: letters, digits,\n"
"'.', '_', '-'; at most %d characters), mode 0600, never over an existing\n"
"file.  The client uses it with --key FILE; the same file copied into\n"
"porthopd's knock.keys_directory as NAME.key lets the client in.  --use\n"
"derive makes a key for derived (time-slot) ports, whose slots last S\n"
"seconds (default %d).\n",
		CLIENTKEY_NAME_MAX, CLIENTKEY_SLOT_DEFAULT);
}

int cmd_keygen(const struct globals *gl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "use", required_argument, NULL, 'u' },
		{ "slot-seconds", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum clientkey_use use = CLIENTKEY_KNOCK;
	const char *out = NULL, *slot = NULL;
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
