/* Copying a lower layer read-only: the start of online unify's prepared
 * lower.  Stubs are copied as new stubs with the same metadata and xattrs
 * (redirect), link-layout entries as hard links to the same objects. */
#define _GNU_SOURCE
#include "lower_copy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dircache.h"
#include "layout.h"
#include "lowerlist.h"
#include "parallel.h"
#include "remove_tree.h"
#include "unify.h"
#include "util.h"
#include "walk.h"
#include "xattr.h"
#include "banned.h"

/* ---- copying a lower layer (read only) ---- */

struct linked {
	ino_t ino;
	char *path; /* where its first name went in the copy */
};

struct lower_copy {
	bool by_link; /* link layout: entries are links of objects */
	struct fdlevels dst;
	struct linked *links; /* redirect: hard-linked stubs already copied */
	size_t n_links, cap_links;
	int dst_root;
};

/* Owner, mode, xattrs (every one: a stub's trusted.overlay.* included) and
 * times of src (an O_PATH fd when O_PATH) onto dst (an open fd). */
static int copy_meta(int src, bool o_path, const struct stat *st, int dst)
{
	struct xattr_list xl = {0};
	struct timespec ts[2] = {st->st_atim, st->st_mtim};
	int r;

	if (fchown(dst, st->st_uid, st->st_gid) < 0 || fchmod(dst, st->st_mode & 07777) < 0)
		return neg_errno();
	r = xattr_list_read(src, o_path, 0, &xl);
	if (r == 0)
		r = xattr_list_apply(dst, false, &xl);
	xattr_list_free(&xl);
	if (r == 0 && futimens(dst, ts) < 0)
		r = neg_errno();
	return r;
}

/* A copy of the non-directory NAME of src_dir (stat ST) as NAME in dst_dir:
 * a hard link of the same inode (BY_LINK), else a new inode of the same
 * size (sparse: a stub's data comes from its object), metadata and xattrs. */
int lower_copy_entry(int src_dir, const char *name, const struct stat *st, int dst_dir, bool by_link)
{
	_cleanup_close_ int sfd = -1, dfd = -1;
	struct stat st2;

	if (by_link || !S_ISREG(st->st_mode)) {
		if (S_ISREG(st->st_mode))
			return linkat(src_dir, name, dst_dir, name, 0) < 0 ? neg_errno() : 0;
		/* a lower layer holds regular files and directories; anything
		 * else is copied as what it is */
		if (S_ISLNK(st->st_mode)) {
			char target[4097];
			ssize_t len = readlink_at(src_dir, name, target, sizeof(target));
			struct timespec ts[2] = {st->st_atim, st->st_mtim};
			if (len < 0)
				return (int)len;
			struct xattr_list xl = {0};
			int r;
			if (symlinkat(target, dst_dir, name) < 0 ||
			    fchownat(dst_dir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
				return neg_errno();
			/* unify moves the guest's symlinks into HOME/meta with
			 * their xattrs (prune.h) */
			sfd = openat(src_dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			dfd = openat(dst_dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			if (sfd < 0 || dfd < 0)
				return neg_errno();
			r = xattr_list_read(sfd, true, 0, &xl);
			if (r == 0)
				r = xattr_list_apply(dfd, true, &xl);
			xattr_list_free(&xl);
			if (r == 0 && utimensat(dst_dir, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
				r = neg_errno();
			return r;
		}
		if (mknodat(dst_dir, name, st->st_mode, st->st_rdev) < 0)
			return neg_errno();
		sfd = openat(src_dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		dfd = openat(dst_dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0 || dfd < 0)
			return neg_errno();
		{
			struct xattr_list xl = {0};
			struct timespec ts[2] = {st->st_atim, st->st_mtim};
			int r = xattr_list_read(sfd, true, 0, &xl);
			if (r == 0)
				r = xattr_list_apply(dfd, true, &xl);
			xattr_list_free(&xl);
			if (r == 0 &&
			    (fchownat(dst_dir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
			     fchmodat(dst_dir, name, st->st_mode & 07777, 0) < 0 ||
			     utimensat(dst_dir, name, ts, AT_SYMLINK_NOFOLLOW) < 0))
				r = neg_errno();
			return r;
		}
	}
	sfd = openat(src_dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return neg_errno();
	if (fstat(sfd, &st2) < 0)
		return neg_errno();
	if (st2.st_ino != st->st_ino || !S_ISREG(st2.st_mode))
		return -E_CHANGED; /* replaced since the walk saw it */
	dfd = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dfd < 0)
		return neg_errno();
	if (ftruncate(dfd, st2.st_size) < 0)
		return neg_errno();
	return copy_meta(sfd, true, &st2, dfd);
}

static int lower_copy_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct lower_copy *c = ud;
	int r;

	if (ev == WALK_DIR_PRE) {
		int fd;
		if (e->depth == 0)
			return 0; /* level 0 is the copy's root, pushed already */
		if (mkdirat(fdlevels_top(&c->dst), e->name, 0700) < 0)
			return neg_errno();
		fd = openat(fdlevels_top(&c->dst), e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return neg_errno();
		return fdlevels_push(&c->dst, fd);
	}
	if (ev == WALK_DIR_POST) {
		/* a directory's metadata last: its times after its entries */
		r = copy_meta(e->fd, false, &e->st, fdlevels_top(&c->dst));
		if (r < 0 || e->depth == 0)
			return r;
		return fdlevels_drop(&c->dst);
	}
	if (!c->by_link && S_ISREG(e->st.st_mode) && e->st.st_nlink > 1) {
		/* hard-linked stubs (older pools) stay one inode */
		for (size_t i = 0; i < c->n_links; i++) {
			const char *name;
			_cleanup_close_ int dfd = -1;
			if (c->links[i].ino != e->st.st_ino)
				continue;
			dfd = open_parent_beneath(c->dst_root, c->links[i].path, false, &name);
			if (dfd < 0)
				return dfd;
			return linkat(dfd, name, fdlevels_top(&c->dst), e->name, 0) < 0 ? neg_errno() : 0;
		}
		if (c->n_links == c->cap_links) {
			size_t nc = c->cap_links ? 2 * c->cap_links : 64;
			struct linked *nv = realloc(c->links, nc * sizeof(*nv));
			if (!nv)
				return -ENOMEM;
			c->links = nv;
			c->cap_links = nc;
		}
		c->links[c->n_links].ino = e->st.st_ino;
		c->links[c->n_links].path = strdup(e->path);
		if (!c->links[c->n_links].path)
			return -ENOMEM;
		c->n_links++;
	}
	return lower_copy_entry(e->parent_fd, e->name, &e->st, fdlevels_top(&c->dst), c->by_link);
}

/* Copy the directory tree src_fd into a new directory NAME of dst_dir.
 * Returns 0 or -errno (a partial copy is left for the caller to remove). */
int lower_copy_tree(int src_fd, int dst_dir, const char *name, bool by_link)
{
	struct lower_copy c = {.by_link = by_link};
	int fd, r;

	if (mkdirat(dst_dir, name, 0700) < 0)
		return neg_errno();
	fd = openat(dst_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	c.dst.own0 = true;
	c.dst_root = fd;
	r = fdlevels_push(&c.dst, fd);
	if (r == 0)
		r = walk_tree(src_fd, lower_copy_cb, &c);
	fdlevels_release(&c.dst);
	for (size_t i = 0; i < c.n_links; i++)
		free(c.links[i].path);
	free(c.links);
	return r;
}
