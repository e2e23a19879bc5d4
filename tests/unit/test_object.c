/* lib/object.c: objects written through POOL/tmp, hashed while copied:
 * the right WANT succeeds, a wrong one (or a source that changed size)
 * fails with -E_CHANGED and leaves nothing in POOL/tmp; sparse sources stay
 * sparse; committing the same name twice keeps one object and drops the
 * second temp file.  Nothing here needs root. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "object.h"
#include "pool.h"
#include "util.h"
#define TMPDIR_OWN_FIXTURE
#include "tmpdir.h"
#include "unit.h"
#include "banned.h"

#define SPARSE_SIZE (64ull << 20)

struct fixture {
	char tmp[64];
	int dir;
	struct pool *pool;
};

static int setup(void **state)
{
	_cleanup_free_ struct fixture *f = calloc(1, sizeof(*f));
	char path[96];

	if (!f)
		return -1;
	f->dir = tmpdir_make(f->tmp, sizeof(f->tmp), "object");
	if (f->dir < 0 || mkdirat(f->dir, "src", 0755) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/pool", f->tmp);
	if (pool_init(path, LAYOUT_REDIRECT) < 0 ||
	    pool_open(path, POOL_LOCK_EXCLUSIVE, false, &f->pool, NULL) < 0)
		return -1;
	*state = steal_pointer(&f);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	pool_close(f->pool);
	close(f->dir);
	if (tmpdir_remove(f->tmp) < 0)
		return -1;
	free(f);
	return 0;
}

/* A source file in tmp/src; returns an O_RDONLY fd. */
static int make_src(struct fixture *f, const char *name, const void *buf, size_t len)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "src/%s", name);
	fd = openat(f->dir, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, buf, len), 0);
	return fd;
}

static void assert_fd_content(int fd, const void *want, size_t len)
{
	_cleanup_free_ char *buf = malloc(len + 1);
	struct stat st;

	assert_non_null(buf);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, len);
	assert_int_equal(pread(fd, buf, len + 1, 0), (ssize_t)len);
	assert_memory_equal(buf, want, len);
}

static void test_write_tmp(void **state)
{
	struct fixture *f = *state;
	static const char content[] = "object content\n";
	unsigned char want[HASH_LEN];
	char tmp[OBJECT_TMP_MAX], tmp2[OBJECT_TMP_MAX];
	struct stat st;
	int src = make_src(f, "a", content, sizeof(content) - 1), fd = -1, fd2 = -1;

	assert_int_equal(hash_buffer(content, sizeof(content) - 1, want), 0);
	assert_int_equal(object_write_tmp(f->pool, src, sizeof(content) - 1, want, tmp, &fd), 0);
	assert_true(fd >= 0);
	assert_int_equal(fstatat(f->pool->tmp_fd, tmp, &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0444);
	assert_fd_content(fd, content, sizeof(content) - 1);
	{
		struct stat st2;
		assert_int_equal(fstat(fd, &st2), 0);
		assert_int_equal(st.st_ino, st2.st_ino); /* *ret_fd is the temp file */
	}

	/* without WANT: accepted, a distinct temp name */
	assert_int_equal(object_write_tmp(f->pool, src, sizeof(content) - 1, NULL, tmp2, &fd2), 0);
	assert_string_not_equal(tmp, tmp2);
	assert_int_equal(count_entries(f->pool->tmp_fd), 2);
	close(fd);
	close(fd2);

	/* an empty source */
	{
		int e = make_src(f, "empty", "", 0);
		assert_int_equal(hash_buffer("", 0, want), 0);
		assert_int_equal(object_write_tmp(f->pool, e, 0, want, tmp, &fd), 0);
		assert_fd_content(fd, "", 0);
		close(fd);
		close(e);
	}
	assert_int_equal(pool_clean_tmp(f->pool), 0);
	assert_int_equal(count_entries(f->pool->tmp_fd), 0);
	close(src);
}

static void test_write_tmp_refusals(void **state)
{
	struct fixture *f = *state;
	static const char content[] = "what was hashed";
	unsigned char want[HASH_LEN], wrong[HASH_LEN];
	char tmp[OBJECT_TMP_MAX] = "untouched";
	int src = make_src(f, "a", content, sizeof(content) - 1), fd = -7;
	size_t len = sizeof(content) - 1;

	assert_int_equal(hash_buffer(content, len, want), 0);
	memcpy(wrong, want, HASH_LEN);
	wrong[HASH_LEN - 1] ^= 1;

	/* the content hashes differently: the source changed */
	assert_int_equal(object_write_tmp(f->pool, src, len, wrong, tmp, &fd), -E_CHANGED);
	assert_int_equal(count_entries(f->pool->tmp_fd), 0);
	assert_string_equal(tmp, "untouched");
	assert_int_equal(fd, -7);

	/* the source is shorter or longer than SIZE: refused with or without WANT */
	assert_int_equal(object_write_tmp(f->pool, src, len + 1, NULL, tmp, &fd), -E_CHANGED);
	assert_int_equal(object_write_tmp(f->pool, src, len + (8 << 20), NULL, tmp, &fd), -E_CHANGED);
	assert_int_equal(object_write_tmp(f->pool, src, len - 1, NULL, tmp, &fd), -E_CHANGED);
	assert_int_equal(object_write_tmp(f->pool, src, 0, NULL, tmp, &fd), -E_CHANGED);
	assert_int_equal(count_entries(f->pool->tmp_fd), 0);
	close(src);

	/* ... also when the missing part would be a trailing hole */
	src = make_src(f, "holey", "x", 1);
	assert_int_equal(ftruncate(src, 1 << 20), 0);
	assert_int_equal(object_write_tmp(f->pool, src, (1 << 20) + 4096, NULL, tmp, &fd), -E_CHANGED);
	assert_int_equal(object_write_tmp(f->pool, src, 1 << 20, NULL, tmp, &fd), 0);
	close(fd);
	assert_int_equal(pool_clean_tmp(f->pool), 0);
	close(src);

	/* not a readable source */
	assert_true(object_write_tmp(f->pool, -1, 1, NULL, tmp, &fd) < 0);
	assert_int_equal(count_entries(f->pool->tmp_fd), 0);
}

static void test_sparse(void **state)
{
	struct fixture *f = *state;
	unsigned char want[HASH_LEN];
	unsigned char *mem = calloc(1, SPARSE_SIZE);
	char tmp[OBJECT_TMP_MAX];
	struct stat st;
	int src = make_src(f, "sparse", "", 0), fd;

	assert_non_null(mem);
	assert_int_equal(ftruncate(src, (off_t)SPARSE_SIZE), 0);
	assert_int_equal(pwrite(src, "middle", 6, SPARSE_SIZE / 2 - 2), 6);
	assert_int_equal(pwrite(src, "end", 3, SPARSE_SIZE - 3), 3);
	memcpy(mem + SPARSE_SIZE / 2 - 2, "middle", 6);
	memcpy(mem + SPARSE_SIZE - 3, "end", 3);
	assert_int_equal(hash_buffer(mem, SPARSE_SIZE, want), 0);

	assert_int_equal(object_write_tmp(f->pool, src, SPARSE_SIZE, want, tmp, &fd), 0);
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, SPARSE_SIZE);
	assert_true(st.st_blocks < 1024); /* < 512 KiB allocated for 64 MiB */
	{
		unsigned char got[HASH_LEN];
		assert_int_equal(hash_fd(fd, SPARSE_SIZE, got), 0);
		assert_memory_equal(got, want, HASH_LEN);
	}
	close(fd);
	close(src);
	free(mem);
}

