/*
 * knock: the knock datagram, encoded, parsed and verified (see knock.h).
 */
#include "knock.h"

#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const unsigned char magic[3] = { 'P', 'H', 'K' };

struct knock_key {
	char name[CLIENTKEY_NAME_MAX + 1];
	unsigned char secret[CLIENTKEY_SECRET_LEN];
};

/* A nonce accepted, kept until its timestamp leaves the window. */
struct knock_seen {
	unsigned char nonce[KNOCK_NONCE_LEN];
	int64_t ts;
};

struct knock_verifier {
	unsigned window;
	struct knock_key *keys;
	size_t nkeys, capkeys;
	/* Only knocks with a good MAC reach it, so only key holders can
	 * fill it; a linear scan of a few thousand is cheap at their
	 * rate. */
	struct knock_seen *seen;
	size_t nseen, maxseen;
};

static const char *const result_names[KNOCK_RESULTS] = {
	[KNOCK_OK] = "ok",
	[KNOCK_MALFORMED] = "malformed",
	[KNOCK_TRUNCATED] = "truncated",
	[KNOCK_OVERSIZED] = "oversized",
	[KNOCK_UNKNOWN_KEY] = "unknown_key",
	[KNOCK_BAD_MAC] = "bad_mac",
	[KNOCK_STALE] = "stale",
	[KNOCK_FUTURE] = "future",
	[KNOCK_REPLAY] = "replay",
	[KNOCK_BUSY] = "busy",
};

const char *knock_result_name(enum knock_result r)
{
	return (unsigned)r < KNOCK_RESULTS ? result_names[r] : "unknown";
}

static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

static void mac_of(const unsigned char *secret, const unsigned char *buf,
		   size_t len, unsigned char out[KNOCK_MAC_LEN])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, secret, CLIENTKEY_SECRET_LEN);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)KNOCK_DOMAIN,
				      strlen(KNOCK_DOMAIN));
	crypto_auth_hmacsha256_update(&st, buf, len);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

int knock_encode(const struct clientkey *k, int64_t ts,
		 const unsigned char *nonce, int family,
		 const unsigned char *addr, unsigned char *buf, size_t cap)
{
	const char *name = clientkey_name(k);
	size_t n = strlen(name), a = addr_len(family), off;
	uint64_t t = (uint64_t)ts;

	if ((family != 0 && a == 0) || cap < KNOCK_MAX || n == 0 ||
	    n > CLIENTKEY_NAME_MAX || sodium_init() < 0)
		return -EINVAL;
	memcpy(buf, magic, 3);
	buf[3] = KNOCK_VERSION;
	buf[4] = (unsigned char)n;
	buf[5] = family == AF_INET ? 4 : family == AF_INET6 ? 6 : 0;
	buf[6] = buf[7] = 0;
	for (int i = 0; i < 8; i++)
		buf[8 + i] = (unsigned char)(t >> (56 - 8 * i));
	memcpy(buf + 16, nonce, KNOCK_NONCE_LEN);
	memcpy(buf + KNOCK_HEAD, name, n);
	off = KNOCK_HEAD + n;
	if (a)
		memcpy(buf + off, addr, a);
	off += a;
	mac_of(clientkey_secret(k), buf, off, buf + off);
	return (int)(off + KNOCK_MAC_LEN);
}

enum knock_result knock_parse(const unsigned char *buf, size_t len,
			      struct knock_msg *ret)
{
	struct knock_msg m = { 0 };
	size_t n, a, want;
	uint64_t t = 0;

