/* lib/walk.c: the safe walk visits entries sorted, reports symlinks without
 * following them, honours WALK_SKIP and callback errors, and works far
 * below PATH_MAX; open_beneath / open_parent_beneath refuse symlinks and
 * '..' on the way and create missing directories on request. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "walk.h"
#include "tmpdir.h"
#include "unit.h"
#include "banned.h"

#define DEEP_LEVELS 200
#define DEEP_NAME_LEN 40

static int setup(void **state)
{
	return fixture_setup(state, "walk");
}

static void mkfile(int dir, const char *name)
{
	int fd = openat(dir, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	close(fd);
}

/* ---- recording callback ---- */

struct rec {
	char log[4096];
	size_t len;
	const char *skip; /* return WALK_SKIP on DIR_PRE of this path */
	const char *fail_at; /* return fail_err when this path is seen */
	int fail_err;
	const char *remove; /* on DIR_PRE of the root, unlink this name */
	unsigned calls;
};

static int rec_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct rec *r = ud;
	static const char *const tag[] = {"E", "D", "P"};
	int n;

	r->calls++;
	/* invariants of every entry */
	assert_int_equal(strlen(e->path), e->path_len);
	if (e->depth == 0) {
		assert_int_equal(e->parent_fd, -1);
		assert_string_equal(e->name, "");
		assert_string_equal(e->path, "");
	} else {
		struct stat st;
		const char *slash = strrchr(e->path, '/');
		assert_true(e->parent_fd >= 0);
		assert_string_equal(slash ? slash + 1 : e->path, e->name);
		assert_int_equal(fstatat(e->parent_fd, e->name, &st, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(st.st_ino, e->st.st_ino);
	}
	if (ev == WALK_ENTRY) {
		assert_int_equal(e->fd, -1);
		assert_false(S_ISDIR(e->st.st_mode));
	} else {
		struct stat st;
		assert_true(e->fd >= 0);
		assert_true(S_ISDIR(e->st.st_mode));
		assert_int_equal(fstat(e->fd, &st), 0);
		assert_int_equal(st.st_ino, e->st.st_ino);
	}

	n = snprintf(r->log + r->len, sizeof(r->log) - r->len, "%s:%s%s ", tag[ev], e->path,
	             S_ISLNK(e->st.st_mode) ? "@" : "");
	assert_true(n > 0 && (size_t)n < sizeof(r->log) - r->len);
	r->len += (size_t)n;

	if (r->remove && ev == WALK_DIR_PRE && e->depth == 0)
		assert_int_equal(unlinkat(e->fd, r->remove, 0), 0);
	if (r->fail_at && !strcmp(e->path, r->fail_at))
		return r->fail_err;
	if (r->skip && ev == WALK_DIR_PRE && !strcmp(e->path, r->skip))
		return WALK_SKIP;
	return 0;
}

static void build_small(int root)
{
	int a, d;

	mkfile(root, "b");
	mkfile(root, "C");
	mkfile(root, "a.b");
	a = mkdir_open(root, "a", 0755);
	mkfile(a, "z");
	mkfile(a, "y");
	d = mkdir_open(a, "d", 0755);
	mkfile(d, "x");
	close(d);
	close(a);
	d = mkdir_open(root, "c", 0755);
	close(d);
	assert_int_equal(symlinkat("a", root, "link"), 0);
	assert_int_equal(symlinkat("/", root, "abs"), 0);
	assert_int_equal(symlinkat("nowhere", root, "dangling"), 0);
	assert_int_equal(mkfifoat(root, "fifo", 0600), 0);
}

static void test_sorted_and_symlinks(void **state)
{
	struct fixture *f = *state;
	struct rec r = {0};

	build_small(f->dir);
	assert_int_equal(walk_tree(f->dir, rec_cb, &r), 0);
	/* byte order ('C' < 'a' < 'a.b'); symlinks reported (@), never entered */
	assert_string_equal(r.log, "D: E:C D:a D:a/d E:a/d/x P:a/d E:a/y E:a/z P:a E:a.b E:abs@ E:b D:c P:c "
	                           "E:dangling@ E:fifo E:link@ P: ");
}

static void test_skip(void **state)
{
	struct fixture *f = *state;
	struct rec r = {.skip = "a"};

	build_small(f->dir);
	assert_int_equal(walk_tree(f->dir, rec_cb, &r), 0);
	assert_null(strstr(r.log, "a/"));
	assert_non_null(strstr(r.log, "D:a "));
	assert_non_null(strstr(r.log, "E:a.b E:abs@ E:b D:c P:c"));

	/* skipping a nested directory */
	memset(&r, 0, sizeof(r));
	r.skip = "a/d";
	assert_int_equal(walk_tree(f->dir, rec_cb, &r), 0);
	assert_null(strstr(r.log, "a/d/x"));
	assert_non_null(strstr(r.log, "D:a/d E:a/y E:a/z P:a "));

	/* skipping the root visits nothing else */
	memset(&r, 0, sizeof(r));
	r.skip = "";
	assert_int_equal(walk_tree(f->dir, rec_cb, &r), 0);
	assert_string_equal(r.log, "D: ");
}

static void test_callback_error(void **state)
{
	struct fixture *f = *state;
	struct rec r = {.fail_at = "a/d/x", .fail_err = -EXDEV};

	build_small(f->dir);
	/* from a WALK_ENTRY deep down: the walk stops right there */
	assert_int_equal(walk_tree(f->dir, rec_cb, &r), -EXDEV);
	assert_string_equal(r.log, "D: E:C D:a D:a/d E:a/d/x ");

	/* from a DIR_PRE */
	memset(&r, 0, sizeof(r));
	r.fail_at = "c";
	r.fail_err = -ENOSPC;
	assert_int_equal(walk_tree(f->dir, rec_cb, &r), -ENOSPC);
	assert_true(r.len > 4 && !strcmp(r.log + r.len - 4, "D:c "));

	/* from the root's DIR_PRE */
	memset(&r, 0, sizeof(r));
	r.fail_at = "";
	r.fail_err = -EPERM;
	assert_int_equal(walk_tree(f->dir, rec_cb, &r), -EPERM);
	assert_int_equal(r.calls, 1);

	/* not a directory */
	{
		int fd;
		memset(&r, 0, sizeof(r));
		fd = openat(f->dir, "b", O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(walk_tree(fd, rec_cb, &r), -ENOTDIR);
		assert_int_equal(r.calls, 0);
		close(fd);
	}
}

static void test_removed_meanwhile(void **state)
{
	struct fixture *f = *state;
	struct rec r = {.remove = "b"};

	build_small(f->dir);
	/* names are read first; one vanishing before its visit is left out */
	assert_int_equal(walk_tree(f->dir, rec_cb, &r), 0);
	assert_null(strstr(r.log, "E:b "));
	assert_non_null(strstr(r.log, "E:abs@ D:c"));
}

/* ---- deeper than PATH_MAX ---- */

struct deep_ctx {
	unsigned max_depth;
	size_t max_len;
	bool saw_bottom;
};

static int deep_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct deep_ctx *c = ud;
	size_t want;

	if (ev == WALK_ENTRY) {
		/* "bottom" below DEEP_LEVELS directories */
		assert_string_equal(e->name, "bottom");
		assert_int_equal(e->depth, DEEP_LEVELS + 1);
		assert_int_equal(e->path_len, DEEP_LEVELS * (DEEP_NAME_LEN + 1) + strlen("bottom"));
		c->saw_bottom = true;
	} else {
		want = e->depth ? e->depth * (DEEP_NAME_LEN + 1) - 1 : 0;
		assert_int_equal(e->path_len, want);
	}
	assert_int_equal(strlen(e->path), e->path_len);
	c->max_depth = MAX(c->max_depth, e->depth);
	c->max_len = MAX(c->max_len, e->path_len);
	return 0;
}

static void deep_name(unsigned i, char name[DEEP_NAME_LEN + 1])
{
	memset(name, 'a' + (char)(i % 26), DEEP_NAME_LEN);
	snprintf(name, DEEP_NAME_LEN + 1, "%03u", i);
	name[3] = '-';
	name[DEEP_NAME_LEN] = '\0';
}

static void test_deep(void **state)
{
	struct fixture *f = *state;
	struct deep_ctx c = {0};
	char name[DEEP_NAME_LEN + 1];
	_cleanup_free_ char *path = NULL;
	const char *last = NULL;
	size_t len = 0;
	struct stat st;
	int d = dup(f->dir), e, fd;

	path = malloc(DEEP_LEVELS * (DEEP_NAME_LEN + 1) + 64);
	assert_non_null(path);
	for (unsigned i = 0; i < DEEP_LEVELS; i++) {
		deep_name(i, name);
		e = mkdir_open(d, name, 0755);
		close(d);
		d = e;
		memcpy(path + len, name, DEEP_NAME_LEN);
		path[len + DEEP_NAME_LEN] = '/';
		len += DEEP_NAME_LEN + 1;
	}
	memcpy(path + len, "bottom", sizeof("bottom"));
	len += strlen("bottom");
	assert_true(len > PATH_MAX);
	fd = openat(d, "bottom", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, "deep", 4), 0);
	close(fd);
	assert_int_equal(fstat(d, &st), 0);
	close(d);

	assert_int_equal(walk_tree(f->dir, deep_cb, &c), 0);
	assert_true(c.saw_bottom);
	assert_int_equal(c.max_depth, DEEP_LEVELS + 1);
	assert_int_equal(c.max_len, len);

	/* open_beneath and open_parent_beneath on the same long path */
	fd = open_beneath(f->dir, path, O_RDONLY, 0);
	assert_true(fd >= 0);
	{
		char buf[8];
		assert_int_equal(read(fd, buf, sizeof(buf)), 4);
		assert_memory_equal(buf, "deep", 4);
	}
	close(fd);
	d = open_parent_beneath(f->dir, path, false, &last);
	assert_true(d >= 0);
	assert_ptr_equal(last, path + len - strlen("bottom"));
	{
		struct stat st2;
		assert_int_equal(fstat(d, &st2), 0);
		assert_int_equal(st2.st_ino, st.st_ino);
	}
	close(d);
}

