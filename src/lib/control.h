/*
 * control: the daemon's UNIX control socket.
 *
 * One request per connection: a JSON object on one line (at most
 * CONTROL_MAX_REQUEST bytes), answered with one JSON object and the
 * connection closed.  watch_add and watch_del requests may be larger, up
 * to CONTROL_MAX_BULK bytes, if their line starts exactly with
 * {"command":"watch_add" or {"command":"watch_del" (compact JSON, the
 * command its first key, as the CLI writes it): the command must be known
 * before the line is complete.  One such large request is read at a time
 * across all connections (the bulk slot); a second one gets a `busy`
 * error, and anything else over CONTROL_MAX_REQUEST is "too large".  The socket is created with mode 0600 (0660 with a
 * group) and every peer's credentials are checked (SO_PEERCRED and
 * SO_PEERGROUPS): root, or a member of the configured group, by its
 * primary or a supplementary group.  A malformed, oversized or refused
 * request gets an error reply, and what the client still sends is read
 * and dropped so that the reply is not lost to a reset.
 *
 * Nothing a client does can block the daemon's loop or use up its file
 * descriptors: each request has a deadline from its accept (however the
 * bytes trickle in; a large request too), at most a quarter of RLIMIT_NOFILE (and at most
 * CONTROL_MAX_CONNECTIONS) connections are open at a time, and a failing
 * accept() pauses the listener with a backoff instead of spinning.
 *
 * A handler may answer later (control_defer(), control_answer()): porthopd
 * replies to a watch change once its group of changes is on disk.  While
 * the answer is owed the connection has no deadline (the wait is
 * porthopd's, no client can stretch it); the reply then has the usual
 * one.
 *
 * The control object owns its connections: freeing it closes them all
 * but those still owed a reply (the one being served, deferred ones),
 * which get it and close after; the handler may free (or replace) the
 * very object that called it.
 */
#ifndef PORTHOP_CONTROL_H
#define PORTHOP_CONTROL_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONTROL_MAX_REQUEST 4096
/* A watch_add or watch_del request's line at most (see above). */
#define CONTROL_MAX_BULK (64u << 20)
/* Connections open at a time (fewer when RLIMIT_NOFILE is low); root has
 * CONTROL_ROOT_RESERVE more, so that a group member who holds them all
 * cannot lock root out. */
#define CONTROL_MAX_CONNECTIONS 64
#define CONTROL_ROOT_RESERVE 4
/* Milliseconds a client has to send its request, from its accept; the
 * reply then has as long again to be read. */
#define CONTROL_DEADLINE_MS 5000

struct control;
/* A reply owed to one client (control_defer()). */
struct control_pending;

/* An error reply is {"ok": false, "code": NAME, "error": TEXT}: the code
 * says what kind of failure it is (the CLI's exit status follows it), the
 * text says what happened. */
enum control_code {
	CONTROL_CODE_REQUEST,		/* malformed, unknown, too large */
	CONTROL_CODE_PERMISSION,	/* not for this peer */
	CONTROL_CODE_NOT_WATCHED,	/* no watched entry covers it */
	CONTROL_CODE_CONFIG,		/* the configuration was refused */
	CONTROL_CODE_KERNEL,		/* the kernel refused the rules */
	CONTROL_CODE_BUSY,		/* try again later */
	CONTROL_CODE_INTERNAL,		/* out of memory, or a bug */
	CONTROL_CODE_INVALID,		/* an entry refused: a bad address,
					 * TTL or origin, trusted, a limit */
	CONTROL_CODE_STORAGE,		/* the state file could not be
					 * written: nothing applied */
	CONTROL_CODE_COUNT
};

/* The code's name in replies ("request", "permission", ...). */
const char *control_code_name(enum control_code code);
/* The code of a name, or -1 if none (an older or newer porthopd). */
int control_code_parse(const char *name);
/* A new error reply, or NULL if out of memory. */
json_t *control_error(enum control_code code, const char *message);

/* Answers one request (a JSON object, borrowed) from a peer with the given
 * uid: returns a new reply object, which the control module sends and
 * frees (NULL: an "out of memory" error is sent), or defers the answer
 * with control_defer() and returns NULL.  It may call control_free() on
 * the object that called it (a reload that moves the socket): the reply is
 * still delivered. */
