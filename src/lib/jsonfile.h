/*
 * jsonfile: read one JSON document from a file, with the checks every
 * porthop input gets: a regular file, a size limit, valid UTF-8, no
 * duplicate keys, and errors that name the file, line and column.
 */
#ifndef PORTHOP_JSONFILE_H
#define PORTHOP_JSONFILE_H

#include <jansson.h>
#include <stddef.h>

#include "diag.h"

/* Reads and parses path.  On success stores a new reference in *ret_root
 * (the caller owns it) and returns 0.  On failure appends one error to d,
 * naming the file as `path`, and returns a negative errno. */
int jsonfile_load(const char *path, size_t max_size, struct diag *d,
		  json_t **ret_root);
/* The same, with the messages naming the file as `name` (e.g. the path
 * escaped, when the path comes from outside). */
int jsonfile_load_as(const char *path, const char *name, size_t max_size,
		     struct diag *d, json_t **ret_root);

/* Parses a buffer with the same rules; `name` labels the messages. */
int jsonfile_parse(const char *name, const char *buf, size_t len,
		   struct diag *d, json_t **ret_root);

#endif
