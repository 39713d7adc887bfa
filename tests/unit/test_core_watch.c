/* The runtime watch list's policy in the core (core_watch.c) against the
 * recorder, with a state directory of the test's own: replies after the
 * group commit, the state file and the restore from it, origins, flush,
 * expiry, a commit that cannot be written, the limits and refusals. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "core.h"
#include "core_fleet.h"
#include "engine.h"
#include "recorder.h"
#include "shuffle.h"
#include "support.h"
#include "support_fleet.h"
#include "watchlist.h"

/* Under ASan, catch pointers into a frame that has returned: the items
 * the list's walks hand to callbacks live on the walker's stack.  (The
 * sanitizer's own hook, hence its name.) */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_stack_use_after_return=1";
}

struct fixture {
	char dir[64];		/* the state directory */
	char path[128];		/* the configuration file */
	char run[64];		/* the claims' directory */
	char state[128];	/* dir/runtime.state */
	struct nftio *io;
	struct core *core;
	unsigned commits_armed;
	int64_t expiry;
	unsigned warnings;
};

static void on_log(void *arg, enum core_level level, const char *line)
{
	struct fixture *f = arg;

	(void)line;
	f->warnings += level == CORE_WARN;
}

static void on_schedule(void *arg, long long wait_ms)
{
	(void)arg;
	(void)wait_ms;
}

static void on_commit(void *arg)
{
	struct fixture *f = arg;

	f->commits_armed++;
}

static void on_expiry(void *arg, int64_t when)
{
	struct fixture *f = arg;

	f->expiry = when;
}

/* The configuration, with porthopd's section (state_directory: the
 * fixture's, or "" if memory_only) and max_runtime_entries.  (Template
 * mode loads the corpus's reference instead.) */
static void write_config(struct fixture *f, bool memory_only,
			 unsigned max_entries)
{
	FILE *fp = fopen(f->path, "w");

	assert_non_null(fp);
	fprintf(fp, "{\"redis_connection_configuration\": {\"host\": "
		"\"127.0.0.1\", \"port\": 6379, \"db\": 0, \"charset\": "
		"\"utf-8\", \"decode_responses\": true}, "
		"\"redis_subscriber_configuration\": "
		"{\"subscriber_channel_names\": [\"c\"]}, "
		"\"porthopd\": {\"state_directory\": \"%s\", "
		"\"max_runtime_entries\": %u}, "
		"\"nftables_service_configuration\": {",
		memory_only ? "" : f->dir, max_entries);
	fprintf(fp, "\"max_port_number\": 1000, "
		"\"tcp_ports\": [22, 80, 443], \"udp_ports\": [53], "
		"\"table_name\": \"mtd_ports\", "
		"\"watched_addresses\": [{\"ip\": \"10.0.0.3\"}], "
		"\"trusted_addresses\": [\"10.2.3.0/25\", \"10.2.1.17\"]}}\n");
	assert_int_equal(fclose(fp), 0);
}

static void start_core(struct fixture *f)
{
	struct core_hooks hooks = {
		.arg = f, .log = on_log, .schedule = on_schedule,
		.commit = on_commit, .expiry = on_expiry,
	};
	struct config *cfg = core_load(f->io, f->path, on_log, f, NULL);

	assert_non_null(cfg);
	f->core = core_new(f->io, cfg, f->path, &hooks);
	assert_non_null(f->core);
	core_set_run_dir(f->core, f->run);
	assert_int_equal(core_start(f->core), 0);
}

static void stop_core(struct fixture *f)
{
	core_free(f->core);
	f->core = NULL;
}

static int setup_with(void **state, bool template_mode, bool memory_only,
		      unsigned max_entries)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/porthop-test-state.XXXXXX");
	snprintf(f->run, sizeof(f->run), "/tmp/porthop-test-run.XXXXXX");
	if (mkdtemp(f->dir) == NULL || mkdtemp(f->run) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s.json", f->dir);
	snprintf(f->state, sizeof(f->state), "%s/runtime.state", f->dir);
	f->io = nftio_new_recorder();
	if (f->io == NULL)
		return -1;
	*state = f;
	if (template_mode)	/* the reference's own, in the corpus */
		snprintf(f->path, sizeof(f->path), "%s",
			 "valid/reference.json");
	else
		write_config(f, memory_only, max_entries);
	start_core(f);
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, false, false, 1000);
}

static int setup_small(void **state)
{
	return setup_with(state, false, false, 3);
}

static int setup_memory(void **state)
{
	return setup_with(state, false, true, 1000);
}

static int setup_template(void **state)
{
	return setup_with(state, true, false, 1000);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	stop_core(f);
	nftio_free(f->io);
	support_remove_dir(f->dir);	/* the claims' locks stay */
	support_remove_dir(f->run);
	if (f->path[0] == '/')
		unlink(f->path);
	free(f);
	return 0;
}

