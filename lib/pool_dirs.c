/* Owner and modes of the pool's directories.
 *
 * Everything under the pool is root's alone: the pool directory, guests/,
 * tmp/, roots/, objects/ and its fan-out directories are root:root, mode
 * 0700.  Objects hold guests' files (a guest's 0600 file under /etc; in
 * the link layout, the guest's own setuid binaries and file capabilities,
 * kept because the object inode *is* the file the guest sees), so no other
 * host user may reach them.  Overlayfs reads the layers with the
 * mounter's credentials (root), so guests are not affected.  Enforced by
 * init (also on an existing directory), on every exclusive open (every
 * writer: add, unify, gc, remove, fsck), and checked by fsck. */
#define _GNU_SOURCE
#include "pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"
#include "pool_internal.h"
#include "overlay.h"
#include "remove_tree.h"
#include "util.h"
#include "banned.h"

struct dir_check {
	bool repair;
	pool_problem_fn fn;
	void *ud;
	unsigned problems;
};

static void dir_problem(struct dir_check *c, const char *what, const char *problem, bool fixed)
{
	c->problems++;
	if (c->fn)
		c->fn(what, problem, fixed, c->ud);
}

/* Check (and with repair fix) one directory's owner and mode; with CREATE
 * a missing one is created.  Returns 0 or -errno (errors other than what
 * it reports). */
static int check_dir_at(struct dir_check *c, int parent, const char *name, const char *what, bool create)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	char buf[96];

	if (name)
		fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	else
		fd = openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && name) {
		if (!create || !c->repair) {
			dir_problem(c, what, "missing", false);
			return 0;
		}
		if (mkdirat(parent, name, POOL_DIR_MODE) < 0 && errno != EEXIST)
			return neg_errno();
		dir_problem(c, what, "missing", true);
		fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		if (errno == ENOTDIR || errno == ELOOP) {
			dir_problem(c, what, "not a directory", false);
			return 0;
		}
		return neg_errno();
	}
	if (fstat(fd, &st) < 0)
		return neg_errno();
	if (st.st_uid == 0 && st.st_gid == 0 && (st.st_mode & 07777) == POOL_DIR_MODE)
		return 0;
	snprintf(buf, sizeof(buf), "owner %u:%u mode %04o, must be 0:0 mode %04o", (unsigned)st.st_uid,
	         (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777), POOL_DIR_MODE);
	if (c->repair) {
		/* mode first: while the owner is still wrong, nobody but root
		 * may enter any more */
		if (fchmod(fd, POOL_DIR_MODE) < 0 || fchown(fd, 0, 0) < 0 || fchmod(fd, POOL_DIR_MODE) < 0)
			return neg_errno();
	}
	dir_problem(c, what, buf, c->repair);
	return 0;
}

static int check_dirs_at(int pool_fd, struct dir_check *c)
{
	static const char *const subdirs[] = {"guests", "tmp", "roots", "objects"};
	_cleanup_close_ int ofd = -1;
	int r = check_dir_at(c, pool_fd, NULL, ".", false);

	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(subdirs); i++)
		r = check_dir_at(c, pool_fd, subdirs[i], subdirs[i], true);
	if (r < 0)
		return r;
	ofd = openat(pool_fd, "objects", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ofd < 0)
		return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? 0 : neg_errno();
	for (unsigned i = 0; r == 0 && i < 256; i++) {
		char fan[3], what[16];
		snprintf(fan, sizeof(fan), "%02x", i);
		snprintf(what, sizeof(what), "objects/%s", fan);
		r = check_dir_at(c, ofd, fan, what, true);
	}
	return r;
}

/* Contract in pool.h. */
int pool_check_dirs(struct pool *p, bool repair, pool_problem_fn fn, void *ud)
{
	return pool_check_dirs_at(p->fd, repair, fn, ud);
}

int pool_check_dirs_at(int pool_fd, bool repair, pool_problem_fn fn, void *ud)
{
	struct dir_check c = {.repair = repair, .fn = fn, .ud = ud};
	int r = check_dirs_at(pool_fd, &c);

	return r < 0 ? r : (int)c.problems;
}
