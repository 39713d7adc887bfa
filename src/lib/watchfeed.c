/*
 * watchfeed: parsing feed files (see watchfeed.h).  One pass over the
 * lines, then one sort to find networks given twice.  Errors are kept in
 * line order, the first WATCHFEED_ERRORS_MAX of them, so that a repeat
 * found by the sort still appears where its line is.
 */
#include "watchfeed.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watchlist.h"

#define EXPECTED "expected ADDR[/LEN] [TTL]"

struct feed_error {
	size_t line;
	char msg[DIAG_LINE_MAX];
};

struct parser {
	const struct watchfeed_limits *lim;
	struct watchfeed_line *v;
	size_t n, cap;
	bool full;		/* max_lines passed: stop reading */
	struct feed_error err[WATCHFEED_ERRORS_MAX];
	size_t nerr, total;
};

static void fail_at(struct parser *p, size_t line, const char *fmt, ...)
	DIAG_ATTR_PRINTF(3, 4);

/* Keeps the error if it is among the first WATCHFEED_ERRORS_MAX by line
 * (after those of the same line already kept); counts it in any case. */
static void fail_at(struct parser *p, size_t line, const char *fmt, ...)
{
	size_t pos = p->nerr;
	va_list ap;
	int o;

	p->total++;
	while (pos > 0 && p->err[pos - 1].line > line)
		pos--;
	if (pos == WATCHFEED_ERRORS_MAX)
		return;
	if (p->nerr == WATCHFEED_ERRORS_MAX)
		p->nerr--;
	memmove(p->err + pos + 1, p->err + pos,
		(p->nerr - pos) * sizeof(p->err[0]));
	p->nerr++;
	p->err[pos].line = line;
	o = snprintf(p->err[pos].msg, sizeof(p->err[pos].msg), "line %zu: ",
		     line);
	va_start(ap, fmt);
	vsnprintf(p->err[pos].msg + o, sizeof(p->err[pos].msg) - (size_t)o,
		  fmt, ap);
	va_end(ap);
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The next blank-separated field of *s (NUL-terminated in place), or
 * NULL at the end of the line. */
static char *field(char **s)
{
	char *start = *s, *end;

	while (blank(*start))
		start++;
	if (*start == '\0')
		return NULL;
	for (end = start; *end && !blank(*end); end++)
		;
	*s = *end ? end + 1 : end;
	*end = '\0';
	return start;
}

/* A TTL field: 0 with *ret set, or -ERANGE (digits, but not 1..max) or
 * -EINVAL (not digits). */
static int parse_ttl(const char *s, int64_t max, int64_t *ret)
{
	int64_t v = 0;
	bool over = false;

	for (const char *c = s; *c; c++) {
		if (*c < '0' || *c > '9')
			return -EINVAL;
		if (!over && v > (max - (*c - '0')) / 10)
			over = true;
		else if (!over)
			v = v * 10 + (*c - '0');
	}
	if (over || v < 1 || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

static int push(struct parser *p, const struct watchfeed_line *l)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 64;
		struct watchfeed_line *v;

		if (cap > p->lim->max_lines)
			cap = p->lim->max_lines;
		v = realloc(p->v, cap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = *l;
	return 0;
}

/* One line, without its newline.  -ENOMEM only; a bad line is an error
 * kept in p. */
static int parse_line(struct parser *p, const char *s, size_t len,
		      size_t lineno)
{
	char buf[WATCHFEED_LINE_MAX + 1], vbuf[DIAG_VALUE_MAX + 8];
	char why[160], *rest = buf, *addr, *ttl, *extra;
	struct watchfeed_line l = { .ttl = -1, .line = lineno };
	int r;

	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (len > WATCHFEED_LINE_MAX) {
		fail_at(p, lineno, "%zu bytes long; expected at most %d "
			  "bytes a line", len, WATCHFEED_LINE_MAX);
		return 0;
	}
	if (memchr(s, '\0', len)) {
		fail_at(p, lineno, "holds a NUL byte; expected text");
		return 0;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	addr = field(&rest);
	if (addr == NULL || addr[0] == '#')
		return 0;
	ttl = field(&rest);
	extra = field(&rest);
	r = config_parse_net(addr, true, &l.net);
	if (r == -EDOM) {
		fail_at(p, lineno, "%s has bits set after the prefix length; "
			  "expected the network address",
			  diag_string(vbuf, sizeof(vbuf), addr));
		return 0;
	}
	if (r < 0) {
		fail_at(p, lineno, "%s is not an address or prefix; "
			  EXPECTED, diag_string(vbuf, sizeof(vbuf), addr));
		return 0;
	}
	if (watchlist_check_net(&l.net, p->lim->min_len_v4,
				p->lim->min_len_v6, why, sizeof(why)) < 0) {
		fail_at(p, lineno, "%s", why);
		return 0;
	}
	if (ttl) {
		r = parse_ttl(ttl, p->lim->max_ttl, &l.ttl);
		if (r < 0) {
			fail_at(p, lineno, "TTL %s %s; expected 1 to %lld "
				  "seconds", diag_string(vbuf, sizeof(vbuf), ttl),
				  r == -ERANGE ? "is out of range" :
				  "is not a number of seconds",
				  (long long)p->lim->max_ttl);
			return 0;
		}
	}
	if (extra) {
		fail_at(p, lineno, "unexpected %s after the TTL; " EXPECTED,
			  diag_string(vbuf, sizeof(vbuf), extra));
		return 0;
	}
	if (p->n >= p->lim->max_lines) {
		fail_at(p, lineno, "more than %zu entries; expected at most "
			  "%zu in one feed", p->lim->max_lines,
			  p->lim->max_lines);
		p->full = true;
		return 0;
	}
	return push(p, &l);
}

static int line_cmp(const void *a, const void *b)
{
	const struct watchfeed_line *x = *(const struct watchfeed_line *const *)a;
	const struct watchfeed_line *y = *(const struct watchfeed_line *const *)b;
	int r;

	if (x->net.family != y->net.family)
		return x->net.family < y->net.family ? -1 : 1;
	r = memcmp(x->net.addr, y->net.addr, sizeof(x->net.addr));
	if (r)
		return r;
	if (x->net.prefix_len != y->net.prefix_len)
		return x->net.prefix_len < y->net.prefix_len ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* Each network given twice is an error on its later line. */
static int find_repeats(struct parser *p)
{
	const struct watchfeed_line **s;

	if (p->n < 2)
		return 0;
	s = malloc(p->n * sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < p->n; i++)
		s[i] = &p->v[i];
	qsort(s, p->n, sizeof(*s), line_cmp);
	for (size_t i = 1, first = 0; i < p->n; i++) {
		if (s[i]->net.family != s[first]->net.family ||
		    s[i]->net.prefix_len != s[first]->net.prefix_len ||
		    memcmp(s[i]->net.addr, s[first]->net.addr, 16) != 0) {
			first = i;
			continue;
		}
		fail_at(p, s[i]->line, "%s repeats line %zu; expected each "
			  "address or prefix once", s[i]->net.text,
			  s[first]->line);
	}
	free(s);
	return 0;
}

int watchfeed_parse(const char *text, size_t len,
		    const struct watchfeed_limits *lim,
		    struct watchfeed_line **ret_lines, size_t *ret_n,
		    struct diag *d)
{
	struct parser *p;
	size_t lineno = 0, off = 0;
	int r = 0;

	if (lim == NULL || (text == NULL && len > 0))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->lim = lim;
	while (off < len && !p->full) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t end = nl ? (size_t)(nl - text) : len;

		r = parse_line(p, text + off, end - off, ++lineno);
		if (r < 0)
			goto out;
		off = end + 1;
	}
	r = find_repeats(p);
	if (r < 0)
		goto out;
	if (p->total > 0) {
		for (size_t i = 0; i < p->nerr; i++)
			diag_error(d, "%s", p->err[i].msg);
		if (p->total > p->nerr)
			diag_error(d, "and %zu more errors", p->total - p->nerr);
		r = -EINVAL;
		goto out;
	}
	*ret_lines = p->v;
	*ret_n = p->n;
	p->v = NULL;
out:
	if (r == -ENOMEM)
		diag_error(d, "out of memory reading the feed");
	free(p->v);
	free(p);
	return r;
}
