/* adopt: register a home that already holds a guest's layers, made by
 * another pool (arrived by a DRBD failover or by `send`). */
#ifndef VUNIFY_ADOPT_H
#define VUNIFY_ADOPT_H

#include <stdbool.h>
#include <stddef.h>

#include "pool.h"

#define HOME_FORMAT 1

struct adopt_report {
	size_t needed; /* objects the guest's lower layer references */
	char **missing; /* not in this pool (NULL-terminated, or NULL) */
	size_t n_missing;
	char **corrupt; /* --verify: content does not hash to the name */
	size_t n_corrupt;
};
void adopt_report_free(struct adopt_report *r);

/* Register NAME with its home HOME (a directory holding vunify-guest,
 * upper/, work/ and its lower layer: meta/ in the redirect layout,
 * vunify-lower in the link layout).  Nothing changes unless every object
 * the lower layer references is here (and, with VERIFY, hashes to its
 * name).  Returns 0 or -errno:
 *   -EEXIST          a guest of that name is registered here (unless it is
 *                    this guest coming back: registered with this very
 *                    home, which another pool adopted since)
 *   -ENOMEDIUM       HOME has no vunify-guest file: not a guest's home
 *   -EPROTONOSUPPORT the home's format is not one this build knows
 *   -EPROTOTYPE      the home was made by a pool of the other layout
 *   -ENOLINK         link layout: the home has no description of its lower
 *                    layer (written by unify with replicas, or replicate)
 *   -EBUSY           the home's upper is mounted
 *   -ENODATA         objects are missing (listed in the report)
 *   -EBADMSG         objects are corrupt (listed in the report) */
int guest_adopt(struct pool *p, const char *name, const char *home, bool verify, struct adopt_report *ret);

#endif
