/*
 * fleetpub: publishing to the fleet stream.  See fleetpub.h.
 */
#include "fleetpub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "auth.h"

struct fleetpub {
	redisContext *rc;
	char primary[300];
	char stream[128];
	char keys[3][160];
	unsigned maxlen, wait_replicas, wait_timeout_ms;
};

static redisContext *connect_to(const char *host, int port, unsigned ms,
				char *err, size_t errlen)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	redisContext *rc = redisConnectWithTimeout(host, port, tv);

	if (rc == NULL || rc->err) {
		snprintf(err, errlen, "%s:%d: %s", host, port,
			 rc ? rc->errstr : "out of memory");
		if (rc)
			redisFree(rc);
		return NULL;
	}
	redisSetTimeout(rc, tv);
	return rc;
}

/* Whether rc is a primary (ROLE says "master"). */
static bool is_primary(redisContext *rc)
{
	redisReply *r = redisCommand(rc, "ROLE");
	bool yes = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
		   r->element[0]->type == REDIS_REPLY_STRING &&
		   strcmp(r->element[0]->str, "master") == 0;

	freeReplyObject(r);
	return yes;
}

static int ask_sentinels(const struct config_redis_extra *x, unsigned ms,
			 char *host, size_t hostlen, int *port, char *err,
			 size_t errlen)
{
	for (size_t i = 0; i < x->nsentinels; i++) {
		redisContext *rc = connect_to(x->sentinels[i].host,
					      x->sentinels[i].port, ms, err,
					      errlen);
		redisReply *r;

		if (rc == NULL)
			continue;
		r = redisCommand(rc, "SENTINEL get-master-addr-by-name %s",
				 x->master_name);
		if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		    r->element[0]->type == REDIS_REPLY_STRING &&
		    r->element[1]->type == REDIS_REPLY_STRING) {
			snprintf(host, hostlen, "%s", r->element[0]->str);
			*port = atoi(r->element[1]->str);
			freeReplyObject(r);
			redisFree(rc);
			return 0;
		}
		snprintf(err, errlen, "sentinel %s:%d does not know %s",
			 x->sentinels[i].host, x->sentinels[i].port,
			 x->master_name);
		freeReplyObject(r);
		redisFree(rc);
	}
	return -EHOSTUNREACH;
}

int fleetpub_connect(const struct config *cfg, const char *host, int port,
		     struct fleetpub **ret, char *err, size_t errlen)
{
	const struct config_redis_extra *x = config_redis_extra(cfg);
	const struct config_stream *cs = config_stream(cfg);
	struct fleetpub *p;
	char target[256];
	int tport = port ? port : config_redis_port(cfg);
	unsigned ms = x->connect_timeout_ms ? x->connect_timeout_ms : 5000;
	redisReply *r;

	if (cs->stream == NULL) {
		snprintf(err, errlen, "%s names no redis_stream_configuration",
			 config_file(cfg));
		return -EINVAL;
	}
	snprintf(target, sizeof(target), "%s", host ? host :
		 config_redis_host(cfg));
	if (host == NULL && x->nsentinels &&
	    ask_sentinels(x, ms, target, sizeof(target), &tport, err,
			  errlen) < 0)
		return -EHOSTUNREACH;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->rc = x->unix_socket && host == NULL && x->nsentinels == 0 ?
		redisConnectUnix(x->unix_socket) :
		connect_to(target, tport, ms, err, errlen);
	if (p->rc == NULL || p->rc->err) {
		if (p->rc)
			snprintf(err, errlen, "%s: %s", x->unix_socket,
				 p->rc->errstr);
		fleetpub_free(p);
		return -EHOSTUNREACH;
	}
	if (x->password) {
		r = x->username ? redisCommand(p->rc, "AUTH %s %s", x->username,
					       x->password) :
				  redisCommand(p->rc, "AUTH %s", x->password);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			snprintf(err, errlen, "%s:%d: AUTH refused: %s", target,
				 tport, r ? r->str : p->rc->errstr);
			freeReplyObject(r);
			fleetpub_free(p);
			return -EHOSTUNREACH;
		}
		freeReplyObject(r);
	}
	if (!is_primary(p->rc)) {
		snprintf(err, errlen, "%s:%d is not the primary (a replica, "
			 "or a failover under way)", target, tport);
		fleetpub_free(p);
		return -EHOSTUNREACH;
	}
	snprintf(p->primary, sizeof(p->primary), "%s:%d", target, tport);
	snprintf(p->stream, sizeof(p->stream), "%s", cs->stream);
	for (int k = 0; k < 3; k++)
		fleet_key(cs->stream, (enum fleet_key)k, p->keys[k],
			  sizeof(p->keys[k]));
	p->maxlen = cs->maxlen;
	p->wait_replicas = cs->wait_replicas;
	p->wait_timeout_ms = cs->wait_timeout_ms;
	*ret = p;
	return 0;
}

