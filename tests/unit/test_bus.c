/* The Redis subscription against a real redis-server this test starts on
 * 127.0.0.1 and a free port (no namespace, no root): subscribed, a
 * PUBLISH delivered, the server stopped (down, then retries with
 * backoff), started again (subscribed again, every channel).  Exits 77
 * (skipped) if redis-server is not installed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "bus.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 400

static const char *const channels[] = { "ph_one", "ph_two" };

struct redis {
	char dir[64];
	int port;
	pid_t pid;
};

/* What the bus reported. */
struct seen {
	struct event_base *base;
	struct bus *bus;
	unsigned up, down, retry;
	unsigned last_retry_ms;
	char detail[256];
	unsigned messages;
	char channel[64];
	char payload[64];
	size_t len;
};

static void on_message(void *arg, const char *channel, const char *payload,
		       size_t len)
{
	struct seen *s = arg;

	s->messages++;
	snprintf(s->channel, sizeof(s->channel), "%s", channel);
	s->len = len < sizeof(s->payload) ? len : sizeof(s->payload);
	memcpy(s->payload, payload, s->len);
}

static void on_state(void *arg, enum bus_event ev, const char *detail,
		     unsigned retry_ms)
{
	struct seen *s = arg;

	if (ev == BUS_UP)
		s->up++;
	else if (ev == BUS_DOWN)
		s->down++;
	else
		s->retry++;
	s->last_retry_ms = retry_ms;
	snprintf(s->detail, sizeof(s->detail), "%s", detail ? detail : "");
}

/* A port nobody listens on now (the kernel's pick). */
static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool redis_answers(int port)
{
	struct timeval tv = { 1, 0 };
	redisContext *rc = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r = NULL;
	bool ok;

	if (rc && !rc->err)
		r = redisCommand(rc, "PING");
	ok = r && r->type == REDIS_REPLY_STATUS;
	if (r)
		freeReplyObject(r);
	redisFree(rc);
	return ok;
}

/* Starts redis-server on r->port, without persistence, and waits until it
 * answers (10 s at most). */
static void redis_start(struct redis *r)
{
	char port[16];
	time_t end = time(NULL) + 10;

	snprintf(port, sizeof(port), "%d", r->port);
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (r->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execlp("redis-server", "redis-server", "--port", port,
		       "--bind", "127.0.0.1", "--save", "", "--appendonly",
		       "no", "--daemonize", "no", "--dir", r->dir, (char *)NULL);
		_exit(127);
	}
	while (!redis_answers(r->port)) {
		if (waitpid(r->pid, NULL, WNOHANG) == r->pid)
			fail_msg("redis-server on port %d ended at start", r->port);
		if (time(NULL) > end)
			fail_msg("redis-server on port %d never answered", r->port);
		usleep(20000);
	}
}

static void redis_stop(struct redis *r)
{
	if (r->pid <= 0)
		return;
	kill(r->pid, SIGTERM);
	waitpid(r->pid, NULL, 0);
	r->pid = 0;
}

/* PUBLISH payload (len bytes) on channel; returns the subscribers that
 * got it. */
static long long publish(int port, const char *channel, const char *payload,
			 size_t len)
{
	redisContext *rc = redisConnect("127.0.0.1", port);
	redisReply *r;
	long long n;

	assert_non_null(rc);
	assert_int_equal(rc->err, 0);
	r = redisCommand(rc, "PUBLISH %s %b", channel, payload, len);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	n = r->integer;
	freeReplyObject(r);
	redisFree(rc);
	return n;
}

/* Runs the loop in ticks of 20 ms until done(s), 10 s at most. */
static void run_until(struct seen *s, bool (*done)(const struct seen *),
		      const char *what)
{
	struct timeval tick = { 0, 20000 };
	time_t end = time(NULL) + 10;

	while (!done(s)) {
		if (time(NULL) > end)
			fail_msg("timed out waiting for %s", what);
		event_base_loopexit(s->base, &tick);
		event_base_dispatch(s->base);
	}
}

static bool up_once(const struct seen *s) { return s->up >= 1; }
static bool up_twice(const struct seen *s) { return s->up >= 2; }
static bool one_message(const struct seen *s) { return s->messages >= 1; }
static bool two_messages(const struct seen *s) { return s->messages >= 2; }
static bool three_messages(const struct seen *s) { return s->messages >= 3; }
static bool went_down(const struct seen *s) { return s->down >= 1; }
static bool retried(const struct seen *s) { return s->retry >= 1; }

