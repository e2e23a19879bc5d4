/* lib/erofs_*.c: images of every inode type, hostile names, big directories,
 * deep trees, xattrs of every namespace and hard links, each checked by
 * fsck.erofs (erofs-utils) and, as root, by mounting the image (mount(2)
 * of the file itself, no loop device) and comparing tests/tools/manifest
 * of the mount with that of the tree it was built from; an overlay with
 * the image as metadata layer and a data-only layer reads real data
 * through a stub's redirect.  Must-fail inputs are refused.  HOME/meta.img
 * (lib/meta_image.c) is checked, dropped and mounted.  Root parts
 * are skipped otherwise, and fail under CI=true. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "erofs.h"
#include "meta_image.h"
#include "remove_tree.h"
#include "util.h"
#include "walk.h"
#include "xattr.h"
#define TMPDIR_OWN_FIXTURE
#include "tmpdir.h"
#include "unit.h"
#include "banned.h"

static char manifest_tool[512];

/* The source of the mount at DIR in /proc/self/mountinfo ("none" if none). */
static const char *mount_source(const char *dir)
{
	static char src[256];
	char line[4096], mp[1024], fs[64];
	FILE *mi = fopen("/proc/self/mountinfo", "re");

	snprintf(src, sizeof(src), "none");
	assert_non_null(mi);
	while (fgets(line, sizeof(line), mi)) {
		char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %*s %1023s", mp) != 1 || strcmp(mp, dir))
			continue;
		if (sscanf(dash, " - %63s %255s", fs, src) != 2)
			snprintf(src, sizeof(src), "none");
	}
	fclose(mi);
	return src;
}

/* How many mounts of type FS /proc/self/mountinfo lists. */
static int count_mounts(const char *fs)
{
	char line[4096], pat[64];
	int n = 0;
	FILE *mi = fopen("/proc/self/mountinfo", "re");

	assert_non_null(mi);
	snprintf(pat, sizeof(pat), " - %s ", fs);
	while (fgets(line, sizeof(line), mi))
		n += strstr(line, pat) != NULL;
	fclose(mi);
	return n;
}

struct fx {
	char tmp[64];
	int dir;
	char mounts[4][128]; /* unmounted at teardown, last first */
	int n_mounts;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->dir = tmpdir_make(f->tmp, sizeof(f->tmp), "erofs");
	if (f->dir < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	int r;

	while (f->n_mounts > 0)
		umount2(f->mounts[--f->n_mounts], MNT_DETACH);
	close(f->dir);
	r = tmpdir_remove(f->tmp);
	free(f);
	return r;
}

static const char *p(struct fx *f, const char *rel)
{
	static char buf[4][256];
	static int k;
	char *b = buf[k++ % 4];

	snprintf(b, sizeof(buf[0]), "%s/%s", f->tmp, rel);
	return b;
}

/* Build IMG from the tree at SRC (both relative to the fixture). */
static void build_from(struct fx *f, const char *src, const char *img)
{
	struct erofs_tree *t = NULL;
	_cleanup_close_ int fd = openat(f->dir, src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char *failed = NULL;

	assert_true(fd >= 0);
	assert_int_equal(erofs_tree_from_dir(fd, &t, &failed), 0);
	assert_int_equal(erofs_write_at(t, f->dir, img), 0);
	erofs_tree_free(t);
	free(failed);
}

static void write_tree(struct fx *f, struct erofs_tree *t, const char *img)
{
	assert_int_equal(erofs_write_at(t, f->dir, img), 0);
	erofs_tree_free(t);
}

static int fsck(struct fx *f, const char *img)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "fsck.erofs '%s' >/dev/null 2>&1", p(f, img));
	return system(cmd);
}

static void mount_image(struct fx *f, const char *img, const char *mnt)
{
	assert_int_equal(mkdirat(f->dir, mnt, 0755), 0);
	if (mount(p(f, img), p(f, mnt), "erofs", MS_RDONLY, NULL) < 0)
		fail_msg("mount -t erofs %s: %s", p(f, img), strerror(errno));
	snprintf(f->mounts[f->n_mounts++], sizeof(f->mounts[0]), "%s", p(f, mnt));
}

/* manifest of A and B (relative to the fixture) identical? */
static bool same_manifest(struct fx *f, const char *a, const char *b)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "'%s' '%s' >'%s/m.a' && '%s' '%s' >'%s/m.b' && cmp -s '%s/m.a' '%s/m.b'",
	         manifest_tool, p(f, a), f->tmp, manifest_tool, p(f, b), f->tmp, f->tmp, f->tmp);
	return system(cmd) == 0;
}

static void mkfile(int dfd, const char *name, off_t size, mode_t mode)
{
	_cleanup_close_ int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	assert_int_equal(fchmod(fd, mode), 0);
}

