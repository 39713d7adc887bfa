/*
 * template: the reference's rule template (nft_address_rules.json) compiled
 * once and instantiated per (address, port) pair.
 *
 * Tokens are substituted on the parsed JSON tree, never on text: a string
 * that is exactly "{{DESTINATION_PORT}}" or "{{REDIRECTED_PORT}}" becomes a
 * JSON number, any other token occurrence is replaced inside its string.
 * No value can change the structure of the document.  Subtrees without
 * tokens are shared between instances (jansson reference counts), so an
 * instance costs only the nodes on the path to a token.
 */
#ifndef PORTHOP_TEMPLATE_H
#define PORTHOP_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"

struct template;

/* The values substituted for one pair. */
struct template_values {
	const char *source_address;	/* {{SOURCE_ADDRESS}} */
	uint16_t destination_port;	/* {{DESTINATION_PORT}}: the real port */
	uint16_t redirected_port;	/* {{REDIRECTED_PORT}} */
	const char *protocol;		/* {{PROTOCOL}}: "tcp" or "udp" */
};

/* Compiles an array of rule commands.  `rules` is borrowed; the template
 * keeps its own references.  `file` and `path` label the messages (e.g.
 * "nft_address_rules.json", "rules").  Every problem is appended to d;
 * returns NULL if there was any error. */
struct template *template_compile(json_t *rules, const char *file,
				  const char *path, struct diag *d);

/* Frees the template; accepts NULL. */
void template_free(struct template *t);

/* Number of rule commands one instance appends. */
size_t template_rule_count(const struct template *t);

/* Appends the instantiated commands for one pair to the JSON array out
 * (which keeps them).  Returns 0, or -ENOMEM. */
int template_instantiate(const struct template *t,
			 const struct template_values *v, json_t *out);

/* Appends an error to d for every token found anywhere in tree (keys or
 * string values), for files where tokens have no meaning.  Returns the
 * number found. */
size_t template_forbid_tokens(const json_t *tree, const char *file,
			      const char *path, struct diag *d);

#endif
