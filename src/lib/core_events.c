/*
 * core_events: the probe event feed's policy (see core.h, docs/events.md):
 * a logged packet read into an event and labelled (the real port, the
 * mapping's generation), merged, kept in the ring and handed on; probes
 * counted per source (autowatch), a scanner watched with origin
 * "autowatch", the oldest such entry evicted beyond max_entries, and an
 * entry's TTL started again when its address meets a stale port.
 */
#include "core_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "autowatch.h"
#include "ruleset.h"
#include "timems.h"

#define AUTOWATCH_ORIGIN "autowatch"
/* A stale event refreshes its address's autowatch entry at most this
 * often (each refresh is a state-file record). */
#define REFRESH_EVERY_MS 10000
#define REFRESH_SLOTS 256
/* The labels of old redirect ports kept (a cache: what is forgotten
 * leaves a stale event without its real port and generation). */
#define STALE_CACHE_MAX (1u << 20)

/* An old redirect port: where it led and in which generation. */
struct stale_label {
	uint64_t hash;		/* 0: empty */
	uint64_t generation;
	uint16_t real;
};

struct recent {
	uint64_t hash;
	int64_t ms;
};

struct core_events {
	struct config_events ev;	/* the settings it was made for */
	struct config_autowatch aw;
	struct probe_merge *merge;
	struct probe_ring *ring;
	struct autowatch *counter;	/* NULL: autowatch off */
	struct stale_label *stale;
	size_t stale_mask;
	/* The prefix lengths (per family: IPv4, IPv6) that have labels: a
	 * stale packet's source is looked up masked to each of them. */
	bool stale_len[2][129];
	struct recent refreshed[REFRESH_SLOTS];
	/* Autowatched addresses, oldest first (a ring). */
	char (*fifo)[INET6_ADDRSTRLEN];
	size_t fifo_head, fifo_n, fifo_cap;
	unsigned char key[crypto_shorthash_KEYBYTES];
	uint64_t kernel_last;		/* the counter as last read */
};

/* The label's key: family (4 or 6), the network (addr, the first 4 bytes
 * for IPv4, masked to len bits), its length, protocol and port. */
static uint64_t label_hash(const struct core_events *ev, uint8_t family,
			   const uint8_t addr[16], unsigned len, uint8_t proto,
			   uint16_t port)
{
	unsigned char in[21], out[crypto_shorthash_BYTES];
	uint64_t h;

	in[0] = family;
	in[1] = proto;
	in[2] = (unsigned char)(port >> 8);
	in[3] = (unsigned char)port;
	in[4] = (unsigned char)len;
	memset(in + 5, 0, 16);
	for (unsigned i = 0; i < 16 && i * 8 < len; i++)
		in[5 + i] = addr[i] & (len - i * 8 >= 8 ? 0xff :
				       (unsigned char)(0xff00u >> (len - i * 8)));
	crypto_shorthash(out, in, sizeof(in), ev->key);
	memcpy(&h, out, sizeof(h));
	return h | 1;	/* never 0, the empty slot */
}

/* The engine's stale hook: an old redirect port's label. */
static void on_stale(void *arg, const struct config_watched *w,
		     const struct shuffle_pair *p, uint64_t generation)
{
	struct core_events *ev = arg;
	int v6 = w->family == AF_INET6;
	uint8_t addr[16] = { 0 };
	uint64_t h;

	memcpy(addr, w->net.addr, v6 ? 16 : 4);
	h = label_hash(ev, v6 ? 6 : 4, addr, w->net.prefix_len,
		       p->proto == CONFIG_UDP ? IPPROTO_UDP : IPPROTO_TCP,
		       p->redirect);
	ev->stale[h & ev->stale_mask] = (struct stale_label){
		h, generation, p->port };
	ev->stale_len[v6][w->net.prefix_len] = true;
}

/* The label of a stale packet's port: its address's own, else the
 * longest prefix's that has one; NULL if forgotten. */
static const struct stale_label *stale_label_of(const struct core_events *ev,
						const struct probe_event *e)
{
	int v6 = e->family == 6;

	for (int len = v6 ? 128 : 32; len >= 0; len--) {
		uint64_t h;
		const struct stale_label *l;

		if (!ev->stale_len[v6][len])
			continue;
		h = label_hash(ev, e->family, e->addr, (unsigned)len, e->proto,
			       e->port);
		l = &ev->stale[h & ev->stale_mask];
		if (l->hash == h)
			return l;
	}
	return NULL;
}

