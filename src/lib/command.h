/*
 * command: the control socket's commands, one table of them.  Each entry
 * names a command, says who may run it and builds its reply from the
 * core; errors carry a control_code (control.h) that the CLI turns into
 * its exit status.  A new command is one row and one function here.
 */
#ifndef PORTHOP_COMMAND_H
#define PORTHOP_COMMAND_H

#include <jansson.h>
#include <sys/types.h>

#include "control.h"
#include "core.h"

/* Runs the request (a JSON object with a "command" string, borrowed) from
 * a peer with uid, already let in by the control socket ctl (root or the
 * control group).  Returns the reply (new reference), or NULL when the
 * reply was deferred (control_defer) and comes through control_answer.
 * ctl may be NULL (tests): nothing is deferred. */
json_t *command_run(struct core *c, struct control *ctl, json_t *request,
		    uid_t uid);

#endif
