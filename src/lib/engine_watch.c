/*
 * engine_watch: runtime entries come and go (see engine.h).  Each change
 * is one transaction of elements: the entries' map elements and their
 * tracked4/6 ranges, built one entry at a time against the configuration
 * as it is at that point, so that a prefix and an address inside it added
 * (or removed) together leave the sets as a full build would.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_private.h"
#include "ruleset.h"

/* In the order of networks (family, address, length): a prefix comes
 * before the addresses inside it (its address is their lowest, and the
 * shorter length first), so they find it watched already and add no
 * range of their own; and each entry goes into the configuration's
 * sorted index after the one before: the index moves only by the
 * entries already watched after it (none for a feed above them). */
static int cmp_net_order(const void *a, const void *b)
{
	const struct engine_watch *x = *(const struct engine_watch *const *)a;
	const struct engine_watch *y = *(const struct engine_watch *const *)b;

	return config_net_cmp(&x->net, &y->net);
}

/* Undoes the last n additions (each the last entry). */
static void drop_added(struct engine *e, size_t n)
{
	while (n-- > 0) {
		size_t last = config_watched_count(e->cfg) - 1, moved;

		if (e->map && e->map->nentries > last)
			shuffle_map_remove(e->map, last);
		config_watched_remove(e->cfg, last, &moved);
	}
}

/* Elements of one entry (watched entry idx, its pairs in map, of
 * generation gen): added (add) or deleted. */
static int entry_change(struct engine *e, const struct shuffle_map *map,
			unsigned gen, size_t idx, bool add)
{
	struct shuffle_entry none = { .watched = idx };
	const struct shuffle_entry *cur = &map->entries[idx];

	return add ? ruleset_native_entry_gen(e->cfg, &none, cur, gen,
					      e->watch_elems) :
		     ruleset_native_entry_gen(e->cfg, cur, &none, gen,
					      e->watch_elems);
}

/* prestage: entry idx, just added, gets a mapping of its own in the
 * standby too: in its maps in the same transaction if the standby is
 * loaded whole, else from the chunks still to come (it is last). */
static int standby_add(struct engine *e, size_t idx)
{
	int r;

	if (e->standby == NULL)
		return 0;
	r = shuffle_map_append(e->rng, e->cfg, engine_plan(e), e->standby, idx);
	if (r == 0 && e->standby_ready) {
		r = entry_change(e, e->standby, e->gen ^ 1, idx, true);
		e->stage_next = e->standby->nentries;
	}
	return r;
}

