/*
 * support_fleet: a done callback for core_fleet_apply that records what
 * each op became (test_core_watch.c, test_core_fleet.c).  Apart from
 * support.h, whose users must not see the core's headers.
 */
#ifndef PORTHOP_TEST_SUPPORT_FLEET_H
#define PORTHOP_TEST_SUPPORT_FLEET_H

#include <stddef.h>

#include "fleet.h"

/* What core_fleet_apply reported for each of up to 8 ops: the verdict
 * and how many times (arg of support_fleet_done). */
struct support_fleet_got {
	enum fleet_verdict v[8];
	unsigned calls[8];
};
void support_fleet_done(void *arg, size_t from, size_t n,
			enum fleet_verdict verdict);

#endif
