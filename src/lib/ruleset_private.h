/*
 * ruleset_private: ruleset.c's small constructors, for the files of the
 * ruleset module (ruleset_derive.c, ruleset_events.c) and nothing else.
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

/* ruleset.c's map lookup: address . l4proto . port in the map. */
json_t *ruleset_map_lookup(enum ruleset_map map, const char *addr_field,
			   const char *port_proto, const char *port_field);

/* ruleset_events.c: l4proto . th dport, a (protocol, port) key. */
json_t *ruleset_port_key(void);
/* The probe event feed's objects and rules (pre_nat's included, in
 * place of ruleset.c's), or (off, in place) what an earlier definition
 * (prev) had of them deleted. */
void ruleset_native_events_setup(const struct config *c,
				 const struct config *prev, json_t *cmds,
				 bool in_place, int *err);

#endif