void core_events_free(struct core *c)
{
	struct core_events *ev = c->events;

	if (ev == NULL)
		return;
	engine_set_stale_hook(c->engine, NULL, NULL);
	probe_merge_free(ev->merge);
	probe_ring_free(ev->ring);
	autowatch_free(ev->counter);
	free(ev->stale);
	free(ev->fifo);
	free(ev);
	c->events = NULL;
}

static bool same_settings(const struct core_events *ev,
			  const struct config_daemon *d)
{
	return ev->ev.merge_ms == d->events.merge_ms &&
	       ev->ev.ring == d->events.ring &&
	       ev->ev.stale_max == d->events.stale_max &&
	       ev->aw.on == d->autowatch.on &&
	       ev->aw.ports == d->autowatch.ports &&
	       ev->aw.seconds == d->autowatch.seconds &&
	       ev->aw.max_entries == d->autowatch.max_entries;
}

static void emit(void *arg, const struct probe_event *e);

int core_events_setup(struct core *c)
{
	const struct config_daemon *d = config_daemon(engine_config(c->engine));
	struct core_events *ev = c->events;
	size_t stale_slots = 1;

	if (ev && d->events.on && same_settings(ev, d)) {
		ev->ev = d->events;
		ev->aw = d->autowatch;
		return 0;
	}
	/* Events waiting in the old window go out before it is remade. */
	if (ev)
		probe_merge_flush(ev->merge, 0, true, emit, c);
	core_events_free(c);
	if (!d->events.on)
		return 0;
	ev = calloc(1, sizeof(*ev));
	if (ev == NULL)
		return -ENOMEM;
	c->events = ev;
	ev->ev = d->events;
	ev->aw = d->autowatch;
	randombytes_buf(ev->key, sizeof(ev->key));
	while (stale_slots < d->events.stale_max &&
	       stale_slots < STALE_CACHE_MAX)
		stale_slots *= 2;
	ev->stale = calloc(stale_slots, sizeof(*ev->stale));
	ev->stale_mask = stale_slots - 1;
	/* The merge table holds what one window can gather: a window's
	 * worth of every kind's rate and burst. */
	ev->merge = probe_merge_new((size_t)PROBE_KINDS *
				    (d->events.burst + (size_t)d->events.rate *
				     (d->events.merge_ms / 1000 + 1)),
				    d->events.merge_ms);
	ev->ring = probe_ring_new(d->events.ring);
	if (d->autowatch.on) {
		ev->counter = autowatch_new(d->autowatch.ports,
					    d->autowatch.seconds,
					    autowatch_default_sources(
						    d->autowatch.ports));
		ev->fifo_cap = d->autowatch.max_entries;
		ev->fifo = calloc(ev->fifo_cap, sizeof(*ev->fifo));
	}
	if (ev->stale == NULL || ev->merge == NULL || ev->ring == NULL ||
	    (d->autowatch.on && (ev->counter == NULL || ev->fifo == NULL))) {
		core_events_free(c);
		return -ENOMEM;
	}
	engine_set_stale_hook(c->engine, on_stale, ev);
	return 0;
}

bool core_events_on(const struct core *c)
{
	return c->events != NULL;
}

void core_event_lost(struct core *c, enum probe_drop why, uint64_t n)
{
	if ((unsigned)why < PROBE_DROPS)
		c->ev_stats.dropped[why] += n;
}

/* The real port a moved event's redirect port leads to, from the mapping
 * in force (0: none found). */
static uint16_t moved_to(struct core *c, const struct probe_event *e,
			 const char *src)
{
	const struct shuffle_map *map = engine_map(c->engine);
	long idx = config_watched_lookup(engine_config(c->engine), src);
	uint8_t proto = e->proto == IPPROTO_UDP ? CONFIG_UDP : CONFIG_TCP;

	if (map == NULL || idx < 0 || (size_t)idx >= map->nentries)
		return 0;
	for (size_t i = 0; i < map->entries[idx].npairs; i++) {
		const struct shuffle_pair *p = &map->entries[idx].pairs[i];

		if (p->proto == proto && p->redirect == e->port)
			return p->port;
	}
	return 0;
}

