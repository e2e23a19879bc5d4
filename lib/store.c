/* The store phase over all guests of a run: half-adopted files settled
 * first, references recorded, then the chosen files in work items on
 * parallel_for threads (store_batch.c), the uppers synced, and each
 * guest's figures. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lower.h"
#include "lowerlist.h"
#include "meta_image.h"
#include "prune.h"
#include "remove_tree.h"
#include "object.h"
#include "parallel.h"
#include "store_internal.h"
#include "unify_internal.h"
#include "banned.h"

/* ---- half-adopted files (link layout, upper on the pool's filesystem) ----
 *
 * The link layout adopts an upper file by giving it a lower entry (a second
 * name of the same inode, in the guest's own lower layer) and then renaming
 * its one upper name into objects/ (apply_batch).  A kill between the two
 * leaves an upper file with one more link than the upper holds: its lower
 * entry at the same path.  That entry is hidden by the upper name, so it is
 * simply removed and the file unified again as usual.
 *
 * Older versions linked the upper file into objects/ first and removed its
 * upper name last: killed in between, the upper file *is* an object, other
 * guests may be linked to it, and the guest writes through it into the
 * pool.  Such a file is found through the pool's inode map and always
 * chosen: if its content and metadata still give the object's name, the
 * store finishes the adoption (lower entry linked to the object, the upper
 * name removed); if not (the guest wrote through it), the wrong name leaves
 * objects/ and the file is copied into the pool like any other
 * (drop_misnamed_objects, before the store threads).  Either way no upper name is left on an object. */
int settle_half_adopted(struct pool *p, struct guest_scan *scans, size_t ng)
{
	struct object_map *map = NULL;
	bool map_read = false;
	int r = 0;

	if (!layout_ops_for(p)->adopt_links_lower)
		return 0;
	for (size_t g = 0; g < ng && r == 0; g++) {
		struct guest_scan *gs = &scans[g];
		if (!gs->same_fs)
			continue;
		for (size_t i = 0; i < gs->n && r == 0; i++) {
			struct scanned_file *f = &gs->files[i];
			const char *name;
			struct stat st;
			if (f->m.st.st_nlink <= f->n_paths)
				continue;
			/* our own lower entries of these paths: hidden, dropped */
			for (uint32_t k = 0; k < f->n_paths && r == 0; k++) {
				_cleanup_close_ int dfd =
				        open_parent_beneath(gs->lower_fd, sf_paths(f)[k], false, &name);
				if (dfd < 0)
					continue;
				if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				    st.st_dev == sf_dev(gs, f) && st.st_ino == f->m.st.st_ino &&
				    unlinkat(dfd, name, 0) < 0)
					r = neg_errno();
			}
			if (r < 0)
				break;
			{
				_cleanup_close_ int dfd =
				        open_parent_beneath(gs->upper_fd, sf_paths(f)[0], false, &name);
				if (dfd < 0 || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
				    st.st_ino != f->m.st.st_ino || st.st_dev != sf_dev(gs, f))
					continue; /* changed: left alone */
				scan_stat_set(&f->m.st, &st);
			}
			if (f->m.st.st_nlink == f->n_paths) {
				if (f->cls != POLICY_NEVER)
					f->state = SF_CANDIDATE;
				continue;
			}
			/* still more links: is this inode an object? */
			if (!map_read) {
				r = objects_scan(p, NULL, &map, NULL, NULL);
				if (r < 0)
					break;
				map_read = true;
			}
			name = object_map_find(map, f->m.st.st_ino);
			if (!name)
				continue; /* links we do not know: left in the upper */
			{
				char *copy = strdup(name);
				r = copy ? sf_set_objname(gs, f, copy) : -ENOMEM;
			}
			f->state = SF_CANDIDATE;
		}
	}
	object_map_free(map);
	return r;
}

