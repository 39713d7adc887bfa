/* Runtime entries in the engine against the recorder: engine_watch_add
 * and engine_watch_remove put pairs in the map and change tracked4/6 in
 * one transaction of elements, refuse without a trace, roll back exactly
 * what a kernel refusal would leave half-done; and a property test that
 * the incremental tracked4/6 changes always equal a full build. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "engine.h"
#include "nftio.h"
#include "ruleset.h"
#include "shuffle.h"
#include "support.h"

/* Two configured entries, trusted networks inside the spaces the tests
 * draw runtime entries from (10.2.0.0/22 and 2001:db8:5::/120). */
static const char *const NFT =
	"\"max_port_number\": 1000, \"tcp_ports\": [22, 80, 443], "
	"\"udp_ports\": [53], \"table_name\": \"mtd_ports\", "
	"\"untrack_unwatched\": true, "
	"\"watched_addresses\": [{\"ip\": \"10.0.0.3\"}, "
	"{\"ip\": \"2001:db8::/48\"}], "
	"\"trusted_addresses\": [\"10.2.3.0/25\", \"10.2.1.17\", "
	"\"2001:db8:5::c0/123\"]";

struct fixture {
	struct nftio *io;
	struct engine *e;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL || (f->io = nftio_new_recorder()) == NULL)
		return -1;
	f->e = engine_new(support_load_nftables(NFT), f->io);
	if (f->e == NULL || engine_shuffle(f->e, NULL) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	engine_free(f->e);
	nftio_free(f->io);
	free(f);
	return 0;
}

static struct config_net net(const char *s)
{
	struct config_net n;

	assert_int_equal(config_parse_net(s, true, &n), 0);
	return n;
}

/* engine_watch_add of the networks a[0..n), no ignore lists. */
static int watch(struct engine *e, const char *const *a, size_t n,
		 char **ret_error)
{
	struct engine_watch w[16];

	assert_true(n <= 16);
	memset(w, 0, sizeof(w));
	for (size_t i = 0; i < n; i++)
		w[i].net = net(a[i]);
	return engine_watch_add(e, w, n, ret_error);
}

static int watch1(struct engine *e, const char *a)
{
	char *err = NULL;
	int r = watch(e, &a, 1, &err);

	assert_true(r == 0 ? err == NULL : err != NULL);
	free(err);
	return r;
}

static size_t idx_of(const struct engine *e, const char *a)
{
	long i = config_watched_find(engine_config(e), a);

	assert_true(i >= 0);
	return (size_t)i;
}

/* The watched entries in index order with their pairs, as text: what a
 * change that is refused or rolled back must leave exactly as it was. */
static char *dump(const struct engine *e)
{
	const struct config *c = engine_config(e);
	const struct shuffle_map *m = engine_map(e);
	size_t cap = 1 << 16, len = 0;
	char *s = malloc(cap);

	assert_non_null(s);
	s[0] = '\0';
	len += (size_t)snprintf(s + len, cap - len, "%zu pairs; ",
				config_pair_count(c));
	for (size_t i = 0; i < config_watched_count(c); i++) {
		const struct shuffle_entry *en = &m->entries[i];

		len += (size_t)snprintf(s + len, cap - len, "%zu %s:",
					i, config_watched(c, i)->net.text);
		for (size_t k = 0; k < en->npairs; k++)
			len += (size_t)snprintf(s + len, cap - len, " %u/%u>%u",
						en->pairs[k].port,
						en->pairs[k].proto,
						en->pairs[k].redirect);
		len += (size_t)snprintf(s + len, cap - len, ";");
		assert_true(len < cap - 256);
	}
	len += (size_t)snprintf(s + len, cap - len, " map %zu",
				m->nentries);
	return s;
}

/* The map matches the configuration entry by entry, and every redirect
 * is valid: in 1..max_port, not a port of its protocol's services,
 * distinct per protocol within the entry. */
