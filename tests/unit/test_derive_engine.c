/* Derived ports through the engine, against the recorder: the first apply
 * writes slots t-1, t, t+1; a boundary is one transaction that deletes
 * slot t-2's ports and adds t+1's; no boundary, no transaction; a
 * shuffle leaves the derived ports alone; someone else's change to them
 * is put back by reconciliation. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "clientkey.h"
#include "config.h"
#include "derive.h"
#include "engine.h"
#include "nftio.h"
#include "support.h"

#define SLOT 10

struct fixture {
	char dir[64], key[128];
	struct nftio *io;
	struct engine *e;
	int64_t now;
};

static int64_t fixed_clock(void *arg)
{
	return ((struct fixture *)arg)->now;
}

static int setup(void **state)
{
	static const uint16_t tcp[] = { 22, 443 }, udp[] = { 53 };
	struct fixture *f = calloc(1, sizeof(*f));
	struct diag *d = diag_new();
	struct clientkey *k = NULL;
	char text[1024];

	strcpy(f->dir, "/tmp/test_derive_engine.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->key, sizeof(f->key), "%s/k.key", f->dir);
	assert_int_equal(clientkey_generate("k", CLIENTKEY_DERIVE, d, &k), 0);
	assert_int_equal(clientkey_set_services(k, true, tcp, 2, d), 0);
	assert_int_equal(clientkey_set_services(k, false, udp, 1, d), 0);
	assert_int_equal(clientkey_set_slot_seconds(k, SLOT, d), 0);
	assert_int_equal(clientkey_write(k, f->key, d), 0);
	clientkey_free(k);
	diag_free(d);
	snprintf(text, sizeof(text),
		 "\"max_port_number\": 65535, \"untrack_unwatched\": false, "
		 "\"tcp_ports\": [22, 443], "
		 "\"udp_ports\": [53], \"watched_addresses\": ["
		 "{\"ip\": \"0.0.0.0/0\", \"derive_key\": \"%s\"}, "
		 "{\"ip\": \"10.0.0.9\"}]", f->key);
	f->io = nftio_new_recorder();
	f->e = engine_new(support_load_nftables(text), f->io);
	assert_non_null(f->e);
	f->now = 1700000000;
	engine_set_derive_clock(f->e, fixed_clock, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	engine_free(f->e);
	nftio_free(f->io);
	unlink(f->key);
	rmdir(f->dir);
	free(f);
	return 0;
}

static int cmp_text(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ports of the last batch's `verb` element commands on map, as
 * "tcp/PORT" or "udp/PORT" (with "=VALUE" when adding), sorted, one
 * string. */
static void elements(const struct fixture *f, const char *verb,
		     const char *map, char *out, size_t len)
{
	json_t *cmds = json_object_get(nftio_recorder_last(f->io), "nftables");
	json_t *c, *e;
	size_t i, j;
	char *items[64];
	size_t n = 0, off = 0;

	json_array_foreach(cmds, i, c) {
		json_t *body = json_object_get(json_object_get(c, verb),
					       "element");

		if (body == NULL ||
		    strcmp(json_string_value(json_object_get(body, "name")),
			   map) != 0)
			continue;
		json_array_foreach(json_object_get(body, "elem"), j, e) {
			json_t *key = json_is_array(e) ? json_array_get(e, 0) : e;
			json_t *cc = json_object_get(key, "concat");
			char buf[32];

			assert_true(n < 64);
			if (json_is_array(e))
				snprintf(buf, sizeof(buf), "%s/%d=%d",
					 json_string_value(json_array_get(cc, 0)),
					 (int)json_integer_value(json_array_get(cc, 1)),
					 (int)json_integer_value(json_array_get(e, 1)));
			else
				snprintf(buf, sizeof(buf), "%s/%d",
					 json_string_value(json_array_get(cc, 0)),
					 (int)json_integer_value(json_array_get(cc, 1)));
			items[n++] = strdup(buf);
		}
	}
	qsort(items, n, sizeof(*items), cmp_text);
	out[0] = '\0';
	for (size_t k = 0; k < n; k++) {
		off += (size_t)snprintf(out + off, len - off, "%s ", items[k]);
		free(items[k]);
	}
}

/* What slot t's elements in dp0 look like (sorted as elements() sorts
 * them, by strcmp of the text). */
static void expected(const struct fixture *f, int64_t t, bool values,
		     char *out, size_t len)
{
	const struct config_watched *w = config_watched(engine_config(f->e), 0);
	size_t n = derive_count(w->derive), off = 0;
	uint16_t ports[8];
	char *items[8];

	assert_int_equal(derive_slot(w->derive, (uint64_t)t, ports), 0);
	for (size_t i = 0; i < n; i++) {
		uint8_t proto;
		uint16_t real;
		char buf[32];

		derive_service(w->derive, i, &proto, &real);
		if (values)
			snprintf(buf, sizeof(buf), "%s/%d=%d",
				 proto == DERIVE_PROTO_UDP ? "udp" : "tcp",
				 ports[i], real);
		else
			snprintf(buf, sizeof(buf), "%s/%d",
				 proto == DERIVE_PROTO_UDP ? "udp" : "tcp",
				 ports[i]);
		items[i] = strdup(buf);
	}
	qsort(items, n, sizeof(*items), cmp_text);
	out[0] = '\0';
	for (size_t k = 0; k < n; k++) {
		off += (size_t)snprintf(out + off, len - off, "%s ", items[k]);
		free(items[k]);
	}
}

