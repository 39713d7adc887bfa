/*
 * jsonflat: a flat JSON object read without a tree; jansson decides
 * whatever the fast reader is not sure of.  See jsonflat.h.
 */
#include "jsonflat.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <string.h>

/* The fast reader's position, and where unescaped text goes. */
struct rd {
	const char *p, *end;
	char *out, *out_end;
};

static void skip_ws(struct rd *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' ||
				 *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static bool at(const struct rd *r, char c)
{
	return r->p < r->end && *r->p == c;
}

static bool digit_at(const struct rd *r)
{
	return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* \uXXXX after the "\u": a character 1-127, else not sure (NUL, which
 * jansson refuses, and the rest, which UTF-8 encodes). */
static int unicode_escape(struct rd *r, unsigned char *ret)
{
	unsigned v = 0;

	if (r->end - r->p < 4)
		return -EAGAIN;
	for (int i = 0; i < 4; i++) {
		int h = hex_value(*r->p++);

		if (h < 0)
			return -EAGAIN;
		v = v * 16 + (unsigned)h;
	}
	if (v == 0 || v > 0x7f)
		return -EAGAIN;
	*ret = (unsigned char)v;
	return 0;
}

/* A string's characters after its opening quote, unescaped into the
 * scratch and NUL-terminated.  Only ASCII is taken: a byte of UTF-8 (to
 * validate) or a control character (refused) is jansson's to judge. */
static int read_string(struct rd *r, const char **ret, size_t *ret_len)
{
	char *start = r->out;

	while (r->p < r->end) {
		unsigned char ch = (unsigned char)*r->p++;

		if (ch == '"') {
			if (r->out >= r->out_end)
				return -EAGAIN;
			*r->out++ = '\0';
			*ret = start;
			*ret_len = (size_t)(r->out - 1 - start);
			return 0;
		}
		if (ch < 0x20 || ch >= 0x80)
			return -EAGAIN;
		if (ch == '\\') {
			if (r->p >= r->end)
				return -EAGAIN;
			switch (*r->p++) {
			case '"': ch = '"'; break;
			case '\\': ch = '\\'; break;
			case '/': ch = '/'; break;
			case 'b': ch = '\b'; break;
			case 'f': ch = '\f'; break;
			case 'n': ch = '\n'; break;
			case 'r': ch = '\r'; break;
			case 't': ch = '\t'; break;
			case 'u':
				if (unicode_escape(r, &ch) < 0)
					return -EAGAIN;
				break;
			default:
				return -EAGAIN;
			}
		}
		if (r->out >= r->out_end)
			return -EAGAIN;
		*r->out++ = (char)ch;
	}
	return -EAGAIN;
}

/* An integer as JSON writes it (no fraction, no exponent), within long
 * long as jansson's strtoll takes it. */
static int read_integer(struct rd *r, long long *ret)
{
	const unsigned long long max = (unsigned long long)LLONG_MAX;
	unsigned long long v = 0;
	bool neg = at(r, '-');

	if (neg)
		r->p++;
	if (!digit_at(r))
		return -EAGAIN;
	if (at(r, '0')) {
		r->p++;
		if (digit_at(r))
			return -EAGAIN;
	} else {
		while (digit_at(r)) {
			unsigned d = (unsigned)(*r->p++ - '0');

			if (v > (max + 1 - d) / 10)
				return -EAGAIN;
			v = v * 10 + d;
		}
	}
	if (at(r, '.') || at(r, 'e') || at(r, 'E') || v > max + neg)
		return -EAGAIN;
	*ret = !neg ? (long long)v : v == max + 1 ? LLONG_MIN : -(long long)v;
	return 0;
}

static int read_member(struct rd *r, struct jsonflat *f)
{
	struct jsonflat_member *m = &f->m[f->n];
	size_t klen;

	if (!at(r, '"'))
		return -EAGAIN;
	r->p++;
	if (read_string(r, &m->key, &klen) < 0)
		return -EAGAIN;
	skip_ws(r);
	if (!at(r, ':'))
		return -EAGAIN;
	r->p++;
	skip_ws(r);
	if (at(r, '"')) {
		r->p++;
		m->type = JSONFLAT_STRING;
		m->integer = 0;
		if (read_string(r, &m->str, &m->len) < 0)
			return -EAGAIN;
	} else {
		m->type = JSONFLAT_INTEGER;
		m->str = NULL;
		m->len = 0;
		if (read_integer(r, &m->integer) < 0)
			return -EAGAIN;
	}
	/* A repeated key: jansson refuses it (JSON_REJECT_DUPLICATES). */
	for (size_t k = 0; k < f->n; k++)
		if (strcmp(f->m[k].key, m->key) == 0)
			return -EAGAIN;
	f->n++;
	return 0;
}

int jsonflat_parse_fast(const char *text, size_t len, struct jsonflat *f)
{
	struct rd r = { text, text + len, f->scratch, f->scratch + f->cap };

	f->n = 0;
	f->slow = false;
	skip_ws(&r);
	if (!at(&r, '{'))
		return -EAGAIN;
	r.p++;
	skip_ws(&r);
	if (at(&r, '}')) {
		r.p++;
	} else {
		for (;;) {
			if (f->n == JSONFLAT_MEMBERS_MAX ||
			    read_member(&r, f) < 0)
				return -EAGAIN;
			skip_ws(&r);
			if (at(&r, '}')) {
				r.p++;
				break;
			}
			if (!at(&r, ','))
				return -EAGAIN;
			r.p++;
			skip_ws(&r);
		}
	}
	skip_ws(&r);
	return r.p == r.end ? 0 : -EAGAIN;
}

/* Copies s (n bytes) and a NUL into the scratch at *out. */
static const char *keep(char **out, char *end, const char *s, size_t n)
{
	char *at_out = *out;

	if ((size_t)(end - at_out) < n + 1)
		return NULL;
	memcpy(at_out, s, n);
	at_out[n] = '\0';
	*out += n + 1;
	return at_out;
}

/* jansson's reading of the object, its members copied out. */
static int load_slow(const char *text, size_t len, struct jsonflat *f)
{
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL), *v;
	char *out = f->scratch, *end = f->scratch + f->cap;
	const char *key;
	int r = 0;

	f->n = 0;
	f->slow = true;
	if (!json_is_object(o)) {
		r = -EINVAL;
		goto out;
	}
	if (json_object_size(o) > JSONFLAT_MEMBERS_MAX) {
		r = -E2BIG;
		goto out;
	}
	json_object_foreach(o, key, v) {
		struct jsonflat_member *m = &f->m[f->n++];

		*m = (struct jsonflat_member){ .type = JSONFLAT_OTHER };
		if ((m->key = keep(&out, end, key, strlen(key))) == NULL) {
			r = -ENOBUFS;
			goto out;
		}
		if (json_is_string(v)) {
			m->type = JSONFLAT_STRING;
			m->len = json_string_length(v);
			m->str = keep(&out, end, json_string_value(v), m->len);
			if (m->str == NULL) {
				r = -ENOBUFS;
				goto out;
			}
		} else if (json_is_integer(v)) {
			m->type = JSONFLAT_INTEGER;
			m->integer = (long long)json_integer_value(v);
		}
	}
out:
	json_decref(o);
	if (r < 0)
		f->n = 0;
	return r;
}

int jsonflat_load(const char *text, size_t len, struct jsonflat *f)
{
	if (f->cap < len + 2 * JSONFLAT_MEMBERS_MAX)
		return -ENOBUFS;
	if (jsonflat_parse_fast(text, len, f) == 0)
		return 0;
	return load_slow(text, len, f);
}

const struct jsonflat_member *jsonflat_get(const struct jsonflat *f,
					   const char *key)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->m[i].key, key) == 0)
			return &f->m[i];
	return NULL;
}
