/* libFuzzer harness: knocks, as porthopd reads them from the kernel (an
 * IP packet) and as datagrams.  Nothing not made by knock_encode with the
 * key may be accepted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "knock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char text[] = "{\"porthop_client_key\": 1, \"name\": "
		"\"fuzz\", \"use\": \"knock\", \"secret\": \"0011223344556677"
		"8899aabbccddeeff00112233445566778899aabbccddeeff\"}";
	static struct knock_verifier *v;
	const uint8_t *payload;
	unsigned char src[16];
	struct knock_msg m;
	size_t plen;
	int family;

	if (v == NULL) {
		struct diag *d = diag_new();
		struct clientkey *k = NULL;

		v = knock_verifier_new(30, 64);
		if (v == NULL || d == NULL ||
		    clientkey_parse("fuzz", text, strlen(text), d, &k) < 0 ||
		    knock_verifier_add_key(v, k) < 0)
			abort();
		clientkey_free(k);
		diag_free(d);
	}
	(void)knock_parse(data, size, &m);
	/* A forged MAC would have to be the key's HMAC. */
	if (knock_verify(v, data, size, 1700000000, &m) == KNOCK_OK)
		abort();
	if (knock_udp_payload(data, size, 62201, &family, src, &payload,
			      &plen) == 0) {
		if (payload < data || payload + plen > data + size)
			abort();
		if (knock_verify(v, payload, plen, 1700000000, &m) == KNOCK_OK)
			abort();
	}
	return 0;
}
