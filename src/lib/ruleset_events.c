/*
 * ruleset_events: the probe event feed's objects and rules (see
 * docs/events.md, "The kernel side"): the verdict map and the chains that
 * sort a connection attempt by kind, each kind's rate limit and log, the
 * per-source meter; part of the ruleset module (ruleset_private.h).
 */
#include "ruleset.h"
#include "ruleset_private.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

json_t *ruleset_port_key(void)
{
	return json_pack("{s:[{s:{s:s}},o]}", "concat", "meta", "key",
			 "l4proto", ruleset_payload("th", "dport"));
}


/* The regular chains of the feed.  Those that limit and log come first,
 * their kinds in event_kinds. */
static const char *const event_chains[] = {
	"ev_moved", "ev_vacated", "ev_stale", "ev_probe", "ev_probe_hot",
	"ev_new", "ev_untracked", "nat_svc4", "nat_svc6", "nat_vac",
};
#define EVENT_CHAINS (sizeof(event_chains) / sizeof(event_chains[0]))
static const char *const event_kinds[] = {
	"moved", "vacated", "stale", "probe", "probe",
};
#define EVENT_LOG_CHAINS (sizeof(event_kinds) / sizeof(event_kinds[0]))
/* A source sending probes faster than this (its hash bucket's meter,
 * in the dynamic set EVENT_HOT_SET) has a budget of its own
 * (ev_probe_hot), beside the one a flood of other sources shares: a
 * scanner in a random-source flood is not crowded out.  16384 buckets
 * (the set's size, so it never fills; about 2 MB of kernel memory): a
 * random-source flood makes a bucket hot only beyond 16384 x 25 =
 * 409,600 probes a second; an nmap scan goes over within its first
 * 50 probes (docs/events.md). */
#define EVENT_HOT_SET "probe_hot"
#define EVENT_HOT_BUCKETS 16384
#define EVENT_HOT_RATE 25
#define EVENT_HOT_BURST 50
#define EVENT_HOT_TIMEOUT_S 10
const char *const ruleset_stale_sets[2] = { "stale4", "stale6" };
const char *const ruleset_stale_net_sets[2] = { "stalenet4", "stalenet6" };
/* nfproto . l4proto . service port: goto nat_svc4/6 (a verdict map). */
#define EVENT_SERVICE_VMAP "service_ports"

/* With two generations (prestage), every event rule that looks a map up
 * lives in a chain of its generation, and a dispatch chain of one rule
 * (a goto, which binds no map) picks the generation in force: ev_new,
 * nat_svc4, nat_svc6 and nat_new (pre_nat's redirects) are dispatch
 * chains; nat_svc4/6_gN go on to nat_vac_gN (nat_vac stays empty).  A
 * switch rewrites the dispatch rules alone; pre_nat, whose verdict map
 * is a map too, is never rewritten. */
enum { GEN_EV_NEW, GEN_SVC4, GEN_SVC6, GEN_VAC, GEN_EVENT_CHAINS };
static const char *const gen_event_chains[GEN_EVENT_CHAINS][2] = {
	{ "ev_new_g0", "ev_new_g1" }, { "nat_svc4_g0", "nat_svc4_g1" },
	{ "nat_svc6_g0", "nat_svc6_g1" }, { "nat_vac_g0", "nat_vac_g1" },
};
#define EVENT_NAT_DISPATCH "nat_new"
/* The dispatch chains and where each goes, in generation gen. */
#define EVENT_DISPATCHES 4
static const char *const dispatch_chains[EVENT_DISPATCHES] = {
	"ev_new", "nat_svc4", "nat_svc6", EVENT_NAT_DISPATCH,
};

static const char *dispatch_target(size_t i, unsigned gen)
{
	/* The first three are the feed's own (GEN_EV_NEW, GEN_SVC4,
	 * GEN_SVC6); nat_new goes to ruleset.c's nat_g0/1. */
	return i < GEN_VAC ? gen_event_chains[i][gen] :
			     ruleset_nat_gen_chain(gen);
}

static json_t *plain_chain(const char *t, const char *name)
{
	return json_pack("{s:{s:{s:s,s:s,s:s}}}", "add", "chain", "family",
			 "inet", "table", t, "name", name);
}

