/*
 * core_knock: single packet authorisation's policy (docs/knock.md): a
 * logged knock read and verified against the keys directory, its source
 * (or the address it names) let in for trust_seconds, every refusal
 * counted by reason and logged through a limit; the keys read again at
 * every reload (a deleted file is a revoked client).
 */
#include "core_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "engine.h"
#include "ruleset.h"

/* The keys directory's errors, one line each (the files still load). */
static void say_diag(void *arg, const char *line)
{
	warn((struct core *)arg, "knock: %s", line);
}

int core_knock_setup(struct core *c)
{
	const struct config_knock *k =
		&config_daemon(engine_config(c->engine))->knock;
	struct diag *d;
	int n;

	if (!k->on) {
		core_knock_free(c);
		return 0;
	}
	/* Kept across reloads: a knock captured before one is still a
	 * replay after it. */
	if (c->knock == NULL) {
		c->knock = knock_verifier_new(k->window_s,
					      KNOCK_REPLAY_DEFAULT);
		if (c->knock == NULL)
			return -ENOMEM;
	}
	knock_verifier_set_window(c->knock, k->window_s);
	d = diag_new();
	if (d == NULL)
		return -ENOMEM;
	n = knock_load_keys(c->knock, k->keys_directory, d);
	diag_report(d, say_diag, c);
	diag_free(d);
	if (n >= 0)
		info(c, "knock: %d client key%s loaded from %s; knocks on udp "
		     "port %u let their source in for %u s", n,
		     n == 1 ? "" : "s", k->keys_directory, k->port, k->trust_s);
	else
		warn(c, "knock: no keys: every knock is refused until a "
		     "reload finds the directory");
	return 0;
}

void core_knock_free(struct core *c)
{
	knock_verifier_free(c->knock);
	c->knock = NULL;
}

bool core_knock_on(const struct core *c)
{
	return c->knock != NULL;
}

void core_knock_lost(struct core *c, uint64_t n)
{
	c->knock_stats.lost += n;
}

const struct knock_stats *core_knock_stats(struct core *c)
{
	uint64_t v;

	if (c->knock) {
		if (core_table_counter(c, RULESET_KNOCK_COUNTER, &v) == 0)
			core_counter_advance(v, &c->knock_kernel_last,
					     &c->knock_stats.kernel_limit);
		c->knock_stats.keys = knock_verifier_keys(c->knock);
		c->knock_stats.nonces = knock_verifier_nonces(c->knock);
	}
	return &c->knock_stats;
}

/* A refusal, through the limit: what a sender controls cannot flood the
 * log. */
static void refused(struct core *c, const char *src, enum knock_result r)
{
	uint64_t held = 0;

	c->knock_stats.results[r]++;
	if (!log_ratelimit(&c->knock_log, time(NULL), LOG_BURST,
			   LOG_INTERVAL_S, &held))
		return;
	if (held)
		warn(c, "knock from %s refused: %s (%llu more refusals not "
		     "logged)", src, knock_result_name(r),
		     (unsigned long long)held);
	else
		warn(c, "knock from %s refused: %s", src, knock_result_name(r));
}

void core_knock_packet(struct core *c, const char *prefix,
		       const uint8_t *pkt, size_t len)
{
	const struct config *cfg = engine_config(c->engine);
	char src[INET6_ADDRSTRLEN] = "?", who[INET6_ADDRSTRLEN];
	unsigned char from[16], *addr;
	const uint8_t *payload;
	struct knock_msg m;
	enum knock_result r;
	struct timespec t0, t1;
	char *err = NULL;
	size_t plen;
	int family;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (c->knock == NULL || strcmp(prefix, RULESET_KNOCK_PREFIX) != 0)
		return;
	if (knock_udp_payload(pkt, len, (uint16_t)config_daemon(cfg)->knock.port,
			      &family, from, &payload, &plen) < 0) {
		c->knock_stats.not_udp++;
		refused(c, src, KNOCK_MALFORMED);
		return;
	}
	inet_ntop(family, from, src, sizeof(src));
	r = knock_verify(c->knock, payload, plen, time(NULL), &m);
	if (r != KNOCK_OK) {
		refused(c, src, r);
		return;
	}
	c->knock_stats.results[KNOCK_OK]++;
	/* The address inside, when the client named one; else the source
	 * (a client behind NAT does not know its public address). */
	if (m.family) {
		family = m.family;
		addr = m.addr;
	} else {
		addr = from;
	}
	inet_ntop(family, addr, who, sizeof(who));
	if (engine_knock_admit(c->engine, family, addr, &err) < 0) {
		c->knock_stats.admit_failed++;
		warn(c, "knock: key %s from %s: %s could not be let in: %s",
		     m.name, src, who, err ? err : "out of memory");
		free(err);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	info(c, "knock: key %s from %s let %s in for %u s (%.2f ms)", m.name,
	     src, who, config_daemon(cfg)->knock.trust_s,
	     (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	     (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
}
