/*
 * fleet: the fleet feed's entries, IDs, snapshot and verdicts; pure.  See
 * fleet.h for the contract.
 */
#include "fleet.h"
#include "jsonflat.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static const char *const kind_names[] = { "trigger", "watch", "unwatch" };

static bool origin_ok(const char *o)
{
	return strlen(o) <= FLEET_ORIGIN_MAX && watchlist_origin_valid(o);
}

static bool net_ok(const char *a, bool allow_empty)
{
	struct config_net net;

	if (a[0] == '\0')
		return allow_empty;
	return strlen(a) < FLEET_NET_MAX && config_parse_net(a, true, &net) == 0;
}

int fleet_op_encode(const struct fleet_op *op, char **ret)
{
	json_t *o;
	char *text;

	if (op->kind > FLEET_UNWATCH ||
	    !net_ok(op->address, op->kind == FLEET_TRIGGER) ||
	    (op->kind != FLEET_TRIGGER && !origin_ok(op->origin)) ||
	    op->expires < 0)
		return -EINVAL;
	o = json_pack("{s:s}", "op", kind_names[op->kind]);
	if (o == NULL)
		return -ENOMEM;
	if (op->address[0])
		json_object_set_new(o, "address", json_string(op->address));
	if (op->kind != FLEET_TRIGGER)
		json_object_set_new(o, "origin", json_string(op->origin));
	if (op->kind == FLEET_WATCH)
		json_object_set_new(o, "expires", json_integer(op->expires));
	json_object_set_new(o, "ts", json_integer(op->ts));
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (text == NULL)
		return -ENOMEM;
	*ret = text;
	return 0;
}

static int refuse(char *why, size_t whylen, const char *what)
{
	snprintf(why, whylen, "%s", what);
	return -EINVAL;
}

/* The string member named key, or NULL. */
static const char *member_string(const struct jsonflat *f, const char *key)
{
	const struct jsonflat_member *m = jsonflat_get(f, key);

	return m && m->type == JSONFLAT_STRING ? m->str : NULL;
}

int fleet_op_decode(const char *text, size_t len, struct fleet_op *ret,
		    char *why, size_t whylen)
{
	static const char *const keys[] = { "op", "address", "origin",
					    "expires", "ts", NULL };
	char scratch[FLEET_OP_MAX + 2 * JSONFLAT_MEMBERS_MAX];
	struct jsonflat f = { .scratch = scratch, .cap = sizeof(scratch) };
	const struct jsonflat_member *v;
	struct fleet_op op = { 0 };
	bool unknown;
	const char *s;
	int r;

	if (len > FLEET_OP_MAX)
		return refuse(why, whylen, "an operation longer than 1024 "
			      "bytes");
	r = jsonflat_load(text, len, &f);
	if (r < 0 && r != -E2BIG)
		return refuse(why, whylen, "not a JSON object; expected "
			      "{\"op\": ...}");
	/* More members than any operation has: one is unknown. */
	unknown = r == -E2BIG;
	for (size_t i = 0; !unknown && i < f.n; i++) {
		size_t k = 0;

		while (keys[k] && strcmp(keys[k], f.m[i].key) != 0)
			k++;
		unknown = keys[k] == NULL;
	}
	if (unknown)
		return refuse(why, whylen, "an unknown key; expected op, "
			      "address, origin, expires, ts");
	s = member_string(&f, "op");
	for (op.kind = FLEET_TRIGGER; s && op.kind <= FLEET_UNWATCH; op.kind++)
		if (strcmp(s, kind_names[op.kind]) == 0)
			break;
	if (s == NULL || op.kind > FLEET_UNWATCH)
		return refuse(why, whylen, "op is not \"watch\", \"unwatch\" "
			      "or \"trigger\"");
	v = jsonflat_get(&f, "address");
	s = member_string(&f, "address");
	if ((v && (s == NULL || !net_ok(s, false))) ||
	    (v == NULL && op.kind != FLEET_TRIGGER))
		return refuse(why, whylen, "address is missing or not an "
			      "address or prefix; expected ADDR or ADDR/LEN");
	if (s)
		snprintf(op.address, sizeof(op.address), "%s", s);
	v = jsonflat_get(&f, "origin");
	s = member_string(&f, "origin");
	if (op.kind == FLEET_TRIGGER ? v != NULL : (s == NULL || !origin_ok(s)))
		return refuse(why, whylen, "origin is missing, misplaced or "
			      "invalid; expected 1 to 58 characters a-z, 0-9, "
			      "'_', '.', '-' on watch and unwatch");
	if (s)
		snprintf(op.origin, sizeof(op.origin), "%s", s);
	v = jsonflat_get(&f, "expires");
	if (op.kind == FLEET_WATCH ? v == NULL || v->type != JSONFLAT_INTEGER ||
				     v->integer < 0 : v != NULL)
		return refuse(why, whylen, "expires is missing, misplaced or "
			      "not a whole number; expected epoch seconds (0: "
			      "never) on watch only");
	op.expires = v ? (int64_t)v->integer : 0;
	v = jsonflat_get(&f, "ts");
	if (v == NULL || v->type != JSONFLAT_INTEGER)
		return refuse(why, whylen, "ts is missing or not a whole "
			      "number; expected epoch seconds");
	op.ts = (int64_t)v->integer;
	*ret = op;
	return 0;
}

