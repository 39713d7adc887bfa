/* Trigger coalescing and the log's rate limit: what a flood of triggers
 * costs in shuffles and in log lines. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"
#include "trigger.h"

/* Requests for every entry collapse into one; sources are all named. */
static void test_all_collapses(void **state)
{
	struct trigger_queue *q = trigger_queue_new();
	struct trigger_batch b;

	(void)state;
	assert_false(trigger_queue_pending(q));
	for (int i = 0; i < 10000; i++)
		trigger_queue_all(q, (unsigned)(i % 3));
	trigger_queue_peek(q, &b);
	assert_true(b.all);
	assert_int_equal(b.nentries, 0);
	assert_int_equal(b.sources, 7);
	trigger_queue_clear(q);
	assert_false(trigger_queue_pending(q));
	trigger_queue_peek(q, &b);
	assert_false(b.all);
	assert_int_equal(b.sources, 0);
	trigger_queue_free(q);
}

/* 10,000 requests for one entry are one entry to shuffle; distinct
 * entries keep their arrival order; a full shuffle absorbs them. */
static void test_entries_collapse(void **state)
{
	struct trigger_queue *q = trigger_queue_new();
	struct trigger_batch b;

	(void)state;
	assert_int_equal(trigger_queue_entry(q, 3, 0), 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(trigger_queue_entry(q, 3, 0), 1);
	assert_int_equal(trigger_queue_entry(q, 1000000, 1), 0);
	assert_int_equal(trigger_queue_entry(q, 0, 1), 0);
	trigger_queue_peek(q, &b);
	assert_false(b.all);
	assert_int_equal(b.nentries, 3);
	assert_int_equal(b.entries[0], 3);
	assert_int_equal(b.entries[1], 1000000);
	assert_int_equal(b.entries[2], 0);
	/* Served: the same entries are new again. */
	trigger_queue_clear(q);
	assert_int_equal(trigger_queue_entry(q, 3, 0), 0);
	trigger_queue_all(q, 2);
	assert_int_equal(trigger_queue_entry(q, 4, 0), 1);
	trigger_queue_peek(q, &b);
	assert_true(b.all);
	assert_int_equal(b.nentries, 0);
	trigger_queue_free(q);
}

/* More distinct entries than the bound: a full shuffle instead, memory
 * bounded. */
static void test_entries_bounded(void **state)
{
	struct trigger_queue *q = trigger_queue_new();
	struct trigger_batch b;

	(void)state;
	for (size_t i = 0; i < TRIGGER_MAX_ENTRIES; i++)
		assert_int_equal(trigger_queue_entry(q, i * 7, 0), 0);
	trigger_queue_peek(q, &b);
	assert_false(b.all);
	assert_int_equal(b.nentries, TRIGGER_MAX_ENTRIES);
	trigger_queue_entry(q, 5, 0);
	trigger_queue_peek(q, &b);
	assert_true(b.all);
	trigger_queue_free(q);
}

/* At most burst lines a window; the next line out says how many were
 * held back. */
static void test_ratelimit(void **state)
{
	struct log_ratelimit rl = { 0 };
	uint64_t held = 99;
	int out = 0;

	(void)state;
	for (int i = 0; i < 10000; i++)
		out += log_ratelimit(&rl, 1000, 5, 10, &held);
	assert_int_equal(out, 5);
	assert_int_equal(held, 0);
	assert_false(log_ratelimit(&rl, 1009, 5, 10, &held));
	assert_true(log_ratelimit(&rl, 1010, 5, 10, &held));
	assert_int_equal(held, 9996);
	assert_true(log_ratelimit(&rl, 1011, 5, 10, &held));
	assert_int_equal(held, 0);
	/* A clock that steps back starts a window too. */
	rl.in_window = 5;
	assert_true(log_ratelimit(&rl, 900, 5, 10, &held));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_collapses),
		cmocka_unit_test(test_entries_collapse),
		cmocka_unit_test(test_entries_bounded),
		cmocka_unit_test(test_ratelimit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
