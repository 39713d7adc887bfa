/*
 * nftio_kernel: the kernel backend.  Its libnftables half (batches of
 * JSON applied in one transaction, listings), its netlink socket with the
 * plumbing the other kernel files share, the generation, and the table
 * of operations that puts them behind nftio's contract.
 */
#include "nftio_kernel.h"

#include <errno.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <nftables/libnftables.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Folds libnftables' multi-line messages into one line and drops the
 * "internal:0:0-0: " locations, which JSON input always has and which
 * tell nothing. */
static char *one_line(const char *a, const char *b)
{
	size_t len = strlen(a) + strlen(b) + 2;
	char *out = malloc(len + 1), *o = out;
	const char *parts[2] = { a, b };

	if (out == NULL)
		return NULL;
	for (int k = 0; k < 2; k++) {
		for (const char *s = parts[k]; *s;) {
			if (strncmp(s, "internal:0:0-0: ", 16) == 0) {
				s += 16;
				continue;
			}
			if (*s == '\n' || *s == '\r') {
				while (*s == '\n' || *s == '\r')
					s++;
				if (*s && o > out && o[-1] != ' ') {
					*o++ = ';';
					*o++ = ' ';
				}
				continue;
			}
			*o++ = *s++;
			if ((size_t)(o - out) >= len - 2)
				goto done;
		}
		if (k == 0 && *b && o > out) {
			*o++ = ';';
			*o++ = ' ';
		}
	}
done:
	while (o > out && (o[-1] == ' ' || o[-1] == ';'))
		o--;
	*o = '\0';
	return out;
}

/* One call into libnftables with asynchronous signals held back.
 * libnftables 1.0.6 polls for the kernel's acknowledgements with select(),
 * which any signal interrupts (SA_RESTART or not) after the kernel has
 * processed the batch: it then reports "Interrupted system call" and loses
 * the kernel's verdict, a dry run's refusal or a real batch's commit
 * alike.  Held back, a signal is delivered when the call returns (to
 * libevent's handler, which only queues it for the loop).  Synchronous
 * signals stay deliverable. */
static int run_nft(struct nftio_kernel *k, const char *text)
{
	static const int sync_signals[] = {
		SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS
	};
	sigset_t all, saved;
	int rc, saved_errno;

	sigfillset(&all);
	for (size_t i = 0; i < sizeof(sync_signals) / sizeof(sync_signals[0]); i++)
		sigdelset(&all, sync_signals[i]);
	sigprocmask(SIG_BLOCK, &all, &saved);
	errno = 0;
	rc = nft_run_cmd_from_buffer(k->nft, text);
	saved_errno = errno;
	sigprocmask(SIG_SETMASK, &saved, NULL);
	errno = saved_errno;
	return rc;
}

static int kernel_apply(struct nftio *io, const char *text, bool dry_run,
			char **ret_error)
{
	struct nftio_kernel *k = nftio_kernel_of(io);
	const char *out, *err;
	int rc;

	nft_ctx_set_dry_run(k->nft, dry_run);
	rc = run_nft(k, text);
	nft_ctx_set_dry_run(k->nft, false);
	/* Reading a buffer also empties it for the next call. */
	out = nft_ctx_get_output_buffer(k->nft);
	err = nft_ctx_get_error_buffer(k->nft);
	if (rc == 0 && (out == NULL || out[0] == '\0') &&
	    (err == NULL || err[0] == '\0'))
		return 0;
	if (ret_error) {
		if ((out == NULL || !*out) && (err == NULL || !*err))
			*ret_error = strdup("libnftables failed without a "
					    "message");
		else
			*ret_error = one_line(err ? err : "", out ? out : "");
	}
	/* Output where none was expected is a failure of its own. */
	return rc == 0 ? -EIO : nftio_libnft_errno(err);
}

/* Runs one listing command: 0 with what it printed in *ret_out
 * (libnftables' buffer, good until its next call), or the errno its
 * message quotes, with the message. */
static int run_list(struct nftio_kernel *k, const char *cmd,
		    const char **ret_out, char **ret_error)
{
	const char *out, *err;
	int rc = run_nft(k, cmd);

	out = nft_ctx_get_output_buffer(k->nft);
	err = nft_ctx_get_error_buffer(k->nft);
	if (rc != 0) {
		if (ret_error)
			*ret_error = one_line(err ? err : "", "");
		return nftio_libnft_errno(err);
	}
	*ret_out = out ? out : "";
	return 0;
}

