/* What the faithful copies share: copy_entry.c copies one inode,
 * copy_tree.c walks a tree with it, copy_inplace.c applies the same rules
 * in place (add --from --move, fsck --repair). */
#ifndef VUNIFY_COPY_INTERNAL_H
#define VUNIFY_COPY_INTERNAL_H

#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

#include "walk.h"
#include "xattr.h"

#define ACL_ACCESS "system.posix_acl_access"
#define ACL_DEFAULT "system.posix_acl_default"

static inline void xattr_list_freep(struct xattr_list *l)
{
	xattr_list_free(l);
}
#define _cleanup_xattrs_ __attribute__((cleanup(xattr_list_freep)))

static inline void stat_times(const struct stat *st, struct timespec ts[2])
{
	ts[0] = st->st_atim;
	ts[1] = st->st_mtim;
}

bool xattr_list_has(const struct xattr_list *l, const char *name);

/* A new inode below a directory with a default ACL got ACLs of its own;
 * drop those the source does not have.  Returns 0 or -errno. */
int strip_inherited_acls(int fd, bool o_path, bool is_dir, const struct xattr_list *src);

/* Copy the walk's entry E (a regular file; a symlink, device, fifo or
 * socket) into DST_DIR under its name; DEFAULT_ACL: DST_DIR has a default
 * ACL.  Returns 0 or -errno (-E_CHANGED: it changed under us). */
int copy_regular(int dst_dir, bool default_acl, const struct walk_entry *e);
int copy_special(int dst_dir, bool default_acl, const struct walk_entry *e);

/* NAME in DST_DIR as a hard link to FIRST (relative to DST_ROOT).
 * Returns 0 or -errno. */
int copy_hardlink(int dst_root, int dst_dir, const char *first, const char *name);

#endif
