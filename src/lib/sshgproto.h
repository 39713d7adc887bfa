/*
 * sshgproto: sshguard 2.4's firewall backend protocol, read by the
 * porthop-sshguard backend, and the control requests it becomes.
 *
 * sshguard pipes its blocker (sshg-blocker) into the backend named by
 * BACKEND= in sshguard.conf.  The blocker writes one command a line on
 * the backend's standard input and reads nothing back:
 *
 *   flushonexit                 (first, at start) flush when input ends
 *   block ADDR TYPE CIDR        watch ADDR/CIDR (TYPE 4 or 6)
 *   release ADDR TYPE CIDR      stop watching it
 *   flush                       stop watching everything blocked
 *
 * ADDR is the attacker's address; CIDR the prefix length of the network
 * to block around it (IPV4_SUBNET, IPV6_SUBNET: 32 and 128 by default).
 * The network is ADDR with its host bits cleared, so that a block and
 * its release name the same runtime entry.  Older blockers wrote no CIDR:
 * a line without one blocks the address alone.
 *
 * Pure: no I/O, no clock.
 */
#ifndef PORTHOP_SSHGPROTO_H
#define PORTHOP_SSHGPROTO_H

#include <jansson.h>

/* Longest line the protocol can carry ("release", an IPv6 address with
 * an IPv4 tail, "6", "128" and the spaces fit well inside). */
#define SSHGPROTO_LINE_MAX 256
/* The network as text: an IPv6 address, '/', three digits, NUL. */
#define SSHGPROTO_NET_MAX 52

enum sshgproto_kind {
	SSHGPROTO_BLOCK,
	SSHGPROTO_RELEASE,
	SSHGPROTO_FLUSH,
	SSHGPROTO_FLUSHONEXIT,
};

/* One parsed command. */
struct sshgproto_cmd {
	enum sshgproto_kind kind;
	/* Block and release: the network, canonical (inet_ntop): "ADDR"
	 * for a whole address (/32, /128), "NET/LEN" otherwise. */
	char net[SSHGPROTO_NET_MAX];
};

/* Parses one line (its '\n' optional; words separated by spaces or
 * tabs).  Returns 0 and fills *ret, or -EINVAL with *ret_why a static
 * English phrase saying what is wrong ("unknown command", ...); *ret is
 * then untouched. */
int sshgproto_parse(const char *line, struct sshgproto_cmd *ret,
		    const char **ret_why);

/* The command's name ("block", "release", ...), static. */
const char *sshgproto_kind_name(enum sshgproto_kind kind);

/* The control request that carries cmd for origin: watch_add without a
 * TTL (sshguard releases its blocks itself), watch_del or watch_flush of
 * origin.  Returns a new object (the caller owns it), or NULL for
 * flushonexit (nothing to send) or when out of memory. */
json_t *sshgproto_request(const struct sshgproto_cmd *cmd,
			  const char *origin);

/* What became of a request. */
enum sshgproto_verdict {
	SSHGPROTO_DONE,		/* in force (or nothing was left to undo) */
	SSHGPROTO_RETRY,	/* porthopd unreachable or busy: try again */
	SSHGPROTO_FAILED,	/* refused: retrying would not help */
};

/* The verdict on cmd's request, from control_call()'s result (0 or a
 * negative errno) and its reply (borrowed; NULL unless the result is 0).
 * A release or flush that porthopd answers with "not_watched" is done:
 * nothing of this origin watched it any more (porthopd expired it, or a
 * flush came first). */
enum sshgproto_verdict sshgproto_verdict(const struct sshgproto_cmd *cmd,
					 int call_result,
					 const json_t *reply);

#endif
