/* Token substitution on the parsed tree, hostile values included. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "diag.h"
#include "template.h"

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, 0, &e);

	assert_non_null(v);
	return v;
}

static json_t *instantiate(const char *rules_text,
			   const struct template_values *v)
{
	struct diag *d = diag_new();
	json_t *rules = parse(rules_text), *out = json_array();
	struct template *t = template_compile(rules, "t.json", "rules", d);

	assert_non_null(t);
	assert_int_equal(template_instantiate(t, v, out), 0);
	template_free(t);
	json_decref(rules);
	diag_free(d);
	return out;
}

static const struct template_values vals = {
	.source_address = "10.0.0.3",
	.destination_port = 3,
	.redirected_port = 17,
	.protocol = "tcp",
};

static void test_whole_tokens_become_numbers(void **state)
{
	json_t *out, *want;

	(void)state;
	out = instantiate("[{\"r\": {\"a\": \"{{SOURCE_ADDRESS}}\", "
			  "\"d\": \"{{DESTINATION_PORT}}\", "
			  "\"x\": \"{{REDIRECTED_PORT}}\", "
			  "\"p\": \"{{PROTOCOL}}\", \"k\": [1, null, true]}}]",
			  &vals);
	want = parse("[{\"r\": {\"a\": \"10.0.0.3\", \"d\": 3, \"x\": 17, "
		     "\"p\": \"tcp\", \"k\": [1, null, true]}}]");
	assert_true(json_equal(out, want));
	assert_true(json_is_integer(json_object_get(
		json_object_get(json_array_get(out, 0), "r"), "d")));
	json_decref(out);
	json_decref(want);
}

static void test_embedded_tokens_stay_strings(void **state)
{
	json_t *out, *want;

	(void)state;
	out = instantiate("[{\"c\": \"from {{SOURCE_ADDRESS}} port "
			  "{{DESTINATION_PORT}}->{{REDIRECTED_PORT}}/{{PROTOCOL}}"
			  "{{PROTOCOL}}\"}]", &vals);
	want = parse("[{\"c\": \"from 10.0.0.3 port 3->17/tcptcp\"}]");
	assert_true(json_equal(out, want));
	json_decref(out);
	json_decref(want);
}

static void test_hostile_values_cannot_change_structure(void **state)
{
	struct template_values evil = vals;
	json_t *out, *s;
	char *text;

	(void)state;
	evil.source_address = "\"}, {\"flush\": {\"ruleset\": null}}, {\"x\": \"";
	evil.protocol = "tcp\\\" ] } {{PROTOCOL}}";
	out = instantiate("[{\"a\": \"{{SOURCE_ADDRESS}}\", "
			  "\"b\": \"x{{SOURCE_ADDRESS}}y\", "
			  "\"p\": \"{{PROTOCOL}}-\"}]", &vals);
	json_decref(out);
	out = instantiate("[{\"a\": \"{{SOURCE_ADDRESS}}\", "
			  "\"b\": \"x{{SOURCE_ADDRESS}}y\", "
			  "\"p\": \"{{PROTOCOL}}-\"}]", &evil);
	/* Still one command with the same three keys, each a string. */
	assert_int_equal(json_array_size(out), 1);
	assert_int_equal(json_object_size(json_array_get(out, 0)), 3);
	s = json_object_get(json_array_get(out, 0), "a");
	assert_string_equal(json_string_value(s), evil.source_address);
	s = json_object_get(json_array_get(out, 0), "b");
	assert_true(strncmp(json_string_value(s), "x\"}, {", 6) == 0);
	/* A token inside a value is not expanded again. */
	s = json_object_get(json_array_get(out, 0), "p");
	assert_string_equal(json_string_value(s),
			    "tcp\\\" ] } {{PROTOCOL}}-");
	/* And the serialised batch parses back to the same tree. */
	text = json_dumps(out, 0);
	json_t *back = parse(text);
	assert_true(json_equal(out, back));
	json_decref(back);
	free(text);
	json_decref(out);
}

