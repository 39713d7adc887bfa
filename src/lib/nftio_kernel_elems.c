/*
 * nftio_kernel_elems: bulk element updates as raw netlink, for the
 * kernel backend.  It sends an element queue (nftio_elems) as one
 * netlink batch, one transaction, and asks the kernel element by element
 * whether it holds what a queue adds.
 */
#include "nftio_kernel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libnftnl/batch.h>
#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The key's bytes as the kernel stores a concatenation: every field
 * padded to a 32-bit register.  end: the last address of a prefix. */
static size_t key_bytes(const struct nftio_key *k, bool end, uint8_t *out)
{
	size_t alen = k->family == AF_INET ? 4 :
		      k->family == AF_UNSPEC ? 0 : 16;
	uint16_t port = htons(k->port);

	memset(out, 0, alen + 8);
	memcpy(out, k->addr, alen);
	if (end)
		for (unsigned bit = k->prefix_len; bit < alen * 8; bit++)
			out[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
	out[alen] = k->l4proto;
	memcpy(out + alen + 4, &port, 2);
	return alen + 8;
}

static void put_data(struct nlmsghdr *nlh, uint16_t type, const void *p,
		     size_t len)
{
	struct nlattr *nest = mnl_attr_nest_start(nlh, type);

	mnl_attr_put(nlh, NFTA_DATA_VALUE, len, p);
	mnl_attr_nest_end(nlh, nest);
}

/* A map element's key: a prefix's last address too (interval maps). */
static void put_concat_key(struct nlmsghdr *nlh, const struct nftio_key *k)
{
	unsigned full = k->family == AF_INET ? 32 :
			k->family == AF_UNSPEC ? 0 : 128;
	uint8_t kb[24];
	size_t klen = key_bytes(k, false, kb);

	put_data(nlh, NFTA_SET_ELEM_KEY, kb, klen);
	if (k->prefix_len < full) {
		key_bytes(k, true, kb);
		put_data(nlh, NFTA_SET_ELEM_KEY_END, kb, klen);
	}
}

/* An element of a set of address intervals as nft itself sends it (the
 * kernel keeps interval boundaries): end marks the first address after
 * an interval; open, a last interval that runs to the top of the address
 * space and has no end (a flag nft keeps in the element's user data). */
static void put_boundary(struct nlmsghdr *nlh, const unsigned char *key,
			 size_t alen, bool end, bool open)
{
	struct nlattr *e = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);

	put_data(nlh, NFTA_SET_ELEM_KEY, key, alen);
	if (end)
		mnl_attr_put_u32(nlh, NFTA_SET_ELEM_FLAGS,
				 htonl(NFT_SET_ELEM_INTERVAL_END));
	if (open) {
		uint8_t ud[6] = { 1 /* NFTNL_UDATA_SET_ELEM_FLAGS */, 4 };
		uint32_t f = 1;	/* NFTNL_SET_ELEM_F_INTERVAL_OPEN */

		memcpy(ud + 2, &f, sizeof(f));
		mnl_attr_put(nlh, NFTA_SET_ELEM_USERDATA, sizeof(ud), ud);
	}
	mnl_attr_nest_end(nlh, e);
}

/* Item i of a set of address intervals, as boundaries: the start of a
 * range (after an end at address zero if it is the set's first range
 * and does not begin there, as nft does), or the address after its
 * last one (none at the top of the address space). */
static void put_range_item(struct nlmsghdr *nlh, const struct nftio_elems *b,
			   size_t i)
{
	const struct nftio_elem_item *it = &b->items[i];
	size_t alen = it->key.family == AF_INET ? 4 : 16;
	unsigned char k[16], zero[16] = { 0 };
	bool top = true;

	memcpy(k, it->key.addr, alen);
	if (it->kind == NFTIO_KEY_RANGE_END) {
		for (size_t j = alen; top && j-- > 0;)
			top = ++k[j] == 0;	/* k + 1, carried */
		if (!top)
			put_boundary(nlh, k, alen, true, false);
		return;
	}
	/* The end at zero stays: deleting it would end the set's first
	 * range nowhere. */
	if (memcmp(k, zero, alen) != 0 && it->op == NFTIO_ELEM_ADD &&
	    !(i > 0 && b->items[i - 1].map == it->map &&
	      b->items[i - 1].op == NFTIO_ELEM_ADD &&
	      b->items[i - 1].kind == NFTIO_KEY_RANGE_END))
		put_boundary(nlh, zero, alen, true, false);
	for (size_t j = 0; j < alen; j++)
		top = top && b->items[i + 1].key.addr[j] == 0xff;
	put_boundary(nlh, k, alen, false, top);
}

