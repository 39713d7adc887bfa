/*
 * check: is a configuration one the kernel will take?  The dry runs and
 * See check.h for the contract.
 */
#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ruleset.h"
#include "shuffle.h"

/* The first port of 1..max_port that tcp_ports does not use. */
static uint16_t first_free(const struct config *c)
{
	for (unsigned p = 1; p <= config_max_port(c); p++)
		if (!config_port_used(c, p))
			return (uint16_t)p;
	return 0;
}

/* Whether a dry run failed because the kernel (or libnftables for it)
 * refused what it was given: an expression, set type or feature it does
 * not know.  Otherwise (an interrupted call, no memory, no permission,
 * libnftables' own trouble) the definition was not judged at all. */
static bool definition_refused(int r)
{
	return r == -EOPNOTSUPP || r == -ENOENT || r == -EINVAL ||
	       r == -EAFNOSUPPORT || r == -EPROTONOSUPPORT || r == -E2BIG ||
	       r == -ERANGE || r == -EOVERFLOW;
}

/* Whether a dry run was cut short rather than judged: interrupted (still,
 * after nftio's attempts), out of memory or buffer space. */
static bool check_transient(int r)
{
	return r == -EINTR || r == -EAGAIN || r == -ENOBUFS || r == -ENOMEM;
}

/* Dry-runs the startup commands plus `rules` (a command array) or, when
 * rules is NULL, the startup commands alone. */
static int dry_run(const struct config *c, struct nftio *io, json_t *rules,
		   char **ret_error)
{
	json_t *batch = ruleset_batch_new(c, true);
	int r;

	if (batch == NULL)
		return -ENOMEM;
	if (rules)
		json_array_extend(ruleset_commands(batch), rules);
	r = nftio_apply(io, batch, true, ret_error);
	json_decref(batch);
	return r;
}

static int check_sample(const struct config *c, struct nftio *io,
			size_t widx, struct diag *d)
{
	const struct config_watched *w = config_watched(c, widx);
	uint16_t port = w->nports[CONFIG_TCP] ? w->ports[CONFIG_TCP][0] : 1;
	uint16_t redirect = first_free(c);
	json_t *pair = ruleset_batch_new(c, false);
	json_t *rules, *one = NULL;
	char vbuf[DIAG_VALUE_MAX + 8];
	char *err = NULL;
	int r = 0;

	if (pair == NULL || ruleset_add_pair(c, pair, widx, port, redirect)) {
		json_decref(pair);
		diag_error(d, "%s: out of memory", config_rules_path(c));
		return -ENOMEM;
	}
	rules = ruleset_commands(pair);
	r = dry_run(c, io, rules, &err);
	if (r == 0)
		goto out;
	if (check_transient(r)) {
		/* Not judged: looking for a culprit would only blame one. */
		diag_error(d, "%s: rules: the kernel's dry run for "
			   "watched_addresses[%zu] (ip %s) did not complete: "
			   "%s; nothing was judged, expected it to complete "
			   "when tried again", config_rules_path(c), widx,
			   w->ip, diag_string(vbuf, sizeof(vbuf),
					      err ? err : "?"));
		r = -EINVAL;
		goto out;
	}
	free(err);
	err = NULL;
	/* Something was refused: find out what, so the message can name
	 * the command instead of libnftables' "internal:0:0-0". */
	r = -EINVAL;
	if (dry_run(c, io, NULL, &err) < 0) {
		diag_error(d, "%s: commands: rejected by libnftables: %s",
			   config_startup_path(c),
			   diag_string(vbuf, sizeof(vbuf), err ? err : "?"));
		goto out;
	}
	for (size_t i = 0; i < json_array_size(rules); i++) {
		free(err);
		err = NULL;
		json_decref(one);
		one = json_pack("[O]", json_array_get(rules, i));
		if (one == NULL || dry_run(c, io, one, &err) == 0)
			continue;
		diag_error(d, "%s: rules[%zu]: rejected by libnftables when "
			   "instantiated for watched_addresses[%zu] (ip %s, "
			   "port %u, redirect %u): %s", config_rules_path(c),
			   i, widx, w->ip, port, redirect,
			   diag_string(vbuf, sizeof(vbuf), err ? err : "?"));
		goto out;
	}
	/* Each rule passes alone but not together. */
	diag_error(d, "%s: rules: rejected by libnftables as a whole when "
		   "instantiated for watched_addresses[%zu] (ip %s)",
		   config_rules_path(c), widx, w->ip);
out:
	free(err);
	json_decref(one);
	json_decref(pair);
	return r;
}