/* What a done callback got. */
struct got {
	unsigned calls;
	struct core_watch_result res;
};

static void on_done(void *arg, const struct core_watch_result *res)
{
	struct got *g = arg;

	g->calls++;
	g->res = *res;
}

static struct core_watch_req req(const char *address, int64_t ttl)
{
	struct core_watch_req r = { .address = address, .ttl = ttl };

	return r;
}

/* Adds addresses a[0..n) for origin and commits; returns the status the
 * requester is finally told. */
static enum core_watch_status add_commit(struct fixture *f, const char *origin,
					 const char *const *a, size_t n,
					 int64_t ttl, struct core_watch_result *ret)
{
	struct core_watch_req r[16];
	struct core_watch_result res;
	struct got g = { 0 };
	int pending;

	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++)
		r[i] = req(a[i], ttl);
	pending = core_watch_add(f->core, origin, r, n, &res, on_done, &g);
	if (pending == 0) {
		assert_int_equal(g.calls, 0);
		if (ret)
			*ret = res;
		return res.status;
	}
	assert_int_equal(pending, 1);
	assert_int_equal(g.calls, 0);	/* not before the commit */
	core_watch_commit(f->core);
	assert_int_equal(g.calls, 1);
	if (ret)
		*ret = g.res;
	return g.res.status;
}

static enum core_watch_status del_commit(struct fixture *f, const char *origin,
					 const char *const *a, size_t n,
					 struct core_watch_result *ret)
{
	struct core_watch_result res;
	struct got g = { 0 };
	int pending = core_watch_del(f->core, origin, a, n, &res, on_done, &g);

	if (pending == 0) {
		*ret = res;
		return res.status;
	}
	core_watch_commit(f->core);
	assert_int_equal(g.calls, 1);
	*ret = g.res;
	return g.res.status;
}

static bool in_config(const struct fixture *f, const char *a)
{
	return config_watched_find(core_config(f->core), a) >= 0;
}

/* A run of fleet watches is one transaction and one commit; an address
 * trusted here in the middle is refused alone (the run split in halves
 * until it is), the others still applied; unwatches likewise. */
static void test_fleet_apply(void **state)
{
	struct fixture *f = *state;
	const int64_t later = (int64_t)time(NULL) + 3600;
	struct fleet_op ops[5] = {
		{ FLEET_WATCH, "10.2.2.1", "ids", later, 0 },
		{ FLEET_WATCH, "10.2.2.2", "ids", 0, 0 },
		{ FLEET_WATCH, "10.2.1.17", "ids", later, 0 },	/* trusted */
		{ FLEET_WATCH, "10.2.2.3", "ids", later, 0 },
		{ FLEET_WATCH, "10.2.2.4", "ids", later, 0 },
	};
	struct support_fleet_got g = { 0 };
	size_t applied = nftio_recorder_applied(f->io);
	const struct watchlist_item *it;
	struct config_net net;

	/* Without the trusted one: one transaction for four. */
	ops[2] = ops[4];
	core_fleet_apply(f->core, FLEET_RUN_ADD, ops, 4, support_fleet_done, &g);
	assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
	assert_int_equal(g.calls[0], 0);	/* not before the commit */
	core_watch_commit(f->core);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(g.calls[i], 1);
		assert_int_equal(g.v[i], FLEET_ACK);
	}
	assert_true(in_config(f, "10.2.2.4"));
	assert_int_equal(config_parse_net("10.2.2.4", true, &net), 0);
	it = watchlist_get(core_watchlist(f->core), &net, "fleet.ids");
	assert_non_null(it);
	assert_int_equal(it->expires, later);

	/* With it: refused alone, the others refreshed in two parts. */
	memset(&g, 0, sizeof(g));
	snprintf(ops[2].address, sizeof(ops[2].address), "10.2.1.17");
	core_fleet_apply(f->core, FLEET_RUN_ADD, ops, 5, support_fleet_done, &g);
	assert_int_equal(g.calls[2], 1);	/* refused now */
	assert_int_equal(g.v[2], FLEET_ACK_REFUSED);
	core_watch_commit(f->core);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(g.calls[i], 1);
		if (i != 2)
			assert_int_equal(g.v[i], FLEET_ACK);
	}
	assert_false(in_config(f, "10.2.1.17"));
	assert_true(in_config(f, "10.2.2.3"));

	/* Unwatches: one of them held by nobody; done all the same. */
	memset(&g, 0, sizeof(g));
	ops[0].kind = ops[1].kind = ops[2].kind = FLEET_UNWATCH;
	snprintf(ops[2].address, sizeof(ops[2].address), "10.2.2.9");
	applied = nftio_recorder_applied(f->io);
	core_fleet_apply(f->core, FLEET_RUN_DEL, ops, 3, support_fleet_done, &g);
	core_watch_commit(f->core);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(g.calls[i], 1);
		assert_int_equal(g.v[i], FLEET_ACK);
	}
	assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
	assert_false(in_config(f, "10.2.2.1"));
	assert_false(in_config(f, "10.2.2.2"));
	assert_true(in_config(f, "10.2.2.3"));
}

