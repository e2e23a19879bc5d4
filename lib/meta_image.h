/* The redirect layout's metadata image: HOME/meta.img, an EROFS image of
 * HOME/meta (lib/erofs.h) that mount uses as the guest's metadata lower
 * layer instead of the stub directory, so that a cold guest reads its
 * metadata from one compact file instead of one ext4 inode per stub.
 *
 * HOME/meta stays the record that writers change and fsck checks; the
 * image is derived from it and only ever equal to it, so readers (gc,
 * remove/detach, online preparation, the figures) take the image where
 * there is one (meta_image_open: a detached read-only mount) and the
 * stubs otherwise:
 *   - every writer of HOME/meta drops the image (unlink, fsync HOME)
 *     before its first change, so a crash at any later instant leaves no
 *     image, and mount uses HOME/meta, which is always complete;
 *   - unify writes a new image after the guest's lower layer is final and
 *     durable (temp name, fsync, rename, fsync HOME): mount sees the old
 *     state (no image) or the new image, never a mix.
 * A mount finds the image or not; both show the guest the same tree. */
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

/* The same for the image NAME in DIR_FD. */
int meta_image_open_at(int dir_fd, const char *name, unsigned flags);

/* Detach the image's mount point after the overlay that uses it is
 * mounted (overlayfs holds its own reference to each layer) or failed,
 * and remove the directory.  Returns 0 or -errno. */
int meta_image_unmount(int home_fd, const char *dir);

#endif