/* A half-adopted file (link layout, see settle_half_adopted) whose inode is
 * the object f->half but whose content or metadata no longer give that
 * name: the guest wrote through the shared inode.  The wrong name leaves
 * objects/ (if it still is this inode), so no other file is linked to it
 * again; the lower entries already linked to it keep their view, and fsck
 * reports them as not linked to any object.  The file itself is then
 * copied into the pool like any other.  Returns 0 or -errno (-E_CHANGED:
 * the upper file changed). */
static int drop_misnamed_object(struct pool *p, struct dircache *upper_dc, struct guest_scan *gs,
                                struct scanned_file *f)
{
	char rel[OBJECT_NAME_MAX + 4];
	struct stat st;

	object_relpath(sf_half(gs, f), rel);
	if (fstatat(p->objects_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == sf_dev(gs, f) &&
	    st.st_ino == f->m.st.st_ino && unlinkat(p->objects_fd, rel, 0) < 0)
		return neg_errno();
	(void)sf_set_objname(gs, f, NULL); /* (no allocation: returns 0) */
	return restat_upper(upper_dc, gs, f);
}

/* The wrong names of half-adopted files leave objects/ here, serially,
 * before the store threads start.  Order, and why: a store thread that
 * finds an object name in objects/ links other files (of any guest) to it,
 * so a misnamed object (an inode the guest still writes through) must be
 * gone before the first thread looks; the unlinks are made durable by
 * store_all's syncfs of objects/ that follows, before any lower entry is
 * made.  Killed here: the next run finds each file half-adopted again, or,
 * with its name gone, a file with one link more than the upper holds and
 * no object (its lower entries: settle_half_adopted), and decides again. */
static int drop_misnamed_objects(struct pool *p, struct guest_scan *scans, size_t ng)
{
	const struct layout_ops *ops = layout_ops_for(p);
	int r = 0;

	for (size_t g = 0; g < ng && r == 0; g++) {
		struct guest_scan *gs = &scans[g];
		struct dircache dc;
		bool dc_open = false;

		for (size_t i = 0; i < gs->n && r == 0; i++) {
			struct scanned_file *f = &gs->files[i];
			char name[OBJECT_NAME_MAX];
			struct file_meta fm;

			if (!sf_half(gs, f) || f->state != SF_CHOSEN)
				continue;
			if (!dc_open) {
				dircache_init(&dc, gs->upper_fd, false);
				dc_open = true;
			}
			if (f->xattrs_pending)
				r = read_pending_xattrs(&dc, gs, f);
			if (r == 0) {
				sf_meta_get(gs, f, &fm);
				r = ops->object_name(&fm, name);
			}
			if (r == 0 && strcmp(sf_half(gs, f), name))
				r = drop_misnamed_object(p, &dc, gs, f);
			if (changed_under_us(r) || r == -EUCLEAN) {
				f->state = SF_SKIPPED; /* changed since hashing */
				gs->res->files_skipped += f->n_paths;
				r = 0;
			}
		}
		if (dc_open)
			dircache_release(&dc);
	}
	return r;
}

void store_report(struct store_progress *sp, bool final)
{
	if (!sp->o->progress || (!final && since(&sp->last) < 0.25))
		return;
	clock_gettime(CLOCK_MONOTONIC, &sp->last);
	sp->pr.elapsed = since(&sp->start);
	sp->o->progress(&sp->pr, sp->o->progress_userdata);
}

/* Work for the store threads: ranges of one guest's files.  Ranges, not
 * whole guests, so that both cores stay busy to the end however unequal
 * the guests are.  Threads share only the pool, where two threads making
 * the same object is settled by RENAME_NOREPLACE / EEXIST
 * (content-addressed: either copy is right). */
struct store_item {
	struct guest_scan *gs;
	size_t begin, end;
};

struct store_job {
	struct pool *p;
	struct store_item *items;
	size_t n_items;
	struct store_progress *sp;
	const struct hash_set *pool_set;
	struct replica_session *replicas;
};

static int store_item_run(size_t i, void *ud)
{
	struct store_job *j = ud;
	struct store_item *it = &j->items[i];

	return store_range(j->p, it->gs, j->pool_set, j->replicas, j->sp, it->begin, it->end);
}

/* How many chosen files one work item holds: about four items per
 * thread, within the batch size. */
static size_t item_files(size_t chosen, unsigned nth)
{
	size_t per = chosen / ((size_t)nth * 4) + 1;

	return MIN(MAX(per, (size_t)1024), (size_t)BATCH_FILES);
}

/* The length of PATH's directory part (0 at the top). */
static size_t dir_len(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? (size_t)(slash - path) : 0;
}

/* Whether paths A and B lie in the same directory. */
static bool same_dir(const char *a, const char *b)
{
	size_t len = dir_len(a);

	return len == dir_len(b) && !memcmp(a, b, len);
}

/* Work items of about PER chosen files each, cut where a directory ends
 * (up to 4 * PER in one huge directory): one thread removes a directory's
 * upper copies and so puts its times back alone (dircache_keep_times). */
static int store_items(struct guest_scan *scans, size_t ng, unsigned nth, struct store_item **ret,
                       size_t *ret_n)
{
	size_t chosen = 0, n = 0, cap = 16, per;
	struct store_item *v = malloc(cap * sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t g = 0; g < ng; g++)
		chosen += scans[g].chosen;
	per = item_files(chosen, nth);
	for (size_t g = 0; g < ng; g++) {
		size_t begin = 0, k = 0;
		const char *prev = NULL; /* the item's last path */
		for (size_t i = 0; i <= scans[g].n; i++) {
			const char *path = NULL;
			if (i < scans[g].n) {
				if (scans[g].files[i].state != SF_CHOSEN)
					continue;
				path = sf_paths(&scans[g].files[i])[0];
			}
			if (k && (!path || (k >= per && (k >= 4 * per || !same_dir(path, prev))))) {
				if (n == cap) {
					struct store_item *nv = realloc(v, 2 * cap * sizeof(*v));
					if (!nv) {
						free(v);
						return -ENOMEM;
					}
					v = nv;
					cap *= 2;
				}
				v[n++] = (struct store_item){&scans[g], begin, i};
				k = 0;
			}
			if (!path)
				break;
			if (k++ == 0)
				begin = i;
			prev = path;
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* The pool records a guest's references before anything points at them:
 * one write per guest, of every object the store may make its lower layer
 * name (a superset if some file is skipped; the figures at the end record
 * the exact set).  Files whose hash came from the cache get their xattrs
 * read here, as the link layout's object names depend on them. */
struct refs_job {
	struct pool *p;
	struct guest_scan *scans;
};

static int record_refs(size_t g, void *ud)
{
	struct refs_job *j = ud;
	struct guest_scan *gs = &j->scans[g];
	const struct layout_ops *ops = layout_ops_for(j->p);
	struct dircache dc;
	char(*names)[OBJECT_NAME_MAX] = NULL;
	char **refs = NULL;
	size_t n = 0;
	int r = 0;

	if (!gs->chosen)
		return 0;
	names = malloc(gs->chosen * sizeof(*names));
	refs = malloc(gs->chosen * sizeof(*refs));
	if (!names || !refs) {
		free(names);
		free(refs);
		return -ENOMEM;
	}
	dircache_init(&dc, gs->upper_fd, false);
	for (size_t i = 0; i < gs->n && r == 0; i++) {
		struct scanned_file *f = &gs->files[i];
		if (f->state != SF_CHOSEN)
			continue;
		if (f->xattrs_pending) {
			r = read_pending_xattrs(&dc, gs, f);
			if (changed_under_us(r) || r == -EUCLEAN) {
				f->state = SF_SKIPPED;
				gs->res->files_skipped += f->n_paths;
				gs->chosen--;
				r = 0;
				continue;
			}
			if (r < 0)
				break;
		}
		{
			struct file_meta fm;
			sf_meta_get(gs, f, &fm);
			r = ops->object_name(&fm, names[n]);
		}
		refs[n] = names[n];
		n++;
	}
	dircache_release(&dc);
	if (r == 0 && n)
		r = pool_guest_add_refs(j->p, gs->g->name, refs, n);
	free(names);
	free(refs);
	return r;
}

/* fsync-like barrier for the uppers: each filesystem once. */
static int sync_uppers(struct guest_scan *scans, size_t ng)
{
	dev_t done[64];
	size_t nd = 0;

	for (size_t g = 0; g < ng; g++) {
		struct stat st;
		bool seen = false;
		if (!scans[g].touched)
			continue;
		if (fstat(scans[g].upper_fd, &st) < 0)
			return neg_errno();
		for (size_t k = 0; k < nd; k++)
			seen |= done[k] == st.st_dev;
		if (seen)
			continue;
		if (syncfs(scans[g].upper_fd) < 0)
			return neg_errno();
		if (nd < ARRAY_SIZE(done))
			done[nd++] = st.st_dev;
	}
	return 0;
}

struct finish_job {
	struct pool *p;
	struct guest_scan *scans;
	bool failed; /* the store failed: record what is there, best effort */
};

static int image_will_change(void *ud)
{
	return lower_will_change(ud);
}

/* prune_prepare over the record itself (read-only) stops at its first
 * change, which the working copy must take. */
#define E_NEEDS_COPY 1000
static int needs_copy(void *ud)
{
	struct guest_scan *gs = ud;

	return gs->lower_is_copy ? lower_will_change(gs) : -E_NEEDS_COPY;
}

/* The end of a guest's offline run, a lower layer changed in place (the link
 * layout; the order: prune.h):
 *   1. every upper directory's (and symlink's) lower counterpart gets its
 *      attributes (hidden by it: no view changes), and that is made
 *      durable (syncfs of the lower layer's filesystem: the guest's for
 *      HOME/meta, the pool's for POOL/roots/NAME);
 *   2. what describes the lower layer elsewhere, once it is final and
 *      durable (sync_uppers, fold_finish, 1): HOME/vunify-lower
 *      (layout_ops.describes_lower, kept for this guest): rewritten from the lower layer with its
 * directories' and symlinks' attributes (temp file, fsync, rename).  Killed before the rename: the old
 * description plus the whole upper still show the guest; after: the new one shows what 3 removes;
 *   3. the upper directories that hold nothing of the guest's own go,
 *      children first: the lower shows the same without them.
 * A failed store leaves the description as the batches appended it and
 * the upper as it is.  (The redirect layout: finish_image below.) */
static int finish_lower(struct pool *p, struct guest_scan *gs)
{
	const struct layout_ops *ops = layout_ops_for(p);
	struct prune_list pl = {0};
	uint64_t removed = 0, blocks = 0;
	int changed = 0, r;

	r = prune_prepare(gs->upper_fd, gs->lower_fd, &p->policy, image_will_change, gs, &pl, &changed);
	if (r == 0 && changed)
		r = do_syncfs(gs->lower_fd);
	/* a description kept without replicas (an earlier `replicate`
	 * wrote it) is kept current as well: it must show what 3 removes */
	if (r == 0 && ops->describes_lower && !gs->describe && changed)
		r = lowerlist_exists(gs->home_fd);
	if (r > 0 || (r == 0 && gs->describe && (gs->describe_due || changed)))
		r = lowerlist_write(p, gs->home_fd, gs->lower_fd);
	if (r == 0 && (pl.n || pl.n_links))
		r = prune_apply(gs->upper_fd, &pl, &removed, &blocks);
	prune_list_free(&pl);
	if (r == 0 && removed) {
		gs->g->stats.upper_bytes -= MIN(blocks * 512, gs->g->stats.upper_bytes);
		r = pool_guest_save_stats(p, gs->g);
		gs->res->stats = gs->g->stats;
	}
	return r;
}

/* Write the next image if the working copy changed (or there is none yet:
 * a guest unified before images, or never), then remove a HOME/meta beside
 * it.  Returns 0 or -errno. */
static int commit_image(struct guest_scan *gs, bool changed)
{
	struct stat st;
	int r = meta_image_exists(gs->home_fd);

	if (r < 0)
		return r;
	if (changed || r == 0) {
		r = meta_image_write(gs->lower_fd, gs->home_fd);
		if (r < 0)
			return r;
	}
	gs->lower_changed = false;
	/* stubs beside the image (an older pool's, or what an online switch
	 * left): an image present is the record (pool.h) */
	if (fstatat(gs->home_fd, HOME_META, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		r = remove_tree_at(gs->home_fd, HOME_META);
		if (r == 0)
			r = fsync_dir(gs->home_fd);
	}
	return r;
}

/* The end of a guest's offline run, redirect layout: its lower layer is a private
 * working copy (meta_work_open) and HOME/meta.img the record.  The order,
 * and why a kill -9 after each step leaves the guest's view intact:
 *   0. if the image changes anyway: every upper directory's lower
 *      counterpart takes its attributes, and every upper symlink gets an
 *      equal lower one (prune_prepare, its list dropped), in the working
 *      copy only: all hidden by the upper directories and symlinks, which
 *      are all still there.  So the image of 1 already holds what 3 would
 *      add, and 3 finds nothing to change (the upper copies leave the
 *      directories' times as they were: store_commit_upper), which spares
 *      a second image of the guest.  Nothing on disk changes in 0;
 *   1. the next image, written whole from the working copy (temp name,
 *      fsync, renamed in, HOME fsync'd: commit_image).  Dying before the
 *      rename: the old image, and the upper untouched (every upper-side
 *      step of this run waits for this one), so the old view.  After it:
 *      the new image, which differs from the old one only where the upper
 *      hides it (the entries placed under upper copies still there, the
 *      entries deleted under whiteouts and opaque directories still
 *      there).  Every object it names is durable already (store_range's
 *      step 1) or is an adopter's, named in 2.  Stubs beside it go after
 *      the rename;
 *   2. the upper-side steps, each hiding less of what the image shows:
 *      the whiteouts and opaque marks (fold_finish: the image lacks what
 *      they hid), then adoptions and the upper copies
 *      (store_commit_upper).  Dying in between leaves upper
 *      entries that hide equal entries of the image (or, before an
 *      adoption, an entry naming the object it is about to become); the
 *      next unify removes them;
 *   3. every upper directory's lower counterpart gets its attributes and
 *      the upper symlinks an equal lower one (prune.h), in the working
 *      copy (made now if nothing made one yet), and the image is written
 *      again if that changed it (as 1: all of it hidden by the upper
 *      directories and symlinks);
 *   4. the upper directories and symlinks that hold nothing of the
 *      guest's own go (prune_apply), then syncfs of the upper: the image
 *      shows the same without them.
 * A failed store (any guest) writes no image: the upper is as it was. */
static int finish_image(struct pool *p, struct guest_scan *gs)
{
	struct prune_list pl = {0};
	uint64_t removed = 0, blocks = 0;
	int changed = 0, r;

	/* 0. (only when this image changes anyway) */
	if (gs->lower_changed) {
		r = prune_prepare(gs->upper_fd, gs->lower_fd, &p->policy, image_will_change, gs, &pl,
		                  &changed);
		prune_list_free(&pl); /* (leaves it empty) */
		changed = 0;
		if (r < 0)
			return r;
	}
	/* 1. */
	r = commit_image(gs, gs->lower_changed);
	/* 2. (the opaque marks before the upper copies under them: an
	 *    opaque directory must not hide what its removed copies show) */
	if (r == 0)
		r = fold_finish(gs);
	if (r == 0)
		r = store_commit_upper(p, gs);
	/* 3. */
	if (r == 0)
		r = prune_prepare(gs->upper_fd, gs->lower_fd, &p->policy, needs_copy, gs, &pl, &changed);
	if (r == -E_NEEDS_COPY) {
		/* nothing changed yet: again, on a working copy */
		prune_list_free(&pl); /* (leaves it empty) */
		changed = 0;
		r = lower_will_change(gs);
		if (r == 0)
			r = prune_prepare(gs->upper_fd, gs->lower_fd, &p->policy, image_will_change, gs, &pl,
			                  &changed);
	}
	if (r == 0 && (changed || gs->lower_changed))
		r = commit_image(gs, true);
	/* 4. */
	if (r == 0 && (pl.n || pl.n_links))
		r = prune_apply(gs->upper_fd, &pl, &removed, &blocks);
	if (r == 0 && syncfs(gs->upper_fd) < 0)
		r = neg_errno();
	/* the figures count what left the upper */
	count_add(&gs->removed_blocks, blocks);
	prune_list_free(&pl);
	return r;
}

static int finish_guest(size_t i, void *ud)
{
	struct finish_job *j = ud;
	struct guest_scan *gs = &j->scans[i];
	int r = 0;

	/* redirect: the upper-side steps and the figures follow the image */
	if (gs->lower_image) {
		if (!j->failed && gs->lower_fd >= 0)
			r = finish_image(j->p, gs);
		return r < 0 ? r : finish_guest_stats(j->p, gs, j->failed);
	}
	r = finish_guest_stats(j->p, gs, j->failed);
	if (r == 0 && !j->failed && !gs->online)
		r = finish_lower(j->p, gs);
	return r;
}

int store_all(struct pool *p, struct guest_scan *scans, size_t ng, const struct unify_options *o,
              struct store_progress *sp, const struct hash_set *pool_set, char **ret_what)
{
	struct store_job j = {.p = p, .sp = sp, .pool_set = pool_set, .replicas = o->replicas};
	struct finish_job fj = {.p = p, .scans = scans};
	unsigned nth = parallel_jobs(o->jobs);
	size_t failed = 0;
	int r;

	/* half-adopted files' wrong object names go first, in this thread */
	r = drop_misnamed_objects(p, scans, ng);
	if (r < 0)
		return r;
	for (size_t g = 0; g < ng; g++) {
		scans[g].chosen = 0;
		for (size_t i = 0; i < scans[g].n; i++)
			scans[g].chosen += scans[g].files[i].state == SF_CHOSEN;
		scans[g].touched = scans[g].chosen > 0;
		if (scans[g].touched && (r = lower_will_change(&scans[g])) < 0) {
			*ret_what = strdup(scans[g].g->name);
			return r;
		}
	}
	/* adopted upper files must be durable before objects name them; and
	 * the names objects/ holds already (some maybe renamed in by a run
	 * killed before it synced them) before any lower entry names them */
	r = sync_uppers(scans, ng);
	if (r == 0)
		r = do_syncfs(p->objects_fd);
	if (r == 0) {
		struct refs_job rj = {.p = p, .scans = scans};
		r = parallel_for(ng, nth, record_refs, &rj, &failed);
		if (r < 0) {
			*ret_what = strdup(scans[failed].g->name);
			return r;
		}
	}
	if (r == 0)
		r = store_items(scans, ng, nth, &j.items, &j.n_items);
	if (r < 0)
		return r;
	r = parallel_for(j.n_items, nth, store_item_run, &j, &failed);
	if (r < 0)
		*ret_what = strdup(j.items[failed].gs->g->name);
	free(j.items);
	/* the upper copies' removal, durable before the figures say so */
	if (r == 0)
		r = sync_uppers(scans, ng);
	fj.failed = r < 0;
	{
		size_t f2 = 0;
		int r2 = parallel_for(ng, nth, finish_guest, &fj, &f2);
		if (r == 0 && r2 < 0) {
			r = r2;
			*ret_what = strdup(scans[f2].g->name);
		}
	}
	return r;
}
