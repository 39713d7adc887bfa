#include "ruleset.h"

#include <errno.h>

json_t *ruleset_batch_new(const struct config *c, bool with_startup)
{
	json_t *cmds = json_array();
	json_t *batch;

	if (cmds == NULL)
		return NULL;
	if (with_startup &&
	    json_array_extend(cmds, config_startup_commands(c)) < 0) {
		json_decref(cmds);
		return NULL;
	}
	batch = json_pack("{s:o}", "nftables", cmds);
	return batch;
}

json_t *ruleset_commands(json_t *batch)
{
	return json_object_get(batch, "nftables");
}

int ruleset_add_pair(const struct config *c, json_t *batch, size_t watched,
		     uint16_t port, uint16_t redirect)
{
	const struct config_watched *w = config_watched(c, watched);
	struct template_values v = {
		.source_address = w->ip,
		.destination_port = port,
		.redirected_port = redirect,
		/* The reference's template mode knows TCP only. */
		.protocol = "tcp",
	};

	return template_instantiate(config_template(c), &v,
				    ruleset_commands(batch));
}

int ruleset_build(const struct config *c, const struct shuffle_map *map,
		  json_t **ret_batch)
{
	json_t *batch = ruleset_batch_new(c, true);

	if (batch == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < map->nentries; i++) {
		const struct shuffle_entry *e = &map->entries[i];

		for (size_t k = 0; k < e->npairs; k++)
			if (ruleset_add_pair(c, batch, e->watched,
					     e->pairs[k].port,
					     e->pairs[k].redirect) < 0) {
				json_decref(batch);
				return -ENOMEM;
			}
	}
	*ret_batch = batch;
	return 0;
}
