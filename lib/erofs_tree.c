/* EROFS image writer: the tree built in memory (inodes, names, links,
 * xattrs), as erofs.h describes it. */
#define _GNU_SOURCE
#include "erofs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

static int tree_track(struct erofs_tree *t, struct erofs_node *n)
{
	if (t->n_all == t->cap_all) {
		size_t cap = t->cap_all ? t->cap_all * 2 : 256;
		struct erofs_node **v = realloc(t->all, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->all = v;
		t->cap_all = cap;
	}
	t->all[t->n_all++] = n;
	return 0;
}

int erofs_tree_new(struct erofs_tree **ret_tree)
{
	struct erofs_tree *t = calloc(1, sizeof(*t));
	struct erofs_node *root;

	if (!t)
		return -ENOMEM;
	root = calloc(1, sizeof(*root));
	if (!root || tree_track(t, root) < 0) {
		free(root);
		erofs_tree_free(t);
		return -ENOMEM;
	}
	root->mode = S_IFDIR | 0755;
	root->parent = root;
	t->root = root;
	*ret_tree = t;
	return 0;
}

static void node_free(struct erofs_node *n)
{
	size_t i;

	for (i = 0; i < n->n_xattrs; i++) {
		free(n->xattrs[i].name);
		free(n->xattrs[i].value);
	}
	free(n->xattrs);
	for (i = 0; i < n->n_children; i++)
		free(n->children[i].name);
	free(n->children);
	free(n->target);
	free(n);
}

void erofs_tree_free(struct erofs_tree *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->n_all; i++)
		node_free(t->all[i]);
	free(t->all);
	free(t);
}

struct erofs_node *erofs_tree_root(struct erofs_tree *t)
{
	return t->root;
}

int erofs_node_set_stat(struct erofs_node *node, const struct stat *st)
{
	node->mode = (node->mode & S_IFMT) | (st->st_mode & 07777);
	node->uid = st->st_uid;
	node->gid = st->st_gid;
	node->mtime = st->st_mtim;
	return 0;
}

static int check_name(const char *name, size_t *ret_len)
{
	size_t len = strnlen(name, EROFS_NAME_MAX + 1);

	if (len == 0 || len > EROFS_NAME_MAX || memchr(name, '/', len))
		return -EINVAL;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	*ret_len = len;
	return 0;
}

int erofs_dir_append(struct erofs_node *dir, const char *name, size_t len, struct erofs_node *node)
{
	struct child *c;

	if (dir->n_children == dir->cap_children) {
		size_t cap = dir->cap_children ? dir->cap_children * 2 : 8;
		struct child *v = realloc(dir->children, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		dir->children = v;
		dir->cap_children = cap;
	}
	c = &dir->children[dir->n_children];
	c->name = strndup(name, len);
	if (!c->name)
		return -ENOMEM;
	c->len = (uint8_t)len;
	c->node = node;
	dir->n_children++;
	return 0;
}

int erofs_add(struct erofs_tree *t, struct erofs_node *dir, const char *name, const struct stat *st,
              const char *target, struct erofs_node **ret_node)
{
	struct erofs_node *n;
	size_t len;
	int r;

	if (!S_ISDIR(dir->mode))
		return -ENOTDIR;
	r = check_name(name, &len);
	if (r < 0)
		return r;
	switch (st->st_mode & S_IFMT) {
	case S_IFLNK:
		if (!target || !*target || strnlen(target, BLK) >= BLK)
			return -EINVAL;
		break;
	case S_IFREG:
	case S_IFDIR:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		if (target)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	if (S_ISREG(st->st_mode) && st->st_size < 0)
		return -EINVAL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->mode = st->st_mode & (S_IFMT | 07777);
	n->uid = st->st_uid;
	n->gid = st->st_gid;
	n->mtime = st->st_mtim;
	if (S_ISREG(n->mode))
		n->size = (uint64_t)st->st_size;
	if (S_ISCHR(n->mode) || S_ISBLK(n->mode))
		n->rdev = st->st_rdev;
	if (target) {
		n->target_len = strlen(target);
		n->target = strdup(target);
		if (!n->target) {
			free(n);
			return -ENOMEM;
		}
		n->size = n->target_len;
	}
	if (S_ISDIR(n->mode))
		n->parent = dir;
	r = tree_track(t, n);
	if (r < 0) {
		node_free(n);
		return r;
	}
	r = erofs_dir_append(dir, name, len, n);
	if (r < 0)
		return r; /* n stays tracked, freed with the tree */
	n->nlink = 1;
	if (ret_node)
		*ret_node = n;
	return 0;
}

int erofs_add_link(struct erofs_tree *t, struct erofs_node *dir, const char *name, struct erofs_node *node)
{
	size_t len;
	int r;

	(void)t;
	if (!S_ISDIR(dir->mode))
		return -ENOTDIR;
	if (S_ISDIR(node->mode))
		return -EPERM;
	r = check_name(name, &len);
	if (r < 0)
		return r;
	if (node->nlink == UINT32_MAX)
		return -EMLINK;
	r = erofs_dir_append(dir, name, len, node);
	if (r < 0)
		return r;
	node->nlink++;
	return 0;
}

static int xattr_split(const char *name, uint8_t *ret_index, size_t *ret_off)
{
	static const struct {
		const char *prefix;
		uint8_t index;
		bool exact;
	} map[] = {
	        {"user.", XATTR_INDEX_USER, false},
	        {"trusted.", XATTR_INDEX_TRUSTED, false},
	        {"security.", XATTR_INDEX_SECURITY, false},
	        {"system.posix_acl_access", XATTR_INDEX_ACL_ACCESS, true},
	        {"system.posix_acl_default", XATTR_INDEX_ACL_DEFAULT, true},
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(map); i++) {
		size_t pl = strlen(map[i].prefix);

		if (map[i].exact ? !strcmp(name, map[i].prefix) : !strncmp(name, map[i].prefix, pl)) {
			*ret_index = map[i].index;
			*ret_off = pl;
			return 0;
		}
	}
	return -EOPNOTSUPP;
}

int erofs_set_xattr(struct erofs_node *node, const char *name, const void *value, size_t size)
{
	struct exattr *x = NULL, *v;
	uint8_t index;
	size_t off, i, nlen = strlen(name);
	unsigned char *copy;
	int r;

	r = xattr_split(name, &index, &off);
	if (r < 0)
		return r;
	if (nlen - off > 255)
		return -ERANGE;
	if (size > UINT16_MAX)
		return -E2BIG;
	copy = malloc(size ? size : 1);
	if (!copy)
		return -ENOMEM;
	if (size)
		memcpy(copy, value, size);
	for (i = 0; i < node->n_xattrs; i++)
		if (!strcmp(node->xattrs[i].name, name))
			x = &node->xattrs[i];
	if (x) {
		free(x->value);
		x->value = copy;
		x->size = size;
		return 0;
	}
	v = realloc(node->xattrs, (node->n_xattrs + 1) * sizeof(*v));
	if (!v) {
		free(copy);
		return -ENOMEM;
	}
	node->xattrs = v;
	x = &v[node->n_xattrs];
	x->name = strdup(name);
	if (!x->name) {
		free(copy);
		return -ENOMEM;
	}
	x->value = copy;
	x->size = size;
	x->index = index;
	x->sfx_off = (uint8_t)off;
	x->sfx_len = (uint8_t)(nlen - off);
	x->shared_id = -1;
	node->n_xattrs++;
	return 0;
}
