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

struct link_entry {
	ino_t ino;
	struct erofs_node *node;
};

struct ctx {
	struct erofs_tree *tree;
	struct erofs_node **stack;
	size_t cap;
	struct link_entry *links;
	size_t n_links, cap_links;
	int objects_fd;
	FILE *list;
	uint64_t stubs, left_out;
};

static int copy_xattrs(struct erofs_node *n, int fd, bool o_path)
{
	struct xattr_list l = {0};
	int r = xattr_list_read(fd, o_path, XATTR_SKIP_OVERLAY, &l);

	for (size_t i = 0; r == 0 && i < l.n; i++)
		r = erofs_set_xattr(n, l.v[i].name, l.v[i].value, l.v[i].size);
	xattr_list_free(&l);
	return r;
}

static int visit(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct ctx *c = ud;
	struct erofs_node *n = NULL;
	_cleanup_close_ int fd = -1;
	char target[4096], hex[HASH_HEX_LEN + 1], redirect[HASH_HEX_LEN + 8];
	bool has_object = false;
	struct stat ost;
	int r;

	if (ev == WALK_DIR_POST)
		return 0;
	if (e->depth + 1 > c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct erofs_node **v = realloc(c->stack, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		c->stack = v;
		c->cap = cap;
	}
	if (e->depth == 0) {
		n = erofs_tree_root(c->tree);
		erofs_node_set_stat(n, &e->st);
		c->stack[0] = n;
		return copy_xattrs(n, e->fd, false);
	}
	if (!S_ISDIR(e->st.st_mode) && e->st.st_nlink > 1)
		for (size_t i = 0; i < c->n_links; i++)
			if (c->links[i].ino == e->st.st_ino)
				return erofs_add_link(c->tree, c->stack[e->depth - 1], e->name,
				                      c->links[i].node);
	if (S_ISREG(e->st.st_mode)) {
		unsigned char h[HASH_LEN];

		fd = openat(e->parent_fd, e->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			return neg_errno();
		if (e->st.st_size > 0) {
			r = hash_fd(fd, (uint64_t)e->st.st_size, h);
			if (r < 0)
				return r;
			hash_to_hex(h, hex);
			snprintf(redirect, sizeof(redirect), "%c%c/%s", hex[0], hex[1], hex);
			has_object = fstatat(c->objects_fd, redirect, &ost, AT_SYMLINK_NOFOLLOW) == 0 &&
			             ost.st_size == e->st.st_size;
			if (!has_object) {
				fprintf(c->list, "%s%c", e->path, '\0');
				c->left_out++;
				return 0;
			}
		}
	} else if (S_ISLNK(e->st.st_mode)) {
		ssize_t len = readlinkat(e->parent_fd, e->name, target, sizeof(target) - 1);

		if (len < 0)
			return neg_errno();
		target[len] = '\0';
	}
	r = erofs_add(c->tree, c->stack[e->depth - 1], e->name, &e->st,
	              S_ISLNK(e->st.st_mode) ? target : NULL, &n);
	if (r < 0)
		return r;
	if (S_ISDIR(e->st.st_mode)) {
		c->stack[e->depth] = n;
		return copy_xattrs(n, e->fd, false);
	}
	if (fd < 0) {
		fd = openat(e->parent_fd, e->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return neg_errno();
		r = copy_xattrs(n, fd, true);
	} else {
		r = copy_xattrs(n, fd, false);
	}
	if (r == 0 && has_object) {
		snprintf(redirect, sizeof(redirect), "/%c%c/%s", hex[0], hex[1], hex);
		r = erofs_set_xattr(n, "trusted.overlay.metacopy", "", 0);
		if (r == 0)
			r = erofs_set_xattr(n, "trusted.overlay.redirect", redirect, strlen(redirect));
		c->stubs++;
	}
	if (r == 0 && e->st.st_nlink > 1) {
		if (c->n_links == c->cap_links) {
			size_t cap = c->cap_links ? c->cap_links * 2 : 64;
			struct link_entry *v = realloc(c->links, cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			c->links = v;
			c->cap_links = cap;
		}
		c->links[c->n_links++] = (struct link_entry){e->st.st_ino, n};
	}
	return r;
}

int main(int argc, char **argv)
{
	struct ctx c = {0};
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
	r = erofs_tree_new(&c.tree);
	if (r == 0)
		r = walk_tree(tree, visit, &c);
	if (r == 0)
		r = erofs_write_fd(c.tree, out);
	if (r == 0 && fsync(out) < 0)
		r = neg_errno();
	if (fclose(c.list) != 0 && r == 0)
		r = -EIO;
	erofs_tree_free(c.tree);
	free(c.stack);
	free(c.links);
	close(c.objects_fd);
	if (r < 0) {
		fprintf(stderr, "erofs-compose: %s\n", strerror(-r));
		return 1;
	}
	printf("%" PRIu64 " stubs, %" PRIu64 " files left out\n", c.stubs, c.left_out);
	return 0;
}
