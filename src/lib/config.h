/*
 * config: the reference's configuration.json, validated completely in C
 * before anything else happens, and the two rule files it names.
 *
 * Every problem is reported (file, JSON path, value, what was expected),
 * not only the first.  A configuration that loads is internally consistent:
 * ports in range, addresses parsed, no duplicates, enough free redirect
 * ports for every watched address, rule files parsed and the template
 * compiled.  What only the kernel can judge (does libnftables accept the
 * instantiated rules) is checked by check_config().
 */
#ifndef PORTHOP_CONFIG_H
#define PORTHOP_CONFIG_H

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "diag.h"
#include "template.h"

/* Limits on what a configuration may ask for. */
#define CONFIG_MAX_FILE_SIZE	(16u << 20)
#define CONFIG_MAX_RULES_SIZE	(1u << 20)
#define CONFIG_MAX_CHANNELS	64
#define CONFIG_MAX_STRING	255
#define CONFIG_MAX_WATCHED	1000000
#define CONFIG_DEFAULT_CONTROL_SOCKET "/run/porthop/porthopd.sock"
#define CONFIG_DEFAULT_STATE_DIRECTORY "/var/lib/porthop"
/* Where porthopd and porthop look for the configuration by default. */
#define CONFIG_DEFAULT_PATH "/etc/porthop/configuration.json"

/* Skip loading the two rule files (for `porthop publish`, which needs only
 * the Redis settings). */
#define CONFIG_LOAD_NO_RULES	0x1

/* Protocols, as indexes of the per-protocol arrays below. */
enum config_proto { CONFIG_TCP = 0, CONFIG_UDP = 1, CONFIG_NPROTO = 2 };

/* Template mode: the reference's rule files.  Native mode (no rule file
 * named): porthop's own table with maps. */
enum config_mode { CONFIG_MODE_TEMPLATE, CONFIG_MODE_NATIVE };
enum config_untrack {
	CONFIG_UNTRACK_OFF, CONFIG_UNTRACK_ON, CONFIG_UNTRACK_AUTO
};
enum config_prestage {
	CONFIG_PRESTAGE_OFF, CONFIG_PRESTAGE_ON, CONFIG_PRESTAGE_AUTO
};
/* prestage "auto" stages the next mapping from this many pairs on: below,
 * a full replace at the trigger costs no more than a few milliseconds
 * (docs/native-mode.md, bench/prestage.sh). */
#define CONFIG_PRESTAGE_AUTO_PAIRS 10000

struct config;

/* An address or a prefix, in canonical form. */
struct config_net {
	char text[INET6_ADDRSTRLEN + 4];	/* "a.b.c.d" or "a.b.c.0/24" */
	char addr_text[INET6_ADDRSTRLEN];	/* the address part */
	int family;				/* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix_len;			/* 32 or 128 for an address */
	bool is_prefix;				/* written with a "/len" */
};

struct derive;

/* One entry of watched_addresses. */
struct config_watched {
	struct config_net net;
	char ip[INET6_ADDRSTRLEN + 4];		/* == net.text */
	int family;				/* == net.family */
	/* Per protocol: the ports to shuffle (the protocol's ports minus
	 * this entry's ignore list), and the ignore list as given. */
	const uint16_t *ports[CONFIG_NPROTO];
	size_t nports[CONFIG_NPROTO];
	const uint16_t *ignore[CONFIG_NPROTO];
	size_t nignore[CONFIG_NPROTO];
	bool runtime;		/* added at runtime (config_watched_add) */
	/* A keyed entry ("derive_key", native mode, docs/follow.md): its
	 * services' ports are derived per time slot from the key instead
	 * of shuffled, so ports[] and nports[] are empty and the services
	 * are the derivation's.  NULL for every other entry. */
	const struct derive *derive;
	const char *derive_key;		/* the key file, as given */
	unsigned slot_seconds;		/* the key's slot length */
	unsigned derive_id;		/* among keyed entries, in file order */
};

/* At most this many keyed entries (each has chains and maps of its own). */
#define CONFIG_DERIVE_MAX 8

/* Optional Redis settings beyond the reference's five keys.  The strings
 * belong to the configuration and live as long as it. */
#define CONFIG_MAX_SENTINELS 16
struct config_sentinel {
	const char *host;
	int port;
};

struct config_redis_extra {
	const char *password;		/* AUTH password, or NULL */
	const char *username;		/* ACL user, or NULL */
	const char *unix_socket;	/* connect here instead of host:port */
	unsigned connect_timeout_ms;
	unsigned retry_max_ms;
	/* Sentinel: where to ask for the primary of master_name (host and
	 * port are then only the first guess, for publishers without
	 * sentinels' answer); nsentinels 0: no Sentinel. */
	const struct config_sentinel *sentinels;
	size_t nsentinels;
	const char *master_name;
};

/* The fleet feed (the optional "redis_stream_configuration" object; see
 * docs/fleet.md).  The strings belong to the configuration. */