/* How many entries origin "autowatch" holds now. */
static size_t autowatch_held(const struct core *c)
{
	for (size_t i = 0; c->watchlist &&
	     i < watchlist_origin_count(c->watchlist); i++) {
		const struct watchlist_origin_stats *o =
			watchlist_origin(c->watchlist, i);

		if (strcmp(o->name, AUTOWATCH_ORIGIN) == 0)
			return o->entries;
	}
	return 0;
}

static bool held(const struct core *c, const char *src)
{
	struct config_net net;

	return c->watchlist && config_parse_net(src, false, &net) == 0 &&
	       watchlist_has(c->watchlist, &net, AUTOWATCH_ORIGIN);
}

/* Makes room below max_entries: the oldest autowatch entries go. */
static void evict_oldest(struct core *c, struct core_events *ev)
{
	size_t n = autowatch_held(c);

	while (n >= ev->aw.max_entries && ev->fifo_n > 0) {
		const char *addr = ev->fifo[ev->fifo_head];
		struct core_watch_result res;

		if (held(c, addr)) {
			memset(&res, 0, sizeof(res));
			core_watch_del(c, AUTOWATCH_ORIGIN, &addr, 1, &res,
				       NULL, NULL);
			c->ev_stats.autowatch_evicted++;
			info(c, "autowatch: %s evicted (max_entries %u)", addr,
			     ev->aw.max_entries);
			n--;
		}
		ev->fifo_head = (ev->fifo_head + 1) % ev->fifo_cap;
		ev->fifo_n--;
	}
}

/* A scanner found: watched with origin "autowatch" (refused for a
 * trusted address, like any add). */
static void autowatch_add(struct core *c, struct core_events *ev,
			  const char *src, bool refresh)
{
	struct core_watch_req req = { .address = src,
				      .ttl = (int64_t)ev->aw.ttl_s };
	struct core_watch_result res;
	uint64_t held_before;
	int r;

	if (!refresh)
		evict_oldest(c, ev);
	memset(&res, 0, sizeof(res));
	r = core_watch_add(c, AUTOWATCH_ORIGIN, &req, 1, &res, NULL, NULL);
	if (r == 0 && res.status != CORE_WATCH_OK) {
		c->ev_stats.autowatch_refused++;
		if (log_ratelimit(&c->autowatch_log, time(NULL), LOG_BURST,
				  LOG_INTERVAL_S, &held_before))
			warn(c, "autowatch: %s not watched: %s", src, res.error);
		return;
	}
	if (refresh) {
		c->ev_stats.autowatch_refreshed++;
		return;
	}
	c->ev_stats.autowatch_added++;
	info(c, "autowatch: %s probed %u closed ports within %u s: watched "
	     "for %u s", src, ev->aw.ports, ev->aw.seconds, ev->aw.ttl_s);
	if (ev->fifo_n == ev->fifo_cap) {	/* forgotten: expired */
		ev->fifo_head = (ev->fifo_head + 1) % ev->fifo_cap;
		ev->fifo_n--;
	}
	snprintf(ev->fifo[(ev->fifo_head + ev->fifo_n++) % ev->fifo_cap],
		 INET6_ADDRSTRLEN, "%s", src);
}

/* A stale port from an autowatched address: its TTL starts again, at
 * most once every REFRESH_EVERY_MS per address. */
static void maybe_refresh(struct core *c, struct core_events *ev,
			  const struct probe_event *e, const char *src,
			  int64_t now)
{
	uint64_t h = label_hash(ev, e->family, e->addr,
				e->family == 6 ? 128 : 32, 0, 0);
	struct recent *r = &ev->refreshed[h % REFRESH_SLOTS];

	if (r->hash == h && now - r->ms < REFRESH_EVERY_MS)
		return;
	if (!held(c, src))
		return;
	*r = (struct recent){ h, now };
	autowatch_add(c, ev, src, true);
}

