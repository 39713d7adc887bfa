/* The Prometheus text porthopd renders, line by line, from a known
 * snapshot; and the textfile written atomically, mode 0644. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth.h"
#include "metrics.h"

/* Where text holds line, whole, or NULL. */
static const char *line_at(const char *text, const char *line)
{
	size_t len = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[len] == '\n')
			return p;
	return NULL;
}

#define assert_line(text, line) do { \
	if (line_at((text), (line)) == NULL) \
		fail_msg("missing line: %s\n--- in:\n%s", (line), (text)); \
} while (0)

/* Observations 0.0005 and 0.001 (a bound is inside its bucket), 0.003,
 * 0.3 and 20 (above every bound). */
static void fill_histogram(struct metrics_histogram *h)
{
	static const double seen[] = { 0.0005, 0.001, 0.003, 0.3, 20 };

	memset(h, 0, sizeof(*h));
	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++)
		metrics_observe(h, seen[i]);
}

static void native_snapshot(struct metrics_snapshot *s,
			    struct metrics_histogram *h)
{
	fill_histogram(h);
	memset(s, 0, sizeof(*s));
	s->version = "1.2.3";
	s->mode = "native";
	s->shuffles = 7;
	s->failures = 1;
	s->reconciliations = 2;
	s->checks = 5;
	s->last_check_seconds = 0.0125;
	s->untracking = 1;
	s->untrack_switches = 3;
	s->pairs = 12;
	s->watched = 3;
	s->redis_connected = 1;
	s->triggers[SRC_REDIS] = 4;
	s->triggers[SRC_SIGNAL] = 2;
	s->triggers[SRC_CONTROL] = 1;
	s->triggers[SRC_RECONNECT] = 1;
	s->refused[AUTH_MALFORMED] = 5;
	s->refused[AUTH_BAD_MAC] = 1;
	s->refused[AUTH_REPLAY] = 2;
	s->apply = h;
	s->start_time = 1700000000.5;
	s->last_shuffle_time = 1700000100.25;
}

/* Every sample, with its labels, as a scraper reads it. */
static void test_render_samples(void **state)
{
	struct metrics_histogram h;
	struct metrics_snapshot s;
	char *text;

	(void)state;
	native_snapshot(&s, &h);
	text = metrics_render(&s);
	assert_non_null(text);
	assert_line(text, "porthop_info{version=\"1.2.3\",mode=\"native\"} 1");
	assert_line(text, "porthop_start_time_seconds 1700000000.500");
	assert_line(text, "porthop_shuffles_total 7");
	assert_line(text, "porthop_shuffle_failures_total 1");
	assert_line(text, "porthop_last_shuffle_time_seconds 1700000100.250");
	assert_line(text, "porthop_pairs 12");
	assert_line(text, "porthop_watched_addresses 3");
	assert_line(text, "porthop_redis_connected 1");
	assert_line(text, "porthop_triggers_received_total{source=\"redis\"} 4");
	assert_line(text, "porthop_triggers_received_total{source=\"timer\"} 0");
	assert_line(text, "porthop_triggers_received_total{source=\"signal\"} 2");
	assert_line(text, "porthop_triggers_received_total{source=\"control\"} 1");
	assert_line(text, "porthop_triggers_received_total{source=\"reconnect\"} 1");
	/* Every reason but "ok", each with its count. */
	assert_line(text, "porthop_triggers_refused_total{source=\"redis\",reason=\"malformed\"} 5");
	assert_line(text, "porthop_triggers_refused_total{source=\"redis\",reason=\"bad_mac\"} 1");
	assert_line(text, "porthop_triggers_refused_total{source=\"redis\",reason=\"stale\"} 0");
	assert_line(text, "porthop_triggers_refused_total{source=\"redis\",reason=\"replay\"} 2");
	assert_line(text, "porthop_triggers_refused_total{source=\"redis\",reason=\"busy\"} 0");
	assert_null(strstr(text, "reason=\"ok\""));
	assert_line(text, "porthop_reconciliations_total 2");
	assert_line(text, "porthop_reconcile_checks_total 5");
	assert_line(text, "porthop_reconcile_last_check_seconds 0.012500");
	assert_line(text, "porthop_unwatched_untracked 1");
	assert_line(text, "porthop_untrack_switches_total 3");
	assert_line(text, "# TYPE porthop_shuffles_total counter");
	assert_line(text, "# TYPE porthop_pairs gauge");
	assert_line(text, "# TYPE porthop_triggers_refused_total counter");
	free(text);
}

/* The event hook's runs, failures and kills: shown with the feed and a
 * hook, not without a hook. */
