/*
 * core_fleet: the fleet stream's entries and snapshot, decided.  See
 * core_fleet.h for the contract.
 */
#include "core_fleet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_private.h"
#include "diag.h"

/* A refused entry: counted, logged through a limit (a publisher causes
 * it). */
static void entry_refused(struct core *c, const char *why)
{
	char wbuf[DIAG_VALUE_MAX + 8], note[48] = "";
	uint64_t held;

	c->counters.watch_refused++;
	if (!log_ratelimit(&c->refusal_log, time(NULL), LOG_BURST,
			   LOG_INTERVAL_S, &held))
		return;
	if (held)
		snprintf(note, sizeof(note), " (%llu more lines not logged)",
			 (unsigned long long)held);
	warn(c, "fleet: stream entry refused: %s%s",
	     diag_line(wbuf, sizeof(wbuf), why), note);
}

int core_fleet_decode(struct core *c, const char *msg, size_t len,
		      const struct fleet_id *id, struct fleet_op *ret_op)
{
	char why[256];
	unsigned window_s;

	if (c->auth) {
		enum auth_result r = auth_verify_mac(c->auth, msg, len, &msg,
						     &len);

		if (r != AUTH_OK) {
			c->counters.refused[r]++;
			entry_refused(c, auth_result_name(r));
			return -EINVAL;
		}
	}
	if (fleet_op_decode(msg, len, ret_op, why, sizeof(why)) < 0) {
		entry_refused(c, why);
		return -EINVAL;
	}
	if (c->auth == NULL)
		return 0;	/* unsigned: anyone could write anything */
	window_s = config_daemon(engine_config(c->engine))->trigger_window_s;
	if (fleet_check_time(ret_op, id, (int64_t)time(NULL), window_s, why,
			     sizeof(why)) < 0) {
		c->counters.refused[AUTH_STALE]++;
		entry_refused(c, why);
		return -ESTALE;
	}
	return 0;
}

enum core_fleet_outcome core_fleet_trigger(struct core *c,
					   const struct fleet_op *op,
					   enum fleet_verdict *ret_verdict)
{
	*ret_verdict = FLEET_ACK;
	if (op->address[0] == '\0') {
		core_trigger(c, SRC_STREAM);
	} else if (core_trigger_address(c, op->address, SRC_STREAM) < 0) {
		/* Not watched here: counted and said by the core; done. */
		return CORE_FLEET_NOW;
	}
	return CORE_FLEET_AFTER_SHUFFLE;
}

/* A part of a run that waits for the group commit. */
struct part {
	core_fleet_done_fn done;
	void *arg;
	size_t from, n;
};

static void part_done(void *arg, const struct core_watch_result *res)
{
	struct part *p = arg;

	/* The commit failed: an add is taken back, and stays pending. */
	p->done(p->arg, p->from, p->n, fleet_verdict(res->status));
	free(p);
}

/* Whether a refusal of several ops together may be one op's own fault,
 * so that halves could fare better: the entries' (an address trusted
 * here, a limit, a repeat) or the kernel's.  Not the mode, the state
 * directory or memory, which refuse every part alike. */
static bool splittable(enum core_watch_status st)
{
	return st == CORE_WATCH_INVALID || st == CORE_WATCH_KERNEL;
}

struct run {
	struct core *c;
	enum fleet_run_kind kind;
	const char *origin;			/* "fleet." ORIGIN */
	struct core_watch_req *req;		/* adds */
	const char **addr;			/* deletes */
	core_fleet_done_fn done;
	void *arg;
};

/* Ops [from, from + n) of the run as one change; its halves in order
 * when refused.  Depth: log2 of the run's length. */
static void apply_part(const struct run *r, size_t from, size_t n)
{
	struct core_watch_result res;
	struct part *p = malloc(sizeof(*p));
	enum fleet_verdict v;
	int pending;

	if (p == NULL) {
		r->done(r->arg, from, n, FLEET_RETRY);
		return;
	}
	*p = (struct part){ r->done, r->arg, from, n };
	if (r->kind == FLEET_RUN_ADD)
		pending = core_watch_add(r->c, r->origin, &r->req[from], n,
					 &res, part_done, p);
	else
		pending = core_watch_del(r->c, r->origin, &r->addr[from], n,
					 &res, part_done, p);
	if (pending)
		return;
	free(p);
	v = fleet_verdict(res.status);
	if (v != FLEET_ACK && n > 1 && splittable(res.status)) {
		apply_part(r, from, n / 2);
		apply_part(r, from + n / 2, n - n / 2);
		return;
	}
	if (v == FLEET_ACK_REFUSED) {
		for (size_t i = 0; i < n; i++)
			entry_refused(r->c, res.error);
	} else if (v == FLEET_RETRY) {
		warn(r->c, "fleet: %zu stream entr%s not applied, left "
		     "pending: %s", n, n == 1 ? "y" : "ies", res.error);
	}
	r->done(r->arg, from, n, v);
}