/* Room each message may take in a batch page. */
#define ELEM_MSG_MAX	(60 * 1024)
#define BATCH_PAGE	(1024 * 1024)

static int batch_grow(struct nftnl_batch *batch)
{
	return nftnl_batch_update(batch) < 0 ? -ENOMEM : 0;
}

/* Reads acknowledgements until `expected` arrived; the first error wins. */
static int read_acks(struct nftio_kernel *k, unsigned expected,
		     char **ret_error)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int first_err = 0;

	while (expected > 0) {
		ssize_t got = mnl_socket_recvfrom(k->nl, buf, sizeof(buf));
		int n = (int)got;

		if (got < 0) {
			if (errno == EINTR)
				continue;
			first_err = first_err ? first_err : -errno;
			break;
		}
		for (struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
		     mnl_nlmsg_ok(nlh, n); nlh = mnl_nlmsg_next(nlh, &n)) {
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

				if (e->error && !first_err)
					first_err = e->error;
				expected--;
			}
		}
	}
	if (first_err && ret_error) {
		/* ENFILE is how the kernel says a set is at its size
		 * (map_capacity): "Too many open files in system" would
		 * send the reader after descriptors. */
		if (asprintf(ret_error, "kernel refused the map update: %s",
			     first_err == -ENFILE ? "a map or set is full (its "
			     "nftables size)" : strerror(-first_err)) < 0)
			*ret_error = NULL;
	}
	return first_err;
}

/* One message of the batch: the operation on items [*i, ...) of one map
 * or set (all of them, or as many as fit), *i moved past them. */
static void put_message(struct nftio_kernel *k, struct nftnl_batch *batch,
			const struct nftio_elems *b, size_t *i)
{
	const struct nftio_elem_item *first = &b->items[*i];
	uint16_t type = first->op == NFTIO_ELEM_ADD ? NFT_MSG_NEWSETELEM :
			NFT_MSG_DELSETELEM;
	uint16_t flags = NLM_F_ACK |
			 (first->op == NFTIO_ELEM_ADD ? NLM_F_CREATE : 0);
	struct nlmsghdr *nlh;
	struct nlattr *list;

	/* libmnl 1.0.4 leaves attribute padding as it finds it: start from
	 * zeroes so no stale heap byte goes to the kernel. */
	memset(nftnl_batch_buffer(batch), 0, 2 * ELEM_MSG_MAX);
	nlh = nftnl_nlmsg_build_hdr(nftnl_batch_buffer(batch), type,
				    NFPROTO_INET, flags, k->seq++);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, b->table);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, first->map);
	if (first->op == NFTIO_ELEM_FLUSH) {
		/* A deletion naming no element empties the set. */
		(*i)++;
		return;
	}
	list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	for (; *i < b->n && b->items[*i].op == first->op &&
	       b->items[*i].map == first->map &&
	       nlh->nlmsg_len < ELEM_MSG_MAX; (*i)++) {
		const struct nftio_elem_item *it = &b->items[*i];
		struct nlattr *e;

		if (it->kind == NFTIO_KEY_RANGE_START ||
		    it->kind == NFTIO_KEY_RANGE_END) {
			put_range_item(nlh, b, *i);
			continue;
		}
		e = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
		if (it->kind == NFTIO_KEY_SET_ADDR)
			put_data(nlh, NFTA_SET_ELEM_KEY, it->key.addr,
				 it->key.family == AF_INET ? 4 : 16);
		else
			put_concat_key(nlh, &it->key);
		if (it->kind == NFTIO_KEY_SET_CONCAT ||
		    (it->kind == NFTIO_KEY_SET_ADDR &&
		     it->op == NFTIO_ELEM_ADD))
			mnl_attr_put_u64(nlh, NFTA_SET_ELEM_TIMEOUT,
					 htobe64((uint64_t)it->timeout_ms));
		if (it->op == NFTIO_ELEM_ADD && it->kind == NFTIO_KEY_CONCAT) {
			uint16_t v = htons(it->value);

			put_data(nlh, NFTA_SET_ELEM_DATA, &v, sizeof(v));
		}
		mnl_attr_nest_end(nlh, e);
	}
	mnl_attr_nest_end(nlh, list);
}

