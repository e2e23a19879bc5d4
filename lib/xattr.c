/* xattr lists.  Values are copied byte for byte, so POSIX ACLs
 * (system.posix_acl_*) and file capabilities travel as their on-disk
 * encodings without libacl or libcap. */
#define _GNU_SOURCE
#include "xattr.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "hash.h"
#include "util.h"
#include "banned.h"

#define PROC_FD_LEN 32

/* getxattrat(2) and listxattrat(2), Linux 6.13: one xattr of the entry NAME
 * in a directory, looked up without following it.  The numbers are the
 * same on every architecture (the unified table since 5.1); glibc of
 * Debian 12 has no wrappers. */
#ifndef __NR_getxattrat
#define __NR_getxattrat 464
#endif
#ifndef __NR_listxattrat
#define __NR_listxattrat 465
#endif
#ifndef __NR_removexattrat
#define __NR_removexattrat 466
#endif

struct xattrat_args {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

/* Where the xattrs are read from: an fd opened for reading, an O_PATH fd
 * (through /proc/self/fd/N, which names the inode itself), or the entry
 * NAME in DIR_FD (the *xattrat calls, which spare that path's lookup and
 * the open and close of an O_PATH fd: a third of a first unify's image
 * import was the lookup of /proc paths). */
struct xsrc {
	int fd;
	bool o_path;
	const char *name; /* non-NULL: NAME in DIR_FD (fd) */
};

static const char *proc_path(int fd, char buf[PROC_FD_LEN])
{
	snprintf(buf, PROC_FD_LEN, "/proc/self/fd/%d", fd);
	return buf;
}

/* 0 unknown, 1 the kernel has the *xattrat calls, -1 it has not */
static int have_xattrat;

static ssize_t do_list(const struct xsrc *s, char *buf, size_t size)
{
	char p[PROC_FD_LEN];

	if (s->name)
		return syscall(__NR_listxattrat, s->fd, s->name, AT_SYMLINK_NOFOLLOW, buf, size);
	return s->o_path ? listxattr(proc_path(s->fd, p), buf, size) : flistxattr(s->fd, buf, size);
}

static ssize_t do_get(const struct xsrc *s, const char *name, void *buf, size_t size)
{
	char p[PROC_FD_LEN];

	if (s->name) {
		struct xattrat_args a = {.value = (uint64_t)(uintptr_t)buf, .size = (uint32_t)size};
		return syscall(__NR_getxattrat, s->fd, s->name, AT_SYMLINK_NOFOLLOW, name, &a, sizeof(a));
	}
	return s->o_path ? getxattr(proc_path(s->fd, p), name, buf, size) : fgetxattr(s->fd, name, buf, size);
}

int xattr_set(int fd, bool o_path, const char *name, const void *value, size_t size)
{
	char p[PROC_FD_LEN];
	int r = o_path ? setxattr(proc_path(fd, p), name, value, size, 0)
	               : fsetxattr(fd, name, value, size, 0);
	return r < 0 ? neg_errno() : 0;
}

int xattr_get(int fd, bool o_path, const char *name, void *value, size_t size)
{
	struct xsrc src = {.fd = fd, .o_path = o_path};
	ssize_t n = do_get(&src, name, value, size);
	return n < 0 ? neg_errno() : (int)n;
}

int xattr_remove(int fd, bool o_path, const char *name)
{
	char p[PROC_FD_LEN];
	int r = o_path ? removexattr(proc_path(fd, p), name) : fremovexattr(fd, name);
	return r < 0 ? neg_errno() : 0;
}

static int cmp_xattr(const void *a, const void *b)
{
	return strcmp(((const struct xattr *)a)->name, ((const struct xattr *)b)->name);
}

void xattr_list_free(struct xattr_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* XNAME's value, or with XNAME NULL the NUL-separated names, into *ret
 * (malloc'd, one byte at least): one call when it fits a small buffer, as
 * nearly all do, else asked for its size first.  Returns the length or
 * -errno (-ENODATA: the xattr is gone meanwhile). */
static ssize_t read_sized(const struct xsrc *s, const char *xname, void **ret)
{
	char small[1024];
	void *v = NULL;
	ssize_t len = xname ? do_get(s, xname, small, sizeof(small)) : do_list(s, small, sizeof(small));

	if (len >= 0) {
		v = malloc(len ? (size_t)len : 1);
		if (!v)
			return -ENOMEM;
		memcpy(v, small, (size_t)len);
	}
	while (len < 0 && errno == ERANGE) {
		len = xname ? do_get(s, xname, NULL, 0) : do_list(s, NULL, 0);
		if (len < 0)
			break;
		free(v);
		v = malloc(len ? (size_t)len : 1);
		if (!v)
			return -ENOMEM;
		len = xname ? do_get(s, xname, v, (size_t)len) : do_list(s, v, (size_t)len);
	}
	if (len < 0) {
		ssize_t r = neg_errno();
		free(v);
		return r;
	}
	*ret = v;
	return len;
}

static int list_read(const struct xsrc *s, unsigned flags, struct xattr_list *ret)
{
	struct xattr_list l = {0};
	_cleanup_free_ void *names = NULL;
	ssize_t len = read_sized(s, NULL, &names);

	if (len == -ENOTSUP || len == -EOPNOTSUPP)
		len = 0; /* no xattrs on this filesystem */
	if (len < 0)
		return (int)len;
	for (char *n = names; n < (char *)names + len; n += strlen(n) + 1) {
		struct xattr *x;
		void *value;
		ssize_t vl;

		if ((flags & XATTR_SKIP_OVERLAY) && !strncmp(n, "trusted.overlay.", 16))
			continue;
		x = realloc(l.v, (l.n + 1) * sizeof(*l.v));
		if (!x) {
			xattr_list_free(&l);
			return -ENOMEM;
		}
		l.v = x;
		x = &l.v[l.n];
		*x = (struct xattr){.name = strdup(n)};
		if (!x->name) {
			xattr_list_free(&l);
			return -ENOMEM;
		}
		vl = read_sized(s, n, &value);
		if (vl == -ENODATA) { /* removed meanwhile */
			free(x->name);
			continue;
		}
		if (vl < 0) {
			free(x->name);
			xattr_list_free(&l);
			return (int)vl;
		}
		x->value = value;
		x->size = (size_t)vl;
		l.n++;
	}
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), cmp_xattr);
	*ret = l;
	return 0;
}

int xattr_list_read(int fd, bool o_path, unsigned flags, struct xattr_list *ret)
{
	struct xsrc src = {.fd = fd, .o_path = o_path};

	return list_read(&src, flags, ret);
}

int xattr_list_read_at(int dir_fd, const char *name, unsigned flags, struct xattr_list *ret)
{
	struct xsrc src = {.fd = dir_fd, .name = name};
	_cleanup_close_ int fd = -1;
	int r;

	if (__atomic_load_n(&have_xattrat, __ATOMIC_RELAXED) >= 0) {
		r = list_read(&src, flags, ret);
		if (r != -ENOSYS) {
			__atomic_store_n(&have_xattrat, 1, __ATOMIC_RELAXED);
			return r;
		}
		__atomic_store_n(&have_xattrat, -1, __ATOMIC_RELAXED);
	}
	/* before 6.13: the entry's inode through an O_PATH fd */
	fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	return xattr_list_read(fd, true, flags, ret);
}

int xattr_remove_all_at(int dir_fd, const char *name)
{
	struct xattr_list l = {0};
	_cleanup_close_ int fd = -1;
	int r = xattr_list_read_at(dir_fd, name, 0, &l);

	/* the read found out which calls this kernel has */
	if (r == 0 && l.n && __atomic_load_n(&have_xattrat, __ATOMIC_RELAXED) < 0 &&
	    (fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0)
		r = neg_errno();
	for (size_t i = 0; r == 0 && i < l.n; i++) {
		if (fd < 0)
			r = syscall(__NR_removexattrat, dir_fd, name, AT_SYMLINK_NOFOLLOW, l.v[i].name) < 0
			            ? neg_errno()
			            : 0;
		else
			r = xattr_remove(fd, true, l.v[i].name);
		if (r == -ENODATA)
			r = 0;
	}
	xattr_list_free(&l);
	return r;
}

int xattr_list_apply(int fd, bool o_path, const struct xattr_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		int r = xattr_set(fd, o_path, l->v[i].name, l->v[i].value, l->v[i].size);
		if (r < 0)
			return r;
	}
	return 0;
}

int xattr_list_hash(const struct xattr_list *l, struct hash_ctx *c)
{
	for (size_t i = 0; i < l->n; i++) {
		uint64_t sz = l->v[i].size;
		int r = hash_update(c, l->v[i].name, strlen(l->v[i].name) + 1);
		if (r == 0)
			r = hash_update(c, &sz, sizeof(sz));
		if (r == 0)
			r = hash_update(c, l->v[i].value, l->v[i].size);
		if (r < 0)
			return r;
	}
	return 0;
}

bool xattr_list_equal(const struct xattr_list *a, const struct xattr_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->v[i].name, b->v[i].name) || a->v[i].size != b->v[i].size ||
		    memcmp(a->v[i].value, b->v[i].value, a->v[i].size))
			return false;
	}
	return true;
}
