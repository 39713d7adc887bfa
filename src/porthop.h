/*
 * porthop.h: what the CLI's files share (porthop.c, the commands;
 * porthop_publish.c, the reference's launcher).
 */
#ifndef PORTHOP_CLI_H
#define PORTHOP_CLI_H

/* Options given before the command: -s PATH, -c FILE. */
struct globals {
	const char *sock;
	const char *conf;
};

/* porthop publish: one trigger, or one every L..U seconds, on Redis.
 * Returns the exit status. */
int cmd_publish(const struct globals *g, int argc, char **argv);

#endif
