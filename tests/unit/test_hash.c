/* lib/hash.c: SHA-256 against published vectors, hash_fd against
 * hash_buffer on plain and sparse files, hash_fd refusing a size that does
 * not match the file, and the hex helpers with inputs they must refuse. */
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

#include "hash.h"
#include "util.h"
#include "tmpdir.h"
#include "banned.h"

#define MIB (1u << 20)
#define SPARSE_SIZE (64ull << 20)

static int setup(void **state)
{
	return fixture_setup(state, "hash");
}

static void assert_hex(const unsigned char h[HASH_LEN], const char *want)
{
	char hex[HASH_HEX_LEN + 1];

	hash_to_hex(h, hex);
	assert_string_equal(hex, want);
}

/* A file holding LEN bytes of BUF; returns an O_RDONLY fd. */
static int make_file(int dir, const char *name, const void *buf, size_t len)
{
	int fd = openat(dir, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, buf, len), 0);
	return fd;
}

static void test_vectors(void **state)
{
	unsigned char h[HASH_LEN];
	char *buf;

	(void)state;
	assert_int_equal(hash_buffer("", 0, h), 0);
	assert_hex(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(hash_buffer("abc", 3, h), 0);
	assert_hex(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

	buf = malloc(MIB);
	assert_non_null(buf);
	memset(buf, 'a', MIB);
	/* the NIST vector: one million 'a' */
	assert_int_equal(hash_buffer(buf, 1000000, h), 0);
	assert_hex(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	/* 1 MiB of 'a' (sha256sum) */
	assert_int_equal(hash_buffer(buf, MIB, h), 0);
	assert_hex(h, "9bc1b2a288b26af7257a36277ae3816a7d4f16e89c1e7e77d0a5c48bad62b360");
	free(buf);
}

static void test_streaming(void **state)
{
	static const char msg[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	struct hash_ctx *c = hash_new();
	unsigned char h[HASH_LEN];

	(void)state;
	assert_non_null(c);
	/* fed in odd pieces */
	assert_int_equal(hash_update(c, msg, 5), 0);
	assert_int_equal(hash_update(c, msg + 5, 0), 0);
	assert_int_equal(hash_update(c, msg + 5, sizeof(msg) - 1 - 5), 0);
	assert_int_equal(hash_final(c, h), 0);
	assert_hex(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* the context is reusable after final */
	assert_int_equal(hash_update(c, "abc", 3), 0);
	assert_int_equal(hash_final(c, h), 0);
	assert_hex(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* final without update: the empty message */
	assert_int_equal(hash_final(c, h), 0);
	assert_hex(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hash_free(c);
	hash_free(NULL);
}

static void test_fd_regular(void **state)
{
	struct fixture *f = *state;
	unsigned char a[HASH_LEN], b[HASH_LEN];
	size_t len = 3 * MIB + 12345; /* several read chunks and a tail */
	unsigned char *buf = malloc(len);
	int fd;

	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7 + (i >> 13));
	fd = make_file(f->dir, "regular", buf, len);
	assert_int_equal(hash_buffer(buf, len, a), 0);
	assert_int_equal(hash_fd(fd, len, b), 0);
	assert_memory_equal(a, b, HASH_LEN);
	close(fd);

	/* an empty file */
	fd = make_file(f->dir, "empty", "", 0);
	assert_int_equal(hash_fd(fd, 0, b), 0);
	assert_hex(b, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	close(fd);
	free(buf);
}

static void sparse_case(int dir, const char *name, uint64_t size, const uint64_t *offs, size_t n_offs)
{
	static const char data[] = "datadata";
	unsigned char a[HASH_LEN], b[HASH_LEN];
	unsigned char *mem = calloc(1, size);
	struct stat st;
	int fd = openat(dir, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	assert_non_null(mem);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	for (size_t i = 0; i < n_offs; i++) {
		assert_int_equal(pwrite(fd, data, 8, (off_t)offs[i]), 8);
		memcpy(mem + offs[i], data, 8);
	}
	assert_int_equal(fsync(fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 < size / 4); /* really sparse */
	assert_int_equal(hash_buffer(mem, size, a), 0);
	assert_int_equal(hash_fd(fd, size, b), 0);
	assert_memory_equal(a, b, HASH_LEN);
	close(fd);
	free(mem);
}

static void test_fd_sparse(void **state)
{
	struct fixture *f = *state;
	const uint64_t middle[] = {SPARSE_SIZE / 2 - 3};
	const uint64_t edges[] = {0, SPARSE_SIZE / 3, SPARSE_SIZE - 8};
	unsigned char h[HASH_LEN];
	int fd;

	/* 64 MiB hole with a few bytes in the middle (straddling a chunk
	 * boundary), and data at both ends */
	sparse_case(f->dir, "sparse-middle", SPARSE_SIZE, middle, ARRAY_SIZE(middle));
	sparse_case(f->dir, "sparse-edges", SPARSE_SIZE, edges, ARRAY_SIZE(edges));

	/* all hole */
	fd = openat(f->dir, "all-hole", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)SPARSE_SIZE), 0);
	{
		unsigned char a[HASH_LEN];
		unsigned char *zeros = calloc(1, SPARSE_SIZE);
		assert_non_null(zeros);
		assert_int_equal(hash_buffer(zeros, SPARSE_SIZE, a), 0);
		assert_int_equal(hash_fd(fd, SPARSE_SIZE, h), 0);
		assert_memory_equal(a, h, HASH_LEN);
		free(zeros);
	}
	close(fd);
}

static void test_fd_size_mismatch(void **state)
{
	struct fixture *f = *state;
	unsigned char h[HASH_LEN];
	int fd = make_file(f->dir, "ten", "0123456789", 10);

	/* size larger than the file: it shrank under us (-ESTALE: a change,
	 * not a read error) */
	assert_int_equal(hash_fd(fd, 11, h), -ESTALE);
	assert_int_equal(hash_fd(fd, 4096, h), -ESTALE);
	assert_int_equal(hash_fd(fd, 2 * (uint64_t)MIB, h), -ESTALE);
	/* file longer than size: it grew under us */
	assert_int_equal(hash_fd(fd, 9, h), -ESTALE);
	assert_int_equal(hash_fd(fd, 0, h), -ESTALE);
	assert_int_equal(hash_fd(fd, 10, h), 0);
	close(fd);

	/* the same with a file ending in a hole */
	fd = openat(f->dir, "tail-hole", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "x", 1, 0), 1);
	assert_int_equal(ftruncate(fd, 8 * MIB), 0);
	assert_int_equal(hash_fd(fd, 8 * MIB + 1, h), -ESTALE);
	assert_int_equal(hash_fd(fd, 16 * MIB, h), -ESTALE);
	assert_int_equal(hash_fd(fd, 8 * MIB - 1, h), -ESTALE);
	assert_int_equal(hash_fd(fd, 8 * MIB, h), 0);
	close(fd);

	/* not a readable file */
	assert_true(hash_fd(f->dir, 1, h) < 0);
	assert_true(hash_fd(-1, 1, h) < 0);
}

static void test_hex(void **state)
{
	unsigned char h[HASH_LEN], back[HASH_LEN];
	char hex[HASH_HEX_LEN + 1], bad[HASH_HEX_LEN + 2];

	(void)state;
	for (size_t i = 0; i < HASH_LEN; i++)
		h[i] = (unsigned char)(i * 37 + 11);
	h[0] = 0x00;
	h[1] = 0xff;
	hash_to_hex(h, hex);
	assert_int_equal(strlen(hex), HASH_HEX_LEN);
	assert_memory_equal(hex, "00ff", 4);
	assert_true(hash_is_hex(hex));
	memset(back, 0, sizeof(back));
	assert_int_equal(hash_from_hex(hex, back), 0);
	assert_memory_equal(h, back, HASH_LEN);

	/* must be refused; ret untouched */
	memset(back, 0x5a, sizeof(back));
	memcpy(bad, hex, sizeof(hex));
	bad[10] = 'A'; /* upper case */
	assert_int_equal(hash_from_hex(bad, back), -EINVAL);
	assert_false(hash_is_hex(bad));
	memcpy(bad, hex, sizeof(hex));
	bad[HASH_HEX_LEN - 1] = 'g'; /* non-hex */
	assert_int_equal(hash_from_hex(bad, back), -EINVAL);
	assert_false(hash_is_hex(bad));
	memcpy(bad, hex, sizeof(hex));
	bad[5] = ' ';
	assert_int_equal(hash_from_hex(bad, back), -EINVAL);
	memcpy(bad, hex, HASH_HEX_LEN - 1); /* short */
	bad[HASH_HEX_LEN - 1] = '\0';
	assert_int_equal(hash_from_hex(bad, back), -EINVAL);
	assert_false(hash_is_hex(bad));
	assert_int_equal(hash_from_hex("", back), -EINVAL);
	assert_false(hash_is_hex(""));
	memcpy(bad, hex, HASH_HEX_LEN); /* long */
	bad[HASH_HEX_LEN] = '0';
	bad[HASH_HEX_LEN + 1] = '\0';
	assert_int_equal(hash_from_hex(bad, back), -EINVAL);
	assert_true(hash_is_hex(bad)); /* only a prefix test */
	for (size_t i = 0; i < HASH_LEN; i++)
		assert_int_equal(back[i], 0x5a);

	/* upper case everywhere */
	assert_int_equal(
	        hash_from_hex("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", back),
	        -EINVAL);
	assert_int_equal(
	        hash_from_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", back), 0);
	assert_hex(back, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_vectors),
	        cmocka_unit_test(test_streaming),
	        cmocka_unit_test_setup_teardown(test_fd_regular, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_fd_sparse, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_fd_size_mismatch, setup, teardown),
	        cmocka_unit_test(test_hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
