/* lib/overlay.c: mount option strings (escaping of ',' ':' '\' in every
 * path, the fixed options), and as root the data-only probe plus a real
 * mount at paths full of separators, found again through mountinfo.  Root
 * parts are skipped when not root, and a failure under CI=true. */
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
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "overlay.h"
#include "util.h"
#define TMPDIR_OWN_FIXTURE
#include "tmpdir.h"
#include "unit.h"
#include "banned.h"

struct fixture {
	char tmp[64];
	char mnt[300]; /* unmounted by teardown if a test failed midway */
	int dir;
};

static int setup(void **state)
{
	_cleanup_free_ struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->dir = tmpdir_make(f->tmp, sizeof(f->tmp), "overlay");
	if (f->dir < 0)
		return -1;
	*state = steal_pointer(&f);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->dir);
	if (f->mnt[0])
		umount2(f->mnt, MNT_DETACH);
	if (tmpdir_remove(f->tmp) < 0)
		return -1;
	free(f);
	return 0;
}

static void test_options(void **state)
{
	char *o;

	(void)state;
	o = overlay_options("/g/meta", "/pool/objects", "/g/upper", "/g/work");
	assert_non_null(o);
	assert_string_equal(o, "lowerdir=/g/meta::/pool/objects,upperdir=/g/upper,workdir=/g/work,"
	                       "redirect_dir=off,index=off,xino=off,metacopy=off");
	free(o);

	/* link layout: no data-only layer */
	o = overlay_options("/pool/roots/g", NULL, "/g/upper", "/g/work");
	assert_non_null(o);
	assert_string_equal(o, "lowerdir=/pool/roots/g,upperdir=/g/upper,workdir=/g/work," OVL_FIXED_OPTIONS);
	assert_null(strstr(o, "::"));
	free(o);

	/* every path escaped on its own */
	o = overlay_options("/l,1:2\\3", "/d:x", "/u,v", "/w\\");
	assert_non_null(o);
	assert_string_equal(o, "lowerdir=/l\\,1\\:2\\\\3::/d\\:x,upperdir=/u\\,v,workdir=/w\\\\,"
	                       "redirect_dir=off,index=off,xino=off,metacopy=off");
	free(o);

	/* nothing but separators, and other bytes left alone */
	o = overlay_options(",,,", ":::", "\\\\", " =\n\xff");
	assert_non_null(o);
	assert_string_equal(o, "lowerdir=\\,\\,\\,::\\:\\:\\:,upperdir=\\\\\\\\,workdir= =\n\xff,"
	                       "redirect_dir=off,index=off,xino=off,metacopy=off");
	free(o);

	/* long paths: the length computation covers every escape */
	{
		char big[3001];
		size_t n;
		memset(big, ',', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		o = overlay_options(big, big, big, big);
		assert_non_null(o);
		n = strlen(o);
		assert_int_equal(n, strlen("lowerdir=::,upperdir=,workdir=,") + strlen(OVL_FIXED_OPTIONS) +
		                            4 * 2 * (sizeof(big) - 1));
		free(o);
	}
}

static void test_probe(void **state)
{
	struct fixture *f = *state;

	if (!require_root("mount, trusted.* xattrs")) {
		skip();
		return;
	}
	/* this kernel (6.5+) serves data-only lower layers */
	assert_int_equal(overlay_probe_data_only(f->dir), 1);
	assert_int_equal(count_entries(f->dir), 0); /* the scratch dir is gone */
	/* twice in a row works (nothing left mounted or behind) */
	assert_int_equal(overlay_probe_data_only(f->dir), 1);
	assert_int_equal(count_entries(f->dir), 0);
}

static void mkdir_in(const char *base, const char *name, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", base, name);
	assert_int_equal(mkdir(out, 0755), 0);
}

static void test_mount_find(void **state)
{
	struct fixture *f = *state;
	char base[256], lower[300], upper[300], work[300], file[320];
	char *mnt = f->mnt;
	_cleanup_free_ char *opts = NULL;
	char *target = NULL;
	int fd;

	if (!require_root("mount")) {
		skip();
		return;
	}
	/* separators and mountinfo-escaped characters in every path */
	mkdir_in(f->tmp, "a,b:c\\d e", base, sizeof(base));
	mkdir_in(base, "low,er", lower, sizeof(lower));
	mkdir_in(base, "up:per", upper, sizeof(upper));
	mkdir_in(base, "wo\\rk", work, sizeof(work));
	mkdir_in(base, "m n\tt", mnt, sizeof(f->mnt));
	snprintf(file, sizeof(file), "%s/f", lower);
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, "lower\n", 6), 0);
	close(fd);

	assert_int_equal(overlay_find_mounts(upper, &target), 0);
	assert_null(target);
	opts = overlay_options(lower, NULL, upper, work);
	assert_non_null(opts);
	assert_int_equal(overlay_mount(opts, mnt), 0);

	snprintf(file, sizeof(file), "%s/f", mnt);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	{
		char buf[16];
		assert_int_equal(read(fd, buf, sizeof(buf)), 6);
		assert_memory_equal(buf, "lower\n", 6);
	}
	close(fd);

	assert_int_equal(overlay_find_mounts(upper, &target), 1);
	assert_non_null(target);
	assert_string_equal(target, mnt);
	free(target);
	target = NULL;
	assert_int_equal(overlay_find_mounts(upper, NULL), 1);
	assert_int_equal(overlay_find_mounts(lower, &target), 0); /* only upperdir counts */
	assert_null(target);

	assert_int_equal(overlay_umount(mnt), 0);
	assert_int_equal(overlay_find_mounts(upper, NULL), 0);
	assert_int_equal(overlay_umount(mnt), -EINVAL); /* not mounted */

	/* a refused mount: the workdir is missing */
	{
		_cleanup_free_ char *bad = NULL;
		char nowork[320];
		snprintf(nowork, sizeof(nowork), "%s/missing", base);
		bad = overlay_options(lower, NULL, upper, nowork);
		assert_true(overlay_mount(bad, mnt) < 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_options),
	        cmocka_unit_test_setup_teardown(test_probe, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_mount_find, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
