/* Mounting a guest's merged root: the pending online switch first, then
 * the overlay of its lower layer (the metadata image where unify wrote
 * one, else the stubs or links) and its upper. */
#ifndef VUNIFY_GUEST_MOUNT_H
#define VUNIFY_GUEST_MOUNT_H

#include <stdbool.h>

#include "online.h"
#include "pool.h"

/* The step guest_mount stopped at when it fails; the errno says why. */
enum guest_mount_step {
	GUEST_MOUNT_FIND, /* whether it is mounted; -EBUSY: at mounted_at */
	GUEST_MOUNT_PENDING, /* whether a switch is pending */
	GUEST_MOUNT_LOCK, /* the pool's exclusive lock for the switch */
	GUEST_MOUNT_RECHECK, /* mounted meanwhile (-EBUSY), or cannot tell */
	GUEST_MOUNT_SWITCH, /* the switch (the guest's view is intact) */
	GUEST_MOUNT_WORK, /* HOME/work */
	GUEST_MOUNT_LOWER, /* opening the lower layer */
	GUEST_MOUNT_LOCATE, /* the layers' paths */
	GUEST_MOUNT_IMAGE, /* the metadata image's private mount */
	GUEST_MOUNT_OPTIONS, /* the overlay's options */
	GUEST_MOUNT_MOUNT, /* mount(2) of the overlay */
};

struct guest_mount_result {
	enum guest_mount_step step; /* set when guest_mount fails */
	char *mounted_at; /* GUEST_MOUNT_FIND, -EBUSY: where it is mounted */
	char *options; /* the overlay's options, once known (also when FAKE) */
	bool switch_ran; /* a pending switch was carried out: see sw */
	struct online_switch_result sw;
	/* After the mount, the old lower a switch left is removed; a
	 * failure there (-errno) costs only space: the guest is mounted. */
	int cleanup_error;
};

/* Mount guest G (home HOME_FD; the caller holds the pool's shared lock)
 * at TARGET, a directory, with mount(2) FLAGS.  A switch prepared by
 * `unify --online` is carried out first, under the exclusive lock, with
 * the mount check repeated.  FAKE: check everything and fill
 * ret->options, change nothing, mount nothing.  Nothing is changed on a
 * failure before the switch; HOME/work is created only once the guest is
 * known not mounted.  Returns 0 or -errno (ret->step: where). */
int guest_mount(struct pool *p, struct guest *g, int home_fd, const char *target, unsigned long flags,
                bool fake, struct guest_mount_result *ret);

void guest_mount_result_free(struct guest_mount_result *r);

#endif
