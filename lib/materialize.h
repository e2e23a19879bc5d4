/* What remove does to a guest's layers: materialize them into a plain
 * tree (the inverse of unify), or purge them. */
#ifndef VUNIFY_MATERIALIZE_H
#define VUNIFY_MATERIALIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "pool.h"

/* Turn a guest's home into a plain standalone tree: every file its lower
 * layer shows is copied into the upper (metadata, xattrs, hard links of the
 * redirect layout), then the lower layer is deleted, then whiteouts and
 * opaque marks, which now hide nothing, are dropped.  Each step keeps the
 * guest's view; re-running after a crash finishes.  Returns 0 or -errno. */
int guest_materialize(struct pool *p, const struct guest *g, int home_fd, uint64_t *ret_files);

/* remove --purge: delete a guest's layers: a lower layer in the pool
 * first, then, when the home is attached (HOME_FD >= 0), the home's parts
 * (upper, work, lower, staging, an unfinished add's upper.new).  The
 * guest's files go with them.  Returns 0 or -errno; *ret_in_home says
 * whether the error was in the home. */
int guest_purge(struct pool *p, const struct guest *g, int home_fd, bool *ret_in_home);

#endif