/* ---- 20,000 levels: no recursion, bounded fds ---- */

#define VERY_DEEP 20000

struct very_deep_ctx {
	unsigned max_depth, pre, post, files;
	unsigned max_fds; /* most fds open in this process during a callback */
	unsigned fds_before;
	bool order_ok; /* every DIR_POST after all its children */
	unsigned last_post_depth;
	struct fdlevels lv; /* mirrors the walk, as copy_tree does */
};

static unsigned count_fds(void)
{
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent64 *de;
	char buf[8192];
	unsigned n = 0;
	ssize_t len;

	assert_true(dfd >= 0);
	while ((len = getdents64(dfd, buf, sizeof(buf))) > 0)
		for (ssize_t off = 0; off < len; off += de->d_reclen) {
			de = (struct dirent64 *)(buf + off);
			n += de->d_name[0] != '.';
		}
	close(dfd);
	return n - 1; /* not the one counting */
}

static int very_deep_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct very_deep_ctx *c = ud;

	c->max_depth = MAX(c->max_depth, e->depth);
	if (ev == WALK_ENTRY) {
		c->files++;
		assert_int_equal(e->depth, VERY_DEEP + 1);
		assert_int_equal(e->path_len, (size_t)VERY_DEEP * 2 + strlen("bottom"));
	} else if (ev == WALK_DIR_PRE) {
		c->pre++;
		if (e->depth == 0) {
			assert_int_equal(fdlevels_push(&c->lv, e->fd), 0);
		} else {
			int fd = openat(fdlevels_top(&c->lv), e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
			assert_true(fd >= 0);
			assert_int_equal(fdlevels_push(&c->lv, fd), 0);
		}
	} else {
		struct stat st;
		c->post++;
		/* the climb back reopens evicted directories: the fds handed
		 * to the callback are still the right directories */
		if (e->depth > 0) {
			assert_int_equal(fstatat(e->parent_fd, e->name, &st, AT_SYMLINK_NOFOLLOW), 0);
			assert_int_equal(st.st_ino, e->st.st_ino);
		}
		assert_int_equal(fstat(e->fd, &st), 0);
		assert_int_equal(st.st_ino, e->st.st_ino);
		/* the mirrored level is this directory, and after the drop its
		 * parent (reopened if it had been closed) */
		assert_int_equal(fstat(fdlevels_top(&c->lv), &st), 0);
		assert_int_equal(st.st_ino, e->st.st_ino);
		if (e->depth > 0) {
			struct stat pst;
			assert_int_equal(fdlevels_drop(&c->lv), 0);
			assert_int_equal(fstat(fdlevels_top(&c->lv), &st), 0);
			assert_int_equal(fstat(e->parent_fd, &pst), 0);
			assert_int_equal(st.st_ino, pst.st_ino);
		}
		if (c->post > 1 && e->depth + 1 != c->last_post_depth)
			c->order_ok = false;
		c->last_post_depth = e->depth;
	}
	if (e->depth % 997 == 0 || e->depth > VERY_DEEP - 3)
		c->max_fds = MAX(c->max_fds, count_fds() - c->fds_before);
	return 0;
}

