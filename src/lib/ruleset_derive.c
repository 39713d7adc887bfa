/*
 * ruleset_derive: the maps, chains and elements of keyed watched entries
 * (derived ports; see ruleset.h and docs/follow.md).  Pure, as the rest
 * of ruleset: a configuration and a time in, JSON or queued element
 * operations out.
 *
 * A source is sent to its keyed entry's chains by a verdict map on its
 * address (interval: prefixes), written with the definition; each keyed
 * entry's ports are in hash maps of their own keyed by protocol . port,
 * so that a slot change adds and deletes elements at hash cost.  (One
 * interval map keyed by source . protocol . port, as the shuffle's
 * net4/6, costs the kernel about half a millisecond per element changed:
 * seconds per boundary at a thousand services.)  Keyed entries are the
 * file's (runtime entries never have a key): the loops stop at
 * config_configured_count, however long the runtime watch list.
 */
#include "ruleset.h"
#include "ruleset_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "derive.h"

/* The three verdict maps of each family, by purpose: nat (tracked
 * traffic), pre and out (the stateless swaps of what conntrack calls
 * invalid). */
enum { PURPOSE_NAT, PURPOSE_PRE, PURPOSE_OUT, PURPOSES };
static const char *const purpose_name[PURPOSES] = { "nat", "pre", "out" };
static const char *const vmap_name[PURPOSES][2] = {
	{ "dnat4", "dnat6" }, { "dpre4", "dpre6" }, { "dout4", "dout6" },
};
static const char *const base_chain[PURPOSES] = {
	"derive_nat", "derive_pre", "derive_out",
};
/* Each keyed entry's maps: dp (derived and real ports -> real and closed
 * ports), dh (closed and real ports -> real and current derived ports,
 * for the replies to stateless probes). */
static const char *const dp_name[CONFIG_DERIVE_MAX] = {
	"dp0", "dp1", "dp2", "dp3", "dp4", "dp5", "dp6", "dp7",
};
static const char *const dh_name[CONFIG_DERIVE_MAX] = {
	"dh0", "dh1", "dh2", "dh3", "dh4", "dh5", "dh6", "dh7",
};

bool ruleset_derive_on(const struct config *c)
{
	for (size_t i = 0; i < config_configured_count(c); i++)
		if (config_watched(c, i)->derive != NULL)
			return true;
	return false;
}

/* How many keyed entries c has (their ids are 0..n-1). */
static unsigned keyed_count(const struct config *c)
{
	unsigned n = 0;

	for (size_t i = 0; i < config_configured_count(c); i++)
		n += config_watched(c, i)->derive != NULL;
	return n;
}

size_t ruleset_derive_count(const struct config *c)
{
	size_t n = 0;

	/* Three slots and the real port in dp, two in dh. */
	for (size_t i = 0; i < config_configured_count(c); i++)
		if (config_watched(c, i)->derive != NULL)
			n += 6 * derive_count(config_watched(c, i)->derive);
	return n;
}

size_t ruleset_derive_map_names(const struct config *c, const char **names,
				size_t max)
{
	size_t n = 0;
	unsigned k = keyed_count(c);

	for (unsigned id = 0; id < k && n + 2 <= max; id++) {
		names[n++] = dp_name[id];
		names[n++] = dh_name[id];
	}
	return n;
}

/* An entry chain's name: dk<id>_<purpose>. */
static const char *entry_chain(char *buf, size_t len, unsigned id, int p)
{
	snprintf(buf, len, "dk%u_%s", id, purpose_name[p]);
	return buf;
}

/* {"map": {"key": meta l4proto . <proto> <field>, "data": "@map"}} */
static json_t *port_lookup(const char *map, const char *proto,
			   const char *field)
{
	char ref[16];

	snprintf(ref, sizeof(ref), "@%s", map);
	return json_pack("{s:{s:{s:[{s:{s:s}},o]},s:s}}", "map", "key",
			 "concat", "meta", "key", "l4proto",
			 ruleset_payload(proto, field), "data", ref);
}

