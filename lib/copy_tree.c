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

#include "util.h"
#include "walk.h"
#include "xattr.h"
#include "banned.h"

#define ACL_ACCESS "system.posix_acl_access"
#define ACL_DEFAULT "system.posix_acl_default"
#define READLINK_MAX (16u << 20)

struct link_ent {
	dev_t dev;
	ino_t ino;
	char *path; /* relative path of the first copy; NULL = free slot */
};

/* Open addressing, linear probing, power-of-two size, load <= 1/2. */
struct link_map {
	struct link_ent *v;
	size_t cap, n;
};

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
	struct link_map links;
	char *dir_path; /* directory being walked, for errors the walk meets */
	size_t dir_len, dir_cap;
	char *err_path; /* entry a callback failed on */
	bool failed;
};

static uint64_t mix64(uint64_t x)
{
	/* splitmix64 finaliser */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static size_t link_slot(const struct link_map *m, dev_t dev, ino_t ino)
{
	size_t i = (size_t)mix64((uint64_t)ino ^ mix64((uint64_t)dev)) & (m->cap - 1);

	while (m->v[i].path && !(m->v[i].dev == dev && m->v[i].ino == ino))
		i = (i + 1) & (m->cap - 1);
	return i;
}

static const char *link_map_find(const struct link_map *m, dev_t dev, ino_t ino)
{
	if (m->cap == 0)
		return NULL;
	return m->v[link_slot(m, dev, ino)].path;
}

/* Takes ownership of path on success. */
static int link_map_add(struct link_map *m, dev_t dev, ino_t ino, char *path)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap) {
		struct link_map nm = {.cap = m->cap ? m->cap * 2 : 64, .n = m->n};

		if (nm.cap < m->cap)
			return -ENOMEM;
		nm.v = calloc(nm.cap, sizeof(*nm.v));
		if (!nm.v)
			return -ENOMEM;
		for (size_t k = 0; k < m->cap; k++)
			if (m->v[k].path)
				nm.v[link_slot(&nm, m->v[k].dev, m->v[k].ino)] = m->v[k];
		free(m->v);
		*m = nm;
	}
	i = link_slot(m, dev, ino);
	if (m->v[i].path)
		return -EEXIST;
	m->v[i] = (struct link_ent){.dev = dev, .ino = ino, .path = path};
	m->n++;
	return 0;
}

static void link_map_free(struct link_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->v[i].path);
	free(m->v);
	m->v = NULL;
	m->cap = m->n = 0;
}

static void xattr_list_freep(struct xattr_list *l)
{
	xattr_list_free(l);
}
#define _cleanup_xattrs_ __attribute__((cleanup(xattr_list_freep)))

static bool xattr_list_has(const struct xattr_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].name, name))
			return true;
	return false;
}

/* A new inode below a directory with a default ACL got ACLs of its own;
 * drop those the source does not have. */
static int strip_inherited_acls(int fd, bool o_path, bool is_dir, const struct xattr_list *src)
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

static void stat_times(const struct stat *st, struct timespec ts[2])
{
	ts[0] = st->st_atim;
	ts[1] = st->st_mtim;
}

static int copy_regular(int dst_dir, bool default_acl, const struct walk_entry *e)
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

static int copy_special(int dst_dir, bool default_acl, const struct walk_entry *e)
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
static int copy_hardlink(int dst_root, int dst_dir, const char *first, const char *name)
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

static int copy_entry(struct copy_ctx *c, const struct walk_entry *e)
{
	const struct dst_dir *parent = &c->dirs[e->depth - 1];
	int parent_fd = fdlevels_top(&c->fds);
	bool multi = e->st.st_nlink > 1 && !(c->flags & COPY_TREE_NO_HARDLINKS);
	char *p;
	int r;

	if (multi) {
		const char *first = link_map_find(&c->links, e->st.st_dev, e->st.st_ino);
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
	r = link_map_add(&c->links, e->st.st_dev, e->st.st_ino, p);
	if (r < 0)
		free(p);
	return r;
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
	link_map_free(&c.links);
	return r;
}

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