/* Native mode: porthop replaces its table whole, so a table of that name
 * must be one porthop made (its rules carry RULESET_NATIVE_MARK: one left
 * by a porthopd killed with -9 is taken over) or none.  Anyone else's,
 * the admin's `table inet filter` say, is refused before anything
 * touches the kernel.  Returns 0 or -EINVAL. */
static int check_table_owner(const struct config *c, struct nftio *io,
			     struct diag *d)
{
	const char *t = config_table_name(c);
	char vbuf[DIAG_VALUE_MAX + 8];
	int r = nftio_table_marked(io, "inet", t, RULESET_NATIVE_MARK);

	if (r == 1 || r == -ENOENT)
		return 0;
	diag_string(vbuf, sizeof(vbuf), t);
	if (r == 0)
		diag_error(d, "%s: nftables_service_configuration.table_name: %s "
			   "names a table that exists and is not porthop's (table "
			   "inet %s: none of its rules carries porthop's comment "
			   "\"" RULESET_NATIVE_MARK "\"), which porthop would "
			   "replace; expected the name of no table or of "
			   "porthop's own: choose another table_name, or, if the "
			   "table is a leftover, delete it with `nft delete table "
			   "inet %s`", config_file(c), vbuf, t, t);
	else
		diag_error(d, "%s: nftables_service_configuration.table_name: "
			   "cannot tell whose table inet %s is: %s; expected %s",
			   config_file(c), t, strerror(-r),
			   r == -EPERM || r == -EACCES ?
			   "CAP_NET_ADMIN (run as root)" : "the kernel to list it");
	return -EINVAL;
}

/* Native mode: the table's definition plus one entry of each kind present
 * (exact or prefix, IPv4 or IPv6), in one dry run. */
static int check_native(const struct config *c, struct nftio *io,
			struct diag *d)
{
	struct shuffle_map *all = shuffle_map_alloc(c);
	struct shuffle_entry picked[RULESET_MAP_COUNT];
	struct shuffle_map sample = { .entries = picked };
	bool seen[RULESET_MAP_COUNT] = { false };
	json_t *batch = ruleset_batch_new(c, false), *ej = NULL;
	struct nftio_elems *elems = NULL;
	char *err = NULL;
	int r = -ENOMEM;

