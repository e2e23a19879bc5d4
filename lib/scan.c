/* The scan: a stat walk of each guest's upper that records its regular
 * files (one record per hard-link group), classifies them by the policy,
 * counts the upper's blocks and folds whiteouts and opaque dirs (fold.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "overlay.h"
#include "parallel.h"
#include "unify_internal.h"
#include "banned.h"

void scanned_file_free(struct scanned_file *f)
{
	struct xattr_list l = scan_xattrs(&f->m);

	if (f->n_paths > 1)
		free(f->paths); /* the names themselves are in the arena */
	xattr_list_free(&l);
}

int sf_set_objname(struct guest_scan *gs, struct scanned_file *f, char *name)
{
	char **t = __atomic_load_n(&gs->objnames, __ATOMIC_ACQUIRE);
	size_t i = (size_t)(f - gs->files);

	if (!t) {
		char **none = NULL;
		if (!name)
			return 0;
		t = calloc(gs->n, sizeof(*t));
		if (!t) {
			free(name);
			return -ENOMEM;
		}
		/* another thread may have made the table first */
		if (!__atomic_compare_exchange_n(&gs->objnames, &none, t, false, __ATOMIC_ACQ_REL,
		                                 __ATOMIC_ACQUIRE)) {
			free(t);
			t = none;
		}
	}
	free(t[i]);
	t[i] = name;
	return 0;
}

void objnames_free(struct guest_scan *gs)
{
	if (!gs->objnames)
		return;
	for (size_t i = 0; i < gs->n; i++)
		free(gs->objnames[i]);
	free(gs->objnames);
	gs->objnames = NULL;
}

/* Chunks grow from 4 KiB to 64 KiB: a guest with few files wastes little
 * of its last chunk, one with many makes few allocations. */
#define ARENA_CHUNK_MIN (4 * 1024)
#define ARENA_CHUNK_MAX (64 * 1024)

void path_arena_free(struct path_arena *a)
{
	for (size_t i = 0; i < a->n_chunks; i++)
		free(a->chunks[i]);
	free(a->chunks);
	*a = (struct path_arena){0};
}

/* A copy of s in the arena, or NULL. */
static char *arena_strdup(struct path_arena *a, const char *s)
{
	size_t l = strlen(s) + 1;
	char *r;

	if (l > a->left) {
		size_t sz = a->n_chunks >= 4 ? ARENA_CHUNK_MAX : ARENA_CHUNK_MIN << a->n_chunks;
		if (sz < l)
			sz = l;
		char **nv = realloc(a->chunks, (a->n_chunks + 1) * sizeof(*nv));
		if (!nv)
			return NULL;
		a->chunks = nv;
		a->cur = malloc(sz);
		if (!a->cur) {
			a->left = 0;
			return NULL;
		}
		a->chunks[a->n_chunks++] = a->cur;
		a->left = sz;
	}
	r = a->cur;
	memcpy(r, s, l);
	a->cur += l;
	a->left -= l;
	return r;
}

/* A file's one name is path0; a hard-link group's names are in the array
 * paths (sf_paths), the first name first. */
static int add_path(struct path_arena *a, struct scanned_file *f, const char *path)
{
	char *copy = arena_strdup(a, path);
	char **np;

	if (!copy)
		return -ENOMEM;
	if (f->n_paths == 0) {
		f->path0 = copy;
		f->n_paths = 1;
		return 0;
	}
	np = realloc(f->n_paths > 1 ? f->paths : NULL, (f->n_paths + 1) * sizeof(*np));
	if (!np)
		return -ENOMEM;
	if (f->n_paths == 1)
		np[0] = f->path0;
	f->paths = np;
	np[f->n_paths++] = copy;
	return 0;
}

static enum policy_class classify(struct pool *p, const char *relpath, enum policy_class parent)
{
	size_t l = strlen(relpath);
	char stackbuf[512];
	char *abs = l + 2 <= sizeof(stackbuf) ? stackbuf : malloc(l + 2);
	enum policy_class c;

	if (!abs)
		return POLICY_NEVER; /* out of memory: the safe answer */
	abs[0] = '/';
	memcpy(abs + 1, relpath, l + 1);
	c = policy_classify(&p->policy, abs, parent);
	if (abs != stackbuf)
		free(abs);
	return c;
}

/* The index of DEV in gs->devs, added if new; -1 when the guest has
 * GUEST_SCAN_DEVS others already. */
static int dev_index(struct guest_scan *gs, dev_t dev)
{
	for (unsigned i = 0; i < gs->n_devs; i++)
		if (gs->devs[i] == dev)
			return (int)i;
	if (gs->n_devs == GUEST_SCAN_DEVS)
		return -1;
	gs->devs[gs->n_devs] = dev;
	return (int)gs->n_devs++;
}

struct scan_ctx {
	struct pool *p;
	struct guest_scan *gs;
};

