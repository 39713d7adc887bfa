/* probe: logged packets read into events, the event's JSON, the merge
 * window and the ring. */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "probe.h"

/* An IPv4 TCP SYN from 192.0.2.7 to port dport (header only). */
static size_t ipv4_tcp(uint8_t *p, uint16_t dport)
{
	memset(p, 0, 40);
	p[0] = 0x45;
	p[9] = IPPROTO_TCP;
	p[12] = 192; p[13] = 0; p[14] = 2; p[15] = 7;
	p[22] = (uint8_t)(dport >> 8);
	p[23] = (uint8_t)dport;
	return 40;
}

static void test_parse_ipv4(void **state)
{
	uint8_t pkt[64];
	size_t len = ipv4_tcp(pkt, 8080);
	struct probe_event e;
	char src[64];

	(void)state;
	assert_int_equal(probe_parse("porthop:probe", pkt, len, 1000, &e), 0);
	assert_int_equal(e.kind, PROBE_PROBE);
	assert_int_equal(e.family, 4);
	assert_int_equal(e.proto, IPPROTO_TCP);
	assert_int_equal(e.port, 8080);
	assert_int_equal(e.count, 1);
	assert_int_equal(e.time_ms, 1000);
	assert_string_equal(probe_source(&e, src, sizeof(src)), "192.0.2.7");
	assert_int_equal(probe_parse("porthop:moved", pkt, len, 0, &e), 0);
	assert_int_equal(e.kind, PROBE_MOVED);
}

static void test_parse_ipv6_udp_ext(void **state)
{
	uint8_t p[80] = { 0 };
	struct probe_event e;
	char src[64];

	(void)state;
	p[0] = 0x60;
	p[6] = IPPROTO_DSTOPTS;		/* one extension header, 8 bytes */
	p[8] = 0x20; p[9] = 0x01; p[10] = 0x0d; p[11] = 0xb8; p[23] = 9;
	p[40] = IPPROTO_UDP;
	p[41] = 0;
	p[48 + 2] = 0x03;
	p[48 + 3] = 0xe7;		/* port 999 */
	assert_int_equal(probe_parse("porthop:stale", p, 56, 0, &e), 0);
	assert_int_equal(e.kind, PROBE_STALE);
	assert_int_equal(e.family, 6);
	assert_int_equal(e.proto, IPPROTO_UDP);
	assert_int_equal(e.port, 999);
	assert_string_equal(probe_source(&e, src, sizeof(src)), "2001:db8::9");
}

/* What the kernel may hand over that is not an event of ours. */
static void test_parse_refused(void **state)
{
	uint8_t pkt[64];
	size_t len = ipv4_tcp(pkt, 80);
	struct probe_event e;

	(void)state;
	assert_int_equal(probe_parse("other:probe", pkt, len, 0, &e), -EINVAL);
	assert_int_equal(probe_parse("porthop:nosuch", pkt, len, 0, &e), -EINVAL);
	assert_int_equal(probe_parse(NULL, pkt, len, 0, &e), -EINVAL);
	assert_int_equal(probe_parse("porthop:probe", pkt, 23, 0, &e), -EINVAL);
	assert_int_equal(probe_parse("porthop:probe", pkt, 0, 0, &e), -EINVAL);
	pkt[9] = IPPROTO_ICMP;
	assert_int_equal(probe_parse("porthop:probe", pkt, len, 0, &e), -EINVAL);
	pkt[9] = IPPROTO_TCP;
	pkt[7] = 1;			/* a later fragment: no ports */
	assert_int_equal(probe_parse("porthop:probe", pkt, len, 0, &e), -EINVAL);
	pkt[7] = 0;
	pkt[0] = 0x42;			/* IHL below 20 bytes */
	assert_int_equal(probe_parse("porthop:probe", pkt, len, 0, &e), -EINVAL);
}

static void test_json(void **state)
{
	uint8_t pkt[64];
	struct probe_event e;
	json_t *j;

	(void)state;
	assert_int_equal(probe_parse("porthop:moved", pkt, ipv4_tcp(pkt, 1234),
				     1764460800123LL, &e), 0);
	e.real_port = 22;
	e.generation = 7;
	j = probe_json(&e);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "time")),
			    "2025-11-30T00:00:00.123Z");
	assert_string_equal(json_string_value(json_object_get(j, "kind")), "moved");
	assert_string_equal(json_string_value(json_object_get(j, "source")),
			    "192.0.2.7");
	assert_string_equal(json_string_value(json_object_get(j, "proto")), "tcp");
	assert_int_equal(json_integer_value(json_object_get(j, "port")), 1234);
	assert_int_equal(json_integer_value(json_object_get(j, "real_port")), 22);
	assert_int_equal(json_integer_value(json_object_get(j, "generation")), 7);
	assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
	json_decref(j);
	e.real_port = 0;
	j = probe_json(&e);
	assert_true(json_is_null(json_object_get(j, "real_port")));
	json_decref(j);
}

