/* Diagnostics: counting, moving, paths and safe rendering of values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "diag.h"

static void test_counts_and_move(void **state)
{
	struct diag *a = diag_new(), *b = diag_new();
	bool is_error;

	(void)state;
	diag_warning(a, "w %d", 1);
	diag_error(a, "e %d", 2);
	diag_error(b, "e %d", 3);
	assert_int_equal(diag_errors(a), 1);
	assert_int_equal(diag_count(a), 2);
	assert_string_equal(diag_first_error(a), "e 2");
	diag_move(a, b);
	assert_int_equal(diag_errors(a), 2);
	assert_int_equal(diag_count(a), 3);
	assert_int_equal(diag_count(b), 0);
	assert_int_equal(diag_errors(b), 0);
	assert_string_equal(diag_message(a, 2, &is_error), "e 3");
	assert_true(is_error);
	assert_null(diag_message(a, 3, NULL));
	diag_clear(a);
	assert_int_equal(diag_errors(a), 0);
	assert_null(diag_first_error(a));
	diag_free(a);
	diag_free(b);
	diag_free(NULL);
}

static void test_paths(void **state)
{
	char buf[DIAG_PATH_MAX], small[12];

	(void)state;
	assert_string_equal(diag_path_key(buf, sizeof(buf), "", "a"), "a");
	assert_string_equal(diag_path_key(buf, sizeof(buf), "a", "b"), "a.b");
	assert_string_equal(diag_path_index(buf, sizeof(buf), "a.b", 7), "a.b[7]");
	diag_path_key(small, sizeof(small), "abcdefgh", "ijklmnop");
	assert_string_equal(small, "abcdefgh...");
}

static void test_values_cannot_forge_lines(void **state)
{
	char buf[DIAG_VALUE_MAX + 8];
	json_t *v = json_string("x\nporthopd: shuffle applied\r\x1b[2J");
	char *longs = calloc(1, 500);

	(void)state;
	diag_value(buf, sizeof(buf), v);
	assert_null(strchr(buf, '\n'));
	assert_null(strchr(buf, '\r'));
	assert_null(strchr(buf, '\x1b'));
	assert_non_null(strstr(buf, "\\n"));
	memset(longs, 'a', 499);
	diag_string(buf, sizeof(buf), longs);
	assert_int_equal(strlen(buf), DIAG_VALUE_MAX);
	assert_string_equal(buf + DIAG_VALUE_MAX - 3, "...");
	assert_string_equal(diag_type_name(v), "a string");
	json_decref(v);
	free(longs);
}

/* Names and text from outside never break a log line. */
static void test_outside_text(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(diag_name(buf, sizeof(buf), "fw"), "fw");
	assert_string_equal(diag_name(buf, sizeof(buf), "INPUT"), "INPUT");
	assert_string_equal(diag_name(buf, sizeof(buf), "x\nporthopd: forged"),
			    "\"x\\nporthopd: forged\"");
	assert_string_equal(diag_name(buf, sizeof(buf), ""), "\"\"");
	assert_string_equal(diag_line(buf, sizeof(buf), "Connection refused"),
			    "Connection refused");
	assert_string_equal(diag_line(buf, sizeof(buf), "a\r\nb\\c"),
			    "a\\x0d\\x0ab\\\\c");
	/* Cut, never past the buffer, never half an escape. */
	assert_string_equal(diag_line(buf, 8, "\n\n\n"), "\\x0a");
	assert_true(strlen(diag_line(buf, sizeof(buf),
		"0123456789012345678901234567890123456789012345678901234567890123456789"))
		< sizeof(buf));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_and_move),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_values_cannot_forge_lines),
		cmocka_unit_test(test_outside_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