static json_t *saddr_key(int v6)
{
	return json_pack("{s:[o,{s:{s:s}},o]}", "concat",
			 ruleset_payload(v6 ? "ip6" : "ip", "saddr"), "meta", "key",
			 "l4proto", ruleset_payload("th", "dport"));
}

/* key (a concatenation, consumed) in @set: goto target. */
static json_t *lookup_goto(json_t *k, const char *set, const char *target)
{
	char ref[24];

	snprintf(ref, sizeof(ref), "@%s", set);
	return json_pack("[{s:{s:s,s:o,s:s}},{s:{s:s}}]", "match", "op", "==",
			 "left", k, "right", ref, "goto", "target", target);
}

/* The configured ports, the services: (protocol, port) pairs, or with
 * vmap_family (AF_INET, AF_INET6) the verdict map's elements of that
 * family, (nfproto, protocol, port): goto nat_svc4/6. */
static void service_elems(const struct config *c, int vmap_family,
			  json_t *elems)
{
	for (int p = 0; p < CONFIG_NPROTO; p++) {
		const char *proto = p == CONFIG_UDP ? "udp" : "tcp";
		size_t n;
		const uint16_t *ports = config_proto_ports(c, p, &n);

		for (size_t i = 0; i < n; i++)
			json_array_append_new(elems, vmap_family == 0 ?
				json_pack("{s:[s,i]}", "concat", proto,
					  (int)ports[i]) :
				json_pack("[{s:[s,s,i]},{s:{s:s}}]", "concat",
					  vmap_family == AF_INET6 ? "ipv6" :
					  "ipv4", proto, (int)ports[i], "goto",
					  "target", vmap_family == AF_INET6 ?
					  "nat_svc6" : "nat_svc4"));
	}
}

/* add WHAT (a set or a map, def consumed) with its elements (consumed);
 * in place, the old elements flushed first (the services may have
 * changed): add, flush, add again with the elements. */
static void set_with_elems(const char *what, json_t *def, json_t *elems,
			   bool in_place, json_t *cmds, int *err)
{
	const char *t = json_string_value(json_object_get(def, "table"));
	const char *name = json_string_value(json_object_get(def, "name"));

	if (in_place && t && name) {
		ruleset_push(cmds, json_pack("{s:{s:O}}", "add", what, def), err);
		ruleset_push(cmds, ruleset_object_cmd("flush", what, t, name), err);
	}
	if (def && elems && json_array_size(elems) > 0)
		json_object_set(def, "elem", elems);
	if (elems == NULL)
		*err = -ENOMEM;
	ruleset_push(cmds, json_pack("{s:{s:O}}", "add", what, def), err);
	json_decref(def);
	json_decref(elems);
}

/* The objects the event rules use: the services (a set, and the verdict
 * map that sends a new connection to a service port its own way), the
 * old redirect ports (stale4/6 and, for prefixes, the interval sets
 * stalenet4/6; elements with a timeout), the counter of what the rate
 * limits held back, and the chains.  Prefixes have sets of their own so
 * that an exact address keeps its hash lookup. */
