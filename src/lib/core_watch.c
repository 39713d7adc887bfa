/*
 * core_watch: the runtime watch list's policy (see core.h): who may add
 * what, what a change does to the mapping (a network's first holder
 * watches it, its last one gone stops), the group commit of the state
 * file and what a failed commit undoes, expiry, the restore at start and
 * across reloads.
 */
#include "core_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

int64_t core_watch_now(void)
{
	return (int64_t)time(NULL);
}

void core_watch_error(struct core_watch_result *res,
			 enum core_watch_status st, const char *fmt, ...)
{
	va_list ap;

	res->status = st;
	va_start(ap, fmt);
	vsnprintf(res->error, sizeof(res->error), fmt, ap);
	va_end(ap);
}

static bool refuse_mode(struct core *c, struct core_watch_result *res)
{
	const struct config *cfg = engine_config(c->engine);

	if (config_mode(cfg) == CONFIG_MODE_NATIVE && c->watchlist)
		return false;
	core_watch_error(res, CORE_WATCH_MODE, "runtime watch entries need native "
		     "mode; %s names nft_address_rules_path (template mode)",
		     config_file(cfg));
	return true;
}

static bool refuse_origin(struct core_watch_result *res, const char *origin)
{
	char vbuf[DIAG_VALUE_MAX + 8];

	if (watchlist_origin_valid(origin))
		return false;
	core_watch_error(res, CORE_WATCH_INVALID, "origin %s: expected a name of "
		     "1 to 64 characters a-z, 0-9, '_', '.', '-'",
		     diag_string(vbuf, sizeof(vbuf), origin ? origin : ""));
	return true;
}

/* The address text of entry i, parsed and checked. */
static int parse_net(struct core *c, const char *text, size_t i,
		     struct config_net *ret, struct core_watch_result *res)
{
	const struct config_daemon *d = config_daemon(engine_config(c->engine));
	char vbuf[DIAG_VALUE_MAX + 8], why[256];

	if (text == NULL || config_parse_net(text, true, ret) < 0) {
		core_watch_error(res, CORE_WATCH_INVALID, "entries[%zu]: %s is not "
			     "an address or prefix; expected ADDR or ADDR/LEN "
			     "(host bits zero)", i,
			     diag_string(vbuf, sizeof(vbuf), text ? text : ""));
		return -EINVAL;
	}
	if (watchlist_check_net(ret, d->min_prefix_len_v4, d->min_prefix_len_v6,
				why, sizeof(why)) < 0) {
		core_watch_error(res, CORE_WATCH_INVALID, "entries[%zu]: %s", i, why);
		return -EINVAL;
	}
	return 0;
}

static int cmp_net_ptr(const void *a, const void *b)
{
	return config_net_cmp(*(const struct config_net *const *)a,
			      *(const struct config_net *const *)b);
}

