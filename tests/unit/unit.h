/* Helpers the unit tests share beyond the scratch directory (tmpdir.h):
 * the root gate, directories made with an owner and mode, counting a
 * directory's entries, and classifying a path the way the walk does.
 * Include after <cmocka.h>; every helper fails the running test on an
 * unexpected error. */
#ifndef VUNIFY_TEST_UNIT_H
#define VUNIFY_TEST_UNIT_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"

/* May the root-only part of a test go on?  True as root.  Otherwise
 * prints "TEST: skipped, needs root (WHY)" and returns false, so that the
 * caller skips; under CI=true, where a skip is a failure (as in
 * tests/integration/run.sh), the test fails instead. */
static inline bool require_root(const char *why)
{
	const char *ci = getenv("CI");

	if (geteuid() == 0)
		return true;
	if (ci && !strcmp(ci, "true"))
		fail_msg("%s needs root (%s); CI=true, so not skipping", program_invocation_short_name, why);
	print_message("%s: skipped, needs root (%s)\n", program_invocation_short_name, why);
	return false;
}

/* require_root, and skip the running test when it says no. */
static inline void need_root(const char *why)
{
	if (!require_root(why))
		skip();
}

/* Make the directory NAME under DIR with MODE and open it.  Returns its fd. */
static inline int mkdir_open(int dir, const char *name, mode_t mode)
{
	int fd;

	assert_int_equal(mkdirat(dir, name, mode), 0);
	fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* Make the directory PATH under DIR owned by UID:GID with MODE exactly
 * (no umask; set bits such as 01777 and 02711 included). */
static inline void mkdir_as(int dir, const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	int fd = mkdir_open(dir, path, 0700);

	assert_int_equal(fchown(fd, uid, gid), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* Number of entries in directory DIR (without . and ..). */
static inline size_t count_entries(int dir)
{
	DIR *d = fdopendir(openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

/* Class of the absolute guest PATH under policy P as the walk finds it:
 * every ancestor classified first, from "/", each inheriting its
 * parent's class. */
static inline enum policy_class classify_walk(const struct policy *p, const char *path)
{
	enum policy_class c = POLICY_OTHER;
	char buf[4096];
	size_t n = strlen(path);

	assert_true(path[0] == '/' && n < sizeof(buf));
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		c = policy_classify(p, buf, c);
		buf[i] = path[i];
	}
	return c;
}

#endif