	if (len > KNOCK_MAX)
		return KNOCK_OVERSIZED;
	if (len < 8)
		return len >= 3 && memcmp(buf, magic, 3) == 0 ?
			KNOCK_TRUNCATED : KNOCK_MALFORMED;
	if (memcmp(buf, magic, 3) != 0 || buf[3] != KNOCK_VERSION ||
	    buf[6] != 0 || buf[7] != 0)
		return KNOCK_MALFORMED;
	n = buf[4];
	if (n < 1 || n > CLIENTKEY_NAME_MAX ||
	    (buf[5] != 0 && buf[5] != 4 && buf[5] != 6))
		return KNOCK_MALFORMED;
	m.family = buf[5] == 4 ? AF_INET : buf[5] == 6 ? AF_INET6 : 0;
	a = addr_len(m.family);
	want = KNOCK_HEAD + n + a + KNOCK_MAC_LEN;
	if (len < want)
		return KNOCK_TRUNCATED;
	if (len > want)
		return KNOCK_OVERSIZED;
	memcpy(m.name, buf + KNOCK_HEAD, n);
	m.name[n] = '\0';
	if (!clientkey_name_valid(m.name))
		return KNOCK_MALFORMED;
	for (int i = 0; i < 8; i++)
		t = t << 8 | buf[8 + i];
	/* Beyond int64: no clock says so. */
	if (t > INT64_MAX)
		return KNOCK_MALFORMED;
	m.ts = (int64_t)t;
	memcpy(m.nonce, buf + 16, KNOCK_NONCE_LEN);
	memcpy(m.addr, buf + KNOCK_HEAD + n, a);
	if (a) {
		static const unsigned char zero[16];

		/* Nobody can be let in as the unspecified address, nor as a
		 * multicast group. */
		if (memcmp(m.addr, zero, a) == 0 ||
		    (m.family == AF_INET && (m.addr[0] & 0xf0) == 0xe0) ||
		    (m.family == AF_INET6 && m.addr[0] == 0xff))
			return KNOCK_MALFORMED;
	}
	*ret = m;
	return KNOCK_OK;
}

int knock_udp_payload(const uint8_t *pkt, size_t len, uint16_t port,
		      int *ret_family, unsigned char ret_src[16],
		      const uint8_t **ret_payload, size_t *ret_plen)
{
	size_t l4, ulen;
	int family;

	if (pkt == NULL || len < 1)
		return -EINVAL;
	if (pkt[0] >> 4 == 4) {
		size_t ihl = (size_t)(pkt[0] & 0x0f) * 4;

		/* A fragment is not a knock: knocks fit one packet. */
		if (len < 20 || ihl < 20 || pkt[9] != IPPROTO_UDP ||
		    (((pkt[6] & 0x3f) << 8) | pkt[7]) != 0)
			return -EINVAL;
		family = AF_INET;
		l4 = ihl;
	} else if (pkt[0] >> 4 == 6) {
		/* No extension headers: the client sends none. */
		if (len < 40 || pkt[6] != IPPROTO_UDP)
			return -EINVAL;
		family = AF_INET6;
		l4 = 40;
	} else {
		return -EINVAL;
	}
	if (len < l4 + 8 || (uint16_t)(pkt[l4 + 2] << 8 | pkt[l4 + 3]) != port)
		return -EINVAL;
	ulen = (size_t)(pkt[l4 + 4] << 8 | pkt[l4 + 5]);
	if (ulen < 8)
		return -EINVAL;
	memset(ret_src, 0, 16);
	memcpy(ret_src, pkt + (family == AF_INET ? 12 : 8),
	       family == AF_INET ? 4 : 16);
	*ret_family = family;
	*ret_payload = pkt + l4 + 8;
	/* What was copied, at most what the header says. */
	*ret_plen = ulen - 8 < len - l4 - 8 ? ulen - 8 : len - l4 - 8;
	return 0;
}

struct knock_verifier *knock_verifier_new(unsigned window_s,
					  size_t max_nonces)
{
	struct knock_verifier *v;

	if (sodium_init() < 0 || max_nonces == 0)
		return NULL;
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return NULL;
	v->seen = calloc(max_nonces, sizeof(*v->seen));
	if (v->seen == NULL) {
		free(v);
		return NULL;
	}
	v->window = window_s;
	v->maxseen = max_nonces;
	return v;
}