/* Whether nets[0..n) names a network twice (*ret_dup: one of them). */
static int find_repeat(const struct config_net *nets, size_t n,
		       const struct config_net **ret_dup)
{
	const struct config_net **p = malloc((n + 1) * sizeof(*p));

	if (p == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		p[i] = &nets[i];
	qsort(p, n, sizeof(*p), cmp_net_ptr);
	*ret_dup = NULL;
	for (size_t i = 1; i < n && *ret_dup == NULL; i++)
		if (cmp_net_ptr(&p[i - 1], &p[i]) == 0)
			*ret_dup = p[i];
	free(p);
	return 0;
}

static int undo_push(struct core *c, const struct config_net *net,
		     const char *origin, const struct watchlist_item *prev)
{
	struct watch_undo *u;

	if (c->nundo == c->cap_undo) {
		size_t cap = c->cap_undo ? c->cap_undo * 2 : 64;

		u = realloc(c->undo, cap * sizeof(*u));
		if (u == NULL)
			return -ENOMEM;
		c->undo = u;
		c->cap_undo = cap;
	}
	u = &c->undo[c->nundo++];
	u->net = *net;
	snprintf(u->origin, sizeof(u->origin), "%s", origin);
	u->was_new = prev == NULL;
	u->added = prev ? prev->added : 0;
	u->expires = prev ? prev->expires : 0;
	for (int p = 0; p < CONFIG_NPROTO; p++) {
		size_t n = prev ? prev->nignore[p] : 0;

		u->nignore[p] = n;
		u->ignore[p] = malloc((n + 1) * sizeof(*u->ignore[p]));
		if (u->ignore[p] == NULL) {
			free(u->ignore[0]);
			c->nundo--;
			return -ENOMEM;
		}
		if (n)
			memcpy(u->ignore[p], prev->ignore[p],
			       n * sizeof(*u->ignore[p]));
	}
	return 0;
}

/* What the next commit could take back is no more (written, or nothing
 * to write to). */
void core_watch_undo_clear(struct core *c)
{
	for (size_t i = 0; i < c->nundo; i++) {
		free(c->undo[i].ignore[0]);
		free(c->undo[i].ignore[1]);
	}
	c->nundo = 0;
}

/* The next expiry, to the timer hook. */
void core_watch_arm_expiry(struct core *c)
{
	if (c->hooks.expiry && c->watchlist)
		c->hooks.expiry(c->hooks.arg, watchlist_next_expiry(c->watchlist));
}

/* Moves of watched entries' indexes, for the trigger queue. */
static void entry_moved(void *arg, size_t to, size_t from)
{
	struct core *c = arg;

	trigger_queue_moved(c->queue, to, from);
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

int core_watch_unwatch(struct core *c, const struct config_net *nets,
			size_t n, char **ret_error)
{
	const struct config *cfg = engine_config(c->engine);
	size_t *idx = malloc((n + 1) * sizeof(*idx)), k = 0, m = 0;
	int r = 0;

	if (idx == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		long at = config_watched_find(cfg, nets[i].text);

		if (at >= 0 && config_watched(cfg, (size_t)at)->runtime &&
		    watchlist_holders(c->watchlist, &nets[i]) == 0)
			idx[k++] = (size_t)at;
	}
	/* A network may come more than once (two origins' entries that
	 * expired in the same second, an expiry and the sweep), and
	 * engine_watch_remove takes distinct entries: the same index twice
	 * would take out whichever entry moved into its place. */
	qsort(idx, k, sizeof(*idx), cmp_size);
	for (size_t i = 0; i < k; i++)
		if (m == 0 || idx[m - 1] != idx[i])
			idx[m++] = idx[i];
	k = m;
	if (k > 0)
		r = engine_watch_remove(c->engine, idx, k, entry_moved, c,
					ret_error);
	core_observe(c);
	free(idx);
	return r;
}

static void arm_commit(struct core *c)
{
	if (!c->commit_armed && c->hooks.commit) {
		c->commit_armed = true;
		c->hooks.commit(c->hooks.arg);
	}
}

/* Queues the reply for after the commit; 1, or 0 when it is complete now
 * (no state file). */
static int wait_commit(struct core *c, struct core_watch_result *res,
		       core_watch_done_fn done, void *arg, bool adds)
{
	struct watch_waiter *w;

	if (c->state == NULL) {
		core_watch_undo_clear(c);
		res->durable = false;
		return 0;
	}
	res->durable = true;
	if (c->nwaiters == c->cap_waiters) {
		size_t cap = c->cap_waiters ? c->cap_waiters * 2 : 16;

		w = realloc(c->waiters, cap * sizeof(*w));
		if (w == NULL) {
			/* Answered now; the commit still comes. */
			arm_commit(c);
			res->durable = false;
			return 0;
		}
		c->waiters = w;
		c->cap_waiters = cap;
	}
	c->waiters[c->nwaiters++] = (struct watch_waiter){ done, arg, *res,
							   adds };
	arm_commit(c);
	return 1;
}

/* One line per change, through a limit: a bulk add is one line. */
void core_watch_say(struct core *c, const char *what, size_t n,
		       const char *one, const char *origin)
{
	char note[48];
	uint64_t held;

	if (n == 0 || !log_ratelimit(&c->watch_log, time(NULL), LOG_BURST * 4,
				     LOG_INTERVAL_S, &held))
		return;
	snprintf(note, sizeof(note), "%s", "");
	if (held)
		snprintf(note, sizeof(note), " (%llu more lines not logged)",
			 (unsigned long long)held);
	if (n == 1)
		info(c, "watch: %s %s (origin %s)%s", one, what, origin, note);
	else
		info(c, "watch: %zu entries %s (origin %s)%s", n, what, origin,
		     note);
}

int core_watch_add(struct core *c, const char *origin,
		   const struct core_watch_req *req, size_t n,
		   struct core_watch_result *res, core_watch_done_fn done,
		   void *arg)
{
	const struct config_daemon *d = config_daemon(engine_config(c->engine));
	struct config_net *nets = NULL;
	struct engine_watch *fresh = NULL;
	const struct config_net *dup;
	size_t nfresh = 0, nnew = 0;
	int64_t now = core_watch_now();
	uint64_t fails;
	char *err = NULL;
	int r = -ENOMEM;

	memset(res, 0, sizeof(*res));
	if (refuse_mode(c, res) || refuse_origin(res, origin))
		goto refused;
	if (c->state_broken) {
		core_watch_error(res, CORE_WATCH_STORAGE, "the state directory %s "
			     "was unusable when porthopd started (see its log); "
			     "runtime entries could not be kept",
			     d->state_directory);
		goto refused;
	}
	nets = calloc(n + 1, sizeof(*nets));
	fresh = calloc(n + 1, sizeof(*fresh));
	if (nets == NULL || fresh == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		if (parse_net(c, req[i].address, i, &nets[i], res) < 0)
			goto refused;
		if (req[i].ttl < 0 || req[i].ttl > (int64_t)d->max_ttl_s) {
			core_watch_error(res, CORE_WATCH_INVALID, "entries[%zu]: "
				     "ttl %lld is out of range; expected 1 to %u "
				     "seconds (max_ttl_seconds), or none", i,
				     (long long)req[i].ttl, d->max_ttl_s);
			goto refused;
		}
		if (req[i].expires &&
		    (req[i].expires <= now ||
		     req[i].expires - now > (int64_t)d->max_ttl_s)) {
			core_watch_error(res, CORE_WATCH_INVALID, "entries[%zu]: "
				     "expiry %lld is %s; expected 1 to %u "
				     "seconds ahead (max_ttl_seconds)", i,
				     (long long)req[i].expires,
				     req[i].expires <= now ? "past" :
				     "too far ahead", d->max_ttl_s);
			goto refused;
		}
		if (!watchlist_has(c->watchlist, &nets[i], origin))
			nnew++;
		if (config_watched_find(engine_config(c->engine),
					nets[i].text) < 0) {
			fresh[nfresh].net = nets[i];
			memcpy(fresh[nfresh].ignore, req[i].ignore,
			       sizeof(fresh[nfresh].ignore));
			memcpy(fresh[nfresh].nignore, req[i].nignore,
			       sizeof(fresh[nfresh].nignore));
			nfresh++;
		}
	}
	if (find_repeat(nets, n, &dup) < 0)
		goto nomem;
	if (dup) {
		core_watch_error(res, CORE_WATCH_INVALID, "%s is named twice; "
			     "expected each address or prefix once", dup->text);
		goto refused;
	}
	if (watchlist_count(c->watchlist) + nnew > d->max_runtime_entries) {
		core_watch_error(res, CORE_WATCH_INVALID, "%zu more runtime entries "
			     "would pass max_runtime_entries (%u; %zu held)",
			     nnew, d->max_runtime_entries,
			     watchlist_count(c->watchlist));
		goto refused;
	}
	/* The kernel first, in one transaction: refused, nothing changed.
	 * A refusal by the kernel counts as a failed apply; anything else
	 * refused was the entries' own fault. */
	fails = engine_stats(c->engine)->failures;
	r = nfresh ? engine_watch_add(c->engine, fresh, nfresh, &err) : 0;
	core_observe(c);
	if (r < 0) {
		core_watch_error(res, engine_stats(c->engine)->failures != fails ?
			     CORE_WATCH_KERNEL : r == -EOPNOTSUPP ?
			     CORE_WATCH_MODE : r == -ENOMEM ? CORE_WATCH_MEMORY :
			     CORE_WATCH_INVALID, "%s", err ? err : strerror(-r));
		free(err);
		goto refused;
	}
	for (size_t i = 0; i < n; i++) {
		const struct watchlist_item *prev =
			watchlist_get(c->watchlist, &nets[i], origin);
		int64_t expires = req[i].expires ? req[i].expires :
				  req[i].ttl ? now + req[i].ttl : 0;
		const struct watchlist_item *it;

		if (undo_push(c, &nets[i], origin, prev) < 0 ||
		    (r = watchlist_put(c->watchlist, &nets[i], origin,
				       prev ? prev->added : now, expires,
				       req[i].ignore, req[i].nignore)) < 0) {
			/* Out of memory half-way: what is in goes back out. */
			core_watch_unwatch(c, nets, n, NULL);
			if (r == -E2BIG) {
				core_watch_error(res, CORE_WATCH_INVALID, "origin "
					     "%s: porthopd holds %d origins "
					     "already, the most it keeps",
					     origin, WATCHLIST_MAX_ORIGINS);
				goto refused;
			}
			goto nomem;
		}
		if (prev)
			res->refreshed++;
		else
			res->added++;
		it = watchlist_get(c->watchlist, &nets[i], origin);
		if (c->state && it && statefile_put(c->state, it) < 0)
			c->state_stale = true;
	}
	core_watch_say(c, "added", res->added + res->refreshed,
		   n ? nets[0].text : "", origin);
	res->entries = watchlist_count(c->watchlist);
	core_watch_arm_expiry(c);
	free(nets);
	free(fresh);
	return wait_commit(c, res, done, arg, true);
nomem:
	core_watch_error(res, CORE_WATCH_MEMORY, "out of memory");
refused:
	if (res->status != CORE_WATCH_MODE && origin &&
	    watchlist_origin_valid(origin) && c->watchlist)
		watchlist_count_refused(c->watchlist, origin);
	free(nets);
	free(fresh);
	return 0;
}


int core_watch_del_push(struct del_list *l, const struct config_net *net,
		    const char *origin)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct config_net *n = realloc(l->nets, cap * sizeof(*n));
		const char **o;

		if (n == NULL)
			return -ENOMEM;
		l->nets = n;
		o = realloc(l->origins, cap * sizeof(*o));
		if (o == NULL)
			return -ENOMEM;
		l->origins = o;
		l->cap = cap;
	}
	l->nets[l->n] = *net;
	l->origins[l->n++] = origin;
	return 0;
}

