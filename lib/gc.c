/* gc: objects no guest needs are deleted.  What a guest needs is known
 * even while its partition is away (failed over to another host): unify
 * records a batch's objects in POOL/guests/NAME/refs before any lower entry
 * points at them, so the record is always a superset of the truth.  On a
 * replica, the objects it received for another host's guests are listed in
 * POOL/held and kept too (SPEC invariant 7 holds on every replica). */
#define _GNU_SOURCE
#include "gc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lower.h"
#include "online.h"
#include "util.h"
#include "banned.h"

struct refset {
	char **v;
	size_t n, cap;
};

static int refset_add(struct refset *s, const char *name)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 4096;
		char **nv = realloc(s->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->cap = nc;
	}
	s->v[s->n] = strdup(name);
	if (!s->v[s->n])
		return -ENOMEM;
	s->n++;
	return 0;
}

static bool refset_has(const struct refset *s, const char *name)
{
	return s->n && bsearch(&name, s->v, s->n, sizeof(*s->v), cmp_strp);
}

static void refset_free(struct refset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

/* Add the guest's recorded refs.  Returns 1 if a record exists, 0 if not,
 * or -errno. */
static int add_recorded(struct pool *p, const char *name, struct refset *s)
{
	struct guest_refs gr;
	int r = pool_guest_read_refs(p, name, &gr), found = r;

	for (size_t i = 0; r >= 0 && i < gr.n; i++)
		r = refset_add(s, gr.v[i]);
	guest_refs_free(&gr);
	return r < 0 ? r : found;
}

/* Add the objects this pool holds for another host (POOL/held, written by
 * replica_commit as a replica receives them).  Returns 0 or -errno. */
static int add_held(struct pool *p, struct refset *s)
{
	struct guest_refs held;
	int r = name_list_read_at(p->fd, "held", &held);

	for (size_t i = 0; r >= 0 && i < held.n; i++)
		r = refset_add(s, held.v[i]);
	guest_refs_free(&held);
	return r < 0 ? r : 0;
}

struct sweep {
	const struct refset *refs;
	bool dry_run;
	bool linked_in_use; /* an object with several links is in use */
	struct gc_result *res;
};

static int sweep_cb(int fan_fd, const char *name, const struct stat *st, void *ud)
{
	struct sweep *sw = ud;

	if (!S_ISREG(st->st_mode))
		return 0;
	if (refset_has(sw->refs, name) || (sw->linked_in_use && st->st_nlink > 1)) {
		sw->res->objects_kept++;
		sw->res->bytes_kept += (uint64_t)st->st_size;
		return 0;
	}
	if (!sw->dry_run && unlinkat(fan_fd, name, 0) < 0 && errno != ENOENT)
		return neg_errno();
	sw->res->objects_deleted++;
	sw->res->bytes_deleted += (uint64_t)st->st_size;
	return 0;
}

int gc_run(struct pool *p, bool dry_run, struct gc_result *ret, char **ret_what)
{
	struct refset refs = {0};
	struct object_map *map = NULL;
	struct gc_result res = {0};
	char **names = NULL;
	int n, r = 0;

	n = pool_guest_names(p, &names);
	if (n < 0)
		return n;
	if (layout_ops_for(p)->refs_by_inode) {
		r = objects_scan(p, NULL, &map, NULL, NULL);
		if (r < 0)
			goto out;
	}
	for (int i = 0; i < n && r >= 0; i++) {
		struct guest *g = NULL;
		_cleanup_close_ int hfd = -1, lfd = -1;
		int recorded = add_recorded(p, names[i], &refs);

		if (recorded < 0) {
			r = recorded;
			break;
		}
		r = pool_guest_load(p, names[i], &g);
		if (r < 0)
			break;
		hfd = guest_open_home(p, g);
		if (hfd >= 0)
			lfd = guest_open_lower(p, g, hfd, false);
		if (lfd >= 0) {
			struct lower_stats ls = {0};
			r = lower_scan(p, lfd, map, false, NULL, NULL, &ls, NULL);
			for (size_t k = 0; r == 0 && k < ls.n_refs; k++)
				r = refset_add(&refs, ls.refs[k]);
			lower_stats_free(&ls);
		} else if (lfd == -ENOENT && hfd >= 0) {
			/* attached and never unified: references nothing */
		} else if (!recorded) {
			*ret_what = strdup(names[i]);
			r = -ENODATA;
		} else {
			res.guests_detached++;
		}
		if (r == 0 && hfd >= 0) {
			/* a lower prepared by unify --online, waiting for the
			 * switch at the next mount: its objects are kept too */
			_cleanup_close_ int nfd = online_open_next(p, g, hfd);
			if (nfd >= 0) {
				struct lower_stats ls = {0};
				r = lower_scan(p, nfd, map, false, NULL, NULL, &ls, NULL);
				for (size_t k = 0; r == 0 && k < ls.n_refs; k++)
					r = refset_add(&refs, ls.refs[k]);
				lower_stats_free(&ls);
			} else if (nfd != -ENOENT) {
				r = nfd;
			}
		}
		guest_free(g);
	}
	if (r == 0)
		r = add_held(p, &refs);
	if (r < 0)
		goto out;
	if (refs.n > 1)
		qsort(refs.v, refs.n, sizeof(*refs.v), cmp_strp);
	{
		struct sweep sw = {&refs, dry_run, layout_ops_for(p)->refs_by_inode, &res};
		r = objects_scan(p, NULL, NULL, sweep_cb, &sw);
	}
	if (r == 0 && !dry_run) {
		r = pool_clean_tmp(p);
		if (r == 0 && syncfs(p->objects_fd) < 0)
			r = neg_errno();
	}
	if (r == 0)
		*ret = res;
out:
	object_map_free(map);
	refset_free(&refs);
	names_free(names);
	return r;
}
