/* journald's native protocol: the field encoding (plain and binary
 * forms), a probe event's fields, the JOURNAL_STREAM match, and an entry
 * sent as one datagram to a socket the test binds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"

static void assert_entry(const struct journal_entry *e, const void *want,
			 size_t want_len)
{
	size_t len;
	const char *data = journal_entry_data(e, &len);

	assert_int_equal(len, want_len);
	assert_memory_equal(data, want, want_len);
}

/* A value without a newline: NAME=value\n.  With one: NAME\n, the length
 * as 64-bit little-endian, the value, \n. */
static void test_fields(void **state)
{
	struct journal_entry *e = journal_entry_new();
	static const char want[] = "A=b c\n"
		"M\n\x03\0\0\0\0\0\0\0x\ny\n"
		"E=\n";
	char big[300];

	(void)state;
	assert_non_null(e);
	assert_int_equal(journal_entry_add(e, "A", "b c", 3), 0);
	assert_int_equal(journal_entry_add(e, "M", "x\ny", 3), 0);
	assert_int_equal(journal_entry_add(e, "E", "", 0), 0);
	assert_entry(e, want, sizeof(want) - 1);
	journal_entry_free(e);

	/* A length over 255 takes its second byte. */
	e = journal_entry_new();
	memset(big, 'z', sizeof(big));
	big[10] = '\n';
	assert_int_equal(journal_entry_add(e, "BIG", big, sizeof(big)), 0);
	{
		size_t len;
		const unsigned char *d =
			(const unsigned char *)journal_entry_data(e, &len);

		assert_int_equal(len, 4 + 8 + sizeof(big) + 1);
		assert_memory_equal(d, "BIG\n", 4);
		assert_int_equal(d[4], sizeof(big) & 0xff);
		assert_int_equal(d[5], sizeof(big) >> 8);
		for (int i = 6; i < 12; i++)
			assert_int_equal(d[i], 0);
		assert_memory_equal(d + 12, big, sizeof(big));
		assert_int_equal(d[len - 1], '\n');
	}
	journal_entry_free(e);
}

/* Field names: upper case, digits, _, not first _ or digit, 64 at most;
 * a refused one changes nothing. */
static void test_names(void **state)
{
	struct journal_entry *e = journal_entry_new();
	char n64[66];
	size_t len;

	(void)state;
	assert_int_equal(journal_entry_add(e, "lower", "v", 1), -EINVAL);
	assert_int_equal(journal_entry_add(e, "_TRUSTED", "v", 1), -EINVAL);
	assert_int_equal(journal_entry_add(e, "1A", "v", 1), -EINVAL);
	assert_int_equal(journal_entry_add(e, "A=B", "v", 1), -EINVAL);
	assert_int_equal(journal_entry_add(e, "", "v", 1), -EINVAL);
	memset(n64, 'N', 65);
	n64[65] = '\0';
	assert_int_equal(journal_entry_add(e, n64, "v", 1), -EINVAL);
	journal_entry_data(e, &len);
	assert_int_equal(len, 0);
	n64[64] = '\0';
	assert_int_equal(journal_entry_add(e, n64, "v", 1), 0);
	assert_int_equal(journal_entry_add(e, "PORTHOP_2", "v", 1), 0);
	journal_entry_free(e);
}

/* A probe event's fields; PORTHOP_REAL_PORT only where there is one; a
 * newline in the message takes the binary form. */
static void test_event_entry(void **state)
{
	struct probe_event ev = { .kind = PROBE_STALE, .family = 4,
				  .proto = IPPROTO_UDP,
				  .addr = { 198, 51, 100, 23 }, .port = 8443,
				  .real_port = 53, .generation = 41,
				  .count = 3 };
	static const char want[] =
		"MESSAGE={\"kind\":\"stale\"}\n"
		"PRIORITY=6\n"
		"SYSLOG_IDENTIFIER=porthopd\n"
		"PORTHOP_KIND=stale\n"
		"PORTHOP_SOURCE=198.51.100.23\n"
		"PORTHOP_PROTO=udp\n"
		"PORTHOP_PORT=8443\n"
		"PORTHOP_REAL_PORT=53\n"
		"PORTHOP_GENERATION=41\n"
		"PORTHOP_COUNT=3\n";
	const char *msg = "{\"kind\":\"stale\"}";
	struct journal_entry *e;
	const char *data;
	size_t len;

	(void)state;
	e = journal_event_entry(&ev, msg, strlen(msg), "porthopd");
	assert_non_null(e);
	assert_entry(e, want, sizeof(want) - 1);
	journal_entry_free(e);

	ev.real_port = 0;
	ev.kind = PROBE_PROBE;
	ev.proto = IPPROTO_TCP;
	ev.family = 6;
	memset(ev.addr, 0, sizeof(ev.addr));
	ev.addr[0] = 0x20;
	ev.addr[1] = 0x01;
	ev.addr[15] = 1;
	e = journal_event_entry(&ev, "a\nb", 3, "x");
	assert_non_null(e);
	data = journal_entry_data(e, &len);
	assert_memory_equal(data, "MESSAGE\n\x03\0\0\0\0\0\0\0a\nb\n", 20);
	assert_non_null(memmem(data, len, "PORTHOP_KIND=probe\n", 19));
	assert_non_null(memmem(data, len, "PORTHOP_SOURCE=2001::1\n", 23));
	assert_non_null(memmem(data, len, "PORTHOP_PROTO=tcp\n", 18));
	assert_null(memmem(data, len, "PORTHOP_REAL_PORT", 17));
	journal_entry_free(e);
}

