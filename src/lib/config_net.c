/*
 * config_net: addresses and networks.  Parsing them (inet_pton only, no
 * name lookups), the checks over the watched and trusted lists (repeats,
 * overlapping prefixes, trusted entries that cover watched ones), and the
 * lookups of a watched entry by address.
 */
#include "config_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int config_parse_net(const char *s, bool allow_prefix, struct config_net *ret)
{
	struct config_net n;
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long len = 0;

	memset(&n, 0, sizeof(n));
	if (alen == 0 || alen >= INET6_ADDRSTRLEN || (slash && !allow_prefix))
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	/* inet_pton only: libnftables would resolve a name with a blocking
	 * DNS lookup. */
	if (inet_pton(AF_INET, buf, n.addr) == 1)
		n.family = AF_INET;
	else if (inet_pton(AF_INET6, buf, n.addr) == 1)
		n.family = AF_INET6;
	else
		return -EINVAL;
	n.prefix_len = n.family == AF_INET ? 32 : 128;
	if (slash) {
		char *end;

		if (slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		len = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || len > n.prefix_len || end - slash > 4)
			return -EINVAL;
		n.prefix_len = (unsigned)len;
		n.is_prefix = true;
		/* Host bits must be zero, as nft itself would warn. */
		for (unsigned bit = n.prefix_len; bit < (n.family == AF_INET ? 32u : 128u); bit++)
			if (n.addr[bit / 8] & (0x80 >> (bit % 8)))
				return -EDOM;
	}
	inet_ntop(n.family, n.addr, n.addr_text, sizeof(n.addr_text));
	if (n.is_prefix)
		snprintf(n.text, sizeof(n.text), "%s/%u", n.addr_text,
			 n.prefix_len);
	else
		snprintf(n.text, sizeof(n.text), "%s", n.addr_text);
	*ret = n;
	return 0;
}

/* Whether n lies inside ::ffff:0:0/96, the IPv4-mapped IPv6 addresses. */
static bool v4_mapped(const struct config_net *n)
{
	static const unsigned char mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};

	return n->family == AF_INET6 && n->prefix_len >= 96 &&
	       memcmp(n->addr, mapped, sizeof(mapped)) == 0;
}

int walk_net(struct walk *w, const json_t *v, const char *path,
	     bool allow_prefix, struct config_net *out)
{
	char vbuf[DIAG_VALUE_MAX + 8];
	const char *s = json_string_value(v);
	int r;

	if (s == NULL || strlen(s) != json_string_length(v)) {
		diag_error(w->d, "%s: %s: %s is not an IPv4 or IPv6 address",
			   w->file, path, diag_value(vbuf, sizeof(vbuf), v));
		return -1;
	}
	r = config_parse_net(s, true, out);
	if (r == -EDOM) {
		diag_error(w->d, "%s: %s: %s has bits set after the prefix "
			   "length; expected the network address", w->file,
			   path, diag_value(vbuf, sizeof(vbuf), v));
		return -1;
	}
	if (r == 0 && out->is_prefix && !allow_prefix) {
		diag_error(w->d, "%s: %s: %s is a prefix; prefixes need native "
			   "mode (no nft_address_rules_path), template mode "
			   "takes one address per entry", w->file, path,
			   diag_value(vbuf, sizeof(vbuf), v));
		return -1;
	}
	if (r < 0) {
		diag_error(w->d, "%s: %s: %s is not an IPv4 or IPv6 %s", w->file,
			   path, diag_value(vbuf, sizeof(vbuf), v),
			   allow_prefix ? "address or prefix" : "address");
		return -1;
	}
	if (v4_mapped(out)) {
		char v4[INET_ADDRSTRLEN + 4], v4buf[INET_ADDRSTRLEN + 8];

		/* Linux drops IPv6 packets from such sources, and an inet
		 * table sees IPv4 clients as IPv4: the entry would match
		 * nothing, silently. */
		inet_ntop(AF_INET, out->addr + 12, v4, sizeof(v4));
		if (out->is_prefix)
			snprintf(v4 + strlen(v4), sizeof(v4) - strlen(v4),
				 "/%u", out->prefix_len - 96);
		diag_error(w->d, "%s: %s: %s is an IPv4-mapped IPv6 %s, which "
			   "no packet carries (IPv4 clients are seen as IPv4); "
			   "expected the IPv4 form %s", w->file, path,
			   diag_value(vbuf, sizeof(vbuf), v),
			   out->is_prefix ? "prefix" : "address",
			   diag_string(v4buf, sizeof(v4buf), v4));
		return -1;
	}
	return 0;
}

