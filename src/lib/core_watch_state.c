/*
 * core_watch_state: the runtime watch list's state (see core.h): the
 * group commit and what a failed one takes back, expiry, the restore at
 * start and the merge into a configuration before a reload.
 */
#include "core_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Puts the runtime entries into cfg (at start, before a reload): each
 * network once, with its latest entry's ignore lists.  One that cfg
 * refuses (trusted now, overlapping a prefix of the file's) stays in the
 * list without being in force, said; those refused for want of room
 * (map_capacity, max_port_number's free ports) are counted apart, for a
 * reload to refuse the configuration instead. */
struct merge {
	struct core *c;
	struct config *cfg;
	size_t refused;
	size_t no_room;
	bool reloading;		/* no room refuses the reload */
};

static int merge_one(void *arg, const struct watchlist_item *it)
{
	struct merge *m = arg;
	char why[512];
	size_t idx;
	int r = config_watched_add(m->cfg, &it->net, it->ignore, it->nignore,
				   why, sizeof(why), &idx);

	if (r == -ENOMEM)
		return r;
	m->no_room += r == -ENOSPC;
	if (r < 0 && r != -EEXIST && m->refused++ < 5)
		warn(m->c, "runtime entry %s (origin %s) %s: %s", it->net.text,
		     it->origin, r == -ENOSPC && m->reloading ?
		     "has no room in the new configuration" :
		     "is not in force", why);
	return 0;
}

int core_watch_merge(struct core *c, struct config *cfg, size_t *ret_no_room)
{
	struct merge m = { c, cfg, 0, 0, ret_no_room != NULL };
	int r;

	if (ret_no_room)
		*ret_no_room = 0;
	if (c->watchlist == NULL || watchlist_count(c->watchlist) == 0)
		return 0;
	r = watchlist_foreach_net(c->watchlist, merge_one, &m);
	if (m.refused > 5)
		warn(c, "%zu more runtime entries %s", m.refused - 5,
		     m.reloading ? "do not fit the new configuration" :
		     "are not in force");
	if (ret_no_room)
		*ret_no_room = m.no_room;
	return r;
}

/* A refresh taken back: the entry as it was, times and lists. */
static int restore_refresh(struct core *c, const struct watch_undo *u)
{
	const uint16_t *ign[CONFIG_NPROTO] = { u->ignore[0], u->ignore[1] };

	return watchlist_put(c->watchlist, &u->net, u->origin, u->added,
			     u->expires, ign, u->nignore);
}

/* A failed commit: every add and refresh since the last one is taken
 * back (the requests are refused); deletes stay done, not durable. */
static void undo_group(struct core *c)
{
	struct config_net *gone = calloc(c->nundo + 1, sizeof(*gone));
	size_t ngone = 0;

	for (size_t i = c->nundo; i-- > 0;) {
		const struct watch_undo *u = &c->undo[i];
		const struct watchlist_item *it =
			watchlist_get(c->watchlist, &u->net, u->origin);

		if (it == NULL)
			continue;	/* deleted since */
		if (u->was_new) {
			watchlist_del(c->watchlist, &u->net, u->origin);
			if (gone && watchlist_holders(c->watchlist, &u->net) == 0)
				gone[ngone++] = u->net;
		} else if (restore_refresh(c, u) < 0) {
			c->state_stale = true;	/* out of memory: kept as is */
		}
	}
	if (gone == NULL || core_watch_unwatch(c, gone, ngone, NULL) < 0)
		c->sweep = true;
	free(gone);
	core_watch_undo_clear(c);
}

static int emit_all(void *arg, int (*emit)(void *ctx,
					   const struct watchlist_item *it),
		    void *ctx)
{
	return watchlist_foreach(arg, NULL, emit, ctx);
}

void core_watch_commit(struct core *c)
{
	char *err = NULL;
	int r = 0;

	c->commit_armed = false;
	if (c->state == NULL)
		return;
	if (c->state_stale ||
	    statefile_should_rewrite(c->state, watchlist_count(c->watchlist)))
		r = statefile_rewrite(c->state, emit_all, c->watchlist, &err);
	else
		r = statefile_commit(c->state, &err);
	if (r == 0) {
		c->state_stale = false;
		core_watch_undo_clear(c);
	} else {
		warn(c, "watch: the state file could not be written, the "
		     "changes since the last write are taken back: %s",
		     err ? err : strerror(-r));
		statefile_discard(c->state);
		undo_group(c);
		/* What the file holds is behind the list: the next commit
		 * writes it whole. */
		c->state_stale = true;
	}
	for (size_t i = 0; i < c->nwaiters; i++) {
		struct watch_waiter *w = &c->waiters[i];

		if (r < 0 && w->adds) {
			core_watch_error(&w->res, CORE_WATCH_STORAGE, "the state "
				     "file could not be written (%s); nothing "
				     "of this request is in force",
				     err ? err : strerror(-r));
		} else if (r < 0) {
			w->res.durable = false;
		}
		if (w->done)
			w->done(w->arg, &w->res);
	}
	c->nwaiters = 0;
	free(err);
	core_watch_arm_expiry(c);
}

/* What expired: the networks (the origin strings go with the entries). */
struct expired {
	struct del_list l;
	char first_origin[WATCHLIST_ORIGIN_MAX + 1];
};

static void expired_one(void *arg, const struct watchlist_item *it)
{
	struct expired *x = arg;

	if (x->l.n == 0)
		snprintf(x->first_origin, sizeof(x->first_origin), "%s",
			 it->origin);
	core_watch_del_push(&x->l, &it->net, "");
}

void core_watch_expire(struct core *c)
{
	const struct config *cfg = engine_config(c->engine);
	struct expired x = { { 0 }, "" };
	char *err = NULL;
	size_t n;

	if (c->watchlist == NULL)
		return;
	n = watchlist_expire(c->watchlist, core_watch_now(), 0, expired_one, &x);
	if (c->sweep) {
		/* Entries a failed removal left in force. */
		c->sweep = false;
		for (size_t i = config_configured_count(cfg);
		     i < config_watched_count(cfg); i++)
			if (watchlist_holders(c->watchlist,
					      &config_watched(cfg, i)->net) == 0)
				core_watch_del_push(&x.l, &config_watched(cfg, i)->net, "");
	}
	if (x.l.n > 0 && core_watch_unwatch(c, x.l.nets, x.l.n, &err) < 0) {
		warn(c, "watch: taking expired entries out of the mapping "
		     "failed (retried in 1 s): %s", err ? err : "?");
		c->sweep = true;
		if (c->hooks.expiry)
			c->hooks.expiry(c->hooks.arg, core_watch_now() + 1);
	}
	if (n > 0)
		core_watch_say(c, "expired", n, x.l.nets[0].text, x.first_origin);
	free(err);
	free(x.l.nets);
	free(x.l.origins);
	if (!c->sweep)
		core_watch_arm_expiry(c);
}

/* Replay of the state file into the list. */
static int load_put(void *arg, const struct watchlist_item *it)
{
	struct core *c = arg;
	int r = watchlist_put(c->watchlist, &it->net, it->origin, it->added,
			      it->expires, it->ignore, it->nignore);

	return r == -E2BIG || r == -EINVAL ? 0 : r < 0 ? r : 0;
}

static int load_del(void *arg, const struct config_net *net,
		    const char *origin)
{
	struct core *c = arg;

	watchlist_del(c->watchlist, net, origin);
	return 0;
}

static int load_flush(void *arg, const char *origin)
{
	struct core *c = arg;

	watchlist_flush(c->watchlist, origin, NULL, NULL);
	return 0;
}

int core_watch_restore(struct core *c, struct config *cfg)
{
	const struct config_daemon *d = config_daemon(cfg);
	char *note = NULL;
	int r;

	c->watchlist = watchlist_new(d->max_runtime_entries);
	if (c->watchlist == NULL)
		return -ENOMEM;
	if (config_mode(cfg) != CONFIG_MODE_NATIVE ||
	    d->state_directory == NULL || d->state_directory[0] == '\0')
		return 0;
	c->state = statefile_open(d->state_directory, &note);
	if (c->state == NULL) {
		warn(c, "%s", note ? note : "out of memory");
		free(note);
		return -EIO;
	}
	r = statefile_load(c->state, core_watch_now(), load_put, load_del, load_flush,
			   c, &note);
	if (note)
		warn(c, "watch: %s", note);
	free(note);
	if (r < 0)
		return r;
	if (watchlist_count(c->watchlist) > 0)
		info(c, "watch: %zu runtime entries restored from %s",
		     watchlist_count(c->watchlist), statefile_path(c->state));
	return core_watch_merge(c, cfg, NULL);
}

const struct watchlist *core_watchlist(const struct core *c)
{
	return c->watchlist;
}

void core_watch_stats(const struct core *c, struct statefile_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (c->state)
		statefile_get_stats(c->state, ret);
}

void core_watch_free(struct core *c)
{
	/* Stopping: what waits for a commit gets it now, without the
	 * loop's hooks (the caller may have freed the timers they arm:
	 * nothing is armed after core_free). */
	c->hooks.commit = NULL;
	c->hooks.expiry = NULL;
	if (c->nwaiters)
		core_watch_commit(c);
	statefile_free(c->state);
	watchlist_free(c->watchlist);
	core_watch_undo_clear(c);
	free(c->undo);
	free(c->waiters);
}
