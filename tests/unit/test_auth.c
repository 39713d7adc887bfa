/* Authenticated triggers: HMAC, window, replays, key files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth.h"

static const unsigned char key[] = "0123456789abcdef-test-key";
static const unsigned char other[] = "fedcba9876543210-test-key";

static enum auth_result check(struct auth *a, const char *msg, time_t now)
{
	const char *payload;
	size_t len;

	return auth_verify(a, msg, strlen(msg), now, &payload, &len);
}

static void test_sign_verify(void **state)
{
	struct auth *a = auth_new(key, sizeof(key) - 1, 30, 100);
	const char *payload = NULL;
	size_t len = 0;
	char *msg;

	(void)state;
	assert_int_equal(auth_sign(key, sizeof(key) - 1, 1000, "{\"address\": \"10.0.0.3\"}", &msg), 0);
	assert_int_equal(auth_verify(a, msg, strlen(msg), 1010, &payload, &len), AUTH_OK);
	assert_string_equal(payload, "{\"address\": \"10.0.0.3\"}");
	assert_int_equal(len, strlen(payload));
	/* The same message again: a replay. */
	assert_int_equal(check(a, msg, 1011), AUTH_REPLAY);
	free(msg);
	auth_free(a);
}

static void test_refusals(void **state)
{
	struct auth *a = auth_new(key, sizeof(key) - 1, 30, 100);
	char *msg, *p;

	(void)state;
	/* Another key. */
	assert_int_equal(auth_sign(other, sizeof(other) - 1, 1000, "x", &msg), 0);
	assert_int_equal(check(a, msg, 1000), AUTH_BAD_MAC);
	free(msg);
	/* An altered payload. */
	assert_int_equal(auth_sign(key, sizeof(key) - 1, 1000, "shuffle", &msg), 0);
	p = strstr(msg, "shuffle");
	p[0] = 'S';
	assert_int_equal(check(a, msg, 1000), AUTH_BAD_MAC);
	free(msg);
	/* An altered timestamp. */
	assert_int_equal(auth_sign(key, sizeof(key) - 1, 1000, "x", &msg), 0);
	p = strstr(msg, "1000");
	p[3] = '1';
	assert_int_equal(check(a, msg, 1000), AUTH_BAD_MAC);
	free(msg);
	/* Outside the window, either way. */
	assert_int_equal(auth_sign(key, sizeof(key) - 1, 1000, "x", &msg), 0);
	assert_int_equal(check(a, msg, 1031), AUTH_STALE);
	assert_int_equal(check(a, msg, 969), AUTH_STALE);
	assert_int_equal(check(a, msg, 1030), AUTH_OK);
	free(msg);
	/* Not a signed trigger. */
	assert_int_equal(check(a, "shuffle", 1000), AUTH_MALFORMED);
	assert_int_equal(check(a, "{\"v\":1,\"ts\":1000,\"nonce\":\"zz\",\"payload\":\"x\",\"mac\":\"00\"}", 1000), AUTH_MALFORMED);
	assert_int_equal(check(a, "{\"v\":2,\"ts\":1000,\"nonce\":\"00000000000000000000000000000000\",\"payload\":\"x\",\"mac\":\"0000000000000000000000000000000000000000000000000000000000000000\"}", 1000), AUTH_MALFORMED);
	assert_int_equal(check(a, "{\"v\":1,\"ts\":1000,\"nonce\":\"00000000000000000000000000000000\",\"payload\":\"x\",\"mac\":\"0000000000000000000000000000000000000000000000000000000000000000\"}", 1000), AUTH_BAD_MAC);
	assert_string_equal(auth_result_name(AUTH_REPLAY), "replay");
	auth_free(a);
}

/* The replay table is bounded: full, it refuses until the window has
 * moved on, then accepts again. */
static void test_bounded_replay_table(void **state)
{
	struct auth *a = auth_new(key, sizeof(key) - 1, 10, 8);
	char *msg;

	(void)state;
	for (int i = 0; i < 8; i++) {
		assert_int_equal(auth_sign(key, sizeof(key) - 1, 1000, "x", &msg), 0);
		assert_int_equal(check(a, msg, 1000), AUTH_OK);
		free(msg);
	}
	assert_int_equal(auth_sign(key, sizeof(key) - 1, 1000, "x", &msg), 0);
	assert_int_equal(check(a, msg, 1000), AUTH_BUSY);
	free(msg);
	assert_int_equal(auth_sign(key, sizeof(key) - 1, 1011, "x", &msg), 0);
	assert_int_equal(check(a, msg, 1011), AUTH_OK);
	free(msg);
	auth_free(a);
}

/* Writes len bytes of content to path with mode, and loads it. */
static int load_key(const char *path, const void *content, size_t len,
		    mode_t mode, struct diag *d, unsigned char **k,
		    size_t *klen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
	diag_clear(d);
	return auth_load_key(path, "cfg: key", d, k, klen);
}

static void expect_key_refused(const char *path, const void *content,
			       size_t len, mode_t mode, struct diag *d,
			       const char *needle)
{
	unsigned char *k = NULL;
	size_t klen = 0;
	char want[512];

	assert_true(load_key(path, content, len, mode, d, &k, &klen) < 0);
	assert_null(k);
	snprintf(want, sizeof(want), "cfg: key: \"%s\" %s", path, needle);
	if (diag_first_error(d) == NULL || !strstr(diag_first_error(d), want))
		print_message("  expected: %s\n  got: %s\n", want,
			      diag_first_error(d) ? diag_first_error(d) : "-");
	assert_non_null(strstr(diag_first_error(d), want));
}

