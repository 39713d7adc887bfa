/*
 * rconn: a Redis connection on porthop's loop. See rconn.h.
 */
#include "rconn.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>

#include <hiredis/hiredis.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#include <hiredis/adapters/libevent.h>
#pragma GCC diagnostic pop

redisAsyncContext *rconn_open(struct event_base *base, const char *host,
			      int port, const char *unix_path, void *data,
			      redisConnectCallback *on_connect,
			      redisDisconnectCallback *on_disconnect,
			      char *why, size_t why_len)
{
	redisAsyncContext *ac = unix_path ? redisAsyncConnectUnix(unix_path) :
					    redisAsyncConnect(host, port);

	if (ac == NULL || ac->err) {
		snprintf(why, why_len, "%s", ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		return NULL;
	}
	ac->data = data;
	if (redisLibeventAttach(ac, base) != REDIS_OK) {
		redisAsyncFree(ac);
		snprintf(why, why_len, "cannot attach to the event loop");
		return NULL;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	return ac;
}

void rconn_auth(redisAsyncContext *ac, redisCallbackFn *fn, void *priv,
		const char *user, const char *password)
{
	if (password && user)
		redisAsyncCommand(ac, fn, priv, "AUTH %s %s", user, password);
	else if (password)
		redisAsyncCommand(ac, fn, priv, "AUTH %s", password);
}

unsigned rconn_backoff_ms(unsigned min_ms, unsigned max_ms, unsigned attempt)
{
	uint64_t d = min_ms;
	uint32_t rnd = 0;

	for (unsigned i = 0; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = 0;
	return (unsigned)(d / 2 + rnd % (d / 2 + 1));
}
