/*
 * log: one line per event on stderr, in the shape of OpenBSD's log.c.
 *
 * Only the daemon's and the CLI's main files log; library modules return
 * errors and let the caller decide.  When stderr is connected to journald
 * (JOURNAL_STREAM is set), each line carries a "<N>" syslog priority prefix
 * that journald turns into the record's priority.
 */
#ifndef PORTHOP_LOG_H
#define PORTHOP_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define LOG_ATTR_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Set the program name, debug verbosity and whether lines carry a
 * wall-clock timestamp (seconds.microseconds since the epoch). */
void log_init(const char *progname, int verbose, bool timestamps);

/* log_warn appends strerror(errno); the others print the message as is.
 * All of them preserve errno. */
void log_warn(const char *fmt, ...) LOG_ATTR_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) LOG_ATTR_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_ATTR_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_ATTR_PRINTF(1, 2);
bool log_debug_enabled(void);

/* A limit on the lines one kind of event may log: at most `burst` in any
 * `interval_s` seconds (a fixed window).  Whatever the sender controls
 * (refused triggers, unknown addresses) logs through one, so a flood
 * cannot flood the log. */
struct log_ratelimit {
	time_t window_start;
	unsigned in_window;
	uint64_t suppressed;	/* held back since the last line out */
};

/* Whether a line may go out at time now.  When it may, *ret_suppressed
 * gets how many lines were held back since the last one that went out (to
 * be said in this one), and that count restarts. */
bool log_ratelimit(struct log_ratelimit *rl, time_t now, unsigned burst,
		   unsigned interval_s, uint64_t *ret_suppressed);

/* Start-up failures only: log and exit(status). */
void fatal(int status, const char *fmt, ...) LOG_ATTR_PRINTF(2, 3)
	__attribute__((noreturn));
void fatalx(int status, const char *fmt, ...) LOG_ATTR_PRINTF(2, 3)
	__attribute__((noreturn));

#endif
