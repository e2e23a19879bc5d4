/* Data copy between files.  copy_file_range lets the kernel copy without
 * bouncing through user space, and share extents on btrfs/xfs; walking
 * SEEK_DATA/SEEK_HOLE keeps sparse files sparse. */
#define _GNU_SOURCE
#include "copy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

#define CHUNK (1 << 20)

static int copy_range_rw(int src, int dst, uint64_t off, uint64_t end)
{
	_cleanup_free_ char *buf = malloc(CHUNK);

	if (!buf)
		return -ENOMEM;
	while (off < end) {
		ssize_t n = pread(src, buf, (size_t)MIN(end - off, (uint64_t)CHUNK), (off_t)off);
		int r;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		if (n == 0)
			return -EIO;
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
			return -EIO;
		off += (uint64_t)n;
	}
	return off < end ? copy_range_rw(src, dst, off, end) : 0;
}

int copy_data(int src_fd, int dst_fd, uint64_t size)
{
	bool use_cfr = true;
	uint64_t off = 0;
	int r = 0;

	while (off < size) {
		off_t data = lseek(src_fd, (off_t)off, SEEK_DATA), hole;

		if (data < 0) {
			if (errno == ENXIO)
				break; /* the rest is a hole */
			r = copy_range(src_fd, dst_fd, off, size, &use_cfr);
			if (r < 0)
				return r;
			off = size;
			break;
		}
		if ((uint64_t)data >= size)
			break;
		hole = lseek(src_fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = (off_t)size;
		r = copy_range(src_fd, dst_fd, (uint64_t)data, (uint64_t)hole, &use_cfr);
		if (r < 0)
			return r;
		off = (uint64_t)hole;
	}
	if (size > 0) {
		/* SEEK_DATA gives ENXIO past the end as for a trailing hole:
		 * make sure the source still reaches SIZE */
		char probe;
		if (pread(src_fd, &probe, 1, (off_t)(size - 1)) != 1)
			return -EIO;
	}
	if (ftruncate(dst_fd, (off_t)size) < 0)
		return neg_errno();
	return 0;
}