static void events_objects(const struct config *c, json_t *cmds,
			   bool in_place, bool has_hot, int *err)
{
	const char *t = config_table_name(c);
	json_t *elems = json_array();

	for (size_t i = 0; i < EVENT_CHAINS; i++)
		ruleset_push(cmds, plain_chain(t, event_chains[i]), err);
	if (elems)
		service_elems(c, 0, elems);
	set_with_elems("set", json_pack("{s:s,s:s,s:s,s:[s,s]}", "family",
					"inet", "table", t, "name", "services",
					"type", "inet_proto", "inet_service"),
		       elems, in_place, cmds, err);
	elems = json_array();
	if (elems) {
		service_elems(c, AF_INET, elems);
		service_elems(c, AF_INET6, elems);
	}
	set_with_elems("map", json_pack("{s:s,s:s,s:s,s:[s,s,s],s:s}",
					"family", "inet", "table", t, "name",
					EVENT_SERVICE_VMAP, "type", "nf_proto",
					"inet_proto", "inet_service", "map",
					"verdict"), elems, in_place, cmds, err);
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, json_pack("{s:{s:{s:s,s:s,s:s,s:[s,s,s],s:[s]}}}",
				     "add", "set", "family", "inet", "table", t,
				     "name", ruleset_stale_sets[f], "type",
				     f ? "ipv6_addr" : "ipv4_addr",
				     "inet_proto", "inet_service", "flags",
				     "timeout"), err);
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, json_pack("{s:{s:{s:s,s:s,s:s,s:[s,s,s],s:[s,s]}}}",
				     "add", "set", "family", "inet", "table", t,
				     "name", ruleset_stale_net_sets[f], "type",
				     f ? "ipv6_addr" : "ipv4_addr",
				     "inet_proto", "inet_service", "flags",
				     "interval", "timeout"), err);
	/* (libnftables 1.0.6 takes no "dynamic" flag in JSON; the rules
	 * that update the set make it dynamic, and an "add" without the
	 * flag of the set they made dynamic fails, EEXIST: not added again
	 * when the table has it, has_hot.) */
	if (!has_hot)
		ruleset_push(cmds, json_pack(
			"{s:{s:{s:s,s:s,s:s,s:s,s:i,s:[s],s:i}}}", "add", "set",
			"family", "inet", "table", t, "name", EVENT_HOT_SET,
			"type", "mark", "size", EVENT_HOT_BUCKETS, "flags",
			"timeout", "timeout", EVENT_HOT_TIMEOUT_S), err);
	ruleset_push(cmds, json_pack("{s:{s:{s:s,s:s,s:s}}}", "add", "counter",
			     "family", "inet", "table", t, "name",
			     RULESET_EVENTS_COUNTER), err);
}

static json_t *redirect_rule(const struct config *c, const char *chain_name,
			     enum ruleset_map m, unsigned gen)
{
	return ruleset_rule(c, chain_name, json_pack(
		"[{s:{s:s,s:{s:{s:s}},s:{s:[s,s]}}},{s:{s:o}}]", "match", "op",
		"==", "left", "meta", "key", "l4proto", "right", "set", "tcp",
		"udp", "redirect", "port", ruleset_map_lookup_gen(m, gen, "saddr", "th",
							  "dport")));
}

/* Leave unless a connection attempt (a TCP SYN, or UDP), not the host's
 * own (it comes in on lo). */
static void attempt_returns(const struct config *c, const char *chain_name,
			    json_t *cmds, int *err)
{
	ruleset_push(cmds, ruleset_rule(c, chain_name, json_pack(
		"[{s:{s:s,s:{s:[o,[s,s,s,s]]},s:s}},{s:n}]", "match", "op",
		"!=", "left", "&", ruleset_payload("tcp", "flags"), "fin", "syn", "rst",
		"ack", "right", "syn", "return")), err);
	ruleset_push(cmds, ruleset_rule(c, chain_name, json_pack(
		"[{s:{s:s,s:{s:{s:s}},s:{s:[s,s]}}},{s:n}]", "match", "op", "!=",
		"left", "meta", "key", "l4proto", "right", "set", "tcp", "udp",
		"return")), err);
	ruleset_push(cmds, ruleset_rule(c, chain_name, json_pack(
		"[{s:{s:s,s:{s:{s:s}},s:s}},{s:n}]", "match", "op", "==", "left",
		"meta", "key", "iif", "right", "lo", "return")), err);
}

static void stale_gotos(const struct config *c, const char *chain_name,
			json_t *cmds, int *err)
{
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, ruleset_rule(c, chain_name, lookup_goto(saddr_key(f),
			ruleset_stale_sets[f], "ev_stale")), err);
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, ruleset_rule(c, chain_name, lookup_goto(saddr_key(f),
			ruleset_stale_net_sets[f], "ev_stale")), err);
}

/* The rules of one generation (gen) that look the maps up, in the
 * chains named: a service port's lookups (svc4, svc6) to vac, which
 * logs and redirects; ev_new's lookups for a current redirect port, then
 * the old ones, then a closed port. */
