#include "nftio.h"

#include "diag.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/chain.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Attempts of a call the kernel or libnftables says was interrupted. */
#define NFTIO_EINTR_ATTEMPTS 5

struct nftio_ops {
	int (*apply)(struct nftio *io, const char *text, bool dry_run,
		     char **ret_error);
	int (*list)(struct nftio *io, json_t **ret, char **ret_error);
	int (*elems)(struct nftio *io, const struct nftio_elems *b,
		     bool use_json, char **ret_error);
	int (*generation)(struct nftio *io, uint32_t *ret);
};

enum elem_op { ELEM_FLUSH, ELEM_ADD, ELEM_DELETE };

/* What an item's key is: a map's concatenation, or an address of a set
 * of address intervals, where a range is two items (its first address,
 * then its last). */
enum elem_kind { KEY_CONCAT, KEY_RANGE_START, KEY_RANGE_END };

struct elem_item {
	struct nftio_key key;
	const char *map;
	uint16_t value;
	uint8_t op;
	uint8_t kind;
};

struct nftio_elems {
	char *table;
	struct elem_item *items;
	size_t n;
	size_t cap;
};

struct nftio {
	const struct nftio_ops *ops;
	struct nft_ctx *nft;		/* kernel backend */
	struct mnl_socket *nl;		/* kernel backend, bulk updates */
	uint32_t seq;
	uint64_t commits;		/* transactions committed, both */
	uint32_t generation;		/* recorder backend */
	/* recorder backend */
	json_t *last;
	json_t *last_elems;		/* the last batch that held elements */
	size_t applied;
	size_t dry_runs;
	unsigned fail_next;
	char *fail_msg;
	char *fail_needle;
	uint64_t elem_salt;		/* changed by tamper_elements */
	char *salted;			/* ... for this map or set */
	bool tampered;			/* ... and not applied since */
	char *tamper_next;		/* tamper_next_apply's name */
	char *foreign;			/* a table not porthop's, by name */
	json_t *tables;			/* tables and their rules' comments */
	char *ct_user;			/* what conntrack_user answers */
	size_t ct_looks;		/* ... and how often for the ruleset */
};

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

/* The errno a libnftables message reports, from the strerror() text it
 * quotes ("Could not process rule: Operation not supported"): libnftables
 * 1.0.6 returns -1 and prints, nothing else tells.  The earliest one in
 * the text wins (a batch may fail on several commands); -EIO when none is
 * known (a syntax error, a JSON error, output where none was expected). */
static int libnft_errno(const char *text)
{
	static const int known[] = {
		EINTR, EPERM, EACCES, EOPNOTSUPP, ENOENT, EEXIST, EBUSY,
		ENOMEM, ENOBUFS, ENOSPC, EMSGSIZE, EINVAL, ERANGE, E2BIG,
		EOVERFLOW, EAFNOSUPPORT, EPROTONOSUPPORT, ELOOP, EAGAIN,
	};
	const char *first = NULL;
	int r = -EIO;

	for (size_t i = 0; text && i < sizeof(known) / sizeof(known[0]); i++) {
		const char *at = strstr(text, strerror(known[i]));

		if (at && (first == NULL || at < first)) {
			first = at;
			r = -known[i];
		}
	}
	return r;
}

/* One call into libnftables with asynchronous signals held back.
 * libnftables 1.0.6 polls for the kernel's acknowledgements with select(),
 * which any signal interrupts (SA_RESTART or not) after the kernel has
 * processed the batch: it then reports "Interrupted system call" and loses
 * the kernel's verdict, a dry run's refusal or a real batch's commit
 * alike.  Held back, a signal is delivered when the call returns (to
 * libevent's handler, which only queues it for the loop).  Synchronous
 * signals stay deliverable. */
static int run_nft(struct nftio *io, const char *text)
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
	rc = nft_run_cmd_from_buffer(io->nft, text);
	saved_errno = errno;
	sigprocmask(SIG_SETMASK, &saved, NULL);
	errno = saved_errno;
	return rc;
}

static int kernel_apply(struct nftio *io, const char *text, bool dry_run,
			char **ret_error)
{
	const char *out, *err;
	int rc;

	nft_ctx_set_dry_run(io->nft, dry_run);
	rc = run_nft(io, text);
	nft_ctx_set_dry_run(io->nft, false);
	/* Reading a buffer also empties it for the next call. */
	out = nft_ctx_get_output_buffer(io->nft);
	err = nft_ctx_get_error_buffer(io->nft);
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
	return rc == 0 ? -EIO : libnft_errno(err);
}

static int kernel_list(struct nftio *io, json_t **ret, char **ret_error)
{
	json_error_t jerr;
	const char *out, *err;
	json_t *root;
	int rc, r;

	for (unsigned attempt = 1;; attempt++) {
		rc = run_nft(io, "list ruleset");
		out = nft_ctx_get_output_buffer(io->nft);
		err = nft_ctx_get_error_buffer(io->nft);
		if (rc == 0)
			break;
		r = libnft_errno(err);
		if (r != -EINTR || attempt == NFTIO_EINTR_ATTEMPTS) {
			if (ret_error)
				*ret_error = one_line(err ? err : "", "");
			return r;
		}
	}
	root = json_loads(out ? out : "", 0, &jerr);
	if (root == NULL) {
		if (ret_error)
			*ret_error = strdup("libnftables listed a ruleset that "
					    "is not JSON");
		return -EIO;
	}
	*ret = root;
	return 0;
}


/* --- bulk element updates ----------------------------------------- */

struct nftio_elems *nftio_elems_new(const char *table)
{
	struct nftio_elems *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->table = strdup(table);
	if (b->table == NULL) {
		free(b);
		return NULL;
	}
	return b;
}

void nftio_elems_free(struct nftio_elems *b)
{
	if (b == NULL)
		return;
	free(b->items);
	free(b->table);
	free(b);
}

static int elems_push(struct nftio_elems *b, uint8_t op, const char *map,
		      const struct nftio_key *key, uint16_t value,
		      uint8_t kind)
{
	struct elem_item *it;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;

		it = realloc(b->items, cap * sizeof(*it));
		if (it == NULL)
			return -ENOMEM;
		b->items = it;
		b->cap = cap;
	}
	it = &b->items[b->n++];
	memset(it, 0, sizeof(*it));
	it->op = op;
	it->map = map;
	it->value = value;
	it->kind = kind;
	if (key)
		it->key = *key;
	return 0;
}

int nftio_elems_flush(struct nftio_elems *b, const char *map)
{
	return elems_push(b, ELEM_FLUSH, map, NULL, 0, KEY_CONCAT);
}

int nftio_elems_add(struct nftio_elems *b, const char *map,
		    const struct nftio_key *key, uint16_t value)
{
	return elems_push(b, ELEM_ADD, map, key, value, KEY_CONCAT);
}

int nftio_elems_delete(struct nftio_elems *b, const char *map,
		       const struct nftio_key *key)
{
	return elems_push(b, ELEM_DELETE, map, key, 0, KEY_CONCAT);
}

