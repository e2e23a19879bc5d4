/* A cache of the directory fds along the last path looked up.  Walk order
 * groups files by directory, so consecutive operations share most of their
 * path: a lookup opens only the components that differ from the previous
 * one (usually none, or one), instead of one openat per component.
 * It walks component by component with O_NOFOLLOW rather than through
 * open_beneath's openat2(): that is what lets it keep the fds of the
 * shared prefix, and, for lower layers (mkdirs), create a missing
 * directory or replace a hidden non-directory at the component where the
 * walk meets it. */
#ifndef VUNIFY_DIRCACHE_H
#define VUNIFY_DIRCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct dircache {
	int root_fd; /* not owned */
	bool mkdirs; /* lower layers: create directories, replace non-dirs */
	char *dir; /* the cached directory path (components joined by '/') */
	size_t len, cap;
	int *fds; /* fds[i]: directory of the first i+1 components (owned) */
	size_t *ends; /* ends[i]: end offset of component i in dir */
	size_t depth, fcap;
	/* dircache_keep_times: each directory's times as first opened */
	struct timespec (*times)[2];
	struct timespec root_times[2];
	bool keep_times;
};

void dircache_init(struct dircache *dc, int root_fd, bool mkdirs);
void dircache_release(struct dircache *dc);

/* From now on, every directory the cache opens (and the root) gets back
 * the access and modification times it had when opened, as the cache
 * lets go of it (a later lookup elsewhere, or release): removing or
 * renaming entries through the cache leaves the directories' times as
 * they were.  A directory reopened later takes the times it has then.
 * Returns 0 or -errno. */
int dircache_keep_times(struct dircache *dc);

/* An fd of the directory holding RELPATH (borrowed: valid until the next
 * call or release) and *ret_name its last component.  Never follows a
 * symlink; "." and ".." components are refused (-EINVAL).  Returns the fd
 * or -errno. */
int dircache_parent(struct dircache *dc, const char *relpath, const char **ret_name);

#endif
