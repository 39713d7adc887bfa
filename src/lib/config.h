/*
 * config: the reference's configuration.json, validated completely in C
 * before anything else happens, and the two rule files it names.
 *
 * Every problem is reported (file, JSON path, value, what was expected),
 * not only the first.  A configuration that loads is internally consistent:
 * ports in range, addresses parsed, no duplicates, enough free redirect
 * ports for every watched address, rule files parsed and the template
 * compiled.  What only the kernel can judge (does libnftables accept the
 * instantiated rules) is checked by engine_check().
 */
#ifndef PORTHOP_CONFIG_H
#define PORTHOP_CONFIG_H

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"
#include "template.h"

/* Limits on what a configuration may ask for. */
#define CONFIG_MAX_FILE_SIZE	(16u << 20)
#define CONFIG_MAX_RULES_SIZE	(1u << 20)
#define CONFIG_MAX_CHANNELS	64
#define CONFIG_MAX_STRING	255
#define CONFIG_MAX_WATCHED	1000000

/* Skip loading the two rule files (for `porthop publish`, which needs only
 * the Redis settings). */
#define CONFIG_LOAD_NO_RULES	0x1

struct config;

/* One entry of watched_addresses, in canonical form. */
struct config_watched {
	char ip[INET6_ADDRSTRLEN];	/* inet_ntop() form */
	int family;			/* AF_INET or AF_INET6 */
	unsigned char addr[16];
	const uint16_t *ports;		/* tcp_ports minus tcp_ignore: pairs */
	size_t nports;
	const uint16_t *ignore;		/* tcp_ignore as given */
	size_t nignore;
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
/* True if port is one of tcp_ports (never drawn as a redirect port). */
bool config_port_used(const struct config *c, unsigned port);
size_t config_watched_count(const struct config *c);
const struct config_watched *config_watched(const struct config *c, size_t i);
/* Index of the watched entry with this address, or -1. */
long config_watched_find(const struct config *c, const char *ip);
/* Total (address, port) pairs over all watched addresses. */
size_t config_pair_count(const struct config *c);
/* The startup commands array (borrowed), and the compiled template. */
json_t *config_startup_commands(const struct config *c);
const struct template *config_template(const struct config *c);

#endif
