/* libFuzzer harness: the state file loader on arbitrary bytes (a
 * runtime.state in a scratch directory, loaded, then removed with whatever
 * was moved aside).  Every record it replays must be one the writer takes
 * back: what the loader accepts, the journal can write. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "statefile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static int put(void *arg, const struct watchlist_item *it)
{
	if (statefile_put(arg, it) != 0)
		abort();	/* read back but refused by the writer */
	return 0;
}

static int del(void *arg, const struct config_net *net, const char *origin)
{
	if (statefile_del(arg, net, origin) != 0)
		abort();
	return 0;
}

static int flush(void *arg, const char *origin)
{
	if (statefile_flush_origin(arg, origin) != 0)
		abort();
	return 0;
}

static void clean(void)
{
	struct dirent *e;
	DIR *d = opendir(dir);
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
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct statefile *s;
	char path[128], *note = NULL;
	FILE *f;

	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/porthop-fuzz-state.XXXXXX");
		if (mkdtemp(dir) == NULL)
			abort();
	}
	snprintf(path, sizeof(path), "%s/" STATEFILE_NAME, dir);
	f = fopen(path, "w");
	if (f == NULL)
		abort();
	if (size > 0 && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	s = statefile_open(dir, NULL);
	if (s == NULL)
		abort();
	/* Replays into s's own journal buffer; nothing is committed. */
	if (statefile_load(s, 1700000000, put, del, flush, s, &note) < 0)
		abort();	/* a scratch directory: moving aside works */
	free(note);
	statefile_free(s);
	clean();
	return 0;
}
