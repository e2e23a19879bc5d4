/* lib/hash_intern.c: content hashes stored once.  The same hash always
 * gets the same index and different hashes different ones (also hashes
 * that agree in the first 8 bytes, which pick the slot); every hash reads
 * back from its index across chunk boundaries and the slots' growth; a
 * pointer from hash_intern_get stays valid while the table grows; threads
 * adding the same hashes at once agree on their indices. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hash_intern.h"
#include "banned.h"

/* A hash made from K; when same_prefix, all such hashes share bytes 0..7. */
static void make_hash(uint32_t k, bool same_prefix, unsigned char h[HASH_LEN])
{
	memset(h, 0, HASH_LEN);
	for (unsigned i = 0; i < HASH_LEN; i += 4) {
		uint32_t v = k * 2654435761u + i * 40503u;
		memcpy(h + i, &v, 4);
	}
	if (same_prefix)
		memset(h, 0xab, 8);
	memcpy(h + HASH_LEN - 4, &k, 4); /* distinct for distinct k */
}

static void test_same_and_different(void **state)
{
	struct hash_intern t;
	unsigned char a[HASH_LEN], b[HASH_LEN];
	uint32_t ia, ia2, ib;

	(void)state;
	assert_int_equal(hash_intern_init(&t), 0);
	make_hash(1, false, a);
	make_hash(2, false, b);
	assert_int_equal(hash_intern_add(&t, a, &ia), 0);
	assert_int_not_equal(ia, HASH_NONE);
	assert_int_equal(hash_intern_add(&t, b, &ib), 0);
	assert_int_not_equal(ib, HASH_NONE);
	assert_int_not_equal(ia, ib);
	assert_int_equal(hash_intern_add(&t, a, &ia2), 0);
	assert_int_equal(ia, ia2);
	assert_int_equal(t.n, 2); /* stored once */
	assert_memory_equal(hash_intern_get(&t, ia), a, HASH_LEN);
	assert_memory_equal(hash_intern_get(&t, ib), b, HASH_LEN);
	hash_intern_free(&t);
}

/* Many hashes: past several chunks (4096, 8192, 16384, ... each) and
 * many doublings of the slots; half of them with one 8-byte prefix, so
 * they all start probing at one slot. */
static void test_many(void **state)
{
	enum { N = 70000 };
	struct hash_intern t;
	uint32_t *idx = calloc(N, sizeof(*idx));
	unsigned char h[HASH_LEN];
	const unsigned char *first;

	(void)state;
	assert_non_null(idx);
	assert_int_equal(hash_intern_init(&t), 0);
	make_hash(0, false, h);
	assert_int_equal(hash_intern_add(&t, h, &idx[0]), 0);
	first = hash_intern_get(&t, idx[0]);
	for (uint32_t k = 1; k < N; k++) {
		make_hash(k, k % 2 && k < 3000, h);
		assert_int_equal(hash_intern_add(&t, h, &idx[k]), 0);
	}
	assert_int_equal(t.n, N);
	/* the first chunk did not move */
	make_hash(0, false, h);
	assert_ptr_equal(hash_intern_get(&t, idx[0]), first);
	for (uint32_t k = 0; k < N; k++) {
		uint32_t again;
		make_hash(k, k % 2 && k < 3000, h);
		assert_memory_equal(hash_intern_get(&t, idx[k]), h, HASH_LEN);
		assert_int_equal(hash_intern_add(&t, h, &again), 0);
		assert_int_equal(again, idx[k]);
	}
	assert_int_equal(t.n, N); /* nothing added twice */
	for (uint32_t k = 1; k < N; k++)
		assert_int_not_equal(idx[k], idx[k - 1]);
	hash_intern_free(&t);
	free(idx);
}

struct thread_arg {
	struct hash_intern *t;
	uint32_t *idx;
	unsigned seed;
};

enum { TN = 20000 };

static void *adder(void *ud)
{
	struct thread_arg *a = ud;
	unsigned char h[HASH_LEN];

	/* every thread adds every hash, in its own order */
	for (uint32_t i = 0; i < TN; i++) {
		uint32_t k = (i * a->seed) % TN;
		make_hash(k, false, h);
		if (hash_intern_add(a->t, h, &a->idx[k]) < 0)
			return (void *)1;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct hash_intern t;
	pthread_t th[4];
	struct thread_arg a[4];
	static const unsigned seeds[4] = {1, 7, 13, 19997}; /* prime to TN */

	(void)state;
	assert_int_equal(hash_intern_init(&t), 0);
	for (int i = 0; i < 4; i++) {
		a[i] = (struct thread_arg){.t = &t, .idx = calloc(TN, sizeof(uint32_t)), .seed = seeds[i]};
		assert_non_null(a[i].idx);
		assert_int_equal(pthread_create(&th[i], NULL, adder, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *ret;
		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}
	assert_int_equal(t.n, TN);
	for (uint32_t k = 0; k < TN; k++) {
		unsigned char h[HASH_LEN];
		make_hash(k, false, h);
		for (int i = 1; i < 4; i++)
			assert_int_equal(a[i].idx[k], a[0].idx[k]);
		assert_memory_equal(hash_intern_get(&t, a[0].idx[k]), h, HASH_LEN);
	}
	for (int i = 0; i < 4; i++)
		free(a[i].idx);
	hash_intern_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_same_and_different),
	        cmocka_unit_test(test_many),
	        cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
