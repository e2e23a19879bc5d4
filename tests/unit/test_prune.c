/* lib/prune.c on real directories: every upper directory gets a lower
 * counterpart with its mode, owner, xattrs and mtime (created where
 * missing, a hidden non-directory replaced); the list holds exactly the
 * upper directories with nothing of the guest's own, children first; the
 * lower is changed only after WILL_CHANGE, and not at all when it is
 * equal already; prune_apply removes them and puts the parents' mtimes
 * back.  Needs root (chown). */
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

#include "prune.h"
#include "util.h"
#include "tmpdir.h"
#include "unit.h"
#include "banned.h"

static int setup(void **state)
{
	return fixture_setup(state, "prune");
}

static int calls;

static int count_change(void *ud)
{
	(void)ud;
	calls++;
	return 0;
}

static void mkd(int dir, const char *path, mode_t mode, uid_t uid, long mtime)
{
	struct timespec ts[2] = {{mtime, 0}, {mtime, 123}};

	mkdir_as(dir, path, mode, uid, uid);
	assert_int_equal(utimensat(dir, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void touch_times(int dir, const char *path, long mtime)
{
	struct timespec ts[2] = {{mtime, 0}, {mtime, 123}};

	assert_int_equal(utimensat(dir, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void test_prune(void **state)
{
	struct fixture *f = *state;
	struct prune_list l = {0};
	struct stat a, b;
	uint64_t removed, blocks;
	int up, lo, changed, fd;
	char v[8];

	need_root("chown, trusted.* xattrs");
	up = mkdir_open(f->dir, "upper", 0755);
	lo = mkdir_open(f->dir, "lower", 0755);
	/* upper: usr/ (only dirs below), usr/lib/ (empty), usr/share/doc/
	 * (empty, odd mode and owner, an xattr), etc/ (a file of its own),
	 * var/ (an opaque directory below), var/o/ */
	mkd(up, "usr", 0755, 0, 1000);
	mkd(up, "usr/lib", 0750, 0, 1001);
	mkd(up, "usr/share", 0755, 0, 1002);
	mkd(up, "usr/share/doc", 02711, 7, 1003);
	{
		char path[128];
		snprintf(path, sizeof(path), "%s/upper/usr/share/doc", f->tmp);
		assert_int_equal(setxattr(path, "user.x", "1", 1, 0), 0);
	}
	mkd(up, "etc", 0755, 0, 1004);
	fd = openat(up, "etc/own", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	mkd(up, "var", 0755, 0, 1005);
	mkd(up, "var/o", 0755, 0, 1006);
	{
		char path[128];
		snprintf(path, sizeof(path), "%s/upper/var/o", f->tmp);
		assert_int_equal(setxattr(path, "trusted.overlay.opaque", "y", 1, 0), 0);
	}
	/* children set their parents' times: put them back */
	touch_times(up, "usr/share", 1002);
	touch_times(up, "usr", 1000);
	touch_times(up, "etc", 1004);
	touch_times(up, "var", 1005);
	/* lower: usr/ as the store makes it (0755 root), usr/lib a file the
	 * upper directory hides, and an xattr the upper does not have */
	mkd(lo, "usr", 0755, 0, 5);
	fd = openat(lo, "usr/lib", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	{
		char path[128];
		snprintf(path, sizeof(path), "%s/lower/usr", f->tmp);
		assert_int_equal(setxattr(path, "user.stale", "1", 1, 0), 0);
	}

	calls = 0;
	assert_int_equal(prune_prepare(up, lo, NULL, count_change, NULL, &l, &changed), 0);
	assert_int_equal(changed, 1);
	assert_int_equal(calls, 1);
	/* children before parents; etc (own file) and var (opaque below)
	 * stay, and so does var/o (opaque) */
	assert_int_equal(l.n, 4);
	assert_string_equal(l.paths[0], "usr/lib");
	assert_string_equal(l.paths[1], "usr/share/doc");
	assert_string_equal(l.paths[2], "usr/share");
	assert_string_equal(l.paths[3], "usr");
	/* the lower directories carry the upper's attributes */
	for (const char *p = "usr\0usr/lib\0usr/share\0usr/share/doc\0etc\0var\0"; *p; p += strlen(p) + 1) {
		assert_int_equal(fstatat(up, p, &a, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(fstatat(lo, p, &b, AT_SYMLINK_NOFOLLOW), 0);
		assert_true(S_ISDIR(b.st_mode));
		assert_int_equal(a.st_mode, b.st_mode);
		assert_int_equal(a.st_uid, b.st_uid);
		assert_int_equal(a.st_gid, b.st_gid);
		assert_int_equal(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
		assert_int_equal(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
	}
	{
		char path[128];
		snprintf(path, sizeof(path), "%s/lower/usr/share/doc", f->tmp);
		assert_int_equal(getxattr(path, "user.x", v, sizeof(v)), 1);
		snprintf(path, sizeof(path), "%s/lower/usr", f->tmp);
		assert_int_equal(getxattr(path, "user.stale", v, sizeof(v)), -1);
	}
	/* nothing below the opaque directory was made */
	assert_int_equal(fstatat(lo, "var/o", &b, AT_SYMLINK_NOFOLLOW), -1);
	prune_list_free(&l);

	/* again: the lower is equal, nothing changes */
	calls = 0;
	assert_int_equal(prune_prepare(up, lo, NULL, count_change, NULL, &l, &changed), 0);
	assert_int_equal(changed, 0);
	assert_int_equal(calls, 0);
	assert_int_equal(l.n, 4);

	assert_int_equal(fstat(up, &b), 0);
	assert_int_equal(prune_apply(up, &l, &removed, &blocks), 0);
	assert_int_equal(removed, 4);
	assert_int_equal(fstatat(up, "usr", &a, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(fstatat(up, "etc/own", &a, AT_SYMLINK_NOFOLLOW), 0);
	/* the root's mtime is what it was before usr went */
	assert_int_equal(fstat(up, &a), 0);
	assert_int_equal(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
	assert_int_equal(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
	prune_list_free(&l);
	close(up);
	close(lo);
}

/* prune_apply keeps a directory that is no longer empty, and puts the
 * parent's mtime back after each rmdir. */
static void test_apply_keeps(void **state)
{
	struct fixture *f = *state;
	struct prune_list l = {0};
	struct stat st;
	uint64_t removed, blocks;
	int fd;

	mkd(f->dir, "a", 0755, geteuid(), 100);
	mkd(f->dir, "a/b", 0755, geteuid(), 100);
	mkd(f->dir, "a/c", 0755, geteuid(), 100);
	fd = openat(f->dir, "a/c/new", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	touch_times(f->dir, "a/c", 300);
	touch_times(f->dir, "a", 200);
	l.paths = calloc(3, sizeof(char *));
	assert_non_null(l.paths);
	l.paths[0] = strdup("a/b");
	l.paths[1] = strdup("a/c");
	l.paths[2] = strdup("a");
	l.n = l.cap = 3;
	assert_int_equal(prune_apply(f->dir, &l, &removed, &blocks), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(fstatat(f->dir, "a/c/new", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(fstatat(f->dir, "a", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_mtim.tv_sec, 200);
	assert_int_equal(st.st_mtim.tv_nsec, 123);
	prune_list_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_apply_keeps, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