typedef json_t *(*control_handler_fn)(void *arg, json_t *request,
				      uid_t peer_uid);

/* What the daemon may want to log; the module itself does not. */
enum control_notice {
	/* A client was turned away: the connection limit was reached. */
	CONTROL_NOTICE_BUSY,
	/* accept() failed (err: an errno value, EMFILE for one); the
	 * listener pauses for a backoff of 100 ms up to 1 s. */
	CONTROL_NOTICE_ACCEPT_FAILED,
};

/* Called for every such event, possibly many times a second: rate-limit
 * what you log.  It must not free the control object. */
typedef void (*control_notice_fn)(void *arg, enum control_notice what,
				  int err);

/* Figures since control_new(), for status and metrics. */
struct control_stats {
	size_t open;			/* connections open now */
	size_t limit;			/* at most, besides root's reserve */
	uint64_t accepted;
	uint64_t refused_busy;		/* turned away at the limit */
	uint64_t refused_peer;		/* neither root nor a member */
	uint64_t accept_errors;		/* accept() failed (EMFILE...) */
	uint64_t timeouts;		/* cut off at the deadline */
	size_t deferred;		/* replies owed now */
	bool bulk_reading;		/* a large request holds the slot */
	uint64_t bulk_busy;		/* large requests turned away: the
					 * bulk slot was taken */
};

/* Checks path before anything else is done: nothing there (in an
 * existing directory), or a socket nobody listens on (a leftover), which
 * control_new() would replace.  Anything else (a regular file, a
 * directory, the live socket of another porthopd) is never removed.
 * Returns 0, or a negative errno with *ret_error a message naming the
 * path (the caller frees it). */
int control_check_path(const char *path, char **ret_error);

/* Whether something listens on the socket at path: then it is not a
 * leftover, and replacing it would cut another daemon off. */
bool control_socket_alive(const char *path);

/* Listens on path (a leftover socket already there is replaced; anything
 * else there, a live socket too, is refused).  gid is the group allowed besides root, or (gid_t)-1
 * for root only.  notice may be NULL.  Returns NULL on failure, with
 * *ret_error a message naming the path (the caller frees it) when
 * ret_error is not NULL. */
struct control *control_new(struct event_base *base, const char *path,
			    gid_t gid, control_handler_fn handler,
			    control_notice_fn notice, void *arg,
			    char **ret_error);

/* Whether c listens on path for gid, and the socket file there is still
 * the one it made (not removed or replaced): a reload can keep it. */
bool control_is(const struct control *c, const char *path, gid_t gid);

/* Fills *ret with c's figures. */
void control_get_stats(const struct control *c, struct control_stats *ret);

/* Closes the socket, removes its file (if it is still the one c made) and
 * drops every connection; accepts NULL.  Called from the handler, the
 * connection being served gets its reply first and the memory goes with
 * it. */
void control_free(struct control *c);

/* From inside the handler only: the reply to the request being served
 * will come later, through control_answer() on the handle returned (the
 * handler then returns NULL; a reply it returns anyway is dropped).  The
 * request object is borrowed for the handler's call only: keep
 * (json_incref) what you need.  Returns NULL outside the handler, on a
 * second call for the same request, or if out of memory (then answer as
 * usual).
 *
 * Every handle must be answered, exactly once, even after control_free():
 * until then the handle, the connection and c's memory stay (control_free()
 * spares deferred connections as it spares the one being served). */
struct control_pending *control_defer(struct control *c);

/* Sends reply (consumed; NULL: an "out of memory" error) to the client p
 * stands for, and frees p.  If the client has gone meanwhile (hung up,
 * reset, cut off for sending too much), the reply is dropped.  May be
 * called from inside the handler that deferred, or any time later from
 * the loop; not from a notice callback.  Accepts a NULL p (the reply is
 * dropped). */
void control_answer(struct control_pending *p, json_t *reply);

/* Client side: sends request to the socket at path and waits (up to
 * timeout_ms in all, connecting included) for the one-line reply.  On
 * success *ret_reply is a new object.  Returns 0 or a negative errno. */
int control_call(const char *path, json_t *request, int timeout_ms,
		 json_t **ret_reply);

#endif
