/* lib/util.c: number parsing with its must-fail inputs, path joining, the
 * small-file helpers (atomic write, bounded read that never follows a
 * symlink), the bounded symlink read, opening a directory for readdir
 * and byte formatting. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "tmpdir.h"
#include "unit.h"
#include "banned.h"

static int setup(void **state)
{
	return fixture_setup(state, "util");
}

static void test_parse_u64(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
	        {"0", 0},
	        {"1", 1},
	        {"007", 7},
	        {"4096", 4096},
	        {"18446744073709551615", UINT64_MAX},
	        {"00000000000000000000000018446744073709551615", UINT64_MAX},
	        {"18446744073709551610", UINT64_MAX - 5},
	};
	static const struct {
		const char *s;
		int err;
	} bad[] = {
	        {"", -EINVAL},
	        {"-1", -EINVAL},
	        {"+1", -EINVAL},
	        {"-0", -EINVAL},
	        {" 1", -EINVAL},
	        {"1 ", -EINVAL},
	        {"1\n", -EINVAL},
	        {"0x10", -EINVAL},
	        {"1.5", -EINVAL},
	        {"1e3", -EINVAL},
	        {"12k", -EINVAL},
	        {"abc", -EINVAL},
	        {"1,000", -EINVAL},
	        {"\xd9\xa1", -EINVAL}, /* Arabic-Indic one */
	        {"18446744073709551616", -ERANGE}, /* UINT64_MAX + 1 */
	        {"18446744073709551620", -ERANGE},
	        {"99999999999999999999", -ERANGE},
	        {"184467440737095516150", -ERANGE},
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		v = 12345;
		assert_int_equal(parse_u64(good[i].s, &v), 0);
		assert_int_equal(v, good[i].v);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r;
		v = 12345;
		r = parse_u64(bad[i].s, &v);
		if (r != bad[i].err)
			fail_msg("parse_u64('%s') = %d, want %d", bad[i].s, r, bad[i].err);
		assert_int_equal(v, 12345); /* untouched on failure */
	}
	assert_int_equal(parse_u64(NULL, &v), -EINVAL);
}

