/*
 * evstream: merged probe events appended to a Redis Stream (XADD key
 * MAXLEN ~ N * event JSON), so a SIEM or a fleet can read them with
 * XREAD or a consumer group.  A command connection of its own (bus's is
 * subscribed and takes no other command), hiredis async on porthopd's
 * loop, never blocking it: at most EVSTREAM_INFLIGHT appends wait for
 * their replies, and an event that finds the connection down or the
 * backlog full is refused for the caller to count.  Reconnects with
 * backoff and jitter.
 */
#ifndef PORTHOP_EVSTREAM_H
#define PORTHOP_EVSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evstream;

#define EVSTREAM_INFLIGHT 4096

struct evstream_options {
	const char *host;		/* TCP host, unless unix_path is set */
	int port;
	const char *unix_path;
	const char *user, *password;	/* optional AUTH */
	const char *key;		/* the stream */
	unsigned maxlen;		/* MAXLEN ~ */
	/* Appends lost after evstream_add took them (Redis refused one, the
	 * connection went with replies pending, or the stream was freed
	 * with them unacknowledged): n of them, for the caller to count.
	 * Optional. */
	void (*on_lost)(void *arg, uint64_t n);
	void *arg;
};

/* Copies what it needs from opt and starts connecting.  NULL if out of
 * memory. */
struct evstream *evstream_new(struct event_base *base,
			      const struct evstream_options *opt);
void evstream_free(struct evstream *s);	/* accepts NULL */

/* Appends one event (json: its text, len bytes, copied).  0, or -EAGAIN
 * (down, or the backlog full: not sent; the caller counts it). */
int evstream_add(struct evstream *s, const char *json, size_t len);

bool evstream_is_up(const struct evstream *s);
/* Appends Redis acknowledged, and appends lost after they were sent (a
 * refused command, a connection lost with replies pending). */
uint64_t evstream_acked(const struct evstream *s);
uint64_t evstream_lost(const struct evstream *s);

#endif
