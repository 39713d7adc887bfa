/* The daemon core and its control commands against the recorder: what a
 * trigger, a flood, a message or a request does, and what it says. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "command.h"
#include "control.h"
#include "core.h"
#include "diag.h"
#include "recorder.h"

/* What the core said and asked for. */
struct seen {
	char lines[64][1024];
	size_t nlines;		/* lines kept (at most 64) */
	size_t warnings;	/* CORE_WARN lines, all of them */
	size_t schedules;
	long long last_wait;
	unsigned reloads;
	unsigned reloading[2];	/* ends, begins: always in pairs */
};

static void on_log(void *arg, enum core_level level, const char *line)
{
	struct seen *s = arg;

	if (level == CORE_WARN)
		s->warnings++;
	if (s->nlines < 64)
		snprintf(s->lines[s->nlines++], sizeof(s->lines[0]), "%s", line);
}

static void on_schedule(void *arg, long long wait_ms)
{
	struct seen *s = arg;

	s->schedules++;
	s->last_wait = wait_ms;
}

static void on_reloaded(void *arg, unsigned changes)
{
	struct seen *s = arg;

	(void)changes;
	s->reloads++;
}

static void on_reloading(void *arg, bool begin)
{
	struct seen *s = arg;

	s->reloading[begin]++;
	/* A begin is followed by its end before the next begin. */
	assert_true(s->reloading[1] - s->reloading[0] == (begin ? 1u : 0u));
}

static bool said(const struct seen *s, const char *needle)
{
	for (size_t i = 0; i < s->nlines; i++)
		if (strstr(s->lines[i], needle))
			return true;
	return false;
}

struct fixture {
	struct seen seen;
	struct nftio *io;
	struct core *core;
};

static const char *const CONFIG = "valid/native_full.json";

/* The claims' directory: the tests' own (porthopd's is root's). */
static char run_dir[] = "/tmp/porthop-test-run.XXXXXX";

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct core_hooks hooks = {
		.log = on_log, .schedule = on_schedule,
		.reloaded = on_reloaded, .reloading = on_reloading,
	};
	struct config *cfg;

	if (f == NULL)
		return -1;
	hooks.arg = &f->seen;
	f->io = nftio_new_recorder();
	cfg = core_load(f->io, CONFIG, on_log, &f->seen, NULL);
	f->core = cfg ? core_new(f->io, cfg, CONFIG, &hooks) : NULL;
	if (f->core)
		core_set_run_dir(f->core, run_dir);
	if (f->core == NULL || core_start(f->core) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	core_free(f->core);
	nftio_free(f->io);
	free(f);
	return 0;
}

/* 10,000 triggers naming one address: armed once, one transaction. */
static void test_address_flood(void **state)
{
	struct fixture *f = *state;
	size_t applied = nftio_recorder_applied(f->io);

	for (int i = 0; i < 10000; i++)
		assert_int_equal(core_trigger_address(f->core, "10.1.2.3",
						      SRC_REDIS), 0);
	assert_int_equal(core_counters(f->core)->triggers, 10000);
	assert_int_equal(core_run_pending(f->core, NULL), 0);
	assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
	assert_true(said(&f->seen, "applied (address 10.1.2.3; redis)"));
	/* Nothing left: running again applies nothing. */
	assert_int_equal(core_run_pending(f->core, NULL), 0);
	assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
}

/* Unknown addresses: refused, counted, 5 lines whatever the flood, each
 * value escaped. */
static void test_unknown_addresses(void **state)
{
	struct fixture *f = *state;
	size_t warnings = f->seen.warnings;

	for (int i = 0; i < 10000; i++)
		assert_int_equal(core_trigger_address(f->core,
			"x\nporthopd: shuffle 424242 applied (forged)",
			SRC_REDIS), -ENOENT);
	assert_int_equal(core_counters(f->core)->unknown_addresses, 10000);
	assert_int_equal(f->seen.warnings - warnings, 5);
	for (size_t i = 0; i < f->seen.nlines; i++)
		assert_null(strchr(f->seen.lines[i], '\n'));
	assert_true(said(&f->seen, "\"x\\nporthopd: shuffle 424242"));
}

/* A message: {"address": ...} alone names an address; anything else is
 * a trigger for every entry. */
static void test_messages(void **state)
{
	struct fixture *f = *state;
	static const char *const all[] = {
		"shuffle", "", "{\"address\": \"10.1.2.3\", \"x\": 1}",
		"{\"address\": 7}", "{not json",
	};

	core_message(f->core, "c", "{\"address\": \"10.1.2.3\"}", 23);
	assert_int_equal(core_run_pending(f->core, NULL), 0);
	assert_true(said(&f->seen, "(address 10.1.2.3; redis)"));
	for (size_t i = 0; i < sizeof(all) / sizeof(*all); i++) {
		size_t applied = nftio_recorder_applied(f->io);

		core_message(f->core, "c", all[i], strlen(all[i]));
		assert_int_equal(core_run_pending(f->core, NULL), 0);
		assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
		assert_true(strstr(f->seen.lines[f->seen.nlines - 1],
				   "pairs") != NULL);
	}
}

