/* libFuzzer harness: jsonflat against jansson, on arbitrary bytes.
 *
 * - What the fast reader takes, jansson takes too, as an object with the
 *   same members: each key's value of the same type, the same string
 *   (length and bytes) or integer.
 * - The fast reader declines no flat object it should read: one of at
 *   most JSONFLAT_MEMBERS_MAX string and integer members, written in
 *   printable ASCII and JSON's whitespace, without \u escapes.
 * - jsonflat_load (the fast reader, else jansson) succeeds exactly when
 *   jansson reads an object of at most JSONFLAT_MEMBERS_MAX members, and
 *   then holds each of them, other value types as JSONFLAT_OTHER.
 */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonflat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* f's members are o's. */
static void same_members(const struct jsonflat *f, json_t *o)
{
	check(json_is_object(o) && json_object_size(o) == f->n);
	for (size_t i = 0; i < f->n; i++) {
		const struct jsonflat_member *m = &f->m[i];
		json_t *v = json_object_get(o, m->key);

		check(v != NULL);
		switch (m->type) {
		case JSONFLAT_STRING:
			check(json_is_string(v) &&
			      json_string_length(v) == m->len &&
			      memcmp(json_string_value(v), m->str, m->len) == 0 &&
			      m->str[m->len] == '\0');
			break;
		case JSONFLAT_INTEGER:
			check(json_is_integer(v) &&
			      json_integer_value(v) == m->integer);
			break;
		case JSONFLAT_OTHER:
			check(!json_is_string(v) && !json_is_integer(v));
			break;
		}
	}
}

/* An object jansson read that the fast reader must read too. */
static bool plainly_flat(json_t *o, const uint8_t *data, size_t size)
{
	const char *key;
	json_t *v;

	if (!json_is_object(o) || json_object_size(o) > JSONFLAT_MEMBERS_MAX)
		return false;
	json_object_foreach(o, key, v)
		if (!json_is_string(v) && !json_is_integer(v))
			return false;
	/* jansson 2.14 also takes a NUL byte right after a number
	 * ({"a":0\0} and {"a":0\0\t,"b":1} were found): not JSON's. */
	for (size_t i = 0; i < size; i++)
		if (data[i] >= 0x80 ||
		    (data[i] < 0x20 && data[i] != ' ' && data[i] != '\t' &&
		     data[i] != '\n' && data[i] != '\r') ||
		    (data[i] == '\\' && i + 1 < size && data[i + 1] == 'u'))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char scratch[8192 + 2 * JSONFLAT_MEMBERS_MAX];
	struct jsonflat f = { .scratch = scratch, .cap = sizeof(scratch) };
	const char *text = (const char *)data;
	json_t *o;
	int fast, r;

	if (size > 8192)
		return 0;
	o = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
	fast = jsonflat_parse_fast(text, size, &f);
	if (fast == 0)
		same_members(&f, o);
	else
		check(fast == -EAGAIN && !plainly_flat(o, data, size));
	r = jsonflat_load(text, size, &f);
	if (json_is_object(o) && json_object_size(o) <= JSONFLAT_MEMBERS_MAX) {
		check(r == 0);
		same_members(&f, o);
	} else {
		check(r == (json_is_object(o) ? -E2BIG : -EINVAL));
	}
	json_decref(o);
	return 0;
}