void knock_verifier_clear_keys(struct knock_verifier *v)
{
	if (v->keys)
		sodium_memzero(v->keys, v->capkeys * sizeof(*v->keys));
	v->nkeys = 0;
}

void knock_verifier_free(struct knock_verifier *v)
{
	if (v == NULL)
		return;
	knock_verifier_clear_keys(v);
	free(v->keys);
	free(v->seen);
	free(v);
}

void knock_verifier_set_window(struct knock_verifier *v, unsigned window_s)
{
	v->window = window_s;
}

size_t knock_verifier_keys(const struct knock_verifier *v)
{
	return v->nkeys;
}

size_t knock_verifier_nonces(const struct knock_verifier *v)
{
	return v->nseen;
}

static struct knock_key *find_key(struct knock_verifier *v, const char *name)
{
	for (size_t i = 0; i < v->nkeys; i++)
		if (strcmp(v->keys[i].name, name) == 0)
			return &v->keys[i];
	return NULL;
}

int knock_verifier_add_key(struct knock_verifier *v,
			   const struct clientkey *k)
{
	struct knock_key *slot = find_key(v, clientkey_name(k));

	if (slot == NULL) {
		if (v->nkeys == KNOCK_KEYS_MAX)
			return -ENOSPC;
		if (v->nkeys == v->capkeys) {
			size_t cap = v->capkeys ? v->capkeys * 2 : 16;
			struct knock_key *fresh = calloc(cap, sizeof(*fresh));

			/* Not realloc: the old copy is wiped, not left in
			 * freed memory. */
			if (fresh == NULL)
				return -ENOMEM;
			if (v->keys) {
				memcpy(fresh, v->keys, v->nkeys * sizeof(*fresh));
				sodium_memzero(v->keys,
					       v->capkeys * sizeof(*v->keys));
				free(v->keys);
			}
			v->keys = fresh;
			v->capkeys = cap;
		}
		slot = &v->keys[v->nkeys++];
	}
	snprintf(slot->name, sizeof(slot->name), "%s", clientkey_name(k));
	memcpy(slot->secret, clientkey_secret(k), CLIENTKEY_SECRET_LEN);
	return 0;
}

/* Drops the nonces whose knocks left the window. */
static void purge(struct knock_verifier *v, time_t now)
{
	size_t j = 0;

	for (size_t i = 0; i < v->nseen; i++)
		if (v->seen[i].ts + (int64_t)v->window >= (int64_t)now)
			v->seen[j++] = v->seen[i];
	v->nseen = j;
}

enum knock_result knock_verify(struct knock_verifier *v,
			       const unsigned char *buf, size_t len,
			       time_t now, struct knock_msg *ret)
{
	unsigned char want[KNOCK_MAC_LEN];
	enum knock_result r;
	struct knock_msg m;
	struct knock_key *k;
	size_t signed_len;

	r = knock_parse(buf, len, &m);
	if (r != KNOCK_OK)
		return r;
	k = find_key(v, m.name);
	if (k == NULL)
		return KNOCK_UNKNOWN_KEY;
	signed_len = len - KNOCK_MAC_LEN;
	mac_of(k->secret, buf, signed_len, want);
	if (sodium_memcmp(want, buf + signed_len, KNOCK_MAC_LEN) != 0)
		return KNOCK_BAD_MAC;
	if (m.ts < (int64_t)now - (int64_t)v->window)
		return KNOCK_STALE;
	if (m.ts > (int64_t)now + (int64_t)v->window)
		return KNOCK_FUTURE;
	for (size_t i = 0; i < v->nseen; i++)
		if (sodium_memcmp(v->seen[i].nonce, m.nonce,
				  KNOCK_NONCE_LEN) == 0)
			return KNOCK_REPLAY;
	purge(v, now);
	if (v->nseen == v->maxseen)
		return KNOCK_BUSY;
	memcpy(v->seen[v->nseen].nonce, m.nonce, KNOCK_NONCE_LEN);
	v->seen[v->nseen].ts = m.ts;
	v->nseen++;
	*ret = m;
	return KNOCK_OK;
}
