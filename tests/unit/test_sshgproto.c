/* sshguard's backend protocol: every line sshg-blocker writes, the
 * networks they stand for, what is refused and why, the requests sent to
 * porthopd and the verdicts on its replies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "sshgproto.h"

struct good_case {
	const char *line;
	enum sshgproto_kind kind;
	const char *net;	/* block and release */
};

/* What sshguard 2.4.2 writes, and the networks they name: host bits
 * cleared, full lengths written as a plain address. */
static const struct good_case good[] = {
	{ "flushonexit\n", SSHGPROTO_FLUSHONEXIT, "" },
	{ "flush\n", SSHGPROTO_FLUSH, "" },
	{ "flush", SSHGPROTO_FLUSH, "" },
	{ "block 192.0.2.7 4 32\n", SSHGPROTO_BLOCK, "192.0.2.7" },
	{ "release 192.0.2.7 4 32\n", SSHGPROTO_RELEASE, "192.0.2.7" },
	{ "block 192.0.2.7 4 24\n", SSHGPROTO_BLOCK, "192.0.2.0/24" },
	{ "block 192.0.2.255 4 25\n", SSHGPROTO_BLOCK, "192.0.2.128/25" },
	{ "block 198.51.100.77 4 20\n", SSHGPROTO_BLOCK, "198.51.96.0/20" },
	{ "block 10.1.2.3 4 0\n", SSHGPROTO_BLOCK, "0.0.0.0/0" },
	{ "block 10.1.2.3 4 1\n", SSHGPROTO_BLOCK, "0.0.0.0/1" },
	{ "block 2001:db8::5 6 128\n", SSHGPROTO_BLOCK, "2001:db8::5" },
	{ "block 2001:DB8:0:0:0:0:0:5 6 128\n", SSHGPROTO_BLOCK,
	  "2001:db8::5" },
	{ "release 2001:db8:aa:bb:cc:dd:ee:ff 6 64\n", SSHGPROTO_RELEASE,
	  "2001:db8:aa:bb::/64" },
	{ "block 2001:db8:aa:bb:cc:dd:ee:ff 6 61\n", SSHGPROTO_BLOCK,
	  "2001:db8:aa:b8::/61" },
	{ "block ::ffff:192.0.2.7 6 128\n", SSHGPROTO_BLOCK,
	  "::ffff:192.0.2.7" },
	/* Older blockers wrote no prefix length: the address alone. */
	{ "block 192.0.2.7 4\n", SSHGPROTO_BLOCK, "192.0.2.7" },
	{ "release 2001:db8::5 6\n", SSHGPROTO_RELEASE, "2001:db8::5" },
	/* Spaces and tabs anywhere between words. */
	{ "  block\t192.0.2.7  4\t32  \n", SSHGPROTO_BLOCK, "192.0.2.7" },
	{ "block 192.0.2.7 4 032\n", SSHGPROTO_BLOCK, "192.0.2.7" },
};

static void test_good_lines(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct sshgproto_cmd cmd;
		const char *why = NULL;

		if (sshgproto_parse(good[i].line, &cmd, &why) != 0)
			fail_msg("\"%s\" refused: %s", good[i].line, why);
		assert_int_equal(cmd.kind, good[i].kind);
		if (cmd.kind == SSHGPROTO_BLOCK || cmd.kind == SSHGPROTO_RELEASE)
			assert_string_equal(cmd.net, good[i].net);
	}
}

struct bad_case {
	const char *line;
	const char *why;
};

