/* redirect layout: metacopy stubs.  A stub is built complete under a
 * staging name in HOME/staging (same filesystem as HOME/meta) and then
 * linked/renamed into place, so the lower layer never shows a stub
 * without its xattrs.  Until unify removes the upper copy, the upper hides
 * the stub anyway; the staging step guards against a crash leaving a torn
 * stub that a later upper removal would expose. */
#define _GNU_SOURCE
#include "layout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

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

/* Link (or, for the last path, rename) staging entry S to PATH under
 * lower_fd, replacing a non-directory that is there. */
static int put_entry(int staging_fd, const char *s, int lower_fd, const char *path, bool last)
{
	const char *name;
	_cleanup_close_ int dfd = layout_open_parent(lower_fd, path, &name);
	int r;

	if (dfd < 0)
		return dfd;
	r = layout_clear_dir(dfd, name);
	if (r < 0)
		return r;
	if (last) {
		if (renameat(staging_fd, s, dfd, name) < 0)
			return neg_errno();
		return 0;
	}
	if (linkat(staging_fd, s, dfd, name, 0) == 0)
		return 0;
	if (errno != EEXIST)
		return neg_errno();
	/* A leftover from an interrupted run; the upper still hides it. */
	if (unlinkat(dfd, name, 0) < 0)
		return neg_errno();
	if (linkat(staging_fd, s, dfd, name, 0) < 0)
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
	if (fchown(fd, m->st.st_uid, m->st.st_gid) < 0)
		return neg_errno();
	/* after chown, which clears set-id bits */
	if (fchmod(fd, m->st.st_mode & 07777) < 0)
		return neg_errno();
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

static int redirect_place(const struct layout_target *t, const struct file_meta *m, const char *name,
                          char *const *paths, size_t n_paths)
{
	static unsigned long counter;
	char s[64];
	int fd, r;

	snprintf(s, sizeof(s), "s.%ld.%lu", (long)getpid(),
	         __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	fd = openat(t->staging_fd, s, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return neg_errno();
	r = make_stub(fd, m, name);
	close(fd);
	for (size_t i = 0; i < n_paths && r == 0; i++) {
		r = put_entry(t->staging_fd, s, t->lower_fd, paths[i], i + 1 == n_paths);
		if (r < 0)
			layout_unplace(t->lower_fd, paths, i);
	}
	if (r < 0)
		unlinkat(t->staging_fd, s, 0);
	return r;
}

static int redirect_lower_ref(struct pool *p, int dir_fd, const char *entry, const struct stat *st,
                              char *ret_name)
{
	char buf[OBJECT_NAME_MAX + 8];
	_cleanup_close_ int fd = -1;
	ssize_t n;

	(void)p;
	if (!S_ISREG(st->st_mode))
		return 0;
	fd = openat(dir_fd, entry, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (fgetxattr(fd, OVL_XATTR_METACOPY, NULL, 0) < 0)
		return errno == ENODATA ? -EBADMSG : neg_errno();
	n = fgetxattr(fd, OVL_XATTR_REDIRECT, buf, sizeof(buf) - 1);
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

const struct layout_ops layout_redirect_ops = {
        .kind = LAYOUT_REDIRECT,
        .object_name = redirect_object_name,
        .object_finish = redirect_object_finish,
        .place = redirect_place,
        .lower_ref = redirect_lower_ref,
};

const struct layout_ops *layout_ops_for(enum layout_kind kind)
{
	return kind == LAYOUT_LINK ? &layout_link_ops : &layout_redirect_ops;
}
