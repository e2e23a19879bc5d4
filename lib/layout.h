/* The interface both lower-layer layouts implement.
 *
 * redirect: the lower layer is HOME/meta.img, an EROFS image on the guest's
 *   own filesystem (meta_image.h; HOME/meta, stubs on disk, before format 4).
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

enum lower_problem {
	LOWER_BAD_TYPE, /* not a regular file (or directory) */
	LOWER_MALFORMED, /* redirect: stub without valid metacopy/redirect */
	LOWER_UNLINKED, /* link: file not linked to any object */
	LOWER_MISSING_OBJECT, /* redirect: the object is not in the pool */
	LOWER_SIZE_MISMATCH, /* redirect: stub size differs from its object */
};

struct object_map;
struct walk_entry;

/* adopt: a lower layer rebuilt in the pool from the home's description,
 * under a staging NAME in DIR_FD until adopt_commit_lower moves it into
 * place (dir_fd -1, name NULL: nothing staged). */
struct adopt_staging {
	int dir_fd;
	char *name;
};

/* Everything that differs between layouts is here: a third layout is one
 * new file filling this in (and a line in layout.c's registry). */
struct layout_ops {
	enum layout_kind kind;
	const char *name; /* in vunify.conf, the home's id file, init --layout */
	/* The ops of a format-1 pool of this layout (NULL: these). */
	const struct layout_ops *format1;
	/* The format init writes for a pool of this layout (pool.h). */
	unsigned format;

	/* ---- where a guest's lower layer lives ---- */
	/* In the guest's home (it travels with the home), not in the pool. */
	bool lower_in_home;
	/* objects/ is mounted below it as a data-only lower layer. */
	bool data_layer;
	/* The lower layer's record is an EROFS image, HOME/meta.img
	 * (meta_image.h): readers get its tree through a detached mount,
	 * unify changes a private working copy and renames the next image
	 * in (format 4; older pools' HOME/meta migrates). */
	bool lower_image;
	/* An fd of the directory holding the guest's lower layer (the caller
	 * closes it) and the lower layer's name in it.  HOME_FD is the
	 * guest's home.  Returns the fd or -errno. */
	int (*open_lower_parent)(struct pool *p, const struct guest *g, int home_fd, const char **ret_name);
	/* The lower layer's absolute path (malloc'd; NULL: out of memory). */
	char *(*lower_path)(struct pool *p, const struct guest *g);
	/* Make what this layout keeps in a new guest's home.  Returns 0 or
	 * -errno. */
	int (*init_home)(int home_fd);
	/* The lower layer lives in the pool, so the home carries a
	 * description of it (HOME/vunify-lower, lowerlist.h) that unify with
	 * replicas and replicate write, and adopt replays on another pool. */
	bool describes_lower;

	/* ---- adopt (adopt.c, step 2 and 4) ---- */
	/* Open the lower layer of the home HOME_FD that guest NAME is adopted
	 * from, for reading what it references: *ret_fd, or -1 when it has
	 * none.  A layout whose lower layer is in the pool rebuilds it from
	 * the home's description into *staging, adding the objects it names
	 * that the pool lacks to *missing (on failure nothing stays staged).
	 * Returns 0 or -errno (-EPROTOTYPE: a home of another layout). */
	int (*adopt_open_lower)(struct pool *p, int home_fd, const char *name, struct adopt_staging *staging,
	                        char ***missing, size_t *n_missing, int *ret_fd);
	/* Put a staged lower layer in place as guest NAME's, durably (NULL:
	 * this layout stages nothing).  Returns 0 or -errno. */
	int (*adopt_commit_lower)(struct pool *p, const char *name, struct adopt_staging *staging);

	/* ---- hard links ---- */
	/* A hard-link group of the upper may be unified (whole). */
	bool unifies_link_groups;
	/* Lower entries sharing an inode are one file of the guest (rather
	 * than links through the pool's objects). */
	bool lower_links_are_guest_links;
	/* Lower entries reference objects by inode: reading a lower layer
	 * needs an object map, and an object with more than one link is in
	 * use. */
	bool refs_by_inode;
	/* copy_tree flags for a faithful copy of a merged view (export). */
	unsigned copy_flags;

