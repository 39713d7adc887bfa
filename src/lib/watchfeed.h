/*
 * watchfeed: feed files for `watch add --file`: one address or prefix a
 * line, optionally followed by a TTL in seconds.  Parsed whole or not at
 * all: a request applies every line of its feed or none of them.
 */
#ifndef PORTHOP_WATCHFEED_H
#define PORTHOP_WATCHFEED_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "diag.h"

/* Longest line, in bytes (without its newline). */
#define WATCHFEED_LINE_MAX 256
/* Errors reported one by one; the rest are counted in one more line. */
#define WATCHFEED_ERRORS_MAX 10

struct watchfeed_limits {
	unsigned min_len_v4;	/* shortest prefix accepted, per family */
	unsigned min_len_v6;
	int64_t max_ttl;	/* a TTL is 1..max_ttl seconds */
	size_t max_lines;	/* entries at most (0: none accepted) */
};

/* One entry of a feed. */
struct watchfeed_line {
	struct config_net net;
	int64_t ttl;		/* seconds; -1: none given */
	size_t line;		/* its line number, from 1 */
};

/*
 * Parses the feed text[0..len) (need not end in NUL or a newline).  Blank
 * lines and lines whose first non-blank character is '#' are skipped;
 * blanks (spaces, tabs, a CR) may surround the fields.  Every entry must
 * be an address or a prefix that watchlist_check_net accepts, given once
 * in the feed, with an optional TTL of 1..lim->max_ttl; lines are at most
 * WATCHFEED_LINE_MAX bytes and hold no NUL byte.
 *
 * On success returns 0 with the entries in feed order in *ret_lines (an
 * array the caller frees with free(); NULL when there is none) and their
 * number in *ret_n.  On any error returns -EINVAL (or -ENOMEM), writes
 * neither output, and appends to d one error per bad line, each naming its
 * line number and what was expected (the first WATCHFEED_ERRORS_MAX, then
 * one "and N more errors").  d must not be NULL.
 */
int watchfeed_parse(const char *text, size_t len,
		    const struct watchfeed_limits *lim,
		    struct watchfeed_line **ret_lines, size_t *ret_n,
		    struct diag *d);

#endif
