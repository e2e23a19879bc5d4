/* Removing a guest.
 *
 * Order: refuse a mounted guest (its layers are about to change), discard
 * a switch prepared by unify --online (manifest first; the guest's view
 * never depended on it), make its home a plain tree (materialize: every step keeps the guest's view) or
 * delete its layers (purge), unregister it, and last remove the home's id
 * file.  Dying before the unregistration leaves the guest registered and a
 * re-run finishes the same way; dying after it leaves a home that is a
 * plain tree with a stale id, which 'add' of the same name and pool takes
 * back as its own. */
#define _GNU_SOURCE
#include "guest.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "materialize.h"
#include "online.h"
#include "overlay.h"
#include "util.h"
#include "banned.h"

/* Contract in guest.h. */
int guest_remove(struct pool *p, const struct guest *g, unsigned flags, struct guest_remove_result *ret)
{
	bool purge = flags & GUEST_REMOVE_PURGE;
	_cleanup_free_ char *upper = path_join(g->home, HOME_UPPER);
	_cleanup_close_ int hfd = -1;
	int r;

	*ret = (struct guest_remove_result){.step = GUEST_REMOVE_MOUNTS};
	if (!upper)
		return -ENOMEM;
	r = overlay_find_mounts(upper, NULL);
	if (r != 0)
		return r > 0 ? -EBUSY : r;
	ret->step = GUEST_REMOVE_HOME;
	hfd = guest_open_home(p, g);
	if (hfd < 0 && !(purge && hfd == -ENOENT))
		return hfd;
	ret->step = GUEST_REMOVE_LAYERS;
	r = online_discard(p, g, hfd);
	if (r < 0)
		return r;
	if (purge) {
		bool in_home = false;
		r = guest_purge(p, g, hfd, &in_home);
		if (r < 0 && in_home)
			ret->step = GUEST_REMOVE_PURGE_HOME;
	} else {
		r = guest_materialize(p, g, hfd, &ret->files);
	}
	if (r < 0)
		return r;
	ret->step = GUEST_REMOVE_UNREGISTER;
	r = pool_guest_unregister(p, g->name);
	if (r < 0)
		return r;
	if (hfd >= 0)
		unlinkat(hfd, HOME_ID, 0);
	return 0;
}