static int kernel_list(struct nftio *io, json_t **ret, char **ret_error)
{
	json_error_t jerr;
	const char *out;
	json_t *root;
	int r = run_list(nftio_kernel_of(io), "list ruleset", &out, ret_error);

	if (r < 0)
		return r;
	root = json_loads(out, 0, &jerr);
	if (root == NULL) {
		if (ret_error)
			*ret_error = strdup("libnftables listed a ruleset that "
					    "is not JSON");
		return -EIO;
	}
	*ret = root;
	return 0;
}

static int kernel_list_text(struct nftio *io, char **ret_text,
			    char **ret_error)
{
	struct nftio_kernel *k = nftio_kernel_of(io);
	unsigned flags = nft_ctx_output_get_flags(k->nft);
	const char *out;
	int r;

	/* nft syntax: without the JSON output flag, for this call alone. */
	nft_ctx_output_set_flags(k->nft, 0);
	r = run_list(k, "list ruleset", &out, ret_error);
	nft_ctx_output_set_flags(k->nft, flags);
	if (r < 0)
		return r;
	*ret_text = strdup(out);
	return *ret_text ? 0 : -ENOMEM;
}

/* Runs one list command and appends what it prints to out. */
static int list_one(struct nftio_kernel *k, const json_t *cmd, json_t *out,
		    char **ret_error)
{
	json_t *batch = json_pack("{s:[O]}", "nftables", cmd), *doc;
	const char *text_out;
	char *text;
	int r;

	text = batch ? json_dumps(batch, JSON_COMPACT) : NULL;
	json_decref(batch);
	if (text == NULL)
		return -ENOMEM;
	r = run_list(k, text, &text_out, ret_error);
	free(text);
	/* What a listing fails on: what it names is not there (or cannot be
	 * listed, which comes to the same). */
	if (r < 0)
		return r == -EINTR ? r : -ENOENT;
	doc = json_loads(text_out, 0, NULL);
	if (doc == NULL)
		return -EIO;
	json_array_extend(out, json_object_get(doc, "nftables"));
	json_decref(doc);
	return 0;
}

static int kernel_list_json(struct nftio *io, const json_t *cmds, bool terse,
			    json_t **ret, char **ret_error)
{
	struct nftio_kernel *k = nftio_kernel_of(io);
	json_t *root = json_array(), *cmd;
	unsigned flags;
	size_t i;
	int r = 0;

	if (root == NULL)
		return -ENOMEM;
	flags = nft_ctx_output_get_flags(k->nft);
	if (terse)
		nft_ctx_output_set_flags(k->nft, flags | NFT_CTX_OUTPUT_TERSE);
	/* One command per call: libnftables 1.0.6 fills its cache for the
	 * first table of a batch of list commands only. */
	json_array_foreach(json_object_get(cmds, "nftables"), i, cmd) {
		r = list_one(k, cmd, root, ret_error);
		if (r < 0)
			break;
	}
	nft_ctx_output_set_flags(k->nft, flags);
	if (r < 0) {
		json_decref(root);
		return r;
	}
	*ret = json_pack("{s:o}", "nftables", root);
	return *ret ? 0 : -ENOMEM;
}

/* --- netlink ------------------------------------------------------- */

void nftio_kernel_drain(struct nftio_kernel *k)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];

	/* Acknowledgements not read after an error, the rest of a dump
	 * given up half way: read without waiting (a dump in progress is
	 * produced as it is read) and dropped. */
	for (;;) {
		ssize_t n = recv(mnl_socket_get_fd(k->nl), buf, sizeof(buf),
				 MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
	}
}

void nftio_kernel_buffers(struct nftio_kernel *k, int sndbuf, int rcvbuf)
{
	int fd = mnl_socket_get_fd(k->nl);

	if (sndbuf > k->sndbuf &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf,
		       sizeof(sndbuf)) == 0)
		k->sndbuf = sndbuf;
	if (rcvbuf > k->rcvbuf &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
		       sizeof(rcvbuf)) == 0)
		k->rcvbuf = rcvbuf;
}

