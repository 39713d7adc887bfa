/*
 * ruleset: builds the libnftables JSON batch for a mapping.  Pure: inputs
 * in, a new json_t out; nothing here touches the kernel, so the output can
 * be compared with golden files.
 */
#ifndef PORTHOP_RULESET_H
#define PORTHOP_RULESET_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "nftio.h"
#include "shuffle.h"

/* A new batch {"nftables": [...]} holding the startup commands (when
 * with_startup is true) and nothing else.  Returns NULL on allocation
 * failure; the caller owns the result. */
json_t *ruleset_batch_new(const struct config *c, bool with_startup);

/* The command array inside a batch (borrowed). */
json_t *ruleset_commands(json_t *batch);

/* Appends the template's rules for one pair of watched address `watched`.
 * Returns 0 or -ENOMEM. */
int ruleset_add_pair(const struct config *c, json_t *batch, size_t watched,
		     uint16_t port, uint16_t redirect);

/* The whole batch for map.  Template mode: startup commands, then every
 * pair's rules in the order of watched_addresses and tcp_ports.  Native
 * mode: the table's definition (replacing any earlier one), then every
 * pair's map elements.  On success stores a new reference in *ret_batch
 * and returns 0; otherwise returns -ENOMEM. */
int ruleset_build(const struct config *c, const struct shuffle_map *map,
		  json_t **ret_batch);

/*
 * Native mode.  One table (inet family) of porthop's own holds four maps
 * keyed by source address . protocol . port: exact IPv4 and IPv6
 * addresses in hash maps, prefixes in interval maps.  Each pair is two
 * elements, real -> redirect and redirect -> real, so one lookup swaps
 * both ways.  A fixed handful of rules looks the maps up:
 *
 *   pre_nat (nat, prerouting, dstnat):  tracked traffic is redirected
 *   pre_stateless (filter, prerouting, mangle, after conntrack):
 *       packets conntrack calls invalid (FIN, NULL, XMAS, Maimon, any
 *       flag combination it will not track) get their destination port
 *       swapped statelessly
 *   out_stateless (filter, output, -100):  the kernel's untracked replies
 *       to those probes get their source port swapped back
 *
 * Trusted addresses and prefixes are skipped by every chain.
 */

/* The comment on every rule of porthop's native table: its mark.  At
 * start (check_config) a table of the configured name whose rules do not
 * carry it is someone else's, and is refused rather than replaced; one
 * that does (left by a porthopd killed with -9) is taken over.  nft lists
 * it as `comment "porthop"`. */
#define RULESET_NATIVE_MARK "porthop"

/* The four maps, by the kind of entry they hold: exact addresses in a
 * hash map, prefixes in an interval map, of each family.  The order is
 * the order of the table's definition (and of the golden files). */
enum ruleset_map {
	RULESET_MAP_SWAP4,	/* "swap4": exact IPv4 addresses */
	RULESET_MAP_NET4,	/* "net4": IPv4 prefixes */
	RULESET_MAP_SWAP6,	/* "swap6": exact IPv6 addresses */
	RULESET_MAP_NET6,	/* "net6": IPv6 prefixes */
	RULESET_MAP_COUNT
};

/* Names of the maps, indexed by enum ruleset_map. */
extern const char *const ruleset_native_maps[RULESET_MAP_COUNT];

/*
 * prestage (docs/native-mode.md#prestaged-mappings): when it is active
 * (config_prestage_active), the table has a second generation of the four
 * maps ("swap4_b"...), and the base chains goto the chains of one
 * generation, the active one; the other, the standby, is filled with the next mapping
 * ahead of time, and a trigger puts it in force by replacing those rules
 * alone (ruleset_native_switch).  Generation 0 is ruleset_native_maps.
 * The functions below that take gen are those of the same name without
 * it, for the maps of generation gen (0 or 1).
 */
extern const char *const ruleset_native_gen_maps[2][RULESET_MAP_COUNT];
/* The native table's sets of addresses under c (trusted4/6, and
 * tracked4/6 unless untrack_unwatched is false): fills names, returns how many. */
size_t ruleset_native_sets(const struct config *c, const char *names[4]);
/* Which map holds a watched entry. */
enum ruleset_map ruleset_native_map(const struct config_watched *w);
/* The address family of map m's keys: AF_INET or AF_INET6. */
int ruleset_map_family(enum ruleset_map m);
/* Whether map m holds prefixes (an interval map). */
bool ruleset_map_interval(enum ruleset_map m);