int nftio_elems_flush_set(struct nftio_elems *b, const char *set)
{
	return elems_push(b, ELEM_FLUSH, set, NULL, 0, KEY_RANGE_START);
}

int nftio_elems_add_range(struct nftio_elems *b, const char *set, int family,
			  const unsigned char first[16],
			  const unsigned char last[16])
{
	struct nftio_key k = { .family = family };
	int r;

	memcpy(k.addr, first, sizeof(k.addr));
	r = elems_push(b, ELEM_ADD, set, &k, 0, KEY_RANGE_START);
	memcpy(k.addr, last, sizeof(k.addr));
	return r ? r : elems_push(b, ELEM_ADD, set, &k, 0, KEY_RANGE_END);
}

size_t nftio_elems_count(const struct nftio_elems *b)
{
	return b->n;
}

static json_t *key_json(const struct nftio_key *k)
{
	char addr[INET6_ADDRSTRLEN];
	unsigned full = k->family == AF_INET ? 32 : 128;
	json_t *a;

	inet_ntop(k->family, k->addr, addr, sizeof(addr));
	a = k->prefix_len < full ?
		json_pack("{s:{s:s,s:i}}", "prefix", "addr", addr, "len",
			  (int)k->prefix_len) :
		json_string(addr);
	return json_pack("{s:[o,s,i]}", "concat", a,
			 k->l4proto == IPPROTO_UDP ? "udp" : "tcp",
			 (int)k->port);
}

/* A range's two items as libnftables writes it: the address, or
 * {"range": [first, last]}. */
static json_t *range_json(const struct elem_item *it)
{
	char a[2][INET6_ADDRSTRLEN];

	inet_ntop(it[0].key.family, it[0].key.addr, a[0], sizeof(a[0]));
	inet_ntop(it[1].key.family, it[1].key.addr, a[1], sizeof(a[1]));
	return strcmp(a[0], a[1]) == 0 ? json_string(a[0]) :
		json_pack("{s:[s,s]}", "range", a[0], a[1]);
}

json_t *nftio_elems_json(const struct nftio_elems *b)
{
	json_t *cmds = json_array(), *elem = NULL;
	size_t i = 0;

	if (cmds == NULL)
		return NULL;
	while (i < b->n) {
		const struct elem_item *first = &b->items[i];
		static const char *const verbs[] = { "flush", "add", "delete" };

		if (first->op == ELEM_FLUSH) {
			json_array_append_new(cmds, json_pack(
				"{s:{s:{s:s,s:s,s:s}}}", "flush",
				first->kind == KEY_CONCAT ? "map" : "set",
				"family", "inet", "table", b->table, "name",
				first->map));
			i++;
			continue;
		}
		elem = json_array();
		for (; i < b->n && b->items[i].op == first->op &&
		       b->items[i].map == first->map; i++) {
			const struct elem_item *it = &b->items[i];

			if (it->kind != KEY_CONCAT) {
				json_array_append_new(elem, range_json(it));
				i++;	/* its last address too */
				continue;
			}
			json_array_append_new(elem, it->op == ELEM_ADD ?
				json_pack("[o,i]", key_json(&it->key),
					  (int)it->value) :
				key_json(&it->key));
		}
		if (json_array_append_new(cmds, json_pack(
			    "{s:{s:{s:s,s:s,s:s,s:o}}}", verbs[first->op],
			    "element", "family", "inet", "table", b->table,
			    "name", first->map, "elem", elem)) < 0) {
			json_decref(cmds);
			return NULL;
		}
	}
	return json_pack("{s:o}", "nftables", cmds);
}

/* The key's bytes as the kernel stores a concatenation: every field
 * padded to a 32-bit register.  end: the last address of a prefix. */
static size_t key_bytes(const struct nftio_key *k, bool end, uint8_t *out)
{
	size_t alen = k->family == AF_INET ? 4 : 16;
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
	unsigned full = k->family == AF_INET ? 32 : 128;
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
	const struct elem_item *it = &b->items[i];
	size_t alen = it->key.family == AF_INET ? 4 : 16;
	unsigned char k[16], zero[16] = { 0 };
	bool top = true;

	memcpy(k, it->key.addr, alen);
	if (it->kind == KEY_RANGE_END) {
		for (size_t j = alen; top && j-- > 0;)
			top = ++k[j] == 0;	/* k + 1, carried */
		if (!top)
			put_boundary(nlh, k, alen, true, false);
		return;
	}
	if (memcmp(k, zero, alen) != 0 &&
	    !(i > 0 && b->items[i - 1].map == it->map &&
	      b->items[i - 1].op == ELEM_ADD &&
	      b->items[i - 1].kind == KEY_RANGE_END))
		put_boundary(nlh, zero, alen, true, false);
	for (size_t j = 0; j < alen; j++)
		top = top && b->items[i + 1].key.addr[j] == 0xff;
	put_boundary(nlh, k, alen, false, top);
}

/* Whatever an earlier request left on our socket: acknowledgements not
 * read after an error, the rest of a dump given up half way.  Read
 * without waiting (a dump in progress is produced as it is read) and
 * dropped, so that every request starts on an empty socket instead of
 * failing on another request's sequence numbers. */
static void nl_drain(struct nftio *io)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];

	for (;;) {
		ssize_t n = recv(mnl_socket_get_fd(io->nl), buf, sizeof(buf),
				 MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
	}
}

