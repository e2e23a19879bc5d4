/* What gc keeps, on a real pool: lib/gc.c's keep-set, and lib/lower.c's
 * reading of a lower layer it takes references from.
 *
 * The keep-set.  Five objects: one in the
 * record of a guest whose home is away (kept, the guest counted as
 * detached), one listed in POOL/held (a replica's objects for another
 * host: kept), two no one names (deleted, but not by a dry run), and one
 * named only by a guest that is attached but never unified (it references
 * nothing: deleted).  A guest with neither a record nor an attached lower
 * layer makes gc refuse (-ENODATA, naming it) and delete nothing.
 *
 * The reading: a link-layout lower layer with an object under three names
 * and another under one: four files, bytes over distinct inodes, each
 * reference once and sorted; a file that is no object is a problem.  (Both
 * layouts through layout_ops: test_layout.) */
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

#include "gc.h"
#include "hash.h"
#include "layout.h"
#include "lower.h"
#include "object.h"
#include "pool.h"
#include "util.h"
#include "walk.h"
#include "tmpdir.h"
#include "pool_fixture.h"
#include "banned.h"

static int setup(void **state)
{
	return fixture_setup(state, "gc");
}

static bool has(struct pool *p, const char *name)
{
	int r = pool_object_stat(p, name, NULL);

	assert_true(r >= 0);
	return r == 1;
}

static void test_keep_set(void **state)
{
	struct fixture *f = *state;
	char pool_path[96], away[96], home[96], held[OBJECT_NAME_MAX + 2], id[256];
	char rec[OBJECT_NAME_MAX], kept[OBJECT_NAME_MAX], loose1[OBJECT_NAME_MAX], loose2[OBJECT_NAME_MAX],
	        unplaced[OBJECT_NAME_MAX];
	char *refs[1], *what = NULL;
	struct gc_result gr;
	struct pool *p = NULL;
	int hfd;

	snprintf(pool_path, sizeof(pool_path), "%s/pool", f->tmp);
	snprintf(away, sizeof(away), "%s/away", f->tmp); /* never created */
	snprintf(home, sizeof(home), "%s/home", f->tmp);
	assert_int_equal(pool_init(pool_path, LAYOUT_LINK), 0);
	assert_int_equal(pool_open(pool_path, POOL_LOCK_EXCLUSIVE, false, &p, NULL), 0);
	make_object(p, f->dir, "recorded by a guest that is away\n", rec);
	make_object(p, f->dir, "held for another host\n", kept);
	make_object(p, f->dir, "no one's 1\n", loose1);
	make_object(p, f->dir, "no one's 2\n", loose2);
	make_object(p, f->dir, "only in an attached guest's upper\n", unplaced);

	/* g-away: home not attached, its record names REC */
	assert_int_equal(pool_guest_register(p, "g-away", away), 0);
	refs[0] = rec;
	assert_int_equal(pool_guest_save_refs(p, "g-away", refs, 1), 0);
	/* POOL/held names KEPT */
	snprintf(held, sizeof(held), "%s\n", kept);
	assert_int_equal(write_file_atomic_at(p->fd, "held", held, strlen(held), 0644), 0);
	/* g-new: attached, never unified (no lower layer, no record) */
	assert_int_equal(mkdir(home, 0700), 0);
	hfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(hfd >= 0);
	snprintf(id, sizeof(id), "pool %s\nguest g-new\n", p->id);
	assert_int_equal(write_file_atomic_at(hfd, HOME_ID, id, strlen(id), 0644), 0);
	assert_int_equal(layout_ops_for(p)->init_home(hfd), 0);
	close(hfd);
	assert_int_equal(pool_guest_register(p, "g-new", home), 0);

	/* a dry run counts and deletes nothing */
	assert_int_equal(gc_run(p, true, &gr, &what), 0);
	assert_int_equal(gr.objects_deleted, 3);
	assert_int_equal(gr.objects_kept, 2);
	assert_int_equal(gr.guests_detached, 1);
	assert_true(has(p, loose1) && has(p, loose2) && has(p, unplaced));

	/* a guest gc knows nothing of: refused, nothing deleted */
	assert_int_equal(pool_guest_register(p, "g-unknown", away), 0);
	assert_int_equal(gc_run(p, false, &gr, &what), -ENODATA);
	assert_non_null(what);
	assert_string_equal(what, "g-unknown");
	free(what);
	what = NULL;
	assert_true(has(p, loose1) && has(p, loose2) && has(p, unplaced));
	assert_int_equal(pool_guest_unregister(p, "g-unknown"), 0);

	/* the real run keeps exactly the record's and held's objects */
	memset(&gr, 0, sizeof(gr));
	assert_int_equal(gc_run(p, false, &gr, &what), 0);
	assert_int_equal(gr.objects_deleted, 3);
	assert_int_equal(gr.objects_kept, 2);
	assert_true(has(p, rec));
	assert_true(has(p, kept));
	assert_false(has(p, loose1));
	assert_false(has(p, loose2));
	assert_false(has(p, unplaced));
	pool_close(p);
}

