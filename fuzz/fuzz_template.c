/* libFuzzer harness: template compilation and instantiation.  The input
 * is a rules array; whatever compiles is instantiated with values that
 * could break text substitution, and must serialise to JSON that parses
 * back to the same tree. */
#include <stdint.h>
#include <stdlib.h>

#include "template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct template_values v = {
		.source_address = "\"},{\"flush\":{\"ruleset\":null}},{\"x\":\"",
		.destination_port = 3,
		.redirected_port = 65535,
		.protocol = "tcp{{PROTOCOL}}",
	};
	json_t *rules = json_loadb((const char *)data, size,
				   JSON_REJECT_DUPLICATES, NULL);
	struct diag *d = diag_new();
	struct template *t;

	if (rules == NULL)
		goto out;
	t = template_compile(rules, "fuzz.json", "rules", d);
	if (t) {
		json_t *out = json_array();
		char *text;

		template_instantiate(t, &v, out);
		text = json_dumps(out, JSON_COMPACT);
		if (text) {
			json_t *back = json_loads(text, 0, NULL);

			/* Substitution cannot change the structure. */
			if (back == NULL || !json_equal(back, out) ||
			    json_array_size(out) != template_rule_count(t))
				abort();
			json_decref(back);
			free(text);
		}
		json_decref(out);
		template_free(t);
	}
out:
	json_decref(rules);
	diag_free(d);
	return 0;
}