/* Sends one request on a drained socket; a signal is no failure. */
static int nl_send(struct nftio *io, const struct nlmsghdr *nlh)
{
	nl_drain(io);
	while (mnl_socket_sendto(io->nl, nlh, nlh->nlmsg_len) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* One read of answers; a signal is no failure. */
static ssize_t nl_recv(struct nftio *io, void *buf, size_t len)
{
	ssize_t n;

	while ((n = mnl_socket_recvfrom(io->nl, buf, len)) < 0)
		if (errno != EINTR)
			return -errno;
	return n;
}

/* Room each message may take in a batch page. */
#define ELEM_MSG_MAX	(60 * 1024)
#define BATCH_PAGE	(1024 * 1024)

static int batch_grow(struct nftnl_batch *batch)
{
	return nftnl_batch_update(batch) < 0 ? -ENOMEM : 0;
}

/* Reads acknowledgements until `expected` arrived; the first error wins. */
static int read_acks(struct nftio *io, unsigned expected, char **ret_error)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int first_err = 0;

	while (expected > 0) {
		ssize_t got = mnl_socket_recvfrom(io->nl, buf, sizeof(buf));
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
		if (asprintf(ret_error, "kernel refused the map update: %s",
			     strerror(-first_err)) < 0)
			*ret_error = NULL;
	}
	return first_err;
}

static int kernel_elems(struct nftio *io, const struct nftio_elems *b,
			bool use_json, char **ret_error)
{
	struct nftnl_batch *batch = NULL;
	unsigned acks = 0;
	size_t i = 0;
	int r = 0;

	if (use_json) {
		json_t *j = nftio_elems_json(b);

		r = j ? nftio_apply(io, j, false, ret_error) : -ENOMEM;
		json_decref(j);
		return r;
	}
	batch = nftnl_batch_alloc(BATCH_PAGE, 2 * ELEM_MSG_MAX);
	if (batch == NULL)
		return -ENOMEM;
	nftnl_batch_begin(nftnl_batch_buffer(batch), io->seq++);
	if ((r = batch_grow(batch)) < 0)
		goto out;
	while (i < b->n) {
		const struct elem_item *first = &b->items[i];
		uint16_t type = first->op == ELEM_ADD ? NFT_MSG_NEWSETELEM :
				NFT_MSG_DELSETELEM;
		uint16_t flags = NLM_F_ACK |
				 (first->op == ELEM_ADD ? NLM_F_CREATE : 0);
		struct nlmsghdr *nlh;
		struct nlattr *list;

		/* libmnl 1.0.4 leaves attribute padding as it finds it: start
		 * from zeroes so no stale heap byte goes to the kernel. */
		memset(nftnl_batch_buffer(batch), 0, 2 * ELEM_MSG_MAX);
		nlh = nftnl_nlmsg_build_hdr(nftnl_batch_buffer(batch), type,
					    NFPROTO_INET, flags, io->seq++);
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, b->table);
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, first->map);
		if (first->op == ELEM_FLUSH) {
			/* A deletion naming no element empties the set. */
			i++;
			goto next;
		}
		list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
		for (; i < b->n && b->items[i].op == first->op &&
		       b->items[i].map == first->map &&
		       nlh->nlmsg_len < ELEM_MSG_MAX; i++) {
			const struct elem_item *it = &b->items[i];
			struct nlattr *e;

			if (it->kind != KEY_CONCAT) {
				put_range_item(nlh, b, i);
				continue;
			}
			e = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
			put_concat_key(nlh, &it->key);
			if (it->op == ELEM_ADD) {
				uint16_t v = htons(it->value);

				put_data(nlh, NFTA_SET_ELEM_DATA, &v, sizeof(v));
			}
			mnl_attr_nest_end(nlh, e);
		}
		mnl_attr_nest_end(nlh, list);
next:
		acks++;
		if ((r = batch_grow(batch)) < 0)
			goto out;
	}
	nftnl_batch_end(nftnl_batch_buffer(batch), io->seq++);
	if ((r = batch_grow(batch)) < 0)
		goto out;
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
		int sndbuf = 0, rcvbuf;

		if (iov == NULL) {
			r = -ENOMEM;
			goto out;
		}
		nftnl_batch_iovec(batch, iov, (uint32_t)iovlen);
		for (int k = 0; k < iovlen; k++)
			sndbuf += (int)iov[k].iov_len;
		/* The whole batch goes in one message: one transaction.  The
		 * receive buffer must hold an acknowledgement for each of
		 * its messages (the kernel counts about a kilobyte each). */
		sndbuf += 4096;
		rcvbuf = (int)acks * 2048 + (1 << 20);
		setsockopt(mnl_socket_get_fd(io->nl), SOL_SOCKET,
			   SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
		setsockopt(mnl_socket_get_fd(io->nl), SOL_SOCKET,
			   SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
		nl_drain(io);
		while ((r = (int)sendmsg(mnl_socket_get_fd(io->nl), &msg, 0)) < 0 &&
		       errno == EINTR)
			;
		if (r < 0) {
			r = -errno;
			if (ret_error && asprintf(ret_error, "cannot send the map "
						  "update: %s", strerror(errno)) < 0)
				*ret_error = NULL;
			free(iov);
			goto out;
		}
		free(iov);
	}
	r = read_acks(io, acks, ret_error);
	if (r > 0)
		r = -r;
out:
	nftnl_batch_free(batch);
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
	return MNL_CB_OK;
}

static int kernel_generation(struct nftio *io, uint32_t *ret)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = io->seq++;
	struct nlmsghdr *nlh;
	ssize_t n;
	int r;

	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK,
				    seq);
	if ((r = nl_send(io, nlh)) < 0)
		return r;
	do {
		n = nl_recv(io, buf, sizeof(buf));
		if (n < 0)
			return (int)n;
		errno = 0;
		r = mnl_cb_run(buf, (size_t)n, seq,
			       mnl_socket_get_portid(io->nl), gen_cb, ret);
	} while (r > 0);
	return r < 0 ? (errno ? -errno : -EIO) : 0;
}

static const struct nftio_ops kernel_ops = {
	.apply = kernel_apply,
	.list = kernel_list,
	.elems = kernel_elems,
	.generation = kernel_generation,
};

/* Whether a batch touches tables, sets, maps or their elements (not
 * only chains and rules): what the recorder digests. */
static bool holds_elements(const json_t *batch)
{
	static const char *const what[] = { "table", "set", "map", "element" };
	json_t *cmd, *verb;
	const char *k;
	size_t i;

	json_array_foreach(json_object_get(batch, "nftables"), i, cmd)
		json_object_foreach(cmd, k, verb)
			for (size_t j = 0; j < 4; j++)
				if (json_object_get(verb, what[j]))
					return true;
	return false;
}

/* Whether batch rewrites map or set `name` whole: flushes it, or deletes
 * the table (to define it anew), as the kernel would then hold only what
 * the batch adds. */
static bool rewrites(const json_t *batch, const char *name)
{
	json_t *cmd, *verb, *obj;
	const char *k;
	size_t i;

	json_array_foreach(json_object_get(batch, "nftables"), i, cmd)
		json_object_foreach(cmd, k, verb) {
			if (strcmp(k, "flush") != 0 && strcmp(k, "delete") != 0)
				continue;
			if (json_object_get(verb, "table"))
				return true;
			obj = json_object_get(verb, "set");
			obj = obj ? obj : json_object_get(verb, "map");
			if (strcmp(k, "flush") == 0 && obj &&
			    json_is_string(json_object_get(obj, "name")) &&
			    strcmp(json_string_value(json_object_get(obj,
					"name")), name) == 0)
				return true;
		}
	return false;
}

/* The recorder's tables: "family name" -> the comments of the rules
 * added to it, kept across batches as the kernel would keep them (rules
 * flushed or deleted one by one are not followed: a recorder). */
static void recorder_track_tables(struct nftio *io, const json_t *batch)
{
	json_t *cmd;
	size_t i;

	if (io->tables == NULL && (io->tables = json_object()) == NULL)
		return;
	json_array_foreach(json_object_get(batch, "nftables"), i, cmd) {
		const char *verb;
		json_t *body;

		json_object_foreach(cmd, verb, body) {
			json_t *t = json_object_get(body, "table");
			json_t *r = json_object_get(body, "rule");
			json_t *o = t ? t : r;
			char key[256];

			if (strcmp(verb, "flush") == 0 &&
			    json_object_get(body, "ruleset")) {
				json_object_clear(io->tables);
				continue;
			}
			if (!json_is_object(o) ||
			    !json_is_string(json_object_get(o, "family")) ||
			    !json_is_string(json_object_get(o, t ? "name" : "table")))
				continue;
			snprintf(key, sizeof(key), "%s %s",
				 json_string_value(json_object_get(o, "family")),
				 json_string_value(json_object_get(o, t ? "name" :
								   "table")));
			if (t && strcmp(verb, "delete") == 0)
				json_object_del(io->tables, key);
			else if (t && strcmp(verb, "add") == 0 &&
				 json_object_get(io->tables, key) == NULL)
				json_object_set_new(io->tables, key, json_array());
			else if (r && strcmp(verb, "add") == 0 &&
				 json_object_get(io->tables, key) &&
				 json_is_string(json_object_get(r, "comment")))
				json_array_append(json_object_get(io->tables, key),
						  json_object_get(r, "comment"));
		}
	}
}

