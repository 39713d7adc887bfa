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

/* The whole batch for map: startup commands, then every pair's rules in
 * the order of watched_addresses and tcp_ports.  On success stores a new
 * reference in *ret_batch and returns 0; otherwise returns -ENOMEM. */
int ruleset_build(const struct config *c, const struct shuffle_map *map,
		  json_t **ret_batch);

#endif
