/* EROFS image writer (see erofs.h for what it writes and refuses).
 *
 * Written from the on-disk format of the kernel's fs/erofs/erofs_fs.h.
 * Building is in memory; erofs_write_fd lays the image out in three
 * passes over the inodes (order, sizes, positions) and then streams it
 * front to back through one buffer, so the file is written sequentially
 * and never read back.
 *
 * Choices the kernel's reader dictates:
 * - nid = byte offset / 32 from block 0 (meta_blkaddr 0); the root's nid is
 *   16 bits in the superblock, so the root is the first inode, right after
 *   the superblock.
 * - An extended inode, its inline xattrs and its tail (inline directory
 *   block or symlink target, or the chunk map) are kept inside one block:
 *   the kernel refuses inline data that crosses a block boundary.
 * - Stubs: chunk-based layout with 4-byte block-address entries, the chunk
 *   as large as needed to cover the file in one entry (up to 2^31 blocks a
 *   chunk), each entry EROFS_NULL_ADDR (a hole).  i_size is the real size
 *   and no data block exists.
 * - Directory blocks: dirents (12 bytes) then names, every name byte-sorted
 *   across all blocks ("." and ".." included), since lookup bisects the
 *   blocks by their first name and then each block.
 * - Compact (32-byte) inodes take their mtime from the superblock's build
 *   time, so an inode is compact only when its mtime equals that (the most
 *   common mtime of the tree) and its ids, link count and size fit. */
#define _GNU_SOURCE
#include "erofs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

#define BLK EROFS_BLOCK_SIZE
#define BLKBITS 12
#define SUPER_OFFSET 1024
#define SUPER_MAGIC 0xE0F5E1E2u
#define FEATURE_INCOMPAT_CHUNKED_FILE 0x00000004u
#define NULL_ADDR 0xFFFFFFFFu
#define DIRENT_SIZE 12
#define XATTR_HEADER_SIZE 12
#define CHUNK_BLKBITS_MAX 31

enum { LAYOUT_FLAT_PLAIN = 0, LAYOUT_FLAT_INLINE = 2, LAYOUT_CHUNK_BASED = 4 };
enum {
	XATTR_INDEX_USER = 1,
	XATTR_INDEX_ACL_ACCESS = 2,
	XATTR_INDEX_ACL_DEFAULT = 3,
	XATTR_INDEX_TRUSTED = 4,
	XATTR_INDEX_SECURITY = 6,
};
enum { FT_UNKNOWN, FT_REG, FT_DIR, FT_CHR, FT_BLK, FT_FIFO, FT_SOCK, FT_SYMLINK };

struct exattr {
	char *name; /* full name */
	unsigned char *value;
	size_t size;
	uint8_t index; /* erofs name index */
	uint8_t sfx_off; /* the suffix stored on disk starts here in name */
	uint8_t sfx_len;
	int64_t shared_id; /* -1: inline */
};

struct child {
	char *name;
	uint8_t len;
	struct erofs_node *node;
};

struct erofs_node {
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec mtime;
	uint64_t size; /* regular: the stub's size */
	dev_t rdev;
	char *target; /* symlink */
	size_t target_len;
	struct exattr *xattrs;
	size_t n_xattrs;
	struct child *children; /* directories: without "." and ".." until write */
	size_t n_children, cap_children;
	struct erofs_node *parent; /* directories */
	uint32_t nlink; /* non-directories: names; directories: computed */
	/* layout, filled by erofs_write_fd */
	bool queued;
	bool compact;
	uint8_t layout;
	uint32_t n_shared;
	uint32_t xsize; /* inline xattr body, 0 if none */
	uint32_t tail; /* bytes after the inode and xattrs: inline data or chunk map */
	uint32_t data_blocks; /* blocks of its own in the data area */
	uint32_t data_blkaddr;
	uint32_t dir_blocks, dir_tail; /* directories: blocks, bytes in the last one */
	uint8_t chunkbits; /* chunk-based: chunk size = block << chunkbits */
	uint64_t nid;
	uint32_t ino;
};

struct erofs_tree {
	struct erofs_node *root;
	struct erofs_node **all; /* every inode, for freeing */
	size_t n_all, cap_all;
};

/* ------------------------------------------------------------ building -- */

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

static int dir_append(struct erofs_node *dir, const char *name, size_t len, struct erofs_node *node)
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
	r = dir_append(dir, name, len, n);
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
	r = dir_append(dir, name, len, node);
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

/* -------------------------------------------------------------- layout -- */

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