/* The recorder's answer for nftio_table_marked, from its tables. */
static int recorder_marked(struct nftio *io, const char *family,
			   const char *table, const char *mark)
{
	char key[256];
	json_t *comments, *c;
	size_t i;

	if (io->foreign && strcmp(io->foreign, table) == 0)
		return 0;
	snprintf(key, sizeof(key), "%s %s", family, table);
	comments = json_object_get(io->tables, key);
	if (comments == NULL)
		return -ENOENT;
	json_array_foreach(comments, i, c)
		if (strcmp(json_string_value(c), mark) == 0)
			return 1;
	return 0;
}

static int recorder_apply(struct nftio *io, const char *text, bool dry_run,
			  char **ret_error)
{
	json_error_t jerr;
	json_t *batch;

	if (io->fail_next > 0 ||
	    (io->fail_needle && strstr(text, io->fail_needle))) {
		if (io->fail_next > 0)
			io->fail_next--;
		if (ret_error)
			*ret_error = strdup(io->fail_msg ? io->fail_msg :
					    "recorder: told to fail");
		/* The errno its message quotes, as the kernel backend. */
		return libnft_errno(io->fail_msg);
	}
	batch = json_loads(text, 0, &jerr);
	if (batch == NULL || !json_is_array(json_object_get(batch,
							    "nftables"))) {
		json_decref(batch);
		if (ret_error)
			*ret_error = strdup("recorder: not a libnftables batch");
		return -EINVAL;
	}
	if (dry_run) {
		io->dry_runs++;
		json_decref(batch);
		return 0;
	}
	if (io->salted && rewrites(batch, io->salted)) {
		free(io->salted);
		io->salted = NULL;
	}
	if (holds_elements(batch)) {
		json_decref(io->last_elems);
		io->last_elems = json_incref(batch);
	}
	recorder_track_tables(io, batch);
	json_decref(io->last);
	io->last = batch;
	io->applied++;
	io->generation++;
	if (io->tamper_next) {
		char *name = io->tamper_next;

		io->tamper_next = NULL;
		nftio_recorder_tamper_elements(io, name);
		free(name);
	}
	io->tampered = false;
	return 0;
}

static int recorder_elems(struct nftio *io, const struct nftio_elems *b,
			  bool use_json, char **ret_error)
{
	json_t *j = nftio_elems_json(b);
	int r;

	(void)use_json;
	r = j ? nftio_apply(io, j, false, ret_error) : -ENOMEM;
	json_decref(j);
	return r;
}

static int recorder_generation(struct nftio *io, uint32_t *ret)
{
	*ret = io->generation;
	return 0;
}

static int recorder_list(struct nftio *io, json_t **ret, char **ret_error)
{
	(void)ret_error;
	*ret = io->last ? json_incref(io->last) :
			  json_pack("{s:[]}", "nftables");
	return *ret ? 0 : -ENOMEM;
}

static const struct nftio_ops recorder_ops = {
	.apply = recorder_apply,
	.list = recorder_list,
	.elems = recorder_elems,
	.generation = recorder_generation,
};

struct nftio *nftio_new_kernel(void)
{
	struct nftio *io = calloc(1, sizeof(*io));
	int one = 1;

	if (io == NULL)
		return NULL;
	io->ops = &kernel_ops;
	io->nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (io->nft == NULL)
		goto fail;
	/* libnftables 1.0.6 parses JSON input only with JSON output set. */
	nft_ctx_output_set_flags(io->nft, NFT_CTX_OUTPUT_JSON);
	if (nft_ctx_buffer_output(io->nft) || nft_ctx_buffer_error(io->nft))
		goto fail;
	io->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (io->nl == NULL || mnl_socket_bind(io->nl, 0, MNL_SOCKET_AUTOPID) < 0)
		goto fail;
	/* Error acknowledgements without a copy of the refused message: a
	 * refused batch of large element messages (our table gone, say)
	 * would otherwise overflow the receive buffer, and its reason would
	 * be lost in the overflow. */
	mnl_socket_setsockopt(io->nl, NETLINK_CAP_ACK, &one, sizeof(one));
	io->seq = (uint32_t)time(NULL);
	return io;
fail:
	nftio_free(io);
	return NULL;
}

struct nftio *nftio_new_recorder(void)
{
	struct nftio *io = calloc(1, sizeof(*io));

	if (io)
		io->ops = &recorder_ops;
	return io;
}

void nftio_free(struct nftio *io)
{
	if (io == NULL)
		return;
	if (io->nft)
		nft_ctx_free(io->nft);
	if (io->nl)
		mnl_socket_close(io->nl);
	json_decref(io->last);
	json_decref(io->last_elems);
	free(io->fail_msg);
	free(io->fail_needle);
	free(io->salted);
	free(io->tamper_next);
	free(io->foreign);
	json_decref(io->tables);
	free(io->ct_user);
	free(io);
}

int nftio_apply_text(struct nftio *io, const char *text, bool dry_run,
		     char **ret_error)
{
	int r;

	/* An interrupted call is tried again (see run_nft: the kernel
	 * backend holds signals back, so this is the last line of
	 * defence).  porthop's batches can be sent twice: definitions
	 * replace, maps and sets are flushed before they are filled,
	 * "add" of what exists changes nothing. */
	for (unsigned attempt = 1;; attempt++) {
		char *err = NULL;

		r = io->ops->apply(io, text, dry_run, &err);
		if (r != -EINTR || attempt == NFTIO_EINTR_ATTEMPTS) {
			if (ret_error)
				*ret_error = err;
			else
				free(err);
			break;
		}
		free(err);
	}
	if (r == 0 && !dry_run)
		io->commits++;
	return r;
}

int nftio_apply(struct nftio *io, const json_t *batch, bool dry_run,
		char **ret_error)
{
	char *text = json_dumps(batch, JSON_COMPACT);
	int r;

	if (text == NULL) {
		if (ret_error)
			*ret_error = strdup("out of memory serialising the "
					    "batch");
		return -ENOMEM;
	}
	r = nftio_apply_text(io, text, dry_run, ret_error);
	free(text);
	return r;
}

int nftio_list(struct nftio *io, json_t **ret, char **ret_error)
{
	return io->ops->list(io, ret, ret_error);
}

