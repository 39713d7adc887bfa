/*
 * bus: the Redis pub/sub subscription that delivers triggers.
 *
 * hiredis' async API on the daemon's libevent loop.  The bus never gives
 * up: a failed connect, a lost connection or a refused command schedules a
 * reconnect with exponential backoff and jitter, and every channel is
 * subscribed again.  It does not log; it reports state changes and
 * messages through callbacks.
 */
#ifndef PORTHOP_BUS_H
#define PORTHOP_BUS_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus;

enum bus_event {
	BUS_UP,		/* connected and every channel subscribed */
	BUS_DOWN,	/* was up (or never was): first failure since */
	BUS_RETRY,	/* a further failed attempt while down */
};

struct bus_options {
	const char *host;		/* TCP host, unless unix_path is set */
	int port;
	const char *unix_path;		/* optional: a UNIX socket */
	const char *user;		/* optional: ACL user for AUTH */
	const char *password;		/* optional: AUTH password */
	const char *const *channels;
	size_t nchannels;
	unsigned backoff_min_ms;	/* first retry delay (default 250) */
	unsigned backoff_max_ms;	/* cap (default 30000) */
	unsigned connect_timeout_ms;	/* default 5000 */
};

/* A message on a subscribed channel.  The buffers live only during the
 * call. */
typedef void (*bus_message_fn)(void *arg, const char *channel,
			       const char *payload, size_t len);
/* A change of state; detail says why (a hiredis error, "subscribed"...).
 * retry_ms is the delay before the next attempt (BUS_DOWN, BUS_RETRY). */
typedef void (*bus_state_fn)(void *arg, enum bus_event ev, const char *detail,
			     unsigned retry_ms);

/* Copies what it needs from opt.  Returns NULL on allocation failure. */
struct bus *bus_new(struct event_base *base, const struct bus_options *opt,
		    bus_message_fn on_message, bus_state_fn on_state,
		    void *arg);

/* Starts the first connection attempt; returns 0 or -ENOMEM. */
int bus_start(struct bus *b);

/* Closes the connection and frees the bus; accepts NULL.  No callback is
 * called from here. */
void bus_free(struct bus *b);

bool bus_is_up(const struct bus *b);
/* Messages received since bus_new. */
uint64_t bus_messages(const struct bus *b);
/* Successful connections since bus_new (1 after the first). */
uint64_t bus_connections(const struct bus *b);

#endif
