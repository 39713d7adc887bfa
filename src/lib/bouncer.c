/*
 * bouncer: the CrowdSec bouncer's decisions: Go durations, the decision
 * stream, the model of decisions in force and the watch requests built
 * from it.  See bouncer.h for the contract.
 */
#include "bouncer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonfile.h"

/* Malformed decisions reported one by one per response, at most. */
#define STREAM_WARNINGS_MAX 5

/* One decision in the model. */
struct rec {
	struct config_net net;
	int64_t id;
	int64_t expires;	/* epoch seconds */
};

struct bouncer {
	char origin[BOUNCER_ORIGIN_MAX + 1];
	int64_t max_ttl;
	struct rec *recs;	/* sorted by (net, id), ids distinct per net */
	size_t nrecs;
	struct config_net *dirty;	/* sorted, distinct */
	size_t ndirty;
	bool sync;
};

/* ---- Go durations ---- */

int bouncer_duration_parse(const char *s, int64_t *ret_ns)
{
	static const struct {
		const char *name;
		int64_t ns;
	} units[] = {
		/* Longest first: "ms" before "m". */
		{ "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 },
		{ "\xce\xbcs", 1000 }, { "ms", 1000000 },
		{ "s", 1000000000 }, { "m", 60LL * 1000000000 },
		{ "h", 3600LL * 1000000000 },
	};
	bool neg = false;
	__int128 total = 0;
	const char *p = s;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (strcmp(p, "0") == 0) {
		*ret_ns = 0;
		return 0;
	}
	if (*p == '\0')
		return -EINVAL;
	while (*p) {
		__int128 whole = 0, frac = 0, scale = 1, unit = 0, v;
		bool digits = false;
		size_t best = 0;

		while (*p >= '0' && *p <= '9') {
			whole = whole * 10 + (*p++ - '0');
			digits = true;
			if (whole > INT64_MAX)
				return -ERANGE;
		}
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9') {
				/* Digits past nanoseconds of an hour add
				 * nothing: stop scaling before overflow. */
				if (scale < 1000000000000000000LL) {
					frac = frac * 10 + (*p - '0');
					scale *= 10;
				}
				p++;
				digits = true;
			}
		}
		if (!digits)
			return -EINVAL;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t n = strlen(units[i].name);

			if (n > best && strncmp(p, units[i].name, n) == 0) {
				best = n;
				unit = units[i].ns;
			}
		}
		if (best == 0)
			return -EINVAL;
		p += best;
		v = whole * unit + frac * unit / scale;
		total += v;
		if (total > INT64_MAX)
			return -ERANGE;
	}
	*ret_ns = neg ? -(int64_t)total : (int64_t)total;
	return 0;
}

int64_t bouncer_duration_seconds(int64_t ns)
{
	if (ns <= 0)
		return ns / 1000000000;
	return ns / 1000000000 + (ns % 1000000000 != 0);
}

/* ---- networks ---- */

static int net_cmp(const struct config_net *x, const struct config_net *y)
{
	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	if (x->prefix_len != y->prefix_len)
		return x->prefix_len < y->prefix_len ? -1 : 1;
	return memcmp(x->addr, y->addr, sizeof(x->addr));
}

static int net_cmp_void(const void *a, const void *b)
{
	return net_cmp(a, b);
}

/* A decision's value: an address (scope Ip) or a network (scope Range,
 * whose host bits are cleared: the decision covers the network). */
static int net_parse(const char *s, bool range, struct config_net *ret)
{
	char buf[INET6_ADDRSTRLEN + 8];
	struct config_net n;
	int r = config_parse_net(s, range, &n);

	if (r == -EDOM && strlen(s) < sizeof(buf)) {
		const char *slash = strchr(s, '/');
		unsigned len = (unsigned)strtoul(slash + 1, NULL, 10);

		/* The address part alone, its host bits cleared. */
		memcpy(buf, s, (size_t)(slash - s));
		buf[slash - s] = '\0';
		if (config_parse_net(buf, false, &n) < 0)
			return -EINVAL;
		for (unsigned bit = len; bit < n.prefix_len; bit++)
			n.addr[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
		inet_ntop(n.family, n.addr, buf, INET6_ADDRSTRLEN);
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "/%u",
			 len);
		r = config_parse_net(buf, true, &n);
	}
	if (r < 0)
		return -EINVAL;
	*ret = n;
	return 0;
}