/* A keyed entry's maps and chains. */
static void entry_objects(const struct config *c, unsigned id, json_t *cmds,
			  int *err)
{
	const char *t = config_table_name(c);
	char name[16];

	for (int h = 0; h < 2; h++)
		ruleset_push(cmds, json_pack(
			"{s:{s:{s:s,s:s,s:s,s:[s,s],s:s}}}", "add", "map",
			"family", "inet", "table", t, "name",
			h ? dh_name[id] : dp_name[id], "type", "inet_proto",
			"inet_service", "map", "inet_service"), err);
	for (int p = 0; p < PURPOSES; p++)
		ruleset_push(cmds, json_pack("{s:{s:{s:s,s:s,s:s}}}", "add",
			"chain", "family", "inet", "table", t, "name",
			entry_chain(name, sizeof(name), id, p)), err);
}

/* Flushes a keyed entry's chains, and deletes them and its maps. */
static void entry_flush(const struct config *c, unsigned id, bool del,
			json_t *cmds, int *err)
{
	const char *t = config_table_name(c);
	char name[16];

	for (int p = 0; p < PURPOSES; p++)
		ruleset_push(cmds, ruleset_object_cmd("flush", "chain", t,
			entry_chain(name, sizeof(name), id, p)), err);
	for (int p = 0; del && p < PURPOSES; p++)
		ruleset_push(cmds, ruleset_object_cmd("delete", "chain", t,
			entry_chain(name, sizeof(name), id, p)), err);
	for (int h = 0; del && h < 2; h++)
		ruleset_push(cmds, ruleset_object_cmd("delete", "map", t,
			h ? dh_name[id] : dp_name[id]), err);
}

/* A keyed entry's rules: its ports looked up by protocol . port. */
static void entry_rules(const struct config *c, unsigned id, json_t *cmds,
			int *err)
{
	char name[16];

	ruleset_push(cmds, ruleset_rule(c, entry_chain(name, sizeof(name), id,
						       PURPOSE_NAT),
		json_pack("[{s:{s:s,s:{s:{s:s}},s:{s:[s,s]}}},{s:{s:o}}]",
			  "match", "op", "==", "left", "meta", "key",
			  "l4proto", "right", "set", "tcp", "udp", "redirect",
			  "port", port_lookup(dp_name[id], "th", "dport"))),
		err);
	/* What conntrack refuses to track, swapped statelessly, and the
	 * replies back, through one map that is its own inverse (slot t's
	 * port <-> the real port): a reply comes from the port the probe
	 * went to.  (Slots t-1 and t+1 sent to the real port would answer
	 * from slot t's port, and a closed port from the real one.) */
	for (int p = PURPOSE_PRE; p <= PURPOSE_OUT; p++) {
		const char *field = p == PURPOSE_PRE ? "dport" : "sport";

		ruleset_push(cmds, ruleset_rule(c, entry_chain(name,
			sizeof(name), id, p), json_pack(
			"[{s:{s:o,s:o}},{s:n}]", "mangle", "key",
			ruleset_payload("tcp", field), "value",
			port_lookup(dh_name[id], "tcp", field), "accept")), err);
	}
}

/* The base chains' rules: trusted sources go, keyed ones jump to their
 * entry's chain. */
static void base_rules(const struct config *c, json_t *cmds, int *err)
{
	for (int p = 0; p < PURPOSES; p++) {
		const char *field = p == PURPOSE_OUT ? "daddr" : "saddr";

		if (p != PURPOSE_NAT)
			ruleset_push(cmds, ruleset_rule(c, base_chain[p],
				ruleset_not_invalid_return()), err);
		ruleset_trusted_returns(c, base_chain[p], field, cmds, err);
		for (int f = 0; f < 2; f++) {
			char ref[16];

			snprintf(ref, sizeof(ref), "@%s", vmap_name[p][f]);
			ruleset_push(cmds, ruleset_rule(c, base_chain[p],
				json_pack("[{s:{s:o,s:s}}]", "vmap", "key",
					  ruleset_payload(f ? "ip6" : "ip",
							  field),
					  "data", ref)), err);
		}
	}
}

