/*
 * config_nft: the "nftables_service_configuration" section.  The mode
 * (template or native) and its options, the ports to shuffle, the watched
 * entries with their ignore lists, and whether max_port_number leaves
 * enough free redirect ports for every watched entry.
 */
#include "config_private.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const proto_name[CONFIG_NPROTO] = { "tcp", "udp" };

static const char *const nft_keys[] = {
	"nft_startup_commands_path", "nft_address_rules_path",
	"max_port_number", "tcp_ports", "udp_ports", "watched_addresses",
	"trusted_addresses", "table_name", "remove_table_on_stop",
	"untrack_unwatched", "prestage", "map_capacity", NULL
};
static const char *const watched_keys[] = {
	"ip", "tcp_ignore", "udp_ignore", "derive_key", NULL
};
/* A key that takes true, false or "auto" (untrack_unwatched, prestage):
 * *ret is 0, 1 or 2 as the enums CONFIG_*_OFF, _ON, _AUTO; left alone if
 * the key is absent. */
static int opt_bool_or_auto(struct walk *w, const json_t *obj,
			    const char *path, const char *key, int *ret)
{
	char cpath[DIAG_PATH_MAX], vbuf[DIAG_VALUE_MAX + 8];
	json_t *v = json_object_get(obj, key);

	if (v == NULL)
		return 0;
	if (json_is_boolean(v)) {
		*ret = json_is_true(v) ? 1 : 0;
		return 0;
	}
	if (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0) {
		*ret = 2;
		return 0;
	}
	diag_error(w->d, "%s: %s: %s is %s; expected true, false or \"auto\"",
		   w->file, diag_path_key(cpath, sizeof(cpath), path, key),
		   diag_value(vbuf, sizeof(vbuf), v), diag_type_name(v));
	return -1;
}

/* One entry of watched_addresses at path: its address or prefix, and per
 * protocol its ignore list and the ports left to shuffle. */
static int walk_watched_entry(struct walk *w, struct config *c,
			      const json_t *e, const char *path,
			      struct config_watched *out)
{
	static const char *const ignore_key[CONFIG_NPROTO] = {
		"tcp_ignore", "udp_ignore"
	};
	char cpath[DIAG_PATH_MAX];
	json_t *ip, *ign;
	int r = 0;

	if (!walk_object(w, e, path, watched_keys))
		return -1;
	ip = walk_require(w, e, path, "ip", c->mode == CONFIG_MODE_NATIVE ?
			  "an IPv4 or IPv6 address or prefix" :
			  "an IPv4 or IPv6 address");
	if (ip == NULL ||
	    walk_net(w, ip, diag_path_key(cpath, sizeof(cpath), path, "ip"),
		     c->mode == CONFIG_MODE_NATIVE, &out->net) < 0)
		r = -1;
	memcpy(out->ip, out->net.text, sizeof(out->ip));
	out->family = out->net.family;
	for (int p = 0; p < CONFIG_NPROTO; p++) {
		uint16_t *ignore = NULL, *ports;
		size_t nignore = 0, n = 0;

		/* The ignore lists are optional: absent ignores nothing. */
		ign = json_object_get(e, ignore_key[p]);
		if (ign) {
			diag_path_key(cpath, sizeof(cpath), path, ignore_key[p]);
			if (p == CONFIG_UDP && c->mode != CONFIG_MODE_NATIVE) {
				diag_error(w->d, "%s: %s: UDP needs native mode "
					   "(no nft_address_rules_path)",
					   w->file, cpath);
				r = -1;
				continue;
			}
			if (walk_ports(w, ign, cpath, false, &ignore,
				       &nignore) < 0) {
				r = -1;
				continue;
			}
			for (size_t i = 0; i < nignore; i++)
				if (!config_proto_port_used(c, p, ignore[i]))
					diag_warning(w->d, "%s: %s[%zu]: port %u "
						     "is not in %s_ports; "
						     "ignoring it has no effect",
						     w->file, cpath, i, ignore[i],
						     proto_name[p]);
		}
		ports = malloc((c->nproto[p] + 1) * sizeof(*ports));
		if (ports == NULL) {
			free(ignore);
			return -1;
		}
		/* A bitmap of the ignored ports: a list of 65535 ports
		 * ignoring as many would cost 65535 squared otherwise. */
		memset(w->ignored, 0, sizeof(w->ignored));
		for (size_t j = 0; j < nignore; j++)
			w->ignored[ignore[j] / 8] |= (uint8_t)(1 << (ignore[j] % 8));
		for (size_t i = 0; i < c->nproto[p]; i++) {
			uint16_t port = c->proto_ports[p][i];

			if (!(w->ignored[port / 8] & (1 << (port % 8))))
				ports[n++] = port;
		}
		out->ports[p] = ports;
		out->nports[p] = n;
		out->ignore[p] = ignore;
		out->nignore[p] = nignore;
	}
	if (walk_derive_key(w, c, e, path, out) < 0)
		r = -1;
	return r;
}