static void events_gen_rules(const struct config *c, unsigned gen,
			     const char *const names[GEN_EVENT_CHAINS],
			     json_t *cmds, int *err)
{
	/* A service port: a watched source's is moved away (vacated). */
	for (enum ruleset_map m = 0; m < RULESET_MAP_COUNT; m++)
		ruleset_push(cmds, ruleset_rule(c, names[ruleset_map_family(m) ==
						AF_INET6 ? GEN_SVC6 : GEN_SVC4],
			lookup_goto(saddr_key(ruleset_map_family(m) == AF_INET6),
				    ruleset_native_gen_maps[gen][m],
				    names[GEN_VAC])), err);
	ruleset_push(cmds, ruleset_rule(c, names[GEN_VAC], json_pack(
		"[{s:{s:s,s:{s:[o,[s,s,s,s]]},s:s}},{s:{s:s,s:{s:{s:s}},s:s}},"
		"{s:{s:s}}]", "match", "op", "==", "left", "&",
		ruleset_payload("tcp", "flags"), "fin", "syn", "rst", "ack", "right",
		"syn", "match", "op", "!=", "left", "meta", "key", "iif",
		"right", "lo", "jump", "target", "ev_vacated")), err);
	ruleset_push(cmds, ruleset_rule(c, names[GEN_VAC], json_pack(
		"[{s:{s:s,s:{s:{s:s}},s:s}},{s:{s:s,s:{s:{s:s}},s:s}},"
		"{s:{s:s}}]", "match", "op", "==", "left", "meta", "key",
		"l4proto", "right", "udp", "match", "op", "!=", "left", "meta",
		"key", "iif", "right", "lo", "jump", "target", "ev_vacated")),
	     err);
	for (enum ruleset_map m = 0; m < RULESET_MAP_COUNT; m++)
		ruleset_push(cmds, redirect_rule(c, names[GEN_VAC], m, gen), err);

	/* Not a service port: a current redirect port, an old one, or (from
	 * an unwatched source) a closed port. */
	attempt_returns(c, names[GEN_EV_NEW], cmds, err);
	for (enum ruleset_map m = 0; m < RULESET_MAP_COUNT; m++)
		ruleset_push(cmds, ruleset_rule(c, names[GEN_EV_NEW], lookup_goto(
			saddr_key(ruleset_map_family(m) == AF_INET6),
			ruleset_native_gen_maps[gen][m], "ev_moved")), err);
	stale_gotos(c, names[GEN_EV_NEW], cmds, err);
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, ruleset_rule(c, names[GEN_EV_NEW], json_pack(
			"[{s:{s:s,s:o,s:s}},{s:n}]", "match", "op", "==", "left",
			ruleset_payload(f ? "ip6" : "ip", "saddr"), "right",
			f ? "@tracked6" : "@tracked4", "return")), err);
	ruleset_push(cmds, ruleset_rule(c, names[GEN_EV_NEW], json_pack(
		"[{s:{s:s}}]", "goto", "target", "ev_probe")), err);
}

/* The dispatch rules: each dispatch chain's one goto, to generation
 * gen's chain. */
static void dispatch_rules(const struct config *c, unsigned gen, json_t *cmds,
			   int *err)
{
	for (size_t i = 0; i < EVENT_DISPATCHES; i++)
		ruleset_push(cmds, ruleset_rule(c, dispatch_chains[i], json_pack(
			"[{s:{s:s}}]", "goto", "target",
			dispatch_target(i, gen))), err);
}

/* The event rules.  A packet that is no connection attempt, or one of an
 * unwatched client to a service port, meets no rule that it would not
 * meet with the feed off (bench/events_rate.sh measures what is left):
 *
 * - tracked clients: in pre_nat, which sees only a connection's first
 *   packet, after the trusted returns, one verdict-map lookup sends a
 *   service port to nat_svc4/6, which hold the redirect lookups of its
 *   family only (so an unwatched client's first packet meets fewer rules
 *   than without the feed); a watched source there is `vacated`
 *   (nat_vac logs, then redirects).  Any other port goes through ev_new
 *   (moved, stale, probe) and on to the redirects.
 * - untracked clients (untrack_unwatched): the raw_pre rule that marks
 *   them notrack looks the port up in @services as well and sends the
 *   rest to ev_untracked (stale, probe); see ruleset_native_untrack_rules.
 *
 * With two generations (two), the lookups are each generation's and the
 * dispatch chains point at generation gen's (see gen_event_chains).
 *
 * Each kind's chain logs through its own rate limit, what goes over it
 * counted in RULESET_EVENTS_COUNTER. */