int fleet_local_origin(const char *origin, char *buf, size_t len)
{
	int n = snprintf(buf, len, FLEET_ORIGIN_PREFIX "%s", origin);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

const char *fleet_origin_of(const char *local)
{
	size_t n = strlen(FLEET_ORIGIN_PREFIX);

	return strncmp(local, FLEET_ORIGIN_PREFIX, n) == 0 && local[n] ?
	       local + n : NULL;
}

static int parse_u64(const char *s, const char **end, uint64_t *ret)
{
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*end = s;
	*ret = v;
	return 0;
}

int fleet_id_parse(const char *s, struct fleet_id *ret)
{
	struct fleet_id id = { 0, 0 };
	const char *end;

	if (s == NULL || parse_u64(s, &end, &id.ms) < 0)
		return -EINVAL;
	if (*end == '-' && parse_u64(end + 1, &end, &id.seq) < 0)
		return -EINVAL;
	if (*end != '\0')
		return -EINVAL;
	*ret = id;
	return 0;
}

int fleet_id_cmp(const struct fleet_id *a, const struct fleet_id *b)
{
	if (a->ms != b->ms)
		return a->ms < b->ms ? -1 : 1;
	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	return 0;
}

char *fleet_id_format(const struct fleet_id *id, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIu64 "-%" PRIu64, id->ms, id->seq);
	return buf;
}

int fleet_ops_from_request(const json_t *req, int64_t now,
			   struct fleet_op **ret, size_t *ret_n)
{
	const char *cmd = json_string_value(json_object_get(req, "command"));
	const char *origin = json_string_value(json_object_get(req, "origin"));
	const json_t *entries = json_object_get(req, "entries"), *e;
	struct fleet_op *ops;
	bool add;
	size_t i;

	if (cmd == NULL || origin == NULL || !json_is_array(entries) ||
	    strlen(origin) > FLEET_ORIGIN_MAX ||
	    (strcmp(cmd, "watch_add") != 0 && strcmp(cmd, "watch_del") != 0))
		return -EINVAL;
	add = strcmp(cmd, "watch_add") == 0;
	ops = calloc(json_array_size(entries) + 1, sizeof(*ops));
	if (ops == NULL)
		return -ENOMEM;
	json_array_foreach(entries, i, e) {
		const char *a = json_string_value(json_object_get(e, "address"));
		const json_t *ttl = json_object_get(e, "ttl");

		if (a == NULL || strlen(a) >= FLEET_NET_MAX ||
		    (ttl && (!add || !json_is_integer(ttl) ||
			     json_integer_value(ttl) <= 0 ||
			     json_integer_value(ttl) > INT32_MAX))) {
			free(ops);
			return -EINVAL;
		}
		ops[i].kind = add ? FLEET_WATCH : FLEET_UNWATCH;
		snprintf(ops[i].address, sizeof(ops[i].address), "%s", a);
		snprintf(ops[i].origin, sizeof(ops[i].origin), "%s", origin);
		ops[i].expires = ttl ? now + json_integer_value(ttl) : 0;
	}
	*ret = ops;
	*ret_n = json_array_size(entries);
	return 0;
}

int fleet_check_time(const struct fleet_op *op, const struct fleet_id *id,
		     int64_t now, unsigned window_s, char *why, size_t whylen)
{
	/* Whole seconds, like op->ts; at most 1.8e16: no overflow below
	 * (op->ts is compared, never subtracted). */
	int64_t added = (int64_t)(id->ms / 1000);

	/* An ID from the future (XADD with an explicit ID): believed only up
	 * to this host's clock, or every entry after it would be refused. */
	if (now >= 0 && now < INT64_MAX - (int64_t)window_s &&
	    added > now + (int64_t)window_s)
		added = now;

	if (op->ts >= added - (int64_t)window_s &&
	    op->ts <= added + (int64_t)window_s)
		return 0;
	snprintf(why, whylen, "signed at %" PRId64 " but added to the stream "
		 "at %" PRId64 "; expected within %u s of each other (a copy "
		 "of an old entry, or a publisher's clock apart)", op->ts,
		 added, window_s);
	return -ESTALE;
}

