/*
 * derivefloor: the floor for a derived ports' slot change.  In a map of
 * the same type as porthopd's dp0 (table TABLE, map dp0: inet_proto .
 * inet_service : inet_service, a hash), what any design must do at a
 * boundary: delete the ports of slot t-2 and add those of slot t+1, one
 * element per service each, in one netlink batch built with libnftnl's
 * own objects.
 *
 *   derivefloor TABLE KEYFILE fill SLOT   adds slots SLOT-1..SLOT+1 to
 *                                         dp0, real <-> SLOT's to dh0
 *   derivefloor TABLE KEYFILE step SLOT   deletes SLOT-2, adds SLOT+1;
 *                                         prints its milliseconds
 *   derivefloor TABLE KEYFILE same SLOT   step, and dh0's real <-> port
 *                                         pairs moved from SLOT-1's to
 *                                         SLOT's: porthopd's operations,
 *                                         raw
 *
 * The ports come from the key file (derive.h), as porthopd's.
 */
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/common.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "clientkey.h"
#include "derive.h"
#include "diag.h"

/* proto . port, each in a 32-bit register as the kernel keeps them. */
static void put_key(struct nftnl_set_elem *e, uint8_t proto, uint16_t port)
{
	uint8_t k[8] = { 0 };
	uint16_t p = htons(port);

	k[0] = proto;
	memcpy(k + 4, &p, 2);
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, k, sizeof(k));
}

/* Queues slot t's elements on set (with data when adding): in dp0, each
 * port -> its service's real port; with real_key (dh0), each real port ->
 * its port in slot t. */
static int slot(const struct derive *dv, uint64_t t, bool add, bool real_key,
		struct nftnl_set *set)
{
	size_t n = derive_count(dv);
	uint16_t *ports = malloc(n * sizeof(*ports));

	if (ports == NULL || derive_slot(dv, t, ports) < 0) {
		free(ports);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct nftnl_set_elem *e = nftnl_set_elem_alloc();
		uint16_t real, v;
		uint8_t proto;

		derive_service(dv, i, &proto, &real);
		put_key(e, proto, real_key ? real : ports[i]);
		v = htons(real_key ? ports[i] : real);
		if (add)
			nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, &v, sizeof(v));
		nftnl_set_elem_add(set, e);
	}
	free(ports);
	return 0;
}

/* Appends set's elements to the batch as messages of type; counts them. */
static void put_elems(struct nftnl_batch *b, struct nftnl_set *set,
		      uint16_t type, uint32_t *seq, unsigned *msgs)
{
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(set);

	for (;;) {
		struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(
			nftnl_batch_buffer(b), type, NFPROTO_INET,
			type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE | NLM_F_ACK :
			NLM_F_ACK, (*seq)++);
		int more = nftnl_set_elems_nlmsg_build_payload_iter(nlh, it);

		nftnl_batch_update(b);
		(*msgs)++;
		if (more <= 0)
			break;
	}
	nftnl_set_elems_iter_destroy(it);
}

static struct nftnl_set *new_set(const char *table, const char *name)
{
	struct nftnl_set *s = nftnl_set_alloc();

	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	return s;
}

int main(int argc, char **argv)
{
	struct diag *d = diag_new();
	struct clientkey *k = NULL;
	struct derive *dv = NULL;
	struct mnl_socket *nl;
	struct nftnl_set *del, *add, *hdel, *hadd;
	struct nftnl_batch *b;
	struct timespec t0, t1;
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = (uint32_t)time(NULL);
	unsigned msgs = 0;
	uint64_t t;
	bool fill, same;
	int err = 0;

	if (argc != 5 || d == NULL)
		return 64;
	fill = strcmp(argv[3], "fill") == 0;
	same = strcmp(argv[3], "same") == 0;
	t = strtoull(argv[4], NULL, 10);
	if (clientkey_load(argv[2], d, &k) < 0 ||
	    derive_from_key(k, d, &dv) < 0) {
		diag_print(d, stderr);
		return 1;
	}
	nl = mnl_socket_open(NETLINK_NETFILTER);
	if (nl == NULL || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	b = nftnl_batch_alloc(1 << 20, 1 << 20);
	nftnl_batch_begin(nftnl_batch_buffer(b), seq++);
	nftnl_batch_update(b);
	del = new_set(argv[1], "dp0");
	add = new_set(argv[1], "dp0");
	hdel = new_set(argv[1], "dh0");
	hadd = new_set(argv[1], "dh0");
	if (fill) {
		for (uint64_t s = t - 1; s <= t + 1; s++)
			slot(dv, s, true, false, add);
		slot(dv, t, true, true, hadd);
		slot(dv, t, true, false, hadd);
	} else {
		slot(dv, t - 2, false, false, del);
		slot(dv, t + 1, true, false, add);
		put_elems(b, del, NFT_MSG_DELSETELEM, &seq, &msgs);
	}
	put_elems(b, add, NFT_MSG_NEWSETELEM, &seq, &msgs);
	if (same) {
		/* dh0 is its own inverse: both ways out, both ways in. */
		slot(dv, t - 1, false, true, hdel);
		slot(dv, t - 1, false, false, hdel);
		slot(dv, t, true, true, hadd);
		slot(dv, t, true, false, hadd);
		put_elems(b, hdel, NFT_MSG_DELSETELEM, &seq, &msgs);
	}
	if (fill || same)
		put_elems(b, hadd, NFT_MSG_NEWSETELEM, &seq, &msgs);
	nftnl_batch_end(nftnl_batch_buffer(b), seq++);
	nftnl_batch_update(b);
	{
		int iovlen = nftnl_batch_iovec_len(b);
		struct iovec *iov = calloc((size_t)iovlen, sizeof(*iov));
		struct sockaddr_nl snl = { .nl_family = AF_NETLINK };
		struct msghdr msg = { &snl, sizeof(snl), iov, (size_t)iovlen,
				      NULL, 0, 0 };

		nftnl_batch_iovec(b, iov, (uint32_t)iovlen);
		if (sendmsg(mnl_socket_get_fd(nl), &msg, 0) < 0) {
			perror("derivefloor: sendmsg");
			return 1;
		}
		free(iov);
	}
	while (msgs > 0) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		int len = (int)n;

		if (n < 0)
			return 1;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf;
		     mnl_nlmsg_ok(h, len); h = mnl_nlmsg_next(h, &len))
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);

				if (e->error && !err)
					err = e->error;
				msgs--;
			}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (err) {
		fprintf(stderr, "derivefloor: %s\n", strerror(-err));
		return 1;
	}
	if (!fill)
		printf("%.3f\n", (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
				 (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	nftnl_set_free(del);
	nftnl_set_free(add);
	nftnl_set_free(hdel);
	nftnl_set_free(hadd);
	nftnl_batch_free(b);
	mnl_socket_close(nl);
	derive_free(dv);
	clientkey_free(k);
	diag_free(d);
	return 0;
}