/* ---- the stream ---- */

void bouncer_stream_free(struct bouncer_stream *s)
{
	if (s == NULL)
		return;
	free(s->add);
	free(s->del);
	free(s);
}

static void malformed(struct bouncer_stream *s, struct diag *d,
		      const char *path, const char *what, const json_t *v)
{
	char vbuf[DIAG_VALUE_MAX + 8];

	if (s->malformed++ < STREAM_WARNINGS_MAX)
		diag_warning(d, "stream response: %s: %s %s; skipped", path,
			     v ? diag_value(vbuf, sizeof(vbuf), v) : "(missing)",
			     what);
}

static bool type_wanted(const char *type, char *const *types, size_t ntypes)
{
	for (size_t i = 0; i < ntypes; i++)
		if (strcmp(type, types[i]) == 0)
			return true;
	return false;
}

/* Walks one of the two arrays into out (room for all its items). */
static void walk_list(const json_t *arr, const char *key, bool is_new,
		      char *const *types, size_t ntypes,
		      struct bouncer_stream *s, struct diag *d,
		      struct bouncer_decision *out, size_t *ret_n)
{
	char path[DIAG_PATH_MAX];
	size_t i, n = 0;
	json_t *it;

	json_array_foreach(arr, i, it) {
		json_t *scope = json_object_get(it, "scope");
		json_t *type = json_object_get(it, "type");
		json_t *value = json_object_get(it, "value");
		json_t *id = json_object_get(it, "id");
		json_t *dur = json_object_get(it, "duration");
		struct bouncer_decision dec;
		bool range;
		int64_t ns;

		diag_path_index(path, sizeof(path), key, i);
		if (!json_is_object(it)) {
			malformed(s, d, path, "is not an object", it);
			continue;
		}
		if (!json_is_string(scope) || !json_is_string(type)) {
			malformed(s, d, path, "has no scope or type string",
				  it);
			continue;
		}
		if (strcasecmp(json_string_value(scope), "ip") != 0 &&
		    strcasecmp(json_string_value(scope), "range") != 0) {
			if (s->other_scope++ == 0)
				snprintf(s->first_scope, sizeof(s->first_scope),
					 "%s", json_string_value(scope));
			continue;
		}
		range = strcasecmp(json_string_value(scope), "range") == 0;
		if (!type_wanted(json_string_value(type), types, ntypes)) {
			if (s->other_type++ == 0)
				snprintf(s->first_type, sizeof(s->first_type),
					 "%s", json_string_value(type));
			continue;
		}
		memset(&dec, 0, sizeof(dec));
		if (!json_is_string(value) ||
		    net_parse(json_string_value(value), range, &dec.net) < 0) {
			diag_path_key(path + strlen(path),
				      sizeof(path) - strlen(path), "", "value");
			malformed(s, d, path, range ?
				  "is not a network; expected a.b.c.d/len or "
				  "an IPv6 prefix" :
				  "is not an address; expected an IPv4 or "
				  "IPv6 address", value);
			continue;
		}
		if (!json_is_integer(id)) {
			malformed(s, d, path, "has no integer id", it);
			continue;
		}
		dec.id = json_integer_value(id);
		if (is_new) {
			if (!json_is_string(dur) ||
			    bouncer_duration_parse(json_string_value(dur),
						   &ns) < 0) {
				strncat(path, ".duration",
					sizeof(path) - strlen(path) - 1);
				malformed(s, d, path, "is not a duration; "
					  "expected a Go duration (\"3h59m58.3s\")",
					  dur);
				continue;
			}
			dec.ttl = bouncer_duration_seconds(ns);
			if (dec.ttl <= 0) {
				s->expired++;
				continue;
			}
		}
		out[n++] = dec;
	}
	*ret_n = n;
}

