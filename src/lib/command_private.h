/*
 * command_private: what command.c's table calls in the files beside it
 * (command_watch.c: the runtime watch list's commands).
 */
#ifndef PORTHOP_COMMAND_PRIVATE_H
#define PORTHOP_COMMAND_PRIVATE_H

#include "command.h"
#include "control.h"

json_t *command_watch_add(struct core *c, struct control *ctl, json_t *req);
json_t *command_watch_del(struct core *c, struct control *ctl, json_t *req);
json_t *command_watch_list(struct core *c, struct control *ctl, json_t *req);
json_t *command_watch_flush(struct core *c, struct control *ctl, json_t *req);

#endif
