/*
 * bus: the Redis pub/sub subscription that delivers triggers. See bus.h
 * for the contract.
 */
#include "bus.h"
#include "rconn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#include <hiredis/adapters/libevent.h>
#pragma GCC diagnostic pop

struct bus {
	struct event_base *base;
	char *host;
	int port;
	char *unix_path;
	char *user;
	char *password;
	char **channels;
	size_t nchannels;
	unsigned backoff_min_ms;
	unsigned backoff_max_ms;
	unsigned connect_timeout_ms;

	bus_message_fn on_message;
	bus_state_fn on_state;
	void *arg;

	redisAsyncContext *ac;	/* NULL while disconnected */
	struct event *timer;	/* see enum bus_timer */
	enum bus_timer {
		TIMER_RETRY,	/* the next connection attempt */
		TIMER_TIMEOUT,	/* the connect timeout */
		TIMER_DROP,	/* drop a connection Redis refused */
	} timer_mode;
	char why[256];		/* reason for TIMER_DROP */
	unsigned attempt;	/* failures since the last success */
	size_t confirmed;	/* channels confirmed on this connection */
	bool up;
	bool down_reported;
	bool stopping;
	uint64_t messages;
	uint64_t connections;
};

static void bus_connect(struct bus *b);

static void arm(struct bus *b, unsigned ms, enum bus_timer mode)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	b->timer_mode = mode;
	evtimer_add(b->timer, &tv);
}

/* Frees the hiredis context outside of any hiredis callback, with no
 * callback of ours called back. */
static void drop(struct bus *b)
{
	redisAsyncContext *ac = b->ac;

	if (ac == NULL)
		return;
	b->ac = NULL;
	ac->data = NULL;
	redisAsyncFree(ac);
}

/* Called for every failed attempt or lost connection. */
static void bus_failed(struct bus *b, const char *why)
{
	unsigned delay;

	if (b->stopping)
		return;
	b->confirmed = 0;
	delay = rconn_backoff_ms(b->backoff_min_ms, b->backoff_max_ms,
				 b->attempt);
	b->attempt++;
	if (b->up || !b->down_reported)
		b->on_state(b->arg, BUS_DOWN, why, delay);
	else
		b->on_state(b->arg, BUS_RETRY, why, delay);
	b->up = false;
	b->down_reported = true;
	arm(b, delay, TIMER_RETRY);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct bus *b = arg;

	(void)fd;
	(void)what;
	switch (b->timer_mode) {
	case TIMER_TIMEOUT:
		/* hiredis 0.14 has no connect timeout of its own. */
		drop(b);
		bus_failed(b, "connect timed out");
		break;
	case TIMER_DROP:
		drop(b);
		bus_failed(b, b->why);
		break;
	case TIMER_RETRY:
		bus_connect(b);
		break;
	}
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct bus *b = priv;
	redisReply *r = reply;

	(void)ac;
	if (r == NULL || b == NULL || b->stopping)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		/* The context cannot be freed from inside its own callback:
		 * drop it from the loop right after. */
		if (b->timer_mode != TIMER_DROP ||
		    !evtimer_pending(b->timer, NULL))
			snprintf(b->why, sizeof(b->why), "Redis refused: %.200s",
				 r->str);
		arm(b, 0, TIMER_DROP);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(r->element[0]->str, "subscribe") == 0) {
		if (++b->confirmed == b->nchannels) {
			b->up = true;
			b->down_reported = false;
			b->attempt = 0;
			b->connections++;
			b->on_state(b->arg, BUS_UP, "subscribed", 0);
		}
	} else if (strcmp(r->element[0]->str, "message") == 0 &&
		   r->element[1]->type == REDIS_REPLY_STRING &&
		   r->element[2]->type == REDIS_REPLY_STRING) {
		b->messages++;
		b->on_message(b->arg, r->element[1]->str, r->element[2]->str,
			      r->element[2]->len);
	}
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
	/* Errors are handled as for any command; success needs nothing. */
	redisReply *r = reply;

	if (r && r->type == REDIS_REPLY_ERROR)
		on_reply(ac, reply, priv);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
	struct bus *b = cac->data;
	redisAsyncContext *ac = (redisAsyncContext *)cac;
	const char **argv;
	int r;

	if (b == NULL)
		return;
	evtimer_del(b->timer);
	if (status != REDIS_OK) {
		char why[256];

		/* hiredis frees the context after this callback. */
		snprintf(why, sizeof(why), "%s", ac->errstr);
		b->ac = NULL;
		bus_failed(b, why);
		return;
	}
	if (b->unix_path == NULL)
		redisEnableKeepAlive(&ac->c);
	rconn_auth(ac, on_auth, b, b->user, b->password);
	argv = calloc(b->nchannels + 1, sizeof(*argv));
	if (argv == NULL) {
		redisAsyncDisconnect(ac);
		return;
	}
	argv[0] = "SUBSCRIBE";
	for (size_t i = 0; i < b->nchannels; i++)
		argv[i + 1] = b->channels[i];
	r = redisAsyncCommandArgv(ac, on_reply, b, (int)b->nchannels + 1,
				  argv, NULL);
	free(argv);
	if (r != REDIS_OK)
		redisAsyncDisconnect(ac);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct bus *b = ac->data;
	char why[256];

	if (b == NULL)
		return;
	/* hiredis frees the context after this callback. */
	b->ac = NULL;
	if (b->stopping)
		return;
	if (status == REDIS_OK)
		snprintf(why, sizeof(why), "connection closed");
	else
		snprintf(why, sizeof(why), "connection lost: %s", ac->errstr);
	/* A refused command has its own drop pending. */
	if (evtimer_pending(b->timer, NULL) && b->timer_mode == TIMER_DROP)
		return;
	bus_failed(b, why);
}