static void check_consistent(const struct engine *e)
{
	const struct config *c = engine_config(e);
	const struct shuffle_map *m = engine_map(e);
	size_t pairs = 0;

	assert_non_null(m);
	assert_int_equal(m->nentries, config_watched_count(c));
	for (size_t i = 0; i < m->nentries; i++) {
		const struct config_watched *w = config_watched(c, i);
		const struct shuffle_entry *en = &m->entries[i];
		size_t seen[CONFIG_NPROTO] = { 0, 0 };

		assert_int_equal(en->watched, i);
		assert_int_equal(config_watched_find(c, w->net.text), (long)i);
		assert_int_equal(config_watched_lookup(c, w->net.text), (long)i);
		assert_int_equal(en->npairs, w->nports[0] + w->nports[1]);
		for (size_t k = 0; k < en->npairs; k++) {
			const struct shuffle_pair *p = &en->pairs[k];

			assert_true(p->proto < CONFIG_NPROTO);
			assert_int_equal(p->port, w->ports[p->proto][seen[p->proto]++]);
			assert_true(p->redirect >= 1 &&
				    p->redirect <= config_max_port(c));
			assert_false(config_proto_port_used(c, p->proto,
							    p->redirect));
			for (size_t j = 0; j < k; j++)
				assert_false(en->pairs[j].proto == p->proto &&
					     en->pairs[j].redirect == p->redirect);
		}
		pairs += en->npairs;
	}
	assert_int_equal(pairs, config_pair_count(c));
}

/* Every command of the last batch adds or deletes elements: no table,
 * set, map or chain is defined or flushed. */
static void assert_elements_only(const struct nftio *io)
{
	json_t *cmds = ruleset_commands(nftio_recorder_last(io)), *cmd;
	size_t i;

	assert_true(json_array_size(cmds) > 0);
	json_array_foreach(cmds, i, cmd) {
		const char *verb = json_object_iter_key(json_object_iter(cmd));

		assert_non_null(verb);
		assert_true(strcmp(verb, "add") == 0 ||
			    strcmp(verb, "delete") == 0);
		assert_int_equal(json_object_size(json_object_get(cmd, verb)), 1);
		assert_non_null(json_object_get(json_object_get(cmd, verb),
						"element"));
	}
}

/* --- a model of tracked4/6: sets of exact ranges ------------------------- */

struct range {
	int family;
	unsigned __int128 lo, hi;
};

struct model {
	struct range *r;
	size_t n, cap;
};

static unsigned __int128 addr_value(const char *s, int *ret_family)
{
	unsigned char a[16];
	unsigned __int128 v = 0;
	int family = strchr(s, ':') ? AF_INET6 : AF_INET;
	size_t len = family == AF_INET ? 4 : 16;

	assert_int_equal(inet_pton(family, s, a), 1);
	for (size_t i = 0; i < len; i++)
		v = (v << 8) | a[i];
	*ret_family = family;
	return v;
}

static struct range elem_range(json_t *el)
{
	struct range r;
	int f2;

	if (json_is_string(el)) {
		r.lo = r.hi = addr_value(json_string_value(el), &r.family);
		return r;
	}
	el = json_object_get(el, "range");
	assert_int_equal(json_array_size(el), 2);
	r.lo = addr_value(json_string_value(json_array_get(el, 0)), &r.family);
	r.hi = addr_value(json_string_value(json_array_get(el, 1)), &f2);
	assert_int_equal(r.family, f2);
	assert_true(r.lo <= r.hi);
	return r;
}

static void model_add(struct model *m, struct range r)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->r[i].family == r.family && m->r[i].lo <= r.hi &&
		    r.lo <= m->r[i].hi)
			fail_msg("an added range overlaps one in the set");
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->r = realloc(m->r, m->cap * sizeof(*m->r));
		assert_non_null(m->r);
	}
	m->r[m->n++] = r;
}

