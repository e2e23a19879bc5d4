/* redirect layout: metacopy stubs.  The record of a guest's stubs is its
 * metadata image, HOME/meta.img (meta_image.h); unify places stubs in a
 * private working copy of it (meta_work_open) and writes the next image
 * from that, whole, so no guest ever sees a torn stub, and removes the
 * upper copies only once that image is renamed in (store.c). */
#define _GNU_SOURCE
#include "layout.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "copy.h"
#include "dircache.h"
#include "lowerlist.h"
#include "meta_image.h"
#include "object.h"
#include "overlay.h"
#include "util.h"
#include "walk.h"
#include "banned.h"

static int redirect_object_name(const struct file_meta *m, char *ret_name)
{
	hash_to_hex(m->hash, ret_name);
	return 0;
}

static int redirect_object_finish(int tmp_fd, const struct file_meta *m)
{
	(void)m;
	/* Objects carry no guest metadata: root-owned, read-only. */
	if (fchmod(tmp_fd, 0444) < 0)
		return neg_errno();
	return 0;
}

static int make_stub(int fd, const struct file_meta *m, const char *name)
{
	char redirect[OBJECT_NAME_MAX + 8];
	struct timespec ts[2] = {m->st.st_atim, m->st.st_mtim};
	int r;

	if (ftruncate(fd, m->st.st_size) < 0)
		return neg_errno();
	/* created as root:root with the mode already (unify runs with umask
	 * 0); chown clears set-id bits, so those need a chmod after it */
	if (m->st.st_uid != 0 || m->st.st_gid != 0) {
		if (fchown(fd, m->st.st_uid, m->st.st_gid) < 0)
			return neg_errno();
		if ((m->st.st_mode & (S_ISUID | S_ISGID)) && fchmod(fd, m->st.st_mode & 07777) < 0)
			return neg_errno();
	}
	r = xattr_list_apply(fd, false, &m->xattrs);
	if (r < 0)
		return r;
	if (fsetxattr(fd, OVL_XATTR_METACOPY, "", 0, 0) < 0)
		return neg_errno();
	snprintf(redirect, sizeof(redirect), "/%c%c/%s", name[0], name[1], name);
	if (fsetxattr(fd, OVL_XATTR_REDIRECT, redirect, strlen(redirect), 0) < 0)
		return neg_errno();
	if (futimens(fd, ts) < 0)
		return neg_errno();
	return 0;
}

/* Stubs are written in place: the upper copy hides the path until unify
 * removes it, which happens only after the stub is complete and durable,
 * so a torn stub is never seen.  Whatever the lower has at the path is
 * hidden too and is removed first, never truncated (it may be a hard link
 * of a stub other paths still show). */
static int redirect_place(const struct layout_target *t, const struct file_meta *m, const char *name,
                          char *const *paths, size_t n_paths)
{
	_cleanup_close_ int fd = -1;
	const char *ename;
	int dfd, r = 0;

	dfd = dircache_parent(t->lower_dc, paths[0], &ename);
	if (dfd < 0)
		return dfd;
	for (int tries = 0; fd < 0 && tries < 3; tries++) {
		fd = openat(dfd, ename, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		            m->st.st_mode & 07777);
		if (fd < 0 && errno != EEXIST)
			return neg_errno();
		if (fd < 0 && (r = layout_clear_entry(dfd, ename)) < 0)
			return r;
	}
	if (fd < 0)
		return -EEXIST;
	r = make_stub(fd, m, name);
	for (size_t i = 1; i < n_paths && r == 0; i++) {
		/* the rest of a hard-link group: links of the same stub */
		dfd = dircache_parent(t->lower_dc, paths[i], &ename);
		if (dfd < 0) {
			r = dfd;
			break;
		}
		r = layout_link_in_place(fd, dfd, ename);
	}
	if (r < 0)
		layout_unplace(t->lower_fd, paths, n_paths);
	return r;
}

static int redirect_lower_ref(struct pool *p, const struct object_map *map, int dir_fd, const char *entry,
                              const struct stat *st, char *ret_name)
{
	char buf[OBJECT_NAME_MAX + 8], path[PATH_MAX];
	ssize_t n;

	(void)p;
	(void)map;
	if (!S_ISREG(st->st_mode))
		return 0;
	/* by path through the directory fd: no open/close per stub (entry is
	 * one component, so nothing can be followed but the fd itself) */
	if (snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dir_fd, entry) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	n = lgetxattr(path, OVL_XATTR_REDIRECT, buf, sizeof(buf) - 1);
	if (n < 0)
		return errno == ENODATA || errno == ERANGE ? -EBADMSG : neg_errno();
	buf[n] = '\0';
	/* "/XX/<64 hex>" */
	if (n != 4 + HASH_HEX_LEN || buf[0] != '/' || buf[3] != '/' || !hash_is_hex(buf + 4) ||
	    buf[1] != buf[4] || buf[2] != buf[5])
		return -EBADMSG;
	memcpy(ret_name, buf + 4, HASH_HEX_LEN + 1);
	return 1;
}

