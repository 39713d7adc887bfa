/*
 * jsonflat: a flat JSON object (members whose values are strings or
 * integers) read without building a tree, for the messages porthopd
 * decodes once per fleet entry or trigger (the signed envelope, a fleet
 * operation): at 50,000 entries a second on one machine, jansson's tree
 * (an allocation per key and value, a hash table per object) was a tenth
 * of the machine (docs/benchmarks.md).
 *
 * Decisions are jansson's: an object the fast reader is not sure of
 * (anything but ASCII strings, integers in range, whitespace; a repeated
 * key) is read again with json_loadb(JSON_REJECT_DUPLICATES), whose
 * verdict stands; its other values come out as JSONFLAT_OTHER.  The
 * fuzzer fuzz_jsonflat checks that both readers agree.
 */
#ifndef PORTHOP_JSONFLAT_H
#define PORTHOP_JSONFLAT_H

#include <stdbool.h>
#include <stddef.h>

#define JSONFLAT_MEMBERS_MAX 16

enum jsonflat_type {
	JSONFLAT_STRING,
	JSONFLAT_INTEGER,
	JSONFLAT_OTHER,		/* an object, array, real, true, false, null */
};

struct jsonflat_member {
	const char *key;		/* NUL-terminated, in the scratch */
	enum jsonflat_type type;
	const char *str;		/* STRING: NUL-terminated, in the scratch */
	size_t len;			/* STRING: its length (no NUL inside) */
	long long integer;		/* INTEGER */
};

struct jsonflat {
	struct jsonflat_member m[JSONFLAT_MEMBERS_MAX];
	size_t n;
	char *scratch;			/* keys and strings, unescaped */
	size_t cap;			/* its size */
	bool slow;			/* jansson read it (for tests) */
};

/* The object of len bytes at text into f, whose scratch must hold at
 * least len + JSONFLAT_MEMBERS_MAX * 2 bytes (what the unescaped keys and
 * strings and their NULs can take).  0; -EINVAL: not a JSON object
 * (jansson's verdict; jansson out of memory says the same); -E2BIG: an
 * object of more than JSONFLAT_MEMBERS_MAX members (f->n is 0);
 * -ENOBUFS: the scratch is too small. */
int jsonflat_load(const char *text, size_t len, struct jsonflat *f);

/* The member named key, or NULL. */
const struct jsonflat_member *jsonflat_get(const struct jsonflat *f,
					   const char *key);

/* The fast reader alone: 0 if it read the object (f filled), -EAGAIN if
 * it is not sure (then jsonflat_load asks jansson).  For the fuzzer. */
int jsonflat_parse_fast(const char *text, size_t len, struct jsonflat *f);

#endif