/* Whether the list holds (a, origin). */
static bool listed(const struct fixture *f, const char *a, const char *origin)
{
	struct config_net n;

	assert_int_equal(config_parse_net(a, true, &n), 0);
	return watchlist_has(core_watchlist(f->core), &n, origin);
}

static char *read_state(const struct fixture *f)
{
	FILE *fp = fopen(f->state, "r");
	char *s = calloc(1, 1 << 16);

	assert_non_null(fp);
	assert_non_null(s);
	fread(s, 1, (1 << 16) - 1, fp);
	fclose(fp);
	return s;
}

/* The map holds every watched entry's pairs, one entry each. */
static void check_map(const struct fixture *f)
{
	const struct config *c = core_config(f->core);
	const struct shuffle_map *m = engine_map(core_engine(f->core));
	size_t pairs = 0;

	assert_non_null(m);
	assert_int_equal(m->nentries, config_watched_count(c));
	for (size_t i = 0; i < m->nentries; i++) {
		assert_int_equal(m->entries[i].watched, i);
		pairs += m->entries[i].npairs;
	}
	assert_int_equal(pairs, config_pair_count(c));
}

/* Every runtime entry of the configuration is held by an origin, and
 * every network held is watched. */
static int held_watched(void *arg, const struct watchlist_item *it)
{
	const struct fixture *f = arg;

	assert_true(in_config(f, it->net.text));
	return 0;
}

static void check_agree(const struct fixture *f)
{
	const struct config *c = core_config(f->core);

	for (size_t i = config_configured_count(c);
	     i < config_watched_count(c); i++)
		assert_true(watchlist_holders(core_watchlist(f->core),
					      &config_watched(c, i)->net) > 0);
	watchlist_foreach(core_watchlist(f->core), NULL, held_watched,
			  (void *)f);
	check_map(f);
}

static const struct watchlist_origin_stats *origin_stats(
	const struct fixture *f, const char *name)
{
	const struct watchlist *w = core_watchlist(f->core);

	for (size_t i = 0; i < watchlist_origin_count(w); i++)
		if (strcmp(watchlist_origin(w, i)->name, name) == 0)
			return watchlist_origin(w, i);
	return NULL;
}

/* --- tests ----------------------------------------------------------------- */

static void test_add_commit_restore(void **state)
{
	struct fixture *f = *state;
	static const uint16_t tcp[] = { 22 };
	struct core_watch_req r[3] = {
		req("10.2.0.5", 0), req("10.2.2.0/24", 0),
		req("2001:db8:5::7", 3600),
	};
	struct core_watch_result res;
	struct got g = { 0 };
	size_t applied = nftio_recorder_applied(f->io);
	const struct config_watched *w;
	char *text;

	r[0].ignore[CONFIG_TCP] = tcp;
	r[0].nignore[CONFIG_TCP] = 1;
	assert_int_equal(core_watch_add(f->core, "ids", r, 3, &res, on_done,
					&g), 1);
	/* In force before the reply: one transaction. */
	assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
	assert_int_equal(f->commits_armed, 1);
	assert_int_equal(g.calls, 0);
	assert_true(in_config(f, "10.2.2.0/24"));
	assert_true(f->expiry > time(NULL));
	core_watch_commit(f->core);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.res.status, CORE_WATCH_OK);
	assert_true(g.res.durable);
	assert_int_equal(g.res.added, 3);
	assert_int_equal(g.res.refreshed, 0);
	assert_int_equal(g.res.entries, 3);
	check_agree(f);
	w = config_watched(core_config(f->core),
			   config_watched_find(core_config(f->core), "10.2.0.5"));
	assert_int_equal(w->nports[CONFIG_TCP], 2);	/* 22 left alone */
	text = read_state(f);
	assert_non_null(strstr(text, "porthop-state 1\n"));
	assert_non_null(strstr(text, "+ 10.2.0.5 ids "));
	assert_non_null(strstr(text, " tcp=22"));
	assert_non_null(strstr(text, "+ 10.2.2.0/24 ids "));
	assert_non_null(strstr(text, "+ 2001:db8:5::7 ids "));
	free(text);
	/* A refresh: counted as such, still three entries. */
	assert_int_equal(add_commit(f, "ids", (const char *[]){ "10.2.0.5" },
				    1, 60, &res), CORE_WATCH_OK);
	assert_int_equal(res.refreshed, 1);
	assert_int_equal(res.added, 0);
	assert_int_equal(res.entries, 3);
	/* A second core on the same directory restores them. */
	stop_core(f);
	start_core(f);
	assert_int_equal(watchlist_count(core_watchlist(f->core)), 3);
	assert_true(listed(f, "10.2.0.5", "ids"));
	assert_true(listed(f, "10.2.2.0/24", "ids"));
	assert_true(listed(f, "2001:db8:5::7", "ids"));
	assert_true(in_config(f, "10.2.0.5"));
	assert_true(in_config(f, "10.2.2.0/24"));
	assert_true(in_config(f, "2001:db8:5::7"));
	w = config_watched(core_config(f->core),
			   config_watched_find(core_config(f->core), "10.2.0.5"));
	/* The refresh named no ignore list: the latest entry's lists are
	 * the ones restored. */
	assert_int_equal(w->nports[CONFIG_TCP], 3);
	check_agree(f);
	assert_int_equal(f->warnings, 0);
}