/* Runs one list command and appends what it prints to out. */
static int list_one(struct nftio *io, const json_t *cmd, json_t *out,
		    char **ret_error)
{
	json_t *batch = json_pack("{s:[O]}", "nftables", cmd), *doc;
	const char *text_out;
	char *text;
	int rc;

	text = batch ? json_dumps(batch, JSON_COMPACT) : NULL;
	json_decref(batch);
	if (text == NULL)
		return -ENOMEM;
	for (unsigned attempt = 1;; attempt++) {
		const char *err;

		rc = run_nft(io, text);
		text_out = nft_ctx_get_output_buffer(io->nft);
		err = nft_ctx_get_error_buffer(io->nft);
		if (rc == 0)
			break;
		if (libnft_errno(err) != -EINTR ||
		    attempt == NFTIO_EINTR_ATTEMPTS) {
			free(text);
			if (ret_error)
				*ret_error = one_line(err ? err : "", "");
			/* What a listing fails on: what it names is not there
			 * (or cannot be listed, which comes to the same). */
			return libnft_errno(err) == -EINTR ? -EINTR : -ENOENT;
		}
	}
	free(text);
	doc = json_loads(text_out ? text_out : "", 0, NULL);
	if (doc == NULL)
		return -EIO;
	json_array_extend(out, json_object_get(doc, "nftables"));
	json_decref(doc);
	return 0;
}

int nftio_list_json(struct nftio *io, const json_t *cmds, bool terse,
		    json_t **ret, char **ret_error)
{
	json_t *root, *cmd;
	unsigned flags;
	size_t i;
	int r = 0;

	if (io->nft == NULL)
		return recorder_list(io, ret, ret_error);
	root = json_array();
	if (root == NULL)
		return -ENOMEM;
	flags = nft_ctx_output_get_flags(io->nft);
	if (terse)
		nft_ctx_output_set_flags(io->nft, flags | NFT_CTX_OUTPUT_TERSE);
	/* One command per call: libnftables 1.0.6 fills its cache for the
	 * first table of a batch of list commands only. */
	json_array_foreach(json_object_get(cmds, "nftables"), i, cmd) {
		r = list_one(io, cmd, root, ret_error);
		if (r < 0)
			break;
	}
	nft_ctx_output_set_flags(io->nft, flags);
	if (r < 0) {
		json_decref(root);
		return r;
	}
	*ret = json_pack("{s:o}", "nftables", root);
	return *ret ? 0 : -ENOMEM;
}

/* A growing text buffer. */
struct text {
	char *buf;
	size_t len, cap;
	int err;
};

static void text_add(struct text *t, const char *s)
{
	size_t n = strlen(s);

	if (t->err)
		return;
	if (t->len + n + 2 > t->cap) {
		size_t cap = (t->cap + n + 2) * 2;
		char *b = realloc(t->buf, cap);

		if (b == NULL) {
			t->err = -ENOMEM;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len++] = '\n';
	t->buf[t->len] = '\0';
}

struct dump_ctx {
	uint16_t type;		/* NFT_MSG_GETCHAIN, GETSET or GETRULE */
	const char *table;
	struct text *out;
	bool found;
};

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *d = data;
	char line[8192];
	const char *table = NULL;

	line[0] = '\0';
	if (d->type == NFT_MSG_GETCHAIN) {
		struct nftnl_chain *c = nftnl_chain_alloc();

		if (c == NULL || nftnl_chain_nlmsg_parse(nlh, c) < 0) {
			nftnl_chain_free(c);
			return MNL_CB_ERROR;
		}
		table = nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE);
		if (table && strcmp(table, d->table) == 0) {
			/* Handles and use counts change without anyone
			 * changing the definition. */
			nftnl_chain_unset(c, NFTNL_CHAIN_HANDLE);
			nftnl_chain_unset(c, NFTNL_CHAIN_USE);
			nftnl_chain_snprintf(line, sizeof(line), c,
					     NFTNL_OUTPUT_DEFAULT, 0);
		}
		nftnl_chain_free(c);
	} else if (d->type == NFT_MSG_GETSET) {
		struct nftnl_set *s = nftnl_set_alloc();

		if (s == NULL || nftnl_set_nlmsg_parse(nlh, s) < 0) {
			nftnl_set_free(s);
			return MNL_CB_ERROR;
		}
		table = nftnl_set_get_str(s, NFTNL_SET_TABLE);
		if (table && strcmp(table, d->table) == 0) {
			nftnl_set_unset(s, NFTNL_SET_HANDLE);
			nftnl_set_unset(s, NFTNL_SET_ID);
			nftnl_set_snprintf(line, sizeof(line), s,
					   NFTNL_OUTPUT_DEFAULT, 0);
		}
		nftnl_set_free(s);
	} else {
		struct nftnl_rule *r = nftnl_rule_alloc();

		if (r == NULL || nftnl_rule_nlmsg_parse(nlh, r) < 0) {
			nftnl_rule_free(r);
			return MNL_CB_ERROR;
		}
		table = nftnl_rule_get_str(r, NFTNL_RULE_TABLE);
		if (table && strcmp(table, d->table) == 0) {
			nftnl_rule_unset(r, NFTNL_RULE_HANDLE);
			nftnl_rule_unset(r, NFTNL_RULE_POSITION);
			nftnl_rule_unset(r, NFTNL_RULE_ID);
			nftnl_rule_snprintf(line, sizeof(line), r,
					    NFTNL_OUTPUT_DEFAULT, 0);
		}
		nftnl_rule_free(r);
	}
	if (line[0]) {
		d->found = true;
		text_add(d->out, line);
	}
	return MNL_CB_OK;
}

/* nftables' family names and their NFPROTO numbers. */
static const struct {
	const char *name;
	uint32_t nfproto;
} families[] = {
	{ "ip", NFPROTO_IPV4 }, { "ip6", NFPROTO_IPV6 },
	{ "inet", NFPROTO_INET }, { "arp", NFPROTO_ARP },
	{ "bridge", NFPROTO_BRIDGE }, { "netdev", NFPROTO_NETDEV },
};

static int family_number(const char *family)
{
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		if (strcmp(family, families[i].name) == 0)
			return (int)families[i].nfproto;
	return -1;
}

static const char *family_name(uint32_t nfproto)
{
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		if (families[i].nfproto == nfproto)
			return families[i].name;
	return "?";
}

/* Reads of a dump: the kernel fills its dump messages up to the size of
 * the reads it sees (32 KiB at most), so large reads mean few of them. */
#define DUMP_READ_SIZE (64 * 1024)

/* Sends the dump request nlh (sequence number seq) and runs cb on every
 * answer.  -EINTR when the kernel flags the dump inconsistent (someone
 * committed while it ran, NLM_F_DUMP_INTR): what cb saw is then a mix
 * of two rulesets, and the caller starts again from scratch (see
 * DUMP_ATTEMPTS).  The rest of a dump given up is drained by the next
 * request. */
