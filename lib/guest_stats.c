/* A guest's figures (guest_stats in pool.h) and the references file: from
 * a walk of its lower layer, or after a unify run from what it placed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lower.h"
#include "object.h"
#include "unify_internal.h"
#include "banned.h"

int guest_refresh_stats(struct pool *p, struct guest *g, int home_fd, const uint64_t *upper_bytes)
{
	struct lower_stats ls = {0};
	struct object_map *map = NULL;
	_cleanup_close_ int lower_fd = -1, upper_fd = -1;
	int r;

	lower_fd = guest_open_lower(p, g, home_fd, false);
	if (lower_fd < 0)
		return lower_fd;
	if (layout_ops_for(p)->refs_by_inode) {
		r = objects_scan(p, NULL, &map, NULL, NULL);
		if (r < 0)
			return r;
	}
	r = lower_scan(p, lower_fd, map, false, NULL, NULL, &ls, NULL);
	object_map_free(map);
	if (r < 0)
		return r;
	g->stats.files_unified = ls.files;
	g->stats.bytes_unified = ls.bytes;
	g->stats.objects_referenced = ls.n_refs;
	if (upper_bytes) {
		g->stats.upper_bytes = *upper_bytes;
	} else {
		upper_fd = openat(home_fd, HOME_UPPER, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r = upper_fd < 0 ? neg_errno() : tree_disk_usage(upper_fd, &g->stats.upper_bytes);
	}
	if (r == 0)
		r = pool_guest_save_refs(p, g->name, ls.refs, ls.n_refs);
	if (r == 0)
		r = pool_guest_save_stats(p, g);
	lower_stats_free(&ls);
	return r;
}

/* Remember the hashes of what stays in the upper. */
static int save_hashcache(struct guest_scan *gs)
{
	struct hashcache c = {0};
	bool all_cached = true;
	int r = 0;

	for (size_t i = 0; i < gs->n && r == 0; i++) {
		struct scanned_file *f = &gs->files[i];
		if (f->state == SF_HASHED) {
			struct stat st;
			sf_stat_get(gs, f, &st);
			r = hashcache_add(&c, &st, sf_hash(gs, f));
			all_cached &= f->xattrs_pending; /* its hash came from the cache */
		}
	}
	/* nothing new to remember: the file on disk already says this */
	if (r == 0 && all_cached && c.n == gs->cache.n) {
		hashcache_free(&c);
		return 0;
	}
	if (r == 0)
		r = hashcache_save(gs->home_fd, &c);
	hashcache_free(&c);
	return r;
}

/* A guest whose lower layer was empty when the run began: its lower layer
 * now holds exactly what this run placed, so figures and references come
 * from memory instead of a walk of the lower layer. */
static int stats_from_run(struct pool *p, struct guest_scan *gs, uint64_t upper)
{
	_cleanup_free_ char **refs = malloc((gs->n + 1) * sizeof(*refs));
	_cleanup_free_ char *hex = NULL; /* the names kept as placed_hex */
	struct guest_stats st = {.upper_bytes = upper};
	size_t n = 0, k = 0, n_hex = 0;
	int r;

	if (!refs)
		return -ENOMEM;
	for (size_t i = 0; i < gs->n; i++)
		n_hex += gs->files[i].placed_hex;
	hex = malloc((n_hex ? n_hex : 1) * (HASH_HEX_LEN + 1));
	if (!hex)
		return -ENOMEM;
	n_hex = 0;
	for (size_t i = 0; i < gs->n; i++) {
		struct scanned_file *f = &gs->files[i];
		if (!scanned_placed(f))
			continue;
		st.files_unified += f->n_paths;
		st.bytes_unified += (uint64_t)f->m.st.st_size;
		if (f->placed_hex) {
			refs[n] = hex + (n_hex++) * (HASH_HEX_LEN + 1);
			hash_to_hex(sf_hash(gs, f), refs[n]);
			n++;
		} else {
			refs[n++] = sf_placed_name(gs, f);
		}
	}
	if (n > 1)
		qsort(refs, n, sizeof(*refs), cmp_strp);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || strcmp(refs[k - 1], refs[i]))
			refs[k++] = refs[i];
	st.objects_referenced = k;
	r = pool_guest_save_refs(p, gs->g->name, refs, k);
	if (r < 0)
		return r;
	gs->g->stats = st;
	return pool_guest_save_stats(p, gs->g);
}

/* A guest's figures and references after the store, and its hash cache. */
int finish_guest_stats(struct pool *p, struct guest_scan *gs, bool failed)
{
	struct unify_guest_result *gr = gs->res;
	uint64_t upper = (gs->upper_blocks - MIN(gs->removed_blocks, gs->upper_blocks)) * 512;
	int r = 0;

	if (gs->online) {
		/* figures and references of the lower the guest still runs
		 * on; the switch records the new ones (record_refs added the
		 * prepared lower's objects to its references already) */
		gr->stats = gs->g->stats;
		return 0;
	}
	if (failed) {
		if (gs->touched)
			(void)guest_refresh_stats(p, gs->g, gs->home_fd, NULL);
		gr->stats = gs->g->stats;
		return 0;
	}
	if (!gr->files_unified && !gr->whiteouts_folded && !gr->opaque_folded) {
		/* the lower layer did not change: only the upper's size */
		if (gs->g->stats.upper_bytes != upper) {
			gs->g->stats.upper_bytes = upper;
			r = pool_guest_save_stats(p, gs->g);
		}
	} else if (gs->lower_was_empty) {
		r = stats_from_run(p, gs, upper);
	} else {
		r = guest_refresh_stats(p, gs->g, gs->home_fd, &upper);
	}
	if (r == 0)
		r = save_hashcache(gs);
	/* the description written afresh (compact) from the lower layer, by
	 * finish_lower once the lower layer is final (store.c) */
	if (gs->describe && (gr->files_unified || gr->whiteouts_folded || gr->opaque_folded))
		gs->describe_due = true;
	gr->stats = gs->g->stats;
	return r;
}
