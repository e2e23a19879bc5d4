/* SEEK_DATA/SEEK_HOLE walker: one copy of the loop and of the length
 * check that the hash, the object writer and the data copy used to carry
 * each. */
#define _GNU_SOURCE
#include "sparse.h"

#include <errno.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

/* 0 if FD still reaches SIZE (and, with SPARSE_EXACT, ends there). */
static int check_length(int fd, uint64_t size, unsigned flags)
{
	char probe;
	ssize_t n;

	if (size > 0) {
		n = pread(fd, &probe, 1, (off_t)(size - 1));
		if (n < 0)
			return neg_errno(); /* a read error, not a change */
		if (n == 0)
			return -E_CHANGED; /* shrank */
	}
	if (flags & SPARSE_EXACT) {
		n = pread(fd, &probe, 1, (off_t)size);
		if (n != 0)
			return n < 0 ? neg_errno() : -E_CHANGED; /* grew */
	}
	return 0;
}

/* Contract in sparse.h. */
int sparse_walk(int fd, uint64_t size, unsigned flags, sparse_fn fn, void *ud)
{
	uint64_t off = 0;
	int r;

	while (off < size) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA), hole;
		uint64_t end;

		if (data < 0) {
			if (errno != ENXIO) {
				/* SEEK_DATA unsupported: read it all */
				r = fn(off, size, true, ud);
				if (r)
					return r;
				break;
			}
			data = (off_t)size; /* only a hole remains */
		}
		if ((uint64_t)data > size)
			data = (off_t)size;
		if ((uint64_t)data > off) {
			r = fn(off, (uint64_t)data, false, ud);
			if (r)
				return r;
			off = (uint64_t)data;
			if (off >= size)
				break;
		}
		hole = lseek(fd, (off_t)off, SEEK_HOLE);
		end = hole < 0 || (uint64_t)hole > size ? size : (uint64_t)hole;
		if (end <= off)
			end = size; /* a hole where data just was: read on */
		r = fn(off, end, true, ud);
		if (r)
			return r;
		off = end;
	}
	return check_length(fd, size, flags);
}