static int dump_run(struct nftio *io, const struct nlmsghdr *nlh,
		    uint32_t seq, mnl_cb_t cb, void *data)
{
	char *buf;
	ssize_t n;
	int r;

	if ((r = nl_send(io, nlh)) < 0)
		return r;
	if ((buf = malloc(DUMP_READ_SIZE)) == NULL)
		return -ENOMEM;
	do {
		n = nl_recv(io, buf, DUMP_READ_SIZE);
		if (n < 0) {
			r = (int)n;
			goto out;
		}
		errno = 0;
		r = mnl_cb_run(buf, (size_t)n, seq,
			       mnl_socket_get_portid(io->nl), cb, data);
	} while (r > 0);
	if (r < 0)
		r = errno ? -errno : -EIO;
out:
	free(buf);
	return r;
}

/* Attempts of a dump that the kernel flags inconsistent each time: a
 * commit during each of them.  Dumps take milliseconds; five in a row
 * means someone commits without pause, and the caller is told. */
#define DUMP_ATTEMPTS 5

static int dump(struct nftio *io, uint16_t type, int family,
		struct dump_ctx *d)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = io->seq++;
	struct nlmsghdr *nlh;
	int r;

	nlh = nftnl_nlmsg_build_hdr(buf, type, (uint16_t)family,
				    NLM_F_DUMP | NLM_F_ACK, seq);
	r = dump_run(io, nlh, seq, dump_cb, d);
	return r == -EINTR ? r : r < 0 ? -EIO : 0;
}

/* 64-bit FNV-1a, then a splitmix64 finaliser so that sums of hashes do
 * not cancel out. */
static uint64_t hash_bytes(const void *p, size_t n, uint64_t seed)
{
	const unsigned char *c = p;
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ULL;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

/* Sums the hashes of the elements in one NFT_MSG_NEWSETELEM answer: the
 * element attributes as the kernel encodes them, in whatever order it
 * dumps them. */
static int digest_cb(const struct nlmsghdr *nlh, void *data)
{
	uint64_t *sum = data;
	const struct nlattr *a, *el;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested(el, a)
			*sum += hash_bytes(mnl_attr_get_payload(el),
					   mnl_attr_get_payload_len(el), 0);
	}
	return MNL_CB_OK;
}

int nftio_map_digest(struct nftio *io, const char *table, const char *map,
		     uint64_t *ret)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq;
	struct nlmsghdr *nlh;

	*ret = 0;
	/* The attributes' alignment padding goes to the kernel too. */
	memset(buf, 0, sizeof(buf));
	if (io->nft == NULL) {
		bool salted = io->salted && strcmp(io->salted, map) == 0;
		char *text = json_dumps(io->last_elems ? io->last_elems :
					json_null(), JSON_COMPACT | JSON_ENCODE_ANY);

		if (text == NULL)
			return -ENOMEM;
		*ret = hash_bytes(map, strlen(map), salted ? io->elem_salt : 0) ^
		       hash_bytes(text, strlen(text), 0);
		free(text);
		return 0;
	}
	for (unsigned attempt = 1;; attempt++) {
		int r;

		seq = io->seq++;
		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_INET,
					    NLM_F_DUMP | NLM_F_ACK, seq);
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table);
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, map);
		*ret = 0;
		r = dump_run(io, nlh, seq, digest_cb, ret);
		if (r != -EINTR || attempt == DUMP_ATTEMPTS)
			return r;
		memset(buf, 0, sizeof(buf));
	}
}

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
static int verify_read(struct nftio *io, uint32_t seq, struct verify_buf *vb,
		       struct verify_ctx *v)
{
	int fd = mnl_socket_get_fd(io->nl), r = MNL_CB_OK;

	while (r > 0) {
		int n;

		for (size_t k = 0; k <= VERIFY_CHUNK; k++) {
			vb->iov[k] = (struct iovec){ vb->rep[k], VERIFY_REPLY_MAX };
			vb->mm[k] = (struct mmsghdr){ .msg_hdr = {
				.msg_iov = &vb->iov[k], .msg_iovlen = 1 } };
		}
		n = recvmmsg(fd, vb->mm, VERIFY_CHUNK + 1, MSG_WAITFORONE, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int k = 0; r > 0 && k < n; k++) {
			if (vb->mm[k].msg_hdr.msg_flags & MSG_TRUNC)
				return -EMSGSIZE;
			errno = 0;
			r = mnl_cb_run(vb->rep[k], vb->mm[k].msg_len, seq,
				       mnl_socket_get_portid(io->nl), verify_cb, v);
		}
	}
	return r < 0 ? (errno ? -errno : -EIO) : 0;
}

/* Asks for items [*i, ...) of one map, up to VERIFY_CHUNK; 1 if one is
 * missing or holds another value. */
static int verify_chunk(struct nftio *io, const struct nftio_elems *b,
			size_t *i, struct verify_buf *vb)
{
	const struct elem_item *first = &b->items[*i];
	struct verify_ctx v = { b, *i, *i, false };
	uint32_t seq = io->seq++;
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
	       b->items[v.end].op == ELEM_ADD &&
	       b->items[v.end].kind == KEY_CONCAT &&
	       b->items[v.end].map == first->map; v.end++) {
		struct nlattr *e = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);

		put_concat_key(nlh, &b->items[v.end].key);
		mnl_attr_nest_end(nlh, e);
	}
	mnl_attr_nest_end(nlh, list);
	*i = v.end;
	if ((r = nl_send(io, nlh)) < 0)
		return r;
	r = verify_read(io, seq, vb, &v);
	/* The kernel stops at the first element it does not hold. */
	if (r < 0)
		return r == -ENOENT ? 1 : r;
	return v.differs || v.next != v.end;
}

int nftio_elems_verify(struct nftio *io, const struct nftio_elems *b)
{
	int rcvbuf = VERIFY_RCVBUF, r = 0;
	struct verify_buf *vb;
	size_t i = 0;

	if (io->nft == NULL) {
		for (; r == 0 && i < b->n; i++)
			r = io->tampered && io->salted &&
			    strcmp(io->salted, b->items[i].map) == 0;
		return r;
	}
	if ((vb = malloc(sizeof(*vb))) == NULL)
		return -ENOMEM;
	setsockopt(mnl_socket_get_fd(io->nl), SOL_SOCKET, SO_RCVBUFFORCE,
		   &rcvbuf, sizeof(rcvbuf));
	while (r == 0 && i < b->n) {
		if (b->items[i].op != ELEM_ADD || b->items[i].kind != KEY_CONCAT)
			i++;
		else
			r = verify_chunk(io, b, &i, vb);
	}
	free(vb);
	return r;
}

int nftio_table_fingerprint(struct nftio *io, const char *family,
			    const char *table, char **ret)
{
	static const uint16_t types[] = {
		NFT_MSG_GETCHAIN, NFT_MSG_GETSET, NFT_MSG_GETRULE
	};
	struct text out = { 0 };
	bool found = false;
	int fam = family_number(family), r = 0;

	if (io->nft == NULL) {
		*ret = json_dumps(io->last ? io->last : json_null(),
				  JSON_COMPACT | JSON_ENCODE_ANY);
		return *ret ? 0 : -ENOMEM;
	}
	if (fam < 0)
		return -EINVAL;
	/* Three dumps, one ruleset: any of them flagged inconsistent, all
	 * three again. */
	for (unsigned attempt = 1;; attempt++) {
		free(out.buf);
		out = (struct text){ 0 };
		found = false;
		r = 0;
		text_add(&out, table);
		for (size_t i = 0; r == 0 && i < 3; i++) {
			struct dump_ctx d = { types[i], table, &out, false };

			r = dump(io, types[i], fam, &d);
			found |= d.found;
		}
		if (r != -EINTR || attempt == DUMP_ATTEMPTS)
			break;
	}
	if (r == -EINTR)
		r = -EIO;
	if (r == 0 && out.err)
		r = out.err;
	if (r == 0 && !found)
		r = -ENOENT;
	if (r < 0) {
		free(out.buf);
		return r;
	}
	*ret = out.buf;
	return 0;
}

