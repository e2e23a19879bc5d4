/* The interface both lower-layer layouts implement.
 *
 * redirect: the lower layer is HOME/meta, on the guest's own filesystem.
 *   Each unified inode is a sparse stub carrying the file's metadata plus
 *   trusted.overlay.metacopy and trusted.overlay.redirect="/XX/HASH"; the
 *   pool's objects/ is mounted as a data-only lower layer.  Objects are
 *   keyed by content alone.
 * link: the lower layer is POOL/roots/GUEST, hard links into objects/.
 *   The object inode *is* the file the guest sees, so objects are keyed by
 *   content and metadata. */
#ifndef VUNIFY_LAYOUT_H
#define VUNIFY_LAYOUT_H

#include <stdbool.h>
#include <sys/stat.h>

#include "hash.h"
#include "pool.h"
#include "xattr.h"

/* A guest inode as unify saw it in the upper layer. */
struct file_meta {
	struct stat st;
	struct xattr_list xattrs; /* without trusted.overlay.* */
	unsigned char hash[HASH_LEN];
};

/* Where a layout places things for one guest. */
struct dircache;

struct layout_target {
	struct pool *pool;
	struct dircache *lower_dc; /* parents of lower paths (creates them) */
	int lower_fd; /* HOME/meta or POOL/roots/NAME */
	int staging_fd; /* HOME/staging (redirect) or POOL/tmp (link) */
};

struct layout_ops {
	enum layout_kind kind;
	/* Object name for this inode (OBJECT_NAME_MAX bytes).  Returns 0 or
	 * -errno. */
	int (*object_name)(const struct file_meta *m, char *ret_name);
	/* Give a freshly written temp object the metadata it must carry.
	 * Returns 0 or -errno. */
	int (*object_finish)(int tmp_fd, const struct file_meta *m);
	/* Make PATHS (relative to the lower layer; one hard-link group) show
	 * the object NAME with metadata M.  All or nothing: on failure no path
	 * was changed in a way the upper does not still hide.  Returns 0 or
	 * -errno (-EISDIR/-ENOTDIR: the lower has a directory in the way;
	 * -EMLINK: the object has too many links). */
	int (*place)(const struct layout_target *t, const struct file_meta *m, const char *name,
	             char *const *paths, size_t n_paths);
	/* Which object does the lower entry (dir_fd, name) reference?  (The
	 * redirect layout reads only the redirect; fsck checks metacopy.)
	 * Returns 1 and fills ret_name, 0 when the entry is not a unified file
	 * (e.g. a directory), or -errno for a malformed entry (-EBADMSG). */
	int (*lower_ref)(struct pool *p, int dir_fd, const char *entry, const struct stat *st,
	                 char *ret_name);
};

/* fsck: does the object open at fd (named NAME) carry the owner, mode and
 * xattrs its layout says?  redirect: root:root, mode 0444, no xattrs (with
 * REPAIR put right).  link: the metadata NAME's key was made from (never
 * repaired: the key is a hash).  Returns 0 if so, 1 if not (*ret_problem
 * says what, *ret_fixed whether it was put right), or -errno. */
int layout_check_object(struct pool *p, int fd, const char *name, bool repair, const char **ret_problem,
                        bool *ret_fixed);

/* fsck --repair, link layout: make a lower file that lost its object an
 * object again (it holds the content and metadata).  Returns 0 or -errno. */
int link_relink(struct pool *p, int dir_fd, const char *entry);

extern const struct layout_ops layout_redirect_ops;
extern const struct layout_ops layout_link_ops;
extern const struct layout_ops layout_link_v1_ops;

/* The layout of pool P (format-1 link pools: layout_link_v1_ops). */
const struct layout_ops *layout_ops_for(const struct pool *p);

/* Shared by both layouts (layout_common.c). */

/* Remove placed names again after a failure. */
void layout_unplace(int lower_fd, char *const *paths, size_t n);

/* Open (creating as needed) the directory in the lower layer that holds
 * RELPATH.  A non-directory in the way is replaced by a directory: this is
 * only called for paths whose directories exist in the upper layer, which
 * hides whatever the lower has there.  Returns an fd or -errno. */
int layout_open_parent(int lower_fd, const char *relpath, const char **ret_name);

/* Open directory NAME under fd, creating it, or replacing a hidden
 * non-directory there.  Returns an fd or -errno. */
int layout_open_dir(int fd, const char *name);

/* Remove whatever is at NAME under dir_fd (a directory with its subtree);
 * only for lower entries the upper hides.  Returns 0 or -errno. */
int layout_clear_entry(int dir_fd, const char *name);

/* Hard-link the inode of fd (any fd, O_PATH too) as NAME under dir_fd,
 * replacing a hidden lower entry there.  Returns 0 or -errno (-EMLINK). */
int layout_link_in_place(int fd, int dir_fd, const char *name);

#endif
