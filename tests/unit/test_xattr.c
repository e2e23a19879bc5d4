/* lib/xattr.c: lists read sorted and applied back byte for byte (binary and
 * empty values), trusted.overlay.* left out on request, equality and
 * hashing, and the O_PATH route through /proc/self/fd for symlinks and
 * fifos.  user.* parts run as anyone; trusted.* parts need root: skipped
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
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "hash.h"
#include "util.h"
#include "xattr.h"
#include "tmpdir.h"
#include "unit.h"
#include "banned.h"

static int setup(void **state)
{
	return fixture_setup(state, "xattr");
}

static int new_file(int dir, const char *name)
{
	int fd = openat(dir, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	return fd;
}

static void assert_sorted(const struct xattr_list *l)
{
	for (size_t i = 1; i < l->n; i++)
		if (strcmp(l->v[i - 1].name, l->v[i].name) >= 0)
			fail_msg("not sorted: '%s' before '%s'", l->v[i - 1].name, l->v[i].name);
}

static const struct xattr *find(const struct xattr_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].name, name))
			return &l->v[i];
	return NULL;
}

static const char bin[] = {'v', '\0', '\xff', '\n', 'x'};

static void test_user_round_trip(void **state)
{
	struct fixture *f = *state;
	struct xattr_list a = {0}, b = {0};
	char big[3000];
	int src = new_file(f->dir, "src"), dst = new_file(f->dir, "dst");
	const struct xattr *x;

	/* none yet */
	assert_int_equal(xattr_list_read(src, false, 0, &a), 0);
	assert_int_equal(a.n, 0);
	assert_null(a.v);

	memset(big, 'b', sizeof(big));
	/* set in an order that is not sorted */
	assert_int_equal(xattr_set(src, false, "user.zeta", "z", 1), 0);
	assert_int_equal(xattr_set(src, false, "user.bin", bin, sizeof(bin)), 0);
	assert_int_equal(xattr_set(src, false, "user.empty", "", 0), 0);
	assert_int_equal(xattr_set(src, false, "user.Alpha", "A", 1), 0);
	assert_int_equal(xattr_set(src, false, "user.big", big, sizeof(big)), 0);

	assert_int_equal(xattr_list_read(src, false, 0, &a), 0);
	assert_int_equal(a.n, 5);
	assert_sorted(&a);
	assert_string_equal(a.v[0].name, "user.Alpha");
	assert_string_equal(a.v[4].name, "user.zeta");
	x = find(&a, "user.bin");
	assert_non_null(x);
	assert_int_equal(x->size, sizeof(bin));
	assert_memory_equal(x->value, bin, sizeof(bin));
	x = find(&a, "user.empty");
	assert_non_null(x);
	assert_int_equal(x->size, 0);
	x = find(&a, "user.big");
	assert_non_null(x);
	assert_int_equal(x->size, sizeof(big));
	assert_memory_equal(x->value, big, sizeof(big));

	assert_int_equal(xattr_list_apply(dst, false, &a), 0);
	assert_int_equal(xattr_list_read(dst, false, 0, &b), 0);
	assert_true(xattr_list_equal(&a, &b));
	xattr_list_free(&b);
	/* applying twice replaces, does not fail */
	assert_int_equal(xattr_list_apply(dst, false, &a), 0);

	/* single get / remove */
	{
		char buf[16];
		assert_int_equal(xattr_get(src, false, "user.bin", NULL, 0), sizeof(bin));
		assert_int_equal(xattr_get(src, false, "user.bin", buf, sizeof(buf)), sizeof(bin));
		assert_memory_equal(buf, bin, sizeof(bin));
		assert_int_equal(xattr_get(src, false, "user.bin", buf, 2), -ERANGE);
		assert_int_equal(xattr_get(src, false, "user.missing", buf, sizeof(buf)), -ENODATA);
		assert_int_equal(xattr_remove(src, false, "user.zeta"), 0);
		assert_int_equal(xattr_remove(src, false, "user.zeta"), -ENODATA);
		assert_int_equal(xattr_set(src, false, "nonamespace", "x", 1), -EOPNOTSUPP);
	}
	assert_int_equal(xattr_list_read(src, false, 0, &b), 0);
	assert_int_equal(b.n, 4);
	assert_false(xattr_list_equal(&a, &b));
	xattr_list_free(&b);
	xattr_list_free(&a);
	assert_null(a.v);
	assert_int_equal(a.n, 0);
	xattr_list_free(&a); /* twice is harmless */

	/* a bad fd fails; *ret untouched */
	b.n = 77;
	assert_int_equal(xattr_list_read(-1, false, 0, &b), -EBADF);
	assert_int_equal(b.n, 77);
	close(src);
	close(dst);
}

