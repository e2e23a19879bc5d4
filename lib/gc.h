/* Garbage collection and guest removal. */
#ifndef VUNIFY_GC_H
#define VUNIFY_GC_H

#include <stdbool.h>
#include <stdint.h>

#include "pool.h"

struct gc_result {
	uint64_t objects_deleted, bytes_deleted;
	uint64_t objects_kept, bytes_kept;
	uint64_t guests_detached; /* guests whose refs came from the registry alone */
};

/* Delete every object no registered guest references.  References are the
 * pool's record (guests/NAME/refs) united with, for guests whose home is
 * attached, what their lower layer really points at; a guest with neither
 * makes gc refuse (-ENODATA, *ret_what = guest).  Link layout objects with
 * links besides their own name are kept whatever the records say.
 * Returns 0 or -errno. */
int gc_run(struct pool *p, bool dry_run, struct gc_result *ret, char **ret_what);

/* Turn a guest's home into a plain standalone tree: every file its lower
 * layer shows is copied into the upper (metadata, xattrs, hard links of the
 * redirect layout), then the lower layer is deleted, then whiteouts and
 * opaque marks, which now hide nothing, are dropped.  Each step keeps the
 * guest's view; re-running after a crash finishes.  Returns 0 or -errno. */
int guest_materialize(struct pool *p, const struct guest *g, int home_fd, uint64_t *ret_files);

#endif