static json_t *request(struct core *c, const char *text, uid_t uid)
{
	json_t *req = json_loads(text, 0, NULL);
	json_t *r;

	assert_non_null(req);
	r = command_run(c, NULL, req, uid);
	json_decref(req);
	assert_non_null(r);
	return r;
}

static void assert_code(json_t *r, const char *code)
{
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_string_equal(json_string_value(json_object_get(r, "code")), code);
	json_decref(r);
}

/* The command table: who may run what, and the codes of its errors. */
static void test_commands(void **state)
{
	struct fixture *f = *state;
	json_t *r;

	r = request(f->core, "{\"command\": \"status\"}", 1000);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_string_equal(json_string_value(json_object_get(r, "mode")),
			    "native");
	json_decref(r);
	assert_code(request(f->core, "{\"command\": \"mapping\"}", 1000),
		    "permission");
	r = request(f->core, "{\"command\": \"mapping\"}", 0);
	assert_int_equal(json_array_size(json_object_get(r, "mapping")),
			 config_watched_count(core_config(f->core)));
	json_decref(r);
	assert_code(request(f->core, "{\"command\": \"frob\"}", 0), "request");
	assert_code(request(f->core, "{\"command\": \"shuffle\", \"address\": "
			    "123}", 0), "request");
	assert_code(request(f->core, "{\"command\": \"shuffle\", \"address\": "
			    "\"10.8.0.1\"}", 0), "not_watched");
	/* A shuffle that may run now runs before the reply. */
	r = request(f->core, "{\"command\": \"shuffle\", \"address\": "
		    "\"10.1.9.9\"}", 0);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_null(json_object_get(r, "queued"));
	json_decref(r);
	assert_true(said(&f->seen, "(address 10.1.0.0/16; control)"));
	/* The kernel refuses: the code says so. */
	nftio_recorder_fail_next(f->io, 1, "refused");
	assert_code(request(f->core, "{\"command\": \"shuffle\"}", 0), "kernel");
	r = request(f->core, "{\"command\": \"metrics\"}", 0);
	assert_non_null(strstr(json_string_value(json_object_get(r, "text")),
			       "porthop_shuffles_total"));
	json_decref(r);
}

/* A reload of a good configuration: applied, the hook called; the queue
 * of address triggers served by it. */
static void test_reload(void **state)
{
	struct fixture *f = *state;
	size_t applied;
	json_t *r;

	core_trigger_address(f->core, "10.1.2.3", SRC_REDIS);
	r = request(f->core, "{\"command\": \"reload\"}", 0);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	assert_int_equal(f->seen.reloads, 1);
	assert_int_equal(f->seen.reloading[1], 1);
	assert_int_equal(f->seen.reloading[0], 1);
	applied = nftio_recorder_applied(f->io);
	assert_int_equal(core_run_pending(f->core, NULL), 0);
	assert_int_equal(nftio_recorder_applied(f->io), applied);
	/* Refused by the kernel (not its dry run: the elements' batch): the
	 * old one stays, the code says why. */
	nftio_recorder_fail_match(f->io, "{\"flush\":{\"set\"", "refused");
	assert_code(request(f->core, "{\"command\": \"reload\"}", 0), "kernel");
	nftio_recorder_fail_match(f->io, NULL, NULL);
	/* Refused by the kernel: systemd heard the end of it too. */
	assert_int_equal(f->seen.reloading[1], 2);
	assert_int_equal(f->seen.reloading[0], 2);
	assert_int_equal(f->seen.reloads, 1);
}

/* A configuration that became invalid: refused with the code "config",
 * the running one stays. */
static void test_reload_refused_config(void **state)
{
	char path[] = "/tmp/porthop-test-core.XXXXXX";
	struct seen seen = { 0 };
	struct core_hooks hooks = { .arg = &seen, .log = on_log,
				    .schedule = on_schedule };
	struct nftio *io = nftio_new_recorder();
	struct config *cfg = core_load(io, CONFIG, on_log, &seen, NULL);
	int fd = mkstemp(path);
	struct core *c;
	size_t watched;

	(void)state;
	assert_non_null(cfg);
	watched = config_watched_count(cfg);
	assert_true(fd >= 0);
	assert_int_equal(close(fd), 0);
	c = core_new(io, cfg, path, &hooks);
	assert_non_null(c);
	core_set_run_dir(c, run_dir);
	assert_int_equal(core_start(c), 0);
	assert_code(request(c, "{\"command\": \"reload\"}", 0), "config");
	assert_int_equal(config_watched_count(core_config(c)), watched);
	assert_true(said(&seen, "reload refused; the running configuration"));
	unlink(path);
	core_free(c);
	nftio_free(io);
}

/* A reload inside min_shuffle_interval_ms (500 ms here) is checked at
 * once and applied when the pending shuffle runs; several make one. */
