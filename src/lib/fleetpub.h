/*
 * fleetpub: the publishers' side of the fleet feed (porthop publish
 * --stream, porthop watch --fleet, porthop fleet): finding the primary
 * (through the configuration's sentinels when it names them), writing
 * operations with the snapshot in one script call, waiting for replicas,
 * reading the consumer groups.  Synchronous hiredis: these are short
 * command-line runs.  It does not print: errors go to the caller's
 * buffer.
 */
#ifndef PORTHOP_FLEETPUB_H
#define PORTHOP_FLEETPUB_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"
#include "fleet.h"

struct fleetpub;

/* Operations sent per script call (a large feed takes several). */
#define FLEETPUB_CHUNK 500

/* Connects to the primary of cfg's Redis: with sentinels, the one they
 * name (each asked in turn), checked with ROLE; else host:port (host and
 * port, when given, override the configuration's).  0 with *ret, or
 * -EHOSTUNREACH (no primary found), -ENOMEM; err says why. */
int fleetpub_connect(const struct config *cfg, const char *host, int port,
		     struct fleetpub **ret, char *err, size_t errlen);
void fleetpub_free(struct fleetpub *p);
/* "host:port" of the primary connected to. */
const char *fleetpub_primary(const struct fleetpub *p);

/* Publishes ops[0..n) (ts filled in when 0), each signed with key when
 * keylen > 0, in script calls of FLEETPUB_CHUNK; then, if wait_replicas
 * (the configuration's unless >= 0), WAIT for that many replicas.
 * Returns 0; -EIO (Redis refused, or the connection failed: what was
 * sent before is published), -ETIMEDOUT (fewer replicas acknowledged in
 * time: published on the primary only, which a failover may lose), or
 * -EINVAL / -ENOMEM.  *ret_sent: operations the primary took. */
int fleetpub_send(struct fleetpub *p, const struct fleet_op *ops, size_t n,
		  const unsigned char *key, size_t keylen, int wait_replicas,
		  size_t *ret_sent, char *err, size_t errlen);

/* The adapters' one call (porthop-sshguard, porthop-crowdsec): connects
 * to cfg's primary, publishes ops[0..n) signed with cfg's trigger key
 * (if any), WAITs as cfg says, disconnects.  Returns fleetpub_connect's
 * or fleetpub_send's result; err says why. */
int fleetpub_publish(const struct config *cfg, const struct fleet_op *ops,
		     size_t n, char *err, size_t errlen);

/* The stream's consumer groups: [{"name", "pending", "lag",
 * "last_delivered", "entries_read"}] and the stream's length, as
 * {"stream", "length", "last_id", "groups": [...]}.  NULL with err. */
json_t *fleetpub_groups(struct fleetpub *p, char *err, size_t errlen);

#endif
