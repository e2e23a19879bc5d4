/* lib/lowerlist.c on a real link-layout pool: HOME/vunify-lower written
 * from a lower layer that holds what unify's prune moves there
 * (directories with their mode, owner, times and xattrs, symlinks with
 * theirs; names and targets with tabs and colons, binary xattr values)
 * and a file linked to an object, then replayed into an empty directory:
 * the rebuilt tree has the same attributes everywhere (a directory's
 * times survive the entries replayed into it) and the file is the object.
 * A version-1 description still replays; a malformed record, one naming a
 * trusted.overlay.* xattr, or a version-1 file carrying version-2 records
 * is refused (-EBADMSG), an unknown
 * version too (-EPROTONOSUPPORT).  Needs root (chown, trusted.*). */
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
#include <sys/xattr.h>
#include <unistd.h>

#include "hash.h"
#include "layout.h"
#include "lowerlist.h"
#include "object.h"
#include "pool.h"
#include "util.h"
#include "xattr.h"
#include "tmpdir.h"
#include "pool_fixture.h"
#include "unit.h"
#include "banned.h"

static int setup(void **state)
{
	return fixture_setup(state, "lowerlist");
}

static void set_times(int dir, const char *path, long sec)
{
	struct timespec ts[2] = {{sec, 5}, {sec + 1, 123456789}};

	assert_int_equal(utimensat(dir, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* Entry PATH is the same in both trees: type, mode, owner, mtime, xattrs,
 * symlink target. */
static void assert_same_entry(int a, int b, const char *path)
{
	struct stat sa, sb;
	struct xattr_list xa = {0}, xb = {0};
	int fa, fb;

	assert_int_equal(fstatat(a, path, &sa, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(fstatat(b, path, &sb, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(sa.st_mode, sb.st_mode);
	assert_int_equal(sa.st_uid, sb.st_uid);
	assert_int_equal(sa.st_gid, sb.st_gid);
	assert_int_equal(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec);
	assert_int_equal(sa.st_mtim.tv_nsec, sb.st_mtim.tv_nsec);
	fa = openat(a, path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	fb = openat(b, path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	assert_true(fa >= 0 && fb >= 0);
	assert_int_equal(xattr_list_read(fa, true, XATTR_SKIP_OVERLAY, &xa), 0);
	assert_int_equal(xattr_list_read(fb, true, XATTR_SKIP_OVERLAY, &xb), 0);
	assert_true(xattr_list_equal(&xa, &xb));
	xattr_list_free(&xa);
	xattr_list_free(&xb);
	close(fa);
	close(fb);
	if (S_ISLNK(sa.st_mode)) {
		char ta[256], tb[256];
		ssize_t la = readlinkat(a, path, ta, sizeof(ta)), lb = readlinkat(b, path, tb, sizeof(tb));
		assert_true(la > 0 && la == lb);
		assert_memory_equal(ta, tb, (size_t)la);
	}
}

static void write_desc(int home, const char *text, size_t len)
{
	assert_int_equal(write_file_atomic_at(home, HOME_LOWERLIST, text, len, 0600), 0);
}

static int replay_into(struct pool *p, int home, int dir, const char *name)
{
	char **missing = NULL;
	size_t n_missing = 0;
	int fd, r;

	assert_int_equal(mkdirat(dir, name, 0755), 0);
	fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	r = lowerlist_replay(p, home, fd, &missing, &n_missing);
	if (r == 0)
		assert_int_equal(n_missing, 0);
	names_free(missing);
	close(fd);
	return r;
}

static void test_roundtrip(void **state)
{
	struct fixture *f = *state;
	char pool_path[128], obj[OBJECT_NAME_MAX], rel[OBJECT_NAME_MAX + 4];
	static const char bin[] = {'v', 0, '\t', ':', ',', '=', (char)0xff};
	static const char *const paths[] = {"a", "a/b c\t:", "a/b c\t:/l", "a/f", "a/b c\t:/e", "t"};
	struct pool *p = NULL;
	struct stat so, sf;
	int lo, home, out, fd;

	need_root("chown, trusted.* xattrs");
	snprintf(pool_path, sizeof(pool_path), "%s/pool", f->tmp);
	assert_int_equal(pool_init(pool_path, LAYOUT_LINK), 0);
	assert_int_equal(pool_open(pool_path, POOL_LOCK_EXCLUSIVE, false, &p, NULL), 0);
	make_object(p, f->dir, "a file\n", obj);
	home = mkdir_open(f->dir, "home", 0700);
	lo = mkdir_open(f->dir, "lower", 0755);

	/* the lower layer as unify and prune leave it */
	mkdir_as(lo, "a", 0750, 1001, 1002);
	mkdir_as(lo, "a/b c\t:", 01777, 0, 5);
	mkdir_as(lo, "a/b c\t:/e", 0, 7, 7);
	fd = openat(lo, "a", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fsetxattr(fd, "user.bin", bin, sizeof(bin), 0), 0);
	assert_int_equal(fsetxattr(fd, "trusted.empty", "", 0, 0), 0);
	close(fd);
	assert_int_equal(symlinkat("../x\ty:z,=", lo, "a/b c\t:/l"), 0);
	assert_int_equal(fchownat(lo, "a/b c\t:/l", 1003, 1004, AT_SYMLINK_NOFOLLOW), 0);
	fd = openat(lo, "a/b c\t:/l", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(xattr_set(fd, true, "trusted.s", "1", 1), 0);
	close(fd);
	assert_int_equal(symlinkat("/etc/passwd", lo, "t"), 0);
	assert_int_equal(linkat(p->objects_fd, object_relpath(obj, rel), lo, "a/f", 0), 0);
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		set_times(lo, paths[i], 1000000 + (long)i * 7);
	set_times(lo, "a/b c\t:", 2000); /* after its entries */
	set_times(lo, "a", 3000);

	assert_int_equal(lowerlist_exists(home), 0);
	assert_int_equal(lowerlist_write(p, home, lo), 0);
	assert_int_equal(lowerlist_exists(home), 1);
	assert_int_equal(replay_into(p, home, f->dir, "out"), 0);
	out = openat(f->dir, "out", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(out >= 0);
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		if (strcmp(paths[i], "a/f"))
			assert_same_entry(lo, out, paths[i]);
	/* the file is the object itself */
	assert_int_equal(fstatat(out, "a/f", &sf, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(fstatat(p->objects_fd, rel, &so, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(sf.st_ino, so.st_ino);
	close(out);

	/* version 1 (files and deletions only) still replays */
	{
		char v1[512];
		int n = snprintf(v1, sizeof(v1), "vunify-lower 1\n%s\ta/f%c-\ta/f%c%s\tg%c", obj, 0, 0, obj,
		                 0);
		write_desc(home, v1, (size_t)n);
		assert_int_equal(replay_into(p, home, f->dir, "out1"), 0);
		assert_int_equal(fstatat(f->dir, "out1/g", &sf, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(sf.st_ino, so.st_ino);
		assert_int_equal(fstatat(f->dir, "out1/a/f", &sf, AT_SYMLINK_NOFOLLOW), -1);
	}
	/* refused */
	{
		static const char *const bad[] = {
		        "vunify-lower 1\nd:755:0:0:1:0:1:0:\tx", /* a version-2 record in version 1 */
		        "vunify-lower 2\nd:7777:0:0:1:0:1:0:zz\tx", /* not hex */
		        "vunify-lower 2\nd:755:0:0:1:0:1:0:61\tx", /* a name without a value */
		        "vunify-lower 2\nd:755:0:0:1:0:1:1000000000:\tx", /* nanoseconds */
		        "vunify-lower 2\nd:10000:0:0:1:0:1:0:\tx", /* mode */
		        "vunify-lower 2\nd:755:-1:0:1:0:1:0:\tx", /* owner */
		        "vunify-lower 2\nd:755:0:0:1:0:1\tx", /* too short */
		        "vunify-lower 2\nl:0:0:1:0:1:0::\tx", /* no target */
		        "vunify-lower 2\nl:0:0:1:0:1:0:6100:\tx", /* a NUL in the target */
		        "vunify-lower 2\nd:755:0:0:1:0:1:0:\t/x", /* absolute */
		        /* trusted.overlay.opaque=y: steers overlayfs, never written */
		        "vunify-lower "
		        "2\nd:755:0:0:1:0:1:0:747275737465642e6f7665726c61792e6f7061717565=79\tx",
		};
		char name[16];
		for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
			write_desc(home, bad[i], strlen(bad[i]) + 1);
			snprintf(name, sizeof(name), "bad%zu", i);
			assert_int_equal(replay_into(p, home, f->dir, name), -EBADMSG);
		}
		write_desc(home, "vunify-lower 3\n", 15);
		assert_int_equal(replay_into(p, home, f->dir, "bad-v3"), -EPROTONOSUPPORT);
	}
	close(home);
	close(lo);
	pool_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