int engine_watch_add(struct engine *e, const struct engine_watch *w, size_t n,
		     char **ret_error)
{
	const struct engine_watch **order = calloc(n + 1, sizeof(*order));
	struct timespec t0;
	size_t added = 0, idx;
	char why[512];
	int r = 0;

	if (order == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		order[i] = &w[i];
	qsort(order, n, sizeof(*order), cmp_net_order);
	r = e->map ? engine_settle(e, ret_error) : 0;
	if (r < 0)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	nftio_elems_free(e->watch_elems);
	e->watch_elems = nftio_elems_new(config_table_name(e->cfg));
	if (e->watch_elems == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (; added < n; added++) {
		const struct engine_watch *cur = order[added];

		why[0] = '\0';
		r = config_watched_add(e->cfg, &cur->net, cur->ignore,
				       cur->nignore, why, sizeof(why), &idx);
		if (r < 0)
			break;
		if (e->map == NULL)
			continue;
		r = shuffle_map_append(e->rng, e->cfg, engine_plan(e), e->map,
				       idx);
		if (r < 0) {
			size_t moved;

			config_watched_remove(e->cfg, idx, &moved);
			snprintf(why, sizeof(why), "cannot draw redirect ports: %s",
				 strerror(-r));
			break;
		}
		r = entry_change(e, e->map, e->gen, idx, true);
		if (r == 0)
			r = ruleset_native_tracked_change(e->cfg, idx, true,
							  e->watch_elems);
		if (r == 0)
			r = standby_add(e, idx);
		if (r < 0) {
			added++;
			snprintf(why, sizeof(why), "out of memory");
			break;
		}
	}
	if (r < 0) {
		if (ret_error && r != -EEXIST)
			*ret_error = engine_errstr("%s", why[0] ? why :
						   strerror(-r));
		else if (ret_error)
			*ret_error = engine_errstr("%s is watched already",
						   order[added]->net.text);
		drop_added(e, added);
		engine_stage_reset(e);	/* it may hold them */
		goto out;
	}
	if (e->map == NULL)
		goto out;
	r = engine_apply_map(e, e->cfg, e->map, BATCH_WATCH, NULL, 0, &t0,
			     NULL, ret_error);
	/* The digests reconciliation compares with are taken again at its
	 * next quiet look, not here: a flood of adds would read the maps
	 * back once per add. */
	if (r < 0) {
		drop_added(e, added);
		engine_stage_reset(e);	/* it may hold them */
	}
out:
	nftio_elems_free(e->watch_elems);
	e->watch_elems = NULL;
	free(order);
	return r;
}

/* One entry taken out, kept until the transaction is in. */
struct taken {
	size_t to, from;
	struct config_watched cw;
	struct shuffle_entry se;
	struct shuffle_entry standby;	/* prestage: the standby's entry */
};

/* The reverse order of networks: the addresses inside a prefix go before
 * it, so it finds them gone already and gives ranges back only to those
 * that stay; and each entry leaves the configuration's sorted index
 * below the ones gone before it (a flush moves the index by the entries
 * that stay after each, not by all of them). */
static int cmp_net_reverse(const void *a, const void *b, void *arg)
{
	const struct config *c = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return config_net_cmp(&config_watched(c, y)->net,
			      &config_watched(c, x)->net);
}

int engine_watch_remove(struct engine *e, const size_t *idx, size_t n,
			void (*moved)(void *arg, size_t to, size_t from),
			void *arg, char **ret_error)
{
	size_t *cur = malloc((n + 1) * sizeof(*cur));
	struct taken *t = calloc(n + 1, sizeof(*t));
	bool ready = false;
	struct timespec t0;
	size_t done = 0;
	int r = 0;

	if (cur == NULL || t == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct config_watched *w = config_watched(e->cfg, idx[i]);

		if (w == NULL || !w->runtime) {
			if (ret_error)
				*ret_error = engine_errstr(
					"%s is not a runtime entry",
					w ? w->net.text : "(none)");
			r = -EPERM;
			goto out;
		}
		cur[i] = idx[i];
	}
	qsort_r(cur, n, sizeof(*cur), cmp_net_reverse, e->cfg);
	r = e->map ? engine_settle(e, ret_error) : 0;
	if (r < 0)
		goto out;
	/* After the check, which drops a standby someone else touched. */
	ready = e->map && e->standby && e->standby_ready;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	e->watch_elems = nftio_elems_new(config_table_name(e->cfg));
	if (e->watch_elems == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (; r == 0 && done < n; done++) {
		size_t i = cur[done];

		if (e->map) {
			r = ruleset_native_tracked_change(e->cfg, i, false,
							  e->watch_elems);
			r = r ? r : entry_change(e, e->map, e->gen, i, false);
			/* A standby loaded whole loses it in the same
			 * transaction (one half loaded starts over). */
			if (r == 0 && ready)
				r = entry_change(e, e->standby, e->gen ^ 1, i,
						 false);
			if (r < 0)
				break;
			shuffle_map_take(e->map, i, &t[done].se);
			if (ready)
				shuffle_map_take(e->standby, i, &t[done].standby);
		}
		config_watched_take(e->cfg, i, &t[done].cw, &t[done].from);
		t[done].to = i;
		/* What was last lives at i now. */
		for (size_t k = done + 1; k < n; k++)
			if (cur[k] == t[done].from)
				cur[k] = i;
	}
	if (r == 0 && e->map)
		r = engine_apply_map(e, e->cfg, e->map, BATCH_WATCH, NULL, 0,
				     &t0, NULL, ret_error);
	if (r < 0) {
		if (r == -ENOMEM && ret_error && *ret_error == NULL)
			*ret_error = engine_errstr("%s", "out of memory");
		while (done-- > 0) {
			if (e->map)
				shuffle_map_put_back(e->map, t[done].to,
						     &t[done].se);
			if (e->map && ready)
				shuffle_map_put_back(e->standby, t[done].to,
						     &t[done].standby);
			config_watched_put_back(e->cfg, t[done].to, &t[done].cw);
		}
		goto out;
	}
	if (ready)
		e->stage_next = e->standby->nentries;
	else
		engine_stage_reset(e);	/* it holds the entries gone */
	for (size_t k = 0; k < n; k++) {
		if (moved)
			moved(arg, t[k].to, t[k].from);
		config_watched_release(&t[k].cw);
		shuffle_entry_release(&t[k].se);
		if (ready)
			shuffle_entry_release(&t[k].standby);
	}
out:
	nftio_elems_free(e->watch_elems);
	e->watch_elems = NULL;
	free(cur);
	free(t);
	return r;
}

/* A knock's admission: one small transaction of our own outside the
 * shuffle cycle, told to drift as untrack's switches are, so that the
 * next reconciliation does not take it for someone else's. */
int engine_knock_admit(struct engine *e, int family,
		       const unsigned char addr[16], char **ret_error)
{
	struct nftio_elems *b;
	struct drift_own own;
	int r;

	if (config_mode(e->cfg) != CONFIG_MODE_NATIVE || !e->native_ready ||
	    !config_daemon(e->cfg)->knock.on) {
		*ret_error = engine_errstr("knocks are off or the table is "
					   "not in place");
		return -EAGAIN;
	}
	b = nftio_elems_new(config_table_name(e->cfg));
	if (b == NULL || ruleset_native_knocked(e->cfg, family, addr, b) < 0) {
		nftio_elems_free(b);
		*ret_error = engine_errstr("out of memory");
		return -ENOMEM;
	}
	drift_own_elements_begin(e->drift, &own);
	r = nftio_apply_elems(e->io, b, e->json_elements, ret_error);
	if (r == 0)
		drift_own_end(e->drift, e->cfg, &own);
	nftio_elems_free(b);
	return r;
}
