/* The batch builder against golden files, and its structure. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "diag.h"
#include "ruleset.h"

static struct config *load(const char *name)
{
	struct diag *d = diag_new();
	struct config *c = config_load(name, 0, d);

	assert_non_null(c);
	diag_free(d);
	return c;
}

/* The reference example with a fixed mapping 3->6, 4->7, 5->8. */
static json_t *reference_batch(struct config **ret_c)
{
	struct config *c = load("valid/reference.json");
	struct shuffle_map *m = shuffle_map_alloc(c);
	json_t *batch = NULL;

	assert_non_null(m);
	assert_int_equal(m->nentries, 1);
	assert_int_equal(m->entries[0].npairs, 3);
	for (size_t k = 0; k < 3; k++)
		m->entries[0].pairs[k].redirect = (uint16_t)(6 + k);
	assert_int_equal(ruleset_build(c, m, &batch), 0);
	shuffle_map_free(m);
	*ret_c = c;
	return batch;
}

static void test_golden_reference_batch(void **state)
{
	struct config *c;
	json_t *batch = reference_batch(&c), *golden;
	json_error_t e;

	(void)state;
	golden = json_load_file(GOLDEN_DIR "/reference_batch.json", 0, &e);
	if (golden == NULL)
		print_message("  %s:%d: %s\n", e.source, e.line, e.text);
	assert_non_null(golden);
	if (!json_equal(batch, golden)) {
		char *s = json_dumps(batch, JSON_INDENT(1));
		print_message("  built:\n%s\n", s);
		free(s);
	}
	assert_true(json_equal(batch, golden));
	json_decref(golden);
	json_decref(batch);
	config_free(c);
}

static void test_structure(void **state)
{
	struct config *c;
	json_t *batch = reference_batch(&c);
	json_t *cmds = ruleset_commands(batch);
	size_t redirects = 0;

	(void)state;
	/* Six startup commands, then nine rules for each of three pairs. */
	assert_int_equal(json_array_size(cmds), 6 + 3 * 9);
	assert_non_null(json_object_get(json_array_get(cmds, 0), "flush"));
	for (size_t i = 6; i < json_array_size(cmds); i++) {
		json_t *rule = json_object_get(json_object_get(
			json_array_get(cmds, i), "add"), "rule");
		json_t *expr = json_object_get(rule, "expr");
		json_t *last = json_array_get(expr, json_array_size(expr) - 1);
		json_t *saddr = json_object_get(json_object_get(
			json_array_get(expr, 0), "match"), "right");

		assert_non_null(rule);
		if (json_object_get(last, "redirect")) {
			json_int_t to = json_integer_value(json_object_get(
				json_object_get(last, "redirect"), "port"));

			assert_true(to >= 3 && to <= 8);
			redirects++;
		}
		if (strcmp(json_string_value(json_object_get(rule, "chain")),
			   "output") != 0)
			assert_string_equal(json_string_value(saddr), "10.0.0.3");
	}
	assert_int_equal(redirects, 6);
	json_decref(batch);
	config_free(c);
}

static void test_empty_map_is_startup_only(void **state)
{
	struct config *c = load("valid/no_watched.json");
	struct shuffle_map *m = shuffle_map_alloc(c);
	json_t *batch = NULL;

	(void)state;
	assert_int_equal(ruleset_build(c, m, &batch), 0);
	assert_true(json_equal(ruleset_commands(batch),
			       config_startup_commands(c)));
	json_decref(batch);
	shuffle_map_free(m);
	config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_reference_batch),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_empty_map_is_startup_only),
	};
	if (chdir(CORPUS_DIR) < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
