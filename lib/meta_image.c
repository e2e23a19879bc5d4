/* HOME/meta.img: see meta_image.h for what it is and the order that keeps
 * it equal to HOME/meta. */
#define _GNU_SOURCE
#include "meta_image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "erofs.h"
#include "lower_copy.h"
#include "pool.h"
#include "util.h"
#include "banned.h"

int meta_image_drop(int home_fd)
{
	if (unlinkat(home_fd, HOME_META_IMAGE, 0) < 0)
		return errno == ENOENT ? 0 : neg_errno();
	/* durable before the caller changes HOME/meta */
	return fsync_dir(home_fd);
}

int meta_image_exists(int home_fd)
{
	struct stat st;

	if (fstatat(home_fd, HOME_META_IMAGE, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : neg_errno();
	return S_ISREG(st.st_mode) ? 1 : -EUCLEAN;
}

static int tree_of_meta(int home_fd, struct erofs_tree **ret)
{
	_cleanup_close_ int meta =
	        openat(home_fd, HOME_META, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (meta < 0)
		return neg_errno();
	return erofs_tree_from_dir(meta, ret, NULL);
}

int meta_image_build(int home_fd)
{
	struct erofs_tree *t;
	int r = tree_of_meta(home_fd, &t);

	if (r < 0)
		return r;
	r = erofs_write_at(t, home_fd, HOME_META_IMAGE);
	erofs_tree_free(t);
	return r;
}

int meta_image_write(int lower_fd, int home_fd)
{
	struct erofs_tree *t;
	int r = erofs_tree_from_dir(lower_fd, &t, NULL);

	if (r < 0)
		return r;
	r = erofs_write_at(t, home_fd, HOME_META_IMAGE);
	erofs_tree_free(t);
	return r;
}

int meta_work_open(int home_fd, int *ret_lower)
{
	_cleanup_close_ int fs = -1, mnt = -1, src = -1;
	int r, fd;

	/* a detached tmpfs: in no namespace, gone with the process */
	fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0)
		return neg_errno();
	if (fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0700", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "huge", "never", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return neg_errno();
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
	if (mnt < 0)
		return neg_errno();
	/* the record it starts from: the image, else (an older pool, or a
	 * guest whose image an online switch dropped) the stubs, else
	 * nothing (a first unify) */
	src = meta_image_open(home_fd, 0);
	if (src == -ENOENT) {
		src = openat(home_fd, HOME_META, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (src < 0)
			src = errno == ENOENT ? -ENOENT : neg_errno();
	}
	if (src == -ENOENT) {
		r = mkdirat(mnt, HOME_META, 0755) < 0 ? neg_errno() : 0;
		if (r < 0)
			return r;
	} else if (src < 0) {
		return src;
	} else {
		r = lower_copy_tree(src, mnt, HOME_META, false);
		if (r < 0)
			return r;
	}
	fd = openat(mnt, HOME_META, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	*ret_lower = fd;
	return src >= 0;
}

int meta_image_check(int home_fd)
{
	_cleanup_close_ int img = -1, mem = -1;
	struct erofs_tree *t;
	struct stat a, b;
	char x[65536], y[65536];
	off_t off;
	int r;

	img = openat(home_fd, HOME_META_IMAGE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (img < 0)
		return neg_errno();
	r = tree_of_meta(home_fd, &t);
	if (r < 0)
		return r;
	mem = memfd_create("vunify-meta-image", MFD_CLOEXEC);
	if (mem < 0) {
		r = neg_errno();
		erofs_tree_free(t);
		return r;
	}
	r = erofs_write_fd(t, mem);
	erofs_tree_free(t);
	if (r < 0)
		return r;
	if (fstat(img, &a) < 0 || fstat(mem, &b) < 0)
		return neg_errno();
	if (a.st_size != b.st_size)
		return 0;
	for (off = 0; off < a.st_size;) {
		ssize_t n = pread(img, x, sizeof(x), off), m;

		if (n <= 0)
			return n < 0 ? neg_errno() : -EIO;
		m = pread(mem, y, (size_t)n, off);
		if (m != n)
			return m < 0 ? neg_errno() : -EIO;
		if (memcmp(x, y, (size_t)n))
			return 0;
		off += n;
	}
	return 1;
}

/* Attach the image open at IMG_FD to a free loop device (loop_attach)
 * and mount that at DIR: for kernels whose erofs mounts only block
 * devices (before 6.12).  Returns 0 or -errno. */
static int loop_attach(int img_fd, char *ret_path, size_t size);

static int mount_via_loop(int img_fd, const char *dir)
{
	char path[32];
	_cleanup_close_ int dev = loop_attach(img_fd, path, sizeof(path));

	if (dev < 0)
		return dev;
	/* with AUTOCLEAR the device detaches itself once this last fd and
	 * the mount (if any) are gone */
	return mount(path, dir, "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID, NULL) < 0 ? neg_errno() : 0;
}

/* A detached mount (in no namespace: nothing is visible, and nothing is
 * left when the process dies) of erofs from SOURCE, read-only.  Returns
 * the mount's fd (O_PATH-like) or -errno (-ENOTBLK: the kernel's erofs
 * mounts only block devices). */
static int fsmount_erofs(const char *source)
{
	_cleanup_close_ int fs = fsopen("erofs", FSOPEN_CLOEXEC);
	int m;

	if (fs < 0)
		return neg_errno();
	if (fsconfig(fs, FSCONFIG_SET_STRING, "source", source, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return neg_errno();
	m = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID);
	return m < 0 ? neg_errno() : m;
}

/* A free loop device attached read-only to IMG_FD, cleared with its last
 * user; *ret_path its path.  Returns the device's fd or -errno. */
static int loop_attach(int img_fd, char *ret_path, size_t size)
{
	struct loop_config cfg = {.fd = (unsigned)img_fd,
	                          .info = {.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR}};
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	int n, r, dev;

	if (ctl < 0)
		return neg_errno();
	/* another process may take the device between GET_FREE and
	 * CONFIGURE (-EBUSY): ask again */
	for (int tries = 0; tries < 8; tries++) {
		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			return neg_errno();
		snprintf(ret_path, size, "/dev/loop%d", n);
		dev = open(ret_path, O_RDONLY | O_CLOEXEC);
		if (dev < 0)
			return neg_errno();
		if (ioctl(dev, LOOP_CONFIGURE, &cfg) == 0)
			return dev;
		r = neg_errno();
		close(dev);
		if (r != -EBUSY)
			return r;
	}
	return -EBUSY;
}

int meta_image_open_at(int dir_fd, const char *name, unsigned flags)
{
	_cleanup_close_ int img = -1, mnt = -1, dev = -1;
	char src[64];
	int fd, r = -ENOTBLK;

	img = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (img < 0)
		return neg_errno();
	/* the image is read by the walk that follows: one sequential read
	 * instead of one block at a time (docs/DESIGN.md, "Runtime") */
	(void)posix_fadvise(img, 0, 0, POSIX_FADV_WILLNEED);
	if (!(flags & META_IMAGE_LOOP)) {
		snprintf(src, sizeof(src), "/proc/self/fd/%d", img);
		r = mnt = fsmount_erofs(src);
	}
	if (r == -ENOTBLK) {
		/* erofs that mounts only block devices (before 6.12) */
		dev = loop_attach(img, src, sizeof(src));
		if (dev < 0)
			return dev;
		r = mnt = fsmount_erofs(src);
	}
	if (r < 0)
		return r;
	/* a real directory fd (the mount's is O_PATH); it keeps the detached
	 * mount alive until it is closed */
	fd = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? neg_errno() : fd;
}

int meta_image_probe(void)
{
	int fs = fsopen("erofs", FSOPEN_CLOEXEC);

	if (fs < 0)
		return errno == ENODEV ? 0 : neg_errno();
	close(fs);
	return 1;
}

int meta_image_open(int home_fd, unsigned flags)
{
	return meta_image_open_at(home_fd, HOME_META_IMAGE, flags);
}

int meta_image_mount(int home_fd, const char *home, unsigned flags, char **ret_dir)
{
	_cleanup_free_ char *img = NULL, *dir = NULL;
	_cleanup_close_ int img_fd = -1, tree = -1;
	char src[64];
	int r = meta_image_exists(home_fd);

	if (r <= 0)
		return r;
	dir = path_join(home, HOME_META_IMAGE_MNT);
	if (!dir)
		return -ENOMEM;
	/* erofs keeps the image file open for as long as any overlay uses it,
	 * and a file pins the mount it was opened through: opened through
	 * this namespace's mount of the home's filesystem, it would keep that
	 * filesystem busy (umount fails) while a copy of the guest's overlay
	 * lives on in another mount namespace.  So the image is opened
	 * through a private clone of the home's mount, as overlayfs does for
	 * its layers. */
	tree = (int)syscall(SYS_open_tree, home_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (tree >= 0) {
		snprintf(src, sizeof(src), "/proc/self/fd/%d/" HOME_META_IMAGE, tree);
		img = strdup(src);
		img_fd = openat(tree, HOME_META_IMAGE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	} else {
		img = path_join(home, HOME_META_IMAGE);
		img_fd = openat(home_fd, HOME_META_IMAGE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (!img)
		return -ENOMEM;
	if (img_fd < 0) {
		r = neg_errno();
		return r == -ENOENT ? 0 : r; /* dropped since */
	}
	/* Start reading the whole image now, asynchronously: erofs fetches
	 * metadata one block at a time through the file's page cache, so a
	 * cold guest walking its tree would wait for hundreds of single-block
	 * reads; one sequential read is a few large ones (docs/DESIGN.md,
	 * "Runtime"). */
	(void)posix_fadvise(img_fd, 0, 0, POSIX_FADV_WILLNEED);
	/* a mount point left by a killed mount: detach whatever is there */
	(void)umount2(dir, MNT_DETACH | UMOUNT_NOFOLLOW);
	if (mkdirat(home_fd, HOME_META_IMAGE_MNT, 0700) < 0 && errno != EEXIST)
		return neg_errno();
	r = -ENOTBLK;
	if (!(flags & META_IMAGE_LOOP))
		r = mount(img, dir, "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID, NULL) < 0 ? neg_errno() : 0;
	/* erofs that mounts only block devices (before 6.12): a loop device */
	if (r == -ENOTBLK)
		r = mount_via_loop(img_fd, dir);
	if (r < 0) {
		/* no erofs, or an image it refuses: HOME/meta shows the same
		 * tree, and fsck reports a damaged image */
		(void)unlinkat(home_fd, HOME_META_IMAGE_MNT, AT_REMOVEDIR);
		return 0;
	}
	*ret_dir = steal_pointer(&dir);
	return 1;
}

int meta_image_unmount(int home_fd, const char *dir)
{
	if (umount2(dir, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL)
		return neg_errno();
	if (unlinkat(home_fd, HOME_META_IMAGE_MNT, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return neg_errno();
	return 0;
}
