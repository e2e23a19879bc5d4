/* overlayfs: mount options, the kernel feature probe, mount/umount and
 * finding mounts of a guest.
 *
 * vunify mounts with redirect_dir=off,index=off,xino=off,metacopy=off: the
 * kernel documents offline changes to lower layers as valid only when none
 * of those features was used (Documentation/filesystems/overlayfs.rst,
 * "Changes to underlying filesystems"), and re-unification changes the
 * lower layer offline.  Data-only lower layers ("::") follow the stubs'
 * redirects even with metacopy=off; see docs/DESIGN.md. */
#ifndef VUNIFY_OVERLAY_H
#define VUNIFY_OVERLAY_H

#include <stdbool.h>

#define OVL_XATTR_METACOPY "trusted.overlay.metacopy"
#define OVL_XATTR_REDIRECT "trusted.overlay.redirect"
#define OVL_XATTR_OPAQUE "trusted.overlay.opaque"
#define OVL_XATTR_WHITEOUT "trusted.overlay.whiteout"
#define OVL_FIXED_OPTIONS "redirect_dir=off,index=off,xino=off,metacopy=off"

/* Build the mount option string.  DATA is NULL for the link layout.
 * Returns a malloc'd string or NULL on allocation failure. */
char *overlay_options(const char *lower, const char *data, const char *upper, const char *work);

/* Options for a read-only overlay of a guest's layers with its upper as
 * the top lower layer (export).  DATA is NULL for the link layout.
 * Returns a malloc'd string or NULL. */
char *overlay_options_readonly(const char *upper, const char *lower, const char *data);

/* Mount an overlay at TARGET with OPTIONS.  Returns 0 or -errno. */
int overlay_mount(const char *options, const char *target);
/* The same with mount(2) FLAGS (MS_RDONLY, MS_NOSUID, ...).  Returns 0 or
 * -errno. */
int overlay_mount_flags(const char *options, const char *target, unsigned long flags);

/* Unmount TARGET.  Returns 0 or -errno. */
int overlay_umount(const char *target);

/* Is the guest whose upper layer is UPPER in use by an overlay mount
 * anywhere on this host?  The one check for SPEC invariant 6 ("mounted
 * guests are not rewritten"); every command that changes a guest's layers
 * calls it.  UPPER is HOME/upper; the guest's work directory is HOME/work.
 * It finds overlays whose upperdir or workdir is one of those directories,
 * compared by device and inode (so a bind-mounted or otherwise differently
 * spelled path matches), in every mount namespace on the host (each
 * /proc/PID/mountinfo, each namespace read once), and, when no mount table
 * shows one, asks overlayfs's own in-use mark on the upper directory
 * (a lazily unmounted overlay still held open, a namespace we cannot read).
 * Returns the number of mounts found (>= 1 means in use; one found only
 * through the in-use mark counts 1), 0 when not in use (also when UPPER
 * does not exist: the home is not attached), or -errno (our own mount
 * table cannot be read, e.g. no /proc: callers treat that as "cannot
 * tell", never as "not mounted").  When
 * ret_target is non-NULL it gets a malloc'd description of the first:
 * its mount point in this namespace, "PATH in the mount namespace of pid
 * N", or "a detached mount still in use"; NULL when none. */
int overlay_find_mounts(const char *upper, char **ret_target);

/* The same without asking the in-use mark (which logs a line in dmesg):
 * overlays in every namespace's mount table only.  For status. */
int overlay_list_mounts(const char *upper, char **ret_target);

/* Mounts of the guest whose upper is UPPER in this mount namespace only
 * (for umount), compared by device and inode as above.  Returns the count
 * and, when ret_target is non-NULL and one was found, a malloc'd mount
 * point of the first (else NULL), or -errno. */
int overlay_find_local_mounts(const char *upper, char **ret_target);

/* Does this kernel serve data from a data-only lower layer through a
 * metacopy stub's redirect?  Really mounts a tiny overlay in a scratch
 * directory under dir_fd (which must support trusted.* xattrs).  Returns 1
 * (yes), 0 (no: the kernel refused the mount or served wrong data), or
 * -errno when the probe itself could not run. */
int overlay_probe_data_only(int dir_fd);

#endif
