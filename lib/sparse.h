/* The one walker over a file's data and holes (SEEK_DATA/SEEK_HOLE), for
 * every reader that keeps sparse files sparse: hashing, object writing,
 * copying. */
#ifndef VUNIFY_SPARSE_H
#define VUNIFY_SPARSE_H

#include <stdbool.h>
#include <stdint.h>

enum sparse_flags {
	SPARSE_EXACT = 1 << 0, /* the file must also end at SIZE, not grow past it */
};

/* Called for each extent [start, end) in order, DATA false for a hole
 * (reads as zeros).  Returns 0 to go on, or nonzero to stop the walk with
 * that value. */
typedef int (*sparse_fn)(uint64_t start, uint64_t end, bool data, void *ud);

/* Visit [0, SIZE) of FD as data extents and holes.  Where SEEK_DATA is not
 * supported the rest is one data extent.  Afterwards the file must still
 * reach SIZE (SEEK_DATA reports a shrunk file's missing end as a hole) and,
 * with SPARSE_EXACT, end there.  Returns 0, fn's first nonzero return,
 * -E_CHANGED (util.h) when the file's length is not SIZE any more, or
 * -errno of a failed read. */
int sparse_walk(int fd, uint64_t size, unsigned flags, sparse_fn fn, void *ud);

#endif
