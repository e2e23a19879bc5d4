/* Small helpers shared by every module: cleanup attributes, error
 * conventions and safe integer/string helpers.
 *
 * Error convention (everywhere in lib/): functions return 0 (or a count)
 * on success and -errno on failure, taken right after the failing call.
 * Library code never prints and never exits; only src/ speaks. */
#ifndef VUNIFY_UTIL_H
#define VUNIFY_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>
#include <dirent.h>
#include <stdio.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline void freep(void *p)
{
	free(*(void **)p);
}
static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
static inline void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}
#define _cleanup_free_ __attribute__((cleanup(freep)))
#define _cleanup_close_ __attribute__((cleanup(closep)))
#define _cleanup_fclose_ __attribute__((cleanup(fclosep)))
#define _cleanup_closedir_ __attribute__((cleanup(closedirp)))

/* Hand ownership out of a cleanup variable. */
static inline void *steal_ptr(void *pp)
{
	void **p = pp;
	void *v = *p;
	*p = NULL;
	return v;
}
#define steal_pointer(pp) steal_ptr(pp)
static inline int steal_fd(int *fd)
{
	int v = *fd;
	*fd = -1;
	return v;
}

/* -errno of the last failed call, never 0 (guards against a libc call
 * that failed without setting errno). */
static inline int neg_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

/* "Changed under us": a file or directory is no longer what an earlier
 * look saw (shrank, grew, hashes differently, was replaced by another
 * inode or type, or the tree was moved).  The one errno every module
 * returns for it. */
#define E_CHANGED ESTALE

/* May an operation on a tree a user can change leave an entry alone on
 * error R (-errno) and go on?  True when the entry changed under us or is
 * gone: -E_CHANGED, -ENOENT (removed), -ENOTDIR and -ELOOP (a directory
 * on its path replaced by a file or a symlink).  The one list of such
 * errors; a caller adds only what is particular to its step. */
static inline bool changed_under_us(int r)
{
	return r == -E_CHANGED || r == -ENOENT || r == -ENOTDIR || r == -ELOOP;
}

/* Join "a" and "b" with one '/', malloc'd; "" as a means just b.
 * Returns NULL on allocation failure. */
char *path_join(const char *a, const char *b);

/* Read a whole small file relative to dirfd (no symlink followed) into a
 * NUL-terminated malloc'd buffer.  Returns 0 or -errno (-EFBIG: longer
 * than MAX bytes; -ELOOP: NAME is a symlink). */
int read_file_at(int dirfd, const char *name, size_t max, char **ret_buf, size_t *ret_len);

/* Open NAME under dir_fd for reading only if it is a regular file, without
 * ever opening anything else: the name is first opened O_PATH|O_NOFOLLOW
 * (which opens no device, FIFO or socket), its type checked on that fd,
 * and only then the same inode reopened through /proc/self/fd with FLAGS
 * (O_RDONLY plus e.g. O_NONBLOCK, O_NOATIME; O_NOATIME is dropped where the
 * kernel refuses it with EPERM).  A path swapped for a device node between
 * a walk's stat and this open is never opened.  When ret_st is non-NULL it
 * gets the fstat of the opened fd.  Returns the fd, -E_CHANGED when NAME is
 * not a regular file, -ELOOP for a symlink, or -errno. */
int open_regular_at(int dir_fd, const char *name, int flags, struct stat *ret_st);

/* readlinkat(2) of the symlink NAME under DIR_FD into BUF (SIZE bytes),
 * NUL-terminated.  Returns the target's length (< SIZE), -ENAMETOOLONG
 * when the target and its NUL do not fit in SIZE (readlinkat truncates
 * silently), -EINVAL when NAME is not a symlink, or -errno. */
ssize_t readlink_at(int dir_fd, const char *name, char *buf, size_t size);

/* Open the directory NAME under DIR_FD for readdir(3): openat with
 * O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC (NAME "." opens DIR_FD's directory
 * afresh, so the caller's fd and its position stay untouched), then
 * fdopendir.  Returns 0 and *RET_DIR (closedir it; dirfd(3) gives its fd)
 * or -errno (-ENOENT: no NAME; -ENOTDIR or -ELOOP: not a directory). */
int opendir_at(int dir_fd, const char *name, DIR **ret_dir);

/* Write a small file atomically: temp name in the same directory, fsync,
 * rename over NAME, fsync the directory.  Returns 0 or -errno. */
int write_file_atomic_at(int dirfd, const char *name, const void *buf, size_t len, mode_t mode);

/* pread(2) of up to LEN (> 0) bytes at OFF, retried on EINTR.  Returns
 * the number read (> 0), -E_CHANGED at the end of the file (the caller
 * expected more: the file shrank), or -errno. */
ssize_t pread_data(int fd, void *buf, size_t len, uint64_t off);

/* write(2) until done; returns 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);
/* pwrite(2) at OFF until done; returns 0 or -errno. */
int pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* fsync a directory fd, tolerating filesystems that refuse it. */
int fsync_dir(int dirfd);

/* A tree built whole under the temporary name TMP in DIR_FD takes its
 * final NAME: syncfs of the filesystem of FS_FD (the tree's contents
 * durable first), TMP renamed to NAME (never over an existing NAME:
 * -EEXIST), DIR_FD fsync'd.  Returns 0 or -errno. */
int publish_tree(int fs_fd, int dir_fd, const char *tmp, const char *name);

/* Parse an unsigned decimal with overflow checks (no atoi). */
int parse_u64(const char *s, uint64_t *ret);

/* Format a byte count like "1.2 GiB" into buf. */
const char *format_bytes(uint64_t n, char *buf, size_t size);

/* qsort/bsearch order of an array of C strings (char *). */
int cmp_strp(const void *a, const void *b);

#endif