static void model_del(struct model *m, struct range r)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->r[i].family == r.family && m->r[i].lo == r.lo &&
		    m->r[i].hi == r.hi) {
			m->r[i] = m->r[--m->n];
			return;
		}
	fail_msg("a deleted range is not in the set");
}

/* Applies the operations on tracked4 and tracked6 of a batch (commands as
 * nftio_elems_json writes them) to m. */
static void model_apply(struct model *m, json_t *cmds)
{
	json_t *cmd, *el, *elems;
	size_t i, k;

	json_array_foreach(cmds, i, cmd) {
		const char *verb = json_object_iter_key(json_object_iter(cmd));
		json_t *body = json_object_get(cmd, verb);
		json_t *o = json_object_get(body, "element");
		const char *name;

		if (strcmp(verb, "flush") == 0 &&
		    (o = json_object_get(body, "set")) != NULL) {
			name = json_string_value(json_object_get(o, "name"));
			if (strncmp(name, "tracked", 7) == 0)
				for (size_t j = m->n; j-- > 0;)
					if ((m->r[j].family == AF_INET6) ==
					    (name[7] == '6'))
						m->r[j] = m->r[--m->n];
			continue;
		}
		if (o == NULL)
			continue;
		name = json_string_value(json_object_get(o, "name"));
		if (strncmp(name, "tracked", 7) != 0)
			continue;
		elems = json_object_get(o, "elem");
		json_array_foreach(elems, k, el) {
			struct range r = elem_range(el);

			assert_int_equal(r.family,
					 name[7] == '6' ? AF_INET6 : AF_INET);
			if (strcmp(verb, "add") == 0)
				model_add(m, r);
			else if (strcmp(verb, "delete") == 0)
				model_del(m, r);
			else
				fail_msg("%s element", verb);
		}
	}
}