static void test_commit(void **state)
{
	struct fixture *f = *state;
	static const char content[] = "same content";
	unsigned char h[HASH_LEN];
	char name[HASH_HEX_LEN + 1], rel[OBJECT_NAME_MAX + 4], tmp1[OBJECT_TMP_MAX], tmp2[OBJECT_TMP_MAX];
	struct stat st1, st2;
	int src = make_src(f, "a", content, sizeof(content) - 1), fd1, fd2, fan;

	assert_int_equal(hash_buffer(content, sizeof(content) - 1, h), 0);
	hash_to_hex(h, name);
	assert_string_equal(object_relpath(name, rel), rel);
	assert_memory_equal(rel, name, 2);
	assert_int_equal(rel[2], '/');
	assert_string_equal(rel + 3, name);

	assert_int_equal(object_write_tmp(f->pool, src, sizeof(content) - 1, h, tmp1, &fd1), 0);
	assert_int_equal(object_write_tmp(f->pool, src, sizeof(content) - 1, h, tmp2, &fd2), 0);
	assert_int_equal(fstat(fd1, &st1), 0);
	assert_int_equal(pool_object_stat(f->pool, name, NULL), 0);

	assert_int_equal(object_commit(f->pool, tmp1, name), 0);
	assert_int_equal(pool_object_stat(f->pool, name, &st2), 1);
	assert_int_equal(st1.st_ino, st2.st_ino); /* renamed, not copied */
	assert_int_equal(count_entries(f->pool->tmp_fd), 1);

	/* the same name again: the object stays, the second temp is dropped */
	assert_int_equal(object_commit(f->pool, tmp2, name), 0);
	assert_int_equal(pool_object_stat(f->pool, name, &st2), 1);
	assert_int_equal(st1.st_ino, st2.st_ino);
	assert_int_equal(count_entries(f->pool->tmp_fd), 0);
	fan = pool_object_dir(f->pool, name);
	assert_true(fan >= 0);
	assert_int_equal(count_entries(fan), 1);
	close(fan);
	assert_fd_content(fd1, content, sizeof(content) - 1);

	/* a temp name that is not there */
	assert_int_equal(object_commit(f->pool, "o.missing", name), -ENOENT);
	close(fd1);
	close(fd2);
	close(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_write_tmp, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_write_tmp_refusals, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sparse, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_commit, setup, teardown),
	};

	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