static void test_boundaries(void **state)
{
	struct fixture *f = *state;
	char got[1024], want[1024], *err = NULL;
	int64_t t = f->now / SLOT;
	size_t applied;

	assert_int_equal(engine_shuffle(f->e, &err), 0);
	/* The first apply: 3 slots of 3 services and the real ports. */
	elements(f, "add", "dp0", got, sizeof(got));
	for (int64_t s = t - 1; s <= t + 1; s++) {
		expected(f, s, true, want, sizeof(want));
		for (char *tok = strtok(want, " "); tok; tok = strtok(NULL, " "))
			assert_non_null(strstr(got, tok));
	}
	/* Within the slot: nothing to do. */
	applied = nftio_recorder_applied(f->io);
	f->now += SLOT - 1 - f->now % SLOT;
	assert_int_equal(engine_derive_tick(f->e, &err), 0);
	assert_int_equal(nftio_recorder_applied(f->io), applied);
	assert_int_equal(engine_derive_next_ms(f->e), 1000);
	/* A boundary: t-1 (now t-2) out, t+2 (now t+1) in, one batch. */
	f->now += 1;
	assert_int_equal(engine_derive_tick(f->e, &err), 1);
	assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
	elements(f, "delete", "dp0", got, sizeof(got));
	expected(f, t - 1, false, want, sizeof(want));
	assert_string_equal(got, want);
	elements(f, "add", "dp0", got, sizeof(got));
	expected(f, t + 2, true, want, sizeof(want));
	assert_string_equal(got, want);
	/* The real ports now answer for slot t+1's ports in dh0. */
	elements(f, "add", "dh0", got, sizeof(got));
	assert_int_equal(strlen(got) > 0, 1);
	/* Two boundaries at once (a late timer): both slots of each side. */
	f->now += 2 * SLOT;
	assert_int_equal(engine_derive_tick(f->e, &err), 1);
	elements(f, "add", "dp0", got, sizeof(got));
	expected(f, t + 4, true, want, sizeof(want));
	for (char *tok = strtok(want, " "); tok; tok = strtok(NULL, " "))
		assert_non_null(strstr(got, tok));
	free(err);
}

static void test_shuffle_leaves_them(void **state)
{
	struct fixture *f = *state;
	char got[1024], *err = NULL;

	assert_int_equal(engine_shuffle(f->e, &err), 0);
	assert_int_equal(engine_shuffle(f->e, &err), 0);
	/* The second: the shuffled entry's maps only. */
	elements(f, "add", "dp0", got, sizeof(got));
	assert_string_equal(got, "");
	elements(f, "add", "swap4", got, sizeof(got));
	assert_true(strlen(got) > 0);
	/* The keyed entry is not shuffled: 10.0.0.9's 3 pairs only. */
	assert_int_equal(config_pair_count(engine_config(f->e)), 3);
	free(err);
}

static void test_repaired(void **state)
{
	struct fixture *f = *state;
	char got[1024], want[1024], *err = NULL;

	assert_int_equal(engine_shuffle(f->e, &err), 0);
	nftio_recorder_tamper_elements(f->io, "dp0");
	assert_int_equal(engine_reconcile(f->e, &err), 1);
	assert_false(nftio_recorder_tampered(f->io));
	/* Put back as they were: the slots around now. */
	elements(f, "add", "dp0", got, sizeof(got));
	expected(f, f->now / SLOT, true, want, sizeof(want));
	for (char *tok = strtok(want, " "); tok; tok = strtok(NULL, " "))
		assert_non_null(strstr(got, tok));
	free(err);
}

/* The real-time clock jumps back (an NTP step after the host ran ahead):
 * the slot the clients compute is an earlier one, and the kernel must
 * follow at once, not hold the later slots until the clock gets back. */
static void test_clock_back(void **state)
{
	struct fixture *f = *state;
	char got[1024], want[1024], *err = NULL;
	int64_t t = f->now / SLOT;
	size_t applied;

	assert_int_equal(engine_shuffle(f->e, &err), 0);
	applied = nftio_recorder_applied(f->io);
	/* One hour back: slot t - 360, far from t - 1 .. t + 1. */
	f->now -= 3600;
	assert_int_equal(engine_derive_tick(f->e, &err), 1);
	assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
	elements(f, "add", "dp0", got, sizeof(got));
	for (int64_t s = t - 361; s <= t - 359; s++) {
		expected(f, s, true, want, sizeof(want));
		for (char *tok = strtok(want, " "); tok; tok = strtok(NULL, " "))
			assert_non_null(strstr(got, tok));
	}
	/* The next boundary is that slot's, and is met. */
	assert_true(engine_derive_next_ms(f->e) <= SLOT * 1000);
	f->now += SLOT;
	assert_int_equal(engine_derive_tick(f->e, &err), 1);
	/* One slot back (a small step): still followed. */
	applied = nftio_recorder_applied(f->io);
	f->now -= SLOT;
	assert_int_equal(engine_derive_tick(f->e, &err), 1);
	assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_boundaries, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_shuffle_leaves_them, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_repaired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clock_back, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
