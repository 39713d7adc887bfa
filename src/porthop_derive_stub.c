/*
 * cli_derive_port for a build without derived ports: says so.  The build
 * with them provides the real one instead.
 */
#include <stdio.h>
#include <sysexits.h>

#include "porthop.h"

int cli_derive_port(const struct clientkey *k, unsigned service, time_t now,
		    unsigned *ret_port)
{
	(void)k;
	(void)service;
	(void)now;
	(void)ret_port;
	fprintf(stderr, "porthop: derived ports: not supported by this build\n");
	return EX_UNAVAILABLE;
}
