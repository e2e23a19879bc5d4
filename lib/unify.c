/* The unify pipeline (see unify.h for the phases and the safety rule).
 *
 * Why batches: one syncfs per batch instead of one fsync per file keeps
 * the ordering guarantees (objects durable before they are named, names
 * durable before anything points at them, lower entries durable before
 * the upper copy goes) at a fraction of the cost. */
#define _GNU_SOURCE
#include "unify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "dircache.h"
#include "hashcache.h"
#include "layout.h"
#include "lower.h"
#include "lowerlist.h"
#include "object.h"
#include "overlay.h"
#include "remove.h"
#include "replica.h"
#include "util.h"
#include "walk.h"
#include "banned.h"

#define BATCH_FILES 8192
#define BATCH_BYTES (512ULL << 20)

enum uf_state {
	UF_IGNORED, /* never-class, incomplete link group, overlay-internal */
	UF_CANDIDATE, /* to be hashed */
	UF_HASHED,
	UF_CHOSEN,
	UF_DONE,
	UF_SKIPPED,
};

struct ufile {
	char **paths;
	uint32_t n_paths;
	uint8_t cls;
	uint8_t state;
	bool adopted; /* its first upper name was renamed into the pool */
	bool adopting; /* its upper file is to become the object (prepare_object) */
	bool lost_adoption; /* link layout: the object existed; relinked in 3b */
	char *half; /* link layout: the object its upper inode already is (a
	             * half-adopted file, settle_half_adopted) */
	bool xattrs_pending; /* hash came from the cache; xattrs not read yet */
	char *placed; /* object its lower entries point at, once placed */
	uint32_t guest;
	struct file_meta m;
};