	if (all == NULL || batch == NULL)
		goto out;
	if ((r = check_table_owner(c, io, d)) < 0)
		goto out;
	r = -ENOMEM;
	for (size_t i = 0; i < all->nentries; i++) {
		struct shuffle_entry *e = &all->entries[i];
		int m = ruleset_native_map(config_watched(c, i));

		if (seen[m])
			continue;
		seen[m] = true;
		/* Deterministic redirects: the first free ports. */
		for (size_t k = 0; k < e->npairs; k++) {
			unsigned p = 1, nth = 0;

			for (size_t j = 0; j < k; j++)
				nth += e->pairs[j].proto == e->pairs[k].proto;
			for (; p <= config_max_port(c); p++)
				if (!config_proto_port_used(c, e->pairs[k].proto, p) &&
				    nth-- == 0)
					break;
			e->pairs[k].redirect = (uint16_t)p;
		}
		picked[sample.nentries++] = *e;
	}
	elems = nftio_elems_new(config_table_name(c));
	if (elems == NULL ||
	    ruleset_native_setup(c, ruleset_commands(batch), false) < 0 ||
	    ruleset_native_untrack_rules(c, true, ruleset_commands(batch)) < 0 ||
	    ruleset_native_elements(c, &sample, false, elems) < 0 ||
	    (ej = nftio_elems_json(elems)) == NULL ||
	    json_array_extend(ruleset_commands(batch), ruleset_commands(ej)) < 0)
		goto out;
	r = nftio_apply(io, batch, true, &err);
	if (r < 0) {
		char vbuf[DIAG_VALUE_MAX + 8];

		diag_string(vbuf, sizeof(vbuf), err ? err : "?");
		/* Only a refusal of the definition says something about the
		 * kernel; anything else is said as it happened. */
		if (definition_refused(r))
			diag_error(d, "%s: nftables_service_configuration: the "
				   "kernel refused porthop's native table (inet "
				   "%s): %s; expected a kernel with nftables maps, "
				   "concatenations and intervals (Linux 5.6 or "
				   "later)", config_file(c), config_table_name(c),
				   vbuf);
		else if (r == -EPERM || r == -EACCES)
			diag_error(d, "%s: nftables_service_configuration: the "
				   "kernel's dry run of porthop's native table "
				   "(inet %s) was not permitted: %s; expected "
				   "CAP_NET_ADMIN (run as root)", config_file(c),
				   config_table_name(c), vbuf);
		else if (check_transient(r))
			diag_error(d, "%s: nftables_service_configuration: the "
				   "kernel's dry run of porthop's native table "
				   "(inet %s) did not complete: %s; nothing was "
				   "judged, expected it to complete when tried "
				   "again", config_file(c), config_table_name(c),
				   vbuf);
		else
			diag_error(d, "%s: nftables_service_configuration: the "
				   "dry run of porthop's native table (inet %s) "
				   "failed: %s; expected it to pass, as it does "
				   "with libnftables 1.0.6 and Linux 5.6 or later",
				   config_file(c), config_table_name(c), vbuf);
		r = -EINVAL;
	}
out:
	if (r == -ENOMEM)
		diag_error(d, "%s: out of memory", config_file(c));
	free(err);
	json_decref(ej);
	nftio_elems_free(elems);
	json_decref(batch);
	shuffle_map_free(all);
	return r;
}

bool check_permitted(struct nftio *io)
{
	char *err = NULL;
	int r = nftio_apply_text(io, "{\"nftables\":[{\"add\":{\"table\":"
				 "{\"family\":\"inet\",\"name\":"
				 "\"porthop_probe\"}}}]}", true, &err);
	bool ok = r == 0 || (r != -EPERM && !(err &&
			     strstr(err, "Operation not permitted")));

	free(err);
	return ok;
}

int check_config(const struct config *c, struct nftio *io, struct diag *d)
{
	bool seen4 = false, seen6 = false;
	int r = 0;

	if (config_mode(c) == CONFIG_MODE_NATIVE)
		return check_native(c, io, d);

	if (config_watched_count(c) == 0) {
		char vbuf[DIAG_VALUE_MAX + 8], *err = NULL;

		r = dry_run(c, io, NULL, &err);
		if (r < 0) {
			diag_error(d, "%s: commands: %s: %s", config_startup_path(c),
				   check_transient(r) ? "the kernel's dry run did "
				   "not complete (nothing was judged, try again)" :
				   "rejected by libnftables",
				   diag_string(vbuf, sizeof(vbuf), err ? err : "?"));
			r = -EINVAL;
		}
		free(err);
		return r;
	}
	/* One sample per address family: the rules differ in nothing else,
	 * and a dry run costs the kernel a transaction abort. */
	for (size_t i = 0; i < config_watched_count(c); i++) {
		const struct config_watched *w = config_watched(c, i);
		bool *seen = w->family == AF_INET ? &seen4 : &seen6;

		if (*seen)
			continue;
		*seen = true;
		if (check_sample(c, io, i, d) < 0)
			r = -EINVAL;
	}
	return r;
}
