/* Feed files: what a feed may hold, and that every bad line is named by
 * its number while nothing of the feed is returned. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>

#include "watchfeed.h"

static const struct watchfeed_limits lim = {
	.min_len_v4 = 16, .min_len_v6 = 32, .max_ttl = 31536000,
	.max_lines = 1000000,
};

/* A sentinel: a failed parse must leave the outputs alone. */
static struct watchfeed_line sentinel;

/* Parses text expecting failure; the errors, one a line, in *ret. */
static char *errors_of(const char *text, size_t len,
		       const struct watchfeed_limits *l)
{
	struct diag *d = diag_new();
	struct watchfeed_line *v = &sentinel;
	size_t n = 12345, o = 0;
	char *out = calloc(1, 16384);

	assert_int_equal(watchfeed_parse(text, len, l, &v, &n, d), -EINVAL);
	assert_ptr_equal(v, &sentinel);
	assert_int_equal(n, 12345);
	for (size_t i = 0; i < diag_count(d); i++)
		o += (size_t)snprintf(out + o, 16384 - o, "%s\n",
				      diag_message(d, i, NULL));
	assert_int_equal(diag_errors(d), diag_count(d));
	diag_free(d);
	return out;
}

static void test_good_feed(void **state)
{
	static const char text[] =
		"# from the IDS, 2026-11-30\n"
		"192.0.2.7\n"
		"198.51.100.0/24 3600\n"
		"\n"
		"   # indented comment\r\n"
		"2001:db8::5 600\r\n"
		"\t192.0.2.8\t 60 \t\r\n"
		"   \t\n"
		"192.0.2.9/32";
	struct diag *d = diag_new();
	struct watchfeed_line *v = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(watchfeed_parse(text, strlen(text), &lim, &v, &n, d),
			 0);
	assert_int_equal(diag_count(d), 0);
	assert_int_equal(n, 5);
	assert_string_equal(v[0].net.text, "192.0.2.7");
	assert_int_equal(v[0].ttl, -1);
	assert_int_equal(v[0].line, 2);
	assert_string_equal(v[1].net.text, "198.51.100.0/24");
	assert_int_equal(v[1].ttl, 3600);
	assert_int_equal(v[1].line, 3);
	assert_string_equal(v[2].net.text, "2001:db8::5");
	assert_int_equal(v[2].ttl, 600);
	assert_int_equal(v[2].line, 6);
	assert_string_equal(v[3].net.text, "192.0.2.8");
	assert_int_equal(v[3].ttl, 60);
	assert_int_equal(v[3].line, 7);
	assert_int_equal(v[4].net.prefix_len, 32);
	assert_int_equal(v[4].line, 9);
	free(v);

	/* Nothing but comments: no entries, no error. */
	v = &sentinel;
	assert_int_equal(watchfeed_parse("# none\n\n", 8, &lim, &v, &n, d), 0);
	assert_int_equal(n, 0);
	assert_null(v);
	assert_int_equal(watchfeed_parse(NULL, 0, &lim, &v, &n, d), 0);
	assert_int_equal(n, 0);
	diag_free(d);
}

/* Each bad line, by number, with what was expected. */
static void test_errors_name_lines(void **state)
{
	static const char text[] =
		"192.0.2.1\n"				/* 1 */
		"10.0.0.300\n"				/* 2 */
		"192.0.2.2 abc\n"			/* 3 */
		"192.0.2.3 0\n"				/* 4 */
		"192.0.2.4 31536001\n"			/* 5 */
		"192.0.2.5 60 extra\n"			/* 6 */
		"10.0.0.0/8\n"				/* 7 */
		"10.1.2.0/16\n"				/* 8 */
		"224.0.0.5 60\n"			/* 9 */
		"192.0.2.1/32 5\n"			/* 10 */
		"host.example\n"			/* 11 */
		"192.0.2.6 # a note\n"			/* 12 */
		"192.0.2.7 99999999999999999999999\n";	/* 13 */
	char *e;

	(void)state;
	e = errors_of(text, strlen(text), &lim);
	assert_string_equal(e,
		"line 2: \"10.0.0.300\" is not an address or prefix; expected "
		"ADDR[/LEN] [TTL]\n"
		"line 3: TTL \"abc\" is not a number of seconds; expected 1 to "
		"31536000 seconds\n"
		"line 4: TTL \"0\" is out of range; expected 1 to 31536000 "
		"seconds\n"
		"line 5: TTL \"31536001\" is out of range; expected 1 to "
		"31536000 seconds\n"
		"line 6: unexpected \"extra\" after the TTL; expected "
		"ADDR[/LEN] [TTL]\n"
		"line 7: prefix 10.0.0.0/8 is wider than /16, the least porthop "
		"accepts (min_prefix_len_v4)\n"
		"line 8: \"10.1.2.0/16\" has bits set after the prefix length; "
		"expected the network address\n"
		"line 9: 224.0.0.5 lies in multicast (224.0.0.0/4); expected a "
		"unicast address or prefix\n"
		"line 10: 192.0.2.1/32 repeats line 1; expected each address or "
		"prefix once\n"
		"line 11: \"host.example\" is not an address or prefix; expected "
		"ADDR[/LEN] [TTL]\n"
		"and 2 more errors\n");
	free(e);
}

