/*
 * sshgproto: sshguard's backend protocol, parsed, and the control
 * requests it becomes.  See sshgproto.h.
 */
#include "sshgproto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The most words a valid line has. */
#define MAX_WORDS 4

static const char *const kind_names[] = {
	[SSHGPROTO_BLOCK] = "block",
	[SSHGPROTO_RELEASE] = "release",
	[SSHGPROTO_FLUSH] = "flush",
	[SSHGPROTO_FLUSHONEXIT] = "flushonexit",
};

const char *sshgproto_kind_name(enum sshgproto_kind kind)
{
	return (unsigned)kind < sizeof(kind_names) / sizeof(kind_names[0]) ?
	       kind_names[kind] : "?";
}

/* Splits line into at most MAX_WORDS words (copied into buf); returns
 * how many, or MAX_WORDS + 1 when there are more. */
static int split(const char *line, char *buf, size_t size,
		 char *words[MAX_WORDS])
{
	const char *p = line;
	char *out = buf;
	int n = 0;

	for (;;) {
		size_t len;

		p += strspn(p, " \t");
		if (*p == '\0' || *p == '\n')
			return n;
		if (n == MAX_WORDS)
			return MAX_WORDS + 1;
		len = strcspn(p, " \t\n");
		/* buf is as long as line: a word always fits. */
		if ((size_t)(out - buf) + len + 1 > size)
			return MAX_WORDS + 1;
		memcpy(out, p, len);
		out[len] = '\0';
		words[n++] = out;
		out += len + 1;
		p += len;
	}
}

/* A decimal prefix length from 0 to max, no sign, no spaces; -1 if not. */
static int prefix_len(const char *s, int max)
{
	int v = 0;

	if (*s == '\0' || strlen(s) > 3)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v <= max ? v : -1;
}

/* Fills net with ADDR/LEN of family 4 or 6, host bits cleared and
 * written canonically; returns a reason, or NULL when it is valid. */
static const char *network(const char *addr, const char *type,
			   const char *len, char net[SSHGPROTO_NET_MAX])
{
	unsigned char bytes[16];
	char text[INET6_ADDRSTRLEN];
	int af, bits, plen;

	if (strcmp(type, "4") == 0) {
		af = AF_INET;
		bits = 32;
	} else if (strcmp(type, "6") == 0) {
		af = AF_INET6;
		bits = 128;
	} else {
		return "address type is not 4 or 6";
	}
	if (inet_pton(af, addr, bytes) != 1)
		return af == AF_INET ? "not an IPv4 address" :
				       "not an IPv6 address";
	plen = len ? prefix_len(len, bits) : bits;
	if (plen < 0)
		return af == AF_INET ? "prefix length is not 0 to 32" :
				       "prefix length is not 0 to 128";
	/* The network the block stands for: the same for every address
	 * inside it, so that its release finds the same entry. */
	for (int i = 0; i < bits / 8; i++) {
		int keep = plen - i * 8;

		if (keep <= 0)
			bytes[i] = 0;
		else if (keep < 8)
			bytes[i] &= (unsigned char)(0xff << (8 - keep));
	}
	if (inet_ntop(af, bytes, text, sizeof(text)) == NULL)
		return "address cannot be written back";
	if (plen == bits)
		snprintf(net, SSHGPROTO_NET_MAX, "%s", text);
	else
		/* plen is 0 to 128: three digits at most (said so for gcc's
		 * -Wformat-truncation, which cannot see it at -O0). */
		snprintf(net, SSHGPROTO_NET_MAX, "%s/%u", text,
			 (unsigned)(unsigned char)plen);
	return NULL;
}

int sshgproto_parse(const char *line, struct sshgproto_cmd *ret,
		    const char **ret_why)
{
	char buf[SSHGPROTO_LINE_MAX];
	char *w[MAX_WORDS];
	struct sshgproto_cmd cmd = { 0 };
	const char *why = NULL;
	int n;

	if (strlen(line) >= sizeof(buf)) {
		*ret_why = "line too long";
		return -EINVAL;
	}
	n = split(line, buf, sizeof(buf), w);
	if (n == 0) {
		*ret_why = "empty line";
		return -EINVAL;
	}
	if (n > MAX_WORDS) {
		*ret_why = "too many words";
		return -EINVAL;
	}
	if (strcmp(w[0], "block") == 0 || strcmp(w[0], "release") == 0) {
		cmd.kind = w[0][0] == 'b' ? SSHGPROTO_BLOCK : SSHGPROTO_RELEASE;
		if (n < 3)
			why = "needs ADDRESS TYPE [CIDR]";
		else
			why = network(w[1], w[2], n == 4 ? w[3] : NULL,
				      cmd.net);
	} else if (strcmp(w[0], "flush") == 0 ||
		   strcmp(w[0], "flushonexit") == 0) {
		cmd.kind = w[0][5] ? SSHGPROTO_FLUSHONEXIT : SSHGPROTO_FLUSH;
		if (n > 1)
			why = "takes no arguments";
	} else {
		why = "unknown command";
	}
	if (why) {
		*ret_why = why;
		return -EINVAL;
	}
	*ret = cmd;
	return 0;
}

json_t *sshgproto_request(const struct sshgproto_cmd *cmd,
			  const char *origin)
{
	switch (cmd->kind) {
	case SSHGPROTO_BLOCK:
		/* No TTL: sshguard says when a block ends, and its own
		 * block time grows with every repeat. */
		return json_pack("{s:s,s:s,s:[{s:s}]}", "command", "watch_add",
				 "origin", origin, "entries", "address",
				 cmd->net);
	case SSHGPROTO_RELEASE:
		return json_pack("{s:s,s:s,s:[{s:s}]}", "command", "watch_del",
				 "origin", origin, "entries", "address",
				 cmd->net);
	case SSHGPROTO_FLUSH:
		return json_pack("{s:s,s:s}", "command", "watch_flush",
				 "origin", origin);
	case SSHGPROTO_FLUSHONEXIT:
		break;
	}
	return NULL;
}

enum sshgproto_verdict sshgproto_verdict(const struct sshgproto_cmd *cmd,
					 int call_result,
					 const json_t *reply)
{
	const char *code;

	if (call_result < 0) {
		switch (-call_result) {
		case ENOENT:		/* porthopd not (yet) started */
		case ECONNREFUSED:	/* a leftover socket: restarting */
		case ETIMEDOUT:
		case EAGAIN:
		case ECONNRESET:
		case EPIPE:
		case EINTR:
			return SSHGPROTO_RETRY;
		default:		/* EACCES, ENAMETOOLONG, EPROTO... */
			return SSHGPROTO_FAILED;
		}
	}
	if (json_is_true(json_object_get(reply, "ok")))
		return SSHGPROTO_DONE;
	code = json_string_value(json_object_get(reply, "code"));
	if (code == NULL)
		return SSHGPROTO_FAILED;
	if (strcmp(code, "not_watched") == 0 &&
	    (cmd->kind == SSHGPROTO_RELEASE || cmd->kind == SSHGPROTO_FLUSH))
		return SSHGPROTO_DONE;
	if (strcmp(code, "busy") == 0)
		return SSHGPROTO_RETRY;
	return SSHGPROTO_FAILED;
}
