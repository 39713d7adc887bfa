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

#include "core.h"

/* Runs the request (a JSON object with a "command" string, borrowed) from
 * a peer with uid, already let in by the control socket (root or the
 * control group).  Returns the reply (new reference). */
json_t *command_run(struct core *c, json_t *request, uid_t uid);

#endif
