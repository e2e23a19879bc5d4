/* EROFS image writer: the image streamed front to back through one
 * buffer, from a layout (erofs_layout.c), so the file is written
 * sequentially and never read back. */
#define _GNU_SOURCE
#include "erofs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

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

static int write_super(struct wbuf *w, const struct erofs_layout *l)
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
	/* the uuid: from the tree, so that equal trees give equal images */
	put64(sb + 48, l->uuid[0]);
	put64(sb + 56, l->uuid[1]);
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

static int write_inode(struct wbuf *w, const struct erofs_layout *l, const struct erofs_node *n)
{
	unsigned char ib[64] = {0};
	uint16_t icount = n->xsize ? (uint16_t)((n->xsize - XATTR_HEADER_SIZE) / 4 + 1) : 0;
	uint32_t iu = 0;
	size_t j;
	int r;

	(void)l;
	if (S_ISCHR(n->mode) || S_ISBLK(n->mode))
		iu = encode_dev(n->rdev);
	else if (n->datalayout == EROFS_INODE_CHUNK_BASED)
		iu = n->chunkbits; /* format: chunk blkbits, 4-byte block map */
	else if (n->data_blocks)
		iu = n->data_blkaddr;
	r = wb_zero_to(w, n->nid * 32);
	if (r < 0)
		return r;
	if (n->compact) {
		put16(ib + 0, (uint16_t)(n->datalayout << 1));
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
		put16(ib + 0, (uint16_t)(n->datalayout << 1 | 1));
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
	if (n->datalayout == EROFS_INODE_CHUNK_BASED) {
		unsigned char e[4];
		uint32_t k;

		put32(e, NULL_ADDR);
		for (k = 0; r == 0 && k < n->tail / 4; k++)
			r = wb_put(w, e, 4);
	} else if (n->datalayout == EROFS_INODE_FLAT_INLINE && S_ISLNK(n->mode)) {
		r = wb_put(w, n->target, n->target_len);
	} else if (n->datalayout == EROFS_INODE_FLAT_INLINE && S_ISDIR(n->mode)) {
		struct dirwrite dw = {.w = w, .inline_tail = true, .tail_only = true};
		uint32_t b, t;

		erofs_dir_split(n, &b, &t, dir_block, &dw);
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
		struct dirwrite dw = {.w = w, .inline_tail = n->datalayout == EROFS_INODE_FLAT_INLINE};
		uint32_t b, t;

		erofs_dir_split(n, &b, &t, dir_block, &dw);
		r = dw.err;
	}
	if (r == 0)
		r = wb_zero_to(w, start + (uint64_t)n->data_blocks * BLK);
	return r;
}

int erofs_write_fd(struct erofs_tree *t, int fd)
{
	struct erofs_layout l = {.uuid = {1469598103934665603ull, 14695981039346656037ull}};
	struct wbuf w = {.fd = fd, .cap = 1 << 20};
	size_t i;
	int r;

	r = erofs_layout_build(t, &l);
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
	erofs_layout_free(&l);
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
