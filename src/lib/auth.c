/*
 * auth: authenticated triggers. See auth.h for the contract.
 */
#include "auth.h"
#include "jsonflat.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NONCE_LEN 16
#define MAC_LEN crypto_auth_hmacsha256_BYTES
#define DOMAIN "porthop-trigger-v1\n"

struct nonce_slot {
	unsigned char nonce[NONCE_LEN];
	time_t ts;		/* 0: empty */
};

struct auth {
	unsigned char *key;
	size_t keylen;
	unsigned window;
	struct nonce_slot *slots;	/* open addressing, power of two */
	size_t nslots;
	size_t used;
	size_t max;
	/* The last message's members, the payload among them. */
	char scratch[AUTH_MSG_MAX + 2 * JSONFLAT_MEMBERS_MAX];
};

struct auth *auth_new(const unsigned char *key, size_t keylen,
		      unsigned window_s, size_t max_nonces)
{
	struct auth *a;
	size_t n = 16;

	if (sodium_init() < 0)
		return NULL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	/* Twice the bound keeps probing short. */
	while (n < max_nonces * 2)
		n *= 2;
	a->key = malloc(keylen);
	a->slots = calloc(n, sizeof(*a->slots));
	if (a->key == NULL || a->slots == NULL) {
		auth_free(a);
		return NULL;
	}
	memcpy(a->key, key, keylen);
	a->keylen = keylen;
	a->window = window_s;
	a->nslots = n;
	a->max = max_nonces;
	return a;
}

void auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	if (a->key)
		sodium_memzero(a->key, a->keylen);
	free(a->key);
	free(a->slots);
	free(a);
}

bool auth_same_key(const struct auth *a, const unsigned char *key,
		   size_t keylen)
{
	return a->keylen == keylen && sodium_memcmp(a->key, key, keylen) == 0;
}

int auth_set_window(struct auth *a, unsigned window_s, size_t max_nonces)
{
	struct nonce_slot *fresh;
	size_t n = 16;

	/* Never smaller than what is remembered: a nonce dropped here could
	 * be replayed. */
	while (n < max_nonces * 2 || n < a->used * 2)
		n *= 2;
	if (n == a->nslots) {
		a->window = window_s;
		a->max = max_nonces;
		return 0;
	}
	fresh = calloc(n, sizeof(*fresh));
	if (fresh == NULL)
		return -ENOMEM;
	/* Every nonce remembered moves over. */
	a->used = 0;
	for (size_t i = 0; i < a->nslots; i++) {
		size_t h;

		if (a->slots[i].ts == 0)
			continue;
		memcpy(&h, a->slots[i].nonce, sizeof(h));
		for (h &= n - 1; fresh[h].ts; h = (h + 1) & (n - 1))
			;
		fresh[h] = a->slots[i];
		a->used++;
	}
	free(a->slots);
	a->slots = fresh;
	a->nslots = n;
	a->window = window_s;
	a->max = max_nonces;
	return 0;
}

const char *auth_result_name(enum auth_result r)
{
	switch (r) {
	case AUTH_OK:
		return "ok";
	case AUTH_MALFORMED:
		return "malformed";
	case AUTH_BAD_MAC:
		return "bad_mac";
	case AUTH_STALE:
		return "stale";
	case AUTH_REPLAY:
		return "replay";
	case AUTH_BUSY:
		return "busy";
	}
	return "unknown";
}

static void mac_of(const unsigned char *key, size_t keylen, long long ts,
		   const char *nonce_hex, const char *payload, size_t plen,
		   unsigned char out[MAC_LEN])
{
	crypto_auth_hmacsha256_state st;
	char head[64];
	int n = snprintf(head, sizeof(head), "%lld\n%s\n", ts, nonce_hex);

	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)DOMAIN,
				      strlen(DOMAIN));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)head,
				      (unsigned long long)n);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)payload,
				      plen);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

/* Drops nonces that fell out of the window, rebuilding the table. */
static void purge(struct auth *a, time_t now)
{
	struct nonce_slot *old = a->slots;
	struct nonce_slot *fresh = calloc(a->nslots, sizeof(*fresh));

	if (fresh == NULL)
		return;
	a->slots = fresh;
	a->used = 0;
	for (size_t i = 0; i < a->nslots; i++) {
		size_t h;

		if (old[i].ts == 0 || old[i].ts + (time_t)a->window < now)
			continue;
		memcpy(&h, old[i].nonce, sizeof(h));
		for (h &= a->nslots - 1; fresh[h].ts; h = (h + 1) & (a->nslots - 1))
			;
		fresh[h] = old[i];
		a->used++;
	}
	free(old);
}

