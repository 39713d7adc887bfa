/*
 * recorder: the recording nftio backend of the unit tests (see
 * recorder.h): the batches it was given, the failures it was told to
 * report, and the changes someone else is said to have made.
 */
#include "recorder.h"

#include "nftio_backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct recorder {
	uint32_t generation;
	json_t *last;
	/* Per map or set: the commands of the last batch that touched it
	 * (its definition, flush, elements), what its digest hashes, as
	 * the kernel's digest changes only with its own elements.  A
	 * deleted table or a flushed ruleset empties it. */
	json_t *by_name;
	/* The last batch that (re)defined tables, chains or rules: what
	 * a fingerprint (definitions, no elements) sees. */
	json_t *definition;
	bool foreign_next;		/* foreign_commit_next_apply */
	size_t applied;
	size_t dry_runs;
	unsigned fail_next;
	char *fail_msg;
	char *fail_needle;
	uint64_t elem_salt;		/* changed by tamper_elements */
	char *salted;			/* ... for this map or set */
	bool tampered;			/* ... and not applied since */
	char *tamper_next;		/* tamper_next_apply's name */
	char *foreign;			/* a table not porthop's, by name */
	json_t *tables;			/* tables and their rules' comments */
	char *ct_user;			/* what conntrack_user answers */
	size_t ct_looks;		/* ... and how often for the ruleset */
};

static const struct nftio_ops recorder_ops;

/* io's recorder; io must be one (anything else is a test's bug). */
static struct recorder *rec(const struct nftio *io)
{
	struct recorder *r = nftio_backend_data(io, &recorder_ops);

	if (r == NULL)
		abort();
	return r;
}

/* Whether a command of batch names one of the n objects in what ("table",
 * "set", ...), whatever its verb. */
static bool batch_has(const json_t *batch, const char *const *what, size_t n)
{
	json_t *cmd, *verb;
	const char *k;
	size_t i;

	json_array_foreach(json_object_get(batch, "nftables"), i, cmd)
		json_object_foreach(cmd, k, verb)
			for (size_t j = 0; j < n; j++)
				if (json_object_get(verb, what[j]))
					return true;
	return false;
}

/* Whether a batch touches tables, sets, maps or their elements (not
 * only chains and rules): what the recorder digests. */
static bool holds_elements(const json_t *batch)
{
	static const char *const what[] = { "table", "set", "map", "element" };

	return batch_has(batch, what, 4);
}

/* Whether batch rewrites map or set `name` whole: flushes it, or deletes
 * the table (to define it anew), as the kernel would then hold only what
 * the batch adds. */
static bool rewrites(const json_t *batch, const char *name)
{
	json_t *cmd, *verb, *obj;
	const char *k;
	size_t i;

	json_array_foreach(json_object_get(batch, "nftables"), i, cmd)
		json_object_foreach(cmd, k, verb) {
			if (strcmp(k, "flush") != 0 && strcmp(k, "delete") != 0)
				continue;
			if (json_object_get(verb, "table"))
				return true;
			obj = json_object_get(verb, "set");
			obj = obj ? obj : json_object_get(verb, "map");
			if (strcmp(k, "flush") == 0 && obj &&
			    json_is_string(json_object_get(obj, "name")) &&
			    strcmp(json_string_value(json_object_get(obj,
					"name")), name) == 0)
				return true;
		}
	return false;
}

/* One command's effect on the recorder's tables (see track_tables). */
static void track_command(struct recorder *r, const char *verb, json_t *body)
{
	json_t *t = json_object_get(body, "table");
	json_t *rule = json_object_get(body, "rule");
	json_t *o = t ? t : rule;
	char key[256];

	if (strcmp(verb, "flush") == 0 && json_object_get(body, "ruleset")) {
		json_object_clear(r->tables);
		return;
	}
	if (!json_is_object(o) ||
	    !json_is_string(json_object_get(o, "family")) ||
	    !json_is_string(json_object_get(o, t ? "name" : "table")))
		return;
	snprintf(key, sizeof(key), "%s %s",
		 json_string_value(json_object_get(o, "family")),
		 json_string_value(json_object_get(o, t ? "name" : "table")));
	if (t && strcmp(verb, "delete") == 0)
		json_object_del(r->tables, key);
	else if (t && strcmp(verb, "add") == 0 &&
		 json_object_get(r->tables, key) == NULL)
		json_object_set_new(r->tables, key, json_array());
	else if (rule && strcmp(verb, "add") == 0 &&
		 json_object_get(r->tables, key) &&
		 json_is_string(json_object_get(rule, "comment")))
		json_array_append(json_object_get(r->tables, key),
				  json_object_get(rule, "comment"));
}