/* tracked4/6 as a full build on the configuration now would fill them. */
static void model_full(const struct config *c, struct model *m)
{
	struct nftio_elems *b = nftio_elems_new(config_table_name(c));
	json_t *batch;

	assert_non_null(b);
	assert_int_equal(ruleset_native_set_elements(c, b), 0);
	batch = nftio_elems_json(b);
	assert_non_null(batch);
	m->n = 0;
	model_apply(m, json_object_get(batch, "nftables"));
	json_decref(batch);
	nftio_elems_free(b);
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	if (x->family != y->family)
		return x->family - y->family;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void assert_model_equal(struct model *a, struct model *b)
{
	assert_int_equal(a->n, b->n);
	qsort(a->r, a->n, sizeof(*a->r), cmp_range);
	qsort(b->r, b->n, sizeof(*b->r), cmp_range);
	for (size_t i = 0; i < a->n; i++) {
		assert_int_equal(a->r[i].family, b->r[i].family);
		assert_true(a->r[i].lo == b->r[i].lo);
		assert_true(a->r[i].hi == b->r[i].hi);
	}
}

/* The model after the last batch equals a full build now. */
static void assert_like_full(const struct engine *e, struct model *m)
{
	struct model full = { 0 };

	model_full(engine_config(e), &full);
	assert_model_equal(m, &full);
	free(full.r);
}

static bool model_has(const struct model *m, const char *lo, const char *hi)
{
	int f1, f2;
	unsigned __int128 a = addr_value(lo, &f1), b = addr_value(hi, &f2);

	for (size_t i = 0; i < m->n; i++)
		if (m->r[i].family == f1 && m->r[i].lo == a && m->r[i].hi == b)
			return true;
	return false;
}

/* --- adds ---------------------------------------------------------------- */

static void test_add_one(void **state)
{
	struct fixture *f = *state;
	const struct config *c = engine_config(f->e);
	size_t n0 = config_watched_count(c), p0 = config_pair_count(c);
	size_t applied = nftio_recorder_applied(f->io);
	struct model m = { 0 };
	size_t i;

	model_full(c, &m);
	assert_int_equal(watch1(f->e, "10.2.0.5"), 0);
	assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
	assert_elements_only(f->io);
	assert_int_equal(config_watched_count(c), n0 + 1);
	assert_int_equal(config_pair_count(c), p0 + 4);
	i = idx_of(f->e, "10.2.0.5");
	assert_int_equal(i, n0);
	assert_true(config_watched(c, i)->runtime);
	assert_int_equal(config_configured_count(c), n0);
	check_consistent(f->e);
	/* Its four pairs, both elements each, and its tracked4 range. */
	model_apply(&m, ruleset_commands(nftio_recorder_last(f->io)));
	assert_true(model_has(&m, "10.2.0.5", "10.2.0.5"));
	assert_like_full(f->e, &m);
	free(m.r);
}

/* A prefix and an address inside it, and an IPv6 address, in one call:
 * one batch; the address adds no range of its own. */
static void test_add_prefix_and_inner(void **state)
{
	struct fixture *f = *state;
	const struct config *c = engine_config(f->e);
	static const char *const a[] = { "10.2.0.9", "10.2.0.0/24",
					 "2001:db8:5::7" };
	size_t n0 = config_watched_count(c);
	size_t applied = nftio_recorder_applied(f->io);
	struct model m = { 0 };

	model_full(c, &m);
	assert_int_equal(watch(f->e, a, 3, NULL), 0);
	assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
	assert_elements_only(f->io);
	assert_int_equal(config_watched_count(c), n0 + 3);
	for (size_t i = 0; i < 3; i++)
		assert_true(config_watched(c, idx_of(f->e, a[i]))->runtime);
	/* The address's own entry wins over the prefix around it. */
	assert_int_equal(config_watched_lookup(c, "10.2.0.9"),
			 (long)idx_of(f->e, "10.2.0.9"));
	assert_int_equal(config_watched_lookup(c, "10.2.0.10"),
			 (long)idx_of(f->e, "10.2.0.0/24"));
	check_consistent(f->e);
	model_apply(&m, ruleset_commands(nftio_recorder_last(f->io)));
	assert_true(model_has(&m, "10.2.0.0", "10.2.0.255"));
	assert_false(model_has(&m, "10.2.0.9", "10.2.0.9"));
	assert_true(model_has(&m, "2001:db8:5::7", "2001:db8:5::7"));
	assert_like_full(f->e, &m);
	/* An address added later inside the prefix: pairs, no range. */
	assert_int_equal(watch1(f->e, "10.2.0.77"), 0);
	model_apply(&m, ruleset_commands(nftio_recorder_last(f->io)));
	assert_like_full(f->e, &m);
	check_consistent(f->e);
	free(m.r);
}

/* A prefix around watched addresses takes over their ranges; a prefix
 * with a trusted network inside it is cut around it. */
static void test_add_prefix_over_addresses(void **state)
{
	struct fixture *f = *state;
	struct model m = { 0 };

	model_full(engine_config(f->e), &m);
	assert_int_equal(watch1(f->e, "10.2.1.1"), 0);
	model_apply(&m, ruleset_commands(nftio_recorder_last(f->io)));
	assert_int_equal(watch1(f->e, "10.2.1.200"), 0);
	model_apply(&m, ruleset_commands(nftio_recorder_last(f->io)));
	assert_true(model_has(&m, "10.2.1.1", "10.2.1.1"));
	assert_int_equal(watch1(f->e, "10.2.1.0/24"), 0);
	assert_elements_only(f->io);
	model_apply(&m, ruleset_commands(nftio_recorder_last(f->io)));
	assert_false(model_has(&m, "10.2.1.1", "10.2.1.1"));
	assert_false(model_has(&m, "10.2.1.200", "10.2.1.200"));
	/* 10.2.1.17 is trusted: the prefix's range is cut around it. */
	assert_true(model_has(&m, "10.2.1.0", "10.2.1.16"));
	assert_true(model_has(&m, "10.2.1.18", "10.2.1.255"));
	assert_like_full(f->e, &m);
	check_consistent(f->e);
	free(m.r);
}

/* Refused entries change nothing: not the configuration, not the map,
 * not the kernel; a call with one bad entry among good ones neither. */
static void test_add_refused(void **state)
{
	struct fixture *f = *state;
	const struct config *c = engine_config(f->e);
	static const struct {
		const char *a[3];
		size_t n;
		int r;
	} cases[] = {
		{ { "10.2.1.17" }, 1, -EPERM },
		{ { "10.2.3.0/26" }, 1, -EPERM },
		{ { "10.2.3.0/25" }, 1, -EPERM },
		{ { "2001:db8:5::c4" }, 1, -EPERM },
		{ { "10.2.0.0/23" }, 1, -EINVAL },	/* around 10.2.0.0/24 */
		{ { "10.2.0.128/25" }, 1, -EINVAL },	/* inside it */
		{ { "10.2.0.0/24" }, 1, -EEXIST },
		{ { "10.0.0.3" }, 1, -EEXIST },		/* the file's */
		{ { "10.2.2.1", "10.2.1.17" }, 2, -EPERM },
		{ { "10.2.2.1", "10.2.2.0/30", "10.2.2.0/29" }, 3, -EINVAL },
		{ { "10.2.2.1", "10.2.2.1" }, 2, -EEXIST },
		{ { "10.2.2.8/30", "2001:db8:5::c0/123" }, 2, -EPERM },
	};
	size_t applied;
	char *before;

	assert_int_equal(watch1(f->e, "10.2.0.0/24"), 0);
	applied = nftio_recorder_applied(f->io);
	before = dump(f->e);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err = NULL, *after;

		assert_int_equal(watch(f->e, cases[i].a, cases[i].n, &err),
				 cases[i].r);
		assert_non_null(err);
		free(err);
		after = dump(f->e);
		assert_string_equal(after, before);
		free(after);
		assert_int_equal(nftio_recorder_applied(f->io), applied);
		assert_int_equal(config_watched_find(c, "10.2.2.1"), -1);
		check_consistent(f->e);
	}
	free(before);
}

