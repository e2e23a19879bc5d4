/* Objects for the unit tests that need a pool: a file stored as an object
 * the way unify's store does (hash, temp file, the layout's finish,
 * commit).  Include after <cmocka.h>; a failure fails the running test. */
#ifndef VUNIFY_TEST_POOL_FIXTURE_H
#define VUNIFY_TEST_POOL_FIXTURE_H

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "layout.h"
#include "object.h"
#include "pool.h"
#include "util.h"

/* Store the regular file NAME under DIR as an object of pool P: its
 * metadata and hash into *M, the object's name into RET_NAME
 * (OBJECT_NAME_MAX bytes). */
static inline void store_object(struct pool *p, int dir, const char *name, struct file_meta *m,
                                char *ret_name)
{
	const struct layout_ops *ops = layout_ops_for(p);
	char tmp[OBJECT_TMP_MAX];
	int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), tfd;

	assert_true(fd >= 0);
	memset(m, 0, sizeof(*m));
	assert_int_equal(fstat(fd, &m->st), 0);
	assert_int_equal(hash_fd(fd, (uint64_t)m->st.st_size, m->hash), 0);
	assert_int_equal(ops->object_name(m, ret_name), 0);
	assert_int_equal(object_write_tmp(p, fd, (uint64_t)m->st.st_size, m->hash, tmp, &tfd), 0);
	assert_int_equal(ops->object_finish(tfd, m), 0);
	close(tfd);
	close(fd);
	assert_int_equal(object_commit(p, tmp, ret_name), 0);
}

/* An object of TEXT in pool P, written first as DIR/src; its name into
 * RET_NAME. */
static inline void make_object(struct pool *p, int dir, const char *text, char *ret_name)
{
	struct file_meta m;
	int fd = openat(dir, "src", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
	store_object(p, dir, "src", &m, ret_name);
}

#endif