/* One origin's delete leaves another's entry, and the network watched. */
static void test_delete_by_origin(void **state)
{
	struct fixture *f = *state;
	struct core_watch_result res;
	static const char *const a[] = { "10.2.0.7" }, *const b[] = {
		"10.2.0.8" }, *const ab[] = { "10.2.0.7", "10.2.0.8" };
	char *text;

	assert_int_equal(add_commit(f, "f2b.sshd", a, 1, 0, NULL), CORE_WATCH_OK);
	assert_int_equal(add_commit(f, "ids", ab, 2, 0, NULL), CORE_WATCH_OK);
	assert_int_equal(del_commit(f, "f2b.sshd", a, 1, &res), CORE_WATCH_OK);
	assert_int_equal(res.deleted, 1);
	assert_int_equal(res.entries, 2);
	assert_false(listed(f, "10.2.0.7", "f2b.sshd"));
	assert_true(listed(f, "10.2.0.7", "ids"));
	assert_true(in_config(f, "10.2.0.7"));
	check_agree(f);
	/* Nothing left of that origin to delete. */
	assert_int_equal(del_commit(f, "f2b.sshd", a, 1, &res),
			 CORE_WATCH_NOT_FOUND);
	assert_int_equal(del_commit(f, "ids", (const char *[]){ "10.2.0.99" },
				    1, &res), CORE_WATCH_NOT_FOUND);
	/* Every origin's: the network goes. */
	assert_int_equal(add_commit(f, "f2b.sshd", b, 1, 0, NULL), CORE_WATCH_OK);
	assert_int_equal(del_commit(f, NULL, b, 1, &res), CORE_WATCH_OK);
	assert_int_equal(res.deleted, 2);
	assert_true(res.durable);
	assert_false(in_config(f, "10.2.0.8"));
	assert_false(listed(f, "10.2.0.8", "ids"));
	assert_false(listed(f, "10.2.0.8", "f2b.sshd"));
	check_agree(f);
	text = read_state(f);
	assert_non_null(strstr(text, "- 10.2.0.7 f2b.sshd\n"));
	assert_non_null(strstr(text, "- 10.2.0.8 "));
	free(text);
	/* The file's own entry is no runtime entry. */
	assert_int_equal(del_commit(f, NULL, (const char *[]){ "10.0.0.3" }, 1,
				    &res), CORE_WATCH_NOT_FOUND);
	assert_true(in_config(f, "10.0.0.3"));
	/* And after a restart, what was deleted stays deleted. */
	stop_core(f);
	start_core(f);
	assert_int_equal(watchlist_count(core_watchlist(f->core)), 1);
	assert_true(listed(f, "10.2.0.7", "ids"));
	check_agree(f);
}

/* A delete that names a network twice (a detector's batch of unbans):
 * the network leaves the map with its last holder, as named once. */
static void test_delete_named_twice(void **state)
{
	struct fixture *f = *state;
	struct core_watch_result res;
	static const char *const a[] = { "10.2.0.7" }, *const aa[] = {
		"10.2.0.7", "10.2.0.7" };

	assert_int_equal(add_commit(f, "f2b.sshd", a, 1, 0, NULL), CORE_WATCH_OK);
	assert_int_equal(del_commit(f, "f2b.sshd", aa, 2, &res), CORE_WATCH_OK);
	assert_int_equal(res.deleted, 1);
	assert_false(listed(f, "10.2.0.7", "f2b.sshd"));
	assert_false(in_config(f, "10.2.0.7"));
	check_agree(f);
	/* Every origin's, two origins holding it. */
	assert_int_equal(add_commit(f, "f2b.sshd", a, 1, 0, NULL), CORE_WATCH_OK);
	assert_int_equal(add_commit(f, "ids", a, 1, 0, NULL), CORE_WATCH_OK);
	assert_int_equal(del_commit(f, NULL, aa, 2, &res), CORE_WATCH_OK);
	assert_int_equal(res.deleted, 2);
	assert_false(in_config(f, "10.2.0.7"));
	check_agree(f);
}