/* JOURNAL_STREAM names a descriptor by device and inode: a match for
 * this file's, not for another's nor for malformed text. */
static void test_stream_is(void **state)
{
	char path[] = "/tmp/porthop-journal-XXXXXX";
	int fd = mkstemp(path), other = open("/dev/null", O_RDONLY);
	struct stat st;
	char s[64];

	(void)state;
	assert_true(fd >= 0 && other >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	snprintf(s, sizeof(s), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	assert_true(journal_stream_is(s, fd));
	assert_false(journal_stream_is(s, other));
	assert_false(journal_stream_is(NULL, fd));
	assert_false(journal_stream_is("", fd));
	snprintf(s, sizeof(s), "%llu:%llu ", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	assert_false(journal_stream_is(s, fd));
	snprintf(s, sizeof(s), "%llu", (unsigned long long)st.st_dev);
	assert_false(journal_stream_is(s, fd));
	snprintf(s, sizeof(s), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + 1);
	assert_false(journal_stream_is(s, fd));
	close(fd);
	close(other);
	unlink(path);
}

/* Log lines carry journald's "<N>" priority prefix only when stderr is
 * the stream JOURNAL_STREAM names: a variable inherited from a service
 * (fail2ban's, sshguard's) by a child whose stderr is a pipe or a file
 * must not change that child's lines. */
static void test_log_prefix(void **state)
{
	char path[] = "/tmp/porthop-journal-log-XXXXXX", buf[512], s[64];
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	struct stat st;
	ssize_t n;

	(void)state;
	assert_true(fd >= 0 && saved >= 0);
	/* Someone else's stream: stderr is this file, the variable not. */
	assert_int_equal(setenv("JOURNAL_STREAM", "1:2", 1), 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	log_init("t", 0, false);
	log_warnx("one");
	/* This file's own: the prefix. */
	assert_int_equal(fstat(fd, &st), 0);
	snprintf(s, sizeof(s), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	assert_int_equal(setenv("JOURNAL_STREAM", s, 1), 0);
	log_init("t", 0, false);
	log_warnx("two");
	fflush(stderr);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	unsetenv("JOURNAL_STREAM");
	log_init("t", 0, false);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "t: one\n<4>two\n");
	close(fd);
	unlink(path);
}

/* An entry goes as one datagram, byte for byte; with nobody at the path,
 * the send fails (and says why) instead of blocking. */
static void test_send(void **state)
{
	char dir[] = "/tmp/porthop-journal-XXXXXX";
	char path[96], got[512];
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct journal_entry *e = journal_entry_new();
	struct journal *j;
	const char *data;
	size_t len;
	ssize_t n;
	int s;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/socket", dir);
	j = journal_open(path);
	assert_non_null(j);
	assert_int_equal(journal_entry_add(e, "MESSAGE", "x\ny", 3), 0);
	assert_int_equal(journal_entry_add(e, "PRIORITY", "6", 1), 0);
	assert_true(journal_send(j, e) < 0);

	s = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(s >= 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(journal_send(j, e), 0);
	n = recv(s, got, sizeof(got), 0);
	data = journal_entry_data(e, &len);
	assert_int_equal(n, (ssize_t)len);
	assert_memory_equal(got, data, len);
	close(s);
	unlink(path);
	rmdir(dir);
	journal_free(j);
	journal_entry_free(e);
	assert_null(journal_open(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_event_entry),
		cmocka_unit_test(test_stream_is),
		cmocka_unit_test(test_send),
		cmocka_unit_test(test_log_prefix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
