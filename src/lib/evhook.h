/*
 * evhook: an optional command run per merged probe event, the event's
 * JSON on its standard input (docs/events.md).  Never blocks porthopd's
 * loop: the child is spawned (posix_spawn, every other descriptor closed,
 * a minimal environment), its input is one line written into an empty
 * pipe (shorter than PIPE_BUF, so the write cannot block), and children
 * are reaped from a timer.  Bounded: at most per_minute runs a minute
 * (a token bucket) and EVHOOK_CHILDREN at once; a child still running
 * after EVHOOK_TIMEOUT_S is killed.  A refused run is the caller's to
 * count.
 */
#ifndef PORTHOP_EVHOOK_H
#define PORTHOP_EVHOOK_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evhook;

#define EVHOOK_CHILDREN 8
#define EVHOOK_TIMEOUT_S 10

/* argv: the command (copied; argv[0] an absolute path).  NULL if out of
 * memory. */
struct evhook *evhook_new(struct event_base *base, char *const *argv,
			  unsigned per_minute);
/* Frees the hook; children still running are killed and reaped. */
void evhook_free(struct evhook *h);

/* Runs the command with json (len bytes, a newline added) on its
 * standard input.  0; -EAGAIN over the rate or the children's limit;
 * -E2BIG for an event too long for one pipe write; another negative
 * errno if it could not be spawned. */
int evhook_run(struct evhook *h, const char *json, size_t len);

/* Runs started; children that exited non-zero or were killed; children
 * killed because they were still running after EVHOOK_TIMEOUT_S. */
uint64_t evhook_runs(const struct evhook *h);
uint64_t evhook_failures(const struct evhook *h);
uint64_t evhook_killed(const struct evhook *h);

#endif
