/* The hash phase: each candidate's content hash, from the hash cache or by
 * reading its upper copy (checked to be the inode the scan saw), on
 * parallel_for threads, with progress from the calling thread. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "overlay.h"
#include "parallel.h"
#include "unify_internal.h"
#include "xattr.h"
#include "banned.h"

struct hash_job {
	struct scanned_file **items;
	size_t n;
	uint64_t bytes_total;
	const struct unify_options *o;
	struct timespec start, last;
	size_t next; /* atomic */
	int error; /* first fatal error, atomic */
	struct scanned_file *failed; /* the file it concerns, if any */
	uint64_t bytes;
	struct guest_scan *scans;
	pthread_t reporter; /* the thread that may call o->progress */
};

bool same_file(const struct stat *a, const struct guest_scan *gs, const struct scanned_file *f)
{
	const struct scan_stat *b = &f->m.st;

	return a->st_ino == b->st_ino && a->st_dev == sf_dev(gs, f) && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == (long)b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == (long)b->st_ctim.tv_nsec &&
	       (a->st_mode & S_IFMT) == (b->st_mode & S_IFMT);
}

/* Point dc at ROOT (one cache per guest layer). */
static void dc_root(struct dircache *dc, int root, bool mkdirs)
{
	if (dc->root_fd != root) {
		dircache_release(dc);
		dircache_init(dc, root, mkdirs);
	}
}

/* Open the upper copy of f and check it is still what the scan saw. */
int open_checked(struct dircache *dc, const struct guest_scan *gs, struct scanned_file *f)
{
	const char *name;
	struct stat st;
	int dfd = dircache_parent(dc, sf_paths(f)[0], &name), fd;

	if (dfd < 0)
		return dfd;
	/* O_NOATIME: reading for the hash must not change the atime the stub
	 * is to carry, nor dirty every inode (EPERM unless owner or root).
	 * open_regular_at never opens what is no longer a regular file (a
	 * device node swapped in since the scan). */
	fd = open_regular_at(dfd, name, O_RDONLY | O_NONBLOCK | O_NOATIME, &st);
	if (fd < 0)
		return fd;
	if (!same_file(&st, gs, f)) {
		close(fd);
		return -E_CHANGED;
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

/* Open the upper copy of f (checked) and read the xattrs unify keeps.
 * Returns the fd or -errno. */
static int open_with_xattrs(struct dircache *dc, const struct guest_scan *gs, struct scanned_file *f)
{
	_cleanup_close_ int fd = open_checked(dc, gs, f);
	struct xattr_list l = {0};
	int r;

	if (fd < 0)
		return fd;
	r = xattr_list_read(fd, false, 0, &l);
	if (r == 0)
		r = keep_guest_xattrs(&l);
	if (r == 0)
		r = scan_xattrs_set(&f->m, &l);
	return r < 0 ? r : steal_fd(&fd);
}

static int hash_one(struct dircache *dc, struct hasher *h, const struct guest_scan *gs,
                    struct scanned_file *f)
{
	_cleanup_close_ int fd = open_with_xattrs(dc, gs, f);
	unsigned char hash[HASH_LEN];
	int r;

	if (fd < 0)
		return fd;
	r = hasher_fd(h, fd, (uint64_t)f->m.st.st_size, hash);
	return r < 0 ? r : hash_intern_add(gs->hashes, hash, &f->hash);
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
		struct scanned_file *f;
		int r;
		if (i >= j->n || __atomic_load_n(&j->error, __ATOMIC_RELAXED))
			break;
		f = j->items[i];
		dc_root(&dc, j->scans[f->guest].upper_fd, false);
		r = hash_one(&dc, &h, &j->scans[f->guest], f);
		if (r == 0) {
			f->state = SF_HASHED;
			__atomic_fetch_add(&j->bytes, (uint64_t)f->m.st.st_size, __ATOMIC_RELAXED);
		} else if (changed_under_us(r) || r == -EUCLEAN) {
			f->state = SF_IGNORED; /* changed or not ours: leave it in the upper */
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
int hash_all(struct guest_scan *scans, size_t ng, const struct unify_options *o, uint64_t *ret_bytes,
             char **ret_what)
{
	struct hash_job j = {.scans = scans, .o = o, .reporter = pthread_self()};
	size_t cap = 0, failed;

	for (size_t g = 0; g < ng; g++)
		cap += scans[g].n;
	j.items = malloc((cap ? cap : 1) * sizeof(*j.items));
	if (!j.items)
		return -ENOMEM;
	for (size_t g = 0; g < ng; g++)
		for (size_t i = 0; i < scans[g].n; i++)
			if (scans[g].files[i].state == SF_CANDIDATE) {
				struct scanned_file *f = &scans[g].files[i];
				struct stat st;
				const unsigned char *h;
				sf_stat_get(&scans[g], f, &st);
				h = hashcache_find(&scans[g].cache, &st);
				if (h) {
					int r = hash_intern_add(scans[g].hashes, h, &f->hash);
					if (r < 0) {
						free(j.items);
						return r;
					}
					f->state = SF_HASHED;
					f->xattrs_pending = true;
					continue;
				}
				j.items[j.n++] = f;
				j.bytes_total += (uint64_t)scans[g].files[i].m.st.st_size;
			}
	clock_gettime(CLOCK_MONOTONIC, &j.start);
	j.last = j.start;
	/* one task per thread: each hashes files until none is left */
	(void)parallel_for(parallel_jobs(o->jobs), parallel_jobs(o->jobs), hash_loop, &j, &failed);
	hash_report(&j, true);
	free(j.items);
	*ret_bytes = j.bytes;
	if (j.error && j.failed &&
	    asprintf(ret_what, "%s:/%s", scans[j.failed->guest].g->name, sf_paths(j.failed)[0]) < 0)
		*ret_what = NULL;
	return j.error;
}

/* A hash from the cache: read the xattrs unify needs now, with the same
 * checks hashing does. */
int read_pending_xattrs(struct dircache *upper_dc, const struct guest_scan *gs, struct scanned_file *f)
{
	int fd = open_with_xattrs(upper_dc, gs, f);

	if (fd < 0)
		return fd;
	close(fd);
	f->xattrs_pending = false;
	return 0;
}