/* Appends the table's definition to cmds: "add table", "delete table",
 * then the table, sets, maps, chains and rules, so the batch replaces any
 * earlier definition in the same transaction.  No elements: those of the
 * sets and maps come from ruleset_native_set_elements and
 * ruleset_native_elements.  in_place instead keeps the table, its sets
 * and maps with their elements, and replaces only the chains' rules: for a
 * table of ours, intact, whose elements are replaced in a transaction of
 * their own. */
int ruleset_native_setup(const struct config *c, json_t *cmds, bool in_place);

/* Appends to cmds the flush of untrack_unwatched's two chains and, if
 * on, their rules (nothing when untrack_unwatched is false).  Kept out of
 * the definition: a table defined in place (its maps full) and filled in
 * two transactions would otherwise untrack every packet, watched ones
 * too, while tracked4/6 are still empty; they come once the sets are
 * filled.  With "auto" the engine turns them on and off as other tables
 * start or stop using conntrack; ruleset_build has them only when
 * untrack_unwatched is true. */
int ruleset_native_untrack_rules(const struct config *c, bool on,
				 json_t *cmds);

/* Queues on b the operations that replace the elements of the sets of
 * addresses (trusted4/6, and tracked4/6 unless untrack_unwatched is
 * false), as
 * merged ranges: sent as a netlink batch with the maps', since libnftables
 * would parse them from JSON, hundreds of thousands at scale. */
int ruleset_native_set_elements(const struct config *c, struct nftio_elems *b);

/* Queues on b the operations that empty the four maps (when flush is
 * true), then add both elements of every pair of map. */
int ruleset_native_elements(const struct config *c,
			    const struct shuffle_map *map, bool flush,
			    struct nftio_elems *b);

/* Queues on b both elements of every pair of one entry (for asking the
 * kernel whether it holds them). */
int ruleset_native_entry_elements(const struct config *c,
				  const struct shuffle_entry *entry,
				  struct nftio_elems *b);

/* Queues on b the operations that replace one entry's elements: delete
 * those of old, add those of new (same watched address). */
int ruleset_native_entry(const struct config *c,
			 const struct shuffle_entry *old,
			 const struct shuffle_entry *new_entry,
			 struct nftio_elems *b);

/* Queues on b the change to tracked4/6 (nothing when untrack_unwatched is
 * false) when watched entry idx of c, a runtime entry, is added (adding:
 * c holds it now) or removed (c holds it still): its range, and those of
 * the entries inside it, which it covers while it is watched. */
int ruleset_native_tracked_change(const struct config *c, size_t idx,
				  bool adding, struct nftio_elems *b);

/* Appends the command that deletes the table. */
int ruleset_native_teardown(const struct config *c, json_t *cmds);

/* ruleset_native_setup_after with two generations of maps (two) or one,
 * the rules naming generation gen (two) or 0.  With two, every rule that
 * looks a map up lives in a chain of its generation (nat_g0, nat_g1,
 * ...), which the base chains goto; had_two: the table in place had two
 * (redefined in place with one, the second's chains and maps go).
 * ruleset_native_setup and _after have two (and had_two) as
 * config_prestage_active says. */
int ruleset_native_setup_gen(const struct config *c,
			     const struct config *prev, unsigned gen,
			     bool two, bool had_two, json_t *cmds,
			     bool in_place);

/* Appends to cmds the switch to generation gen of a table with two: the
 * base chains' rules (pre_nat, pre_stateless, out_stateless) flushed and
 * added again with their goto to gen's chains; with the probe event feed,
 * pre_nat stays and the feed's dispatch chains (ev_new, nat_svc4,
 * nat_svc6, nat_new) get their one goto to gen's chains instead.  A
 * handful of commands that bind no map, whatever the number of pairs,
 * applied as one transaction: each packet meets one generation whole. */
int ruleset_native_switch(const struct config *c, unsigned gen,
			  json_t *cmds);

/* Queues on b the flush of generation gen's four maps. */
int ruleset_native_flush_gen(unsigned gen, struct nftio_elems *b);
int ruleset_native_elements_gen(const struct config *c,
				const struct shuffle_map *map, unsigned gen,
				bool flush, struct nftio_elems *b);
int ruleset_native_entry_elements_gen(const struct config *c,
				      const struct shuffle_entry *entry,
				      unsigned gen, struct nftio_elems *b);
int ruleset_native_entry_gen(const struct config *c,
			     const struct shuffle_entry *old,
			     const struct shuffle_entry *new_entry,
			     unsigned gen, struct nftio_elems *b);

/* ruleset_native_setup when the table in place was defined by prev
 * (NULL: not known): what prev did not have is not taken away (an event
 * feed off before and after leaves no deletes in the batch). */
int ruleset_native_setup_after(const struct config *c,
			       const struct config *prev, json_t *cmds,
			       bool in_place);

