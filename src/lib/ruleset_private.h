/*
 * ruleset_private: the constructors of ruleset.c that its other files
 * (ruleset_knock.c) build with; nothing else includes it.
 */
#ifndef PORTHOP_RULESET_PRIVATE_H
#define PORTHOP_RULESET_PRIVATE_H

#include "ruleset.h"

/* Appends v (consumed) to arr; a NULL v or a failed append sets *err. */
void ruleset_push(json_t *arr, json_t *v, int *err);
/* {"payload": {"protocol": proto, "field": field}} */
json_t *ruleset_payload(const char *proto, const char *field);
/* An "add rule" of c's table in chain, with porthop's mark; expr
 * consumed. */
json_t *ruleset_rule(const struct config *c, const char *chain, json_t *expr);
/* An "add chain" of c's table with a hook, policy accept. */
json_t *ruleset_chain(const struct config *c, const char *name,
		      const char *type, const char *hook, int prio);
/* {"<verb>": {"<what>": {"family": "inet", "table": t, "name": name}}} */
json_t *ruleset_object_cmd(const char *verb, const char *what, const char *t,
			   const char *name);

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
