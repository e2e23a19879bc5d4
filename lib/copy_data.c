/* Data copy between files.  copy_file_range lets the kernel copy without
 * bouncing through user space, and share extents on btrfs/xfs; walking
 * SEEK_DATA/SEEK_HOLE keeps sparse files sparse. */
#define _GNU_SOURCE
#include "copy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <unistd.h>

#include "sparse.h"
#include "util.h"
#include "banned.h"

#define CHUNK (1 << 20)

static int copy_range_rw(int src, int dst, uint64_t off, uint64_t end)
{
	_cleanup_free_ char *buf = malloc(CHUNK);

	if (!buf)
		return -ENOMEM;
	while (off < end) {
		ssize_t n = pread_data(src, buf, (size_t)MIN(end - off, (uint64_t)CHUNK), off);
		int r;
		if (n < 0)
			return (int)n; /* -E_CHANGED: shrank */
		r = pwrite_all(dst, buf, (size_t)n, off);
		if (r < 0)
			return r;
		off += (uint64_t)n;
	}
	return 0;
}

static int copy_range(int src, int dst, uint64_t off, uint64_t end, bool *use_cfr)
{
	while (*use_cfr && off < end) {
		loff_t in = (loff_t)off, out = (loff_t)off;
		ssize_t n =
		        copy_file_range(src, &in, dst, &out, (size_t)MIN(end - off, (uint64_t)1 << 30), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL) {
				*use_cfr = false;
				break;
			}
			return neg_errno();
		}
		if (n == 0)
			return -E_CHANGED; /* shrank */
		off += (uint64_t)n;
	}
	return off < end ? copy_range_rw(src, dst, off, end) : 0;
}

struct copy_walk {
	int src, dst;
	bool use_cfr; /* copy_file_range still worth trying */
};

/* sparse_walk's step: data is copied, holes are left to the ftruncate */
static int copy_extent(uint64_t start, uint64_t end, bool data, void *ud)
{
	struct copy_walk *w = ud;

	return data ? copy_range(w->src, w->dst, start, end, &w->use_cfr) : 0;
}

int copy_data(int src_fd, int dst_fd, uint64_t size)
{
	struct copy_walk w = {.src = src_fd, .dst = dst_fd, .use_cfr = true};
	/* the source must still reach SIZE (a file that grew is copied up
	 * to SIZE, as the stat the caller copies the metadata from says) */
	int r = sparse_walk(src_fd, size, 0, copy_extent, &w);

	if (r < 0)
		return r;
	if (ftruncate(dst_fd, (off_t)size) < 0)
		return neg_errno();
	return 0;
}
