/* Helpers both layouts use to change a lower layer.  They may replace
 * what is in the lower layer at a path only because, at that moment, the
 * upper layer holds an entry at the same path that hides it: unify places
 * a lower entry for an upper file before removing that upper file. */
#define _GNU_SOURCE
#include "layout.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dircache.h"
#include "meta_image.h"
#include "remove_tree.h"
#include "util.h"
#include "walk.h"
#include "banned.h"

void layout_unplace(int lower_fd, char *const *paths, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *name;
		int dfd = open_parent_beneath(lower_fd, paths[i], false, &name);
		if (dfd >= 0) {
			unlinkat(dfd, name, 0);
			close(dfd);
		}
	}
}

int layout_open_dir(int fd, const char *name)
{
	int nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (nfd >= 0)
		return nfd;
	if (errno == ENOTDIR || errno == ELOOP) {
		/* a lower non-directory hidden by the upper's directory */
		if (unlinkat(fd, name, 0) < 0)
			return neg_errno();
	} else if (errno != ENOENT) {
		return neg_errno();
	}
	if (mkdirat(fd, name, 0755) < 0 && errno != EEXIST)
		return neg_errno();
	nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return nfd < 0 ? neg_errno() : nfd;
}

int layout_open_parent(int lower_fd, const char *relpath, const char **ret_name)
{
	struct dircache dc;
	int fd;

	/* the dircache's walk, once: it creates and replaces (mkdirs) */
	dircache_init(&dc, lower_fd, true);
	fd = dircache_parent(&dc, relpath, ret_name);
	if (fd >= 0 && (fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
		fd = neg_errno();
	dircache_release(&dc);
	return fd;
}

int layout_clear_entry(int dir_fd, const char *name)
{
	if (unlinkat(dir_fd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR)
		return neg_errno();
	return remove_tree_at(dir_fd, name);
}

int layout_link_in_place(int fd, int dir_fd, const char *name)
{
	for (int tries = 0; tries < 3; tries++) {
		int r;
		if (linkat(fd, "", dir_fd, name, AT_EMPTY_PATH) == 0)
			return 0;
		if (errno != EEXIST)
			return neg_errno();
		r = layout_clear_entry(dir_fd, name);
		if (r < 0)
			return r;
	}
	return -EEXIST;
}

/* Contract in layout.h. */
int layout_check_object(struct pool *p, int fd, const char *name, bool repair, const char **ret_problem,
                        bool *ret_fixed)
{
	struct file_meta m = {0};
	char want[OBJECT_NAME_MAX];
	int r;

	*ret_fixed = false;
	if (fstat(fd, &m.st) < 0)
		return neg_errno();
	if (layout_ops_for(p)->names_by_content) {
		/* content only: root:root, 0444, no xattrs (so no set-id bit, no
		 * file capability; a guest file adopted on the pool's
		 * filesystem keeps its owner and mode until unify puts them
		 * right, and a kill in between leaves them) */
		struct xattr_list xl = {0};
		bool bad_xattrs;

		r = xattr_list_read(fd, false, 0, &xl);
		if (r < 0)
			return r;
		bad_xattrs = xl.n > 0;
		if (m.st.st_uid == 0 && m.st.st_gid == 0 && (m.st.st_mode & 07777) == 0444 && !bad_xattrs) {
			xattr_list_free(&xl);
			return 0;
		}
		*ret_problem = bad_xattrs ? "owner, mode or xattrs are not root:root, 0444, none"
		                          : "owner or mode is not root:root, 0444";
		if (repair) {
			/* chown first: it clears set-id bits and capabilities */
			r = fchown(fd, 0, 0) < 0 || fchmod(fd, 0444) < 0 ? neg_errno() : 0;
			for (size_t i = 0; r == 0 && i < xl.n; i++)
				r = xattr_remove(fd, false, xl.v[i].name);
			if (r == 0)
				r = fsync(fd) < 0 ? neg_errno() : 0;
			*ret_fixed = r == 0;
		}
		xattr_list_free(&xl);
		return r < 0 ? r : 1;
	}
	/* link: the inode is what guests see; its owner, mode, mtime and xattrs
	 * must be those its name's key was made from.  Not repairable: the key
	 * is a hash, the metadata it was made from cannot be recovered. */
	{
		char hex[HASH_HEX_LEN + 1];
		if (strlen(name) < HASH_HEX_LEN)
			return -EINVAL;
		memcpy(hex, name, HASH_HEX_LEN);
		hex[HASH_HEX_LEN] = '\0';
		r = hash_from_hex(hex, m.hash);
		if (r < 0)
			return r;
	}
	r = xattr_list_read(fd, false, XATTR_SKIP_OVERLAY, &m.xattrs);
	if (r < 0)
		return r;
	r = layout_ops_for(p)->object_name(&m, want);
	xattr_list_free(&m.xattrs);
	if (r < 0)
		return r;
	if (!strcmp(want, name))
		return 0;
	*ret_problem = "owner, mode, mtime or xattrs differ from those its name was made from "
	               "(guests linked to it see them)";
	return 1;
}

int layout_locate(struct pool *p, const struct guest *g, struct layout_location *ret)
{
	const struct layout_ops *ops = layout_ops_for(p);
	struct layout_location l = {.in_home = ops->lower_in_home, .refs_by_inode = ops->refs_by_inode};

	l.lower = ops->lower_path(p, g);
	if (ops->data_layer)
		l.data = path_join(p->path, "objects");
	if (!l.lower || (ops->data_layer && !l.data)) {
		layout_location_free(&l);
		return -ENOMEM;
	}
	*ret = l;
	return 0;
}

void layout_location_free(struct layout_location *l)
{
	free(l->lower);
	free(l->data);
	l->lower = l->data = NULL;
}

int layout_remove_lower(struct pool *p, const struct guest *g, int home_fd)
{
	const struct layout_ops *ops = layout_ops_for(p);
	const char *name;
	_cleanup_close_ int dir = -1;
	int r;

	if (ops->lower_in_home && home_fd < 0)
		return 0;
	/* the image first: it must never outlive the lower layer it shows */
	if (ops->lower_image && home_fd >= 0 && (r = meta_image_drop(home_fd)) < 0)
		return r;
	dir = ops->open_lower_parent(p, g, home_fd, &name);
	if (dir < 0)
		return dir;
	r = remove_tree_at(dir, name);
	if (r == 0 && syncfs(dir) < 0)
		r = neg_errno();
	return r;
}

void adopt_staging_free(struct adopt_staging *s)
{
	if (s->name && s->dir_fd >= 0)
		(void)remove_tree_at(s->dir_fd, s->name);
	free(s->name);
	s->name = NULL;
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	s->dir_fd = -1;
}