static const struct bad_case bad[] = {
	{ "", "empty line" },
	{ "\n", "empty line" },
	{ " \t \n", "empty line" },
	{ "blok 192.0.2.7 4 32\n", "unknown command" },
	{ "BLOCK 192.0.2.7 4 32\n", "unknown command" },
	{ "flushall\n", "unknown command" },
	{ "flush now\n", "takes no arguments" },
	{ "flushonexit 1\n", "takes no arguments" },
	{ "block\n", "needs ADDRESS TYPE [CIDR]" },
	{ "block 192.0.2.7\n", "needs ADDRESS TYPE [CIDR]" },
	{ "block 192.0.2.7 4 32 extra\n", "too many words" },
	{ "block 192.0.2.7 5 32\n", "address type is not 4 or 6" },
	{ "block 192.0.2.7 44 32\n", "address type is not 4 or 6" },
	{ "block 192.0.2.7 6 32\n", "not an IPv6 address" },
	{ "block 2001:db8::5 4 32\n", "not an IPv4 address" },
	{ "block 192.0.2.256 4 32\n", "not an IPv4 address" },
	{ "block example.org 4 32\n", "not an IPv4 address" },
	{ "block 192.0.2.7/32 4 32\n", "not an IPv4 address" },
	{ "block 192.0.2.7 4 33\n", "prefix length is not 0 to 32" },
	{ "block 192.0.2.7 4 -1\n", "prefix length is not 0 to 32" },
	{ "block 192.0.2.7 4 +8\n", "prefix length is not 0 to 32" },
	{ "block 192.0.2.7 4 0032\n", "prefix length is not 0 to 32" },
	{ "block 192.0.2.7 4 \"\n", "prefix length is not 0 to 32" },
	{ "block 2001:db8::5 6 129\n", "prefix length is not 0 to 128" },
	{ "block 2001:db8::5 6 1e2\n", "prefix length is not 0 to 128" },
};

static void test_bad_lines(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sshgproto_cmd cmd = { .kind = SSHGPROTO_FLUSH,
					     .net = "untouched" };
		const char *why = NULL;

		if (sshgproto_parse(bad[i].line, &cmd, &why) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i].line);
		assert_non_null(why);
		assert_string_equal(why, bad[i].why);
		/* A refused line leaves the command alone. */
		assert_int_equal(cmd.kind, SSHGPROTO_FLUSH);
		assert_string_equal(cmd.net, "untouched");
	}
}

/* Lines past the protocol's longest are refused whatever they hold. */
static void test_long_line(void **state)
{
	char line[SSHGPROTO_LINE_MAX + 8];
	struct sshgproto_cmd cmd;
	const char *why = NULL;

	(void)state;
	memset(line, ' ', sizeof(line));
	memcpy(line, "flush", 5);
	line[sizeof(line) - 1] = '\0';
	assert_int_equal(sshgproto_parse(line, &cmd, &why), -EINVAL);
	assert_string_equal(why, "line too long");
	/* Just inside the limit, trailing spaces are only spaces. */
	line[SSHGPROTO_LINE_MAX - 1] = '\0';
	assert_int_equal(sshgproto_parse(line, &cmd, &why), 0);
	assert_int_equal(cmd.kind, SSHGPROTO_FLUSH);
}

/* The request of a line, compared as JSON. */
static void assert_request(const char *line, const char *origin,
			   const char *expected)
{
	struct sshgproto_cmd cmd;
	const char *why;
	json_t *req, *want;

	assert_int_equal(sshgproto_parse(line, &cmd, &why), 0);
	req = sshgproto_request(&cmd, origin);
	want = json_loads(expected, 0, NULL);
	assert_non_null(req);
	assert_non_null(want);
	if (!json_equal(req, want)) {
		char *got = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);

		fail_msg("%s: got %s, expected %s", line, got, expected);
	}
	json_decref(req);
	json_decref(want);
}

