/* libFuzzer harness: the Local API's decision stream (the bouncer's one
 * input from the network) through the parser and the model: parse, apply
 * as a startup and as an update, build the requests. */
#include <stdint.h>
#include <stdlib.h>

#include "bouncer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *const types[] = { (char *)"ban", (char *)"captcha" };
	struct bouncer_stream *s = NULL;
	struct diag *d = diag_new();
	struct bouncer *b = bouncer_new("crowdsec", 31536000);
	json_t *add = NULL, *del = NULL;

	if (d && b && bouncer_stream_parse((const char *)data, size, types, 2,
					   d, &s) == 0) {
		bouncer_apply(b, s, true, 1000);
		bouncer_apply(b, s, false, 1001);
		if (bouncer_push_requests(b, 1002, &add, &del) == 0) {
			json_decref(add);
			json_decref(del);
		}
		bouncer_net_count(b, 1003);
	}
	bouncer_stream_free(s);
	bouncer_free(b);
	diag_free(d);
	return 0;
}
