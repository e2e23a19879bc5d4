/* Page-cache measurement.  cachestat(2) answers per file without mapping
 * it; mincore(2) needs a mapping but works on every kernel. */
#define _GNU_SOURCE
#include "page_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lower.h"
#include "util.h"
#include "banned.h"

#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif

struct cachestat_range {
	uint64_t off, len;
};
struct cachestat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

struct refcount {
	char **names; /* all guests' refs, sorted, with repeats */
	size_t n, cap;
};

static int load_refs(struct pool *p, struct refcount *rc)
{
	char **guests = NULL;
	int n = pool_guest_names(p, &guests), r = 0;

	if (n < 0)
		return n;
	for (int i = 0; i < n && r == 0; i++) {
		struct guest_refs gr;
		if (pool_guest_read_refs(p, guests[i], &gr) < 0)
			continue;
		for (size_t k = 0; k < gr.n && r == 0; k++) {
			if (rc->n == rc->cap) {
				size_t nc = rc->cap ? rc->cap * 2 : 4096;
				char **nv = realloc(rc->names, nc * sizeof(*nv));
				if (!nv) {
					r = -ENOMEM;
					break;
				}
				rc->names = nv;
				rc->cap = nc;
			}
			rc->names[rc->n] = strdup(gr.v[k]);
			if (!rc->names[rc->n])
				r = -ENOMEM;
			else
				rc->n++;
		}
		guest_refs_free(&gr);
	}
	names_free(guests);
	if (r == 0 && rc->n > 1)
		qsort(rc->names, rc->n, sizeof(*rc->names), cmp_strp);
	return r;
}

/* Number of guests referencing NAME (refs are unique per guest). */
static size_t ref_count(const struct refcount *rc, const char *name)
{
	size_t lo = 0, hi = rc->n, c = 0;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (strcmp(rc->names[mid], name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo + c < rc->n && !strcmp(rc->names[lo + c], name))
		c++;
	return c;
}

static int cached_pages(int fd, uint64_t size, bool *use_cachestat, uint64_t *ret)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char *vec;
	size_t pages;
	void *map;

	if (*use_cachestat) {
		struct cachestat_range range = {0, 0};
		struct cachestat st = {0};
		if (syscall(__NR_cachestat, fd, &range, &st, 0) == 0) {
			*ret = st.nr_cache;
			return 0;
		}
		if (errno != ENOSYS && errno != EOPNOTSUPP)
			return neg_errno();
		*use_cachestat = false;
	}
	if (size == 0) {
		*ret = 0;
		return 0;
	}
	pages = (size_t)((size + (uint64_t)page - 1) / (uint64_t)page);
	map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return neg_errno();
	vec = malloc(pages);
	if (!vec) {
		munmap(map, (size_t)size);
		return -ENOMEM;
	}
	if (mincore(map, (size_t)size, vec) < 0) {
		int r = neg_errno();
		free(vec);
		munmap(map, (size_t)size);
		return r;
	}
	*ret = 0;
	for (size_t i = 0; i < pages; i++)
		*ret += vec[i] & 1;
	free(vec);
	munmap(map, (size_t)size);
	return 0;
}

struct mem_scan {
	struct memory_info *info;
	const struct refcount *rc;
	bool use_cachestat;
	uint64_t page;
};

static int mem_cb(int fan_fd, const char *name, const struct stat *st, void *ud)
{
	struct mem_scan *m = ud;
	_cleanup_close_ int fd = -1;
	uint64_t pages = 0;
	size_t guests;
	int r;

	if (!S_ISREG(st->st_mode))
		return 0;
	guests = ref_count(m->rc, name);
	if (guests >= 2)
		m->info->shared_objects++;
	fd = openat(fan_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	r = cached_pages(fd, (uint64_t)st->st_size, &m->use_cachestat, &pages);
	if (r < 0)
		return r;
	if (!pages)
		return 0;
	m->info->objects_cached++;
	m->info->cached_bytes += pages * m->page;
	if (guests >= 2)
		m->info->shared_cached_bytes += pages * m->page;
	return 0;
}

int pool_memory(struct pool *p, struct memory_info *ret)
{
	struct refcount rc = {0};
	struct memory_info info = {0};
	struct mem_scan m = {
	        .info = &info, .rc = &rc, .use_cachestat = true, .page = (uint64_t)sysconf(_SC_PAGESIZE)};
	int r = load_refs(p, &rc);

	if (r == 0)
		r = objects_scan(p, NULL, NULL, mem_cb, &m);
	for (size_t i = 0; i < rc.n; i++)
		free(rc.names[i]);
	free(rc.names);
	if (r < 0)
		return r;
	info.method = m.use_cachestat ? "cachestat" : "mincore";
	*ret = info;
	return 0;
}