/* The recorder's tables: "family name" -> the comments of the rules
 * added to it, kept across batches as the kernel would keep them (rules
 * flushed or deleted one by one are not followed: a recorder). */
static void track_tables(struct recorder *r, const json_t *batch)
{
	json_t *cmd, *body;
	const char *verb;
	size_t i;

	if (r->tables == NULL && (r->tables = json_object()) == NULL)
		return;
	json_array_foreach(json_object_get(batch, "nftables"), i, cmd)
		json_object_foreach(cmd, verb, body)
			track_command(r, verb, body);
}

/* Whether the next apply of text fails as told: then its message. */
static int told_to_fail(struct recorder *r, const char *text,
			char **ret_error)
{
	if (r->fail_next == 0 &&
	    (r->fail_needle == NULL || strstr(text, r->fail_needle) == NULL))
		return 0;
	if (r->fail_next > 0)
		r->fail_next--;
	if (ret_error)
		*ret_error = strdup(r->fail_msg ? r->fail_msg :
				    "recorder: told to fail");
	/* The errno its message quotes, as the kernel backend. */
	return nftio_libnft_errno(r->fail_msg);
}

/* Whether batch (re)defines a table, a chain or a rule. */
static bool defines(const json_t *batch)
{
	static const char *const what[] = { "table", "chain", "rule" };

	return batch_has(batch, what, 3);
}

/* The map or set a command is about (add/flush/delete of a set, a map or
 * an element), or NULL. */
static const char *named(json_t *verb)
{
	static const char *const what[] = { "set", "map", "element" };

	for (size_t j = 0; j < 3; j++) {
		json_t *o = json_object_get(verb, what[j]);
		const char *n = json_string_value(json_object_get(o, "name"));

		if (n)
			return n;
	}
	return NULL;
}

/* Files batch's commands under the maps and sets they touch, replacing
 * what an earlier batch filed for each. */
static void track_elements(struct recorder *r, const json_t *batch)
{
	json_t *now = json_object(), *cmd, *verb, *list;
	const char *k, *name;
	size_t i;

	if (r->by_name == NULL)
		r->by_name = json_object();
	if (now == NULL || r->by_name == NULL)
		abort();
	json_array_foreach(json_object_get(batch, "nftables"), i, cmd)
		json_object_foreach(cmd, k, verb) {
			if ((strcmp(k, "delete") == 0 &&
			     json_object_get(verb, "table")) ||
			    (strcmp(k, "flush") == 0 &&
			     json_object_get(verb, "ruleset"))) {
				json_object_clear(r->by_name);
				json_object_clear(now);
				continue;
			}
			if ((name = named(verb)) == NULL)
				continue;
			if ((list = json_object_get(now, name)) == NULL) {
				list = json_array();
				json_object_set_new(now, name, list);
			}
			json_array_append(list, cmd);
		}
	json_object_update(r->by_name, now);
	json_decref(now);
}

/* Keeps an accepted batch (consumed), as the kernel would commit it. */
static void commit(struct nftio *io, json_t *batch)
{
	struct recorder *r = rec(io);

	if (r->salted && rewrites(batch, r->salted)) {
		free(r->salted);
		r->salted = NULL;
	}
	if (holds_elements(batch))
		track_elements(r, batch);
	if (defines(batch)) {
		json_decref(r->definition);
		r->definition = json_incref(batch);
	}
	track_tables(r, batch);
	json_decref(r->last);
	r->last = batch;
	r->applied++;
	r->generation++;
	r->tampered = false;
	if (r->foreign_next) {
		r->foreign_next = false;
		r->generation++;
	}
	if (r->tamper_next) {
		char *name = r->tamper_next;

		r->tamper_next = NULL;
		nftio_recorder_tamper_elements(io, name);
		free(name);
	}
}