static void test_render_hook(void **state)
{
	struct metrics_histogram h;
	struct metrics_snapshot s;
	struct probe_stats ev = { .dropped = { [PROBE_DROP_STREAM] = 9 } };
	char *text;

	(void)state;
	native_snapshot(&s, &h);
	s.events = &ev;
	text = metrics_render(&s);
	assert_non_null(text);
	assert_line(text, "porthop_events_dropped_total{reason=\"stream\"} 9");
	assert_null(strstr(text, "porthop_events_hook_"));
	free(text);
	s.hook = true;
	s.hook_runs = 5;
	s.hook_failures = 2;
	s.hook_killed = 1;
	text = metrics_render(&s);
	assert_non_null(text);
	assert_line(text, "porthop_events_hook_runs_total 5");
	assert_line(text, "porthop_events_hook_failures_total 2");
	assert_line(text, "porthop_events_hook_killed_total 1");
	assert_line(text, "# TYPE porthop_events_hook_killed_total counter");
	free(text);
}

/* The histogram: cumulative buckets in order of their bounds, +Inf equal
 * to the count, the sum of what was observed. */
static void test_render_histogram(void **state)
{
	static const char *const buckets[] = {
		"porthop_apply_duration_seconds_bucket{le=\"0.001\"} 2",
		"porthop_apply_duration_seconds_bucket{le=\"0.0025\"} 2",
		"porthop_apply_duration_seconds_bucket{le=\"0.005\"} 3",
		"porthop_apply_duration_seconds_bucket{le=\"0.01\"} 3",
		"porthop_apply_duration_seconds_bucket{le=\"0.025\"} 3",
		"porthop_apply_duration_seconds_bucket{le=\"0.05\"} 3",
		"porthop_apply_duration_seconds_bucket{le=\"0.1\"} 3",
		"porthop_apply_duration_seconds_bucket{le=\"0.25\"} 3",
		"porthop_apply_duration_seconds_bucket{le=\"0.5\"} 4",
		"porthop_apply_duration_seconds_bucket{le=\"1\"} 4",
		"porthop_apply_duration_seconds_bucket{le=\"2.5\"} 4",
		"porthop_apply_duration_seconds_bucket{le=\"5\"} 4",
		"porthop_apply_duration_seconds_bucket{le=\"10\"} 4",
		"porthop_apply_duration_seconds_bucket{le=\"+Inf\"} 5",
		"porthop_apply_duration_seconds_sum 20.304500",
		"porthop_apply_duration_seconds_count 5",
	};
	struct metrics_histogram h;
	struct metrics_snapshot s;
	const char *at, *prev;
	char *text;

	(void)state;
	native_snapshot(&s, &h);
	assert_int_equal(h.count, 5);
	assert_int_equal(h.counts[0], 2);
	assert_int_equal(h.counts[METRICS_BUCKETS], 1);
	text = metrics_render(&s);
	assert_non_null(text);
	prev = line_at(text, "# TYPE porthop_apply_duration_seconds histogram");
	assert_non_null(prev);
	/* One after the other, nothing between them. */
	for (size_t i = 0; i < sizeof(buckets) / sizeof(buckets[0]); i++) {
		at = line_at(text, buckets[i]);
		if (at == NULL)
			fail_msg("missing line: %s\n--- in:\n%s", buckets[i], text);
		assert_ptr_equal(strchr(prev, '\n') + 1, at);
		prev = at;
	}
	free(text);
}

/* Every sample's family has its HELP and TYPE before it, once. */
static void test_render_families(void **state)
{
	struct metrics_histogram h;
	struct metrics_snapshot s;
	char *text, *line, *save = NULL;
	char typed[64][96];
	size_t ntyped = 0, samples = 0;

	(void)state;
	native_snapshot(&s, &h);
	text = metrics_render(&s);
	assert_non_null(text);
	assert_int_equal(text[strlen(text) - 1], '\n');
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char name[96];
		size_t n;

		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		if (strncmp(line, "# TYPE ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%95s", name), 1);
			for (size_t i = 0; i < ntyped; i++)
				assert_string_not_equal(typed[i], name);
			assert_true(ntyped < 64);
			snprintf(typed[ntyped++], sizeof(typed[0]), "%s", name);
			continue;
		}
		n = strcspn(line, "{ ");
		assert_true(n > 0 && n < sizeof(name));
		memcpy(name, line, n);
		name[n] = '\0';
		assert_true(ntyped > 0);
		/* A histogram's samples (_bucket, _sum, _count) belong to the
		 * family they extend. */
		for (const char *suffix = "_bucket\0_sum\0_count\0"; *suffix;
		     suffix += strlen(suffix) + 1) {
			size_t base = n - strlen(suffix);

			if (n > strlen(suffix) &&
			    strcmp(name + base, suffix) == 0 &&
			    strlen(typed[ntyped - 1]) == base &&
			    strncmp(name, typed[ntyped - 1], base) == 0)
				name[base] = '\0';
		}
		/* The sample follows its own family's TYPE line. */
		assert_string_equal(typed[ntyped - 1], name);
		samples++;
	}
	assert_true(samples > 30);
	free(text);
}

