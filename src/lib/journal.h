/*
 * journal: systemd-journald's native protocol, without libsystemd: an
 * entry of fields (NAME=value, or for a value with a newline the binary
 * form: NAME, a newline, the value's length as 64-bit little-endian, the
 * value, a newline) sent as one datagram to journald's socket; and
 * whether a descriptor is the stream journald gave the process
 * (JOURNAL_STREAM).  Used for the probe event feed's log lines
 * (docs/events.md), so each event's fields are the journal's.
 */
#ifndef PORTHOP_JOURNAL_H
#define PORTHOP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "probe.h"

/* journald's socket for native entries. */
#define JOURNAL_SOCKET "/run/systemd/journal/socket"

/* Whether fd is the stream journald connected: journal_stream (the
 * JOURNAL_STREAM variable, "DEVICE:INODE" in decimal; NULL when unset)
 * names fd's device and inode.  False for anything else, malformed
 * included. */
bool journal_stream_is(const char *journal_stream, int fd);

/* An entry being built: a growing buffer of fields. */
struct journal_entry;

struct journal_entry *journal_entry_new(void);	/* NULL: no memory */
void journal_entry_free(struct journal_entry *e);	/* accepts NULL */
/* Appends NAME=value (value: len bytes, may hold any byte).  name must
 * be a journal field name: 1-64 of A-Z, 0-9, _, not starting with _ or a
 * digit (-EINVAL otherwise).  0, -EINVAL or -ENOMEM. */
int journal_entry_add(struct journal_entry *e, const char *name,
		      const char *value, size_t len);
/* The entry's bytes so far (owned by e) and their count. */
const char *journal_entry_data(const struct journal_entry *e,
			       size_t *ret_len);

/* A probe event's entry (new, caller frees; NULL if out of memory):
 * MESSAGE=json (the event's JSON line, len bytes), PRIORITY=6,
 * SYSLOG_IDENTIFIER=ident, and PORTHOP_KIND, PORTHOP_SOURCE, PORTHOP_PROTO,
 * PORTHOP_PORT, PORTHOP_REAL_PORT (only where there is one),
 * PORTHOP_GENERATION, PORTHOP_COUNT. */
struct journal_entry *journal_event_entry(const struct probe_event *ev,
					  const char *json, size_t len,
					  const char *ident);

/* A datagram socket to journald's (path; JOURNAL_SOCKET in production).
 * NULL with errno set. */
struct journal;

struct journal *journal_open(const char *path);
void journal_free(struct journal *j);	/* accepts NULL */
/* Sends the entry as one datagram, without blocking: 0 or a negative
 * errno (the journal gone, its queue full, the entry too large), for the
 * caller to say the event another way. */
int journal_send(struct journal *j, const struct journal_entry *e);

#endif