static void events_rules(const struct config *c, unsigned gen, bool two,
			 json_t *cmds, int *err)
{
	const struct config_events *ev = &config_daemon(c)->events;
	static const char *const one[GEN_EVENT_CHAINS] = {
		"ev_new", "nat_svc4", "nat_svc6", "nat_vac",
	};

	ruleset_trusted_returns(c, "pre_nat", "saddr", cmds, err);
	ruleset_push(cmds, ruleset_rule(c, "pre_nat", json_pack(
		"[{s:{s:{s:[{s:{s:s}},{s:{s:s}},o]},s:s}}]", "vmap", "key",
		"concat", "meta", "key", "nfproto", "meta", "key", "l4proto",
		ruleset_payload("th", "dport"), "data", "@" EVENT_SERVICE_VMAP)), err);
	ruleset_push(cmds, ruleset_rule(c, "pre_nat", json_pack("[{s:{s:s}}]", "jump",
						"target", "ev_new")), err);
	if (two) {
		ruleset_push(cmds, ruleset_rule(c, "pre_nat", json_pack(
			"[{s:{s:s}}]", "goto", "target", EVENT_NAT_DISPATCH)),
			     err);
		dispatch_rules(c, gen, cmds, err);
		for (unsigned g = 0; g < 2; g++) {
			const char *names[GEN_EVENT_CHAINS];

			for (size_t i = 0; i < GEN_EVENT_CHAINS; i++)
				names[i] = gen_event_chains[i][g];
			events_gen_rules(c, g, names, cmds, err);
		}
	} else {
		for (enum ruleset_map m = 0; m < RULESET_MAP_COUNT; m++)
			ruleset_push(cmds, redirect_rule(c, "pre_nat", m, 0),
				     err);
		events_gen_rules(c, 0, one, cmds, err);
	}

	/* An untracked client's packet to a port that is not a service. */
	attempt_returns(c, "ev_untracked", cmds, err);
	ruleset_trusted_returns(c, "ev_untracked", "saddr", cmds, err);
	stale_gotos(c, "ev_untracked", cmds, err);
	/* UDP to the ephemeral ports: likely the replies to the host's own
	 * queries (DNS, NTP), which untracked packets cannot tell. */
	ruleset_push(cmds, ruleset_rule(c, "ev_untracked", json_pack(
		"[{s:{s:s,s:o,s:i}},{s:n}]", "match", "op", ">=", "left",
		ruleset_payload("udp", "dport"), "right", 32768, "return")), err);
	ruleset_push(cmds, ruleset_rule(c, "ev_untracked", json_pack("[{s:{s:s}}]", "goto",
						     "target", "ev_probe")),
	     err);

	/* A hot source's probes: a budget of their own. */
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, ruleset_rule(c, "ev_probe", json_pack(
			"[{s:{s:s,s:{s:{s:i,s:o}},s:s,s:[{s:{s:i,s:i,s:s,s:b}}]}},"
			"{s:{s:s}}]", "set", "op", "update", "elem", "jhash",
			"mod", EVENT_HOT_BUCKETS, "expr", ruleset_payload(f ? "ip6" :
								   "ip", "saddr"),
			"set", "@" EVENT_HOT_SET, "stmt", "limit", "rate",
			EVENT_HOT_RATE, "burst", EVENT_HOT_BURST, "per",
			"second", "inv", 1, "goto", "target", "ev_probe_hot")),
		     err);
	for (size_t k = 0; k < EVENT_LOG_CHAINS; k++) {
		char prefix[32];

		snprintf(prefix, sizeof(prefix), "porthop:%s", event_kinds[k]);
		ruleset_push(cmds, ruleset_rule(c, event_chains[k], json_pack(
			"[{s:{s:i,s:i,s:s,s:b}},{s:s},{s:n}]", "limit", "rate",
			(int)ev->rate, "burst", (int)ev->burst, "per", "second",
			"inv", 1, "counter", RULESET_EVENTS_COUNTER,
			"return")), err);
		ruleset_push(cmds, ruleset_rule(c, event_chains[k], json_pack(
			"[{s:{s:s,s:i}}]", "log", "prefix", prefix, "group",
			(int)ev->nflog_group)), err);
	}
}

