/*
 * The configuration corpus: every file under corpus/valid must load, every
 * file under corpus/invalid must be refused with the messages its .expect
 * file lists (file, JSON path and text).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "diag.h"

static void dump(const struct diag *d)
{
	for (size_t i = 0; i < diag_count(d); i++)
		print_message("  diag: %s\n", diag_message(d, i, NULL));
}

static bool diag_has(const struct diag *d, const char *needle)
{
	for (size_t i = 0; i < diag_count(d); i++)
		if (strstr(diag_message(d, i, NULL), needle))
			return true;
	return false;
}

static void test_valid(void **state)
{
	const char *path = *state;
	struct diag *d = diag_new();
	struct config *c = config_load(path, 0, d);

	if (c == NULL)
		dump(d);
	assert_non_null(c);
	assert_int_equal(diag_errors(d), 0);
	config_free(c);
	diag_free(d);
}

static void test_invalid(void **state)
{
	const char *path = *state;
	char expect[512], line[1024];
	struct diag *d = diag_new();
	struct config *c = config_load(path, 0, d);
	FILE *f;
	int lines = 0;

	if (c != NULL)
		print_message("  %s was accepted\n", path);
	assert_null(c);
	assert_true(diag_errors(d) > 0);
	snprintf(expect, sizeof(expect), "%.*s.expect",
		 (int)(strlen(path) - 5), path);
	f = fopen(expect, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0')
			continue;
		lines++;
		if (!diag_has(d, line)) {
			print_message("  expected: %s\n", line);
			dump(d);
		}
		assert_true(diag_has(d, line));
	}
	fclose(f);
	assert_true(lines > 0);
	config_free(c);
	diag_free(d);
}

/* Cases that cannot live in the repository as files. */
static void expect_refused(const char *path, const char *needle)
{
	struct diag *d = diag_new();
	struct config *c = config_load(path, 0, d);

	assert_null(c);
	if (!diag_has(d, needle)) {
		print_message("  expected: %s\n", needle);
		dump(d);
	}
	assert_true(diag_has(d, needle));
	diag_free(d);
}

static void test_symlink_loop(void **state)
{
	char dir[] = "/tmp/porthop-test-XXXXXX", a[128], b[128];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(a, sizeof(a), "%s/a.json", dir);
	snprintf(b, sizeof(b), "%s/b.json", dir);
	assert_int_equal(symlink(a, b), 0);
	assert_int_equal(symlink(b, a), 0);
	expect_refused(a, "a.json: cannot open: Too many levels of symbolic links");
	unlink(a);
	unlink(b);
	rmdir(dir);
}

static void write_big(const char *path, size_t size, bool valid_json)
{
	FILE *f = fopen(path, "w");
	size_t body;

	assert_non_null(f);
	if (valid_json) {
		/* A syntactically valid document whose string is too long. */
		body = size - 48;
		fprintf(f, "{\"redis_connection_configuration\": {\"host\": \"");
		for (size_t i = 0; i < body; i++)
			fputc('h', f);
		fprintf(f, "\"}}\n");
	} else {
		for (size_t i = 0; i < size; i++)
			fputc('[', f);
	}
	fclose(f);
}

static void test_big_files(void **state)
{
	char dir[] = "/tmp/porthop-test-XXXXXX", p[128];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/ten_mb.json", dir);
	write_big(p, 10u << 20, true);
	expect_refused(p, "redis_connection_configuration.host: \"hhh");
	unlink(p);
	snprintf(p, sizeof(p), "%s/twenty_mb.json", dir);
	write_big(p, 20u << 20, false);
	expect_refused(p, "twenty_mb.json: is 20971520 bytes; at most 16777216 bytes are accepted");
	unlink(p);
	rmdir(dir);
}

static void test_fifo(void **state)
{
	char dir[] = "/tmp/porthop-test-XXXXXX", p[128];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/fifo.json", dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	/* Must not block waiting for a writer. */
	expect_refused(p, "fifo.json: is not a regular file; expected a regular file");
	unlink(p);
	rmdir(dir);
}

static void test_missing_config(void **state)
{
	(void)state;
	expect_refused("/nonexistent/porthop.json",
		       "/nonexistent/porthop.json: cannot open: No such file or directory");
}

