/*
 * diag: a list of diagnostics that library code fills instead of logging.
 *
 * Validation reports every problem it finds in one pass (as OpenBSD ntpd's
 * parser counts errors), so callers collect messages here and print them
 * once.  Messages follow "<file>: <json.path>: <value> <what is wrong>;
 * <what is expected>".  Untrusted values go through diag_value() so they
 * are JSON-encoded and cannot forge log lines.
 */
#ifndef PORTHOP_DIAG_H
#define PORTHOP_DIAG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>

#define DIAG_ATTR_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Longest JSON path we build; deeper paths are cut with "...". */
#define DIAG_PATH_MAX 256
/* Longest rendering of a value inside a message. */
#define DIAG_VALUE_MAX 80

struct diag;

/* Returns a new empty list, or NULL on allocation failure. */
struct diag *diag_new(void);
/* Frees the list and its messages; accepts NULL. */
void diag_free(struct diag *d);
/* Drops every message. */
void diag_clear(struct diag *d);

/* Append an error or a warning.  Allocation failures are folded into a
 * counter so an error is never lost silently: diag_errors() still counts
 * it. */
void diag_error(struct diag *d, const char *fmt, ...) DIAG_ATTR_PRINTF(2, 3);
void diag_warning(struct diag *d, const char *fmt, ...) DIAG_ATTR_PRINTF(2, 3);

size_t diag_errors(const struct diag *d);
size_t diag_count(const struct diag *d);
/* Message i (0-based); *ret_is_error tells its severity.  The string is
 * owned by d and lives until d is cleared or freed. */
const char *diag_message(const struct diag *d, size_t i, bool *ret_is_error);
/* The first error message, or NULL: convenient for one-line replies. */
const char *diag_first_error(const struct diag *d);
/* Moves every message of src to the end of dst and empties src. */
void diag_move(struct diag *dst, struct diag *src);

/* Every message, in order, as one line "error: ..." or "warning: ..."
 * (at most DIAG_LINE_MAX bytes), to line(arg, text): the one way
 * diagnostics are shown, to a log or a terminal. */
#define DIAG_LINE_MAX 1100
void diag_report(const struct diag *d,
		 void (*line)(void *arg, const char *text), void *arg);
/* diag_report to f, a line each. */
void diag_print(const struct diag *d, FILE *f);

/* JSON path helpers: write "parent.key" or "parent[i]" into buf. */
const char *diag_path_key(char *buf, size_t len, const char *parent,
			  const char *key);
const char *diag_path_index(char *buf, size_t len, const char *parent,
			    size_t index);

/* Render a JSON value compactly into buf (JSON-encoded, cut to
 * DIAG_VALUE_MAX characters with "..." when longer).  Returns buf. */
const char *diag_value(char *buf, size_t len, const json_t *v);
/* Render a C string JSON-encoded into buf.  Returns buf. */
const char *diag_string(char *buf, size_t len, const char *s);
/* A name from outside porthop (a kernel object's: table, chain) as it is
 * when it is a plain word (letters, digits, _-.:/@%+), JSON-encoded
 * otherwise, so that no name can forge a log line.  Returns buf. */
const char *diag_name(char *buf, size_t len, const char *s);
/* Text from a peer (a server's error message) as it is, but with control
 * characters and backslashes escaped (\x0a, \\), so that it stays on
 * one log line; cut to fit len (at least 6).  Returns buf. */
const char *diag_line(char *buf, size_t len, const char *s);
/* A short English name of the JSON type of v: "a string", "an object"... */
const char *diag_type_name(const json_t *v);

#endif
