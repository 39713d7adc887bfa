/*
 * support: the C tests' shared helpers (see support.h): configurations
 * loaded or fail, and the engine-on-a-recorder fixture.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>
#include <dirent.h>
#include <string.h>

#include "support.h"
#include "support_fleet.h"

#include "config.h"
#include "diag.h"
#include "engine.h"

struct config *support_load(const char *path)
{
	struct diag *d = diag_new();
	struct config *c = config_load(path, 0, d);

	if (c == NULL)
		for (size_t i = 0; i < diag_count(d); i++)
			print_message("  %s\n", diag_message(d, i, NULL));
	assert_non_null(c);
	diag_free(d);
	return c;
}

struct config *support_load_text(const char *text)
{
	char path[] = "/tmp/porthop-test-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
	struct config *c;

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	c = support_load(path);
	unlink(path);
	return c;
}

struct config *support_load_nftables(const char *nftables)
{
	char *text = NULL;
	struct config *c;

	assert_true(asprintf(&text, "{\"redis_connection_configuration\": "
			     "{\"host\": \"127.0.0.1\", \"port\": 6379, "
			     "\"db\": 0, \"charset\": \"utf-8\", "
			     "\"decode_responses\": true}, "
			     "\"redis_subscriber_configuration\": "
			     "{\"subscriber_channel_names\": [\"c\"]}, "
			     "\"nftables_service_configuration\": {%s}}\n",
			     nftables) > 0);
	c = support_load_text(text);
	free(text);
	return c;
}

int support_engine_setup(void **state)
{
	const char *path = *state;
	struct support_engine *f = calloc(1, sizeof(*f));

	if (f == NULL || (f->io = nftio_new_recorder()) == NULL) {
		free(f);
		return -1;
	}
	*state = f;
	if (path)
		f->e = engine_new(support_load(path), f->io);
	return path && f->e == NULL ? -1 : 0;
}

int support_engine_teardown(void **state)
{
	struct support_engine *f = *state;

	engine_free(f->e);
	nftio_free(f->io);
	free(f);
	return 0;
}

void support_limit_file_size(unsigned long size)
{
	static struct rlimit saved;
	static bool have;
	struct rlimit rl;

	if (!have) {
		assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
		signal(SIGXFSZ, SIG_IGN);
		have = true;
	}
	if (size == 0) {
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
		return;
	}
	rl = saved;
	rl.rlim_cur = size;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

void support_remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (unlink(p) < 0)
			rmdir(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

void support_fleet_done(void *arg, size_t from, size_t n,
			enum fleet_verdict verdict)
{
	struct support_fleet_got *g = arg;

	assert_true(from + n <= 8);
	for (size_t i = from; i < from + n; i++) {
		g->v[i] = verdict;
		g->calls[i]++;
	}
}
