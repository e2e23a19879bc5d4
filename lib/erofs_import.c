/* Import a directory tree into an erofs_tree (see erofs.h).  The walk is
 * lib/walk.c's: nothing is followed, directories are reached through their
 * parents' fds, the xattrs of non-directories read by name in their
 * parent (xattr_list_read_at). */
#define _GNU_SOURCE
#include "erofs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "walk.h"
#include "xattr.h"
#include "banned.h"

struct link_entry {
	dev_t dev;
	ino_t ino;
	struct erofs_node *node;
};

struct ctx {
	struct erofs_tree *tree;
	struct erofs_node **stack; /* directory node per depth */
	size_t cap;
	struct link_entry *links;
	size_t n_links, cap_links;
	const char *failed; /* path of the entry being visited */
	const struct erofs_import *how;
};

static struct erofs_node *link_find(struct ctx *c, const struct stat *st)
{
	size_t i;

	for (i = 0; i < c->n_links; i++)
		if (c->links[i].dev == st->st_dev && c->links[i].ino == st->st_ino)
			return c->links[i].node;
	return NULL;
}

/* The xattrs of the directory FD, or of the entry NAME in FD. */
static int copy_xattrs(struct ctx *c, struct erofs_node *n, int fd, const char *name)
{
	unsigned flags = c->how->xattr_flags;
	struct xattr_list l = {0};
	size_t i;
	int r;

	r = name ? xattr_list_read_at(fd, name, flags, &l) : xattr_list_read(fd, false, flags, &l);
	for (i = 0; r == 0 && i < l.n; i++)
		r = erofs_set_xattr(n, l.v[i].name, l.v[i].value, l.v[i].size);
	xattr_list_free(&l);
	return r;
}

static int visit(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct ctx *c = ud;
	struct erofs_node *parent, *n = NULL;
	char target[4096], redirect[256] = "";
	int r;

	c->failed = e->path;
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
		return copy_xattrs(c, n, e->fd, NULL);
	}
	parent = c->stack[e->depth - 1];
	if (!S_ISDIR(e->st.st_mode) && e->st.st_nlink > 1) {
		n = link_find(c, &e->st);
		if (n)
			return erofs_add_link(c->tree, parent, e->name, n);
	}
	if (S_ISREG(e->st.st_mode) && c->how->file) {
		r = c->how->file(e, c->how->ud, redirect, sizeof(redirect));
		if (r != 0)
			return r > 0 ? 0 : r;
		redirect[sizeof(redirect) - 1] = '\0';
	}
	if (S_ISLNK(e->st.st_mode)) {
		ssize_t len = readlink_at(e->parent_fd, e->name, target, sizeof(target));

		if (len < 0)
			return (int)len;
	}
	r = erofs_add(c->tree, parent, e->name, &e->st, S_ISLNK(e->st.st_mode) ? target : NULL, &n);
	if (r < 0)
		return r;
	if (S_ISDIR(e->st.st_mode)) {
		c->stack[e->depth] = n;
		return copy_xattrs(c, n, e->fd, NULL);
	}
	r = copy_xattrs(c, n, e->parent_fd, e->name);
	if (r == 0 && redirect[0]) {
		r = erofs_set_xattr(n, "trusted.overlay.metacopy", "", 0);
		if (r == 0)
			r = erofs_set_xattr(n, "trusted.overlay.redirect", redirect, strlen(redirect));
	}
	if (r < 0)
		return r;
	if (e->st.st_nlink > 1) {
		if (c->n_links == c->cap_links) {
			size_t cap = c->cap_links ? c->cap_links * 2 : 64;
			struct link_entry *v = realloc(c->links, cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			c->links = v;
			c->cap_links = cap;
		}
		c->links[c->n_links++] = (struct link_entry){e->st.st_dev, e->st.st_ino, n};
	}
	return 0;
}

int erofs_tree_from_dir(int dir_fd, struct erofs_tree **ret_tree, char **ret_failed)
{
	static const struct erofs_import plain;

	return erofs_tree_import(dir_fd, &plain, ret_tree, ret_failed);
}

int erofs_tree_import(int dir_fd, const struct erofs_import *how, struct erofs_tree **ret_tree,
                      char **ret_failed)
{
	struct ctx c = {.how = how};
	int r;

	r = erofs_tree_new(&c.tree);
	if (r < 0)
		return r;
	r = walk_tree(dir_fd, visit, &c);
	free(c.stack);
	free(c.links);
	if (r < 0) {
		if (ret_failed && c.failed)
			*ret_failed = strdup(c.failed);
		erofs_tree_free(c.tree);
		return r;
	}
	*ret_tree = c.tree;
	return 0;
}
