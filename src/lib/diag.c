/*
 * diag: a list of diagnostics that library code fills instead of logging.
 * See diag.h for the contract.
 */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct diag_msg {
	char *text;
	bool is_error;
};

struct diag {
	struct diag_msg *msgs;
	size_t count;
	size_t cap;
	size_t errors;
	size_t lost;	/* messages we could not store (out of memory) */
};

struct diag *diag_new(void)
{
	return calloc(1, sizeof(struct diag));
}

void diag_clear(struct diag *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->count; i++)
		free(d->msgs[i].text);
	d->count = 0;
	d->errors = 0;
	d->lost = 0;
}

void diag_free(struct diag *d)
{
	if (d == NULL)
		return;
	diag_clear(d);
	free(d->msgs);
	free(d);
}

static void diag_add(struct diag *d, bool is_error, char *text)
{
	if (is_error)
		d->errors++;
	if (text == NULL)
		goto lost;
	if (d->count == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct diag_msg *m = realloc(d->msgs, cap * sizeof(*m));

		if (m == NULL)
			goto lost;
		d->msgs = m;
		d->cap = cap;
	}
	d->msgs[d->count].text = text;
	d->msgs[d->count].is_error = is_error;
	d->count++;
	return;
lost:
	free(text);
	d->lost++;
}

static void diag_vadd(struct diag *d, bool is_error, const char *fmt,
		      va_list ap) __attribute__((format(printf, 3, 0)));
static void diag_vadd(struct diag *d, bool is_error, const char *fmt,
		      va_list ap)
{
	char *text = NULL;

	if (d == NULL)
		return;
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	diag_add(d, is_error, text);
}

void diag_error(struct diag *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(d, true, fmt, ap);
	va_end(ap);
}

void diag_warning(struct diag *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(d, false, fmt, ap);
	va_end(ap);
}

size_t diag_errors(const struct diag *d)
{
	return d ? d->errors : 0;
}

size_t diag_count(const struct diag *d)
{
	return d ? d->count : 0;
}

const char *diag_message(const struct diag *d, size_t i, bool *ret_is_error)
{
	if (d == NULL || i >= d->count)
		return NULL;
	if (ret_is_error)
		*ret_is_error = d->msgs[i].is_error;
	return d->msgs[i].text;
}

const char *diag_first_error(const struct diag *d)
{
	if (d == NULL)
		return NULL;
	for (size_t i = 0; i < d->count; i++)
		if (d->msgs[i].is_error)
			return d->msgs[i].text;
	if (d->errors > 0)
		return "out of memory while reporting an error";
	return NULL;
}

void diag_move(struct diag *dst, struct diag *src)
{
	size_t stored_errors = 0;

	if (dst == NULL || src == NULL)
		return;
	for (size_t i = 0; i < src->count; i++) {
		stored_errors += src->msgs[i].is_error;
		diag_add(dst, src->msgs[i].is_error, src->msgs[i].text);
	}
	/* Errors whose text was lost to an allocation failure still count. */
	dst->errors += src->errors - stored_errors;
	dst->lost += src->lost;
	src->count = 0;
	src->errors = 0;
	src->lost = 0;
}

const char *diag_path_key(char *buf, size_t len, const char *parent,
			  const char *key)
{
	int n;

	if (parent == NULL || parent[0] == '\0')
		n = snprintf(buf, len, "%s", key);
	else
		n = snprintf(buf, len, "%s.%s", parent, key);
	if (n < 0 || (size_t)n >= len)
		snprintf(buf + len - 4, 4, "...");
	return buf;
}

const char *diag_path_index(char *buf, size_t len, const char *parent,
			    size_t index)
{
	int n = snprintf(buf, len, "%s[%zu]", parent ? parent : "", index);

	if (n < 0 || (size_t)n >= len)
		snprintf(buf + len - 4, 4, "...");
	return buf;
}

static const char *diag_cut(char *buf, size_t len, char *text)
{
	size_t max = len - 1 < DIAG_VALUE_MAX ? len - 1 : DIAG_VALUE_MAX;

	if (text == NULL) {
		snprintf(buf, len, "(value)");
		return buf;
	}
	if (strlen(text) > max && max > 3) {
		memcpy(buf, text, max - 3);
		memcpy(buf + max - 3, "...", 4);
	} else {
		snprintf(buf, len, "%s", text);
	}
	free(text);
	return buf;
}

const char *diag_value(char *buf, size_t len, const json_t *v)
{
	/* JSON_ENCODE_ANY lets scalars through; ENSURE_ASCII keeps control
	 * and non-ASCII bytes escaped so logs stay one line per event. */
	return diag_cut(buf, len, json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT |
					       JSON_ENSURE_ASCII));
}

const char *diag_string(char *buf, size_t len, const char *s)
{
	json_t *v = json_string(s);
	char *text;

	if (v == NULL) /* not UTF-8: show it as bytes we can print */
		v = json_stringn_nocheck("(not UTF-8)", 11);
	text = json_dumps(v, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
	json_decref(v);
	return diag_cut(buf, len, text);
}

const char *diag_name(char *buf, size_t len, const char *s)
{
	bool plain = s[0] != '\0';

	for (const char *c = s; *c && plain; c++)
		plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			(*c >= '0' && *c <= '9') || strchr("_-.:/@%+", *c);
	if (!plain || strlen(s) >= len)
		return diag_string(buf, len, s);
	memcpy(buf, s, strlen(s) + 1);
	return buf;
}

const char *diag_line(char *buf, size_t len, const char *s)
{
	size_t o = 0;

	for (; *s && o + 5 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f || c == '\\')
			o += (size_t)snprintf(buf + o, len - o, c == '\\' ?
					      "\\\\" : "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
	return buf;
}

const char *diag_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a real number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "a value";
}

void diag_report(const struct diag *d,
		 void (*line)(void *arg, const char *text), void *arg)
{
	char buf[DIAG_LINE_MAX];

	for (size_t i = 0; i < diag_count(d); i++) {
		bool is_error;
		const char *m = diag_message(d, i, &is_error);

		snprintf(buf, sizeof(buf), "%s: %s",
			 is_error ? "error" : "warning", m);
		line(arg, buf);
	}
}

static void print_line(void *arg, const char *text)
{
	fprintf(arg, "%s\n", text);
}

void diag_print(const struct diag *d, FILE *f)
{
	diag_report(d, print_line, f);
}
