/* Client key files: generated, written, read back, refused when bad. */
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

#include "clientkey.h"

static const char hex64[] =
	"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/* fmt with its "%s", if any, replaced by the valid secret. */
static void fill(char *text, size_t len, const char *fmt)
{
	const char *at = strstr(fmt, "%s");

	if (at == NULL)
		snprintf(text, len, "%s", fmt);
	else
		snprintf(text, len, "%.*s%s%s", (int)(at - fmt), fmt, hex64,
			 at + 2);
}

/* Parses text; returns the key or NULL, the first error in *ret_err. */
static struct clientkey *parse(const char *text, char *err, size_t errlen)
{
	struct diag *d = diag_new();
	struct clientkey *k = NULL;

	err[0] = '\0';
	if (clientkey_parse("k.key", text, strlen(text), d, &k) < 0) {
		assert_null(k);
		assert_true(diag_errors(d) > 0);
		snprintf(err, errlen, "%s", diag_first_error(d));
	}
	diag_free(d);
	return k;
}

static void test_parse_valid(void **state)
{
	char text[512], err[512];
	struct clientkey *k;

	(void)state;
	snprintf(text, sizeof(text), "{\"porthop_client_key\": 1, \"name\": "
		 "\"alice\", \"use\": \"knock\", \"secret\": \"%s\"}", hex64);
	k = parse(text, err, sizeof(err));
	assert_non_null(k);
	assert_string_equal(clientkey_name(k), "alice");
	assert_int_equal(clientkey_use(k), CLIENTKEY_KNOCK);
	assert_int_equal(clientkey_secret(k)[1], 0x11);
	assert_int_equal(clientkey_secret(k)[31], 0xff);
	assert_int_equal(clientkey_slot_seconds(k), CLIENTKEY_SLOT_DEFAULT);
	clientkey_free(k);

	snprintf(text, sizeof(text), "{\"porthop_client_key\": 1, \"name\": "
		 "\"ci-runner.7\", \"use\": \"derive\", \"slot_seconds\": 10, "
		 "\"secret\": \"%s\"}", hex64);
	k = parse(text, err, sizeof(err));
	assert_non_null(k);
	assert_int_equal(clientkey_use(k), CLIENTKEY_DERIVE);
	assert_int_equal(clientkey_slot_seconds(k), 10);
	clientkey_free(k);
}

/* Each bad file is refused with a message naming what is wrong. */
static void test_parse_refused(void **state)
{
	static const struct {
		const char *fmt;	/* %s: a valid secret, when used */
		const char *says;
	} bad[] = {
		{ "[]", "expected a key object" },
		{ "{\"name\": \"a\", \"use\": \"knock\", \"secret\": \"%s\"}",
		  "porthop_client_key is missing" },
		{ "{\"porthop_client_key\": 2, \"name\": \"a\", \"use\": "
		  "\"knock\", \"secret\": \"%s\"}", "expected 1" },
		{ "{\"porthop_client_key\": 1, \"name\": \".a\", \"use\": "
		  "\"knock\", \"secret\": \"%s\"}", "not a key name" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a/b\", \"use\": "
		  "\"knock\", \"secret\": \"%s\"}", "not a key name" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a\\u0000b\", "
		  "\"use\": \"knock\", \"secret\": \"%s\"}", "is not allowed" },
		{ "{\"porthop_client_key\": 1, \"name\": "
		  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"use\": \"knock\", "
		  "\"secret\": \"%s\"}", "not a key name" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a\", \"use\": "
		  "\"open\", \"secret\": \"%s\"}", "expected \"knock\" or" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a\", \"use\": "
		  "\"knock\", \"secret\": \"00ff\"}", "not 64 hex digits" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a\", \"use\": "
		  "\"knock\", \"secret\": \"zz112233445566778899aabbccddeeff0011"
		  "2233445566778899aabbccddeeff\"}", "not 64 hex digits" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a\", \"use\": "
		  "\"knock\", \"secret\": \"%s\", \"slot_seconds\": 30}",
		  "only with \"use\": \"derive\"" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a\", \"use\": "
		  "\"derive\", \"secret\": \"%s\", \"slot_seconds\": 0}",
		  "expected an integer from 1 to" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a\", \"use\": "
		  "\"knock\", \"secret\": \"%s\", \"host\": \"x\"}",
		  "unknown key" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a\", \"name\": \"b\", "
		  "\"use\": \"knock\", \"secret\": \"%s\"}", "duplicate" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a\", \"use\": "
		  "\"knock\", \"secret\": \"%s\", \"tcp\": [22]}",
		  "tcp: given for a key of use \"knock\"" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a\", \"use\": "
		  "\"derive\", \"secret\": \"%s\", \"tcp\": [22, 0]}",
		  "tcp[1]: 0 is not a port" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a\", \"use\": "
		  "\"derive\", \"secret\": \"%s\", \"udp\": \"53\"}",
		  "udp: \"53\" is not a port list" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a\", \"use\": "
		  "\"derive\", \"secret\": \"%s\", \"pool\": [2000, 1000]}",
		  "pool: [2000,1000] is not a port range" },
		{ "{\"porthop_client_key\": 1, \"name\": \"a\", \"use\": "
		  "\"derive\", \"secret\": \"%s\", \"exclude\": [65536]}",
		  "exclude[0]: 65536 is not a port" },
	};
	char text[512], err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fill(text, sizeof(text), bad[i].fmt);
		assert_null(parse(text, err, sizeof(err)));
		if (strstr(err, bad[i].says) == NULL)
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err,
				 bad[i].says);
		/* The secret never shows in a message. */
		assert_null(strstr(err, hex64));
	}
}

