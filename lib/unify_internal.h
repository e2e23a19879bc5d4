/* Private to the unify pipeline: the per-guest state its phases share.
 *
 * unify.c drives the phases, each in its own file:
 *   scan.c        walk each upper: file records, hard-link groups, classes
 *   fold.c        fold whiteouts and opaque directories into the lower layer
 *   hash_phase.c  hash the candidates (parallel, with the hash cache)
 *   share.c       SPEC's sharing decision ("share what is shared")
 *   store.c       settle half-adopted files, record references, then run
 *                 the store batches in parallel
 *   store_batch.c one batch: objects, names, lower entries, upper removal
 *   store_object.c  the steps for one file of a batch
 *   guest_stats.c the guests' figures and references after the run
 *   parallel.c    the thread pool the phases run on */
#ifndef VUNIFY_UNIFY_INTERNAL_H
#define VUNIFY_UNIFY_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dircache.h"
#include "hash_intern.h"
#include "hashcache.h"
#include "ino_map.h"
#include "layout.h"
#include "lowerlist.h"
#include "policy.h"
#include "pool.h"
#include "replica.h"
#include "share.h"
#include "unify.h"
#include "util.h"
#include "walk.h"
#include "xattr.h"

/* A store batch: at most this many files or bytes between syncs. */
#define BATCH_FILES 8192
#define BATCH_BYTES (512ULL << 20)

/* Where a scanned file stands in the pipeline. */
enum scanned_state {
	SF_IGNORED, /* never-class, incomplete link group, overlay-internal */
	SF_CANDIDATE, /* to be hashed */
	SF_HASHED,
	SF_CHOSEN,
	SF_DONE,
	SF_SKIPPED,
};

/* What the pipeline keeps of a scanned file's stat: the fields it reads,
 * 88 bytes instead of struct stat's 144 (a record per file of every guest
 * of a run is held from the scan to the end of the store). */
struct scan_time {
	int64_t tv_sec;
	uint32_t tv_nsec;
} __attribute__((packed));

struct scan_stat {
	uint64_t st_ino; /* (st_dev: scanned_file.dev, sf_dev) */
	int64_t st_size, st_blocks;
	uint32_t st_mode, st_uid, st_gid;
	uint32_t st_nlink; /* (UINT32_MAX for more) */
	struct scan_time st_atim, st_mtim, st_ctim;
} __attribute__((packed, aligned(4))); /* 76 bytes: a 4-byte field may follow */

/* struct file_meta with a scan_stat, its xattrs as a pointer and a count
 * (an xattr_list's size_t count would cost 8 bytes a file), without the
 * hash (an index in the run's hash_intern: scanned_file.hash) */
struct scan_meta {
	struct scan_stat st;
	uint32_t n_xattrs;
	struct xattr *xattrs; /* without trusted.overlay.* */
};

static inline struct scan_time scan_time_of(struct timespec t)
{
	return (struct scan_time){.tv_sec = t.tv_sec, .tv_nsec = (uint32_t)t.tv_nsec};
}

static inline struct timespec timespec_of(struct scan_time t)
{
	return (struct timespec){.tv_sec = t.tv_sec, .tv_nsec = t.tv_nsec};
}

static inline void scan_stat_set(struct scan_stat *d, const struct stat *s)
{
	*d = (struct scan_stat){.st_ino = s->st_ino,
	                        .st_size = s->st_size,
	                        .st_blocks = s->st_blocks,
	                        .st_mode = s->st_mode,
	                        .st_uid = s->st_uid,
	                        .st_gid = s->st_gid,
	                        .st_nlink = s->st_nlink > UINT32_MAX ? UINT32_MAX : (uint32_t)s->st_nlink,
	                        .st_atim = scan_time_of(s->st_atim),
	                        .st_mtim = scan_time_of(s->st_mtim),
	                        .st_ctim = scan_time_of(s->st_ctim)};
}

/* A struct stat holding what s holds and DEV (the rest zero). */
static inline void scan_stat_get(const struct scan_stat *s, dev_t dev, struct stat *d)
{
	memset(d, 0, sizeof(*d));
	d->st_dev = dev;
	d->st_ino = s->st_ino;
	d->st_size = s->st_size;
	d->st_blocks = s->st_blocks;
	d->st_mode = s->st_mode;
	d->st_uid = s->st_uid;
	d->st_gid = s->st_gid;
	d->st_nlink = s->st_nlink;
	d->st_atim = timespec_of(s->st_atim);
	d->st_mtim = timespec_of(s->st_mtim);
	d->st_ctim = timespec_of(s->st_ctim);
}

/* The xattrs of s as a list (not a copy: not to be freed). */
static inline struct xattr_list scan_xattrs(const struct scan_meta *s)
{
	return (struct xattr_list){.v = s->xattrs, .n = s->n_xattrs};
}

/* Take over l's xattrs (l is empty afterwards).  Returns 0, or -E2BIG for
 * more than a uint32_t counts (l freed). */
