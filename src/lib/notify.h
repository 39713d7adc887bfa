/*
 * notify: the systemd service notification protocol (sd_notify), spoken
 * directly: one datagram to $NOTIFY_SOCKET per state change.  Nothing
 * happens when porthopd does not run under a Type=notify unit.
 */
#ifndef PORTHOP_NOTIFY_H
#define PORTHOP_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Sends state ("READY=1", "STATUS=...", "WATCHDOG=1", "STOPPING=1",
 * several separated by newlines).  Returns 1 if sent, 0 if there is no
 * $NOTIFY_SOCKET, a negative errno on failure. */
int notify_send(const char *state);

/* The watchdog interval systemd asked for, in microseconds (0: none).
 * Honours $WATCHDOG_PID when set. */
uint64_t notify_watchdog_usec(void);

#endif
