/* The fleet stream's decisions in the core (core_fleet.c) against the
 * recorder, with a trigger key and a state directory of the test's own:
 * signed entries checked (MAC, the signed time against the stream ID's),
 * triggers, a watch whose time is over deleting, the acknowledgement
 * outcomes of a kernel refusal and of a commit that cannot be written,
 * and converging to a snapshot.  (Runs split in halves when refused:
 * test_core_watch.c's test_fleet_apply.) */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth.h"
#include "config.h"
#include "core.h"
#include "core_fleet.h"
#include "recorder.h"
#include "support.h"
#include "support_fleet.h"
#include "watchlist.h"

/* 40 distinct bytes: a key auth accepts. */
static const char key[] = "0123456789abcdefghijklmnopqrstuvwxyzABCD";

struct fixture {
	char dir[64];		/* state directory, key, configuration */
	char path[128], keyfile[128], state[128];
	struct nftio *io;
	struct core *core;
};

static void on_log(void *arg, enum core_level level, const char *line)
{
	(void)arg;
	(void)level;
	(void)line;
}

static void on_schedule(void *arg, long long wait_ms)
{
	(void)arg;
	(void)wait_ms;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct core_hooks hooks = { .log = on_log, .schedule = on_schedule };
	struct config *cfg;
	FILE *fp;

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/porthop-test-fleet.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/c.json", f->dir);
	snprintf(f->keyfile, sizeof(f->keyfile), "%s/key", f->dir);
	snprintf(f->state, sizeof(f->state), "%s/runtime.state", f->dir);
	fp = fopen(f->keyfile, "w");
	assert_non_null(fp);
	fputs(key, fp);
	fclose(fp);
	chmod(f->keyfile, 0600);
	fp = fopen(f->path, "w");
	assert_non_null(fp);
	fprintf(fp, "{\"redis_connection_configuration\": {\"host\": "
		"\"127.0.0.1\", \"port\": 6379, \"db\": 0, \"charset\": "
		"\"utf-8\", \"decode_responses\": true}, "
		"\"redis_subscriber_configuration\": "
		"{\"subscriber_channel_names\": [\"c\"]}, "
		"\"porthopd\": {\"state_directory\": \"%s\", "
		"\"trigger_key_file\": \"%s\", \"trigger_window_seconds\": 30}, "
		"\"nftables_service_configuration\": {\"max_port_number\": 1000, "
		"\"tcp_ports\": [22, 80], \"table_name\": \"mtd_ports\", "
		"\"watched_addresses\": [{\"ip\": \"10.0.0.3\"}], "
		"\"trusted_addresses\": [\"10.2.1.17\"]}}\n", f->dir, f->keyfile);
	assert_int_equal(fclose(fp), 0);
	f->io = nftio_new_recorder();
	assert_non_null(f->io);
	hooks.arg = f;
	cfg = core_load(f->io, f->path, on_log, f, NULL);
	assert_non_null(cfg);
	f->core = core_new(f->io, cfg, f->path, &hooks);
	assert_non_null(f->core);
	core_set_run_dir(f->core, f->dir);
	assert_int_equal(core_start(f->core), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	core_free(f->core);
	nftio_free(f->io);
	support_remove_dir(f->dir);
	free(f);
	return 0;
}

/* op signed at ts as the publishers sign it. */
static char *signed_op(const struct fleet_op *op)
{
	char *text = NULL, *msg = NULL;

	assert_int_equal(fleet_op_encode(op, &text), 0);
	assert_int_equal(auth_sign((const unsigned char *)key, strlen(key),
				   (time_t)op->ts, text, &msg), 0);
	free(text);
	return msg;
}

/* Whether the list holds (a, origin) and with which expiry. */
static bool holds(const struct fixture *f, const char *a, const char *origin,
		  int64_t *ret_expires)
{
	struct config_net n;
	const struct watchlist_item *it;

	assert_int_equal(config_parse_net(a, true, &n), 0);
	it = watchlist_get(core_watchlist(f->core), &n, origin);
	if (it && ret_expires)
		*ret_expires = it->expires;
	return it != NULL;
}

/* A signed entry is accepted whatever its age when read; one whose
 * signed time is far from its ID's (a copy added again) is refused as a
 * replay; a changed one, or one without a MAC, as invalid. */
static void test_decode(void **state)
{
	struct fixture *f = *state;
	struct fleet_op op = { FLEET_WATCH, "192.0.2.7", "ids", 0, 1700000000 };
	struct fleet_id id = { 1700000000123ULL, 0 }, late = id;
	struct fleet_op got;
	char *msg = signed_op(&op), *bad;
	char text[] = "{\"op\":\"trigger\",\"ts\":1700000000}";

	/* Read a year later: fine (the ID's time is what counts). */
	assert_int_equal(core_fleet_decode(f->core, msg, strlen(msg), &id, &got), 0);
	assert_string_equal(got.address, "192.0.2.7");
	assert_string_equal(got.origin, "ids");
	late.ms += 31 * 1000;	/* XADDed 31 s after it was signed */
	assert_int_equal(core_fleet_decode(f->core, msg, strlen(msg), &late,
					   &got), -ESTALE);
	late.ms = id.ms - 29 * 1000;	/* a publisher's clock 29 s ahead */
	assert_int_equal(core_fleet_decode(f->core, msg, strlen(msg), &late,
					   &got), 0);
	bad = strdup(msg);
	assert_non_null(bad);
	bad[strlen(bad) - 3] ^= 1;	/* one bit of the payload */
	assert_int_equal(core_fleet_decode(f->core, bad, strlen(bad), &id, &got),
			 -EINVAL);
	assert_int_equal(core_fleet_decode(f->core, text, strlen(text), &id,
					   &got), -EINVAL);
	free(bad);
	free(msg);
}

/* Anyone who may XADD (a publisher's Redis user, without the trigger
 * key) can give one entry an explicit ID far in the future; Redis then
 * gives every later entry an ID of that time (IDs only grow).  Signed
 * entries published after it are still accepted (their ID's time is
 * not believed beyond the host's clock), and an old one copied in is
 * still refused. */
static void test_decode_future_ids(void **state)
{
	struct fixture *f = *state;
	int64_t now = (int64_t)time(NULL);
	struct fleet_op op = { FLEET_WATCH, "192.0.2.8", "ids", 0, now };
	struct fleet_id poisoned = { 99999999999999ULL, 1 };
	struct fleet_op got;
	char *msg = signed_op(&op), *old;

	assert_int_equal(core_fleet_decode(f->core, msg, strlen(msg),
					   &poisoned, &got), 0);
	assert_string_equal(got.address, "192.0.2.8");
	op.ts = now - 3600;	/* signed an hour ago: a copy */
	old = signed_op(&op);
	assert_int_equal(core_fleet_decode(f->core, old, strlen(old),
					   &poisoned, &got), -ESTALE);
	free(old);
	free(msg);
}

/* A watch holds its absolute expiry; applied again (a redelivery), the
 * same; a watch whose time is over deletes, as an unwatch.  The kernel
 * refusing leaves the entries pending (retried), and so does a commit
 * that cannot be written; an address trusted here is refused for good. */
static void test_apply_outcomes(void **state)
{
	struct fixture *f = *state;
	const int64_t later = (int64_t)time(NULL) + 3600;
	struct fleet_op ops[2] = {
		{ FLEET_WATCH, "10.2.2.1", "ids", later, 0 },
		{ FLEET_WATCH, "10.2.2.2", "ids", 0, 0 },
	};
	struct support_fleet_got g = { 0 };
	struct stat st;
	int64_t e = -1;

	for (int twice = 0; twice < 2; twice++) {
		memset(&g, 0, sizeof(g));
		core_fleet_apply(f->core, FLEET_RUN_ADD, ops, 2, support_fleet_done, &g);
		core_watch_commit(f->core);
		assert_int_equal(g.calls[0] + g.calls[1], 2);
		assert_int_equal(g.v[0], FLEET_ACK);
		assert_int_equal(g.v[1], FLEET_ACK);
		assert_true(holds(f, "10.2.2.1", "fleet.ids", &e));
		assert_int_equal(e, later);
		assert_true(holds(f, "10.2.2.2", "fleet.ids", &e));
		assert_int_equal(e, 0);
	}
	/* Over: deletes (fleet_run makes it a delete run). */
	ops[0].expires = (int64_t)time(NULL) - 1;
	memset(&g, 0, sizeof(g));
	core_fleet_apply(f->core, FLEET_RUN_DEL, ops, 1, support_fleet_done, &g);
	core_watch_commit(f->core);
	assert_int_equal(g.v[0], FLEET_ACK);
	assert_false(holds(f, "10.2.2.1", "fleet.ids", NULL));

	/* The kernel refuses: pending, retried; nothing listed. */
	ops[0] = (struct fleet_op){ FLEET_WATCH, "10.2.2.3", "ids", later, 0 };
	memset(&g, 0, sizeof(g));
	nftio_recorder_fail_next(f->io, 1, "Error: Could not process rule");
	core_fleet_apply(f->core, FLEET_RUN_ADD, ops, 1, support_fleet_done, &g);
	core_watch_commit(f->core);
	assert_int_equal(g.calls[0], 1);
	assert_int_equal(g.v[0], FLEET_RETRY);
	assert_false(holds(f, "10.2.2.3", "fleet.ids", NULL));

	/* The commit cannot be written: taken back, pending, retried. */
	assert_int_equal(stat(f->state, &st), 0);
	support_limit_file_size((unsigned long)st.st_size);
	memset(&g, 0, sizeof(g));
	core_fleet_apply(f->core, FLEET_RUN_ADD, ops, 1, support_fleet_done, &g);
	assert_int_equal(g.calls[0], 0);	/* not before the commit */
	core_watch_commit(f->core);
	support_limit_file_size(0);
	assert_int_equal(g.calls[0], 1);
	assert_int_equal(g.v[0], FLEET_RETRY);
	assert_false(holds(f, "10.2.2.3", "fleet.ids", NULL));

	/* Trusted here: refused for good, acknowledged. */
	ops[0] = (struct fleet_op){ FLEET_WATCH, "10.2.1.17", "ids", later, 0 };
	memset(&g, 0, sizeof(g));
	core_fleet_apply(f->core, FLEET_RUN_ADD, ops, 1, support_fleet_done, &g);
	assert_int_equal(g.calls[0], 1);
	assert_int_equal(g.v[0], FLEET_ACK_REFUSED);
}

/* A trigger of everything joins the pending shuffle; one naming an
 * address not watched here is done at once. */
static void test_trigger(void **state)
{
	struct fixture *f = *state;
	struct fleet_op all = { .kind = FLEET_TRIGGER };
	struct fleet_op one = { .kind = FLEET_TRIGGER, .address = "192.0.2.99" };
	enum fleet_verdict v = FLEET_RETRY;

	assert_int_equal(core_fleet_trigger(f->core, &all, &v),
			 CORE_FLEET_AFTER_SHUFFLE);
	assert_int_equal(v, FLEET_ACK);
	v = FLEET_RETRY;
	assert_int_equal(core_fleet_trigger(f->core, &one, &v), CORE_FLEET_NOW);
	assert_int_equal(v, FLEET_ACK);
}

/* Converging: fleet entries the snapshot lacks go, those it holds with
 * another expiry or not at all come; a local detector's entry of the
 * same address stays; a converged list changes nothing. */
static void test_converge(void **state)
{
	struct fixture *f = *state;
	const int64_t t1 = (int64_t)time(NULL) + 3600, t2 = t1 + 60;
	struct fleet_op ops[3] = {
		{ FLEET_WATCH, "10.2.2.1", "ids", t1, 0 },
		{ FLEET_WATCH, "10.2.2.2", "ids", t1, 0 },
		{ FLEET_WATCH, "10.2.2.3", "ids", 0, 0 },
	};
	struct fleet_item snap[3] = {
		{ "10.2.2.1", "ids", t1 },	/* the same */
		{ "10.2.2.2", "ids", t2 },	/* refreshed since */
		{ "10.2.3.0/24", "feed", 0 },	/* new */
	};					/* 10.2.2.3: gone */
	struct core_watch_req r = { .address = "10.2.2.3" };
	struct core_watch_result res;
	struct support_fleet_got g = { 0 };
	size_t added, deleted;
	int64_t e;

	core_fleet_apply(f->core, FLEET_RUN_ADD, ops, 3, support_fleet_done, &g);
	core_watch_add(f->core, "sshguard", &r, 1, &res, NULL, NULL);
	core_watch_commit(f->core);
	assert_int_equal(core_fleet_converge(f->core, snap, 3, &added,
					     &deleted), 0);
	assert_int_equal(added, 2);
	assert_int_equal(deleted, 1);
	assert_true(holds(f, "10.2.2.1", "fleet.ids", &e));
	assert_int_equal(e, t1);
	assert_true(holds(f, "10.2.2.2", "fleet.ids", &e));
	assert_int_equal(e, t2);
	assert_true(holds(f, "10.2.3.0/24", "fleet.feed", &e));
	assert_int_equal(e, 0);
	assert_false(holds(f, "10.2.2.3", "fleet.ids", NULL));
	assert_true(holds(f, "10.2.2.3", "sshguard", NULL));
	assert_true(config_watched_find(core_config(f->core), "10.2.2.3") >= 0);
	assert_int_equal(core_fleet_converge(f->core, snap, 3, &added,
					     &deleted), 0);
	assert_int_equal(added + deleted, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_decode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_future_ids, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_apply_outcomes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_trigger, setup, teardown),
		cmocka_unit_test_setup_teardown(test_converge, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
