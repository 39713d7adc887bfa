/*
 * bouncer: what the CrowdSec bouncer (porthop-crowdsec) decides, without
 * HTTP, sockets or a clock: its configuration, the Local API's decision
 * stream parsed into decisions, and the model of the decisions in force
 * from which the watch requests to porthopd are built (docs/watch.md).
 *
 * The model holds every decision the bouncer acts on, keyed by (network,
 * decision id), each with its expiry.  A network is watched while any of
 * its decisions lives, for as long as the longest one: deleting one of two
 * bans of an address re-adds it with the other's TTL instead of removing
 * it.  What changed since the last successful push is "dirty"; a push
 * that fails leaves it dirty, and the next one recomputes the TTLs from
 * the expiries, so a retry never sends stale TTLs.
 */
#ifndef PORTHOP_BOUNCER_H
#define PORTHOP_BOUNCER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "diag.h"

/* Largest configuration file, key file, and stream response read. */
#define BOUNCER_CONFIG_MAX_SIZE (64 * 1024)
#define BOUNCER_KEY_MAX 512
#define BOUNCER_STREAM_MAX_SIZE (256 * 1024 * 1024)
/* Entries in one watch_add / watch_del request at most (about 4 MiB of
 * JSON, far below porthopd's 64 MiB). */
#define BOUNCER_BATCH_MAX 50000
#define BOUNCER_ORIGIN_MAX 64

/* The configuration (see man/porthop-crowdsec.8). */
struct bouncer_config {
	char *file;
	char *api_url;		/* with a trailing '/' */
	char *api_key_file;
	char *api_key;		/* the key file's content, trimmed */
	int update_frequency;	/* seconds */
	char **types;		/* decision types acted on */
	size_t ntypes;
	char *control_socket;
	/* A porthop configuration whose fleet stream gets the decisions
	 * instead of the control socket; NULL: the socket. */
	char *fleet_configuration;
	char origin[BOUNCER_ORIGIN_MAX + 1];
	/* Decisions longer than this are sent without a TTL (porthopd
	 * refuses a TTL above its max_ttl_seconds, and the whole batch with
	 * it); the Local API reports their end as a deletion. */
	int64_t max_ttl;
};

/* Loads and validates path completely: every error goes to d (file, JSON
 * path, value, what was expected).  key_file, if not NULL, replaces the
 * file's api_key_file (the -k option: systemd's credentials directory).
 * The key file is read and checked too (a regular file, not readable or
 * writable by others, one line of printable text).  Returns a new
 * configuration the caller frees, or NULL with the errors in d. */
struct bouncer_config *bouncer_config_load(const char *path,
					   const char *key_file,
					   struct diag *d);
void bouncer_config_free(struct bouncer_config *c);	/* accepts NULL */

/* Parses a Go duration ("59.7s", "3h59m58.3s", "-10ms", "0") into
 * nanoseconds.  Returns 0, -EINVAL (not a duration) or -ERANGE (beyond
 * int64 nanoseconds, about 292 years). */
int bouncer_duration_parse(const char *s, int64_t *ret_ns);
/* A duration in nanoseconds as whole seconds, rounded up (a decision of
 * 59.2 s holds for 60 s, never less than the Local API says). */
int64_t bouncer_duration_seconds(int64_t ns);

/* One decision of the stream that the bouncer acts on. */
struct bouncer_decision {
	struct config_net net;
	int64_t id;
	int64_t ttl;	/* seconds, rounded up; <= 0: already over */
};

/* What one stream response held. */
struct bouncer_stream {
	struct bouncer_decision *add;
	size_t nadd;
	struct bouncer_decision *del;
	size_t ndel;
	/* Decisions skipped: another scope (Country, AS, Username...),
	 * another type (captcha...), malformed (no id, a bad value or
	 * duration; each reported to the diag), or new but already over. */
	size_t other_scope, other_type, malformed, expired;
	/* The first other scope and type seen (for one log line each). */
	char first_scope[32], first_type[32];
};