/* Sends the batch as one message (one transaction) and reads the acks
 * messages' acknowledgements. */
static int send_batch(struct nftio_kernel *k, struct nftnl_batch *batch,
		      unsigned acks, char **ret_error)
{
	int iovlen = nftnl_batch_iovec_len(batch);
	struct iovec *iov = calloc((size_t)iovlen, sizeof(*iov));
	struct sockaddr_nl snl = { .nl_family = AF_NETLINK };
	struct msghdr msg = {
		.msg_name = &snl,
		.msg_namelen = sizeof(snl),
		.msg_iov = iov,
		.msg_iovlen = (size_t)iovlen,
	};
	int sndbuf = 0, rcvbuf, r;

	if (iov == NULL)
		return -ENOMEM;
	nftnl_batch_iovec(batch, iov, (uint32_t)iovlen);
	for (int j = 0; j < iovlen; j++)
		sndbuf += (int)iov[j].iov_len;
	/* The whole batch goes in one message: one transaction.  The
	 * receive buffer must hold an acknowledgement for each of its
	 * messages (the kernel counts about a kilobyte each). */
	sndbuf += 4096;
	rcvbuf = (int)acks * 2048 + (1 << 20);
	nftio_kernel_buffers(k, sndbuf, rcvbuf);
	nftio_kernel_drain(k);
	while ((r = (int)sendmsg(mnl_socket_get_fd(k->nl), &msg, 0)) < 0 &&
	       errno == EINTR)
		;
	r = r < 0 ? -errno : 0;
	free(iov);
	if (r < 0) {
		if (ret_error && asprintf(ret_error, "cannot send the map "
					  "update: %s", strerror(-r)) < 0)
			*ret_error = NULL;
		return r;
	}
	r = read_acks(k, acks, ret_error);
	return r > 0 ? -r : r;
}

int nftio_kernel_apply_elems(struct nftio *io, const struct nftio_elems *b,
			     char **ret_error)
{
	struct nftio_kernel *k = nftio_kernel_of(io);
	struct nftnl_batch *batch;
	unsigned acks = 0;
	size_t i = 0;
	int r;

	batch = nftnl_batch_alloc(BATCH_PAGE, 2 * ELEM_MSG_MAX);
	if (batch == NULL)
		return -ENOMEM;
	nftnl_batch_begin(nftnl_batch_buffer(batch), k->seq++);
	if ((r = batch_grow(batch)) < 0)
		goto out;
	while (i < b->n) {
		put_message(k, batch, b, &i);
		acks++;
		if ((r = batch_grow(batch)) < 0)
			goto out;
	}
	nftnl_batch_end(nftnl_batch_buffer(batch), k->seq++);
	if ((r = batch_grow(batch)) < 0)
		goto out;
	r = send_batch(k, batch, acks, ret_error);
out:
	nftnl_batch_free(batch);
	return r;
}

/* --- asking for elements one by one ------------------------------- */

/* Elements asked for in one request.  The kernel answers each in a
 * message of its own, a page of receive buffer each, all queued before
 * the request returns: the buffer must hold them. */
#define VERIFY_CHUNK	128
#define VERIFY_RCVBUF	(4 << 20)
/* A request's room: names, and per element at most a key and a key end
 * of 24 bytes each, with their nests. */
#define VERIFY_MSG_MAX	(1024 + VERIFY_CHUNK * 80)

struct verify_ctx {
	const struct nftio_elems *b;
	size_t next, end;	/* the items the answers are for, in order */
	bool differs;
};

/* One answer: the element asked for next, with its value. */
static int verify_cb(const struct nlmsghdr *nlh, void *data)
{
	struct verify_ctx *v = data;
	const struct nlattr *a, *el, *d, *val;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested(el, a) {
			bool same = false;
			uint16_t got;

			if (v->next >= v->end) {
				v->differs = true;
				return MNL_CB_OK;
			}
			mnl_attr_for_each_nested(d, el) {
				if (mnl_attr_get_type(d) != NFTA_SET_ELEM_DATA)
					continue;
				mnl_attr_for_each_nested(val, d)
					if (mnl_attr_get_type(val) ==
					    NFTA_DATA_VALUE &&
					    mnl_attr_get_payload_len(val) == 2) {
						memcpy(&got, mnl_attr_get_payload(val), 2);
						same = ntohs(got) ==
						       v->b->items[v->next].value;
					}
			}
			v->differs |= !same;
			v->next++;
		}
	}
	return MNL_CB_OK;
}