static void set_mtime(int dfd, const char *name, time_t s, long ns)
{
	struct timespec ts[2] = {{s, ns}, {s, ns}};

	assert_int_equal(utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* ------------------------------------------------------------------------ */

/* Below REL (a new directory of the fixture): every inode type, xattrs of
 * every namespace, a hard-link group, times before 1970 and after 2038. */
static void build_every_type(struct fx *f, const char *rel)
{
	static const unsigned char acl_access[] = {
	        2,    0, 0, 0, /* version */
	        1,    0, 6, 0, 0xff, 0xff, 0xff, 0xff, /* USER_OBJ rw- */
	        2,    0, 6, 0, 0xe8, 0x03, 0,    0, /* USER 1000 rw- */
	        4,    0, 4, 0, 0xff, 0xff, 0xff, 0xff, /* GROUP_OBJ r-- */
	        0x10, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, /* MASK rw- */
	        0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, /* OTHER r-- */
	};
	static const unsigned char cap[20] = {0, 0, 0, 2, 0x00, 0x20, 0, 0}; /* v2, cap_net_raw */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
#define P(x) (snprintf(at, sizeof(at), "%s/%s/%s", f->tmp, rel, x), at)
	_cleanup_close_ int src = -1, sub = -1, sock = -1;

	char at[256];

	assert_int_equal(mkdirat(f->dir, rel, 0750), 0);
	src = openat(f->dir, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(src >= 0);
	assert_int_equal(mkdirat(src, "sub", 02775), 0);
	sub = openat(src, "sub", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(sub >= 0);
	mkfile(src, "empty", 0, 0644);
	mkfile(src, "one", 1, 0600);
	mkfile(src, "block", 4096, 0644);
	mkfile(src, "big", 1000000, 04755);
	mkfile(src, "sgid", 12, 02711);
	assert_int_equal(fchownat(src, "one", 1234, 5678, 0), 0);
	assert_int_equal(fchownat(src, "sgid", 70000, 80000, 0), 0);
	assert_int_equal(fchmodat(src, "sgid", 02711, 0), 0);
	assert_int_equal(symlinkat("../one", sub, "rel"), 0);
	assert_int_equal(symlinkat("/a/b/c/does-not-exist", src, "abs"), 0);
	{
		char longt[4001];

		memset(longt, 'x', sizeof(longt) - 1);
		longt[sizeof(longt) - 1] = '\0';
		assert_int_equal(symlinkat(longt, src, "longlink"), 0);
	}
	assert_int_equal(mknodat(src, "chr", S_IFCHR | 0620, makedev(4, 65)), 0);
	assert_int_equal(mknodat(src, "blk", S_IFBLK | 0660, makedev(259, 70000)), 0);
	assert_int_equal(mkfifoat(src, "fifo", 0640), 0);
	sock = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(sock >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s/sock", f->tmp, rel);
	assert_int_equal(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* a hard-link group of three names in two directories */
	assert_int_equal(linkat(src, "block", sub, "hl1", 0), 0);
	assert_int_equal(linkat(src, "block", sub, "hl2", 0), 0);
	/* xattrs of every namespace */
	assert_int_equal(setxattr(P("one"), "user.k", "v", 1, 0), 0);
	assert_int_equal(setxattr(P("one"), "user.empty", "", 0, 0), 0);
	assert_int_equal(setxattr(P("one"), "trusted.t", "\0\1\2", 3, 0), 0);
	assert_int_equal(setxattr(P("big"), "security.capability", cap, sizeof(cap), 0), 0);
	assert_int_equal(setxattr(P("empty"), "system.posix_acl_access", acl_access, sizeof(acl_access), 0),
	                 0);
	assert_int_equal(setxattr(P("sub"), "system.posix_acl_default", acl_access, sizeof(acl_access), 0),
	                 0);
	assert_int_equal(lsetxattr(P("abs"), "trusted.on-a-symlink", "s", 1, 0), 0);
	assert_int_equal(setxattr(P("block"), "user.shared-by-links", "x", 1, 0), 0);
	assert_int_equal(setxattr(P("fifo"), "trusted.f", "fifo", 4, 0), 0);
	set_mtime(src, "one", 1234567890, 123456789);
	set_mtime(src, "abs", -1, 999999999); /* before 1970 */
	set_mtime(src, "chr", 4102444800LL, 1); /* after 2038 */
	set_mtime(src, "fifo", 1234567890, 123456789); /* the most common: compact inodes */
	set_mtime(src, "sgid", 1234567890, 123456789);
#undef P
}

static void test_every_type(void **state)
{
	struct fx *f = *state;
	_cleanup_close_ int src = -1;

	if (!require_root("mknod, trusted.* xattrs, mount"))
		return;
	build_every_type(f, "src");
	src = openat(f->dir, "src", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(src >= 0);
	build_from(f, "src", "img");
	assert_int_equal(fsck(f, "img"), 0);
	mount_image(f, "img", "mnt");
	assert_true(same_manifest(f, "src", "mnt"));
	{
		struct stat a, b;

		assert_int_equal(fstatat(f->dir, "mnt/sub/hl1", &a, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(fstatat(f->dir, "mnt/block", &b, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(a.st_ino, b.st_ino);
		assert_int_equal(a.st_nlink, 3);
		assert_int_equal(fstatat(f->dir, "mnt/sub", &a, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(a.st_nlink, 2);
		assert_int_equal(fstatat(f->dir, "mnt", &a, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(a.st_nlink, 3);
		assert_int_equal(fstatat(f->dir, "mnt/big", &a, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(a.st_size, 1000000);
	}
	/* the oracle sees a change: a mode, then an xattr */
	assert_int_equal(fchmodat(src, "one", 0640, 0), 0);
	assert_false(same_manifest(f, "src", "mnt"));
	assert_int_equal(fchmodat(src, "one", 0600, 0), 0);
	assert_true(same_manifest(f, "src", "mnt"));
	assert_int_equal(setxattr(p(f, "src/one"), "user.k", "w", 1, 0), 0);
	assert_false(same_manifest(f, "src", "mnt"));
}

static void test_hostile_names(void **state)
{
	struct fx *f = *state;
	_cleanup_close_ int src = -1;
	char name[EROFS_NAME_MAX + 1];
	int b, i;

	if (!require_root("mount"))
		return;
	assert_int_equal(mkdirat(f->dir, "src", 0755), 0);
	src = openat(f->dir, "src", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(src >= 0);
	/* every byte but '/' and NUL, alone and as 255-byte names */
	for (b = 1; b < 256; b++) {
		if (b == '/')
			continue;
		name[0] = (char)b;
		name[1] = '\0';
		if (strcmp(name, "."))
			mkfile(src, name, b, 0644);
		memset(name, b, EROFS_NAME_MAX);
		name[EROFS_NAME_MAX] = '\0';
		mkfile(src, name, 0, 0600);
	}
	/* names sorting around "." and "..", and prefixes of each other */
	mkfile(src, "..a", 1, 0644);
	mkfile(src, "...", 1, 0644);
	mkfile(src, ".-", 1, 0644);
	mkfile(src, "-.", 1, 0644);
	for (i = 1; i <= 40; i++) {
		name[0] = '~';
		memset(name + 1, 'p', (size_t)i);
		name[i + 1] = '\0';
		assert_int_equal(mkdirat(src, name, 0700), 0);
	}
	build_from(f, "src", "img");
	assert_int_equal(fsck(f, "img"), 0);
	mount_image(f, "img", "mnt");
	assert_true(same_manifest(f, "src", "mnt"));
	/* every name found by lookup (the kernel bisects the blocks) */
	{
		_cleanup_close_ int m = openat(f->dir, "mnt", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct stat st;

		for (b = 1; b < 256; b++) {
			if (b == '/')
				continue;
			memset(name, b, EROFS_NAME_MAX);
			name[EROFS_NAME_MAX] = '\0';
			assert_int_equal(fstatat(m, name, &st, AT_SYMLINK_NOFOLLOW), 0);
		}
		assert_int_equal(fstatat(m, "..a", &st, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(fstatat(m, "~pp", &st, AT_SYMLINK_NOFOLLOW), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(fstatat(m, "nope", &st, AT_SYMLINK_NOFOLLOW), -1);
		assert_int_equal(errno, ENOENT);
	}
}

static void test_big_dir(void **state)
{
	struct fx *f = *state;
	_cleanup_close_ int src = -1, m = -1;
	char name[64];
	struct stat st;
	int i;

	if (!require_root("mount"))
		return;
	assert_int_equal(mkdirat(f->dir, "src", 0755), 0);
	src = openat(f->dir, "src", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(src >= 0);
	for (i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "%0*d", 1 + i % 40, i);
		mkfile(src, name, i % 7, 0644);
	}
	build_from(f, "src", "img");
	assert_int_equal(fsck(f, "img"), 0);
	mount_image(f, "img", "mnt");
	assert_true(same_manifest(f, "src", "mnt"));
	m = openat(f->dir, "mnt", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(fstat(m, &st), 0);
	assert_true(st.st_size > 50 * EROFS_BLOCK_SIZE); /* many directory blocks */
	for (i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "%0*d", 1 + i % 40, i);
		assert_int_equal(fstatat(m, name, &st, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(st.st_size, i % 7);
	}
}

static void test_deep_tree(void **state)
{
	struct fx *f = *state;
	int fd, next, i;

	if (!require_root("mount"))
		return;
	assert_int_equal(mkdirat(f->dir, "src", 0755), 0);
	fd = openat(f->dir, "src", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (i = 0; i < 500; i++) {
		assert_int_equal(mkdirat(fd, "a-fairly-long-directory-name", 0755), 0);
		next = openat(fd, "a-fairly-long-directory-name", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(next >= 0);
		close(fd);
		fd = next;
	}
	mkfile(fd, "bottom", 77, 0644);
	close(fd);
	build_from(f, "src", "img");
	assert_int_equal(fsck(f, "img"), 0);
	mount_image(f, "img", "mnt");
	assert_true(same_manifest(f, "src", "mnt"));
}

/* Xattrs through the API: large bodies (an inode record over one block),
 * the shared table, and values read back exactly. */
static void test_xattrs(void **state)
{
	struct fx *f = *state;
	struct erofs_tree *t;
	struct erofs_node *n;
	struct stat st = {.st_mode = S_IFREG | 0644, .st_size = 5};
	unsigned char big[3000], got[3000];
	char name[80];
	struct stat a, b;
	int i, k;

	if (!require_root("mount, trusted.* xattrs"))
		return;
	assert_int_equal(erofs_tree_new(&t), 0);
	assert_int_equal(erofs_add(t, erofs_tree_root(t), "fat", &st, NULL, &n), 0);
	for (k = 0; k < 10; k++) {
		memset(big, 'a' + k, sizeof(big));
		snprintf(name, sizeof(name), "user.big%d", k);
		assert_int_equal(erofs_set_xattr(n, name, big, sizeof(big)), 0);
	}
	assert_int_equal(erofs_set_xattr(n, "user.big3", "replaced", 8), 0);
	for (i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		assert_int_equal(erofs_add(t, erofs_tree_root(t), name, &st, NULL, &n), 0);
		assert_int_equal(erofs_set_xattr(n, "trusted.overlay.metacopy", "", 0), 0);
		assert_int_equal(erofs_set_xattr(n, "security.selinux", "system_u:object_r:etc_t:s0", 27), 0);
		snprintf(name, sizeof(name), "/%02x/%062d", i % 256, i);
		assert_int_equal(erofs_set_xattr(n, "trusted.overlay.redirect", name, strlen(name)), 0);
	}
	write_tree(f, t, "img");
	assert_int_equal(fsck(f, "img"), 0);
	mount_image(f, "img", "mnt");
	for (k = 0; k < 10; k++) {
		ssize_t len;

		snprintf(name, sizeof(name), "user.big%d", k);
		len = lgetxattr(p(f, "mnt/fat"), name, got, sizeof(got));
		if (k == 3) {
			assert_int_equal(len, 8);
			assert_memory_equal(got, "replaced", 8);
			continue;
		}
		memset(big, 'a' + k, sizeof(big));
		assert_int_equal(len, sizeof(big));
		assert_memory_equal(got, big, sizeof(big));
	}
	for (i = 0; i < 300; i += 37) {
		char path[64], want[80];
		ssize_t len;

		snprintf(path, sizeof(path), "mnt/f%03d", i);
		len = lgetxattr(p(f, path), "security.selinux", got, sizeof(got));
		assert_int_equal(len, 27);
		assert_memory_equal(got, "system_u:object_r:etc_t:s0", 27);
		len = lgetxattr(p(f, path), "trusted.overlay.redirect", got, sizeof(got));
		snprintf(want, sizeof(want), "/%02x/%062d", i % 256, i);
		assert_int_equal(len, strlen(want));
		assert_memory_equal(got, want, strlen(want));
		assert_int_equal(lgetxattr(p(f, path), "trusted.overlay.metacopy", got, sizeof(got)), 0);
		assert_int_equal(listxattr(p(f, path), (char *)got, sizeof(got)),
		                 sizeof("trusted.overlay.metacopy") + sizeof("security.selinux") +
		                         sizeof("trusted.overlay.redirect"));
	}
	/* sharing made the 300 stubs smaller than inline copies would be:
	 * 64 + 12 + 3 shared ids + the redirect = 156 bytes, not 208 */
	assert_int_equal(stat(p(f, "img"), &a), 0);
	assert_true(a.st_size < 300 * 208 + 64 * 1024);
	(void)b;
}

/* A stub's size with no data, past 4 GiB and past one chunk. */
static void test_stub_sizes(void **state)
{
	struct fx *f = *state;
	static const off_t sizes[] = {1, 4095, 4096, 4097, (off_t)5 << 30, (off_t)20 << 40};
	struct erofs_tree *t;
	struct stat st = {.st_mode = S_IFREG | 0644};
	char name[16], buf[4096], zero[4096] = {0};
	size_t i;

	if (!require_root("mount"))
		return;
	assert_int_equal(erofs_tree_new(&t), 0);
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		snprintf(name, sizeof(name), "s%zu", i);
		st.st_size = sizes[i];
		st.st_uid = (uid_t)i * 100000; /* past 16 bits from i = 1 */
		assert_int_equal(erofs_add(t, erofs_tree_root(t), name, &st, NULL, NULL), 0);
	}
	write_tree(f, t, "img");
	assert_int_equal(fsck(f, "img"), 0);
	mount_image(f, "img", "mnt");
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		_cleanup_close_ int fd = -1;
		struct stat got;

		snprintf(name, sizeof(name), "mnt/s%zu", i);
		assert_int_equal(stat(p(f, name), &got), 0);
		assert_int_equal(got.st_size, sizes[i]);
		assert_int_equal(got.st_uid, i * 100000);
		fd = open(p(f, name), O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, buf, 1, sizes[i] - 1), 1); /* a hole: zeros */
		assert_int_equal(buf[0], 0);
		assert_int_equal(pread(fd, buf, sizeof(buf), 0), MIN((off_t)sizeof(buf), sizes[i]));
		assert_memory_equal(buf, zero, (size_t)MIN((off_t)sizeof(buf), sizes[i]));
	}
}

/* The lower layer of the redirect layout: an overlay of the image and a
 * data-only layer serves the object's bytes with the stub's metadata. */
static void test_overlay_redirect(void **state)
{
	struct fx *f = *state;
	static const char data[] = "the object's own bytes\n";
	static const char hex[] = "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
	struct erofs_tree *t;
	struct erofs_node *n, *d;
	struct stat st = {
	        .st_mode = S_IFREG | 04750, .st_uid = 1001, .st_gid = 1002, .st_size = sizeof(data) - 1};
	struct stat dst = {.st_mode = S_IFDIR | 0755};
	char redirect[80], buf[128], opts[512];
	_cleanup_close_ int fd = -1;
	struct stat got;

	if (!require_root("mount, trusted.* xattrs"))
		return;
	assert_int_equal(mkdirat(f->dir, "objects", 0755), 0);
	assert_int_equal(mkdirat(f->dir, "objects/ab", 0755), 0);
	snprintf(buf, sizeof(buf), "objects/ab/%s", hex);
	fd = openat(f->dir, buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, sizeof(data) - 1), sizeof(data) - 1);
	close(fd);
	fd = -1;

	assert_int_equal(erofs_tree_new(&t), 0);
	assert_int_equal(erofs_add(t, erofs_tree_root(t), "usr", &dst, NULL, &d), 0);
	assert_int_equal(erofs_add(t, d, "file", &st, NULL, &n), 0);
	assert_int_equal(erofs_add_link(t, erofs_tree_root(t), "link", n), 0);
	snprintf(redirect, sizeof(redirect), "/ab/%s", hex);
	assert_int_equal(erofs_set_xattr(n, "trusted.overlay.metacopy", "", 0), 0);
	assert_int_equal(erofs_set_xattr(n, "trusted.overlay.redirect", redirect, strlen(redirect)), 0);
	assert_int_equal(erofs_set_xattr(n, "user.guest", "kept", 4), 0);
	write_tree(f, t, "img");
	mount_image(f, "img", "lower");
	assert_int_equal(mkdirat(f->dir, "merged", 0755), 0);
	snprintf(opts, sizeof(opts), "lowerdir=%s::%s,redirect_dir=off,index=off,xino=off,metacopy=off",
	         p(f, "lower"), p(f, "objects"));
	if (mount("vunify", p(f, "merged"), "overlay", MS_RDONLY, opts) < 0)
		fail_msg("mount overlay %s: %s", opts, strerror(errno));
	snprintf(f->mounts[f->n_mounts++], sizeof(f->mounts[0]), "%s", p(f, "merged"));

	fd = openat(f->dir, "merged/usr/file", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), sizeof(data) - 1);
	assert_memory_equal(buf, data, sizeof(data) - 1);
	assert_int_equal(fstat(fd, &got), 0);
	assert_int_equal(got.st_mode, S_IFREG | 04750);
	assert_int_equal(got.st_uid, 1001);
	assert_int_equal(got.st_gid, 1002);
	assert_int_equal(got.st_size, sizeof(data) - 1);
	assert_int_equal(getxattr(p(f, "merged/usr/file"), "user.guest", buf, sizeof(buf)), 4);
	close(fd);
	fd = openat(f->dir, "merged/link", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), sizeof(data) - 1);
	assert_memory_equal(buf, data, sizeof(data) - 1);
}

/* erofs_tree_import's file hook: "out*" left out (both names of a
 * hard-link pair), "stub" redirected, the rest as they are; with
 * XATTR_SKIP_OVERLAY, a tree's own trusted.overlay.* stay out. */
static int plan(const struct walk_entry *e, void *ud, char *redirect, size_t size)
{
	(*(int *)ud)++;
	if (!strncmp(e->name, "out", 3))
		return 1;
	if (!strcmp(e->name, "stub"))
		snprintf(redirect, size, "/ab/cdef");
	return 0;
}

static void test_import_hook(void **state)
{
	struct fx *f = *state;
	struct erofs_tree *t = NULL;
	int calls = 0, src;
	struct erofs_import how = {.xattr_flags = XATTR_SKIP_OVERLAY, .file = plan, .ud = &calls};
	char v[64];

	if (!require_root("mount, trusted.* xattrs"))
		return;
	assert_int_equal(mkdirat(f->dir, "src", 0755), 0);
	src = openat(f->dir, "src", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(src >= 0);
	mkfile(src, "stub", 100, 0640);
	mkfile(src, "plain", 7, 0644);
	mkfile(src, "out1", 3, 0644);
	assert_int_equal(linkat(src, "out1", src, "out2", 0), 0);
	assert_int_equal(lsetxattr(p(f, "src/plain"), "trusted.overlay.opaque", "y", 1, 0), 0);
	assert_int_equal(lsetxattr(p(f, "src/plain"), "user.keep", "k", 1, 0), 0);
	assert_int_equal(erofs_tree_import(src, &how, &t, NULL), 0);
	close(src);
	/* one call per regular file (out2 again: out1 was left out) */
	assert_int_equal(calls, 4);
	write_tree(f, t, "img");
	assert_int_equal(fsck(f, "img"), 0);
	mount_image(f, "img", "mnt");
	assert_int_equal(access(p(f, "mnt/out1"), F_OK), -1);
	assert_int_equal(access(p(f, "mnt/out2"), F_OK), -1);
	assert_int_equal(lgetxattr(p(f, "mnt/stub"), "trusted.overlay.redirect", v, sizeof(v)), 8);
	assert_memory_equal(v, "/ab/cdef", 8);
	assert_int_equal(lgetxattr(p(f, "mnt/stub"), "trusted.overlay.metacopy", v, sizeof(v)), 0);
	assert_int_equal(lgetxattr(p(f, "mnt/plain"), "trusted.overlay.metacopy", v, sizeof(v)), -1);
	assert_int_equal(lgetxattr(p(f, "mnt/plain"), "trusted.overlay.opaque", v, sizeof(v)), -1);
	assert_int_equal(lgetxattr(p(f, "mnt/plain"), "user.keep", v, sizeof(v)), 1);
}

static void test_refused(void **state)
{
	struct erofs_tree *t;
	struct erofs_node *root, *file, *dir;
	struct stat reg = {.st_mode = S_IFREG | 0644}, dirst = {.st_mode = S_IFDIR | 0755};
	struct stat lnk = {.st_mode = S_IFLNK | 0777};
	char name[EROFS_NAME_MAX + 2], target[4097];
	static unsigned char huge[65536];
	int fd;

	(void)state;
	assert_int_equal(erofs_tree_new(&t), 0);
	root = erofs_tree_root(t);
	assert_int_equal(erofs_add(t, root, "a/b", &reg, NULL, NULL), -EINVAL);
	assert_int_equal(erofs_add(t, root, "/", &reg, NULL, NULL), -EINVAL);
	assert_int_equal(erofs_add(t, root, "", &reg, NULL, NULL), -EINVAL);
	assert_int_equal(erofs_add(t, root, ".", &reg, NULL, NULL), -EINVAL);
	assert_int_equal(erofs_add(t, root, "..", &dirst, NULL, NULL), -EINVAL);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(erofs_add(t, root, name, &reg, NULL, NULL), -EINVAL); /* 256 bytes */
	name[EROFS_NAME_MAX] = '\0';
	assert_int_equal(erofs_add(t, root, name, &reg, NULL, &file), 0); /* 255 bytes */
	assert_int_equal(erofs_add(t, file, "x", &reg, NULL, NULL), -ENOTDIR);
	assert_int_equal(erofs_add(t, root, "l", &lnk, NULL, NULL), -EINVAL);
	assert_int_equal(erofs_add(t, root, "l", &lnk, "", NULL), -EINVAL);
	memset(target, 't', sizeof(target) - 1);
	target[sizeof(target) - 1] = '\0';
	assert_int_equal(erofs_add(t, root, "l", &lnk, target, NULL), -EINVAL); /* 4096 bytes */
	assert_int_equal(erofs_add(t, root, "r", &reg, "target", NULL), -EINVAL);
	{
		struct stat bad = {.st_mode = 0170000 | 0644};

		assert_int_equal(erofs_add(t, root, "bad", &bad, NULL, NULL), -EINVAL);
	}
	assert_int_equal(erofs_add(t, root, "d", &dirst, NULL, &dir), 0);
	assert_int_equal(erofs_add_link(t, root, "dl", dir), -EPERM);
	assert_int_equal(erofs_add_link(t, root, "a/b", file), -EINVAL);
	assert_int_equal(erofs_set_xattr(file, "system.nfs4_acl", "x", 1), -EOPNOTSUPP);
	assert_int_equal(erofs_set_xattr(file, "other.x", "x", 1), -EOPNOTSUPP);
	assert_int_equal(erofs_set_xattr(file, "user.huge", huge, sizeof(huge)), -E2BIG);
	assert_int_equal(erofs_set_xattr(file, "user.max", huge, sizeof(huge) - 1), 0);
	/* a duplicate name is found when the directory is sorted */
	assert_int_equal(erofs_add(t, dir, "twice", &reg, NULL, NULL), 0);
	assert_int_equal(erofs_add(t, dir, "twice", &reg, NULL, NULL), 0);
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(erofs_write_fd(t, fd), -EEXIST);
	close(fd);
	erofs_tree_free(t);
}

/* fsck.erofs is an oracle here: show that it catches damage. */
static void test_fsck_catches(void **state)
{
	struct fx *f = *state;
	struct erofs_tree *t;
	struct stat dst = {.st_mode = S_IFDIR | 0755}, reg = {.st_mode = S_IFREG | 0644, .st_size = 10};
	struct erofs_node *d;
	_cleanup_close_ int fd = -1;
	unsigned char b;

	assert_int_equal(erofs_tree_new(&t), 0);
	assert_int_equal(erofs_add(t, erofs_tree_root(t), "d", &dst, NULL, &d), 0);
	assert_int_equal(erofs_add(t, d, "f", &reg, NULL, NULL), 0);
	write_tree(f, t, "img");
	assert_int_equal(fsck(f, "img"), 0);
	fd = openat(f->dir, "img", O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	/* the superblock's magic */
	assert_int_equal(pread(fd, &b, 1, 1024), 1);
	b ^= 0xff;
	assert_int_equal(pwrite(fd, &b, 1, 1024), 1);
	assert_int_not_equal(fsck(f, "img"), 0);
	b ^= 0xff;
	assert_int_equal(pwrite(fd, &b, 1, 1024), 1);
	assert_int_equal(fsck(f, "img"), 0);
	/* the root's i_format (the root is the first inode, at 1152):
	 * datalayout 7, reserved */
	assert_int_equal(pread(fd, &b, 1, 1152), 1);
	b |= 0x0e;
	assert_int_equal(pwrite(fd, &b, 1, 1152), 1);
	assert_int_not_equal(fsck(f, "img"), 0);
}

/* erofs_write_at replaces the image whole and leaves no temp file. */
static void test_replace(void **state)
{
	struct fx *f = *state;
	struct erofs_tree *t;
	struct stat reg = {.st_mode = S_IFREG | 0644, .st_size = 3}, a, b;
	_cleanup_close_ int stale = -1;

	assert_int_equal(erofs_tree_new(&t), 0);
	write_tree(f, t, "img");
	assert_int_equal(fstatat(f->dir, "img", &a, 0), 0);
	stale = openat(f->dir, ".img.tmp", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(stale >= 0);
	assert_int_equal(erofs_tree_new(&t), 0);
	assert_int_equal(erofs_add(t, erofs_tree_root(t), "f", &reg, NULL, NULL), 0);
	write_tree(f, t, "img");
	assert_int_equal(fstatat(f->dir, "img", &b, 0), 0);
	assert_int_not_equal(a.st_ino, b.st_ino);
	assert_int_equal(faccessat(f->dir, ".img.tmp", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(fsck(f, "img"), 0);
}

/* HOME/meta.img (lib/meta_image.c): built from HOME/meta, equal to it
 * byte for byte when written again, found different after a change,
 * dropped durably, mounted from the file and released. */
static void test_meta_image(void **state)
{
	struct fx *f = *state;
	_cleanup_close_ int home = -1, meta = -1;
	char *dir = NULL;
	struct stat st;

	assert_int_equal(mkdirat(f->dir, "home", 0755), 0);
	home = openat(f->dir, "home", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(home >= 0);
	assert_int_equal(meta_image_exists(home), 0);
	assert_int_equal(meta_image_check(home), -ENOENT);
	assert_int_equal(meta_image_drop(home), 0); /* nothing to drop */
	assert_int_equal(mkdirat(home, "meta", 0755), 0);
	meta = openat(home, "meta", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(meta >= 0);
	assert_int_equal(mkdirat(meta, "usr", 0755), 0);
	mkfile(meta, "usr/stub", 123456, 0755);
	assert_int_equal(setxattr(p(f, "home/meta/usr/stub"), "user.x", "1", 1, 0), 0);

	assert_int_equal(meta_image_build(home), 0);
	assert_int_equal(meta_image_exists(home), 1);
	assert_int_equal(meta_image_check(home), 1); /* deterministic */
	assert_int_equal(faccessat(home, ".meta.img.tmp", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	/* the check sees a change of mode, of an xattr, of a name */
	assert_int_equal(fchmodat(meta, "usr/stub", 0700, 0), 0);
	assert_int_equal(meta_image_check(home), 0);
	assert_int_equal(fchmodat(meta, "usr/stub", 0755, 0), 0);
	assert_int_equal(meta_image_check(home), 1);
	assert_int_equal(setxattr(p(f, "home/meta/usr/stub"), "user.x", "2", 1, 0), 0);
	assert_int_equal(meta_image_check(home), 0);
	assert_int_equal(meta_image_build(home), 0);
	assert_int_equal(meta_image_check(home), 1);
	assert_int_equal(renameat(meta, "usr/stub", meta, "usr/stup"), 0);
	assert_int_equal(meta_image_check(home), 0);
	assert_int_equal(meta_image_build(home), 0);

	if (require_root("mount")) {
		assert_int_equal(meta_image_mount(home, p(f, "home"), 0, &dir), 1);
		snprintf(f->mounts[f->n_mounts++], sizeof(f->mounts[0]), "%s", dir);
		assert_int_equal(fstatat(home, "meta.img.mnt/usr/stup", &st, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(st.st_size, 123456);
		assert_int_equal(meta_image_unmount(home, dir), 0);
		f->n_mounts--;
		assert_int_equal(faccessat(home, "meta.img.mnt", F_OK, AT_SYMLINK_NOFOLLOW), -1);
		assert_string_equal(mount_source(dir), "none"); /* not yet */
		free(dir);
		dir = NULL;
		/* the path of kernels before 6.12: a read-only loop device that
		 * goes with its last user */
		assert_int_equal(meta_image_mount(home, p(f, "home"), META_IMAGE_LOOP, &dir), 1);
		snprintf(f->mounts[f->n_mounts++], sizeof(f->mounts[0]), "%s", dir);
		{
			char loopdev[64], backing[128];
			int tries;

			snprintf(loopdev, sizeof(loopdev), "%s", mount_source(dir));
			assert_int_equal(strncmp(loopdev, "/dev/loop", 9), 0);
			assert_int_equal(fstatat(home, "meta.img.mnt/usr/stup", &st, AT_SYMLINK_NOFOLLOW), 0);
			assert_int_equal(st.st_size, 123456);
			snprintf(backing, sizeof(backing), "/sys/block/%s/loop/backing_file", loopdev + 5);
			assert_int_equal(access(backing, F_OK), 0);
			assert_int_equal(meta_image_unmount(home, dir), 0);
			f->n_mounts--;
			for (tries = 0; tries < 200 && access(backing, F_OK) == 0; tries++)
				usleep(10000);
			assert_int_equal(access(backing, F_OK), -1); /* detached itself */
		}
		free(dir);
		dir = NULL;
		/* a reader's detached mount, from the file and through a loop
		 * device: nothing in the mount table, a directory fd of the
		 * image's tree with its xattrs, and gone with the fd */
		for (unsigned fl = 0; fl <= META_IMAGE_LOOP; fl += META_IMAGE_LOOP) {
			char xp[64], v[4];
			int before = count_mounts("erofs"), lfd = meta_image_open(home, fl);

			assert_true(lfd >= 0);
			assert_int_equal(fstatat(lfd, "usr/stup", &st, AT_SYMLINK_NOFOLLOW), 0);
			assert_int_equal(st.st_size, 123456);
			assert_int_equal(st.st_mode & 07777, 0755);
			snprintf(xp, sizeof(xp), "/proc/self/fd/%d/usr/stup", lfd);
			assert_int_equal(lgetxattr(xp, "user.x", v, sizeof(v)), 1);
			assert_int_equal(v[0], '2');
			/* read-only */
			assert_int_equal(mkdirat(lfd, "new", 0755), -1);
			assert_int_equal(errno, EROFS);
			/* detached: in no namespace */
			assert_int_equal(count_mounts("erofs"), before);
			close(lfd);
		}
		/* an image the kernel refuses: the stubs are used, nothing is
		 * left mounted, and the check says it differs */
		{
			_cleanup_close_ int img = openat(home, "meta.img", O_WRONLY | O_CLOEXEC);

			assert_true(img >= 0);
			assert_int_equal(pwrite(img, "XXXX", 4, 1024), 4); /* the magic */
		}
		assert_int_equal(meta_image_mount(home, p(f, "home"), 0, &dir), 0);
		assert_null(dir);
		assert_int_equal(faccessat(home, "meta.img.mnt", F_OK, AT_SYMLINK_NOFOLLOW), -1);
		assert_true(meta_image_open(home, 0) < 0); /* a reader is refused too */
		assert_int_equal(meta_image_check(home), 0);
	}
	assert_int_equal(meta_image_drop(home), 0);
	assert_int_equal(meta_image_exists(home), 0);
	assert_int_equal(meta_image_open(home, 0), -ENOENT);
	/* no image: mount says so, and mounts nothing */
	dir = NULL;
	assert_int_equal(meta_image_mount(home, p(f, "home"), 0, &dir), 0);
	assert_null(dir);
}

/* A writer's working copy (meta_work_open): empty without a record; a
 * copy of the image (every type, xattrs of every namespace, hard links,
 * sparse sizes) that nobody else sees; an image written from it
 * (meta_image_write) is the next record. */
static void test_work_copy(void **state)
{
	struct fx *f = *state;
	_cleanup_close_ int home = -1, meta = -1, work = -1, again = -1;
	struct stat st;
	char xp[80], v[8];

	if (!require_root("fsopen"))
		return;
	assert_int_equal(mkdirat(f->dir, "home", 0755), 0);
	home = openat(f->dir, "home", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(home >= 0);
	/* no record: an empty copy */
	assert_int_equal(meta_work_open(home, &work), 0);
	assert_int_equal(fstatat(work, "x", &st, AT_SYMLINK_NOFOLLOW), -1);
	close(work);
	work = -1;
	/* a record with every type of entry */
	build_every_type(f, "home/meta");
	meta = openat(home, "meta", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(meta >= 0);
	assert_int_equal(meta_image_write(meta, home), 0);
	assert_int_equal(remove_tree_at(home, "meta"), 0);
	assert_int_equal(meta_work_open(home, &work), 1);
	/* the copy shows what the image shows */
	mount_image(f, "home/meta.img", "mnt");
	snprintf(xp, sizeof(xp), "/proc/%d/fd/%d", (int)getpid(), work);
	{
		char cmd[4096];
		snprintf(cmd, sizeof(cmd), "%s %s >%s/w.man && %s %s >%s/m.man && cmp -s %s/w.man %s/m.man",
		         manifest_tool, xp, f->tmp, manifest_tool, p(f, "mnt"), f->tmp, f->tmp, f->tmp);
		assert_int_equal(system(cmd), 0);
	}
	/* a change in the copy is seen by nobody until an image of it */
	mkfile(work, "new-stub", 4096, 0640);
	snprintf(xp, sizeof(xp), "/proc/self/fd/%d/new-stub", work);
	assert_int_equal(lsetxattr(xp, "trusted.overlay.redirect", "/ab/x", 5, 0), 0);
	assert_int_equal(faccessat(home, "meta", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	again = meta_image_open(home, 0);
	assert_true(again >= 0);
	assert_int_equal(fstatat(again, "new-stub", &st, AT_SYMLINK_NOFOLLOW), -1);
	close(again);
	assert_int_equal(meta_image_write(work, home), 0);
	again = meta_image_open(home, 0);
	assert_true(again >= 0);
	assert_int_equal(fstatat(again, "new-stub", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_size, 4096);
	snprintf(xp, sizeof(xp), "/proc/self/fd/%d/new-stub", again);
	assert_int_equal(lgetxattr(xp, "trusted.overlay.redirect", v, sizeof(v)), 5);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_refused),
	        cmocka_unit_test_setup_teardown(test_import_hook, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_fsck_catches, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_every_type, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_hostile_names, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_big_dir, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_deep_tree, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_xattrs, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_stub_sizes, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_overlay_redirect, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_meta_image, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_work_copy, setup, teardown),
	};
	char *copy = strdup(argv[0]);

	(void)argc;
	/* build/tests/test_erofs -> build/tools/manifest */
	snprintf(manifest_tool, sizeof(manifest_tool), "%s/../tools/manifest", dirname(copy));
	free(copy);
	if (access(manifest_tool, X_OK) < 0) {
		fprintf(stderr, "test_erofs: no %s (make all builds it)\n", manifest_tool);
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