/* The example and the reference configuration's values, read back. */
static void test_accessors(void **state)
{
	struct diag *d = diag_new();
	struct config *c;
	const struct config_watched *w;
	size_t n;

	(void)state;
	c = config_load("valid/ipv6_and_many.json", 0, d);
	assert_non_null(c);
	assert_string_equal(config_redis_host(c), "10.0.0.5");
	assert_int_equal(config_redis_port(c), 6379);
	assert_int_equal(config_channel_count(c), 1);
	assert_string_equal(config_channel(c, 0), "test_channel_1");
	assert_int_equal(config_max_port(c), 1000);
	config_tcp_ports(c, &n);
	assert_int_equal(n, 3);
	assert_true(config_port_used(c, 443));
	assert_false(config_port_used(c, 444));
	assert_int_equal(config_watched_count(c), 3);
	w = config_watched(c, 0);
	assert_int_equal(w->nports[CONFIG_TCP], 2);	/* 80, 443: 22 ignored */
	assert_int_equal(w->ports[CONFIG_TCP][0], 80);
	w = config_watched(c, 1);
	assert_int_equal(w->family, AF_INET6);
	assert_int_equal(w->nports[CONFIG_TCP], 3);
	w = config_watched(c, 2);
	assert_int_equal(w->nports[CONFIG_TCP], 3);	/* tcp_ignore absent */
	assert_int_equal(config_pair_count(c), 8);
	assert_int_equal(config_watched_find(c, "2001:0db8::0001"), 1);
	assert_int_equal(config_watched_find(c, "10.9.9.9"), -1);
	config_free(c);
	diag_free(d);
}

static void test_ignore_warning(void **state)
{
	struct diag *d = diag_new();
	struct config *c;

	(void)state;
	/* tcp_ignore naming a port outside tcp_ports: accepted, warned. */
	c = config_load("valid/ignore_unused_port.json", 0, d);
	assert_non_null(c);
	assert_int_equal(diag_errors(d), 0);
	assert_int_equal(diag_count(d), 1);
	assert_true(diag_has(d, "valid/ignore_unused_port.json: "
			     "nftables_service_configuration.watched_addresses[0]"
			     ".tcp_ignore[2]: port 9 is not in tcp_ports"));
	config_free(c);
	diag_clear(d);
	/* The reference's own values load without a word. */
	c = config_load("valid/reference.json", 0, d);
	assert_non_null(c);
	assert_int_equal(diag_count(d), 0);
	config_free(c);
	diag_free(d);
}

/* A configuration in a temporary file: native mode, the given
 * nftables_service_configuration members (a JSON fragment printed with
 * fmt), Redis settings as the corpus has them. */
