/* parallel_for: see parallel.h. */
#define _GNU_SOURCE
#include "parallel.h"

#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

/* One run of parallel_for: the next index to hand out and the first error. */
struct parallel_job {
	size_t n;
	int (*fn)(size_t i, void *ud);
	void *ud;
	size_t next; /* atomic */
	int error; /* first error, atomic */
	size_t failed;
};

static void *parallel_worker(void *arg)
{
	struct parallel_job *j = arg;

	for (;;) {
		size_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
		int r, zero = 0;
		if (i >= j->n || __atomic_load_n(&j->error, __ATOMIC_RELAXED))
			break;
		r = j->fn(i, j->ud);
		if (r < 0 && __atomic_compare_exchange_n(&j->error, &zero, r, false, __ATOMIC_SEQ_CST,
		                                         __ATOMIC_SEQ_CST))
			j->failed = i;
	}
	return NULL;
}

int parallel_for(size_t n, unsigned nth, int (*fn)(size_t i, void *ud), void *ud, size_t *ret_failed)
{
	struct parallel_job j = {.n = n, .fn = fn, .ud = ud};
	pthread_t th[64];

	nth = (unsigned)MIN(MIN((size_t)MAX(nth, 1U), n), ARRAY_SIZE(th));
	for (unsigned t = 1; t < nth; t++)
		if (pthread_create(&th[t], NULL, parallel_worker, &j) != 0) {
			nth = t;
			break;
		}
	parallel_worker(&j);
	for (unsigned t = 1; t < nth; t++)
		pthread_join(th[t], NULL);
	*ret_failed = j.failed;
	return j.error;
}

unsigned parallel_jobs(unsigned requested)
{
	return requested ? requested : (unsigned)MAX(1L, sysconf(_SC_NPROCESSORS_ONLN));
}