/* The kernel refuses the batch: the configuration and the map are as
 * before, exactly; the same add then goes through. */
static void test_add_kernel_refusal(void **state)
{
	struct fixture *f = *state;
	const struct config *c = engine_config(f->e);
	static const char *const a[] = { "10.2.2.0/24", "10.2.2.3",
					 "2001:db8:5::9", "10.2.0.1" };
	size_t fails = engine_stats(f->e)->failures;
	struct model m = { 0 };
	char *before, *after, *err = NULL;

	assert_int_equal(watch1(f->e, "10.2.1.1"), 0);
	model_full(c, &m);
	before = dump(f->e);
	nftio_recorder_fail_next(f->io, 1, "Error: Could not process rule: "
				 "No buffer space available");
	assert_true(watch(f->e, a, 4, &err) < 0);
	assert_non_null(err);
	free(err);
	assert_int_equal(engine_stats(f->e)->failures, fails + 1);
	after = dump(f->e);
	assert_string_equal(after, before);
	free(after);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(config_watched_find(c, a[i]), -1);
	check_consistent(f->e);
	assert_int_equal(watch(f->e, a, 4, NULL), 0);
	check_consistent(f->e);
	model_apply(&m, ruleset_commands(nftio_recorder_last(f->io)));
	assert_like_full(f->e, &m);
	free(before);
	free(m.r);
}

/* --- removes ------------------------------------------------------------- */

/* The entries by index, as the moves say they go. */
struct mirror {
	char net[64][INET6_ADDRSTRLEN + 4];
	char *pairs[64];
	size_t n;
	size_t calls;
};

