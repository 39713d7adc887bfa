/*
 * config_runtime: watched entries added and removed while porthopd runs
 * (native mode), after the configuration's own.  They obey the rules the
 * file's entries do (no repeats, no overlapping prefixes, trusted wins),
 * checked one entry at a time against what is watched now.
 */
#include "config_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

/* Whether a trusted network covers net whole. */
static const struct config_net *trusted_cover(const struct config *c,
					      const struct config_net *net)
{
	unsigned __int128 lo = config_net_value(net, false);
	unsigned __int128 hi = config_net_value(net, true);

	for (size_t i = 0; i < c->ntrusted; i++) {
		const struct config_net *t = &c->trusted[i];

		if (t->family == net->family &&
		    config_net_value(t, false) <= lo &&
		    config_net_value(t, true) >= hi)
			return t;
	}
	return NULL;
}

int config_watched_inside(const struct config *c, const struct config_net *net,
			  int (*fn)(void *arg, size_t idx), void *arg)
{
	unsigned __int128 hi = config_net_value(net, true);
	struct config_net lo = *net;
	size_t pos;
	bool found;
	int r = 0;

	lo.prefix_len = 0;
	for (pos = config_by_net_lower(c, &lo, &found);
	     r == 0 && pos < c->nwatched; pos++) {
		const struct config_watched *w = &c->watched[c->by_net[pos]];

		if (w->family != net->family ||
		    config_net_value(&w->net, false) > hi)
			break;
		/* From net's first address on, a prefix as long as net's or
		 * shorter starts where net does: net's own, or one around
		 * it (a canonical prefix cannot start inside net and end
		 * past it). */
		if (w->net.prefix_len > net->prefix_len)
			r = fn(arg, c->by_net[pos]);
	}
	return r;
}

/* A watched prefix that overlaps the prefix net (one around it, or one
 * inside it), or NULL.  Addresses inside a prefix are no overlap: the
 * narrowest entry wins. */
struct find_prefix {
	const struct config *c;
	long hit;
};

static int is_prefix_entry(void *arg, size_t idx)
{
	struct find_prefix *f = arg;

	if (!f->c->watched[idx].net.is_prefix)
		return 0;
	f->hit = (long)idx;
	return 1;
}

static const struct config_watched *prefix_overlap(const struct config *c,
						   const struct config_net *net)
{
	struct find_prefix f = { c, config_watched_cover(c, net) };

	if (f.hit < 0)
		config_watched_inside(c, net, is_prefix_entry, &f);
	return f.hit >= 0 ? &c->watched[f.hit] : NULL;
}

/* How many ports of protocol p lie in 1..max_port and are free to draw. */
static size_t free_ports(const struct config *c, int p)
{
	size_t used = 0;

	for (size_t i = 0; i < c->nproto[p]; i++)
		used += c->proto_ports[p][i] <= c->max_port;
	return c->max_port - used;
}

