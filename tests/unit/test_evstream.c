/* The event stream's bounds without Redis: an append while the
 * connection is down is refused; against a peer that accepts the
 * connection and never answers, EVSTREAM_INFLIGHT appends wait and the
 * next is refused; when that peer goes, every waiting append is lost and
 * reported to on_lost; appends still waiting when the stream is freed
 * are reported too.  (it_events_outage restarts a real Redis.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "evstream.h"

static void on_lost(void *arg, uint64_t n)
{
	*(uint64_t *)arg += n;
}

/* A listening socket on 127.0.0.1 (the kernel's port) that never
 * accepts: the kernel completes the connection, nobody reads it. */
static int silent_peer(int *ret_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

static void spin(struct event_base *base)
{
	struct timeval tenth = { 0, 100000 };

	event_base_loopexit(base, &tenth);
	event_base_dispatch(base);
}

/* A stream connected to a silent peer (*ret_fd, the listener), its
 * losses added to *lost. */
static struct evstream *connected(struct event_base *base, uint64_t *lost,
				  int *ret_fd)
{
	int port;
	struct evstream_options o = { .host = "127.0.0.1", .key = "k",
				      .maxlen = 10, .on_lost = on_lost,
				      .arg = lost };
	struct evstream *s;

	*ret_fd = silent_peer(&port);
	o.port = port;
	s = evstream_new(base, &o);
	assert_non_null(s);
	for (int i = 0; i < 100 && !evstream_is_up(s); i++)
		spin(base);
	assert_true(evstream_is_up(s));
	return s;
}

static void test_down(void **state)
{
	struct event_base *base = event_base_new();
	uint64_t lost = 0;
	int port, fd = silent_peer(&port);
	struct evstream_options o = { .host = "127.0.0.1", .key = "k",
				      .maxlen = 10, .on_lost = on_lost,
				      .arg = &lost };
	struct evstream *s;

	(void)state;
	close(fd);		/* nobody listens there now */
	o.port = port;
	s = evstream_new(base, &o);
	assert_non_null(s);
	assert_int_equal(evstream_add(s, "{}", 2), -EAGAIN);
	spin(base);
	assert_false(evstream_is_up(s));
	assert_int_equal(evstream_add(s, "{}", 2), -EAGAIN);
	evstream_free(s);
	/* Refused appends are the caller's to count, not lost ones. */
	assert_int_equal(lost, 0);
	event_base_free(base);
}

static void test_backlog_and_loss(void **state)
{
	struct event_base *base = event_base_new();
	uint64_t lost = 0;
	int fd;
	struct evstream *s = connected(base, &lost, &fd);

	(void)state;
	for (int i = 0; i < EVSTREAM_INFLIGHT; i++)
		assert_int_equal(evstream_add(s, "{\"kind\":\"probe\"}", 16), 0);
	assert_int_equal(evstream_add(s, "{}", 2), -EAGAIN);
	spin(base);		/* written, no reply comes */
	assert_int_equal(evstream_add(s, "{}", 2), -EAGAIN);
	assert_int_equal(lost, 0);
	/* The peer goes (its queued connection reset): all of them lost. */
	close(fd);
	for (int i = 0; i < 100 && lost < EVSTREAM_INFLIGHT; i++)
		spin(base);
	assert_int_equal(lost, EVSTREAM_INFLIGHT);
	assert_int_equal(evstream_lost(s), EVSTREAM_INFLIGHT);
	assert_int_equal(evstream_acked(s), 0);
	assert_false(evstream_is_up(s));
	assert_int_equal(evstream_add(s, "{}", 2), -EAGAIN);
	evstream_free(s);
	assert_int_equal(lost, EVSTREAM_INFLIGHT);
	event_base_free(base);
}

/* Freed with appends unacknowledged: reported lost. */
static void test_free_reports(void **state)
{
	struct event_base *base = event_base_new();
	uint64_t lost = 0;
	int fd;
	struct evstream *s = connected(base, &lost, &fd);

	(void)state;
	for (int i = 0; i < 10; i++)
		assert_int_equal(evstream_add(s, "{}", 2), 0);
	spin(base);
	evstream_free(s);
	assert_int_equal(lost, 10);
	close(fd);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_down),
		cmocka_unit_test(test_backlog_and_loss),
		cmocka_unit_test(test_free_reports),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
