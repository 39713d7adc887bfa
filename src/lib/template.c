/*
 * template: the reference's rule template (nft_address_rules.json),
 * compiled once and instantiated per (address, port) pair. See template.h
 * for the contract.
 */
#include "template.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum token {
	TOK_SOURCE_ADDRESS,
	TOK_DESTINATION_PORT,
	TOK_REDIRECTED_PORT,
	TOK_PROTOCOL,
	TOK_COUNT,
	TOK_NONE = -1,
};

static const char *const token_names[TOK_COUNT] = {
	[TOK_SOURCE_ADDRESS] = "{{SOURCE_ADDRESS}}",
	[TOK_DESTINATION_PORT] = "{{DESTINATION_PORT}}",
	[TOK_REDIRECTED_PORT] = "{{REDIRECTED_PORT}}",
	[TOK_PROTOCOL] = "{{PROTOCOL}}",
};

#define TOKEN_LIST "{{SOURCE_ADDRESS}}, {{DESTINATION_PORT}}, " \
	"{{REDIRECTED_PORT}} or {{PROTOCOL}}"

enum tnode_kind { TN_CONST, TN_STRING, TN_OBJECT, TN_ARRAY };

/* A compiled node: constant subtrees are kept whole, the path to each
 * token is kept as a small tree of its own. */
struct tnode {
	enum tnode_kind kind;
	json_t *value;		/* TN_CONST: subtree; TN_STRING: original */
	int whole;		/* TN_STRING: token if the string is one */
	char *key;		/* member name when the parent is an object */
	struct tnode *kids;
	size_t nkids;
};

struct template {
	struct tnode *rules;
	size_t nrules;
	unsigned used;		/* bit per token seen */
};

static int token_at(const char *s, size_t *ret_len)
{
	for (int t = 0; t < TOK_COUNT; t++) {
		size_t n = strlen(token_names[t]);

		if (strncmp(s, token_names[t], n) == 0) {
			*ret_len = n;
			return t;
		}
	}
	return TOK_NONE;
}

/* Checks every "{{" in s; reports unknown or unterminated tokens.
 * Returns the bit set of known tokens found, or -1 on error. */
static int scan_string(const char *s, const char *file, const char *path,
		       const char *what, struct diag *d)
{
	char vbuf[DIAG_VALUE_MAX + 8];
	int found = 0;
	bool bad = false;

	for (const char *p = strstr(s, "{{"); p; p = strstr(p, "{{")) {
		size_t n;
		int t = token_at(p, &n);

		if (t != TOK_NONE) {
			found |= 1 << t;
			p += n;
			continue;
		}
		const char *end = strstr(p, "}}");
		if (end == NULL) {
			diag_error(d, "%s: %s: %s %s has \"{{\" without a "
				   "closing \"}}\"; expected a token "
				   TOKEN_LIST, file, path, what,
				   diag_string(vbuf, sizeof(vbuf), s));
			return -1;
		}
		char *name = strndup(p, (size_t)(end - p) + 2);
		diag_error(d, "%s: %s: unknown token %s in %s %s; expected "
			   TOKEN_LIST, file, path,
			   name ? name : "(token)", what,
			   diag_string(vbuf, sizeof(vbuf), s));
		free(name);
		bad = true;
		p = end + 2;
	}
	return bad ? -1 : found;
}

/* Returns true if any string or key below v holds "{{". */
static bool has_braces(const json_t *v)
{
	const char *key;
	json_t *child;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return strstr(json_string_value(v), "{{") != NULL;
	case JSON_OBJECT:
		json_object_foreach((json_t *)v, key, child)
			if (strstr(key, "{{") || has_braces(child))
				return true;
		return false;
	case JSON_ARRAY:
		json_array_foreach(v, i, child)
			if (has_braces(child))
				return true;
		return false;
	default:
		return false;
	}
}

static void tnode_clear(struct tnode *n)
{
	for (size_t i = 0; i < n->nkids; i++)
		tnode_clear(&n->kids[i]);
	free(n->kids);
	free(n->key);
	json_decref(n->value);
}

