#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config_private.h"
#include "jsonfile.h"

static const char *const proto_name[CONFIG_NPROTO] = { "tcp", "udp" };

static const char *const redis_keys[] = {
	"host", "port", "db", "charset", "decode_responses",
	"password", "username", "unix_socket", "connect_timeout_ms",
	"retry_max_ms", NULL
};
static const char *const subscriber_keys[] = {
	"subscriber_channel_names", NULL
};
static const char *const nft_keys[] = {
	"nft_startup_commands_path", "nft_address_rules_path",
	"max_port_number", "tcp_ports", "udp_ports", "watched_addresses",
	"trusted_addresses", "table_name", "remove_table_on_stop",
	"untrack_unwatched", NULL
};
static const char *const watched_keys[] = {
	"ip", "tcp_ignore", "udp_ignore", NULL
};
static const char *const daemon_keys[] = {
	"reconcile_interval_seconds", "min_shuffle_interval_ms",
	"shuffle_on_reconnect", "trigger_key_file", "trigger_window_seconds",
	"control_socket", "control_group", "metrics_textfile",
	"metrics_interval_seconds", NULL
};
static const char *const root_keys[] = {
	"redis_connection_configuration", "redis_subscriber_configuration",
	"nftables_service_configuration", "porthopd", NULL
};

/* untrack_unwatched: true, false or "auto". */
static int opt_untrack(struct walk *w, const json_t *obj, const char *path,
		       enum config_untrack *ret)
{
	char cpath[DIAG_PATH_MAX], vbuf[DIAG_VALUE_MAX + 8];
	json_t *v = json_object_get(obj, "untrack_unwatched");

	if (v == NULL)
		return 0;
	if (json_is_boolean(v)) {
		*ret = json_is_true(v) ? CONFIG_UNTRACK_ON : CONFIG_UNTRACK_OFF;
		return 0;
	}
	if (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0) {
		*ret = CONFIG_UNTRACK_AUTO;
		return 0;
	}
	diag_error(w->d, "%s: %s: %s is %s; expected true, false or \"auto\"",
		   w->file, diag_path_key(cpath, sizeof(cpath), path,
					  "untrack_unwatched"),
		   diag_value(vbuf, sizeof(vbuf), v), diag_type_name(v));
	return -1;
}

static int parse_redis(struct walk *w, struct config *c, const json_t *root)
{
	const char *p = "redis_connection_configuration";
	json_t *o = walk_require(w, root, "", p, "an object with host, port, db, "
				 "charset and decode_responses");
	json_t *v;
	char vbuf[DIAG_VALUE_MAX + 8], cpath[DIAG_PATH_MAX];
	int r = 0;

	if (o == NULL || !walk_object(w, o, p, redis_keys))
		return -1;
	r |= walk_string(w, o, p, "host", &c->redis_host);
	r |= walk_int(w, o, p, "port", 1, 65535, "a TCP port", &c->redis_port);
	/* db selects a keyspace; pub/sub channels are global to the server,
	 * so it is validated and otherwise ignored. */
	r |= walk_int(w, o, p, "db", 0, 2147483647, "a database number", NULL);
	/* Messages are never decoded (the payload is not interpreted), so
	 * charset and decode_responses are validated and ignored. */
	r |= walk_string(w, o, p, "charset", NULL);
	v = walk_require(w, o, p, "decode_responses", "a boolean");
	if (v && !json_is_boolean(v)) {
		diag_error(w->d, "%s: %s: %s is %s; expected a boolean",
			   w->file,
			   diag_path_key(cpath, sizeof(cpath), p,
					 "decode_responses"),
			   diag_value(vbuf, sizeof(vbuf), v),
			   diag_type_name(v));
		r = -1;
	}
	r |= walk_opt_string(w, o, p, "password", &c->redis_password);
	r |= walk_opt_string(w, o, p, "username", &c->redis_username);
	r |= walk_opt_string(w, o, p, "unix_socket", &c->redis_unix);
	c->redis_extra.connect_timeout_ms = 5000;
	c->redis_extra.retry_max_ms = 30000;
	r |= walk_opt_int(w, o, p, "connect_timeout_ms", 100, 600000,
			  "a timeout in milliseconds",
			  &c->redis_extra.connect_timeout_ms);
	r |= walk_opt_int(w, o, p, "retry_max_ms", 250, 3600000,
			  "the longest delay between reconnection attempts in "
			  "milliseconds", &c->redis_extra.retry_max_ms);
	if (c->redis_username && !c->redis_password) {
		diag_error(w->d, "%s: %s.username: is set without a password; "
			   "expected password as well (ACL users authenticate "
			   "with both)", w->file, p);
		r = -1;
	}
	c->redis_extra.password = c->redis_password;
	c->redis_extra.username = c->redis_username;
	c->redis_extra.unix_socket = c->redis_unix;
	return r ? -1 : 0;
}

