/* Object writing.  Hashing during the copy costs no extra read and closes
 * the window in which a source could change between hashing and copying:
 * an object's name is always the hash of the bytes that were written. */
#define _GNU_SOURCE
#include "object.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

#define CHUNK (1 << 20)

char *object_relpath(const char *name, char buf[OBJECT_NAME_MAX + 4])
{
	snprintf(buf, OBJECT_NAME_MAX + 4, "%c%c/%s", name[0], name[1], name);
	return buf;
}

static int copy_hash_range(int src, int dst, struct hash_ctx *c, unsigned char *buf, uint64_t off,
                           uint64_t end)
{
	while (off < end) {
		ssize_t n = pread(src, buf, (size_t)MIN(end - off, (uint64_t)CHUNK), (off_t)off);
		int r;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		if (n == 0)
			return -EBADMSG; /* shrank: not what was hashed */
		r = hash_update(c, buf, (size_t)n);
		if (r < 0)
			return r;
		r = pwrite_all(dst, buf, (size_t)n, off);
		if (r < 0)
			return r;
		off += (uint64_t)n;
	}
	return 0;
}

/* Small files: one read of size+1 bytes proves the length, one write. */
static int copy_hash_small(int src, int dst, struct hasher *h, uint64_t size, unsigned char ret[HASH_LEN])
{
	int r = hasher_read_small(h, src, size);

	if (r == -ESTALE)
		return -EBADMSG; /* shrank or grew: not what was hashed */
	if (r == 0)
		r = write_all(dst, h->buf, (size_t)size);
	if (r == 0)
		r = hash_update(h->c, h->buf, (size_t)size);
	return r < 0 ? r : hash_final(h->c, ret);
}

static int copy_hash(int src, int dst, struct hasher *h, uint64_t size, unsigned char ret[HASH_LEN])
{
	unsigned char *buf = h->buf;
	_cleanup_free_ unsigned char *zeros = NULL;
	struct hash_ctx *c = h->c;
	uint64_t off = 0;
	int r = 0;

	if (size < CHUNK)
		return copy_hash_small(src, dst, h, size, ret);
	while (off < size && r == 0) {
		off_t data = lseek(src, (off_t)off, SEEK_DATA), hole;
		if (data < 0) {
			if (errno != ENXIO) {
				r = copy_hash_range(src, dst, c, buf, off, size);
				off = size;
				break;
			}
			data = (off_t)size;
		}
		if ((uint64_t)data > size)
			data = (off_t)size;
		while (off < (uint64_t)data && r == 0) {
			/* holes hash as zeros and are not written */
			size_t k = (size_t)MIN((uint64_t)data - off, (uint64_t)CHUNK);
			if (!zeros && !(zeros = calloc(1, CHUNK))) {
				r = -ENOMEM;
				break;
			}
			r = hash_update(c, zeros, k);
			off += k;
		}
		if (r < 0 || off >= size)
			break;
		hole = lseek(src, (off_t)off, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = (off_t)size;
		r = copy_hash_range(src, dst, c, buf, off, (uint64_t)hole);
		off = (uint64_t)hole;
	}
	if (r == 0) {
		char probe;
		/* SEEK_DATA gives ENXIO past the end as for a trailing hole,
		 * so check the source still reaches SIZE */
		if (size > 0 && pread(src, &probe, 1, (off_t)(size - 1)) != 1)
			r = -EBADMSG; /* shrank: not what was hashed */
		else if (pread(src, &probe, 1, (off_t)size) > 0)
			r = -EBADMSG; /* grew: not what was hashed */
	}
	if (r == 0 && ftruncate(dst, (off_t)size) < 0)
		r = neg_errno();
	if (r == 0)
		r = hash_final(c, ret);
	else
		(void)hash_final(c, ret); /* reset for the next file */
	return r;
}

int object_write_tmp_with(struct pool *p, struct hasher *h, int src_fd, uint64_t size,
                          const unsigned char *want, char ret_tmp[OBJECT_TMP_MAX], int *ret_fd)
{
	static unsigned long counter;
	unsigned char got[HASH_LEN];
	char name[OBJECT_TMP_MAX];
	int fd, r;

	snprintf(name, sizeof(name), "o.%ld.%lu", (long)getpid(),
	         __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	fd = openat(p->tmp_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (fd < 0)
		return neg_errno();
	r = copy_hash(src_fd, fd, h, size, got);
	if (r == 0 && want && memcmp(got, want, HASH_LEN))
		r = -EBADMSG;
	if (r < 0) {
		close(fd);
		unlinkat(p->tmp_fd, name, 0);
		return r;
	}
	memcpy(ret_tmp, name, sizeof(name));
	*ret_fd = fd;
	return 0;
}

int object_commit(struct pool *p, const char *tmp, const char *name)
{
	char rel[OBJECT_NAME_MAX + 4];

	object_relpath(name, rel);
	if (renameat2(p->tmp_fd, tmp, p->objects_fd, rel, RENAME_NOREPLACE) < 0) {
		int r = neg_errno();
		if (r != -EEXIST)
			return r;
		if (unlinkat(p->tmp_fd, tmp, 0) < 0)
			return neg_errno();
	}
	return 0;
}

int object_write_tmp(struct pool *p, int src_fd, uint64_t size, const unsigned char *want,
                     char ret_tmp[OBJECT_TMP_MAX], int *ret_fd)
{
	struct hasher h;
	int r = hasher_init(&h);

	if (r < 0)
		return r;
	r = object_write_tmp_with(p, &h, src_fd, size, want, ret_tmp, ret_fd);
	hasher_release(&h);
	return r;
}
