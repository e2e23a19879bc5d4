/* One store batch of one guest (see unify.h and docs/DESIGN.md, "Crash
 * safety").
 *
 * Why batches: one syncfs per batch instead of one fsync per file keeps
 * the ordering guarantees (objects durable before they are named, names
 * durable before anything points at them, lower entries durable before
 * the upper copy goes) at a fraction of the cost. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "hash.h"
#include "lower.h"
#include "object.h"
#include "parallel.h"
#include "store_internal.h"
#include "unify_internal.h"
#include "banned.h"

/* The batch's pending names, open addressing over pend[] (names are hex
 * digests: their first 16 digits are a fine hash). */
#define PEND_SLOTS (2 * BATCH_FILES)

static size_t name_slot(const char *name)
{
	uint64_t h = 0;

	for (int i = 0; i < 16; i++)
		h = h << 4 | (uint64_t)(name[i] <= '9' ? name[i] - '0' : name[i] - 'a' + 10);
	return (size_t)(h % PEND_SLOTS);
}

static bool pending_has(const struct batch *b, const char *name)
{
	for (size_t k = name_slot(name);; k = (k + 1) % PEND_SLOTS) {
		uint32_t idx = b->slots[k];
		if (idx == UINT32_MAX)
			return false;
		if (!strcmp(b->pend[idx].name, name))
			return true;
	}
}

static void pending_add(struct batch *b, size_t idx)
{
	size_t k = name_slot(b->pend[idx].name);

	while (b->slots[k] != UINT32_MAX)
		k = (k + 1) % PEND_SLOTS;
	b->slots[k] = (uint32_t)idx;
}

static void batch_reset(struct batch *b)
{
	b->n = b->n_pend = 0;
	b->bytes = 0;
	memset(b->slots, 0xff, PEND_SLOTS * sizeof(*b->slots));
}

/* Make sure the object for f exists or is pending in this batch.
 *
 * Adoption (upper and objects/ on one filesystem: the upper file becomes
 * the object, no data copied) is only for a file with one name and one
 * link: its single upper name is renamed into objects/ in one step, so no
 * instant exists where an upper name and an object name share an inode
 * (a guest writing through that upper name would write into the pool).
 * Hard-link groups are copied. */
static int prepare_object(struct apply *a, struct scanned_file *f, struct batch *b, char *name)
{
	struct pool *p = a->p;
	_cleanup_close_ int fd = -1;
	struct pending *pe = &b->pend[b->n_pend];
	struct file_meta fm; /* (the layouts take a struct stat) */
	bool adopt;
	int tfd, r;

	sf_meta_get(a->gs, f, &fm);
	r = a->ops->object_name(&fm, name);
	if (r < 0)
		return r;
	if (sf_half(a->gs, f)) {
		if (!strcmp(sf_half(a->gs, f), name))
			return 0; /* finish: its lower entries link the object it is */
		/* misnamed objects went before the threads started
		 * (store.c, drop_misnamed_objects): changed since */
		return -E_CHANGED;
	}
	if (pending_has(b, name))
		return 0;
	if (a->ops->names_by_content && hash_set_has(a->pool_set, sf_hash(a->gs, f)))
		return 0; /* held before this run: objects are never deleted by unify */
	adopt = a->same_fs && f->n_paths == 1 && f->m.st.st_nlink == 1;
	if (!adopt || a->ops->adopt_links_lower) {
		/* (a stub naming the object, placed before the adoption,
		 * settles an existing object cheaply: the rename fails) */
		r = pool_object_stat(p, name, NULL);
		if (r < 0)
			return r;
		if (r == 1)
			return 0;
	}
	memset(pe, 0, sizeof(*pe));
	if (adopt) {
		pe->adopt = f; /* checked again when it is adopted */
		f->adopting = true;
	} else {
		fd = open_checked(&a->upper_dc, a->gs, f);
		if (fd < 0)
			return fd;
		r = object_write_tmp_with(p, &a->hasher, fd, (uint64_t)f->m.st.st_size, sf_hash(a->gs, f),
		                          pe->tmp, &tfd);
		if (r < 0)
			return r;
		r = a->ops->object_finish(tfd, &fm);
		close(tfd);
		if (r < 0) {
			unlinkat(p->tmp_fd, pe->tmp, 0);
			return r;
		}
	}
	memcpy(pe->name, name, OBJECT_NAME_MAX);
	pending_add(b, b->n_pend);
	b->n_pend++;
	count_add(&a->gs->res->new_objects, 1);
	count_add(&a->gs->res->new_object_bytes, (uint64_t)f->m.st.st_size);
	return 0;
}

