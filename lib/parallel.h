/* A small thread pool for the unify phases: run one function over an index
 * range on a few threads, the caller's among them. */
#ifndef VUNIFY_PARALLEL_H
#define VUNIFY_PARALLEL_H

#include <stddef.h>
#include <stdint.h>

/* Run fn(i) for every i < n on up to NTH threads, the caller's among
 * them.  Stops handing out work at the first error, which it returns
 * (its i in *ret_failed). */
int parallel_for(size_t n, unsigned nth, int (*fn)(size_t i, void *ud), void *ud, size_t *ret_failed);

/* How many threads: REQUESTED, or the number of online CPUs when 0. */
unsigned parallel_jobs(unsigned requested);

/* Counters several threads add to. */
static inline void count_add(uint64_t *c, uint64_t v)
{
	__atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

static inline void count_sub(uint64_t *c, uint64_t v)
{
	__atomic_fetch_sub(c, v, __ATOMIC_RELAXED);
}

#endif
