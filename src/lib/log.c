/*
 * log: one line per event on stderr, in the shape of OpenBSD's log.c;
 * a rate limit for lines a sender can cause. See log.h for the contract.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <unistd.h>

#include "journal.h"

/* Set once at start-up by log_init(); the only process-wide logging state. */
static const char *log_progname = "porthop";
static int log_verbose;
static bool log_timestamps;
static bool log_journal;

void log_init(const char *progname, int verbose, bool timestamps)
{
	log_progname = progname;
	log_verbose = verbose;
	log_timestamps = timestamps;
	/* Only when stderr is the stream the variable names: it is
	 * inherited by children whose stderr is a pipe or a file. */
	log_journal = journal_stream_is(getenv("JOURNAL_STREAM"),
					STDERR_FILENO);
}

bool log_debug_enabled(void)
{
	return log_verbose > 0;
}

static void vlog(int pri, const char *tag, const char *fmt, va_list ap,
		 const char *suffix) __attribute__((format(printf, 3, 0)));
static void vlog(int pri, const char *tag, const char *fmt, va_list ap,
		 const char *suffix)
{
	int saved = errno;
	char msg[4096];
	char stamp[32] = "";

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_timestamps) {
		struct timeval tv;

		gettimeofday(&tv, NULL);
		snprintf(stamp, sizeof(stamp), "%lld.%06ld ",
			 (long long)tv.tv_sec, (long)tv.tv_usec);
	}
	if (log_journal)
		fprintf(stderr, "<%d>%s%s%s%s%s\n", pri, stamp, tag, msg,
			suffix ? ": " : "", suffix ? suffix : "");
	else
		fprintf(stderr, "%s%s: %s%s%s%s\n", stamp, log_progname, tag,
			msg, suffix ? ": " : "", suffix ? suffix : "");
	errno = saved;
}

void log_warn(const char *fmt, ...)
{
	va_list ap;
	const char *err = strerror(errno);

	va_start(ap, fmt);
	vlog(LOG_WARNING, "", fmt, ap, err);
	va_end(ap);
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_WARNING, "", fmt, ap, NULL);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, "", fmt, ap, NULL);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	if (log_verbose <= 0)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, "debug: ", fmt, ap, NULL);
	va_end(ap);
}

void fatal(int status, const char *fmt, ...)
{
	va_list ap;
	const char *err = strerror(errno);

	va_start(ap, fmt);
	vlog(LOG_CRIT, "fatal: ", fmt, ap, err);
	va_end(ap);
	exit(status);
}

void fatalx(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, "fatal: ", fmt, ap, NULL);
	va_end(ap);
	exit(status);
}

bool log_ratelimit(struct log_ratelimit *rl, time_t now, unsigned burst,
		   unsigned interval_s, uint64_t *ret_suppressed)
{
	if (now < rl->window_start ||
	    now - rl->window_start >= (time_t)interval_s) {
		rl->window_start = now;
		rl->in_window = 0;
	}
	if (rl->in_window >= burst) {
		rl->suppressed++;
		return false;
	}
	rl->in_window++;
	*ret_suppressed = rl->suppressed;
	rl->suppressed = 0;
	return true;
}