static void test_flush(void **state)
{
	struct fixture *f = *state;
	struct core_watch_result res;
	struct got g = { 0 };
	static const char *const x[] = { "10.2.0.1", "10.2.0.2", "10.2.2.0/28",
					 "2001:db8:5::1" };
	static const char *const y[] = { "10.2.0.2", "10.2.0.3" };
	int pending;
	char *text;

	assert_int_equal(add_commit(f, "x", x, 4, 0, NULL), CORE_WATCH_OK);
	assert_int_equal(add_commit(f, "y", y, 2, 0, NULL), CORE_WATCH_OK);
	pending = core_watch_flush(f->core, "x", &res, on_done, &g);
	assert_int_equal(pending, 1);
	core_watch_commit(f->core);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.res.status, CORE_WATCH_OK);
	assert_int_equal(g.res.deleted, 4);
	assert_int_equal(g.res.entries, 2);
	for (size_t i = 0; i < 4; i++)
		assert_false(listed(f, x[i], "x"));
	assert_false(in_config(f, "10.2.0.1"));
	assert_false(in_config(f, "10.2.2.0/28"));
	assert_false(in_config(f, "2001:db8:5::1"));
	assert_true(in_config(f, "10.2.0.2"));	/* y holds it */
	assert_true(listed(f, "10.2.0.2", "y"));
	assert_int_equal(origin_stats(f, "x")->entries, 0);
	check_agree(f);
	text = read_state(f);
	assert_non_null(strstr(text, "! x\n"));
	free(text);
	/* Nothing left: 0 deleted, no error. */
	g.calls = 0;
	pending = core_watch_flush(f->core, "x", &res, on_done, &g);
	if (pending)
		core_watch_commit(f->core);
	else
		g.res = res;
	assert_int_equal(g.res.status, CORE_WATCH_OK);
	assert_int_equal(g.res.deleted, 0);
	assert_int_equal(g.res.entries, 2);
	/* Restored as flushed. */
	stop_core(f);
	start_core(f);
	assert_int_equal(watchlist_count(core_watchlist(f->core)), 2);
	assert_false(in_config(f, "10.2.0.1"));
	check_agree(f);
}

/* An entry with a TTL of one second is gone once its second has come,
 * not before; the timer is asked for that second. */
static void test_expire(void **state)
{
	struct fixture *f = *state;
	struct core_watch_result res;
	static const char *const a[] = { "10.2.0.1", "10.2.2.0/28" };
	int64_t expires;

	assert_int_equal(add_commit(f, "ids", a, 2, 1, &res), CORE_WATCH_OK);
	assert_int_equal(add_commit(f, "ids", (const char *[]){ "10.2.0.9" }, 1,
				    0, NULL), CORE_WATCH_OK);
	expires = watchlist_next_expiry(core_watchlist(f->core));
	assert_true(expires > 0);
	assert_int_equal(f->expiry, expires);
	if (time(NULL) < expires) {
		core_watch_expire(f->core);
		assert_true(in_config(f, "10.2.0.1"));
		assert_int_equal(watchlist_count(core_watchlist(f->core)), 3);
	}
	/* Wait for the second (a poll with a deadline, not a duration). */
	for (int i = 0; i < 100 && time(NULL) < expires; i++)
		usleep(50 * 1000);
	assert_true(time(NULL) >= expires);
	core_watch_expire(f->core);
	assert_false(in_config(f, "10.2.0.1"));
	assert_false(in_config(f, "10.2.2.0/28"));
	assert_false(listed(f, "10.2.0.1", "ids"));
	assert_true(listed(f, "10.2.0.9", "ids"));
	assert_int_equal(watchlist_count(core_watchlist(f->core)), 1);
	assert_int_equal(origin_stats(f, "ids")->expiries, 2);
	assert_int_equal(f->expiry, 0);		/* nothing left to expire */
	check_agree(f);
}

/* Two origins' entries for one network expire in the same second: the
 * network leaves the mapping once, and nothing else with it. */
