/* libFuzzer harness: control requests (one JSON object per input) run by
 * command_run on one core over the recorder backend, which lives across
 * inputs, so that runtime entries added by one input meet the deletes,
 * flushes, shuffles and reloads of later ones.  The state is kept in
 * memory (state_directory ""): nothing is written but the configuration,
 * once.  After each input: every entry listed is watched, every runtime
 * entry watched is held by an origin, and the map matches the
 * configuration pair for pair. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "command.h"
#include "config.h"
#include "core.h"
#include "engine.h"
#include "recorder.h"
#include "shuffle.h"
#include "watchlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct nftio *io;
static struct core *core;
static char path[] = "/tmp/porthop-fuzz-control-XXXXXX";
static char run_dir[] = "/tmp/porthop-fuzz-run-XXXXXX";

static const char CONFIG[] =
	"{\"redis_connection_configuration\": {\"host\": \"127.0.0.1\", "
	"\"port\": 6379, \"db\": 0, \"charset\": \"utf-8\", "
	"\"decode_responses\": true}, "
	"\"redis_subscriber_configuration\": "
	"{\"subscriber_channel_names\": [\"c\"]}, "
	"\"porthopd\": {\"state_directory\": \"\", "
	"\"max_runtime_entries\": 4096, \"min_prefix_len_v4\": 20, "
	"\"min_prefix_len_v6\": 112, \"max_ttl_seconds\": 86400}, "
	"\"nftables_service_configuration\": {\"max_port_number\": 1000, "
	"\"tcp_ports\": [22, 80, 443], \"udp_ports\": [53], "
	"\"table_name\": \"mtd_fuzz\", \"untrack_unwatched\": true, "
	"\"watched_addresses\": [{\"ip\": \"10.0.0.3\"}, "
	"{\"ip\": \"10.1.0.0/24\"}, {\"ip\": \"10.1.0.7\"}, "
	"{\"ip\": \"2001:db8::/120\"}], "
	"\"trusted_addresses\": [\"10.2.3.0/25\", \"10.2.1.17\", "
	"\"2001:db8:5::c0/123\"]}}\n";

static void on_log(void *arg, enum core_level level, const char *line)
{
	(void)arg;
	(void)level;
	(void)line;
}

static void on_schedule(void *arg, long long wait_ms)
{
	(void)arg;
	(void)wait_ms;
}

/* The inputs since the start, the last ones: a failure depends on what
 * earlier inputs left, so it prints them (oldest first). */
#define HISTORY 32
static char history[HISTORY][512];
static size_t nhistory;

static void fail(const char *what, const char *net)
{
	for (size_t i = nhistory > HISTORY ? nhistory - HISTORY : 0;
	     i < nhistory; i++)
		fprintf(stderr, "input %zu: %s\n", i, history[i % HISTORY]);
	fprintf(stderr, "fuzz_control: %s%s%s\n", what, net ? ": " : "",
		net ? net : "");
	abort();
}

/* At exit: the core, then the configuration file and the claims. */
static void cleanup(void)
{
	DIR *d;
	struct dirent *e;
	char p[256];

	core_free(core);
	nftio_free(io);
	unlink(path);
	d = opendir(run_dir);
	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", run_dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(run_dir);
}

static int init(void)
{
	struct core_hooks hooks = { .log = on_log, .schedule = on_schedule };
	struct config *cfg;
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, CONFIG, sizeof(CONFIG) - 1) !=
			      (ssize_t)(sizeof(CONFIG) - 1) ||
	    close(fd) < 0 || mkdtemp(run_dir) == NULL)
		abort();
	io = nftio_new_recorder();
	cfg = io ? core_load(io, path, on_log, NULL, NULL) : NULL;
	core = cfg ? core_new(io, cfg, path, &hooks) : NULL;
	if (core == NULL)
		abort();
	core_set_run_dir(core, run_dir);
	if (core_start(core) < 0)
		abort();
	atexit(cleanup);
	return 0;
}

static int listed_is_watched(void *arg, const struct watchlist_item *it)
{
	const struct config *c = arg;

	if (config_watched_find(c, it->net.text) < 0)
		fail("held by an origin, not in force", it->net.text);
	return 0;
}

static void check(void)
{
	const struct config *c = core_config(core);
	const struct shuffle_map *m = engine_map(core_engine(core));
	const struct watchlist *w = core_watchlist(core);
	size_t pairs = 0;

	watchlist_foreach(w, NULL, listed_is_watched, (void *)c);
	for (size_t i = config_configured_count(c);
	     i < config_watched_count(c); i++)
		if (!config_watched(c, i)->runtime ||
		    watchlist_holders(w, &config_watched(c, i)->net) == 0)
			fail("in force, held by nobody",
			     config_watched(c, i)->net.text);
	if (m == NULL || m->nentries != config_watched_count(c))
		fail("the map's entries are not the watched ones", NULL);
	for (size_t i = 0; i < m->nentries; i++) {
		const struct config_watched *cw = config_watched(c, i);

		if (m->entries[i].watched != i ||
		    m->entries[i].npairs != cw->nports[0] + cw->nports[1] ||
		    config_watched_find(c, cw->net.text) != (long)i)
			fail("map entry out of place", cw->net.text);
		for (size_t k = 0; k < m->entries[i].npairs; k++) {
			const struct shuffle_pair *p = &m->entries[i].pairs[k];

			if (p->redirect < 1 || p->redirect > config_max_port(c) ||
			    config_proto_port_used(c, p->proto, p->redirect))
				fail("bad redirect", cw->net.text);
		}
		pairs += m->entries[i].npairs;
	}
	if (pairs != config_pair_count(c))
		fail("config_pair_count is not the map's pairs", NULL);
}

/* Keeps the list small across inputs: every origin flushed. */
static void trim(void)
{
	const struct watchlist *w = core_watchlist(core);
	char names[64][WATCHLIST_ORIGIN_MAX + 1];
	struct core_watch_result res;
	size_t n = 0;

	if (watchlist_count(w) < 512)
		return;
	for (size_t i = 0; i < watchlist_origin_count(w) && n < 64; i++)
		snprintf(names[n++], sizeof(names[0]), "%s",
			 watchlist_origin(w, i)->name);
	for (size_t i = 0; i < n; i++)
		core_watch_flush(core, names[i], &res, NULL, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready = -1;
	json_t *req, *reply;
	json_error_t jerr;
	char *err = NULL;

	if (ready < 0)
		ready = init();
	snprintf(history[nhistory++ % HISTORY], sizeof(history[0]), "%.*s",
		 (int)(size < 500 ? size : 500), (const char *)data);
	req = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES,
			 &jerr);
	if (json_is_object(req)) {
		reply = command_run(core, NULL, req, 0);
		if (reply == NULL || !json_is_object(reply))
			fail("no reply", NULL);	/* no socket: never deferred */
		json_decref(reply);
	}
	json_decref(req);
	check();
	/* What the loop would do next: the pending shuffle, expiry. */
	core_run_pending(core, &err);
	free(err);
	check();
	core_watch_expire(core);
	check();
	trim();
	check();
	return 0;
}
