/* Materializing a guest: the inverse of unify, used by remove.  Files come
 * back into the upper under a staging name in HOME/staging (same
 * filesystem) and are renamed into place without replacing anything, so
 * at every instant a path shows either its lower entry or an equal upper
 * copy.  Only when every visible lower entry has its upper copy, and that
 * is durable, is the lower layer deleted; only then do whiteouts and
 * opaque marks, which hid lower entries, go. */
#define _GNU_SOURCE
#include "materialize.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "copy.h"
#include "layout.h"
#include "meta_image.h"
#include "object.h"
#include "overlay.h"
#include "remove_tree.h"
#include "util.h"
#include "walk.h"
#include "xattr.h"
#include "banned.h"

struct link_seen {
	ino_t ino;
	char *path; /* upper path of the first copy */
};

struct materialize {
	struct pool *p;
	const struct layout_ops *ops;
	int upper_fd, staging_fd;
	struct fdlevels ufd; /* upper dir fds by depth (level 0: upper_fd) */
	struct link_seen *links;
	size_t n_links, links_cap;
	uint64_t files;
	bool *made; /* by depth: that upper directory was made here */
	size_t made_cap;
};

/* An upper directory for the lower directory E, which has none (unify
 * pruned it: prune.h): made in staging with E's owner, xattrs and mode,
 * then renamed into place, so the view shows E's attributes at every
 * instant.  Returns 0 or -errno. */