static int parse_subscriber(struct walk *w, struct config *c,
			    const json_t *root)
{
	const char *p = "redis_subscriber_configuration";
	char path[DIAG_PATH_MAX], cpath[DIAG_PATH_MAX];
	char vbuf[DIAG_VALUE_MAX + 8];
	json_t *o, *arr, *e;
	size_t i;
	int r = 0;

	o = walk_require(w, root, "", p, "an object with subscriber_channel_names");
	if (o == NULL || !walk_object(w, o, p, subscriber_keys))
		return -1;
	arr = walk_require(w, o, p, "subscriber_channel_names",
			   "an array of channel names");
	if (arr == NULL)
		return -1;
	diag_path_key(path, sizeof(path), p, "subscriber_channel_names");
	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > CONFIG_MAX_CHANNELS) {
		diag_error(w->d, "%s: %s: %s is %s; expected an array of 1 to "
			   "%d channel names", w->file, path,
			   diag_value(vbuf, sizeof(vbuf), arr),
			   json_is_array(arr) ? "of the wrong size" :
						diag_type_name(arr),
			   CONFIG_MAX_CHANNELS);
		return -1;
	}
	c->channels = calloc(json_array_size(arr), sizeof(char *));
	if (c->channels == NULL)
		return -1;
	json_array_foreach(arr, i, e) {
		bool dup = false;

		diag_path_index(cpath, sizeof(cpath), path, i);
		if (!json_is_string(e) || json_string_length(e) == 0 ||
		    json_string_length(e) > CONFIG_MAX_STRING ||
		    strlen(json_string_value(e)) != json_string_length(e)) {
			diag_error(w->d, "%s: %s: %s is not a valid channel "
				   "name; expected a non-empty string of at "
				   "most %d bytes", w->file, cpath,
				   diag_value(vbuf, sizeof(vbuf), e),
				   CONFIG_MAX_STRING);
			r = -1;
			continue;
		}
		for (size_t j = 0; j < c->nchannels; j++)
			if (strcmp(c->channels[j], json_string_value(e)) == 0)
				dup = true;
		if (dup) {
			diag_error(w->d, "%s: %s: %s appears more than once; "
				   "expected each channel once", w->file, cpath,
				   diag_value(vbuf, sizeof(vbuf), e));
			r = -1;
			continue;
		}
		c->channels[c->nchannels] = strdup(json_string_value(e));
		if (c->channels[c->nchannels] == NULL)
			return -1;
		c->nchannels++;
	}
	return r;
}

int config_parse_net(const char *s, bool allow_prefix, struct config_net *ret)
{
	struct config_net n;
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long len = 0;

	memset(&n, 0, sizeof(n));
	if (alen == 0 || alen >= INET6_ADDRSTRLEN || (slash && !allow_prefix))
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	/* inet_pton only: libnftables would resolve a name with a blocking
	 * DNS lookup. */
	if (inet_pton(AF_INET, buf, n.addr) == 1)
		n.family = AF_INET;
	else if (inet_pton(AF_INET6, buf, n.addr) == 1)
		n.family = AF_INET6;
	else
		return -EINVAL;
	n.prefix_len = n.family == AF_INET ? 32 : 128;
	if (slash) {
		char *end;

		if (slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		len = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || len > n.prefix_len || end - slash > 4)
			return -EINVAL;
		n.prefix_len = (unsigned)len;
		n.is_prefix = true;
		/* Host bits must be zero, as nft itself would warn. */
		for (unsigned bit = n.prefix_len; bit < (n.family == AF_INET ? 32u : 128u); bit++)
			if (n.addr[bit / 8] & (0x80 >> (bit % 8)))
				return -EDOM;
	}
	inet_ntop(n.family, n.addr, n.addr_text, sizeof(n.addr_text));
	if (n.is_prefix)
		snprintf(n.text, sizeof(n.text), "%s/%u", n.addr_text,
			 n.prefix_len);
	else
		snprintf(n.text, sizeof(n.text), "%s", n.addr_text);
	*ret = n;
	return 0;
}

/* Whether n lies inside ::ffff:0:0/96, the IPv4-mapped IPv6 addresses. */
static bool v4_mapped(const struct config_net *n)
{
	static const unsigned char mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};

	return n->family == AF_INET6 && n->prefix_len >= 96 &&
	       memcmp(n->addr, mapped, sizeof(mapped)) == 0;
}

