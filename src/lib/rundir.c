/*
 * rundir: where the control socket lives. See rundir.h for the contract.
 */
#include "rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"

const char *rundir_socket(const char *override, const struct config *c)
{
	const char *path = override ? override :
			   config_daemon(c)->control_socket;

	return path && path[0] ? path : NULL;
}

bool rundir_holds(const char *path)
{
	return strncmp(path, RUNDIR_PATH "/", sizeof(RUNDIR_PATH)) == 0 &&
	       strchr(path + sizeof(RUNDIR_PATH), '/') == NULL;
}

int rundir_check(const char *path, bool live_ok, char **ret_error)
{
	struct stat st;

	if (live_ok && control_socket_alive(path))
		return 0;

	if (rundir_holds(path) && stat(RUNDIR_PATH, &st) < 0 &&
	    errno == ENOENT)
		return 0;
	return control_check_path(path, ret_error);
}

static int fail(const char *what, char **ret_error)
{
	int e = errno;

	if (asprintf(ret_error, "%s: %s%s", RUNDIR_PATH, strerror(e), what) < 0)
		*ret_error = NULL;
	return -e;
}

int rundir_prepare(gid_t gid, char **ret_error)
{
	gid_t want = gid == (gid_t)-1 ? 0 : gid;
	struct stat st;
	int fd, r = 0;

	if (mkdir(RUNDIR_PATH, 0750) < 0 && errno != EEXIST)
		return fail("", ret_error);
	fd = open(RUNDIR_PATH, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		r = fail("", ret_error);
	else if ((st.st_gid != want && fchown(fd, (uid_t)-1, want) < 0) ||
		 ((st.st_mode & 07777) != 0750 && fchmod(fd, 0750) < 0))
		r = fail("; control_group cannot reach the socket (giving the "
			 "directory to the group)", ret_error);
	if (fd >= 0)
		close(fd);
	return r;
}