void fleetpub_free(struct fleetpub *p)
{
	if (p == NULL)
		return;
	if (p->rc)
		redisFree(p->rc);
	free(p);
}

const char *fleetpub_primary(const struct fleetpub *p)
{
	return p->primary;
}

static const char *const kind_arg[] = { "t", "w", "u" };

/* One script call for ops[0..n).  0, or -EIO/-ENOMEM with err. */
static int send_chunk(struct fleetpub *p, const struct fleet_op *ops, size_t n,
		      const unsigned char *key, size_t keylen, char *err,
		      size_t errlen)
{
	size_t argc = 0, nargs = 4 + 4 + 5 * n;
	const char **argv = calloc(nargs, sizeof(*argv));
	char **own = calloc(2 * n + 1, sizeof(*own));
	char maxlen[24];
	redisReply *r = NULL;
	int ret = -ENOMEM;

	if (argv == NULL || own == NULL)
		goto out;
	snprintf(maxlen, sizeof(maxlen), "%u", p->maxlen);
	argv[argc++] = "EVAL";
	argv[argc++] = fleet_script;
	argv[argc++] = "4";
	argv[argc++] = p->stream;
	for (int k = 0; k < 3; k++)
		argv[argc++] = p->keys[k];
	argv[argc++] = maxlen;
	for (size_t i = 0; i < n; i++) {
		char *text = NULL, *sig = NULL;
		int e = fleet_op_encode(&ops[i], &text);

		if (e < 0) {
			snprintf(err, errlen, "operation %zu: %s", i,
				 e == -EINVAL ? "invalid address or origin" :
				 "out of memory");
			ret = e;
			goto out;
		}
		own[2 * i] = text;
		if (keylen && auth_sign(key, keylen, (time_t)ops[i].ts, text,
					&sig) < 0) {
			snprintf(err, errlen, "cannot sign");
			goto out;
		}
		own[2 * i + 1] = sig;
		if (asprintf(&own[2 * n], "%lld", (long long)ops[i].expires) < 0) {
			own[2 * n] = NULL;
			goto out;
		}
		argv[argc++] = kind_arg[ops[i].kind];
		argv[argc++] = ops[i].address;
		argv[argc++] = ops[i].origin;
		/* Lua reads the expiry as a number: kept as text here. */
		argv[argc++] = own[2 * n];
		own[2 * n] = NULL;
		/* The expiry's text is owned through argv from here. */
		argv[argc++] = sig ? sig : text;
	}
	r = redisCommandArgv(p->rc, (int)argc, argv, NULL);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != n) {
		snprintf(err, errlen, "%s: the script failed: %s", p->primary,
			 r == NULL ? p->rc->errstr : r->type == REDIS_REPLY_ERROR ?
			 r->str : "unexpected reply");
		ret = -EIO;
		goto out;
	}
	ret = 0;
out:
	freeReplyObject(r);
	/* The expiries' texts: argv[8 + 5i + 3]. */
	for (size_t i = 0; argv && 8 + 5 * i + 3 < argc; i++)
		free((void *)argv[8 + 5 * i + 3]);
	for (size_t i = 0; own && i < 2 * n + 1; i++)
		free(own[i]);
	free(own);
	free(argv);
	return ret;
}