static void test_reload_queued(void **state)
{
	static const char *const path = "valid/native_udp_only_and_options.json";
	struct seen seen = { 0 };
	struct core_hooks hooks = { .arg = &seen, .log = on_log,
				    .schedule = on_schedule,
				    .reloaded = on_reloaded };
	struct nftio *io = nftio_new_recorder();
	struct config *cfg = core_load(io, path, on_log, &seen, NULL);
	struct core *c = cfg ? core_new(io, cfg, path, &hooks) : NULL;
	json_t *r;

	(void)state;
	assert_non_null(c);
	core_set_run_dir(c, run_dir);
	assert_int_equal(core_start(c), 0);
	assert_true(config_daemon(core_config(c))->min_shuffle_interval_ms > 0);
	assert_int_equal(core_reload(c, SRC_SIGNAL, NULL), 1);
	r = request(c, "{\"command\": \"reload\"}", 0);
	assert_true(json_is_true(json_object_get(r, "queued")));
	json_decref(r);
	assert_int_equal(seen.reloads, 0);
	assert_true(seen.schedules > 0 && seen.last_wait > 0);
	assert_int_equal(core_run_pending(c, NULL), 0);
	assert_int_equal(seen.reloads, 1);
	assert_int_equal(core_run_pending(c, NULL), 0);
	assert_int_equal(seen.reloads, 1);
	core_free(c);
	nftio_free(io);
}

/* One porthopd per table: a second core on the same table does not
 * start (nothing applied); once the first is gone, a third does. */
static void test_one_per_table(void **state)
{
	struct fixture *f = *state;
	struct seen seen = { 0 };
	struct core_hooks hooks = { .arg = &seen, .log = on_log,
				    .schedule = on_schedule };
	struct nftio *io = nftio_new_recorder();
	struct config *cfg = core_load(io, CONFIG, on_log, &seen, NULL);
	struct core *second = cfg ? core_new(io, cfg, CONFIG, &hooks) : NULL;

	assert_non_null(second);
	core_set_run_dir(second, run_dir);
	assert_int_equal(core_start(second), -1);
	assert_true(said(&seen, "another porthopd serves table inet mtd_ports"));
	assert_int_equal(nftio_recorder_applied(io), 0);
	core_free(f->core);
	f->core = NULL;
	core_free(second);
	cfg = core_load(io, CONFIG, on_log, &seen, NULL);
	second = core_new(io, cfg, CONFIG, &hooks);
	assert_non_null(second);
	core_set_run_dir(second, run_dir);
	assert_int_equal(core_start(second), 0);
	core_free(second);
	nftio_free(io);
}

/* A queued reload is checked again when its turn comes: a table of its
 * new name made meanwhile by someone else is refused, not taken over, and
 * the shuffle asked for meanwhile still runs. */
static void test_queued_reload_rechecked(void **state)
{
	char path[] = "/tmp/porthop-test-reload.XXXXXX";
	struct seen seen = { 0 };
	struct core_hooks hooks = { .arg = &seen, .log = on_log,
				    .schedule = on_schedule,
				    .reloaded = on_reloaded };
	struct nftio *io = nftio_new_recorder();
	json_t *j = json_load_file("valid/native_udp_only_and_options.json",
				   0, NULL);
	struct config *cfg;
	struct core *c;
	size_t applied;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0 && j != NULL);
	close(fd);
	/* Reconciliation on: the address sets have their digests. */
	json_object_set_new(json_object_get(j, "porthopd"),
			    "reconcile_interval_seconds", json_integer(5));
	assert_int_equal(json_dump_file(j, path, 0), 0);
	cfg = core_load(io, path, on_log, &seen, NULL);
	c = core_new(io, cfg, path, &hooks);
	assert_non_null(c);
	core_set_run_dir(c, run_dir);
	assert_int_equal(core_start(c), 0);
	json_object_set_new(json_object_get(j, "nftables_service_configuration"),
			    "table_name", json_string("ph2"));
	assert_int_equal(json_dump_file(j, path, 0), 0);
	assert_int_equal(core_reload(c, SRC_CONTROL, NULL), 1);
	assert_int_equal(core_trigger_address(c, "10.0.0.3", SRC_REDIS), 0);
	nftio_recorder_foreign_table(io, "ph2");
	applied = nftio_recorder_applied(io);
	assert_int_equal(core_run_pending(c, NULL), 0);
	assert_int_equal(seen.reloads, 0);
	assert_true(said(&seen, "queued reload refused when its turn came"));
	assert_string_equal(config_table_name(core_config(c)), "porthop");
	/* The address trigger waiting with it ran. */
	assert_int_equal(nftio_recorder_applied(io), applied + 1);
	unlink(path);
	json_decref(j);
	core_free(c);
	nftio_free(io);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_address_flood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
		cmocka_unit_test(test_reload_refused_config),
		cmocka_unit_test(test_reload_queued),
		cmocka_unit_test(test_queued_reload_rechecked),
		cmocka_unit_test_setup_teardown(test_one_per_table, setup, teardown),
	};

	int r;

	if (chdir(CORPUS_DIR) < 0 || mkdtemp(run_dir) == NULL)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(run_dir);
	return r;
}
