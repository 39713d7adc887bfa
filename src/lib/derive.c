/*
 * derive: the ports of keyed services in each slot.  See derive.h for the
 * contract and docs/follow.md for the construction, byte by byte.
 */
#include "derive.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Each HMAC block gives 16 chunks; a chunk is accepted with probability at
 * least 1/4 (half from the mask, half at worst from taken ports, since a
 * share holds at least twice a protocol's services), so 256 blocks
 * (4096 chunks) all failing has probability below (3/4)^4096. */
#define DERIVE_BLOCKS_MAX 256
#define DERIVE_CLASSES 3

struct derive {
	/* The keyed HMAC state, copied for each message: the key's two
	 * compression rounds are paid once. */
	crypto_auth_hmacsha256_state keyed;
	/* Free ports by class p mod 3, ascending. */
	uint16_t *share[DERIVE_CLASSES];
	size_t share_n[DERIVE_CLASSES];
	/* Services: TCP ascending, then UDP ascending. */
	uint8_t *proto;
	uint16_t *port;
	size_t n;
};

static int cmp_port(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

/* Appends ports[0..n) sorted, without repeats, as protocol proto. */
static int add_services(struct derive *dv, uint8_t proto,
			const uint16_t *ports, size_t n, struct diag *d)
{
	uint16_t *tmp;
	size_t first = dv->n;

	if (n == 0)
		return 0;
	tmp = malloc(n * sizeof(*tmp));
	if (tmp == NULL)
		return -ENOMEM;
	memcpy(tmp, ports, n * sizeof(*tmp));
	qsort(tmp, n, sizeof(*tmp), cmp_port);
	for (size_t i = 0; i < n; i++) {
		if (tmp[i] == 0) {
			diag_error(d, "derive: service port 0; expected ports "
				   "from 1 to 65535");
			free(tmp);
			return -EINVAL;
		}
		if (dv->n > first && dv->port[dv->n - 1] == tmp[i])
			continue;
		dv->proto[dv->n] = proto;
		dv->port[dv->n] = tmp[i];
		dv->n++;
	}
	free(tmp);
	return 0;
}

/* The shares: [first, last] minus excluded and service ports, by p mod 3;
 * each at least twice the larger protocol's services. */
static int build_shares(struct derive *dv, uint16_t first, uint16_t last,
			const uint16_t *exclude, size_t n_exclude,
			size_t most, struct diag *d)
{
	uint8_t *out = calloc(65536, 1);
	int r = 0;

	if (out == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n_exclude; i++)
		out[exclude[i]] = 1;
	for (size_t i = 0; i < dv->n; i++)
		out[dv->port[i]] = 1;
	for (int c = 0; c < DERIVE_CLASSES; c++) {
		dv->share[c] = malloc(((size_t)(last - first) / 3 + 1) *
				      sizeof(uint16_t));
		if (dv->share[c] == NULL) {
			r = -ENOMEM;
			goto out;
		}
	}
	for (unsigned p = first; p <= last; p++)
		if (!out[p]) {
			int c = (int)(p % DERIVE_CLASSES);

			dv->share[c][dv->share_n[c]++] = (uint16_t)p;
		}
	for (int c = 0; c < DERIVE_CLASSES; c++)
		if (dv->share_n[c] < 2 * most) {
			diag_error(d, "derive: pool %u-%u: %zu free ports with "
				   "port mod 3 = %d for %zu services of one "
				   "protocol; expected at least twice as many "
				   "(a wider pool or fewer services)", first,
				   last, dv->share_n[c], c, most);
			r = -EINVAL;
			goto out;
		}
out:
	free(out);
	return r;
}

int derive_new(const unsigned char *secret, uint16_t first, uint16_t last,
	       const uint16_t *exclude, size_t n_exclude, const uint16_t *tcp,
	       size_t n_tcp, const uint16_t *udp, size_t n_udp, struct diag *d,
	       struct derive **ret_dv)
{
	struct derive *dv;
	int r = -ENOMEM;

	if (n_tcp + n_udp == 0) {
		diag_error(d, "derive: no service; expected at least one tcp "
			   "or udp port to derive");
		return -EINVAL;
	}
	if (first < 1 || first > last) {
		diag_error(d, "derive: pool %u-%u is not a port range; expected "
			   "1 <= first <= last <= 65535", first, last);
		return -EINVAL;
	}
	if (sodium_init() < 0)
		return -ENOMEM;
	dv = calloc(1, sizeof(*dv));
	if (dv == NULL)
		return -ENOMEM;
	dv->proto = malloc(n_tcp + n_udp);
	dv->port = malloc((n_tcp + n_udp) * sizeof(*dv->port));
	if (dv->proto == NULL || dv->port == NULL)
		goto fail;
	r = add_services(dv, DERIVE_PROTO_TCP, tcp, n_tcp, d);
	if (r == 0)
		r = add_services(dv, DERIVE_PROTO_UDP, udp, n_udp, d);
	if (r == 0)
		r = build_shares(dv, first, last, exclude, n_exclude,
				 n_tcp > n_udp ? n_tcp : n_udp, d);
	if (r < 0)
		goto fail;
	crypto_auth_hmacsha256_init(&dv->keyed, secret, CLIENTKEY_SECRET_LEN);
	*ret_dv = dv;
	return 0;
fail:
	derive_free(dv);
	return r;
}

int derive_from_key(const struct clientkey *k, struct diag *d,
		    struct derive **ret_dv)
{
	const uint16_t *tcp, *udp, *ex;
	size_t n_tcp, n_udp, n_ex;
	uint16_t first, last;

	if (clientkey_use(k) != CLIENTKEY_DERIVE) {
		diag_error(d, "key \"%s\": use is \"%s\"; expected a key of use "
			   "\"derive\"", clientkey_name(k),
			   clientkey_use_name(clientkey_use(k)));
		return -EINVAL;
	}
	tcp = clientkey_services(k, true, &n_tcp);
	udp = clientkey_services(k, false, &n_udp);
	ex = clientkey_exclude(k, &n_ex);
	clientkey_pool(k, &first, &last);
	return derive_new(clientkey_secret(k), first, last, ex, n_ex, tcp,
			  n_tcp, udp, n_udp, d, ret_dv);
}

size_t derive_count(const struct derive *dv)
{
	return dv->n;
}

void derive_service(const struct derive *dv, size_t i, uint8_t *ret_proto,
		    uint16_t *ret_port)
{
	*ret_proto = dv->proto[i];
	*ret_port = dv->port[i];
}

uint64_t derive_slot_at(int64_t unix_seconds, unsigned slot_seconds)
{
	if (unix_seconds < 0 || slot_seconds == 0)
		return 0;
	return (uint64_t)unix_seconds / slot_seconds;
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

/* Service i's port in slot t: the first accepted chunk.  taken marks the
 * ports earlier services of the same protocol took in this slot. */
static int draw(const struct derive *dv, size_t i, uint64_t t,
		const uint8_t *taken, uint16_t *ret_port)
{
	static const char label[] = DERIVE_LABEL;
	const size_t lab = sizeof(label) - 1;
	int c = (int)(t % DERIVE_CLASSES);
	const uint16_t *share = dv->share[c];
	uint32_t n = (uint32_t)dv->share_n[c], mask = 0;
	uint8_t msg[sizeof(label) - 1 + 3 + 8 + 4];
	uint8_t mac[crypto_auth_hmacsha256_BYTES];

	/* The smallest 2^b - 1 >= n - 1: a masked chunk is below n with
	 * probability above 1/2, and every index below n equally likely. */
	while (mask < n - 1)
		mask = (mask << 1) | 1;
	memcpy(msg, label, lab);
	msg[lab] = dv->proto[i];
	put_be(msg + lab + 1, dv->port[i], 2);
	put_be(msg + lab + 3, t, 8);
	for (uint32_t ctr = 0; ctr < DERIVE_BLOCKS_MAX; ctr++) {
		crypto_auth_hmacsha256_state st = dv->keyed;

		put_be(msg + lab + 11, ctr, 4);
		crypto_auth_hmacsha256_update(&st, msg, sizeof(msg));
		crypto_auth_hmacsha256_final(&st, mac);
		sodium_memzero(&st, sizeof(st));
		for (size_t j = 0; j < sizeof(mac); j += 2) {
			uint32_t x = ((uint32_t)mac[j] << 8 | mac[j + 1]) & mask;

			if (x < n && !taken[share[x]]) {
				*ret_port = share[x];
				sodium_memzero(mac, sizeof(mac));
				return 0;
			}
		}
	}
	sodium_memzero(mac, sizeof(mac));
	return -ERANGE;
}

/* Ports of services 0..upto (inclusive) into ports[]. */
static int slot_upto(const struct derive *dv, uint64_t t, size_t upto,
		     uint16_t *ports)
{
	uint8_t *taken = calloc(65536, 1);
	int r = 0;

	if (taken == NULL)
		return -ENOMEM;
	for (size_t i = 0; i <= upto && i < dv->n; i++) {
		/* Each protocol draws on its own: TCP and UDP ports of the
		 * same number are different keys of the maps. */
		if (i > 0 && dv->proto[i] != dv->proto[i - 1])
			memset(taken, 0, 65536);
		r = draw(dv, i, t, taken, &ports[i]);
		if (r < 0)
			break;
		taken[ports[i]] = 1;
	}
	free(taken);
	return r;
}

int derive_slot(const struct derive *dv, uint64_t t, uint16_t *ret_ports)
{
	return slot_upto(dv, t, dv->n - 1, ret_ports);
}

int derive_port(const struct derive *dv, uint64_t t, uint8_t proto,
		uint16_t port, uint16_t *ret_port)
{
	uint16_t *ports;
	size_t i;
	int r;

	for (i = 0; i < dv->n; i++)
		if (dv->proto[i] == proto && dv->port[i] == port)
			break;
	if (i == dv->n)
		return -ENOENT;
	ports = malloc((i + 1) * sizeof(*ports));
	if (ports == NULL)
		return -ENOMEM;
	r = slot_upto(dv, t, i, ports);
	if (r == 0)
		*ret_port = ports[i];
	free(ports);
	return r;
}

uint16_t derive_closed_port(const struct derive *dv, size_t i)
{
	/* Each share holds at least twice the services: i / 3 fits. */
	return dv->share[i % DERIVE_CLASSES][i / DERIVE_CLASSES];
}

uint8_t derive_key_proto(const struct clientkey *k, unsigned port)
{
	size_t n;
	const uint16_t *tcp = clientkey_services(k, true, &n);

	for (size_t i = 0; i < n; i++)
		if (tcp[i] == port)
			return DERIVE_PROTO_TCP;
	return DERIVE_PROTO_UDP;
}

int derive_key_port(const struct clientkey *k, unsigned service, int64_t now,
		    uint16_t *ret_port)
{
	struct diag *d = diag_new();
	struct derive *dv = NULL;
	int r;

	if (d == NULL)
		return -ENOMEM;
	r = service >= 1 && service <= 65535 ? derive_from_key(k, d, &dv) :
		-ENOENT;
	if (r == 0)
		r = derive_port(dv, derive_slot_at(now, clientkey_slot_seconds(k)),
				derive_key_proto(k, service), (uint16_t)service,
				ret_port);
	derive_free(dv);
	diag_free(d);
	return r;
}

void derive_free(struct derive *dv)
{
	if (dv == NULL)
		return;
	sodium_memzero(&dv->keyed, sizeof(dv->keyed));
	for (int c = 0; c < DERIVE_CLASSES; c++)
		free(dv->share[c]);
	free(dv->proto);
	free(dv->port);
	free(dv);
}
