/*
 * fleetload: the publisher of bench/fleet.sh.  Writes watch operations
 * to the fleet stream of a configuration through fleetpub (what porthop
 * watch --fleet uses), one a script call, on a fixed schedule (open loop:
 * operation i is due at i / RATE seconds), without the CLI's process
 * start-up in every figure.  Addresses are 10.b.c.d, the i-th from FIRST.
 * What gets no acknowledgement (the primary gone) is sent again after
 * finding the primary anew, every 20 ms.
 *
 *   fleetload CONFIG RATE SECONDS FIRST
 *
 * Prints "sent N retried R seconds S late_ms L outage_start_ms E
 * outage_end_ms F": late_ms is how far behind its schedule the last
 * operation went; the outage is the first failed send and the first
 * success after it (epoch milliseconds; 0: none).  Exits 1 on a failure
 * that lasted more than 60 s.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "diag.h"
#include "fleet.h"
#include "fleetpub.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_until(double ms)
{
	double d = ms - now_ms();
	struct timespec ts;

	if (d <= 0)
		return;
	ts.tv_sec = (time_t)(d / 1e3);
	ts.tv_nsec = (long)((d - (double)ts.tv_sec * 1e3) * 1e6);
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	struct diag *d = diag_new();
	struct config *cfg;
	struct fleetpub *p = NULL;
	const struct config_daemon *dm;
	unsigned long rate, seconds, first, n, retried = 0;
	double start, late = 0, out_start = 0, out_end = 0;
	char err[768];

	if (argc != 5 || d == NULL) {
		fprintf(stderr, "usage: fleetload CONFIG RATE SECONDS FIRST\n");
		return 2;
	}
	cfg = config_load(argv[1], CONFIG_LOAD_NO_RULES, d);
	if (cfg == NULL) {
		diag_print(d, stderr);
		return 2;
	}
	rate = strtoul(argv[2], NULL, 10);
	seconds = strtoul(argv[3], NULL, 10);
	first = strtoul(argv[4], NULL, 10);
	dm = config_daemon(cfg);
	n = rate * seconds;
	start = now_ms();
	for (unsigned long i = 0; i < n; i++) {
		unsigned long a = first + i;
		struct fleet_op op = { .kind = FLEET_WATCH };
		double due = start + (double)i * 1e3 / (double)rate, t0 = 0;
		size_t sent = 0;

		snprintf(op.address, sizeof(op.address), "10.%lu.%lu.%lu",
			 (a >> 16) & 255, (a >> 8) & 255, a & 255);
		snprintf(op.origin, sizeof(op.origin), "bench");
		op.expires = (int64_t)time(NULL) + 3600;
		sleep_until(due);
		for (;;) {
			if (p == NULL &&
			    fleetpub_connect(cfg, NULL, 0, &p, err, sizeof(err)) < 0)
				p = NULL;
			if (p && fleetpub_send(p, &op, 1, dm->trigger_key,
					       dm->trigger_key_len, -1, &sent,
					       err, sizeof(err)) == 0)
				break;
			fleetpub_free(p);
			p = NULL;
			retried++;
			if (out_start == 0)
				out_start = now_ms();
			if (t0 == 0)
				t0 = now_ms();
			if (now_ms() - t0 > 60000) {
				fprintf(stderr, "fleetload: %s\n", err);
				return 1;
			}
			sleep_until(now_ms() + 20);
		}
		if (out_start && out_end == 0)
			out_end = now_ms();
		if (now_ms() - due > late)
			late = now_ms() - due;
	}
	printf("sent %lu retried %lu seconds %.3f late_ms %.1f "
	       "outage_start_ms %.0f outage_end_ms %.0f\n", n, retried,
	       (now_ms() - start) / 1e3, late, out_start, out_end);
	fleetpub_free(p);
	config_free(cfg);
	diag_free(d);
	return 0;
}