static void bus_connect(struct bus *b)
{
	char why[256];
	redisAsyncContext *ac = rconn_open(b->base, b->host, b->port,
					   b->unix_path, b, on_connect,
					   on_disconnect, why, sizeof(why));

	if (ac == NULL) {
		bus_failed(b, why);
		return;
	}
	b->ac = ac;
	arm(b, b->connect_timeout_ms, TIMER_TIMEOUT);
}

static char *dup_or_null(const char *s, bool *fail)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*fail = true;
	return d;
}

struct bus *bus_new(struct event_base *base, const struct bus_options *opt,
		    bus_message_fn on_message, bus_state_fn on_state,
		    void *arg)
{
	struct bus *b = calloc(1, sizeof(*b));
	bool fail = false;

	if (b == NULL)
		return NULL;
	b->base = base;
	b->host = dup_or_null(opt->host ? opt->host : "127.0.0.1", &fail);
	b->port = opt->port;
	b->unix_path = dup_or_null(opt->unix_path, &fail);
	b->user = dup_or_null(opt->user, &fail);
	b->password = dup_or_null(opt->password, &fail);
	b->channels = calloc(opt->nchannels + 1, sizeof(char *));
	if (b->channels == NULL)
		fail = true;
	for (size_t i = 0; !fail && i < opt->nchannels; i++) {
		b->channels[i] = dup_or_null(opt->channels[i], &fail);
		b->nchannels += !fail;
	}
	b->backoff_min_ms = opt->backoff_min_ms ? opt->backoff_min_ms : 250;
	b->backoff_max_ms = opt->backoff_max_ms ? opt->backoff_max_ms : 30000;
	if (b->backoff_max_ms < b->backoff_min_ms)
		b->backoff_max_ms = b->backoff_min_ms;
	b->connect_timeout_ms = opt->connect_timeout_ms ?
					opt->connect_timeout_ms : 5000;
	b->on_message = on_message;
	b->on_state = on_state;
	b->arg = arg;
	b->timer = evtimer_new(base, on_timer, b);
	if (fail || b->timer == NULL || b->nchannels == 0) {
		bus_free(b);
		return NULL;
	}
	return b;
}

int bus_start(struct bus *b)
{
	bus_connect(b);
	return 0;
}

void bus_free(struct bus *b)
{
	if (b == NULL)
		return;
	b->stopping = true;
	drop(b);
	if (b->timer)
		event_free(b->timer);
	free(b->host);
	free(b->unix_path);
	free(b->user);
	if (b->password)
		explicit_bzero(b->password, strlen(b->password));
	free(b->password);
	for (size_t i = 0; b->channels && i < b->nchannels; i++)
		free(b->channels[i]);
	free(b->channels);
	free(b);
}

bool bus_is_up(const struct bus *b)
{
	return b->up;
}

uint64_t bus_messages(const struct bus *b)
{
	return b->messages;
}

uint64_t bus_connections(const struct bus *b)
{
	return b->connections;
}
