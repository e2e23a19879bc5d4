/* Faithful tree copy.  The source is walked with walk_tree() (fd-relative,
 * never following a symlink); the destination is built through a stack of
 * directory fds indexed by depth (struct fdlevels: at most WALK_MAX_FDS of
 * them open), so names of any bytes and any depth work without ever
 * forming a full path.
 *
 * Order of operations per inode, and why:
 *  - create it (mode 0600/0700 first, so nobody else can open it meanwhile);
 *  - remove ACLs it inherited from a default ACL of its new parent that the
 *    source does not have;
 *  - data (sparse-aware copy_data()) before anything that a write could undo;
 *  - chown before chmod, since chown clears setuid/setgid;
 *  - xattrs after chown, since chown clears security.capability;
 *  - times last (directories: after all their children are in).
 * A directory gets owner, mode and xattrs before its children, so a 0500
 * directory still receives them (vunify runs as root).
 *
 * Files with more than one link are remembered by source (st_dev, st_ino) in
 * a hash table holding the relative path of their first copy; later names
 * become hard links to it.  Paths rather than O_PATH fds, so a tree with
 * millions of hard-linked inodes cannot exhaust the fd table.
 *
 * Every non-directory is opened O_NOFOLLOW (symlinks, devices, fifos and
 * sockets only with O_PATH, never for reading) and checked with fstat
 * against what the walk saw; a mismatch means the tree changed under us and
 * gives -E_CHANGED. */
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
#include "ino_map.h"
#include "util.h"
#include "walk.h"
#include "xattr.h"
#include "banned.h"

struct dst_dir {
	int fd; /* level 0 only, until the walk enters the root (then in fds) */
	bool default_acl; /* children inherit ACLs from it */
};

struct copy_ctx {
	unsigned flags;
	struct dst_dir *dirs; /* indexed by depth */
	size_t n_dirs;
	struct fdlevels fds; /* the destination's directory fds, by depth */
	dev_t dst_dev; /* the destination root, to refuse copying into itself */
	ino_t dst_ino;
	struct ino_map links; /* first copy of an inode: its path (char *) */
	char *dir_path; /* directory being walked, for errors the walk meets */
	size_t dir_len, dir_cap;
	char *err_path; /* entry a callback failed on */
	bool failed;
};

static const char *link_find(const struct ino_map *m, dev_t dev, ino_t ino)
{
	const uint64_t *v = ino_map_find(m, dev, ino);

	return v ? (const char *)(uintptr_t)*v : NULL;
}

static void links_free(struct ino_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->v[i].value != INO_MAP_FREE)
			free((char *)(uintptr_t)m->v[i].value);
	ino_map_free(m);
}

static int copy_entry(struct copy_ctx *c, const struct walk_entry *e)
{
	const struct dst_dir *parent = &c->dirs[e->depth - 1];
	int parent_fd = fdlevels_top(&c->fds);
	bool multi = e->st.st_nlink > 1 && !(c->flags & COPY_TREE_NO_HARDLINKS);
	char *p;
	int r;

	if (multi) {
		const char *first = link_find(&c->links, e->st.st_dev, e->st.st_ino);
		if (first)
			return copy_hardlink(c->fds.v[0].fd, parent_fd, first, e->name);
	}
	switch (e->st.st_mode & S_IFMT) {
	case S_IFREG:
		r = copy_regular(parent_fd, parent->default_acl, e);
		break;
	case S_IFLNK:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		r = copy_special(parent_fd, parent->default_acl, e);
		break;
	default:
		r = -EOPNOTSUPP;
		break;
	}
	if (r < 0 || !multi)
		return r;
	p = strndup(e->path, e->path_len);
	if (!p)
		return -ENOMEM;
	/* the map owns the path once added */
	r = ino_map_add(&c->links, e->st.st_dev, e->st.st_ino, (uint64_t)(uintptr_t)p, NULL);
	if (r <= 0)
		free(p);
	return r < 0 ? r : 0;
}

/* Owner, mode and xattrs of a directory; times come at DIR_POST. */
static int copy_dir_meta(int dst, const struct walk_entry *e, bool inherited, bool *ret_default_acl)
{
	_cleanup_xattrs_ struct xattr_list xl = {0};
	int r;

	r = xattr_list_read(e->fd, false, XATTR_SKIP_OVERLAY, &xl);
	if (r < 0)
		return r;
	if (inherited) {
		r = strip_inherited_acls(dst, false, true, &xl);
		if (r < 0)
			return r;
	}
	if (fchown(dst, e->st.st_uid, e->st.st_gid) < 0)
		return neg_errno();
	if (fchmod(dst, e->st.st_mode & 07777) < 0)
		return neg_errno();
	r = xattr_list_apply(dst, false, &xl);
	if (r < 0)
		return r;
	*ret_default_acl = xattr_list_has(&xl, ACL_DEFAULT);
	return 0;
}