/* An address (or, in native mode, a prefix) at path. */
static int parse_net_value(struct walk *w, const json_t *v, const char *path,
			   bool allow_prefix, struct config_net *out)
{
	char vbuf[DIAG_VALUE_MAX + 8];
	const char *s = json_string_value(v);
	int r;

	if (s == NULL || strlen(s) != json_string_length(v)) {
		diag_error(w->d, "%s: %s: %s is not an IPv4 or IPv6 address",
			   w->file, path, diag_value(vbuf, sizeof(vbuf), v));
		return -1;
	}
	r = config_parse_net(s, true, out);
	if (r == -EDOM) {
		diag_error(w->d, "%s: %s: %s has bits set after the prefix "
			   "length; expected the network address", w->file,
			   path, diag_value(vbuf, sizeof(vbuf), v));
		return -1;
	}
	if (r == 0 && out->is_prefix && !allow_prefix) {
		diag_error(w->d, "%s: %s: %s is a prefix; prefixes need native "
			   "mode (no nft_address_rules_path), template mode "
			   "takes one address per entry", w->file, path,
			   diag_value(vbuf, sizeof(vbuf), v));
		return -1;
	}
	if (r < 0) {
		diag_error(w->d, "%s: %s: %s is not an IPv4 or IPv6 %s", w->file,
			   path, diag_value(vbuf, sizeof(vbuf), v),
			   allow_prefix ? "address or prefix" : "address");
		return -1;
	}
	if (v4_mapped(out)) {
		char v4[INET_ADDRSTRLEN + 4];

		/* Linux drops IPv6 packets from such sources, and an inet
		 * table sees IPv4 clients as IPv4: the entry would match
		 * nothing, silently. */
		inet_ntop(AF_INET, out->addr + 12, v4, sizeof(v4));
		if (out->is_prefix)
			snprintf(v4 + strlen(v4), sizeof(v4) - strlen(v4),
				 "/%u", out->prefix_len - 96);
		diag_error(w->d, "%s: %s: %s is an IPv4-mapped IPv6 %s, which "
			   "no packet carries (IPv4 clients are seen as IPv4); "
			   "expected the IPv4 form \"%s\"", w->file, path,
			   diag_value(vbuf, sizeof(vbuf), v),
			   out->is_prefix ? "prefix" : "address", v4);
		return -1;
	}
	return 0;
}

