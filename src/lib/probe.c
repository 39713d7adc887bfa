/*
 * probe: a logged packet read into a probe event, and the event as JSON
 * (see probe.h).
 */
#include "probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static const char *const kind_names[PROBE_KINDS] = {
	[PROBE_MOVED] = "moved", [PROBE_VACATED] = "vacated",
	[PROBE_STALE] = "stale", [PROBE_PROBE] = "probe",
};

static const char *const drop_names[PROBE_DROPS] = {
	[PROBE_DROP_KERNEL] = "kernel_limit", [PROBE_DROP_SOCKET] = "socket",
	[PROBE_DROP_MALFORMED] = "malformed", [PROBE_DROP_MERGE] = "merge_full",
	[PROBE_DROP_STREAM] = "stream", [PROBE_DROP_HOOK] = "hook",
};

const char *probe_kind_name(enum probe_kind k)
{
	return (unsigned)k < PROBE_KINDS ? kind_names[k] : NULL;
}

const char *probe_drop_name(enum probe_drop d)
{
	return (unsigned)d < PROBE_DROPS ? drop_names[d] : NULL;
}

/* IPv6 extension headers a probe may carry before TCP or UDP. */
static bool ext_header(uint8_t nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING ||
	       nh == IPPROTO_DSTOPTS;
}

int probe_parse(const char *prefix, const uint8_t *pkt, size_t len,
		int64_t now_ms, struct probe_event *ret)
{
	struct probe_event e = { .time_ms = now_ms, .last_ms = now_ms,
				 .count = 1, .kind = PROBE_KINDS };
	size_t l4, plen = strlen(PROBE_PREFIX);
	uint8_t proto;

	if (prefix == NULL || strncmp(prefix, PROBE_PREFIX, plen) != 0)
		return -EINVAL;
	for (int k = 0; k < PROBE_KINDS; k++)
		if (strcmp(prefix + plen, kind_names[k]) == 0)
			e.kind = (uint8_t)k;
	if (e.kind == PROBE_KINDS || pkt == NULL || len < 1)
		return -EINVAL;
	if (pkt[0] >> 4 == 4) {
		size_t ihl = (size_t)(pkt[0] & 0x0f) * 4;

		/* A fragment after the first has no ports. */
		if (len < 20 || ihl < 20 ||
		    (((pkt[6] & 0x1f) << 8) | pkt[7]) != 0)
			return -EINVAL;
		e.family = 4;
		memcpy(e.addr, pkt + 12, 4);
		proto = pkt[9];
		l4 = ihl;
	} else if (pkt[0] >> 4 == 6) {
		if (len < 40)
			return -EINVAL;
		e.family = 6;
		memcpy(e.addr, pkt + 8, 16);
		proto = pkt[6];
		l4 = 40;
		/* At most a few extension headers, each bounded by len. */
		for (int i = 0; i < 4 && ext_header(proto); i++) {
			if (len < l4 + 8)
				return -EINVAL;
			proto = pkt[l4];
			l4 += ((size_t)pkt[l4 + 1] + 1) * 8;
		}
	} else {
		return -EINVAL;
	}
	if ((proto != IPPROTO_TCP && proto != IPPROTO_UDP) || len < l4 + 4)
		return -EINVAL;
	e.proto = proto;
	e.port = (uint16_t)(pkt[l4 + 2] << 8 | pkt[l4 + 3]);
	*ret = e;
	return 0;
}

const char *probe_source(const struct probe_event *e, char *buf, size_t len)
{
	if (inet_ntop(e->family == 6 ? AF_INET6 : AF_INET, e->addr, buf,
		      (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
	return buf;
}

/* RFC 3339, UTC, milliseconds. */
static json_t *time_json(int64_t ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	char buf[96];

	if (gmtime_r(&s, &tm) == NULL)
		return json_null();
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	return json_string(buf);
}

json_t *probe_json(const struct probe_event *e)
{
	char src[INET6_ADDRSTRLEN];

	return json_pack("{s:o,s:o,s:s,s:s,s:s,s:i,s:o,s:I,s:I,s:I}",
			 "time", time_json(e->time_ms),
			 "last", time_json(e->last_ms),
			 "kind", probe_kind_name(e->kind) ?
				 probe_kind_name(e->kind) : "?",
			 "source", probe_source(e, src, sizeof(src)),
			 "proto", e->proto == IPPROTO_UDP ? "udp" : "tcp",
			 "port", (int)e->port,
			 "real_port", e->real_port ? json_integer(e->real_port) :
						     json_null(),
			 "generation", (json_int_t)e->generation,
			 "count", (json_int_t)e->count,
			 "seq", (json_int_t)e->seq);
}
