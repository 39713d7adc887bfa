/*
 * ruleset_derive: the maps, chains and elements of keyed watched entries
 * (derived ports; see ruleset.h and docs/follow.md).  Pure, as the rest
 * of ruleset: a configuration and a time in, JSON or queued element
 * operations out.
 */
#include "ruleset.h"
#include "ruleset_private.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "derive.h"

/* dmap4, dmap6: derived and real ports -> real and closed ports;
 * dhide4, dhide6: closed and real ports -> real and current derived
 * ports, for the replies to stateless probes. */
const char *const ruleset_derive_maps[RULESET_DERIVE_MAPS] = {
	"dmap4", "dmap6", "dhide4", "dhide6",
};
static const char *const derive_chains[] = {
	"derive_nat", "derive_pre", "derive_out",
};

bool ruleset_derive_on(const struct config *c)
{
	for (size_t i = 0; i < config_watched_count(c); i++)
		if (config_watched(c, i)->derive != NULL)
			return true;
	return false;
}

size_t ruleset_derive_count(const struct config *c)
{
	size_t n = 0;

	/* Three slots and the real port in dmap, two in dhide. */
	for (size_t i = 0; i < config_watched_count(c); i++)
		if (config_watched(c, i)->derive != NULL)
			n += 6 * derive_count(config_watched(c, i)->derive);
	return n;
}

/* The lookup (l3 addr_field . l4proto . port_proto port_field) in map. */
static json_t *dlookup(const char *map, bool v6, const char *addr_field,
		       const char *port_proto, const char *port_field)
{
	char ref[16];

	snprintf(ref, sizeof(ref), "@%s", map);
	return json_pack("{s:{s:{s:[o,{s:{s:s}},o]},s:s}}", "map", "key",
			 "concat", ruleset_payload(v6 ? "ip6" : "ip",
						   addr_field),
			 "meta", "key", "l4proto",
			 ruleset_payload(port_proto, port_field), "data", ref);
}

static void derive_rules(const struct config *c, json_t *cmds, int *err)
{
	ruleset_trusted_returns(c, "derive_nat", "saddr", cmds, err);
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, ruleset_rule(c, "derive_nat", json_pack(
			"[{s:{s:s,s:{s:{s:s}},s:{s:[s,s]}}},{s:{s:o}}]",
			"match", "op", "==", "left", "meta", "key", "l4proto",
			"right", "set", "tcp", "udp", "redirect", "port",
			dlookup(ruleset_derive_maps[f], f, "saddr", "th",
				"dport"))), err);
	/* What conntrack refuses to track, swapped statelessly (the
	 * replies from a closed port's RST back to the real port). */
	ruleset_push(cmds, ruleset_rule(c, "derive_pre",
					ruleset_not_invalid_return()), err);
	ruleset_trusted_returns(c, "derive_pre", "saddr", cmds, err);
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, ruleset_rule(c, "derive_pre", json_pack(
			"[{s:{s:o,s:o}},{s:n}]", "mangle", "key",
			ruleset_payload("tcp", "dport"), "value",
			dlookup(ruleset_derive_maps[f], f, "saddr", "tcp",
				"dport"), "accept")), err);
	ruleset_push(cmds, ruleset_rule(c, "derive_out",
					ruleset_not_invalid_return()), err);
	ruleset_trusted_returns(c, "derive_out", "daddr", cmds, err);
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, ruleset_rule(c, "derive_out", json_pack(
			"[{s:{s:o,s:o}},{s:n}]", "mangle", "key",
			ruleset_payload("tcp", "sport"), "value",
			dlookup(ruleset_derive_maps[2 + f], f, "daddr", "tcp",
				"sport"), "accept")), err);
}