/* Counters several store threads add to. */
static void count_add(uint64_t *c, uint64_t v)
{
	__atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

static void count_sub(uint64_t *c, uint64_t v)
{
	__atomic_fetch_sub(c, v, __ATOMIC_RELAXED);
}

/* Run fn(i) for every i < n on up to NTH threads, the caller's among
 * them.  Stops handing out work at the first error, which it returns
 * (its i in *ret_failed). */
struct pfor {
	size_t n;
	int (*fn)(size_t i, void *ud);
	void *ud;
	size_t next; /* atomic */
	int error; /* first error, atomic */
	size_t failed;
};

static void *pfor_worker(void *arg)
{
	struct pfor *j = arg;

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

static int parallel_for(size_t n, unsigned nth, int (*fn)(size_t i, void *ud), void *ud, size_t *ret_failed)
{
	struct pfor j = {.n = n, .fn = fn, .ud = ud};
	pthread_t th[64];

	nth = (unsigned)MIN(MIN((size_t)MAX(nth, 1U), n), ARRAY_SIZE(th));
	for (unsigned t = 1; t < nth; t++)
		if (pthread_create(&th[t], NULL, pfor_worker, &j) != 0) {
			nth = t;
			break;
		}
	pfor_worker(&j);
	for (unsigned t = 1; t < nth; t++)
		pthread_join(th[t], NULL);
	*ret_failed = j.failed;
	return j.error;
}

static unsigned jobs_for(const struct unify_options *o)
{
	return o->jobs ? o->jobs : (unsigned)MAX(1L, sysconf(_SC_NPROCESSORS_ONLN));
}

/* ---- normalize: fold what overlayfs left in the upper into the lower ----
 *
 * A guest that ran leaves whiteouts (0:0 character devices, or empty files
 * with trusted.overlay.whiteout in a directory marked opaque="x") and
 * opaque directories (opaque="y") in its upper.  Each hides lower entries.
 * We delete the hidden lower entries first, make that durable, and only
 * then drop the whiteout or the opaque mark: in between, the whiteout hides
 * nothing, so the view never changes. */

struct norm {
	int lower_fd;
	char **paths; /* whiteouts, then (flag bit in kinds) opaque dirs */
	unsigned char *kinds;
	size_t n, cap;
	uint64_t whiteouts, opaques;
};

enum { NORM_WHITEOUT, NORM_OPAQUE };

struct ginfo {
	struct guest *g;
	int home_fd, upper_fd, lower_fd, staging_fd;
	struct ufile *files;
	size_t n, cap;
	size_t *imap; /* open addressing over files[] for st_nlink > 1 */
	size_t imap_cap, imap_n;
	enum policy_class *cls; /* by depth */
	size_t cls_cap;
	bool normalize; /* fold whiteouts/opaque dirs (not in dry runs) */
	struct norm nm; /* what the scan folded */
	bool lower_was_empty; /* before this run: its lower is exactly what we place */
	uint64_t upper_blocks; /* st_blocks of the upper as scanned */
	uint64_t removed_blocks; /* of the upper copies unify removed */
	struct ino_set seen_inos; /* hard-linked inodes counted once */
	struct hashcache cache; /* hashes remembered from the last run */
	struct unify_guest_result *res;
	/* the store phase: */
	size_t chosen; /* files to unify */
	bool touched; /* the store changes its layers */
	bool same_fs; /* upper and objects/ on one filesystem */
	bool describe; /* link layout: keep HOME/vunify-lower (lowerlist.h) */
};

static void ufile_free(struct ufile *f)
{
	free(f->placed);
	free(f->half);
	for (uint32_t i = 0; i < f->n_paths; i++)
		free(f->paths[i]);
	free(f->paths);
	xattr_list_free(&f->m.xattrs);
}

static void ginfo_free(struct ginfo *gi)
{
	for (size_t i = 0; i < gi->n; i++)
		ufile_free(&gi->files[i]);
	free(gi->files);
	free(gi->imap);
	free(gi->cls);
	free(gi->seen_inos.v);
	hashcache_free(&gi->cache);
	for (size_t i = 0; i < gi->nm.n; i++)
		free(gi->nm.paths[i]);
	free(gi->nm.paths);
	free(gi->nm.kinds);
	if (gi->home_fd >= 0)
		close(gi->home_fd);
	if (gi->upper_fd >= 0)
		close(gi->upper_fd);
	if (gi->lower_fd >= 0)
		close(gi->lower_fd);
	if (gi->staging_fd >= 0)
		close(gi->staging_fd);
	guest_free(gi->g);
}

static int norm_record(struct norm *nm, const char *path, unsigned char kind)
{
	if (nm->n == nm->cap) {
		size_t nc = nm->cap ? nm->cap * 2 : 64;
		char **np = realloc(nm->paths, nc * sizeof(*np));
		unsigned char *nk;
		if (!np)
			return -ENOMEM;
		nm->paths = np;
		nk = realloc(nm->kinds, nc);
		if (!nk)
			return -ENOMEM;
		nm->kinds = nk;
		nm->cap = nc;
	}
	nm->paths[nm->n] = strdup(path);
	if (!nm->paths[nm->n])
		return -ENOMEM;
	nm->kinds[nm->n++] = kind;
	return 0;
}

/* Remove whatever the lower layer has at PATH. */
static int lower_remove(int lower_fd, const char *path)
{
	const char *name;
	int dfd = open_parent_beneath(lower_fd, path, false, &name), r;

	if (dfd == -ENOENT || dfd == -ENOTDIR)
		return 0; /* nothing there */
	if (dfd < 0)
		return dfd;
	r = remove_tree_at(dfd, name);
	close(dfd);
	return r;
}

static bool dir_has_xwhiteouts(int parent_fd)
{
	char v[4];
	ssize_t n = fgetxattr(parent_fd, OVL_XATTR_OPAQUE, v, sizeof(v));
	return n == 1 && v[0] == 'x';
}

static int is_xwhiteout(const struct walk_entry *e)
{
	_cleanup_close_ int fd = -1;

	if (!S_ISREG(e->st.st_mode) || e->st.st_size != 0 || !dir_has_xwhiteouts(e->parent_fd))
		return 0;
	fd = open_regular_at(e->parent_fd, e->name, O_RDONLY | O_NONBLOCK, NULL);
	if (fd == -ESTALE || fd == -ELOOP)
		return 0; /* no longer the empty file the walk saw */
	if (fd < 0)
		return fd;
	return fgetxattr(fd, OVL_XATTR_WHITEOUT, NULL, 0) >= 0;
}

/* ---- scan ---- */

static size_t ino_hash(ino_t ino, size_t cap)
{
	return (size_t)(ino * 0x9E3779B97F4A7C15ULL) & (cap - 1);
}

static int imap_grow(struct ginfo *gi)
{
	size_t nc = gi->imap_cap ? gi->imap_cap * 2 : 256;
	size_t *nv = malloc(nc * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	for (size_t i = 0; i < nc; i++)
		nv[i] = SIZE_MAX;
	for (size_t i = 0; i < gi->imap_cap; i++) {
		size_t idx = gi->imap[i], h;
		if (idx == SIZE_MAX)
			continue;
		h = ino_hash(gi->files[idx].m.st.st_ino, nc);
		while (nv[h] != SIZE_MAX)
			h = (h + 1) & (nc - 1);
		nv[h] = idx;
	}
	free(gi->imap);
	gi->imap = nv;
	gi->imap_cap = nc;
	return 0;
}

static int add_path(struct ufile *f, const char *path)
{
	char **np = realloc(f->paths, (f->n_paths + 1) * sizeof(*np));

	if (!np)
		return -ENOMEM;
	f->paths = np;
	np[f->n_paths] = strdup(path);
	if (!np[f->n_paths])
		return -ENOMEM;
	f->n_paths++;
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

struct scan_ctx {
	struct pool *p;
	struct ginfo *gi;
};

static int scan_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct scan_ctx *s = ud;
	struct ginfo *gi = s->gi;
	enum policy_class parent, c;
	struct ufile *f;
	int r;

	if (ev == WALK_DIR_POST)
		return 0;
	if (ev == WALK_DIR_PRE || e->st.st_nlink < 2) {
		gi->upper_blocks += (uint64_t)e->st.st_blocks;
	} else {
		r = ino_set_add(&gi->seen_inos, e->st.st_ino);
		if (r < 0)
			return r;
		if (r)
			gi->upper_blocks += (uint64_t)e->st.st_blocks;
	}
	if (e->depth + 1 > gi->cls_cap) {
		size_t nc = gi->cls_cap ? gi->cls_cap * 2 : 64;
		enum policy_class *nv = realloc(gi->cls, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		gi->cls = nv;
		gi->cls_cap = nc;
	}
	parent = e->depth == 0 ? POLICY_OTHER : gi->cls[e->depth - 1];
	if (ev == WALK_DIR_PRE) {
		char v[4];
		if (e->depth == 0) {
			gi->cls[0] = POLICY_OTHER;
			return 0;
		}
		ssize_t ov = fgetxattr(e->fd, OVL_XATTR_OPAQUE, v, sizeof(v));
		c = classify(s->p, e->path, parent);
		/* A directory renamed with redirect_dir=on reroutes lookups:
		 * not a state vunify's mount options produce; left alone. */
		if (fgetxattr(e->fd, OVL_XATTR_REDIRECT, NULL, 0) >= 0)
			return WALK_SKIP;
		/* An opaque directory hides the lower one: fold it (the lower
		 * entries go now, the mark after that is durable). */
		if (ov == 1 && v[0] == 'y' && gi->normalize) {
			r = lower_remove(gi->lower_fd, e->path);
			if (r == 0)
				r = norm_record(&gi->nm, e->path, NORM_OPAQUE);
			if (r < 0)
				return r;
		}
		gi->cls[e->depth] = c;
		return 0;
	}
	if (gi->normalize) {
		/* a whiteout: the guest deleted what the lower has here */
		r = S_ISCHR(e->st.st_mode) && e->st.st_rdev == 0 ? 1 : is_xwhiteout(e);
		if (r < 0)
			return r;
		if (r) {
			r = lower_remove(gi->lower_fd, e->path);
			return r < 0 ? r : norm_record(&gi->nm, e->path, NORM_WHITEOUT);
		}
	}
	if (!S_ISREG(e->st.st_mode))
		return 0;
	gi->res->files_scanned++;
	if ((uint64_t)e->st.st_size < s->p->policy.min_size ||
	    (s->p->policy.max_size && (uint64_t)e->st.st_size > s->p->policy.max_size))
		return 0; /* too small to matter, or too big to hash (policy.h) */
	c = classify(s->p, e->path, parent);
	if (e->st.st_nlink > 1) {
		size_t h;
		if ((gi->imap_n + 1) * 2 > gi->imap_cap && (r = imap_grow(gi)) < 0)
			return r;
		h = ino_hash(e->st.st_ino, gi->imap_cap);
		while (gi->imap[h] != SIZE_MAX) {
			f = &gi->files[gi->imap[h]];
			if (f->m.st.st_ino == e->st.st_ino) {
				if (c == POLICY_NEVER || f->cls == POLICY_NEVER)
					f->cls = POLICY_NEVER;
				else if (c == POLICY_SYSTEM)
					f->cls = POLICY_SYSTEM;
				return add_path(f, e->path);
			}
			h = (h + 1) & (gi->imap_cap - 1);
		}
		gi->imap[h] = gi->n;
		gi->imap_n++;
	} else if (c == POLICY_NEVER) {
		return 0;
	}
	if (gi->n == gi->cap) {
		size_t nc = gi->cap ? gi->cap * 2 : 1024;
		struct ufile *nv = realloc(gi->files, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		gi->files = nv;
		gi->cap = nc;
	}
	f = &gi->files[gi->n++];
	memset(f, 0, sizeof(*f));
	f->m.st = e->st;
	f->cls = (uint8_t)c;
	return add_path(f, e->path);
}

/* Is (dir_fd, name) with stat ST a whiteout: a 0:0 character device, or an
 * empty regular file carrying trusted.overlay.whiteout? */
static bool still_whiteout(int dir_fd, const char *name, const struct stat *st)
{
	_cleanup_close_ int fd = -1;

	if (S_ISCHR(st->st_mode))
		return st->st_rdev == 0;
	if (!S_ISREG(st->st_mode) || st->st_size != 0)
		return false;
	fd = open_regular_at(dir_fd, name, O_RDONLY | O_NONBLOCK, NULL);
	return fd >= 0 && fgetxattr(fd, OVL_XATTR_WHITEOUT, NULL, 0) >= 0;
}

/* After the scan found them: drop the whiteouts and opaque marks whose
 * lower entries it removed, once that removal is durable. */
static int normalize_finish(struct ginfo *gi)
{
	struct norm nm = gi->nm;
	int r = 0;

	memset(&gi->nm, 0, sizeof(gi->nm));
	if (nm.n)
		r = syncfs(gi->lower_fd) < 0 ? neg_errno() : 0;
	/* the home's description of the lower layer says so too, durably,
	 * before the whiteouts that hide the deleted entries go */
	if (r == 0 && nm.n && gi->describe) {
		const char **none = calloc(nm.n, sizeof(*none));
		r = none ? lowerlist_append(gi->home_fd, none, (const char *const *)nm.paths, nm.n) : -ENOMEM;
		free(none);
	}
	for (size_t i = 0; i < nm.n && r == 0; i++) {
		const char *name;
		struct stat st;
		_cleanup_close_ int dfd = open_parent_beneath(gi->upper_fd, nm.paths[i], false, &name);
		if (dfd < 0) {
			r = dfd;
			break;
		}
		if (nm.kinds[i] == NORM_WHITEOUT) {
			/* only if it still is a whiteout: a file recreated at
			 * that path since the scan is the guest's */
			if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    still_whiteout(dfd, name, &st) && unlinkat(dfd, name, 0) < 0)
				r = neg_errno();
			nm.whiteouts++;
		} else {
			_cleanup_close_ int fd =
			        openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0 || (fremovexattr(fd, OVL_XATTR_OPAQUE) < 0 && errno != ENODATA))
				r = neg_errno();
			nm.opaques++;
		}
	}
	if (r == 0 && nm.n)
		r = syncfs(gi->upper_fd) < 0 ? neg_errno() : 0;
	gi->res->whiteouts_folded = nm.whiteouts;
	gi->res->opaque_folded = nm.opaques;
	for (size_t i = 0; i < nm.n; i++)
		free(nm.paths[i]);
	free(nm.paths);
	free(nm.kinds);
	return r;
}

struct scan_job {
	struct pool *p;
	struct ginfo *gis;
	bool normalize; /* not in dry runs */
};

static int scan_guest(size_t i, void *ud)
{
	struct scan_job *j = ud;
	struct ginfo *gi = &j->gis[i];
	struct scan_ctx s = {.p = j->p, .gi = gi};
	int r;

	gi->normalize = j->normalize;
	r = walk_tree(gi->upper_fd, scan_cb, &s);
	if (r == 0 && j->normalize)
		r = normalize_finish(gi);
	if (r < 0)
		return r;
	for (size_t k = 0; k < gi->n; k++) {
		struct ufile *f = &gi->files[k];
		f->guest = (uint32_t)i;
		/* A hard-link group is unified whole or not at all.  In the
		 * redirect layout not at all: its names would leave the upper
		 * one unlink at a time, and in between the guest would see
		 * them as two inodes; no rename can switch several names at
		 * once.  (The link layout may show any unified files as one
		 * inode anyway: SPEC invariant 1.) */
		if (f->cls != POLICY_NEVER && f->n_paths == f->m.st.st_nlink &&
		    (f->n_paths == 1 || j->p->layout == LAYOUT_LINK))
			f->state = UF_CANDIDATE;
	}
	return 0;
}

static int cmp_hash(const void *a, const void *b)
{
	return memcmp(a, b, HASH_LEN);
}

struct hash_set {
	unsigned char *v;
	size_t n, cap;
};

static int pool_hash_cb(const char *name, void *ud)
{
	struct hash_set *s = ud;
	char hex[HASH_HEX_LEN + 1];

	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 4096;
		unsigned char *nv = realloc(s->v, nc * HASH_LEN);
		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->cap = nc;
	}
	memcpy(hex, name, HASH_HEX_LEN);
	hex[HASH_HEX_LEN] = '\0';
	if (hash_from_hex(hex, s->v + s->n * HASH_LEN) == 0)
		s->n++;
	return 0;
}

static bool hash_set_has(const struct hash_set *s, const unsigned char *h)
{
	return s->n && bsearch(h, s->v, s->n, HASH_LEN, cmp_hash);
}

/* The content hashes the pool holds (sorted; the caller frees .v). */
static int load_pool_set(struct pool *p, struct hash_set *ret)
{
	struct hash_set set = {0};
	int r = objects_names(p, pool_hash_cb, &set);

	if (r < 0) {
		free(set.v);
		return r;
	}
	if (set.n > 1)
		qsort(set.v, set.n, HASH_LEN, cmp_hash);
	*ret = set;
	return 0;
}

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
 * (prepare_object).  Either way no upper name is left on an object. */
static int settle_half_adopted(struct pool *p, struct ginfo *gis, size_t ng)
{
	struct object_map *map = NULL;
	bool map_read = false;
	int r = 0;

	if (p->layout != LAYOUT_LINK)
		return 0;
	for (size_t g = 0; g < ng && r == 0; g++) {
		struct ginfo *gi = &gis[g];
		if (!gi->same_fs)
			continue;
		for (size_t i = 0; i < gi->n && r == 0; i++) {
			struct ufile *f = &gi->files[i];
			const char *name;
			struct stat st;
			if (f->m.st.st_nlink <= f->n_paths)
				continue;
			/* our own lower entries of these paths: hidden, dropped */
			for (uint32_t k = 0; k < f->n_paths && r == 0; k++) {
				_cleanup_close_ int dfd =
				        open_parent_beneath(gi->lower_fd, f->paths[k], false, &name);
				if (dfd < 0)
					continue;
				if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				    st.st_dev == f->m.st.st_dev && st.st_ino == f->m.st.st_ino &&
				    unlinkat(dfd, name, 0) < 0)
					r = neg_errno();
			}
			if (r < 0)
				break;
			{
				_cleanup_close_ int dfd =
				        open_parent_beneath(gi->upper_fd, f->paths[0], false, &name);
				if (dfd < 0 || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
				    st.st_ino != f->m.st.st_ino || st.st_dev != f->m.st.st_dev)
					continue; /* changed: left alone */
				f->m.st = st;
			}
			if (f->m.st.st_nlink == f->n_paths) {
				if (f->cls != POLICY_NEVER)
					f->state = UF_CANDIDATE;
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
			f->half = strdup(name);
			if (!f->half)
				r = -ENOMEM;
			f->state = UF_CANDIDATE;
		}
	}
	object_map_free(map);
	return r;
}

/* ---- hash ---- */

struct hash_job {
	struct ufile **items;
	size_t n;
	uint64_t bytes_total;
	const struct unify_options *o;
	struct timespec start, last;
	size_t next; /* atomic */
	int error; /* first fatal error, atomic */
	struct ufile *failed; /* the file it concerns, if any */
	uint64_t bytes;
	struct ginfo *guests;
	pthread_t reporter; /* the thread that may call o->progress */
};

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec &&
	       (a->st_mode & S_IFMT) == (b->st_mode & S_IFMT);
}

/* Open the upper copy of f and check it is still what the scan saw. */
/* Point dc at ROOT (one cache per guest layer). */
static void dc_root(struct dircache *dc, int root, bool mkdirs)
{
	if (dc->root_fd != root) {
		dircache_release(dc);
		dircache_init(dc, root, mkdirs);
	}
}

/* Open the upper copy of f and check it is still what the scan saw. */
static int open_checked(struct dircache *dc, struct ufile *f)
{
	const char *name;
	struct stat st;
	int dfd = dircache_parent(dc, f->paths[0], &name), fd;

	if (dfd < 0)
		return dfd;
	/* O_NOATIME: reading for the hash must not change the atime the stub
	 * is to carry, nor dirty every inode (EPERM unless owner or root).
	 * open_regular_at never opens what is no longer a regular file (a
	 * device node swapped in since the scan). */
	fd = open_regular_at(dfd, name, O_RDONLY | O_NONBLOCK | O_NOATIME, &st);
	if (fd < 0)
		return fd;
	if (!same_file(&st, &f->m.st)) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/* A metacopy or redirect xattr in the upper means the file's data or name
 * lives elsewhere: not plain data to unify (-EUCLEAN, list freed).  Other
 * overlay xattrs (origin, which every copy-up gets, nlink, impure) are
 * bookkeeping that ends with the upper copy: dropped from the list. */
static int keep_guest_xattrs(struct xattr_list *l)
{
	size_t k = 0;

	for (size_t i = 0; i < l->n; i++) {
		if (!strcmp(l->v[i].name, OVL_XATTR_METACOPY) || !strcmp(l->v[i].name, OVL_XATTR_REDIRECT)) {
			xattr_list_free(l);
			return -EUCLEAN;
		}
	}
	for (size_t i = 0; i < l->n; i++) {
		if (!strncmp(l->v[i].name, "trusted.overlay.", 16)) {
			free(l->v[i].name);
			free(l->v[i].value);
		} else {
			l->v[k++] = l->v[i];
		}
	}
	l->n = k;
	return 0;
}

static int hash_one(struct dircache *dc, struct hasher *h, struct ufile *f)
{
	_cleanup_close_ int fd = open_checked(dc, f);
	int r;

	if (fd < 0)
		return fd;
	r = xattr_list_read(fd, false, 0, &f->m.xattrs);
	if (r == 0)
		r = keep_guest_xattrs(&f->m.xattrs);
	if (r < 0)
		return r;
	return hasher_fd(h, fd, (uint64_t)f->m.st.st_size, f->m.hash);
}

static double since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void hash_report(struct hash_job *j, bool final)
{
	struct unify_progress pr = {.phase = "hash"};

	if (!j->o->progress || (!final && since(&j->last) < 0.25))
		return;
	clock_gettime(CLOCK_MONOTONIC, &j->last);
	pr.files_done = MIN(__atomic_load_n(&j->next, __ATOMIC_RELAXED), j->n);
	pr.files_total = j->n;
	pr.bytes_done = __atomic_load_n(&j->bytes, __ATOMIC_RELAXED);
	pr.bytes_total = j->bytes_total;
	pr.elapsed = since(&j->start);
	j->o->progress(&pr, j->o->progress_userdata);
}

/* One hashing thread: takes files from the shared index until none is
 * left; the calling thread (j->reporter) also reports progress.  Errors go
 * to j->error, so it returns 0 for parallel_for. */
static int hash_loop(size_t thread, void *ud)
{
	struct hash_job *j = ud;
	bool reporter = pthread_equal(pthread_self(), j->reporter);
	struct dircache dc;
	struct hasher h;
	int zero = 0;

	(void)thread;
	if (hasher_init(&h) < 0) {
		__atomic_compare_exchange_n(&j->error, &zero, -ENOMEM, false, __ATOMIC_RELAXED,
		                            __ATOMIC_RELAXED);
		return 0;
	}
	dircache_init(&dc, -1, false);
	for (;;) {
		size_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
		struct ufile *f;
		int r;
		if (i >= j->n || __atomic_load_n(&j->error, __ATOMIC_RELAXED))
			break;
		f = j->items[i];
		dc_root(&dc, j->guests[f->guest].upper_fd, false);
		r = hash_one(&dc, &h, f);
		if (r == 0) {
			f->state = UF_HASHED;
			__atomic_fetch_add(&j->bytes, (uint64_t)f->m.st.st_size, __ATOMIC_RELAXED);
		} else if (r == -ESTALE || r == -EUCLEAN || r == -ENOENT || r == -ELOOP || r == -ENOTDIR) {
			f->state = UF_IGNORED; /* changed or not ours: leave it in the upper */
		} else {
			/* a read error (-EIO) is the disk's, not a change: the
			 * run fails naming the file */
			zero = 0;
			if (__atomic_compare_exchange_n(&j->error, &zero, r, false, __ATOMIC_SEQ_CST,
			                                __ATOMIC_SEQ_CST))
				j->failed = f;
		}
		if (reporter)
			hash_report(j, false);
	}
	dircache_release(&dc);
	hasher_release(&h);
	return 0;
}

/* On failure *ret_what names the file ("GUEST:/PATH") when the error
 * concerns one. */
static int hash_all(struct ginfo *guests, size_t ng, const struct unify_options *o, uint64_t *ret_bytes,
                    char **ret_what)
{
	struct hash_job j = {.guests = guests, .o = o, .reporter = pthread_self()};
	size_t cap = 0, failed;

	for (size_t g = 0; g < ng; g++)
		cap += guests[g].n;
	j.items = malloc((cap ? cap : 1) * sizeof(*j.items));
	if (!j.items)
		return -ENOMEM;
	for (size_t g = 0; g < ng; g++)
		for (size_t i = 0; i < guests[g].n; i++)
			if (guests[g].files[i].state == UF_CANDIDATE) {
				struct ufile *f = &guests[g].files[i];
				const unsigned char *h = hashcache_find(&guests[g].cache, &f->m.st);
				if (h) {
					memcpy(f->m.hash, h, HASH_LEN);
					f->state = UF_HASHED;
					f->xattrs_pending = true;
					continue;
				}
				j.items[j.n++] = f;
				j.bytes_total += (uint64_t)guests[g].files[i].m.st.st_size;
			}
	clock_gettime(CLOCK_MONOTONIC, &j.start);
	j.last = j.start;
	/* one task per thread: each hashes files until none is left */
	(void)parallel_for(jobs_for(o), jobs_for(o), hash_loop, &j, &failed);
	hash_report(&j, true);
	free(j.items);
	*ret_bytes = j.bytes;
	if (j.error && j.failed &&
	    asprintf(ret_what, "%s:/%s", guests[j.failed->guest].g->name, j.failed->paths[0]) < 0)
		*ret_what = NULL;
	return j.error;
}

/* ---- decide ---- */

struct hg {
	const unsigned char *hash;
	uint32_t guest;
	struct ufile *f;
};

static int cmp_hg(const void *a, const void *b)
{
	const struct hg *x = a, *y = b;
	int c = memcmp(x->hash, y->hash, HASH_LEN);
	return c ? c : (x->guest > y->guest) - (x->guest < y->guest);
}

/* POOL_SET: the content hashes the pool held before this run. */
static int decide(struct ginfo *guests, size_t ng, const struct hash_set *pool_set)
{
	struct hg *v;
	size_t n = 0, cap = 0;

	for (size_t g = 0; g < ng; g++)
		cap += guests[g].n;
	v = malloc((cap ? cap : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t g = 0; g < ng; g++)
		for (size_t i = 0; i < guests[g].n; i++) {
			struct ufile *f = &guests[g].files[i];
			if (f->state == UF_HASHED)
				v[n++] = (struct hg){f->m.hash, (uint32_t)g, f};
		}
	qsort(v, n, sizeof(*v), cmp_hg);
	for (size_t i = 0; i < n;) {
		size_t j = i;
		unsigned distinct = 0;
		bool shared;
		for (; j < n && !memcmp(v[j].hash, v[i].hash, HASH_LEN); j++)
			if (j == i || v[j].guest != v[j - 1].guest)
				distinct++;
		shared = distinct >= 2 || hash_set_has(pool_set, v[i].hash);
		for (size_t k = i; k < j; k++)
			if (shared || v[k].f->cls == POLICY_SYSTEM || v[k].f->half)
				v[k].f->state = UF_CHOSEN; /* (a half-adopted file must be settled) */
		i = j;
	}
	free(v);
	return 0;
}

static int do_syncfs(int fd)
{
	return syncfs(fd) < 0 ? neg_errno() : 0;
}

/* Which guests' uppers share the pool's filesystem. */
static int set_same_fs(struct pool *p, struct ginfo *gis, size_t ng)
{
	struct stat so, su;

	if (fstat(p->objects_fd, &so) < 0)
		return neg_errno();
	for (size_t g = 0; g < ng; g++) {
		if (fstat(gis[g].upper_fd, &su) < 0)
			return neg_errno();
		gis[g].same_fs = su.st_dev == so.st_dev;
	}
	return 0;
}

/* ---- apply ---- */

/* An object this batch creates.  ADOPT: the upper file is on the pool's
 * filesystem and becomes the object itself (no data copied): in the link
 * layout by a hard link before the lower entries are made, in the redirect
 * layout by renaming it into objects/ after its stub is durable. */
struct pending {
	char tmp[OBJECT_TMP_MAX];
	char name[OBJECT_NAME_MAX];
	struct ufile *adopt;
};

struct batch {
	uint32_t *slots; /* PEND_SLOTS: index into pend[] or UINT32_MAX */
	struct ufile **files;
	char (*names)[OBJECT_NAME_MAX];
	size_t n;
	struct pending *pend;
	size_t n_pend;
	uint64_t bytes;
};

struct apply {
	const struct hash_set *pool_set; /* contents the pool held before the run */
	struct hasher hasher; /* for copies into the pool */
	struct pool *p;
	const struct layout_ops *ops;
	struct ginfo *gi;
	struct dircache upper_dc, lower_dc;
	bool same_fs; /* upper and objects/ on one filesystem */
	struct replica_session *replicas; /* replicated unify, or NULL */
};

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

/* Our own link or unlink changed the upper inode's ctime and link count:
 * take them again, provided the upper name still shows the inode, size,
 * mtime and type the scan saw.  Returns 0 or -errno (-ESTALE). */
static int restat_upper(struct dircache *dc, struct ufile *f)
{
	const char *name;
	struct stat st;
	int dfd = dircache_parent(dc, f->paths[0], &name);

	if (dfd < 0)
		return dfd;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	if (st.st_dev != f->m.st.st_dev || st.st_ino != f->m.st.st_ino || st.st_size != f->m.st.st_size ||
	    st.st_mtim.tv_sec != f->m.st.st_mtim.tv_sec || st.st_mtim.tv_nsec != f->m.st.st_mtim.tv_nsec ||
	    (st.st_mode & S_IFMT) != (f->m.st.st_mode & S_IFMT))
		return -ESTALE;
	f->m.st.st_ctim = st.st_ctim;
	f->m.st.st_nlink = st.st_nlink;
	return 0;
}

/* A half-adopted file (link layout, see settle_half_adopted) whose inode is
 * the object f->half but whose content or metadata no longer give that
 * name: the guest wrote through the shared inode.  The wrong name leaves
 * objects/ (if it still is this inode), so no other file is linked to it
 * again; the lower entries already linked to it keep their view, and fsck
 * reports them as not linked to any object.  The file itself is then
 * copied into the pool like any other. */
static int drop_misnamed_object(struct apply *a, struct ufile *f)
{
	char rel[OBJECT_NAME_MAX + 4];
	struct stat st;

	object_relpath(f->half, rel);
	if (fstatat(a->p->objects_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == f->m.st.st_dev &&
	    st.st_ino == f->m.st.st_ino && unlinkat(a->p->objects_fd, rel, 0) < 0)
		return neg_errno();
	free(f->half);
	f->half = NULL;
	return restat_upper(&a->upper_dc, f);
}

/* Make sure the object for f exists or is pending in this batch.
 *
 * Adoption (upper and objects/ on one filesystem: the upper file becomes
 * the object, no data copied) is only for a file with one name and one
 * link: its single upper name is renamed into objects/ in one step, so no
 * instant exists where an upper name and an object name share an inode
 * (a guest writing through that upper name would write into the pool).
 * Hard-link groups are copied. */
static int prepare_object(struct apply *a, struct ufile *f, struct batch *b, char *name)
{
	struct pool *p = a->p;
	_cleanup_close_ int fd = -1;
	struct pending *pe = &b->pend[b->n_pend];
	bool adopt;
	int tfd, r;

	r = a->ops->object_name(&f->m, name);
	if (r < 0)
		return r;
	if (f->half) {
		if (!strcmp(f->half, name))
			return 0; /* finish: its lower entries link the object it is */
		r = drop_misnamed_object(a, f);
		if (r < 0)
			return r;
	}
	if (pending_has(b, name))
		return 0;
	if (p->layout == LAYOUT_REDIRECT && hash_set_has(a->pool_set, f->m.hash))
		return 0; /* held before this run: objects are never deleted by unify */
	adopt = a->same_fs && f->n_paths == 1 && f->m.st.st_nlink == 1;
	if (!adopt || p->layout == LAYOUT_LINK) {
		/* (the redirect layout settles an existing object cheaply when
		 * adopting: the rename fails, the stub names the object) */
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
		fd = open_checked(&a->upper_dc, f);
		if (fd < 0)
			return fd;
		r = object_write_tmp_with(p, &a->hasher, fd, (uint64_t)f->m.st.st_size, f->m.hash, pe->tmp,
		                          &tfd);
		if (r < 0)
			return r;
		r = a->ops->object_finish(tfd, &f->m);
		close(tfd);
		if (r < 0) {
			unlinkat(p->tmp_fd, pe->tmp, 0);
			return r;
		}
	}
	memcpy(pe->name, name, OBJECT_NAME_MAX);
	pending_add(b, b->n_pend);
	b->n_pend++;
	count_add(&a->gi->res->new_objects, 1);
	count_add(&a->gi->res->new_object_bytes, (uint64_t)f->m.st.st_size);
	return 0;
}

/* Link layout: before its upper file is adopted, its lower entry becomes
 * a second name of that very inode (hidden by the upper name, in the
 * guest's own lower layer: nothing else is linked to it).  Returns 0 or
 * -errno (-ESTALE: the upper file changed). */
static int place_adopter(struct apply *a, struct ufile *f)
{
	const char *name, *ename;
	struct stat st;
	_cleanup_close_ int fd = -1;
	int dfd = dircache_parent(&a->upper_dc, f->paths[0], &name), r;

	if (dfd < 0)
		return dfd;
	fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (fstat(fd, &st) < 0)
		return neg_errno();
	if (!same_file(&st, &f->m.st))
		return -ESTALE;
	dfd = dircache_parent(&a->lower_dc, f->paths[0], &ename);
	if (dfd < 0)
		return dfd;
	r = layout_link_in_place(fd, dfd, ename);
	if (r < 0)
		return r;
	return restat_upper(&a->upper_dc, f);
}

/* Move the upper file of pe into objects/ by renaming its one upper name
 * (RENAME_NOREPLACE: an existing object of that name wins).  In the
 * redirect layout its stub is durable already; in the link layout its
 * lower entry is a durable second name of the same inode (place_adopter).
 * The rename goes by name, so the inode renamed is checked afterwards: a
 * file swapped in meanwhile is renamed back and the file left alone.
 * Returns 1 when the upper name was moved, 0 when it stays (the object
 * existed), or -errno (-ESTALE: changed). */
static int adopt_object(struct apply *a, struct pending *pe)
{
	char rel[OBJECT_NAME_MAX + 4];
	const char *name;
	struct stat st;
	int dfd = dircache_parent(&a->upper_dc, pe->adopt->paths[0], &name);

	if (dfd < 0)
		return dfd;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	if (!same_file(&st, &pe->adopt->m.st))
		return -ESTALE;
	object_relpath(pe->name, rel);
	if (renameat2(dfd, name, a->p->objects_fd, rel, RENAME_NOREPLACE) < 0) {
		if (errno != EEXIST)
			return neg_errno();
		/* another guest of this run made it first: not new after all */
		count_sub(&a->gi->res->new_objects, 1);
		count_sub(&a->gi->res->new_object_bytes, (uint64_t)pe->adopt->m.st.st_size);
		return 0;
	}
	if (fstatat(a->p->objects_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	if (st.st_dev != pe->adopt->m.st.st_dev || st.st_ino != pe->adopt->m.st.st_ino) {
		/* swapped in between the check and the rename: give it back */
		if (renameat2(a->p->objects_fd, rel, dfd, name, RENAME_NOREPLACE) < 0)
			return neg_errno();
		count_sub(&a->gi->res->new_objects, 1);
		count_sub(&a->gi->res->new_object_bytes, (uint64_t)pe->adopt->m.st.st_size);
		return -ESTALE;
	}
	return 1;
}

/* An adopted redirect object still has the guest file's owner, mode and
 * xattrs; once no upper name shows that inode any more, make it a plain
 * object.  (Data-only objects' metadata is never seen by guests, so a crash
 * before this point harms nothing.) */
static void plain_object(struct pool *p, const struct pending *pe)
{
	char rel[OBJECT_NAME_MAX + 4];

	object_relpath(pe->name, rel);
	if (pe->adopt->m.xattrs.n) {
		char path[64 + OBJECT_NAME_MAX];
		snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", p->objects_fd, rel);
		for (size_t i = 0; i < pe->adopt->m.xattrs.n; i++)
			(void)lremovexattr(path, pe->adopt->m.xattrs.v[i].name);
	}
	/* Best effort, as the comment above says; glibc's fortified headers
	 * mark these warn_unused_result, which a (void) cast does not quiet. */
	if (pe->adopt->m.st.st_uid || pe->adopt->m.st.st_gid)
		if (fchownat(p->objects_fd, rel, 0, 0, AT_SYMLINK_NOFOLLOW) < 0)
			errno = 0;
	if (fchmodat(p->objects_fd, rel, 0444, 0) < 0)
		errno = 0;
}

/* Remove the upper copies of f, only if each is still the inode the scan
 * saw with the same size, mtime and ctime (an edit in place keeps the
 * inode).  All names are checked before the first goes, since our own
 * unlink changes the inode's ctime for the names after it (those are then
 * checked by device and inode).  A name already moved into the pool is
 * gone already. */
static int remove_upper(struct apply *a, struct ufile *f, bool adopted)
{
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t i = adopted ? 1 : 0; i < f->n_paths; i++) {
			const char *name;
			struct stat st;
			int dfd = dircache_parent(&a->upper_dc, f->paths[i], &name);
			if (dfd < 0)
				return dfd;
			if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				if (errno == ENOENT)
					continue;
				return neg_errno();
			}
			if (pass == 0 ? !same_file(&st, &f->m.st)
			              : st.st_dev != f->m.st.st_dev || st.st_ino != f->m.st.st_ino)
				return -ESTALE;
			if (pass == 1 && unlinkat(dfd, name, 0) < 0)
				return neg_errno();
		}
	return 0;
}

/* An object that could not be made: no file of the batch may point at it. */
static void skip_name(struct batch *b, const char *name)
{
	for (size_t i = 0; i < b->n; i++)
		if (!strcmp(b->names[i], name) && b->files[i]->state == UF_CHOSEN)
			b->files[i]->state = UF_SKIPPED;
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
		struct ufile *f = b->files[i];
		bool adopters = pass == PLACE_ADOPTERS;
		int r;
		if (f->state != UF_CHOSEN || (pass != PLACE_ALL && f->adopting != adopters))
			continue;
		if (adopters)
			r = place_adopter(a, f);
		else
			r = a->ops->place(t, &f->m, b->names[i], f->paths, f->n_paths);
		/* our own links changed the upper inode's ctime: linking the
		 * object that it is (a half-adopted file finished), or
		 * replacing its lower entry after a lost adoption */
		if (r == 0 && (f->half || f->lost_adoption))
			r = restat_upper(&a->upper_dc, f);
		if (r == 0 && !f->placed && !(f->placed = strdup(b->names[i])))
			r = -ENOMEM;
		if (r == -EISDIR || r == -ENOTDIR || r == -EMLINK || r == -EEXIST || r == -ENAMETOOLONG ||
		    r == -ESTALE || r == -ENOENT) {
			f->state = UF_SKIPPED;
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
		if (b->files[i]->state == UF_CHOSEN) {
			names[n] = b->names[i];
			weights[n++] = b->files[i]->n_paths;
		}
	r = replica_session_push(a->replicas, names, weights, n, ok);
	if (r < 0)
		return r;
	for (size_t i = 0, k = 0; i < b->n; i++)
		if (b->files[i]->state == UF_CHOSEN && !ok[k++])
			b->files[i]->state = UF_SKIPPED;
	return 0;
}

/* Step 3c (link layout, describe): the placed entries recorded in the
 * home's description, durably, before their upper copies go. */
static int describe_batch(struct apply *a, struct batch *b)
{
	_cleanup_free_ const char **names = NULL, **paths = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < b->n; i++)
		if (b->files[i]->state == UF_CHOSEN)
			cap += b->files[i]->n_paths;
	if (cap == 0)
		return 0;
	names = malloc(cap * sizeof(*names));
	paths = malloc(cap * sizeof(*paths));
	if (!names || !paths)
		return -ENOMEM;
	for (size_t i = 0; i < b->n; i++) {
		struct ufile *f = b->files[i];
		if (f->state != UF_CHOSEN)
			continue;
		for (uint32_t k = 0; k < f->n_paths; k++) {
			names[n] = b->names[i];
			paths[n++] = f->paths[k];
		}
	}
	return lowerlist_append(a->gi->home_fd, names, paths, n);
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
 *  3b. link layout: other files of the batch are linked to the objects now
 *     named, and the lower layer synced again.
 *  3c. link layout with replicas: the placed entries appended to the
 *     home's description (HOME/vunify-lower, fdatasync'd), so that a host
 *     that replays it after a failover shows them once the upper copies
 *     are gone; dying here, the upper copies still hide them everywhere.
 *  4. only now may the upper copies go, each checked unchanged. */
static int apply_batch(struct apply *a, struct batch *b)
{
	struct pool *p = a->p;
	struct ginfo *gi = a->gi;
	struct layout_target t = {.pool = p,
	                          .lower_dc = &a->lower_dc,
	                          .lower_fd = gi->lower_fd,
	                          .staging_fd = p->layout == LAYOUT_LINK ? p->tmp_fd : gi->staging_fd};
	bool link = p->layout == LAYOUT_LINK, adopted = false;
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
	if (r == 0)
		r = do_syncfs(gi->lower_fd);
	if (r < 0)
		return r;
	/* 3. adoption: the upper name becomes the object's */
	for (size_t i = 0; i < b->n_pend; i++) {
		struct pending *pe = &b->pend[i];
		if (!pe->adopt || pe->adopt->state != UF_CHOSEN)
			continue;
		r = adopt_object(a, pe);
		if (r == 1) {
			pe->adopt->adopted = true;
			adopted = true;
		} else if (r == 0 && link) {
			/* an object of that name exists: link the lower entry to
			 * it instead, in 3b (the upper name still hides it) */
			pe->adopt->adopting = false;
			pe->adopt->lost_adoption = true;
		} else if (r == -ESTALE || r == -ENOENT) {
			/* no object: every entry pointing at it stays hidden
			 * under its upper copy */
			skip_name(b, pe->name);
		} else if (r < 0) {
			return r;
		}
		r = 0;
	}
	/* 3b. link layout: the other files link the objects now named */
	if (link) {
		r = place_files(a, b, &t, PLACE_OTHERS);
		if (r == 0)
			r = do_syncfs(gi->lower_fd);
		if (r < 0)
			return r;
	}
	/* 3c. link layout with replicas: the home's description says so too */
	if (gi->describe) {
		r = describe_batch(a, b);
		if (r < 0)
			return r;
	}
	/* 4. only now may the upper copies go */
	for (size_t i = 0; i < b->n; i++) {
		struct ufile *f = b->files[i];
		if (f->state != UF_CHOSEN) {
			count_add(&gi->res->files_skipped, f->n_paths);
			continue;
		}
		r = remove_upper(a, f, f->adopted);
		if (r == -ESTALE) {
			r = 0;
			continue;
		}
		if (r < 0)
			return r;
		f->state = UF_DONE;
		count_add(&gi->removed_blocks, (uint64_t)f->m.st.st_blocks);
		count_add(&gi->res->files_unified, f->n_paths);
		count_add(&gi->res->bytes_unified, (uint64_t)f->m.st.st_size);
	}
	if (adopted && !link)
		for (size_t i = 0; i < b->n_pend; i++)
			if (b->pend[i].adopt && b->pend[i].adopt->adopted)
				plain_object(p, &b->pend[i]);
	return 0;
}

/* A hash from the cache: read the xattrs unify needs now, with the same
 * checks hashing does. */
static int read_pending_xattrs(struct dircache *upper_dc, struct ufile *f)
{
	_cleanup_close_ int fd = open_checked(upper_dc, f);
	int r;

	if (fd < 0)
		return fd;
	r = xattr_list_read(fd, false, 0, &f->m.xattrs);
	if (r == 0)
		r = keep_guest_xattrs(&f->m.xattrs);
	if (r == 0)
		f->xattrs_pending = false;
	return r;
}

/* Remember the hashes of what stays in the upper. */
static int save_hashcache(struct ginfo *gi)
{
	struct hashcache c = {0};
	bool all_cached = true;
	int r = 0;

	for (size_t i = 0; i < gi->n && r == 0; i++) {
		struct ufile *f = &gi->files[i];
		if (f->state == UF_HASHED) {
			r = hashcache_add(&c, &f->m.st, f->m.hash);
			all_cached &= f->xattrs_pending; /* its hash came from the cache */
		}
	}
	/* nothing new to remember: the file on disk already says this */
	if (r == 0 && all_cached && c.n == gi->cache.n) {
		hashcache_free(&c);
		return 0;
	}
	if (r == 0)
		r = hashcache_save(gi->home_fd, &c);
	hashcache_free(&c);
	return r;
}

struct store_progress {
	const struct unify_options *o;
	pthread_t reporter; /* the thread that may call o->progress */
	struct unify_progress pr;
	struct timespec start, last;
};

static void store_report(struct store_progress *sp, bool final)
{
	if (!sp->o->progress || (!final && since(&sp->last) < 0.25))
		return;
	clock_gettime(CLOCK_MONOTONIC, &sp->last);
	sp->pr.elapsed = since(&sp->start);
	sp->o->progress(&sp->pr, sp->o->progress_userdata);
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

/* Unify the chosen files among gi->files[begin, end), in batches. */
static int apply_range(struct apply *a, struct batch *b, struct store_progress *sp, size_t begin, size_t end)
{
	struct ginfo *gi = a->gi;
	int r = 0;

	for (size_t i = begin; i <= end && r == 0; i++) {
		struct ufile *f = i < end ? &gi->files[i] : NULL;
		if (f && f->state == UF_CHOSEN) {
			r = prepare_object(a, f, b, b->names[b->n]);
			if (r == -ESTALE || r == -EBADMSG || r == -ENOENT) {
				f->state = UF_SKIPPED; /* changed since hashing */
				count_add(&gi->res->files_skipped, f->n_paths);
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

int guest_refresh_stats(struct pool *p, struct guest *g, int home_fd, const uint64_t *upper_bytes)
{
	struct lower_stats ls = {0};
	struct object_map *map = NULL;
	_cleanup_close_ int lower_fd = -1, upper_fd = -1;
	int r;

	lower_fd = guest_open_lower(p, g, home_fd, true);
	if (lower_fd < 0)
		return lower_fd;
	if (p->layout == LAYOUT_LINK) {
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

/* 1 if the directory holds nothing, 0 if it does, or -errno. */
static int dir_is_empty(int dir_fd)
{
	char buf[4096];
	ssize_t len;

	if (lseek(dir_fd, 0, SEEK_SET) < 0)
		return neg_errno();
	while ((len = getdents64(dir_fd, buf, sizeof(buf))) > 0)
		for (ssize_t off = 0; off < len;) {
			struct dirent64 *de = (struct dirent64 *)(buf + off);
			off += de->d_reclen;
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				return 0;
		}
	return len < 0 ? neg_errno() : 1;
}

static int open_guest(struct pool *p, const char *name, struct ginfo *gi, bool create, char **ret_what)
{
	_cleanup_free_ char *upper = NULL;
	int r;

	gi->home_fd = gi->upper_fd = gi->lower_fd = gi->staging_fd = -1;
	r = pool_guest_load(p, name, &gi->g);
	if (r < 0)
		goto fail;
	upper = path_join(gi->g->home, HOME_UPPER);
	if (!upper)
		return -ENOMEM;
	{
		_cleanup_free_ char *where = NULL;
		r = overlay_find_mounts(upper, &where);
		if (r > 0) {
			/* say where: it may be a copy in a container's namespace */
			if (!where || asprintf(ret_what, "%s (mounted: %s)", name, where) < 0)
				*ret_what = strdup(name);
			return -EBUSY;
		}
	}
	if (r < 0)
		goto fail;
	gi->home_fd = guest_open_home(p, gi->g);
	if (gi->home_fd < 0) {
		r = gi->home_fd;
		goto fail;
	}
	r = hashcache_load(gi->home_fd, &gi->cache);
	if (r < 0)
		goto fail;
	gi->upper_fd = openat(gi->home_fd, HOME_UPPER, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (gi->upper_fd < 0) {
		r = neg_errno();
		goto fail;
	}
	if (create) {
		gi->lower_fd = guest_open_lower(p, gi->g, gi->home_fd, true);
		if (gi->lower_fd < 0) {
			r = gi->lower_fd;
			goto fail;
		}
		r = dir_is_empty(gi->lower_fd);
		if (r < 0)
			goto fail;
		gi->lower_was_empty = r;
		if (mkdirat(gi->home_fd, HOME_STAGING, 0700) < 0 && errno != EEXIST) {
			r = neg_errno();
			goto fail;
		}
		gi->staging_fd =
		        openat(gi->home_fd, HOME_STAGING, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (gi->staging_fd < 0) {
			r = neg_errno();
			goto fail;
		}
	}
	return 0;
fail:
	*ret_what = strdup(name);
	return r;
}

void unify_result_free(struct unify_result *r)
{
	free(r->guests);
	r->guests = NULL;
	r->n_guests = 0;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A guest whose lower layer was empty when the run began: its lower layer
 * now holds exactly what this run placed, so figures and references come
 * from memory instead of a walk of the lower layer. */
static int stats_from_run(struct pool *p, struct ginfo *gi, uint64_t upper)
{
	_cleanup_free_ char **refs = malloc((gi->n + 1) * sizeof(*refs));
	struct guest_stats st = {.upper_bytes = upper};
	size_t n = 0, k = 0;
	int r;

	if (!refs)
		return -ENOMEM;
	for (size_t i = 0; i < gi->n; i++) {
		struct ufile *f = &gi->files[i];
		if (!f->placed)
			continue;
		st.files_unified += f->n_paths;
		st.bytes_unified += (uint64_t)f->m.st.st_size;
		refs[n++] = f->placed;
	}
	if (n > 1)
		qsort(refs, n, sizeof(*refs), cmp_strp);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || strcmp(refs[k - 1], refs[i]))
			refs[k++] = refs[i];
	st.objects_referenced = k;
	r = pool_guest_save_refs(p, gi->g->name, refs, k);
	if (r < 0)
		return r;
	gi->g->stats = st;
	return pool_guest_save_stats(p, gi->g);
}

/* Work for the store threads: ranges of one guest's files.  Ranges, not
 * whole guests, so that both cores stay busy to the end however unequal
 * the guests are.  Threads share only the pool, where two threads making
 * the same object is settled by RENAME_NOREPLACE / EEXIST
 * (content-addressed: either copy is right). */
struct store_item {
	struct ginfo *gi;
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
	struct apply a = {.p = j->p,
	                  .ops = layout_ops_for(j->p),
	                  .gi = it->gi,
	                  .pool_set = j->pool_set,
	                  /* replicated: objects are copied into the pool, hashed
	                   * on the way, so that what reaches the replicas is
	                   * named by what was written (never adopted in place) */
	                  .same_fs = it->gi->same_fs && !j->replicas,
	                  .replicas = j->replicas};
	struct batch b = {0};
	int r = hasher_init(&a.hasher);

	if (r < 0)
		return r;
	dircache_init(&a.upper_dc, it->gi->upper_fd, false);
	dircache_init(&a.lower_dc, it->gi->lower_fd, true);
	r = batch_alloc(&b);
	if (r == 0)
		r = apply_range(&a, &b, j->sp, it->begin, it->end);
	batch_free(&b);
	dircache_release(&a.upper_dc);
	dircache_release(&a.lower_dc);
	hasher_release(&a.hasher);
	return r;
}

/* How many chosen files one work item holds: about four items per
 * thread, within the batch size. */
static size_t item_files(size_t chosen, unsigned nth)
{
	size_t per = chosen / ((size_t)nth * 4) + 1;

	return MIN(MAX(per, (size_t)1024), (size_t)BATCH_FILES);
}

static int store_items(struct ginfo *gis, size_t ng, unsigned nth, struct store_item **ret, size_t *ret_n)
{
	size_t chosen = 0, n = 0, cap = 16, per;
	struct store_item *v = malloc(cap * sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t g = 0; g < ng; g++)
		chosen += gis[g].chosen;
	per = item_files(chosen, nth);
	for (size_t g = 0; g < ng; g++) {
		size_t begin = 0, k = 0, left = gis[g].chosen;
		for (size_t i = 0; i < gis[g].n; i++) {
			if (gis[g].files[i].state != UF_CHOSEN)
				continue;
			if (k == 0)
				begin = i;
			if (++k < per && k < left)
				continue;
			if (n == cap) {
				struct store_item *nv = realloc(v, 2 * cap * sizeof(*v));
				if (!nv) {
					free(v);
					return -ENOMEM;
				}
				v = nv;
				cap *= 2;
			}
			v[n++] = (struct store_item){&gis[g], begin, i + 1};
			left -= k;
			k = 0;
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
	struct ginfo *gis;
};

static int record_refs(size_t g, void *ud)
{
	struct refs_job *j = ud;
	struct ginfo *gi = &j->gis[g];
	const struct layout_ops *ops = layout_ops_for(j->p);
	struct dircache dc;
	char(*names)[OBJECT_NAME_MAX] = NULL;
	char **refs = NULL;
	size_t n = 0;
	int r = 0;

	if (!gi->chosen)
		return 0;
	names = malloc(gi->chosen * sizeof(*names));
	refs = malloc(gi->chosen * sizeof(*refs));
	if (!names || !refs) {
		free(names);
		free(refs);
		return -ENOMEM;
	}
	dircache_init(&dc, gi->upper_fd, false);
	for (size_t i = 0; i < gi->n && r == 0; i++) {
		struct ufile *f = &gi->files[i];
		if (f->state != UF_CHOSEN)
			continue;
		if (f->xattrs_pending) {
			r = read_pending_xattrs(&dc, f);
			if (r == -ESTALE || r == -ENOENT || r == -EUCLEAN) {
				f->state = UF_SKIPPED;
				gi->res->files_skipped += f->n_paths;
				gi->chosen--;
				r = 0;
				continue;
			}
			if (r < 0)
				break;
		}
		r = ops->object_name(&f->m, names[n]);
		refs[n] = names[n];
		n++;
	}
	dircache_release(&dc);
	if (r == 0 && n)
		r = pool_guest_add_refs(j->p, gi->g->name, refs, n);
	free(names);
	free(refs);
	return r;
}

/* fsync-like barrier for the uppers: each filesystem once. */
static int sync_uppers(struct ginfo *gis, size_t ng)
{
	dev_t done[64];
	size_t nd = 0;

	for (size_t g = 0; g < ng; g++) {
		struct stat st;
		bool seen = false;
		if (!gis[g].touched)
			continue;
		if (fstat(gis[g].upper_fd, &st) < 0)
			return neg_errno();
		for (size_t k = 0; k < nd; k++)
			seen |= done[k] == st.st_dev;
		if (seen)
			continue;
		if (syncfs(gis[g].upper_fd) < 0)
			return neg_errno();
		if (nd < ARRAY_SIZE(done))
			done[nd++] = st.st_dev;
	}
	return 0;
}

struct finish_job {
	struct pool *p;
	struct ginfo *gis;
	bool failed; /* the store failed: record what is there, best effort */
};

/* A guest's figures and references after the store, and its hash cache. */
static int finish_guest(size_t i, void *ud)
{
	struct finish_job *j = ud;
	struct ginfo *gi = &j->gis[i];
	struct unify_guest_result *gr = gi->res;
	uint64_t upper = (gi->upper_blocks - MIN(gi->removed_blocks, gi->upper_blocks)) * 512;
	int r = 0;

	if (j->failed) {
		if (gi->touched)
			(void)guest_refresh_stats(j->p, gi->g, gi->home_fd, NULL);
		gr->stats = gi->g->stats;
		return 0;
	}
	if (!gr->files_unified && !gr->whiteouts_folded && !gr->opaque_folded) {
		/* the lower layer did not change: only the upper's size */
		if (gi->g->stats.upper_bytes != upper) {
			gi->g->stats.upper_bytes = upper;
			r = pool_guest_save_stats(j->p, gi->g);
		}
	} else if (gi->lower_was_empty) {
		r = stats_from_run(j->p, gi, upper);
	} else {
		r = guest_refresh_stats(j->p, gi->g, gi->home_fd, &upper);
	}
	if (r == 0)
		r = save_hashcache(gi);
	/* the description written afresh (compact) from the lower layer */
	if (r == 0 && gi->describe && (gr->files_unified || gr->whiteouts_folded || gr->opaque_folded))
		r = lowerlist_write(j->p, gi->home_fd, gi->lower_fd);
	gr->stats = gi->g->stats;
	return r;
}

static int store_all(struct pool *p, struct ginfo *gis, size_t ng, const struct unify_options *o,
                     struct store_progress *sp, const struct hash_set *pool_set, char **ret_what)
{
	struct store_job j = {.p = p, .sp = sp, .pool_set = pool_set, .replicas = o->replicas};
	struct finish_job fj = {.p = p, .gis = gis};
	unsigned nth = jobs_for(o);
	size_t failed = 0;
	int r;

	for (size_t g = 0; g < ng; g++) {
		gis[g].chosen = 0;
		for (size_t i = 0; i < gis[g].n; i++)
			gis[g].chosen += gis[g].files[i].state == UF_CHOSEN;
		gis[g].touched = gis[g].chosen > 0;
	}
	/* adopted upper files must be durable before objects name them; and
	 * the names objects/ holds already (some maybe renamed in by a run
	 * killed before it synced them) before any lower entry names them */
	r = sync_uppers(gis, ng);
	if (r == 0)
		r = do_syncfs(p->objects_fd);
	if (r == 0) {
		struct refs_job rj = {.p = p, .gis = gis};
		r = parallel_for(ng, nth, record_refs, &rj, &failed);
		if (r < 0) {
			*ret_what = strdup(gis[failed].g->name);
			return r;
		}
	}
	if (r == 0)
		r = store_items(gis, ng, nth, &j.items, &j.n_items);
	if (r < 0)
		return r;
	r = parallel_for(j.n_items, nth, store_item_run, &j, &failed);
	if (r < 0)
		*ret_what = strdup(j.items[failed].gi->g->name);
	free(j.items);
	/* the upper copies' removal, durable before the figures say so */
	if (r == 0)
		r = sync_uppers(gis, ng);
	fj.failed = r < 0;
	{
		size_t f2 = 0;
		int r2 = parallel_for(ng, nth, finish_guest, &fj, &f2);
		if (r == 0 && r2 < 0) {
			r = r2;
			*ret_what = strdup(gis[f2].g->name);
		}
	}
	return r;
}

/* VUNIFY_TIMING=1: phase durations on stderr, for tuning. */
static void phase_time(const char *what)
{
	static struct timespec t0;
	struct timespec t1;

	if (!getenv("VUNIFY_TIMING"))
		return;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (t0.tv_sec)
		fprintf(stderr, "%s %.3f\n", what,
		        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	t0 = t1;
}

int unify_run(struct pool *p, char *const *names, size_t n, const struct unify_options *o,
              struct unify_result *ret, char **ret_what)
{
	struct hash_set pool_set = {0};
	char **all = NULL;
	struct ginfo *gis = NULL;
	struct unify_result res = {0};
	size_t ng = 0;
	int r = 0;

	/* stubs are created with their final mode in one step */
	umask(0);
	if (n == 0) {
		r = pool_guest_names(p, &all);
		if (r < 0)
			return r;
		names = all;
		n = (size_t)r;
		r = 0;
	}
	gis = calloc(n ? n : 1, sizeof(*gis));
	res.guests = calloc(n ? n : 1, sizeof(*res.guests));
	if (!gis || !res.guests) {
		r = -ENOMEM;
		goto out;
	}
	res.n_guests = n;
	for (size_t i = 0; i < n; i++) {
		if (!guest_name_valid(names[i])) {
			*ret_what = strdup(names[i]);
			r = -EINVAL;
			goto out;
		}
		snprintf(res.guests[i].name, sizeof(res.guests[i].name), "%s", names[i]);
		gis[i].res = &res.guests[i];
		r = open_guest(p, names[i], &gis[i], !o->dry_run, ret_what);
		ng = i + 1;
		if (r < 0)
			goto out;
	}
	for (size_t i = 0; i < ng && !o->dry_run && o->describe_lower && p->layout == LAYOUT_LINK; i++) {
		/* a description of what is there already, before anything is
		 * appended to it */
		gis[i].describe = true;
		r = lowerlist_exists(gis[i].home_fd);
		if (r == 0)
			r = lowerlist_write(p, gis[i].home_fd, gis[i].lower_fd);
		if (r < 0) {
			*ret_what = strdup(names[i]);
			goto out;
		}
		r = 0;
	}
	if (!o->dry_run) {
		r = pool_clean_tmp(p);
		for (size_t i = 0; i < ng && r == 0; i++)
			/* leftovers of an interrupted run: unreferenced, unseen */
			r = remove_contents_at(gis[i].home_fd, HOME_STAGING, NULL);
		if (r < 0)
			goto out;
	}
	phase_time("open");
	{
		struct scan_job sj = {.p = p, .gis = gis, .normalize = !o->dry_run};
		size_t failed = 0;
		r = parallel_for(ng, jobs_for(o), scan_guest, &sj, &failed);
		phase_time("scan");
		if (r < 0) {
			*ret_what = strdup(names[failed]);
			goto out;
		}
	}
	r = load_pool_set(p, &pool_set);
	if (r == 0)
		r = set_same_fs(p, gis, ng);
	if (r == 0 && !o->dry_run)
		r = settle_half_adopted(p, gis, ng);
	if (r < 0)
		goto out;
	r = hash_all(gis, ng, o, &res.bytes_hashed, ret_what);
	phase_time("hash");
	if (r < 0)
		goto out;
	r = decide(gis, ng, &pool_set);
	phase_time("decide");
	if (r < 0)
		goto out;
	if (o->dry_run) {
		/* what would be unified, and what the pool would have to store:
		 * each content not yet in the pool, counted for the first guest
		 * that has it (the link layout may need more: it also keys by
		 * metadata) */
		struct hg *v = malloc(sizeof(*v));
		size_t nv = 0, cap = 1;
		for (size_t i = 0; i < ng && v; i++)
			for (size_t k = 0; k < gis[i].n; k++) {
				struct ufile *f = &gis[i].files[k];
				if (f->state != UF_CHOSEN)
					continue;
				gis[i].res->files_unified += f->n_paths;
				gis[i].res->bytes_unified += (uint64_t)f->m.st.st_size;
				if (hash_set_has(&pool_set, f->m.hash))
					continue;
				if (nv == cap) {
					struct hg *nn = realloc(v, 2 * cap * sizeof(*v));
					if (!nn) {
						free(v);
						v = NULL;
						break;
					}
					v = nn;
					cap *= 2;
				}
				v[nv++] = (struct hg){f->m.hash, (uint32_t)i, f};
			}
		if (!v) {
			r = -ENOMEM;
			goto out;
		}
		qsort(v, nv, sizeof(*v), cmp_hg);
		for (size_t k = 0; k < nv; k++) {
			if (k > 0 && !memcmp(v[k].hash, v[k - 1].hash, HASH_LEN))
				continue;
			gis[v[k].guest].res->new_objects++;
			gis[v[k].guest].res->new_object_bytes += (uint64_t)v[k].f->m.st.st_size;
		}
		free(v);
	} else {
		struct store_progress sp = {.o = o, .pr = {.phase = "store"}, .reporter = pthread_self()};
		for (size_t i = 0; i < ng; i++)
			for (size_t k = 0; k < gis[i].n; k++)
				if (gis[i].files[k].state == UF_CHOSEN) {
					sp.pr.files_total++;
					sp.pr.bytes_total += (uint64_t)gis[i].files[k].m.st.st_size;
				}
		clock_gettime(CLOCK_MONOTONIC, &sp.start);
		sp.last = sp.start;
		r = store_all(p, gis, ng, o, &sp, &pool_set, ret_what);
		phase_time("store");
		if (r < 0)
			goto out;
		store_report(&sp, true);
		for (size_t i = 0; i < ng; i++) {
			res.new_objects += gis[i].res->new_objects;
			res.new_object_bytes += gis[i].res->new_object_bytes;
		}
	}
out:
	free(pool_set.v);
	for (size_t i = 0; i < ng; i++)
		ginfo_free(&gis[i]);
	free(gis);
	names_free(all);
	if (r < 0) {
		unify_result_free(&res);
		return r;
	}
	*ret = res;
	return 0;
}
