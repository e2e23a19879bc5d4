/* erofs-meta: pack a directory tree (a guest's HOME/meta, or any tree) into
 * an EROFS image with vunify's own writer (lib/erofs_*.c).
 *
 *   erofs-meta SRC_DIR IMAGE
 *   erofs-meta --mount IMAGE DIR
 *   erofs-meta --mount-ra IMAGE DIR
 *
 * Every entry is copied as metadata: type, mode, owner, mtime, every xattr
 * (trusted.overlay.* included: they are what makes a stub a metacopy
 * stub), symlink targets, device numbers; regular files become stubs of
 * their size with no data; hard links inside SRC_DIR stay one inode.
 * IMAGE is replaced as a whole (temp name, fsync, rename).  Nothing in
 * SRC_DIR is followed: the walk is lib/walk.c's, other entries are reached
 * through O_PATH|O_NOFOLLOW fds.
 *
 * --mount mounts IMAGE read-only at DIR with mount(2) itself: the kernel's
 * erofs (6.12+) mounts a regular file directly, where mount(8) of
 * util-linux 2.38 would set up a loop device first.  --mount-ra first
 * starts reading the whole image ahead, as vunify mount does.
 *
 * Exit status 0, 1 on an error, 2 on a usage error. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erofs.h"
#include "util.h"
#include "banned.h"

int main(int argc, char **argv)
{
	struct erofs_tree *tree = NULL;
	_cleanup_free_ char *failed = NULL;
	_cleanup_close_ int src = -1, dst = -1;
	char dir[4096];
	const char *slash, *base;
	int r;

	if (argc == 4 && (!strcmp(argv[1], "--mount") || !strcmp(argv[1], "--mount-ra"))) {
		if (!strcmp(argv[1], "--mount-ra")) {
			/* as vunify mount: read the whole image ahead first */
			_cleanup_close_ int fd = open(argv[2], O_RDONLY | O_CLOEXEC);

			if (fd >= 0)
				(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
		}
		if (mount(argv[2], argv[3], "erofs", MS_RDONLY, NULL) < 0) {
			fprintf(stderr, "erofs-meta: mount '%s': %s\n", argv[2], strerror(errno));
			return 1;
		}
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: erofs-meta SRC_DIR IMAGE\n       erofs-meta --mount IMAGE DIR\n");
		return 2;
	}
	src = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src < 0) {
		fprintf(stderr, "erofs-meta: open '%s': %s\n", argv[1], strerror(errno));
		return 1;
	}
	/* IMAGE's directory and name */
	slash = strrchr(argv[2], '/');
	base = slash ? slash + 1 : argv[2];
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - argv[2]) + 1 : 1, slash ? argv[2] : ".");
	dst = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dst < 0) {
		fprintf(stderr, "erofs-meta: open '%s': %s\n", dir, strerror(errno));
		return 1;
	}
	r = erofs_tree_from_dir(src, &tree, &failed);
	if (r < 0) {
		fprintf(stderr, "erofs-meta: '%s/%s': %s\n", argv[1], failed ? failed : "", strerror(-r));
		return 1;
	}
	r = erofs_write_at(tree, dst, base);
	if (r < 0)
		fprintf(stderr, "erofs-meta: write '%s': %s\n", argv[2], strerror(-r));
	erofs_tree_free(tree);
	return r < 0 ? 1 : 0;
}