void core_event_packet(struct core *c, const char *prefix,
		       const uint8_t *pkt, size_t len)
{
	struct core_events *ev = c->events;
	char src[INET6_ADDRSTRLEN];
	struct probe_event e;
	int64_t now = timems_wall();

	if (ev == NULL)
		return;
	if (probe_parse(prefix, pkt, len, now, &e) < 0) {
		c->ev_stats.dropped[PROBE_DROP_MALFORMED]++;
		return;
	}
	c->ev_stats.packets[e.kind]++;
	probe_source(&e, src, sizeof(src));
	e.generation = engine_stats(c->engine)->shuffles;
	if (e.kind == PROBE_MOVED) {
		e.real_port = moved_to(c, &e, src);
	} else if (e.kind == PROBE_VACATED) {
		e.real_port = e.port;
	} else if (e.kind == PROBE_STALE) {
		const struct stale_label *l = stale_label_of(ev, &e);

		/* Unknown (forgotten): no real port, generation 0. */
		e.real_port = l ? l->real : 0;
		e.generation = l ? l->generation : 0;
	}
	if (probe_merge_add(ev->merge, &e) < 0)
		c->ev_stats.dropped[PROBE_DROP_MERGE]++;
	/* Counted from every packet, not the merged events: a scanner is
	 * caught as soon as it crosses the threshold. */
	/* Probes the kernel logged before the add came into force count
	 * for nothing. */
	if (ev->counter && e.kind == PROBE_PROBE &&
	    autowatch_see(ev->counter, &e, now) == 1 && !held(c, src))
		autowatch_add(c, ev, src, false);
	else if (ev->counter && e.kind == PROBE_STALE)
		maybe_refresh(c, ev, &e, src, now);
}

static void emit(void *arg, const struct probe_event *e)
{
	struct core *c = arg;
	struct probe_event copy = *e;
	json_t *j;
	char *text;
	unsigned drops = 0;

	if (c->events)
		probe_ring_push(c->events->ring, &copy);
	c->ev_stats.events[copy.kind]++;
	if (c->hooks.event == NULL)
		return;
	j = probe_json(&copy);
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (text)
		drops = c->hooks.event(c->hooks.arg, &copy, text, strlen(text));
	else
		drops = 1u << PROBE_DROP_STREAM | 1u << PROBE_DROP_HOOK;
	free(text);
	for (int d = 0; d < PROBE_DROPS; d++)
		if (drops & (1u << d))
			c->ev_stats.dropped[d]++;
}

void core_events_tick(struct core *c)
{
	if (c->events)
		probe_merge_flush(c->events->merge, timems_wall(), false, emit, c);
}

int core_table_counter(struct core *c, const char *name, uint64_t *ret)
{
	const struct config *cfg = engine_config(c->engine);
	json_t *cmds = json_pack("{s:[{s:{s:{s:s,s:s,s:s}}}]}", "nftables",
				 "list", "counter", "family", "inet", "table",
				 config_table_name(cfg), "name", name);
	json_t *out = NULL, *o;
	int r = -ENOENT;
	size_t i;

	if (cmds && nftio_list_json(c->io, cmds, true, &out, NULL) == 0) {
		json_array_foreach(json_object_get(out, "nftables"), i, o) {
			json_t *n = json_object_get(json_object_get(o, "counter"),
						    "packets");

			if (!json_is_integer(n))
				continue;
			*ret = (uint64_t)json_integer_value(n);
			r = 0;
		}
	}
	json_decref(out);
	json_decref(cmds);
	return r;
}

void core_counter_advance(uint64_t now, uint64_t *last, uint64_t *total)
{
	/* A table defined anew starts its counter at 0. */
	*total += now >= *last ? now - *last : now;
	*last = now;
}

/* What the kernel's rate limits held back: the table's named counter. */
static void read_kernel_counter(struct core *c)
{
	uint64_t v;

	if (core_table_counter(c, RULESET_EVENTS_COUNTER, &v) == 0)
		core_counter_advance(v, &c->events->kernel_last,
				     &c->ev_stats.dropped[PROBE_DROP_KERNEL]);
}

const struct probe_stats *core_event_stats(struct core *c)
{
	if (c->events) {
		read_kernel_counter(c);
		c->ev_stats.stale_skipped = engine_stale_skipped(c->engine);
		c->ev_stats.autowatch_sources = c->events->counter ?
			autowatch_sources(c->events->counter) : 0;
	}
	return &c->ev_stats;
}

size_t core_events_since(const struct core *c, uint64_t after, size_t max,
			 void (*fn)(void *arg, const struct probe_event *e),
			 void *arg, uint64_t *ret_last)
{
	*ret_last = c->events ? probe_ring_last(c->events->ring) : 0;
	return c->events ? probe_ring_since(c->events->ring, after, max, fn,
					    arg) : 0;
}
