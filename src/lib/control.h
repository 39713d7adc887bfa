/*
 * control: the daemon's UNIX control socket.
 *
 * One request per connection: a JSON object on one line (at most
 * CONTROL_MAX_REQUEST bytes), answered with one JSON object and the
 * connection closed.  The socket is created with mode 0600 (0660 with a
 * group) and every peer's credentials are checked (SO_PEERCRED): root, or
 * a member of the configured group.  A malformed or oversized request
 * gets an error reply; a peer that says nothing is dropped after a few
 * seconds.  Nothing a client does can block the daemon's loop.
 */
#ifndef PORTHOP_CONTROL_H
#define PORTHOP_CONTROL_H

#include <event2/event.h>
#include <jansson.h>
#include <sys/types.h>

#define CONTROL_MAX_REQUEST 4096

struct control;

/* Answers one request (a JSON object, borrowed) from a peer with the given
 * uid: returns a new reply object, which the control module sends and
 * frees. */
typedef json_t *(*control_handler_fn)(void *arg, json_t *request,
				      uid_t peer_uid);

/* Listens on path (an existing socket file there is replaced).  gid is
 * the group allowed besides root, or (gid_t)-1 for root only.  Returns
 * NULL with errno set on failure. */
struct control *control_new(struct event_base *base, const char *path,
			    gid_t gid, control_handler_fn handler, void *arg);

/* Closes the socket, drops every connection, removes the socket file;
 * accepts NULL. */
void control_free(struct control *c);

/* Client side: sends request to the socket at path and waits (up to
 * timeout_ms in all, connecting included) for the one-line reply.  On
 * success *ret_reply is a new object.  Returns 0 or a negative errno. */
int control_call(const char *path, json_t *request, int timeout_ms,
		 json_t **ret_reply);

#endif
