/*
 * untrack: untrack_unwatched's rules, and the "auto" watcher behind them.
 * See untrack.h for the contract.
 */
#include "untrack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ruleset.h"

struct untrack {
	struct nftio *io;
	bool on;			/* the rules in force */
	uint64_t switches;		/* turned on or off by "auto" */
	char user[UNTRACK_WHO_MAX];	/* what uses conntrack, or "" */
	/* The generation the watcher last saw. */
	uint32_t mark;
	/* The last look at the ruleset for other users of conntrack: the
	 * generation it saw, and what it found. */
	uint32_t look_gen;
	bool have_look;
	int look_user;
	char look_who[UNTRACK_WHO_MAX];
};

struct untrack *untrack_new(struct nftio *io)
{
	struct untrack *u = calloc(1, sizeof(*u));

	if (u)
		u->io = io;
	return u;
}

void untrack_free(struct untrack *u)
{
	free(u);
}

bool untrack_wanted(struct untrack *u, const struct config *cfg)
{
	const char *t = config_table_name(cfg);
	uint32_t gen = 0;
	bool have_gen;
	int r;

	u->user[0] = '\0';
	if (config_untrack(cfg) != CONFIG_UNTRACK_AUTO)
		return config_untrack(cfg) == CONFIG_UNTRACK_ON;
	/* The ruleset, unless nobody committed since the last look. */
	have_gen = nftio_generation(u->io, &gen) == 0;
	if (!have_gen || !u->have_look || gen != u->look_gen) {
		u->look_user = nftio_conntrack_user(u->io, t, NFTIO_CT_RULESET,
						    u->look_who,
						    sizeof(u->look_who));
		u->look_gen = gen;
		u->have_look = have_gen && u->look_user >= 0;
	}
	r = u->look_user;
	if (r != 0)
		snprintf(u->user, sizeof(u->user), "%s", u->look_who);
	if (r == 0)
		r = nftio_conntrack_user(u->io, t, NFTIO_CT_LEGACY, u->user,
					 sizeof(u->user));
	if (r < 0)
		snprintf(u->user, sizeof(u->user), "unknown (the ruleset could "
			 "not be read: %s)", strerror(-r));
	return r == 0;
}

bool untrack_moved(struct untrack *u)
{
	uint32_t gen;

	if (nftio_generation(u->io, &gen) < 0 || gen == u->mark)
		return false;
	u->mark = gen;
	return true;
}

void untrack_seen(struct untrack *u, uint32_t before, uint32_t after,
		  bool fresh)
{
	if (fresh || u->mark == before)
		u->mark = after;
}

int untrack_apply(struct untrack *u, const struct config *cfg, bool on,
		  char **ret_error)
{
	json_t *batch = ruleset_batch_new(cfg, false);
	int r = -ENOMEM;

	if (batch && ruleset_native_untrack_rules(cfg, on,
						  ruleset_commands(batch)) == 0)
		r = nftio_apply(u->io, batch, false, ret_error);
	json_decref(batch);
	return r;
}

void untrack_set(struct untrack *u, bool on, bool switched)
{
	u->on = on;
	if (switched)
		u->switches++;
}

bool untrack_on(const struct untrack *u)
{
	return u->on;
}

uint64_t untrack_switches(const struct untrack *u)
{
	return u->switches;
}

const char *untrack_user(const struct untrack *u)
{
	return u->user;
}
