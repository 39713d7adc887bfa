/* autowatch: distinct closed ports per source within a window, bounded. */
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "autowatch.h"

static struct probe_event from(uint32_t src, uint8_t proto, uint16_t port)
{
	struct probe_event e = { .kind = PROBE_PROBE, .family = 4,
				 .proto = proto, .port = port, .count = 1 };

	memcpy(e.addr, &src, sizeof(src));
	return e;
}

/* The threshold's port fires, once; a port seen again counts once. */
static void test_threshold(void **state)
{
	struct autowatch *a = autowatch_new(15, 300, 16);
	struct probe_event e;

	(void)state;
	assert_non_null(a);
	for (uint16_t p = 1; p <= 14; p++) {
		e = from(1, IPPROTO_TCP, p);
		assert_int_equal(autowatch_see(a, &e, p), 0);
		assert_int_equal(autowatch_see(a, &e, p), 0);
	}
	/* Another source's ports are its own. */
	e = from(2, IPPROTO_TCP, 15);
	assert_int_equal(autowatch_see(a, &e, 20), 0);
	/* The same port over UDP is another port. */
	e = from(1, IPPROTO_UDP, 14);
	assert_int_equal(autowatch_see(a, &e, 21), 1);
	/* Cleared: another full count is needed. */
	e = from(1, IPPROTO_TCP, 99);
	assert_int_equal(autowatch_see(a, &e, 22), 0);
	assert_int_equal(autowatch_sources(a), 2);
	autowatch_free(a);
}

/* Ports older than the window no longer count. */
static void test_window(void **state)
{
	struct autowatch *a = autowatch_new(3, 10, 16);
	struct probe_event e;

	(void)state;
	e = from(1, IPPROTO_TCP, 1);
	assert_int_equal(autowatch_see(a, &e, 0), 0);
	e = from(1, IPPROTO_TCP, 2);
	assert_int_equal(autowatch_see(a, &e, 5000), 0);
	e = from(1, IPPROTO_TCP, 3);
	assert_int_equal(autowatch_see(a, &e, 10000), 0);	/* port 1 out */
	e = from(1, IPPROTO_TCP, 1);
	assert_int_equal(autowatch_see(a, &e, 10001), 1);
	autowatch_free(a);
}

/* Full: the source seen least recently makes room, counted; memory stays
 * as it was made. */
static void test_eviction(void **state)
{
	struct autowatch *a = autowatch_new(2, 300, 4);
	struct probe_event e;

	(void)state;
	for (uint32_t s = 1; s <= 4; s++) {
		e = from(s, IPPROTO_TCP, 1);
		assert_int_equal(autowatch_see(a, &e, s), 0);
	}
	/* Source 1 seen again: source 2 is now the least recent. */
	e = from(1, IPPROTO_TCP, 1);
	assert_int_equal(autowatch_see(a, &e, 10), 0);
	e = from(5, IPPROTO_TCP, 1);
	assert_int_equal(autowatch_see(a, &e, 11), 0);
	assert_int_equal(autowatch_evicted(a), 1);
	assert_int_equal(autowatch_sources(a), 4);
	e = from(1, IPPROTO_TCP, 2);
	assert_int_equal(autowatch_see(a, &e, 12), 1);	/* kept its count */
	e = from(2, IPPROTO_TCP, 2);
	assert_int_equal(autowatch_see(a, &e, 13), 0);	/* forgotten */
	/* A flood of sources never grows it. */
	for (uint32_t s = 100; s < 100000; s++) {
		e = from(s, IPPROTO_TCP, (uint16_t)s);
		autowatch_see(a, &e, s);
	}
	assert_true(autowatch_sources(a) <= 4);
	autowatch_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threshold),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_eviction),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