static void test_path_join(void **state)
{
	static const struct {
		const char *a, *b, *want;
	} cases[] = {
	        {"a", "b", "a/b"},
	        {"/var/lib/vunify", "objects", "/var/lib/vunify/objects"},
	        {"", "b", "b"},
	        {"", "", ""},
	        {"a", "", "a/"},
	        {"/", "upper", "/upper"}, /* one '/', as mountinfo shows it */
	        {"/home/g/", "upper", "/home/g/upper"},
	        {"sp ace,comma", "x:y", "sp ace,comma/x:y"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *p = path_join(cases[i].a, cases[i].b);
		assert_non_null(p);
		assert_string_equal(p, cases[i].want);
		free(p);
	}
}

static void test_file_round_trip(void **state)
{
	struct fixture *f = *state;
	static const char bin[] = "line 1\n\0binary\xff\n";
	char *buf = NULL;
	size_t len = 0;
	struct stat st;

	assert_int_equal(write_file_atomic_at(f->dir, "conf", bin, sizeof(bin) - 1, 0640), 0);
	assert_int_equal(read_file_at(f->dir, "conf", 4096, &buf, &len), 0);
	assert_int_equal(len, sizeof(bin) - 1);
	assert_memory_equal(buf, bin, len);
	assert_int_equal(buf[len], '\0'); /* NUL-terminated */
	free(buf);
	assert_int_equal(fstatat(f->dir, "conf", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(count_entries(f->dir), 1); /* no temp file left */

	/* replacing keeps exactly the new content */
	assert_int_equal(write_file_atomic_at(f->dir, "conf", "new\n", 4, 0600), 0);
	assert_int_equal(read_file_at(f->dir, "conf", 4096, &buf, NULL), 0);
	assert_string_equal(buf, "new\n");
	free(buf);
	assert_int_equal(count_entries(f->dir), 1);

	/* empty file */
	assert_int_equal(write_file_atomic_at(f->dir, "empty", "", 0, 0644), 0);
	buf = NULL;
	assert_int_equal(read_file_at(f->dir, "empty", 4096, &buf, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);

	/* a large one, many times the initial buffer */
	{
		size_t big = 1000 * 1000 + 7;
		char *data = malloc(big);
		assert_non_null(data);
		for (size_t i = 0; i < big; i++)
			data[i] = (char)('a' + i % 26);
		assert_int_equal(write_file_atomic_at(f->dir, "big", data, big, 0644), 0);
		assert_int_equal(read_file_at(f->dir, "big", big, &buf, &len), 0);
		assert_int_equal(len, big);
		assert_memory_equal(buf, data, big);
		free(buf);
		free(data);
	}
}

static void test_write_atomic_errors(void **state)
{
	struct fixture *f = *state;
	char name[300], *buf = NULL;
	int fd;

	/* a symlink at NAME is replaced, never written through */
	fd = openat(f->dir, "target", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, "keep", 4), 0);
	close(fd);
	assert_int_equal(symlinkat("target", f->dir, "link"), 0);
	assert_int_equal(write_file_atomic_at(f->dir, "link", "over", 4, 0644), 0);
	assert_int_equal(read_file_at(f->dir, "target", 100, &buf, NULL), 0);
	assert_string_equal(buf, "keep");
	free(buf);
	assert_int_equal(read_file_at(f->dir, "link", 100, &buf, NULL), 0);
	assert_string_equal(buf, "over");
	free(buf);

	/* NAME is a directory: fails, and no temp file is left behind */
	assert_int_equal(mkdirat(f->dir, "dir", 0755), 0);
	assert_int_equal(mkdirat(f->dir, "dir/sub", 0755), 0);
	assert_true(write_file_atomic_at(f->dir, "dir", "x", 1, 0644) < 0);
	assert_int_equal(count_entries(f->dir), 3); /* target, link, dir */

	/* a name too long for the temp name */
	memset(name, 'n', 250);
	name[250] = '\0';
	assert_int_equal(write_file_atomic_at(f->dir, name, "x", 1, 0644), -ENAMETOOLONG);
	assert_int_equal(count_entries(f->dir), 3);

	/* not a directory */
	fd = openat(f->dir, "target", O_RDONLY | O_CLOEXEC);
	assert_int_equal(write_file_atomic_at(fd, "x", "x", 1, 0644), -ENOTDIR);
	close(fd);
}

static void test_read_limits(void **state)
{
	struct fixture *f = *state;
	char data[10000], *buf = (char *)0x1;
	size_t len = 99;

	memset(data, 'x', sizeof(data));
	assert_int_equal(write_file_atomic_at(f->dir, "f10", data, 10, 0644), 0);
	assert_int_equal(write_file_atomic_at(f->dir, "f4096", data, 4096, 0644), 0);
	assert_int_equal(write_file_atomic_at(f->dir, "f10000", data, 10000, 0644), 0);

	/* MAX is the largest size accepted */
	assert_int_equal(read_file_at(f->dir, "f10", 9, &buf, &len), -EFBIG);
	assert_ptr_equal(buf, (char *)0x1); /* untouched on failure */
	assert_int_equal(len, 99);
	assert_int_equal(read_file_at(f->dir, "f10", 0, &buf, &len), -EFBIG);
	assert_int_equal(read_file_at(f->dir, "f10", 10, &buf, &len), 0);
	assert_int_equal(len, 10);
	free(buf);
	assert_int_equal(read_file_at(f->dir, "f4096", 4095, &buf, &len), -EFBIG);
	assert_int_equal(read_file_at(f->dir, "f4096", 4096, &buf, &len), 0);
	assert_int_equal(len, 4096);
	free(buf);
	assert_int_equal(read_file_at(f->dir, "f10000", 4096, &buf, &len), -EFBIG);
	assert_int_equal(read_file_at(f->dir, "f10000", 9999, &buf, &len), -EFBIG);
	assert_int_equal(read_file_at(f->dir, "f10000", 10000, &buf, &len), 0);
	assert_int_equal(len, 10000);
	free(buf);
	assert_int_equal(read_file_at(f->dir, "f10000", SIZE_MAX, &buf, &len), 0);
	assert_int_equal(len, 10000);
	free(buf);
	assert_int_equal(write_file_atomic_at(f->dir, "f0", "", 0, 0644), 0);
	assert_int_equal(read_file_at(f->dir, "f0", 0, &buf, &len), 0);
	assert_int_equal(len, 0);
	free(buf);

	/* never through a symlink */
	buf = (char *)0x1;
	assert_int_equal(symlinkat("f10", f->dir, "link"), 0);
	assert_int_equal(read_file_at(f->dir, "link", 4096, &buf, &len), -ELOOP);
	assert_int_equal(symlinkat("/etc/passwd", f->dir, "abs"), 0);
	assert_int_equal(read_file_at(f->dir, "abs", 4096, &buf, &len), -ELOOP);
	assert_int_equal(read_file_at(f->dir, "missing", 4096, &buf, &len), -ENOENT);
	assert_int_equal(mkdirat(f->dir, "d", 0755), 0);
	assert_int_equal(read_file_at(f->dir, "d", 4096, &buf, &len), -EISDIR);
	assert_ptr_equal(buf, (char *)0x1);
}

static void test_readlink_at(void **state)
{
	struct fixture *f = *state;
	char longest[PATH_MAX], buf[PATH_MAX], small[16];

	/* the longest target a symlink holds: PATH_MAX - 1 bytes, which
	 * with its NUL fills a PATH_MAX buffer exactly */
	memset(longest, 't', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	assert_int_equal(symlinkat(longest, f->dir, "longest"), 0);
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(readlink_at(f->dir, "longest", buf, sizeof(buf)), PATH_MAX - 1);
	assert_string_equal(buf, longest);
	/* one byte less room: the whole target fits but not its NUL
	 * (readlinkat fills the buffer and cuts nothing it can tell) */
	assert_int_equal(readlink_at(f->dir, "longest", buf, sizeof(buf) - 1), -ENAMETOOLONG);

	/* the same bound on a small buffer: 15 bytes fit in 16, 16 do not */
	assert_int_equal(symlinkat("123456789012345", f->dir, "fits"), 0);
	assert_int_equal(readlink_at(f->dir, "fits", small, sizeof(small)), 15);
	assert_string_equal(small, "123456789012345");
	assert_int_equal(symlinkat("1234567890123456", f->dir, "over"), 0);
	assert_int_equal(readlink_at(f->dir, "over", small, sizeof(small)), -ENAMETOOLONG);
	assert_int_equal(readlink_at(f->dir, "over", small, 0), -ENAMETOOLONG);

	/* a dangling or absolute target is read, never followed */
	assert_int_equal(symlinkat("/etc/passwd", f->dir, "abs"), 0);
	assert_int_equal(readlink_at(f->dir, "abs", small, sizeof(small)), 11);
	assert_string_equal(small, "/etc/passwd");

	/* not a symlink: a regular file, a directory, nothing */
	assert_int_equal(write_file_atomic_at(f->dir, "file", "x", 1, 0644), 0);
	assert_int_equal(readlink_at(f->dir, "file", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(mkdirat(f->dir, "dir", 0755), 0);
	assert_int_equal(readlink_at(f->dir, "dir", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(readlink_at(f->dir, "missing", buf, sizeof(buf)), -ENOENT);
}

static void test_opendir_at(void **state)
{
	struct fixture *f = *state;
	DIR *d = (DIR *)0x1;
	struct dirent *de;
	int r, sub, n = 0;

	sub = mkdir_open(f->dir, "sub", 0755);
	assert_int_equal(write_file_atomic_at(sub, "x", "x", 1, 0644), 0);
	assert_int_equal(write_file_atomic_at(f->dir, "file", "x", 1, 0644), 0);
	assert_int_equal(symlinkat("sub", f->dir, "link"), 0);

	/* refused: nothing, a file, a symlink to a directory (never followed) */
	assert_int_equal(opendir_at(f->dir, "missing", &d), -ENOENT);
	assert_int_equal(opendir_at(f->dir, "file", &d), -ENOTDIR);
	r = opendir_at(f->dir, "link", &d);
	assert_true(r == -ELOOP || r == -ENOTDIR);
	assert_ptr_equal(d, (DIR *)0x1); /* untouched on failure */

	/* "." reads DIR_FD's own directory afresh */
	assert_int_equal(opendir_at(sub, ".", &d), 0);
	assert_true(dirfd(d) >= 0 && dirfd(d) != sub);
	while ((de = readdir(d)))
		n += !strcmp(de->d_name, "x");
	assert_int_equal(n, 1);
	closedir(d);
	assert_int_equal(count_entries(sub), 1);
	close(sub);

	assert_int_equal(opendir_at(f->dir, "sub", &d), 0);
	closedir(d);
}

static void test_format_bytes(void **state)
{
	static const struct {
		uint64_t n;
		const char *want;
	} cases[] = {
	        {0, "0 B"},
	        {1, "1 B"},
	        {1023, "1023 B"},
	        {1024, "1.0 KiB"},
	        {1536, "1.5 KiB"},
	        {1024 * 1024, "1.0 MiB"},
	        {5ull << 30, "5.0 GiB"},
	        {(3ull << 40) + (1ull << 39), "3.5 TiB"},
	        {1ull << 50, "1.0 PiB"},
	        {UINT64_MAX, "16384.0 PiB"},
	};
	char buf[32], small[4];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_ptr_equal(format_bytes(cases[i].n, buf, sizeof(buf)), buf);
		assert_string_equal(buf, cases[i].want);
	}
	/* truncated, but terminated */
	assert_string_equal(format_bytes(1536, small, sizeof(small)), "1.5");
	assert_string_equal(format_bytes(123456, small, sizeof(small)), "120");
}

static void test_helpers(void **state)
{
	int fds[2];
	char buf[16];
	char *p = strdup("x");
	char *q;
	int fd;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write_all(fds[1], "hello", 5), 0);
	assert_int_equal(read(fds[0], buf, sizeof(buf)), 5);
	close(fds[0]);
	/* a closed reader: EPIPE (SIGPIPE ignored) */
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(write_all(fds[1], "x", 1), -EPIPE);
	close(fds[1]);
	assert_int_equal(write_all(-1, "x", 1), -EBADF);

	q = steal_pointer(&p);
	assert_null(p);
	assert_string_equal(q, "x");
	free(q);
	fd = 7;
	assert_int_equal(steal_fd(&fd), 7);
	assert_int_equal(fd, -1);

	errno = 0;
	assert_int_equal(neg_errno(), -EIO); /* never 0 */
	errno = ENOSPC;
	assert_int_equal(neg_errno(), -ENOSPC);

	fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(fsync_dir(fd), 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_u64),
	        cmocka_unit_test(test_path_join),
	        cmocka_unit_test_setup_teardown(test_file_round_trip, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_write_atomic_errors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_read_limits, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_readlink_at, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_opendir_at, setup, teardown),
	        cmocka_unit_test(test_format_bytes),
	        cmocka_unit_test(test_helpers),
	};

	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