/* Room for one answer: an element (its key, value and flags), or an
 * acknowledgement (capped: without the request). */
#define VERIFY_REPLY_MAX 1024

/* Buffers of a check: the request, and one answer per element plus the
 * acknowledgement, read with one recvmmsg() each time (a syscall per
 * answer would cost more than the kernel's lookups). */
struct verify_buf {
	char req[VERIFY_MSG_MAX];
	char rep[VERIFY_CHUNK + 1][VERIFY_REPLY_MAX];
	struct iovec iov[VERIFY_CHUNK + 1];
	struct mmsghdr mm[VERIFY_CHUNK + 1];
};

/* Reads the answers to request seq until its acknowledgement: 0, or the
 * first error's negative errno. */
static int verify_read(struct nftio_kernel *k, uint32_t seq,
		       struct verify_buf *vb, struct verify_ctx *v)
{
	int fd = mnl_socket_get_fd(k->nl), r = MNL_CB_OK;

	while (r > 0) {
		int n;

		for (size_t j = 0; j <= VERIFY_CHUNK; j++) {
			vb->iov[j] = (struct iovec){ vb->rep[j], VERIFY_REPLY_MAX };
			vb->mm[j] = (struct mmsghdr){ .msg_hdr = {
				.msg_iov = &vb->iov[j], .msg_iovlen = 1 } };
		}
		n = recvmmsg(fd, vb->mm, VERIFY_CHUNK + 1, MSG_WAITFORONE, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int j = 0; r > 0 && j < n; j++) {
			if (vb->mm[j].msg_hdr.msg_flags & MSG_TRUNC)
				return -EMSGSIZE;
			errno = 0;
			r = mnl_cb_run(vb->rep[j], vb->mm[j].msg_len, seq,
				       mnl_socket_get_portid(k->nl), verify_cb, v);
		}
	}
	return r < 0 ? (errno ? -errno : -EIO) : 0;
}

/* Asks for items [*i, ...) of one map, up to VERIFY_CHUNK; 1 if one is
 * missing or holds another value. */
static int verify_chunk(struct nftio_kernel *k, const struct nftio_elems *b,
			size_t *i, struct verify_buf *vb)
{
	const struct nftio_elem_item *first = &b->items[*i];
	struct verify_ctx v = { b, *i, *i, false };
	uint32_t seq = k->seq++;
	struct nlmsghdr *nlh;
	struct nlattr *list;
	int r;

	/* Zeroes for the attributes' padding. */
	memset(vb->req, 0, sizeof(vb->req));
	nlh = nftnl_nlmsg_build_hdr(vb->req, NFT_MSG_GETSETELEM, NFPROTO_INET,
				    NLM_F_ACK, seq);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, b->table);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, first->map);
	list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	for (; v.end < b->n && v.end - *i < VERIFY_CHUNK &&
	       b->items[v.end].op == NFTIO_ELEM_ADD &&
	       b->items[v.end].kind == NFTIO_KEY_CONCAT &&
	       b->items[v.end].map == first->map; v.end++) {
		struct nlattr *e = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);

		put_concat_key(nlh, &b->items[v.end].key);
		mnl_attr_nest_end(nlh, e);
	}
	mnl_attr_nest_end(nlh, list);
	*i = v.end;
	if ((r = nftio_kernel_send(k, nlh)) < 0)
		return r;
	r = verify_read(k, seq, vb, &v);
	/* The kernel stops at the first element it does not hold. */
	if (r < 0)
		return r == -ENOENT ? 1 : r;
	return v.differs || v.next != v.end;
}

int nftio_kernel_elems_verify(struct nftio *io, const struct nftio_elems *b)
{
	struct nftio_kernel *k = nftio_kernel_of(io);
	int rcvbuf = VERIFY_RCVBUF, r = 0;
	struct verify_buf *vb;
	size_t i = 0;

	if ((vb = malloc(sizeof(*vb))) == NULL)
		return -ENOMEM;
	nftio_kernel_buffers(k, 0, rcvbuf);
	while (r == 0 && i < b->n) {
		if (b->items[i].op != NFTIO_ELEM_ADD ||
		    b->items[i].kind != NFTIO_KEY_CONCAT)
			i++;
		else
			r = verify_chunk(k, b, &i, vb);
	}
	free(vb);
	return r;
}