/* The reference loops forever when an address needs more redirect ports
 * than 1..max_port_number has free; refuse that here instead. */
static int report_capacity(struct walk *w, struct config *c, const char *p,
			  int proto)
{
	size_t used_below = 0, need = 0, worst = 0, free_ports, min_max, u;
	const uint16_t *ports = c->proto_ports[proto];
	size_t nports = c->nproto[proto];

	for (size_t i = 0; i < nports; i++)
		used_below += ports[i] <= c->max_port;
	free_ports = c->max_port - used_below;
	for (size_t i = 0; i < c->nwatched; i++)
		if (c->watched[i].nports[proto] > need) {
			need = c->watched[i].nports[proto];
			worst = i;
		}
	if (need <= free_ports)
		return 0;
	/* The smallest max_port_number that leaves `need` ports free,
	 * counting the used ports below it as it grows (one pass over the
	 * bitmap, not one over the port list per candidate). */
	for (min_max = c->max_port, u = used_below; min_max <= 65535;
	     min_max++) {
		if (min_max > c->max_port &&
		    config_proto_port_used(c, (enum config_proto)proto, min_max))
			u++;
		if (min_max - u >= need)
			break;
	}
	if (min_max > 65535)
		diag_error(w->d, "%s: %s.watched_addresses[%zu]: needs %zu %s "
			   "redirect ports but only %zu are free even with "
			   "max_port_number 65535", w->file, p, worst, need,
			   proto_name[proto], (size_t)65535 - nports);
	else
		diag_error(w->d, "%s: %s.max_port_number: %u leaves %zu free "
			   "redirect ports (1..%u minus %zu of %s_ports) but "
			   "watched_addresses[%zu] needs %zu; expected at least "
			   "%zu", w->file, p, c->max_port, free_ports,
			   c->max_port, used_below, proto_name[proto], worst,
			   need, min_max);
	return -1;
}

