/* The EROFS image writer's shared types (see erofs.h for what it writes and
 * refuses).  erofs_tree.c builds the tree in memory, erofs_layout.c places
 * every inode, xattr and block, erofs_write.c streams the image out.
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
#ifndef VUNIFY_EROFS_INTERNAL_H
#define VUNIFY_EROFS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "erofs.h"

#define BLK EROFS_BLOCK_SIZE
#define BLKBITS 12
#define SUPER_OFFSET 1024
#define SUPER_MAGIC 0xE0F5E1E2u
#define FEATURE_INCOMPAT_CHUNKED_FILE 0x00000004u
#define NULL_ADDR 0xFFFFFFFFu
#define DIRENT_SIZE 12
#define XATTR_HEADER_SIZE 12
#define CHUNK_BLKBITS_MAX 31

/* The on-disk data layout of an inode (i_format bits 1-3; the kernel's
 * names), nothing to do
 * with vunify's lower-layer layouts. */
enum { EROFS_INODE_FLAT_PLAIN = 0, EROFS_INODE_FLAT_INLINE = 2, EROFS_INODE_CHUNK_BASED = 4 };
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
	uint8_t datalayout; /* EROFS_INODE_{FLAT_PLAIN,FLAT_INLINE,CHUNK_BASED} */
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

/* Where everything goes in the image (erofs_layout_build). */
struct erofs_layout {
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
	uint64_t uuid[2]; /* derived from the tree: the same tree, the same image */
};

static inline size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

/* Append NAME (LEN bytes) -> NODE to directory DIR's children.  Returns 0
 * or -ENOMEM. */
int erofs_dir_append(struct erofs_node *dir, const char *name, size_t len, struct erofs_node *node);

/* Lay tree T out: inode order (adding "." and ".." to every directory),
 * build time, shared xattrs, inode and block positions.  L starts zeroed;
 * free it with erofs_layout_free whatever this returns.  Returns 0 or
 * -errno (-EEXIST: a duplicate name, -EFBIG/-E2BIG: too large). */
int erofs_layout_build(struct erofs_tree *t, struct erofs_layout *l);
void erofs_layout_free(struct erofs_layout *l);

/* Directory blocks: greedy, in name order.  Calls FN (if any) with the
 * range of entries of each block; returns the block count and the bytes
 * used in the last block. */
void erofs_dir_split(const struct erofs_node *d, uint32_t *ret_blocks, uint32_t *ret_tail,
                     void (*fn)(const struct erofs_node *d, size_t from, size_t to, bool last, void *ud),
                     void *ud);

#endif
