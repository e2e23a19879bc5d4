/* How much of the pool's content is in the page cache now. */
#ifndef VUNIFY_PAGE_CACHE_H
#define VUNIFY_PAGE_CACHE_H

#include <stdint.h>

#include "pool.h"

struct memory_info {
	uint64_t cached_bytes; /* pages of objects in the page cache */
	uint64_t shared_cached_bytes; /* of those, of objects two or more guests reference */
	uint64_t objects_cached; /* objects with at least one cached page */
	uint64_t shared_objects; /* objects referenced by two or more guests */
	const char *method; /* "cachestat" or "mincore" */
};

/* Measure the page cache held by objects, with cachestat(2) where the
 * kernel has it (6.5+), else mmap + mincore(2).  Guests' references come
 * from the pool's records.  A page of an object is one page for every
 * guest that reads the object: that is the sharing.  Returns 0 or
 * -errno. */
int pool_memory(struct pool *p, struct memory_info *ret);

#endif