void core_fleet_apply(struct core *c, enum fleet_run_kind kind,
		      const struct fleet_op *ops, size_t n,
		      core_fleet_done_fn done, void *arg)
{
	char origin[WATCHLIST_ORIGIN_MAX + 1];
	struct run r = { c, kind, origin, NULL, NULL, done, arg };

	if (n == 0)
		return;
	/* ops[0].origin is at most FLEET_ORIGIN_MAX: it fits. */
	fleet_local_origin(ops[0].origin, origin, sizeof(origin));
	if (kind == FLEET_RUN_ADD)
		r.req = calloc(n, sizeof(*r.req));
	else
		r.addr = calloc(n, sizeof(*r.addr));
	if (r.req == NULL && r.addr == NULL) {
		done(arg, 0, n, FLEET_RETRY);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (r.req) {
			r.req[i].address = ops[i].address;
			r.req[i].expires = ops[i].expires;
		} else {
			r.addr[i] = ops[i].address;
		}
	}
	apply_part(&r, 0, n);
	free(r.req);
	free(r.addr);
}

uint64_t core_shuffles(const struct core *c)
{
	return engine_stats(c->engine)->shuffles;
}

/* The local fleet entries, for the diff. */
struct collect {
	struct fleet_item *items;
	size_t n, cap;
	int err;
};

static int collect_fleet(void *arg, const struct watchlist_item *it)
{
	struct collect *k = arg;
	const char *o = fleet_origin_of(it->origin);
	struct fleet_item *p;

	if (o == NULL)
		return 0;
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 64;

		p = realloc(k->items, cap * sizeof(*p));
		if (p == NULL) {
			k->err = -ENOMEM;
			return -ENOMEM;
		}
		k->items = p;
		k->cap = cap;
	}
	p = &k->items[k->n++];
	memset(p, 0, sizeof(*p));
	snprintf(p->net, sizeof(p->net), "%s", it->net.text);
	snprintf(p->origin, sizeof(p->origin), "%s", o);
	p->expires = it->expires;
	return 0;
}

/* Items [from, to) share an origin: one request, or one each when the
 * group is refused (one address trusted here must not keep the others
 * out). */
static size_t add_group(struct core *c, const struct fleet_item *it,
			size_t n)
{
	char origin[WATCHLIST_ORIGIN_MAX + 1];
	struct core_watch_req *req = calloc(n, sizeof(*req));
	struct core_watch_result res;
	size_t done = 0;

	fleet_local_origin(it[0].origin, origin, sizeof(origin));
	if (req == NULL)
		return 0;
	for (size_t i = 0; i < n; i++) {
		req[i].address = it[i].net;
		req[i].expires = it[i].expires;
	}
	core_watch_add(c, origin, req, n, &res, NULL, NULL);
	if (res.status == CORE_WATCH_OK) {
		done = n;
	} else {
		for (size_t i = 0; i < n; i++) {
			core_watch_add(c, origin, &req[i], 1, &res, NULL, NULL);
			if (res.status == CORE_WATCH_OK)
				done++;
			else
				entry_refused(c, res.error);
		}
	}
	free(req);
	return done;
}

static size_t del_group(struct core *c, const struct fleet_item *it, size_t n)
{
	char origin[WATCHLIST_ORIGIN_MAX + 1];
	const char **a = calloc(n, sizeof(*a));
	struct core_watch_result res;

	if (a == NULL)
		return 0;
	fleet_local_origin(it[0].origin, origin, sizeof(origin));
	for (size_t i = 0; i < n; i++)
		a[i] = it[i].net;
	core_watch_del(c, origin, a, n, &res, NULL, NULL);
	free(a);
	return res.status == CORE_WATCH_OK ? res.deleted : 0;
}

int core_fleet_converge(struct core *c, struct fleet_item *snap, size_t n,
			size_t *ret_added, size_t *ret_deleted)
{
	struct collect k = { 0 };
	struct fleet_item *add = NULL, *del = NULL;
	size_t nadd = 0, ndel = 0, added = 0, deleted = 0, i, j;

	if (c->watchlist == NULL) {
		*ret_added = *ret_deleted = 0;
		return 0;
	}
	watchlist_foreach(c->watchlist, NULL, collect_fleet, &k);
	if (k.err < 0 || fleet_diff(k.items, k.n, snap, n, &add, &nadd, &del,
				    &ndel) < 0) {
		free(k.items);
		return -ENOMEM;
	}
	/* Deletes first: an entry the fleet dropped may overlap one it
	 * added since (a prefix for an address inside it). */
	for (i = 0; i < ndel; i = j) {
		for (j = i; j < ndel && strcmp(del[j].origin, del[i].origin) == 0; j++)
			;
		deleted += del_group(c, &del[i], j - i);
	}
	for (i = 0; i < nadd; i = j) {
		for (j = i; j < nadd && strcmp(add[j].origin, add[i].origin) == 0; j++)
			;
		added += add_group(c, &add[i], j - i);
	}
	if (added || deleted)
		info(c, "fleet: converged to the snapshot: %zu entries added "
		     "or refreshed, %zu deleted", added, deleted);
	free(k.items);
	free(add);
	free(del);
	*ret_added = added;
	*ret_deleted = deleted;
	return 0;
}