static void test_generate_write_load(void **state)
{
	char dir[] = "/tmp/test_clientkey.XXXXXX", path[256];
	struct clientkey *k = NULL, *back = NULL, *other = NULL;
	struct diag *d = diag_new();
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/alice.key", dir);
	assert_int_equal(clientkey_generate("alice", CLIENTKEY_DERIVE, d, &k), 0);
	assert_int_equal(clientkey_set_slot_seconds(k, 15, d), 0);
	{
		static const uint16_t tcp[] = { 443, 22, 443 }, ex[] = { 80 };
		size_t n;
		uint16_t first, last;

		assert_int_equal(clientkey_set_services(k, true, tcp, 3, d), 0);
		assert_int_equal(clientkey_set_exclude(k, ex, 1, d), 0);
		assert_int_equal(clientkey_set_pool(k, 2000, 3000, d), 0);
		assert_int_not_equal(clientkey_set_pool(k, 3000, 2000, d), 0);
		diag_clear(d);
		clientkey_services(k, true, &n);
		assert_int_equal(n, 2);
		clientkey_pool(k, &first, &last);
		assert_int_equal(first, 2000);
	}
	assert_int_equal(clientkey_write(k, path, d), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(clientkey_load(path, d, &back), 0);
	assert_string_equal(clientkey_name(back), "alice");
	assert_int_equal(clientkey_use(back), CLIENTKEY_DERIVE);
	assert_int_equal(clientkey_slot_seconds(back), 15);
	{
		size_t n;
		const uint16_t *v = clientkey_services(back, true, &n);
		uint16_t first, last;

		assert_int_equal(n, 2);
		assert_int_equal(v[0], 22);
		assert_int_equal(v[1], 443);
		clientkey_services(back, false, &n);
		assert_int_equal(n, 0);
		v = clientkey_exclude(back, &n);
		assert_int_equal(n, 1);
		assert_int_equal(v[0], 80);
		clientkey_pool(back, &first, &last);
		assert_int_equal(first, 2000);
		assert_int_equal(last, 3000);
	}
	assert_memory_equal(clientkey_secret(back), clientkey_secret(k),
			    CLIENTKEY_SECRET_LEN);
	/* Two keys never share a secret. */
	assert_int_equal(clientkey_generate("alice", CLIENTKEY_DERIVE, d,
					    &other), 0);
	assert_memory_not_equal(clientkey_secret(other), clientkey_secret(k),
				CLIENTKEY_SECRET_LEN);
	/* Never over an existing file. */
	assert_int_not_equal(clientkey_write(other, path, d), 0);
	assert_non_null(strstr(diag_first_error(d), "never overwritten"));
	diag_clear(d);
	/* Readable by others: refused. */
	assert_int_equal(chmod(path, 0604), 0);
	clientkey_free(back);
	back = NULL;
	assert_int_not_equal(clientkey_load(path, d, &back), 0);
	assert_null(back);
	assert_non_null(strstr(diag_first_error(d), "readable or writable by "
				"others"));
	diag_clear(d);
	/* Bad names and slot lengths refused before anything is written. */
	assert_int_not_equal(clientkey_generate("../x", CLIENTKEY_KNOCK, d,
						&back), 0);
	assert_int_not_equal(clientkey_set_slot_seconds(k, 0, d), 0);
	assert_int_not_equal(clientkey_set_slot_seconds(k, CLIENTKEY_SLOT_MAX + 1,
							d), 0);
	assert_int_equal(clientkey_slot_seconds(k), 15);
	unlink(path);
	rmdir(dir);
	clientkey_free(k);
	clientkey_free(other);
	diag_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_generate_write_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
