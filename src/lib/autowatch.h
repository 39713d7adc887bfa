/*
 * autowatch: which sources scan (docs/events.md).  A source that probes
 * at least `ports` distinct closed ports (protocol and port) within
 * `seconds` is a scanner; core then watches it.  Pure and bounded: at
 * most max_sources sources are followed at once, the one seen least
 * recently making room for a new one (counted).
 */
#ifndef PORTHOP_AUTOWATCH_H
#define PORTHOP_AUTOWATCH_H

#include <stddef.h>
#include <stdint.h>

#include "probe.h"

struct autowatch;

/* ports >= 2, seconds >= 1, max_sources >= 1.  NULL if out of memory. */
struct autowatch *autowatch_new(unsigned ports, unsigned seconds,
				size_t max_sources);
void autowatch_free(struct autowatch *a);	/* accepts NULL */

/* e's source probed e's (proto, port) at now_ms.  Returns 1 when this
 * makes the source's distinct ports within the window reach the
 * threshold (its record is then cleared: another full count is needed to
 * fire again), else 0. */
int autowatch_see(struct autowatch *a, const struct probe_event *e,
		  int64_t now_ms);

/* Sources followed now; sources dropped to make room. */
size_t autowatch_sources(const struct autowatch *a);
uint64_t autowatch_evicted(const struct autowatch *a);

/* The most sources followed for a threshold of `ports`: memory stays
 * about 50 MB or less whatever the threshold. */
size_t autowatch_default_sources(unsigned ports);

#endif
