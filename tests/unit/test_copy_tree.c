/* copy_tree() on a hostile tree: every file type, odd names, xattrs (user,
 * capability, ACLs, trusted.overlay.* which must be left out), setuid files
 * of foreign owners, hard links across directories, a 1 GiB sparse file,
 * symlinks pointing out of the tree, a directory chain deeper than
 * PATH_MAX... built in a temp dir under /tmp, copied, then compared entry by
 * entry.  Needs root (chown, mknod, trusted.* and security.* xattrs): skipped
 * otherwise, and a failure under CI=true. */
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
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "copy.h"
#include "hash.h"
#include "util.h"
#include "walk.h"
#include "xattr.h"
#define TMPDIR_OWN_FIXTURE
#include "tmpdir.h"
#include "unit.h"
#include "banned.h"

#define SPARSE_SIZE (1ULL << 30)
#define DEEP_LEVELS 60
#define DEEP_NAME_LEN 100 /* 60 * 101 bytes: well beyond PATH_MAX */

struct fixture {
	char tmp[64];
	int src, dst;
};

static int setup(void **state)
{
	_cleanup_free_ struct fixture *f = calloc(1, sizeof(*f));
	_cleanup_close_ int tmp = -1;

	if (!f)
		return -1;
	tmp = tmpdir_make(f->tmp, sizeof(f->tmp), "copy-tree");
	if (tmp < 0 || mkdirat(tmp, "src", 0755) < 0 || mkdirat(tmp, "dst", 0755) < 0)
		return -1;
	f->src = openat(tmp, "src", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	f->dst = openat(tmp, "dst", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->src < 0 || f->dst < 0)
		return -1;
	*state = steal_pointer(&f);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->src);
	close(f->dst);
	/* the safe walk is fd-relative: the deep chain is no problem */
	if (tmpdir_remove(f->tmp) < 0)
		return -1;
	free(f);
	return 0;
}

/* ---- building the tree ---- */

