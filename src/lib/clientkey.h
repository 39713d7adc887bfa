/*
 * clientkey: a client's key file, the one secret a client shares with
 * porthopd to knock (single packet authorisation) or to derive the ports
 * of keyed services (time-slot hopping).
 *
 * The file is a JSON object, written by `porthop keygen`:
 *
 *   {"porthop_client_key": 1, "name": "alice", "use": "knock",
 *    "secret": "<64 hex digits: 32 random bytes>"}
 *
 * with "use": "derive" it may also hold "slot_seconds" (default 30) and
 * what the client needs to compute a port (docs/follow.md): "tcp" and
 * "udp", the keyed services' real ports; "pool", [first, last], the ports
 * they are drawn from (default [1024, 65535]); "exclude", ports of that
 * range never drawn (the host's other services).  The
 * name is the key id: the client's knocks carry it, and porthopd finds the
 * secret under that name in its keys directory.  The client keeps the
 * file; a copy of the same file in porthopd's keys directory is what
 * porthopd checks.  Unknown keys are refused, so a file written for a
 * newer porthop is never half understood.
 */
#ifndef PORTHOP_CLIENTKEY_H
#define PORTHOP_CLIENTKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"

#define CLIENTKEY_SECRET_LEN 32
#define CLIENTKEY_NAME_MAX 32
/* Room for a derive key's service list (a thousand ports and more). */
#define CLIENTKEY_FILE_MAX 262144
#define CLIENTKEY_SLOT_DEFAULT 30
#define CLIENTKEY_SLOT_MAX 3600
/* At most this many ports in each of a derive key's lists. */
#define CLIENTKEY_LIST_MAX 4096
#define CLIENTKEY_POOL_FIRST_DEFAULT 1024
#define CLIENTKEY_POOL_LAST_DEFAULT 65535

enum clientkey_use {
	CLIENTKEY_KNOCK,
	CLIENTKEY_DERIVE,
};

struct clientkey;

/* Whether name can be a key id: 1 to CLIENTKEY_NAME_MAX characters of
 * letters, digits, '.', '_' and '-', not starting with '.' (so it is also
 * a safe file name). */
bool clientkey_name_valid(const char *name);

/* A new key with a fresh random secret (libsodium).  Returns 0, -EINVAL
 * (name not valid: the error in d) or -ENOMEM. */
int clientkey_generate(const char *name, enum clientkey_use use,
		       struct diag *d, struct clientkey **ret_key);

/* Parses a key file's text; `label` names it in errors ("<label>: <json
 * path>: ..."). */
int clientkey_parse(const char *label, const char *text, size_t len,
		    struct diag *d, struct clientkey **ret_key);

/* Reads a key file after the checks auth_load_key makes of a key file's
 * type, owner and mode (not readable by others). */
int clientkey_load(const char *path, struct diag *d,
		   struct clientkey **ret_key);

/* Writes k to a new file at path (never over an existing one, never
 * through a symlink), mode 0600, synced.  Returns 0 or a negative errno
 * with the error in d; a failed write leaves no file. */
int clientkey_write(const struct clientkey *k, const char *path,
		    struct diag *d);

/* k's text as clientkey_write writes it; malloc'ed, the caller wipes
 * (sodium_memzero) and frees it. */
char *clientkey_text(const struct clientkey *k);

const char *clientkey_name(const struct clientkey *k);
enum clientkey_use clientkey_use(const struct clientkey *k);
const char *clientkey_use_name(enum clientkey_use use);
/* CLIENTKEY_SECRET_LEN bytes. */
const unsigned char *clientkey_secret(const struct clientkey *k);
/* The slot length for derived ports (CLIENTKEY_SLOT_DEFAULT unless the
 * file says otherwise; only meaningful for CLIENTKEY_DERIVE). */
unsigned clientkey_slot_seconds(const struct clientkey *k);

/* Sets the slot length of a derive key: 1 to CLIENTKEY_SLOT_MAX seconds.
 * Returns 0, or -EINVAL with the error in d (out of range, or a knock
 * key). */
int clientkey_set_slot_seconds(struct clientkey *k, unsigned seconds,
			       struct diag *d);

/* A derive key's list of keyed services of one protocol ("tcp" when tcp
 * is true, else "udp"): sorted, distinct, *ret_n of them (0: none).  The
 * array belongs to k. */
const uint16_t *clientkey_services(const struct clientkey *k, bool tcp,
				   size_t *ret_n);
/* A derive key's pool: the range and the excluded ports (sorted,
 * distinct; they belong to k). */
void clientkey_pool(const struct clientkey *k, uint16_t *ret_first,
		    uint16_t *ret_last);
const uint16_t *clientkey_exclude(const struct clientkey *k, size_t *ret_n);

/* Sets a derive key's services of one protocol, its pool range or its
 * excluded ports: ports from 1 to 65535, at most CLIENTKEY_LIST_MAX,
 * copied, sorted, repeats dropped.  Returns 0, -EINVAL with the error in
 * d (a knock key, a bad range), or -ENOMEM. */
int clientkey_set_services(struct clientkey *k, bool tcp,
			   const uint16_t *ports, size_t n, struct diag *d);
int clientkey_set_pool(struct clientkey *k, uint16_t first, uint16_t last,
		       struct diag *d);
int clientkey_set_exclude(struct clientkey *k, const uint16_t *ports,
			  size_t n, struct diag *d);

/* Wipes the secret and frees k; accepts NULL. */
void clientkey_free(struct clientkey *k);

#endif
