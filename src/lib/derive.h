/*
 * derive: the ports of keyed services in each time slot (time-slot
 * hopping).  Pure: a key, a pool and a service list in, ports out; the
 * construction is written down in docs/follow.md so that another
 * implementation can follow it, and its test vectors are checked in
 * tests/unit/test_derive.c.
 *
 * In slot t (floor(unix time / slot_seconds)) each service s (protocol and
 * real port) is on port P(K, s, t), drawn uniformly by rejection sampling
 * from 16-bit chunks of HMAC-SHA256(K, "porthop-follow-v1" || s || t ||
 * counter) over the slot's share of the pool: the free ports p with
 * p mod 3 == t mod 3, so slots t-1, t and t+1 never share a port; the
 * services of one slot and protocol take distinct ports, drawn in order
 * of their real ports.
 */
#ifndef PORTHOP_DERIVE_H
#define PORTHOP_DERIVE_H

#include <stddef.h>
#include <stdint.h>

#include "clientkey.h"
#include "diag.h"

#define DERIVE_LABEL "porthop-follow-v1"
#define DERIVE_PROTO_TCP 6
#define DERIVE_PROTO_UDP 17

struct derive;

/* A derivation for secret (CLIENTKEY_SECRET_LEN bytes, copied) over the
 * pool [first, last] minus exclude[] minus every service port, for the
 * services tcp[] and udp[] (ports 1-65535; copied, sorted, repeats
 * dropped).  Returns 0, -EINVAL with the error in d (no service, a bad
 * range, a pool share smaller than twice a protocol's services) or
 * -ENOMEM. */
int derive_new(const unsigned char *secret, uint16_t first, uint16_t last,
	       const uint16_t *exclude, size_t n_exclude, const uint16_t *tcp,
	       size_t n_tcp, const uint16_t *udp, size_t n_udp, struct diag *d,
	       struct derive **ret_dv);

/* The same from a key file of use "derive" (-EINVAL for a knock key). */
int derive_from_key(const struct clientkey *k, struct diag *d,
		    struct derive **ret_dv);

/* The number of services, and service i's protocol (DERIVE_PROTO_*) and
 * real port, i in the order derive_slot reports them (TCP by port, then
 * UDP by port). */
size_t derive_count(const struct derive *dv);
void derive_service(const struct derive *dv, size_t i, uint8_t *ret_proto,
		    uint16_t *ret_port);

/* The slot of a time: floor(unix_seconds / slot_seconds); times before
 * 1970 are slot 0. */
uint64_t derive_slot_at(int64_t unix_seconds, unsigned slot_seconds);

/* Every service's port in slot t: ret_ports[derive_count(dv)], in service
 * order.  Returns 0 or -ERANGE (no port found within the counter's bound:
 * with a pool the constructor accepts, less likely than 2^-100). */
int derive_slot(const struct derive *dv, uint64_t t, uint16_t *ret_ports);

/* One service's port in slot t; -ENOENT if it is not one of dv's. */
int derive_port(const struct derive *dv, uint64_t t, uint8_t proto,
		uint16_t port, uint16_t *ret_port);

/* A port of the pool for service i (i < derive_count), distinct for each
 * service and the same in every slot: where porthopd sends a keyed
 * source's packets to the service's real port, so that the real port
 * looks closed (nothing listens in the pool).  Never a client's concern. */
uint16_t derive_closed_port(const struct derive *dv, size_t i);

/* The protocol of a service given by its real port alone: TCP when the
 * key lists it among its tcp services, else UDP. */
uint8_t derive_key_proto(const struct clientkey *k, unsigned port);

/* The port of the service whose real port is service (protocol as
 * derive_key_proto says) at time now (unix seconds), from the key file
 * alone: what a client connects to.  Returns 0, -EINVAL (not a usable
 * derive key), -ENOENT (not one of its services) or -ENOMEM. */
int derive_key_port(const struct clientkey *k, unsigned service, int64_t now,
		    uint16_t *ret_port);

/* Wipes the secret and frees dv; accepts NULL. */
void derive_free(struct derive *dv);

#endif
