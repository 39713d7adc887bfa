/*
 * nftio: the contract.  Every public call goes to the backend's table of
 * operations (nftio_backend.h); what is the same for every backend lives
 * here: counting our commits, trying interrupted calls again, turning
 * JSON into text and element queues into JSON batches.
 */
#include "nftio_backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Attempts of a call the kernel or libnftables says was interrupted. */
#define NFTIO_EINTR_ATTEMPTS 5

struct nftio {
	const struct nftio_ops *ops;
	void *data;			/* the backend's own state */
	uint64_t commits;		/* transactions committed */
};

struct nftio *nftio_backend_new(const struct nftio_ops *ops, void *data)
{
	struct nftio *io = calloc(1, sizeof(*io));

	if (io == NULL)
		return NULL;
	io->ops = ops;
	io->data = data;
	return io;
}

void *nftio_backend_data(const struct nftio *io, const struct nftio_ops *ops)
{
	return io->ops == ops ? io->data : NULL;
}

void nftio_free(struct nftio *io)
{
	if (io == NULL)
		return;
	io->ops->free(io->data);
	free(io);
}

int nftio_libnft_errno(const char *text)
{
	static const int known[] = {
		EINTR, EPERM, EACCES, EOPNOTSUPP, ENOENT, EEXIST, EBUSY,
		ENOMEM, ENOBUFS, ENOSPC, EMSGSIZE, EINVAL, ERANGE, E2BIG,
		EOVERFLOW, EAFNOSUPPORT, EPROTONOSUPPORT, ELOOP, EAGAIN,
	};
	const char *first = NULL;
	int r = -EIO;

	/* libnftables 1.0.6 returns -1 and prints; nothing else tells. */
	for (size_t i = 0; text && i < sizeof(known) / sizeof(known[0]); i++) {
		const char *at = strstr(text, strerror(known[i]));

		if (at && (first == NULL || at < first)) {
			first = at;
			r = -known[i];
		}
	}
	return r;
}

uint64_t nftio_hash(const void *p, size_t n, uint64_t seed)
{
	const unsigned char *c = p;
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ULL;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

/*
 * Interrupted calls are made again.  The kernel backend holds signals
 * back around libnftables (see its run_nft), so this is the last line of
 * defence.  porthop's batches can be sent twice: definitions replace,
 * maps and sets are flushed before they are filled, "add" of what exists
 * changes nothing; listings change nothing at all.
 */

/* Whether the call that returned r as attempt n is made again; if so,
 * its message goes. */
static bool again(int r, unsigned n, char **err)
{
	if (r != -EINTR || n >= NFTIO_EINTR_ATTEMPTS)
		return false;
	free(*err);
	*err = NULL;
	return true;
}

/* Hands the last attempt's message to the caller (or drops it); r. */
static int handed(int r, char *err, char **ret_error)
{
	if (ret_error)
		*ret_error = err;
	else
		free(err);
	return r;
}

int nftio_apply_text(struct nftio *io, const char *text, bool dry_run,
		     char **ret_error)
{
	char *err = NULL;
	unsigned n = 1;
	int r;

	while (again(r = io->ops->apply(io, text, dry_run, &err), n++, &err))
		;
	if (r == 0 && !dry_run)
		io->commits++;
	return handed(r, err, ret_error);
}

int nftio_apply(struct nftio *io, const json_t *batch, bool dry_run,
		char **ret_error)
{
	char *text = json_dumps(batch, JSON_COMPACT);
	int r;

	if (text == NULL) {
		if (ret_error)
			*ret_error = strdup("out of memory serialising the "
					    "batch");
		return -ENOMEM;
	}
	r = nftio_apply_text(io, text, dry_run, ret_error);
	free(text);
	return r;
}

int nftio_list(struct nftio *io, json_t **ret, char **ret_error)
{
	char *err = NULL;
	unsigned n = 1;
	int r;

	while (again(r = io->ops->list(io, ret, &err), n++, &err))
		;
	return handed(r, err, ret_error);
}

int nftio_list_text(struct nftio *io, char **ret_text, char **ret_error)
{
	char *err = NULL;
	unsigned n = 1;
	int r;

	while (again(r = io->ops->list_text(io, ret_text, &err), n++, &err))
		;
	return handed(r, err, ret_error);
}

int nftio_list_json(struct nftio *io, const json_t *cmds, bool terse,
		    json_t **ret, char **ret_error)
{
	char *err = NULL;
	unsigned n = 1;
	int r;

	while (again(r = io->ops->list_json(io, cmds, terse, ret, &err), n++,
		     &err))
		;
	return handed(r, err, ret_error);
}

int nftio_backend_apply_elems_json(struct nftio *io,
				   const struct nftio_elems *b,
				   char **ret_error)
{
	json_t *j = nftio_elems_json(b);
	int r = j ? nftio_apply(io, j, false, ret_error) : -ENOMEM;

	json_decref(j);
	return r;
}

int nftio_apply_elems(struct nftio *io, const struct nftio_elems *b,
		      bool use_json, char **ret_error)
{
	uint64_t commits = io->commits;
	int r = use_json ? nftio_backend_apply_elems_json(io, b, ret_error) :
			   io->ops->apply_elems(io, b, ret_error);

	/* One transaction, whether or not it went through nftio_apply. */
	if (r == 0 && io->commits == commits)
		io->commits++;
	return r;
}

uint64_t nftio_commits(const struct nftio *io)
{
	return io->commits;
}

int nftio_generation(struct nftio *io, uint32_t *ret_gen)
{
	return io->ops->generation(io, ret_gen);
}

int nftio_table_fingerprint(struct nftio *io, const char *family,
			    const char *table, char **ret)
{
	return io->ops->table_fingerprint(io, family, table, ret);
}

int nftio_table_marked(struct nftio *io, const char *family,
		       const char *table, const char *mark)
{
	return io->ops->table_marked(io, family, table, mark);
}

int nftio_map_digest(struct nftio *io, const char *table, const char *map,
		     uint64_t *ret)
{
	*ret = 0;
	return io->ops->map_digest(io, table, map, ret);
}

int nftio_elems_verify(struct nftio *io, const struct nftio_elems *b)
{
	return io->ops->elems_verify(io, b);
}

int nftio_conntrack_user(struct nftio *io, const char *table, int where,
			 char *who, size_t len)
{
	if (len)
		who[0] = '\0';
	return io->ops->conntrack_user(io, table, where, who, len);
}