	/* ---- objects ---- */
	/* An object's name is its content hash alone (the pool's set of
	 * content hashes says whether it exists). */
	bool names_by_content;
	/* An object carries the guest file's owner, mode, xattrs and ACLs
	 * (the object inode is the file guests see): a copy to a replica
	 * keeps them, an adopted object keeps them.  Otherwise an adopted
	 * object is made plain (root:root, 0444, no xattrs). */
	bool object_metadata;
	/* Adoption (unify, the upper file becomes its object): the lower
	 * entry is linked to the upper inode before its upper name is renamed
	 * into objects/.  So an existing object is looked for before
	 * adopting, the adopters' lower entries are placed before the rename
	 * and the other files' after it, and a run killed in between leaves
	 * half-adopted files that the next run settles (store.c).  Otherwise
	 * the lower entry names the object (a stub), placed first. */
	bool adopt_links_lower;
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

	/* ---- reading a lower layer back ---- */
	/* Which object does the lower entry (dir_fd, name) reference?  MAP:
	 * the object map when refs_by_inode.  (The redirect layout reads only
	 * the redirect; check_ref checks metacopy.)  Returns 1 and fills
	 * ret_name, 0 when the entry is not a unified file (e.g. a
	 * directory), or -errno for a malformed entry (-EBADMSG: reported as
	 * bad_ref below). */
	int (*lower_ref)(struct pool *p, const struct object_map *map, int dir_fd, const char *entry,
	                 const struct stat *st, char *ret_name);
	enum lower_problem bad_ref; /* what -EBADMSG from lower_ref means */
	const char *bad_ref_what;
	/* fsck: is the entry E, referencing NAME, sound?  Returns 0, 1 with
	 * *ret_kind and *ret_what set for a problem, or -errno.  NULL: no
	 * check beyond lower_ref. */
	int (*check_ref)(struct pool *p, const struct walk_entry *e, const char *name,
	                 enum lower_problem *ret_kind, const char **ret_what);
	/* Open the data a lower entry shows (the object, or itself).
	 * Returns an fd or -errno. */
	int (*open_data)(struct pool *p, int dir_fd, const char *entry, const struct stat *st);
};

/* fsck: does the object open at fd (named NAME) carry the owner, mode and
 * xattrs its layout says?  redirect: root:root, mode 0444, no xattrs (with
 * REPAIR put right).  link: the metadata NAME's key was made from (never
 * repaired: the key is a hash).  Returns 0 if so, 1 if not (*ret_problem
 * says what, *ret_fixed whether it was put right), or -errno. */
int layout_check_object(struct pool *p, int fd, const char *name, bool repair, const char **ret_problem,
                        bool *ret_fixed);

/* Where a guest's lower layer lives, for a mount or to replicate it
 * elsewhere: its path, whether it sits in the guest's home (copied with
 * the home) or in the pool, and the data-only layer it needs (objects/,
 * or NULL).  Free with layout_location_free.  Returns 0 or -ENOMEM. */
struct layout_location {
	char *lower;
	char *data;
	bool in_home;
	bool refs_by_inode; /* a copy must keep its hard links to objects/ */
};
int layout_locate(struct pool *p, const struct guest *g, struct layout_location *ret);
void layout_location_free(struct layout_location *l);

/* Delete a guest's lower layer and make that durable (HOME_FD: its home,
 * or -1 when not attached: a lower layer in the home is left alone).
 * Returns 0 or -errno. */
int layout_remove_lower(struct pool *p, const struct guest *g, int home_fd);

/* fsck --repair, link layout: make a lower file that lost its object an
 * object again (it holds the content and metadata).  Returns 0 or -errno. */
int link_relink(struct pool *p, int dir_fd, const char *entry);

extern const struct layout_ops layout_redirect_ops;
extern const struct layout_ops layout_link_ops;
extern const struct layout_ops layout_link_v1_ops;

/* The registry (layout.c).  The layout of pool P (format-1 link pools:
 * layout_link_v1_ops). */
const struct layout_ops *layout_ops_for(const struct pool *p);

/* The format a new pool of layout K is written in. */
unsigned layout_format(enum layout_kind k);

/* init's automatic choice: the first layout, by preference, that the
 * kernel can mount (PROBE_DATA_ONLY: overlay_probe_data_only's result). */
enum layout_kind layout_auto(int probe_data_only);

/* Drop a staged lower layer that adopt did not commit (nothing if none). */
void adopt_staging_free(struct adopt_staging *s);

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