/* The chains of two generations (gen_event_chains and nat_new): added
 * (add), flushed (flush), deleted (del). */
static void gen_event_chains_cmds(const char *t, bool add, bool flush,
				  bool del, json_t *cmds, int *err)
{
	for (int v = 0; v < 3; v++) {
		bool on = v == 0 ? add : v == 1 ? flush : del;
		const char *verb = v == 0 ? "add" : v == 1 ? "flush" : "delete";

		for (size_t i = 0; on && i <= GEN_EVENT_CHAINS * 2; i++)
			ruleset_push(cmds, ruleset_object_cmd(verb, "chain", t,
				i == GEN_EVENT_CHAINS * 2 ? EVENT_NAT_DISPATCH :
				gen_event_chains[i / 2][i % 2]), err);
	}
}

void ruleset_native_events_switch(const struct config *c, unsigned gen,
				  json_t *cmds, int *err)
{
	for (size_t i = 0; i < EVENT_DISPATCHES; i++)
		ruleset_push(cmds, ruleset_object_cmd("flush", "chain",
				config_table_name(c), dispatch_chains[i]), err);
	dispatch_rules(c, gen, cmds, err);
}

/* The event objects and rules (pre_nat's included), or (off, in place)
 * whatever an earlier definition had of them gone (added first so that
 * the deletes work either way; pre_nat and raw_pre, which refer to them,
 * were flushed earlier in the batch). */
void ruleset_native_events_setup(const struct config *c,
				 const struct config *prev, unsigned gen,
				 bool two, bool had_two, json_t *cmds,
				 bool in_place, int *err)
{
	const char *t = config_table_name(c);
	bool on = config_daemon(c)->events.on;
	bool prev_on = prev == NULL || config_daemon(prev)->events.on;

	/* Off, and off before too: nothing to take away. */
	if (!on && (!in_place || !prev_on))
		return;
	events_objects(c, cmds, in_place && on,
		       in_place && prev && config_daemon(prev)->events.on, err);
	if (on && two)
		gen_event_chains_cmds(t, true, false, false, cmds, err);
	for (size_t i = 0; in_place && i < EVENT_CHAINS; i++)
		ruleset_push(cmds, ruleset_object_cmd("flush", "chain", t, event_chains[i]),
		     err);
	/* In place: each generation's chains emptied, or (one generation
	 * now, or the feed off) gone, once nothing refers to them. */
	if (in_place && on && two && had_two)
		gen_event_chains_cmds(t, false, true, false, cmds, err);
	else if (in_place && had_two && prev_on)
		gen_event_chains_cmds(t, true, true, true, cmds, err);
	if (on) {
		events_rules(c, gen, two, cmds, err);
		return;
	}
	/* The map first: its elements go to nat_svc4/6. */
	ruleset_push(cmds, ruleset_object_cmd("delete", "map", t, EVENT_SERVICE_VMAP), err);
	for (size_t i = 0; i < EVENT_CHAINS; i++)
		ruleset_push(cmds, ruleset_object_cmd("delete", "chain", t, event_chains[i]),
		     err);
	ruleset_push(cmds, ruleset_object_cmd("delete", "set", t, "services"), err);
	ruleset_push(cmds, ruleset_object_cmd("delete", "set", t, EVENT_HOT_SET), err);
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, ruleset_object_cmd("delete", "set", t, ruleset_stale_sets[f]),
		     err);
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, ruleset_object_cmd("delete", "set", t,
				      ruleset_stale_net_sets[f]), err);
	ruleset_push(cmds, ruleset_object_cmd("delete", "counter", t, RULESET_EVENTS_COUNTER),
	     err);
}
