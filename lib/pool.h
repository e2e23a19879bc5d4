/* The pool: objects, the guest registry, configuration and the lock.
 *
 *   POOL/vunify.conf        format, layout, pool id (docs/FORMAT.md)
 *   POOL/policy.conf        what gets unified (lib/policy.h)
 *   POOL/lock               flock(2) target
 *   POOL/objects/XX/HASH    objects, fan-out by the first two hex digits
 *   POOL/guests/NAME/       registry: home, stats, refs
 *   POOL/roots/NAME/        link layout: the guest's lower layer
 *   POOL/tmp/               staging for objects and links; emptied under
 *                           the exclusive lock
 */
#ifndef VUNIFY_POOL_H
#define VUNIFY_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "hash.h"
#include "policy.h"

/* The newest format; pool_open reads POOL_FORMAT_MIN..POOL_FORMAT.
 * 2: link-layout object names carry the whole SHA-256 metadata key (64 hex
 * digits); a format-1 link pool keeps its 16-digit keys (docs/FORMAT.md).
 * 3: redirect layout: a guest may have HOME/meta.img, the metadata image
 * (meta_image.h), which every writer of HOME/meta must drop first.  init
 * writes 3 for a redirect pool and 2 for a link pool (nothing changed for
 * it); an older redirect pool is read as it is and becomes format 3 on its
 * first unify (pool_upgrade), before any image exists, so that no binary
 * that does not know the image changes HOME/meta behind one.
 * 4: redirect layout: HOME/meta.img is the record of a guest's lower layer
 * and there are no stubs on disk (writers work on a private copy and
 * rename a new image in: meta_image.h); a HOME/meta beside an image is a
 * leftover the next writer removes, a HOME/meta without one (format 3, or
 * an online switch) is the record until the next unify writes the image.
 * A format-3 pool becomes format 4 on its first unify, before any guest's
 * HOME/meta goes, so that no binary that reads HOME/meta finds it gone. */
#define POOL_FORMAT 4
#define POOL_FORMAT_LINK 2
#define POOL_FORMAT_MIN 1
#define POOL_DEFAULT_PATH "/var/lib/vunify"

enum layout_kind {
	LAYOUT_REDIRECT,
	LAYOUT_LINK,
};

enum pool_lock {
	POOL_LOCK_SHARED, /* readers: status, fsck without repair, mount */
	POOL_LOCK_EXCLUSIVE, /* writers: add, unify, gc, remove */
};

struct pool {
	char *path; /* absolute, as used in mount options */
	int fd;
	int objects_fd;
	int guests_fd;
	int tmp_fd;
	int lock_fd;
	enum layout_kind layout;
	unsigned format; /* of vunify.conf */
	/* directories whose owner or mode an exclusive open put right, and
	 * the first of them ("objects/3f: owner ..."), for the command to say */
	unsigned dirs_fixed;
	char dirs_fixed_first[128];
	char id[40];
	struct policy policy;
};

const char *layout_name(enum layout_kind k);
int layout_from_name(const char *s, enum layout_kind *ret);

/* Create a pool at PATH (created if missing; if it exists it must be empty
 * or an unfinished init).  Returns 0 or -errno (-EEXIST if a pool is
 * already there). */
int pool_init(const char *path, enum layout_kind layout);

/* init: pool_init choosing the layout.  With AUTO_LAYOUT *kind becomes
 * redirect when this kernel mounts overlayfs data-only lower layers on the
 * pool's filesystem, else link; otherwise *kind is kept, and a layout that
 * needs a data-only layer the kernel cannot mount is refused (-EOPNOTSUPP,
 * no vunify.conf written).  *ret_probe: overlay_probe_data_only's answer.
 * Returns 0 or -errno as pool_init. */
int pool_create(const char *path, bool auto_layout, enum layout_kind *kind, int *ret_probe);

/* Open an existing pool and take its lock (waits for a conflicting holder
 * when WAIT, else fails with -EWOULDBLOCK).  Returns 0 or -errno
 * (-ENOENT: no pool; -EPROTO: unknown format; -EBADMSG + *ret_line:
 * a bad policy.conf line). */
int pool_open(const char *path, enum pool_lock lock, bool wait, struct pool **ret, unsigned *ret_line);
void pool_close(struct pool *p);

/* A problem found by a check: WHAT (a pool-relative name), PROBLEM (a
 * phrase), FIXED (whether the check put it right). */
typedef void (*pool_problem_fn)(const char *what, const char *problem, bool fixed, void *ud);

/* Check that the pool's directories (the pool itself, guests/, tmp/,
 * roots/, objects/ and its 256 fan-out directories) exist and belong to
 * root:root with mode 0700: objects are guests' files (link layout: with
 * their set-id bits and capabilities), no other host user may reach them.
 * With REPAIR, owner and mode are put right and missing directories
 * created (a non-directory in the way is only reported).  fn (may be NULL)
 * is called for each problem.  pool_open does this with REPAIR under the
 * exclusive lock.  Returns the number of problems or -errno. */
