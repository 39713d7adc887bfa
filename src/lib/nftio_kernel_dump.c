/*
 * nftio_kernel_dump: what the kernel backend reads back from the
 * kernel's dumps over netlink: a table's fingerprint, a map's digest,
 * whether porthop made a table, and who else uses connection tracking.
 */
#include "nftio_kernel.h"

#include "diag.h"

#include <errno.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	uint16_t type;		/* NFT_MSG_GETTABLE, GETCHAIN, GETSET or
				 * GETRULE */
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
	if (d->type == NFT_MSG_GETTABLE) {
		struct nftnl_table *t = nftnl_table_alloc();

		if (t == NULL || nftnl_table_nlmsg_parse(nlh, t) < 0) {
			nftnl_table_free(t);
			return MNL_CB_ERROR;
		}
		table = nftnl_table_get_str(t, NFTNL_TABLE_NAME);
		if (table && strcmp(table, d->table) == 0) {
			/* Its flags (dormant: every chain of it off) are
			 * part of the definition. */
			nftnl_table_unset(t, NFTNL_TABLE_HANDLE);
			nftnl_table_unset(t, NFTNL_TABLE_USE);
			nftnl_table_snprintf(line, sizeof(line), t,
					     NFTNL_OUTPUT_DEFAULT, 0);
		}
		nftnl_table_free(t);
	} else if (d->type == NFT_MSG_GETCHAIN) {
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

/* Dumps the chains, sets or rules (type) of one family into d. */
static int dump(struct nftio_kernel *k, uint16_t type, int family,
		struct dump_ctx *d)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = k->seq++;
	struct nlmsghdr *nlh;
	int r;

	nlh = nftnl_nlmsg_build_hdr(buf, type, (uint16_t)family,
				    NLM_F_DUMP | NLM_F_ACK, seq);
	r = nftio_kernel_request(k, nlh, seq, dump_cb, d);
	return r == -EINTR ? r : r < 0 ? -EIO : 0;
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
			*sum += nftio_hash(mnl_attr_get_payload(el),
					   mnl_attr_get_payload_len(el), 0);
	}
	return MNL_CB_OK;
}

int nftio_kernel_map_digest(struct nftio *io, const char *table,
			    const char *map, uint64_t *ret)
{
	struct nftio_kernel *k = nftio_kernel_of(io);
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq;
	struct nlmsghdr *nlh;

	/* The attributes' alignment padding goes to the kernel too. */
	memset(buf, 0, sizeof(buf));
	for (unsigned attempt = 1;; attempt++) {
		int r;

		seq = k->seq++;
		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_INET,
					    NLM_F_DUMP | NLM_F_ACK, seq);
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table);
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, map);
		*ret = 0;
		r = nftio_kernel_request(k, nlh, seq, digest_cb, ret);
		if (r != -EINTR || attempt == NFTIO_DUMP_ATTEMPTS)
			return r;
		memset(buf, 0, sizeof(buf));
	}
}

int nftio_kernel_table_fingerprint(struct nftio *io, const char *family,
				   const char *table, char **ret)
{
	static const uint16_t types[] = {
		NFT_MSG_GETTABLE, NFT_MSG_GETCHAIN, NFT_MSG_GETSET,
		NFT_MSG_GETRULE
	};
	struct text out = { 0 };
	bool found = false;
	int fam = family_number(family), r = 0;

	if (fam < 0)
		return -EINVAL;
	/* Four dumps, one ruleset: any of them flagged inconsistent, all
	 * four again. */
	for (unsigned attempt = 1;; attempt++) {
		free(out.buf);
		out = (struct text){ 0 };
		found = false;
		r = 0;
		text_add(&out, table);
		for (size_t i = 0; r == 0 && i < sizeof(types) / sizeof(*types);
		     i++) {
			struct dump_ctx d = { types[i], table, &out, false };

			r = dump(nftio_kernel_of(io), types[i], fam, &d);
			found |= d.found;
		}
		if (r != -EINTR || attempt == NFTIO_DUMP_ATTEMPTS)
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
static int table_exists(struct nftio_kernel *k, int fam, const char *table)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = k->seq++;
	struct nlmsghdr *nlh;
	bool seen = false;
	int r;

	memset(buf, 0, sizeof(buf));
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, (uint16_t)fam,
				    NLM_F_ACK, seq);
	mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, table);
	r = nftio_kernel_request(k, nlh, seq, table_cb, &seen);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	return seen;
}

int nftio_kernel_table_marked(struct nftio *io, const char *family,
			      const char *table, const char *mark)
{
	struct nftio_kernel *k = nftio_kernel_of(io);
	struct mark_ctx m = { mark, false };
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int fam = family_number(family), r;

	if (fam < 0)
		return -EINVAL;
	r = table_exists(k, fam, table);
	if (r <= 0)
		return r == 0 ? -ENOENT : r;
	for (unsigned attempt = 1;; attempt++) {
		uint32_t seq = k->seq++;
		struct nlmsghdr *nlh;

		/* The kernel picks the table's rules out of the dump. */
		memset(buf, 0, sizeof(buf));
		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, (uint16_t)fam,
					    NLM_F_DUMP | NLM_F_ACK, seq);
		mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, table);
		m.found = false;
		r = nftio_kernel_request(k, nlh, seq, mark_cb, &m);
		if (r != -EINTR || attempt == NFTIO_DUMP_ATTEMPTS)
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

int nftio_kernel_conntrack_user(struct nftio *io, const char *table,
				int where, char *who, size_t len)
{
	static const uint16_t types[] = {
		NFT_MSG_GETCHAIN, NFT_MSG_GETSET, NFT_MSG_GETRULE
	};
	struct nftio_kernel *k = nftio_kernel_of(io);
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int r = 0;

	for (size_t i = 0; r == 0 && (where & NFTIO_CT_RULESET) && i < 3;
	     i++) {
		for (unsigned attempt = 1;; attempt++) {
			struct ct_ctx d = { types[i], table, who, len, false };
			uint32_t seq = k->seq++;
			struct nlmsghdr *nlh;
			int dr;

			if (len)
				who[0] = '\0';
			nlh = nftnl_nlmsg_build_hdr(buf, types[i], NFPROTO_UNSPEC,
						    NLM_F_DUMP | NLM_F_ACK, seq);
			dr = nftio_kernel_request(k, nlh, seq, ct_cb, &d);
			if (dr == -EINTR && attempt < NFTIO_DUMP_ATTEMPTS)
				continue;
			if (dr < 0)
				return -EIO;
			r = d.found;
			break;
		}
	}
	return r ? 1 : (where & NFTIO_CT_LEGACY) && legacy_table(who, len);
}

