/* The faithful copy's rules applied in place: a tree moved into a home
 * (add --from --move) and an upper file given an inode of its own (fsck
 * --repair). */
#define _GNU_SOURCE
#include "copy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "copy_internal.h"
#include "util.h"
#include "walk.h"
#include "xattr.h"
#include "banned.h"

/* ---- add --from --move: the same rule, applied in place ---- */

struct prep_ctx {
	bool strip; /* pass 2: remove trusted.overlay.*; pass 1: only check */
	char *err_path;
};

static int strip_overlay_xattrs(const struct walk_entry *e)
{
	_cleanup_xattrs_ struct xattr_list all = {0};
	_cleanup_close_ int fd = -1;
	bool o_path = !S_ISDIR(e->st.st_mode) && !S_ISREG(e->st.st_mode);
	struct stat st;
	int r;

	/* regular files and directories opened for real (fremovexattr on a
	 * regular fd), everything else by O_PATH (never opened for reading) */
	if (e->fd >= 0)
		fd = openat(e->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	else
		fd = openat(e->parent_fd, e->name,
		            (o_path ? O_PATH : O_RDONLY | O_NONBLOCK) | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (fstat(fd, &st) < 0)
		return neg_errno();
	if (st.st_dev != e->st.st_dev || st.st_ino != e->st.st_ino)
		return -E_CHANGED;
	r = xattr_list_read(fd, o_path, 0, &all);
	for (size_t i = 0; r == 0 && i < all.n; i++)
		if (!strncmp(all.v[i].name, "trusted.overlay.", 16))
			r = xattr_remove(fd, o_path, all.v[i].name);
	return r;
}

static int prep_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct prep_ctx *c = ud;
	int r = 0;

	if (ev == WALK_DIR_POST)
		return 0;
	if (!c->strip) {
		if (upper_refuses(&e->st))
			r = -EINVAL;
	} else {
		r = strip_overlay_xattrs(e);
	}
	if (r < 0 && !c->err_path)
		c->err_path = strndup(e->path, e->path_len);
	return r;
}

/* Contract in copy.h. */
int tree_prepare_move(int src_fd, char **ret_path)
{
	struct prep_ctx c = {0};
	_cleanup_close_ int src = openat(src_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (src < 0)
		return neg_errno();
	/* pass 1 changes nothing, so a refused tree is left as it was */
	r = walk_tree(src, prep_cb, &c);
	if (r == 0) {
		c.strip = true;
		r = walk_tree(src, prep_cb, &c);
	}
	if (r < 0 && ret_path)
		*ret_path = steal_pointer(&c.err_path);
	free(c.err_path);
	return r;
}

/* ---- fsck --repair: give an upper file an inode of its own ---- */

/* Contract in copy.h. */
int copy_file_unshare(int dir_fd, const char *name, int staging_fd)
{
	_cleanup_close_ int src = -1, dst = -1;
	_cleanup_xattrs_ struct xattr_list xl = {0};
	struct timespec ts[2];
	struct stat st;
	char tmp[64];
	int r;

	src = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (src < 0)
		return neg_errno();
	if (fstat(src, &st) < 0)
		return neg_errno();
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	/* every xattr, trusted.overlay.* included: the upper file keeps its
	 * meaning for overlayfs (a copy-up's origin) */
	r = xattr_list_read(src, false, 0, &xl);
	if (r < 0)
		return r;
	snprintf(tmp, sizeof(tmp), "u.%ld", (long)getpid());
	(void)unlinkat(staging_fd, tmp, 0);
	dst = openat(staging_fd, tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dst < 0)
		return neg_errno();
	r = copy_data(src, dst, (uint64_t)st.st_size);
	if (r == 0 && (fchown(dst, st.st_uid, st.st_gid) < 0 || fchmod(dst, st.st_mode & 07777) < 0))
		r = neg_errno();
	if (r == 0)
		r = xattr_list_apply(dst, false, &xl);
	stat_times(&st, ts);
	if (r == 0 && (futimens(dst, ts) < 0 || fsync(dst) < 0))
		r = neg_errno();
	/* the copy is complete and durable: one rename switches the name */
	if (r == 0 && renameat(staging_fd, tmp, dir_fd, name) < 0)
		r = neg_errno();
	if (r < 0)
		(void)unlinkat(staging_fd, tmp, 0);
	return r;
}