static uint32_t xattr_entry_size(const struct exattr *x)
{
	return (uint32_t)align_up(4 + x->sfx_len + x->size, 4);
}

static int child_cmp(const void *a, const void *b)
{
	const struct child *x = a, *y = b;
	int c = memcmp(x->name, y->name, MIN(x->len, y->len));

	if (c)
		return c;
	return (int)x->len - (int)y->len;
}

/* Add "." and ".." and sort every name.  Returns 0 or -errno. */
static int dir_prepare(struct erofs_node *d)
{
	size_t i;
	int r;

	r = dir_append(d, ".", 1, d);
	if (r < 0)
		return r;
	r = dir_append(d, "..", 2, d->parent);
	if (r < 0)
		return r;
	qsort(d->children, d->n_children, sizeof(*d->children), child_cmp);
	for (i = 1; i < d->n_children; i++)
		if (!child_cmp(&d->children[i - 1], &d->children[i]))
			return -EEXIST;
	return 0;
}

/* Directory blocks: greedy, in name order.  Calls FN (if any) with the
 * range of entries of each block; returns the block count and the bytes
 * used in the last block. */
static void dir_split(const struct erofs_node *d, uint32_t *ret_blocks, uint32_t *ret_tail,
                      void (*fn)(const struct erofs_node *d, size_t from, size_t to, bool last, void *ud),
                      void *ud)
{
	size_t i, from = 0, used = 0;
	uint32_t blocks = 1;

	for (i = 0; i < d->n_children; i++) {
		size_t need = DIRENT_SIZE + d->children[i].len;

		if (used + need > BLK) {
			if (fn)
				fn(d, from, i, false, ud);
			blocks++;
			from = i;
			used = 0;
		}
		used += need;
	}
	if (fn)
		fn(d, from, d->n_children, true, ud);
	*ret_blocks = blocks;
	*ret_tail = (uint32_t)used;
}

/* Shared xattrs: every (name, value) pair held by two or more inodes
 * whose entry is larger than a 4-byte reference is stored once. */
struct xkey {
	const struct exattr *x;
	uint32_t count;
	int64_t id;
};
struct xtable {
	struct xkey *v;
	size_t cap, n;
};

static uint64_t xattr_hash(const struct exattr *x)
{
	uint64_t h = 1469598103934665603ull;
	size_t i;

	for (i = 0; x->name[i]; i++)
		h = (h ^ (unsigned char)x->name[i]) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (i = 0; i < x->size; i++)
		h = (h ^ x->value[i]) * 1099511628211ull;
	return h;
}

static bool xattr_same(const struct exattr *a, const struct exattr *b)
{
	return a->size == b->size && !strcmp(a->name, b->name) &&
	       (!a->size || !memcmp(a->value, b->value, a->size));
}

static struct xkey *xtable_find(struct xtable *t, const struct exattr *x, bool insert)
{
	size_t i = (size_t)xattr_hash(x) & (t->cap - 1);

	for (;; i = (i + 1) & (t->cap - 1)) {
		if (!t->v[i].x) {
			if (!insert)
				return NULL;
			t->v[i].x = x;
			t->v[i].id = -1;
			t->n++;
			return &t->v[i];
		}
		if (xattr_same(t->v[i].x, x))
			return &t->v[i];
	}
}

static int ts_cmp(const void *a, const void *b)
{
	const struct timespec *x = a, *y = b;

	if (x->tv_sec != y->tv_sec)
		return x->tv_sec < y->tv_sec ? -1 : 1;
	if (x->tv_nsec != y->tv_nsec)
		return x->tv_nsec < y->tv_nsec ? -1 : 1;
	return 0;
}

/* The mtime most inodes have: compact inodes carry it for free. */
static int common_mtime(struct erofs_node **order, size_t n, struct timespec *ret)
{
	_cleanup_free_ struct timespec *v = malloc(n * sizeof(*v));
	size_t i, run = 0, best = 0;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		v[i] = order[i]->mtime;
	qsort(v, n, sizeof(*v), ts_cmp);
	*ret = v[0];
	for (i = 0; i < n; i++) {
		run = (i && !ts_cmp(&v[i - 1], &v[i])) ? run + 1 : 1;
		if (run > best) {
			best = run;
			*ret = v[i];
		}
	}
	return 0;
}