static void test_constant_subtrees_are_shared(void **state)
{
	struct diag *d = diag_new();
	json_t *rules = parse("[{\"add\": {\"big\": {\"x\": [1, 2, 3]}, "
			      "\"a\": \"{{SOURCE_ADDRESS}}\"}}]");
	json_t *out = json_array();
	struct template *t = template_compile(rules, "t.json", "rules", d);
	json_t *orig = json_object_get(json_object_get(json_array_get(rules, 0),
						       "add"), "big");

	(void)state;
	assert_non_null(t);
	assert_int_equal(template_rule_count(t), 1);
	assert_int_equal(template_instantiate(t, &vals, out), 0);
	assert_int_equal(template_instantiate(t, &vals, out), 0);
	assert_ptr_equal(json_object_get(json_object_get(json_array_get(out, 1),
							 "add"), "big"), orig);
	template_free(t);
	json_decref(out);
	json_decref(rules);
	diag_free(d);
}

static void expect_compile_error(const char *text, const char *needle)
{
	struct diag *d = diag_new();
	json_t *rules = parse(text);
	struct template *t = template_compile(rules, "t.json", "rules", d);
	bool found = false;

	assert_null(t);
	for (size_t i = 0; i < diag_count(d); i++) {
		if (strstr(diag_message(d, i, NULL), needle))
			found = true;
		else
			print_message("  diag: %s\n", diag_message(d, i, NULL));
	}
	if (!found)
		print_message("  expected: %s\n", needle);
	assert_true(found);
	json_decref(rules);
	diag_free(d);
}

static void test_errors_name_the_path(void **state)
{
	(void)state;
	expect_compile_error("[{\"a\": [0, {\"b\": \"{{SOURCE}}\"}]}]",
			     "t.json: rules[0].a[1].b: unknown token {{SOURCE}}");
	expect_compile_error("[{\"a\": \"{{PROTOCOL\"}]",
			     "t.json: rules[0].a: string \"{{PROTOCOL\" has \"{{\" "
			     "without a closing \"}}\"");
	expect_compile_error("[{\"{{PROTOCOL}}\": 1}]",
			     "t.json: rules[0]: token in the key \"{{PROTOCOL}}\"");
	expect_compile_error("[3]", "t.json: rules[0]: is an integer; expected an "
			     "nftables command object");
	expect_compile_error("[]", "t.json: rules: is empty");
	expect_compile_error("{}", "t.json: rules: is an object; expected an array");
}

static void test_warnings_for_useless_templates(void **state)
{
	struct diag *d = diag_new();
	json_t *rules = parse("[{\"add\": {\"table\": {\"name\": \"x\"}}}]");
	struct template *t = template_compile(rules, "t.json", "rules", d);

	(void)state;
	assert_non_null(t);
	assert_int_equal(diag_errors(d), 0);
	assert_int_equal(diag_count(d), 2);
	template_free(t);
	json_decref(rules);
	diag_free(d);
}

static void test_forbid_tokens(void **state)
{
	struct diag *d = diag_new();
	json_t *v = parse("{\"a\": [\"ok\", \"{{PROTOCOL}}\"], \"b\": \"x{{Y}}\"}");

	(void)state;
	assert_int_equal(template_forbid_tokens(v, "s.json", "commands", d), 2);
	assert_non_null(strstr(diag_message(d, 0, NULL),
			       "s.json: commands.a[1]: \"{{PROTOCOL}}\" holds a "
			       "template token"));
	json_decref(v);
	diag_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole_tokens_become_numbers),
		cmocka_unit_test(test_embedded_tokens_stay_strings),
		cmocka_unit_test(test_hostile_values_cannot_change_structure),
		cmocka_unit_test(test_constant_subtrees_are_shared),
		cmocka_unit_test(test_errors_name_the_path),
		cmocka_unit_test(test_warnings_for_useless_templates),
		cmocka_unit_test(test_forbid_tokens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
