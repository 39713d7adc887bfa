/*
 * drift: has anyone changed porthop's rules since porthop applied them?
 * See drift.h for the contract.
 */
#include "drift.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ruleset.h"

/* Up to this many pairs the maps' digest is taken right after each apply
 * and checked when someone else commits: about 10 ms at 10,000 pairs.
 * Above, the maps' elements are not digested: the kernel restarts its
 * walk of a set for every message of a dump, so a dump's cost grows with
 * the square of the elements (0.7 to 1 s at 100,000 pairs).  The address
 * sets are checked on their own up to as many entries, whatever the pairs
 * (see checked_sets): they are what keeps a watched address redirected
 * (tracked4/6) or a trusted one untouched, and usually far fewer. */
#define ELEMENT_CHECK_MAX 20000

/* Maps without a digest are checked element by element instead, once
 * someone else has committed: the kernel is asked for each element the
 * mapping in force has, linear (0.3-0.4 s per 100,000 pairs,
 * bench/reconcile_check.sh).  That sees an element deleted or changed,
 * not one added.  So as not to hold the event loop for seconds, it goes
 * this many pairs per check: a million pairs take ten. */
#define VERIFY_STEP_PAIRS 100000

struct drift {
	struct nftio *io;
	/* The ruleset generation right after our last apply (or its
	 * check), and what our tables looked like then (taken lazily). */
	uint32_t applied_gen;
	bool have_gen;
	char *fingerprint;
	/* Native mode: digests of the maps' and of the address sets'
	 * elements as the kernel held them then. */
	uint64_t map_digest, set_digest;
	bool have_map_digest, have_set_digest;
	/* Maps without a digest: their elements asked for by key, a step of
	 * entries per check, from this entry on. */
	size_t verify_next;
	bool verifying;
	unsigned gen;		/* the generation of maps in force */
	/* The generation drift_moved read, and porthop's commits then: the
	 * next drift_begin takes it instead of asking the kernel again when
	 * porthop committed nothing since (see drift_begin). */
	uint32_t peek_gen;
	uint64_t peek_commits;
	bool have_peek;
	struct drift_stats stats;
};