struct layout {
	struct erofs_node **order; /* inodes, breadth first; order[0] is the root */
	size_t n;
	struct timespec build_time;
	struct xtable xt;
	const struct exattr **shared; /* shared table, by id order */
	size_t n_shared;
	uint64_t inode_end; /* end of the inode area */
	uint32_t xattr_blkaddr, shared_bytes;
	uint32_t data_blkaddr; /* first data block */
	uint32_t blocks; /* total */
	bool chunked;
};

static void layout_free(struct layout *l)
{
	free(l->order);
	free(l->xt.v);
	free(l->shared);
}

static int layout_order(struct erofs_tree *t, struct layout *l)
{
	size_t i, j;
	int r;

	l->order = malloc(t->n_all * sizeof(*l->order));
	if (!l->order)
		return -ENOMEM;
	for (i = 0; i < t->n_all; i++)
		t->all[i]->queued = false;
	l->order[l->n++] = t->root;
	t->root->queued = true;
	for (i = 0; i < l->n; i++) {
		struct erofs_node *d = l->order[i];
		uint32_t subdirs = 0;

		if (!S_ISDIR(d->mode))
			continue;
		r = dir_prepare(d);
		if (r < 0)
			return r;
		for (j = 0; j < d->n_children; j++) {
			struct erofs_node *c = d->children[j].node;

			if (c == d || c == d->parent)
				continue;
			if (S_ISDIR(c->mode))
				subdirs++;
			if (!c->queued) {
				c->queued = true;
				l->order[l->n++] = c;
			}
		}
		d->nlink = 2 + subdirs;
	}
	return 0;
}

static int layout_xattrs(struct layout *l)
{
	size_t i, j, total = 0;
	uint32_t off = 0;

	for (i = 0; i < l->n; i++)
		total += l->order[i]->n_xattrs;
	l->xt.cap = 16;
	while (l->xt.cap < total * 2)
		l->xt.cap *= 2;
	l->xt.v = calloc(l->xt.cap, sizeof(*l->xt.v));
	l->shared = malloc((total ? total : 1) * sizeof(*l->shared));
	if (!l->xt.v || !l->shared)
		return -ENOMEM;
	for (i = 0; i < l->n; i++)
		for (j = 0; j < l->order[i]->n_xattrs; j++)
			xtable_find(&l->xt, &l->order[i]->xattrs[j], true)->count++;
	for (i = 0; i < l->n; i++) {
		struct erofs_node *n = l->order[i];
		uint32_t size = XATTR_HEADER_SIZE;

		n->n_shared = 0;
		if (!n->n_xattrs) {
			n->xsize = 0;
			continue;
		}
		for (j = 0; j < n->n_xattrs; j++) {
			struct exattr *x = &n->xattrs[j];
			struct xkey *k = xtable_find(&l->xt, x, false);

			x->shared_id = -1;
			if (k->count >= 2 && xattr_entry_size(x) > 4 && n->n_shared < 255) {
				if (k->id < 0) {
					k->id = off / 4;
					off += xattr_entry_size(x);
					l->shared[l->n_shared++] = x;
				}
				x->shared_id = k->id;
				n->n_shared++;
				size += 4;
			} else {
				size += xattr_entry_size(x);
			}
		}
		if ((size - XATTR_HEADER_SIZE) / 4 + 1 > UINT16_MAX)
			return -E2BIG;
		n->xsize = size;
	}
	l->shared_bytes = off;
	return 0;
}

static bool fits_compact(const struct erofs_node *n, const struct timespec *bt)
{
	return !ts_cmp(&n->mtime, bt) && n->uid <= UINT16_MAX && n->gid <= UINT16_MAX &&
	       n->nlink <= UINT16_MAX && n->size <= UINT32_MAX;
}

