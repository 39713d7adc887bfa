#include "nftio.h"

#include <errno.h>
#include <nftables/libnftables.h>
#include <stdlib.h>
#include <string.h>

struct nftio_ops {
	int (*apply)(struct nftio *io, const char *text, bool dry_run,
		     char **ret_error);
	int (*list)(struct nftio *io, json_t **ret, char **ret_error);
};

struct nftio {
	const struct nftio_ops *ops;
	struct nft_ctx *nft;		/* kernel backend */
	/* recorder backend */
	json_t *last;
	size_t applied;
	size_t dry_runs;
	unsigned fail_next;
	char *fail_msg;
	char *fail_needle;
};

/* Folds libnftables' multi-line messages into one line and drops the
 * "internal:0:0-0: " locations, which JSON input always has and which
 * tell nothing. */
static char *one_line(const char *a, const char *b)
{
	size_t len = strlen(a) + strlen(b) + 2;
	char *out = malloc(len + 1), *o = out;
	const char *parts[2] = { a, b };

	if (out == NULL)
		return NULL;
	for (int k = 0; k < 2; k++) {
		for (const char *s = parts[k]; *s;) {
			if (strncmp(s, "internal:0:0-0: ", 16) == 0) {
				s += 16;
				continue;
			}
			if (*s == '\n' || *s == '\r') {
				while (*s == '\n' || *s == '\r')
					s++;
				if (*s && o > out && o[-1] != ' ') {
					*o++ = ';';
					*o++ = ' ';
				}
				continue;
			}
			*o++ = *s++;
			if ((size_t)(o - out) >= len - 2)
				goto done;
		}
		if (k == 0 && *b && o > out) {
			*o++ = ';';
			*o++ = ' ';
		}
	}
done:
	while (o > out && (o[-1] == ' ' || o[-1] == ';'))
		o--;
	*o = '\0';
	return out;
}

static int kernel_apply(struct nftio *io, const char *text, bool dry_run,
			char **ret_error)
{
	const char *out, *err;
	int rc;

	nft_ctx_set_dry_run(io->nft, dry_run);
	rc = nft_run_cmd_from_buffer(io->nft, text);
	nft_ctx_set_dry_run(io->nft, false);
	/* Reading a buffer also empties it for the next call. */
	out = nft_ctx_get_output_buffer(io->nft);
	err = nft_ctx_get_error_buffer(io->nft);
	if (rc == 0 && (out == NULL || out[0] == '\0') &&
	    (err == NULL || err[0] == '\0'))
		return 0;
	if (ret_error) {
		if ((out == NULL || !*out) && (err == NULL || !*err))
			*ret_error = strdup("libnftables failed without a "
					    "message");
		else
			*ret_error = one_line(err ? err : "", out ? out : "");
	}
	return -EIO;
}

static int kernel_list(struct nftio *io, json_t **ret, char **ret_error)
{
	json_error_t jerr;
	const char *out;
	json_t *root;
	int rc;

	rc = nft_run_cmd_from_buffer(io->nft, "list ruleset");
	out = nft_ctx_get_output_buffer(io->nft);
	if (rc != 0) {
		const char *err = nft_ctx_get_error_buffer(io->nft);

		if (ret_error)
			*ret_error = one_line(err ? err : "", "");
		return -EIO;
	}
	root = json_loads(out ? out : "", 0, &jerr);
	if (root == NULL) {
		if (ret_error)
			*ret_error = strdup("libnftables listed a ruleset that "
					    "is not JSON");
		return -EIO;
	}
	*ret = root;
	return 0;
}

static const struct nftio_ops kernel_ops = {
	.apply = kernel_apply,
	.list = kernel_list,
};

static int recorder_apply(struct nftio *io, const char *text, bool dry_run,
			  char **ret_error)
{
	json_error_t jerr;
	json_t *batch;

	if (io->fail_next > 0 ||
	    (io->fail_needle && strstr(text, io->fail_needle))) {
		if (io->fail_next > 0)
			io->fail_next--;
		if (ret_error)
			*ret_error = strdup(io->fail_msg ? io->fail_msg :
					    "recorder: told to fail");
		return -EIO;
	}
	batch = json_loads(text, 0, &jerr);
	if (batch == NULL || !json_is_array(json_object_get(batch,
							    "nftables"))) {
		json_decref(batch);
		if (ret_error)
			*ret_error = strdup("recorder: not a libnftables batch");
		return -EINVAL;
	}
	if (dry_run) {
		io->dry_runs++;
		json_decref(batch);
		return 0;
	}
	json_decref(io->last);
	io->last = batch;
	io->applied++;
	return 0;
}

static int recorder_list(struct nftio *io, json_t **ret, char **ret_error)
{
	(void)ret_error;
	*ret = io->last ? json_incref(io->last) :
			  json_pack("{s:[]}", "nftables");
	return *ret ? 0 : -ENOMEM;
}

static const struct nftio_ops recorder_ops = {
	.apply = recorder_apply,
	.list = recorder_list,
};

struct nftio *nftio_new_kernel(void)
{
	struct nftio *io = calloc(1, sizeof(*io));

	if (io == NULL)
		return NULL;
	io->ops = &kernel_ops;
	io->nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (io->nft == NULL)
		goto fail;
	/* libnftables 1.0.6 parses JSON input only with JSON output set. */
	nft_ctx_output_set_flags(io->nft, NFT_CTX_OUTPUT_JSON);
	if (nft_ctx_buffer_output(io->nft) || nft_ctx_buffer_error(io->nft))
		goto fail;
	return io;
fail:
	nftio_free(io);
	return NULL;
}

struct nftio *nftio_new_recorder(void)
{
	struct nftio *io = calloc(1, sizeof(*io));

	if (io)
		io->ops = &recorder_ops;
	return io;
}

void nftio_free(struct nftio *io)
{
	if (io == NULL)
		return;
	if (io->nft)
		nft_ctx_free(io->nft);
	json_decref(io->last);
	free(io->fail_msg);
	free(io->fail_needle);
	free(io);
}

int nftio_apply_text(struct nftio *io, const char *text, bool dry_run,
		     char **ret_error)
{
	return io->ops->apply(io, text, dry_run, ret_error);
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
	return io->ops->list(io, ret, ret_error);
}

size_t nftio_recorder_applied(const struct nftio *io)
{
	return io->applied;
}

size_t nftio_recorder_dry_runs(const struct nftio *io)
{
	return io->dry_runs;
}

json_t *nftio_recorder_last(const struct nftio *io)
{
	return io->last;
}

void nftio_recorder_fail_next(struct nftio *io, unsigned n, const char *msg)
{
	free(io->fail_msg);
	io->fail_msg = msg ? strdup(msg) : NULL;
	io->fail_next = n;
}

void nftio_recorder_fail_match(struct nftio *io, const char *needle,
			       const char *msg)
{
	free(io->fail_msg);
	free(io->fail_needle);
	io->fail_msg = msg ? strdup(msg) : NULL;
	io->fail_needle = needle ? strdup(needle) : NULL;
}