static struct xattr_list make_list(size_t n, const char *const *names, const char *const *values)
{
	struct xattr_list l = {.v = calloc(n ? n : 1, sizeof(struct xattr)), .n = n};

	assert_non_null(l.v);
	for (size_t i = 0; i < n; i++) {
		l.v[i].name = strdup(names[i]);
		l.v[i].size = strlen(values[i]);
		l.v[i].value = (unsigned char *)strdup(values[i]);
	}
	return l;
}

static void hash_list(const struct xattr_list *l, unsigned char h[HASH_LEN])
{
	struct hash_ctx *c = hash_new();

	assert_non_null(c);
	assert_int_equal(xattr_list_hash(l, c), 0);
	assert_int_equal(hash_final(c, h), 0);
	hash_free(c);
}

static void test_equal_and_hash(void **state)
{
	static const char *const n2[] = {"user.a", "user.b"};
	static const char *const v2[] = {"1", "2"};
	static const char *const v2b[] = {"1", "3"};
	static const char *const v2c[] = {"1", "22"};
	static const char *const n2d[] = {"user.a", "user.c"};
	static const char *const nsplit1[] = {"user.a"}, *const vsplit1[] = {"bc"};
	static const char *const nsplit2[] = {"user.ab"}, *const vsplit2[] = {"c"};
	struct xattr_list empty1 = {0}, empty2 = {0};
	struct xattr_list a = make_list(2, n2, v2), same = make_list(2, n2, v2);
	struct xattr_list val = make_list(2, n2, v2b), size = make_list(2, n2, v2c);
	struct xattr_list name = make_list(2, n2d, v2), shorter = make_list(1, n2, v2);
	struct xattr_list s1 = make_list(1, nsplit1, vsplit1), s2 = make_list(1, nsplit2, vsplit2);
	unsigned char h1[HASH_LEN], h2[HASH_LEN];

	(void)state;
	assert_true(xattr_list_equal(&empty1, &empty2));
	assert_true(xattr_list_equal(&a, &same));
	assert_false(xattr_list_equal(&a, &val));
	assert_false(xattr_list_equal(&a, &size));
	assert_false(xattr_list_equal(&a, &name));
	assert_false(xattr_list_equal(&a, &shorter));
	assert_false(xattr_list_equal(&shorter, &a));
	assert_false(xattr_list_equal(&a, &empty1));

	hash_list(&a, h1);
	hash_list(&same, h2);
	assert_memory_equal(h1, h2, HASH_LEN);
	hash_list(&val, h2);
	assert_memory_not_equal(h1, h2, HASH_LEN);
	hash_list(&name, h2);
	assert_memory_not_equal(h1, h2, HASH_LEN);
	hash_list(&shorter, h2);
	assert_memory_not_equal(h1, h2, HASH_LEN);
	/* name/value boundaries are part of the canonical form */
	hash_list(&s1, h1);
	hash_list(&s2, h2);
	assert_memory_not_equal(h1, h2, HASH_LEN);
	/* an empty list feeds nothing */
	hash_list(&empty1, h1);
	assert_int_equal(hash_buffer("", 0, h2), 0);
	assert_memory_equal(h1, h2, HASH_LEN);

	xattr_list_free(&a);
	xattr_list_free(&same);
	xattr_list_free(&val);
	xattr_list_free(&size);
	xattr_list_free(&name);
	xattr_list_free(&shorter);
	xattr_list_free(&s1);
	xattr_list_free(&s2);
}