static int layout_inodes(struct layout *l)
{
	uint64_t pos = SUPER_OFFSET + 128, data;
	size_t i;

	for (i = 0; i < l->n; i++) {
		struct erofs_node *n = l->order[i];
		uint32_t isize, rec;

		if (S_ISDIR(n->mode)) {
			dir_split(n, &n->dir_blocks, &n->dir_tail, NULL, NULL);
			n->size = (uint64_t)(n->dir_blocks - 1) * BLK + n->dir_tail;
		}
		n->compact = fits_compact(n, &l->build_time);
		isize = n->compact ? 32 : 64;
		n->tail = 0;
		n->data_blocks = 0;
		n->layout = LAYOUT_FLAT_PLAIN;
		if (S_ISDIR(n->mode) || S_ISLNK(n->mode)) {
			uint32_t tail = S_ISDIR(n->mode) ? n->dir_tail : (uint32_t)n->target_len;
			uint32_t full = S_ISDIR(n->mode) ? n->dir_blocks - 1 : 0;

			if (tail < BLK && isize + n->xsize + tail <= BLK) {
				n->layout = LAYOUT_FLAT_INLINE;
				n->tail = tail;
				n->data_blocks = full;
			} else {
				n->data_blocks = full + 1;
			}
		} else if (S_ISREG(n->mode) && n->size > 0) {
			uint64_t chunks;

			n->layout = LAYOUT_CHUNK_BASED;
			n->chunkbits = 0;
			while (n->chunkbits < CHUNK_BLKBITS_MAX && ((uint64_t)BLK << n->chunkbits) < n->size)
				n->chunkbits++;
			chunks = (n->size + ((uint64_t)BLK << n->chunkbits) - 1) >> (BLKBITS + n->chunkbits);
			if (chunks > (UINT32_MAX - 128) / 4)
				return -EFBIG;
			n->tail = (uint32_t)chunks * 4;
			l->chunked = true;
		}
		rec = isize + n->xsize + n->tail;
		if (rec <= BLK && pos % BLK + rec > BLK)
			pos = align_up(pos, BLK);
		n->nid = pos / 32;
		n->ino = (uint32_t)(i + 1);
		pos += align_up(rec, 32);
	}
	if (l->order[0]->nid > UINT16_MAX)
		return -EFBIG;
	l->inode_end = pos;
	pos = align_up(pos, BLK);
	l->xattr_blkaddr = l->shared_bytes ? (uint32_t)(pos / BLK) : 0;
	pos = align_up(pos + l->shared_bytes, BLK);
	data = pos / BLK;
	l->data_blkaddr = (uint32_t)data;
	for (i = 0; i < l->n; i++) {
		struct erofs_node *n = l->order[i];

		n->data_blkaddr = n->data_blocks ? (uint32_t)data : 0;
		data += n->data_blocks;
		if (data > UINT32_MAX)
			return -EFBIG;
	}
	l->blocks = (uint32_t)data;
	return 0;
}

/* --------------------------------------------------------------- write -- */

struct wbuf {
	int fd;
	unsigned char *buf;
	size_t len, cap;
	uint64_t off; /* bytes written or buffered so far */
};

static int wb_flush(struct wbuf *w)
{
	int r = write_all(w->fd, w->buf, w->len);

	w->len = 0;
	return r;
}

static int wb_put(struct wbuf *w, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n) {
		size_t k = MIN(n, w->cap - w->len);

		memcpy(w->buf + w->len, s, k);
		w->len += k;
		w->off += k;
		s += k;
		n -= k;
		if (w->len == w->cap) {
			int r = wb_flush(w);

			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* Zeros up to absolute offset POS. */
static int wb_zero_to(struct wbuf *w, uint64_t pos)
{
	static const unsigned char zero[256];

	while (w->off < pos) {
		int r = wb_put(w, zero, (size_t)MIN(pos - w->off, sizeof(zero)));

		if (r < 0)
			return r;
	}
	return 0;
}

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}
static void put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint8_t file_type(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return FT_REG;
	case S_IFDIR:
		return FT_DIR;
	case S_IFCHR:
		return FT_CHR;
	case S_IFBLK:
		return FT_BLK;
	case S_IFIFO:
		return FT_FIFO;
	case S_IFSOCK:
		return FT_SOCK;
	case S_IFLNK:
		return FT_SYMLINK;
	}
	return FT_UNKNOWN;
}

/* The kernel's new_encode_dev(). */
static uint32_t encode_dev(dev_t d)
{
	uint32_t ma = major(d), mi = minor(d);

	return (mi & 0xff) | (ma << 8) | ((mi & ~0xffu) << 12);
}

static int write_super(struct wbuf *w, const struct layout *l)
{
	unsigned char sb[128] = {0};
	int r;

	put32(sb + 0, SUPER_MAGIC);
	sb[12] = BLKBITS;
	put16(sb + 14, (uint16_t)l->order[0]->nid);
	put64(sb + 16, l->n);
	put64(sb + 24, (uint64_t)l->build_time.tv_sec);
	put32(sb + 32, (uint32_t)l->build_time.tv_nsec);
	put32(sb + 36, l->blocks);
	put32(sb + 40, 0); /* meta_blkaddr */
	put32(sb + 44, l->xattr_blkaddr);
	if (getrandom(sb + 48, 16, 0) != 16)
		memset(sb + 48, 0x5a, 16);
	memcpy(sb + 64, "vunify", 6);
	put32(sb + 80, l->chunked ? FEATURE_INCOMPAT_CHUNKED_FILE : 0);
	r = wb_zero_to(w, SUPER_OFFSET);
	if (r < 0)
		return r;
	return wb_put(w, sb, sizeof(sb));
}