/* Pairs in network order, then origin order, for sort_pairs. */
static int cmp_pair(const void *a, const void *b, void *arg)
{
	const struct del_list *l = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int r = config_net_cmp(&l->nets[x], &l->nets[y]);

	return r ? r : strcmp(l->origins[x], l->origins[y]);
}

/* Sorts the pairs by network (origins follow their networks), each pair
 * once: a request may name a network twice, and a pair counted twice
 * would never match the network's holders (still in force, unlisted). */
static int sort_pairs(struct del_list *l)
{
	size_t *p = malloc((l->n + 1) * sizeof(*p)), m = 0;
	struct config_net *nets = malloc((l->n + 1) * sizeof(*nets));
	const char **origins = malloc((l->n + 1) * sizeof(*origins));

	if (p == NULL || nets == NULL || origins == NULL) {
		free(p);
		free(nets);
		free(origins);
		return -ENOMEM;
	}
	for (size_t i = 0; i < l->n; i++)
		p[i] = i;
	qsort_r(p, l->n, sizeof(*p), cmp_pair, l);
	for (size_t i = 0; i < l->n; i++) {
		if (m > 0 && cmp_pair(&p[i - 1], &p[i], l) == 0)
			continue;
		nets[m] = l->nets[p[i]];
		origins[m++] = l->origins[p[i]];
	}
	free(p);
	free(l->nets);
	free(l->origins);
	l->nets = nets;
	l->origins = origins;
	l->n = m;
	l->cap = m + 1;
	return 0;
}

