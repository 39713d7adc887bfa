/*
 * config_derive: a watched entry's "derive_key" (derived ports,
 * docs/follow.md).  The key file is loaded once here, as the
 * configuration is, and checked against what the client's computation
 * must agree with: the entry's services and a pool holding none of the
 * host's service ports.  A bad key is a configuration error (exit 78).
 */
#include "config_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clientkey.h"
#include "derive.h"

static const char *const proto_name[CONFIG_NPROTO] = { "tcp", "udp" };

/* The key's services of protocol p are the entry's moved ports (both
 * without repeats; the entry's in the file's order)? */
static bool same_services(const struct clientkey *k, int p,
			  const struct config_watched *out)
{
	size_t n;
	const uint16_t *v = clientkey_services(k, p == CONFIG_TCP, &n);

	if (n != out->nports[p])
		return false;
	for (size_t i = 0; i < n; i++) {
		bool found = false;

		for (size_t j = 0; j < n && !found; j++)
			found = out->ports[p][j] == v[i];
		if (!found)
			return false;
	}
	return true;
}

/* The first service port of the host (any protocol) inside the key's pool
 * and not excluded, or 0. */
static unsigned pool_holds_service(const struct config *c,
				   const struct clientkey *k)
{
	size_t nex;
	const uint16_t *ex = clientkey_exclude(k, &nex);
	uint16_t first, last;

	clientkey_pool(k, &first, &last);
	for (int p = 0; p < CONFIG_NPROTO; p++)
		for (size_t i = 0; i < c->nproto[p]; i++) {
			uint16_t port = c->proto_ports[p][i];
			bool excluded = false;

			for (size_t j = 0; j < nex && !excluded; j++)
				excluded = ex[j] == port;
			/* The key's own services never are drawn. */
			for (int q = 0; q < CONFIG_NPROTO && !excluded; q++) {
				size_t ns;
				const uint16_t *sv = clientkey_services(
					k, q == CONFIG_TCP, &ns);

				for (size_t j = 0; j < ns && !excluded; j++)
					excluded = sv[j] == port;
			}
			if (port >= first && port <= last && !excluded)
				return port;
		}
	return 0;
}

/* The entry's ports as "[22, 443]" for a message. */
static void ports_text(char *buf, size_t len, const uint16_t *v, size_t n)
{
	size_t off = (size_t)snprintf(buf, len, "[");

	for (size_t i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%u",
					i ? ", " : "", v[i]);
	if (off < len)
		snprintf(buf + off, len - off, "]");
}

/* Checks k against the entry and the configuration; reports to w->d. */
static int check_key(struct walk *w, const struct config *c,
		     const struct clientkey *k, const char *kpath,
		     const struct config_watched *out)
{
	char a[96], b[96];
	uint16_t first, last;
	unsigned port;
	int r = 0;

	if (clientkey_use(k) != CLIENTKEY_DERIVE) {
		diag_error(w->d, "%s: %s: key \"%s\" is of use \"%s\"; expected "
			   "a key of use \"derive\" (porthop keygen --use "
			   "derive)", w->file, kpath, clientkey_name(k),
			   clientkey_use_name(clientkey_use(k)));
		return -1;
	}
	for (int p = 0; p < CONFIG_NPROTO; p++) {
		size_t n;
		const uint16_t *v = clientkey_services(k, p == CONFIG_TCP, &n);

		if (same_services(k, p, out))
			continue;
		ports_text(a, sizeof(a), v, n);
		ports_text(b, sizeof(b), out->ports[p], out->nports[p]);
		diag_error(w->d, "%s: %s: key \"%s\" derives %s ports %s%s; "
			   "expected the entry's %s ports %s (porthop keygen "
			   "--%s)", w->file, kpath, clientkey_name(k),
			   proto_name[p], a, n > 8 ? "..." : "", proto_name[p],
			   b, proto_name[p]);
		r = -1;
	}
	clientkey_pool(k, &first, &last);
	if (last > c->max_port) {
		diag_error(w->d, "%s: %s: key \"%s\" has the pool %u-%u; "
			   "expected ports up to max_port_number (%u)",
			   w->file, kpath, clientkey_name(k), first, last,
			   c->max_port);
		r = -1;
	}
	port = pool_holds_service(c, k);
	if (port != 0) {
		diag_error(w->d, "%s: %s: key \"%s\" has the pool %u-%u, which "
			   "holds the service port %u; expected it excluded "
			   "(porthop keygen --exclude), or a derived port "
			   "could be a real one", w->file, kpath,
			   clientkey_name(k), first, last, port);
		r = -1;
	}
	return r;
}