static int setup(void **state)
{
	struct redis *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -1;
	snprintf(r->dir, sizeof(r->dir), "/tmp/porthop-bus.XXXXXX");
	if (mkdtemp(r->dir) == NULL)
		return -1;
	r->port = free_port();
	if (r->port <= 0)
		return -1;
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct redis *r = *state;
	struct dirent *e;
	DIR *d;

	redis_stop(r);
	/* Whatever the server left in its directory. */
	d = opendir(r->dir);
	while (d && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
	rmdir(r->dir);
	free(r);
	return 0;
}

/* Up, a message, down with retries, up again on every channel. */
static void test_subscribe_lose_resubscribe(void **state)
{
	struct redis *r = *state;
	struct seen s = { 0 };
	struct bus_options opt = {
		.host = "127.0.0.1",
		.port = r->port,
		.channels = channels,
		.nchannels = 2,
		.backoff_min_ms = BACKOFF_MIN_MS,
		.backoff_max_ms = BACKOFF_MAX_MS,
		.connect_timeout_ms = 2000,
	};

	redis_start(r);
	s.base = event_base_new();
	assert_non_null(s.base);
	s.bus = bus_new(s.base, &opt, on_message, on_state, &s);
	assert_non_null(s.bus);
	assert_false(bus_is_up(s.bus));
	assert_int_equal(bus_start(s.bus), 0);
	run_until(&s, up_once, "BUS_UP");
	assert_true(bus_is_up(s.bus));
	assert_string_equal(s.detail, "subscribed");
	assert_int_equal(bus_connections(s.bus), 1);

	/* A message, binary-safe, on the second channel. */
	assert_int_equal(publish(r->port, "ph_two", "hello\0there", 11), 1);
	run_until(&s, one_message, "the message");
	assert_string_equal(s.channel, "ph_two");
	assert_int_equal(s.len, 11);
	assert_memory_equal(s.payload, "hello\0there", 11);
	assert_int_equal(bus_messages(s.bus), 1);

	/* The server goes: down once, then further failed attempts, each
	 * with a backoff delay inside its jitter's range. */
	redis_stop(r);
	run_until(&s, went_down, "BUS_DOWN");
	assert_false(bus_is_up(s.bus));
	assert_true(s.detail[0] != '\0');
	assert_in_range(s.last_retry_ms, BACKOFF_MIN_MS / 2, BACKOFF_MIN_MS);
	run_until(&s, retried, "BUS_RETRY");
	assert_int_equal(s.down, 1);
	assert_in_range(s.last_retry_ms, BACKOFF_MIN_MS, 2 * BACKOFF_MIN_MS);
	assert_int_equal(s.up, 1);

	/* Back: subscribed again to both channels. */
	redis_start(r);
	run_until(&s, up_twice, "BUS_UP again");
	assert_true(bus_is_up(s.bus));
	assert_int_equal(bus_connections(s.bus), 2);
	assert_int_equal(publish(r->port, "ph_one", "a", 1), 1);
	run_until(&s, two_messages, "a message after the restart");
	assert_string_equal(s.channel, "ph_one");
	assert_int_equal(publish(r->port, "ph_two", "b", 1), 1);
	run_until(&s, three_messages, "a message on the other channel");
	assert_string_equal(s.channel, "ph_two");
	assert_int_equal(bus_messages(s.bus), 3);

	bus_free(s.bus);
	event_base_free(s.base);
}

/* No channel: nothing to subscribe to, no bus. */
static void test_no_channel(void **state)
{
	struct event_base *base = event_base_new();
	struct bus_options opt = { .host = "127.0.0.1", .port = 1 };
	struct seen s = { 0 };

	(void)state;
	assert_null(bus_new(base, &opt, on_message, on_state, &s));
	event_base_free(base);
}

/* Whether a command is on PATH. */
static bool on_path(const char *name)
{
	const char *path = getenv("PATH");
	char dir[4096];

	while (path && *path) {
		size_t n = strcspn(path, ":");

		if (n == 0)
			snprintf(dir, sizeof(dir), "./%s", name);
		else
			snprintf(dir, sizeof(dir), "%.*s/%s", (int)n, path,
				 name);
		if (access(dir, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_subscribe_lose_resubscribe,
						setup, teardown),
		cmocka_unit_test(test_no_channel),
	};

	if (!on_path("redis-server")) {
		printf("skipped: redis-server is not installed "
		       "(scripts/deps.sh installs it)\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
