/* The safe walk.  Why read a whole directory before visiting it: callbacks
 * may create or remove entries in the directory being walked (unify removes
 * files from the upper as it goes), and readdir's behaviour under concurrent
 * modification is unspecified. */
#define _GNU_SOURCE
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

struct pathbuf {
	char *s;
	size_t len, cap;
};

static int pathbuf_push(struct pathbuf *pb, const char *name, size_t *ret_old)
{
	size_t nl = strlen(name), need = pb->len + nl + 2;

	if (need > pb->cap) {
		size_t cap = MAX(need, pb->cap * 2);
		char *s = realloc(pb->s, cap);
		if (!s)
			return -ENOMEM;
		pb->s = s;
		pb->cap = cap;
	}
	*ret_old = pb->len;
	if (pb->len > 0)
		pb->s[pb->len++] = '/';
	memcpy(pb->s + pb->len, name, nl + 1);
	pb->len += nl;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Read all names of a directory except . and .., sorted. */
/* getdents64 straight on the directory fd (rewound first): no second fd,
 * no DIR stream. */
static int read_names(int dirfd, char ***ret_names, size_t *ret_n)
{
	char buf[32768];
	char **names = NULL;
	size_t n = 0, cap = 0;

	if (lseek(dirfd, 0, SEEK_SET) < 0)
		return neg_errno();
	for (;;) {
		ssize_t len = getdents64(dirfd, buf, sizeof(buf));
		if (len < 0) {
			int r = neg_errno();
			if (r == -EINTR)
				continue;
			free_names(names, n);
			return r;
		}
		if (len == 0)
			break;
		for (ssize_t off = 0; off < len;) {
			struct dirent64 *de = (struct dirent64 *)(buf + off);
			off += de->d_reclen;
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 32;
				char **nn = realloc(names, nc * sizeof(*nn));
				if (!nn) {
					free_names(names, n);
					return -ENOMEM;
				}
				names = nn;
				cap = nc;
			}
			names[n] = strdup(de->d_name);
			if (!names[n]) {
				free_names(names, n);
				return -ENOMEM;
			}
			n++;
		}
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_names);
	*ret_names = names;
	*ret_n = n;
	return 0;
}

static int walk_dir(int dir_fd, struct pathbuf *pb, unsigned depth, walk_fn fn, void *ud)
{
	char **names = NULL;
	size_t n = 0;
	int r;

	r = read_names(dir_fd, &names, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++) {
		struct walk_entry e = {.parent_fd = dir_fd, .name = names[i], .fd = -1, .depth = depth + 1};
		size_t old;

		if (fstatat(dir_fd, names[i], &e.st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* removed under us: nothing to visit */
			r = neg_errno();
			break;
		}
		r = pathbuf_push(pb, names[i], &old);
		if (r < 0)
			break;
		e.path = pb->s;
		e.path_len = pb->len;
		if (S_ISDIR(e.st.st_mode)) {
			struct stat st2;
			e.fd = openat(dir_fd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (e.fd < 0) {
				r = neg_errno();
			} else if (fstat(e.fd, &st2) < 0) {
				r = neg_errno();
			} else if (st2.st_ino != e.st.st_ino || st2.st_dev != e.st.st_dev) {
				r = -EAGAIN; /* swapped between stat and open */
			} else {
				e.st = st2;
				r = fn(&e, WALK_DIR_PRE, ud);
				if (r == 0) {
					r = walk_dir(e.fd, pb, depth + 1, fn, ud);
					e.path = pb->s; /* pb may have moved */
					if (r >= 0)
						r = fn(&e, WALK_DIR_POST, ud);
				} else if (r == WALK_SKIP) {
					r = 0;
				}
			}
			if (e.fd >= 0)
				close(e.fd);
		} else {
			r = fn(&e, WALK_ENTRY, ud);
		}
		pb->len = old;
		pb->s[old] = '\0';
	}
	free_names(names, n);
	return r < 0 ? r : 0;
}

int walk_tree(int root_fd, walk_fn fn, void *userdata)
{
	struct pathbuf pb = {0};
	struct walk_entry e = {.parent_fd = -1, .name = "", .path = "", .fd = root_fd};
	int r;

	pb.s = malloc(256);
	if (!pb.s)
		return -ENOMEM;
	pb.cap = 256;
	pb.s[0] = '\0';
	if (fstat(root_fd, &e.st) < 0) {
		free(pb.s);
		return neg_errno();
	}
	if (!S_ISDIR(e.st.st_mode)) {
		/* never hand the callback a WALK_DIR_PRE for a non-directory */
		free(pb.s);
		return -ENOTDIR;
	}
	r = fn(&e, WALK_DIR_PRE, userdata);
	if (r == 0) {
		r = walk_dir(root_fd, &pb, 0, fn, userdata);
		if (r >= 0)
			r = fn(&e, WALK_DIR_POST, userdata);
	}
	free(pb.s);
	return r < 0 ? r : 0;
}

/* Next component of *p; advances *p.  Returns length, 0 at the end. */
static size_t next_component(const char **p, const char **ret_start)
{
	const char *s = *p, *e;

	while (*s == '/')
		s++;
	e = s;
	while (*e && *e != '/')
		e++;
	*ret_start = s;
	*p = e;
	return (size_t)(e - s);
}

int open_parent_beneath(int root_fd, const char *relpath, bool mkdirs, const char **ret_name)
{
	const char *p = relpath, *comp, *last = NULL;
	size_t len;
	int fd;

	fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	for (;;) {
		char name[NAME_MAX + 1];
		const char *peek;
		int nfd;

		len = next_component(&p, &comp);
		if (len == 0)
			break;
		peek = p;
		while (*peek == '/')
			peek++;
		if (*peek == '\0') {
			if (peek != p) {
				/* "name/" would make openat() follow a
				 * symlink NAME despite O_NOFOLLOW */
				close(fd);
				return -EINVAL;
			}
			last = comp;
			break;
		}
		if (len > NAME_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(name, comp, len);
		name[len] = '\0';
		if (!strcmp(name, "..") || !strcmp(name, ".")) {
			close(fd);
			return -EINVAL;
		}
		nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && mkdirs) {
			if (mkdirat(fd, name, 0755) < 0 && errno != EEXIST) {
				int r = neg_errno();
				close(fd);
				return r;
			}
			nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd < 0) {
			int r = neg_errno();
			close(fd);
			return r;
		}
		close(fd);
		fd = nfd;
	}
	if (!last) {
		close(fd);
		return -EINVAL;
	}
	*ret_name = last;
	return fd;
}

int open_beneath(int root_fd, const char *relpath, int flags, mode_t mode)
{
	const char *name;
	int dfd, fd;

	if (relpath[0] == '\0') {
		fd = openat(root_fd, ".", flags | O_CLOEXEC, mode);
		return fd < 0 ? neg_errno() : fd;
	}
	dfd = open_parent_beneath(root_fd, relpath, false, &name);
	if (dfd < 0)
		return dfd;
	if (!strcmp(name, "..") || !strcmp(name, ".")) {
		close(dfd);
		return -EINVAL;
	}
	fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		fd = neg_errno();
	close(dfd);
	return fd;
}