static int parse_watched_entry(struct walk *w, struct config *c,
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
	    parse_net_value(w, ip, diag_path_key(cpath, sizeof(cpath), path, "ip"),
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
	return r;
}

static int cmp_net(const struct config_net *x, const struct config_net *y)
{
	int r;

	if (x->family != y->family)
		return x->family - y->family;
	r = memcmp(x->addr, y->addr, 16);
	if (r)
		return r;
	return (int)x->prefix_len - (int)y->prefix_len;
}

unsigned __int128 config_net_value(const struct config_net *n, bool last)
{
	unsigned __int128 v = 0;
	unsigned bits = n->family == AF_INET ? 32 : 128;

	for (unsigned i = 0; i < bits / 8; i++)
		v = (v << 8) | n->addr[i];
	/* The host bits, all ones: shifting by 128 (::/0) is undefined. */
	if (last && n->prefix_len < bits)
		v |= ~(unsigned __int128)0 >> (128 - (bits - n->prefix_len));
	return v;
}

/* Entry i of an array of networks, and the order check_nets sorts them
 * in: by network, then by index, so that equal networks end up side by
 * side with the first one in the file first. */
struct net_ref {
	const struct config_net *net;
	size_t index;
};

static int cmp_net_ref(const void *a, const void *b)
{
	const struct net_ref *x = a, *y = b;
	int r = cmp_net(x->net, y->net);

	if (r)
		return r;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Reports entries that repeat one another, and prefixes that overlap (the
 * kernel's interval maps refuse overlapping elements).  An address inside
 * a watched prefix is allowed: the address's own entry wins.  One sort
 * of (network, index) pairs keeps a million entries, identical or not, at
 * n log n: each repeat is reported against the first entry of its
 * network, found in the same pass. */
static int check_nets(struct walk *w, const struct config_net *const *nets,
		      size_t n, const char *path, const char *what_path,
		      bool overlap_is_error)
{
	struct net_ref *sorted;
	const struct config_net *widest = NULL;
	unsigned __int128 widest_end = 0;
	size_t first = 0;
	int r = 0;

	if (n < 2)
		return 0;
	sorted = malloc(n * sizeof(*sorted));
	if (sorted == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		sorted[i] = (struct net_ref){ nets[i], i };
	qsort(sorted, n, sizeof(*sorted), cmp_net_ref);
	for (size_t i = 0; i < n; i++) {
		const struct config_net *cur = sorted[i].net;

		if (i > 0 && cmp_net(sorted[first].net, cur) == 0) {
			diag_error(w->d, "%s: %s[%zu]%s: \"%s\" is the same %s as "
				   "%s[%zu]%s; expected each once", w->file, path,
				   sorted[i].index, what_path, cur->text,
				   cur->is_prefix ? "prefix" : "address", path,
				   sorted[first].index, what_path);
			r = -1;
			continue;
		}
		first = i;
		if (!cur->is_prefix)
			continue;
		if (overlap_is_error && widest &&
		    widest->family == cur->family &&
		    config_net_value(cur, false) <= widest_end) {
			diag_error(w->d, "%s: %s: prefix %s overlaps %s; expected "
				   "prefixes that do not overlap", w->file,
				   path, cur->text, widest->text);
			r = -1;
			continue;
		}
		if (widest == NULL || widest->family != cur->family ||
		    config_net_value(cur, true) > widest_end) {
			widest = cur;
			widest_end = config_net_value(cur, true);
		}
	}
	free(sorted);
	return r;
}

static int check_watched_nets(struct walk *w, struct config *c,
			      const char *path)
{
	const struct config_net **nets;
	int r;

	if (c->nwatched < 2)
		return 0;
	nets = malloc(c->nwatched * sizeof(*nets));
	if (nets == NULL)
		return -1;
	for (size_t i = 0; i < c->nwatched; i++)
		nets[i] = &c->watched[i].net;
	r = check_nets(w, nets, c->nwatched, path, ".ip", true);
	free(nets);
	return r;
}

static int cmp_watched_ptr(const void *a, const void *b)
{
	return cmp_net(&(*(const struct config_watched *const *)a)->net,
		       &(*(const struct config_watched *const *)b)->net);
}

static int index_watched(struct config *c)
{
	c->by_net = malloc((c->nwatched + 1) * sizeof(*c->by_net));
	if (c->by_net == NULL)
		return -1;
	for (size_t i = 0; i < c->nwatched; i++)
		c->by_net[i] = &c->watched[i];
	qsort(c->by_net, c->nwatched, sizeof(*c->by_net), cmp_watched_ptr);
	return 0;
}

/* The reference loops forever when an address needs more redirect ports
 * than 1..max_port_number has free; refuse that here instead. */
static int check_capacity(struct walk *w, struct config *c, const char *p,
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

static int parse_trusted(struct walk *w, struct config *c, const json_t *o,
			 const char *p)
{
	char path[DIAG_PATH_MAX], cpath[DIAG_PATH_MAX];
	char vbuf[DIAG_VALUE_MAX + 8];
	const struct config_net **nets;
	json_t *v = json_object_get(o, "trusted_addresses"), *e;
	size_t i;
	int r = 0;

	if (v == NULL)
		return 0;
	diag_path_key(path, sizeof(path), p, "trusted_addresses");
	if (c->mode != CONFIG_MODE_NATIVE) {
		diag_error(w->d, "%s: %s: needs native mode (no "
			   "nft_address_rules_path)", w->file, path);
		return -1;
	}
	if (!json_is_array(v) || json_array_size(v) > CONFIG_MAX_WATCHED) {
		diag_error(w->d, "%s: %s: %s is %s; expected an array of "
			   "addresses or prefixes", w->file, path,
			   diag_value(vbuf, sizeof(vbuf), v), diag_type_name(v));
		return -1;
	}
	c->trusted = calloc(json_array_size(v) + 1, sizeof(*c->trusted));
	if (c->trusted == NULL)
		return -1;
	json_array_foreach(v, i, e) {
		diag_path_index(cpath, sizeof(cpath), path, i);
		if (parse_net_value(w, e, cpath, true,
				    &c->trusted[c->ntrusted]) < 0) {
			r = -1;
			continue;
		}
		c->ntrusted++;
	}
	if (r < 0 || c->ntrusted < 2)
		return r;
	nets = malloc(c->ntrusted * sizeof(*nets));
	if (nets == NULL)
		return -1;
	for (i = 0; i < c->ntrusted; i++)
		nets[i] = &c->trusted[i];
	r = check_nets(w, nets, c->ntrusted, path, "", true);
	free(nets);
	return r;
}

/* A trusted entry as a range of addresses, for coverage lookups. */
struct trusted_range {
	int family;
	unsigned __int128 first, last;
	size_t index;
};

static int cmp_trusted_range(const void *a, const void *b)
{
	const struct trusted_range *x = a, *y = b;

	if (x->family != y->family)
		return x->family - y->family;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* The entry of r[0..n) (sorted) with the greatest first address at or
 * below first, in family f; NULL if none. */
static const struct trusted_range *range_below(const struct trusted_range *r,
					       size_t n, int f,
					       unsigned __int128 first)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r[mid].family < f ||
		    (r[mid].family == f && r[mid].first <= first))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && r[lo - 1].family == f ? &r[lo - 1] : NULL;
}

/* Warnings about trusted entries that undo watched ones: trusted wins in
 * every chain, so a watched entry inside a trusted one is never watched,
 * and a trusted 0.0.0.0/0 or ::/0 leaves nothing watched in its family.
 * Accepted (a trusted exception may be meant to switch watching off for a
 * while), but said.  Trusted prefixes do not overlap one another (refused
 * before), so a watched entry can only lie inside the trusted prefix that
 * starts last at or below it, or be a trusted address: two binary
 * searches each, n log n in all. */
#define COVER_WARNINGS_MAX 10
static int warn_trusted_covers(struct walk *w, const struct config *c,
			       const char *p)
{
	struct trusted_range *pre = NULL, *addr = NULL;
	size_t npre = 0, naddr = 0, warned = 0, more = 0;
	size_t nfam[2] = { 0, 0 }, all[2] = { SIZE_MAX, SIZE_MAX };

	if (c->ntrusted == 0 || c->nwatched == 0)
		return 0;
	pre = calloc(c->ntrusted, sizeof(*pre));
	addr = calloc(c->ntrusted, sizeof(*addr));
	if (pre == NULL || addr == NULL) {
		free(pre);
		free(addr);
		return -1;
	}
	for (size_t j = 0; j < c->ntrusted; j++) {
		const struct config_net *t = &c->trusted[j];
		struct trusted_range tr = {
			t->family, config_net_value(t, false),
			config_net_value(t, true), j
		};

		if (t->prefix_len == 0)
			all[t->family == AF_INET6] = j;
		if (t->is_prefix)
			pre[npre++] = tr;
		else
			addr[naddr++] = tr;
	}
	qsort(pre, npre, sizeof(*pre), cmp_trusted_range);
	qsort(addr, naddr, sizeof(*addr), cmp_trusted_range);
	for (size_t i = 0; i < c->nwatched; i++)
		nfam[c->watched[i].family == AF_INET6]++;
	for (int f = 0; f < 2; f++)
		if (all[f] != SIZE_MAX && nfam[f] > 0)
			diag_warning(w->d, "%s: %s.trusted_addresses[%zu]: \"%s\" "
				     "trusts every %s address: none of the %zu "
				     "watched %s entries is ever watched; expected "
				     "the networks to exempt from watching", w->file,
				     p, all[f], c->trusted[all[f]].text,
				     f ? "IPv6" : "IPv4", nfam[f],
				     f ? "IPv6" : "IPv4");
	for (size_t i = 0; i < c->nwatched; i++) {
		const struct config_net *n = &c->watched[i].net;
		unsigned __int128 first = config_net_value(n, false);
		unsigned __int128 last = config_net_value(n, true);
		const struct trusted_range *t;

		if (all[n->family == AF_INET6] != SIZE_MAX)
			continue;
		/* The same address trusted first, then a prefix around it. */
		t = range_below(addr, naddr, n->family, first);
		if (t == NULL || t->first != first || t->last != last) {
			t = range_below(pre, npre, n->family, first);
			if (t && t->last < last)
				t = NULL;
		}
		if (t == NULL)
			continue;
		if (warned++ >= COVER_WARNINGS_MAX) {
			more++;
			continue;
		}
		diag_warning(w->d, "%s: %s.watched_addresses[%zu].ip: \"%s\" is "
			     "never watched: %s.trusted_addresses[%zu] (\"%s\") "
			     "covers it; expected watched entries outside the "
			     "trusted networks", w->file, p, i, n->text, p,
			     t->index, c->trusted[t->index].text);
	}
	if (more)
		diag_warning(w->d, "%s: %s.watched_addresses: %zu more entries "
			     "are never watched: trusted networks cover them",
			     w->file, p, more);
	free(pre);
	free(addr);
	return 0;
}

static int parse_nftables(struct walk *w, struct config *c,
			  const json_t *root)
{
	static const char *const ports_key[CONFIG_NPROTO] = {
		"tcp_ports", "udp_ports"
	};
	const char *p = "nftables_service_configuration";
	char path[DIAG_PATH_MAX], cpath[DIAG_PATH_MAX];
	char vbuf[DIAG_VALUE_MAX + 8];
	json_t *o, *v, *e;
	bool has_startup, has_rules;
	size_t i;
	int r = 0, max = 0;

	o = walk_require(w, root, "", p, "an object");
	if (o == NULL || !walk_object(w, o, p, nft_keys))
		return -1;
	/* Naming no rule file selects native mode. */
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
			return -1;
		r |= walk_opt_bool(w, o, p, "remove_table_on_stop", &c->remove_on_stop);
		c->untrack = CONFIG_UNTRACK_AUTO;
		r |= opt_untrack(w, o, p, &c->untrack);
	} else {
		static const char *const native_only[] = {
			"udp_ports", "table_name", "remove_table_on_stop",
			"untrack_unwatched", NULL
		};

		for (i = 0; native_only[i]; i++)
			if (json_object_get(o, native_only[i])) {
				diag_error(w->d, "%s: %s.%s: needs native mode (no "
					   "nft_address_rules_path)", w->file, p,
					   native_only[i]);
				r = -1;
			}
	}
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
		for (i = 0; i < c->nproto[pr]; i++)
			c->used[pr][c->proto_ports[pr][i] / 8] |=
				(uint8_t)(1 << (c->proto_ports[pr][i] % 8));
	}
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
		if (parse_watched_entry(w, c, e, cpath, cw) < 0)
			r = -1;
		/* Kept even when wrong, so that indexes in later messages
		 * match the file and everything is freed. */
		c->npairs += cw->nports[CONFIG_TCP] + cw->nports[CONFIG_UDP];
		c->nwatched++;
	}
	if (r == 0)
		r = check_watched_nets(w, c, path);
	if (r == 0)
		r = index_watched(c);
	for (int pr = 0; r == 0 && pr < CONFIG_NPROTO; pr++)
		if (c->max_port)
			r = check_capacity(w, c, p, pr);
	if (parse_trusted(w, c, o, p) < 0)
		r = -1;
	if (r == 0)
		r = warn_trusted_covers(w, c, p);
	return r;
}

static int parse_daemon(struct walk *w, struct config *c, const json_t *root)
{
	const char *p = "porthopd";
	json_t *o = json_object_get(root, p);
	char vbuf[DIAG_VALUE_MAX + 8];
	int r = 0;

	c->daemon.reconcile_interval_s = 5;
	c->daemon.min_shuffle_interval_ms = 0;
	c->daemon.shuffle_on_reconnect = true;
	c->daemon.trigger_window_s = 30;
	c->daemon.control_gid = (gid_t)-1;
	c->daemon.metrics_interval_s = 15;
	c->control_socket = strdup(CONFIG_DEFAULT_CONTROL_SOCKET);
	c->daemon.control_socket = c->control_socket;
	if (c->control_socket == NULL)
		return -1;
	if (o == NULL)
		return 0;
	if (!walk_object(w, o, p, daemon_keys))
		return -1;
	r |= walk_opt_int(w, o, p, "reconcile_interval_seconds", 0, 86400,
			  "seconds between checks of the rules in force (0: never)",
			  &c->daemon.reconcile_interval_s);
	r |= walk_opt_int(w, o, p, "min_shuffle_interval_ms", 0, 3600000,
			  "the least time between two shuffles in milliseconds",
			  &c->daemon.min_shuffle_interval_ms);
	r |= walk_opt_bool(w, o, p, "shuffle_on_reconnect",
			   &c->daemon.shuffle_on_reconnect);
	r |= walk_opt_int(w, o, p, "trigger_window_seconds", 1, 3600,
			  "the accepted age of a signed trigger in seconds",
			  &c->daemon.trigger_window_s);
	if (json_object_get(o, "control_socket")) {
		json_t *v = json_object_get(o, "control_socket");

		free(c->control_socket);
		c->control_socket = NULL;
		/* An empty string turns the socket off. */
		if (json_is_string(v) && json_string_length(v) == 0)
			c->control_socket = strdup("");
		else if (walk_string(w, o, p, "control_socket", &c->control_socket) == 0 &&
			 (c->control_socket[0] != '/' || strlen(c->control_socket) > 107)) {
			diag_error(w->d, "%s: porthopd.control_socket: %s is not "
				   "an absolute path of at most 107 bytes; expected "
				   "e.g. \"" CONFIG_DEFAULT_CONTROL_SOCKET "\"",
				   w->file, diag_string(vbuf, sizeof(vbuf),
							c->control_socket));
			r = -1;
		}
		c->daemon.control_socket = c->control_socket;
	}
	if (json_object_get(o, "control_group")) {
		char *g = NULL;

		if (walk_string(w, o, p, "control_group", &g) == 0) {
			struct group *gr = getgrnam(g);

			if (gr == NULL) {
				diag_error(w->d, "%s: porthopd.control_group: %s "
					   "is not a group of this system; expected "
					   "a group name from /etc/group", w->file,
					   diag_string(vbuf, sizeof(vbuf), g));
				r = -1;
			} else {
				c->daemon.control_gid = gr->gr_gid;
			}
		} else {
			r = -1;
		}
		free(g);
	}
	if (walk_opt_string(w, o, p, "metrics_textfile", &c->metrics_textfile) < 0)
		r = -1;
	else if (c->metrics_textfile && c->metrics_textfile[0] != '/') {
		diag_error(w->d, "%s: porthopd.metrics_textfile: %s is not an "
			   "absolute path; expected e.g. \"/var/lib/"
			   "prometheus/node-exporter/porthop.prom\"", w->file,
			   diag_string(vbuf, sizeof(vbuf), c->metrics_textfile));
		r = -1;
	}
	c->daemon.metrics_textfile = c->metrics_textfile;
	r |= walk_opt_int(w, o, p, "metrics_interval_seconds", 1, 86400,
			  "seconds between writes of the metrics textfile",
			  &c->daemon.metrics_interval_s);
	if (json_object_get(o, "trigger_key_file")) {
		char *path = NULL, label[DIAG_PATH_MAX + 256];

		if (walk_string(w, o, p, "trigger_key_file", &path) == 0) {
			snprintf(label, sizeof(label), "%s: porthopd.trigger_key_file",
				 w->file);
			if (auth_load_key(path, label, w->d, &c->trigger_key,
					  &c->daemon.trigger_key_len) < 0)
				r = -1;
			c->daemon.trigger_key = c->trigger_key;
		} else {
			r = -1;
		}
		free(path);
	}
	return r;
}

static int load_rule_files(struct config *c, struct diag *d)
{
	struct walk w = { .d = d };
	json_t *root = NULL;
	json_t *v;
	int r = -1;

	w.file = c->startup_path;
	if (jsonfile_load(c->startup_path, CONFIG_MAX_RULES_SIZE, d, &root) == 0) {
		static const char *const keys[] = { "commands", NULL };

		if (walk_object(&w, root, "", keys) &&
		    (v = walk_require(&w, root, "", "commands",
				      "an array of nftables commands"))) {
			if (!json_is_array(v))
				diag_error(d, "%s: commands: is %s; expected an "
					   "array of nftables commands",
					   w.file, diag_type_name(v));
			else if (template_forbid_tokens(v, w.file, "commands",
							d) == 0)
				c->startup = json_incref(v);
			for (size_t i = 0; c->startup && i < json_array_size(v); i++)
				if (!json_is_object(json_array_get(v, i))) {
					diag_error(d, "%s: commands[%zu]: is %s; "
						   "expected an nftables command "
						   "object", w.file, i,
						   diag_type_name(json_array_get(v, i)));
					json_decref(c->startup);
					c->startup = NULL;
				}
		}
		json_decref(root);
		root = NULL;
	}
	w.file = c->rules_path;
	if (jsonfile_load(c->rules_path, CONFIG_MAX_RULES_SIZE, d, &root) == 0) {
		static const char *const keys[] = { "rules", NULL };

		if (walk_object(&w, root, "", keys) &&
		    (v = walk_require(&w, root, "", "rules",
				      "an array of nftables commands")))
			c->tmpl = template_compile(v, w.file, "rules", d);
		json_decref(root);
	}
	if (c->startup && c->tmpl)
		r = 0;
	return r;
}

struct config *config_load(const char *path, unsigned flags, struct diag *d)
{
	struct walk w = { .file = path, .d = d };
	struct config *c;
	json_t *root = NULL;
	size_t before = diag_errors(d);

	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->file = strdup(path)) == NULL) {
		diag_error(d, "%s: out of memory", path);
		goto fail;
	}
	if (jsonfile_load(path, CONFIG_MAX_FILE_SIZE, d, &root) < 0)
		goto fail;
	if (!walk_object(&w, root, "", root_keys))
		goto fail;
	/* Each part reports its own errors; go on so that one run lists
	 * every problem. */
	parse_redis(&w, c, root);
	parse_subscriber(&w, c, root);
	parse_nftables(&w, c, root);
	parse_daemon(&w, c, root);
	if (diag_errors(d) > before)
		goto fail;
	if (c->mode == CONFIG_MODE_TEMPLATE && !(flags & CONFIG_LOAD_NO_RULES) &&
	    load_rule_files(c, d) < 0)
		goto fail;
	if (diag_errors(d) > before)
		goto fail;
	json_decref(root);
	return c;
