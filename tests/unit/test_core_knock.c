/* The core's knocks against the recorder: a logged knock verified and its
 * source (or the address inside) let in, in one transaction; every
 * refusal counted by reason, none of them touching the kernel; refusals
 * logged through the limit; a key file others can read refused at load;
 * a deleted key revoked by a reload. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core.h"
#include "knock.h"
#include "recorder.h"
#include "ruleset.h"
#include "support.h"

struct said {
	char lines[64][512];
	size_t n, warnings;
};

static void on_log(void *arg, enum core_level level, const char *line)
{
	struct said *s = arg;

	s->warnings += level == CORE_WARN;
	if (s->n < 64)
		snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%s", line);
}

static size_t said_count(const struct said *s, const char *needle)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += strstr(s->lines[i], needle) != NULL;
	return n;
}

struct fixture {
	struct said said;
	struct nftio *io;
	struct core *core;
	struct clientkey *alice;
	char dir[64], config[96], run[64];
};

static void write_key(const char *dir, const char *file,
		      const struct clientkey *k, mode_t mode)
{
	char path[160], *text = clientkey_text(k);
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
	free(text);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct core_hooks hooks = { .log = on_log };
	struct clientkey *bob = NULL;
	struct diag *d = diag_new();
	struct config *cfg;
	json_t *j;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_core_knock.XXXXXX");
	snprintf(f->run, sizeof(f->run), "/tmp/test_core_knock_run.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_non_null(mkdtemp(f->run));
	assert_int_equal(clientkey_generate("alice", CLIENTKEY_KNOCK, d,
					    &f->alice), 0);
	assert_int_equal(clientkey_generate("bob", CLIENTKEY_KNOCK, d,
					    &bob), 0);
	write_key(f->dir, "alice.key", f->alice, 0600);
	write_key(f->dir, "bob.key", bob, 0644);
	clientkey_free(bob);
	diag_free(d);
	j = json_load_file("valid/native_knock.json", 0, NULL);
	assert_non_null(j);
	json_object_set_new(json_object_get(json_object_get(j, "porthopd"),
					    "knock"), "keys_directory",
			    json_string(f->dir));
	snprintf(f->config, sizeof(f->config), "%s/config.json", f->dir);
	assert_int_equal(json_dump_file(j, f->config, 0), 0);
	json_decref(j);
	hooks.arg = &f->said;
	f->io = nftio_new_recorder();
	cfg = core_load(f->io, f->config, on_log, &f->said, NULL);
	assert_non_null(cfg);
	f->core = core_new(f->io, cfg, f->config, &hooks);
	assert_non_null(f->core);
	core_set_run_dir(f->core, f->run);
	assert_int_equal(core_start(f->core), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[256];

	core_free(f->core);
	nftio_free(f->io);
	clientkey_free(f->alice);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", f->dir, f->run);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* An IPv4 UDP packet from src to the knock port carrying payload, as
 * nflog copies it; its length. */
static size_t packet(unsigned char *pkt, const char *src,
		     const unsigned char *payload, size_t len)
{
	memset(pkt, 0, 28);
	pkt[0] = 0x45;
	pkt[9] = 17;
	inet_pton(AF_INET, src, pkt + 12);
	inet_pton(AF_INET, "192.0.2.1", pkt + 16);
	pkt[22] = 62201 >> 8;
	pkt[23] = 62201 & 0xff;
	pkt[24] = (unsigned char)((len + 8) >> 8);
	pkt[25] = (unsigned char)(len + 8);
	memcpy(pkt + 28, payload, len);
	return 28 + len;
}

/* A fresh knock of k (nonce b, dated now), naming inside if not NULL. */
static size_t knock_packet(unsigned char *pkt, const struct clientkey *k,
			   unsigned char b, const char *src, const char *inside)
{
	unsigned char d[KNOCK_MAX], nonce[KNOCK_NONCE_LEN], a[16];
	int len;

	memset(nonce, b, sizeof(nonce));
	if (inside)
		inet_pton(AF_INET, inside, a);
	len = knock_encode(k, (int64_t)time(NULL), nonce, inside ? AF_INET : 0,
			   a, d, sizeof(d));
	assert_true(len > 0);
	return packet(pkt, src, d, (size_t)len);
}