/* Remembers nonce; AUTH_REPLAY if it is there already. */
static enum auth_result remember(struct auth *a, const unsigned char *nonce,
				 time_t ts, time_t now)
{
	size_t h;

	/* A replay is told as one however full the table is. */
	memcpy(&h, nonce, sizeof(h));
	for (h &= a->nslots - 1; a->slots[h].ts; h = (h + 1) & (a->nslots - 1))
		if (memcmp(a->slots[h].nonce, nonce, NONCE_LEN) == 0 &&
		    a->slots[h].ts + (time_t)a->window >= now)
			return AUTH_REPLAY;
	if (a->used >= a->max) {
		purge(a, now);
		if (a->used >= a->max)
			return AUTH_BUSY;
		/* The table was rebuilt: find the free slot again. */
		memcpy(&h, nonce, sizeof(h));
		for (h &= a->nslots - 1; a->slots[h].ts;
		     h = (h + 1) & (a->nslots - 1))
			;
	}
	memcpy(a->slots[h].nonce, nonce, NONCE_LEN);
	a->slots[h].ts = ts > 0 ? ts : 1;
	a->used++;
	return AUTH_OK;
}

static enum auth_result verify(struct auth *a, const char *msg, size_t len,
			       time_t now, bool fresh, const char **ret_payload,
			       size_t *ret_len);

enum auth_result auth_verify(struct auth *a, const char *msg, size_t len,
			     time_t now, const char **ret_payload,
			     size_t *ret_len)
{
	return verify(a, msg, len, now, true, ret_payload, ret_len);
}

enum auth_result auth_verify_mac(struct auth *a, const char *msg, size_t len,
				 const char **ret_payload, size_t *ret_len)
{
	return verify(a, msg, len, 0, false, ret_payload, ret_len);
}

/* A member of f that is a string, or NULL. */
static const struct jsonflat_member *string_member(const struct jsonflat *f,
						   const char *key)
{
	const struct jsonflat_member *m = jsonflat_get(f, key);

	return m && m->type == JSONFLAT_STRING ? m : NULL;
}

/* fresh: the time window and the replay table apply (a trigger on a
 * channel), or not (a stream entry, whose ID says it was applied). */
static enum auth_result verify(struct auth *a, const char *msg, size_t len,
			       time_t now, bool fresh, const char **ret_payload,
			       size_t *ret_len)
{
	unsigned char nonce[NONCE_LEN], mac[MAC_LEN], want[MAC_LEN];
	struct jsonflat f = { .scratch = a->scratch, .cap = sizeof(a->scratch) };
	const struct jsonflat_member *v, *ts, *nonce_hex, *mac_hex, *payload;
	enum auth_result r;
	size_t bin;
	long long t;

	if (len > AUTH_MSG_MAX || jsonflat_load(msg, len, &f) < 0)
		return AUTH_MALFORMED;
	v = jsonflat_get(&f, "v");
	ts = jsonflat_get(&f, "ts");
	nonce_hex = string_member(&f, "nonce");
	mac_hex = string_member(&f, "mac");
	payload = string_member(&f, "payload");
	if (f.n != 5 || !v || v->type != JSONFLAT_INTEGER || v->integer != 1 ||
	    !ts || ts->type != JSONFLAT_INTEGER || !nonce_hex || !mac_hex ||
	    !payload)
		return AUTH_MALFORMED;
	t = ts->integer;
	if (nonce_hex->len != 2 * NONCE_LEN || mac_hex->len != 2 * MAC_LEN ||
	    sodium_hex2bin(nonce, sizeof(nonce), nonce_hex->str, 2 * NONCE_LEN,
			   NULL, &bin, NULL) != 0 || bin != NONCE_LEN ||
	    sodium_hex2bin(mac, sizeof(mac), mac_hex->str, 2 * MAC_LEN, NULL,
			   &bin, NULL) != 0 || bin != MAC_LEN)
		return AUTH_MALFORMED;
	/* The MAC first: nothing of an unauthenticated message is kept. */
	mac_of(a->key, a->keylen, t, nonce_hex->str, payload->str,
	       payload->len, want);
	if (sodium_memcmp(mac, want, MAC_LEN) != 0)
		return AUTH_BAD_MAC;
	if (fresh && (t < (long long)now - a->window ||
		      t > (long long)now + a->window))
		return AUTH_STALE;
	r = fresh ? remember(a, nonce, (time_t)t, now) : AUTH_OK;
	if (r != AUTH_OK)
		return r;
	/* In the scratch, NUL-terminated: kept until the next message. */
	*ret_payload = payload->str;
	*ret_len = payload->len;
	return AUTH_OK;
}