static inline int scan_xattrs_set(struct scan_meta *s, struct xattr_list *l)
{
	if (l->n > UINT32_MAX) {
		xattr_list_free(l);
		return -E2BIG;
	}
	s->xattrs = l->v;
	s->n_xattrs = (uint32_t)l->n;
	*l = (struct xattr_list){0};
	return 0;
}

/* The names of a guest's scanned files, stored one after the other in
 * chunks that never move (one allocation per chunk, not per name). */
struct path_arena {
	char **chunks;
	size_t n_chunks;
	char *cur; /* free space of the last chunk */
	size_t left;
};

struct scanned_file {
	union {
		char *path0; /* n_paths 1: its name (in the guest's arena) */
		char **paths; /* more: the names (in the arena; the array not) */
	};
	uint32_t n_paths;
	uint32_t guest;
	uint32_t hash; /* its content hash: an index in the run's hash_intern
	                * (sf_hash), HASH_NONE until hashed */
	uint8_t cls;
	uint8_t state;
	uint8_t dev; /* its st_dev: an index in the guest's devs (sf_dev) */
	bool adopted : 1; /* its first upper name was renamed into the pool */
	bool adopting : 1; /* its upper file is to become the object (prepare_object) */
	bool lost_adoption : 1; /* link layout: the object existed; relinked in 3b */
	bool xattrs_pending : 1; /* hash came from the cache; xattrs not read yet */
	bool placed_hex : 1; /* placed: the object named by its hash in hex */
	/* link layout, until the file is placed: its object name (the
	 * guest's objnames, sf_objname) is the object its upper inode already
	 * is (a half-adopted file, settle_half_adopted), or none; once placed
	 * (objname_placed): the object its lower entries point at, when not
	 * placed_hex.  See sf_half, sf_placed_name. */
	bool objname_placed : 1;
	struct scan_meta m;
}; /* one per file of every guest of a run, scan to store: */
_Static_assert(sizeof(struct scanned_file) == 112, "the record's size (docs/DESIGN.md)");

/* The names of f (n_paths of them). */
static inline char *const *sf_paths(const struct scanned_file *f)
{
	return f->n_paths > 1 ? f->paths : &f->path0;
}

/* What the scan folded (fold.c): paths of whiteouts and opaque dirs. */
struct fold_list {
	int lower_fd;
	char **paths; /* whiteouts, then (flag bit in kinds) opaque dirs */
	unsigned char *kinds;
	size_t n, cap;
	uint64_t whiteouts, opaques;
};

enum { FOLD_WHITEOUT, FOLD_OPAQUE };

/* A guest's upper spans at most this many filesystems (one, but for mount
 * points inside it): a record keeps a one-byte index (the scan leaves
 * files of further ones in the upper). */
#define GUEST_SCAN_DEVS 256

/* One guest of a unify run, from open to its figures. */
struct guest_scan {
	struct guest *g;
	int home_fd, upper_fd, lower_fd, staging_fd;
	struct scanned_file *files;
	size_t n, cap;
	struct path_arena arena; /* the files' paths */
	struct ino_map links; /* inode -> index in files[], for st_nlink > 1 */
	enum policy_class *cls; /* by depth */
	size_t cls_cap;
	bool normalize; /* fold whiteouts/opaque dirs (not in dry runs) */
	struct fold_list folds; /* what the scan folded */
	bool lower_was_empty; /* before this run: its lower is exactly what we place */
	uint64_t upper_blocks; /* st_blocks of the upper as scanned */
	uint64_t removed_blocks; /* of the upper copies unify removed */
	struct ino_map seen_inos; /* hard-linked inodes counted once */
	struct hashcache cache; /* hashes remembered from the last run */
	struct hash_intern *hashes; /* the run's content hashes (one table for
	                             * every guest of the run) */
	dev_t devs[GUEST_SCAN_DEVS]; /* the filesystems its files are on */
	char **objnames; /* by index in files: object names of the few files
	                  * that have one (link layout; sf_objname), NULL
	                  * until the first (atomic: store threads set them) */
	unsigned n_devs;
	struct unify_guest_result *res;
	/* the store phase: */
	size_t chosen; /* files to unify */
	bool touched; /* the store changes its layers */
	bool same_fs; /* upper and objects/ on one filesystem */
	bool describe; /* link layout: keep HOME/vunify-lower (lowerlist.h) */
	bool describe_due; /* ...and it is to be written afresh (finish_lower) */
	bool online; /* mounted, --online: lower_fd is the prepared lower, the
	              * upper is only read (online.h) */
	bool lower_image; /* HOME/meta.img is the record: lower_fd is a private
	                   * working copy (meta_work_open) and the upper-side
	                   * steps wait for the image (store.c, finish_lower) */
	bool lower_is_copy; /* lower_fd is the working copy (else the record,
	                     * read-only: nothing changed yet) */
	bool lower_changed; /* the working copy differs from the record */
};

