/*
 * config_private: what the files of the config module share and nothing
 * outside them may use: struct config itself, the walking state, the
 * walk's steps (config_walk.c), each section's walk (config_redis.c,
 * config_nft.c, config_daemon.c) and the checks of addresses that the
 * nftables section calls (config_net.c).
 */
#ifndef PORTHOP_CONFIG_PRIVATE_H
#define PORTHOP_CONFIG_PRIVATE_H

#include "config.h"

struct config {
	char *file;
	enum config_mode mode;
	char *redis_host;
	int redis_port;
	/* redis_extra and daemon own the strings and the key they point
	 * to (one copy of each value): callers see them const through
	 * config_redis_extra() and config_daemon(); config_free() frees. */
	struct config_redis_extra redis_extra;
	struct config_stream stream;
	char **channels;
	size_t nchannels;
	char *startup_path;
	char *rules_path;
	char *table_name;
	bool remove_on_stop;
	enum config_untrack untrack;
	enum config_prestage prestage;
	unsigned max_port;
	uint16_t *proto_ports[CONFIG_NPROTO];
	size_t nproto[CONFIG_NPROTO];
	struct config_watched *watched;
	size_t nwatched;
	size_t nconfigured;	/* the file's entries; runtime ones follow */
	size_t cap_watched;	/* room in watched and by_net */
	/* Indexes of the watched entries sorted by network, for lookups by
	 * address (indexes, not pointers: runtime entries grow the array). */
	size_t *by_net;
	size_t npairs;
	/* map_capacity: the watched addresses (no prefixes) the swap maps
	 * are sized for (0: unsized), and the pairs the IPv4 [0] and IPv6
	 * [1] addresses hold now (each pair two elements of the map). */
	unsigned map_capacity;
	size_t swap_pairs[2];
	struct config_net *trusted;
	size_t ntrusted;
	struct config_daemon daemon;
	json_t *startup;
	struct template *tmpl;
	uint8_t used[CONFIG_NPROTO][65536 / 8];	/* bitmaps of the ports */
};

/* Walking state: the file name for messages and the running diag. */
struct walk {
	const char *file;
	struct diag *d;
	uint8_t ignored[65536 / 8];	/* scratch: one entry's ignore list */
};

/*
 * The walk's steps.  `path` is the JSON path of the object (or of the
 * value), `key` the member's name.  Each reports what it finds wrong to
 * w->d and returns -1 (walk_object: false, walk_require: NULL); output
 * parameters are written only on success, and may be NULL where the
 * value is only checked.
 */

/* Requires v to be an object and reports each key not in allowed (a NULL-
 * terminated list); false (reported) if v is not an object. */
bool walk_object(struct walk *w, const json_t *v, const char *path,
		 const char *const *allowed);
/* The member (borrowed), or NULL after reporting it missing; expected
 * says what it should have been. */
json_t *walk_require(struct walk *w, const json_t *obj, const char *path,
		     const char *key, const char *expected);
/* A required non-empty string of at most CONFIG_MAX_STRING bytes without
 * NUL; *ret is a malloc'ed copy the caller owns. */
int walk_string(struct walk *w, const json_t *obj, const char *path,
		const char *key, char **ret);
/* The value v at path: an integer in [min, max]; what names it. */
int walk_int_value(struct walk *w, const json_t *v, const char *path,
		   long long min, long long max, const char *what, int *ret);
/* A required integer member in [min, max]. */
int walk_int(struct walk *w, const json_t *obj, const char *path,
	     const char *key, long long min, long long max, const char *what,
	     int *ret);
/* The value v at path: an array of distinct ports (1 to 65535), non-empty
 * if asked.  *ret is malloc'ed (room for one more entry), owned by the
 * caller. */
int walk_ports(struct walk *w, const json_t *v, const char *path,
	       bool nonempty, uint16_t **ret, size_t *ret_n);
/* Optional members: absent returns 0 and leaves *ret as it is. */
int walk_opt_int(struct walk *w, const json_t *obj, const char *path,
		 const char *key, long long min, long long max,
		 const char *what, unsigned *ret);
int walk_opt_bool(struct walk *w, const json_t *obj, const char *path,
		  const char *key, bool *ret);
int walk_opt_string(struct walk *w, const json_t *obj, const char *path,
		    const char *key, char **ret);

/* The sections, each in a file of its own: the section's object in root
 * into c.  -1 if anything in it is wrong, which is reported, or if memory
 * ran out. */
int walk_redis(struct walk *w, struct config *c, const json_t *root);
int walk_subscriber(struct walk *w, struct config *c, const json_t *root);
int walk_nftables(struct walk *w, struct config *c, const json_t *root);
int walk_daemon(struct walk *w, struct config *c, const json_t *root);
/* porthopd.events and porthopd.autowatch (config_events.c), inside the
 * porthopd object o; the defaults first, set whether or not o has them. */
void config_events_defaults(struct config *c);
int walk_events(struct walk *w, struct config *c, const json_t *o);
void config_events_free(struct config *c);
/* porthopd.knock (config_knock.c), inside the porthopd object o, after
 * the nftables section (its ports) and events (its nflog group). */
void config_knock_defaults(struct config *c);
int walk_knock(struct walk *w, struct config *c, const json_t *o);
void config_knock_free(struct config *c);
int walk_stream(struct walk *w, struct config *c, const json_t *root);
/* config_stream.c: "sentinels" and "master_name" of the connection
 * object o at path p. */
int walk_sentinels(struct walk *w, struct config *c, const json_t *o,
		   const char *p);

/* config_net.c: the value v at path, an address (or, with allow_prefix, a
 * prefix) into *out. */
/* A watched entry's "derive_key" (config_derive.c): the key file loaded
 * and checked against the entry's services and the pool; out's ports
 * become the derivation's.  Absent: nothing.  walk_derive_nested numbers
 * the keyed entries (derive_id), and refuses more than CONFIG_DERIVE_MAX
 * and a keyed entry inside another (both would be in one interval map).  config_derive_release frees what a keyed entry holds. */
int walk_derive_key(struct walk *w, struct config *c, const json_t *e,
		    const char *path, struct config_watched *out);
int walk_derive_nested(struct walk *w, struct config *c, const char *path);
void config_derive_release(struct config_watched *cw);

int walk_net(struct walk *w, const json_t *v, const char *path,
	     bool allow_prefix, struct config_net *out);
/* Reports watched entries that repeat one another and prefixes that
 * overlap (path: the watched_addresses array), then indexes the entries
 * by network for config_watched_find() and config_watched_lookup(). */
int walk_watched_nets(struct walk *w, struct config *c, const char *path);
/* The optional trusted_addresses member of o (native mode only), into
 * c->trusted; repeats and overlaps reported.  p: the path of o. */
int walk_trusted(struct walk *w, struct config *c, const json_t *o,
		 const char *p);
/* The position in c->by_net of the first entry not below net; *ret_found
 * says whether it is net itself. */
size_t config_by_net_lower(const struct config *c, const struct config_net *net,
			   bool *ret_found);
/* Warns about trusted entries that undo watched ones: trusted wins in
 * every chain, so a watched entry inside a trusted one is never watched,
 * and a trusted 0.0.0.0/0 or ::/0 leaves nothing watched in its family.
 * Accepted (a trusted exception may be meant to switch watching off for a
 * while), but said.  Returns -1 only when out of memory. */
int walk_trusted_covers(struct walk *w, const struct config *c,
			const char *p);

#endif
