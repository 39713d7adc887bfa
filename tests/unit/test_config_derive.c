/* A watched entry's derive_key: key files written here (0600, as a key
 * file must be; the repository cannot hold one), then configurations that
 * use them, accepted or refused with the message that says why. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "clientkey.h"
#include "config.h"
#include "derive.h"
#include "diag.h"

struct fixture {
	char dir[64];
	char derive_key[128], knock_key[128], wide_key[128], small_key[128];
	char open_key[128], conf[128];
};

static void write_key(const char *path, enum clientkey_use use,
		      const uint16_t *tcp, size_t n_tcp, uint16_t first,
		      uint16_t last, const uint16_t *ex, size_t n_ex)
{
	struct diag *d = diag_new();
	struct clientkey *k = NULL;

	assert_int_equal(clientkey_generate("alice", use, d, &k), 0);
	if (use == CLIENTKEY_DERIVE) {
		assert_int_equal(clientkey_set_services(k, true, tcp, n_tcp, d),
				 0);
		assert_int_equal(clientkey_set_pool(k, first, last, d), 0);
		assert_int_equal(clientkey_set_exclude(k, ex, n_ex, d), 0);
		assert_int_equal(clientkey_set_slot_seconds(k, 7, d), 0);
	}
	assert_int_equal(clientkey_write(k, path, d), 0);
	clientkey_free(k);
	diag_free(d);
}

static int setup(void **state)
{
	static const uint16_t tcp[] = { 22, 443 }, ex[] = { 8080 };
	static const uint16_t wide[] = { 22, 443, 80 };
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/test_config_derive.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->derive_key, sizeof(f->derive_key), "%s/alice.key", f->dir);
	snprintf(f->knock_key, sizeof(f->knock_key), "%s/knock.key", f->dir);
	snprintf(f->wide_key, sizeof(f->wide_key), "%s/wide.key", f->dir);
	snprintf(f->small_key, sizeof(f->small_key), "%s/small.key", f->dir);
	snprintf(f->open_key, sizeof(f->open_key), "%s/open.key", f->dir);
	snprintf(f->conf, sizeof(f->conf), "%s/c.json", f->dir);
	write_key(f->derive_key, CLIENTKEY_DERIVE, tcp, 2, 1024, 65535, ex, 1);
	write_key(f->knock_key, CLIENTKEY_KNOCK, NULL, 0, 0, 0, NULL, 0);
	write_key(f->wide_key, CLIENTKEY_DERIVE, wide, 3, 1024, 65535, ex, 1);
	/* 2000-2005: 2 ports a share, for 2 services that need 4. */
	write_key(f->small_key, CLIENTKEY_DERIVE, tcp, 2, 2000, 2005, NULL, 0);
	write_key(f->open_key, CLIENTKEY_DERIVE, tcp, 2, 1024, 65535, ex, 1);
	assert_int_equal(chmod(f->open_key, 0644), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	const char *files[] = { f->derive_key, f->knock_key, f->wide_key,
				f->small_key, f->open_key, f->conf };

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Writes a native configuration: tcp_ports 22, 443 and extra (", 8080"),
 * max_port_number max_port, the watched entries given (JSON text). */
static void write_conf(const struct fixture *f, const char *extra,
		       unsigned max_port, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void write_conf(const struct fixture *f, const char *extra,
		       unsigned max_port, const char *fmt, ...)
{
	char watched[2048];
	va_list ap;
	FILE *out = fopen(f->conf, "w");

	assert_non_null(out);
	va_start(ap, fmt);
	vsnprintf(watched, sizeof(watched), fmt, ap);
	va_end(ap);
	fprintf(out, "{\"redis_connection_configuration\": {\"host\": "
		"\"127.0.0.1\", \"port\": 6379, \"db\": 0, \"charset\": "
		"\"utf-8\", \"decode_responses\": true}, "
		"\"redis_subscriber_configuration\": "
		"{\"subscriber_channel_names\": [\"c\"]}, "
		"\"nftables_service_configuration\": {\"max_port_number\": %u, "
		"\"tcp_ports\": [22, 443%s], \"watched_addresses\": [%s]}}\n",
		max_port, extra, watched);
	fclose(out);
}

static void expect_refused(const struct fixture *f, const char *needle)
{
	struct diag *d = diag_new();
	struct config *c = config_load(f->conf, 0, d);
	bool found = false;

	assert_null(c);
	for (size_t i = 0; i < diag_count(d) && !found; i++)
		found = strstr(diag_message(d, i, NULL), needle) != NULL;
	if (!found) {
		for (size_t i = 0; i < diag_count(d); i++)
			print_message("  diag: %s\n", diag_message(d, i, NULL));
		fail_msg("expected: %s", needle);
	}
	diag_free(d);
}

static void test_accepted(void **state)
{
	struct fixture *f = *state;
	struct diag *d = diag_new();
	struct config *c;
	const struct config_watched *w;

	write_conf(f, ", 8080", 65535, "{\"ip\": \"0.0.0.0/0\", \"derive_key\": "
		   "\"%s\", \"tcp_ignore\": [8080]}, {\"ip\": \"10.1.2.3\"}",
		   f->derive_key);
	c = config_load(f->conf, 0, d);
	if (c == NULL)
		for (size_t i = 0; i < diag_count(d); i++)
			print_message("  diag: %s\n", diag_message(d, i, NULL));
	assert_non_null(c);
	w = config_watched(c, 0);
	assert_non_null(w->derive);
	assert_string_equal(w->derive_key, f->derive_key);
	assert_int_equal(w->slot_seconds, 7);
	/* Nothing of a keyed entry is shuffled; its services are derived. */
	assert_int_equal(w->nports[CONFIG_TCP], 0);
	assert_int_equal(derive_count(w->derive), 2);
	/* The other entry is shuffled as ever. */
	w = config_watched(c, 1);
	assert_null(w->derive);
	assert_int_equal(w->nports[CONFIG_TCP], 3);
	assert_int_equal(config_pair_count(c), 3);
	config_free(c);
	diag_free(d);
}

static void test_refused(void **state)
{
	struct fixture *f = *state;
	const struct {
		const char *extra;	/* tcp_ports beyond 22, 443 */
		unsigned max_port;
		const char *key;
		const char *entry;	/* more of the keyed entry's members */
		const char *says;
	} bad[] = {
		{ "", 65535, f->knock_key, "", "derive_key: key \"alice\" is "
		  "of use \"knock\"; expected a key of use \"derive\"" },
		/* The key derives 80 too; the entry moves 22 and 443. */
		{ "", 65535, f->wide_key, "", "derive_key: key \"alice\" "
		  "derives tcp ports [22, 80, 443]; expected the entry's tcp "
		  "ports [22, 443]" },
		/* The entry ignores 443: the key's services are not the
		 * entry's. */
		{ "", 65535, f->derive_key, ", \"tcp_ignore\": [443]",
		  "expected the entry's tcp ports [22]" },
		/* 9999 is a service of the host, inside the key's pool. */
		{ ", 9999", 65535, f->derive_key, ", \"tcp_ignore\": [9999]",
		  "holds the service port 9999; expected it excluded" },
		{ "", 30000, f->derive_key, "", "has the pool 1024-65535; "
		  "expected ports up to max_port_number (30000)" },
		{ "", 65535, f->small_key, "", "expected at least twice as "
		  "many" },
		{ "", 65535, f->open_key, "", "readable or writable by others" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_conf(f, bad[i].extra, bad[i].max_port, "{\"ip\": "
			   "\"0.0.0.0/0\", \"derive_key\": \"%s\"%s}",
			   bad[i].key, bad[i].entry);
		expect_refused(f, bad[i].says);
	}
	/* Two keyed entries, one inside the other. */
	write_conf(f, "", 65535, "{\"ip\": \"10.0.0.0/8\", \"derive_key\": "
		   "\"%s\"}, {\"ip\": \"10.1.2.3\", \"derive_key\": \"%s\"}",
		   f->derive_key, f->derive_key);
	expect_refused(f, "keyed entry 10.1.2.3 is inside the keyed entry "
		       "10.0.0.0/8; expected keyed entries that do not "
		       "overlap");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