static void test_requests(void **state)
{
	struct sshgproto_cmd cmd;
	const char *why;

	(void)state;
	/* A block is watched without a TTL: sshguard releases it. */
	assert_request("block 192.0.2.7 4 32", "sshguard",
		       "{\"command\":\"watch_add\",\"origin\":\"sshguard\","
		       "\"entries\":[{\"address\":\"192.0.2.7\"}]}");
	assert_request("block 2001:db8::77 6 64", "sshguard",
		       "{\"command\":\"watch_add\",\"origin\":\"sshguard\","
		       "\"entries\":[{\"address\":\"2001:db8::/64\"}]}");
	assert_request("release 192.0.2.9 4 24", "ssh-b",
		       "{\"command\":\"watch_del\",\"origin\":\"ssh-b\","
		       "\"entries\":[{\"address\":\"192.0.2.0/24\"}]}");
	assert_request("flush", "sshguard",
		       "{\"command\":\"watch_flush\",\"origin\":\"sshguard\"}");
	assert_int_equal(sshgproto_parse("flushonexit", &cmd, &why), 0);
	assert_null(sshgproto_request(&cmd, "sshguard"));
}

/* The verdict on one (command, result, reply). */
static enum sshgproto_verdict verdict(const char *line, int r,
				      const char *reply_text)
{
	struct sshgproto_cmd cmd;
	const char *why;
	json_t *reply = reply_text ? json_loads(reply_text, 0, NULL) : NULL;
	enum sshgproto_verdict v;

	assert_int_equal(sshgproto_parse(line, &cmd, &why), 0);
	assert_true(reply_text == NULL || reply != NULL);
	v = sshgproto_verdict(&cmd, r, reply);
	json_decref(reply);
	return v;
}

#define NOT_WATCHED "{\"ok\":false,\"code\":\"not_watched\",\"error\":\"x\"}"

static void test_verdicts(void **state)
{
	(void)state;
	assert_int_equal(verdict("block 192.0.2.7 4 32", 0,
				 "{\"ok\":true,\"added\":1}"), SSHGPROTO_DONE);
	assert_int_equal(verdict("release 192.0.2.7 4 32", 0,
				 "{\"ok\":true,\"deleted\":1}"),
			 SSHGPROTO_DONE);
	/* Nothing left to release or flush: done, not a failure. */
	assert_int_equal(verdict("release 192.0.2.7 4 32", 0, NOT_WATCHED),
			 SSHGPROTO_DONE);
	assert_int_equal(verdict("flush", 0, NOT_WATCHED), SSHGPROTO_DONE);
	/* A block answered so is a refusal (an older porthopd's?). */
	assert_int_equal(verdict("block 192.0.2.7 4 32", 0, NOT_WATCHED),
			 SSHGPROTO_FAILED);
	/* Refusals that a retry would not change. */
	assert_int_equal(verdict("block 192.0.2.7 4 8", 0,
				 "{\"ok\":false,\"code\":\"invalid\","
				 "\"error\":\"shorter than /16\"}"),
			 SSHGPROTO_FAILED);
	assert_int_equal(verdict("block 192.0.2.7 4 32", 0,
				 "{\"ok\":false,\"code\":\"config\"}"),
			 SSHGPROTO_FAILED);
	assert_int_equal(verdict("block 192.0.2.7 4 32", 0,
				 "{\"ok\":false}"), SSHGPROTO_FAILED);
	assert_int_equal(verdict("block 192.0.2.7 4 32", 0, "[]"),
			 SSHGPROTO_FAILED);
	assert_int_equal(verdict("block 192.0.2.7 4 32", -EACCES, NULL),
			 SSHGPROTO_FAILED);
	assert_int_equal(verdict("block 192.0.2.7 4 32", -EPROTO, NULL),
			 SSHGPROTO_FAILED);
	/* porthopd away for a moment (restarting), or busy. */
	assert_int_equal(verdict("block 192.0.2.7 4 32", 0,
				 "{\"ok\":false,\"code\":\"busy\"}"),
			 SSHGPROTO_RETRY);
	assert_int_equal(verdict("block 192.0.2.7 4 32", -ENOENT, NULL),
			 SSHGPROTO_RETRY);
	assert_int_equal(verdict("release 192.0.2.7 4 32", -ECONNREFUSED,
				 NULL), SSHGPROTO_RETRY);
	assert_int_equal(verdict("flush", -ETIMEDOUT, NULL), SSHGPROTO_RETRY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_lines),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_verdicts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