static void test_trusted_and_overlay(void **state)
{
	struct fixture *f = *state;
	struct xattr_list all = {0}, kept = {0}, back = {0};
	int src, dst;

	need_root("trusted.* xattrs");
	src = new_file(f->dir, "src");
	dst = new_file(f->dir, "dst");
	assert_int_equal(xattr_set(src, false, "trusted.overlay.metacopy", "", 0), 0);
	assert_int_equal(xattr_set(src, false, "trusted.overlay.redirect", "/ab/cd", 6), 0);
	assert_int_equal(xattr_set(src, false, "trusted.overlayx", "kept", 4), 0); /* not the prefix */
	assert_int_equal(xattr_set(src, false, "trusted.other", bin, sizeof(bin)), 0);
	assert_int_equal(xattr_set(src, false, "user.u", "u", 1), 0);

	assert_int_equal(xattr_list_read(src, false, 0, &all), 0);
	assert_int_equal(all.n, 5);
	assert_sorted(&all);
	assert_non_null(find(&all, "trusted.overlay.redirect"));

	assert_int_equal(xattr_list_read(src, false, XATTR_SKIP_OVERLAY, &kept), 0);
	assert_int_equal(kept.n, 3);
	assert_sorted(&kept);
	assert_string_equal(kept.v[0].name, "trusted.other");
	assert_string_equal(kept.v[1].name, "trusted.overlayx");
	assert_string_equal(kept.v[2].name, "user.u");
	assert_null(find(&kept, "trusted.overlay.metacopy"));

	assert_int_equal(xattr_list_apply(dst, false, &kept), 0);
	assert_int_equal(xattr_list_read(dst, false, 0, &back), 0);
	assert_true(xattr_list_equal(&kept, &back));
	assert_false(xattr_list_equal(&all, &back));
	{
		char buf[8];
		assert_int_equal(fgetxattr(dst, "trusted.overlay.redirect", buf, sizeof(buf)), -1);
		assert_int_equal(errno, ENODATA);
	}
	xattr_list_free(&all);
	xattr_list_free(&kept);
	xattr_list_free(&back);
	close(src);
	close(dst);
}

