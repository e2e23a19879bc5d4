/* Materializing a guest (remove): the inverse of unify. */
#ifndef VUNIFY_MATERIALIZE_H
#define VUNIFY_MATERIALIZE_H

#include <stdint.h>

#include "pool.h"

/* Turn a guest's home into a plain standalone tree: every file its lower
 * layer shows is copied into the upper (metadata, xattrs, hard links of the
 * redirect layout), then the lower layer is deleted, then whiteouts and
 * opaque marks, which now hide nothing, are dropped.  Each step keeps the
 * guest's view; re-running after a crash finishes.  Returns 0 or -errno. */
int guest_materialize(struct pool *p, const struct guest *g, int home_fd, uint64_t *ret_files);

#endif
