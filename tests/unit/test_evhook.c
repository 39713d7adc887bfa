/* The event hook with /bin/sh and /bin/true: its rate bound (a token
 * bucket of per_minute), its children's bound (EVHOOK_CHILDREN at once),
 * an event too long for one pipe write refused, the event's line on the
 * child's standard input, a failing run counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "evhook.h"

/* Runs base's loop a tenth of a second at a time until done(h) or 15 s
 * (the reaper's timer fires every second). */
static bool loop_until(struct event_base *base, struct evhook *h,
		       bool (*done)(struct evhook *h))
{
	struct timeval tenth = { 0, 100000 };

	for (int i = 0; i < 150 && !done(h); i++) {
		event_base_loopexit(base, &tenth);
		event_base_dispatch(base);
	}
	return done(h);
}

static void test_rate(void **state)
{
	struct event_base *base = event_base_new();
	char prog[] = "/bin/true";
	char *argv[] = { prog, NULL };
	struct evhook *h = evhook_new(base, argv, 3);

	(void)state;
	assert_non_null(h);
	for (int i = 0; i < 3; i++)
		assert_int_equal(evhook_run(h, "{}", 2), 0);
	/* The bucket is empty (it refills 3 a minute). */
	assert_int_equal(evhook_run(h, "{}", 2), -EAGAIN);
	assert_int_equal(evhook_runs(h), 3);
	evhook_free(h);
	event_base_free(base);
}

static void test_children(void **state)
{
	struct event_base *base = event_base_new();
	char sh[] = "/bin/sh", c[] = "-c", cmd[] = "exec sleep 30";
	char *argv[] = { sh, c, cmd, NULL };
	struct evhook *h = evhook_new(base, argv, 1000);

	(void)state;
	assert_non_null(h);
	for (int i = 0; i < EVHOOK_CHILDREN; i++)
		assert_int_equal(evhook_run(h, "{}", 2), 0);
	/* Eight sleeping: the ninth waits for none of them. */
	assert_int_equal(evhook_run(h, "{}", 2), -EAGAIN);
	assert_int_equal(evhook_runs(h), EVHOOK_CHILDREN);
	/* Freed: killed and reaped, none counted as a timeout's kill. */
	assert_int_equal(evhook_killed(h), 0);
	evhook_free(h);
	event_base_free(base);
}

static void test_too_long(void **state)
{
	struct event_base *base = event_base_new();
	char prog[] = "/bin/true";
	char *argv[] = { prog, NULL };
	struct evhook *h = evhook_new(base, argv, 10);
	static char big[PIPE_BUF];

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_int_equal(evhook_run(h, big, sizeof(big)), -E2BIG);
	assert_int_equal(evhook_run(h, big, sizeof(big) - 1), 0);
	evhook_free(h);
	event_base_free(base);
}

static bool failed_once(struct evhook *h)
{
	return evhook_failures(h) >= 1;
}

/* The child reads the event's line on its standard input; one that
 * exits non-zero is counted once reaped. */
static void test_input_and_failure(void **state)
{
	struct event_base *base = event_base_new();
	char path[] = "/tmp/porthop-evhook-XXXXXX";
	int fd = mkstemp(path);
	char sh[] = "/bin/sh", c[] = "-c", cmd[128], got[64] = "";
	char *argv[] = { sh, c, cmd, NULL };
	struct evhook *h;
	FILE *f;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	/* The line, then a failure once it is written. */
	snprintf(cmd, sizeof(cmd), "cat > %s; exit 3", path);
	h = evhook_new(base, argv, 10);
	assert_int_equal(evhook_run(h, "{\"kind\":\"probe\"}", 16), 0);
	assert_true(loop_until(base, h, failed_once));
	assert_int_equal(evhook_failures(h), 1);
	assert_int_equal(evhook_killed(h), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(got, sizeof(got), f));
	fclose(f);
	assert_string_equal(got, "{\"kind\":\"probe\"}\n");
	unlink(path);
	evhook_free(h);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_children),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_input_and_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
