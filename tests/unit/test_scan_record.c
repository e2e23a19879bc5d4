/* The unify record's side tables (lib/unify_internal.h, lib/scan.c): the
 * link layout's object names by record index.  A file without a name reads
 * NULL and makes no table; a half name reads as sf_half until the file is
 * placed, then sf_placed_name; names set from several threads at once for
 * different files of one guest all arrive (the table is made once, also
 * when the first names race to make it). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unify_internal.h"
#include "banned.h"

static void test_names(void **state)
{
	struct guest_scan gs = {0};
	struct scanned_file files[3] = {0};

	(void)state;
	gs.files = files;
	gs.n = 3;
	assert_null(sf_half(&gs, &files[0]));
	assert_int_equal(sf_set_objname(&gs, &files[0], NULL), 0);
	assert_null(gs.objnames); /* nothing to keep: no table */
	assert_int_equal(sf_set_objname(&gs, &files[1], strdup("half")), 0);
	assert_non_null(gs.objnames);
	assert_string_equal(sf_half(&gs, &files[1]), "half");
	assert_null(sf_placed_name(&gs, &files[1]));
	assert_null(sf_half(&gs, &files[0]));
	assert_null(sf_half(&gs, &files[2]));
	assert_int_equal(sf_set_objname(&gs, &files[1], strdup("placed")), 0); /* the half one freed */
	files[1].objname_placed = true;
	assert_null(sf_half(&gs, &files[1]));
	assert_string_equal(sf_placed_name(&gs, &files[1]), "placed");
	assert_int_equal(sf_set_objname(&gs, &files[1], NULL), 0);
	assert_null(sf_placed_name(&gs, &files[1]));
	objnames_free(&gs);
	assert_null(gs.objnames);
}

enum { NF = 64, NT = 4, ROUNDS = 300 };

struct arg {
	struct guest_scan *gs;
	pthread_barrier_t *go;
	unsigned t;
};

static void *setter(void *ud)
{
	struct arg *a = ud;

	/* all threads at once: the first names race to make the table */
	pthread_barrier_wait(a->go);
	for (size_t i = a->t; i < NF; i += NT) {
		char *name = malloc(16);
		if (!name)
			return (void *)1;
		snprintf(name, 16, "o%zu", i);
		if (sf_set_objname(a->gs, &a->gs->files[i], name) < 0)
			return (void *)1;
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	for (int round = 0; round < ROUNDS; round++) {
		struct guest_scan gs = {0};
		pthread_barrier_t go;
		pthread_t th[NT];
		struct arg a[NT];

		gs.files = calloc(NF, sizeof(*gs.files));
		assert_non_null(gs.files);
		gs.n = NF;
		assert_int_equal(pthread_barrier_init(&go, NULL, NT), 0);
		for (unsigned t = 0; t < NT; t++) {
			a[t] = (struct arg){.gs = &gs, .go = &go, .t = t};
			assert_int_equal(pthread_create(&th[t], NULL, setter, &a[t]), 0);
		}
		for (unsigned t = 0; t < NT; t++) {
			void *ret;
			assert_int_equal(pthread_join(th[t], &ret), 0);
			assert_null(ret);
		}
		for (size_t i = 0; i < NF; i++) {
			char want[16];
			snprintf(want, sizeof(want), "o%zu", i);
			if (!sf_half(&gs, &gs.files[i]) || strcmp(sf_half(&gs, &gs.files[i]), want))
				fail_msg("round %d: file %zu's name lost (%s)", round, i,
				         sf_half(&gs, &gs.files[i]) ? sf_half(&gs, &gs.files[i]) : "none");
		}
		pthread_barrier_destroy(&go);
		objnames_free(&gs);
		free(gs.files);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