int config_net_cmp(const struct config_net *x, const struct config_net *y)
{
	int r;

	if (x->family != y->family)
		return x->family - y->family;
	r = memcmp(x->addr, y->addr, 16);
	if (r)
		return r;
	return (int)x->prefix_len - (int)y->prefix_len;
}

unsigned __int128 config_net_value(const struct config_net *n, bool last)
{
	unsigned __int128 v = 0;
	unsigned bits = n->family == AF_INET ? 32 : 128;

	for (unsigned i = 0; i < bits / 8; i++)
		v = (v << 8) | n->addr[i];
	/* The host bits, all ones: shifting by 128 (::/0) is undefined. */
	if (last && n->prefix_len < bits)
		v |= ~(unsigned __int128)0 >> (128 - (bits - n->prefix_len));
	return v;
}

/* Entry i of an array of networks, and the order report_overlaps sorts them
 * in: by network, then by index, so that equal networks end up side by
 * side with the first one in the file first. */
struct net_ref {
	const struct config_net *net;
	size_t index;
};

static int cmp_net_ref(const void *a, const void *b)
{
	const struct net_ref *x = a, *y = b;
	int r = config_net_cmp(x->net, y->net);

	if (r)
		return r;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Reports entries that repeat one another, and prefixes that overlap (the
 * kernel's interval maps refuse overlapping elements).  An address inside
 * a watched prefix is allowed: the address's own entry wins.  One sort
 * of (network, index) pairs keeps a million entries, identical or not, at
 * n log n: each repeat is reported against the first entry of its
 * network, found in the same pass. */
static int report_overlaps(struct walk *w, const struct config_net *const *nets,
		      size_t n, const char *path, const char *what_path,
		      bool overlap_is_error)
{
	char nbuf[DIAG_VALUE_MAX + 8], wbuf[DIAG_VALUE_MAX + 8];
	struct net_ref *sorted;
	const struct config_net *widest = NULL;
	unsigned __int128 widest_end = 0;
	size_t first = 0;
	int r = 0;

	if (n < 2)
		return 0;
	sorted = malloc(n * sizeof(*sorted));
	if (sorted == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		sorted[i] = (struct net_ref){ nets[i], i };
	qsort(sorted, n, sizeof(*sorted), cmp_net_ref);
	for (size_t i = 0; i < n; i++) {
		const struct config_net *cur = sorted[i].net;

		if (i > 0 && config_net_cmp(sorted[first].net, cur) == 0) {
			diag_error(w->d, "%s: %s[%zu]%s: %s is the same %s as "
				   "%s[%zu]%s; expected each once", w->file, path,
				   sorted[i].index, what_path,
				   diag_string(nbuf, sizeof(nbuf), cur->text),
				   cur->is_prefix ? "prefix" : "address", path,
				   sorted[first].index, what_path);
			r = -1;
			continue;
		}
		first = i;
		if (!cur->is_prefix)
			continue;
		if (overlap_is_error && widest &&
		    widest->family == cur->family &&
		    config_net_value(cur, false) <= widest_end) {
			diag_error(w->d, "%s: %s: prefix %s overlaps %s; expected "
				   "prefixes that do not overlap", w->file, path,
				   diag_string(nbuf, sizeof(nbuf), cur->text),
				   diag_string(wbuf, sizeof(wbuf), widest->text));
			r = -1;
			continue;
		}
		if (widest == NULL || widest->family != cur->family ||
		    config_net_value(cur, true) > widest_end) {
			widest = cur;
			widest_end = config_net_value(cur, true);
		}
	}
	free(sorted);
	return r;
}

static int report_watched_overlaps(struct walk *w, struct config *c,
			      const char *path)
{
	const struct config_net **nets;
	int r;

	if (c->nwatched < 2)
		return 0;
	nets = malloc(c->nwatched * sizeof(*nets));
	if (nets == NULL)
		return -1;
	for (size_t i = 0; i < c->nwatched; i++)
		nets[i] = &c->watched[i].net;
	r = report_overlaps(w, nets, c->nwatched, path, ".ip", true);
	free(nets);
	return r;
}

/* The order of c->by_net: the entries' networks (never equal in a loaded
 * configuration). */
static int cmp_watched_idx(const void *a, const void *b, void *arg)
{
	const struct config *c = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return config_net_cmp(&c->watched[x].net, &c->watched[y].net);
}

static int index_watched(struct config *c)
{
	c->by_net = malloc((c->nwatched + 1) * sizeof(*c->by_net));
	if (c->by_net == NULL)
		return -1;
	c->cap_watched = c->nwatched + 1;
	for (size_t i = 0; i < c->nwatched; i++)
		c->by_net[i] = i;
	qsort_r(c->by_net, c->nwatched, sizeof(*c->by_net), cmp_watched_idx, c);
	return 0;
}

size_t config_by_net_lower(const struct config *c, const struct config_net *net,
			   bool *ret_found)
{
	size_t lo = 0, hi = c->by_net ? c->nwatched : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (config_net_cmp(&c->watched[c->by_net[mid]].net, net) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*ret_found = lo < (c->by_net ? c->nwatched : 0) &&
		     config_net_cmp(&c->watched[c->by_net[lo]].net, net) == 0;
	return lo;
}

int walk_watched_nets(struct walk *w, struct config *c, const char *path)
{
	int r = report_watched_overlaps(w, c, path);

	return r < 0 ? r : index_watched(c);
}

int walk_trusted(struct walk *w, struct config *c, const json_t *o,
		 const char *p)
{
	char path[DIAG_PATH_MAX], cpath[DIAG_PATH_MAX];
	char vbuf[DIAG_VALUE_MAX + 8];
	const struct config_net **nets;
	json_t *v = json_object_get(o, "trusted_addresses"), *e;
	size_t i;
	int r = 0;

	if (v == NULL)
		return 0;
	diag_path_key(path, sizeof(path), p, "trusted_addresses");
	if (c->mode != CONFIG_MODE_NATIVE) {
		diag_error(w->d, "%s: %s: needs native mode (no "
			   "nft_address_rules_path)", w->file, path);
		return -1;
	}
	if (!json_is_array(v) || json_array_size(v) > CONFIG_MAX_WATCHED) {
		diag_error(w->d, "%s: %s: %s is %s; expected an array of "
			   "addresses or prefixes", w->file, path,
			   diag_value(vbuf, sizeof(vbuf), v), diag_type_name(v));
		return -1;
	}
	c->trusted = calloc(json_array_size(v) + 1, sizeof(*c->trusted));
	if (c->trusted == NULL)
		return -1;
	json_array_foreach(v, i, e) {
		diag_path_index(cpath, sizeof(cpath), path, i);
		if (walk_net(w, e, cpath, true, &c->trusted[c->ntrusted]) < 0) {
			r = -1;
			continue;
		}
		c->ntrusted++;
	}
	if (r < 0 || c->ntrusted < 2)
		return r;
	nets = malloc(c->ntrusted * sizeof(*nets));
	if (nets == NULL)
		return -1;
	for (i = 0; i < c->ntrusted; i++)
		nets[i] = &c->trusted[i];
	r = report_overlaps(w, nets, c->ntrusted, path, "", true);
	free(nets);
	return r;
}

/* A trusted entry as a range of addresses, for coverage lookups. */
struct trusted_range {
	int family;
	unsigned __int128 first, last;
	size_t index;
};

static int cmp_trusted_range(const void *a, const void *b)
{
	const struct trusted_range *x = a, *y = b;

	if (x->family != y->family)
		return x->family - y->family;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* The entry of r[0..n) (sorted) with the greatest first address at or
 * below first, in family f; NULL if none. */
static const struct trusted_range *range_below(const struct trusted_range *r,
					       size_t n, int f,
					       unsigned __int128 first)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r[mid].family < f ||
		    (r[mid].family == f && r[mid].first <= first))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && r[lo - 1].family == f ? &r[lo - 1] : NULL;
}

/* Trusted prefixes do not overlap one another (refused before), so a
 * watched entry can only lie inside the trusted prefix that starts last at
 * or below it, or be a trusted address: two binary searches each, n log n
 * in all. */
#define COVER_WARNINGS_MAX 10
int walk_trusted_covers(struct walk *w, const struct config *c,
			const char *p)
{
	char nbuf[DIAG_VALUE_MAX + 8], tbuf[DIAG_VALUE_MAX + 8];
	struct trusted_range *pre = NULL, *addr = NULL;
	size_t npre = 0, naddr = 0, warned = 0, more = 0;
	size_t nfam[2] = { 0, 0 }, all[2] = { SIZE_MAX, SIZE_MAX };

	if (c->ntrusted == 0 || c->nwatched == 0)
		return 0;
	pre = calloc(c->ntrusted, sizeof(*pre));
	addr = calloc(c->ntrusted, sizeof(*addr));
	if (pre == NULL || addr == NULL) {
		free(pre);
		free(addr);
		return -1;
	}
	for (size_t j = 0; j < c->ntrusted; j++) {
		const struct config_net *t = &c->trusted[j];
		struct trusted_range tr = {
			t->family, config_net_value(t, false),
			config_net_value(t, true), j
		};

		if (t->prefix_len == 0)
			all[t->family == AF_INET6] = j;
		if (t->is_prefix)
			pre[npre++] = tr;
		else
			addr[naddr++] = tr;
	}
	qsort(pre, npre, sizeof(*pre), cmp_trusted_range);
	qsort(addr, naddr, sizeof(*addr), cmp_trusted_range);
	for (size_t i = 0; i < c->nwatched; i++)
		nfam[c->watched[i].family == AF_INET6]++;
	for (int f = 0; f < 2; f++)
		if (all[f] != SIZE_MAX && nfam[f] > 0)
			diag_warning(w->d, "%s: %s.trusted_addresses[%zu]: %s "
				     "trusts every %s address: none of the %zu "
				     "watched %s entries is ever watched; expected "
				     "the networks to exempt from watching", w->file,
				     p, all[f], diag_string(tbuf, sizeof(tbuf),
							    c->trusted[all[f]].text),
				     f ? "IPv6" : "IPv4", nfam[f],
				     f ? "IPv6" : "IPv4");
	for (size_t i = 0; i < c->nwatched; i++) {
		const struct config_net *n = &c->watched[i].net;
		unsigned __int128 first = config_net_value(n, false);
		unsigned __int128 last = config_net_value(n, true);
		const struct trusted_range *t;

		if (all[n->family == AF_INET6] != SIZE_MAX)
			continue;
		/* The same address trusted first, then a prefix around it. */
		t = range_below(addr, naddr, n->family, first);
		if (t == NULL || t->first != first || t->last != last) {
			t = range_below(pre, npre, n->family, first);
			if (t && t->last < last)
				t = NULL;
		}
		if (t == NULL)
			continue;
		if (warned++ >= COVER_WARNINGS_MAX) {
			more++;
			continue;
		}
		diag_warning(w->d, "%s: %s.watched_addresses[%zu].ip: %s is "
			     "never watched: %s.trusted_addresses[%zu] (%s) "
			     "covers it; expected watched entries outside the "
			     "trusted networks", w->file, p, i,
			     diag_string(nbuf, sizeof(nbuf), n->text), p,
			     t->index, diag_string(tbuf, sizeof(tbuf),
						   c->trusted[t->index].text));
	}
	if (more)
		diag_warning(w->d, "%s: %s.watched_addresses: %zu more entries "
			     "are never watched: trusted networks cover them",
			     w->file, p, more);
	free(pre);
	free(addr);
	return 0;
}

long config_watched_find(const struct config *c, const char *ip)
{
	struct config_net k;
	size_t pos;
	bool found;

	if (config_parse_net(ip, true, &k) < 0)
		return -1;
	pos = config_by_net_lower(c, &k, &found);
	return found ? (long)c->by_net[pos] : -1;
}

/* The entry of k or, from k's length down to min_len, of a prefix that
 * covers it. */
static long lookup_from(const struct config *c, struct config_net k,
			unsigned top, unsigned min_len)
{
	unsigned bits = k.prefix_len;

	/* Watched prefixes never overlap one another (config_load and
	 * config_watched_add refuse it), but an address may have an entry
	 * of its own inside one: the narrowest entry wins, as in the kernel
	 * (exact maps before interval maps), so the lengths go from the
	 * address's own down. */
	for (unsigned len = top + 1; len-- > min_len;) {
		size_t pos;
		bool found;

		if (len < bits) {
			unsigned byte = len / 8;

			k.addr[byte] &= (unsigned char)(0xff00u >> (len % 8));
			memset(k.addr + byte + 1, 0, 15 - byte);
		}
		k.prefix_len = len;
		pos = config_by_net_lower(c, &k, &found);
		if (found)
			return (long)c->by_net[pos];
	}
	return -1;
}

long config_watched_lookup(const struct config *c, const char *ip)
{
	struct config_net k;

	if (config_parse_net(ip, true, &k) < 0)
		return -1;
	return lookup_from(c, k, k.prefix_len, 0);
}

long config_watched_cover(const struct config *c, const struct config_net *net)
{
	if (net->prefix_len == 0)
		return -1;
	return lookup_from(c, *net, net->prefix_len - 1, 0);
}