int bouncer_stream_parse(const char *buf, size_t len, char *const *types,
			 size_t ntypes, struct diag *d,
			 struct bouncer_stream **ret_stream)
{
	static const char *const keys[] = { "new", "deleted" };
	struct bouncer_stream *s = NULL;
	json_t *root = NULL, *arr[2];
	int r;

	if (len > BOUNCER_STREAM_MAX_SIZE) {
		diag_error(d, "stream response: %zu bytes; expected at most %d",
			   len, BOUNCER_STREAM_MAX_SIZE);
		return -E2BIG;
	}
	r = jsonfile_parse("stream response", buf, len, d, &root);
	if (r < 0)
		return r;
	if (!json_is_object(root)) {
		diag_error(d, "stream response: (root): is %s; expected an "
			   "object with \"new\" and \"deleted\"",
			   diag_type_name(root));
		r = -EINVAL;
		goto out;
	}
	for (int k = 0; k < 2; k++) {
		arr[k] = json_object_get(root, keys[k]);
		if (arr[k] != NULL && !json_is_array(arr[k]) &&
		    !json_is_null(arr[k])) {
			diag_error(d, "stream response: %s: is %s; expected an "
				   "array or null", keys[k],
				   diag_type_name(arr[k]));
			r = -EINVAL;
			goto out;
		}
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		r = -ENOMEM;
		goto out;
	}
	/* calloc(0) may return NULL: one spare element. */
	s->add = calloc(json_array_size(arr[0]) + 1, sizeof(*s->add));
	s->del = calloc(json_array_size(arr[1]) + 1, sizeof(*s->del));
	if (s->add == NULL || s->del == NULL) {
		r = -ENOMEM;
		goto out;
	}
	walk_list(arr[0], "new", true, types, ntypes, s, d, s->add, &s->nadd);
	walk_list(arr[1], "deleted", false, types, ntypes, s, d, s->del,
		  &s->ndel);
	if (s->malformed > STREAM_WARNINGS_MAX)
		diag_warning(d, "stream response: %zu more malformed "
			     "decisions skipped",
			     s->malformed - STREAM_WARNINGS_MAX);
	*ret_stream = s;
	s = NULL;
	r = 0;
out:
	bouncer_stream_free(s);
	json_decref(root);
	return r;
}

/* ---- the model ---- */

struct bouncer *bouncer_new(const char *origin, int64_t max_ttl)
{
	struct bouncer *b;

	if (strlen(origin) > BOUNCER_ORIGIN_MAX)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	strcpy(b->origin, origin);
	b->max_ttl = max_ttl;
	return b;
}

void bouncer_free(struct bouncer *b)
{
	if (b == NULL)
		return;
	free(b->recs);
	free(b->dirty);
	free(b);
}

static int rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	int c = net_cmp(&x->net, &y->net);

	if (c)
		return c;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Decisions as records expiring from now, sorted; a repeated (net, id)
 * keeps the longest. */
static struct rec *recs_of(const struct bouncer_decision *dec, size_t n,
			   int64_t now, size_t *ret_n)
{
	struct rec *r = calloc(n + 1, sizeof(*r));
	size_t m = 0;

	if (r == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		r[i].net = dec[i].net;
		r[i].id = dec[i].id;
		r[i].expires = now + dec[i].ttl;
	}
	qsort(r, n, sizeof(*r), rec_cmp);
	for (size_t i = 0; i < n; i++) {
		if (m > 0 && rec_cmp(&r[m - 1], &r[i]) == 0) {
			if (r[i].expires > r[m - 1].expires)
				r[m - 1].expires = r[i].expires;
			continue;
		}
		r[m++] = r[i];
	}
	*ret_n = m;
	return r;
}

