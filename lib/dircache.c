/* dircache: see dircache.h. */
#define _GNU_SOURCE
#include "dircache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layout.h"
#include "util.h"
#include "walk.h"
#include "banned.h"

void dircache_init(struct dircache *dc, int root_fd, bool mkdirs)
{
	*dc = (struct dircache){.root_fd = root_fd, .mkdirs = mkdirs, .fd = -1};
}

void dircache_release(struct dircache *dc)
{
	if (dc->fd >= 0)
		close(dc->fd);
	free(dc->dir);
	dc->dir = NULL;
	dc->fd = -1;
	dc->len = dc->cap = 0;
}

int dircache_parent(struct dircache *dc, const char *relpath, const char **ret_name)
{
	const char *slash = strrchr(relpath, '/');
	size_t len = slash ? (size_t)(slash - relpath) : 0;
	const char *name = slash ? slash + 1 : relpath;
	int fd;

	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	if (dc->fd >= 0 && len == dc->len && (len == 0 || !memcmp(dc->dir, relpath, len))) {
		*ret_name = name;
		return dc->fd;
	}
	if (dc->mkdirs) {
		const char *n2;
		fd = layout_open_parent(dc->root_fd, relpath, &n2);
	} else if (len == 0) {
		fd = openat(dc->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			fd = neg_errno();
	} else {
		char *dir = strndup(relpath, len);
		if (!dir)
			return -ENOMEM;
		fd = open_beneath(dc->root_fd, dir, O_RDONLY | O_DIRECTORY, 0);
		free(dir);
	}
	if (fd < 0)
		return fd;
	if (len + 1 > dc->cap) {
		char *nd = realloc(dc->dir, len + 1);
		if (!nd) {
			close(fd);
			return -ENOMEM;
		}
		dc->dir = nd;
		dc->cap = len + 1;
	}
	if (dc->fd >= 0)
		close(dc->fd);
	memcpy(dc->dir, relpath, len);
	dc->dir[len] = '\0';
	dc->len = len;
	dc->fd = fd;
	*ret_name = name;
	return fd;
}
