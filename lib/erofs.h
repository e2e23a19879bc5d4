/* An EROFS image writer: a read-only filesystem tree built in memory and
 * written to a file in one sequential pass.
 *
 * Its purpose is the redirect layout's metadata layer as one image per
 * guest: directories, metacopy stubs (regular files that report their
 * real size but hold no data blocks: chunk-based inodes whose one chunk is
 * a hole), symlinks, devices, fifos, sockets, hard-link groups as one
 * inode, with mode, owner, mtime (ns) and xattrs of the namespaces the
 * kernel's erofs knows (user., trusted., security., system.posix_acl_*).
 *
 * The on-disk format is the kernel's (fs/erofs/erofs_fs.h,
 * Documentation/filesystems/erofs.rst); only uncompressed features that
 * every erofs kernel since 5.15 reads are used (4 KiB blocks, compact and
 * extended inodes, inline and shared xattrs, inline tails, chunk-based
 * files).  The layout written: superblock in block 0, then every inode in
 * breadth-first order (a directory's children next to each other; inline
 * xattrs, tail data and chunk maps right after each inode, a record never
 * crossing a block boundary), then the shared xattr table, then the
 * directory blocks and long symlink targets in the same order.
 *
 * The same tree gives the same image, byte for byte (no random uuid, no
 * build clock), so an image can be checked by writing it again.
 *
 * Refused: names that are empty, ".", "..", longer than 255 bytes or hold
 * '/' (-EINVAL); duplicate names in one directory (-EEXIST, at write);
 * xattr names outside those namespaces (-EOPNOTSUPP); xattr values over
 * 65535 bytes (-E2BIG). */
#ifndef VUNIFY_EROFS_H
#define VUNIFY_EROFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define EROFS_BLOCK_SIZE 4096
#define EROFS_NAME_MAX 255

struct erofs_tree;
struct erofs_node;

/* A new tree holding only its root directory (mode 0755, root-owned,
 * mtime 0; erofs_node_set_stat changes that).  Returns 0 or -ENOMEM. */
int erofs_tree_new(struct erofs_tree **ret_tree);

void erofs_tree_free(struct erofs_tree *t);

struct erofs_node *erofs_tree_root(struct erofs_tree *t);

/* Set mode (permission bits; the type stays), uid, gid and mtime of NODE
 * from ST.  Returns 0. */
int erofs_node_set_stat(struct erofs_node *node, const struct stat *st);

/* Add NAME to directory DIR as a new inode described by ST: its type and
 * permission bits, uid, gid, mtime, st_size for regular files (a stub of
 * that size, no data), st_rdev for devices.  TARGET is the symlink target
 * (1..4095 bytes) and NULL for every other type.  *ret_node (optional)
 * receives the new inode, owned by the tree.  Returns 0 or -errno
 * (-EINVAL: bad name, type or target; -ENOTDIR: DIR is not a directory). */
int erofs_add(struct erofs_tree *t, struct erofs_node *dir, const char *name, const struct stat *st,
              const char *target, struct erofs_node **ret_node);

/* Add NAME to directory DIR as one more link of NODE (not a directory):
 * a hard-link group is one inode whose link count is its number of
 * names.  Returns 0 or -errno (-EPERM for a directory). */
int erofs_add_link(struct erofs_tree *t, struct erofs_node *dir, const char *name, struct erofs_node *node);

/* Set xattr NAME of NODE to VALUE (SIZE bytes; replaces an earlier value
 * of that name).  Returns 0 or -errno. */
int erofs_set_xattr(struct erofs_node *node, const char *name, const void *value, size_t size);

/* Write the image to FD from its current offset (which must be 0 for a
 * mountable image), sequentially.  Returns 0 or -errno. */
int erofs_write_fd(struct erofs_tree *t, int fd);

/* Write the image as NAME in DIR_FD so that NAME switches from its old
 * content (if any) to the whole new image at once:
 *   1. write it to ".NAME.tmp" (created fresh, mode 0600), fsync it;
 *   2. rename it over NAME, fsync DIR_FD.
 * A crash before 2 leaves NAME as it was (and a stale temp file, which
 * the next write replaces); after 2, NAME is the new image.
 * Returns 0 or -errno. */
int erofs_write_at(struct erofs_tree *t, int dir_fd, const char *name);

/* A tree holding what is below DIR_FD (and DIR_FD's own attributes as the
 * root's): every entry's type, mode, owner, mtime and xattrs (all of them,
 * trusted.overlay.* included), symlink targets, device numbers, regular
 * files as stubs of their size; entries that are hard links of each other
 * inside the tree become one inode.  Nothing is followed.  On failure,
 * *ret_failed (optional) receives a malloc'd path of the entry that
 * failed, relative to DIR_FD.  Returns 0 or -errno. */
int erofs_tree_from_dir(int dir_fd, struct erofs_tree **ret_tree, char **ret_failed);

struct walk_entry;

/* How erofs_tree_import treats a tree (erofs_tree_from_dir: all zero). */
struct erofs_import {
	unsigned xattr_flags; /* xattr.h's XATTR_* for every entry */
	/* Called for each regular file (its first name in the tree) before
	 * it is added: returns 0 to add it, 1 to leave it out (and its other
	 * names), or -errno.  Writing a path of 1..SIZE-1 bytes to REDIRECT
	 * makes it a metacopy stub redirecting there (overlayfs's
	 * trusted.overlay.metacopy and .redirect). */
	int (*file)(const struct walk_entry *e, void *ud, char *redirect, size_t size);
	void *ud;
};

/* erofs_tree_from_dir as HOW says. */
int erofs_tree_import(int dir_fd, const struct erofs_import *how, struct erofs_tree **ret_tree,
                      char **ret_failed);

#endif
