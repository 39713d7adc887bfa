/*
 * ruleset_private: ruleset.c's small constructors, for the files of the
 * ruleset module (ruleset_derive.c, ruleset_events.c, ruleset_knock.c) and
 * nothing else.
 */
#ifndef PORTHOP_RULESET_PRIVATE_H
#define PORTHOP_RULESET_PRIVATE_H

#include <jansson.h>

#include "config.h"
#include "ruleset.h"

/* json_array_append_new that remembers a failure in *err. */
void ruleset_push(json_t *arr, json_t *v, int *err);
/* {"payload": {"protocol": proto, "field": field}} */
json_t *ruleset_payload(const char *proto, const char *field);
/* An "add rule" of the native table with porthop's mark. */
json_t *ruleset_rule(const struct config *c, const char *chain_name,
		     json_t *expr);
/* An "add chain" of the native table: a base chain, policy accept. */
json_t *ruleset_chain(const struct config *c, const char *name,
		      const char *type, const char *hook, int prio);
/* Rules that let trusted sources (field "saddr") or destinations
 * ("daddr") through. */
void ruleset_trusted_returns(const struct config *c, const char *chain_name,
			     const char *field, json_t *cmds, int *err);
/* ct state != invalid return */
json_t *ruleset_not_invalid_return(void);
/* {"<verb>": {"<what>": {"family": "inet", "table": t, "name": name}}} */
json_t *ruleset_object_cmd(const char *verb, const char *what, const char *t,
			   const char *name);

/* ruleset.c's map lookup: address . l4proto . port in the map of
 * generation gen. */
json_t *ruleset_map_lookup_gen(enum ruleset_map map, unsigned gen,
			       const char *addr_field, const char *port_proto,
			       const char *port_field);
/* The chain of generation gen that holds pre_nat's redirects (nat_g0,
 * nat_g1); static storage. */
const char *ruleset_nat_gen_chain(unsigned gen);

/* ruleset_events.c: l4proto . th dport, a (protocol, port) key. */
json_t *ruleset_port_key(void);
/* The probe event feed's objects and rules (pre_nat's included, in
 * place of ruleset.c's), or (off, in place) what an earlier definition
 * (prev) had of them deleted.  two: the table has both generations of
 * maps, gen the one in force; had_two: an earlier definition may have
 * had both (in place, their chains go if two is false). */
void ruleset_native_events_setup(const struct config *c,
				 const struct config *prev, unsigned gen,
				 bool two, bool had_two, json_t *cmds,
				 bool in_place, int *err);
/* The feed's part of a switch to generation gen: its dispatch chains
 * flushed, each given its one goto to gen's chain (no map bound). */
void ruleset_native_events_switch(const struct config *c, unsigned gen,
				  json_t *cmds, int *err);

/* ruleset_knock.c: the knock rule and the knocked sets, or (off, in
 * place) whatever an earlier definition had of them gone; and the rules
 * that let knocked sources through a chain, as trusted ones. */
void ruleset_knock_sets(const struct config *c, const struct config *prev,
			bool in_place, json_t *cmds, int *err);
void ruleset_knock_setup(const struct config *c, const struct config *prev,
			 json_t *cmds, bool in_place, int *err);
void ruleset_knock_returns(const struct config *c, const char *chain,
			   const char *field, json_t *cmds, int *err);

#endif