static void test_expire_two_origins(void **state)
{
	struct fixture *f = *state;
	static const char *const a[] = { "10.2.0.1", "10.2.2.0/28" };
	const struct watchlist_item *x, *y;
	struct config_net n;
	int64_t expires;

	assert_int_equal(config_parse_net("10.2.0.1", true, &n), 0);
	/* Both added within one second (tried again if a second began
	 * between them). */
	for (int tries = 0;; tries++) {
		assert_true(tries < 5);
		assert_int_equal(add_commit(f, "a", a, 2, 1, NULL), CORE_WATCH_OK);
		assert_int_equal(add_commit(f, "b", a, 2, 1, NULL), CORE_WATCH_OK);
		x = watchlist_get(core_watchlist(f->core), &n, "a");
		expires = x->expires;
		y = watchlist_get(core_watchlist(f->core), &n, "b");
		if (y->expires == expires)
			break;
	}
	/* Added after them, so that it is last and moves when they go. */
	assert_int_equal(add_commit(f, "z", (const char *[]){ "10.2.0.9" }, 1,
				    0, NULL), CORE_WATCH_OK);
	assert_int_equal(add_commit(f, "z", (const char *[]){ "10.2.0.10" }, 1,
				    0, NULL), CORE_WATCH_OK);
	for (int i = 0; i < 100 && time(NULL) < expires; i++)
		usleep(50 * 1000);
	core_watch_expire(f->core);
	assert_false(in_config(f, "10.2.0.1"));
	assert_false(in_config(f, "10.2.2.0/28"));
	assert_true(in_config(f, "10.2.0.9"));
	assert_true(in_config(f, "10.2.0.10"));
	assert_int_equal(watchlist_count(core_watchlist(f->core)), 2);
	check_agree(f);
}


/* Stopping with a group waiting for its commit: it is committed and its
 * requesters told, and core_free calls none of the loop's hooks
 * (porthopd has freed the timers they arm by then: arming one was a use
 * after free). */
static void test_free_commits_without_hooks(void **state)
{
	struct fixture *f = *state;
	struct core_watch_req r1 = req("10.2.0.5", 600), r2 = req("10.2.0.6", 0);
	struct core_watch_result res;
	struct got g1 = { 0 }, g2 = { 0 };
	unsigned armed;

	assert_int_equal(core_watch_add(f->core, "ids", &r1, 1, &res, on_done,
					&g1), 1);
	assert_int_equal(core_watch_add(f->core, "f2b", &r2, 1, &res, on_done,
					&g2), 1);
	armed = f->commits_armed;
	f->expiry = -1;		/* a value no hook call leaves */
	stop_core(f);
	assert_int_equal(f->commits_armed, armed);
	assert_int_equal(f->expiry, -1);
	assert_int_equal(g1.calls, 1);
	assert_int_equal(g1.res.status, CORE_WATCH_OK);
	assert_int_equal(g2.calls, 1);
	assert_int_equal(g2.res.status, CORE_WATCH_OK);
	start_core(f);
	assert_true(listed(f, "10.2.0.5", "ids"));
	assert_true(listed(f, "10.2.0.6", "f2b"));
}

/* A commit that cannot be written takes the group's adds and refreshes
 * back: not in the map, not listed, the requesters told `storage`. */
static void test_commit_failure_undoes(void **state)
{
	struct fixture *f = *state;
	struct core_watch_result res;
	struct core_watch_req r[3] = { req("10.2.0.5", 600), req("10.2.0.6", 0),
				       req("10.2.2.0/28", 0) };
	struct got g1 = { 0 }, g2 = { 0 }, g3 = { 0 };
	const struct watchlist_item *it;
	static const char *const d[] = { "10.2.0.8" };
	struct config_net n;
	struct stat st;
	size_t pairs;

	assert_int_equal(add_commit(f, "ids", (const char *[]){ "10.2.0.5",
				    "10.2.0.8" }, 2, 0, NULL), CORE_WATCH_OK);
	pairs = config_pair_count(core_config(f->core));
	assert_int_equal(stat(f->state, &st), 0);
	support_limit_file_size((rlim_t)st.st_size);
	/* One group: a refresh and two adds, other adds, a delete. */
	assert_int_equal(core_watch_add(f->core, "ids", r, 3, &res, on_done,
					&g1), 1);
	assert_int_equal(core_watch_add(f->core, "f2b", &r[1], 1, &res,
					on_done, &g2), 1);
	assert_int_equal(core_watch_del(f->core, "ids", d, 1, &res, on_done,
					&g3), 1);
	assert_true(in_config(f, "10.2.2.0/28"));
	core_watch_commit(f->core);
	support_limit_file_size(0);
	assert_int_equal(g1.calls, 1);
	assert_int_equal(g1.res.status, CORE_WATCH_STORAGE);
	assert_non_null(strstr(g1.res.error, "nothing of this request"));
	assert_int_equal(g2.calls, 1);
	assert_int_equal(g2.res.status, CORE_WATCH_STORAGE);
	/* The delete stays done, not durable. */
	assert_int_equal(g3.calls, 1);
	assert_int_equal(g3.res.status, CORE_WATCH_OK);
	assert_false(g3.res.durable);
	assert_false(in_config(f, "10.2.0.8"));
	assert_false(in_config(f, "10.2.0.6"));
	assert_false(in_config(f, "10.2.2.0/28"));
	assert_false(listed(f, "10.2.0.6", "ids"));
	assert_false(listed(f, "10.2.0.6", "f2b"));
	assert_false(listed(f, "10.2.2.0/28", "ids"));
	/* The refresh is taken back: no TTL, as before. */
	assert_int_equal(config_parse_net("10.2.0.5", true, &n), 0);
	it = watchlist_get(core_watchlist(f->core), &n, "ids");
	assert_non_null(it);
	assert_int_equal(it->expires, 0);
	assert_true(in_config(f, "10.2.0.5"));
	assert_int_equal(watchlist_count(core_watchlist(f->core)), 1);
	assert_int_equal(config_pair_count(core_config(f->core)), pairs - 4);
	check_agree(f);
	/* The disk back: the next commit writes the list whole. */
	assert_int_equal(add_commit(f, "f2b", &(const char *){ "10.2.0.6" }, 1,
				    0, &res), CORE_WATCH_OK);
	assert_true(res.durable);
	stop_core(f);
	start_core(f);
	assert_int_equal(watchlist_count(core_watchlist(f->core)), 2);
	assert_true(listed(f, "10.2.0.5", "ids"));
	assert_true(listed(f, "10.2.0.6", "f2b"));
	assert_false(listed(f, "10.2.0.8", "ids"));
	check_agree(f);
}

