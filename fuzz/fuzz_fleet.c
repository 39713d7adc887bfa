/* libFuzzer harness: what a host reads from the fleet stream and its
 * snapshot, on arbitrary bytes.
 *
 * - The input, one stream entry per line (at most 16): each decoded
 *   (fleet_op_decode); what it accepts is written again (fleet_op_encode)
 *   and must read back the same; the accepted ones are cut into runs
 *   (fleet_run), which must cover them in order and keep to one kind and
 *   one origin, an add run naming no address twice.
 * - The whole input as a signed entry: unsigned, its MAC must not verify
 *   (auth_verify_mac); signed with the key here, it must verify and give
 *   the input back, which is then decoded.
 * - The input as a snapshot field, NET '\t' VALUE (fleet_snap_parse):
 *   every item kept must be live, and converging to the items from the
 *   same items must change nothing (fleet_diff).
 * - The first line as a stream ID: what parses must format and parse back
 *   the same.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "fleet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000
#define MAX_LINES 16

static void check(bool ok)
{
	if (!ok)
		abort();
}

static bool same_op(const struct fleet_op *a, const struct fleet_op *b)
{
	return a->kind == b->kind && strcmp(a->address, b->address) == 0 &&
	       strcmp(a->origin, b->origin) == 0 && a->expires == b->expires &&
	       a->ts == b->ts;
}

static void entries(const char *text, size_t size)
{
	struct fleet_op ops[MAX_LINES];
	bool ok[MAX_LINES];
	size_t n = 0, len;
	char why[256];

	for (size_t at = 0; at < size && n < MAX_LINES; n++) {
		const char *nl = memchr(text + at, '\n', size - at);
		size_t end = nl ? (size_t)(nl - text) : size;
		char *again = NULL;
		struct fleet_op back;

		memset(&ops[n], 0, sizeof(ops[n]));
		ok[n] = fleet_op_decode(text + at, end - at, &ops[n], why,
					sizeof(why)) == 0;
		if (ok[n]) {
			check(fleet_op_encode(&ops[n], &again) == 0);
			check(fleet_op_decode(again, strlen(again), &back, why,
					      sizeof(why)) == 0);
			check(same_op(&ops[n], &back));
			free(again);
		} else {
			check(why[0] != '\0');
		}
		at = end + 1;
	}
	for (size_t i = 0; i < n; i += len) {
		enum fleet_run_kind kind;

		len = fleet_run(&ops[i], &ok[i], n - i, NOW, 8, &kind);
		check(len >= 1 && len <= n - i && len <= 8);
		check(kind == fleet_run_kind_of(&ops[i], ok[i], NOW));
		if (kind == FLEET_RUN_SKIP || kind == FLEET_RUN_TRIGGER)
			check(len == 1);
		for (size_t k = i + 1; k < i + len; k++) {
			check(fleet_run_kind_of(&ops[k], ok[k], NOW) == kind);
			check(strcmp(ops[k].origin, ops[i].origin) == 0);
			for (size_t j = i; kind == FLEET_RUN_ADD && j < k; j++)
				check(strcmp(ops[j].address, ops[k].address));
		}
	}
}

static void signed_entry(const char *text, size_t size)
{
	static const unsigned char key[] =
		"fuzzing-key-0123456789-fleet-stream-entries";
	static struct auth *a;
	const char *payload;
	char *copy, *msg = NULL;
	size_t len;
	struct fleet_op op;
	char why[256];

	if (a == NULL)
		a = auth_new(key, sizeof(key) - 1, 30, 1024);
	if (a == NULL)
		return;
	/* Not signed by the key: a MAC that verifies would be a forgery. */
	check(auth_verify_mac(a, text, size, &payload, &len) != AUTH_OK);
	copy = strndup(text, size);
	if (copy == NULL)
		return;
	if (auth_sign(key, sizeof(key) - 1, NOW, copy, &msg) == 0) {
		/* A reader takes at most AUTH_MSG_MAX bytes; auth_sign does
		 * not limit what it writes (publishers sign operations of at
		 * most FLEET_OP_MAX bytes). */
		if (strlen(msg) > AUTH_MSG_MAX) {
			check(auth_verify_mac(a, msg, strlen(msg), &payload,
					      &len) != AUTH_OK);
			free(msg);
			free(copy);
			return;
		}
		check(auth_verify_mac(a, msg, strlen(msg), &payload, &len) ==
		      AUTH_OK);
		check(len == strlen(copy) && memcmp(payload, copy, len) == 0);
		(void)fleet_op_decode(payload, len, &op, why, sizeof(why));
		free(msg);
	}
	free(copy);
}

static void snapshot_field(const char *text, size_t size)
{
	const char *tab = memchr(text, '\t', size);
	struct fleet_item *items = NULL, *copy = NULL, *add = NULL,
			  *del = NULL;
	size_t n = 0, cap = 0, nadd = 0, ndel = 0;
	char net[FLEET_NET_MAX + 8];
	int r;

	if (tab == NULL || (size_t)(tab - text) >= sizeof(net))
		return;
	memcpy(net, text, (size_t)(tab - text));
	net[tab - text] = '\0';
	r = fleet_snap_parse(net, tab + 1, size - (size_t)(tab - text) - 1, NOW,
			     &items, &n, &cap);
	check(r == -EINVAL || r == -ENOMEM ? n == 0 : (size_t)r == n);
	for (size_t i = 0; i < n; i++)
		check(items[i].expires == 0 || items[i].expires > NOW);
	if (n > 0 && (copy = malloc(n * sizeof(*copy))) != NULL) {
		memcpy(copy, items, n * sizeof(*copy));
		if (fleet_diff(items, n, copy, n, &add, &nadd, &del, &ndel) ==
		    0) {
			check(nadd == 0 && ndel == 0);
			free(add);
			free(del);
		}
	}
	free(copy);
	free(items);
}

static void stream_id(const char *text, size_t size)
{
	struct fleet_id id, back;
	char buf[FLEET_ID_MAX], *line;

	line = strndup(text, size);
	if (line == NULL)
		return;
	line[strcspn(line, "\n")] = '\0';
	if (fleet_id_parse(line, &id) == 0) {
		fleet_id_format(&id, buf, sizeof(buf));
		check(fleet_id_parse(buf, &back) == 0);
		check(fleet_id_cmp(&id, &back) == 0);
	}
	free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;

	/* A host reads at most FLEET_OP_MAX bytes per entry, more than
	 * that only as refusals: longer inputs add nothing. */
	if (size > 4 * FLEET_OP_MAX)
		return 0;
	entries(text, size);
	signed_entry(text, size);
	snapshot_field(text, size);
	stream_id(text, size);
	return 0;
}
