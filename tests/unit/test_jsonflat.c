/* jsonflat: flat objects read by the fast reader (escapes, integers at
 * their limits, whitespace), and everything it is not sure of decided by
 * jansson: UTF-8 and \u escapes past ASCII, other value types, repeated
 * keys, malformed text, too many members, a scratch too small. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "jsonflat.h"

static char scratch[4096];

/* s read with jsonflat_load into *f: its result. */
static int load(const char *s, struct jsonflat *f)
{
	*f = (struct jsonflat){ .scratch = scratch, .cap = sizeof(scratch) };
	return jsonflat_load(s, strlen(s), f);
}

static const char *str(const struct jsonflat *f, const char *key)
{
	const struct jsonflat_member *m = jsonflat_get(f, key);

	assert_non_null(m);
	assert_int_equal(m->type, JSONFLAT_STRING);
	assert_int_equal(strlen(m->str), m->len);
	return m->str;
}

static long long integer(const struct jsonflat *f, const char *key)
{
	const struct jsonflat_member *m = jsonflat_get(f, key);

	assert_non_null(m);
	assert_int_equal(m->type, JSONFLAT_INTEGER);
	return m->integer;
}

static void test_fast(void **state)
{
	struct jsonflat f;

	(void)state;
	assert_int_equal(load(" {\"op\": \"watch\",\"address\":\"10.0.0.1\",\n"
			      "\t\"expires\":0, \"ts\" : -17}\r\n", &f), 0);
	assert_false(f.slow);
	assert_int_equal(f.n, 4);
	assert_string_equal(str(&f, "op"), "watch");
	assert_string_equal(str(&f, "address"), "10.0.0.1");
	assert_int_equal(integer(&f, "expires"), 0);
	assert_int_equal(integer(&f, "ts"), -17);
	assert_null(jsonflat_get(&f, "origin"));
	assert_int_equal(load("{}", &f), 0);
	assert_false(f.slow);
	assert_int_equal(f.n, 0);
}

/* A signed envelope's payload is JSON in a string: every escape. */
static void test_escapes(void **state)
{
	struct jsonflat f;

	(void)state;
	assert_int_equal(load("{\"p\": \"{\\\"a\\\":\\\"\\\\\\/\\b\\f\\n\\r\\t"
			      "\\u0041\\u007e\\u007F\\\"}\", \"\": \"\"}", &f), 0);
	assert_false(f.slow);
	assert_string_equal(str(&f, "p"), "{\"a\":\"\\/\b\f\n\r\tA~\x7f\"}");
	assert_string_equal(str(&f, ""), "");
}

/* Past ASCII: jansson's reading, the same values. */
static void test_unicode_slow(void **state)
{
	struct jsonflat f;

	(void)state;
	assert_int_equal(load("{\"a\": \"\\u00e9\", \"b\": \"\xc3\xa9\", "
			      "\"c\": \"\\ud83d\\ude00\"}", &f), 0);
	assert_true(f.slow);
	assert_string_equal(str(&f, "a"), "\xc3\xa9");
	assert_string_equal(str(&f, "b"), "\xc3\xa9");
	assert_string_equal(str(&f, "c"), "\xf0\x9f\x98\x80");
	/* Invalid UTF-8, a lone surrogate, NUL: jansson refuses them. */
	assert_int_equal(load("{\"a\": \"\xc3\"}", &f), -EINVAL);
	assert_int_equal(load("{\"a\": \"\\ud83d\"}", &f), -EINVAL);
	assert_int_equal(load("{\"a\": \"\\u0000\"}", &f), -EINVAL);
	assert_int_equal(load("{\"a\": \"tab\there\"}", &f), -EINVAL);
}

static void test_integers(void **state)
{
	struct jsonflat f;

	(void)state;
	assert_int_equal(load("{\"a\": 9223372036854775807, "
			      "\"b\": -9223372036854775808, \"c\": -0}", &f), 0);
	assert_false(f.slow);
	assert_true(integer(&f, "a") == LLONG_MAX);
	assert_true(integer(&f, "b") == LLONG_MIN);
	assert_int_equal(integer(&f, "c"), 0);
	assert_int_equal(load("{\"a\": 9223372036854775808}", &f), -EINVAL);
	assert_int_equal(load("{\"a\": -9223372036854775809}", &f), -EINVAL);
	assert_int_equal(load("{\"a\": 01}", &f), -EINVAL);
	assert_int_equal(load("{\"a\": -}", &f), -EINVAL);
	assert_int_equal(load("{\"a\": 1x}", &f), -EINVAL);
}

/* Other values: jansson's, kept as OTHER. */
static void test_other_types(void **state)
{
	struct jsonflat f;

	(void)state;
	assert_int_equal(load("{\"a\": 1.5, \"b\": true, \"c\": null, "
			      "\"d\": {\"x\": 1}, \"e\": [1], \"f\": 1e3, "
			      "\"g\": 7}", &f), 0);
	assert_true(f.slow);
	assert_int_equal(f.n, 7);
	for (const char *k = "abcdef"; *k; k++) {
		char key[2] = { *k, '\0' };

		assert_int_equal(jsonflat_get(&f, key)->type, JSONFLAT_OTHER);
	}
	assert_int_equal(integer(&f, "g"), 7);
}

static void test_refused(void **state)
{
	static const char *const bad[] = {
		"", " ", "[]", "\"s\"", "1", "{", "{\"a\"}", "{\"a\":}",
		"{\"a\": 1,}", "{\"a\": 1} x", "{\"a\": 1}{}", "{a: 1}",
		"{\"a\": 1, \"a\": 2}", "{\"a\": \"x\", \"a\": \"x\"}",
		"{\"a\": \"\\x\"}", "{\"a\": \"\\u12\"}", "{'a': 1}",
	};
	struct jsonflat f;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (load(bad[i], &f) != -EINVAL)
			print_message("  accepted: %s\n", bad[i]);
		assert_int_equal(load(bad[i], &f), -EINVAL);
	}
	/* A NUL byte inside the text. */
	f = (struct jsonflat){ .scratch = scratch, .cap = sizeof(scratch) };
	assert_int_equal(jsonflat_load("{\"a\": 1}\0", 9, &f), -EINVAL);
}

static void test_limits(void **state)
{
	char text[512], small[8];
	struct jsonflat f;
	size_t len = 0;

	(void)state;
	len += (size_t)snprintf(text + len, sizeof(text) - len, "{");
	for (int i = 0; i < JSONFLAT_MEMBERS_MAX; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
					"%s\"k%d\": %d", i ? ", " : "", i, i);
	snprintf(text + len, sizeof(text) - len, "}");
	assert_int_equal(load(text, &f), 0);
	assert_int_equal(f.n, JSONFLAT_MEMBERS_MAX);
	snprintf(text + len, sizeof(text) - len, ", \"more\": 1}");
	assert_int_equal(load(text, &f), -E2BIG);
	/* The scratch must hold the text and the NULs. */
	f = (struct jsonflat){ .scratch = small, .cap = sizeof(small) };
	assert_int_equal(jsonflat_load("{}", 2, &f), -ENOBUFS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fast),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_unicode_slow),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_other_types),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