/* Bytes a text file should not hold, and lines too long. */
static void test_hostile_bytes(void **state)
{
	char text[600], *e;
	size_t len;

	(void)state;
	memcpy(text, "192.0.2.1\n192.0\0.2.2\n", 21);
	e = errors_of(text, 21, &lim);
	assert_string_equal(e, "line 2: holds a NUL byte; expected text\n");
	free(e);

	memset(text, ' ', sizeof(text));
	memcpy(text, "192.0.2.1", 9);
	text[257] = '\n';
	memcpy(text + 258, "192.0.2.2\n\x1b[2J\n", 15);
	len = 258 + 15;
	e = errors_of(text, len, &lim);
	assert_string_equal(e,
		"line 1: 257 bytes long; expected at most 256 bytes a line\n"
		"line 3: \"\\u001B[2J\" is not an address or prefix; expected "
		"ADDR[/LEN] [TTL]\n");
	free(e);

	/* 256 bytes (and a CR) are one line's worth. */
	{
		struct diag *d = diag_new();
		struct watchfeed_line *v = NULL;
		size_t n = 0;

		text[256] = '\r';
		assert_int_equal(watchfeed_parse(text, 258, &lim, &v, &n, d), 0);
		assert_int_equal(n, 1);
		free(v);
		diag_free(d);
	}
}

/* One bad line among many: nothing is returned, and only it is named. */
static void test_all_or_nothing(void **state)
{
	enum { N = 5000 };
	char *text = malloc(N * 24), *e;
	size_t o = 0;

	(void)state;
	for (int i = 0; i < N; i++)
		o += (size_t)sprintf(text + o, "10.%d.%d.%d 60\n", i / 65536,
				     (i / 256) % 256, i % 256);
	/* Line 4000 becomes "10.0.15.159 6x" */
	memcpy(strstr(text, "10.0.15.159 60") + 13, "x", 1);
	e = errors_of(text, o, &lim);
	assert_string_equal(e, "line 4000: TTL \"6x\" is not a number of "
			    "seconds; expected 1 to 31536000 seconds\n");
	free(e);
	free(text);
}

/* Errors stay in line order, even a repeat found after the others. */
static void test_error_cap_and_order(void **state)
{
	char text[2048], *e;
	size_t o = 0;
	struct watchfeed_limits small = lim;

	(void)state;
	o += (size_t)sprintf(text + o, "2001:db8::1\n2001:db8:0::1 5\n");
	for (int i = 0; i < 25; i++)
		o += (size_t)sprintf(text + o, "bad%d\n", i);
	e = errors_of(text, o, &lim);
	assert_non_null(strstr(e, "line 2: 2001:db8::1 repeats line 1; "));
	assert_true(strstr(e, "line 2:") < strstr(e, "line 3: \"bad0\""));
	assert_non_null(strstr(e, "line 11: \"bad8\""));
	assert_null(strstr(e, "line 12:"));
	assert_non_null(strstr(e, "\nand 16 more errors\n"));
	free(e);

	/* More entries than the limit: named at the first one too many. */
	small.max_lines = 3;
	e = errors_of("# x\n192.0.2.1\n192.0.2.2\n192.0.2.3\n192.0.2.4\n"
		      "192.0.2.5\n", 54, &small);
	assert_string_equal(e, "line 5: more than 3 entries; expected at most "
			    "3 in one feed\n");
	free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_feed),
		cmocka_unit_test(test_errors_name_lines),
		cmocka_unit_test(test_hostile_bytes),
		cmocka_unit_test(test_all_or_nothing),
		cmocka_unit_test(test_error_cap_and_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