struct config_stream {
	const char *stream;		/* NULL: no stream (pub/sub) */
	const char *group;		/* this host's consumer group */
	unsigned maxlen;		/* XADD MAXLEN ~ */
	unsigned wait_replicas;		/* publishers: WAIT this many */
	unsigned wait_timeout_ms;
	unsigned resync_interval_s;	/* re-read the snapshot; 0: never */
	unsigned batch;			/* entries per read */
	unsigned read_interval_ms;	/* the least time between reads */
};

/* Reads of new entries are this far apart at least: under a steady load
 * a host takes the entries of an interval in one read (one transaction,
 * one commit) instead of waking for every entry; an idle host's first
 * entry is read at once (docs/fleet.md, docs/benchmarks.md). */
#define STREAM_READ_INTERVAL_DEFAULT_MS 10

/* Daemon settings (the optional "porthopd" object).  The strings and the
 * key belong to the configuration and live as long as it. */
/* porthopd.events: what the kernel logs to porthopd and where the
 * merged events go. */
struct config_events {
	bool on;
	unsigned nflog_group;		/* the kernel's nflog group */
	unsigned rate, burst;		/* per kind: packets/second, burst */
	unsigned merge_ms;		/* identical events merged over this */
	unsigned ring;			/* events kept for `porthop events` */
	unsigned stale_seconds;		/* old redirect ports kept this long */
	unsigned stale_max;		/* ... and at most this many */
	bool log;			/* one JSON line per event to the log */
	const char *stream;		/* Redis stream key; NULL: none */
	unsigned stream_maxlen;		/* XADD MAXLEN ~ */
	char **hook;			/* argv, NULL-terminated; NULL: none */
	unsigned hook_per_minute;
};

/* porthopd.autowatch: scanners watched automatically. */
struct config_autowatch {
	bool on;
	unsigned ports, seconds;	/* distinct closed ports within */
	unsigned ttl_s;			/* the entry's TTL */
	unsigned max_entries;		/* oldest evicted beyond */
};

/* porthopd.knock: single packet authorisation (docs/knock.md). */
#define CONFIG_KNOCK_KEYS_DIRECTORY "/etc/porthop/clients"
struct config_knock {
	bool on;
	unsigned port;			/* the UDP port knocks go to */
	const char *keys_directory;	/* one NAME.key file per client */
	unsigned trust_s;		/* how long a knock lets its source in */
	unsigned window_s;		/* a knock's accepted age either way */
	unsigned nflog_group;		/* the kernel logs knocks here */
	unsigned rate;			/* knocks per second the kernel logs */
};

struct config_daemon {
	unsigned reconcile_interval_s;	/* 0: never */
	unsigned min_shuffle_interval_ms;
	bool shuffle_on_reconnect;
	/* Authenticated triggers: the shared key (NULL: off, every message
	 * triggers, as in the reference) and the time window. */
	const unsigned char *trigger_key;
	size_t trigger_key_len;
	unsigned trigger_window_s;
	/* The control socket ("" or NULL: none) and the group allowed to
	 * use it besides root ((gid_t)-1: root only). */
	const char *control_socket;
	gid_t control_gid;
	/* Prometheus textfile written every metrics_interval_s (NULL: no). */
	const char *metrics_textfile;
	unsigned metrics_interval_s;
	/* The runtime watch list: its state directory ("": memory only)
	 * and limits. */
	const char *state_directory;
	unsigned max_runtime_entries;
	unsigned min_prefix_len_v4, min_prefix_len_v6;
	unsigned max_ttl_s;
	/* The probe event feed (docs/events.md): on when "events" or
	 * "autowatch" is given; autowatch needs it. */
	struct config_events events;
	struct config_autowatch autowatch;
	/* Single packet authorisation: on when "knock" is given. */
	struct config_knock knock;
};

/* Loads and validates `path`.  Returns a new configuration owned by the
 * caller, or NULL with every error appended to d (warnings may be appended
 * on success too). */
struct config *config_load(const char *path, unsigned flags, struct diag *d);

/* Frees the configuration; accepts NULL. */
void config_free(struct config *c);

/* Accessors; the returned pointers live as long as c. */
const char *config_file(const struct config *c);
const char *config_redis_host(const struct config *c);
int config_redis_port(const struct config *c);
size_t config_channel_count(const struct config *c);
const char *config_channel(const struct config *c, size_t i);
const char *config_startup_path(const struct config *c);
const char *config_rules_path(const struct config *c);
unsigned config_max_port(const struct config *c);
const uint16_t *config_tcp_ports(const struct config *c, size_t *ret_n);
/* True if port is one of tcp_ports (never drawn as a TCP redirect port). */
bool config_port_used(const struct config *c, unsigned port);
/* Ports of one protocol (tcp_ports or udp_ports). */
const uint16_t *config_proto_ports(const struct config *c,
				   enum config_proto p, size_t *ret_n);
/* True if port is one of that protocol's ports. */
bool config_proto_port_used(const struct config *c, enum config_proto p,
			    unsigned port);
size_t config_watched_count(const struct config *c);
const struct config_watched *config_watched(const struct config *c, size_t i);
/* Index of the watched entry with this address, or -1. */
long config_watched_find(const struct config *c, const char *ip);
/* Index of the watched entry that covers ip (an address or a prefix): the
 * entry of that very address or prefix, or else the watched prefix it lies
 * inside; -1 if none does. */
