/*
 * command_watch: the runtime watch list's control commands (watch_add,
 * watch_del, watch_list, watch_flush; see docs/watch.md).  Each request
 * is checked whole here (types, ports, the feed's lines) and then goes to
 * the core, which checks what only it knows (trusted, limits, the
 * kernel); the reply waits for the state file's group commit.
 */
#include "command_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "watchfeed.h"

/* The CLI's and the messages' origin when none is named. */
#define DEFAULT_ORIGIN "manual"

static json_t *invalid(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *invalid(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return control_error(CONTROL_CODE_INVALID, msg);
}

static json_t *result_reply(const struct core_watch_result *res)
{
	static const enum control_code codes[] = {
		[CORE_WATCH_OK] = CONTROL_CODE_INTERNAL,
		[CORE_WATCH_INVALID] = CONTROL_CODE_INVALID,
		[CORE_WATCH_MODE] = CONTROL_CODE_CONFIG,
		[CORE_WATCH_NOT_FOUND] = CONTROL_CODE_NOT_WATCHED,
		[CORE_WATCH_STORAGE] = CONTROL_CODE_STORAGE,
		[CORE_WATCH_KERNEL] = CONTROL_CODE_KERNEL,
		[CORE_WATCH_MEMORY] = CONTROL_CODE_INTERNAL,
	};

	if (res->status != CORE_WATCH_OK)
		return control_error(codes[res->status], res->error);
	return json_pack("{s:b,s:I,s:I,s:I,s:I,s:b}", "ok", 1,
			 "added", (json_int_t)res->added,
			 "refreshed", (json_int_t)res->refreshed,
			 "deleted", (json_int_t)res->deleted,
			 "runtime_entries", (json_int_t)res->entries,
			 "durable", res->durable);
}

static void answer_later(void *arg, const struct core_watch_result *res)
{
	control_answer(arg, result_reply(res));
}

/* The core's answer: now, or once the commit is in (deferred). */
static json_t *finish(int pending, struct control_pending *p,
		      const struct core_watch_result *res)
{
	if (p == NULL)
		return result_reply(res);
	if (!pending)
		control_answer(p, result_reply(res));
	return NULL;
}

/* An array of ports at key of o (absent: none): sorted, distinct, into
 * *ret (malloc'ed). */
static int cmp_port(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static json_t *parse_ports(json_t *o, const char *key, const char *where,
			   uint16_t **ret, size_t *ret_n)
{
	json_t *v = json_object_get(o, key), *e;
	uint16_t *ports;
	size_t i, n = 0;

	*ret = NULL;
	*ret_n = 0;
	if (v == NULL)
		return NULL;
	if (!json_is_array(v) || json_array_size(v) > 65535)
		return invalid("%s%s: expected an array of ports (1 to 65535)",
			       where, key);
	ports = malloc((json_array_size(v) + 1) * sizeof(*ports));
	if (ports == NULL)
		return control_error(CONTROL_CODE_INTERNAL, "out of memory");
	json_array_foreach(v, i, e) {
		json_int_t p = json_integer_value(e);

		if (!json_is_integer(e) || p < 1 || p > 65535) {
			free(ports);
			return invalid("%s%s[%zu]: expected a port (1 to 65535)",
				       where, key, i);
		}
		ports[i] = (uint16_t)p;
	}
	/* Sorted and distinct by the list's own size: a bulk request may
	 * give every entry a short list of its own. */
	if (i > 1)
		qsort(ports, i, sizeof(*ports), cmp_port);
	for (size_t k = 0; k < i; k++)
		if (n == 0 || ports[k] != ports[n - 1])
			ports[n++] = ports[k];
	*ret = ports;
	*ret_n = n;
	return NULL;
}

/* A TTL at key of o: absent 0 (none), else 1 or more seconds. */
static json_t *parse_ttl(json_t *o, const char *where, int64_t dflt,
			 int64_t *ret)
{
	json_t *v = json_object_get(o, "ttl");

	*ret = dflt;
	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return invalid("%sttl: expected a whole number of seconds, 1 "
			       "or more (or no ttl: until deleted)", where);
	*ret = json_integer_value(v);
	return NULL;
}

static const char *origin_of(json_t *req, json_t **ret_err)
{
	json_t *o = json_object_get(req, "origin");

	*ret_err = NULL;
	if (o == NULL)
		return DEFAULT_ORIGIN;
	if (!json_is_string(o)) {
		*ret_err = invalid("origin: expected a name of 1 to 64 "
				   "characters a-z, 0-9, '_', '.', '-'");
		return NULL;
	}
	return json_string_value(o);
}

/* What one watch_add builds before the core sees it. */
struct add_req {
	struct core_watch_req *req;
	size_t n;
	uint16_t *ports[2];		/* the request's defaults */
	uint16_t **owned;		/* per-entry lists, freed after */
	size_t nowned;
	struct watchfeed_line *lines;
};

static void add_req_free(struct add_req *a)
{
	for (size_t i = 0; i < a->nowned; i++)
		free(a->owned[i]);
	free(a->owned);
	free(a->ports[0]);
	free(a->ports[1]);
	free(a->req);
	free(a->lines);
}

/* The "feed" text: its lines, or the first errors (numbered). */
static json_t *from_feed(struct core *c, json_t *req, struct add_req *a,
			 int64_t ttl, const size_t nign[2])
{
	const struct config_daemon *d = config_daemon(core_config(c));
	json_t *feed = json_object_get(req, "feed");
	struct watchfeed_limits lim = { d->min_prefix_len_v4,
					d->min_prefix_len_v6, d->max_ttl_s,
					d->max_runtime_entries };
	struct diag *dg = diag_new();
	char msg[1024];
	size_t len = 0;
	json_t *r = NULL;

	if (!json_is_string(feed)) {
		diag_free(dg);
		return invalid("feed: expected the feed file's text, one address "
			       "or prefix a line, optionally a TTL");
	}
	if (dg == NULL ||
	    watchfeed_parse(json_string_value(feed), json_string_length(feed),
			    &lim, &a->lines, &a->n, dg) < 0) {
		msg[0] = '\0';
		for (size_t i = 0; dg && i < diag_count(dg) && len < 900; i++)
			len += (size_t)snprintf(msg + len, sizeof(msg) - len,
						"%s%s", i ? "; " : "",
						diag_message(dg, i, NULL));
		r = invalid("feed: %s; nothing of it applied",
			    msg[0] ? msg : "out of memory");
		diag_free(dg);
		return r;
	}
	diag_free(dg);
	a->req = calloc(a->n + 1, sizeof(*a->req));
	if (a->req == NULL)
		return control_error(CONTROL_CODE_INTERNAL, "out of memory");
	for (size_t i = 0; i < a->n; i++) {
		a->req[i].address = a->lines[i].net.text;
		a->req[i].ttl = a->lines[i].ttl >= 0 ? a->lines[i].ttl : ttl;
		for (int p = 0; p < 2; p++) {
			a->req[i].ignore[p] = a->ports[p];
			a->req[i].nignore[p] = nign[p];
		}
	}
	return NULL;
}

static json_t *from_entries(json_t *req, struct add_req *a, int64_t ttl,
			    const size_t nign[2])
{
	static const char *const keys[] = { "tcp_ignore", "udp_ignore" };
	json_t *list = json_object_get(req, "entries"), *e, *err;
	char where[48];
	size_t i;

	if (!json_is_array(list) || json_array_size(list) == 0)
		return invalid("entries: expected a non-empty array of "
			       "{\"address\": ..., \"ttl\": ...}, or \"feed\"");
	a->n = json_array_size(list);
	a->req = calloc(a->n + 1, sizeof(*a->req));
	a->owned = calloc(2 * a->n + 1, sizeof(*a->owned));
	if (a->req == NULL || a->owned == NULL)
		return control_error(CONTROL_CODE_INTERNAL, "out of memory");
	json_array_foreach(list, i, e) {
		const char *addr = json_string_value(json_object_get(e, "address"));

		snprintf(where, sizeof(where), "entries[%zu].", i);
		if (!json_is_object(e) || addr == NULL)
			return invalid("entries[%zu]: expected {\"address\": "
				       "\"ADDR[/LEN]\", ...}", i);
		a->req[i].address = addr;
		if ((err = parse_ttl(e, where, ttl, &a->req[i].ttl)))
			return err;
		for (int p = 0; p < 2; p++) {
			uint16_t *own;

			a->req[i].ignore[p] = a->ports[p];
			a->req[i].nignore[p] = nign[p];
			if (json_object_get(e, keys[p]) == NULL)
				continue;
			err = parse_ports(e, keys[p], where, &own,
					  &a->req[i].nignore[p]);
			if (err)
				return err;
			a->owned[a->nowned++] = own;
			a->req[i].ignore[p] = own;
		}
	}
	return NULL;
}

json_t *command_watch_add(struct core *c, struct control *ctl, json_t *req)
{
	struct add_req a = { 0 };
	struct core_watch_result res;
	struct control_pending *p;
	size_t nign[2] = { 0, 0 };
	const char *origin;
	json_t *err;
	int64_t ttl;
	int pending;

	origin = origin_of(req, &err);
	if (err)
		return err;
	if ((err = parse_ttl(req, "", 0, &ttl)) ||
	    (err = parse_ports(req, "tcp_ignore", "", &a.ports[0], &nign[0])) ||
	    (err = parse_ports(req, "udp_ignore", "", &a.ports[1], &nign[1])))
		goto out;
	err = json_object_get(req, "feed") ? from_feed(c, req, &a, ttl, nign) :
					     from_entries(req, &a, ttl, nign);
	if (err)
		goto out;
	p = control_defer(ctl);
	pending = core_watch_add(c, origin, a.req, a.n, &res,
				 p ? answer_later : NULL, p);
	err = finish(pending, p, &res);
out:
	add_req_free(&a);
	return err;
}

json_t *command_watch_del(struct core *c, struct control *ctl, json_t *req)
{
	json_t *list = json_object_get(req, "entries"), *o, *e, *err = NULL;
	const char **addr;
	struct core_watch_result res;
	struct control_pending *p;
	const char *origin = NULL;
	size_t i;
	int pending;

	if ((o = json_object_get(req, "origin")) &&
	    (origin = origin_of(req, &err)) == NULL)
		return err;
	if (!json_is_array(list) || json_array_size(list) == 0)
		return invalid("entries: expected a non-empty array of "
			       "{\"address\": \"ADDR[/LEN]\"}");
	addr = calloc(json_array_size(list) + 1, sizeof(*addr));
	if (addr == NULL)
		return control_error(CONTROL_CODE_INTERNAL, "out of memory");
	json_array_foreach(list, i, e) {
		addr[i] = json_string_value(json_object_get(e, "address"));
		if (addr[i] == NULL) {
			free(addr);
			return invalid("entries[%zu]: expected {\"address\": "
				       "\"ADDR[/LEN]\"}", i);
		}
	}
	p = control_defer(ctl);
	pending = core_watch_del(c, origin, addr, json_array_size(list), &res,
				 p ? answer_later : NULL, p);
	free(addr);
	return finish(pending, p, &res);
}

json_t *command_watch_flush(struct core *c, struct control *ctl, json_t *req)
{
	struct core_watch_result res;
	struct control_pending *p;
	const char *origin;
	json_t *err;
	int pending;

	if (json_object_get(req, "origin") == NULL)
		return invalid("origin: required; watch_flush deletes one "
			       "origin's entries");
	origin = origin_of(req, &err);
	if (err)
		return err;
	p = control_defer(ctl);
	pending = core_watch_flush(c, origin, &res, p ? answer_later : NULL, p);
	return finish(pending, p, &res);
}

struct list_ctx {
	json_t *list;
	int64_t now;
};

static json_t *ports_json(const uint16_t *p, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_integer(p[i]));
	return a;
}

static int list_one(void *arg, const struct watchlist_item *it)
{
	struct list_ctx *l = arg;

	return json_array_append_new(l->list, json_pack(
		"{s:s,s:s,s:I,s:o,s:o,s:o,s:o}", "address", it->net.text,
		"origin", it->origin, "added", (json_int_t)it->added,
		"expires", it->expires ? json_integer(it->expires) : json_null(),
		"ttl_left", it->expires ? json_integer(it->expires > l->now ?
						       it->expires - l->now : 0)
					: json_null(),
		"tcp_ignore", ports_json(it->ignore[0], it->nignore[0]),
		"udp_ignore", ports_json(it->ignore[1], it->nignore[1]))) < 0 ?
		-ENOMEM : 0;
}

json_t *command_watch_list(struct core *c, struct control *ctl, json_t *req)
{
	const struct watchlist *wl = core_watchlist(c);
	struct list_ctx l = { json_array(), (int64_t)time(NULL) };
	const char *origin = NULL;
	json_t *err;

	(void)ctl;
	if (json_object_get(req, "origin") &&
	    (origin = origin_of(req, &err)) == NULL) {
		json_decref(l.list);
		return err;
	}
	if (config_mode(core_config(c)) != CONFIG_MODE_NATIVE || wl == NULL) {
		json_decref(l.list);
		return control_error(CONTROL_CODE_CONFIG, "runtime watch entries "
				     "need native mode (this configuration "
				     "names nft_address_rules_path)");
	}
	if (l.list == NULL || watchlist_foreach(wl, origin, list_one, &l) < 0) {
		json_decref(l.list);
		return control_error(CONTROL_CODE_INTERNAL, "out of memory");
	}
	return json_pack("{s:b,s:o}", "ok", 1, "entries", l.list);
}