static int del_apply(struct core *c, struct del_list *l,
		     struct core_watch_result *res, const char *what,
		     const char *origin_said)
{
	struct config_net *gone = calloc(l->n + 1, sizeof(*gone));
	size_t ngone = 0;
	char *err = NULL;
	int r;

	if (gone == NULL) {
		core_watch_error(res, CORE_WATCH_MEMORY, "out of memory");
		return -ENOMEM;
	}
	/* Which networks lose their last holder: counted before anything
	 * changes (pairs are distinct), over the pairs sorted by network. */
	r = sort_pairs(l);
	if (r < 0) {
		free(gone);
		core_watch_error(res, CORE_WATCH_MEMORY, "out of memory");
		return r;
	}
	for (size_t i = 0, run; i < l->n; i += run) {
		for (run = 1; i + run < l->n &&
			      config_net_cmp(&l->nets[i], &l->nets[i + run]) == 0;
		     run++)
			;
		if (watchlist_holders(c->watchlist, &l->nets[i]) == run)
			gone[ngone++] = l->nets[i];
	}
	for (size_t i = 0; i < l->n; i++) {
		if (c->state)
			statefile_del(c->state, &l->nets[i], l->origins[i]);
		watchlist_del(c->watchlist, &l->nets[i], l->origins[i]);
	}
	r = core_watch_unwatch(c, gone, ngone, &err);
	if (r < 0) {
		/* Out of the list, still in force: the sweep retries. */
		warn(c, "watch: taking %zu entries out of the mapping failed "
		     "(retried): %s", ngone, err ? err : strerror(-r));
		c->sweep = true;
		core_watch_arm_expiry(c);
	}
	free(err);
	free(gone);
	res->deleted = l->n;
	res->entries = watchlist_count(c->watchlist);
	core_watch_say(c, what, l->n, l->n ? l->nets[0].text : "", origin_said);
	return 0;
}