/* Parses a decision stream response ({"new": [...] | null, "deleted":
 * [...] | null}), keeping decisions of scope Ip or Range (any case) whose
 * type is one of types.  Range values with host bits set are taken as
 * their network.  A response that is not such an object is an error
 * (-EINVAL, reported to d, *ret_stream untouched); a decision that is
 * malformed is skipped, counted and reported to d as a warning (at most a
 * few per response).  On success *ret_stream is new, freed with
 * bouncer_stream_free(). */
int bouncer_stream_parse(const char *buf, size_t len, char *const *types,
			 size_t ntypes, struct diag *d,
			 struct bouncer_stream **ret_stream);
void bouncer_stream_free(struct bouncer_stream *s);	/* accepts NULL */

/* The model. */
struct bouncer;

/* origin: the watch entries' origin; max_ttl as in the configuration.
 * NULL if out of memory. */
struct bouncer *bouncer_new(const char *origin, int64_t max_ttl);
void bouncer_free(struct bouncer *b);	/* accepts NULL */

/* Applies one stream response at time now (epoch seconds).  A startup
 * response (startup=true) replaces the model and asks for a sync; any
 * other merges: deleted decisions go, new ones come (a known id gets its
 * new expiry), and every network they name becomes dirty.  Expired
 * decisions leave the model.  Returns 0 or -ENOMEM (the model is then as
 * before, with a sync asked for). */
int bouncer_apply(struct bouncer *b, const struct bouncer_stream *s,
		  bool startup, int64_t now);

/* Asks for a sync: the next push compares porthopd's entries of the
 * origin with the model (after porthopd was unreachable or refused). */
void bouncer_want_sync(struct bouncer *b);
bool bouncer_sync_wanted(const struct bouncer *b);
/* Whether anything waits to be pushed (dirty networks or a sync). */
bool bouncer_pending(const struct bouncer *b);

/* Decisions and distinct networks in the model now. */
size_t bouncer_decision_count(const struct bouncer *b);
size_t bouncer_net_count(const struct bouncer *b, int64_t now);

/* The requests for the dirty networks at time now: watch_add requests
 * (each at most BOUNCER_BATCH_MAX entries) for networks with a live
 * decision, TTL the longest one's remaining time, and watch_del requests
 * for the others.  *ret_add and *ret_del are new JSON arrays of request
 * objects (possibly empty), each request's "command" first.  Returns 0
 * or -ENOMEM. */
int bouncer_push_requests(const struct bouncer *b, int64_t now,
			  json_t **ret_add, json_t **ret_del);

/* The sync's requests: list is porthopd's watch_list reply for the
 * origin ({"ok":true,"entries":[...]}); every live network of the model
 * that the list lacks, or holds with another expiry (more than 2 s off,
 * or with a TTL where none is wanted and the reverse), is (re-)added, and
 * every listed entry of the origin that the model does not hold is
 * deleted.  A converged list gives no requests.  Listed entries that do not parse are reported to
 * d as warnings and left alone.  Returns 0, -EINVAL (a reply without an
 * entries array, reported to d) or -ENOMEM. */
int bouncer_sync_requests(const struct bouncer *b, const json_t *list,
			  int64_t now, struct diag *d, json_t **ret_add,
			  json_t **ret_del);

/* The push (or sync) these requests came from went through: the dirty
 * networks, and the sync wish, are cleared. */
void bouncer_pushed(struct bouncer *b);

/* A new watch_list request for origin ("command" first), or NULL. */
json_t *bouncer_list_request(const char *origin);

/* Splits a watch_add / watch_del request of at least two entries into
 * two requests with the first and the second half of its entries (the
 * other members copied), so that one refused entry can be found by
 * bisection.  Returns 0, -EINVAL (fewer than two entries) or -ENOMEM. */
int bouncer_request_split(const json_t *req, json_t **ret_a, json_t **ret_b);

#endif