struct sink {
	struct probe_event ev[64];
	size_t n;
};

static void collect(void *arg, const struct probe_event *e)
{
	struct sink *s = arg;

	s->ev[s->n++] = *e;
}

static struct probe_event ev_at(enum probe_kind k, uint16_t port, int64_t ms)
{
	uint8_t pkt[64];
	struct probe_event e;

	assert_int_equal(probe_parse(k == PROBE_PROBE ? "porthop:probe" :
				     "porthop:moved", pkt, ipv4_tcp(pkt, port),
				     ms, &e), 0);
	return e;
}

/* Identical events within the window merge with a count; a different
 * port or kind is another event; windows close in order. */
static void test_merge_window(void **state)
{
	struct probe_merge *m = probe_merge_new(4, 1000);
	struct sink s = { .n = 0 };
	struct probe_event e;

	(void)state;
	assert_non_null(m);
	e = ev_at(PROBE_PROBE, 80, 0);
	assert_int_equal(probe_merge_add(m, &e), 1);
	e = ev_at(PROBE_PROBE, 80, 400);
	assert_int_equal(probe_merge_add(m, &e), 0);
	e = ev_at(PROBE_PROBE, 81, 500);
	assert_int_equal(probe_merge_add(m, &e), 1);
	e = ev_at(PROBE_MOVED, 80, 600);
	assert_int_equal(probe_merge_add(m, &e), 1);
	assert_int_equal(probe_merge_flush(m, 999, false, collect, &s), 0);
	assert_int_equal(probe_merge_flush(m, 1000, false, collect, &s), 1);
	assert_int_equal(s.ev[0].count, 2);
	assert_int_equal(s.ev[0].port, 80);
	assert_int_equal(s.ev[0].last_ms, 400);
	/* Its window closed: the same key opens a new one. */
	e = ev_at(PROBE_PROBE, 80, 1100);
	assert_int_equal(probe_merge_add(m, &e), 1);
	assert_int_equal(probe_merge_flush(m, 1600, false, collect, &s), 2);
	assert_int_equal(s.ev[1].port, 81);
	assert_int_equal(s.ev[2].kind, PROBE_MOVED);
	assert_int_equal(probe_merge_flush(m, 0, true, collect, &s), 1);
	assert_int_equal(s.ev[3].time_ms, 1100);
	assert_int_equal(probe_merge_pending(m), 0);
	probe_merge_free(m);
}

/* Full: a new key is refused (the caller counts it); a known one still
 * merges. */
static void test_merge_full(void **state)
{
	struct probe_merge *m = probe_merge_new(3, 1000);
	struct probe_event e;
	struct sink s = { .n = 0 };

	(void)state;
	for (uint16_t p = 1; p <= 3; p++) {
		e = ev_at(PROBE_PROBE, p, 0);
		assert_int_equal(probe_merge_add(m, &e), 1);
	}
	e = ev_at(PROBE_PROBE, 4, 0);
	assert_int_equal(probe_merge_add(m, &e), -ENOSPC);
	e = ev_at(PROBE_PROBE, 2, 0);
	assert_int_equal(probe_merge_add(m, &e), 0);
	/* Many rounds through the FIFO and the index's deletions. */
	for (int round = 0; round < 200; round++) {
		s.n = 0;
		probe_merge_flush(m, 0, true, collect, &s);
		for (uint16_t p = 1; p <= 3; p++) {
			e = ev_at(PROBE_PROBE, (uint16_t)(p + round), round);
			assert_int_equal(probe_merge_add(m, &e), 1);
		}
	}
	probe_merge_free(m);
}

static void test_ring(void **state)
{
	struct probe_ring *r = probe_ring_new(3);
	struct sink s = { .n = 0 };

	(void)state;
	assert_int_equal(probe_ring_since(r, 0, 10, collect, &s), 0);
	for (uint16_t p = 1; p <= 5; p++) {
		struct probe_event e = ev_at(PROBE_PROBE, p, p);

		assert_int_equal(probe_ring_push(r, &e), p);
	}
	assert_int_equal(probe_ring_last(r), 5);
	/* 1 and 2 are gone: the oldest held come first. */
	assert_int_equal(probe_ring_since(r, 0, 10, collect, &s), 3);
	assert_int_equal(s.ev[0].seq, 3);
	assert_int_equal(s.ev[2].seq, 5);
	s.n = 0;
	assert_int_equal(probe_ring_since(r, 3, 10, collect, &s), 2);
	assert_int_equal(s.ev[0].port, 4);
	s.n = 0;
	assert_int_equal(probe_ring_since(r, 3, 1, collect, &s), 1);
	assert_int_equal(probe_ring_since(r, 5, 10, collect, &s), 0);
	probe_ring_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ipv4),
		cmocka_unit_test(test_parse_ipv6_udp_ext),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_merge_window),
		cmocka_unit_test(test_merge_full),
		cmocka_unit_test(test_ring),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