bool fleet_need_snapshot(bool group_exists, const struct fleet_id *last_read,
			 uint64_t entries_added, uint64_t length,
			 const struct fleet_id *first_entry)
{
	if (!group_exists)
		return true;
	/* Nothing trimmed yet: every entry is still there to be read. */
	if (entries_added <= length || first_entry == NULL)
		return false;
	return fleet_id_cmp(last_read, first_entry) < 0;
}

bool fleet_gap(const struct fleet_id *last_delivered,
	       const struct fleet_id *last_generated, int64_t lag)
{
	return lag > 0 && fleet_id_cmp(last_delivered, last_generated) == 0;
}

enum fleet_verdict fleet_verdict(enum core_watch_status st)
{
	switch (st) {
	case CORE_WATCH_OK:
	case CORE_WATCH_NOT_FOUND:	/* a delete already done */
		return FLEET_ACK;
	case CORE_WATCH_INVALID:
	case CORE_WATCH_MODE:
		return FLEET_ACK_REFUSED;
	case CORE_WATCH_STORAGE:
	case CORE_WATCH_KERNEL:
	case CORE_WATCH_MEMORY:
		break;
	}
	return FLEET_RETRY;
}

enum fleet_run_kind fleet_run_kind_of(const struct fleet_op *op, bool ok,
				      int64_t now)
{
	if (!ok)
		return FLEET_RUN_SKIP;
	switch (op->kind) {
	case FLEET_TRIGGER:
		return FLEET_RUN_TRIGGER;
	case FLEET_WATCH:
		/* A watch whose time is over deletes the entry: every host
		 * ends it in the same second, whenever it reads it. */
		if (op->expires == 0 || op->expires > now)
			return FLEET_RUN_ADD;
		return FLEET_RUN_DEL;
	case FLEET_UNWATCH:
		break;
	}
	return FLEET_RUN_DEL;
}

size_t fleet_run(const struct fleet_op *ops, const bool *ok, size_t n,
		 int64_t now, size_t max, enum fleet_run_kind *ret_kind)
{
	enum fleet_run_kind k = fleet_run_kind_of(&ops[0], ok[0], now);
	size_t len = 1;

	*ret_kind = k;
	if (k == FLEET_RUN_SKIP || k == FLEET_RUN_TRIGGER)
		return 1;
	if (max > n)
		max = n;
	for (; len < max; len++) {
		const struct fleet_op *op = &ops[len];
		bool repeat = false;

		if (fleet_run_kind_of(op, ok[len], now) != k ||
		    strcmp(op->origin, ops[0].origin) != 0)
			break;
		/* The text as published; a repeat written differently
		 * ("a/32") is refused by the core and split by its caller. */
		for (size_t i = 0; k == FLEET_RUN_ADD && !repeat && i < len; i++)
			repeat = strcmp(ops[i].address, op->address) == 0;
		if (repeat)
			break;
	}
	return len;
}

static int push_item(struct fleet_item **items, size_t *n, size_t *cap,
		     const struct fleet_item *it)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct fleet_item *p = realloc(*items, c * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		*items = p;
		*cap = c;
	}
	(*items)[(*n)++] = *it;
	return 0;
}

int fleet_snap_parse(const char *net, const char *value, size_t vlen,
		     int64_t now, struct fleet_item **items, size_t *n,
		     size_t *cap)
{
	json_t *o = json_loadb(value, vlen, JSON_REJECT_DUPLICATES, NULL), *v;
	struct fleet_item it;
	const char *key;
	size_t start = *n;
	int r = 0;

	if (!json_is_object(o) || !net_ok(net, false)) {
		json_decref(o);
		return -EINVAL;
	}
	json_object_foreach(o, key, v) {
		/* cjson writes whole numbers as integers, but a number is a
		 * number: 1.7e9 is read too.  A real one beyond int64_t
		 * (1e98: anyone who can write the hash can put it there)
		 * would make the conversion undefined: refused. */
		double d = json_number_value(v);

		if (!json_is_number(v) || !origin_ok(key) ||
		    !(d >= 0 && d < 9223372036854775808.0)) {
			*n = start;
			json_decref(o);
			return -EINVAL;
		}
		memset(&it, 0, sizeof(it));
		snprintf(it.net, sizeof(it.net), "%s", net);
		snprintf(it.origin, sizeof(it.origin), "%s", key);
		it.expires = (int64_t)d;
		if (it.expires != 0 && it.expires <= now)
			continue;
		if (push_item(items, n, cap, &it) < 0) {
			*n = start;
			json_decref(o);
			return -ENOMEM;
		}
		r++;
	}
	json_decref(o);
	return r;
}

