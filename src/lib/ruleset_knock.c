/*
 * ruleset_knock: single packet authorisation in the native table
 * (docs/knock.md).  A chain logs UDP packets to the knock port to an nflog
 * group and changes nothing else about them: the port answers as every
 * closed port does.  Sources a knock let in are members of knocked4/6
 * (elements with a timeout) and skip the redirection as trusted ones do;
 * they stay in tracked4/6 (they are watched), so that their connections
 * are tracked from their first packet and survive the trust expiring.
 */
#include "ruleset.h"
#include "ruleset_private.h"

#include <sys/socket.h>

static const char *const knocked_sets[2] = { "knocked4", "knocked6" };

void ruleset_knock_returns(const struct config *c, const char *chain,
			   const char *field, json_t *cmds, int *err)
{
	if (!config_daemon(c)->knock.on)
		return;
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, ruleset_rule(c, chain, json_pack(
			"[{s:{s:s,s:o,s:s}},{s:n}]", "match", "op", "==",
			"left", ruleset_payload(f ? "ip6" : "ip", field),
			"right", f ? "@knocked6" : "@knocked4", "return")),
			err);
}

static void knock_rules(const struct config *c, json_t *cmds, int *err)
{
	const struct config_knock *k = &config_daemon(c)->knock;

	/* Only packets to the knock port (each rule matches it: a rule
	 * that returned on "udp dport != P" would let every other protocol
	 * through); over the rate, not handed over (counted).  Never
	 * dropped: the verdict stays the chain's policy, accept. */
	ruleset_push(cmds, ruleset_rule(c, "pre_knock", json_pack(
		"[{s:{s:s,s:o,s:i}},{s:{s:i,s:i,s:s,s:b}},{s:s},{s:n}]",
		"match", "op", "==", "left", ruleset_payload("udp", "dport"),
		"right", (int)k->port, "limit", "rate", (int)k->rate, "burst",
		(int)k->rate, "per", "second", "inv", 1, "counter",
		RULESET_KNOCK_COUNTER, "return")), err);
	ruleset_push(cmds, ruleset_rule(c, "pre_knock", json_pack(
		"[{s:{s:s,s:o,s:i}},{s:{s:s,s:i}}]", "match", "op", "==",
		"left", ruleset_payload("udp", "dport"), "right", (int)k->port,
		"log", "prefix", RULESET_KNOCK_PREFIX, "group",
		(int)k->nflog_group)), err);
}

void ruleset_knock_sets(const struct config *c, const struct config *prev,
			bool in_place, json_t *cmds, int *err)
{
	bool on = config_daemon(c)->knock.on;

	if (!on && (!in_place || (prev && !config_daemon(prev)->knock.on)))
		return;
	/* Before the rules that look them up; also when off, in place, so
	 * that the deletes of ruleset_knock_setup work either way ("add" of
	 * what exists keeps its elements). */
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, json_pack(
			"{s:{s:{s:s,s:s,s:s,s:s,s:[s]}}}", "add", "set",
			"family", "inet", "table", config_table_name(c), "name",
			knocked_sets[f], "type", f ? "ipv6_addr" : "ipv4_addr",
			"flags", "timeout"), err);
}

void ruleset_knock_setup(const struct config *c, const struct config *prev,
			 json_t *cmds, bool in_place, int *err)
{
	const char *t = config_table_name(c);
	bool on = config_daemon(c)->knock.on;

	if (!on && (!in_place || (prev && !config_daemon(prev)->knock.on)))
		return;
	ruleset_push(cmds, json_pack("{s:{s:{s:s,s:s,s:s}}}", "add", "counter",
				     "family", "inet", "table", t, "name",
				     RULESET_KNOCK_COUNTER), err);
	/* Before NAT (dstnat, -100): the port the packet asked for. */
	ruleset_push(cmds, ruleset_chain(c, "pre_knock", "filter", "prerouting",
					 -120), err);
	if (in_place)
		ruleset_push(cmds, ruleset_object_cmd("flush", "chain", t,
						      "pre_knock"), err);
	if (on) {
		knock_rules(c, cmds, err);
		return;
	}
	ruleset_push(cmds, ruleset_object_cmd("delete", "chain", t,
					      "pre_knock"), err);
	for (int f = 0; f < 2; f++)
		ruleset_push(cmds, ruleset_object_cmd("delete", "set", t,
						      knocked_sets[f]), err);
	ruleset_push(cmds, ruleset_object_cmd("delete", "counter", t,
					      RULESET_KNOCK_COUNTER), err);
}

int ruleset_native_knocked(const struct config *c, int family,
			   const unsigned char addr[16], struct nftio_elems *b)
{
	const char *set = knocked_sets[family == AF_INET6];
	uint32_t ms = config_daemon(c)->knock.trust_s * 1000u;
	int r;

	/* The add makes the delete safe; the delete and the second add
	 * start an element that was there already on a fresh timeout. */
	r = nftio_elems_add_addr_timeout(b, set, family, addr, ms);
	if (r == 0)
		r = nftio_elems_delete_addr(b, set, family, addr);
	if (r == 0)
		r = nftio_elems_add_addr_timeout(b, set, family, addr, ms);
	return r;
}
