/* rm -rf through the safe walk: children are unlinked through their
 * parent's fd, directories removed after their contents. */
#define _GNU_SOURCE
#include "remove_tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "walk.h"
#include "banned.h"

static int rm_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	(void)ud;
	if (e->depth == 0 || ev == WALK_DIR_PRE)
		return 0;
	if (unlinkat(e->parent_fd, e->name, ev == WALK_DIR_POST ? AT_REMOVEDIR : 0) < 0 && errno != ENOENT)
		return neg_errno();
	return 0;
}

int remove_tree_at(int dir_fd, const char *name)
{
	struct stat st;
	int fd, r;

	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : neg_errno();
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT ? neg_errno() : 0;
	fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	r = walk_tree(fd, rm_cb, NULL);
	close(fd);
	if (r < 0)
		return r;
	if (unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return neg_errno();
	return 0;
}

int remove_contents_at(int dir_fd, const char *name, uint64_t *ret_count)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int r = opendir_at(dir_fd, name, &d);

	if (r < 0)
		return r == -ENOENT ? 0 : r;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = remove_tree_at(dirfd(d), de->d_name);
		if (r < 0)
			return r;
		if (ret_count)
			(*ret_count)++;
	}
	return 0;
}