/* Adds the networks of dec to the dirty set. */
static int mark_dirty(struct bouncer *b, const struct bouncer_decision *add,
		      size_t nadd, const struct bouncer_decision *del,
		      size_t ndel)
{
	size_t n = b->ndirty + nadd + ndel, m = 0;
	struct config_net *d = malloc((n + 1) * sizeof(*d));

	if (d == NULL)
		return -ENOMEM;
	if (b->ndirty)
		memcpy(d, b->dirty, b->ndirty * sizeof(*d));
	for (size_t i = 0; i < nadd; i++)
		d[b->ndirty + i] = add[i].net;
	for (size_t i = 0; i < ndel; i++)
		d[b->ndirty + nadd + i] = del[i].net;
	qsort(d, n, sizeof(*d), net_cmp_void);
	for (size_t i = 0; i < n; i++)
		if (m == 0 || net_cmp(&d[m - 1], &d[i]) != 0)
			d[m++] = d[i];
	free(b->dirty);
	b->dirty = d;
	b->ndirty = m;
	return 0;
}

int bouncer_apply(struct bouncer *b, const struct bouncer_stream *s,
		  bool startup, int64_t now)
{
	struct rec *add = NULL, *del = NULL, *out = NULL;
	size_t nadd = 0, ndel = 0, n = 0, i = 0, j = 0;
	int r = -ENOMEM;

	add = recs_of(s->add, s->nadd, now, &nadd);
	if (add == NULL)
		goto out;
	if (startup) {
		/* The whole truth: the model is what the Local API holds,
		 * and porthopd's entries get compared with it. */
		free(b->recs);
		b->recs = add;
		b->nrecs = nadd;
		add = NULL;
		free(b->dirty);
		b->dirty = NULL;
		b->ndirty = 0;
		b->sync = true;
		r = 0;
		goto out;
	}
	del = recs_of(s->del, s->ndel, now, &ndel);
	out = calloc(b->nrecs + nadd + 1, sizeof(*out));
	if (del == NULL || out == NULL || mark_dirty(b, s->add, s->nadd,
						     s->del, s->ndel) < 0)
		goto out;
	/* Merge the model with the new decisions: deleted and expired
	 * ones go; a new decision replaces the model's of the same id
	 * (deletions first, then additions, as every bouncer applies a
	 * response). */
	while (i < b->nrecs || j < nadd) {
		int c = i == b->nrecs ? 1 : j == nadd ? -1 :
			rec_cmp(&b->recs[i], &add[j]);

		if (c >= 0) {
			out[n++] = add[j++];
			if (c == 0)
				i++;
			continue;
		}
		if (b->recs[i].expires > now &&
		    !bsearch(&b->recs[i], del, ndel, sizeof(*del), rec_cmp))
			out[n++] = b->recs[i];
		i++;
	}
	free(b->recs);
	b->recs = out;
	b->nrecs = n;
	out = NULL;
	r = 0;
out:
	if (r < 0)
		b->sync = true;
	free(add);
	free(del);
	free(out);
	return r;
}

void bouncer_want_sync(struct bouncer *b)
{
	b->sync = true;
}

bool bouncer_sync_wanted(const struct bouncer *b)
{
	return b->sync;
}

bool bouncer_pending(const struct bouncer *b)
{
	return b->sync || b->ndirty > 0;
}

size_t bouncer_decision_count(const struct bouncer *b)
{
	return b->nrecs;
}