int walk_derive_key(struct walk *w, struct config *c, const json_t *e,
		    const char *path, struct config_watched *out)
{
	char kpath[DIAG_PATH_MAX], vbuf[DIAG_VALUE_MAX + 8];
	const json_t *v = json_object_get(e, "derive_key");
	struct clientkey *k = NULL;
	struct derive *dv = NULL;
	struct diag *tmp = NULL;
	int r = -1;

	if (v == NULL)
		return 0;
	diag_path_key(kpath, sizeof(kpath), path, "derive_key");
	if (c->mode != CONFIG_MODE_NATIVE) {
		diag_error(w->d, "%s: %s: derived ports need native mode (no "
			   "nft_address_rules_path)", w->file, kpath);
		return -1;
	}
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		diag_error(w->d, "%s: %s: %s is %s; expected the path of a key "
			   "file of use \"derive\"", w->file, kpath,
			   diag_value(vbuf, sizeof(vbuf), v), diag_type_name(v));
		return -1;
	}
	tmp = diag_new();
	if (tmp == NULL)
		return -1;
	/* The key's own checks (owner, mode, contents) report in tmp: their
	 * first error is said under this entry's path. */
	if (clientkey_load(json_string_value(v), tmp, &k) < 0) {
		diag_error(w->d, "%s: %s: %s", w->file, kpath,
			   diag_first_error(tmp) ? diag_first_error(tmp) :
			   "cannot be read");
		goto out;
	}
	if (check_key(w, c, k, kpath, out) < 0)
		goto out;
	if (derive_from_key(k, tmp, &dv) < 0) {
		diag_error(w->d, "%s: %s: %s", w->file, kpath,
			   diag_first_error(tmp) ? diag_first_error(tmp) :
			   "out of memory");
		goto out;
	}
	out->derive_key = strdup(json_string_value(v));
	if (out->derive_key == NULL)
		goto out;
	out->derive = dv;
	dv = NULL;
	out->slot_seconds = clientkey_slot_seconds(k);
	/* The services are the derivation's now: nothing of this entry is
	 * shuffled. */
	for (int p = 0; p < CONFIG_NPROTO; p++) {
		free((void *)out->ports[p]);
		out->ports[p] = NULL;
		out->nports[p] = 0;
	}
	r = 0;
out:
	derive_free(dv);
	clientkey_free(k);
	diag_free(tmp);
	return r;
}

int walk_derive_nested(struct walk *w, struct config *c, const char *path)
{
	unsigned keyed = 0;
	int r = 0;

	for (size_t i = 0; i < c->nwatched; i++) {
		long cover;

		if (c->watched[i].derive == NULL)
			continue;
		c->watched[i].derive_id = keyed++;
		if (keyed == CONFIG_DERIVE_MAX + 1) {
			diag_error(w->d, "%s: %s[%zu]: keyed entry %s is one too "
				   "many; expected at most %d entries with "
				   "derive_key", w->file, path, i,
				   c->watched[i].net.text, CONFIG_DERIVE_MAX);
			r = -1;
		}
		cover = config_watched_cover(c, &c->watched[i].net);
		if (cover >= 0 && (size_t)cover != i &&
		    c->watched[cover].derive != NULL) {
			diag_error(w->d, "%s: %s[%zu]: keyed entry %s is inside "
				   "the keyed entry %s; expected keyed entries "
				   "that do not overlap", w->file, path, i,
				   c->watched[i].net.text,
				   c->watched[cover].net.text);
			r = -1;
		}
	}
	return r;
}

void config_derive_release(struct config_watched *cw)
{
	derive_free((struct derive *)cw->derive);
	free((void *)cw->derive_key);
	cw->derive = NULL;
	cw->derive_key = NULL;
}
