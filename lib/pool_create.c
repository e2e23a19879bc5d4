/* Making a pool: its directories, then vunify.conf last, so a pool
 * without it is an unfinished init that may be completed. */
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
#include "meta_image.h"
#include "pool_internal.h"
#include "overlay.h"
#include "remove_tree.h"
#include "util.h"
#include "banned.h"

static int mkdirat_ok(int dfd, const char *name, mode_t mode)
{
	if (mkdirat(dfd, name, mode) < 0 && errno != EEXIST)
		return neg_errno();
	return 0;
}

/* mkdir -p for the pool path itself (an admin-given path, trusted). */
static int mkdir_parents(const char *path)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return neg_errno();
		*s = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return neg_errno();
	return 0;
}

/* Everything of a new pool but vunify.conf; returns the pool dir's fd. */
static int init_dirs(const char *path)
{
	_cleanup_close_ int fd = -1, ofd = -1;
	_cleanup_free_ char *policy = NULL;
	struct stat st;
	int r;

	r = mkdir_parents(path);
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (fstatat(fd, CONF_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	{
		/* Refuse a non-empty directory that is not an unfinished pool,
		 * so init never scribbles over someone's data. */
		_cleanup_closedir_ DIR *d = NULL;
		struct dirent *de;
		static const char *const ours[] = {"objects", "guests", "roots", "tmp", "lock", POLICY_NAME};
		r = opendir_at(fd, ".", &d);
		if (r < 0)
			return r;
		while ((de = readdir(d))) {
			bool known = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
			             !strncmp(de->d_name, ".tmp.", 5) || !strcmp(de->d_name, "lost+found");
			for (size_t i = 0; i < ARRAY_SIZE(ours) && !known; i++)
				known = !strcmp(de->d_name, ours[i]);
			if (!known)
				return -ENOTEMPTY;
		}
	}
	if ((r = mkdirat_ok(fd, "objects", POOL_DIR_MODE)) < 0 ||
	    (r = mkdirat_ok(fd, "guests", POOL_DIR_MODE)) < 0 ||
	    (r = mkdirat_ok(fd, "roots", POOL_DIR_MODE)) < 0 ||
	    (r = mkdirat_ok(fd, "tmp", POOL_DIR_MODE)) < 0)
		return r;
	ofd = openat(fd, "objects", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ofd < 0)
		return neg_errno();
	for (unsigned i = 0; i < 256; i++) {
		char fan[3];
		snprintf(fan, sizeof(fan), "%02x", i);
		r = mkdirat_ok(ofd, fan, POOL_DIR_MODE);
		if (r < 0)
			return r;
	}
	{
		/* an existing directory (or an unfinished init) gets the same
		 * owner and modes as a new one */
		r = pool_check_dirs_at(fd, true, NULL, NULL);
		if (r < 0)
			return r;
	}
	if (fsync(ofd) < 0)
		return neg_errno();
	{
		int lfd = openat(fd, "lock", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (lfd < 0)
			return neg_errno();
		close(lfd);
	}
	if (fstatat(fd, POLICY_NAME, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		policy = policy_default_text();
		if (!policy)
			return -ENOMEM;
		r = write_file_atomic_at(fd, POLICY_NAME, policy, strlen(policy), 0644);
		if (r < 0)
			return r;
	}
	return steal_fd(&fd);
}

static int put_conf(int fd, unsigned format, enum layout_kind layout, const char *id)
{
	char conf[256];

	snprintf(conf, sizeof(conf), "# vunify pool; see docs/FORMAT.md\nformat %u\nlayout %s\nid %s\n",
	         format, layout_name(layout), id);
	return write_file_atomic_at(fd, CONF_NAME, conf, strlen(conf), 0644);
}

/* vunify.conf, written last: it makes the directory a pool. */
static int write_conf(int fd, enum layout_kind layout)
{
	unsigned char rnd[16];
	char id[40];

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return neg_errno();
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(id + 2 * i, 3, "%02x", rnd[i]);
	return put_conf(fd, layout_format(layout), layout, id);
}

int pool_upgrade(struct pool *p)
{
	unsigned want = layout_format(p->layout);
	const struct pool newest = {.layout = p->layout, .format = want};
	int r;

	/* A layout with format-1 ops of its own (link: its object names) is
	 * never rewritten in place: its names depend on its format. */
	if (p->format >= want || layout_ops_for(&newest)->format1)
		return 0;
	r = put_conf(p->fd, want, p->layout, p->id);
	if (r == 0)
		p->format = want;
	return r;
}

int pool_init(const char *path, enum layout_kind layout)
{
	_cleanup_close_ int fd = init_dirs(path);

	return fd < 0 ? fd : write_conf(fd, layout);
}

int pool_create(const char *path, bool auto_layout, enum layout_kind *kind, int *ret_probe)
{
	_cleanup_close_ int fd = init_dirs(path);

	if (fd < 0)
		return fd;
	/* on the pool's own filesystem: where the data-only layer will live;
	 * and the redirect layout's metadata images need erofs (2: data-only
	 * layers, but no erofs) */
	*ret_probe = overlay_probe_data_only(fd);
	if (*ret_probe == 1 && meta_image_probe() != 1)
		*ret_probe = 2;
	if (auto_layout)
		*kind = layout_auto(*ret_probe);
	else {
		const struct pool new_pool = {.layout = *kind, .format = layout_format(*kind)};
		if (layout_ops_for(&new_pool)->data_layer && *ret_probe != 1)
			return -EOPNOTSUPP;
	}
	return write_conf(fd, *kind);
}
