/*
 * jsonfile: read one JSON document from a file, with the checks every
 * porthop input gets. See jsonfile.h for the contract.
 */
#include "jsonfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int jsonfile_parse(const char *name, const char *buf, size_t len,
		   struct diag *d, json_t **ret_root)
{
	json_error_t jerr;
	json_t *root;
	size_t i;

	for (i = 0; i < len; i++)
		if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' &&
		    buf[i] != '\r')
			break;
	if (i == len) {
		diag_error(d, "%s: is empty; expected a JSON object", name);
		return -EINVAL;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		diag_error(d, "%s:%d:%d: invalid JSON: %s", name, jerr.line,
			   jerr.column, jerr.text);
		return -EINVAL;
	}
	*ret_root = root;
	return 0;
}

int jsonfile_load_as(const char *path, const char *name, size_t max_size,
		     struct diag *d, json_t **ret_root)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, r;

	/* O_NONBLOCK: a FIFO or device named by mistake must not hang us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		diag_error(d, "%s: cannot open: %s", name, strerror(errno));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		diag_error(d, "%s: cannot stat: %s", name, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		diag_error(d, "%s: is %s; expected a regular file", name,
			   S_ISDIR(st.st_mode) ? "a directory" :
						 "not a regular file");
		goto out;
	}
	if ((size_t)st.st_size > max_size) {
		r = -EFBIG;
		diag_error(d, "%s: is %lld bytes; at most %zu bytes are accepted",
			   name, (long long)st.st_size, max_size);
		goto out;
	}
	/* One byte more than allowed tells us if the file grew meanwhile. */
	buf = malloc(max_size + 1 < (size_t)st.st_size + 4096 ?
			     max_size + 1 : (size_t)st.st_size + 4096);
	if (buf == NULL) {
		r = -ENOMEM;
		diag_error(d, "%s: out of memory", name);
		goto out;
	}
	for (;;) {
		size_t cap = max_size + 1 < (size_t)st.st_size + 4096 ?
				     max_size + 1 : (size_t)st.st_size + 4096;
		ssize_t n;

		if (len == cap) {
			r = -EFBIG;
			diag_error(d, "%s: grew while being read; at most %zu "
				   "bytes are accepted", name, max_size);
			goto out;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			diag_error(d, "%s: cannot read: %s", name,
				   strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max_size) {
		r = -EFBIG;
		diag_error(d, "%s: is larger than %zu bytes", name, max_size);
		goto out;
	}
	r = jsonfile_parse(name, buf, len, d, ret_root);
out:
	free(buf);
	close(fd);
	return r;
}

int jsonfile_load(const char *path, size_t max_size, struct diag *d,
		  json_t **ret_root)
{
	return jsonfile_load_as(path, path, max_size, d, ret_root);
}
