/* erofs-compose: a measurement tool for scripts/bench-runtime.sh.  Packs a
 * guest's whole tree into one EROFS image, composefs-style: directories,
 * symlinks, devices and every attribute as they are, and each regular file
 * whose content is an object of the pool as a metacopy stub redirecting to
 * it.  With that image as the only metadata layer, a guest's upper needs
 * to hold nothing but the files the pool does not have.
 *
 *   erofs-compose TREE OBJECTS IMAGE LIST
 *
 * TREE is a plain copy of the guest, OBJECTS the pool's objects/ (redirect
 * layout: named by the SHA-256 of the content).  Regular files with no
 * object (empty files are stubs of size 0 without a redirect) are left out
 * of the image and their paths written to LIST, NUL-terminated, for the
 * caller to copy into an upper.  Nothing in TREE is followed.  Exit status
 * 0, 1 on an error, 2 on a usage error. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erofs.h"
#include "hash.h"
#include "util.h"
#include "walk.h"
#include "xattr.h"
#include "banned.h"

struct ctx {
	int objects_fd;
	FILE *list;
	uint64_t stubs, left_out;
};

/* A regular file of the tree: a stub of its object, or left out. */
static int plan_file(const struct walk_entry *e, void *ud, char *redirect, size_t size)
{
	struct ctx *c = ud;
	_cleanup_close_ int fd = -1;
	unsigned char h[HASH_LEN];
	char hex[HASH_HEX_LEN + 1];
	struct stat ost;
	int r;

	if (e->st.st_size == 0)
		return 0; /* an empty stub, no redirect */
	fd = openat(e->parent_fd, e->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	r = hash_fd(fd, (uint64_t)e->st.st_size, h);
	if (r < 0)
		return r;
	hash_to_hex(h, hex);
	snprintf(redirect, size, "%c%c/%s", hex[0], hex[1], hex);
	if (fstatat(c->objects_fd, redirect, &ost, AT_SYMLINK_NOFOLLOW) < 0 || ost.st_size != e->st.st_size) {
		fprintf(c->list, "%s%c", e->path, '\0');
		c->left_out++;
		return 1;
	}
	snprintf(redirect, size, "/%c%c/%s", hex[0], hex[1], hex);
	c->stubs++;
	return 0;
}

int main(int argc, char **argv)
{
	struct ctx c = {0};
	struct erofs_import how = {.xattr_flags = XATTR_SKIP_OVERLAY, .file = plan_file, .ud = &c};
	struct erofs_tree *t = NULL;
	_cleanup_close_ int tree = -1, out = -1;
	int r;

	if (argc != 5) {
		fprintf(stderr, "usage: erofs-compose TREE OBJECTS IMAGE LIST\n");
		return 2;
	}
	tree = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	c.objects_fd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	c.list = fopen(argv[4], "we");
	if (tree < 0 || c.objects_fd < 0 || out < 0 || !c.list) {
		fprintf(stderr, "erofs-compose: open: %s\n", strerror(errno));
		if (c.list)
			fclose(c.list);
		return 1;
	}
	r = erofs_tree_import(tree, &how, &t, NULL);
	if (r == 0)
		r = erofs_write_fd(t, out);
	if (r == 0 && fsync(out) < 0)
		r = neg_errno();
	if (fclose(c.list) != 0 && r == 0)
		r = -EIO;
	if (t)
		erofs_tree_free(t);
	close(c.objects_fd);
	if (r < 0) {
		fprintf(stderr, "erofs-compose: %s\n", strerror(-r));
		return 1;
	}
	printf("%" PRIu64 " stubs, %" PRIu64 " files left out\n", c.stubs, c.left_out);
	return 0;
}