static int dir_path_set(struct copy_ctx *c, const char *path, size_t len)
{
	if (len + 1 > c->dir_cap) {
		size_t cap = MAX(len + 1, c->dir_cap * 2);
		char *s = realloc(c->dir_path, cap);
		if (!s)
			return -ENOMEM;
		c->dir_path = s;
		c->dir_cap = cap;
	}
	memcpy(c->dir_path, path, len);
	c->dir_path[len] = '\0';
	c->dir_len = len;
	return 0;
}

static void dir_path_pop(struct copy_ctx *c)
{
	char *slash = c->dir_len ? memrchr(c->dir_path, '/', c->dir_len) : NULL;

	c->dir_len = slash ? (size_t)(slash - c->dir_path) : 0;
	if (c->dir_path)
		c->dir_path[c->dir_len] = '\0';
}

static int dir_pre(struct copy_ctx *c, const struct walk_entry *e)
{
	_cleanup_close_ int fd = -1;
	bool inherited;
	int r;

	if (e->st.st_dev == c->dst_dev && e->st.st_ino == c->dst_ino)
		return -ELOOP; /* the destination lies inside the source */
	r = dir_path_set(c, e->path, e->path_len);
	if (r < 0)
		return r;
	if (e->depth >= c->n_dirs) {
		size_t n = MAX((size_t)e->depth + 1, c->n_dirs * 2);
		struct dst_dir *d = realloc(c->dirs, n * sizeof(*d));
		if (!d)
			return -ENOMEM;
		for (size_t i = c->n_dirs; i < n; i++)
			d[i] = (struct dst_dir){.fd = -1};
		c->dirs = d;
		c->n_dirs = n;
	}
	if (e->depth == 0) {
		/* The existing root may carry ACLs from its own parent. */
		inherited = true;
		fd = steal_fd(&c->dirs[0].fd);
	} else {
		const struct dst_dir *parent = &c->dirs[e->depth - 1];
		int parent_fd = fdlevels_top(&c->fds);

		inherited = parent->default_acl;
		if (mkdirat(parent_fd, e->name, 0700) < 0)
			return neg_errno();
		fd = openat(parent_fd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return neg_errno();
	}
	r = copy_dir_meta(fd, e, inherited, &c->dirs[e->depth].default_acl);
	if (r < 0)
		return r;
	return fdlevels_push(&c->fds, steal_fd(&fd));
}

static int dir_post(struct copy_ctx *c, const struct walk_entry *e)
{
	struct timespec ts[2];
	int r;

	stat_times(&e->st, ts);
	if (futimens(fdlevels_top(&c->fds), ts) < 0)
		return neg_errno();
	if (e->depth > 0) {
		r = fdlevels_drop(&c->fds);
		if (r < 0)
			return r;
	}
	dir_path_pop(c);
	return 0;
}

static int copy_cb(const struct walk_entry *e, enum walk_event ev, void *userdata)
{
	struct copy_ctx *c = userdata;
	int r;

	switch (ev) {
	case WALK_DIR_PRE:
		r = dir_pre(c, e);
		break;
	case WALK_DIR_POST:
		r = dir_post(c, e);
		break;
	default:
		r = copy_entry(c, e);
		break;
	}
	if (r < 0 && !c->failed) {
		c->failed = true;
		c->err_path = strndup(e->path, e->path_len);
	}
	return r;
}

/* Contract in copy.h.  Also: src_fd and dst_fd may be O_PATH fds (both are
 * reopened); -ELOOP if the destination lies inside the source, -E_CHANGED if an
 * entry changed between the walk's lstat and its open, -EEXIST if the
 * destination already holds a name.  *ret_path is left alone on success;
 * for errors the walk itself meets (reading a directory) it names the
 * directory being read; it may be NULL if memory ran out.  On failure the
 * partial copy is left in dst_fd: callers copy into a staging directory. */
int copy_tree(int src_fd, int dst_fd, unsigned flags, char **ret_path)
{
	struct copy_ctx c = {0};
	_cleanup_close_ int src = -1, dst = -1;
	struct stat st;
	int r;

	if (flags & ~(unsigned)COPY_TREE_NO_HARDLINKS)
		return -EINVAL;
	c.flags = flags;
	/* Own fds that allow fchown/fxattr even if the caller passed O_PATH. */
	src = openat(src_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src < 0)
		return neg_errno();
	dst = openat(dst_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dst < 0)
		return neg_errno();
	if (fstat(dst, &st) < 0)
		return neg_errno();
	c.dst_dev = st.st_dev;
	c.dst_ino = st.st_ino;
	c.dirs = malloc(sizeof(*c.dirs));
	if (!c.dirs)
		return -ENOMEM;
	c.n_dirs = 1;
	c.dirs[0] = (struct dst_dir){.fd = steal_fd(&dst)};
	c.fds.own0 = true;

	r = walk_tree(src, copy_cb, &c);

	if (r < 0 && ret_path)
		*ret_path = c.failed ? steal_pointer(&c.err_path)
		                     : strndup(c.dir_path ? c.dir_path : "", c.dir_len);
	if (c.dirs[0].fd >= 0)
		close(c.dirs[0].fd);
	fdlevels_release(&c.fds);
	free(c.dirs);
	free(c.dir_path);
	free(c.err_path);
	links_free(&c.links);
	return r;
}
