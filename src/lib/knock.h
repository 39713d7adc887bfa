/*
 * knock: single packet authorisation (docs/knock.md).
 *
 * A knock is one UDP datagram of a fixed layout:
 *
 *   offset  size  field
 *        0     3  magic "PHK"
 *        3     1  version, 1
 *        4     1  n: the key id's length, 1 to 32
 *        5     1  address family: 0 none, 4 IPv4, 6 IPv6
 *        6     2  zero
 *        8     8  timestamp: seconds since the epoch, unsigned, big-endian
 *       16    16  nonce: random bytes
 *       32     n  key id: the key's name ([A-Za-z0-9._-], not starting
 *                 with '.')
 *     32+n     a  the address to authorise: 0, 4 or 16 bytes (network
 *                 order), as the family says
 *   32+n+a    32  HMAC-SHA256(secret, "porthop-knock-v1" || bytes
 *                 0 .. 32+n+a)
 *
 * 65 to 112 bytes.  Without an address, porthopd authorises the address
 * the packet comes from (a client behind NAT does not know its own).
 *
 * The verifier holds the keys (by name) and a bounded replay table of the
 * nonces of knocks accepted within the window.  Pure: no clock, no I/O
 * (the keys directory is read by knock_keys.c).
 */
#ifndef PORTHOP_KNOCK_H
#define PORTHOP_KNOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "clientkey.h"
#include "diag.h"

#define KNOCK_VERSION 1
#define KNOCK_HEAD 32		/* magic .. nonce */
#define KNOCK_NONCE_LEN 16
#define KNOCK_MAC_LEN 32
#define KNOCK_MIN (KNOCK_HEAD + 1 + KNOCK_MAC_LEN)
#define KNOCK_MAX (KNOCK_HEAD + CLIENTKEY_NAME_MAX + 16 + KNOCK_MAC_LEN)
#define KNOCK_DOMAIN "porthop-knock-v1"
#define KNOCK_PORT_DEFAULT 62201
#define KNOCK_REPLAY_DEFAULT 4096
#define KNOCK_KEYS_MAX 4096

/* What became of a knock; every refusal is counted by its reason. */
enum knock_result {
	KNOCK_OK,
	KNOCK_MALFORMED,	/* not a knock: magic, version, fields */
	KNOCK_TRUNCATED,	/* shorter than its header says */
	KNOCK_OVERSIZED,	/* longer than its header says */
	KNOCK_UNKNOWN_KEY,	/* no key of that name */
	KNOCK_BAD_MAC,		/* another secret, or altered */
	KNOCK_STALE,		/* older than the window */
	KNOCK_FUTURE,		/* dated beyond the window */
	KNOCK_REPLAY,		/* its nonce seen within the window */
	KNOCK_BUSY,		/* the replay table is full */
	KNOCK_RESULTS
};

/* The figures of porthopd's knocks (core keeps them; metrics show them). */
struct knock_stats {
	uint64_t results[KNOCK_RESULTS];	/* knocks read, by result */
	uint64_t not_udp;	/* logged packets that were no UDP datagram
				 * to the knock port (counted malformed too) */
	uint64_t admit_failed;	/* verified, but the kernel refused the add */
	uint64_t lost;		/* logged, never read (socket overrun) */
	uint64_t kernel_limit;	/* held back by the kernel's rate limit */
	size_t keys;		/* keys loaded */
	size_t nonces;		/* the replay table's entries */
};

/* A knock's fields. */
struct knock_msg {
	char name[CLIENTKEY_NAME_MAX + 1];
	int64_t ts;
	unsigned char nonce[KNOCK_NONCE_LEN];
	int family;		/* 0 (none), AF_INET or AF_INET6 */
	unsigned char addr[16];	/* the first 4 bytes for AF_INET */
};

/* The label of a result ("ok", "malformed", ...); "unknown" out of range. */
const char *knock_result_name(enum knock_result r);

/* Writes the knock for key k (its name and secret) into buf (at least
 * KNOCK_MAX bytes): timestamp ts, nonce (KNOCK_NONCE_LEN bytes), and
 * family/addr (family 0: none).  Returns the length, or -EINVAL (family
 * not 0, AF_INET or AF_INET6; buf too small). */
int knock_encode(const struct clientkey *k, int64_t ts,
		 const unsigned char *nonce, int family,
		 const unsigned char *addr, unsigned char *buf, size_t cap);

/* Reads buf's fields without verifying anything cryptographic.  KNOCK_OK
 * and *ret filled, or the reason it is not a knock (MALFORMED, TRUNCATED,
 * OVERSIZED). */
enum knock_result knock_parse(const unsigned char *buf, size_t len,
			      struct knock_msg *ret);

/* The UDP payload of an IP packet (as nflog copies it, from the network
 * header on) sent to port: the source in *ret_family (AF_INET/AF_INET6)
 * and ret_src (16 bytes), the payload borrowed from pkt.  -EINVAL if
 * pkt is not such a packet, or cut short (the UDP length is believed
 * only up to len). */
int knock_udp_payload(const uint8_t *pkt, size_t len, uint16_t port,
		      int *ret_family, unsigned char ret_src[16],
		      const uint8_t **ret_payload, size_t *ret_plen);

struct knock_verifier;

/* A verifier accepting knocks within window_s of now, remembering at
 * most max_nonces nonces.  NULL on allocation failure or if libsodium
 * cannot start. */
struct knock_verifier *knock_verifier_new(unsigned window_s,
					  size_t max_nonces);
void knock_verifier_free(struct knock_verifier *v);	/* accepts NULL */

/* Changes the window, keeping the nonces remembered. */
void knock_verifier_set_window(struct knock_verifier *v, unsigned window_s);

/* Adds k's name and secret (copied); a key of that name is replaced.
 * -ENOSPC beyond KNOCK_KEYS_MAX keys, -ENOMEM. */
int knock_verifier_add_key(struct knock_verifier *v,
			   const struct clientkey *k);
/* Forgets every key (wiped), keeping the replay table: a knock captured
 * before a reload is still a replay after it. */
void knock_verifier_clear_keys(struct knock_verifier *v);
size_t knock_verifier_keys(const struct knock_verifier *v);
/* Nonces remembered now. */
size_t knock_verifier_nonces(const struct knock_verifier *v);

/* Verifies a knock at time now: parsed, its key found, its MAC, its
 * time within the window, its nonce not seen.  On KNOCK_OK *ret holds its
 * fields and its nonce is remembered; on a refusal *ret is left alone. */
enum knock_result knock_verify(struct knock_verifier *v,
			       const unsigned char *buf, size_t len,
			       time_t now, struct knock_msg *ret);

/* Replaces v's keys by those of directory dir: every NAME.key file
 * holding a knock key named NAME (clientkey_load's checks: a file others
 * can read is refused).  Files that fail are named in d (one error each)
 * and left out, the others still load; derive keys and other files are
 * skipped.  Returns the number of keys loaded, or a negative errno (dir
 * unreadable: v's keys unchanged, the error in d). */
int knock_load_keys(struct knock_verifier *v, const char *dir,
		    struct diag *d);

#endif