static int write_xattr_entry(struct wbuf *w, const struct exattr *x)
{
	unsigned char h[4];
	int r;

	h[0] = x->sfx_len;
	h[1] = x->index;
	put16(h + 2, (uint16_t)x->size);
	r = wb_put(w, h, 4);
	if (r == 0)
		r = wb_put(w, x->name + x->sfx_off, x->sfx_len);
	if (r == 0 && x->size)
		r = wb_put(w, x->value, x->size);
	if (r == 0)
		r = wb_zero_to(w, align_up(w->off, 4));
	return r;
}

struct dirwrite {
	struct wbuf *w;
	int err;
	bool inline_tail; /* the last block goes inline, not here */
	bool tail_only; /* write only the last block */
};

static void dir_block(const struct erofs_node *d, size_t from, size_t to, bool last, void *ud)
{
	struct dirwrite *dw = ud;
	uint64_t start = dw->w->off;
	unsigned char de[DIRENT_SIZE];
	size_t i, nameoff = (to - from) * DIRENT_SIZE;

	if (dw->err || (last && dw->inline_tail && !dw->tail_only) || (!last && dw->tail_only))
		return;
	for (i = from; i < to && !dw->err; i++) {
		const struct child *c = &d->children[i];

		put64(de, c->node->nid);
		put16(de + 8, (uint16_t)nameoff);
		de[10] = file_type(c->node->mode);
		de[11] = 0;
		dw->err = wb_put(dw->w, de, sizeof(de));
		nameoff += c->len;
	}
	for (i = from; i < to && !dw->err; i++)
		dw->err = wb_put(dw->w, d->children[i].name, d->children[i].len);
	/* a block in the data area is padded to its end; an inline tail is not */
	if (!dw->err && !(last && dw->tail_only))
		dw->err = wb_zero_to(dw->w, start + BLK);
}

static int write_inode(struct wbuf *w, const struct layout *l, const struct erofs_node *n)
{
	unsigned char ib[64] = {0};
	uint16_t icount = n->xsize ? (uint16_t)((n->xsize - XATTR_HEADER_SIZE) / 4 + 1) : 0;
	uint32_t iu = 0;
	size_t j;
	int r;

	(void)l;
	if (S_ISCHR(n->mode) || S_ISBLK(n->mode))
		iu = encode_dev(n->rdev);
	else if (n->layout == LAYOUT_CHUNK_BASED)
		iu = n->chunkbits; /* format: chunk blkbits, 4-byte block map */
	else if (n->data_blocks)
		iu = n->data_blkaddr;
	r = wb_zero_to(w, n->nid * 32);
	if (r < 0)
		return r;
	if (n->compact) {
		put16(ib + 0, (uint16_t)(n->layout << 1));
		put16(ib + 2, icount);
		put16(ib + 4, (uint16_t)n->mode);
		put16(ib + 6, (uint16_t)n->nlink);
		put32(ib + 8, (uint32_t)n->size);
		put32(ib + 16, iu);
		put32(ib + 20, n->ino);
		put16(ib + 24, (uint16_t)n->uid);
		put16(ib + 26, (uint16_t)n->gid);
		r = wb_put(w, ib, 32);
	} else {
		put16(ib + 0, (uint16_t)(n->layout << 1 | 1));
		put16(ib + 2, icount);
		put16(ib + 4, (uint16_t)n->mode);
		put64(ib + 8, n->size);
		put32(ib + 16, iu);
		put32(ib + 20, n->ino);
		put32(ib + 24, n->uid);
		put32(ib + 28, n->gid);
		put64(ib + 32, (uint64_t)n->mtime.tv_sec);
		put32(ib + 40, (uint32_t)n->mtime.tv_nsec);
		put32(ib + 44, n->nlink);
		r = wb_put(w, ib, 64);
	}
	if (r < 0)
		return r;
	if (n->xsize) {
		unsigned char h[XATTR_HEADER_SIZE] = {0};

		h[4] = (uint8_t)n->n_shared;
		r = wb_put(w, h, sizeof(h));
		for (j = 0; r == 0 && j < n->n_xattrs; j++) {
			unsigned char id[4];

			if (n->xattrs[j].shared_id < 0)
				continue;
			put32(id, (uint32_t)n->xattrs[j].shared_id);
			r = wb_put(w, id, 4);
		}
		for (j = 0; r == 0 && j < n->n_xattrs; j++)
			if (n->xattrs[j].shared_id < 0)
				r = write_xattr_entry(w, &n->xattrs[j]);
		if (r < 0)
			return r;
	}
	if (n->layout == LAYOUT_CHUNK_BASED) {
		unsigned char e[4];
		uint32_t k;

		put32(e, NULL_ADDR);
		for (k = 0; r == 0 && k < n->tail / 4; k++)
			r = wb_put(w, e, 4);
	} else if (n->layout == LAYOUT_FLAT_INLINE && S_ISLNK(n->mode)) {
		r = wb_put(w, n->target, n->target_len);
	} else if (n->layout == LAYOUT_FLAT_INLINE && S_ISDIR(n->mode)) {
		struct dirwrite dw = {.w = w, .inline_tail = true, .tail_only = true};
		uint32_t b, t;

		dir_split(n, &b, &t, dir_block, &dw);
		r = dw.err;
	}
	return r;
}

