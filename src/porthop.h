/*
 * porthop.h: what the CLI's files share (porthop.c, the commands;
 * porthop_publish.c, the reference's launcher).
 */
#ifndef PORTHOP_CLI_H
#define PORTHOP_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

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

/* The client's key file for command cmd (porthop_knock.c): path (--key),
 * else $PORTHOP_KEY, else ~/.config/porthop/client.key.  NULL after
 * saying why, *ret_status the exit status (66). */
struct clientkey;
struct clientkey *cli_load_key(const char *cmd, const char *path,
			       int *ret_status);

/* A time for --at (porthop_follow.c): seconds since 1970, now, now+N or
 * now-N.  0, or -1 if s is none of them. */
int cli_parse_time(const char *s, time_t *ret);

/* porthop keygen NAME -o FILE: a client's key file (porthop_keys.c). */
int cmd_keygen(const struct globals *g, int argc, char **argv);

/* porthop knock HOST and porthop connect HOST PORT: a client's side of
 * single packet authorisation (porthop_knock.c). */
int cmd_knock(const struct globals *g, int argc, char **argv);
int cmd_connect(const struct globals *g, int argc, char **argv);

/* porthop follow HOST SERVICE: a keyed service's port now
 * (porthop_follow.c).  Returns the exit status. */
int cmd_follow(const struct globals *g, int argc, char **argv);
/* The port of the service whose real port is service (TCP when k lists it
 * there, else UDP) in the slot of now, from the derive key k alone.
 * Returns 0 and *ret_port, -EINVAL (k is not a usable derive key),
 * -ENOENT (not one of k's services) or -ENOMEM. */
struct clientkey;
int cli_derive_port(const struct clientkey *k, unsigned service, time_t now,
		    unsigned *ret_port);

/* porthop fleet: the stream's consumer groups and their lag. */
int cmd_fleet(const struct globals *g, int argc, char **argv);

/* The fleet's side (porthop_fleet.c).  cli_fleet_config loads conf (the
 * default path if NULL) for a publisher; NULL after saying why (no
 * stream section included).  cli_fleet_send publishes ops to its stream
 * (signed with key, else the configuration's trigger key), waiting for
 * wait_replicas (< 0: the configuration's); prints what happened;
 * returns the exit status: 0, 69 (no primary, Redis refused), 75 (WAIT
 * short: on the primary only), 65, 78. */
struct fleet_op;
struct config *cli_fleet_config(const char *conf);
int cli_fleet_send(const struct config *cfg, const char *host, int port,
		   const struct fleet_op *ops, size_t n, int wait_replicas,
		   const unsigned char *key, size_t keylen, bool quiet);

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