static char *entry_pairs(const struct engine *e, size_t i)
{
	const struct shuffle_entry *en = &engine_map(e)->entries[i];
	char *s = malloc(en->npairs * 24 + 1);
	size_t len = 0;

	assert_non_null(s);
	s[0] = '\0';
	for (size_t k = 0; k < en->npairs; k++)
		len += (size_t)sprintf(s + len, "%u/%u>%u ", en->pairs[k].port,
				       en->pairs[k].proto,
				       en->pairs[k].redirect);
	return s;
}

static void mirror_take(struct mirror *m, const struct engine *e)
{
	const struct config *c = engine_config(e);

	m->n = config_watched_count(c);
	m->calls = 0;
	assert_true(m->n <= 64);
	for (size_t i = 0; i < m->n; i++) {
		snprintf(m->net[i], sizeof(m->net[i]), "%s",
			 config_watched(c, i)->net.text);
		m->pairs[i] = entry_pairs(e, i);
	}
}

static void mirror_free(struct mirror *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->pairs[i]);
	m->n = 0;
}

static void on_moved(void *arg, size_t to, size_t from)
{
	struct mirror *m = arg;

	/* The last entry takes the place of the one gone. */
	assert_true(m->n > 0);
	assert_int_equal(from, m->n - 1);
	assert_true(to <= from);
	free(m->pairs[to]);
	if (to != from) {
		memcpy(m->net[to], m->net[from], sizeof(m->net[to]));
		m->pairs[to] = m->pairs[from];
	}
	m->n--;
	m->calls++;
}

/* The configuration and the map are what the moves said: every entry at
 * the index the mirror has, with the pairs it had. */
static void mirror_check(const struct mirror *m, const struct engine *e)
{
	const struct config *c = engine_config(e);

	assert_int_equal(config_watched_count(c), m->n);
	for (size_t i = 0; i < m->n; i++) {
		char *p = entry_pairs(e, i);

		assert_string_equal(config_watched(c, i)->net.text, m->net[i]);
		assert_string_equal(p, m->pairs[i]);
		free(p);
	}
	check_consistent(e);
}

static void test_remove_several(void **state)
{
	struct fixture *f = *state;
	const struct config *c = engine_config(f->e);
	static const char *const a[] = {
		"10.2.0.9", "10.2.0.0/24", "10.2.2.1", "10.2.2.2",
		"2001:db8:5::7", "10.2.2.0/30", "10.2.1.40", "10.2.0.10",
	};
	static const char *const gone[] = { "10.2.0.0/24", "10.2.0.9",
					    "10.2.2.1", "10.2.1.40" };
	struct model m = { 0 };
	struct mirror mi;
	size_t idx[4], applied;

	assert_int_equal(watch(f->e, a, 8, NULL), 0);
	model_full(c, &m);
	mirror_take(&mi, f->e);
	for (size_t i = 0; i < 4; i++)
		idx[i] = idx_of(f->e, gone[i]);
	applied = nftio_recorder_applied(f->io);
	assert_int_equal(engine_watch_remove(f->e, idx, 4, on_moved, &mi,
					     NULL), 0);
	assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
	assert_elements_only(f->io);
	assert_int_equal(mi.calls, 4);
	mirror_check(&mi, f->e);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(config_watched_find(c, gone[i]), -1);
	/* 10.2.0.10 was inside the prefix: it has its range back. */
	model_apply(&m, ruleset_commands(nftio_recorder_last(f->io)));
	assert_true(model_has(&m, "10.2.0.10", "10.2.0.10"));
	assert_false(model_has(&m, "10.2.0.0", "10.2.0.255"));
	assert_like_full(f->e, &m);
	/* The prefix around 10.2.2.2 goes, the address stays, alone. */
	idx[0] = idx_of(f->e, "10.2.2.0/30");
	assert_int_equal(engine_watch_remove(f->e, idx, 1, on_moved, &mi,
					     NULL), 0);
	mirror_check(&mi, f->e);
	model_apply(&m, ruleset_commands(nftio_recorder_last(f->io)));
	assert_true(model_has(&m, "10.2.2.2", "10.2.2.2"));
	assert_like_full(f->e, &m);
	/* Every runtime entry left, the last first. */
	for (size_t n; (n = config_watched_count(c)) >
		       config_configured_count(c);) {
		idx[0] = n - 1;
		assert_int_equal(engine_watch_remove(f->e, idx, 1, on_moved,
						     &mi, NULL), 0);
		mirror_check(&mi, f->e);
		model_apply(&m, ruleset_commands(nftio_recorder_last(f->io)));
		assert_like_full(f->e, &m);
	}
	mirror_free(&mi);
	free(m.r);
}