int fleetpub_send(struct fleetpub *p, const struct fleet_op *ops, size_t n,
		  const unsigned char *key, size_t keylen, int wait_replicas,
		  size_t *ret_sent, char *err, size_t errlen)
{
	struct fleet_op *copy = malloc((n + 1) * sizeof(*copy));
	unsigned want = wait_replicas >= 0 ? (unsigned)wait_replicas :
			p->wait_replicas;
	int64_t now = (int64_t)time(NULL);
	redisReply *r;
	int ret = 0;

	*ret_sent = 0;
	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, ops, n * sizeof(*copy));
	for (size_t i = 0; i < n; i++)
		if (copy[i].ts == 0)
			copy[i].ts = now;
	for (size_t i = 0; i < n && ret == 0; i += FLEETPUB_CHUNK) {
		size_t k = n - i < FLEETPUB_CHUNK ? n - i : FLEETPUB_CHUNK;

		ret = send_chunk(p, copy + i, k, key, keylen, err, errlen);
		if (ret == 0)
			*ret_sent += k;
	}
	free(copy);
	if (ret < 0 || want == 0)
		return ret;
	r = redisCommand(p->rc, "WAIT %u %u", want, p->wait_timeout_ms);
	if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
		snprintf(err, errlen, "%s: WAIT failed: %s", p->primary,
			 r == NULL ? p->rc->errstr : r->type == REDIS_REPLY_ERROR ?
			 r->str : "unexpected reply");
		freeReplyObject(r);
		return -EIO;
	}
	if (r->integer < (long long)want) {
		snprintf(err, errlen, "%s: WAIT: %lld of %u replicas "
			 "acknowledged within %u ms; the entries are on the "
			 "primary only, and a failover may lose them",
			 p->primary, r->integer, want, p->wait_timeout_ms);
		ret = -ETIMEDOUT;
	}
	freeReplyObject(r);
	return ret;
}

int fleetpub_publish(const struct config *cfg, const struct fleet_op *ops,
		     size_t n, char *err, size_t errlen)
{
	const struct config_daemon *d = config_daemon(cfg);
	struct fleetpub *p = NULL;
	size_t sent;
	int r = fleetpub_connect(cfg, NULL, 0, &p, err, errlen);

	if (r == 0)
		r = fleetpub_send(p, ops, n, d->trigger_key,
				  d->trigger_key ? d->trigger_key_len : 0, -1,
				  &sent, err, errlen);
	fleetpub_free(p);
	return r;
}

static const redisReply *flat_get(const redisReply *r, const char *name)
{
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
	     i += 2)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(r->element[i]->str, name) == 0)
			return r->element[i + 1];
	return NULL;
}

static json_t *value_of(const redisReply *v)
{
	if (v == NULL)
		return json_null();
	if (v->type == REDIS_REPLY_INTEGER)
		return json_integer((json_int_t)v->integer);
	if (v->type == REDIS_REPLY_STRING)
		return json_stringn(v->str, v->len);
	return json_null();
}

json_t *fleetpub_groups(struct fleetpub *p, char *err, size_t errlen)
{
	redisReply *s = redisCommand(p->rc, "XINFO STREAM %s", p->stream);
	redisReply *g = redisCommand(p->rc, "XINFO GROUPS %s", p->stream);
	json_t *out = NULL, *groups;

	if (s == NULL || g == NULL || s->type != REDIS_REPLY_ARRAY ||
	    g->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "%s: XINFO %s: %s", p->primary, p->stream,
			 s == NULL || g == NULL ? p->rc->errstr :
			 s->type == REDIS_REPLY_ERROR ? s->str :
			 g->type == REDIS_REPLY_ERROR ? g->str :
			 "unexpected reply");
		goto out;
	}
	groups = json_array();
	for (size_t i = 0; groups && i < g->elements; i++) {
		const redisReply *e = g->element[i];

		json_array_append_new(groups, json_pack("{s:o,s:o,s:o,s:o,s:o}",
			"name", value_of(flat_get(e, "name")),
			"pending", value_of(flat_get(e, "pending")),
			"lag", value_of(flat_get(e, "lag")),
			"last_delivered", value_of(flat_get(e, "last-delivered-id")),
			"entries_read", value_of(flat_get(e, "entries-read"))));
	}
	out = json_pack("{s:s,s:s,s:o,s:o,s:o}", "stream", p->stream,
			"primary", p->primary,
			"length", value_of(flat_get(s, "length")),
			"last_id", value_of(flat_get(s, "last-generated-id")),
			"groups", groups);
out:
	freeReplyObject(s);
	freeReplyObject(g);
	return out;
}