static inline dev_t sf_dev(const struct guest_scan *gs, const struct scanned_file *f)
{
	return gs->devs[f->dev];
}

/* The struct stat the scan saw (or restat_upper last): f->m.st, sf_dev. */
static inline void sf_stat_get(const struct guest_scan *gs, const struct scanned_file *f, struct stat *d)
{
	scan_stat_get(&f->m.st, sf_dev(gs, f), d);
}

/* f's object name (see scanned_file.objname_placed), or NULL. */
static inline char *sf_objname(const struct guest_scan *gs, const struct scanned_file *f)
{
	char **t = __atomic_load_n(&gs->objnames, __ATOMIC_ACQUIRE);

	return t ? t[f - gs->files] : NULL;
}

/* The object f's upper inode already is (link layout), or NULL. */
static inline const char *sf_half(const struct guest_scan *gs, const struct scanned_file *f)
{
	return f->objname_placed ? NULL : sf_objname(gs, f);
}

/* The object f was placed as, when not placed_hex; or NULL. */
static inline char *sf_placed_name(const struct guest_scan *gs, const struct scanned_file *f)
{
	return f->objname_placed ? sf_objname(gs, f) : NULL;
}

/* f's content hash (HASH_LEN bytes; all zero before it is hashed). */
static inline const unsigned char *sf_hash(const struct guest_scan *gs, const struct scanned_file *f)
{
	static const unsigned char none[HASH_LEN];

	return f->hash == HASH_NONE ? none : hash_intern_get(gs->hashes, f->hash);
}

/* The file_meta the layouts take; its xattrs are f's (not a copy: not to
 * be freed). */
static inline void sf_meta_get(const struct guest_scan *gs, const struct scanned_file *f, struct file_meta *d)
{
	sf_stat_get(gs, f, &d->st);
	d->xattrs = scan_xattrs(&f->m);
	memcpy(d->hash, sf_hash(gs, f), HASH_LEN);
}

struct store_progress {
	const struct unify_options *o;
	pthread_t reporter; /* the thread that may call o->progress */
	struct unify_progress pr;
	struct timespec start, last;
};

static inline int do_syncfs(int fd)
{
	return syncfs(fd) < 0 ? neg_errno() : 0;
}

static inline double since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* scan.c */
void scanned_file_free(struct scanned_file *f);
/* Make NAME (malloc'd, or NULL) f's object name, freeing the one before;
 * safe from several threads for different files of one guest.  Returns 0
 * or -ENOMEM (NAME freed). */
int sf_set_objname(struct guest_scan *gs, struct scanned_file *f, char *name);
void objnames_free(struct guest_scan *gs);
void path_arena_free(struct path_arena *a);
static inline bool scanned_placed(const struct scanned_file *f)
{
	return f->placed_hex || f->objname_placed;
}
int scan_all(struct pool *p, struct guest_scan *scans, size_t ng, bool normalize, unsigned nth,
             size_t *ret_failed);

/* Before the first change to a guest's lower layer in a run: note that
 * the working copy will differ from the record, so that the end of the
 * store writes the next image.  Returns 0 or -errno. */
int lower_will_change(struct guest_scan *gs);

/* fold.c */
int fold_whiteout(struct guest_scan *gs, const struct walk_entry *e);
int fold_opaque_dir(struct guest_scan *gs, const char *path);
int fold_finish(struct guest_scan *gs);
void fold_list_free(struct fold_list *fl);

/* hash_phase.c */
bool same_file(const struct stat *a, const struct guest_scan *gs, const struct scanned_file *f);
int open_checked(struct dircache *dc, const struct guest_scan *gs, struct scanned_file *f);
int read_pending_xattrs(struct dircache *upper_dc, const struct guest_scan *gs, struct scanned_file *f);
int hash_all(struct guest_scan *scans, size_t ng, const struct unify_options *o, uint64_t *ret_bytes,
             char **ret_what);

/* share.c: the sharing decision over the scanned guests */
int share_choose(struct guest_scan *scans, size_t ng, const struct hash_set *pool_set);
int share_estimate(struct guest_scan *scans, size_t ng, const struct hash_set *pool_set);

/* store_batch.c */
int store_commit_upper(struct pool *p, struct guest_scan *gs);
int store_range(struct pool *p, struct guest_scan *gs, const struct hash_set *pool_set,
                struct replica_session *replicas, struct store_progress *sp, size_t begin, size_t end);

/* store.c */
int settle_half_adopted(struct pool *p, struct guest_scan *scans, size_t ng);
void store_report(struct store_progress *sp, bool final);
int store_all(struct pool *p, struct guest_scan *scans, size_t ng, const struct unify_options *o,
              struct store_progress *sp, const struct hash_set *pool_set, char **ret_what);

/* guest_stats.c */
int finish_guest_stats(struct pool *p, struct guest_scan *gs, bool failed);

#endif