static int cmp_item(const void *a, const void *b)
{
	const struct fleet_item *x = a, *y = b;
	int c = strcmp(x->origin, y->origin);

	return c ? c : strcmp(x->net, y->net);
}

int fleet_diff(struct fleet_item *local, size_t nlocal, struct fleet_item *snap,
	       size_t nsnap, struct fleet_item **ret_add, size_t *ret_nadd,
	       struct fleet_item **ret_del, size_t *ret_ndel)
{
	struct fleet_item *add = NULL, *del = NULL;
	size_t nadd = 0, ndel = 0, cadd = 0, cdel = 0, i = 0, j = 0;

	/* qsort's array may not be NULL, even empty. */
	if (nlocal)
		qsort(local, nlocal, sizeof(*local), cmp_item);
	if (nsnap)
		qsort(snap, nsnap, sizeof(*snap), cmp_item);
	while (i < nlocal || j < nsnap) {
		int c = i == nlocal ? 1 : j == nsnap ? -1 :
			cmp_item(&local[i], &snap[j]);
		int r = 0;

		if (c < 0) {
			r = push_item(&del, &ndel, &cdel, &local[i++]);
		} else if (c > 0) {
			r = push_item(&add, &nadd, &cadd, &snap[j++]);
		} else {
			if (local[i].expires != snap[j].expires)
				r = push_item(&add, &nadd, &cadd, &snap[j]);
			i++;
			j++;
		}
		if (r < 0) {
			free(add);
			free(del);
			return -ENOMEM;
		}
	}
	*ret_add = add;
	*ret_nadd = nadd;
	*ret_del = del;
	*ret_ndel = ndel;
	return 0;
}

char *fleet_key(const char *stream, enum fleet_key k, char *buf, size_t len)
{
	static const char *const suffix[] = { ":snapshot", ":snapshot:pos",
					      ":snapshot:expiry" };

	snprintf(buf, len, "%s%s", stream, suffix[k]);
	return buf;
}

/* Lua, run by Redis.  The snapshot's value per network is a JSON object
 * of origin -> expiry (cjson, which Redis' Lua carries).  TIME is allowed
 * in a script since Redis 5 (effects are replicated, not the script). */
const char fleet_script[] =
"local maxlen = ARGV[1]\n"
"local ids = {}\n"
"local i = 2\n"
"local function put(net, o)\n"
"  if next(o) == nil then redis.call('HDEL', KEYS[2], net)\n"
"  else redis.call('HSET', KEYS[2], net, cjson.encode(o)) end\n"
"end\n"
"while i + 4 <= #ARGV do\n"
"  local kind, net, origin = ARGV[i], ARGV[i+1], ARGV[i+2]\n"
"  local exp = tonumber(ARGV[i+3])\n"
"  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*',\n"
"                        'm', ARGV[i+4])\n"
"  ids[#ids+1] = id\n"
"  if kind ~= 't' then\n"
"    local cur = redis.call('HGET', KEYS[2], net)\n"
"    local o = {}\n"
"    if cur then o = cjson.decode(cur) end\n"
"    local member = net .. ' ' .. origin\n"
"    if kind == 'w' then\n"
"      o[origin] = exp\n"
"      if exp > 0 then redis.call('ZADD', KEYS[4], exp, member)\n"
"      else redis.call('ZREM', KEYS[4], member) end\n"
"    else\n"
"      o[origin] = nil\n"
"      redis.call('ZREM', KEYS[4], member)\n"
"    end\n"
"    put(net, o)\n"
"  end\n"
"  redis.call('SET', KEYS[3], id)\n"
"  i = i + 5\n"
"end\n"
"local now = tonumber(redis.call('TIME')[1])\n"
"local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now,\n"
"                      'LIMIT', 0, 64)\n"
"for _, m in ipairs(old) do\n"
"  local sp = string.find(m, ' ', 1, true)\n"
"  local net, origin = string.sub(m, 1, sp - 1), string.sub(m, sp + 1)\n"
"  local cur = redis.call('HGET', KEYS[2], net)\n"
"  if cur then\n"
"    local o = cjson.decode(cur)\n"
"    local e = o[origin]\n"
"    if e and e > 0 and e <= now then o[origin] = nil end\n"
"    put(net, o)\n"
"  end\n"
"  redis.call('ZREM', KEYS[4], m)\n"
"end\n"
"return ids\n";

const char fleet_snapshot_script[] =
"return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2])}\n";

/* Both XINFO in one script: what they say is of the same instant. */
const char fleet_info_script[] =
"local ok, s = pcall(redis.call, 'XINFO', 'STREAM', KEYS[1])\n"
"if not ok then return false end\n"
"return {s, redis.call('XINFO', 'GROUPS', KEYS[1])}\n";