/* The verdict maps' elements: each keyed network -> its chains. */
static void vmap_elements(const struct config *c, json_t *cmds, int *err)
{
	for (int p = 0; p < PURPOSES; p++)
		for (int f = 0; f < 2; f++) {
			json_t *elems = json_array();

			for (size_t i = 0; elems && i < config_configured_count(c);
			     i++) {
				const struct config_watched *w =
					config_watched(c, i);
				char name[16];
				json_t *key;

				if (w->derive == NULL ||
				    (w->family == AF_INET6) != f)
					continue;
				key = w->net.is_prefix ?
					json_pack("{s:{s:s,s:i}}", "prefix",
						  "addr", w->net.addr_text,
						  "len", (int)w->net.prefix_len) :
					json_string(w->net.addr_text);
				json_array_append_new(elems, json_pack(
					"[o,{s:{s:s}}]", key, "jump", "target",
					entry_chain(name, sizeof(name),
						    w->derive_id, p)));
			}
			if (elems && json_array_size(elems) == 0) {
				json_decref(elems);
				continue;
			}
			ruleset_push(cmds, json_pack(
				"{s:{s:{s:s,s:s,s:s,s:o}}}", "add", "element",
				"family", "inet", "table",
				config_table_name(c), "name", vmap_name[p][f],
				"elem", elems), err);
		}
}

int ruleset_derive_setup(const struct config *c, const struct config *prev,
			 json_t *cmds, bool in_place)
{
	const char *t = config_table_name(c);
	unsigned k = keyed_count(c);
	/* What an earlier definition may have had: prev's, or (not known)
	 * as many as there can be. */
	unsigned had = prev ? keyed_count(prev) : CONFIG_DERIVE_MAX;
	int err = 0;

	/* Off, and off before too (or a table defined anew): nothing. */
	if (k == 0 && (!in_place || had == 0))
		return 0;
	if (!in_place)
		had = 0;
	/* The chains a verdict map jumps to before the map: libnftables
	 * 1.0.6 refuses (ENOENT) an element of a map added earlier in the
	 * batch than the chain it names. */
	for (unsigned id = 0; id < (k > had ? k : had); id++)
		entry_objects(c, id, cmds, &err);
	for (int p = 0; p < PURPOSES; p++)
		for (int f = 0; f < 2; f++)
			ruleset_push(cmds, json_pack(
				"{s:{s:{s:s,s:s,s:s,s:s,s:s,s:[s]}}}", "add",
				"map", "family", "inet", "table", t, "name",
				vmap_name[p][f], "type",
				f ? "ipv6_addr" : "ipv4_addr", "map", "verdict",
				"flags", "interval"), &err);
	/* dstnat - 10: before pre_nat, whose lookup a binding made here
	 * skips; after conntrack and before pre_stateless; before
	 * out_stateless. */
	ruleset_push(cmds, ruleset_chain(c, base_chain[PURPOSE_NAT], "nat",
					 "prerouting", -110), &err);
	ruleset_push(cmds, ruleset_chain(c, base_chain[PURPOSE_PRE], "filter",
					 "prerouting", -155), &err);
	ruleset_push(cmds, ruleset_chain(c, base_chain[PURPOSE_OUT], "filter",
					 "output", -105), &err);
	/* In place: the rules go first (they refer to the verdict maps),
	 * then the verdict maps' elements (they refer to the entries'
	 * chains), then what is left of entries no longer keyed. */
	for (int p = 0; in_place && p < PURPOSES; p++)
		ruleset_push(cmds, ruleset_object_cmd("flush", "chain", t,
						      base_chain[p]), &err);
	for (int p = 0; in_place && p < PURPOSES; p++)
		for (int f = 0; f < 2; f++)
			ruleset_push(cmds, ruleset_object_cmd("flush", "map", t,
				vmap_name[p][f]), &err);
	for (unsigned id = 0; id < had; id++)
		entry_flush(c, id, id >= k, cmds, &err);
	if (k > 0) {
		base_rules(c, cmds, &err);
		for (unsigned id = 0; id < k; id++)
			entry_rules(c, id, cmds, &err);
		vmap_elements(c, cmds, &err);
		return err;
	}
	for (int p = 0; p < PURPOSES; p++)
		ruleset_push(cmds, ruleset_object_cmd("delete", "chain", t,
						      base_chain[p]), &err);
	for (int p = 0; p < PURPOSES; p++)
		for (int f = 0; f < 2; f++)
			ruleset_push(cmds, ruleset_object_cmd("delete", "map", t,
				vmap_name[p][f]), &err);
	return err;
}

