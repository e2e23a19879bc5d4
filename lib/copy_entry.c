/* Faithful copy of one inode (see copy_tree.c for the order of
 * operations and why). */
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

#define READLINK_MAX (16u << 20)

bool xattr_list_has(const struct xattr_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].name, name))
			return true;
	return false;
}

/* A new inode below a directory with a default ACL got ACLs of its own;
 * drop those the source does not have. */
int strip_inherited_acls(int fd, bool o_path, bool is_dir, const struct xattr_list *src)
{
	static const char *const names[] = {ACL_ACCESS, ACL_DEFAULT};

	for (size_t i = 0; i < (is_dir ? 2u : 1u); i++) {
		int r;

		if (xattr_list_has(src, names[i]))
			continue;
		r = xattr_remove(fd, o_path, names[i]);
		if (r < 0 && r != -ENODATA && r != -EOPNOTSUPP && r != -ENOTSUP)
			return r;
	}
	return 0;
}

static bool same_inode(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       (a->st_mode & S_IFMT) == (b->st_mode & S_IFMT);
}

/* Open a non-directory of the source with FLAGS (O_NOFOLLOW|O_CLOEXEC
 * added) and check it is still the inode the walk saw.  Returns an fd or
 * -errno (-E_CHANGED if it changed). */
static int open_source(const struct walk_entry *e, int flags, struct stat *ret_st)
{
	_cleanup_close_ int fd = -1;

	if (flags & O_PATH) {
		fd = openat(e->parent_fd, e->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return neg_errno();
		if (fstat(fd, ret_st) < 0)
			return neg_errno();
	} else {
		/* for reading: never opens what is no longer a regular file
		 * (a device node swapped in since the walk's stat) */
		fd = open_regular_at(e->parent_fd, e->name, flags, ret_st);
		if (fd == -ELOOP)
			return -E_CHANGED; /* became a symlink */
		if (fd < 0)
			return fd;
	}
	if (!same_inode(ret_st, &e->st))
		return -E_CHANGED;
	return steal_fd(&fd);
}

int copy_regular(int dst_dir, bool default_acl, const struct walk_entry *e)
{
	_cleanup_close_ int src = -1, dst = -1;
	_cleanup_xattrs_ struct xattr_list xl = {0};
	struct timespec ts[2];
	struct stat st;
	int r;

	src = open_source(e, O_RDONLY | O_NONBLOCK | O_NOATIME, &st);
	if (src < 0)
		return src;
	r = xattr_list_read(src, false, XATTR_SKIP_OVERLAY, &xl);
	if (r < 0)
		return r;
	dst = openat(dst_dir, e->name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dst < 0)
		return neg_errno();
	if (default_acl) {
		r = strip_inherited_acls(dst, false, false, &xl);
		if (r < 0)
			return r;
	}
	r = copy_data(src, dst, (uint64_t)st.st_size);
	if (r < 0)
		return r;
	if (fchown(dst, st.st_uid, st.st_gid) < 0)
		return neg_errno();
	if (fchmod(dst, st.st_mode & 07777) < 0)
		return neg_errno();
	r = xattr_list_apply(dst, false, &xl);
	if (r < 0)
		return r;
	stat_times(&st, ts);
	if (futimens(dst, ts) < 0)
		return neg_errno();
	return 0;
}

/* readlinkat of an O_PATH fd with "" reads the link itself. */
static int read_link(int fd, size_t hint, char **ret)
{
	size_t size = hint + 1 > 256 ? hint + 1 : 256;

	for (;;) {
		_cleanup_free_ char *buf = malloc(size);
		ssize_t n;

		if (!buf)
			return -ENOMEM;
		n = readlinkat(fd, "", buf, size);
		if (n < 0)
			return neg_errno();
		if ((size_t)n < size) {
			buf[n] = '\0';
			*ret = steal_pointer(&buf);
			return 0;
		}
		if (size >= READLINK_MAX)
			return -ENAMETOOLONG;
		size *= 2;
	}
}

/* Symlinks, devices, fifos, sockets: never opened for reading. */
/* The one rule for a tree becoming an upper layer, shared by copy_tree and
 * tree_prepare_move: contract in copy.h. */
bool upper_refuses(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && major(st->st_rdev) == 0 && minor(st->st_rdev) == 0;
}

int copy_special(int dst_dir, bool default_acl, const struct walk_entry *e)
{
	_cleanup_close_ int src = -1, dst = -1;
	_cleanup_xattrs_ struct xattr_list xl = {0};
	_cleanup_free_ char *target = NULL;
	struct timespec ts[2];
	struct stat st;
	bool is_link = S_ISLNK(e->st.st_mode);
	int r;

	if (upper_refuses(&e->st))
		return -EINVAL; /* an overlayfs whiteout */
	src = open_source(e, O_PATH, &st);
	if (src < 0)
		return src;
	if (upper_refuses(&st))
		return -EINVAL;
	r = xattr_list_read(src, true, XATTR_SKIP_OVERLAY, &xl);
	if (r < 0)
		return r;
	if (is_link) {
		r = read_link(src, st.st_size > 0 ? (size_t)st.st_size : 0, &target);
		if (r < 0)
			return r;
		if (symlinkat(target, dst_dir, e->name) < 0)
			return neg_errno();
	} else {
		if (mknodat(dst_dir, e->name, (st.st_mode & S_IFMT) | 0600, st.st_rdev) < 0)
			return neg_errno();
	}
	dst = openat(dst_dir, e->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (dst < 0)
		return neg_errno();
	if (default_acl && !is_link) {
		r = strip_inherited_acls(dst, true, false, &xl);
		if (r < 0)
			return r;
	}
	if (fchownat(dst_dir, e->name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	/* Not a symlink (those have no mode of their own): we made it above. */
	if (!is_link && fchmodat(dst_dir, e->name, st.st_mode & 07777, 0) < 0)
		return neg_errno();
	r = xattr_list_apply(dst, true, &xl);
	if (r < 0)
		return r;
	stat_times(&st, ts);
	if (utimensat(dst_dir, e->name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	return 0;
}

/* Second and later names of a hard-linked inode. */
int copy_hardlink(int dst_root, int dst_dir, const char *first, const char *name)
{
	_cleanup_close_ int dfd = -1;
	const char *first_name;

	dfd = open_parent_beneath(dst_root, first, false, &first_name);
	if (dfd < 0)
		return dfd;
	if (linkat(dfd, first_name, dst_dir, name, 0) < 0)
		return neg_errno();
	return 0;
}