int ruleset_derive_setup(const struct config *c, const struct config *prev,
			 json_t *cmds, bool in_place)
{
	const char *t = config_table_name(c);
	bool on = ruleset_derive_on(c);
	int err = 0;

	/* Off, and off before too (or a table defined anew): nothing. */
	if (!on && (!in_place || (prev && !ruleset_derive_on(prev))))
		return 0;
	for (int m = 0; m < RULESET_DERIVE_MAPS; m++)
		ruleset_push(cmds, json_pack(
			"{s:{s:{s:s,s:s,s:s,s:[s,s,s],s:s,s:[s]}}}", "add",
			"map", "family", "inet", "table", t, "name",
			ruleset_derive_maps[m], "type",
			m % 2 ? "ipv6_addr" : "ipv4_addr", "inet_proto",
			"inet_service", "map", "inet_service", "flags",
			"interval"), &err);
	/* dstnat - 10: before pre_nat, whose lookup a binding made here
	 * skips; after conntrack and before pre_stateless; before
	 * out_stateless. */
	ruleset_push(cmds, ruleset_chain(c, "derive_nat", "nat", "prerouting",
					 -110), &err);
	ruleset_push(cmds, ruleset_chain(c, "derive_pre", "filter",
					 "prerouting", -155), &err);
	ruleset_push(cmds, ruleset_chain(c, "derive_out", "filter", "output",
					 -105), &err);
	for (size_t i = 0; in_place && i < 3; i++)
		ruleset_push(cmds, ruleset_object_cmd("flush", "chain", t,
						      derive_chains[i]), &err);
	if (on) {
		derive_rules(c, cmds, &err);
		return err;
	}
	/* Added above so that the deletes work either way. */
	for (size_t i = 0; i < 3; i++)
		ruleset_push(cmds, ruleset_object_cmd("delete", "chain", t,
						      derive_chains[i]), &err);
	for (int m = 0; m < RULESET_DERIVE_MAPS; m++)
		ruleset_push(cmds, ruleset_object_cmd("delete", "map", t,
						      ruleset_derive_maps[m]),
			     &err);
	return err;
}

static void entry_key(const struct config_watched *w, uint8_t proto,
		      uint16_t port, struct nftio_key *k)
{
	k->family = w->family;
	memcpy(k->addr, w->net.addr, sizeof(k->addr));
	k->prefix_len = w->net.prefix_len;
	k->l4proto = proto == DERIVE_PROTO_UDP ? IPPROTO_UDP : IPPROTO_TCP;
	k->port = port;
}

/* Queues slot t's derived ports of w -> the real ports, added or
 * deleted; ports: scratch of derive_count entries.  Slots before 0 (a
 * clock at 1970) have none. */
static int slot_elems(const struct config_watched *w, int64_t t, bool add,
		      uint16_t *ports, struct nftio_elems *b)
{
	const char *map = ruleset_derive_maps[w->family == AF_INET6];
	size_t n = derive_count(w->derive);
	struct nftio_key k;
	int r;

	if (t < 0)
		return 0;
	r = derive_slot(w->derive, (uint64_t)t, ports);
	for (size_t i = 0; r == 0 && i < n; i++) {
		uint8_t proto;
		uint16_t real;

		derive_service(w->derive, i, &proto, &real);
		entry_key(w, proto, ports[i], &k);
		r = add ? nftio_elems_add(b, map, &k, real) :
			  nftio_elems_delete(b, map, &k);
	}
	return r;
}

/* Queues the real ports' elements of w: real -> closed in dmap, closed
 * -> real in dhide; with `current` (slot t's ports), real -> current in
 * dhide, added or deleted. */
static int real_elems(const struct config_watched *w, bool fixed, bool add,
		      const uint16_t *current, struct nftio_elems *b)
{
	const char *dmap = ruleset_derive_maps[w->family == AF_INET6];
	const char *dhide = ruleset_derive_maps[2 + (w->family == AF_INET6)];
	size_t n = derive_count(w->derive);
	struct nftio_key k;
	int r = 0;

	for (size_t i = 0; r == 0 && i < n; i++) {
		uint16_t closed = derive_closed_port(w->derive, i), real;
		uint8_t proto;

		derive_service(w->derive, i, &proto, &real);
		if (fixed) {
			entry_key(w, proto, real, &k);
			r = nftio_elems_add(b, dmap, &k, closed);
			entry_key(w, proto, closed, &k);
			r = r ? r : nftio_elems_add(b, dhide, &k, real);
		}
		if (r == 0 && current != NULL) {
			entry_key(w, proto, real, &k);
			r = add ? nftio_elems_add(b, dhide, &k, current[i]) :
				  nftio_elems_delete(b, dhide, &k);
		}
	}
	return r;
}

