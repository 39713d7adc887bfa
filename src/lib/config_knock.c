/*
 * config_knock: porthopd.knock, single packet authorisation (the knock
 * port, the keys directory, how long a knock lets its source in).  See
 * docs/knock.md.
 */
#include "config_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const knock_keys[] = {
	"port", "protocol", "keys_directory", "trust_seconds",
	"window_seconds", "nflog_group", "rate_per_second", NULL
};

void config_knock_defaults(struct config *c)
{
	c->daemon.knock = (struct config_knock){
		.port = 62201,
		.trust_s = 60,
		.window_s = 30,
		.nflog_group = 8,
		.rate = 1000,
	};
}

void config_knock_free(struct config *c)
{
	free((void *)c->daemon.knock.keys_directory);
	c->daemon.knock.keys_directory = NULL;
}

/* protocol: "udp", the only one (a knock is one datagram). */
static int walk_protocol(struct walk *w, const json_t *o, const char *p)
{
	char vbuf[DIAG_VALUE_MAX + 8];
	const json_t *v = json_object_get(o, "protocol");

	if (v == NULL || (json_is_string(v) &&
			  strcmp(json_string_value(v), "udp") == 0))
		return 0;
	diag_error(w->d, "%s: %s.protocol: %s is not a knock protocol; "
		   "expected \"udp\"", w->file, p,
		   diag_value(vbuf, sizeof(vbuf), v));
	return -1;
}

/* The knock port must be none of the services (their packets would be
 * read as knocks and redirected as services). */
static int check_port(struct walk *w, const struct config *c, const char *p)
{
	const struct config_knock *k = &c->daemon.knock;
	size_t n;
	const uint16_t *ports = config_proto_ports(c, CONFIG_UDP, &n);

	for (size_t i = 0; i < n; i++)
		if (ports[i] == k->port) {
			diag_error(w->d, "%s: %s.port: %u is one of udp_ports; "
				   "expected a port no service uses, e.g. 62201",
				   w->file, p, k->port);
			return -1;
		}
	if (c->daemon.events.on && c->daemon.events.nflog_group ==
	    k->nflog_group) {
		diag_error(w->d, "%s: %s.nflog_group: %u is porthopd.events' "
			   "group too; expected another group (each has its "
			   "own reader)", w->file, p, k->nflog_group);
		return -1;
	}
	return 0;
}

int walk_knock(struct walk *w, struct config *c, const json_t *o)
{
	const json_t *ko = json_object_get(o, "knock");
	struct config_knock *k = &c->daemon.knock;
	const char *p = "porthopd.knock";
	char vbuf[DIAG_VALUE_MAX + 8], *dir = NULL;
	int r = 0;

	if (ko == NULL)
		return 0;
	if (c->mode != CONFIG_MODE_NATIVE) {
		diag_error(w->d, "%s: %s: knocks need native mode; expected no "
			   "nft_address_rules_path (template mode's rules come "
			   "from the reference's files)", w->file, p);
		return -1;
	}
	if (!walk_object(w, ko, p, knock_keys))
		return -1;
	k->on = true;
	r |= walk_opt_int(w, ko, p, "port", 1, 65535,
			  "the UDP port knocks are sent to", &k->port);
	r |= walk_protocol(w, ko, p);
	r |= walk_opt_int(w, ko, p, "trust_seconds", 1, 86400,
			  "how long a knock lets its source in, in seconds",
			  &k->trust_s);
	r |= walk_opt_int(w, ko, p, "window_seconds", 1, 3600,
			  "a knock's accepted age either way, in seconds",
			  &k->window_s);
	r |= walk_opt_int(w, ko, p, "nflog_group", 0, 65535,
			  "the nflog group the kernel logs knocks to",
			  &k->nflog_group);
	r |= walk_opt_int(w, ko, p, "rate_per_second", 1, 1000000,
			  "the most knocks per second the kernel hands over",
			  &k->rate);
	if (walk_opt_string(w, ko, p, "keys_directory", &dir) < 0) {
		r = -1;
	} else if (dir && dir[0] != '/') {
		diag_error(w->d, "%s: %s.keys_directory: %s is not an absolute "
			   "path; expected e.g. \"" CONFIG_KNOCK_KEYS_DIRECTORY
			   "\"", w->file, p, diag_string(vbuf, sizeof(vbuf), dir));
		free(dir);
		r = -1;
	} else {
		k->keys_directory = dir ? dir : strdup(CONFIG_KNOCK_KEYS_DIRECTORY);
		if (k->keys_directory == NULL)
			r = -1;
	}
	if (r == 0)
		r = check_port(w, c, p);
	return r;
}