static void test_very_deep(void **state)
{
	struct fixture *f = *state;
	struct very_deep_ctx c = {.order_ok = true};
	int d = dup(f->dir), e, fd;

	/* "d/d/d/.../bottom": recursion of one C frame per level overflowed
	 * the stack at 16,309 levels; one fd per level exceeds RLIMIT_NOFILE */
	for (unsigned i = 0; i < VERY_DEEP; i++) {
		e = mkdir_open(d, "d", 0755);
		close(d);
		d = e;
	}
	fd = openat(d, "bottom", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	close(d);

	c.fds_before = count_fds();
	assert_int_equal(walk_tree(f->dir, very_deep_cb, &c), 0);
	assert_int_equal(c.files, 1);
	assert_int_equal(c.pre, VERY_DEEP + 1);
	assert_int_equal(c.post, VERY_DEEP + 1);
	assert_int_equal(c.max_depth, VERY_DEEP + 1);
	assert_true(c.order_ok);
	/* bounded: a few dozen directory fds (the walk's and the mirror's),
	 * not one per level */
	assert_true(c.max_fds <= 2 * 64 + 16);
	fdlevels_release(&c.lv);
	/* and none left open */
	assert_int_equal(count_fds(), c.fds_before);
}

/* ---- open_beneath / open_parent_beneath ---- */

static void test_open_beneath(void **state)
{
	struct fixture *f = *state;
	const char *name = NULL;
	struct stat st;
	int fd;

	build_small(f->dir);
	fd = open_beneath(f->dir, "a/d/x", O_RDONLY, 0);
	assert_true(fd >= 0);
	close(fd);
	fd = open_beneath(f->dir, "//a//d///x", O_RDONLY, 0); /* slashes collapse */
	assert_true(fd >= 0);
	close(fd);
	fd = open_beneath(f->dir, "", O_RDONLY | O_DIRECTORY, 0); /* the root itself */
	assert_true(fd >= 0);
	close(fd);
	fd = open_beneath(f->dir, "a/new", O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	close(fd);

	/* a symlink in the middle is never followed */
	fd = open_beneath(f->dir, "link/d/x", O_RDONLY, 0);
	assert_true(fd == -ELOOP || fd == -ENOTDIR);
	fd = open_beneath(f->dir, "link/y", O_RDONLY, 0);
	assert_true(fd == -ELOOP || fd == -ENOTDIR);
	fd = open_beneath(f->dir, "abs/etc/passwd", O_RDONLY, 0);
	assert_true(fd == -ELOOP || fd == -ENOTDIR);
	/* nor at the end */
	assert_int_equal(open_beneath(f->dir, "link", O_RDONLY, 0), -ELOOP);
	assert_int_equal(open_beneath(f->dir, "dangling", O_WRONLY | O_CREAT, 0644), -ELOOP);
	assert_int_equal(faccessat(f->dir, "nowhere", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	/* a trailing '/' would make openat() follow the last symlink */
	assert_int_equal(open_beneath(f->dir, "link/", O_RDONLY, 0), -EINVAL);
	assert_int_equal(open_beneath(f->dir, "abs/", O_RDONLY | O_DIRECTORY, 0), -EINVAL);
	assert_int_equal(open_beneath(f->dir, "a/d//", O_RDONLY | O_DIRECTORY, 0), -EINVAL);
	assert_int_equal(open_parent_beneath(f->dir, "abs/", false, &name), -EINVAL);
	assert_int_equal(open_parent_beneath(f->dir, "a/link/", true, &name), -EINVAL);
	/* O_PATH opens the link itself */
	fd = open_beneath(f->dir, "link", O_PATH, 0);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	close(fd);

	/* '..' and '.' are refused anywhere */
	assert_int_equal(open_beneath(f->dir, "..", O_RDONLY, 0), -EINVAL);
	assert_int_equal(open_beneath(f->dir, "../etc/passwd", O_RDONLY, 0), -EINVAL);
	assert_int_equal(open_beneath(f->dir, "a/../b", O_RDONLY, 0), -EINVAL);
	assert_int_equal(open_beneath(f->dir, "a/d/..", O_RDONLY, 0), -EINVAL);
	assert_int_equal(open_beneath(f->dir, "a/./y", O_RDONLY, 0), -EINVAL);
	assert_int_equal(open_beneath(f->dir, "a/.", O_RDONLY, 0), -EINVAL);
	assert_int_equal(open_parent_beneath(f->dir, "a/../b", false, &name), -EINVAL);
	assert_int_equal(open_parent_beneath(f->dir, "../x", true, &name), -EINVAL);

	/* through a file, missing, too long */
	assert_int_equal(open_beneath(f->dir, "b/x", O_RDONLY, 0), -ENOTDIR);
	assert_int_equal(open_beneath(f->dir, "missing/x", O_RDONLY, 0), -ENOENT);
	assert_int_equal(open_beneath(f->dir, "a/missing", O_RDONLY, 0), -ENOENT);
	{
		char longname[NAME_MAX + 8];
		memset(longname, 'n', sizeof(longname) - 3);
		memcpy(longname + sizeof(longname) - 3, "/x", 3);
		assert_int_equal(open_beneath(f->dir, longname, O_RDONLY, 0), -ENAMETOOLONG);
	}

	/* no component at all */
	assert_int_equal(open_parent_beneath(f->dir, "", false, &name), -EINVAL);
	assert_int_equal(open_parent_beneath(f->dir, "///", false, &name), -EINVAL);
}

static void test_open_parent_mkdirs(void **state)
{
	struct fixture *f = *state;
	const char *rel = "n1/n2/n3/file", *name = NULL;
	struct stat st;
	int d, fd;

	build_small(f->dir);
	/* without mkdirs: missing */
	assert_int_equal(open_parent_beneath(f->dir, rel, false, &name), -ENOENT);
	assert_int_equal(faccessat(f->dir, "n1", F_OK, AT_SYMLINK_NOFOLLOW), -1);

	d = open_parent_beneath(f->dir, rel, true, &name);
	assert_true(d >= 0);
	assert_ptr_equal(name, rel + strlen("n1/n2/n3/"));
	assert_string_equal(name, "file");
	assert_int_equal(faccessat(d, "file", F_OK, AT_SYMLINK_NOFOLLOW), -1); /* only the parents */
	fd = openat(d, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	close(d);
	fd = open_beneath(f->dir, rel, O_RDONLY, 0);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(fstatat(f->dir, "n1/n2", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0755);

	/* existing directories are reused; a single component has the root as parent */
	d = open_parent_beneath(f->dir, "n1/n2/other", true, &name);
	assert_true(d >= 0);
	assert_string_equal(name, "other");
	close(d);
	d = open_parent_beneath(f->dir, "top", true, &name);
	assert_true(d >= 0);
	assert_string_equal(name, "top");
	{
		struct stat a, b;
		assert_int_equal(fstat(d, &a), 0);
		assert_int_equal(fstat(f->dir, &b), 0);
		assert_int_equal(a.st_ino, b.st_ino);
	}
	close(d);

	/* mkdirs never creates through a symlink or a file */
	d = open_parent_beneath(f->dir, "link/new/file", true, &name);
	assert_true(d == -ELOOP || d == -ENOTDIR);
	assert_int_equal(faccessat(f->dir, "a/new", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	d = open_parent_beneath(f->dir, "dangling/new/file", true, &name);
	assert_true(d == -ELOOP || d == -ENOTDIR);
	assert_int_equal(faccessat(f->dir, "nowhere", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(open_parent_beneath(f->dir, "b/new/file", true, &name), -ENOTDIR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_sorted_and_symlinks, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_skip, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_callback_error, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_removed_meanwhile, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_deep, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_very_deep, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_open_beneath, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_open_parent_mkdirs, setup, teardown),
	};

	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