/* --- whose table ---------------------------------------------------- */

struct mark_ctx {
	const char *mark;
	bool found;
};

static int comment_cb(const struct nftnl_udata *attr, void *data)
{
	struct mark_ctx *m = data;
	const char *v = nftnl_udata_get(attr);
	uint8_t len = nftnl_udata_len(attr);

	/* A rule's comment: a NUL-terminated string, as nft stores it. */
	if (nftnl_udata_type(attr) == NFTNL_UDATA_RULE_COMMENT &&
	    len == strlen(m->mark) + 1 && v[len - 1] == '\0' &&
	    strcmp(v, m->mark) == 0)
		m->found = true;
	return 0;
}

static int mark_cb(const struct nlmsghdr *nlh, void *data)
{
	struct mark_ctx *m = data;
	struct nftnl_rule *r = nftnl_rule_alloc();
	const void *ud;
	uint32_t len = 0;

	if (r == NULL || nftnl_rule_nlmsg_parse(nlh, r) < 0) {
		nftnl_rule_free(r);
		return MNL_CB_ERROR;
	}
	ud = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len);
	if (ud && len > 0)
		nftnl_udata_parse(ud, len, comment_cb, m);
	nftnl_rule_free(r);
	return MNL_CB_OK;
}

static int table_cb(const struct nlmsghdr *nlh, void *data)
{
	(void)nlh;
	*(bool *)data = true;
	return MNL_CB_OK;
}

/* Whether table (family fam) exists: 1, 0, or a negative errno. */
static int table_exists(struct nftio *io, int fam, const char *table)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = io->seq++;
	struct nlmsghdr *nlh;
	bool seen = false;
	ssize_t n;
	int r;

	memset(buf, 0, sizeof(buf));
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, (uint16_t)fam,
				    NLM_F_ACK, seq);
	mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, table);
	if ((r = nl_send(io, nlh)) < 0)
		return r;
	do {
		n = nl_recv(io, buf, sizeof(buf));
		if (n < 0)
			return (int)n;
		errno = 0;
		r = mnl_cb_run(buf, (size_t)n, seq,
			       mnl_socket_get_portid(io->nl), table_cb, &seen);
	} while (r > 0);
	if (r < 0)
		return errno == ENOENT ? 0 : errno ? -errno : -EIO;
	return seen;
}

int nftio_table_marked(struct nftio *io, const char *family,
		       const char *table, const char *mark)
{
	struct mark_ctx m = { mark, false };
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int fam = family_number(family), r;

	if (io->nft == NULL)
		return recorder_marked(io, family, table, mark);
	if (fam < 0)
		return -EINVAL;
	r = table_exists(io, fam, table);
	if (r <= 0)
		return r == 0 ? -ENOENT : r;
	for (unsigned attempt = 1;; attempt++) {
		uint32_t seq = io->seq++;
		struct nlmsghdr *nlh;

		/* The kernel picks the table's rules out of the dump. */
		memset(buf, 0, sizeof(buf));
		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, (uint16_t)fam,
					    NLM_F_DUMP | NLM_F_ACK, seq);
		mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, table);
		m.found = false;
		r = dump_run(io, nlh, seq, mark_cb, &m);
		if (r != -EINTR || attempt == DUMP_ATTEMPTS)
			break;
	}
	return r < 0 ? r : m.found;
}

/*
 * Who else uses connection tracking.  Expressions and objects that need
 * a packet's conntrack entry: a chain of type nat, ct (state, mark, ...),
 * NAT statements, flow offload, synproxy, connection limits, references
 * to ct helper/timeout/expectation, connlimit or synproxy objects, and
 * iptables-nft's compat matches and targets (whose insides we cannot
 * see: counted, to be safe).
 */
static const char *const ct_exprs[] = {
	"ct", "nat", "masq", "redir", "flow_offload", "synproxy",
	"connlimit", "match", "target", NULL
};

struct ct_ctx {
	uint16_t type;		/* NFT_MSG_GETCHAIN, GETSET or GETRULE */
	const char *own;	/* our inet table, left out */
	char *who;
	size_t len;
	bool found;
};

static bool ct_expr(const struct nftnl_expr *e)
{
	const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

	if (name == NULL)
		return false;
	if (strcmp(name, "objref") == 0) {
		uint32_t t;

		/* By name of a set (a map of objects): counted. */
		if (!nftnl_expr_is_set(e, NFTNL_EXPR_OBJREF_IMM_TYPE))
			return true;
		t = nftnl_expr_get_u32(e, NFTNL_EXPR_OBJREF_IMM_TYPE);
		return t == NFT_OBJECT_CT_HELPER || t == NFT_OBJECT_CONNLIMIT ||
		       t == NFT_OBJECT_CT_TIMEOUT || t == NFT_OBJECT_CT_EXPECT ||
		       t == NFT_OBJECT_SYNPROXY;
	}
	for (size_t i = 0; ct_exprs[i]; i++)
		if (strcmp(name, ct_exprs[i]) == 0)
			return true;
	return false;
}

static int ct_expr_cb(struct nftnl_expr *e, void *data)
{
	const char **ret = data;
	const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

	if (*ret == NULL && ct_expr(e))
		*ret = name;
	/* A dynamic set's update carries expressions of its own (ct count
	 * over N: connlimit). */
	if (*ret == NULL && name && strcmp(name, "dynset") == 0)
		nftnl_expr_expr_foreach(e, ct_expr_cb, data);
	return 0;
}

/* Whether table (family f) is ours: left out. */
static bool ct_own(const struct ct_ctx *d, uint32_t f, const char *table)
{
	return f == NFPROTO_INET && table && strcmp(table, d->own) == 0;
}

