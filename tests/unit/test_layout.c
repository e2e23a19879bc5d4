/* The two layouts through layout_ops, on a real pool: an object placed in
 * a guest's lower layer is read back by lower_scan (files, bytes, the
 * reference, no problem), opened by open_data with its bytes, located by
 * layout_locate, a foreign lower entry is the layout's bad_ref problem,
 * and gc keeps exactly what a guest references (and, in the link layout,
 * an object linked anywhere else), adopt opens or rebuilds the lower layer
 * (and refuses a home of the other layout), then the lower layer is
 * removed; and the registry of layouts.
 * Needs root (trusted.* xattrs of the redirect layout). */
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

#include "dircache.h"
#include "gc.h"
#include "hash.h"
#include "layout.h"
#include "lower.h"
#include "lowerlist.h"
#include "object.h"
#include "pool.h"
#include "util.h"
#include "tmpdir.h"
#include "pool_fixture.h"
#include "unit.h"
#include "banned.h"

static int setup(void **state)
{
	return fixture_setup(state, "layout");
}

static void put(int dir, const char *name, const char *text)
{
	int fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
}

static void check_layout(struct fixture *f, enum layout_kind kind)
{
	static const char text[] = "bytes of a unified file\n";
	char pool_path[128], home[128], want[256], name[OBJECT_NAME_MAX], orphan[OBJECT_NAME_MAX], buf[64];
	char *paths[] = {(char *)"usr/bin/tool"};
	const struct layout_ops *ops;
	struct guest g = {.name = (char *)"g1"};
	struct layout_location loc;
	struct layout_target t;
	struct lower_stats ls = {0};
	struct object_map *map = NULL;
	struct gc_result gr;
	struct file_meta m, om;
	struct dircache dc;
	struct pool *p = NULL;
	char *what = NULL, *sub = NULL;
	uint64_t problems = 1;
	int hfd, lfd, staging, dfd, fd;
	struct stat st;
	ssize_t n;

	sub = path_join(f->tmp, layout_name(kind));
	assert_non_null(sub);
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(pool_path, sizeof(pool_path), "%s/pool", sub);
	snprintf(home, sizeof(home), "%s/home", sub);
	g.home = home;
	assert_int_equal(pool_init(pool_path, kind), 0);
	assert_int_equal(pool_open(pool_path, POOL_LOCK_EXCLUSIVE, false, &p, NULL), 0);
	ops = layout_ops_for(p);
	assert_int_equal(ops->kind, kind);
	assert_int_equal(mkdir(home, 0700), 0);
	hfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(hfd >= 0);
	snprintf(buf, sizeof(buf), "pool %s\nguest %s\n", p->id, g.name);
	put(hfd, HOME_ID, buf);
	assert_int_equal(ops->init_home(hfd), 0);
	assert_int_equal(mkdirat(hfd, HOME_STAGING, 0700), 0);
	assert_int_equal(pool_guest_register(p, g.name, home), 0);

	/* an object, placed in the guest's lower layer */
	put(hfd, "src", text);
	store_object(p, hfd, "src", &m, name);
	lfd = guest_open_lower(p, &g, hfd, true);
	assert_true(lfd >= 0);
	staging = openat(hfd, HOME_STAGING, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(staging >= 0);
	dircache_init(&dc, lfd, true);
	t = (struct layout_target){.pool = p,
	                           .lower_dc = &dc,
	                           .lower_fd = lfd,
	                           .staging_fd = ops->lower_in_home ? staging : p->tmp_fd};
	assert_int_equal(ops->place(&t, &m, name, paths, 1), 0);
	dircache_release(&dc);

	/* read back: one file, its bytes, one reference, sound */
	if (ops->refs_by_inode)
		assert_int_equal(objects_scan(p, NULL, &map, NULL, NULL), 0);
	assert_int_equal(lower_scan(p, lfd, map, true, NULL, NULL, &ls, &problems), 0);
	assert_int_equal(problems, 0);
	assert_int_equal(ls.files, 1);
	assert_int_equal(ls.bytes, strlen(text));
	assert_int_equal(ls.n_refs, 1);
	assert_string_equal(ls.refs[0], name);
	lower_stats_free(&ls);

	/* the data the lower entry shows */
	dfd = openat(lfd, "usr/bin", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(fstatat(dfd, "tool", &st, AT_SYMLINK_NOFOLLOW), 0);
	fd = ops->open_data(p, dfd, "tool", &st);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	assert_int_equal(n, strlen(text));
	assert_memory_equal(buf, text, strlen(text));
	close(fd);

	/* a lower entry vunify did not make: the layout's bad_ref problem */
	put(dfd, "foreign", "not an object's\n");
	assert_int_equal(lower_scan(p, lfd, map, true, NULL, NULL, &ls, &problems), 0);
	assert_int_equal(problems, 1);
	assert_int_equal(ls.n_refs, 1);
	lower_stats_free(&ls);
	assert_int_equal(unlinkat(dfd, "foreign", 0), 0);
	close(dfd);

	/* adopt: the layout opens the lower layer in the home, or rebuilds
	 * it from the home's description into a staging tree of the pool;
	 * either way it references the object */
	if (ops->describes_lower)
		assert_int_equal(lowerlist_write(p, hfd, lfd), 0);
	for (int commit = 0; commit < 2; commit++) {
		struct adopt_staging as = {.dir_fd = -1};
		char **missing = NULL;
		size_t n_missing = 0;
		int afd = -1;

		assert_int_equal(ops->adopt_open_lower(p, hfd, g.name, &as, &missing, &n_missing, &afd), 0);
		assert_true(afd >= 0);
		assert_int_equal(n_missing, 0);
		assert_int_equal(as.name != NULL, ops->adopt_commit_lower != NULL);
		assert_int_equal(lower_scan(p, afd, map, true, NULL, NULL, &ls, &problems), 0);
		assert_int_equal(problems, 0);
		assert_int_equal(ls.n_refs, 1);
		assert_string_equal(ls.refs[0], name);
		lower_stats_free(&ls);
		close(afd);
		if (as.name) {
			char staged[64];
			snprintf(staged, sizeof(staged), "roots/%s", as.name);
			assert_int_equal(fstatat(p->fd, staged, &st, AT_SYMLINK_NOFOLLOW), 0);
			if (commit) {
				/* in place as the guest's lower layer */
				assert_int_equal(ops->adopt_commit_lower(p, g.name, &as), 0);
				assert_null(as.name);
				snprintf(staged, sizeof(staged), "roots/%s/usr/bin/tool", g.name);
				assert_int_equal(fstatat(p->fd, staged, &st, AT_SYMLINK_NOFOLLOW), 0);
				assert_int_equal(st.st_nlink, 2); /* the object and this */
			} else {
				/* not committed: the staging tree goes */
				adopt_staging_free(&as);
				assert_int_equal(fstatat(p->fd, staged, &st, AT_SYMLINK_NOFOLLOW), -1);
				assert_int_equal(errno, ENOENT);
			}
		}
		adopt_staging_free(&as);
		names_free(missing);
	}
	/* a home of the other layout is refused, nothing staged */
	{
		struct adopt_staging as = {.dir_fd = -1};
		char **missing = NULL;
		size_t n_missing = 0;
		int afd = -1;

		if (ops->describes_lower) {
			assert_int_equal(unlinkat(hfd, HOME_LOWERLIST, 0), 0);
			assert_int_equal(mkdirat(hfd, HOME_META, 0755), 0);
		} else {
			put(hfd, HOME_LOWERLIST, "");
		}
		assert_int_equal(ops->adopt_open_lower(p, hfd, g.name, &as, &missing, &n_missing, &afd),
		                 -EPROTOTYPE);
		assert_null(as.name);
		assert_int_equal(afd, -1);
		if (ops->describes_lower)
			assert_int_equal(unlinkat(hfd, HOME_META, AT_REMOVEDIR), 0);
		else
			assert_int_equal(unlinkat(hfd, HOME_LOWERLIST, 0), 0);
		adopt_staging_free(&as);
	}
	object_map_free(map);

	/* where the lower layer lives */
	assert_int_equal(layout_locate(p, &g, &loc), 0);
	if (kind == LAYOUT_REDIRECT)
		snprintf(want, sizeof(want), "%s/%s", home, HOME_META);
	else
		snprintf(want, sizeof(want), "%s/roots/%s", pool_path, g.name);
	assert_string_equal(loc.lower, want);
	assert_int_equal(loc.in_home, kind == LAYOUT_REDIRECT);
	assert_int_equal(loc.data != NULL, kind == LAYOUT_REDIRECT);
	layout_location_free(&loc);

	/* gc keeps what the guest references and deletes an orphan ... */
	put(hfd, "orphan", "nobody references this\n");
	store_object(p, hfd, "orphan", &om, orphan);
	assert_int_equal(gc_run(p, true, &gr, &what), 0);
	assert_int_equal(gr.objects_kept, 1);
	assert_int_equal(gr.objects_deleted, 1);
	/* ... unless, in the link layout, it is linked elsewhere */
	{
		char rel[OBJECT_NAME_MAX + 4];
		assert_int_equal(linkat(p->objects_fd, object_relpath(orphan, rel), hfd, "orphan.link", 0),
		                 0);
	}
	assert_int_equal(gc_run(p, false, &gr, &what), 0);
	assert_int_equal(gr.objects_kept, ops->refs_by_inode ? 2 : 1);
	assert_int_equal(gr.objects_deleted, ops->refs_by_inode ? 0 : 1);
	assert_int_equal(pool_object_stat(p, name, NULL), 1);
	assert_int_equal(pool_object_stat(p, orphan, NULL), ops->refs_by_inode ? 1 : 0);

	/* the lower layer goes */
	close(lfd);
	assert_int_equal(layout_remove_lower(p, &g, hfd), 0);
	assert_int_equal(guest_open_lower(p, &g, hfd, false), -ENOENT);

	xattr_list_free(&m.xattrs);
	xattr_list_free(&om.xattrs);
	close(staging);
	close(hfd);
	pool_close(p);
	free(sub);
}

/* The registry: names both ways, init's automatic choice, the ops of a
 * pool by layout and format, and what each layout says of itself. */
static void test_registry(void **state)
{
	static const enum layout_kind kinds[] = {LAYOUT_REDIRECT, LAYOUT_LINK};
	enum layout_kind k;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		const struct pool pool = {.layout = kinds[i], .format = POOL_FORMAT};
		const struct layout_ops *ops = layout_ops_for(&pool);

		assert_int_equal(ops->kind, kinds[i]);
		assert_string_equal(ops->name, layout_name(kinds[i]));
		assert_int_equal(layout_from_name(ops->name, &k), 0);
		assert_int_equal(k, kinds[i]);
		/* a layout whose lower layer is not in the home describes it
		 * there, and adopt puts a rebuilt one in place */
		assert_int_equal(ops->describes_lower, !ops->lower_in_home);
		assert_int_equal(ops->adopt_commit_lower != NULL, !ops->lower_in_home);
		assert_non_null(ops->adopt_open_lower);
		/* objects keyed by content carry no guest metadata */
		assert_int_equal(ops->object_metadata, !ops->names_by_content);
	}
	assert_int_equal(layout_from_name("auto", &k), -EINVAL);
	assert_int_equal(layout_from_name("", &k), -EINVAL);
	/* auto: redirect when the kernel mounts data-only layers */
	assert_int_equal(layout_auto(1), LAYOUT_REDIRECT);
	assert_int_equal(layout_auto(0), LAYOUT_LINK);
	assert_int_equal(layout_auto(-EINVAL), LAYOUT_LINK);
	/* format-1 link pools name objects the old way */
	{
		const struct pool v1 = {.layout = LAYOUT_LINK, .format = 1};
		const struct pool v1r = {.layout = LAYOUT_REDIRECT, .format = 1};
		assert_ptr_equal(layout_ops_for(&v1), &layout_link_v1_ops);
		assert_ptr_equal(layout_ops_for(&v1r), &layout_redirect_ops);
		assert_true(layout_link_ops.adopt_links_lower);
		assert_false(layout_redirect_ops.adopt_links_lower);
	}
}

static void test_redirect(void **state)
{
	need_root("trusted.* xattrs");
	check_layout(*state, LAYOUT_REDIRECT);
}

static void test_link(void **state)
{
	check_layout(*state, LAYOUT_LINK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_registry),
	        cmocka_unit_test_setup_teardown(test_redirect, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_link, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
