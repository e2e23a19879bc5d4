/* Object writing.  Hashing during the copy costs no extra read and closes
 * the window in which a source could change between hashing and copying:
 * an object's name is always the hash of the bytes that were written. */
#define _GNU_SOURCE
#include "object.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sparse.h"
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
		ssize_t n = pread_data(src, buf, (size_t)MIN(end - off, (uint64_t)CHUNK), off);
		int r;
		if (n < 0)
			return (int)n; /* -E_CHANGED: shrank, not what was hashed */
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
	int r = hasher_read_small(h, src, size); /* -E_CHANGED: shrank or grew */

	if (r == 0)
		r = write_all(dst, h->buf, (size_t)size);
	if (r == 0)
		r = hash_update(h->c, h->buf, (size_t)size);
	return r < 0 ? r : hash_final(h->c, ret);
}

struct copy_hash_walk {
	struct hasher *h;
	int src, dst;
	unsigned char *zeros; /* CHUNK zero bytes, allocated at the first hole */
};

/* sparse_walk's step: data is copied and hashed; holes hash as zeros and
 * are not written (the final ftruncate leaves them holes) */
static int copy_hash_extent(uint64_t start, uint64_t end, bool data, void *ud)
{
	struct copy_hash_walk *w = ud;

	if (data)
		return copy_hash_range(w->src, w->dst, w->h->c, w->h->buf, start, end);
	if (!w->zeros && !(w->zeros = calloc(1, CHUNK)))
		return -ENOMEM;
	while (start < end) {
		size_t k = (size_t)MIN(end - start, (uint64_t)CHUNK);
		int r = hash_update(w->h->c, w->zeros, k);
		if (r < 0)
			return r;
		start += k;
	}
	return 0;
}

static int copy_hash(int src, int dst, struct hasher *h, uint64_t size, unsigned char ret[HASH_LEN])
{
	struct copy_hash_walk w = {.h = h, .src = src, .dst = dst};
	int r;

	if (size < CHUNK)
		return copy_hash_small(src, dst, h, size, ret);
	/* the source must be exactly SIZE bytes: what was hashed */
	r = sparse_walk(src, size, SPARSE_EXACT, copy_hash_extent, &w);
	free(w.zeros);
	if (r == 0 && ftruncate(dst, (off_t)size) < 0)
		r = neg_errno();
	if (r == 0)
		r = hash_final(h->c, ret);
	else
		(void)hash_final(h->c, ret); /* reset for the next file */
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
		r = -E_CHANGED; /* not what was hashed before */
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
