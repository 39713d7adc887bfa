/*
 * ruleset: the pure builder of porthop's batches (see ruleset.h): template
 * mode's rules pair by pair, native mode's table with its sets' and maps'
 * elements.  Inputs in, JSON or queued element operations out.
 */
#include "ruleset.h"
#include "ruleset_private.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

json_t *ruleset_batch_new(const struct config *c, bool with_startup)
{
	json_t *cmds = json_array();

	if (cmds == NULL)
		return NULL;
	if (with_startup && config_mode(c) == CONFIG_MODE_TEMPLATE &&
	    json_array_extend(cmds, config_startup_commands(c)) < 0) {
		json_decref(cmds);
		return NULL;
	}
	return json_pack("{s:o}", "nftables", cmds);
}

json_t *ruleset_commands(json_t *batch)
{
	return json_object_get(batch, "nftables");
}

int ruleset_add_pair(const struct config *c, json_t *batch, size_t watched,
		     uint16_t port, uint16_t redirect)
{
	const struct config_watched *w = config_watched(c, watched);
	struct template_values v = {
		.source_address = w->ip,
		.destination_port = port,
		.redirected_port = redirect,
		/* The reference's template mode knows TCP only. */
		.protocol = "tcp",
	};

	return template_instantiate(config_template(c), &v,
				    ruleset_commands(batch));
}

/* --- native mode --------------------------------------------------- */

const char *const ruleset_native_maps[RULESET_MAP_COUNT] = {
	[RULESET_MAP_SWAP4] = "swap4", [RULESET_MAP_NET4] = "net4",
	[RULESET_MAP_SWAP6] = "swap6", [RULESET_MAP_NET6] = "net6",
};

const char *const ruleset_native_gen_maps[2][RULESET_MAP_COUNT] = {
	{ [RULESET_MAP_SWAP4] = "swap4", [RULESET_MAP_NET4] = "net4",
	  [RULESET_MAP_SWAP6] = "swap6", [RULESET_MAP_NET6] = "net6" },
	{ [RULESET_MAP_SWAP4] = "swap4_b", [RULESET_MAP_NET4] = "net4_b",
	  [RULESET_MAP_SWAP6] = "swap6_b", [RULESET_MAP_NET6] = "net6_b" },
};

int ruleset_map_family(enum ruleset_map m)
{
	return m == RULESET_MAP_SWAP6 || m == RULESET_MAP_NET6 ? AF_INET6 :
								  AF_INET;
}

bool ruleset_map_interval(enum ruleset_map m)
{
	return m == RULESET_MAP_NET4 || m == RULESET_MAP_NET6;
}

enum ruleset_map ruleset_native_map(const struct config_watched *w)
{
	if (w->family == AF_INET6)
		return w->net.is_prefix ? RULESET_MAP_NET6 : RULESET_MAP_SWAP6;
	return w->net.is_prefix ? RULESET_MAP_NET4 : RULESET_MAP_SWAP4;
}

/* json_array_append_new that remembers a failure (NULL or ENOMEM). */
static void push(json_t *arr, json_t *v, int *err)
{
	if (v == NULL || json_array_append_new(arr, v) < 0)
		*err = -ENOMEM;
}

static json_t *payload(const char *proto, const char *field)
{
	return json_pack("{s:{s:s,s:s}}", "payload", "protocol", proto,
			 "field", field);
}

/* The lookup key: address . l4proto . port, for the map's family. */
static json_t *key(enum ruleset_map map, const char *addr_field,
		   const char *port_proto, const char *port_field)
{
	const char *l3 = ruleset_map_family(map) == AF_INET6 ? "ip6" : "ip";

	return json_pack("{s:[o,{s:{s:s}},o]}", "concat",
			 payload(l3, addr_field), "meta",
			 "key", "l4proto", payload(port_proto, port_field));
}

static json_t *map_lookup(enum ruleset_map map, unsigned gen,
			  const char *addr_field, const char *port_proto,
			  const char *port_field)
{
	char ref[16];

	snprintf(ref, sizeof(ref), "@%s", ruleset_native_gen_maps[gen][map]);
	return json_pack("{s:{s:o,s:s}}", "map", "key",
			 key(map, addr_field, port_proto, port_field), "data",
			 ref);
}

/* Every rule carries porthop's mark: what tells its table from someone
 * else's of the same name (libnftables 1.0.6 drops a table's comment from
 * JSON; a rule's it keeps). */
