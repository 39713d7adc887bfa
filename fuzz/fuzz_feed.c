/* libFuzzer harness: the feed parser on arbitrary bytes, then every
 * entry it accepts put into a watch list (the path of `watch add
 * --file`, short of the kernel). */
#include <stdint.h>
#include <stdlib.h>

#include "watchfeed.h"
#include "watchlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Small limits reach the limit paths; the widths are the
	 * defaults. */
	static const struct watchfeed_limits lim = {
		.min_len_v4 = 16, .min_len_v6 = 32, .max_ttl = 31536000,
		.max_lines = 64,
	};
	static const size_t no_n[CONFIG_NPROTO];
	struct watchfeed_line *v = NULL;
	struct watchlist *w;
	struct diag *d = diag_new();
	size_t n = 0;

	if (d == NULL)
		return 0;
	if (watchfeed_parse((const char *)data, size, &lim, &v, &n, d) == 0) {
		w = watchlist_new(48);
		for (size_t i = 0; w && i < n; i++)
			watchlist_put(w, &v[i].net, i % 2 ? "a" : "b", 0,
				      v[i].ttl < 0 ? 0 : v[i].ttl, NULL, no_n);
		if (w)
			watchlist_expire(w, 3600, 0, NULL, NULL);
		watchlist_free(w);
		free(v);
	}
	diag_free(d);
	return 0;
}
