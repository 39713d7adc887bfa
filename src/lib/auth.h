/*
 * auth: authenticated triggers.
 *
 * With a shared key configured, a trigger is a JSON message
 *
 *   {"v": 1, "ts": 1700000000, "nonce": "<32 hex>", "payload": "...",
 *    "mac": "<64 hex>"}
 *
 * whose mac is HMAC-SHA256(key, "porthop-trigger-v1\n" ts "\n" nonce "\n"
 * payload), computed with libsodium.  A message is accepted only inside
 * the time window around now, and only once: nonces seen inside the window
 * are remembered (a bounded table) and a repeat is refused.
 */
#ifndef PORTHOP_AUTH_H
#define PORTHOP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "diag.h"

#define AUTH_KEY_MIN 32
#define AUTH_KEY_MIN_DISTINCT 8
#define AUTH_KEY_MAX 1024
#define AUTH_MSG_MAX 4096

enum auth_result {
	AUTH_OK,
	AUTH_MALFORMED,		/* not a signed trigger at all */
	AUTH_BAD_MAC,		/* signed with another key, or altered */
	AUTH_STALE,		/* outside the time window */
	AUTH_REPLAY,		/* seen before inside the window */
	AUTH_BUSY,		/* the replay table is full */
};

struct auth;

/* A verifier for key (copied), accepting messages whose timestamp is
 * within window_s of now and remembering up to max_nonces nonces.  NULL
 * on allocation failure or if libsodium cannot start. */
struct auth *auth_new(const unsigned char *key, size_t keylen,
		      unsigned window_s, size_t max_nonces);
void auth_free(struct auth *a);

/* Whether a verifies with this key (compared in constant time).  A reload
 * that keeps the key keeps its verifier, and with it the nonces it has
 * seen: a trigger captured before the reload is still a replay after. */
bool auth_same_key(const struct auth *a, const unsigned char *key,
		   size_t keylen);

/* Changes the time window and the bound on remembered nonces, keeping
 * the nonces remembered.  Returns 0, or -ENOMEM with a unchanged. */
int auth_set_window(struct auth *a, unsigned window_s, size_t max_nonces);

/* Verifies msg.  On AUTH_OK, *ret_payload points into a buffer owned by a
 * that lives until the next call, *ret_len its length. */
enum auth_result auth_verify(struct auth *a, const char *msg, size_t len,
			     time_t now, const char **ret_payload,
			     size_t *ret_len);

/* Verifies msg's MAC only: no time window, no replay table.  For stream
 * entries, which a host may read long after they were signed and must
 * read again after a crash; the stream's IDs, not nonces, say what was
 * applied.  *ret_payload as for auth_verify. */
enum auth_result auth_verify_mac(struct auth *a, const char *msg, size_t len,
				 const char **ret_payload, size_t *ret_len);

/* A short name of a result, for logs and metrics. */
const char *auth_result_name(enum auth_result r);

/* Signs payload for time now with a fresh random nonce.  On success
 * *ret_msg is a malloc'ed message.  Returns 0 or a negative errno. */
int auth_sign(const unsigned char *key, size_t keylen, time_t now,
	      const char *payload, char **ret_msg);

/* Reads a key file: a regular file owned by root or by the effective
 * user, not writable by its group, not readable or writable by others,
 * holding AUTH_KEY_MIN to AUTH_KEY_MAX bytes of key (one trailing "\n" or
 * "\r\n" dropped) with at least AUTH_KEY_MIN_DISTINCT distinct byte
 * values.  On success *ret_key is malloc'ed (the caller wipes and frees
 * it); errors go to d, labelled with `label` (e.g. the configuration path
 * and key), the file's path JSON-encoded. */
int auth_load_key(const char *path, const char *label, struct diag *d,
		  unsigned char **ret_key, size_t *ret_len);

/* Opens a key file for reading after auth_load_key's checks of its type,
 * owner and mode (not of its contents).  On success *ret_fd is the open
 * descriptor (the caller closes it); errors go to d as for
 * auth_load_key. */
int auth_open_key_file(const char *path, const char *label, struct diag *d,
		       int *ret_fd);

#endif
