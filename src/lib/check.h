/*
 * check: is a configuration one the kernel will take?  The dry runs and
 * the diagnosis behind `porthopd -n`, `porthop check` and every load: the
 * startup commands and the template instantiated for a sample pair
 * (template mode), or porthop's table with a sample of each kind of entry
 * (native mode), sent to the kernel without a commit; when it refuses, the
 * command it refuses found and named.
 */
#ifndef PORTHOP_CHECK_H
#define PORTHOP_CHECK_H

#include <stdbool.h>

#include "config.h"
#include "diag.h"
#include "nftio.h"

/* Whether porthop may talk to the kernel's nftables at all (a dry run of
 * a table's definition): tells a missing privilege (CAP_NET_ADMIN) apart
 * from a rule the kernel refuses. */
bool check_permitted(struct nftio *io);

/* Asks the kernel, in a dry run, whether it accepts c's rules.  Native
 * mode first refuses a table of porthop's name that porthop did not make
 * (it would be taken over).  When the kernel refuses, appends an error
 * naming the rule file, the rule index and the values used (or, for a
 * call that did not complete, what happened).  Returns 0 or -EINVAL.
 * Needs CAP_NET_ADMIN with the kernel backend. */
int check_config(const struct config *c, struct nftio *io, struct diag *d);

#endif