static void port_key(uint8_t proto, uint16_t port, struct nftio_key *k)
{
	memset(k, 0, sizeof(*k));
	k->family = AF_UNSPEC;
	k->l4proto = proto == DERIVE_PROTO_UDP ? IPPROTO_UDP : IPPROTO_TCP;
	k->port = port;
}

/* Queues slot t's derived ports of w -> the real ports, added or
 * deleted; ports: scratch of derive_count entries, left holding slot t's
 * ports.  Slots before 0 (a clock at 1970) have none. */
static int slot_elems(const struct config_watched *w, int64_t t, bool add,
		      uint16_t *ports, struct nftio_elems *b)
{
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
		port_key(proto, ports[i], &k);
		r = add ? nftio_elems_add(b, dp_name[w->derive_id], &k, real) :
			  nftio_elems_delete(b, dp_name[w->derive_id], &k);
	}
	return r;
}

/* Queues the real ports' elements of w: with fixed, real -> closed in
 * dp; with current (a slot's ports), real <-> current in dh (both ways:
 * the stateless swaps' map is its own inverse), added or deleted. */
static int real_elems(const struct config_watched *w, bool fixed, bool add,
		      const uint16_t *current, struct nftio_elems *b)
{
	const char *dp = dp_name[w->derive_id], *dh = dh_name[w->derive_id];
	size_t n = derive_count(w->derive);
	struct nftio_key k;
	int r = 0;

	for (size_t i = 0; r == 0 && i < n; i++) {
		uint16_t closed = derive_closed_port(w->derive, i), real;
		uint8_t proto;

		derive_service(w->derive, i, &proto, &real);
		if (fixed) {
			port_key(proto, real, &k);
			r = nftio_elems_add(b, dp, &k, closed);
		}
		if (r == 0 && current != NULL) {
			port_key(proto, real, &k);
			r = add ? nftio_elems_add(b, dh, &k, current[i]) :
				  nftio_elems_delete(b, dh, &k);
			port_key(proto, current[i], &k);
			if (r == 0)
				r = add ? nftio_elems_add(b, dh, &k, real) :
					  nftio_elems_delete(b, dh, &k);
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

	for (size_t i = 0; r == 0 && i < config_configured_count(c); i++) {
		const struct config_watched *w = config_watched(c, i);
		int64_t t;

		if (w->derive == NULL)
			continue;
		free(ports);
		ports = malloc(derive_count(w->derive) * sizeof(*ports));
		if (ports == NULL)
			return -ENOMEM;
		t = slot_of(w, now);
		r = nftio_elems_flush(b, dp_name[w->derive_id]);
		r = r ? r : nftio_elems_flush(b, dh_name[w->derive_id]);
		r = r ? r : slot_elems(w, t - 1, true, ports, b);
		r = r ? r : slot_elems(w, t + 1, true, ports, b);
		/* t last: ports holds its ports for dh. */
		r = r ? r : slot_elems(w, t, true, ports, b);
		r = r ? r : real_elems(w, true, true, t >= 0 ? ports : NULL, b);
	}
	free(ports);
	return r;
}

/* Whether slot s is one of a-1, a, a+1. */
static bool near(int64_t s, int64_t a)
{
	return s >= a - 1 && s <= a + 1;
}

/* One entry's change from slot a to slot bs. */
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
	/* dh's pairs of slot a out (keyed by a's ports too), bs's in. */
	if (r == 0 && a >= 0)
		r = derive_slot(w->derive, (uint64_t)a, ports);
	if (r == 0 && a >= 0)
		r = real_elems(w, false, false, ports, b);
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

	for (size_t i = 0; r == 0 && i < config_configured_count(c); i++) {
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

	for (size_t i = 0; i < config_configured_count(c); i++) {
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

bool ruleset_derive_moved(const struct config *c, int64_t from, int64_t to)
{
	for (size_t i = 0; i < config_configured_count(c); i++) {
		const struct config_watched *w = config_watched(c, i);

		if (w->derive != NULL && slot_of(w, from) != slot_of(w, to))
			return true;
	}
	return false;
}
