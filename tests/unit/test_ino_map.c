/* lib/ino_map.c: the one inode hash table.  Keys are (device, inode):
 * the same inode number on two devices is two keys, inode 0 is a key like
 * any other; a key added twice keeps its first value; every key survives
 * the table growing, checked against a plain array. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ino_map.h"
#include "banned.h"

static void test_add_find(void **state)
{
	struct ino_map m = {0};
	uint64_t *v;

	(void)state;
	assert_null(ino_map_find(&m, 1, 2)); /* empty: no table yet */
	assert_int_equal(ino_map_add(&m, 1, 2, 10, &v), 1);
	assert_int_equal(*v, 10);
	assert_int_equal(ino_map_add(&m, 7, 2, 20, NULL), 1); /* same inode, other device */
	assert_int_equal(ino_map_add(&m, 1, 0, 30, NULL), 1); /* inode 0 */
	assert_int_equal(ino_map_add(&m, 1, 2, 99, &v), 0); /* there: first value kept */
	assert_int_equal(*v, 10);
	*v = 11; /* the value is the caller's to change */
	assert_int_equal(*ino_map_find(&m, 1, 2), 11);
	assert_int_equal(*ino_map_find(&m, 7, 2), 20);
	assert_int_equal(*ino_map_find(&m, 1, 0), 30);
	assert_null(ino_map_find(&m, 7, 0));
	assert_null(ino_map_find(&m, 2, 1));
	assert_int_equal(m.n, 3);
	ino_map_free(&m);
	assert_null(ino_map_find(&m, 1, 2));
	assert_int_equal(m.n, 0);
}

static void test_growth(void **state)
{
	enum { N = 100000 };
	struct ino_map m = {0};

	(void)state;
	/* sequential and strided inode numbers, as filesystems hand out */
	for (uint64_t i = 0; i < N; i++) {
		assert_int_equal(ino_map_add(&m, (dev_t)(i % 3), (ino_t)(i * 4096 + 12), i, NULL), 1);
		assert_true(m.cap >= 2 * m.n);
	}
	for (uint64_t i = 0; i < N; i++) {
		const uint64_t *v = ino_map_find(&m, (dev_t)(i % 3), (ino_t)(i * 4096 + 12));
		assert_non_null(v);
		assert_int_equal(*v, i);
		assert_null(ino_map_find(&m, (dev_t)(i % 3 + 1) % 3, (ino_t)(i * 4096 + 12)));
	}
	assert_int_equal(m.n, N);
	ino_map_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_add_find),
	        cmocka_unit_test(test_growth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
