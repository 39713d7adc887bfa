/* libFuzzer harness: the configuration loader on arbitrary bytes (the
 * whole path: file checks, JSON parsing, validation). */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	struct diag *d;
	struct config *c;
	int fd = memfd_create("porthop-fuzz", MFD_CLOEXEC);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	d = diag_new();
	/* Rule files named inside resolve against the working directory:
	 * mostly missing, which is one more error path. */
	c = config_load(path, 0, d);
	if (c) {
		config_pair_count(c);
		for (size_t i = 0; i < config_watched_count(c); i++)
			config_watched(c, i);
	}
	config_free(c);
	diag_free(d);
	close(fd);
	return 0;
}