/* Template mode with Redis off: no untrack or Redis samples at all. */
static void test_render_template_no_redis(void **state)
{
	struct metrics_histogram h;
	struct metrics_snapshot s;
	char *text;

	(void)state;
	native_snapshot(&s, &h);
	memset(&h, 0, sizeof(h));
	s.mode = "template";
	s.untracking = -1;
	s.redis_connected = -1;
	s.last_shuffle_time = 0;
	text = metrics_render(&s);
	assert_non_null(text);
	assert_line(text, "porthop_info{version=\"1.2.3\",mode=\"template\"} 1");
	assert_null(strstr(text, "porthop_redis_connected"));
	assert_null(strstr(text, "porthop_unwatched_untracked"));
	assert_null(strstr(text, "porthop_untrack_switches_total"));
	assert_line(text, "porthop_last_shuffle_time_seconds 0.000");
	assert_line(text, "porthop_apply_duration_seconds_bucket{le=\"+Inf\"} 0");
	assert_line(text, "porthop_apply_duration_seconds_sum 0.000000");
	free(text);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

struct scratch {
	char dir[64];
	char path[128];
	char tmp[160];
};

static int scratch_setup(void **state)
{
	struct scratch *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -1;
	snprintf(s->dir, sizeof(s->dir), "/tmp/porthop-metrics.XXXXXX");
	if (mkdtemp(s->dir) == NULL) {
		free(s);
		return -1;
	}
	snprintf(s->path, sizeof(s->path), "%s/porthop.prom", s->dir);
	snprintf(s->tmp, sizeof(s->tmp), "%s.tmp", s->path);
	*state = s;
	return 0;
}

static int scratch_teardown(void **state)
{
	struct scratch *s = *state;
	char victim[96];

	snprintf(victim, sizeof(victim), "%s/victim", s->dir);
	unlink(s->tmp);
	unlink(s->path);
	unlink(victim);
	rmdir(s->dir);
	free(s);
	return 0;
}

/* A new file: the text, mode 0644, no temporary left. */
static void test_write_new(void **state)
{
	struct scratch *s = *state;
	struct stat st;
	mode_t old = umask(077);	/* the unit's: the file is 0644 all the same */
	char *got;

	assert_int_equal(metrics_write_file(s->path, "porthop_pairs 3\n"), 0);
	umask(old);
	assert_int_equal(stat(s->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0644);
	got = slurp(s->path);
	assert_non_null(got);
	assert_string_equal(got, "porthop_pairs 3\n");
	free(got);
	assert_int_equal(access(s->tmp, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

/* An old file is replaced, never rewritten in place: a reader that has
 * it open (node_exporter mid-scrape) still reads the old text whole. */
static void test_write_replaces_atomically(void **state)
{
	struct scratch *s = *state;
	char buf[64] = "";
	struct stat before, after;
	char *got;
	int fd;

	assert_int_equal(metrics_write_file(s->path, "old text\n"), 0);
	assert_int_equal(stat(s->path, &before), 0);
	fd = open(s->path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(metrics_write_file(s->path, "new text, longer\n"), 0);
	assert_int_equal(stat(s->path, &after), 0);
	assert_int_not_equal(before.st_ino, after.st_ino);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), 9);
	assert_string_equal(buf, "old text\n");
	close(fd);
	got = slurp(s->path);
	assert_non_null(got);
	assert_string_equal(got, "new text, longer\n");
	free(got);
	assert_int_equal(access(s->tmp, F_OK), -1);
}

/* Failures: a missing directory, and a link planted where the temporary
 * goes (not followed; what it points to stays as it was). */
static void test_write_failures(void **state)
{
	struct scratch *s = *state;
	char missing[160], victim[96];
	char *got;
	int fd;

	snprintf(missing, sizeof(missing), "%s/none/porthop.prom", s->dir);
	assert_int_equal(metrics_write_file(missing, "x\n"), -ENOENT);

	snprintf(victim, sizeof(victim), "%s/victim", s->dir);
	fd = open(victim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep\n", 5), 5);
	close(fd);
	assert_int_equal(symlink(victim, s->tmp), 0);
	assert_int_equal(metrics_write_file(s->path, "x\n"), -ELOOP);
	got = slurp(victim);
	assert_non_null(got);
	assert_string_equal(got, "keep\n");
	free(got);
	assert_int_equal(access(s->path, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_samples),
		cmocka_unit_test(test_render_histogram),
		cmocka_unit_test(test_render_families),
		cmocka_unit_test(test_render_template_no_redis),
		cmocka_unit_test(test_render_hook),
		cmocka_unit_test_setup_teardown(test_write_new, scratch_setup,
						scratch_teardown),
		cmocka_unit_test_setup_teardown(test_write_replaces_atomically,
						scratch_setup, scratch_teardown),
		cmocka_unit_test_setup_teardown(test_write_failures,
						scratch_setup, scratch_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
