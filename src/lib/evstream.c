/*
 * evstream: XADD of probe events on a command connection (see
 * evstream.h).  The hiredis lifetimes are bus.c's: the context pointer is
 * cleared in the disconnect callback and never freed inside its own
 * callbacks.
 */
#include "evstream.h"
#include "rconn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000

struct evstream {
	struct event_base *base;
	redisAsyncContext *ac;
	struct event *timer;		/* reconnect */
	char *host, *unix_path, *user, *password, *key;
	int port;
	char maxlen[24];
	bool up;
	unsigned attempt;
	size_t inflight;
	uint64_t acked, lost;
	void (*on_lost)(void *arg, uint64_t n);
	void *arg;
};

static void lose(struct evstream *s, uint64_t n)
{
	if (n == 0)
		return;
	s->lost += n;
	if (s->on_lost)
		s->on_lost(s->arg, n);
}

static void stream_connect(struct evstream *s);

static void retry_later(struct evstream *s)
{
	unsigned d = BACKOFF_MIN_MS;
	uint32_t rnd = 0;
	struct timeval tv;

	for (unsigned i = 0; i < s->attempt && d < BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	/* Jitter, as bus.c: a fleet does not reconnect in lockstep. */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = 0;
	d = d / 2 + rnd % (d / 2 + 1);
	s->attempt++;
	tv.tv_sec = d / 1000;
	tv.tv_usec = (suseconds_t)(d % 1000) * 1000;
	evtimer_add(s->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	stream_connect(arg);
}

static void on_xadd(redisAsyncContext *ac, void *reply, void *priv)
{
	struct evstream *s = ac->data;
	redisReply *r = reply;

	(void)priv;
	if (s == NULL)
		return;
	if (s->inflight > 0)
		s->inflight--;
	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		lose(s, 1);
	else
		s->acked++;
}

static void on_connect(const redisAsyncContext *cac, int status)
{
	struct evstream *s = cac->data;

	if (s == NULL)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		s->ac = NULL;
		s->up = false;
		retry_later(s);
		return;
	}
	s->up = true;
	s->attempt = 0;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct evstream *s = ac->data;

	(void)status;
	if (s == NULL)
		return;
	/* hiredis calls each pending reply's callback with NULL before
	 * this one (counted lost there); whatever is still counted in
	 * flight is lost as well. */
	lose(s, s->inflight);
	s->inflight = 0;
	s->ac = NULL;
	s->up = false;
	retry_later(s);
}

static void stream_connect(struct evstream *s)
{
	char why[256];
	redisAsyncContext *ac = rconn_open(s->base, s->host, s->port,
					   s->unix_path, s, on_connect,
					   on_disconnect, why, sizeof(why));

	if (ac == NULL) {
		retry_later(s);
		return;
	}
	s->ac = ac;
	/* Commands queue until the connection is made. */
	rconn_auth(ac, NULL, NULL, s->user, s->password);
}

static char *dup_or_null(const char *v, bool *failed)
{
	char *d = v ? strdup(v) : NULL;

	if (v && d == NULL)
		*failed = true;
	return d;
}

struct evstream *evstream_new(struct event_base *base,
			      const struct evstream_options *opt)
{
	struct evstream *s = calloc(1, sizeof(*s));
	bool failed = false;

	if (s == NULL)
		return NULL;
	s->base = base;
	s->port = opt->port;
	s->on_lost = opt->on_lost;
	s->arg = opt->arg;
	s->host = dup_or_null(opt->host, &failed);
	s->unix_path = dup_or_null(opt->unix_path, &failed);
	s->user = dup_or_null(opt->user, &failed);
	s->password = dup_or_null(opt->password, &failed);
	s->key = dup_or_null(opt->key, &failed);
	snprintf(s->maxlen, sizeof(s->maxlen), "%u", opt->maxlen);
	s->timer = evtimer_new(base, on_timer, s);
	if (failed || s->timer == NULL || s->key == NULL) {
		evstream_free(s);
		return NULL;
	}
	stream_connect(s);
	return s;
}

void evstream_free(struct evstream *s)
{
	if (s == NULL)
		return;
	if (s->ac) {
		s->ac->data = NULL;
		redisAsyncFree(s->ac);
	}
	/* Sent, never acknowledged: Redis may or may not have them. */
	lose(s, s->inflight);
	if (s->timer)
		event_free(s->timer);
	free(s->host);
	free(s->unix_path);
	free(s->user);
	if (s->password)
		explicit_bzero(s->password, strlen(s->password));
	free(s->password);
	free(s->key);
	free(s);
}

int evstream_add(struct evstream *s, const char *json, size_t len)
{
	const char *argv[] = { "XADD", s->key, "MAXLEN", "~", s->maxlen, "*",
			       "event", json };
	size_t lens[] = { 4, strlen(s->key), 6, 1, strlen(s->maxlen), 1, 5,
			  len };

	if (s->ac == NULL || !s->up || s->inflight >= EVSTREAM_INFLIGHT)
		return -EAGAIN;
	if (redisAsyncCommandArgv(s->ac, on_xadd, NULL, 8, argv, lens) !=
	    REDIS_OK)
		return -EAGAIN;
	s->inflight++;
	return 0;
}

bool evstream_is_up(const struct evstream *s)
{
	return s && s->up;
}

uint64_t evstream_acked(const struct evstream *s)
{
	return s ? s->acked : 0;
}

uint64_t evstream_lost(const struct evstream *s)
{
	return s ? s->lost : 0;
}
