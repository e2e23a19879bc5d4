/* xattr lists.  Values are copied byte for byte, so POSIX ACLs
 * (system.posix_acl_*) and file capabilities travel as their on-disk
 * encodings without libacl or libcap. */
#define _GNU_SOURCE
#include "xattr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

#include "hash.h"
#include "util.h"
#include "banned.h"

#define PROC_FD_LEN 32

static const char *proc_path(int fd, char buf[PROC_FD_LEN])
{
	snprintf(buf, PROC_FD_LEN, "/proc/self/fd/%d", fd);
	return buf;
}

static ssize_t do_list(int fd, bool o_path, char *buf, size_t size)
{
	char p[PROC_FD_LEN];
	return o_path ? listxattr(proc_path(fd, p), buf, size) : flistxattr(fd, buf, size);
}

static ssize_t do_get(int fd, bool o_path, const char *name, void *buf, size_t size)
{
	char p[PROC_FD_LEN];
	return o_path ? getxattr(proc_path(fd, p), name, buf, size) : fgetxattr(fd, name, buf, size);
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
	ssize_t n = do_get(fd, o_path, name, value, size);
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

int xattr_list_read(int fd, bool o_path, unsigned flags, struct xattr_list *ret)
{
	struct xattr_list l = {0};
	_cleanup_free_ char *names = NULL;
	ssize_t len;

	for (;;) {
		len = do_list(fd, o_path, NULL, 0);
		if (len < 0) {
			if (errno == ENOTSUP || errno == EOPNOTSUPP) {
				*ret = l;
				return 0;
			}
			return neg_errno();
		}
		if (len == 0) {
			*ret = l;
			return 0;
		}
		free(names);
		names = malloc((size_t)len);
		if (!names)
			return -ENOMEM;
		len = do_list(fd, o_path, names, (size_t)len);
		if (len >= 0)
			break;
		if (errno != ERANGE)
			return neg_errno();
	}
	for (char *n = names; n < names + len; n += strlen(n) + 1) {
		struct xattr *x;
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
		x->name = strdup(n);
		x->value = NULL;
		x->size = 0;
		if (!x->name) {
			xattr_list_free(&l);
			return -ENOMEM;
		}
		l.n++;
		for (;;) {
			vl = do_get(fd, o_path, n, NULL, 0);
			if (vl < 0)
				break;
			free(x->value);
			x->value = malloc(vl ? (size_t)vl : 1);
			if (!x->value) {
				xattr_list_free(&l);
				return -ENOMEM;
			}
			vl = do_get(fd, o_path, n, x->value, (size_t)vl);
			if (vl >= 0 || errno != ERANGE)
				break;
		}
		if (vl < 0) {
			int r = neg_errno();
			if (r == -ENODATA) { /* removed meanwhile */
				free(x->name);
				free(x->value);
				l.n--;
				continue;
			}
			xattr_list_free(&l);
			return r;
		}
		x->size = (size_t)vl;
	}
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), cmp_xattr);
	*ret = l;
	return 0;
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