static int grow(struct config *c)
{
	size_t cap = c->cap_watched ? c->cap_watched * 2 : 16;
	struct config_watched *w;
	size_t *idx;

	if (c->nwatched + 1 < c->cap_watched)
		return 0;
	w = realloc(c->watched, cap * sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	c->watched = w;
	idx = realloc(c->by_net, cap * sizeof(*idx));
	if (idx == NULL)
		return -ENOMEM;
	c->by_net = idx;
	c->cap_watched = cap;
	return 0;
}

/* The ports entry w shuffles of protocol p: the protocol's ports minus
 * ignore (sorted). */
static int entry_ports(const struct config *c, int p, const uint16_t *ignore,
		       size_t nignore, struct config_watched *w)
{
	uint16_t *ports = malloc((c->nproto[p] + 1) * sizeof(*ports));
	uint16_t *ign = malloc((nignore + 1) * sizeof(*ign));
	size_t n = 0, j = 0;

	if (ports == NULL || ign == NULL) {
		free(ports);
		free(ign);
		return -ENOMEM;
	}
	if (nignore)
		memcpy(ign, ignore, nignore * sizeof(*ign));
	/* Both lists sorted: one pass. */
	for (size_t i = 0; i < c->nproto[p]; i++) {
		uint16_t port = c->proto_ports[p][i];

		while (j < nignore && ignore[j] < port)
			j++;
		if (j < nignore && ignore[j] == port)
			continue;
		ports[n++] = port;
	}
	w->ports[p] = ports;
	w->nports[p] = n;
	w->ignore[p] = ign;
	w->nignore[p] = nignore;
	return 0;
}

static void entry_free(struct config_watched *w)
{
	for (int p = 0; p < CONFIG_NPROTO; p++) {
		free((void *)w->ports[p]);
		free((void *)w->ignore[p]);
	}
}

/* The swap maps' pairs (map_capacity): w's counted in or out. */
static void swap_count(struct config *c, const struct config_watched *w,
		       bool in)
{
	size_t n = w->nports[CONFIG_TCP] + w->nports[CONFIG_UDP];

	if (w->net.is_prefix)
		return;
	if (in)
		c->swap_pairs[w->family == AF_INET6] += n;
	else
		c->swap_pairs[w->family == AF_INET6] -= n;
}

int config_watched_add(struct config *c, const struct config_net *net,
		       const uint16_t *const ignore[CONFIG_NPROTO],
		       const size_t nignore[CONFIG_NPROTO], char *why,
		       size_t why_len, size_t *ret_idx)
{
	char a[DIAG_VALUE_MAX + 8], b[DIAG_VALUE_MAX + 8];
	const struct config_watched *other;
	const struct config_net *t;
	struct config_watched w = { .net = *net, .family = net->family,
				    .runtime = true };
	size_t pos, npairs = 0;
	bool found;
	int r;

	if (c->mode != CONFIG_MODE_NATIVE) {
		snprintf(why, why_len, "runtime entries need native mode; %s "
			 "names nft_address_rules_path (template mode)", c->file);
		return -EOPNOTSUPP;
	}
	pos = config_by_net_lower(c, net, &found);
	if (found) {
		*ret_idx = c->by_net[pos];
		return -EEXIST;
	}
	t = trusted_cover(c, net);
	if (t) {
		snprintf(why, why_len, "%s is trusted (trusted_addresses has "
			 "%s); trusted addresses are never watched",
			 diag_string(a, sizeof(a), net->text),
			 diag_string(b, sizeof(b), t->text));
		return -EPERM;
	}
	other = net->is_prefix ? prefix_overlap(c, net) : NULL;
	if (other) {
		snprintf(why, why_len, "prefix %s overlaps the watched prefix "
			 "%s; expected prefixes that do not overlap",
			 diag_string(a, sizeof(a), net->text),
			 diag_string(b, sizeof(b), other->net.text));
		return -EINVAL;
	}
	memcpy(w.ip, net->text, sizeof(w.ip));
	for (int p = 0; p < CONFIG_NPROTO; p++) {
		r = entry_ports(c, p, ignore ? ignore[p] : NULL,
				nignore ? nignore[p] : 0, &w);
		if (r < 0)
			goto fail;
		npairs += w.nports[p];
		if (w.nports[p] > free_ports(c, p)) {
			snprintf(why, why_len, "%s needs %zu free %s redirect "
				 "ports and max_port_number leaves %zu",
				 diag_string(a, sizeof(a), net->text),
				 w.nports[p], p ? "UDP" : "TCP",
				 free_ports(c, p));
			r = -ENOSPC;
			goto fail;
		}
	}
	if (!net->is_prefix && c->map_capacity &&
	    c->swap_pairs[net->family == AF_INET6] + npairs >
	    config_map_pairs(c)) {
		snprintf(why, why_len, "%s needs %zu pairs and the IPv%d maps "
			 "have room for %llu more (%zu of %llu pairs: "
			 "map_capacity %u); expected fewer watched addresses, "
			 "or a larger map_capacity",
			 diag_string(a, sizeof(a), net->text), npairs,
			 net->family == AF_INET6 ? 6 : 4,
			 (unsigned long long)(config_map_pairs(c) -
				c->swap_pairs[net->family == AF_INET6]),
			 c->swap_pairs[net->family == AF_INET6],
			 (unsigned long long)config_map_pairs(c),
			 c->map_capacity);
		r = -ENOSPC;
		goto fail;
	}
	r = grow(c);
	if (r < 0)
		goto fail;
	c->watched[c->nwatched] = w;
	memmove(c->by_net + pos + 1, c->by_net + pos,
		(c->nwatched - pos) * sizeof(*c->by_net));
	c->by_net[pos] = c->nwatched;
	*ret_idx = c->nwatched++;
	c->npairs += npairs;
	swap_count(c, &w, true);
	return 0;
fail:
	entry_free(&w);
	return r;
}

int config_watched_take(struct config *c, size_t idx,
			struct config_watched *ret, size_t *ret_moved)
{
	size_t last = c->nwatched - 1, pos;
	bool found;

	if (idx >= c->nwatched || !c->watched[idx].runtime)
		return -EPERM;
	pos = config_by_net_lower(c, &c->watched[idx].net, &found);
	memmove(c->by_net + pos, c->by_net + pos + 1,
		(c->nwatched - pos - 1) * sizeof(*c->by_net));
	c->npairs -= c->watched[idx].nports[CONFIG_TCP] +
		     c->watched[idx].nports[CONFIG_UDP];
	swap_count(c, &c->watched[idx], false);
	*ret = c->watched[idx];
	c->nwatched--;
	/* The last entry takes the free place: one index changes.  Its
	 * old slot still holds it while by_net is searched. */
	if (idx != last) {
		c->watched[idx] = c->watched[last];
		pos = config_by_net_lower(c, &c->watched[idx].net, &found);
		c->by_net[pos] = idx;
	}
	*ret_moved = last;
	return 0;
}

void config_watched_put_back(struct config *c, size_t idx,
			     const struct config_watched *w)
{
	size_t pos;
	bool found;

	/* The reverse of config_watched_take: the entry now at idx goes
	 * back to the end (the room is still there), w back to idx. */
	if (idx != c->nwatched) {
		pos = config_by_net_lower(c, &c->watched[idx].net, &found);
		c->by_net[pos] = c->nwatched;
		c->watched[c->nwatched] = c->watched[idx];
	}
	c->watched[idx] = *w;
	pos = config_by_net_lower(c, &w->net, &found);
	memmove(c->by_net + pos + 1, c->by_net + pos,
		(c->nwatched - pos) * sizeof(*c->by_net));
	c->by_net[pos] = idx;
	c->nwatched++;
	c->npairs += w->nports[CONFIG_TCP] + w->nports[CONFIG_UDP];
	swap_count(c, w, true);
}

void config_watched_release(struct config_watched *w)
{
	entry_free(w);
}

int config_watched_remove(struct config *c, size_t idx, size_t *ret_moved)
{
	struct config_watched w;
	int r = config_watched_take(c, idx, &w, ret_moved);

	if (r == 0)
		entry_free(&w);
	return r;
}

size_t config_configured_count(const struct config *c)
{
	return c->nconfigured;
}