int core_watch_del(struct core *c, const char *origin,
		   const char *const *addr, size_t n,
		   struct core_watch_result *res, core_watch_done_fn done,
		   void *arg)
{
	struct del_list l = { 0 };
	struct config_net net;

	memset(res, 0, sizeof(*res));
	if (refuse_mode(c, res) || (origin && refuse_origin(res, origin)))
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (parse_net(c, addr[i], i, &net, res) < 0)
			goto out;
		/* Without an origin, every holder's: the origins are looked
		 * at until as many as hold the network are found (none for
		 * most addresses of a large request). */
		size_t want = origin ? 1 : watchlist_holders(c->watchlist, &net);

		for (size_t k = 0, found = 0; found < want &&
		     k < watchlist_origin_count(c->watchlist); k++) {
			const char *o = origin ? origin :
					watchlist_origin(c->watchlist, k)->name;

			if (!watchlist_has(c->watchlist, &net, o))
				continue;
			found++;
			if (core_watch_del_push(&l, &net, o) < 0) {
				core_watch_error(res, CORE_WATCH_MEMORY, "out of memory");
				goto out;
			}
		}
	}
	if (l.n == 0) {
		core_watch_error(res, CORE_WATCH_NOT_FOUND, "%s%s: no runtime entry%s%s",
			     n == 1 ? "" : "none of the addresses",
			     n == 1 ? addr[0] : "", origin ? " of origin " : "",
			     origin ? origin : "");
		goto out;
	}
	if (del_apply(c, &l, res, "deleted", origin ? origin : "any") == 0) {
		free(l.nets);
		free(l.origins);
		return wait_commit(c, res, done, arg, false);
	}
out:
	free(l.nets);
	free(l.origins);
	return 0;
}

struct flush_collect {
	struct del_list *l;
	const char *name;	/* the origin's interned name */
	int r;
};

static int collect_item(void *arg, const struct watchlist_item *it)
{
	struct flush_collect *f = arg;

	/* Not it->origin: the walk's item lives on its stack, and the
	 * pairs are used after the walk has returned. */
	f->r = core_watch_del_push(f->l, &it->net, f->name);
	return f->r;
}

int core_watch_flush(struct core *c, const char *origin,
		     struct core_watch_result *res, core_watch_done_fn done,
		     void *arg)
{
	struct del_list l = { 0 };
	struct flush_collect f = { &l, NULL, 0 };
	const char *name = NULL;
	int r = 0;

	memset(res, 0, sizeof(*res));
	if (refuse_mode(c, res) || refuse_origin(res, origin))
		return 0;
	/* The origin's interned name lives as long as the list. */
	for (size_t k = 0; k < watchlist_origin_count(c->watchlist); k++)
		if (strcmp(watchlist_origin(c->watchlist, k)->name, origin) == 0)
			name = watchlist_origin(c->watchlist, k)->name;
	f.name = name;
	if (name)
		watchlist_foreach(c->watchlist, name, collect_item, &f);
	if (f.r < 0) {
		core_watch_error(res, CORE_WATCH_MEMORY, "out of memory");
	} else if (l.n > 0 && del_apply(c, &l, res, "flushed", origin) == 0) {
		if (c->state)
			statefile_flush_origin(c->state, origin);
		r = wait_commit(c, res, done, arg, false);
	} else if (l.n == 0) {
		res->entries = watchlist_count(c->watchlist);
		r = wait_commit(c, res, done, arg, false);
	}
	free(l.nets);
	free(l.origins);
	return r;
}