/* A refused remove (the kernel's, or an entry of the file's) puts back
 * exactly: same indexes, same pairs; no moves said. */
static void test_remove_failure_restores(void **state)
{
	struct fixture *f = *state;
	const struct config *c = engine_config(f->e);
	static const char *const a[] = {
		"10.2.0.0/24", "10.2.0.9", "10.2.2.1", "10.2.2.2",
		"2001:db8:5::7", "10.2.1.40",
	};
	struct mirror mi;
	size_t idx[4], applied;
	char *before, *after, *err = NULL;

	assert_int_equal(watch(f->e, a, 6, NULL), 0);
	idx[0] = idx_of(f->e, "10.2.0.9");
	idx[1] = idx_of(f->e, "10.2.2.1");
	idx[2] = idx_of(f->e, "10.2.0.0/24");
	idx[3] = idx_of(f->e, "2001:db8:5::7");
	before = dump(f->e);
	mirror_take(&mi, f->e);
	applied = nftio_recorder_applied(f->io);
	nftio_recorder_fail_next(f->io, 1, "Error: Could not process rule: "
				 "Invalid argument");
	assert_true(engine_watch_remove(f->e, idx, 4, on_moved, &mi, &err) < 0);
	assert_non_null(err);
	free(err);
	err = NULL;
	assert_int_equal(mi.calls, 0);
	after = dump(f->e);
	assert_string_equal(after, before);
	free(after);
	mirror_check(&mi, f->e);
	/* An entry of the file's: refused before anything changes. */
	idx[3] = 0;
	assert_int_equal(engine_watch_remove(f->e, idx, 4, on_moved, &mi,
					     &err), -EPERM);
	assert_non_null(err);
	free(err);
	assert_int_equal(mi.calls, 0);
	after = dump(f->e);
	assert_string_equal(after, before);
	free(after);
	assert_int_equal(nftio_recorder_applied(f->io), applied);
	/* And then it goes through. */
	idx[3] = idx_of(f->e, "10.2.1.40");
	assert_int_equal(engine_watch_remove(f->e, idx, 4, on_moved, &mi,
					     NULL), 0);
	assert_int_equal(mi.calls, 4);
	mirror_check(&mi, f->e);
	assert_int_equal(config_watched_count(c), config_configured_count(c) + 2);
	mirror_free(&mi);
	free(before);
}

/* --- the property: incremental changes equal a full build ----------------- */

/* A small deterministic generator (xorshift64*). */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 0x2545f4914f6cdd1dull;
}

/* An address or prefix in 10.2.0.0/22 or 2001:db8:5::/120, small enough
 * that prefixes nest, overlap, and meet the trusted networks. */
