/* Mounting a guest: the order is at guest_mount. */
#define _GNU_SOURCE
#include "guest_mount.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"
#include "meta_image.h"
#include "overlay.h"
#include "util.h"
#include "banned.h"

void guest_mount_result_free(struct guest_mount_result *r)
{
	free(r->mounted_at);
	free(r->options);
	r->mounted_at = r->options = NULL;
}

static int fail(struct guest_mount_result *ret, enum guest_mount_step step, int r)
{
	ret->step = step;
	return r;
}

/* A switch prepared by `unify --online` while the guest ran, carried out
 * now that it is not mounted, under the pool's exclusive lock (no unify,
 * gc or other mount of it meanwhile). */
static int switch_pending(struct pool *p, const struct guest *g, int home_fd, const char *upper,
                          struct guest_mount_result *ret)
{
	int r = online_pending(home_fd);

	if (r <= 0)
		return r < 0 ? fail(ret, GUEST_MOUNT_PENDING, r) : 0;
	/* shared -> exclusive (flock converts; not atomic, so look again) */
	if (flock(p->lock_fd, LOCK_EX) < 0)
		return fail(ret, GUEST_MOUNT_LOCK, neg_errno());
	r = overlay_find_mounts(upper, NULL);
	if (r != 0)
		return fail(ret, GUEST_MOUNT_RECHECK, r > 0 ? -EBUSY : r);
	r = online_switch(p, g, home_fd, &ret->sw);
	if (r < 0)
		return fail(ret, GUEST_MOUNT_SWITCH, r);
	ret->switch_ran = true;
	return 0;
}

/* The overlay with the metadata image as its lower layer (lib/meta_image.h),
 * else (an older pool's guest not unified since, or one an online switch
 * left on stubs) with the stubs.  An image the kernel does not mount is
 * an error where no stubs are beside it (format 4): never an empty lower
 * layer in its place. */
static int mount_overlay(struct pool *p, struct guest *g, int home_fd, const struct layout_location *loc,
                         const char *upper, const char *work, const char *target, unsigned long flags,
                         bool fake, struct guest_mount_result *ret)
{
	_cleanup_free_ char *image_dir = NULL;
	int r;

	if (layout_ops_for(p)->lower_image && !fake) {
		r = meta_image_mount(home_fd, g->home, 0, &image_dir);
		if (r < 0)
			return fail(ret, GUEST_MOUNT_IMAGE, r);
		if (r == 0 && meta_image_exists(home_fd) == 1 &&
		    faccessat(home_fd, HOME_META, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			return fail(ret, GUEST_MOUNT_IMAGE, -EOPNOTSUPP);
	}
	ret->options = overlay_options(image_dir ? image_dir : loc->lower, loc->data, upper, work);
	if (!ret->options)
		return fail(ret, GUEST_MOUNT_OPTIONS, -ENOMEM);
	if (fake)
		return 0;
	r = overlay_mount_flags(ret->options, target, flags);
	if (image_dir) {
		/* overlayfs holds its own reference to the image's mount: the
		 * mount point is not needed once the overlay is mounted */
		(void)meta_image_unmount(home_fd, image_dir);
		if (r < 0 && faccessat(home_fd, HOME_META, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			free(ret->options);
			ret->options = overlay_options(loc->lower, loc->data, upper, work);
			if (!ret->options)
				return fail(ret, GUEST_MOUNT_OPTIONS, -ENOMEM);
			r = overlay_mount_flags(ret->options, target, flags);
		}
	}
	return r < 0 ? fail(ret, GUEST_MOUNT_MOUNT, r) : 0;
}

int guest_mount(struct pool *p, struct guest *g, int home_fd, const char *target, unsigned long flags,
                bool fake, struct guest_mount_result *ret)
{
	_cleanup_free_ char *upper = path_join(g->home, HOME_UPPER), *work = path_join(g->home, HOME_WORK);
	_cleanup_close_ int lower_fd = -1;
	struct layout_location loc = {0};
	int r;

	*ret = (struct guest_mount_result){0};
	if (!upper || !work)
		return fail(ret, GUEST_MOUNT_FIND, -ENOMEM);
	r = overlay_find_mounts(upper, &ret->mounted_at);
	if (r != 0)
		return fail(ret, GUEST_MOUNT_FIND, r > 0 ? -EBUSY : r);
	/* 1. the pending switch: after it the lower is the new one, and the
	 *    view is the one the guest had when it stopped (online.h) */
	if (!fake) {
		r = switch_pending(p, g, home_fd, upper, ret);
		if (r < 0)
			return r;
	}
	/* 2. the overlay's work directory and lower layer */
	if (!fake && mkdirat(home_fd, HOME_WORK, 0700) < 0 && errno != EEXIST)
		return fail(ret, GUEST_MOUNT_WORK, neg_errno());
	lower_fd = guest_open_lower(p, g, home_fd, !fake);
	if (lower_fd < 0)
		return fail(ret,
		            layout_ops_for(p)->lower_image && meta_image_exists(home_fd) == 1
		                    ? GUEST_MOUNT_IMAGE
		                    : GUEST_MOUNT_LOWER,
		            lower_fd);
	if (layout_locate(p, g, &loc) < 0)
		return fail(ret, GUEST_MOUNT_LOCATE, -ENOMEM);
	/* 3. the mount */
	r = mount_overlay(p, g, home_fd, &loc, upper, work, target, flags, fake, ret);
	layout_location_free(&loc);
	if (r < 0 || fake)
		return r;
	/* 4. the old lower a switch left (no layer of this mount) goes, and
	 *    the figures follow the new lower */
	if (ret->switch_ran && ret->sw.switched)
		ret->cleanup_error = online_cleanup(p, g, home_fd, true);
	return 0;
}