static int ct_cb(const struct nlmsghdr *nlh, void *data)
{
	struct ct_ctx *d = data;
	struct nftnl_chain *c = NULL;
	struct nftnl_set *s = NULL;
	struct nftnl_rule *r = NULL;
	const char *what = NULL, *table = NULL, *name = NULL, *kind;
	const char *where = d->type == NFT_MSG_GETSET ? "set" : "chain";
	uint32_t f = 0;
	int ret = MNL_CB_OK;

	if (d->type == NFT_MSG_GETCHAIN) {
		if ((c = nftnl_chain_alloc()) == NULL ||
		    nftnl_chain_nlmsg_parse(nlh, c) < 0)
			goto error;
		table = nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE);
		f = nftnl_chain_get_u32(c, NFTNL_CHAIN_FAMILY);
		name = nftnl_chain_get_str(c, NFTNL_CHAIN_NAME);
		kind = nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE);
		if (kind && strcmp(kind, "nat") == 0)
			what = "a nat chain";
	} else if (d->type == NFT_MSG_GETSET) {
		if ((s = nftnl_set_alloc()) == NULL ||
		    nftnl_set_nlmsg_parse(nlh, s) < 0)
			goto error;
		table = nftnl_set_get_str(s, NFTNL_SET_TABLE);
		f = nftnl_set_get_u32(s, NFTNL_SET_FAMILY);
		name = nftnl_set_get_str(s, NFTNL_SET_NAME);
		nftnl_set_expr_foreach(s, ct_expr_cb, &what);
	} else {
		if ((r = nftnl_rule_alloc()) == NULL ||
		    nftnl_rule_nlmsg_parse(nlh, r) < 0)
			goto error;
		table = nftnl_rule_get_str(r, NFTNL_RULE_TABLE);
		f = nftnl_rule_get_u32(r, NFTNL_RULE_FAMILY);
		name = nftnl_rule_get_str(r, NFTNL_RULE_CHAIN);
		nftnl_expr_foreach(r, ct_expr_cb, &what);
	}
	if (what && !d->found && !ct_own(d, f, table)) {
		/* Anyone with CAP_NET_ADMIN names tables: escaped. */
		char tbuf[DIAG_VALUE_MAX + 8], nbuf[DIAG_VALUE_MAX + 8];

		snprintf(d->who, d->len, "table %s %s, %s %s: %s",
			 family_name(f),
			 diag_name(tbuf, sizeof(tbuf), table ? table : "?"),
			 where, diag_name(nbuf, sizeof(nbuf), name ? name : "?"),
			 what);
		d->found = true;
	}
	goto out;
error:
	ret = MNL_CB_ERROR;
out:
	if (c)
		nftnl_chain_free(c);
	if (s)
		nftnl_set_free(s);
	if (r)
		nftnl_rule_free(r);
	return ret;
}

/* iptables-legacy's tables live outside nftables, their rules out of
 * sight: one that exists in this network namespace is counted. */
static bool legacy_table(char *who, size_t len)
{
	static const char *const files[] = {
		"/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"
	};
	char line[64];

	for (size_t i = 0; i < 2; i++) {
		FILE *fp = fopen(files[i], "re");
		bool any = false;

		if (fp == NULL)
			continue;
		if (fgets(line, sizeof(line), fp) && line[0] != '\n') {
			char nbuf[DIAG_VALUE_MAX + 8];

			line[strcspn(line, "\n")] = '\0';
			snprintf(who, len, "iptables-legacy table %s (%s)",
				 diag_name(nbuf, sizeof(nbuf), line),
				 i ? "IPv6" : "IPv4");
			any = true;
		}
		fclose(fp);
		if (any)
			return true;
	}
	return false;
}

int nftio_conntrack_user(struct nftio *io, const char *table, int where,
			 char *who, size_t len)
{
	static const uint16_t types[] = {
		NFT_MSG_GETCHAIN, NFT_MSG_GETSET, NFT_MSG_GETRULE
	};
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int r = 0;

	if (len)
		who[0] = '\0';
	if (io->nft == NULL) {
		io->ct_looks += (where & NFTIO_CT_RULESET) != 0;
		if (io->ct_user && (where & NFTIO_CT_RULESET))
			snprintf(who, len, "%s", io->ct_user);
		return io->ct_user != NULL && (where & NFTIO_CT_RULESET);
	}
	for (size_t i = 0; r == 0 && (where & NFTIO_CT_RULESET) && i < 3;
	     i++) {
		for (unsigned attempt = 1;; attempt++) {
			struct ct_ctx d = { types[i], table, who, len, false };
			uint32_t seq = io->seq++;
			struct nlmsghdr *nlh;
			int dr;

			if (len)
				who[0] = '\0';
			nlh = nftnl_nlmsg_build_hdr(buf, types[i], NFPROTO_UNSPEC,
						    NLM_F_DUMP | NLM_F_ACK, seq);
			dr = dump_run(io, nlh, seq, ct_cb, &d);
			if (dr == -EINTR && attempt < DUMP_ATTEMPTS)
				continue;
			if (dr < 0)
				return -EIO;
			r = d.found;
			break;
		}
	}
	return r ? 1 : (where & NFTIO_CT_LEGACY) && legacy_table(who, len);
}

size_t nftio_recorder_conntrack_looks(const struct nftio *io)
{
	return io->ct_looks;
}

void nftio_recorder_conntrack_user(struct nftio *io, const char *who)
{
	free(io->ct_user);
	io->ct_user = who ? strdup(who) : NULL;
	io->generation++;
}

int nftio_apply_elems(struct nftio *io, const struct nftio_elems *b,
		      bool use_json, char **ret_error)
{
	uint64_t commits = io->commits;
	int r = io->ops->elems(io, b, use_json, ret_error);

	/* One transaction, whether or not it went through apply_text. */
	if (r == 0 && io->commits == commits)
		io->commits++;
	return r;
}

uint64_t nftio_commits(const struct nftio *io)
{
	return io->commits;
}

int nftio_generation(struct nftio *io, uint32_t *ret_gen)
{
	return io->ops->generation(io, ret_gen);
}

size_t nftio_recorder_applied(const struct nftio *io)
{
	return io->applied;
}

size_t nftio_recorder_dry_runs(const struct nftio *io)
{
	return io->dry_runs;
}

json_t *nftio_recorder_last(const struct nftio *io)
{
	return io->last;
}

void nftio_recorder_fail_next(struct nftio *io, unsigned n, const char *msg)
{
	free(io->fail_msg);
	io->fail_msg = msg ? strdup(msg) : NULL;
	io->fail_next = n;
}

void nftio_recorder_fail_match(struct nftio *io, const char *needle,
			       const char *msg)
{
	free(io->fail_msg);
	free(io->fail_needle);
	io->fail_msg = msg ? strdup(msg) : NULL;
	io->fail_needle = needle ? strdup(needle) : NULL;
}

void nftio_recorder_tamper_elements(struct nftio *io, const char *name)
{
	free(io->salted);
	io->salted = strdup(name);
	io->elem_salt++;
	io->tampered = true;
	io->generation++;
}

void nftio_recorder_tamper_next_apply(struct nftio *io, const char *name)
{
	free(io->tamper_next);
	io->tamper_next = strdup(name);
}

bool nftio_recorder_tampered(const struct nftio *io)
{
	return io->salted != NULL;
}

void nftio_recorder_foreign_table(struct nftio *io, const char *name)
{
	free(io->foreign);
	io->foreign = name ? strdup(name) : NULL;
	io->generation++;
}

void nftio_recorder_tamper(struct nftio *io)
{
	if (io->tables)
		json_object_clear(io->tables);
	json_decref(io->last);
	io->last = json_pack("{s:[]}", "nftables");
	io->generation++;
}
