/* Faithful copies: file data (sparse-aware) and whole trees. */
#ifndef VUNIFY_COPY_H
#define VUNIFY_COPY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* Copy SIZE bytes of data from src_fd to dst_fd (both at offset 0; dst
 * empty).  Holes stay holes: only data extents are copied (with
 * copy_file_range, which reflinks where the filesystem can), and dst is
 * extended to SIZE with ftruncate.  Returns 0 or -errno (-E_CHANGED if
 * the source shrank). */
int copy_data(int src_fd, int dst_fd, uint64_t size);

enum copy_tree_flags {
	COPY_TREE_DEFAULT = 0,
	/* Copy every name as a file of its own, even where the source
	 * shows one inode: the link layout shows identical files of a guest
	 * as one inode though they were never linked. */
	COPY_TREE_NO_HARDLINKS = 1 << 0,
};

/* Copy the tree under src_fd into the (empty, existing) directory dst_fd:
 * every file type, mode, owner, times, xattrs (ACLs and capabilities
 * included, trusted.overlay.* left out), hard links (as links), sparse
 * files as sparse.  Never follows a symlink.  The root directory's own
 * metadata is copied too.  On failure *ret_path (if non-NULL) is set to a
 * malloc'd relative path of the entry that failed.  A character device
 * 0:0 cannot be represented in an overlayfs upper layer (it means
 * "whiteout") and is refused with -EINVAL.  Returns 0 or -errno. */
int copy_tree(int src_fd, int dst_fd, unsigned flags, char **ret_path);

/* The rule a tree must meet to become an overlayfs upper layer, the same
 * for a copy (copy_tree) and a move (add --from --move): an entry for
 * which upper_refuses() is true (a character device 0:0, which overlayfs
 * reads as "deleted") refuses the whole tree, and trusted.overlay.*
 * xattrs (which steer overlayfs: opaque, redirect, metacopy, whiteout)
 * are never kept. */
bool upper_refuses(const struct stat *st);

/* Make the tree under src_fd meet that rule in place, before it is renamed
 * into a home: first a read-only pass that refuses (-EINVAL) a tree
 * holding an entry upper_refuses() refuses, changing nothing; then every
 * trusted.overlay.* xattr is removed.  Safe to stop at any point and run
 * again (what it removes, a copy would have left out).  On failure
 * *ret_path (if non-NULL) is set to a malloc'd relative path of the entry
 * (may be NULL if memory ran out).  Returns 0 or -errno. */
int tree_prepare_move(int src_fd, char **ret_path);

/* Give the regular file NAME in dir_fd an inode of its own: a faithful copy
 * (data sparse, owner, mode, times, every xattr) is made in staging_fd
 * (same filesystem as dir_fd), fsync'd, and renamed over NAME, so NAME
 * shows the same file at every instant and its old inode (an object other
 * names share) is left alone.  A kill leaves at most a temp file in
 * staging_fd.  Returns 0 or -errno. */
int copy_file_unshare(int dir_fd, const char *name, int staging_fd);

#endif