/* Compiles v into n.  Returns 0, or -1 if an error was reported. */
static int tnode_compile(struct tnode *n, json_t *v, const char *file,
			 const char *path, unsigned *used, struct diag *d)
{
	char cpath[DIAG_PATH_MAX];
	const char *key;
	json_t *child;
	size_t i;
	int r = 0;

	memset(n, 0, sizeof(*n));
	n->whole = TOK_NONE;
	if (!has_braces(v)) {
		n->kind = TN_CONST;
		n->value = json_incref(v);
		return 0;
	}
	switch (json_typeof(v)) {
	case JSON_STRING: {
		const char *s = json_string_value(v);
		size_t len;
		int found = scan_string(s, file, path, "string", d);

		if (found < 0)
			return -1;
		*used |= (unsigned)found;
		n->kind = TN_STRING;
		n->value = json_incref(v);
		int t = token_at(s, &len);
		if (t != TOK_NONE && s[len] == '\0')
			n->whole = t;
		return 0;
	}
	case JSON_OBJECT:
		n->kind = TN_OBJECT;
		n->kids = calloc(json_object_size(v) ? json_object_size(v) : 1,
				 sizeof(*n->kids));
		if (n->kids == NULL)
			goto nomem;
		json_object_foreach(v, key, child) {
			struct tnode *k = &n->kids[n->nkids];

			diag_path_key(cpath, sizeof(cpath), path, key);
			if (strstr(key, "{{")) {
				char kbuf[DIAG_VALUE_MAX + 8];

				diag_error(d, "%s: %s: token in the key %s; "
					   "tokens are only replaced in string "
					   "values", file, path,
					   diag_string(kbuf, sizeof(kbuf), key));
				r = -1;
				continue;
			}
			if (tnode_compile(k, child, file, cpath, used, d) < 0) {
				tnode_clear(k);
				r = -1;
				continue;
			}
			k->key = strdup(key);
			n->nkids++;
			if (k->key == NULL)
				goto nomem;
		}
		return r;
	case JSON_ARRAY:
		n->kind = TN_ARRAY;
		n->kids = calloc(json_array_size(v) ? json_array_size(v) : 1,
				 sizeof(*n->kids));
		if (n->kids == NULL)
			goto nomem;
		json_array_foreach(v, i, child) {
			struct tnode *k = &n->kids[n->nkids];

			diag_path_index(cpath, sizeof(cpath), path, i);
			if (tnode_compile(k, child, file, cpath, used, d) < 0) {
				tnode_clear(k);
				r = -1;
				continue;
			}
			n->nkids++;
		}
		return r;
	default:
		/* Only strings, objects and arrays can hold "{{". */
		return -1;
	}
nomem:
	diag_error(d, "%s: %s: out of memory", file, path);
	return -1;
}

struct template *template_compile(json_t *rules, const char *file,
				  const char *path, struct diag *d)
{
	char rpath[DIAG_PATH_MAX];
	struct template *t;
	json_t *rule;
	size_t i;
	int bad = 0;

	if (!json_is_array(rules)) {
		diag_error(d, "%s: %s: is %s; expected an array of nftables "
			   "commands", file, path, diag_type_name(rules));
		return NULL;
	}
	if (json_array_size(rules) == 0) {
		diag_error(d, "%s: %s: is empty; expected at least one "
			   "nftables command", file, path);
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		goto nomem;
	t->rules = calloc(json_array_size(rules), sizeof(*t->rules));
	if (t->rules == NULL)
		goto nomem;
	json_array_foreach(rules, i, rule) {
		diag_path_index(rpath, sizeof(rpath), path, i);
		if (!json_is_object(rule)) {
			diag_error(d, "%s: %s: is %s; expected an nftables "
				   "command object such as {\"add\": "
				   "{\"rule\": ...}}", file, rpath,
				   diag_type_name(rule));
			bad = 1;
			continue;
		}
		if (tnode_compile(&t->rules[t->nrules], rule, file, rpath,
				  &t->used, d) < 0) {
			tnode_clear(&t->rules[t->nrules]);
			bad = 1;
			continue;
		}
		t->nrules++;
	}
	if (bad) {
		template_free(t);
		return NULL;
	}
	if (!(t->used & (1u << TOK_SOURCE_ADDRESS)))
		diag_warning(d, "%s: %s: no rule uses {{SOURCE_ADDRESS}}; every "
			     "watched address gets the same rules", file, path);
	if (!(t->used & (1u << TOK_REDIRECTED_PORT)))
		diag_warning(d, "%s: %s: no rule uses {{REDIRECTED_PORT}}; "
			     "nothing is redirected", file, path);
	return t;
nomem:
	diag_error(d, "%s: %s: out of memory", file, path);
	template_free(t);
	return NULL;
}

void template_free(struct template *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrules; i++)
		tnode_clear(&t->rules[i]);
	free(t->rules);
	free(t);
}