static int recorder_apply(struct nftio *io, const char *text, bool dry_run,
			  char **ret_error)
{
	struct recorder *r = rec(io);
	json_error_t jerr;
	json_t *batch;
	int failed = told_to_fail(r, text, ret_error);

	if (failed)
		return failed;
	batch = json_loads(text, 0, &jerr);
	if (batch == NULL || !json_is_array(json_object_get(batch,
							    "nftables"))) {
		json_decref(batch);
		if (ret_error)
			*ret_error = strdup("recorder: not a libnftables batch");
		return -EINVAL;
	}
	if (dry_run) {
		r->dry_runs++;
		json_decref(batch);
		return 0;
	}
	commit(io, batch);
	return 0;
}

static int recorder_list(struct nftio *io, json_t **ret, char **ret_error)
{
	struct recorder *r = rec(io);

	(void)ret_error;
	*ret = r->last ? json_incref(r->last) :
			 json_pack("{s:[]}", "nftables");
	return *ret ? 0 : -ENOMEM;
}

static int recorder_list_json(struct nftio *io, const json_t *cmds,
			      bool terse, json_t **ret, char **ret_error)
{
	(void)cmds;
	(void)terse;
	return recorder_list(io, ret, ret_error);
}

static int recorder_list_text(struct nftio *io, char **ret_text,
			      char **ret_error)
{
	json_t *l = NULL;
	int r = recorder_list(io, &l, ret_error);

	if (r < 0)
		return r;
	*ret_text = json_dumps(l, JSON_INDENT(2));
	json_decref(l);
	return *ret_text ? 0 : -ENOMEM;
}

static int recorder_generation(struct nftio *io, uint32_t *ret)
{
	*ret = rec(io)->generation;
	return 0;
}

static int recorder_fingerprint(struct nftio *io, const char *family,
				const char *table, char **ret)
{
	struct recorder *r = rec(io);

	(void)family;
	(void)table;
	*ret = json_dumps(r->definition ? r->definition : json_null(),
			  JSON_COMPACT | JSON_ENCODE_ANY);
	return *ret ? 0 : -ENOMEM;
}

static int recorder_marked(struct nftio *io, const char *family,
			   const char *table, const char *mark)
{
	struct recorder *r = rec(io);
	char key[256];
	json_t *comments, *c;
	size_t i;

	if (r->foreign && strcmp(r->foreign, table) == 0)
		return 0;
	snprintf(key, sizeof(key), "%s %s", family, table);
	comments = json_object_get(r->tables, key);
	if (comments == NULL)
		return -ENOENT;
	json_array_foreach(comments, i, c)
		if (strcmp(json_string_value(c), mark) == 0)
			return 1;
	return 0;
}

static int recorder_digest(struct nftio *io, const char *table,
			   const char *map, uint64_t *ret)
{
	struct recorder *r = rec(io);
	bool salted = r->salted && strcmp(r->salted, map) == 0;
	json_t *mine = r->by_name ? json_object_get(r->by_name, map) : NULL;
	char *text = json_dumps(mine ? mine : json_null(),
				JSON_COMPACT | JSON_ENCODE_ANY);

	(void)table;
	if (text == NULL)
		return -ENOMEM;
	*ret = nftio_hash(map, strlen(map), salted ? r->elem_salt : 0) ^
	       nftio_hash(text, strlen(text), 0);
	free(text);
	return 0;
}

static int recorder_verify(struct nftio *io, const struct nftio_elems *b)
{
	struct recorder *r = rec(io);
	int changed = 0;

	for (size_t i = 0; changed == 0 && i < b->n; i++)
		changed = r->tampered && r->salted &&
			  strcmp(r->salted, b->items[i].map) == 0;
	return changed;
}

