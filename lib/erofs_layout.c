/* EROFS image writer: the layout of an image, in three passes over the
 * inodes (breadth-first order, shared xattrs, sizes and positions), before
 * erofs_write.c streams it (see erofs_internal.h for the kernel's rules). */
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

	r = erofs_dir_append(d, ".", 1, d);
	if (r < 0)
		return r;
	r = erofs_dir_append(d, "..", 2, d->parent);
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
void erofs_dir_split(const struct erofs_node *d, uint32_t *ret_blocks, uint32_t *ret_tail,
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

void erofs_layout_free(struct erofs_layout *l)
{
	free(l->order);
	free(l->xt.v);
	free(l->shared);
}

static int layout_order(struct erofs_tree *t, struct erofs_layout *l)
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

static int layout_xattrs(struct erofs_layout *l)
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

static int layout_inodes(struct erofs_layout *l)
{
	uint64_t pos = SUPER_OFFSET + 128, data;
	size_t i;

	for (i = 0; i < l->n; i++) {
		struct erofs_node *n = l->order[i];
		uint32_t isize, rec;

		if (S_ISDIR(n->mode)) {
			erofs_dir_split(n, &n->dir_blocks, &n->dir_tail, NULL, NULL);
			n->size = (uint64_t)(n->dir_blocks - 1) * BLK + n->dir_tail;
		}
		n->compact = fits_compact(n, &l->build_time);
		l->uuid[0] = (l->uuid[0] ^ n->mode ^ ((uint64_t)n->uid << 20) ^ ((uint64_t)n->gid << 40) ^
		              n->size) *
		             1099511628211ull;
		l->uuid[1] = (l->uuid[1] ^ (uint64_t)n->mtime.tv_sec ^ ((uint64_t)n->mtime.tv_nsec << 32) ^
		              n->nlink ^ n->n_children) *
		             1099511628211ull;
		isize = n->compact ? 32 : 64;
		n->tail = 0;
		n->data_blocks = 0;
		n->datalayout = EROFS_INODE_FLAT_PLAIN;
		if (S_ISDIR(n->mode) || S_ISLNK(n->mode)) {
			uint32_t tail = S_ISDIR(n->mode) ? n->dir_tail : (uint32_t)n->target_len;
			uint32_t full = S_ISDIR(n->mode) ? n->dir_blocks - 1 : 0;

			if (tail < BLK && isize + n->xsize + tail <= BLK) {
				n->datalayout = EROFS_INODE_FLAT_INLINE;
				n->tail = tail;
				n->data_blocks = full;
			} else {
				n->data_blocks = full + 1;
			}
		} else if (S_ISREG(n->mode) && n->size > 0) {
			uint64_t chunks;

			n->datalayout = EROFS_INODE_CHUNK_BASED;
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

int erofs_layout_build(struct erofs_tree *t, struct erofs_layout *l)
{
	int r;

	r = layout_order(t, l);
	if (r == 0)
		r = common_mtime(l->order, l->n, &l->build_time);
	if (r == 0)
		r = layout_xattrs(l);
	if (r == 0)
		r = layout_inodes(l);
	return r;
}