/* The kernel refuses: nothing listed, nothing in force, `kernel`. */
static void test_kernel_refusal(void **state)
{
	struct fixture *f = *state;
	struct core_watch_result res;
	static const char *const a[] = { "10.2.0.5", "10.2.2.0/28" };

	nftio_recorder_fail_next(f->io, 1, "Error: Could not process rule: "
				 "Invalid argument");
	assert_int_equal(add_commit(f, "ids", a, 2, 0, &res), CORE_WATCH_KERNEL);
	assert_false(in_config(f, "10.2.0.5"));
	assert_false(listed(f, "10.2.0.5", "ids"));
	assert_int_equal(watchlist_count(core_watchlist(f->core)), 0);
	check_agree(f);
	assert_int_equal(add_commit(f, "ids", a, 2, 0, &res), CORE_WATCH_OK);
	check_agree(f);
}

/* Trusted, bad input and repeats are refused as a whole and counted
 * against the origin; a bad origin has no counter to count in. */
static void test_refusals_counted(void **state)
{
	struct fixture *f = *state;
	struct core_watch_result res;
	static const char *const trusted[] = { "10.2.0.5", "10.2.1.17" };
	static const char *const twice[] = { "10.2.0.5", "10.2.0.5" };
	static const char *const bad[] = { "10.2.0.300" };
	static const char *const wide[] = { "10.0.0.0/8" };
	struct core_watch_req ttl = req("10.2.0.5", 400000000);

	assert_int_equal(add_commit(f, "ids", trusted, 2, 0, &res),
			 CORE_WATCH_INVALID);
	assert_non_null(strstr(res.error, "trusted"));
	assert_int_equal(add_commit(f, "ids", twice, 2, 0, &res),
			 CORE_WATCH_INVALID);
	assert_int_equal(add_commit(f, "ids", bad, 1, 0, &res),
			 CORE_WATCH_INVALID);
	assert_int_equal(add_commit(f, "ids", wide, 1, 0, &res),
			 CORE_WATCH_INVALID);	/* min_prefix_len_v4 16 */
	assert_int_equal(core_watch_add(f->core, "ids", &ttl, 1, &res, NULL,
					NULL), 0);
	assert_int_equal(res.status, CORE_WATCH_INVALID);
	assert_int_equal(origin_stats(f, "ids")->refused, 5);
	assert_int_equal(origin_stats(f, "ids")->entries, 0);
	assert_int_equal(add_commit(f, "Bad Origin", (const char *[]){
				    "10.2.0.6" }, 1, 0, &res),
			 CORE_WATCH_INVALID);
	assert_null(origin_stats(f, "Bad Origin"));
	assert_int_equal(watchlist_count(core_watchlist(f->core)), 0);
	assert_false(in_config(f, "10.2.0.5"));
	assert_int_equal(f->commits_armed, 0);
	check_agree(f);
}

static void test_max_runtime_entries(void **state)
{
	struct fixture *f = *state;
	struct core_watch_result res;
	static const char *const two[] = { "10.2.0.1", "10.2.0.2" };
	static const char *const more[] = { "10.2.0.3", "10.2.0.4" };
	static const char *const fill[] = { "10.2.0.1", "10.2.0.3" };

	assert_int_equal(add_commit(f, "a", two, 2, 0, NULL), CORE_WATCH_OK);
	assert_int_equal(add_commit(f, "a", more, 2, 0, &res),
			 CORE_WATCH_INVALID);
	assert_non_null(strstr(res.error, "max_runtime_entries"));
	assert_false(in_config(f, "10.2.0.3"));
	/* A refresh takes no room: one refreshed and one new fit. */
	assert_int_equal(add_commit(f, "a", fill, 2, 0, &res), CORE_WATCH_OK);
	assert_int_equal(res.refreshed, 1);
	assert_int_equal(res.added, 1);
	assert_int_equal(res.entries, 3);
	/* Another origin's entry for a watched network is an entry too. */
	assert_int_equal(add_commit(f, "b", two, 1, 0, &res),
			 CORE_WATCH_INVALID);
	assert_int_equal(origin_stats(f, "b")->refused, 1);
	check_agree(f);
}

