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
 * with "use": "derive" it may also hold "slot_seconds" (default 30).  The
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

#include "diag.h"

#define CLIENTKEY_SECRET_LEN 32
#define CLIENTKEY_NAME_MAX 32
#define CLIENTKEY_FILE_MAX 4096
#define CLIENTKEY_SLOT_DEFAULT 30
#define CLIENTKEY_SLOT_MAX 3600

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

/* Wipes the secret and frees k; accepts NULL. */
void clientkey_free(struct clientkey *k);

#endif