static int recorder_conntrack_user(struct nftio *io, const char *table,
				   int where, char *who, size_t len)
{
	struct recorder *r = rec(io);

	(void)table;
	r->ct_looks += (where & NFTIO_CT_RULESET) != 0;
	if (r->ct_user && (where & NFTIO_CT_RULESET))
		snprintf(who, len, "%s", r->ct_user);
	return r->ct_user != NULL && (where & NFTIO_CT_RULESET);
}

static void recorder_free(void *data)
{
	struct recorder *r = data;

	json_decref(r->last);
	json_decref(r->by_name);
	json_decref(r->definition);
	free(r->fail_msg);
	free(r->fail_needle);
	free(r->salted);
	free(r->tamper_next);
	free(r->foreign);
	json_decref(r->tables);
	free(r->ct_user);
	free(r);
}

static const struct nftio_ops recorder_ops = {
	.apply = recorder_apply,
	.apply_elems = nftio_backend_apply_elems_json,
	.list = recorder_list,
	.list_json = recorder_list_json,
	.list_text = recorder_list_text,
	.generation = recorder_generation,
	.table_fingerprint = recorder_fingerprint,
	.table_marked = recorder_marked,
	.map_digest = recorder_digest,
	.elems_verify = recorder_verify,
	.conntrack_user = recorder_conntrack_user,
	.free = recorder_free,
};

struct nftio *nftio_new_recorder(void)
{
	struct recorder *r = calloc(1, sizeof(*r));
	struct nftio *io = r ? nftio_backend_new(&recorder_ops, r) : NULL;

	if (io == NULL)
		free(r);
	return io;
}

/* --- what tests ask and tell --------------------------------------- */

size_t nftio_recorder_applied(const struct nftio *io)
{
	return rec(io)->applied;
}

size_t nftio_recorder_dry_runs(const struct nftio *io)
{
	return rec(io)->dry_runs;
}

json_t *nftio_recorder_last(const struct nftio *io)
{
	return rec(io)->last;
}

void nftio_recorder_fail_next(struct nftio *io, unsigned n, const char *msg)
{
	struct recorder *r = rec(io);

	free(r->fail_msg);
	r->fail_msg = msg ? strdup(msg) : NULL;
	r->fail_next = n;
}

void nftio_recorder_fail_match(struct nftio *io, const char *needle,
			       const char *msg)
{
	struct recorder *r = rec(io);

	free(r->fail_msg);
	free(r->fail_needle);
	r->fail_msg = msg ? strdup(msg) : NULL;
	r->fail_needle = needle ? strdup(needle) : NULL;
}

void nftio_recorder_conntrack_user(struct nftio *io, const char *who)
{
	struct recorder *r = rec(io);

	free(r->ct_user);
	r->ct_user = who ? strdup(who) : NULL;
	r->generation++;
}

size_t nftio_recorder_conntrack_looks(const struct nftio *io)
{
	return rec(io)->ct_looks;
}

void nftio_recorder_foreign_table(struct nftio *io, const char *name)
{
	struct recorder *r = rec(io);

	free(r->foreign);
	r->foreign = name ? strdup(name) : NULL;
	r->generation++;
}

void nftio_recorder_tamper(struct nftio *io)
{
	struct recorder *r = rec(io);

	if (r->tables)
		json_object_clear(r->tables);
	json_decref(r->last);
	r->last = json_pack("{s:[]}", "nftables");
	json_decref(r->definition);
	r->definition = json_incref(r->last);
	if (r->by_name)
		json_object_clear(r->by_name);
	r->generation++;
}

void nftio_recorder_tamper_elements(struct nftio *io, const char *name)
{
	struct recorder *r = rec(io);

	free(r->salted);
	r->salted = strdup(name);
	r->elem_salt++;
	r->tampered = true;
	r->generation++;
}

bool nftio_recorder_tampered(const struct nftio *io)
{
	return rec(io)->salted != NULL;
}

void nftio_recorder_foreign_commit_next_apply(struct nftio *io)
{
	rec(io)->foreign_next = true;
}

void nftio_recorder_tamper_next_apply(struct nftio *io, const char *name)
{
	struct recorder *r = rec(io);

	free(r->tamper_next);
	r->tamper_next = strdup(name);
}