/* Without a state directory a change is complete at once, not durable. */
static void test_memory_only(void **state)
{
	struct fixture *f = *state;
	struct core_watch_req r = req("10.2.0.1", 0);
	struct core_watch_result res;
	struct got g = { 0 };

	assert_int_equal(core_watch_add(f->core, "m", &r, 1, &res, on_done, &g),
			 0);
	assert_int_equal(res.status, CORE_WATCH_OK);
	assert_false(res.durable);
	assert_int_equal(g.calls, 0);
	assert_int_equal(f->commits_armed, 0);
	assert_true(in_config(f, "10.2.0.1"));
	assert_int_equal(access(f->state, F_OK), -1);
	assert_int_equal(core_watch_flush(f->core, "m", &res, on_done, &g), 0);
	assert_int_equal(res.deleted, 1);
	assert_false(in_config(f, "10.2.0.1"));
	check_agree(f);
}

static void test_template_refused(void **state)
{
	struct fixture *f = *state;
	struct core_watch_req r = req("10.2.0.1", 0);
	struct core_watch_result res;
	const char *a = "10.2.0.1";

	assert_int_equal(config_mode(core_config(f->core)), CONFIG_MODE_TEMPLATE);
	assert_int_equal(core_watch_add(f->core, "m", &r, 1, &res, NULL, NULL),
			 0);
	assert_int_equal(res.status, CORE_WATCH_MODE);
	assert_int_equal(core_watch_del(f->core, "m", &a, 1, &res, NULL, NULL),
			 0);
	assert_int_equal(res.status, CORE_WATCH_MODE);
	assert_int_equal(core_watch_flush(f->core, "m", &res, NULL, NULL), 0);
	assert_int_equal(res.status, CORE_WATCH_MODE);
	assert_int_equal(watchlist_count(core_watchlist(f->core)), 0);
	assert_int_equal(config_watched_find(core_config(f->core), a), -1);
}

/* Redis messages with "op": a runtime entry each, never a trigger; a
 * malformed one refused, counted, nothing else done. */
static void test_redis_messages(void **state)
{
	static const char *const bad[] = {
		"{\"op\": \"watch\"}",
		"{\"op\": \"bogus\", \"address\": \"10.2.0.7\"}",
		"{\"op\": \"watch\", \"address\": \"10.2.0.7\", \"ttl\": 0}",
		"{\"op\": \"watch\", \"address\": \"10.2.0.7\", \"x\": 1}",
		"{\"op\": \"watch\", \"address\": \"10.2.3.5\"}",
		"{\"op\": \"watch\", \"address\": \"10.2.0.7\", \"origin\": \"Bad\"}",
	};
	struct fixture *f = *state;
	const char *add = "{\"op\": \"watch\", \"address\": \"10.2.0.7\", "
			  "\"ttl\": 60, \"origin\": \"ids\"}";
	const char *plain = "{\"op\": \"watch\", \"address\": \"10.2.0.8\"}";
	const char *del = "{\"op\": \"unwatch\", \"address\": \"10.2.0.7\"}";
	uint64_t triggers = core_counters(f->core)->triggers;

	core_message(f->core, "c", add, strlen(add));
	core_message(f->core, "c", plain, strlen(plain));
	core_watch_commit(f->core);
	assert_true(listed(f, "10.2.0.7", "ids"));
	assert_true(listed(f, "10.2.0.8", "redis"));
	assert_true(in_config(f, "10.2.0.7"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		core_message(f->core, "c", bad[i], strlen(bad[i]));
	assert_int_equal(core_counters(f->core)->watch_refused,
			 sizeof(bad) / sizeof(*bad));
	assert_false(in_config(f, "10.2.3.5"));	/* trusted */
	core_message(f->core, "c", del, strlen(del));
	core_watch_commit(f->core);
	assert_false(listed(f, "10.2.0.7", "ids"));
	assert_false(in_config(f, "10.2.0.7"));
	assert_true(in_config(f, "10.2.0.8"));
	/* None of them was a trigger. */
	assert_int_equal(core_counters(f->core)->triggers, triggers);
	check_agree(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_redis_messages, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_add_commit_restore, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_free_commits_without_hooks,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_by_origin, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_delete_named_twice, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expire_two_origins, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_commit_failure_undoes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_kernel_refusal, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refusals_counted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fleet_apply, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_max_runtime_entries,
						setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_memory_only, setup_memory,
						teardown),
		cmocka_unit_test_setup_teardown(test_template_refused,
						setup_template, teardown),
	};

	if (chdir(CORPUS_DIR) < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
