/* Garbage collection: deleting the objects no guest references. */
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

#endif