int nftio_kernel_send(struct nftio_kernel *k, const struct nlmsghdr *nlh)
{
	nftio_kernel_drain(k);
	while (mnl_socket_sendto(k->nl, nlh, nlh->nlmsg_len) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* One read of answers; a signal is no failure.  The bytes read or a
 * negative errno. */
static ssize_t kernel_recv(struct nftio_kernel *k, void *buf, size_t len)
{
	ssize_t n;

	while ((n = mnl_socket_recvfrom(k->nl, buf, len)) < 0)
		if (errno != EINTR)
			return -errno;
	return n;
}

/* Reads of answers: the kernel fills its dump messages up to the size
 * of the reads it sees (32 KiB at most), so large reads mean few of them. */
#define DUMP_READ_SIZE (64 * 1024)

int nftio_kernel_request(struct nftio_kernel *k, const struct nlmsghdr *nlh,
			 uint32_t seq, mnl_cb_t cb, void *data)
{
	char *buf;
	ssize_t n;
	int r;

	if ((r = nftio_kernel_send(k, nlh)) < 0)
		return r;
	if ((buf = malloc(DUMP_READ_SIZE)) == NULL)
		return -ENOMEM;
	do {
		n = kernel_recv(k, buf, DUMP_READ_SIZE);
		if (n < 0) {
			r = (int)n;
			goto out;
		}
		errno = 0;
		r = mnl_cb_run(buf, (size_t)n, seq,
			       mnl_socket_get_portid(k->nl), cb, data);
	} while (r > 0);
	if (r < 0)
		r = errno ? -errno : -EIO;
out:
	free(buf);
	return r;
}

static int gen_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_gen *gen = nftnl_gen_alloc();
	uint32_t *ret = data;

	if (gen == NULL)
		return MNL_CB_ERROR;
	if (nftnl_gen_nlmsg_parse(nlh, gen) < 0) {
		nftnl_gen_free(gen);
		return MNL_CB_ERROR;
	}
	*ret = nftnl_gen_get_u32(gen, NFTNL_GEN_ID);
	nftnl_gen_free(gen);
	/* The one answer: done (the request asks for no acknowledgement,
	 * which would cost another read; an error still comes). */
	return MNL_CB_STOP;
}

static int kernel_generation(struct nftio *io, uint32_t *ret)
{
	struct nftio_kernel *k = nftio_kernel_of(io);
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = k->seq++;
	struct nlmsghdr *nlh;

	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, AF_UNSPEC, 0, seq);
	return nftio_kernel_request(k, nlh, seq, gen_cb, ret);
}

/* --- the backend --------------------------------------------------- */

static void kernel_free(void *data)
{
	struct nftio_kernel *k = data;

	if (k == NULL)
		return;
	if (k->nft)
		nft_ctx_free(k->nft);
	if (k->nl)
		mnl_socket_close(k->nl);
	free(k);
}

static const struct nftio_ops kernel_ops = {
	.apply = kernel_apply,
	.apply_elems = nftio_kernel_apply_elems,
	.list = kernel_list,
	.list_json = kernel_list_json,
	.list_text = kernel_list_text,
	.generation = kernel_generation,
	.table_fingerprint = nftio_kernel_table_fingerprint,
	.table_marked = nftio_kernel_table_marked,
	.map_digest = nftio_kernel_map_digest,
	.elems_verify = nftio_kernel_elems_verify,
	.conntrack_user = nftio_kernel_conntrack_user,
	.free = kernel_free,
};

struct nftio_kernel *nftio_kernel_of(const struct nftio *io)
{
	return nftio_backend_data(io, &kernel_ops);
}

/* The libnftables context and the netlink socket, or NULL. */
static struct nftio_kernel *kernel_new(void)
{
	struct nftio_kernel *k = calloc(1, sizeof(*k));
	int one = 1;

	if (k == NULL)
		return NULL;
	k->nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (k->nft == NULL)
		goto fail;
	/* libnftables 1.0.6 parses JSON input only with JSON output set. */
	nft_ctx_output_set_flags(k->nft, NFT_CTX_OUTPUT_JSON);
	if (nft_ctx_buffer_output(k->nft) || nft_ctx_buffer_error(k->nft))
		goto fail;
	k->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (k->nl == NULL || mnl_socket_bind(k->nl, 0, MNL_SOCKET_AUTOPID) < 0)
		goto fail;
	/* Error acknowledgements without a copy of the refused message: a
	 * refused batch of large element messages (our table gone, say)
	 * would otherwise overflow the receive buffer, and its reason would
	 * be lost in the overflow. */
	mnl_socket_setsockopt(k->nl, NETLINK_CAP_ACK, &one, sizeof(one));
	k->seq = (uint32_t)time(NULL);
	return k;
fail:
	kernel_free(k);
	return NULL;
}

struct nftio *nftio_new_kernel(void)
{
	struct nftio_kernel *k = kernel_new();
	struct nftio *io = k ? nftio_backend_new(&kernel_ops, k) : NULL;

	if (io == NULL)
		kernel_free(k);
	return io;
}
