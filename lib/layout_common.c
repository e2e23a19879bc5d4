/* Helpers both layouts use to change a lower layer.  They may replace
 * what is in the lower layer at a path only because, at that moment, the
 * upper layer holds an entry at the same path that hides it: unify places
 * a lower entry for an upper file before removing that upper file. */
#define _GNU_SOURCE
#include "layout.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "remove.h"
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
	const char *p = relpath;
	int fd = openat(lower_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return neg_errno();
	for (;;) {
		const char *slash = strchr(p, '/');
		char name[NAME_MAX + 1];
		size_t len;
		int nfd;

		if (!slash) {
			if (!*p || !strcmp(p, ".") || !strcmp(p, "..")) {
				close(fd);
				return -EINVAL;
			}
			*ret_name = p;
			return fd;
		}
		len = (size_t)(slash - p);
		if (len == 0 || len > NAME_MAX) {
			close(fd);
			return len ? -ENAMETOOLONG : -EINVAL;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		if (!strcmp(name, ".") || !strcmp(name, "..")) {
			close(fd);
			return -EINVAL;
		}
		nfd = layout_open_dir(fd, name);
		close(fd);
		if (nfd < 0)
			return nfd;
		fd = nfd;
		p = slash + 1;
	}
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