static void write_native(const char *path, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void write_native(const char *path, const char *fmt, ...)
{
	FILE *f = fopen(path, "w");
	va_list ap;

	assert_non_null(f);
	fprintf(f, "{\"redis_connection_configuration\": {\"host\": \"h\", "
		"\"port\": 6379, \"db\": 0, \"charset\": \"utf-8\", "
		"\"decode_responses\": true}, \"redis_subscriber_configuration\": "
		"{\"subscriber_channel_names\": [\"c\"]}, "
		"\"nftables_service_configuration\": {\"max_port_number\": 1000, "
		"\"tcp_ports\": [22, 80], ");
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fprintf(f, "}}\n");
	fclose(f);
}

/* Trusted entries that undo watched ones are accepted with a warning
 * naming both: the same address, a prefix around a watched entry, and
 * ::/0 (nothing watched over IPv6, said once).  A trusted address inside
 * a watched prefix is the intended exception: no word. */
static void test_trusted_covers_watched(void **state)
{
	char dir[] = "/tmp/porthop-test-XXXXXX", p[128];
	const char *pre = "nftables_service_configuration.";
	char want[512];
	struct diag *d = diag_new();
	struct config *c;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/covers.json", dir);
	write_native(p, "\"watched_addresses\": [{\"ip\": \"10.0.0.3\"}, "
		     "{\"ip\": \"10.1.0.0/16\"}, {\"ip\": \"10.2.3.4\"}, "
		     "{\"ip\": \"192.0.2.0/24\"}, {\"ip\": \"2001:db8::/64\"}, "
		     "{\"ip\": \"2001:db8:1::5\"}], \"trusted_addresses\": "
		     "[\"10.0.0.3\", \"10.0.0.0/15\", \"10.2.3.0/24\", "
		     "\"192.0.2.9\", \"::/0\"]");
	c = config_load(p, 0, d);
	if (c == NULL)
		dump(d);
	assert_non_null(c);
	assert_int_equal(diag_errors(d), 0);
	assert_int_equal(diag_count(d), 4);
	snprintf(want, sizeof(want), "covers.json: %swatched_addresses[0].ip: "
		 "\"10.0.0.3\" is never watched: %strusted_addresses[0] "
		 "(\"10.0.0.3\") covers it; expected watched entries outside "
		 "the trusted networks", pre, pre);
	assert_true(diag_has(d, want));
	snprintf(want, sizeof(want), "%swatched_addresses[1].ip: \"10.1.0.0/16\" "
		 "is never watched: %strusted_addresses[1] (\"10.0.0.0/15\") "
		 "covers it", pre, pre);
	assert_true(diag_has(d, want));
	snprintf(want, sizeof(want), "%swatched_addresses[2].ip: \"10.2.3.4\" is "
		 "never watched: %strusted_addresses[2] (\"10.2.3.0/24\")",
		 pre, pre);
	assert_true(diag_has(d, want));
	snprintf(want, sizeof(want), "covers.json: %strusted_addresses[4]: "
		 "\"::/0\" trusts every IPv6 address: none of the 2 watched "
		 "IPv6 entries is ever watched", pre);
	assert_true(diag_has(d, want));
	config_free(c);
	diag_clear(d);

	/* Twelve covered entries: ten named, the rest counted. */
	write_native(p, "\"watched_addresses\": [{\"ip\": \"10.0.0.1\"}, "
		     "{\"ip\": \"10.0.0.2\"}, {\"ip\": \"10.0.0.3\"}, "
		     "{\"ip\": \"10.0.0.4\"}, {\"ip\": \"10.0.0.5\"}, "
		     "{\"ip\": \"10.0.0.6\"}, {\"ip\": \"10.0.0.7\"}, "
		     "{\"ip\": \"10.0.0.8\"}, {\"ip\": \"10.0.0.9\"}, "
		     "{\"ip\": \"10.0.0.10\"}, {\"ip\": \"10.0.0.11\"}, "
		     "{\"ip\": \"10.0.0.12\"}, {\"ip\": \"10.1.0.1\"}], "
		     "\"trusted_addresses\": [\"10.0.0.0/16\"]");
	c = config_load(p, 0, d);
	assert_non_null(c);
	assert_int_equal(diag_count(d), 11);
	assert_true(diag_has(d, "watched_addresses: 2 more entries are never "
			     "watched: trusted networks cover them"));
	config_free(c);
	diag_clear(d);

	/* 0.0.0.0/0 trusted, IPv4 watched: one warning, not one per entry. */
	write_native(p, "\"watched_addresses\": [{\"ip\": \"10.0.0.1\"}, "
		     "{\"ip\": \"10.0.0.2\"}, {\"ip\": \"2001:db8::1\"}], "
		     "\"trusted_addresses\": [\"0.0.0.0/0\"]");
	c = config_load(p, 0, d);
	assert_non_null(c);
	assert_int_equal(diag_count(d), 1);
	assert_true(diag_has(d, "trusted_addresses[0]: \"0.0.0.0/0\" trusts "
			     "every IPv4 address: none of the 2 watched IPv4 "
			     "entries is ever watched; expected the networks to "
			     "exempt from watching"));
	config_free(c);
	diag_clear(d);

	/* The intended use: exceptions inside a watched prefix. */
	write_native(p, "\"watched_addresses\": [{\"ip\": \"10.0.0.0/8\"}], "
		     "\"trusted_addresses\": [\"10.1.2.3\", \"10.2.0.0/16\"]");
	c = config_load(p, 0, d);
	assert_non_null(c);
	assert_int_equal(diag_count(d), 0);
	config_free(c);
	unlink(p);
	rmdir(dir);
	diag_free(d);
}

/* trigger_key_file: the key's own checks, named by the configuration's
 * file and path. */
static void test_weak_trigger_key(void **state)
{
	char dir[] = "/tmp/porthop-test-XXXXXX", p[128], k[128], want[512];
	struct diag *d = diag_new();
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/c.json", dir);
	snprintf(k, sizeof(k), "%s/trigger.key", dir);
	f = fopen(p, "w");
	assert_non_null(f);
	fprintf(f, "{\"redis_connection_configuration\": {\"host\": \"h\", "
		"\"port\": 6379, \"db\": 0, \"charset\": \"utf-8\", "
		"\"decode_responses\": true}, \"redis_subscriber_configuration\": "
		"{\"subscriber_channel_names\": [\"c\"]}, "
		"\"nftables_service_configuration\": {\"max_port_number\": 100, "
		"\"tcp_ports\": [22], \"watched_addresses\": []}, "
		"\"porthopd\": {\"trigger_key_file\": \"%s\"}}\n", k);
	fclose(f);
	f = fopen(k, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", "                                ");
	fclose(f);
	assert_int_equal(chmod(k, 0600), 0);
	snprintf(want, sizeof(want), "c.json: porthopd.trigger_key_file: \"%s\" "
		 "holds a key of 32 bytes with only 1 distinct byte value", k);
	expect_refused(p, want);
	f = fopen(k, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", "0123456789abcdef0123456789abcdef");
	fclose(f);
	assert_int_equal(chmod(k, 0660), 0);
	snprintf(want, sizeof(want), "c.json: porthopd.trigger_key_file: \"%s\" "
		 "is writable by its group (mode 660)", k);
	expect_refused(p, want);
	unlink(k);
	unlink(p);
	rmdir(dir);
	diag_free(d);
}

/* The settings held by reference in config_redis_extra and config_daemon:
 * their defaults, and the values given, read back through the views. */
static void test_settings_views(void **state)
{
	char dir[] = "/tmp/porthop-test-XXXXXX", p[128], k[128];
	const struct config_redis_extra *x;
	const struct config_daemon *dm;
	struct diag *d = diag_new();
	struct config *c;
	FILE *f;

	(void)state;
	c = config_load("valid/native_udp_only_and_options.json", 0, d);
	assert_non_null(c);
	x = config_redis_extra(c);
	assert_string_equal(x->password, "s3cret");
	assert_string_equal(x->username, "porthop");
	assert_string_equal(x->unix_socket, "/run/redis/redis.sock");
	assert_int_equal(x->connect_timeout_ms, 1000);
	assert_int_equal(x->retry_max_ms, 10000);
	dm = config_daemon(c);
	assert_int_equal(dm->reconcile_interval_s, 0);
	assert_int_equal(dm->min_shuffle_interval_ms, 500);
	assert_false(dm->shuffle_on_reconnect);
	config_free(c);

	/* Nothing given: the defaults. */
	c = config_load("valid/reference.json", 0, d);
	assert_non_null(c);
	x = config_redis_extra(c);
	assert_null(x->password);
	assert_null(x->username);
	assert_null(x->unix_socket);
	assert_int_equal(x->connect_timeout_ms, 5000);
	assert_int_equal(x->retry_max_ms, 30000);
	dm = config_daemon(c);
	assert_string_equal(dm->control_socket, CONFIG_DEFAULT_CONTROL_SOCKET);
	assert_int_equal(dm->control_gid, (gid_t)-1);
	assert_null(dm->trigger_key);
	assert_int_equal(dm->trigger_key_len, 0);
	assert_null(dm->metrics_textfile);
	assert_int_equal(dm->metrics_interval_s, 15);
	assert_int_equal(dm->reconcile_interval_s, 5);
	assert_int_equal(dm->trigger_window_s, 30);
	assert_true(dm->shuffle_on_reconnect);
	config_free(c);

	/* A control socket elsewhere, a key, a metrics file. */
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/c.json", dir);
	snprintf(k, sizeof(k), "%s/trigger.key", dir);
	f = fopen(k, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", "0123456789abcdef0123456789abcdef");
	fclose(f);
	assert_int_equal(chmod(k, 0600), 0);
	write_native(p, "\"watched_addresses\": []}, \"porthopd\": "
		     "{\"control_socket\": \"/run/x/ph.sock\", \"control_group\": "
		     "\"root\", \"trigger_key_file\": \"%s\", "
		     "\"trigger_window_seconds\": 7, \"metrics_textfile\": "
		     "\"/var/lib/ph.prom\", \"metrics_interval_seconds\": 60", k);
	c = config_load(p, 0, d);
	if (c == NULL)
		dump(d);
	assert_non_null(c);
	dm = config_daemon(c);
	assert_string_equal(dm->control_socket, "/run/x/ph.sock");
	assert_int_equal(dm->control_gid, 0);
	assert_int_equal(dm->trigger_key_len, 32);
	assert_memory_equal(dm->trigger_key, "0123456789abcdef", 16);
	assert_int_equal(dm->trigger_window_s, 7);
	assert_string_equal(dm->metrics_textfile, "/var/lib/ph.prom");
	assert_int_equal(dm->metrics_interval_s, 60);
	config_free(c);

	/* An empty control_socket turns the socket off. */
	write_native(p, "\"watched_addresses\": []}, \"porthopd\": "
		     "{\"control_socket\": \"\"");
	c = config_load(p, 0, d);
	assert_non_null(c);
	assert_string_equal(config_daemon(c)->control_socket, "");
	config_free(c);
	assert_int_equal(diag_errors(d), 0);
	unlink(k);
	unlink(p);
	rmdir(dir);
	diag_free(d);
}

/* The first and last addresses of a network as numbers: ::/0 spans the
 * whole IPv6 space (a shift by 128 made its last address ::, so a
 * trusted ::/0 trusted only ::, and a watched one tracked only ::). */
static void test_net_value(void **state)
{
	static const struct {
		const char *net;
		unsigned __int128 first, last;
	} cases[] = {
		{ "0.0.0.0/0", 0, 0xffffffffu },
		{ "10.0.0.0/8", 0x0a000000u, 0x0affffffu },
		{ "10.1.2.3", 0x0a010203u, 0x0a010203u },
		{ "10.1.2.3/32", 0x0a010203u, 0x0a010203u },
		{ "::/0", 0, ~(unsigned __int128)0 },
		{ "::/1", 0, ~(unsigned __int128)0 >> 1 },
		{ "8000::/1", (unsigned __int128)1 << 127, ~(unsigned __int128)0 },
		{ "::1/128", 1, 1 },
	};
	struct config_net n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(config_parse_net(cases[i].net, true, &n), 0);
		assert_true(config_net_value(&n, false) == cases[i].first);
		if (config_net_value(&n, true) != cases[i].last)
			print_message("  %s: wrong last address\n", cases[i].net);
		assert_true(config_net_value(&n, true) == cases[i].last);
	}
}

/* A JSON array of the ports from..to into f. */
static void port_range(FILE *f, unsigned from, unsigned to)
{
	fputc('[', f);
	for (unsigned p = from; p <= to; p++)
		fprintf(f, "%s%u", p > from ? ", " : "", p);
	fputc(']', f);
}

/* Opens dir/name for a configuration of max_port_number max, written up
 * to "tcp_ports": (the caller writes the rest). */
static FILE *hostile_file(const char *dir, const char *name, unsigned max,
			  char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"redis_connection_configuration\": {\"host\": \"h\", "
		"\"port\": 6379, \"db\": 0, \"charset\": \"utf-8\", "
		"\"decode_responses\": true}, \"redis_subscriber_configuration\": "
		"{\"subscriber_channel_names\": [\"c\"]}, "
		"\"nftables_service_configuration\": {\"max_port_number\": %u, "
		"\"tcp_ports\": ", max);
	return f;
}

/* Hostile sizes: 200,000 identical watched entries (each repeat reported
 * against the first), an entry ignoring 60,000 of 60,000 ports, and an
 * impossible capacity over 30,000 ports, each refused with the right
 * message.  What they cost (they took 14, 2 and 0.4 s when their checks
 * were quadratic) is bench/validation.sh's to measure, not a test's. */
static void test_hostile_sizes(void **state)
{
	char dir[] = "/tmp/porthop-test-XXXXXX", p[128];
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	f = hostile_file(dir, "dups.json", 100, p, sizeof(p));
	fprintf(f, "[22], \"watched_addresses\": [");
	for (size_t i = 0; i < 200000; i++)
		fprintf(f, "%s{\"ip\": \"10.0.0.3\"}", i ? ", " : "");
	fprintf(f, "]}}\n");
	fclose(f);
	expect_refused(p, "watched_addresses[199999].ip: \"10.0.0.3\" is "
		       "the same address as");
	unlink(p);

	/* 60,000 ports, all of them ignored by the one entry, and a
	 * duplicate entry so that the file is refused. */
	f = hostile_file(dir, "ignore.json", 65535, p, sizeof(p));
	port_range(f, 1, 60000);
	fprintf(f, ", \"watched_addresses\": [{\"ip\": \"10.0.0.3\", "
		"\"tcp_ignore\": ");
	port_range(f, 1, 60000);
	fprintf(f, "}, {\"ip\": \"10.0.0.4\", \"tcp_ignore\": ");
	port_range(f, 1, 60000);
	fprintf(f, "}, {\"ip\": \"10.0.0.3\"}]}}\n");
	fclose(f);
	expect_refused(p, "watched_addresses[2].ip: \"10.0.0.3\" is the "
		       "same address");
	unlink(p);

	/* 30,000 ports below max_port_number 1: the smallest workable
	 * max_port_number is 60,000. */
	f = hostile_file(dir, "capacity.json", 1, p, sizeof(p));
	port_range(f, 1, 30000);
	fprintf(f, ", \"watched_addresses\": [{\"ip\": \"10.0.0.3\"}]}}\n");
	fclose(f);
	expect_refused(p, "max_port_number: 1 leaves 0 free redirect "
		       "ports (1..1 minus 1 of tcp_ports) but "
		       "watched_addresses[0] needs 30000; expected at "
		       "least 60000");
	unlink(p);
	rmdir(dir);
}

static int collect(const char *dir, char ***ret, size_t *ret_n)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;

	if (dp == NULL)
		return -errno;
	while ((de = readdir(dp))) {
		size_t len = strlen(de->d_name);

		if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		names = realloc(names, (n + 1) * sizeof(*names));
		if (asprintf(&names[n], "%s/%s", dir, de->d_name) < 0)
			return -ENOMEM;
		n++;
	}
	closedir(dp);
	*ret = names;
	*ret_n = n;
	return 0;
}

int main(void)
{
	char **valid = NULL, **invalid = NULL;
	size_t nvalid = 0, ninvalid = 0, n = 0;
	struct CMUnitTest *tests;
	int r;

	if (chdir(CORPUS_DIR) < 0 || collect("valid", &valid, &nvalid) < 0 ||
	    collect("invalid", &invalid, &ninvalid) < 0) {
		perror(CORPUS_DIR);
		return 1;
	}
	tests = calloc(nvalid + ninvalid + 16, sizeof(*tests));
	for (size_t i = 0; i < nvalid; i++)
		tests[n++] = (struct CMUnitTest){ valid[i], test_valid, NULL,
						  NULL, valid[i] };
	for (size_t i = 0; i < ninvalid; i++)
		tests[n++] = (struct CMUnitTest){ invalid[i], test_invalid,
						  NULL, NULL, invalid[i] };
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_symlink_loop);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_big_files);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_fifo);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_missing_config);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_accessors);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_ignore_warning);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_hostile_sizes);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_trusted_covers_watched);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_weak_trigger_key);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_net_value);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_settings_views);
	r = _cmocka_run_group_tests("config corpus", tests, n, NULL, NULL);
	for (size_t i = 0; i < nvalid; i++)
		free(valid[i]);
	for (size_t i = 0; i < ninvalid; i++)
		free(invalid[i]);
	free(valid);
	free(invalid);
	free(tests);
	return r;
}