/* An object that could not be made: no file of the batch may point at it. */
static void skip_name(struct batch *b, const char *name)
{
	for (size_t i = 0; i < b->n; i++)
		if (!strcmp(b->names[i], name) && b->files[i]->state == SF_CHOSEN)
			b->files[i]->state = SF_SKIPPED;
}

enum place_pass {
	PLACE_ALL, /* redirect layout: every stub, adopted files' too */
	PLACE_ADOPTERS, /* link layout, step 2: files to adopt (place_adopter) */
	PLACE_OTHERS, /* link layout, step 3b: the rest */
};

/* Place the lower entries of the batch's chosen files in PASS. */
static int place_files(struct apply *a, struct batch *b, const struct layout_target *t, enum place_pass pass)
{
	for (size_t i = 0; i < b->n; i++) {
		struct scanned_file *f = b->files[i];
		bool adopters = pass == PLACE_ADOPTERS;
		int r;
		if (f->state != SF_CHOSEN || (pass != PLACE_ALL && f->adopting != adopters))
			continue;
		if (adopters)
			r = place_adopter(a, f);
		else {
			struct file_meta fm;
			sf_meta_get(a->gs, f, &fm);
			r = a->ops->place(t, &fm, b->names[i], sf_paths(f), f->n_paths);
		}
		/* our own links changed the upper inode's ctime: linking the
		 * object that it is (a half-adopted file finished), or
		 * replacing its lower entry after a lost adoption */
		if (r == 0 && (sf_half(a->gs, f) || f->lost_adoption))
			r = restat_upper(&a->upper_dc, a->gs, f);
		if (r == 0 && !scanned_placed(f)) {
			/* most names are the content's hash: kept as a flag */
			char hex[HASH_HEX_LEN + 1];
			hash_to_hex(sf_hash(a->gs, f), hex);
			if (!strcmp(hex, b->names[i])) {
				f->placed_hex = true;
			} else if (sf_objname(a->gs, f) && !strcmp(sf_objname(a->gs, f), b->names[i])) {
				f->objname_placed = true; /* a half-adopted file finished */
			} else {
				char *name = strdup(b->names[i]);
				/* (its half name is not looked at again) */
				r = name ? sf_set_objname(a->gs, f, name) : -ENOMEM;
				if (r == 0)
					f->objname_placed = true;
			}
		}
		if (changed_under_us(r) || r == -EISDIR || r == -EMLINK || r == -EEXIST ||
		    r == -ENAMETOOLONG) {
			f->state = SF_SKIPPED;
			if (adopters)
				skip_name(b, b->names[i]);
			r = 0;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* Step 2 of a replicated batch: every object the batch's files will
 * reference, durable on every replica (one rsync per replica for what it
 * lacks) before any lower entry points at it.  A file whose object some
 * replica lacks is left in the upper: it never leaves it unreplicated. */
static int replicate_batch(struct apply *a, struct batch *b)
{
	_cleanup_free_ char **names = NULL;
	_cleanup_free_ uint64_t *weights = NULL;
	_cleanup_free_ bool *ok = NULL;
	size_t n = 0;
	int r;

	names = malloc((b->n ? b->n : 1) * sizeof(*names));
	weights = malloc((b->n ? b->n : 1) * sizeof(*weights));
	ok = malloc((b->n ? b->n : 1) * sizeof(*ok));
	if (!names || !weights || !ok)
		return -ENOMEM;
	for (size_t i = 0; i < b->n; i++)
		if (b->files[i]->state == SF_CHOSEN) {
			names[n] = b->names[i];
			weights[n++] = b->files[i]->n_paths;
		}
	r = replica_session_push(a->replicas, names, weights, n, ok);
	if (r < 0)
		return r;
	for (size_t i = 0, k = 0; i < b->n; i++)
		if (b->files[i]->state == SF_CHOSEN && !ok[k++])
			b->files[i]->state = SF_SKIPPED;
	return 0;
}

/* Step 3c (link layout, describe): the placed entries recorded in the
 * home's description, durably, before their upper copies go. */
static int describe_batch(struct apply *a, struct batch *b)
{
	_cleanup_free_ const char **names = NULL, **paths = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < b->n; i++)
		if (b->files[i]->state == SF_CHOSEN)
			cap += b->files[i]->n_paths;
	if (cap == 0)
		return 0;
	names = malloc(cap * sizeof(*names));
	paths = malloc(cap * sizeof(*paths));
	if (!names || !paths)
		return -ENOMEM;
	for (size_t i = 0; i < b->n; i++) {
		struct scanned_file *f = b->files[i];
		if (f->state != SF_CHOSEN)
			continue;
		for (uint32_t k = 0; k < f->n_paths; k++) {
			names[n] = b->names[i];
			paths[n++] = sf_paths(f)[k];
		}
	}
	return lowerlist_append(a->gs->home_fd, names, paths, n);
}

/* Apply one batch.  The order, and why a kill -9 after each step leaves
 * every guest's view intact (each path shows its upper copy, or an equal
 * lower entry once the upper copy is gone):
 *  0. (before the store: the pool's existing names were made durable, and
 *     the guest's references recorded: store_all)
 *  1. copied objects durable (syncfs of POOL/tmp), then named, then the
 *     names durable (syncfs of objects/).  Dying here leaves unreferenced
 *     objects or temp files.
 *  1b. objects/ synced even when this batch named nothing: a name another
 *     thread's adoption renamed in may not be durable yet, and this
 *     batch's lower entries are about to depend on it (power loss must not
 *     leave a durable stub or removed upper copy pointing at a name that
 *     never reached the disk).
 *  1c. replicated unify: the objects every chosen file will reference,
 *     durable on every replica (replicate_batch); a file whose object a
 *     replica lacks stays in the upper.  Dying here leaves the replicas
 *     holding objects nothing references yet.
 *  2. lower entries placed and made durable (syncfs of the lower layer).
 *     They are hidden by the upper copies still there.  Link layout: an
 *     adopted file's lower entry is a second name of the upper inode itself
 *     (its own guest's layer only); a re-run finds and drops it.
 *  3. adoption (pool and upper on one filesystem): the one upper name of
 *     the file is renamed into objects/; the guest now sees the lower entry
 *     (the same bytes).  No upper name ever shares an inode with an object.
 *  3a. objects/ synced again if this batch tried an adoption: a file that
 *     did not adopt may name an object renamed in after 1b (by this batch
 *     or, its own rename failing with EEXIST, by another thread), and its
 *     upper copy goes in 4 (power loss must not keep the unlink and lose
 *     the rename).
 *  3b. link layout: other files of the batch are linked to the objects now
 *     named, and the lower layer synced again.
 *  3c. link layout with replicas: the placed entries appended to the
 *     home's description (HOME/vunify-lower, fdatasync'd), so that a host
 *     that replays it after a failover shows them once the upper copies
 *     are gone; dying here, the upper copies still hide them everywhere.
 *  4. only now may the upper copies go, each checked unchanged.  Online
 *     (the guest is mounted; lower_fd is its prepared lower): they stay,
 *     and go at the switch (online.c). */
static int apply_batch(struct apply *a, struct batch *b)
{
	struct pool *p = a->p;
	struct guest_scan *gs = a->gs;
	struct layout_target t = {.pool = p,
	                          .lower_dc = &a->lower_dc,
	                          .lower_fd = gs->lower_fd,
	                          /* staging names on the lower layer's filesystem */
	                          .staging_fd = a->ops->lower_in_home ? gs->staging_fd : p->tmp_fd};
	bool link = a->ops->adopt_links_lower, adopted = false, adopted_any = false;
	int r = 0;

	/* 1. copied objects durable, named, the names durable */
	{
		bool copied = false;
		for (size_t i = 0; i < b->n_pend; i++)
			copied |= !b->pend[i].adopt;
		if (copied)
			r = do_syncfs(p->tmp_fd);
		for (size_t i = 0; i < b->n_pend && r == 0; i++) {
			struct pending *pe = &b->pend[i];
			if (pe->adopt)
				continue;
			r = object_commit(p, pe->tmp, pe->name);
			if (r == -ESTALE || r == -ENOENT) {
				/* changed since hashing: leave it and its twins */
				skip_name(b, pe->name);
				r = 0;
			}
		}
		/* 1b. every name the lower entries will depend on is durable */
		if (r == 0)
			r = do_syncfs(p->objects_fd);
		if (r < 0)
			return r;
	}
	/* 1c. replicated unify: the batch's objects durable on every replica
	 * before any lower entry points at them */
	if (a->replicas) {
		r = replicate_batch(a, b);
		if (r < 0)
			return r;
	}
	/* 2. lower entries (link layout: adopters only, the rest in 3b) */
	r = place_files(a, b, &t, link ? PLACE_ADOPTERS : PLACE_ALL);
	if (r < 0)
		return r;
	if (gs->lower_image) {
		/* a working copy: nothing is durable, nor seen, until the
		 * image of it is renamed in; steps 3 and 4 wait for that
		 * (store_commit_upper) */
		for (size_t i = 0; i < b->n; i++)
			if (b->files[i]->state != SF_CHOSEN)
				count_add(&gs->res->files_skipped, b->files[i]->n_paths);
		return 0;
	}
	r = do_syncfs(gs->lower_fd);
	if (r < 0)
		return r;
	/* 3. adoption: the upper name becomes the object's */
	for (size_t i = 0; i < b->n_pend; i++) {
		struct pending *pe = &b->pend[i];
		if (!pe->adopt || pe->adopt->state != SF_CHOSEN)
			continue;
		adopted_any = true;
		r = adopt_object(a, pe);
		if (r == 1) {
			pe->adopt->adopted = true;
			adopted = true;
		} else if (r == 0 && link) {
			/* an object of that name exists: link the lower entry to
			 * it instead, in 3b (the upper name still hides it) */
			pe->adopt->adopting = false;
			pe->adopt->lost_adoption = true;
		} else if (changed_under_us(r)) {
			/* no object: every entry pointing at it stays hidden
			 * under its upper copy */
			skip_name(b, pe->name);
		} else if (r < 0) {
			return r;
		}
		r = 0;
	}
	/* 3a. the names adoption made durable before any upper copy goes:
	 * files of this batch that did not adopt may name an object another
	 * file (of this batch, or another thread's) renamed in after 1b, and
	 * their upper copies go in 4 */
	if (adopted_any) {
		r = do_syncfs(p->objects_fd);
		if (r < 0)
			return r;
	}
	/* 3b. link layout: the other files link the objects now named */
	if (link) {
		r = place_files(a, b, &t, PLACE_OTHERS);
		if (r == 0)
			r = do_syncfs(gs->lower_fd);
		if (r < 0)
			return r;
	}
	/* 3c. link layout with replicas: the home's description says so too */
	if (gs->describe) {
		r = describe_batch(a, b);
		if (r < 0)
			return r;
	}
	/* 4. only now may the upper copies go */
	for (size_t i = 0; i < b->n; i++) {
		struct scanned_file *f = b->files[i];
		if (f->state != SF_CHOSEN) {
			count_add(&gs->res->files_skipped, f->n_paths);
			continue;
		}
		/* online: the upper copy stays until the switch (online.c) */
		r = gs->online ? 0 : remove_upper(a, f, f->adopted);
		if (r == -ESTALE) {
			r = 0;
			continue;
		}
		if (r < 0)
			return r;
		f->state = SF_DONE;
		count_add(&gs->removed_blocks, (uint64_t)f->m.st.st_blocks);
		count_add(&gs->res->files_unified, f->n_paths);
		count_add(&gs->res->bytes_unified, (uint64_t)f->m.st.st_size);
	}
	if (adopted && !a->ops->object_metadata)
		for (size_t i = 0; i < b->n_pend; i++)
			if (b->pend[i].adopt && b->pend[i].adopt->adopted)
				plain_object(p, &b->pend[i]);
	return 0;
}

/* Steps 3 and 4 of every batch of a guest whose lower layer is a working
 * copy, run once the image of it is the record (store.c, finish_lower):
 * every lower entry the image shows is there, hidden by the upper copies.
 *  3. adoption: each adopter's one upper name is renamed into objects/;
 *     the guest now sees its entry in the image (the same bytes).  Dying
 *     before a rename leaves an image entry naming a missing object,
 *     hidden by the upper copy still there (fsck: a leftover; the next
 *     unify adopts it again).  A file whose adoption failed (changed
 *     since hashing) leaves its object missing: every file of the guest
 *     naming it keeps its upper copy (objects an adoption would make are
 *     named by no other guest's entries: another guest makes its own).
 *     Each adopted object is made plain at once (root, 0444, no xattrs):
 *     no upper name shows its inode any more.
 *  3a. objects/ synced if anything was adopted: a file that did not adopt
 *     may name an object an adoption renamed in, and its upper copy goes
 *     in 4 (power loss must not keep the unlink and lose the rename).
 *  4. the upper copies, each checked unchanged, go; the guest sees the
 *     equal entry of the image.
 * Returns 0 or -errno. */
int store_commit_upper(struct pool *p, struct guest_scan *gs)
{
	struct apply a = {.p = p, .ops = layout_ops_for(p), .gs = gs};
	unsigned char(*failed)[HASH_LEN] = NULL;
	size_t n_failed = 0, cap_failed = 0;
	bool adopted_any = false;
	int r = 0;

	dircache_init(&a.upper_dc, gs->upper_fd, false);
	/* the upper directories keep their times as the copies leave them
	 * (finish_image's lower counterparts were given those times) */
	r = dircache_keep_times(&a.upper_dc);
	/* 3. adoption */
	for (size_t i = 0; i < gs->n && r == 0; i++) {
		struct scanned_file *f = &gs->files[i];
		struct pending pe = {.adopt = f};
		if (f->state != SF_CHOSEN || !f->adopting || !scanned_placed(f))
			continue;
		/* (the redirect layout: an object's name is its hash) */
		hash_to_hex(sf_hash(gs, f), pe.name);
		adopted_any = true;
		r = adopt_object(&a, &pe);
		if (r == 1) {
			/* no upper name shows that inode any more: a plain
			 * object at once (a kill before this leaves one that
			 * fsck --repair puts right) */
			f->adopted = true;
			if (!a.ops->object_metadata)
				plain_object(p, &pe);
			r = 0;
		} else if (changed_under_us(r)) {
			if (n_failed == cap_failed) {
				size_t nc = cap_failed ? 2 * cap_failed : 16;
				void *nv = realloc(failed, nc * sizeof(*failed));
				if (!nv) {
					r = -ENOMEM;
					break;
				}
				failed = nv;
				cap_failed = nc;
			}
			memcpy(failed[n_failed++], sf_hash(gs, f), HASH_LEN);
			r = 0;
		}
	}
	/* 3a. the names adoption made durable before any upper copy goes */
	if (r == 0 && adopted_any)
		r = do_syncfs(p->objects_fd);
	/* 4. the upper copies */
	for (size_t i = 0; i < gs->n && r == 0; i++) {
		struct scanned_file *f = &gs->files[i];
		bool lost = !scanned_placed(f);
		if (f->state != SF_CHOSEN)
			continue;
		for (size_t k = 0; k < n_failed && !lost; k++)
			lost = !memcmp(failed[k], sf_hash(gs, f), HASH_LEN);
		if (lost) {
			/* its entry is missing, or names a missing object */
			f->state = SF_SKIPPED;
			count_add(&gs->res->files_skipped, f->n_paths);
			continue;
		}
		r = remove_upper(&a, f, f->adopted);
		if (r == -ESTALE) {
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		f->state = SF_DONE;
		count_add(&gs->removed_blocks, (uint64_t)f->m.st.st_blocks);
		count_add(&gs->res->files_unified, f->n_paths);
		count_add(&gs->res->bytes_unified, (uint64_t)f->m.st.st_size);
	}
	free(failed);
	dircache_release(&a.upper_dc);
	return r;
}

static int batch_alloc(struct batch *b)
{
	b->files = malloc(BATCH_FILES * sizeof(*b->files));
	b->names = malloc(BATCH_FILES * sizeof(*b->names));
	b->pend = malloc(BATCH_FILES * sizeof(*b->pend));
	b->slots = malloc(PEND_SLOTS * sizeof(*b->slots));
	if (!b->files || !b->names || !b->pend || !b->slots)
		return -ENOMEM;
	batch_reset(b);
	return 0;
}

static void batch_free(struct batch *b)
{
	free(b->files);
	free(b->names);
	free(b->pend);
	free(b->slots);
}

/* Unify the chosen files among gs->files[begin, end), in batches. */
static int apply_range(struct apply *a, struct batch *b, struct store_progress *sp, size_t begin, size_t end)
{
	struct guest_scan *gs = a->gs;
	int r = 0;

	for (size_t i = begin; i <= end && r == 0; i++) {
		struct scanned_file *f = i < end ? &gs->files[i] : NULL;
		if (f && f->state == SF_CHOSEN) {
			r = prepare_object(a, f, b, b->names[b->n]);
			if (changed_under_us(r)) {
				f->state = SF_SKIPPED; /* changed since hashing */
				count_add(&gs->res->files_skipped, f->n_paths);
				r = 0;
				continue;
			}
			if (r == -ENOSPC || r == -EDQUOT) {
				/* finish what already fits, then report */
				int r2 = b->n ? apply_batch(a, b) : 0;
				batch_reset(b);
				if (r2 < 0)
					r = r2;
				break;
			}
			if (r < 0)
				break;
			b->files[b->n++] = f;
			b->bytes += (uint64_t)f->m.st.st_size;
			count_add(&sp->pr.files_done, 1);
			count_add(&sp->pr.bytes_done, (uint64_t)f->m.st.st_size);
			if (pthread_equal(pthread_self(), sp->reporter))
				store_report(sp, false);
		}
		if (b->n && (!f || b->n == BATCH_FILES || b->bytes >= BATCH_BYTES)) {
			r = apply_batch(a, b);
			batch_reset(b);
		}
	}
	if (r < 0) {
		/* unnamed temp objects of this batch are garbage */
		for (size_t i = 0; i < b->n_pend; i++)
			if (!b->pend[i].adopt)
				unlinkat(a->p->tmp_fd, b->pend[i].tmp, 0);
		batch_reset(b);
	}
	return r;
}

/* Unify the chosen files among gs->files[begin, end) (one store work
 * item), in batches. */
int store_range(struct pool *p, struct guest_scan *gs, const struct hash_set *pool_set,
                struct replica_session *replicas, struct store_progress *sp, size_t begin, size_t end)
{
	struct apply a = {.p = p,
	                  .ops = layout_ops_for(p),
	                  .gs = gs,
	                  .pool_set = pool_set,
	                  /* replicated: objects are copied into the pool, hashed
	                   * on the way, so that what reaches the replicas is
	                   * named by what was written (never adopted in place) */
	                  .same_fs = gs->same_fs && !replicas,
	                  .replicas = replicas};
	struct batch b = {0};
	int r = hasher_init(&a.hasher);

	if (r < 0)
		return r;
	dircache_init(&a.upper_dc, gs->upper_fd, false);
	dircache_init(&a.lower_dc, gs->lower_fd, true);
	/* (a directory is one work item's: store_items; only a hard-link
	 * group's other names may lie in another item's directory, whose
	 * thread may then take and keep the time this one's unlink set) */
	r = dircache_keep_times(&a.upper_dc);
	if (r == 0)
		r = batch_alloc(&b);
	if (r == 0)
		r = apply_range(&a, &b, sp, begin, end);
	batch_free(&b);
	dircache_release(&a.upper_dc);
	dircache_release(&a.lower_dc);
	hasher_release(&a.hasher);
	return r;
}
