/* export.  The guest need not be unmounted: its layers are only read. */
#define _GNU_SOURCE
#include "export.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy.h"
#include "layout.h"
#include "meta_image.h"
#include "overlay.h"
#include "remove_tree.h"
#include "util.h"
#include "banned.h"

int guest_export(struct pool *p, const struct guest *g, const char *dest, char **ret_path)
{
	_cleanup_free_ char *d1 = strdup(dest), *d2 = strdup(dest), *upper = NULL, *lower = NULL,
	                    *data = NULL, *opts = NULL, *mnt = NULL, *tmpname = NULL;
	_cleanup_close_ int parent = -1, mfd = -1, tfd = -1, home_fd = -1;
	_cleanup_free_ char *image_dir = NULL;
	const char *base;
	char mname[64];
	struct layout_location loc;
	struct stat st;
	int r;

	if (!d1 || !d2)
		return -ENOMEM;
	base = basename(d1);
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..") || !strcmp(base, "/"))
		return -EINVAL; /* cppcheck-suppress memleak ; d2 is _cleanup_free_ */
	parent = open(dirname(d2), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent < 0)
		return neg_errno();
	if (fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	if (asprintf(&tmpname, "%s.vunify-tmp", base) < 0)
		return -ENOMEM;
	r = remove_tree_at(parent, tmpname);
	if (r < 0)
		return r;

	upper = path_join(g->home, HOME_UPPER);
	if (!upper)
		return -ENOMEM;
	r = layout_locate(p, g, &loc);
	if (r < 0)
		return r;
	lower = loc.lower;
	data = loc.data;
	if (unshare(CLONE_NEWNS) < 0)
		return neg_errno();
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return neg_errno();
	if (layout_ops_for(p)->lower_image) {
		/* the record: the metadata image, mounted in this private
		 * namespace only (gone with the process) */
		home_fd = guest_open_home(p, g);
		if (home_fd < 0)
			return home_fd;
		r = meta_image_mount(home_fd, g->home, 0, &image_dir);
		if (r < 0)
			return r;
		if (r == 0 && meta_image_exists(home_fd) == 1 &&
		    faccessat(home_fd, HOME_META, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			return -EOPNOTSUPP; /* the kernel does not mount it */
		if (image_dir) {
			free(lower);
			lower = strdup(image_dir);
			loc.lower = lower;
			if (!lower)
				return -ENOMEM;
		}
	}
	if (!image_dir) {
		/* a never-unified guest has no lower layer yet: an empty one */
		_cleanup_close_ int lfd = open(lower, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (lfd < 0 && errno == ENOENT && mkdir(lower, 0755) < 0 && errno != EEXIST)
			return neg_errno();
	}
	opts = overlay_options_readonly(upper, lower, data);
	if (!opts)
		return -ENOMEM;
	snprintf(mname, sizeof(mname), "export.%ld", (long)getpid());
	if (mkdirat(p->tmp_fd, mname, 0700) < 0 && errno != EEXIST)
		return neg_errno();
	mnt = path_join(p->path, "tmp");
	if (!mnt)
		return -ENOMEM;
	{
		char *m2 = path_join(mnt, mname);
		free(mnt);
		mnt = m2;
		if (!mnt)
			return -ENOMEM;
	}
	r = mount("vunify", mnt, "overlay", MS_RDONLY, opts) < 0 ? neg_errno() : 0;
	if (image_dir)
		/* the overlay holds its own reference to the image's mount */
		(void)meta_image_unmount(home_fd, image_dir);
	if (r < 0) {
		unlinkat(p->tmp_fd, mname, AT_REMOVEDIR);
		return r;
	}
	mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0) {
		r = neg_errno();
		goto out_umount;
	}
	if (mkdirat(parent, tmpname, 0700) < 0) {
		r = neg_errno();
		goto out_umount;
	}
	tfd = openat(parent, tmpname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tfd < 0) {
		r = neg_errno();
		goto out_umount;
	}
	r = copy_tree(mfd, tfd, layout_ops_for(p)->copy_flags, ret_path);
	if (r == 0)
		r = publish_tree(tfd, parent, tmpname, base);
out_umount:
	if (mfd >= 0) {
		close(mfd);
		mfd = -1;
	}
	umount2(mnt, MNT_DETACH);
	unlinkat(p->tmp_fd, mname, AT_REMOVEDIR);
	return r;
}