static void test_o_path(void **state)
{
	struct fixture *f = *state;
	struct xattr_list a = {0}, b = {0};
	char buf[16];
	int lnk, lnk2, fifo;

	need_root("trusted.* xattrs");
	assert_int_equal(symlinkat("target-that-does-not-exist", f->dir, "sym"), 0);
	assert_int_equal(symlinkat("src", f->dir, "sym2"), 0);
	assert_int_equal(mkfifoat(f->dir, "fifo", 0600), 0);
	close(new_file(f->dir, "src"));
	lnk = openat(f->dir, "sym", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	lnk2 = openat(f->dir, "sym2", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	fifo = openat(f->dir, "fifo", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	assert_true(lnk >= 0 && lnk2 >= 0 && fifo >= 0);

	/* on the symlink itself, never its (missing) target */
	assert_int_equal(xattr_set(lnk, true, "trusted.sym", bin, sizeof(bin)), 0);
	assert_int_equal(xattr_set(lnk, true, "trusted.overlay.opaque", "y", 1), 0);
	assert_int_equal(xattr_get(lnk, true, "trusted.sym", buf, sizeof(buf)), sizeof(bin));
	assert_memory_equal(buf, bin, sizeof(bin));
	assert_int_equal(lgetxattr(f->tmp, "trusted.sym", buf, sizeof(buf)), -1); /* not the dir */
	/* user.* is not allowed on symlinks: the kernel says so */
	assert_int_equal(xattr_set(lnk, true, "user.x", "x", 1), -EPERM);

	assert_int_equal(xattr_list_read(lnk, true, XATTR_SKIP_OVERLAY, &a), 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.v[0].name, "trusted.sym");
	assert_int_equal(a.v[0].size, sizeof(bin));
	assert_memory_equal(a.v[0].value, bin, sizeof(bin));

	/* apply to a symlink pointing at a real file: the file is untouched */
	assert_int_equal(xattr_list_apply(lnk2, true, &a), 0);
	assert_int_equal(xattr_list_read(lnk2, true, 0, &b), 0);
	assert_true(xattr_list_equal(&a, &b));
	xattr_list_free(&b);
	{
		int src = openat(f->dir, "src", O_RDONLY | O_CLOEXEC);
		assert_int_equal(xattr_list_read(src, false, 0, &b), 0);
		assert_int_equal(b.n, 0);
		close(src);
	}

	/* a fifo through O_PATH, never opened for reading */
	assert_int_equal(xattr_list_apply(fifo, true, &a), 0);
	assert_int_equal(xattr_list_read(fifo, true, 0, &b), 0);
	assert_true(xattr_list_equal(&a, &b));
	xattr_list_free(&b);

	assert_int_equal(xattr_remove(lnk, true, "trusted.sym"), 0);
	assert_int_equal(xattr_get(lnk, true, "trusted.sym", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(xattr_list_read(lnk, true, XATTR_SKIP_OVERLAY, &b), 0);
	assert_int_equal(b.n, 0);
	xattr_list_free(&a);
	close(lnk);
	close(lnk2);
	close(fifo);
}

/* By name in the parent (xattr_list_read_at): the same list as through an
 * fd, for values past the first small buffer and name lists past it too;
 * a symlink's own xattrs, never its target's; a fifo never opened. */
static void test_read_at(void **state)
{
	struct fixture *f = *state;
	struct xattr_list a = {0}, b = {0};
	static char big[3000];
	char name[64];
	int fd = new_file(f->dir, "src"), many = new_file(f->dir, "many"), lnk;

	if (!require_root("trusted.* xattrs")) {
		close(fd);
		close(many);
		skip();
		return;
	}
	memset(big, 'b', sizeof(big));
	assert_int_equal(xattr_set(fd, false, "user.big", big, sizeof(big)), 0);
	assert_int_equal(xattr_set(fd, false, "user.empty", "", 0), 0);
	assert_int_equal(xattr_set(fd, false, "trusted.overlay.metacopy", "", 0), 0);
	assert_int_equal(xattr_list_read(fd, false, 0, &a), 0);
	assert_int_equal(a.n, 3);
	assert_int_equal(xattr_list_read_at(f->dir, "src", 0, &b), 0);
	assert_true(xattr_list_equal(&a, &b));
	assert_int_equal(find(&b, "user.big")->size, sizeof(big));
	xattr_list_free(&b);
	assert_int_equal(xattr_list_read_at(f->dir, "src", XATTR_SKIP_OVERLAY, &b), 0);
	assert_int_equal(b.n, 2);
	assert_null(find(&b, "trusted.overlay.metacopy"));
	xattr_list_free(&b);
	xattr_list_free(&a);
	/* 30 names of 40-odd bytes: a list longer than 1 KiB */
	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof(name), "user.a-rather-long-name-for-a-list-%03d", i);
		assert_int_equal(xattr_set(many, false, name, bin, sizeof(bin)), 0);
	}
	assert_int_equal(xattr_list_read(many, false, 0, &a), 0);
	assert_int_equal(a.n, 30);
	assert_int_equal(xattr_list_read_at(f->dir, "many", 0, &b), 0);
	assert_true(xattr_list_equal(&a, &b));
	assert_sorted(&b);
	xattr_list_free(&b);

	/* the symlink itself: its one xattr, not the 43 of what it names */
	assert_int_equal(symlinkat("src", f->dir, "sym"), 0);
	lnk = openat(f->dir, "sym", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	assert_true(lnk >= 0);
	assert_int_equal(xattr_set(lnk, true, "trusted.sym", bin, sizeof(bin)), 0);
	assert_int_equal(xattr_list_read_at(f->dir, "sym", 0, &b), 0);
	assert_int_equal(b.n, 1);
	assert_string_equal(b.v[0].name, "trusted.sym");
	xattr_list_free(&b);
	/* a fifo: read without opening it (an open would block) */
	assert_int_equal(mkfifoat(f->dir, "fifo", 0600), 0);
	assert_int_equal(xattr_list_read_at(f->dir, "fifo", 0, &b), 0);
	assert_int_equal(b.n, 0);
	assert_int_equal(xattr_list_read_at(f->dir, "missing", 0, &b), -ENOENT);
	xattr_list_free(&a);
	/* every xattr removed by name: the symlink's own, not its target's */
	assert_int_equal(xattr_remove_all_at(f->dir, "sym"), 0);
	assert_int_equal(xattr_list_read_at(f->dir, "sym", 0, &b), 0);
	assert_int_equal(b.n, 0);
	assert_int_equal(xattr_list_read_at(f->dir, "src", 0, &b), 0);
	assert_int_equal(b.n, 3);
	xattr_list_free(&b);
	assert_int_equal(xattr_remove_all_at(f->dir, "src"), 0);
	assert_int_equal(xattr_list_read(fd, false, 0, &b), 0);
	assert_int_equal(b.n, 0);
	assert_int_equal(xattr_remove_all_at(f->dir, "missing"), -ENOENT);
	close(lnk);
	close(many);
	close(fd);
}

/* Before Linux 6.13 there is no getxattrat/listxattrat: a seccomp filter
 * makes this kernel answer ENOSYS to both, as an older one does, in a
 * child (the filter cannot be lifted).  xattr_list_read_at must then read
 * the same list through an O_PATH fd, a symlink's own included, and
 * xattr_remove_all_at remove them all. */
static int read_at_without_xattrat(int dir, const char *name, const struct xattr_list *want)
{
	struct sock_filter f[] = {
	        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 464, 2, 0), /* getxattrat */
	        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 465, 1, 0), /* listxattrat */
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
	};
	struct sock_fprog prog = {.len = ARRAY_SIZE(f), .filter = f};
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		struct xattr_list got = {0};
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
			_exit(3);
		if (syscall(465, dir, name, AT_SYMLINK_NOFOLLOW, NULL, 0) >= 0 || errno != ENOSYS)
			_exit(4); /* the filter does not work */
		if (xattr_list_read_at(dir, name, 0, &got) < 0)
			_exit(2);
		if (!xattr_list_equal(&got, want))
			_exit(1);
		xattr_list_free(&got);
		/* and removed the same way */
		if (xattr_remove_all_at(dir, name) < 0 || xattr_list_read_at(dir, name, 0, &got) < 0)
			_exit(5);
		_exit(got.n == 0 ? 0 : 6);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_read_at_fallback(void **state)
{
	struct fixture *f = *state;
	struct xattr_list want = {0};
	int fd = new_file(f->dir, "src"), lnk;

	if (!require_root("trusted.* xattrs, seccomp")) {
		close(fd);
		skip();
		return;
	}
	assert_int_equal(xattr_set(fd, false, "user.a", bin, sizeof(bin)), 0);
	assert_int_equal(xattr_set(fd, false, "trusted.overlay.metacopy", "", 0), 0);
	assert_int_equal(xattr_list_read(fd, false, 0, &want), 0);
	assert_int_equal(want.n, 2);
	assert_int_equal(read_at_without_xattrat(f->dir, "src", &want), 0);
	xattr_list_free(&want);
	assert_int_equal(symlinkat("src", f->dir, "sym"), 0);
	lnk = openat(f->dir, "sym", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	assert_true(lnk >= 0);
	assert_int_equal(xattr_set(lnk, true, "trusted.sym", bin, sizeof(bin)), 0);
	assert_int_equal(xattr_list_read(lnk, true, 0, &want), 0);
	assert_int_equal(want.n, 1);
	assert_int_equal(read_at_without_xattrat(f->dir, "sym", &want), 0);
	xattr_list_free(&want);
	close(lnk);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_user_round_trip, setup, teardown),
	        cmocka_unit_test(test_equal_and_hash),
	        cmocka_unit_test_setup_teardown(test_trusted_and_overlay, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_o_path, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_read_at, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_read_at_fallback, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