static int materialize_dir(struct materialize *m, const struct walk_entry *e, int udir)
{
	static unsigned long counter;
	_cleanup_close_ int fd = -1;
	struct xattr_list xl = {0};
	char s[64];
	int r;

	if (e->depth >= m->made_cap) {
		size_t nc = MAX(e->depth + 1, m->made_cap * 2);
		bool *n = realloc(m->made, nc * sizeof(*n));
		if (!n)
			return -ENOMEM;
		m->made = n;
		m->made_cap = nc;
	}
	r = xattr_list_read(e->fd, false, XATTR_SKIP_OVERLAY, &xl);
	if (r < 0)
		return r;
	snprintf(s, sizeof(s), "d.%ld.%lu", (long)getpid(), counter++);
	if (mkdirat(m->staging_fd, s, 0700) < 0) {
		r = neg_errno();
		goto out;
	}
	fd = openat(m->staging_fd, s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		r = neg_errno();
	if (r == 0 && fchown(fd, e->st.st_uid, e->st.st_gid) < 0)
		r = neg_errno();
	if (r == 0)
		r = xattr_list_apply(fd, false, &xl);
	if (r == 0 && fchmod(fd, e->st.st_mode & 07777) < 0)
		r = neg_errno();
	if (r == 0 && renameat2(m->staging_fd, s, udir, e->name, RENAME_NOREPLACE) < 0)
		r = neg_errno();
	if (r < 0)
		unlinkat(m->staging_fd, s, AT_REMOVEDIR);
	else
		m->made[e->depth] = true;
out:
	xattr_list_free(&xl);
	return r;
}

/* Is there anything at NAME in the upper dir (whiteouts included)? */
static int upper_has(int dfd, const char *name, struct stat *ret_st)
{
	if (fstatat(dfd, name, ret_st, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	return errno == ENOENT ? 0 : neg_errno();
}

static int materialize_file(struct materialize *m, const struct walk_entry *e, int udir)
{
	static unsigned long counter;
	_cleanup_close_ int src = -1, meta = -1, dst = -1;
	struct xattr_list xl = {0};
	struct timespec ts[2] = {e->st.st_atim, e->st.st_mtim};
	char s[64];
	int r;

	/* redirect layout: a group of hard-linked stubs is one file */
	if (m->ops->lower_links_are_guest_links && e->st.st_nlink > 1) {
		for (size_t i = 0; i < m->n_links; i++) {
			if (m->links[i].ino != e->st.st_ino)
				continue;
			const char *fname;
			_cleanup_close_ int fdir =
			        open_parent_beneath(m->upper_fd, m->links[i].path, false, &fname);
			if (fdir < 0)
				return fdir;
			if (linkat(fdir, fname, udir, e->name, 0) < 0 && errno != EEXIST)
				return neg_errno();
			m->files++;
			return 0;
		}
	}
	src = m->ops->open_data(m->p, e->parent_fd, e->name, &e->st);
	if (src < 0)
		return src;
	meta = openat(e->parent_fd, e->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (meta < 0)
		return neg_errno();
	r = xattr_list_read(meta, false, XATTR_SKIP_OVERLAY, &xl);
	if (r < 0)
		return r;
	snprintf(s, sizeof(s), "m.%ld.%lu", (long)getpid(), counter++);
	dst = openat(m->staging_fd, s, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dst < 0) {
		r = neg_errno();
		goto out;
	}
	r = copy_data(src, dst, (uint64_t)e->st.st_size);
	if (r == 0 && fchown(dst, e->st.st_uid, e->st.st_gid) < 0)
		r = neg_errno();
	if (r == 0 && fchmod(dst, e->st.st_mode & 07777) < 0)
		r = neg_errno();
	if (r == 0)
		r = xattr_list_apply(dst, false, &xl);
	if (r == 0 && futimens(dst, ts) < 0)
		r = neg_errno();
	if (r == 0 && renameat2(m->staging_fd, s, udir, e->name, RENAME_NOREPLACE) < 0)
		r = neg_errno();
	if (r < 0) {
		unlinkat(m->staging_fd, s, 0);
		goto out;
	}
	m->files++;
	if (m->ops->lower_links_are_guest_links && e->st.st_nlink > 1) {
		if (m->n_links == m->links_cap) {
			size_t nc = m->links_cap ? m->links_cap * 2 : 64;
			struct link_seen *nl = realloc(m->links, nc * sizeof(*nl));
			if (!nl) {
				r = -ENOMEM;
				goto out;
			}
			m->links = nl;
			m->links_cap = nc;
		}
		m->links[m->n_links].ino = e->st.st_ino;
		m->links[m->n_links].path = strdup(e->path);
		if (!m->links[m->n_links].path) {
			r = -ENOMEM;
			goto out;
		}
		m->n_links++;
	}
out:
	xattr_list_free(&xl);
	return r;
}

/* A lower symlink (unify moved it there: prune.h) as an upper one: made
 * in staging with its owner, xattrs and mtime, renamed into place.
 * Returns 0 or -errno. */
static int materialize_link(struct materialize *m, const struct walk_entry *e, int udir)
{
	static unsigned long counter;
	struct timespec ts[2] = {e->st.st_atim, e->st.st_mtim};
	struct xattr_list xl = {0};
	_cleanup_close_ int src = -1, dst = -1;
	char s[64], target[PATH_MAX];
	ssize_t n = readlink_at(e->parent_fd, e->name, target, sizeof(target));
	int r;

	if (n < 0)
		return (int)n;
	src = openat(e->parent_fd, e->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0)
		return neg_errno();
	r = xattr_list_read(src, true, XATTR_SKIP_OVERLAY, &xl);
	if (r < 0)
		return r;
	snprintf(s, sizeof(s), "l.%ld.%lu", (long)getpid(), counter++);
	if (symlinkat(target, m->staging_fd, s) < 0) {
		r = neg_errno();
		goto out;
	}
	if (fchownat(m->staging_fd, s, e->st.st_uid, e->st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		r = neg_errno();
	if (r == 0 && xl.n) {
		dst = openat(m->staging_fd, s, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		r = dst < 0 ? neg_errno() : xattr_list_apply(dst, true, &xl);
	}
	if (r == 0 && utimensat(m->staging_fd, s, ts, AT_SYMLINK_NOFOLLOW) < 0)
		r = neg_errno();
	if (r == 0 && renameat2(m->staging_fd, s, udir, e->name, RENAME_NOREPLACE) < 0)
		r = neg_errno();
	if (r < 0)
		unlinkat(m->staging_fd, s, 0);
out:
	xattr_list_free(&xl);
	return r;
}

static int materialize_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct materialize *m = ud;
	int udir, r;
	struct stat st;

	if (e->depth == 0) {
		if (ev == WALK_DIR_PRE)
			return fdlevels_push(&m->ufd, m->upper_fd); /* not owned */
		return 0;
	}
	if (ev == WALK_DIR_POST) {
		/* a directory made here gets its lower one's times last (its
		 * entries set them) */
		struct timespec ts[2] = {e->st.st_atim, e->st.st_mtim};
		if (e->depth < m->made_cap && m->made[e->depth] && futimens(fdlevels_top(&m->ufd), ts) < 0)
			return neg_errno();
		return fdlevels_drop(&m->ufd);
	}
	udir = fdlevels_top(&m->ufd);
	r = upper_has(udir, e->name, &st);
	if (r < 0)
		return r;
	if (ev == WALK_DIR_PRE) {
		char v[4];
		int fd;
		if (r == 1 && !S_ISDIR(st.st_mode))
			return WALK_SKIP; /* a whiteout or a file hides it */
		if (e->depth < m->made_cap)
			m->made[e->depth] = false;
		if (r == 0 && (r = materialize_dir(m, e, udir)) < 0)
			return r;
		fd = openat(udir, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return neg_errno();
		if (fgetxattr(fd, OVL_XATTR_OPAQUE, v, sizeof(v)) == 1 && v[0] == 'y') {
			close(fd);
			return WALK_SKIP;
		}
		return fdlevels_push(&m->ufd, fd);
	}
	if (r == 0 && S_ISLNK(e->st.st_mode))
		return materialize_link(m, e, udir);
	if (r == 1 || !S_ISREG(e->st.st_mode))
		return 0; /* hidden by the upper */
	return materialize_file(m, e, udir);
}

/* Drop whiteouts and opaque marks (they hide nothing once the lower layer
 * is gone). */
static int unmark_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	(void)ud;
	if (ev == WALK_DIR_PRE) {
		if (fremovexattr(e->fd, OVL_XATTR_OPAQUE) < 0 && errno != ENODATA && errno != ENOTSUP)
			return neg_errno();
		return 0;
	}
	if (ev != WALK_ENTRY)
		return 0;
	if (S_ISCHR(e->st.st_mode) && e->st.st_rdev == 0) {
		if (unlinkat(e->parent_fd, e->name, 0) < 0)
			return neg_errno();
	} else if (S_ISREG(e->st.st_mode) && e->st.st_size == 0) {
		_cleanup_close_ int fd = open_regular_at(e->parent_fd, e->name, O_RDONLY | O_NONBLOCK, NULL);
		if (fd >= 0 && fgetxattr(fd, OVL_XATTR_WHITEOUT, NULL, 0) >= 0 &&
		    unlinkat(e->parent_fd, e->name, 0) < 0)
			return neg_errno();
	}
	return 0;
}

int guest_materialize(struct pool *p, const struct guest *g, int home_fd, uint64_t *ret_files)
{
	struct materialize m = {.p = p, .ops = layout_ops_for(p), .upper_fd = -1, .staging_fd = -1};
	_cleanup_close_ int lower_fd = -1;
	int r;

	m.upper_fd = openat(home_fd, HOME_UPPER, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (m.upper_fd < 0)
		return neg_errno();
	if (mkdirat(home_fd, HOME_STAGING, 0700) < 0 && errno != EEXIST) {
		r = neg_errno();
		goto out;
	}
	m.staging_fd = openat(home_fd, HOME_STAGING, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (m.staging_fd < 0) {
		r = neg_errno();
		goto out;
	}
	lower_fd = guest_open_lower(p, g, home_fd, false);
	if (lower_fd >= 0) {
		r = walk_tree(lower_fd, materialize_cb, &m);
		if (r == 0 && syncfs(m.upper_fd) < 0)
			r = neg_errno();
		if (r < 0)
			goto out;
		close(lower_fd);
		lower_fd = -1;
		r = layout_remove_lower(p, g, home_fd);
		if (r < 0)
			goto out;
	} else if (lower_fd != -ENOENT) {
		r = lower_fd;
		goto out;
	}
	r = walk_tree(m.upper_fd, unmark_cb, NULL);
	if (r == 0)
		r = remove_tree_at(home_fd, HOME_STAGING);
	if (r == 0 && syncfs(m.upper_fd) < 0)
		r = neg_errno();
out:
	if (ret_files)
		*ret_files = m.files;
	for (size_t i = 0; i < m.n_links; i++)
		free(m.links[i].path);
	free(m.links);
	free(m.made);
	fdlevels_release(&m.ufd);
	if (m.upper_fd >= 0)
		close(m.upper_fd);
	if (m.staging_fd >= 0)
		close(m.staging_fd);
	return r;
}

int guest_purge(struct pool *p, const struct guest *g, int home_fd, bool *ret_in_home)
{
	/* the metadata image before the stubs it shows (meta_image.h) */
	static const char *const parts[] = {HOME_META_IMAGE,     "." HOME_META_IMAGE ".tmp",
	                                    HOME_META_IMAGE_MNT, HOME_UPPER,
	                                    HOME_WORK,           HOME_META,
	                                    HOME_STAGING,        HOME_UPPER ".new"};
	int r = 0;

	*ret_in_home = false;
	/* a lower layer in the home goes with the home's parts */
	if (!layout_ops_for(p)->lower_in_home) {
		r = layout_remove_lower(p, g, home_fd);
		if (r < 0)
			return r;
	}
	*ret_in_home = true;
	for (size_t i = 0; home_fd >= 0 && i < ARRAY_SIZE(parts) && r == 0; i++)
		r = remove_tree_at(home_fd, parts[i]);
	return r;
}
