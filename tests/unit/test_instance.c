/* One porthopd per table and network namespace: the claims, and how
 * native and template mode exclude each other. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "instance.h"
#include "support.h"

static char dir[] = "/tmp/porthop-test-claims.XXXXXX";

static struct instance *claim(const char *path, const char *refusal)
{
	struct config *c = support_load(path);
	char *err = NULL;
	struct instance *i = instance_claim(dir, c, &err);

	if (refusal) {
		assert_null(i);
		assert_int_equal(errno, EWOULDBLOCK);
		assert_non_null(err);
		if (strstr(err, refusal) == NULL)
			fail_msg("\"%s\" does not say \"%s\"", err, refusal);
	} else {
		assert_non_null(i);
		assert_true(instance_same(i, c));
	}
	free(err);
	config_free(c);
	return i;
}

static void test_claims(void **state)
{
	/* native_full.json: table mtd_ports; native_udp_only.json: the
	 * default table porthop; reference.json: template mode. */
	struct instance *a, *b, *t;

	(void)state;
	a = claim("valid/native_full.json", NULL);
	claim("valid/native_full.json", "another porthopd serves table inet "
	      "mtd_ports");
	b = claim("valid/native_udp_only.json", NULL);
	claim("valid/reference.json", "a porthopd in native mode serves a "
	      "table");
	instance_free(a);
	claim("valid/reference.json", "a porthopd in native mode");
	instance_free(b);
	t = claim("valid/reference.json", NULL);
	claim("valid/reference.json", "template mode");
	claim("valid/native_full.json", "a porthopd in template mode");
	instance_free(t);
	a = claim("valid/native_full.json", NULL);
	instance_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_claims),
	};
	int r;

	if (chdir(CORPUS_DIR) < 0 || mkdtemp(dir) == NULL)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	/* Nothing is left behind: every claim was let go. */
	if (rmdir(dir) < 0)
		r = 1;
	return r;
}