int auth_sign(const unsigned char *key, size_t keylen, time_t now,
	      const char *payload, char **ret_msg)
{
	unsigned char nonce[NONCE_LEN], mac[MAC_LEN];
	char nonce_hex[2 * NONCE_LEN + 1], mac_hex[2 * MAC_LEN + 1];
	json_t *m;

	if (sodium_init() < 0)
		return -EIO;
	randombytes_buf(nonce, sizeof(nonce));
	sodium_bin2hex(nonce_hex, sizeof(nonce_hex), nonce, sizeof(nonce));
	mac_of(key, keylen, (long long)now, nonce_hex, payload,
	       strlen(payload), mac);
	sodium_bin2hex(mac_hex, sizeof(mac_hex), mac, sizeof(mac));
	m = json_pack("{s:i,s:I,s:s,s:s,s:s}", "v", 1, "ts", (json_int_t)now,
		      "nonce", nonce_hex, "payload", payload, "mac", mac_hex);
	*ret_msg = m ? json_dumps(m, JSON_COMPACT) : NULL;
	json_decref(m);
	return *ret_msg ? 0 : -ENOMEM;
}

/* How many distinct byte values buf[0..len) holds. */
static size_t distinct_bytes(const unsigned char *buf, size_t len)
{
	unsigned char seen[256] = { 0 };
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (!seen[buf[i]]++)
			n++;
	return n;
}

int auth_open_key_file(const char *path, const char *label, struct diag *d,
		       int *ret_fd)
{
	char pbuf[DIAG_VALUE_MAX + 8];
	const char *p = diag_string(pbuf, sizeof(pbuf), path);
	struct stat st;
	int fd, r = -EINVAL;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		diag_error(d, "%s: %s cannot be opened: %s", label, p,
			   strerror(errno));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		diag_error(d, "%s: %s is not a regular file; expected a key "
			   "file", label, p);
		goto fail;
	}
	/* Whoever can change the key can sign triggers: only root or the
	 * user we run as may own it, and neither its group nor others may
	 * write it.  Its group may read it (a group of publishers). */
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		diag_error(d, "%s: %s is owned by uid %u; expected a key file "
			   "owned by root or by uid %u, the user this runs as: "
			   "chown root", label, p, (unsigned)st.st_uid,
			   (unsigned)geteuid());
		goto fail;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		diag_error(d, "%s: %s is readable or writable by others "
			   "(mode %03o); expected a key only its owner (and "
			   "group) can read: chmod o-rw", label, p,
			   (unsigned)(st.st_mode & 0777));
		goto fail;
	}
	if (st.st_mode & S_IWGRP) {
		diag_error(d, "%s: %s is writable by its group (mode %03o); "
			   "expected a key only its owner can change: chmod g-w",
			   label, p, (unsigned)(st.st_mode & 0777));
		goto fail;
	}
	*ret_fd = fd;
	return 0;
fail:
	close(fd);
	return r;
}

int auth_load_key(const char *path, const char *label, struct diag *d,
		  unsigned char **ret_key, size_t *ret_len)
{
	unsigned char buf[AUTH_KEY_MAX + 3];
	char pbuf[DIAG_VALUE_MAX + 8];
	const char *p = diag_string(pbuf, sizeof(pbuf), path);
	size_t len = 0, distinct;
	int fd, r;

	r = auth_open_key_file(path, label, d, &fd);
	if (r < 0)
		return r;
	r = -EINVAL;
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			diag_error(d, "%s: %s cannot be read: %s", label, p,
				   strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	/* One line's end, as an editor or echo leaves it; the rest is key. */
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len < AUTH_KEY_MIN || len > AUTH_KEY_MAX) {
		diag_error(d, "%s: %s holds a key of %zu bytes; expected %d to "
			   "%d bytes (a trailing newline aside), e.g. "
			   "head -c 32 /dev/urandom | base64", label, p, len,
			   AUTH_KEY_MIN, AUTH_KEY_MAX);
		goto out;
	}
	/* Fewer than 8 distinct byte values catches a key of one repeated
	 * byte, of spaces, of NUL bytes or of any other whitespace (7
	 * values with NUL): placeholders, not secrets.  Hex has 16, base64
	 * 64. */
	distinct = distinct_bytes(buf, len);
	if (distinct < AUTH_KEY_MIN_DISTINCT) {
		diag_error(d, "%s: %s holds a key of %zu bytes with only %zu "
			   "distinct byte value%s; expected a random key with at "
			   "least %d, e.g. head -c 32 /dev/urandom | base64",
			   label, p, len, distinct, distinct == 1 ? "" : "s",
			   AUTH_KEY_MIN_DISTINCT);
		goto out;
	}
	*ret_key = malloc(len);
	if (*ret_key == NULL) {
		r = -ENOMEM;
		diag_error(d, "%s: %s: out of memory", label, p);
		goto out;
	}
	memcpy(*ret_key, buf, len);
	*ret_len = len;
	r = 0;
out:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return r;
}
