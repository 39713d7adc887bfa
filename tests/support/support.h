/*
 * support: what the C tests share besides the recorder: loading a
 * configuration (a file of the corpus, or text written for one test) and
 * an engine on a recorder as a cmocka fixture.  Include it after cmocka.h.
 */
#ifndef PORTHOP_TEST_SUPPORT_H
#define PORTHOP_TEST_SUPPORT_H

#include "recorder.h"

struct config;
struct engine;

/* The configuration at path (relative to the working directory: the
 * tests chdir to the corpus); fails the test if it does not load.  The
 * caller owns it. */
struct config *support_load(const char *path);

/* The configuration text holds, written to a temporary file that is
 * removed once loaded; otherwise as support_load. */
struct config *support_load_text(const char *text);

/* The configuration whose nftables_service_configuration holds the
 * members `nftables` (JSON text without its braces), with a Redis part
 * no test looks at; otherwise as support_load_text. */
struct config *support_load_nftables(const char *nftables);

/* A recorder, and an engine on it (which owns its configuration). */
struct support_engine {
	struct nftio *io;
	struct engine *e;	/* NULL for a recorder alone; a test that
				 * makes its own engine sets it here, and
				 * the teardown frees it */
};

/* cmocka fixture: *state holds the path of a configuration for the
 * engine (support_load), or NULL for a recorder alone; it becomes the
 * struct support_engine.  The teardown frees the engine, if any, and the
 * recorder. */
/* Files this process writes may grow to size bytes at most: writes past
 * it fail with EFBIG (SIGXFSZ ignored), as a full disk fails with ENOSPC,
 * for root too.  0 lifts the limit. */
void support_limit_file_size(unsigned long size);

int support_engine_setup(void **state);
int support_engine_teardown(void **state);

/* A test f with the fixture above on the configuration at path. */
#define SUPPORT_ENGINE_TEST(f, path)                                       \
	cmocka_unit_test_prestate_setup_teardown(f, support_engine_setup, \
						 support_engine_teardown, \
						 (void *)(path))
/* A test f with the fixture's recorder alone. */
#define SUPPORT_RECORDER_TEST(f) SUPPORT_ENGINE_TEST(f, NULL)

/* Empties dir (its files and empty subdirectories) and removes it. */
void support_remove_dir(const char *dir);

#endif
