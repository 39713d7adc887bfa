/*
 * timems: the clocks in milliseconds, the way porthop's modules read
 * them (timers and intervals on the monotonic clock, event times and
 * stream IDs on the wall clock).
 */
#ifndef PORTHOP_TIMEMS_H
#define PORTHOP_TIMEMS_H

#include <stdint.h>

/* CLOCK_MONOTONIC, in ms. */
uint64_t timems_mono(void);
/* CLOCK_REALTIME (epoch), in ms. */
int64_t timems_wall(void);

#endif