/* The first record of net (or where it would be). */
static size_t lower_bound(const struct bouncer *b, const struct config_net *net)
{
	size_t lo = 0, hi = b->nrecs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (net_cmp(&b->recs[mid].net, net) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The latest expiry among net's live decisions from record i on, or 0
 * if none lives; *ret_next is the first record of the next network. */
static int64_t run_expiry(const struct bouncer *b, size_t i, int64_t now,
			  size_t *ret_next)
{
	const struct config_net *net = &b->recs[i].net;
	int64_t best = 0;

	for (; i < b->nrecs && net_cmp(&b->recs[i].net, net) == 0; i++)
		if (b->recs[i].expires > now && b->recs[i].expires > best)
			best = b->recs[i].expires;
	*ret_next = i;
	return best;
}

static int64_t net_expiry(const struct bouncer *b, const struct config_net *net,
			  int64_t now)
{
	size_t i = lower_bound(b, net), next;

	if (i == b->nrecs || net_cmp(&b->recs[i].net, net) != 0)
		return 0;
	return run_expiry(b, i, now, &next);
}

size_t bouncer_net_count(const struct bouncer *b, int64_t now)
{
	size_t n = 0, i = 0;

	while (i < b->nrecs)
		if (run_expiry(b, i, now, &i) > 0)
			n++;
	return n;
}

/* ---- requests ---- */

static json_t *request_new(const char *command, const char *origin)
{
	json_t *req = json_object();

	/* "command" first: porthopd reads a large request only when its
	 * line starts with {"command":"watch_add" (or watch_del). */
	if (req == NULL ||
	    json_object_set_new(req, "command", json_string(command)) < 0 ||
	    json_object_set_new(req, "origin", json_string(origin)) < 0) {
		json_decref(req);
		return NULL;
	}
	return req;
}

json_t *bouncer_list_request(const char *origin)
{
	return request_new("watch_list", origin);
}

/* Appends one entry to the last request of list, or to a new one when
 * there is none or the last is full. */
static int push_entry(json_t *list, const char *command, const char *origin,
		      json_t *entry)
{
	json_t *req = json_array_get(list, json_array_size(list) - 1);
	json_t *entries = json_object_get(req, "entries");

	if (entry == NULL)
		return -ENOMEM;
	if (req == NULL || json_array_size(entries) >= BOUNCER_BATCH_MAX) {
		req = request_new(command, origin);
		entries = json_array();
		if (req == NULL || entries == NULL ||
		    json_object_set_new(req, "entries", entries) < 0 ||
		    json_array_append_new(list, req) < 0) {
			json_decref(entry);
			return -ENOMEM;
		}
	}
	return json_array_append_new(entries, entry) < 0 ? -ENOMEM : 0;
}

static int add_entry(const struct bouncer *b, json_t *list,
		     const struct config_net *net, int64_t expires, int64_t now)
{
	json_t *e = json_pack("{s:s}", "address", net->text);

	/* Longer than porthopd takes: no TTL; the Local API reports the
	 * decision's end as a deletion. */
	if (e && expires - now <= b->max_ttl &&
	    json_object_set_new(e, "ttl", json_integer(expires - now)) < 0) {
		json_decref(e);
		e = NULL;
	}
	return push_entry(list, "watch_add", b->origin, e);
}

static int del_entry(const struct bouncer *b, json_t *list,
		     const struct config_net *net)
{
	return push_entry(list, "watch_del", b->origin,
			  json_pack("{s:s}", "address", net->text));
}

int bouncer_push_requests(const struct bouncer *b, int64_t now,
			  json_t **ret_add, json_t **ret_del)
{
	json_t *add = json_array(), *del = json_array();
	int r = -ENOMEM;

	if (add == NULL || del == NULL)
		goto out;
	for (size_t i = 0; i < b->ndirty; i++) {
		int64_t e = net_expiry(b, &b->dirty[i], now);

		r = e > 0 ? add_entry(b, add, &b->dirty[i], e, now) :
			    del_entry(b, del, &b->dirty[i]);
		if (r < 0)
			goto out;
	}
	*ret_add = add;
	*ret_del = del;
	return 0;
out:
	json_decref(add);
	json_decref(del);
	return r;
}

/* One entry of porthopd's list. */
struct listed {
	struct config_net net;
	int64_t expires;	/* 0: none */
};

static int listed_cmp(const void *a, const void *b)
{
	return net_cmp(&((const struct listed *)a)->net,
		       &((const struct listed *)b)->net);
}

/* Whether porthopd's entry already says what the model wants: the same
 * TTL give or take the rounding of two clocks' seconds (or none, for a
 * decision longer than max_ttl). */
static bool listed_current(const struct bouncer *b, const struct listed *l,
			   int64_t expires, int64_t now)
{
	if (expires - now > b->max_ttl)
		return l->expires == 0;
	return l->expires != 0 && l->expires - expires <= 2 &&
	       expires - l->expires <= 2;
}

int bouncer_sync_requests(const struct bouncer *b, const json_t *list,
			  int64_t now, struct diag *d, json_t **ret_add,
			  json_t **ret_del)
{
	const json_t *entries = json_object_get(list, "entries");
	json_t *add = NULL, *del = NULL, *it;
	char vbuf[DIAG_VALUE_MAX + 8];
	struct listed *l = NULL;
	size_t i = 0, k, nl = 0;
	int r = -ENOMEM;

	if (!json_is_array(entries)) {
		diag_error(d, "watch_list reply: entries: %s; expected an "
			   "array", diag_value(vbuf, sizeof(vbuf), entries));
		return -EINVAL;
	}
	add = json_array();
	del = json_array();
	l = calloc(json_array_size(entries) + 1, sizeof(*l));
	if (add == NULL || del == NULL || l == NULL)
		goto out;
	json_array_foreach(entries, k, it) {
		const json_t *addr = json_object_get(it, "address");
		const json_t *origin = json_object_get(it, "origin");
		const json_t *exp = json_object_get(it, "expires");

		/* Asked for our origin only: any other is not ours to
		 * touch, whatever the reply says. */
		if (!json_is_string(origin) ||
		    strcmp(json_string_value(origin), b->origin) != 0)
			continue;
		if (!json_is_string(addr) ||
		    config_parse_net(json_string_value(addr), true,
				     &l[nl].net) < 0) {
			diag_warning(d, "watch_list reply: entries[%zu].address:"
				     " %s is not an address or a network; left "
				     "alone", k,
				     diag_value(vbuf, sizeof(vbuf), addr));
			continue;
		}
		l[nl].expires = json_is_integer(exp) ? json_integer_value(exp) : 0;
		if (net_expiry(b, &l[nl].net, now) == 0 &&
		    del_entry(b, del, &l[nl].net) < 0)
			goto out;
		nl++;
	}
	qsort(l, nl, sizeof(*l), listed_cmp);
	/* Every live network that porthopd lacks, or holds with another
	 * TTL, is (re-)added: a periodic sync of a converged list sends
	 * nothing. */
	while (i < b->nrecs) {
		struct listed key = { .net = b->recs[i].net };
		int64_t e = run_expiry(b, i, now, &i);
		const struct listed *found;

		if (e == 0)
			continue;
		found = bsearch(&key, l, nl, sizeof(*l), listed_cmp);
		if (found && listed_current(b, found, e, now))
			continue;
		if (add_entry(b, add, &key.net, e, now) < 0)
			goto out;
	}
	*ret_add = add;
	*ret_del = del;
	add = del = NULL;
	r = 0;
out:
	free(l);
	json_decref(add);
	json_decref(del);
	return r;
}

void bouncer_pushed(struct bouncer *b)
{
	free(b->dirty);
	b->dirty = NULL;
	b->ndirty = 0;
	b->sync = false;
}

int bouncer_request_split(const json_t *req, json_t **ret_a, json_t **ret_b)
{
	const json_t *entries = json_object_get(req, "entries");
	size_t n = json_array_size(entries), half = n / 2;
	json_t *a = NULL, *b = NULL, *ea = NULL, *eb = NULL;

	if (!json_is_array(entries) || n < 2)
		return -EINVAL;
	/* A shallow copy keeps the member order ("command" first); the
	 * entries arrays are replaced, their items shared. */
	a = json_copy((json_t *)req);
	b = json_copy((json_t *)req);
	ea = json_array();
	eb = json_array();
	if (a == NULL || b == NULL || ea == NULL || eb == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (json_array_append(i < half ? ea : eb,
				      json_array_get(entries, i)) < 0)
			goto fail;
	if (json_object_set_new(a, "entries", ea) < 0) {
		ea = NULL;
		goto fail;
	}
	ea = NULL;
	if (json_object_set_new(b, "entries", eb) < 0) {
		eb = NULL;
		goto fail;
	}
	*ret_a = a;
	*ret_b = b;
	return 0;
fail:
	json_decref(a);
	json_decref(b);
	json_decref(ea);
	json_decref(eb);
	return -ENOMEM;
}
