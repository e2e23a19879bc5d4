/* Copying a lower layer read-only (online unify's prepared lower). */
#ifndef VUNIFY_LOWER_COPY_H
#define VUNIFY_LOWER_COPY_H

#include <stdbool.h>
#include <sys/stat.h>

/* A copy of the non-directory NAME of src_dir (stat ST) as NAME in
 * dst_dir: a hard link of the same inode when BY_LINK (link layout: the
 * same object), else a new inode of the same size (sparse: a stub's data
 * comes from its object), metadata and xattrs.  Returns 0 or -errno. */
int lower_copy_entry(int src_dir, const char *name, const struct stat *st, int dst_dir, bool by_link);

/* Copy the directory tree src_fd into a new directory NAME of dst_dir.
 * Returns 0 or -errno (a partial copy is left for the caller to remove). */
int lower_copy_tree(int src_fd, int dst_dir, const char *name, bool by_link);

#endif
