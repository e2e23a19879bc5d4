/* lib/copy_data.c: data copies equal to the source over several chunks,
 * sparse files staying sparse, the read/write fallback across filesystems,
 * and a source shorter than the size given refused with -E_CHANGED (also when
 * the missing part would look like a trailing hole). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy.h"
#include "hash.h"
#include "util.h"
#include "tmpdir.h"
#include "banned.h"

#define MIB (1u << 20)
#define SPARSE_SIZE (256ull << 20)

static int setup(void **state)
{
	return fixture_setup(state, "copy-data");
}

static int new_file(int dir, const char *name)
{
	int fd = openat(dir, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	return fd;
}

static void assert_same(int a, int b, uint64_t size)
{
	unsigned char ha[HASH_LEN], hb[HASH_LEN];
	struct stat st;

	assert_int_equal(fstat(b, &st), 0);
	assert_int_equal(st.st_size, size);
	assert_int_equal(hash_fd(a, size, ha), 0);
	assert_int_equal(hash_fd(b, size, hb), 0);
	assert_memory_equal(ha, hb, HASH_LEN);
}

static void copy_regular(int sdir, int ddir)
{
	size_t len = 3 * MIB + 777;
	unsigned char *buf = malloc(len);
	int src = new_file(sdir, "regular"), dst = new_file(ddir, "regular.copy");

	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 131 + (i >> 11));
	assert_int_equal(write_all(src, buf, len), 0);
	assert_int_equal(copy_data(src, dst, len), 0);
	assert_same(src, dst, len);
	close(src);
	close(dst);
	free(buf);
}

static void test_regular(void **state)
{
	struct fixture *f = *state;
	int src, dst;

	copy_regular(f->dir, f->dir);

	/* empty */
	src = new_file(f->dir, "empty");
	dst = new_file(f->dir, "empty.copy");
	assert_int_equal(copy_data(src, dst, 0), 0);
	assert_same(src, dst, 0);
	close(src);
	close(dst);
}

static void test_other_filesystem(void **state)
{
	struct fixture *f = *state;
	char shm[] = "/dev/shm/vunify-copy-data.XXXXXX";
	int d;

	/* copy_file_range gives EXDEV between ext4 and tmpfs: read/write */
	if (!mkdtemp(shm)) {
		print_message("test_other_filesystem: skipped, no /dev/shm\n");
		skip();
		return;
	}
	d = open(shm, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(d >= 0);
	copy_regular(f->dir, d);
	close(d);
	assert_int_equal(tmpdir_remove(shm), 0);
}

static void test_sparse(void **state)
{
	struct fixture *f = *state;
	int src = new_file(f->dir, "sparse"), dst = new_file(f->dir, "sparse.copy");
	struct stat st;

	assert_int_equal(ftruncate(src, (off_t)SPARSE_SIZE), 0);
	assert_int_equal(pwrite(src, "head", 4, 0), 4);
	assert_int_equal(pwrite(src, "middle", 6, SPARSE_SIZE / 2 - 3), 6);
	/* ends in a hole */
	assert_int_equal(copy_data(src, dst, SPARSE_SIZE), 0);
	assert_same(src, dst, SPARSE_SIZE);
	assert_int_equal(fsync(dst), 0);
	assert_int_equal(fstat(dst, &st), 0);
	assert_true(st.st_blocks < 1024); /* < 512 KiB allocated for 256 MiB */
	close(dst);

	/* all hole */
	dst = new_file(f->dir, "hole.copy");
	close(src);
	src = new_file(f->dir, "hole");
	assert_int_equal(ftruncate(src, (off_t)SPARSE_SIZE), 0);
	assert_int_equal(copy_data(src, dst, SPARSE_SIZE), 0);
	assert_same(src, dst, SPARSE_SIZE);
	assert_int_equal(fstat(dst, &st), 0);
	assert_true(st.st_blocks < 64);
	close(src);
	close(dst);
}

static void test_short_source(void **state)
{
	struct fixture *f = *state;
	int src = new_file(f->dir, "ten"), dst;

	assert_int_equal(write_all(src, "0123456789", 10), 0);
	/* the source shrank since SIZE was taken */
	dst = new_file(f->dir, "c1");
	assert_int_equal(copy_data(src, dst, 11), -E_CHANGED);
	close(dst);
	dst = new_file(f->dir, "c2");
	assert_int_equal(copy_data(src, dst, 8 * MIB), -E_CHANGED);
	close(dst);
	close(src);

	/* ... where the missing tail would pass for a hole */
	src = new_file(f->dir, "tail-hole");
	assert_int_equal(pwrite(src, "x", 1, 0), 1);
	assert_int_equal(ftruncate(src, MIB), 0);
	dst = new_file(f->dir, "c3");
	assert_int_equal(copy_data(src, dst, MIB + 1), -E_CHANGED);
	close(dst);
	dst = new_file(f->dir, "c4");
	assert_int_equal(copy_data(src, dst, MIB), 0);
	assert_same(src, dst, MIB);
	close(dst);
	close(src);

	/* bad fds */
	dst = new_file(f->dir, "c5");
	assert_true(copy_data(-1, dst, 10) < 0);
	close(dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_regular, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_other_filesystem, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sparse, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_short_source, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
