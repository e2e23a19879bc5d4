/* The hash cache file: "vunify-hashes 1\n" then packed little-endian
 * records (struct hashcache_entry, 80 bytes), sorted by inode.  It is only
 * an optimisation: anything unexpected makes it empty, never an error. */
#define _GNU_SOURCE
#include "hashcache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

static const char magic[] = "vunify-hashes 1\n";

static int cmp_ino(const void *a, const void *b)
{
	uint64_t x = ((const struct hashcache_entry *)a)->ino, y = ((const struct hashcache_entry *)b)->ino;
	return (x > y) - (x < y);
}

int hashcache_load(int home_fd, struct hashcache *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, n;
	int r;

	*ret = (struct hashcache){0};
	r = read_file_at(home_fd, HASHCACHE_NAME, (size_t)1 << 32, &buf, &len);
	if (r < 0)
		return r == -ENOMEM ? r : 0;
	if (len < sizeof(magic) - 1 || memcmp(buf, magic, sizeof(magic) - 1) ||
	    (len - (sizeof(magic) - 1)) % sizeof(struct hashcache_entry))
		return 0;
	n = (len - (sizeof(magic) - 1)) / sizeof(struct hashcache_entry);
	if (n == 0)
		return 0;
	ret->v = malloc(n * sizeof(*ret->v));
	if (!ret->v)
		return -ENOMEM;
	memcpy(ret->v, buf + sizeof(magic) - 1, n * sizeof(*ret->v));
	ret->n = ret->cap = n;
	for (size_t i = 1; i < n; i++)
		if (ret->v[i - 1].ino > ret->v[i].ino) {
			qsort(ret->v, n, sizeof(*ret->v), cmp_ino);
			break;
		}
	return 0;
}

const unsigned char *hashcache_find(const struct hashcache *c, const struct stat *st)
{
	struct hashcache_entry key = {.ino = st->st_ino};
	const struct hashcache_entry *e;

	if (!c->n)
		return NULL;
	e = bsearch(&key, c->v, c->n, sizeof(*c->v), cmp_ino);
	if (!e || e->size != (uint64_t)st->st_size || e->mtime_sec != st->st_mtim.tv_sec ||
	    e->mtime_nsec != st->st_mtim.tv_nsec || e->ctime_sec != st->st_ctim.tv_sec ||
	    e->ctime_nsec != st->st_ctim.tv_nsec)
		return NULL;
	return e->hash;
}

int hashcache_add(struct hashcache *c, const struct stat *st, const unsigned char hash[HASH_LEN])
{
	struct hashcache_entry *e;

	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 1024;
		struct hashcache_entry *nv = realloc(c->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->v = nv;
		c->cap = nc;
	}
	e = &c->v[c->n++];
	*e = (struct hashcache_entry){.ino = st->st_ino,
	                              .size = (uint64_t)st->st_size,
	                              .mtime_sec = st->st_mtim.tv_sec,
	                              .mtime_nsec = st->st_mtim.tv_nsec,
	                              .ctime_sec = st->st_ctim.tv_sec,
	                              .ctime_nsec = st->st_ctim.tv_nsec};
	memcpy(e->hash, hash, HASH_LEN);
	return 0;
}

int hashcache_save(int home_fd, struct hashcache *c)
{
	size_t len = sizeof(magic) - 1 + c->n * sizeof(*c->v);
	_cleanup_free_ char *buf = malloc(len);

	if (!buf)
		return -ENOMEM;
	if (c->n > 1)
		qsort(c->v, c->n, sizeof(*c->v), cmp_ino);
	memcpy(buf, magic, sizeof(magic) - 1);
	if (c->n)
		memcpy(buf + sizeof(magic) - 1, c->v, c->n * sizeof(*c->v));
	return write_file_atomic_at(home_fd, HASHCACHE_NAME, buf, len, 0600);
}

void hashcache_free(struct hashcache *c)
{
	free(c->v);
	*c = (struct hashcache){0};
}
