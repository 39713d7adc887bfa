/* The fleet feed's pure parts: operations written and read back, what a
 * reader refuses, stream IDs, when a host loads the snapshot, the
 * snapshot's fields, what converging to it changes, what is
 * acknowledged. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"

static void test_roundtrip(void **state)
{
	const struct fleet_op ops[] = {
		{ FLEET_WATCH, "192.0.2.7", "f2b-sshd", 1800000000, 1700000000 },
		{ FLEET_WATCH, "2001:db8::/64", "ids", 0, 1 },
		{ FLEET_UNWATCH, "198.51.100.0/24", "manual", 0, 5 },
		{ FLEET_TRIGGER, "", "", 0, 7 },
		{ FLEET_TRIGGER, "192.0.2.9", "", 0, 7 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		struct fleet_op back;
		char *text = NULL, why[256];

		assert_int_equal(fleet_op_encode(&ops[i], &text), 0);
		assert_int_equal(fleet_op_decode(text, strlen(text), &back, why,
						 sizeof(why)), 0);
		assert_int_equal(back.kind, ops[i].kind);
		assert_string_equal(back.address, ops[i].address);
		assert_string_equal(back.origin, ops[i].origin);
		assert_int_equal(back.expires, ops[i].expires);
		assert_int_equal(back.ts, ops[i].ts);
		free(text);
	}
}

static void test_encode_refuses(void **state)
{
	const struct fleet_op bad[] = {
		{ FLEET_WATCH, "not-an-ip", "x", 0, 1 },
		{ FLEET_WATCH, "192.0.2.7", "Bad!", 0, 1 },
		{ FLEET_WATCH, "192.0.2.7", "", 0, 1 },
		{ FLEET_UNWATCH, "", "x", 0, 1 },
		{ FLEET_WATCH, "192.0.2.7", "x", -5, 1 },
		{ FLEET_WATCH, "192.0.2.1/24", "x", 0, 1 },	/* host bits */
	};
	char *text = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(fleet_op_encode(&bad[i], &text), -EINVAL);
	assert_null(text);
}

struct bad_case {
	const char *text;
	const char *why;	/* a part of the reason */
};

static void test_decode_refuses(void **state)
{
	static const struct bad_case bad[] = {
		{ "", "not a JSON object" },
		{ "shuffle", "not a JSON object" },
		{ "[1]", "not a JSON object" },
		{ "{\"op\":\"watch\",\"address\":\"192.0.2.7\",\"origin\":\"x\","
		  "\"expires\":0,\"ts\":1,\"extra\":1}", "unknown key" },
		{ "{\"op\":\"flush\",\"ts\":1}", "op is not" },
		{ "{\"op\":\"watch\",\"origin\":\"x\",\"expires\":0,\"ts\":1}",
		  "address" },
		{ "{\"op\":\"watch\",\"address\":\"example.com\",\"origin\":\"x\","
		  "\"expires\":0,\"ts\":1}", "address" },
		{ "{\"op\":\"watch\",\"address\":\"192.0.2.7\",\"expires\":0,"
		  "\"ts\":1}", "origin" },
		{ "{\"op\":\"trigger\",\"origin\":\"x\",\"ts\":1}", "origin" },
		{ "{\"op\":\"watch\",\"address\":\"192.0.2.7\",\"origin\":\"x\","
		  "\"ts\":1}", "expires" },
		{ "{\"op\":\"watch\",\"address\":\"192.0.2.7\",\"origin\":\"x\","
		  "\"expires\":-1,\"ts\":1}", "expires" },
		{ "{\"op\":\"unwatch\",\"address\":\"192.0.2.7\",\"origin\":\"x\","
		  "\"expires\":5,\"ts\":1}", "expires" },
		{ "{\"op\":\"trigger\"}", "ts" },
		{ "{\"op\":\"trigger\",\"op\":\"trigger\",\"ts\":1}",
		  "not a JSON object" },
		{ "{\"op\":\"watch\",\"address\":\"192.0.2.7\",\"origin\":"
		  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
		  "\"expires\":0,\"ts\":1}", "origin" },	/* 59 > 58 */
	};
	char why[256];
	struct fleet_op op;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		assert_int_equal(fleet_op_decode(bad[i].text, strlen(bad[i].text),
						 &op, why, sizeof(why)), -EINVAL);
		if (strstr(why, bad[i].why) == NULL)
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, why,
				 bad[i].why);
	}
	/* Longer than FLEET_OP_MAX: refused before parsing. */
	{
		char big[FLEET_OP_MAX + 2];

		memset(big, ' ', sizeof(big));
		big[0] = '{';
		big[sizeof(big) - 1] = '}';
		assert_int_equal(fleet_op_decode(big, sizeof(big), &op, why,
						 sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, "longer than"));
	}
}