static double ms_since(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) * 1e3 +
	       (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

struct drift *drift_new(struct nftio *io)
{
	struct drift *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->io = io;
	d->stats.last_digest_ms = -1;
	return d;
}

void drift_free(struct drift *d)
{
	if (d == NULL)
		return;
	free(d->fingerprint);
	free(d);
}

size_t drift_owned_tables(const struct config *cfg, const char **family,
			  const char **name)
{
	json_t *cmd;
	size_t i, n = 0;

	if (config_mode(cfg) == CONFIG_MODE_NATIVE) {
		family[0] = "inet";
		name[0] = config_table_name(cfg);
		return 1;
	}
	/* The tables the startup commands add (after the reference's "flush
	 * ruleset"). */
	json_array_foreach(config_startup_commands(cfg), i, cmd) {
		json_t *tb = json_object_get(json_object_get(cmd, "add"), "table");
		const char *f = json_string_value(json_object_get(tb, "family"));
		const char *t = json_string_value(json_object_get(tb, "name"));

		if (f && t && n < DRIFT_OWNED_MAX) {
			family[n] = f;
			name[n++] = t;
		}
	}
	return n;
}

/* The fingerprints of the tables porthop owns under cfg, joined.
 * -ENOENT if one is missing. */
static int fingerprint_of(struct drift *d, const struct config *cfg,
			  char **ret)
{
	const char *family[DRIFT_OWNED_MAX], *name[DRIFT_OWNED_MAX];
	size_t n = drift_owned_tables(cfg, family, name), len = 0;
	char *all = NULL;
	int r = 0;

	for (size_t i = 0; r == 0 && i < n; i++) {
		char *fp = NULL, *grown;

		r = nftio_table_fingerprint(d->io, family[i], name[i], &fp);
		if (r < 0)
			break;
		grown = realloc(all, len + strlen(fp) + 1);
		if (grown == NULL) {
			free(fp);
			r = -ENOMEM;
			break;
		}
		all = grown;
		memcpy(all + len, fp, strlen(fp) + 1);
		len += strlen(fp);
		free(fp);
	}
	if (r == 0 && all == NULL)
		all = strdup("");
	if (r < 0 || all == NULL) {
		free(all);
		return r < 0 ? r : -ENOMEM;
	}
	*ret = all;
	return 0;
}

/* Whether nobody committed since the baseline: then what the kernel
 * holds is ours to take.  When someone has, the baseline is dropped: the
 * next check compares and puts back. */
static bool still_ours(struct drift *d)
{
	uint32_t gen;

	if (d->have_gen && nftio_generation(d->io, &gen) == 0 &&
	    gen == d->applied_gen)
		return true;
	d->have_gen = false;
	return false;
}

/* Takes the fingerprint if none is kept, and keeps it only if nobody
 * committed meanwhile. */
static void take_fingerprint(struct drift *d, const struct config *cfg)
{
	if (d->fingerprint == NULL &&
	    fingerprint_of(d, cfg, &d->fingerprint) < 0)
		d->fingerprint = NULL;
	if (d->fingerprint && !still_ours(d)) {
		free(d->fingerprint);
		d->fingerprint = NULL;
	}
}

void drift_begin(struct drift *d, struct drift_mark *ret)
{
	ret->commits = nftio_commits(d->io);
	ret->have = nftio_generation(d->io, &ret->gen) == 0;
	ret->quiet = ret->have && d->have_gen && ret->gen == d->applied_gen;
	d->have_peek = false;
}

void drift_begin_elements(struct drift *d, struct drift_mark *ret)
{
	/* A settle usually read the generation just before: one netlink
	 * round trip less per apply.  For a batch of elements an older
	 * reading decides as a fresh one would: had anyone committed
	 * since it, a fresh reading would find the baseline moved (not
	 * quiet), this one finds drift_applied's count of generations
	 * apart from porthop's own commits (not alone), and either way the
	 * baseline is dropped alike.  (A whole apply rebases even after
	 * someone else's commit before it, so it reads afresh.) */
	if (!d->have_peek || d->peek_commits != nftio_commits(d->io)) {
		drift_begin(d, ret);
		return;
	}
	ret->commits = d->peek_commits;
	ret->gen = d->peek_gen;
	ret->have = true;
	ret->quiet = d->have_gen && ret->gen == d->applied_gen;
	d->have_peek = false;
}

bool drift_applied(struct drift *d, const struct config *cfg,
		   const struct drift_mark *m, unsigned how, uint32_t *ret_gen)
{
	uint32_t after = 0;
	bool alone;

	/* What the batch did not write keeps its digest: it was checked,
	 * and a check after someone else's commit still compares with it. */
	if (how & (DRIFT_WROTE_ALL | DRIFT_WROTE_MAPS))
		d->have_map_digest = false;
	if (how & (DRIFT_WROTE_ALL | DRIFT_WROTE_SETS))
		d->have_set_digest = false;
	d->stats.last_digest_ms = -1;
	/* Only our transactions moved the generation since m->gen? */
	alone = m->have && nftio_generation(d->io, &after) == 0 &&
		after - m->gen == (uint32_t)(nftio_commits(d->io) - m->commits);
	*ret_gen = after;
	if (!alone || (!(how & DRIFT_WROTE_ALL) && !m->quiet)) {
		/* Someone committed between our check and our apply, or
		 * during it (or the generation could not be read): what
		 * the kernel holds is not all ours to vouch for.  An
		 * elements batch left the definition as we wrote it: its
		 * fingerprint stays to compare with, the elements are
		 * checked again.  Anything else is applied again whole. */
		d->have_gen = false;
		d->verifying = false;
		if (!(how & DRIFT_KEPT_DEFINITION)) {
			free(d->fingerprint);
			d->fingerprint = NULL;
		}
		return false;
	}
	d->have_gen = true;
	d->applied_gen = after;
	/* A fingerprint now lets the next check tell our change from
	 * someone else's (an elements batch left the one kept as it was).
	 * Native fingerprints leave the elements out and are cheap; a
	 * large template ruleset is fingerprinted lazily, at the next quiet
	 * check. */
	if (!(how & DRIFT_KEPT_DEFINITION) || d->fingerprint == NULL) {
		free(d->fingerprint);
		d->fingerprint = NULL;
		if (!(how & DRIFT_FINGERPRINT_LATER))
			take_fingerprint(d, cfg);
	}
	if (how & DRIFT_MAPS_WHOLE)
		d->verifying = false;
	return true;
}

/* One digest of the elements of the native table's maps or sets named. */
static int digest_of(struct drift *d, const struct config *cfg,
		     const char *const *names, size_t n, uint64_t *ret)
{
	uint64_t all = 0, one;
	int r;

	for (size_t i = 0; i < n; i++) {
		r = nftio_map_digest(d->io, config_table_name(cfg), names[i],
				     &one);
		if (r < 0)
			return r;
		all = all * 0x100000001b3ULL + one;
	}
	*ret = all;
	return 0;
}

/* The address sets a check digests under c (see ELEMENT_CHECK_MAX): each
 * pair of them whose ranges are few enough at most, trusted4/6 (the
 * trusted networks) and tracked4/6 (the watched networks, cut by the
 * trusted ones), so that a long watched list leaves the trusted sets
 * checked; and the derived ports' maps (ruleset.h), which the same
 * batches write.  Fills names, returns how many. */
#define CHECKED_MAX (4 + RULESET_DERIVE_MAPS_MAX)

static size_t checked_sets(const struct config *c,
			   const char *names[CHECKED_MAX])
{
	const char *all[4];
	size_t n = ruleset_native_sets(c, all), k = 0;
	size_t trusted = config_trusted_count(c);

	for (size_t i = 0; i < n; i++)
		if (i < 2 ? trusted <= ELEMENT_CHECK_MAX :
			    config_watched_count(c) + trusted <= ELEMENT_CHECK_MAX)
			names[k++] = all[i];
	/* The keyed entries' maps change at every slot boundary, each
	 * change followed by new digests, as the sets' after a reload. */
	if (ruleset_derive_count(c) <= ELEMENT_CHECK_MAX)
		k += ruleset_derive_map_names(c, names + k, CHECKED_MAX - k);
	return k;
}

void drift_take_digests(struct drift *d, const struct config *cfg)
{
	const char *names[CHECKED_MAX];
	size_t n = checked_sets(cfg, names);
	bool maps, sets;
	struct timespec t0;

	/* Only a check reads them. */
	if (config_mode(cfg) != CONFIG_MODE_NATIVE ||
	    config_daemon(cfg)->reconcile_interval_s == 0)
		return;
	maps = !d->have_map_digest &&
	       config_pair_count(cfg) <= ELEMENT_CHECK_MAX;
	sets = !d->have_set_digest && n > 0;
	if (!maps && !sets)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (maps)
		d->have_map_digest = digest_of(d, cfg, ruleset_native_gen_maps[d->gen],
					       RULESET_MAP_COUNT,
					       &d->map_digest) == 0;
	if (sets)
		d->have_set_digest = digest_of(d, cfg, names, n,
					       &d->set_digest) == 0;
	/* Taken after someone else's commit, they could hold it: those
	 * just taken are dropped. */
	if (!still_ours(d)) {
		if (maps)
			d->have_map_digest = false;
		if (sets)
			d->have_set_digest = false;
	}
	d->stats.last_digest_ms = ms_since(&t0);
}

/* One step of the check by key (see VERIFY_STEP_PAIRS): the entries from
 * d->verify_next on.  Whether an element was missing or changed;
 * d->verifying says whether entries are left for the next step. */
static bool verify_step(struct drift *d, const struct config *cfg,
			const struct shuffle_map *map)
{
	struct nftio_elems *b = nftio_elems_new(config_table_name(cfg));
	size_t i = d->verify_next, pairs = 0;
	int r = b ? 0 : -ENOMEM;

	for (; r == 0 && i < map->nentries && pairs < VERIFY_STEP_PAIRS; i++) {
		r = ruleset_native_entry_elements_gen(cfg, &map->entries[i],
						      d->gen, b);
		pairs += map->entries[i].npairs;
	}
	r = r < 0 ? r : nftio_elems_verify(d->io, b);
	nftio_elems_free(b);
	d->verify_next = i;
	d->verifying = r == 0 && i < map->nentries;
	return r > 0;
}

/* Whether the maps' elements differ from their digest, or the maps'
 * first step from the mapping in force (no digest); false when not
 * known. */
static bool maps_changed(struct drift *d, const struct config *cfg,
			 const struct shuffle_map *map)
{
	uint64_t now;

	if (!d->have_map_digest) {
		d->verify_next = 0;
		return verify_step(d, cfg, map);
	}
	return digest_of(d, cfg, ruleset_native_gen_maps[d->gen],
					       RULESET_MAP_COUNT, &now) == 0 &&
	       now != d->map_digest;
}

/* Whether the address sets' elements differ from their digest.  Sets
 * that can be checked but have no digest (none taken since someone
 * committed) are not known to be ours: changed, to be rewritten. */
static bool sets_changed(struct drift *d, const struct config *cfg)
{
	const char *names[CHECKED_MAX];
	size_t n = checked_sets(cfg, names);
	uint64_t now;

	return n > 0 && (!d->have_set_digest ||
			 digest_of(d, cfg, names, n, &now) != 0 ||
			 now != d->set_digest);
}

int drift_moved(struct drift *d, uint32_t *ret_gen)
{
	int r = nftio_generation(d->io, ret_gen);

	if (r < 0)
		return r;
	d->peek_gen = *ret_gen;
	d->peek_commits = nftio_commits(d->io);
	d->have_peek = true;
	return !d->have_gen || *ret_gen != d->applied_gen;
}

enum drift_result drift_compare(struct drift *d, const struct config *cfg,
				const struct shuffle_map *map, uint32_t gen)
{
	struct timespec t0;
	char *now = NULL;
	bool maps, sets;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	d->stats.checks++;
	r = d->fingerprint ? fingerprint_of(d, cfg, &now) : -ESTALE;
	if (r < 0 || strcmp(now, d->fingerprint) != 0) {
		free(now);
		d->stats.last_check_ms = ms_since(&t0);
		d->stats.check_continues = false;
		return r == -ENOENT ? DRIFT_GONE : DRIFT_DEFINITION;
	}
	free(now);
	/* The definition is intact; the elements too? */
	maps = config_mode(cfg) == CONFIG_MODE_NATIVE &&
	       maps_changed(d, cfg, map);
	sets = config_mode(cfg) == CONFIG_MODE_NATIVE && sets_changed(d, cfg);
	d->stats.last_check_ms = ms_since(&t0);
	d->stats.check_continues = d->verifying && !maps;
	d->applied_gen = gen;
	d->have_gen = true;
	return maps && sets ? DRIFT_ELEMENTS : maps ? DRIFT_MAPS :
	       sets ? DRIFT_SETS : DRIFT_INTACT;
}

enum drift_result drift_quiet_step(struct drift *d, const struct config *cfg,
				   const struct shuffle_map *map)
{
	struct timespec t0;
	bool changed;

	take_fingerprint(d, cfg);
	if (!d->have_gen)
		return DRIFT_INTACT;	/* someone just committed: next time */
	drift_take_digests(d, cfg);
	if (!d->verifying)
		return DRIFT_INTACT;
	/* The check by key of someone else's earlier commit goes on. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	d->stats.checks++;
	changed = verify_step(d, cfg, map);
	d->stats.last_check_ms = ms_since(&t0);
	d->stats.check_continues = !changed && d->verifying;
	return changed ? DRIFT_MAPS : DRIFT_INTACT;
}

void drift_unsettle(struct drift *d)
{
	d->have_gen = false;
}

void drift_own_begin(struct drift *d, const struct config *cfg,
		     struct drift_own *ret)
{
	char *now = NULL;

	ret->gen = 0;
	ret->quiet = d->have_gen && nftio_generation(d->io, &ret->gen) == 0 &&
		     ret->gen == d->applied_gen;
	ret->intact = ret->quiet ||
		      (d->fingerprint && fingerprint_of(d, cfg, &now) == 0 &&
		       strcmp(now, d->fingerprint) == 0);
	free(now);
}

void drift_own_elements_begin(struct drift *d, struct drift_own *ret)
{
	ret->gen = 0;
	ret->quiet = d->have_gen && nftio_generation(d->io, &ret->gen) == 0 &&
		     ret->gen == d->applied_gen;
	ret->intact = false;
}

void drift_own_end(struct drift *d, const struct config *cfg,
		   const struct drift_own *o)
{
	uint32_t gen;

	if (o->intact) {
		free(d->fingerprint);
		if (fingerprint_of(d, cfg, &d->fingerprint) < 0)
			d->fingerprint = NULL;
	}
	if (o->quiet && nftio_generation(d->io, &gen) == 0 && gen == o->gen + 1)
		d->applied_gen = gen;
}

bool drift_table_gone(struct drift *d, const struct config *cfg)
{
	char *now = NULL;
	bool gone = fingerprint_of(d, cfg, &now) == -ENOENT;

	free(now);
	return gone;
}

void drift_set_generation(struct drift *d, unsigned gen)
{
	if (gen != d->gen) {
		d->have_map_digest = false;
		d->verifying = false;
	}
	d->gen = gen;
}

const struct drift_stats *drift_stats(const struct drift *d)
{
	return &d->stats;
}