static json_t *rule(const struct config *c, const char *chain, json_t *expr)
{
	return json_pack("{s:{s:{s:s,s:s,s:s,s:o,s:s}}}", "add", "rule",
			 "family", "inet", "table", config_table_name(c),
			 "chain", chain, "expr", expr, "comment",
			 RULESET_NATIVE_MARK);
}

static json_t *chain(const struct config *c, const char *name,
		     const char *type, const char *hook, int prio)
{
	return json_pack("{s:{s:{s:s,s:s,s:s,s:s,s:s,s:i,s:s}}}", "add",
			 "chain", "family", "inet", "table",
			 config_table_name(c), "name", name, "type", type,
			 "hook", hook, "prio", prio, "policy", "accept");
}

/* Rules that let trusted sources (or destinations) through untouched. */
static void trusted_returns(const struct config *c, const char *chain_name,
			    const char *field, json_t *cmds, int *err)
{
	push(cmds, rule(c, chain_name, json_pack("[{s:{s:s,s:o,s:s}},{s:n}]",
		"match", "op", "==", "left", payload("ip", field), "right",
		"@trusted4", "return")), err);
	push(cmds, rule(c, chain_name, json_pack("[{s:{s:s,s:o,s:s}},{s:n}]",
		"match", "op", "==", "left", payload("ip6", field), "right",
		"@trusted6", "return")), err);
	ruleset_knock_returns(c, chain_name, field, cmds, err);
}

static json_t *not_invalid_return(void)
{
	return json_pack("[{s:{s:s,s:{s:{s:s}},s:s}},{s:n}]", "match", "op",
			 "!=", "left", "ct", "key", "state", "right",
			 "invalid", "return");
}

/* {"<verb>": {"<what>": {"family": "inet", "table": t, "name": name}}} */
static json_t *object_cmd(const char *verb, const char *what, const char *t,
			  const char *name)
{
	return json_pack("{s:{s:{s:s,s:s,s:s}}}", verb, what, "family", "inet",
			 "table", t, "name", name);
}

static const char *const untrack_sets[] = { "tracked4", "tracked6" };
static const char *const native_untrack_chains[] = { "raw_pre", "raw_out" };

bool ruleset_native_tracked(const struct config *c)
{
	return config_untrack(c) != CONFIG_UNTRACK_OFF ||
	       config_daemon(c)->events.on;
}

size_t ruleset_native_sets(const struct config *c, const char *names[4])
{
	size_t n = 0;

	names[n++] = "trusted4";
	names[n++] = "trusted6";
	if (ruleset_native_tracked(c)) {
		names[n++] = untrack_sets[0];
		names[n++] = untrack_sets[1];
	}
	return n;
}

/* A range of addresses of one family, as numbers. */
struct span {
	unsigned __int128 lo, hi;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorts sp and merges what overlaps (and, if touching, what touches);
 * returns the new count. */
static size_t spans_merge(struct span *sp, size_t n, bool touching)
{
	size_t m = 0;

	qsort(sp, n, sizeof(*sp), cmp_span);
	for (size_t i = 0; i < n; i++) {
		if (m > 0 && (sp[m - 1].hi == ~(unsigned __int128)0 ||
			      sp[i].lo <= sp[m - 1].hi + touching)) {
			if (sp[i].hi > sp[m - 1].hi)
				sp[m - 1].hi = sp[i].hi;
			continue;
		}
		sp[m++] = sp[i];
	}
	return m;
}

/* Queues the range s of one family on b: added, or deleted. */
static int put_span(struct nftio_elems *b, const char *set, int family,
		    const struct span *s, bool add)
{
	unsigned char a[2][16] = { { 0 } };
	size_t len = family == AF_INET ? 4 : 16;

	for (int k = 0; k < 2; k++) {
		unsigned __int128 v = k ? s->hi : s->lo;

		for (size_t i = len; i-- > 0; v >>= 8)
			a[k][i] = (unsigned char)v;
	}
	return add ? nftio_elems_add_range(b, set, family, a[0], a[1]) :
		     nftio_elems_delete_range(b, set, family, a[0], a[1]);
}

static int push_span(struct nftio_elems *b, const char *set, int family,
		     const struct span *s)
{
	return put_span(b, set, family, s, true);
}

/* Fills sp with the networks of one family among n; returns the count of
 * merged spans. */
static size_t spans_of(struct span *sp, const struct config *c, bool trusted,
		       size_t n, int family)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		const struct config_net *net = trusted ? config_trusted(c, i) :
					       &config_watched(c, i)->net;

