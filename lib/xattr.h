/* Extended attributes of one inode as a sorted list, read and written
 * without following symlinks.  For fds opened with O_PATH (symlinks,
 * devices, fifos, sockets: things vunify must not open for reading) the
 * calls go through /proc/self/fd/N, which names the inode itself. */
#ifndef VUNIFY_XATTR_H
#define VUNIFY_XATTR_H

#include <stdbool.h>
#include <stddef.h>

struct hash_ctx;

struct xattr {
	char *name;
	unsigned char *value;
	size_t size;
};

struct xattr_list {
	struct xattr *v;
	size_t n;
};

enum xattr_flags {
	/* Leave out trusted.overlay.*: those steer overlayfs itself and are
	 * never part of a guest's view. */
	XATTR_SKIP_OVERLAY = 1 << 0,
};

/* Read every xattr of fd into *ret (sorted by name).  O_PATH says fd was
 * opened with O_PATH.  Filesystems without xattr support give an empty
 * list.  Returns 0 or -errno; *ret untouched on failure. */
int xattr_list_read(int fd, bool o_path, unsigned flags, struct xattr_list *ret);

/* The same for the entry NAME in directory DIR_FD, not followed if it is a
 * symlink: read by name (getxattrat, Linux 6.13+; through an O_PATH fd on
 * older kernels), so nothing is opened.  For trees vunify owns (its
 * working copies) or where the entry's identity is checked otherwise: by
 * name, a rename between the caller's stat and this call is not seen. */
int xattr_list_read_at(int dir_fd, const char *name, unsigned flags, struct xattr_list *ret);

/* Remove every xattr of the entry NAME in DIR_FD (not followed; by name as
 * xattr_list_read_at).  Returns 0 or -errno. */
int xattr_remove_all_at(int dir_fd, const char *name);

/* Set every xattr of l on fd.  Returns 0 or -errno. */
int xattr_list_apply(int fd, bool o_path, const struct xattr_list *l);

/* Set / get / remove one xattr (same o_path rule).  get returns the value
 * length or -errno; value may be NULL to ask for the size. */
int xattr_set(int fd, bool o_path, const char *name, const void *value, size_t size);
int xattr_get(int fd, bool o_path, const char *name, void *value, size_t size);
int xattr_remove(int fd, bool o_path, const char *name);

/* Feed names and values into a hash in a canonical form. */
int xattr_list_hash(const struct xattr_list *l, struct hash_ctx *c);

/* True if both lists hold the same names and values. */
bool xattr_list_equal(const struct xattr_list *a, const struct xattr_list *b);

void xattr_list_free(struct xattr_list *l);

#endif