static bool last_batch_has(struct nftio *io, const char *needle)
{
	char *text = json_dumps(nftio_recorder_last(io), JSON_COMPACT);
	bool has = text && strstr(text, needle);

	free(text);
	return has;
}

static void test_knock_admits(void **state)
{
	struct fixture *f = *state;
	const struct knock_stats *st;
	unsigned char pkt[256];
	size_t len, applied;

	assert_true(core_knock_on(f->core));
	/* bob's file is readable by others: refused at load, said. */
	assert_int_equal(said_count(&f->said, "bob.key"), 1);
	assert_int_equal(core_knock_stats(f->core)->keys, 1);
	applied = nftio_recorder_applied(f->io);
	len = knock_packet(pkt, f->alice, 1, "198.51.100.7", NULL);
	core_knock_packet(f->core, RULESET_KNOCK_PREFIX, pkt, len);
	assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
	assert_true(last_batch_has(f->io, "{\"elem\":{\"val\":\"198.51.100.7\","
				   "\"timeout\":60}}"));
	assert_int_equal(said_count(&f->said, "knock: key alice from "
				    "198.51.100.7 let 198.51.100.7 in for 60 s ("), 1);
	/* The same knock again: a replay, the kernel untouched. */
	core_knock_packet(f->core, RULESET_KNOCK_PREFIX, pkt, len);
	assert_int_equal(nftio_recorder_applied(f->io), applied + 1);
	/* A knock naming another address lets that one in. */
	len = knock_packet(pkt, f->alice, 2, "198.51.100.7", "203.0.113.9");
	core_knock_packet(f->core, RULESET_KNOCK_PREFIX, pkt, len);
	assert_int_equal(nftio_recorder_applied(f->io), applied + 2);
	assert_true(last_batch_has(f->io, "\"203.0.113.9\""));
	/* Another rule's packets are not knocks. */
	core_knock_packet(f->core, "porthop:probe", pkt, len);
	/* A TCP packet logged by mistake: malformed. */
	pkt[9] = 6;
	core_knock_packet(f->core, RULESET_KNOCK_PREFIX, pkt, len);
	st = core_knock_stats(f->core);
	assert_int_equal(st->results[KNOCK_OK], 2);
	assert_int_equal(st->results[KNOCK_REPLAY], 1);
	assert_int_equal(st->results[KNOCK_MALFORMED], 1);
	assert_int_equal(st->not_udp, 1);
	assert_int_equal(st->nonces, 2);
	assert_int_equal(nftio_recorder_applied(f->io), applied + 2);
}

/* 100 refusals: counted, at most 5 lines said (the limit's burst). */
static void test_refusals_limited(void **state)
{
	struct fixture *f = *state;
	unsigned char pkt[256], junk[40] = "not a knock";
	size_t len = packet(pkt, "198.51.100.8", junk, sizeof(junk));
	size_t before = said_count(&f->said, "refused");

	for (int i = 0; i < 100; i++)
		core_knock_packet(f->core, RULESET_KNOCK_PREFIX, pkt, len);
	assert_int_equal(core_knock_stats(f->core)->results[KNOCK_MALFORMED],
			 100);
	assert_true(said_count(&f->said, "refused") - before <= 5);
	assert_true(said_count(&f->said, "knock from 198.51.100.8 refused: "
			       "malformed") >= 1);
}

/* alice's file deleted and the configuration reloaded: her knocks are
 * refused as an unknown key, the kernel untouched. */
static void test_revoked_by_reload(void **state)
{
	struct fixture *f = *state;
	unsigned char pkt[256];
	char path[160], *err = NULL;
	size_t len, applied;

	snprintf(path, sizeof(path), "%s/alice.key", f->dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(core_reload(f->core, SRC_SIGNAL, &err), 0);
	assert_int_equal(core_knock_stats(f->core)->keys, 0);
	applied = nftio_recorder_applied(f->io);
	len = knock_packet(pkt, f->alice, 3, "198.51.100.7", NULL);
	core_knock_packet(f->core, RULESET_KNOCK_PREFIX, pkt, len);
	assert_int_equal(core_knock_stats(f->core)->results[KNOCK_UNKNOWN_KEY],
			 1);
	assert_int_equal(nftio_recorder_applied(f->io), applied);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_knock_admits, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refusals_limited, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_revoked_by_reload, setup,
						teardown),
	};

	if (chdir(CORPUS_DIR) < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
