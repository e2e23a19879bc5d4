/* The sharing decision (share.h) and the unify driver's use of it: which
 * scanned files are chosen, and what a dry run would store. */
#define _GNU_SOURCE
#include "share.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "lower.h"
#include "object.h"
#include "policy.h"
#include "unify_internal.h"
#include "banned.h"

static int cmp_hash(const void *a, const void *b)
{
	return memcmp(a, b, HASH_LEN);
}

/* Append hash H to S, growing it.  Returns 0 or -ENOMEM. */
static int hash_set_add(struct hash_set *s, const unsigned char *h)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 1024;
		unsigned char *nv = realloc(s->v, nc * HASH_LEN);
		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->cap = nc;
	}
	memcpy(s->v + s->n * HASH_LEN, h, HASH_LEN);
	s->n++;
	return 0;
}

/* The end of both loaders: on R < 0 free SET and return R; else sort SET
 * for hash_set_has, hand it to *RET and return 0. */
static int hash_set_finish(struct hash_set *set, int r, struct hash_set *ret)
{
	if (r < 0) {
		hash_set_free(set);
		return r;
	}
	if (set->n > 1)
		qsort(set->v, set->n, HASH_LEN, cmp_hash);
	*ret = *set;
	return 0;
}

static int pool_hash_cb(const char *name, void *ud)
{
	char hex[HASH_HEX_LEN + 1];
	unsigned char h[HASH_LEN];

	memcpy(hex, name, HASH_HEX_LEN);
	hex[HASH_HEX_LEN] = '\0';
	if (hash_from_hex(hex, h) < 0)
		return 0;
	return hash_set_add(ud, h);
}

bool hash_set_has(const struct hash_set *s, const unsigned char *h)
{
	return s->n && bsearch(h, s->v, s->n, HASH_LEN, cmp_hash);
}

int hash_set_load(struct pool *p, struct hash_set *ret)
{
	struct hash_set set = {0};

	return hash_set_finish(&set, objects_names(p, pool_hash_cb, &set), ret);
}

int hash_set_load_held(struct pool *p, const struct hash_intern *t, struct hash_set *ret)
{
	struct hash_set set = {0};
	int r = 0;

	for (uint32_t idx = 1; idx <= t->n && r == 0; idx++) {
		const unsigned char *h = hash_intern_get(t, idx);
		char hex[HASH_HEX_LEN + 1];

		hash_to_hex(h, hex);
		/* a name that is no regular file is no object (hash_set_load
		 * takes regular files' names only) */
		r = pool_object_stat(p, hex, NULL);
		if (r == -EUCLEAN || r == 0) {
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		r = hash_set_add(&set, h);
	}
	return hash_set_finish(&set, r, ret);
}

void hash_set_free(struct hash_set *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

int share_item_cmp(const void *a, const void *b)
{
	const struct share_item *x = a, *y = b;
	int c = memcmp(x->hash, y->hash, HASH_LEN);
	return c ? c : (x->guest > y->guest) - (x->guest < y->guest);
}

static void item_swap(struct share_item *a, struct share_item *b)
{
	struct share_item t = *a;

	*a = *b;
	*b = t;
}

static void sift_down(struct share_item *v, size_t root, size_t n)
{
	for (;;) {
		size_t c = 2 * root + 1;
		if (c >= n)
			return;
		if (c + 1 < n && share_item_cmp(&v[c], &v[c + 1]) < 0)
			c++;
		if (share_item_cmp(&v[root], &v[c]) >= 0)
			return;
		item_swap(&v[root], &v[c]);
		root = c;
	}
}

/* Sort V in place by share_item_cmp.  A heapsort, not qsort: glibc's qsort
 * is a merge sort with a temporary copy of the whole array, and this array
 * has an item for every hashed file of the run: with the copy it would be
 * the run's peak of memory (48 bytes a file). */
void share_sort(struct share_item *v, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(v, i, n);
	for (size_t end = n; end > 1; end--) {
		item_swap(&v[0], &v[end - 1]);
		sift_down(v, 0, end - 1);
	}
}

void share_decide(struct share_item *v, size_t n, const struct hash_set *pool_set)
{
	share_sort(v, n);
	for (size_t i = 0; i < n;) {
		size_t j = i;
		unsigned distinct = 0;
		bool shared;
		for (; j < n && !memcmp(v[j].hash, v[i].hash, HASH_LEN); j++)
			if (j == i || v[j].guest != v[j - 1].guest)
				distinct++;
		shared = distinct >= 2 || hash_set_has(pool_set, v[i].hash);
		/* (the scan offers no never-class file; refused here too) */
		for (size_t k = i; k < j; k++)
			v[k].chosen = v[k].settle ||
			              (v[k].cls != POLICY_NEVER && (shared || v[k].cls == POLICY_SYSTEM));
		i = j;
	}
}

/* Mark the hashed files of the run's guests that share_decide chooses. */
int share_choose(struct guest_scan *scans, size_t ng, const struct hash_set *pool_set)
{
	struct share_item *v;
	size_t n = 0, cap = 0;

	for (size_t g = 0; g < ng; g++)
		cap += scans[g].n;
	v = malloc((cap ? cap : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t g = 0; g < ng; g++)
		for (size_t i = 0; i < scans[g].n; i++) {
			struct scanned_file *f = &scans[g].files[i];
			if (f->state == SF_HASHED)
				v[n++] = (struct share_item){.hash = sf_hash(&scans[g], f),
				                             .guest = (uint32_t)g,
				                             .cls = f->cls,
				                             .settle = sf_half(&scans[g], f) != NULL,
				                             .ud = f};
		}
	share_decide(v, n, pool_set);
	for (size_t k = 0; k < n; k++)
		if (v[k].chosen)
			((struct scanned_file *)v[k].ud)->state = SF_CHOSEN;
	free(v);
	return 0;
}

/* A dry run: what would be unified, and what the pool would have to store:
 * each content not yet in the pool, counted for the first guest that has
 * it (the link layout may need more: it also keys by metadata). */
int share_estimate(struct guest_scan *scans, size_t ng, const struct hash_set *pool_set)
{
	struct share_item *v = malloc(sizeof(*v));
	size_t nv = 0, cap = 1;

	for (size_t i = 0; i < ng && v; i++)
		for (size_t k = 0; k < scans[i].n; k++) {
			struct scanned_file *f = &scans[i].files[k];
			if (f->state != SF_CHOSEN)
				continue;
			scans[i].res->files_unified += f->n_paths;
			scans[i].res->bytes_unified += (uint64_t)f->m.st.st_size;
			if (hash_set_has(pool_set, sf_hash(&scans[i], f)))
				continue;
			if (nv == cap) {
				struct share_item *nn = realloc(v, 2 * cap * sizeof(*v));
				if (!nn) {
					free(v);
					v = NULL;
					break;
				}
				v = nn;
				cap *= 2;
			}
			v[nv++] = (struct share_item){
			        .hash = sf_hash(&scans[i], f), .guest = (uint32_t)i, .ud = f};
		}
	if (!v)
		return -ENOMEM;
	share_sort(v, nv);
	for (size_t k = 0; k < nv; k++) {
		if (k > 0 && !memcmp(v[k].hash, v[k - 1].hash, HASH_LEN))
			continue;
		scans[v[k].guest].res->new_objects++;
		scans[v[k].guest].res->new_object_bytes +=
		        (uint64_t)((struct scanned_file *)v[k].ud)->m.st.st_size;
	}
	free(v);
	return 0;
}