/* Whether native mode keeps tracked4/6 (untrack_unwatched, or the event
 * rules, which look up who is watched in them). */
bool ruleset_native_tracked(const struct config *c);

/* The probe event feed (docs/events.md): the named counter of the
 * packets the event rules' rate limits held back, and the sets of old
 * redirect ports (IPv4, IPv6) of exact addresses and of prefixes (interval
 * sets: a prefix's element matches every address in it). */
#define RULESET_EVENTS_COUNTER "events_over"
extern const char *const ruleset_stale_sets[2];
extern const char *const ruleset_stale_net_sets[2];

/* Queues on b the redirect ports of the entries old[0..n) (a mapping
 * about to be replaced) into stale4/6 (exact addresses) or stalenet4/6
 * (prefixes) with events.stale_seconds' timeout, at most budget of them.
 * *ret_added: how many.  0 or -ENOMEM. */
int ruleset_native_stale(const struct config *c,
			 const struct shuffle_entry *old, size_t n,
			 size_t budget, struct nftio_elems *b,
			 size_t *ret_added);

/*
 * Derived ports (ruleset_derive.c, docs/follow.md).  Keyed watched entries
 * have maps and chains of their own, beside the shuffle's.  Three base
 * chains send a keyed source to its entry's chains through verdict maps
 * on the address (dnat4/6, dpre4/6, dout4/6): derive_nat (nat,
 * prerouting, dstnat - 10: before pre_nat, whose lookup a NAT binding
 * made here skips), derive_pre (filter, prerouting, -155) and derive_out
 * (filter, output, -105), the last two swapping the ports of what
 * conntrack calls invalid as pre_stateless and out_stateless do.  Keyed
 * entry number k (config_watched.derive_id) has chains dk<k>_nat, _pre,
 * _out and two hash maps keyed by protocol . port: dp<k> (the derived
 * ports of slots t-1, t and t+1 -> the real port; the real port -> a
 * closed port of the pool) and dh<k> (the real port <-> slot t's port,
 * both ways: the stateless swaps of probes and their replies).
 * Without keyed entries none of it exists.
 */
/* Whether c has keyed entries. */
bool ruleset_derive_on(const struct config *c);
/* How many elements the keyed entries hold in the maps. */
size_t ruleset_derive_count(const struct config *c);
/* The names of the keyed entries' maps (dp<k>, dh<k>), at most max of
 * them (static strings); returns how many. */
#define RULESET_DERIVE_MAPS_MAX (2 * CONFIG_DERIVE_MAX)
size_t ruleset_derive_map_names(const struct config *c, const char **names,
				size_t max);

/* Appends the maps and chains (in place: the chains flushed first; the
 * maps keep their elements until ruleset_derive_elements replaces them);
 * with no keyed entry, in place, whatever prev had of them is deleted.
 * 0 or -ENOMEM.  Called by ruleset_native_setup_after. */
int ruleset_derive_setup(const struct config *c, const struct config *prev,
			 json_t *cmds, bool in_place);

/* Queues on b the flush of the maps and every element at time now (unix
 * seconds): each keyed entry's slots around now.  Nothing without keyed
 * entries. */
int ruleset_derive_elements(const struct config *c, int64_t now,
			    struct nftio_elems *b);

/* Queues on b what changes from time `from` to time `to`: for each keyed
 * entry whose slot changed, the elements of the slots that leave (t-2
 * when one boundary passed) deleted, then those of the slots that come
 * (t+1) added.  *ret_entries: how many entries changed (0: nothing
 * queued). */
int ruleset_derive_step(const struct config *c, int64_t from, int64_t to,
			struct nftio_elems *b, size_t *ret_entries);

/* The next slot boundary after now (unix seconds) of any keyed entry, or
 * -1 without keyed entries. */
int64_t ruleset_derive_next(const struct config *c, int64_t now);

/* Single packet authorisation (docs/knock.md): the nflog prefix of the
 * knock rule, the counter of knocks its rate limit held back. */
#define RULESET_KNOCK_PREFIX "porthop:knock"
#define RULESET_KNOCK_COUNTER "knock_over"
/* Queues on b what lets addr (family AF_INET or AF_INET6) in for
 * knock.trust_seconds: its element in knocked4/6, the timeout started
 * again if it was there.  0 or -ENOMEM. */
int ruleset_native_knocked(const struct config *c, int family,
			   const unsigned char addr[16], struct nftio_elems *b);
/* Whether any keyed entry's slot at to differs from its slot at from, in
 * either direction (the real-time clock can be stepped back). */
bool ruleset_derive_moved(const struct config *c, int64_t from, int64_t to);

#endif