fail:
	json_decref(root);
	config_free(c);
	return NULL;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	free(c->file);
	free(c->redis_host);
	if (c->redis_password)
		explicit_bzero(c->redis_password, strlen(c->redis_password));
	free(c->redis_password);
	free(c->redis_username);
	free(c->redis_unix);
	for (size_t i = 0; c->channels && i < c->nchannels; i++)
		free(c->channels[i]);
	free(c->channels);
	free(c->startup_path);
	free(c->rules_path);
	free(c->table_name);
	for (int p = 0; p < CONFIG_NPROTO; p++)
		free(c->proto_ports[p]);
	for (size_t i = 0; c->watched && i < c->nwatched; i++)
		for (int p = 0; p < CONFIG_NPROTO; p++) {
			free((void *)c->watched[i].ports[p]);
			free((void *)c->watched[i].ignore[p]);
		}
	free(c->watched);
	free(c->by_net);
	free(c->trusted);
	json_decref(c->startup);
	template_free(c->tmpl);
	if (c->trigger_key)
		explicit_bzero(c->trigger_key, c->daemon.trigger_key_len);
	free(c->trigger_key);
	free(c->control_socket);
	free(c->metrics_textfile);
	free(c);
}

const char *config_file(const struct config *c) { return c->file; }
enum config_mode config_mode(const struct config *c) { return c->mode; }
const char *config_redis_host(const struct config *c) { return c->redis_host; }
int config_redis_port(const struct config *c) { return c->redis_port; }
size_t config_channel_count(const struct config *c) { return c->nchannels; }
const char *config_startup_path(const struct config *c) { return c->startup_path; }
const char *config_rules_path(const struct config *c) { return c->rules_path; }
unsigned config_max_port(const struct config *c) { return c->max_port; }
size_t config_watched_count(const struct config *c) { return c->nwatched; }
size_t config_pair_count(const struct config *c) { return c->npairs; }
json_t *config_startup_commands(const struct config *c) { return c->startup; }
const struct template *config_template(const struct config *c) { return c->tmpl; }
const char *config_table_name(const struct config *c) { return c->table_name; }
size_t config_trusted_count(const struct config *c) { return c->ntrusted; }
bool config_remove_on_stop(const struct config *c) { return c->remove_on_stop; }
enum config_untrack config_untrack(const struct config *c) { return c->untrack; }
const struct config_daemon *config_daemon(const struct config *c) { return &c->daemon; }