static bool valid_table_name(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* The swap maps' pairs of the file's addresses, within map_capacity. */
static int walk_map_capacity(struct walk *w, struct config *c, const char *p)
{
	for (size_t i = 0; i < c->nwatched; i++) {
		const struct config_watched *cw = &c->watched[i];

		if (!cw->net.is_prefix)
			c->swap_pairs[cw->family == AF_INET6] +=
				cw->nports[CONFIG_TCP] + cw->nports[CONFIG_UDP];
	}
	if (config_map_size(c) > UINT32_MAX) {
		diag_error(w->d, "%s: %s.map_capacity: %u addresses of %zu "
			   "services make maps of %llu elements; expected at "
			   "most %llu elements (nftables' size)", w->file, p,
			   c->map_capacity,
			   c->nproto[CONFIG_TCP] + c->nproto[CONFIG_UDP],
			   (unsigned long long)config_map_size(c),
			   (unsigned long long)UINT32_MAX);
		return -1;
	}
	for (int f = 0; c->map_capacity && f < 2; f++)
		if (c->swap_pairs[f] > config_map_pairs(c)) {
			diag_error(w->d, "%s: %s.map_capacity: %u (%llu "
				   "pairs a family) cannot hold the %zu pairs "
				   "of watched_addresses' IPv%d addresses; "
				   "expected a larger map_capacity, or 0 "
				   "(maps unsized)", w->file, p,
				   c->map_capacity,
				   (unsigned long long)config_map_pairs(c),
				   c->swap_pairs[f], f ? 6 : 4);
			return -1;
		}
	return 0;
}

/* The options of native mode: the table's name, whether a clean stop
 * removes it, untrack_unwatched, prestage.  -ENOMEM stops the walk. */
static int walk_native_options(struct walk *w, struct config *c,
			       const json_t *o, const char *p)
{
	int untrack = CONFIG_UNTRACK_AUTO, prestage = CONFIG_PRESTAGE_AUTO;
	char vbuf[DIAG_VALUE_MAX + 8];
	int r = 0;

	c->remove_on_stop = true;
	if (walk_opt_string(w, o, p, "table_name", &c->table_name) < 0) {
		r = -1;
	} else if (c->table_name && (strlen(c->table_name) > 64 ||
				     !valid_table_name(c->table_name))) {
		diag_error(w->d, "%s: %s.table_name: %s is not a usable "
			   "table name; expected a letter, then up to 63 "
			   "letters, digits, '_' or '-'", w->file, p,
			   diag_string(vbuf, sizeof(vbuf), c->table_name));
		r = -1;
	}
	if (c->table_name == NULL && (c->table_name = strdup("porthop")) == NULL)
		return -ENOMEM;
	r |= walk_opt_bool(w, o, p, "remove_table_on_stop", &c->remove_on_stop);
	r |= opt_bool_or_auto(w, o, p, "untrack_unwatched", &untrack);
	r |= opt_bool_or_auto(w, o, p, "prestage", &prestage);
	r |= walk_opt_int(w, o, p, "map_capacity", 0, CONFIG_MAX_WATCHED,
			  "the watched addresses the maps are sized for (0: "
			  "unsized)", &c->map_capacity);
	c->untrack = (enum config_untrack)untrack;
	c->prestage = (enum config_prestage)prestage;
	return r;
}

/* The mode (naming no rule file selects native mode), the rule files'
 * paths, and the options only native mode takes.  -ENOMEM stops the
 * walk. */
static int walk_mode(struct walk *w, struct config *c, const json_t *o,
		     const char *p)
{
	static const char *const native_only[] = {
		"udp_ports", "table_name", "remove_table_on_stop",
		"untrack_unwatched", "prestage", "map_capacity", NULL
	};
	bool has_startup, has_rules;
	int r = 0, n;

	has_startup = json_object_get(o, "nft_startup_commands_path") != NULL;
	has_rules = json_object_get(o, "nft_address_rules_path") != NULL;
	if (has_startup != has_rules) {
		diag_error(w->d, "%s: %s: names %s but not %s; expected both "
			   "(template mode) or neither (native mode)", w->file,
			   p, has_startup ? "nft_startup_commands_path" :
					    "nft_address_rules_path",
			   has_startup ? "nft_address_rules_path" :
					 "nft_startup_commands_path");
		r = -1;
	}
	c->mode = has_rules ? CONFIG_MODE_TEMPLATE : CONFIG_MODE_NATIVE;
	if (has_startup)
		r |= walk_string(w, o, p, "nft_startup_commands_path",
				 &c->startup_path);
	if (has_rules)
		r |= walk_string(w, o, p, "nft_address_rules_path",
				 &c->rules_path);
	if (c->mode == CONFIG_MODE_NATIVE) {
		n = walk_native_options(w, c, o, p);
		return n == -ENOMEM ? n : (r | n);
	}
	for (size_t i = 0; native_only[i]; i++)
		if (json_object_get(o, native_only[i])) {
			diag_error(w->d, "%s: %s.%s: needs native mode (no "
				   "nft_address_rules_path)", w->file, p,
				   native_only[i]);
			r = -1;
		}
	return r;
}

/* max_port_number, tcp_ports and udp_ports, and the bitmaps of the
 * ports. */
static int walk_proto_ports(struct walk *w, struct config *c,
			    const json_t *o, const char *p)
{
	static const char *const ports_key[CONFIG_NPROTO] = {
		"tcp_ports", "udp_ports"
	};
	char path[DIAG_PATH_MAX];
	json_t *v;
	int r = 0, max = 0;

	if (walk_int(w, o, p, "max_port_number", 1, 65535,
		     "the highest redirect port", &max) == 0)
		c->max_port = (unsigned)max;
	else
		r = -1;
	for (int pr = 0; pr < CONFIG_NPROTO; pr++) {
		v = json_object_get(o, ports_key[pr]);
		if (v == NULL) {
			if (pr == CONFIG_TCP && c->mode == CONFIG_MODE_TEMPLATE) {
				walk_require(w, o, p, "tcp_ports",
					     "an array of port numbers");
				r = -1;
			}
			continue;
		}
		diag_path_key(path, sizeof(path), p, ports_key[pr]);
		/* Without valid ports the watched entries are still checked,
		 * so one run lists every error. */
		if (walk_ports(w, v, path, c->mode == CONFIG_MODE_TEMPLATE,
			       &c->proto_ports[pr], &c->nproto[pr]) < 0) {
			r = -1;
			continue;
		}
		for (size_t i = 0; i < c->nproto[pr]; i++)
			c->used[pr][c->proto_ports[pr][i] / 8] |=
				(uint8_t)(1 << (c->proto_ports[pr][i] % 8));
	}
	return r;
}

int walk_nftables(struct walk *w, struct config *c, const json_t *root)
{
	const char *p = "nftables_service_configuration";
	char path[DIAG_PATH_MAX], cpath[DIAG_PATH_MAX];
	char vbuf[DIAG_VALUE_MAX + 8];
	json_t *o, *v, *e;
	size_t i;
	int r;

	o = walk_require(w, root, "", p, "an object");
	if (o == NULL || !walk_object(w, o, p, nft_keys))
		return -1;
	r = walk_mode(w, c, o, p);
	if (r == -ENOMEM)
		return -1;
	r |= walk_proto_ports(w, c, o, p);
	if (c->mode == CONFIG_MODE_NATIVE && r == 0 &&
	    c->nproto[CONFIG_TCP] + c->nproto[CONFIG_UDP] == 0) {
		diag_error(w->d, "%s: %s: has neither tcp_ports nor udp_ports; "
			   "expected at least one port to shuffle", w->file, p);
		r = -1;
	}

	v = walk_require(w, o, p, "watched_addresses",
			 "an array of {\"ip\": ..., \"tcp_ignore\": [...]}");
	if (v == NULL)
		return -1;
	diag_path_key(path, sizeof(path), p, "watched_addresses");
	if (!json_is_array(v)) {
		diag_error(w->d, "%s: %s: %s is %s; expected an array of "
			   "{\"ip\": ..., \"tcp_ignore\": [...]}", w->file,
			   path, diag_value(vbuf, sizeof(vbuf), v),
			   diag_type_name(v));
		return -1;
	}
	if (json_array_size(v) > CONFIG_MAX_WATCHED) {
		diag_error(w->d, "%s: %s: has %zu entries; at most %d are "
			   "accepted", w->file, path, json_array_size(v),
			   CONFIG_MAX_WATCHED);
		return -1;
	}
	c->watched = calloc(json_array_size(v) + 1, sizeof(*c->watched));
	if (c->watched == NULL)
		return -1;
	json_array_foreach(v, i, e) {
		struct config_watched *cw = &c->watched[c->nwatched];

		diag_path_index(cpath, sizeof(cpath), path, i);
		if (walk_watched_entry(w, c, e, cpath, cw) < 0)
			r = -1;
		/* Kept even when wrong, so that indexes in later messages
		 * match the file and everything is freed. */
		c->npairs += cw->nports[CONFIG_TCP] + cw->nports[CONFIG_UDP];
		c->nwatched++;
	}
	c->nconfigured = c->nwatched;
	if (r == 0)
		r = walk_watched_nets(w, c, path);
	if (r == 0)
		r = walk_map_capacity(w, c, p);
	if (r == 0)
		r = walk_derive_nested(w, c, path);
	for (int pr = 0; r == 0 && pr < CONFIG_NPROTO; pr++)
		if (c->max_port)
			r = report_capacity(w, c, p, pr);
	if (walk_trusted(w, c, o, p) < 0)
		r = -1;
	if (r == 0)
		r = walk_trusted_covers(w, c, p);
	return r;
}