size_t template_rule_count(const struct template *t)
{
	return t->nrules;
}

/* Replaces every token inside s.  Returns a new string, or NULL. */
static json_t *substitute(const char *s, const struct template_values *v)
{
	char ports[2][8];
	const char *vals[TOK_COUNT];
	size_t cap = strlen(s) + 1, len = 0;
	char *out;
	json_t *r;

	snprintf(ports[0], sizeof(ports[0]), "%u", v->destination_port);
	snprintf(ports[1], sizeof(ports[1]), "%u", v->redirected_port);
	vals[TOK_SOURCE_ADDRESS] = v->source_address;
	vals[TOK_DESTINATION_PORT] = ports[0];
	vals[TOK_REDIRECTED_PORT] = ports[1];
	vals[TOK_PROTOCOL] = v->protocol;
	for (int t = 0; t < TOK_COUNT; t++)
		cap += strlen(vals[t]) * (strlen(s) / 4 + 1);
	out = malloc(cap);
	if (out == NULL)
		return NULL;
	while (*s) {
		size_t n;
		int t = s[0] == '{' ? token_at(s, &n) : TOK_NONE;

		if (t == TOK_NONE) {
			out[len++] = *s++;
			continue;
		}
		memcpy(out + len, vals[t], strlen(vals[t]));
		len += strlen(vals[t]);
		s += n;
	}
	r = json_stringn(out, len);
	free(out);
	return r;
}

static json_t *tnode_instantiate(const struct tnode *n,
				 const struct template_values *v)
{
	json_t *r = NULL;

	switch (n->kind) {
	case TN_CONST:
		return json_incref(n->value);
	case TN_STRING:
		switch (n->whole) {
		case TOK_DESTINATION_PORT:
			return json_integer(v->destination_port);
		case TOK_REDIRECTED_PORT:
			return json_integer(v->redirected_port);
		case TOK_SOURCE_ADDRESS:
			return json_string(v->source_address);
		case TOK_PROTOCOL:
			return json_string(v->protocol);
		default:
			return substitute(json_string_value(n->value), v);
		}
	case TN_OBJECT:
		r = json_object();
		for (size_t i = 0; r && i < n->nkids; i++) {
			json_t *c = tnode_instantiate(&n->kids[i], v);

			if (json_object_set_new_nocheck(r, n->kids[i].key, c)) {
				json_decref(r);
				return NULL;
			}
		}
		return r;
	case TN_ARRAY:
		r = json_array();
		for (size_t i = 0; r && i < n->nkids; i++) {
			json_t *c = tnode_instantiate(&n->kids[i], v);

			if (json_array_append_new(r, c)) {
				json_decref(r);
				return NULL;
			}
		}
		return r;
	}
	return NULL;
}

int template_instantiate(const struct template *t,
			 const struct template_values *v, json_t *out)
{
	for (size_t i = 0; i < t->nrules; i++) {
		json_t *c = tnode_instantiate(&t->rules[i], v);

		/* json_array_append_new consumes c, even NULL (and fails). */
		if (json_array_append_new(out, c))
			return -ENOMEM;
	}
	return 0;
}

size_t template_forbid_tokens(const json_t *tree, const char *file,
			      const char *path, struct diag *d)
{
	char cpath[DIAG_PATH_MAX], vbuf[DIAG_VALUE_MAX + 8];
	const char *key;
	json_t *child;
	size_t i, n = 0;

	switch (json_typeof(tree)) {
	case JSON_STRING:
		if (strstr(json_string_value(tree), "{{")) {
			diag_error(d, "%s: %s: %s holds a template token; tokens "
				   "are only replaced in the address rules file",
				   file, path,
				   diag_value(vbuf, sizeof(vbuf), tree));
			n++;
		}
		break;
	case JSON_OBJECT:
		json_object_foreach((json_t *)tree, key, child) {
			diag_path_key(cpath, sizeof(cpath), path, key);
			n += template_forbid_tokens(child, file, cpath, d);
		}
		break;
	case JSON_ARRAY:
		json_array_foreach(tree, i, child) {
			diag_path_index(cpath, sizeof(cpath), path, i);
			n += template_forbid_tokens(child, file, cpath, d);
		}
		break;
	default:
		break;
	}
	return n;
}