const struct config_redis_extra *config_redis_extra(const struct config *c)
{
	return &c->redis_extra;
}

const struct config_net *config_trusted(const struct config *c, size_t i)
{
	return i < c->ntrusted ? &c->trusted[i] : NULL;
}

const char *config_channel(const struct config *c, size_t i)
{
	return i < c->nchannels ? c->channels[i] : NULL;
}

const uint16_t *config_tcp_ports(const struct config *c, size_t *ret_n)
{
	return config_proto_ports(c, CONFIG_TCP, ret_n);
}

const uint16_t *config_proto_ports(const struct config *c,
				   enum config_proto p, size_t *ret_n)
{
	*ret_n = c->nproto[p];
	return c->proto_ports[p];
}

bool config_port_used(const struct config *c, unsigned port)
{
	return config_proto_port_used(c, CONFIG_TCP, port);
}

bool config_proto_port_used(const struct config *c, enum config_proto p,
			    unsigned port)
{
	return port < 65536 && (c->used[p][port / 8] & (1 << (port % 8)));
}

const struct config_watched *config_watched(const struct config *c, size_t i)
{
	return i < c->nwatched ? &c->watched[i] : NULL;
}

long config_watched_find(const struct config *c, const char *ip)
{
	struct config_watched k;
	const struct config_watched *key = &k, **hit;

	if (config_parse_net(ip, true, &k.net) < 0 || c->by_net == NULL)
		return -1;
	hit = bsearch(&key, c->by_net, c->nwatched, sizeof(*c->by_net),
		      cmp_watched_ptr);
	return hit ? (long)(*hit - c->watched) : -1;
}

long config_watched_lookup(const struct config *c, const char *ip)
{
	struct config_watched k;
	const struct config_watched *key = &k, **hit;
	unsigned bits;

	if (config_parse_net(ip, true, &k.net) < 0 || c->by_net == NULL)
		return -1;
	/* Watched prefixes never overlap one another (config_load refuses
	 * it), but an address may have an entry of its own inside one: the
	 * narrowest entry wins, as in the kernel (exact maps before interval
	 * maps), so the lengths go from the address's own down. */
	bits = k.net.prefix_len;
	for (unsigned len = bits + 1; len-- > 0;) {
		if (len < bits) {
			unsigned byte = len / 8;

			k.net.addr[byte] &= (unsigned char)(0xff00u >> (len % 8));
			memset(k.net.addr + byte + 1, 0, 15 - byte);
		}
		k.net.prefix_len = len;
		hit = bsearch(&key, c->by_net, c->nwatched, sizeof(*c->by_net),
			      cmp_watched_ptr);
		if (hit)
			return (long)(*hit - c->watched);
	}
	return -1;
}
