/*
 * porthop.h: what the CLI's files share (porthop.c, the commands;
 * porthop_publish.c, the reference's launcher).
 */
#ifndef PORTHOP_CLI_H
#define PORTHOP_CLI_H

#include <jansson.h>

/* Options given before the command: -s PATH, -c FILE. */
struct globals {
	const char *sock;
	const char *conf;
};

/* porthop publish: one trigger, or one every L..U seconds, on Redis.
 * Returns the exit status. */
int cmd_publish(const struct globals *g, int argc, char **argv);

/* porthop watch add|del|list|flush: the runtime watch list.  Returns the
 * exit status. */
int cmd_watch(const struct globals *g, int argc, char **argv);
/* porthop events [--follow] [--json]: the probe event feed.  Returns the
 * exit status. */
int cmd_events(const struct globals *g, int argc, char **argv);

/* What the commands share (porthop.c).  cli_call sends one request
 * (consumed) and waits up to timeout_ms; prints errors; returns a
 * sysexits code and, on success, the reply in *ret. */
struct config;
int cli_call(const char *sock, json_t *req, int timeout_ms, json_t **ret);
/* The control socket: -s, else the configuration's (-c), else the
 * default (*ret_cfg: the configuration loaded, the caller frees it). */
int cli_socket_path(const struct globals *g, struct config **ret_cfg,
		    const char **ret);
/* A reply as indented JSON, without "ok". */
void cli_dump_json(json_t *v);

#endif