static void random_net(char *buf, size_t len)
{
	static const unsigned v4len[] = { 32, 32, 32, 30, 28, 26, 24, 23 };
	static const unsigned v6len[] = { 128, 128, 126, 124, 122, 121 };

	if (rnd() % 4) {
		unsigned l = v4len[rnd() % 8];
		uint32_t a = (10u << 24) | (2u << 16) | (uint32_t)(rnd() % 1024);
		struct in_addr in;
		char s[INET_ADDRSTRLEN];

		if (l < 32)
			a &= ~((1u << (32 - l)) - 1);
		in.s_addr = htonl(a);
		inet_ntop(AF_INET, &in, s, sizeof(s));
		if (l < 32)
			snprintf(buf, len, "%s/%u", s, l);
		else
			snprintf(buf, len, "%s", s);
	} else {
		unsigned l = v6len[rnd() % 6];
		unsigned low = (unsigned)(rnd() % 256);

		if (l < 128)
			low &= ~((1u << (128 - l)) - 1);
		if (l < 128)
			snprintf(buf, len, "2001:db8:5::%x/%u", low, l);
		else
			snprintf(buf, len, "2001:db8:5::%x", low);
	}
}

static void test_incremental_equals_full(void **state)
{
	struct fixture *f = *state;
	const struct config *c = engine_config(f->e);
	struct model m = { 0 };
	struct mirror mi = { .n = 0 };
	size_t ok_adds = 0, ok_removes = 0, refused = 0, failed = 0;

	model_full(c, &m);
	for (int step = 0; step < 600; step++) {
		size_t nrt = config_watched_count(c) - config_configured_count(c);
		size_t applied = nftio_recorder_applied(f->io);
		uint64_t fails = engine_stats(f->e)->failures;
		bool fail = rnd() % 10 == 0;
		char *before = dump(f->e), *after, *err = NULL;
		int r;

		if (fail)
			nftio_recorder_fail_next(f->io, 1, "Error: Could not "
						 "process rule: Invalid argument");
		if (nrt == 0 || (nrt < 40 && rnd() % 5 < 3)) {
			char a[4][64];
			const char *p[4];
			size_t n = 1 + rnd() % 4;

			for (size_t i = 0; i < n; i++) {
				random_net(a[i], sizeof(a[i]));
				p[i] = a[i];
			}
			r = watch(f->e, p, n, &err);
			ok_adds += r == 0;
		} else {
			size_t idx[4], n = 1 + rnd() % 4, k = 0;

			if (n > nrt)
				n = nrt;
			while (k < n) {
				size_t i = config_configured_count(c) +
					   rnd() % nrt;
				bool dup = false;

				for (size_t j = 0; j < k; j++)
					dup |= idx[j] == i;
				if (!dup)
					idx[k++] = i;
			}
			mirror_take(&mi, f->e);
			r = engine_watch_remove(f->e, idx, n, on_moved, &mi, &err);
			if (r == 0) {
				assert_int_equal(mi.calls, n);
				mirror_check(&mi, f->e);
				ok_removes++;
			} else {
				assert_int_equal(mi.calls, 0);
			}
			mirror_free(&mi);
		}
		free(err);
		check_consistent(f->e);
		if (r < 0) {
			/* Nothing changed, in the engine or the kernel. */
			after = dump(f->e);
			assert_string_equal(after, before);
			free(after);
			if (engine_stats(f->e)->failures != fails) {
				assert_true(fail);
				failed++;
			} else {
				refused++;
				nftio_recorder_fail_next(f->io, 0, NULL);
			}
			assert_int_equal(nftio_recorder_applied(f->io), applied);
		} else {
			assert_false(fail);
			assert_int_equal(nftio_recorder_applied(f->io),
					 applied + 1);
			assert_elements_only(f->io);
			model_apply(&m, ruleset_commands(
						nftio_recorder_last(f->io)));
		}
		assert_like_full(f->e, &m);
		free(before);
	}
	/* The walk did what it is for. */
	assert_true(ok_adds > 50);
	assert_true(ok_removes > 50);
	assert_true(refused > 20);
	assert_true(failed > 10);
	free(m.r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_prefix_and_inner,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_prefix_over_addresses,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_add_kernel_refusal, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_remove_several, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_remove_failure_restores,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_incremental_equals_full,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