static int scan_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct scan_ctx *s = ud;
	struct guest_scan *gs = s->gs;
	enum policy_class parent, c;
	struct scanned_file *f;
	int r, dev;

	if (ev == WALK_DIR_POST)
		return 0;
	if (ev == WALK_DIR_PRE || e->st.st_nlink < 2) {
		gs->upper_blocks += (uint64_t)e->st.st_blocks;
	} else {
		r = ino_map_add(&gs->seen_inos, 0, e->st.st_ino, 0, NULL);
		if (r < 0)
			return r;
		if (r)
			gs->upper_blocks += (uint64_t)e->st.st_blocks;
	}
	if (e->depth + 1 > gs->cls_cap) {
		size_t nc = gs->cls_cap ? gs->cls_cap * 2 : 64;
		enum policy_class *nv = realloc(gs->cls, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		gs->cls = nv;
		gs->cls_cap = nc;
	}
	parent = e->depth == 0 ? POLICY_OTHER : gs->cls[e->depth - 1];
	if (ev == WALK_DIR_PRE) {
		char v[4];
		if (e->depth == 0) {
			gs->cls[0] = POLICY_OTHER;
			return 0;
		}
		ssize_t ov = fgetxattr(e->fd, OVL_XATTR_OPAQUE, v, sizeof(v));
		c = classify(s->p, e->path, parent);
		/* A directory renamed with redirect_dir=on reroutes lookups:
		 * not a state vunify's mount options produce; left alone. */
		if (fgetxattr(e->fd, OVL_XATTR_REDIRECT, NULL, 0) >= 0)
			return WALK_SKIP;
		/* Online (the guest is mounted, nothing of its layers is
		 * changed): an opaque directory's files would be hidden by
		 * the mark in the prepared lower too; left in the upper. */
		if (ov == 1 && v[0] == 'y' && gs->online)
			return WALK_SKIP;
		/* An opaque directory hides the lower one: fold it (the lower
		 * entries go now, the mark after that is durable). */
		if (ov == 1 && v[0] == 'y' && gs->normalize) {
			r = fold_opaque_dir(gs, e->path);
			if (r < 0)
				return r;
		}
		gs->cls[e->depth] = c;
		return 0;
	}
	if (gs->normalize) {
		/* a whiteout: the guest deleted what the lower has here */
		r = fold_whiteout(gs, e);
		if (r != 0)
			return r < 0 ? r : 0;
	}
	if (!S_ISREG(e->st.st_mode))
		return 0;
	gs->res->files_scanned++;
	if ((uint64_t)e->st.st_size < s->p->policy.min_size ||
	    (s->p->policy.max_size && (uint64_t)e->st.st_size > s->p->policy.max_size))
		return 0; /* too small to matter, or too big to hash (policy.h) */
	dev = dev_index(gs, e->st.st_dev);
	if (dev < 0)
		return 0; /* below the 257th mount point in one upper: left there */
	c = classify(s->p, e->path, parent);
	if (e->st.st_nlink > 1) {
		uint64_t *idx;
		r = ino_map_add(&gs->links, 0, e->st.st_ino, gs->n, &idx);
		if (r < 0)
			return r;
		if (r == 0) {
			/* another name of a file seen before */
			f = &gs->files[*idx];
			if (c == POLICY_NEVER || f->cls == POLICY_NEVER)
				f->cls = POLICY_NEVER;
			else if (c == POLICY_SYSTEM)
				f->cls = POLICY_SYSTEM;
			return add_path(&gs->arena, f, e->path);
		}
	} else if (c == POLICY_NEVER) {
		return 0;
	}
	if (gs->n == gs->cap) {
		size_t nc = gs->cap ? gs->cap * 2 : 1024;
		struct scanned_file *nv = realloc(gs->files, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		gs->files = nv;
		gs->cap = nc;
	}
	f = &gs->files[gs->n++];
	memset(f, 0, sizeof(*f));
	scan_stat_set(&f->m.st, &e->st);
	f->dev = (uint8_t)dev;
	f->cls = (uint8_t)c;
	return add_path(&gs->arena, f, e->path);
}

struct scan_job {
	struct pool *p;
	struct guest_scan *scans;
	bool normalize; /* not in dry runs */
};

static int scan_guest(size_t i, void *ud)
{
	struct scan_job *j = ud;
	struct guest_scan *gs = &j->scans[i];
	struct scan_ctx s = {.p = j->p, .gs = gs};
	int r;

	gs->normalize = j->normalize && !gs->online;
	r = walk_tree(gs->upper_fd, scan_cb, &s);
	/* the upper's whiteouts and opaque marks go once the lower without
	 * the entries they hide is durable: at once for a lower edited in
	 * place, after the image for a working copy (store.c) */
	if (r == 0 && gs->normalize && !gs->lower_image)
		r = fold_finish(gs);
	if (r < 0)
		return r;
	for (size_t k = 0; k < gs->n; k++) {
		struct scanned_file *f = &gs->files[k];
		f->guest = (uint32_t)i;
		/* A hard-link group is unified whole or not at all.  In the
		 * redirect layout not at all: its names would leave the upper
		 * one unlink at a time, and in between the guest would see
		 * them as two inodes; no rename can switch several names at
		 * once.  (The link layout may show any unified files as one
		 * inode anyway: SPEC invariant 1.) */
		if (f->cls != POLICY_NEVER && f->n_paths == f->m.st.st_nlink &&
		    (f->n_paths == 1 || layout_ops_for(j->p)->unifies_link_groups))
			f->state = SF_CANDIDATE;
	}
	return 0;
}

int scan_all(struct pool *p, struct guest_scan *scans, size_t ng, bool normalize, unsigned nth,
             size_t *ret_failed)
{
	struct scan_job sj = {.p = p, .scans = scans, .normalize = normalize};

	return parallel_for(ng, nth, scan_guest, &sj, ret_failed);
}
