/*
 * nftio_kernel: what the kernel backend's files share, private to them:
 * its state, its netlink plumbing and its operations.  nftio_kernel.c
 * talks libnftables and owns the socket; nftio_kernel_elems.c sends and
 * checks bulk element updates; nftio_kernel_dump.c reads tables back.
 */
#ifndef PORTHOP_NFTIO_KERNEL_H
#define PORTHOP_NFTIO_KERNEL_H

#include "nftio_backend.h"

#include <libmnl/libmnl.h>

struct nft_ctx;

struct nftio_kernel {
	struct nft_ctx *nft;		/* libnftables: JSON batches, listings */
	struct mnl_socket *nl;		/* raw netlink: elements, dumps */
	uint32_t seq;			/* the next netlink sequence number */
	/* The socket's buffer sizes as last set (0: the default): they
	 * only grow, so that a batch no larger than one before costs no
	 * setsockopt. */
	int sndbuf, rcvbuf;
};

/* Makes the socket's send and receive buffers at least sndbuf and rcvbuf
 * bytes (0: as they are). */
void nftio_kernel_buffers(struct nftio_kernel *k, int sndbuf, int rcvbuf);

/* The kernel backend's state of io (borrowed). */
struct nftio_kernel *nftio_kernel_of(const struct nftio *io);

/* Drops whatever an earlier request left on the socket, without waiting,
 * so that every request starts on an empty socket instead of failing on
 * another request's sequence numbers. */
void nftio_kernel_drain(struct nftio_kernel *k);

/* Sends one request on a drained socket; a signal is no failure.  0 or a
 * negative errno. */
int nftio_kernel_send(struct nftio_kernel *k, const struct nlmsghdr *nlh);

/* Sends the request nlh (sequence number seq) and runs cb on every
 * answer until the last (the acknowledgement, or a dump's end): 0, or
 * the error's negative errno (the kernel's: -ENOENT for what does not
 * exist).  -EINTR when the kernel flags a dump inconsistent (someone
 * committed while it ran, NLM_F_DUMP_INTR): what cb saw is then a mix of
 * two rulesets, and the caller starts again from scratch, up to
 * NFTIO_DUMP_ATTEMPTS times.  The rest of a dump given up is drained by
 * the next request. */
int nftio_kernel_request(struct nftio_kernel *k, const struct nlmsghdr *nlh,
			 uint32_t seq, mnl_cb_t cb, void *data);

/* Attempts of a dump that the kernel flags inconsistent each time: a
 * commit during each of them.  Dumps take milliseconds; five in a row
 * means someone commits without pause, and the caller is told. */
#define NFTIO_DUMP_ATTEMPTS 5

/* The operations of nftio_kernel_elems.c and nftio_kernel_dump.c, with
 * the contracts of nftio_backend.h. */
int nftio_kernel_apply_elems(struct nftio *io, const struct nftio_elems *b,
			     char **ret_error);
int nftio_kernel_elems_verify(struct nftio *io, const struct nftio_elems *b);
int nftio_kernel_table_fingerprint(struct nftio *io, const char *family,
				   const char *table, char **ret);
int nftio_kernel_table_marked(struct nftio *io, const char *family,
			      const char *table, const char *mark);
int nftio_kernel_map_digest(struct nftio *io, const char *table,
			    const char *map, uint64_t *ret);
int nftio_kernel_conntrack_user(struct nftio *io, const char *table,
				int where, char *who, size_t len);

#endif
