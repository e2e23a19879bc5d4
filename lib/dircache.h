/* A one-entry cache of "the directory that holds this path".  Walk order
 * groups files by directory, so consecutive operations nearly always hit
 * it, and each file costs one openat instead of one per path component. */
#ifndef VUNIFY_DIRCACHE_H
#define VUNIFY_DIRCACHE_H

#include <stdbool.h>
#include <stddef.h>

struct dircache {
	int root_fd; /* not owned */
	bool mkdirs; /* lower layers: create directories, replace non-dirs */
	char *dir;
	size_t len, cap;
	int fd; /* owned; -1 when empty */
};

void dircache_init(struct dircache *dc, int root_fd, bool mkdirs);
void dircache_release(struct dircache *dc);

/* An fd of the directory holding RELPATH (borrowed: valid until the next
 * call or release) and *ret_name its last component.  Never follows a
 * symlink.  Returns the fd or -errno. */
int dircache_parent(struct dircache *dc, const char *relpath, const char **ret_name);

#endif
