/* The safe walk: a depth-first traversal of a directory tree that never
 * follows a symlink and never builds an absolute path.  Every entry is
 * reached through its parent's directory fd, so names of any bytes and
 * depths far beyond PATH_MAX work.  Any depth: the walk is a loop over an
 * explicit stack (heap, not C stack) and holds a bounded number of
 * directory fds (WALK_MAX_FDS in walk.c), reopening a directory it climbs
 * back to as ".." of its child, checked by device and inode.  The fds in a
 * walk_entry are valid during the callback only. */
#ifndef VUNIFY_WALK_H
#define VUNIFY_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

enum walk_event {
	WALK_ENTRY, /* any non-directory */
	WALK_DIR_PRE, /* a directory, before its children */
	WALK_DIR_POST, /* a directory, after its children */
};

struct walk_entry {
	int parent_fd; /* directory holding the entry (-1 for the root) */
	const char *name; /* name within parent_fd ("" for the root) */
	const char *path; /* path relative to the root, "" for the root */
	size_t path_len;
	int fd; /* for directories: an O_DIRECTORY fd of it; else -1 */
	struct stat st; /* lstat of the entry (fstat of fd for directories) */
	unsigned depth; /* 0 for the root */
};

/* Callback: return 0 to go on, WALK_SKIP from WALK_DIR_PRE to not descend,
 * or -errno to stop the walk with that error. */
#define WALK_SKIP 1
typedef int (*walk_fn)(const struct walk_entry *e, enum walk_event ev, void *userdata);

/* Walk the tree under root_fd (a directory fd; not closed).  Entries of a
 * directory are visited sorted by name so runs are reproducible.  Returns 0,
 * or the first -errno from the walk or the callback. */
int walk_tree(int root_fd, walk_fn fn, void *userdata);

/* Directory fds of another tree that a walk mirrors level by level (the
 * copy's destination, the upper that remove writes into), with at most
 * WALK_MAX_FDS of them open however deep: setting a deeper level closes the
 * shallowest open one (never level 0); dropping a level first reopens its
 * parent, if closed, as ".." of it, checked by device and inode (-E_CHANGED
 * if the tree was moved meanwhile).  Use: fdlevels_set(depth) on
 * WALK_DIR_PRE, fdlevels_top() for the parent of entries, fdlevels_drop()
 * on WALK_DIR_POST. */
struct fdlevels {
	struct fdlevel {
		int fd; /* -1 while closed */
		dev_t dev;
		ino_t ino;
	} * v;
	size_t cap, n, open_lo;
	bool own0; /* level 0's fd is closed by fdlevels_release */
};

/* Set level n->n (the next one) to fd, which it owns from now on (level 0:
 * only with own0).  Returns 0 or -errno (fd is closed on failure, but
 * level 0's only with own0). */
int fdlevels_push(struct fdlevels *l, int fd);
/* The deepest level's fd (always open), or -1 if none. */
int fdlevels_top(const struct fdlevels *l);
/* Close the deepest level; its parent is open afterwards.  Returns 0 or
 * -errno. */
int fdlevels_drop(struct fdlevels *l);
void fdlevels_release(struct fdlevels *l);

/* The one "open beneath" helper: open RELPATH below root_fd with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS),
 * so a symlink anywhere in the path fails with -ELOOP (or -ENOTDIR)
 * instead of being followed; O_PATH opens a last symlink itself.  Paths of
 * PATH_MAX bytes or more (and kernels without openat2) go component by
 * component with O_NOFOLLOW.  FLAGS apply to the last component
 * (O_NOFOLLOW|O_CLOEXEC are added).  '.', '..' and a trailing '/' are
 * refused with -EINVAL.  "" opens root_fd's directory again.  Returns an
 * fd or -errno. */
int open_beneath(int root_fd, const char *relpath, int flags, mode_t mode);

/* Open the directory holding RELPATH (as open_beneath) and point
 * *ret_name at the last component inside relpath.  With MKDIRS, missing
 * directories are created with mode 0755 (component by component: openat2
 * cannot create).  Returns an fd or -errno. */
int open_parent_beneath(int root_fd, const char *relpath, bool mkdirs, const char **ret_name);

#endif