/* fsck: a stub carries metacopy, and its object exists with its size. */
static int redirect_check_ref(struct pool *p, const struct walk_entry *e, const char *name,
                              enum lower_problem *ret_kind, const char **ret_what)
{
	struct stat ost;
	char xp[PATH_MAX];
	int r;

	snprintf(xp, sizeof(xp), "/proc/self/fd/%d/%s", e->parent_fd, e->name);
	if (lgetxattr(xp, OVL_XATTR_METACOPY, NULL, 0) < 0) {
		*ret_kind = LOWER_MALFORMED;
		*ret_what = "malformed stub (redirect without metacopy)";
		return 2;
	}
	r = pool_object_stat(p, name, &ost);
	if (r < 0)
		return r;
	if (r == 0) {
		*ret_kind = LOWER_MISSING_OBJECT;
		*ret_what = "references a missing object";
		return 1;
	}
	if (ost.st_size != e->st.st_size) {
		*ret_kind = LOWER_SIZE_MISMATCH;
		*ret_what = "size differs from its object";
		return 1;
	}
	return 0;
}

/* The lower layer is HOME/meta. */
static int redirect_open_lower_parent(struct pool *p, const struct guest *g, int home_fd,
                                      const char **ret_name)
{
	int fd = fcntl(home_fd, F_DUPFD_CLOEXEC, 0);

	(void)p;
	(void)g;
	*ret_name = HOME_META;
	return fd < 0 ? neg_errno() : fd;
}

static char *redirect_lower_path(struct pool *p, const struct guest *g)
{
	(void)p;
	return path_join(g->home, HOME_META);
}

static int redirect_init_home(int home_fd)
{
	return mkdirat(home_fd, HOME_META, 0755) < 0 && errno != EEXIST ? neg_errno() : 0;
}

/* A stub shows its object's data. */
static int redirect_open_data(struct pool *p, int dir_fd, const char *entry, const struct stat *st)
{
	char name[OBJECT_NAME_MAX], rel[OBJECT_NAME_MAX + 4];
	int r = redirect_lower_ref(p, NULL, dir_fd, entry, st, name), fd;

	if (r <= 0)
		return r < 0 ? r : -EBADMSG;
	fd = openat(p->objects_fd, object_relpath(name, rel), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	return fd < 0 ? neg_errno() : fd;
}

/* adopt, step 2: the stubs are in the home already. */
static int redirect_adopt_open_lower(struct pool *p, int home_fd, const char *name,
                                     struct adopt_staging *staging, char ***missing, size_t *n_missing,
                                     int *ret_fd)
{
	int fd;

	(void)p, (void)name, (void)staging, (void)missing, (void)n_missing;
	if (lowerlist_exists(home_fd) > 0)
		return -EPROTOTYPE;
	/* the record: the image where there is one, else the stubs */
	fd = meta_image_open(home_fd, 0);
	if (fd == -ENOENT) {
		fd = openat(home_fd, HOME_META, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno != ENOENT)
			return neg_errno();
	} else if (fd < 0) {
		return fd;
	}
	*ret_fd = fd;
	return 0;
}

const struct layout_ops layout_redirect_ops = {
        .kind = LAYOUT_REDIRECT,
        .name = "redirect",
        .format1 = NULL,
        .format = POOL_FORMAT,
        .lower_in_home = true,
        .data_layer = true,
        .lower_image = true,
        .open_lower_parent = redirect_open_lower_parent,
        .lower_path = redirect_lower_path,
        .init_home = redirect_init_home,
        .describes_lower = false,
        .adopt_open_lower = redirect_adopt_open_lower,
        .adopt_commit_lower = NULL,
        /* a hard-link group's names would leave the upper one unlink at a
         * time, and in between the guest would see them as two inodes; no
         * rename can switch several names at once: groups stay */
        .unifies_link_groups = false,
        .lower_links_are_guest_links = true,
        .refs_by_inode = false,
        .copy_flags = COPY_TREE_DEFAULT,
        .names_by_content = true,
        .object_metadata = false,
        .adopt_links_lower = false,
        .object_name = redirect_object_name,
        .object_finish = redirect_object_finish,
        .place = redirect_place,
        .lower_ref = redirect_lower_ref,
        .bad_ref = LOWER_MALFORMED,
        .bad_ref_what = "malformed stub (no valid metacopy/redirect)",
        .check_ref = redirect_check_ref,
        .open_data = redirect_open_data,
};