		if (net->family == family)
			sp[k++] = (struct span){ config_net_value(net, false),
						 config_net_value(net, true) };
	}
	/* Trusted networks never change at runtime: touching ones merge,
	 * as nft's auto-merge would make them.  Watched ones come and go
	 * one at a time (runtime entries), so each range is one entry's,
	 * and only an entry inside a watched prefix merges into it: then
	 * the elements of one entry's change are its own and its
	 * neighbours' are left alone. */
	return spans_merge(sp, k, trusted);
}

/* The trusted networks of one family, sorted and merged. */
struct trusted_spans {
	struct span *sp;
	size_t n;
};

/* Queues on b, added (or deleted), the parts of cur outside the trusted
 * spans ts, in ascending order. */
static int span_pieces(struct nftio_elems *b, const char *set, int family,
		       struct span cur, const struct trusted_spans *ts,
		       bool add)
{
	size_t lo = 0, hi = ts->n;
	int r = 0;

	/* The first trusted span that ends at or after cur starts. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ts->sp[mid].hi < cur.lo)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t k = lo; r == 0 && k < ts->n && ts->sp[k].lo <= cur.hi;
	     k++) {
		if (ts->sp[k].lo > cur.lo)
			r = put_span(b, set, family, &(struct span){
				cur.lo, ts->sp[k].lo - 1 }, add);
		if (ts->sp[k].hi >= cur.hi)
			return r;
		cur.lo = ts->sp[k].hi + 1;
	}
	return r ? r : put_span(b, set, family, &cur, add);
}

/* Queues the elements of tracked4 (f 0) or tracked6 (f 1): the watched
 * networks minus the trusted ones (ts), a range per entry that no
 * watched prefix covers, so that a single lookup tells a packet to track
 * from one not to. */
static int tracked_elems(const struct config *c, int f,
			 const struct trusted_spans *ts, struct nftio_elems *b)
{
	int family = f ? AF_INET6 : AF_INET;
	const char *set = untrack_sets[f];
	size_t nw = config_watched_count(c);
	struct span *ws = malloc((nw + 1) * sizeof(*ws));
	int r = ws ? nftio_elems_flush_set(b, set) : -ENOMEM;

	if (r < 0)
		goto out;
	nw = spans_of(ws, c, false, nw, family);
	for (size_t i = 0; r == 0 && i < nw; i++)
		r = span_pieces(b, set, family, ws[i], ts, true);
out:
	free(ws);
	return r;
}

/* Queues the elements of trusted4 (f 0) or trusted6 (f 1): the trusted
 * networks as merged ranges (the configuration refuses overlaps; touching
 * entries become one range, as nft's auto-merge would make them). */
static int trusted_elems(int f, const struct trusted_spans *ts,
			 struct nftio_elems *b)
{
	const char *set = f ? "trusted6" : "trusted4";
	int r = nftio_elems_flush_set(b, set);

	for (size_t i = 0; r == 0 && i < ts->n; i++)
		r = push_span(b, set, f ? AF_INET6 : AF_INET, &ts->sp[i]);
	return r;
}

static struct span net_span(const struct config_net *n)
{
	return (struct span){ config_net_value(n, false),
			      config_net_value(n, true) };
}

/* What a runtime change does to tracked4/6. */
struct tracked_change {
	const struct config *c;
	struct nftio_elems *b;
	const struct trusted_spans *ts;
	bool add;
};

static int inner_pieces(void *arg, size_t idx)
{
	struct tracked_change *t = arg;
	const struct config_net *n = &config_watched(t->c, idx)->net;

	return span_pieces(t->b, untrack_sets[n->family == AF_INET6],
			   n->family, net_span(n), t->ts, t->add);
}

int ruleset_native_tracked_change(const struct config *c, size_t idx,
				  bool adding, struct nftio_elems *b)
{
	const struct config_net *net = &config_watched(c, idx)->net;
	size_t n = config_trusted_count(c);
	struct trusted_spans ts = { malloc((n + 1) * sizeof(*ts.sp)), 0 };
	struct tracked_change t = { c, b, &ts, false };
	int r = 0;

	/* Inside a watched prefix: its range covers the entry already. */
	if (!ruleset_native_tracked(c) || config_watched_cover(c, net) >= 0) {
		free(ts.sp);
		return 0;
	}
	if (ts.sp == NULL)
		return -ENOMEM;
	ts.n = spans_of(ts.sp, c, true, n, net->family);
	/* The entries inside net have ranges of their own while net is not
	 * watched, and none while it is: what goes is deleted before what
	 * comes is added, or the two would overlap. */
	if (adding)
		r = config_watched_inside(c, net, inner_pieces, &t);
	if (r == 0)
		r = span_pieces(b, untrack_sets[net->family == AF_INET6],
				net->family, net_span(net), &ts, adding);
	t.add = true;
	if (r == 0 && !adding)
		r = config_watched_inside(c, net, inner_pieces, &t);
	free(ts.sp);
	return r;
}

int ruleset_native_set_elements(const struct config *c, struct nftio_elems *b)
{
	size_t n = config_trusted_count(c);
	struct trusted_spans ts[2];
	int r = 0;

	/* Sorted once, for both kinds of set. */
	for (int f = 0; f < 2; f++) {
		ts[f].sp = malloc((n + 1) * sizeof(*ts[f].sp));
		if (ts[f].sp == NULL)
			r = -ENOMEM;
		else
			ts[f].n = spans_of(ts[f].sp, c, true, n,
					   f ? AF_INET6 : AF_INET);
	}
	for (int f = 0; r == 0 && f < 2; f++)
		r = trusted_elems(f, &ts[f], b);
	for (int f = 0; r == 0 && ruleset_native_tracked(c) && f < 2; f++)
		r = tracked_elems(c, f, &ts[f], b);
	free(ts[0].sp);
	free(ts[1].sp);
	return r;
}

/* untrack_unwatched: before connection tracking (raw priority), packets
 * from or to an address that is not in tracked4/6 (not watched, or
 * trusted) are marked untracked; only watched clients' connections are
 * tracked (and NAT'd).  The definition has the sets and the chains, empty
 * (flushed, in place); the sets' elements go with the maps' (see
 * ruleset_native_set_elements), the rules come with
 * ruleset_native_untrack_rules.  Off, and redefining in place: whatever
 * an earlier definition had of it goes (added first so that the delete
 * works either way). */
static void native_untrack_setup(const struct config *c, json_t *cmds,
			  bool in_place, int *err)
{
	const char *t = config_table_name(c);
	bool on = config_untrack(c) != CONFIG_UNTRACK_OFF;
	bool sets = ruleset_native_tracked(c);

	if (!sets && !in_place)
		return;
	/* The event rules look tracked4/6 up too (who is watched). */
	for (int f = 0; f < 2; f++)
		push(cmds, json_pack("{s:{s:{s:s,s:s,s:s,s:s,s:[s],s:b}}}",
				     "add", "set", "family", "inet", "table", t,
				     "name", untrack_sets[f], "type",
				     f ? "ipv6_addr" : "ipv4_addr", "flags",
				     "interval", "auto-merge", 1), err);
	if (on || in_place) {
		push(cmds, chain(c, "raw_pre", "filter", "prerouting", -300),
		     err);
		push(cmds, chain(c, "raw_out", "filter", "output", -300), err);
	}
	for (int i = 0; (on || in_place) && i < 2; i++) {
		push(cmds, object_cmd("flush", "chain", t, native_untrack_chains[i]),
		     err);
		if (!on)
			push(cmds, object_cmd("delete", "chain", t,
					      native_untrack_chains[i]), err);
	}
	for (int f = 0; !sets && f < 2; f++)
		push(cmds, object_cmd("delete", "set", t, untrack_sets[f]),
		     err);
}

int ruleset_native_untrack_rules(const struct config *c, bool on,
				 json_t *cmds)
{
	int err = 0;

	if (config_untrack(c) == CONFIG_UNTRACK_OFF)
		return 0;
	for (int i = 0; i < 2; i++)
		push(cmds, object_cmd("flush", "chain", config_table_name(c),
				      native_untrack_chains[i]), &err);
	for (int i = 0; on && i < 2; i++)
		for (int f = 0; f < 2; f++) {
			json_t *e = json_pack(
				"[{s:{s:s,s:o,s:s}},{s:n}]", "match", "op",
				"!=", "left", payload(f ? "ip6" : "ip",
						      i ? "daddr" : "saddr"),
				"right", f ? "@tracked6" : "@tracked4",
				"notrack");

			/* The event feed: the same rule sends an untracked
			 * packet to a port that is not a service on to
			 * ev_untracked; one to a service meets nothing
			 * more (docs/events.md). */
			if (e && i == 0 && config_daemon(c)->events.on &&
			    (json_array_append_new(e, json_pack(
				"{s:{s:s,s:o,s:s}}", "match", "op", "!=",
				"left", ruleset_port_key(), "right", "@services")) < 0 ||
			     json_array_append_new(e, json_pack(
				"{s:{s:s}}", "goto", "target",
				"ev_untracked")) < 0))
				err = -ENOMEM;
			push(cmds, rule(c, native_untrack_chains[i], e), &err);
		}
	return err;
}

/* How the rules name the maps: gen, the generation in force; two,
 * whether the table has both.  With two, every rule that looks a map up
 * lives in a chain of its generation's own, which a rule of the base
 * chain jumps to (goto): a switch replaces that one rule and binds no
 * map.  (The kernel walks every element of a map when a rule that looks
 * it up is added: 0.1 s at 100,000 pairs, the cost prestage avoids.) */
struct layout {
	unsigned gen;
	bool two;
};

/* The chains of each generation: the lookups of pre_nat, pre_stateless
 * and out_stateless.  (The event feed's chains that look the maps up
 * have generations of their own, see ruleset_events.c.) */
#define GEN_CHAINS 3
static const char *const gen_chains[GEN_CHAINS][2] = {
	{ "nat_g0", "nat_g1" }, { "stateless_g0", "stateless_g1" },
	{ "out_g0", "out_g1" },
};

/* A regular chain of the native table. */
static json_t *plain_chain(const char *t, const char *name)
{
	return json_pack("{s:{s:{s:s,s:s,s:s}}}", "add", "chain", "family",
			 "inet", "table", t, "name", name);
}

/* A rule of chain that goes to target. */
static json_t *goto_rule(const struct config *c, const char *chain_name,
			 const char *target)
{
	return rule(c, chain_name, json_pack("[{s:{s:s}}]", "goto", "target",
					     target));
}



int ruleset_native_setup(const struct config *c, json_t *cmds, bool in_place)
{
	return ruleset_native_setup_after(c, NULL, cmds, in_place);
}

int ruleset_native_setup_after(const struct config *c,
			       const struct config *prev, json_t *cmds,
			       bool in_place)
{
	bool two = config_prestage_active(c);

	return ruleset_native_setup_gen(c, prev, 0, two, two, cmds, in_place);
}

static const char *const map_chains[] = { "pre_nat", "pre_stateless",
					  "out_stateless" };

/* The rules of chain k of map_chains that look generation gen's maps up,
 * into chain ch. */
static void map_lookups(const struct config *c, size_t k, unsigned gen,
			const char *ch, json_t *cmds, int *err)
{
	for (enum ruleset_map m = 0; m < RULESET_MAP_COUNT; m++) {
		if (k == 0)
			push(cmds, rule(c, ch, json_pack(
				"[{s:{s:s,s:{s:{s:s}},s:{s:[s,s]}}},{s:{s:o}}]",
				"match", "op", "==", "left", "meta", "key",
				"l4proto", "right", "set", "tcp", "udp",
				"redirect", "port",
				map_lookup(m, gen, "saddr", "th", "dport"))), err);
		else
			push(cmds, rule(c, ch, json_pack(
				"[{s:{s:o,s:o}},{s:n}]", "mangle", "key",
				payload("tcp", k == 1 ? "dport" : "sport"),
				"value", map_lookup(m, gen, k == 1 ? "saddr" :
						    "daddr", "tcp",
						    k == 1 ? "dport" : "sport"),
				"accept")), err);
	}
}

/* The rules of the three chains that look the maps up: what they let
 * through first (ct state; pre_stateless runs after conntrack, -200, and
 * swaps what it refused to track statelessly; trusted sources or
 * destinations), then the lookups of the generation in force, or (two)
 * the goto to its chain. */
static void map_rules(const struct config *c, struct layout l, json_t *cmds,
		      int *err)
{
	for (size_t k = 0; k < 3; k++) {
		/* With the event feed, pre_nat's rules are the feed's. */
		if (k == 0 && config_daemon(c)->events.on)
			continue;
		if (k > 0)
			push(cmds, rule(c, map_chains[k], not_invalid_return()),
			     err);
		trusted_returns(c, map_chains[k], k == 2 ? "daddr" : "saddr",
				cmds, err);
		if (l.two)
			push(cmds, goto_rule(c, map_chains[k],
					     gen_chains[k][l.gen]), err);
		else
			map_lookups(c, k, l.gen, map_chains[k], cmds, err);
	}
}

/* The maps' definitions of one generation. */
static void map_defs(const struct config *c, unsigned gen, json_t *cmds,
		     int *err)
{
	const char *t = config_table_name(c);

	for (enum ruleset_map m = 0; m < RULESET_MAP_COUNT; m++) {
		bool v6 = ruleset_map_family(m) == AF_INET6;
		json_t *def = json_pack("{s:s,s:s,s:s,s:[s,s,s],s:s}", "family",
					"inet", "table", t, "name",
					ruleset_native_gen_maps[gen][m], "type",
					v6 ? "ipv6_addr" : "ipv4_addr",
					"inet_proto", "inet_service", "map",
					"inet_service");

		if (def && ruleset_map_interval(m))
			json_object_set_new(def, "flags", json_pack("[s]",
								    "interval"));
		else if (def && config_map_size(c))
			/* A hash table sized once, never grown (and
			 * rehashed) by the kernel as entries come. */
			json_object_set_new(def, "size", json_integer(
				(json_int_t)config_map_size(c)));
		push(cmds, json_pack("{s:{s:o}}", "add", "map", def), err);
	}
}

/* Redefined in place with one generation, after two: the second
 * generation's chains and maps go, once no rule names them (added first,
 * so that the deletes work whether or not they exist). */
static void drop_second(const struct config *c, json_t *cmds, int *err)
{
	const char *t = config_table_name(c);

	for (unsigned g = 0; g < 2; g++)
		for (size_t i = 0; i < GEN_CHAINS; i++) {
			push(cmds, plain_chain(t, gen_chains[i][g]), err);
			push(cmds, object_cmd("flush", "chain", t,
					      gen_chains[i][g]), err);
		}
	for (unsigned g = 0; g < 2; g++)
		for (size_t i = 0; i < GEN_CHAINS; i++)
			push(cmds, object_cmd("delete", "chain", t,
					      gen_chains[i][g]), err);
	map_defs(c, 1, cmds, err);
	for (enum ruleset_map m = 0; m < RULESET_MAP_COUNT; m++)
		push(cmds, object_cmd("delete", "map", t,
				      ruleset_native_gen_maps[1][m]), err);
}

int ruleset_native_setup_gen(const struct config *c,
			     const struct config *prev, unsigned gen,
			     bool two, bool had_two, json_t *cmds,
			     bool in_place)
{
	const char *t = config_table_name(c);
	struct layout l = { two ? gen : 0, two };
	int err = 0;

	/* add + delete + add: replaces an earlier definition atomically,
	 * and works whether or not the table exists.  In place, "add" of
	 * what exists changes nothing and the flushes below empty what is
	 * redefined; the sets and maps keep their elements. */
	for (int i = 0; i < (in_place ? 1 : 3); i++)
		push(cmds, json_pack("{s:{s:{s:s,s:s}}}", i == 1 ? "delete" :
				     "add", "table", "family", "inet", "name",
				     t), &err);
	for (int f = 0; f < 2; f++)
		push(cmds, json_pack("{s:{s:{s:s,s:s,s:s,s:s,s:[s]}}}", "add",
				     "set", "family", "inet", "table", t,
				     "name", f ? "trusted6" : "trusted4",
				     "type", f ? "ipv6_addr" : "ipv4_addr",
				     "flags", "interval"), &err);
	ruleset_knock_sets(c, prev, in_place, cmds, &err);
	map_defs(c, 0, cmds, &err);
	/* The standby generation's maps, and each generation's chains of
	 * lookups, come after: a table with one generation is defined as
	 * before prestage. */
	if (two)
		map_defs(c, 1, cmds, &err);
	push(cmds, chain(c, "pre_nat", "nat", "prerouting", -100), &err);
	push(cmds, chain(c, "pre_stateless", "filter", "prerouting", -150), &err);
	push(cmds, chain(c, "out_stateless", "filter", "output", -100), &err);
	for (unsigned g = 0; two && g < 2; g++)
		for (size_t k = 0; k < 3; k++)
			push(cmds, plain_chain(t, gen_chains[k][g]), &err);
	for (size_t i = 0; in_place && i < 3; i++)
		push(cmds, object_cmd("flush", "chain", t, map_chains[i]), &err);
	for (unsigned g = 0; in_place && two && g < 2; g++)
		for (size_t k = 0; k < 3; k++)
			push(cmds, object_cmd("flush", "chain", t,
					      gen_chains[k][g]), &err);
	map_rules(c, l, cmds, &err);
	for (unsigned g = 0; two && g < 2; g++)
		for (size_t k = 0; k < 3; k++)
			map_lookups(c, k, g, gen_chains[k][g], cmds, &err);
	native_untrack_setup(c, cmds, in_place, &err);
	ruleset_native_events_setup(c, prev, l.gen, two, had_two, cmds,
				    in_place, &err);
	ruleset_knock_setup(c, prev, cmds, in_place, &err);
	if (in_place && had_two && !two)
		drop_second(c, cmds, &err);
	if (err == 0)
		err = ruleset_derive_setup(c, prev, cmds, in_place);
	return err;
}

int ruleset_native_switch(const struct config *c, unsigned gen,
			  json_t *cmds)
{
	const char *t = config_table_name(c);
	struct layout l = { gen, true };
	bool events = config_daemon(c)->events.on;
	int err = 0;

	/* With the event feed, pre_nat (which binds the services' verdict
	 * map) stays; its lookups are reached through the feed's dispatch
	 * chains. */
	for (size_t i = events; i < 3; i++)
		push(cmds, object_cmd("flush", "chain", t, map_chains[i]), &err);
	map_rules(c, l, cmds, &err);
	if (events)
		ruleset_native_events_switch(c, gen, cmds, &err);
	return err;
}

static void net_key(const struct config_watched *w, uint8_t proto,
		    uint16_t port, struct nftio_key *k)
{
	k->family = w->family;
	memcpy(k->addr, w->net.addr, sizeof(k->addr));
	k->prefix_len = w->net.prefix_len;
	k->l4proto = proto == CONFIG_UDP ? IPPROTO_UDP : IPPROTO_TCP;
	k->port = port;
}

/* Queues both elements of every pair of e: real -> redirect and back. */
static int entry_elems(const struct config_watched *w, unsigned gen,
		       const struct shuffle_entry *e, bool add,
		       struct nftio_elems *b)
{
	const char *map = ruleset_native_gen_maps[gen][ruleset_native_map(w)];
	struct nftio_key k;
	int r = 0;

	for (size_t i = 0; r == 0 && i < e->npairs; i++) {
		const struct shuffle_pair *p = &e->pairs[i];

		net_key(w, p->proto, p->port, &k);
		r = add ? nftio_elems_add(b, map, &k, p->redirect) :
			  nftio_elems_delete(b, map, &k);
		net_key(w, p->proto, p->redirect, &k);
		if (r == 0)
			r = add ? nftio_elems_add(b, map, &k, p->port) :
				  nftio_elems_delete(b, map, &k);
	}
	return r;
}

int ruleset_native_elements(const struct config *c,
			    const struct shuffle_map *map, bool flush,
			    struct nftio_elems *b)
{
	return ruleset_native_elements_gen(c, map, 0, flush, b);
}

int ruleset_native_flush_gen(unsigned gen, struct nftio_elems *b)
{
	int r = 0;

	for (enum ruleset_map m = 0; r == 0 && m < RULESET_MAP_COUNT; m++)
		r = nftio_elems_flush(b, ruleset_native_gen_maps[gen][m]);
	return r;
}

int ruleset_native_elements_gen(const struct config *c,
				const struct shuffle_map *map, unsigned gen,
				bool flush, struct nftio_elems *b)
{
	int r = flush ? ruleset_native_flush_gen(gen, b) : 0;

	/* Grouped by map, so the kernel gets few, full messages. */
	for (enum ruleset_map m = 0; m < RULESET_MAP_COUNT; m++)
		for (size_t i = 0; r == 0 && i < map->nentries; i++) {
			const struct config_watched *w =
				config_watched(c, map->entries[i].watched);

			if (ruleset_native_map(w) == m)
				r = entry_elems(w, gen, &map->entries[i], true,
						b);
		}
	return r;
}

int ruleset_native_entry_elements(const struct config *c,
				  const struct shuffle_entry *entry,
				  struct nftio_elems *b)
{
	return ruleset_native_entry_elements_gen(c, entry, 0, b);
}

int ruleset_native_entry_elements_gen(const struct config *c,
				      const struct shuffle_entry *entry,
				      unsigned gen, struct nftio_elems *b)
{
	return entry_elems(config_watched(c, entry->watched), gen, entry, true,
			   b);
}

int ruleset_native_entry(const struct config *c,
			 const struct shuffle_entry *old,
			 const struct shuffle_entry *new_entry,
			 struct nftio_elems *b)
{
	return ruleset_native_entry_gen(c, old, new_entry, 0, b);
}

int ruleset_native_entry_gen(const struct config *c,
			     const struct shuffle_entry *old,
			     const struct shuffle_entry *new_entry,
			     unsigned gen, struct nftio_elems *b)
{
	const struct config_watched *w = config_watched(c, new_entry->watched);
	int r = entry_elems(w, gen, old, false, b);

	return r ? r : entry_elems(w, gen, new_entry, true, b);
}

int ruleset_native_teardown(const struct config *c, json_t *cmds)
{
	int err = 0;

	push(cmds, json_pack("{s:{s:{s:s,s:s}}}", "delete", "table", "family",
			     "inet", "name", config_table_name(c)), &err);
	return err;
}

int ruleset_build(const struct config *c, const struct shuffle_map *map,
		  json_t **ret_batch)
{
	json_t *batch = ruleset_batch_new(c, true);
	int r = 0;

	if (batch == NULL)
		return -ENOMEM;
	if (config_mode(c) == CONFIG_MODE_NATIVE) {
		struct nftio_elems *b = nftio_elems_new(config_table_name(c));
		json_t *elems = NULL;

		r = b ? ruleset_native_setup(c, ruleset_commands(batch), false)
		      : -ENOMEM;
		if (r == 0)
			r = ruleset_native_untrack_rules(c,
				config_untrack(c) == CONFIG_UNTRACK_ON,
				ruleset_commands(batch));
		if (r == 0)
			r = ruleset_native_set_elements(c, b);
		if (r == 0)
			r = ruleset_native_elements(c, map, false, b);
		if (r == 0 && (elems = nftio_elems_json(b)) == NULL)
			r = -ENOMEM;
		if (r == 0)
			r = json_array_extend(ruleset_commands(batch),
					      ruleset_commands(elems));
		json_decref(elems);
		nftio_elems_free(b);
		goto out;
	}
	for (size_t i = 0; r == 0 && i < map->nentries; i++) {
		const struct shuffle_entry *e = &map->entries[i];

		for (size_t k = 0; r == 0 && k < e->npairs; k++)
			r = ruleset_add_pair(c, batch, e->watched,
					     e->pairs[k].port,
					     e->pairs[k].redirect);
	}
out:
	if (r < 0) {
		json_decref(batch);
		return -ENOMEM;
	}
	*ret_batch = batch;
	return 0;
}

int ruleset_native_stale(const struct config *c,
			 const struct shuffle_entry *old, size_t n,
			 size_t budget, struct nftio_elems *b,
			 size_t *ret_added)
{
	uint32_t timeout_ms = config_daemon(c)->events.stale_seconds * 1000u;
	size_t added = 0;
	int r = 0;

	for (size_t i = 0; r == 0 && i < n; i++) {
		const struct config_watched *w = config_watched(c, old[i].watched);
		const char *set = (w->net.is_prefix ? ruleset_stale_net_sets :
				   ruleset_stale_sets)[w->family == AF_INET6];
		struct nftio_key k;

		for (size_t j = 0; r == 0 && j < old[i].npairs &&
		     added < budget; j++) {
			net_key(w, old[i].pairs[j].proto,
				old[i].pairs[j].redirect, &k);
			r = nftio_elems_add_timeout(b, set, &k, timeout_ms);
			added += r == 0;
		}
	}
	if (r == 0)
		*ret_added = added;
	return r;
}

/* --- for ruleset's other files (ruleset_private.h) -------------------- */

void ruleset_push(json_t *arr, json_t *v, int *err)
{
	push(arr, v, err);
}

json_t *ruleset_payload(const char *proto, const char *field)
{
	return payload(proto, field);
}

json_t *ruleset_rule(const struct config *c, const char *chain_name,
		     json_t *expr)
{
	return rule(c, chain_name, expr);
}

json_t *ruleset_chain(const struct config *c, const char *name,
		      const char *type, const char *hook, int prio)
{
	return chain(c, name, type, hook, prio);
}

void ruleset_trusted_returns(const struct config *c, const char *chain_name,
			     const char *field, json_t *cmds, int *err)
{
	trusted_returns(c, chain_name, field, cmds, err);
}

json_t *ruleset_not_invalid_return(void)
{
	return not_invalid_return();
}

json_t *ruleset_object_cmd(const char *verb, const char *what, const char *t,
			   const char *name)
{
	return object_cmd(verb, what, t, name);
}

json_t *ruleset_map_lookup_gen(enum ruleset_map map, unsigned gen,
			       const char *addr_field, const char *port_proto,
			       const char *port_field)
{
	return map_lookup(map, gen, addr_field, port_proto, port_field);
}

const char *ruleset_nat_gen_chain(unsigned gen)
{
	return gen_chains[0][gen & 1];
}
