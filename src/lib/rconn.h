/*
 * rconn: what porthop's three Redis clients share (the pub/sub
 * subscription in bus, the fleet's stream, the event stream): an
 * asynchronous hiredis connection attached to the libevent loop, its
 * AUTH, and the reconnection backoff.
 */
#ifndef PORTHOP_RCONN_H
#define PORTHOP_RCONN_H

#include <event2/event.h>
#include <hiredis/async.h>
#include <stddef.h>

/* Starts connecting to unix_path (when not NULL) or host:port, attached
 * to base, with data and the two callbacks set.  NULL with a one-line
 * reason in why (hiredis' words, or out of memory). */
redisAsyncContext *rconn_open(struct event_base *base, const char *host,
			      int port, const char *unix_path, void *data,
			      redisConnectCallback *on_connect,
			      redisDisconnectCallback *on_disconnect,
			      char *why, size_t why_len);

/* AUTH [user] password, queued on ac (nothing without a password); fn
 * (may be NULL) gets the reply. */
void rconn_auth(redisAsyncContext *ac, redisCallbackFn *fn, void *priv,
		const char *user, const char *password);

/* The delay before reconnection attempt `attempt` (0 first): min_ms
 * doubled per attempt up to max_ms, then uniform in [d/2, d], so a fleet
 * of daemons does not reconnect in lockstep after a Redis restart (a
 * tiny bias from the modulo does not matter here). */
unsigned rconn_backoff_ms(unsigned min_ms, unsigned max_ms, unsigned attempt);

#endif