long config_watched_lookup(const struct config *c, const char *ip);
/* The index of the watched prefix strictly wider than net that covers it,
 * or -1. */
long config_watched_cover(const struct config *c, const struct config_net *net);
/* Calls fn for every watched entry inside net but net's own, in the
 * order of their networks; stops when fn returns non-zero, and returns
 * that. */
int config_watched_inside(const struct config *c, const struct config_net *net,
			  int (*fn)(void *arg, size_t idx), void *arg);
/* How many of the watched entries come from the file (they come first;
 * runtime entries follow). */
size_t config_configured_count(const struct config *c);

/* Runtime entries (native mode).  Adds net as a watched entry after the
 * others, its ports the protocols' ports minus ignore (each sorted,
 * distinct; NULL: none).  Returns 0 with its index in *ret_idx, or
 * -EEXIST (already watched: its index in *ret_idx), -EPERM (a trusted
 * network covers it), -EINVAL (a prefix overlapping a watched prefix),
 * -ENOSPC (not enough free redirect ports, or an address past the swap
 * maps' room, map_capacity), -EOPNOTSUPP (template mode),
 * -ENOMEM; each but the last with a one-line reason in why. */
int config_watched_add(struct config *c, const struct config_net *net,
		       const uint16_t *const ignore[CONFIG_NPROTO],
		       const size_t nignore[CONFIG_NPROTO], char *why,
		       size_t why_len, size_t *ret_idx);
/* Removes the runtime entry idx; the last entry moves into its place:
 * *ret_moved is the index it had (idx itself if it was the last).
 * -EPERM for an entry of the file's. */
int config_watched_remove(struct config *c, size_t idx, size_t *ret_moved);
/* config_watched_remove, the entry handed to the caller in *ret instead
 * of freed: config_watched_put_back(c, idx, ret) undoes it exactly (in
 * the reverse order of several), config_watched_release frees it. */
int config_watched_take(struct config *c, size_t idx,
			struct config_watched *ret, size_t *ret_moved);
void config_watched_put_back(struct config *c, size_t idx,
			     const struct config_watched *w);
void config_watched_release(struct config_watched *w);

/* Total (address, port) pairs over all watched addresses. */
size_t config_pair_count(const struct config *c);
/* Native mode, map_capacity: the pairs the swap maps of one family hold
 * at most (map_capacity addresses with every service; 0: unsized), and
 * the maps' size in elements (two a pair: the real port's and the
 * redirect's), declared to nftables so that the kernel sizes their hash
 * table once instead of growing it as entries come. */
unsigned config_map_capacity(const struct config *c);
uint64_t config_map_pairs(const struct config *c);
uint64_t config_map_size(const struct config *c);
/* The pairs the swap maps of one family hold now (addresses only), and
 * the services an address has at most (tcp_ports and udp_ports). */
size_t config_swap_pairs(const struct config *c, bool v6);
size_t config_services(const struct config *c);
enum config_mode config_mode(const struct config *c);
/* Native mode: the table's name, the trusted exceptions, and whether a
 * clean stop removes the table. */
const char *config_table_name(const struct config *c);
size_t config_trusted_count(const struct config *c);
const struct config_net *config_trusted(const struct config *c, size_t i);
/* The first (last) address of n as a number; an IPv4 address in the low
 * 32 bits. */
unsigned __int128 config_net_value(const struct config_net *n, bool last);
bool config_remove_on_stop(const struct config *c);
/* Native mode: whether packets of clients that are not watched (or are
 * trusted) are marked untracked, so that only watched clients pay for
 * connection tracking.  Always is unsafe where anything else on the host
 * relies on conntrack for those clients; so by default (AUTO) only while
 * no other table uses conntrack (template mode: OFF). */
enum config_untrack config_untrack(const struct config *c);
/* Native mode: the prestage setting (template mode: OFF). */
enum config_prestage config_prestage(const struct config *c);
/* Whether a table defined now under c has a second generation of maps,
 * into which the next mapping is loaded ahead of the trigger that puts it
 * in force: ON, or AUTO with at least CONFIG_PRESTAGE_AUTO_PAIRS pairs
 * (runtime entries included), with the probe event feed on or off.  The
 * engine decides when it defines the table: runtime entries that cross
 * the bound later count at the next definition (a reload). */
bool config_prestage_active(const struct config *c);
const struct config_redis_extra *config_redis_extra(const struct config *c);
const struct config_daemon *config_daemon(const struct config *c);
const struct config_stream *config_stream(const struct config *c);
/* The order of networks: family, address, prefix length. */
int config_net_cmp(const struct config_net *x, const struct config_net *y);
/* Parses "addr" or "addr/len" (canonical or not) into *ret.  Prefixes
 * with host bits set are refused.  Returns 0 or -EINVAL. */
int config_parse_net(const char *s, bool allow_prefix, struct config_net *ret);

/* Template mode: the startup commands array (borrowed), and the compiled
 * template (NULL in native mode). */
json_t *config_startup_commands(const struct config *c);
const struct template *config_template(const struct config *c);

#endif