static void test_origins(void **state)
{
	char buf[WATCHLIST_ORIGIN_MAX + 1];

	(void)state;
	assert_int_equal(fleet_local_origin("f2b", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "fleet.f2b");
	assert_string_equal(fleet_origin_of("fleet.f2b"), "f2b");
	assert_null(fleet_origin_of("fleet."));
	assert_null(fleet_origin_of("f2b"));
	assert_null(fleet_origin_of("fleetx.a"));
	assert_int_equal(fleet_local_origin("abcdefgh", buf, 10), -ENAMETOOLONG);
}

static void test_ids(void **state)
{
	struct fleet_id a, b;
	char buf[FLEET_ID_MAX];

	(void)state;
	assert_int_equal(fleet_id_parse("1700000000000-5", &a), 0);
	assert_int_equal(a.ms, 1700000000000ULL);
	assert_int_equal(a.seq, 5);
	assert_int_equal(fleet_id_parse("1700000000000", &b), 0);
	assert_int_equal(b.seq, 0);
	assert_true(fleet_id_cmp(&b, &a) < 0);
	assert_true(fleet_id_cmp(&a, &b) > 0);
	assert_int_equal(fleet_id_cmp(&a, &a), 0);
	assert_int_equal(fleet_id_parse("9-10", &b), 0);
	assert_int_equal(fleet_id_parse("9-9", &a), 0);
	assert_true(fleet_id_cmp(&a, &b) < 0);	/* numbers, not text */
	assert_string_equal(fleet_id_format(&b, buf, sizeof(buf)), "9-10");
	assert_int_equal(fleet_id_parse("18446744073709551615-1", &a), 0);
	assert_int_equal(fleet_id_parse("18446744073709551616-1", &a), -EINVAL);
	assert_int_equal(fleet_id_parse("", &a), -EINVAL);
	assert_int_equal(fleet_id_parse("-1", &a), -EINVAL);
	assert_int_equal(fleet_id_parse("1-", &a), -EINVAL);
	assert_int_equal(fleet_id_parse("1-2x", &a), -EINVAL);
	assert_int_equal(fleet_id_parse(NULL, &a), -EINVAL);
}

/* The signed time against the stream ID's: within the window either way,
 * refused beyond it (a copy XADDed later), whatever the signed value. */
static void test_check_time(void **state)
{
	struct fleet_op op = { .kind = FLEET_WATCH, .ts = 1000 };
	struct fleet_id id = { 1000999, 3 };
	char why[256] = "";

	(void)state;
	assert_int_equal(fleet_check_time(&op, &id, 2000, 30, why, sizeof(why)), 0);
	id.ms = 1030999;	/* 30 s later: the edge */
	assert_int_equal(fleet_check_time(&op, &id, 2000, 30, why, sizeof(why)), 0);
	id.ms = 1031000;	/* 31 s later: a copy */
	assert_int_equal(fleet_check_time(&op, &id, 2000, 30, why, sizeof(why)),
			 -ESTALE);
	assert_non_null(strstr(why, "signed at 1000 but added to the stream "
			       "at 1031; expected within 30 s"));
	id.ms = 970000;		/* signed in the future, by 30 s */
	assert_int_equal(fleet_check_time(&op, &id, 2000, 30, why, sizeof(why)), 0);
	id.ms = 969999;
	assert_int_equal(fleet_check_time(&op, &id, 2000, 30, why, sizeof(why)),
			 -ESTALE);
	/* An ID far past this host's clock (an explicit XADD ID, and the
	 * IDs after it): its time counts as now (2000). */
	op.ts = 2000;
	id.ms = 99999999999999ULL;
	assert_int_equal(fleet_check_time(&op, &id, 2000, 30, why, sizeof(why)), 0);
	op.ts = 1000;		/* an old entry copied in then */
	assert_int_equal(fleet_check_time(&op, &id, 2000, 30, why, sizeof(why)),
			 -ESTALE);
	op.ts = 2000;
	id.ms = 2030999;	/* within the window of now: as it is */
	assert_int_equal(fleet_check_time(&op, &id, 2000, 30, why, sizeof(why)), 0);
	op.ts = INT64_MIN;	/* no overflow on hostile values */
	assert_int_equal(fleet_check_time(&op, &id, 2000, 30, why, sizeof(why)),
			 -ESTALE);
	op.ts = INT64_MAX;
	id.ms = UINT64_MAX;
	assert_int_equal(fleet_check_time(&op, &id, 2000, 30, why, sizeof(why)),
			 -ESTALE);
}

/* The adapters' control requests as fleet operations: TTLs become
 * absolute expiries; what the fleet cannot carry is refused whole. */
static void test_ops_from_request(void **state)
{
	struct fleet_op *ops = NULL;
	size_t n = 0;
	json_t *req = json_loads("{\"command\":\"watch_add\",\"origin\":"
				 "\"crowdsec\",\"entries\":[{\"address\":"
				 "\"192.0.2.1\",\"ttl\":60},{\"address\":"
				 "\"198.51.100.0/24\"}]}", 0, NULL);
	static const char *const bad[] = {
		"{\"command\":\"watch_flush\",\"origin\":\"x\",\"entries\":[]}",
		"{\"command\":\"watch_add\",\"entries\":[]}",
		"{\"command\":\"watch_add\",\"origin\":\"x\",\"entries\":"
		"[{\"address\":\"192.0.2.1\",\"ttl\":0}]}",
		"{\"command\":\"watch_del\",\"origin\":\"x\",\"entries\":"
		"[{\"address\":\"192.0.2.1\",\"ttl\":5}]}",
		"{\"command\":\"watch_add\",\"origin\":\"x\",\"entries\":"
		"[{\"ttl\":5}]}",
		"{\"command\":\"watch_add\",\"origin\":\"0123456789012345678901"
		"23456789012345678901234567890123456789\",\"entries\":[]}",
	};

	(void)state;
	assert_non_null(req);
	assert_int_equal(fleet_ops_from_request(req, 1000, &ops, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ops[0].kind, FLEET_WATCH);
	assert_string_equal(ops[0].address, "192.0.2.1");
	assert_string_equal(ops[0].origin, "crowdsec");
	assert_int_equal(ops[0].expires, 1060);
	assert_string_equal(ops[1].address, "198.51.100.0/24");
	assert_int_equal(ops[1].expires, 0);
	free(ops);
	json_decref(req);
	req = json_loads("{\"command\":\"watch_del\",\"origin\":\"c\","
			 "\"entries\":[{\"address\":\"192.0.2.1\"}]}", 0, NULL);
	assert_int_equal(fleet_ops_from_request(req, 1000, &ops, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ops[0].kind, FLEET_UNWATCH);
	free(ops);
	json_decref(req);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		req = json_loads(bad[i], 0, NULL);
		assert_non_null(req);
		ops = NULL;
		assert_int_equal(fleet_ops_from_request(req, 1000, &ops, &n),
				 -EINVAL);
		assert_null(ops);
		json_decref(req);
	}
}

static void test_need_snapshot(void **state)
{
	struct fleet_id last = { 100, 0 }, first_before = { 50, 0 },
			first_after = { 200, 0 }, same = { 100, 0 };

	(void)state;
	/* A new host: always. */
	assert_true(fleet_need_snapshot(false, &last, 0, 0, NULL));
	/* Nothing trimmed: follow the stream. */
	assert_false(fleet_need_snapshot(true, &last, 10, 10, &first_after));
	/* Trimmed, but the group's last read is still in the stream. */
	assert_false(fleet_need_snapshot(true, &last, 1000, 10, &first_before));
	assert_false(fleet_need_snapshot(true, &last, 1000, 10, &same));
	/* Trimmed past what the group read: the snapshot. */
	assert_true(fleet_need_snapshot(true, &last, 1000, 10, &first_after));
	/* Trimmed to nothing (empty stream, entries added): follow. */
	assert_false(fleet_need_snapshot(true, &last, 1000, 0, NULL));
}

static void test_gap(void **state)
{
	struct fleet_id head = { 500, 1 }, behind = { 400, 0 };

	(void)state;
	/* At the head with entries never read: trimmed away. */
	assert_true(fleet_gap(&head, &head, 49));
	/* At the head, nothing missed. */
	assert_false(fleet_gap(&head, &head, 0));
	/* Behind: the lag is what is still to read. */
	assert_false(fleet_gap(&behind, &head, 49));
	/* Redis cannot tell. */
	assert_false(fleet_gap(&head, &head, -1));
}

static void test_verdicts(void **state)
{
	(void)state;
	assert_int_equal(fleet_verdict(CORE_WATCH_OK), FLEET_ACK);
	assert_int_equal(fleet_verdict(CORE_WATCH_NOT_FOUND), FLEET_ACK);
	assert_int_equal(fleet_verdict(CORE_WATCH_INVALID), FLEET_ACK_REFUSED);
	assert_int_equal(fleet_verdict(CORE_WATCH_MODE), FLEET_ACK_REFUSED);
	assert_int_equal(fleet_verdict(CORE_WATCH_STORAGE), FLEET_RETRY);
	assert_int_equal(fleet_verdict(CORE_WATCH_KERNEL), FLEET_RETRY);
	assert_int_equal(fleet_verdict(CORE_WATCH_MEMORY), FLEET_RETRY);
}

/* A read's entries in runs: what goes to the core as one change. */
static void test_runs(void **state)
{
	const int64_t now = 1700000000, later = now + 3600;
	/* kind, address, origin, expires; ok */
	const struct fleet_op ops[] = {
		{ FLEET_WATCH, "192.0.2.1", "ids", later, 0 },		/* 0 */
		{ FLEET_WATCH, "192.0.2.2", "ids", 0, 0 },
		{ FLEET_WATCH, "192.0.2.0/28", "ids", later, 0 },
		{ FLEET_WATCH, "192.0.2.3", "f2b", later, 0 },		/* 3 */
		{ FLEET_WATCH, "192.0.2.4", "f2b", later, 0 },
		{ FLEET_WATCH, "192.0.2.3", "f2b", later + 1, 0 },	/* 5 */
		{ FLEET_UNWATCH, "192.0.2.3", "f2b", 0, 0 },		/* 6 */
		{ FLEET_WATCH, "192.0.2.9", "f2b", now, 0 },		/* over */
		{ FLEET_UNWATCH, "192.0.2.3", "f2b", 0, 0 },		/* twice */
		{ FLEET_UNWATCH, "192.0.2.5", "ids", 0, 0 },		/* 9 */
		{ FLEET_TRIGGER, "", "", 0, 0 },			/* 10 */
		{ FLEET_TRIGGER, "192.0.2.1", "", 0, 0 },		/* 11 */
		{ FLEET_WATCH, "192.0.2.6", "ids", later, 0 },		/* 12 */
		{ FLEET_WATCH, "192.0.2.7", "ids", later, 0 },		/* bad */
		{ FLEET_WATCH, "192.0.2.8", "ids", later, 0 },		/* 14 */
	};
	const bool ok[] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1 };
	const struct {
		size_t start, len;
		enum fleet_run_kind kind;
	} want[] = {
		{ 0, 3, FLEET_RUN_ADD },	/* one origin, never or later */
		{ 3, 2, FLEET_RUN_ADD },	/* another origin: a new run */
		{ 5, 1, FLEET_RUN_ADD },	/* a repeat ends the run */
		{ 6, 3, FLEET_RUN_DEL },	/* unwatch, expired watch, again */
		{ 9, 1, FLEET_RUN_DEL },	/* another origin */
		{ 10, 1, FLEET_RUN_TRIGGER },	/* a trigger is alone */
		{ 11, 1, FLEET_RUN_TRIGGER },
		{ 12, 1, FLEET_RUN_ADD },	/* ended by an entry refused */
		{ 13, 1, FLEET_RUN_SKIP },
		{ 14, 1, FLEET_RUN_ADD },
	};
	const size_t n = sizeof(ops) / sizeof(ops[0]);
	enum fleet_run_kind kind;
	size_t i = 0, k = 0, len;

	(void)state;
	for (; i < n; i += len, k++) {
		assert_true(k < sizeof(want) / sizeof(want[0]));
		len = fleet_run(&ops[i], &ok[i], n - i, now, 256, &kind);
		assert_int_equal(i, want[k].start);
		assert_int_equal(len, want[k].len);
		assert_int_equal(kind, want[k].kind);
	}
	assert_int_equal(k, sizeof(want) / sizeof(want[0]));

	/* At most max, and never past the end. */
	assert_int_equal(fleet_run(ops, ok, 3, now, 2, &kind), 2);
	assert_int_equal(fleet_run(ops, ok, 2, now, 256, &kind), 2);
	assert_int_equal(fleet_run(ops, ok, 1, now, 256, &kind), 1);
	/* Deletes may name an address twice (the core counts it once). */
	assert_int_equal(fleet_run(&ops[6], &ok[6], 3, now, 256, &kind), 3);
	/* A watch whose time is over when read is a delete; a moment
	 * earlier the same entry was an add. */
	assert_int_equal(fleet_run_kind_of(&ops[7], true, now), FLEET_RUN_DEL);
	assert_int_equal(fleet_run_kind_of(&ops[7], true, now - 1),
			 FLEET_RUN_ADD);
	assert_int_equal(fleet_run_kind_of(&ops[1], true, now), FLEET_RUN_ADD);
	assert_int_equal(fleet_run_kind_of(&ops[1], false, now),
			 FLEET_RUN_SKIP);
}

static void test_snap_parse(void **state)
{
	struct fleet_item *items = NULL;
	size_t n = 0, cap = 0;
	const char *v = "{\"a\":0,\"b\":2000,\"c\":500,\"d\":1000}";

	(void)state;
	/* At 1000: c and d are over. */
	assert_int_equal(fleet_snap_parse("192.0.2.7", v, strlen(v), 1000,
					  &items, &n, &cap), 2);
	assert_int_equal(n, 2);
	assert_string_equal(items[0].net, "192.0.2.7");
	assert_true((strcmp(items[0].origin, "a") == 0 && items[0].expires == 0) ||
		    (strcmp(items[0].origin, "b") == 0 && items[0].expires == 2000));
	/* Refused whole: nothing appended. */
	assert_int_equal(fleet_snap_parse("192.0.2.8", "{\"a\":1,\"B!\":2}", 14,
					  0, &items, &n, &cap), -EINVAL);
	assert_int_equal(fleet_snap_parse("192.0.2.8", "[1]", 3, 0, &items,
					  &n, &cap), -EINVAL);
	assert_int_equal(fleet_snap_parse("nope", "{\"a\":1}", 7, 0, &items,
					  &n, &cap), -EINVAL);
	assert_int_equal(fleet_snap_parse("192.0.2.8", "{\"a\":\"1\"}", 9, 0,
					  &items, &n, &cap), -EINVAL);
	assert_int_equal(n, 2);
	/* cjson may write a large number as 1.8e9. */
	assert_int_equal(fleet_snap_parse("192.0.2.9", "{\"a\":1.8e9}", 11, 0,
					  &items, &n, &cap), 1);
	assert_int_equal(items[2].expires, 1800000000);
	/* Beyond int64_t (found by fuzz_fleet): refused, not converted. */
	assert_int_equal(fleet_snap_parse("192.0.2.9", "{\"a\":1.8e98}", 12,
					  0, &items, &n, &cap), -EINVAL);
	assert_int_equal(fleet_snap_parse("192.0.2.9",
					  "{\"a\":9223372036854775808.0}", 27,
					  0, &items, &n, &cap), -EINVAL);
	assert_int_equal(n, 3);
	free(items);
}

static struct fleet_item item(const char *net, const char *origin,
			      int64_t expires)
{
	struct fleet_item it;

	memset(&it, 0, sizeof(it));
	strcpy(it.net, net);
	strcpy(it.origin, origin);
	it.expires = expires;
	return it;
}

static void test_diff(void **state)
{
	struct fleet_item local[] = {
		item("192.0.2.1", "a", 0),	/* kept */
		item("192.0.2.2", "a", 100),	/* refreshed: 200 */
		item("192.0.2.3", "a", 0),	/* deleted */
		item("192.0.2.1", "b", 0),	/* deleted (b's) */
	};
	struct fleet_item snap[] = {
		item("192.0.2.2", "a", 200),
		item("192.0.2.1", "a", 0),
		item("192.0.2.4", "a", 0),	/* added */
		item("192.0.2.4", "c", 50),	/* added */
	};
	struct fleet_item *add, *del;
	size_t nadd, ndel;

	(void)state;
	assert_int_equal(fleet_diff(local, 4, snap, 4, &add, &nadd, &del,
				    &ndel), 0);
	assert_int_equal(nadd, 3);
	assert_string_equal(add[0].net, "192.0.2.2");
	assert_int_equal(add[0].expires, 200);
	assert_string_equal(add[1].net, "192.0.2.4");
	assert_string_equal(add[1].origin, "a");
	assert_string_equal(add[2].origin, "c");
	assert_int_equal(ndel, 2);
	assert_string_equal(del[0].net, "192.0.2.3");
	assert_string_equal(del[1].origin, "b");
	free(add);
	free(del);
	/* Equal sides: nothing. */
	assert_int_equal(fleet_diff(snap, 4, snap, 4, &add, &nadd, &del,
				    &ndel), 0);
	assert_int_equal(nadd + ndel, 0);
	free(add);
	free(del);
	/* Empty snapshot: every local entry goes. */
	assert_int_equal(fleet_diff(local, 4, NULL, 0, &add, &nadd, &del,
				    &ndel), 0);
	assert_int_equal(nadd, 0);
	assert_int_equal(ndel, 4);
	free(add);
	free(del);
}

static void test_keys(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(fleet_key("porthop:feed", FLEET_KEY_SNAPSHOT, buf,
				      sizeof(buf)), "porthop:feed:snapshot");
	assert_string_equal(fleet_key("s", FLEET_KEY_POS, buf, sizeof(buf)),
			    "s:snapshot:pos");
	assert_string_equal(fleet_key("s", FLEET_KEY_EXPIRY, buf, sizeof(buf)),
			    "s:snapshot:expiry");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_decode_refuses),
		cmocka_unit_test(test_origins),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_check_time),
		cmocka_unit_test(test_ops_from_request),
		cmocka_unit_test(test_need_snapshot),
		cmocka_unit_test(test_gap),
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_runs),
		cmocka_unit_test(test_snap_parse),
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