static int write_data(struct wbuf *w, const struct erofs_node *n)
{
	uint64_t start = (uint64_t)n->data_blkaddr * BLK;
	int r;

	if (!n->data_blocks)
		return 0;
	r = wb_zero_to(w, start);
	if (r < 0)
		return r;
	if (S_ISLNK(n->mode)) {
		r = wb_put(w, n->target, n->target_len);
	} else {
		struct dirwrite dw = {.w = w, .inline_tail = n->layout == LAYOUT_FLAT_INLINE};
		uint32_t b, t;

		dir_split(n, &b, &t, dir_block, &dw);
		r = dw.err;
	}
	if (r == 0)
		r = wb_zero_to(w, start + (uint64_t)n->data_blocks * BLK);
	return r;
}

int erofs_write_fd(struct erofs_tree *t, int fd)
{
	struct layout l = {0};
	struct wbuf w = {.fd = fd, .cap = 1 << 20};
	size_t i;
	int r;

	r = layout_order(t, &l);
	if (r == 0)
		r = common_mtime(l.order, l.n, &l.build_time);
	if (r == 0)
		r = layout_xattrs(&l);
	if (r == 0)
		r = layout_inodes(&l);
	if (r == 0) {
		w.buf = malloc(w.cap);
		if (!w.buf)
			r = -ENOMEM;
	}
	if (r == 0)
		r = write_super(&w, &l);
	for (i = 0; r == 0 && i < l.n; i++)
		r = write_inode(&w, &l, l.order[i]);
	if (r == 0 && l.shared_bytes) {
		r = wb_zero_to(&w, (uint64_t)l.xattr_blkaddr * BLK);
		for (i = 0; r == 0 && i < l.n_shared; i++)
			r = write_xattr_entry(&w, l.shared[i]);
	}
	for (i = 0; r == 0 && i < l.n; i++)
		r = write_data(&w, l.order[i]);
	if (r == 0)
		r = wb_zero_to(&w, (uint64_t)l.blocks * BLK);
	if (r == 0)
		r = wb_flush(&w);
	/* "." and ".." go again so a tree can be written twice */
	for (i = 0; i < l.n; i++) {
		struct erofs_node *d = l.order[i];
		size_t j, k = 0;

		if (!S_ISDIR(d->mode) || !d->n_children)
			continue;
		for (j = 0; j < d->n_children; j++) {
			struct child *c = &d->children[j];
			bool dot = (c->len == 1 && c->name[0] == '.') ||
			           (c->len == 2 && c->name[0] == '.' && c->name[1] == '.');

			if (dot)
				free(c->name);
			else
				d->children[k++] = *c;
		}
		d->n_children = k;
	}
	free(w.buf);
	layout_free(&l);
	return r;
}

int erofs_write_at(struct erofs_tree *t, int dir_fd, const char *name)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (asprintf(&tmp, ".%s.tmp", name) < 0)
		return -ENOMEM;
	if (unlinkat(dir_fd, tmp, 0) < 0 && errno != ENOENT)
		return neg_errno();
	fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return neg_errno();
	r = erofs_write_fd(t, fd);
	if (r == 0 && fsync(fd) < 0)
		r = neg_errno();
	if (r == 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
		r = neg_errno();
	if (r < 0) {
		unlinkat(dir_fd, tmp, 0);
		return r;
	}
	return fsync_dir(dir_fd);
}