static void test_key_files(void **state)
{
	static const char good[] = "0123456789abcdef0123456789abcdef0123\n";
	char path[] = "/tmp/porthop-key-XXXXXX";
	int fd = mkstemp(path);
	struct diag *d = diag_new();
	unsigned char *k = NULL, zeros[40] = { 0 };
	size_t len = 0;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	/* 36 bytes and one newline, owner read-write, group read. */
	assert_int_equal(load_key(path, good, sizeof(good) - 1, 0640, d, &k,
				  &len), 0);
	assert_int_equal(len, 36);
	assert_memory_equal(k, good, 36);
	free(k);
	k = NULL;
	/* Only one line's end goes: a second newline is key. */
	assert_int_equal(load_key(path, "0123456789abcdef0123456789abcdef\n\r\n",
				  35, 0600, d, &k, &len), 0);
	assert_int_equal(len, 33);
	free(k);
	k = NULL;

	expect_key_refused(path, good, sizeof(good) - 1, 0644, d,
			   "is readable or writable by others (mode 644); "
			   "expected a key only its owner (and group) can read");
	expect_key_refused(path, good, sizeof(good) - 1, 0602, d,
			   "is readable or writable by others (mode 602)");
	expect_key_refused(path, good, sizeof(good) - 1, 0660, d,
			   "is writable by its group (mode 660); expected a key "
			   "only its owner can change: chmod g-w");
	expect_key_refused(path, "short", 5, 0600, d,
			   "holds a key of 5 bytes; expected 32 to 1024 bytes "
			   "(a trailing newline aside)");
	/* 31 bytes of key and a newline: one short. */
	expect_key_refused(path, good + 5, sizeof(good) - 6, 0600, d,
			   "holds a key of 31 bytes; expected 32 to 1024 bytes");
	expect_key_refused(path, "                                \n", 33,
			   0600, d, "holds a key of 32 bytes with only 1 distinct "
			   "byte value; expected a random key with at least 8");
	expect_key_refused(path, zeros, sizeof(zeros), 0600, d,
			   "holds a key of 40 bytes with only 1 distinct byte "
			   "value");
	expect_key_refused(path, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 34,
			   0600, d, "holds a key of 34 bytes with only 1 "
			   "distinct byte value");
	/* Whitespace and NUL of every kind: 7 values. */
	expect_key_refused(path, " \t\n\v\f\r\0 \t\n\v\f\r\0 \t\n\v\f\r\0"
			   " \t\n\v\f\r\0 \t\n\v\f\r\0", 35, 0600, d,
			   "holds a key of 35 bytes with only 7 distinct byte "
			   "values");
	/* Owned by someone else (needs root to give it away). */
	if (geteuid() == 0) {
		assert_int_equal(load_key(path, good, sizeof(good) - 1, 0600, d,
					  &k, &len), 0);
		free(k);
		k = NULL;
		assert_int_equal(chown(path, 12345, 12345), 0);
		diag_clear(d);
		assert_true(auth_load_key(path, "cfg: key", d, &k, &len) < 0);
		assert_non_null(strstr(diag_first_error(d),
				       "is owned by uid 12345; expected a key "
				       "file owned by root or by uid 0"));
	}
	unlink(path);
	/* Not a regular file; missing. */
	diag_clear(d);
	assert_true(auth_load_key("/tmp", "cfg: key", d, &k, &len) < 0);
	assert_non_null(strstr(diag_first_error(d), "cfg: key: \"/tmp\" is not "
			       "a regular file"));
	diag_clear(d);
	assert_true(auth_load_key(path, "cfg: key", d, &k, &len) < 0);
	assert_non_null(strstr(diag_first_error(d), "cannot be opened: No such "
			       "file or directory"));
	diag_free(d);
}

/* A reload that keeps the key keeps the verifier: a message seen before
 * is still a replay after the window changes, and another key is told
 * apart. */
static void test_replays_survive_window_change(void **state)
{
	struct auth *a = auth_new(key, sizeof(key) - 1, 30, 8);
	const char *payload;
	size_t len;
	char *msg[8];

	(void)state;
	assert_non_null(a);
	assert_true(auth_same_key(a, key, sizeof(key) - 1));
	assert_false(auth_same_key(a, other, sizeof(other) - 1));
	assert_false(auth_same_key(a, key, sizeof(key) - 2));
	for (int i = 0; i < 8; i++) {
		assert_int_equal(auth_sign(key, sizeof(key) - 1, 1000, "x",
					   &msg[i]), 0);
		assert_int_equal(auth_verify(a, msg[i], strlen(msg[i]), 1000,
					     &payload, &len), AUTH_OK);
	}
	/* Grown, shrunk below what it holds, the same: every nonce kept. */
	assert_int_equal(auth_set_window(a, 60, 60000), 0);
	assert_int_equal(auth_set_window(a, 10, 2), 0);
	assert_int_equal(auth_set_window(a, 10, 2), 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(auth_verify(a, msg[i], strlen(msg[i]), 1001,
					     &payload, &len), AUTH_REPLAY);
		free(msg[i]);
	}
	auth_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_bounded_replay_table),
		cmocka_unit_test(test_key_files),
		cmocka_unit_test(test_replays_survive_window_change),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