static void mkfile(int dir, const char *name, const char *content, mode_t mode)
{
	int fd = openat(dir, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	if (content)
		assert_int_equal(write_all(fd, content, strlen(content)), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void set_mtime(int dir, const char *name, time_t sec, long nsec)
{
	struct timespec ts[2] = {{.tv_sec = sec - 1000, .tv_nsec = 0}, {.tv_sec = sec, .tv_nsec = nsec}};

	assert_int_equal(utimensat(dir, name, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void lset(int dir, const char *name, const char *xname, const void *v, size_t n)
{
	int fd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(xattr_set(fd, true, xname, v, n), 0);
	close(fd);
}

/* Raw POSIX ACL xattr (what libacl writes): header, then sorted entries. */
struct acl_entry {
	uint16_t tag, perm;
	uint32_t id;
};
static const struct {
	uint32_t version;
	struct acl_entry e[5];
} acl = {2,
         {{0x01, 6, UINT32_MAX}, /* user:: rw */
          {0x02, 6, 1000}, /* user:1000: rw */
          {0x04, 4, UINT32_MAX}, /* group:: r */
          {0x10, 6, UINT32_MAX}, /* mask: rw */
          {0x20, 4, UINT32_MAX}}}; /* other: r */

/* VFS_CAP_REVISION_2 | effective, permitted = cap_net_bind_service */
static const uint32_t cap[5] = {0x02000001, 1u << 10, 0, 0, 0};

static void build_tree(int src)
{
	static const char user_val[] = {'h', 'i', '\0', 'x', '\xff'};
	char deep_name[DEEP_NAME_LEN + 1];
	char long_target[3001];
	int d, e, fd;

	/* regular files: xattrs, capability, ACL, setuid of a foreign owner */
	mkfile(src, "plain", "hello\n", 0644);
	fd = openat(src, "plain", O_RDONLY | O_CLOEXEC);
	assert_int_equal(fsetxattr(fd, "user.test", user_val, sizeof(user_val), 0), 0);
	assert_int_equal(fsetxattr(fd, "user.empty", "", 0, 0), 0);
	assert_int_equal(fsetxattr(fd, "trusted.overlay.redirect", "/x", 2, 0), 0); /* left out */
	assert_int_equal(fsetxattr(fd, "trusted.other", "t", 1, 0), 0);
	close(fd);
	set_mtime(src, "plain", 1000000000, 123456789);

	mkfile(src, "suid", "#!/bin/sh\n", 0755);
	assert_int_equal(fchownat(src, "suid", 1234, 5678, 0), 0);
	assert_int_equal(fchmodat(src, "suid", 06755, 0), 0);
	fd = openat(src, "suid", O_RDONLY | O_CLOEXEC);
	assert_int_equal(fsetxattr(fd, "security.capability", cap, sizeof(cap), 0), 0);
	close(fd);

	mkfile(src, "acl", "acl\n", 0664);
	fd = openat(src, "acl", O_RDONLY | O_CLOEXEC);
	assert_int_equal(fsetxattr(fd, "system.posix_acl_access", &acl, sizeof(acl), 0), 0);
	close(fd);

	mkfile(src, "empty", NULL, 0600);
	mkfile(src, "empty-0000", NULL, 0);

	/* a directory with a default ACL whose older children have none:
	 * the copies must not inherit one either */
	d = mkdir_open(src, "acldir", 0755);
	mkfile(d, "older", "x", 0640);
	e = mkdir_open(d, "older-dir", 0750);
	close(e);
	assert_int_equal(fsetxattr(d, "system.posix_acl_default", &acl, sizeof(acl), 0), 0);
	mkfile(d, "newer", "y", 0640);
	close(d);

	/* odd names */
	mkfile(src, "new\nline", "n", 0644);
	mkfile(src, "back\\slash", "b", 0644);
	mkfile(src, "\xff\xfe\x80 not utf-8", "u", 0644);
	mkfile(src, " -lead", "l", 0644);

	/* special files, never opened */
	assert_int_equal(mkfifoat(src, "fifo", 0620), 0);
	assert_int_equal(mknodat(src, "null", S_IFCHR | 0666, makedev(1, 3)), 0);
	assert_int_equal(mknodat(src, "blk", S_IFBLK | 0660, makedev(7, 200)), 0);
	assert_int_equal(fchownat(src, "blk", 0, 6, 0), 0);
	assert_int_equal(mknodat(src, "sock", S_IFSOCK | 0755, 0), 0);
	lset(src, "fifo", "trusted.fifo", "f", 1);
	set_mtime(src, "fifo", 1200000000, 1);
	set_mtime(src, "null", 1200000001, 2);
	set_mtime(src, "sock", 1200000002, 3);

	/* hard links: three names across directories, and a linked symlink */
	d = mkdir_open(src, "a", 0755);
	e = mkdir_open(d, "b", 0755);
	mkfile(d, "h1", "linked\n", 0644);
	assert_int_equal(linkat(d, "h1", e, "h2", 0), 0);
	assert_int_equal(linkat(d, "h1", src, "h3", 0), 0);
	close(e);
	close(d);
	assert_int_equal(symlinkat("target-of-linked-symlink", src, "lsym1"), 0);
	assert_int_equal(linkat(src, "lsym1", src, "lsym2", 0), 0);

	/* 1 GiB sparse file with a little data in the middle */
	fd = openat(src, "sparse", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)SPARSE_SIZE), 0);
	assert_int_equal(pwrite(fd, "data", 4, (off_t)(SPARSE_SIZE / 2)), 4);
	close(fd);

	/* symlinks out of the tree, a long odd one, one with an xattr */
	assert_int_equal(symlinkat("/etc/passwd", src, "passwd"), 0);
	assert_int_equal(symlinkat("../../..", src, "up"), 0);
	memset(long_target, 'a', sizeof(long_target) - 1);
	long_target[sizeof(long_target) - 1] = '\0';
	memcpy(long_target, "\xff\n\\", 3);
	assert_int_equal(symlinkat(long_target, src, "long"), 0);
	lset(src, "passwd", "trusted.sym", "s", 1);
	assert_int_equal(fchownat(src, "passwd", 1234, 5678, AT_SYMLINK_NOFOLLOW), 0);
	set_mtime(src, "passwd", 1100000000, 42);

	/* a directory the owner cannot write into */
	d = mkdir_open(src, "ro", 0755);
	mkfile(d, "inside", "ro", 0444);
	e = mkdir_open(d, "sub", 0555);
	close(e);
	assert_int_equal(fchmod(d, 0500), 0);
	close(d);
	assert_int_equal(fchmodat(src, "a", 03775, 0), 0); /* setgid + sticky dir */

	/* a chain of directories whose path is longer than PATH_MAX */
	memset(deep_name, 'd', DEEP_NAME_LEN);
	deep_name[DEEP_NAME_LEN] = '\0';
	d = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int i = 0; i < DEEP_LEVELS; i++) {
		e = mkdir_open(d, deep_name, 0755);
		close(d);
		d = e;
	}
	mkfile(d, "bottom", "deep", 0600);
	close(d);

	assert_int_equal(fchownat(src, "", 4321, 8765, AT_EMPTY_PATH), 0);
	assert_int_equal(fchmod(src, 0751), 0);
	assert_int_equal(fsetxattr(src, "user.root", "r", 1, 0), 0);
}

/* ---- comparing ---- */

struct cmp_ctx {
	int dst;
	size_t n;
	struct {
		ino_t src, dst;
	} links[64];
	size_t n_links;
};

static void cmp_xattrs(const char *path, int s, int d, bool o_path)
{
	struct xattr_list a = {0}, b = {0};

	assert_int_equal(xattr_list_read(s, o_path, XATTR_SKIP_OVERLAY, &a), 0);
	assert_int_equal(xattr_list_read(d, o_path, 0, &b), 0); /* nothing extra */
	if (!xattr_list_equal(&a, &b)) {
		print_error("xattrs differ on '%s':", path);
		for (size_t i = 0; i < a.n; i++)
			print_error(" src %s", a.v[i].name);
		for (size_t i = 0; i < b.n; i++)
			print_error(" dst %s", b.v[i].name);
		print_error("\n");
		fail();
	}
	xattr_list_free(&a);
	xattr_list_free(&b);
}

static int cmp_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct cmp_ctx *c = ud;
	const struct stat *s = &e->st;
	struct stat d;
	int dfd, sfd, tfd;
	const char *name = "";

	if (ev == WALK_DIR_POST)
		return 0;
	c->n++;
	if (e->depth == 0) {
		dfd = openat(c->dst, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_int_equal(fstat(dfd, &d), 0);
	} else {
		dfd = open_parent_beneath(c->dst, e->path, false, &name);
		assert_true(dfd >= 0);
		assert_int_equal(fstatat(dfd, name, &d, AT_SYMLINK_NOFOLLOW), 0);
	}
	assert_int_equal(s->st_mode, d.st_mode); /* type and all mode bits */
	assert_int_equal(s->st_uid, d.st_uid);
	assert_int_equal(s->st_gid, d.st_gid);
	assert_int_equal(s->st_rdev, d.st_rdev);
	assert_int_equal(s->st_nlink > 1, d.st_nlink > 1);
	if (!S_ISDIR(s->st_mode)) {
		assert_int_equal(s->st_size, d.st_size);
		assert_int_equal(s->st_nlink, d.st_nlink);
	}
	/* mtime of everything, directories included (set after children) */
	assert_int_equal(s->st_mtim.tv_sec, d.st_mtim.tv_sec);
	assert_int_equal(s->st_mtim.tv_nsec, d.st_mtim.tv_nsec);

	if (S_ISDIR(s->st_mode)) {
		tfd = e->depth ? openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
		               : dup(dfd);
		assert_true(tfd >= 0);
		cmp_xattrs(e->path, e->fd, tfd, false);
		close(tfd);
	} else {
		sfd = openat(e->parent_fd, e->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		tfd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		assert_true(sfd >= 0 && tfd >= 0);
		cmp_xattrs(e->path, sfd, tfd, true);
		close(sfd);
		close(tfd);
	}
	if (S_ISREG(s->st_mode)) {
		unsigned char h1[HASH_LEN], h2[HASH_LEN];
		sfd = openat(e->parent_fd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		tfd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		assert_true(sfd >= 0 && tfd >= 0);
		assert_int_equal(hash_fd(sfd, (uint64_t)s->st_size, h1), 0);
		assert_int_equal(hash_fd(tfd, (uint64_t)d.st_size, h2), 0);
		assert_memory_equal(h1, h2, HASH_LEN);
		close(sfd);
		close(tfd);
		/* sparse stays sparse: allocation no bigger than the source's + slack */
		assert_true(d.st_blocks <= s->st_blocks + 64);
	}
	if (S_ISLNK(s->st_mode)) {
		char a[8192], b[8192];
		ssize_t na = readlinkat(e->parent_fd, e->name, a, sizeof(a));
		ssize_t nb = readlinkat(dfd, name, b, sizeof(b));
		assert_true(na > 0);
		assert_int_equal(na, nb);
		assert_memory_equal(a, b, (size_t)na);
	}
	if (!S_ISDIR(s->st_mode) && s->st_nlink > 1) {
		/* a bijection between source and destination inodes */
		size_t i;
		for (i = 0; i < c->n_links; i++) {
			if (c->links[i].src == s->st_ino || c->links[i].dst == d.st_ino) {
				assert_int_equal(c->links[i].src, s->st_ino);
				assert_int_equal(c->links[i].dst, d.st_ino);
				break;
			}
		}
		if (i == c->n_links) {
			assert_true(c->n_links < ARRAY_SIZE(c->links));
			c->links[c->n_links].src = s->st_ino;
			c->links[c->n_links++].dst = d.st_ino;
		}
	}
	close(dfd);
	return 0;
}

static int count_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	(void)e;
	if (ev != WALK_DIR_POST)
		(*(size_t *)ud)++;
	return 0;
}

static void compare_trees(int src, int dst)
{
	struct cmp_ctx c = {.dst = dst};
	size_t n_dst = 0;

	assert_int_equal(walk_tree(src, cmp_cb, &c), 0);
	assert_int_equal(walk_tree(dst, count_cb, &n_dst), 0);
	assert_int_equal(c.n, n_dst); /* nothing extra in the copy */
	assert_true(c.n > DEEP_LEVELS + 30);
	assert_int_equal(c.n_links, 2); /* h1/h2/h3 and lsym1/lsym2 */
}

/* ---- tests ---- */

static void test_copy_hostile_tree(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	struct stat st, st2;
	char buf[64];
	ssize_t n;
	int fd;

	need_root("chown, mknod, trusted.* xattrs");
	build_tree(f->src);
	assert_int_equal(copy_tree(f->src, f->dst, COPY_TREE_DEFAULT, &err), 0);
	assert_null(err);
	compare_trees(f->src, f->dst);

	/* spot checks with plain syscalls, independent of lib/ */
	assert_int_equal(fstatat(f->dst, "suid", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_mode, S_IFREG | 06755);
	assert_int_equal(st.st_uid, 1234);
	assert_int_equal(st.st_gid, 5678);
	fd = openat(f->dst, "suid", O_RDONLY | O_CLOEXEC);
	assert_int_equal(fgetxattr(fd, "security.capability", buf, sizeof(buf)), sizeof(cap));
	assert_memory_equal(buf, cap, sizeof(cap));
	close(fd);

	fd = openat(f->dst, "plain", O_RDONLY | O_CLOEXEC);
	assert_int_equal(fgetxattr(fd, "user.test", buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hi\0x\xff", 5);
	assert_int_equal(fgetxattr(fd, "trusted.overlay.redirect", buf, sizeof(buf)), -1);
	assert_int_equal(errno, ENODATA);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1000000000);
	assert_int_equal(st.st_mtim.tv_nsec, 123456789);
	close(fd);

	fd = openat(f->dst, "acl", O_RDONLY | O_CLOEXEC);
	assert_int_equal(fgetxattr(fd, "system.posix_acl_access", buf, sizeof(buf)), sizeof(acl));
	assert_memory_equal(buf, &acl, sizeof(acl));
	close(fd);
	fd = open_beneath(f->dst, "acldir/older", O_RDONLY, 0);
	assert_true(fd >= 0);
	assert_int_equal(fgetxattr(fd, "system.posix_acl_access", buf, sizeof(buf)), -1);
	assert_int_equal(errno, ENODATA);
	close(fd);
	fd = open_beneath(f->dst, "acldir/older-dir", O_RDONLY | O_DIRECTORY, 0);
	assert_true(fd >= 0);
	assert_int_equal(fgetxattr(fd, "system.posix_acl_default", buf, sizeof(buf)), -1);
	assert_int_equal(errno, ENODATA);
	close(fd);

	assert_int_equal(fstatat(f->dst, "null", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(major(st.st_rdev), 1);
	assert_int_equal(minor(st.st_rdev), 3);
	assert_int_equal(fstatat(f->dst, "sock", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(fstatat(f->dst, "fifo", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISFIFO(st.st_mode));
	fd = openat(f->dst, "fifo", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	assert_int_equal(xattr_get(fd, true, "trusted.fifo", buf, sizeof(buf)), 1);
	close(fd);

	n = readlinkat(f->dst, "passwd", buf, sizeof(buf));
	assert_int_equal(n, 11);
	assert_memory_equal(buf, "/etc/passwd", 11);
	n = readlinkat(f->dst, "up", buf, sizeof(buf));
	assert_int_equal(n, 8);
	assert_memory_equal(buf, "../../..", 8);
	assert_int_equal(fstatat(f->dst, "passwd", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_uid, 1234);
	assert_int_equal(st.st_mtim.tv_sec, 1100000000);
	fd = openat(f->dst, "passwd", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	assert_int_equal(xattr_get(fd, true, "trusted.sym", buf, sizeof(buf)), 1);
	close(fd);

	assert_int_equal(fstatat(f->dst, "h3", &st, AT_SYMLINK_NOFOLLOW), 0);
	fd = open_beneath(f->dst, "a/b/h2", O_PATH, 0);
	assert_int_equal(fstat(fd, &st2), 0);
	close(fd);
	assert_int_equal(st.st_ino, st2.st_ino);
	assert_int_equal(st.st_nlink, 3);

	assert_int_equal(fstatat(f->dst, "sparse", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_size, SPARSE_SIZE);
	assert_true(st.st_blocks < 1024); /* < 512 KiB allocated for 1 GiB */

	assert_int_equal(fstatat(f->dst, "ro", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_mode, S_IFDIR | 0500);
	assert_int_equal(fstat(f->dst, &st), 0);
	assert_int_equal(st.st_mode, S_IFDIR | 0751);
	assert_int_equal(st.st_uid, 4321);
}

static void test_refuse_whiteout(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	int d;

	need_root("chown, mknod, trusted.* xattrs");
	mkfile(f->src, "before", "b", 0644);
	d = mkdir_open(f->src, "dir", 0755);
	assert_int_equal(mknodat(d, "wh", S_IFCHR | 0, makedev(0, 0)), 0);
	close(d);
	assert_int_equal(copy_tree(f->src, f->dst, COPY_TREE_DEFAULT, &err), -EINVAL);
	assert_non_null(err);
	assert_string_equal(err, "dir/wh");
	free(err);
}

static void test_refuse_existing_and_loop(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	int d;

	need_root("chown, mknod, trusted.* xattrs");
	mkfile(f->src, "x", "x", 0644);
	mkfile(f->dst, "x", "y", 0644);
	assert_int_equal(copy_tree(f->src, f->dst, COPY_TREE_DEFAULT, &err), -EEXIST);
	assert_string_equal(err, "x");
	free(err);
	err = NULL;

	/* destination inside the source */
	d = mkdir_open(f->src, "inner", 0755);
	assert_int_equal(copy_tree(f->src, d, COPY_TREE_DEFAULT, &err), -ELOOP);
	assert_string_equal(err, "inner");
	free(err);
	close(d);
	assert_int_equal(copy_tree(f->src, f->dst, 1u << 30, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_copy_hostile_tree, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_refuse_whiteout, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_refuse_existing_and_loop, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
