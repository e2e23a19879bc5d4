/* The store's steps for one file of a batch: the upper file adopted as
 * its object, its lower entries, its upper copies removed (the order
 * is store_batch.c's apply_batch). */
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
#include "xattr.h"
#include "banned.h"
/* Our own link or unlink changed the upper inode's ctime and link count:
 * take them again, provided the upper name still shows the inode, size,
 * mtime and type the scan saw.  Returns 0 or -errno (-ESTALE). */
int restat_upper(struct dircache *dc, const struct guest_scan *gs, struct scanned_file *f)
{
	const char *name;
	struct stat st;
	int dfd = dircache_parent(dc, sf_paths(f)[0], &name);

	if (dfd < 0)
		return dfd;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	if (st.st_dev != sf_dev(gs, f) || st.st_ino != f->m.st.st_ino || st.st_size != f->m.st.st_size ||
	    st.st_mtim.tv_sec != f->m.st.st_mtim.tv_sec || st.st_mtim.tv_nsec != f->m.st.st_mtim.tv_nsec ||
	    (st.st_mode & S_IFMT) != (f->m.st.st_mode & S_IFMT))
		return -ESTALE;
	f->m.st.st_ctim = scan_time_of(st.st_ctim);
	f->m.st.st_nlink = st.st_nlink > UINT32_MAX ? UINT32_MAX : (uint32_t)st.st_nlink;
	return 0;
}

/* Link layout: before its upper file is adopted, its lower entry becomes
 * a second name of that very inode (hidden by the upper name, in the
 * guest's own lower layer: nothing else is linked to it).  Returns 0 or
 * -errno (-ESTALE: the upper file changed). */
int place_adopter(struct apply *a, struct scanned_file *f)
{
	const char *name, *ename;
	struct stat st;
	_cleanup_close_ int fd = -1;
	int dfd = dircache_parent(&a->upper_dc, sf_paths(f)[0], &name), r;

	if (dfd < 0)
		return dfd;
	fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (fstat(fd, &st) < 0)
		return neg_errno();
	if (!same_file(&st, a->gs, f))
		return -ESTALE;
	dfd = dircache_parent(&a->lower_dc, sf_paths(f)[0], &ename);
	if (dfd < 0)
		return dfd;
	r = layout_link_in_place(fd, dfd, ename);
	if (r < 0)
		return r;
	return restat_upper(&a->upper_dc, a->gs, f);
}

/* Move the upper file of pe into objects/ by renaming its one upper name
 * (RENAME_NOREPLACE: an existing object of that name wins).  In the
 * redirect layout its stub is durable already; in the link layout its
 * lower entry is a durable second name of the same inode (place_adopter).
 * The rename goes by name, so the inode renamed is checked afterwards: a
 * file swapped in meanwhile is renamed back and the file left alone.
 * Returns 1 when the upper name was moved, 0 when it stays (the object
 * existed), or -errno (-ESTALE: changed). */
int adopt_object(struct apply *a, struct pending *pe)
{
	char rel[OBJECT_NAME_MAX + 4];
	const char *name;
	struct stat st;
	int dfd = dircache_parent(&a->upper_dc, sf_paths(pe->adopt)[0], &name);

	if (dfd < 0)
		return dfd;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	if (!same_file(&st, a->gs, pe->adopt))
		return -ESTALE;
	object_relpath(pe->name, rel);
	if (renameat2(dfd, name, a->p->objects_fd, rel, RENAME_NOREPLACE) < 0) {
		if (errno != EEXIST)
			return neg_errno();
		/* another guest of this run made it first: not new after all */
		count_sub(&a->gs->res->new_objects, 1);
		count_sub(&a->gs->res->new_object_bytes, (uint64_t)pe->adopt->m.st.st_size);
		return 0;
	}
	if (fstatat(a->p->objects_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	if (st.st_dev != sf_dev(a->gs, pe->adopt) || st.st_ino != pe->adopt->m.st.st_ino) {
		/* swapped in between the check and the rename: give it back */
		if (renameat2(a->p->objects_fd, rel, dfd, name, RENAME_NOREPLACE) < 0)
			return neg_errno();
		count_sub(&a->gs->res->new_objects, 1);
		count_sub(&a->gs->res->new_object_bytes, (uint64_t)pe->adopt->m.st.st_size);
		return -ESTALE;
	}
	return 1;
}

/* An adopted redirect object still has the guest file's owner, mode and
 * xattrs; once no upper name shows that inode any more, make it a plain
 * object.  (Data-only objects' metadata is never seen by guests, so a crash
 * before this point harms nothing.) */
void plain_object(struct pool *p, const struct pending *pe)
{
	char rel[OBJECT_NAME_MAX + 4];

	object_relpath(pe->name, rel);
	/* every xattr: the guest's, and what overlayfs left on a file it
	 * copied up (trusted.overlay.origin), which the scan does not list */
	(void)xattr_remove_all_at(p->objects_fd, rel);
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
int remove_upper(struct apply *a, struct scanned_file *f, bool adopted)
{
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t i = adopted ? 1 : 0; i < f->n_paths; i++) {
			const char *name;
			struct stat st;
			int dfd = dircache_parent(&a->upper_dc, sf_paths(f)[i], &name);
			if (dfd < 0)
				return dfd;
			if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				if (errno == ENOENT)
					continue;
				return neg_errno();
			}
			if (pass == 0 ? !same_file(&st, a->gs, f)
			              : st.st_dev != sf_dev(a->gs, f) || st.st_ino != f->m.st.st_ino)
				return -ESTALE;
			if (pass == 1 && unlinkat(dfd, name, 0) < 0)
				return neg_errno();
		}
	return 0;
}
