/* One porthopd per table and network namespace: the claims, and how
 * native and template mode exclude each other. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
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

static struct instance *reclaim(const char *path, struct instance *held,
				 bool ok)
{
	struct config *c = support_load(path);
	char *err = NULL;
	struct instance *i = instance_reclaim(dir, c, held, &err);

	if (ok) {
		assert_non_null(i);
		assert_true(instance_same(i, c));
	} else {
		assert_null(i);
		assert_non_null(err);
	}
	free(err);
	config_free(c);
	return i;
}

/* A reload that switches mode converts its own lock on the ruleset: it
 * used to be refused, blocked by the running claim itself. */
static void test_reload_switches_mode(void **state)
{
	struct instance *t, *n, *other, *back;

	(void)state;
	t = claim("valid/reference.json", NULL);
	n = reclaim("valid/native_full.json", t, true);
	instance_free(t);
	/* Native now: another native table may come, template may not. */
	claim("valid/reference.json", "a porthopd in native mode");
	other = claim("valid/native_udp_only.json", NULL);
	/* Back to template is refused while the other native one runs,
	 * and the running claim keeps its lock. */
	assert_null(reclaim("valid/reference.json", n, false));
	claim("valid/reference.json", "a porthopd in native mode");
	claim("valid/native_full.json", "another porthopd serves table inet "
	      "mtd_ports");
	instance_free(other);
	back = reclaim("valid/reference.json", n, true);
	instance_free(n);
	claim("valid/native_udp_only.json", "a porthopd in template mode");
	instance_free(back);
	instance_free(claim("valid/native_full.json", NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_claims),
		cmocka_unit_test(test_reload_switches_mode),
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