static int64_t slot_of(const struct config_watched *w, int64_t now)
{
	return (int64_t)derive_slot_at(now, w->slot_seconds);
}

int ruleset_derive_elements(const struct config *c, int64_t now,
			    struct nftio_elems *b)
{
	uint16_t *ports = NULL;
	int r = 0;

	if (!ruleset_derive_on(c))
		return 0;
	for (int m = 0; r == 0 && m < RULESET_DERIVE_MAPS; m++)
		r = nftio_elems_flush(b, ruleset_derive_maps[m]);
	for (size_t i = 0; r == 0 && i < config_watched_count(c); i++) {
		const struct config_watched *w = config_watched(c, i);
		int64_t t;

		if (w->derive == NULL)
			continue;
		free(ports);
		ports = malloc(derive_count(w->derive) * sizeof(*ports));
		if (ports == NULL)
			return -ENOMEM;
		t = slot_of(w, now);
		r = slot_elems(w, t - 1, true, ports, b);
		r = r ? r : slot_elems(w, t + 1, true, ports, b);
		/* t last: ports holds its ports for dhide. */
		r = r ? r : slot_elems(w, t, true, ports, b);
		r = r ? r : real_elems(w, true, true, ports, b);
	}
	free(ports);
	return r;
}

/* Whether slot s is one of a-1, a, a+1. */
static bool near(int64_t s, int64_t a)
{
	return s >= a - 1 && s <= a + 1;
}

/* One entry's change from slot a to slot b. */
static int entry_step(const struct config_watched *w, int64_t a, int64_t bs,
		      uint16_t *ports, struct nftio_elems *b)
{
	int r = 0;

	/* What leaves first: a port that comes may be one that leaves
	 * (slots three apart share their ports' class). */
	for (int64_t s = a - 1; r == 0 && s <= a + 1; s++)
		if (!near(s, bs))
			r = slot_elems(w, s, false, ports, b);
	for (int64_t s = bs - 1; r == 0 && s <= bs + 1; s++)
		if (!near(s, a))
			r = slot_elems(w, s, true, ports, b);
	r = r ? r : real_elems(w, false, false, ports, b);
	if (r < 0 || bs < 0)
		return r;
	r = derive_slot(w->derive, (uint64_t)bs, ports);
	return r ? r : real_elems(w, false, true, ports, b);
}

int ruleset_derive_step(const struct config *c, int64_t from, int64_t to,
			struct nftio_elems *b, size_t *ret_entries)
{
	size_t changed = 0;
	int r = 0;

	for (size_t i = 0; r == 0 && i < config_watched_count(c); i++) {
		const struct config_watched *w = config_watched(c, i);
		uint16_t *ports;

		if (w->derive == NULL || slot_of(w, from) == slot_of(w, to))
			continue;
		ports = malloc(derive_count(w->derive) * sizeof(*ports));
		if (ports == NULL)
			return -ENOMEM;
		r = entry_step(w, slot_of(w, from), slot_of(w, to), ports, b);
		free(ports);
		changed++;
	}
	if (r == 0)
		*ret_entries = changed;
	return r;
}

int64_t ruleset_derive_next(const struct config *c, int64_t now)
{
	int64_t next = -1;

	for (size_t i = 0; i < config_watched_count(c); i++) {
		const struct config_watched *w = config_watched(c, i);
		int64_t at;

		if (w->derive == NULL)
			continue;
		at = (slot_of(w, now) + 1) * (int64_t)w->slot_seconds;
		if (next < 0 || at < next)
			next = at;
	}
	return next;
}