struct problems {
	int n;
	enum lower_problem kind;
	char path[64];
};

static int on_problem(const struct walk_entry *e, enum lower_problem kind, const char *problem, void *ud)
{
	struct problems *pr = ud;

	(void)problem;
	pr->n++;
	pr->kind = kind;
	snprintf(pr->path, sizeof(pr->path), "%s", e->path);
	return 0;
}

/* Link a name for object NAME at PATH (a file directly in dir). */
static void link_object(struct pool *p, const char *name, int dir, const char *path)
{
	char rel[OBJECT_NAME_MAX + 4];

	assert_int_equal(linkat(p->objects_fd, object_relpath(name, rel), dir, path, 0), 0);
}

/* lib/lower.c reading a link-layout lower layer back: every name counted
 * as a file, bytes over distinct inodes, the references sorted and each
 * once; a file that is no object is the layout's problem, counted. */
static void test_lower_reading(void **state)
{
	struct fixture *f = *state;
	static const char a_text[] = "object a, linked three times\n", b_text[] = "object b\n";
	char pool_path[96], a[OBJECT_NAME_MAX], b[OBJECT_NAME_MAX];
	struct object_map *map = NULL;
	struct lower_stats ls = {0};
	struct problems pr = {0};
	struct pool *p = NULL;
	uint64_t problems = 0;
	int lfd, sub;

	snprintf(pool_path, sizeof(pool_path), "%s/pool", f->tmp);
	assert_int_equal(pool_init(pool_path, LAYOUT_LINK), 0);
	assert_int_equal(pool_open(pool_path, POOL_LOCK_EXCLUSIVE, false, &p, NULL), 0);
	make_object(p, f->dir, a_text, a);
	make_object(p, f->dir, b_text, b);
	assert_true(strcmp(a, b) != 0);
	assert_int_equal(mkdirat(f->dir, "lower", 0755), 0);
	lfd = openat(f->dir, "lower", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(lfd >= 0);
	assert_int_equal(mkdirat(lfd, "d", 0755), 0);
	sub = openat(lfd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(sub >= 0);
	link_object(p, a, lfd, "a1");
	link_object(p, a, sub, "a2");
	link_object(p, a, sub, "a3");
	link_object(p, b, lfd, "b");
	assert_int_equal(objects_scan(p, NULL, &map, NULL, NULL), 0);

	assert_int_equal(lower_scan(p, lfd, map, true, on_problem, &pr, &ls, &problems), 0);
	assert_int_equal(ls.files, 4);
	assert_int_equal(ls.bytes, strlen(a_text) + strlen(b_text)); /* a's three names once */
	assert_int_equal(ls.n_refs, 2);
	assert_string_equal(ls.refs[0], strcmp(a, b) < 0 ? a : b);
	assert_string_equal(ls.refs[1], strcmp(a, b) < 0 ? b : a);
	assert_null(ls.refs[2]);
	assert_int_equal(problems, 0);
	assert_int_equal(pr.n, 0);
	lower_stats_free(&ls);

	/* a plain file (one link, no object) is not a reference */
	assert_int_equal(write_file_atomic_at(sub, "stray", "x", 1, 0644), 0);
	memset(&ls, 0, sizeof(ls));
	assert_int_equal(lower_scan(p, lfd, map, true, on_problem, &pr, &ls, &problems), 0);
	assert_int_equal(problems, 1);
	assert_int_equal(pr.n, 1);
	assert_int_equal(pr.kind, LOWER_UNLINKED);
	assert_string_equal(pr.path, "d/stray");
	assert_int_equal(ls.n_refs, 2);
	lower_stats_free(&ls);

	object_map_free(map);
	close(sub);
	close(lfd);
	pool_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_keep_set, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_lower_reading, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