int pool_check_dirs(struct pool *p, bool repair, pool_problem_fn fn, void *ud);

/* Make an older redirect pool's vunify.conf say POOL_FORMAT (atomically;
 * under the exclusive lock, before the first change only the new format
 * allows).  A link pool keeps its format: its names depend on it, and it
 * has no metadata images.  Returns 0 (also when it already does) or
 * -errno. */
int pool_upgrade(struct pool *p);

/* Remove leftovers in POOL/tmp (only safe under the exclusive lock). */
int pool_clean_tmp(struct pool *p);

/* Object names.  Redirect layout: the SHA-256 of the content (64 hex).
 * Link layout: the SHA-256 of the content, '.', then the metadata key
 * (SHA-256 over mode, owner, mtime, xattrs; 64 hex digits, or its first 16
 * in a format-1 pool), since hard links share one inode.  The fan-out
 * directory is the first two hex digits. */
#define LINK_KEY_HEX_V1 16
#define OBJECT_NAME_MAX (HASH_HEX_LEN + 1 + HASH_HEX_LEN + 1)

/* Is NAME an object name: 64 hex digits, optionally '.' and 64 (or, for
 * format-1 link pools, 16) hex digits?  Lower case only. */
bool object_name_valid(const char *name);

/* Does an object by this name exist?  Fills *ret_st when non-NULL.
 * Returns 1, 0, or -errno. */
int pool_object_stat(struct pool *p, const char *name, struct stat *ret_st);

/* Open the fan-out directory of an object name.  Returns fd or -errno. */
int pool_object_dir(struct pool *p, const char *name);

/* Guest registry. */
bool guest_name_valid(const char *name);

struct guest_stats {
	uint64_t files_unified;
	uint64_t bytes_unified;
	uint64_t upper_bytes;
	uint64_t objects_referenced;
	uint64_t unified_at; /* Unix time the last unify run of it ended; 0: never */
};

struct guest {
	char *name;
	char *home; /* absolute path */
	struct guest_stats stats;
};

/* Register a guest.  Returns 0 or -errno (-EEXIST if registered). */
int pool_guest_register(struct pool *p, const char *name, const char *home);
/* Load a registered guest.  Returns 0 or -errno (-ENOENT: not registered). */
int pool_guest_load(struct pool *p, const char *name, struct guest **ret);
/* All registered guest names, sorted.  Returns count or -errno. */
int pool_guest_names(struct pool *p, char ***ret_names);
void guest_free(struct guest *g);
void names_free(char **names);
/* Persist stats, and the sorted list of referenced object names (the pool's
 * own record of what a guest needs, so gc works while its home is
 * detached).  Returns 0 or -errno. */
int pool_guest_save_stats(struct pool *p, const struct guest *g);
/* Record WHEN (Unix seconds) as the end of the last unify run of guest
 * NAME (its stats' unified_at).  Returns 0 or -errno. */
int pool_guest_mark_unified(struct pool *p, const char *name, uint64_t when);
int pool_guest_save_refs(struct pool *p, const char *name, char *const *refs, size_t n);
/* A guest's recorded references (guests/NAME/refs), one object name a
 * line: V[N] point into BUF.  Free with guest_refs_free. */
struct guest_refs {
	char *buf;
	char **v;
	size_t n;
};
/* The one reader of that file.  Returns 1 when the guest has a record, 0
 * when it has none (empty *ret), or -errno. */
int pool_guest_read_refs(struct pool *p, const char *name, struct guest_refs *ret);
/* The same for any file of one object name a line (POOL/held too) under
 * DIR_FD.  Returns 1 when FILE exists, 0 when not (empty *ret), or -errno. */
int name_list_read_at(int dir_fd, const char *file, struct guest_refs *ret);
void guest_refs_free(struct guest_refs *r);

/* Add REFS to the guest's recorded references (before a unify creates
 * links to them).  Returns 0 or -errno. */
int pool_guest_add_refs(struct pool *p, const char *name, char *const *refs, size_t n);
/* Unregister (removes POOL/guests/NAME).  Returns 0 or -errno. */
int pool_guest_unregister(struct pool *p, const char *name);

/* Home layout. */
#define HOME_UPPER "upper"
#define HOME_WORK "work"
#define HOME_META "meta"
#define HOME_STAGING "staging"
#define HOME_ID "vunify-guest"

/* Open HOME and verify its id file names this pool and guest.  Returns fd
 * or -errno (-ENOENT: home not attached; -ESTALE: home belongs to another
 * pool or guest). */
int guest_open_home(struct pool *p, const struct guest *g);

/* Open the guest's lower layer directory for reading: HOME/meta.img's
 * tree where there is one (a detached read-only mount: meta_image_open),
 * else HOME/meta or POOL/roots/NAME, created when CREATE.  (Writers of the
 * redirect layout work on a copy: meta_work_open.)  Returns fd or
 * -errno. */
int guest_open_lower(struct pool *p, const struct guest *g, int home_fd, bool create);

#endif
