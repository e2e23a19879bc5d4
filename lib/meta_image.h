/* The redirect layout's metadata image: HOME/meta.img, an EROFS image
 * (lib/erofs.h) of the guest's lower layer (stubs, directories, symlinks).
 *
 * Format 4: the image is the record; there are no stubs on disk.
 *   - readers get its tree through a detached read-only mount
 *     (meta_image_open), mount through a mount point for the moment the
 *     overlay needs a path (meta_image_mount);
 *   - a writer copies it to a private tmpfs (meta_work_open), changes the
 *     copy and renames the next image in (meta_image_write: temp name,
 *     fsync, rename, fsync HOME) before any upper-side step that relies
 *     on it (store.c, finish_lower): a kill leaves the old image or the
 *     new one, never a mix, and never a torn stub.
 * Formats 1-3: HOME/meta (stubs on disk) is the record and an image, when
 * there, equal to it (every writer dropped it first); the first unify of
 * format 4 migrates (pool.h).  In every format an image present is the
 * record. */
#ifndef VUNIFY_META_IMAGE_H
#define VUNIFY_META_IMAGE_H

#include <stdbool.h>

#define HOME_META_IMAGE "meta.img"
#define HOME_META_IMAGE_MNT "meta.img.mnt"

/* Drop HOME/meta.img (if any) durably.  Returns 0 or -errno. */
int meta_image_drop(int home_fd);

/* Is there an image?  Returns 1, 0 or -errno. */
int meta_image_exists(int home_fd);

/* Build HOME/meta.img from HOME/meta.  Returns 0 or -errno. */
int meta_image_build(int home_fd);

/* Write HOME/meta.img (HOME_FD) from the lower layer tree at LOWER_FD:
 * whole under a temp name, fsync, renamed in, HOME fsync'd.  A kill
 * leaves the old image or the new one.  Returns 0 or -errno. */
int meta_image_write(int lower_fd, int home_fd);

/* A writer's working copy of the guest's lower layer: a directory on a
 * private tmpfs (a detached mount: in no namespace, gone with the
 * process) holding a copy of the record (the image, else HOME/meta, else
 * nothing) with every mode, owner, time, xattr (trusted.overlay.*
 * included), sparse size and hard link.  Changes to it are seen by no
 * one until meta_image_write makes an image of it.  *RET_LOWER receives
 * the directory fd.  Returns 1 (copied from a record), 0 (empty: no
 * record yet), or -errno. */
int meta_work_open(int home_fd, int *ret_lower);

/* Does HOME/meta.img hold exactly what HOME/meta holds (images are
 * written deterministically)?  Returns 1 (equal), 0 (differs), or -errno
 * (-ENOENT: no image). */
int meta_image_check(int home_fd);

/* meta_image_mount: through a loop device even where the kernel mounts
 * the file itself (the path older kernels take; for tests). */
#define META_IMAGE_LOOP 1u

/* Mount HOME/meta.img read-only at HOME/meta.img.mnt (HOME is the home's
 * path, home_fd its fd) with mount(2) of the file itself (erofs reads a
 * regular file directly since Linux 6.12), or where the kernel refuses
 * that (-ENOTBLK) through a read-only loop device that detaches itself
 * with its last user, after starting to read the whole image into the
 * page cache.  *ret_dir receives the mount point (malloc'd).  Returns 1
 * (mounted), 0 (no image, or the kernel does not mount it: use
 * HOME/meta), or -errno. */
int meta_image_mount(int home_fd, const char *home, unsigned flags, char **ret_dir);

/* The image's tree for reading: a directory fd of HOME/meta.img mounted
 * read-only on a detached mount (fsopen/fsmount: in no namespace, so
 * nothing is visible and nothing outlives the process; the mount goes
 * with the last fd of it), from the file itself or, where the kernel's
 * erofs mounts only block devices (before 6.12), through a read-only
 * loop device that detaches itself with its last user.  FLAGS:
 * META_IMAGE_LOOP.  Returns the fd or -errno (-ENOENT: no image). */
int meta_image_open(int home_fd, unsigned flags);

/* Does this kernel have erofs (which the redirect layout's images need)?
 * Returns 1, 0 or -errno. */
int meta_image_probe(void);

/* The same for the image NAME in DIR_FD. */
int meta_image_open_at(int dir_fd, const char *name, unsigned flags);

/* Detach the image's mount point after the overlay that uses it is
 * mounted (overlayfs holds its own reference to each layer) or failed,
 * and remove the directory.  Returns 0 or -errno. */
int meta_image_unmount(int home_fd, const char *dir);

#endif
