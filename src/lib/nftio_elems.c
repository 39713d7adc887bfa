/*
 * nftio_elems: the builder of bulk element updates (nftio_elems_*).  It
 * queues operations on the maps and sets of one inet table and writes
 * them as libnftables JSON; the backends send the queue their own way
 * (nftio_backend.h describes it).
 */
#include "nftio_backend.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct nftio_elems *nftio_elems_new(const char *table)
{
	struct nftio_elems *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->table = strdup(table);
	if (b->table == NULL) {
		free(b);
		return NULL;
	}
	return b;
}

void nftio_elems_free(struct nftio_elems *b)
{
	if (b == NULL)
		return;
	free(b->items);
	free(b->table);
	free(b);
}

static int elems_push(struct nftio_elems *b, uint8_t op, const char *map,
		      const struct nftio_key *key, uint16_t value,
		      uint8_t kind)
{
	struct nftio_elem_item *it;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;

		it = realloc(b->items, cap * sizeof(*it));
		if (it == NULL)
			return -ENOMEM;
		b->items = it;
		b->cap = cap;
	}
	it = &b->items[b->n++];
	memset(it, 0, sizeof(*it));
	it->op = op;
	it->map = map;
	it->value = value;
	it->kind = kind;
	if (key)
		it->key = *key;
	return 0;
}

int nftio_elems_flush(struct nftio_elems *b, const char *map)
{
	return elems_push(b, NFTIO_ELEM_FLUSH, map, NULL, 0, NFTIO_KEY_CONCAT);
}

int nftio_elems_add(struct nftio_elems *b, const char *map,
		    const struct nftio_key *key, uint16_t value)
{
	return elems_push(b, NFTIO_ELEM_ADD, map, key, value, NFTIO_KEY_CONCAT);
}

int nftio_elems_delete(struct nftio_elems *b, const char *map,
		       const struct nftio_key *key)
{
	return elems_push(b, NFTIO_ELEM_DELETE, map, key, 0, NFTIO_KEY_CONCAT);
}

int nftio_elems_add_timeout(struct nftio_elems *b, const char *set,
			    const struct nftio_key *key, uint32_t timeout_ms)
{
	int r = elems_push(b, NFTIO_ELEM_ADD, set, key, 0,
			   NFTIO_KEY_SET_CONCAT);

	if (r == 0)
		b->items[b->n - 1].timeout_ms = timeout_ms;
	return r;
}

int nftio_elems_flush_set(struct nftio_elems *b, const char *set)
{
	return elems_push(b, NFTIO_ELEM_FLUSH, set, NULL, 0,
			  NFTIO_KEY_RANGE_START);
}

/* A range's two items: its first address, then its last. */
static int push_range(struct nftio_elems *b, uint8_t op, const char *set,
		      int family, const unsigned char first[16],
		      const unsigned char last[16])
{
	struct nftio_key k = { .family = family };
	int r;

	memcpy(k.addr, first, sizeof(k.addr));
	r = elems_push(b, op, set, &k, 0, NFTIO_KEY_RANGE_START);
	memcpy(k.addr, last, sizeof(k.addr));
	return r ? r : elems_push(b, op, set, &k, 0, NFTIO_KEY_RANGE_END);
}

int nftio_elems_add_range(struct nftio_elems *b, const char *set, int family,
			  const unsigned char first[16],
			  const unsigned char last[16])
{
	return push_range(b, NFTIO_ELEM_ADD, set, family, first, last);
}

int nftio_elems_delete_range(struct nftio_elems *b, const char *set,
			     int family, const unsigned char first[16],
			     const unsigned char last[16])
{
	return push_range(b, NFTIO_ELEM_DELETE, set, family, first, last);
}

size_t nftio_elems_count(const struct nftio_elems *b)
{
	return b->n;
}

static json_t *key_json(const struct nftio_key *k)
{
	char addr[INET6_ADDRSTRLEN];
	unsigned full = k->family == AF_INET ? 32 : 128;
	json_t *a;

	if (k->family == AF_UNSPEC)
		return json_pack("{s:[s,i]}", "concat",
				 k->l4proto == IPPROTO_UDP ? "udp" : "tcp",
				 (int)k->port);
	inet_ntop(k->family, k->addr, addr, sizeof(addr));
	a = k->prefix_len < full ?
		json_pack("{s:{s:s,s:i}}", "prefix", "addr", addr, "len",
			  (int)k->prefix_len) :
		json_string(addr);
	return json_pack("{s:[o,s,i]}", "concat", a,
			 k->l4proto == IPPROTO_UDP ? "udp" : "tcp",
			 (int)k->port);
}

/* A range's two items as libnftables writes it: the address, or
 * {"range": [first, last]}. */
static json_t *range_json(const struct nftio_elem_item *it)
{
	char a[2][INET6_ADDRSTRLEN];

	inet_ntop(it[0].key.family, it[0].key.addr, a[0], sizeof(a[0]));
	inet_ntop(it[1].key.family, it[1].key.addr, a[1], sizeof(a[1]));
	return strcmp(a[0], a[1]) == 0 ? json_string(a[0]) :
		json_pack("{s:[s,s]}", "range", a[0], a[1]);
}

json_t *nftio_elems_json(const struct nftio_elems *b)
{
	json_t *cmds = json_array(), *elem = NULL;
	size_t i = 0;

	if (cmds == NULL)
		return NULL;
	while (i < b->n) {
		const struct nftio_elem_item *first = &b->items[i];
		static const char *const verbs[] = { "flush", "add", "delete" };

		if (first->op == NFTIO_ELEM_FLUSH) {
			json_array_append_new(cmds, json_pack(
				"{s:{s:{s:s,s:s,s:s}}}", "flush",
				first->kind == NFTIO_KEY_CONCAT ? "map" : "set",
				"family", "inet", "table", b->table, "name",
				first->map));
			i++;
			continue;
		}
		elem = json_array();
		for (; i < b->n && b->items[i].op == first->op &&
		       b->items[i].map == first->map; i++) {
			const struct nftio_elem_item *it = &b->items[i];

			if (it->kind == NFTIO_KEY_SET_CONCAT) {
				json_array_append_new(elem, json_pack(
					"{s:{s:o,s:i}}", "elem", "val",
					key_json(&it->key), "timeout",
					(int)(it->timeout_ms / 1000)));
				continue;
			}
			if (it->kind != NFTIO_KEY_CONCAT) {
				json_array_append_new(elem, range_json(it));
				i++;	/* its last address too */
				continue;
			}
			json_array_append_new(elem, it->op == NFTIO_ELEM_ADD ?
				json_pack("[o,i]", key_json(&it->key),
					  (int)it->value) :
				key_json(&it->key));
		}
		if (json_array_append_new(cmds, json_pack(
			    "{s:{s:{s:s,s:s,s:s,s:o}}}", verbs[first->op],
			    "element", "family", "inet", "table", b->table,
			    "name", first->map, "elem", elem)) < 0) {
			json_decref(cmds);
			return NULL;
		}
	}
	return json_pack("{s:o}", "nftables", cmds);
}
