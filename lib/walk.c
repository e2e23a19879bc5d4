/* The safe walk.  Why read a whole directory before visiting it: callbacks
 * may create or remove entries in the directory being walked (unify removes
 * files from the upper as it goes), and readdir's behaviour under concurrent
 * modification is unspecified. */
#define _GNU_SOURCE
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
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
		qsort(names, n, sizeof(*names), cmp_strp);
	*ret_names = names;
	*ret_n = n;
	return 0;
}

/* One directory being walked.  The walk keeps an explicit stack of these
 * instead of recursing, so a tree of any depth costs heap, not C stack
 * (a guest tree 16,309 levels deep overflowed the recursive version). */
struct frame {
	char **names; /* its entries, sorted */
	size_t n, next;
	int fd; /* O_DIRECTORY fd, or -1 while evicted (see WALK_MAX_FDS) */
	struct stat st; /* fstat of fd when opened */
	size_t path_old; /* path length to restore when leaving it */
	const char *name; /* its name in the parent frame's names */
};

/* At most this many directory fds are held open by the walk (besides the
 * caller's root fd), however deep the tree: when a deeper directory is
 * entered, the fd of the shallowest open one is closed; when the walk
 * climbs back to a directory whose fd was closed, it reopens it as ".." of
 * its child and checks that it is the same directory (device and inode),
 * or stops with -E_CHANGED (the tree was moved under it).  So frames
 * [open_lo, top] hold open fds and frames 1..open_lo-1 do not. */
#define WALK_MAX_FDS 64

static void frames_free(struct frame *f, size_t top, int root_fd)
{
	for (size_t i = 0; i <= top; i++) {
		free_names(f[i].names, f[i].n);
		if (f[i].fd >= 0 && f[i].fd != root_fd)
			close(f[i].fd);
	}
	free(f);
}

/* Reopen frame k (k >= 1, fd evicted) as ".." of frame k+1. */
static int frame_reopen(struct frame *f, size_t k)
{
	struct stat st;
	int fd = openat(f[k + 1].fd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return neg_errno();
	if (fstat(fd, &st) < 0) {
		int r = neg_errno();
		close(fd);
		return r;
	}
	if (st.st_dev != f[k].st.st_dev || st.st_ino != f[k].st.st_ino) {
		close(fd);
		return -E_CHANGED;
	}
	f[k].fd = fd;
	return 0;
}

static int walk_iter(int root_fd, struct pathbuf *pb, const struct stat *root_st, walk_fn fn, void *ud)
{
	struct frame *f;
	size_t cap = 64, top = 0, open_lo = 1;
	int r;

	f = calloc(cap, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f[0] = (struct frame){.fd = root_fd, .st = *root_st};
	r = read_names(root_fd, &f[0].names, &f[0].n);
	if (r < 0) {
		free(f);
		return r;
	}
	while (r >= 0) {
		struct frame *d = &f[top];
		struct walk_entry e = {.fd = -1, .depth = (unsigned)top + 1};
		size_t old;

		if (d->next == d->n) {
			/* directory done: its DIR_POST, then back to the parent */
			if (top == 0)
				break;
			if (top - 1 >= 1 && f[top - 1].fd < 0) {
				r = frame_reopen(f, top - 1);
				if (r < 0)
					break;
				open_lo = top - 1;
			}
			free_names(d->names, d->n);
			d->names = NULL;
			d->n = d->next = 0;
			e = (struct walk_entry){.parent_fd = f[top - 1].fd,
			                        .name = d->name,
			                        .path = pb->s,
			                        .path_len = pb->len,
			                        .fd = d->fd,
			                        .st = d->st,
			                        .depth = (unsigned)top};
			r = fn(&e, WALK_DIR_POST, ud);
			close(d->fd);
			d->fd = -1;
			pb->len = d->path_old;
			pb->s[pb->len] = '\0';
			top--;
			if (open_lo > top && top >= 1)
				open_lo = top;
			continue;
		}
		e.parent_fd = d->fd;
		e.name = d->names[d->next++];
		if (fstatat(d->fd, e.name, &e.st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* removed under us: nothing to visit */
			r = neg_errno();
			break;
		}
		r = pathbuf_push(pb, e.name, &old);
		if (r < 0)
			break;
		e.path = pb->s;
		e.path_len = pb->len;
		if (!S_ISDIR(e.st.st_mode)) {
			r = fn(&e, WALK_ENTRY, ud);
			pb->len = old;
			pb->s[old] = '\0';
			continue;
		}
		{
			struct stat st2;
			e.fd = openat(d->fd, e.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (e.fd < 0) {
				r = neg_errno();
			} else if (fstat(e.fd, &st2) < 0) {
				r = neg_errno();
			} else if (st2.st_ino != e.st.st_ino || st2.st_dev != e.st.st_dev) {
				r = -E_CHANGED; /* swapped between stat and open */
			} else {
				e.st = st2;
				r = fn(&e, WALK_DIR_PRE, ud);
			}
		}
		if (r != 0) {
			/* error, or WALK_SKIP: not entered */
			if (e.fd >= 0)
				close(e.fd);
			pb->len = old;
			pb->s[old] = '\0';
			if (r == WALK_SKIP)
				r = 0;
			continue;
		}
		if (top + 1 == cap) {
			struct frame *nf = realloc(f, cap * 2 * sizeof(*f));
			if (!nf) {
				close(e.fd);
				r = -ENOMEM;
				break;
			}
			f = nf;
			cap *= 2;
		}
		top++;
		f[top] = (struct frame){.fd = e.fd, .st = e.st, .path_old = old, .name = e.name};
		if (top - open_lo + 1 > WALK_MAX_FDS) {
			close(f[open_lo].fd);
			f[open_lo].fd = -1;
			open_lo++;
		}
		r = read_names(f[top].fd, &f[top].names, &f[top].n);
	}
	frames_free(f, top, root_fd);
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
		r = walk_iter(root_fd, &pb, &e.st, fn, userdata);
		e.path = pb.s; /* pb may have moved */
		if (r >= 0)
			r = fn(&e, WALK_DIR_POST, userdata);
	}
	free(pb.s);
	return r < 0 ? r : 0;
}

/* ---- fdlevels: contract in walk.h ---- */

int fdlevels_push(struct fdlevels *l, int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int r = neg_errno();
		if (l->n > 0 || l->own0)
			close(fd);
		return r;
	}
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 64;
		struct fdlevel *nv = realloc(l->v, nc * sizeof(*nv));
		if (!nv) {
			if (l->n > 0 || l->own0)
				close(fd);
			return -ENOMEM;
		}
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = (struct fdlevel){.fd = fd, .dev = st.st_dev, .ino = st.st_ino};
	if (l->open_lo == 0)
		l->open_lo = 1;
	if (l->n - l->open_lo > WALK_MAX_FDS) {
		close(l->v[l->open_lo].fd);
		l->v[l->open_lo].fd = -1;
		l->open_lo++;
	}
	return 0;
}

int fdlevels_top(const struct fdlevels *l)
{
	return l->n ? l->v[l->n - 1].fd : -1;
}

int fdlevels_drop(struct fdlevels *l)
{
	struct fdlevel *d, *up;
	int r = 0;

	if (l->n == 0)
		return -EINVAL;
	d = &l->v[l->n - 1];
	up = l->n >= 2 ? &l->v[l->n - 2] : NULL;
	if (up && up->fd < 0) {
		struct stat st;
		int fd = openat(d->fd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			r = neg_errno();
		} else if (fstat(fd, &st) < 0) {
			r = neg_errno();
			close(fd);
		} else if (st.st_dev != up->dev || st.st_ino != up->ino) {
			r = -E_CHANGED;
			close(fd);
		} else {
			up->fd = fd;
			l->open_lo = l->n - 2;
		}
	}
	if (l->n > 1 || l->own0)
		close(d->fd);
	l->n--;
	return r;
}

void fdlevels_release(struct fdlevels *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].fd >= 0 && (i > 0 || l->own0))
			close(l->v[i].fd);
	free(l->v);
	*l = (struct fdlevels){.own0 = l->own0};
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

/* Check RELPATH for open_*_beneath: at least one component, none "." or
 * "..", no trailing '/' (it would make the kernel follow a last symlink
 * despite O_NOFOLLOW), directories no longer than NAME_MAX.  Points
 * *ret_last at the last component.  Returns 0 or -errno. */
static int check_relpath(const char *relpath, const char **ret_last)
{
	const char *p = relpath, *comp, *last = NULL;
	size_t len;

	while ((len = next_component(&p, &comp)) > 0) {
		if ((len == 1 && comp[0] == '.') || (len == 2 && comp[0] == '.' && comp[1] == '.'))
			return -EINVAL;
		if (*p == '\0') {
			last = comp;
			break;
		}
		if (len > NAME_MAX)
			return -ENAMETOOLONG;
	}
	if (!last)
		return -EINVAL; /* empty, or a trailing '/' */
	*ret_last = last;
	return 0;
}

/* openat2() confined to below dir_fd: no symlink, no magic link, no ".."
 * out of it anywhere on PATH (relative, shorter than PATH_MAX).  Retries
 * the kernel's -EAGAIN (a rename elsewhere raced the lookup) a few times.
 * Returns an fd or -errno (-ENOSYS: a kernel before 5.6). */
static int openat2_beneath(int dir_fd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
	        .flags = (uint64_t)(unsigned)(flags | O_CLOEXEC),
	        .mode = flags & (O_CREAT | O_TMPFILE) ? mode : 0,
	        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	for (int tries = 0; tries < 8; tries++) {
		fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno != EAGAIN)
			break;
	}
	return neg_errno();
}

/* The directory holding the last component of RELPATH (checked by
 * check_relpath, LAST inside it), one component at a time with
 * O_NOFOLLOW.  Only where openat2_beneath cannot serve: a directory part
 * of PATH_MAX bytes or more (guest trees can be deeper than that), missing
 * directories to create (MKDIRS), or a kernel without openat2.  Returns
 * an fd or -errno. */
static int open_parent_by_components(int root_fd, const char *relpath, const char *last, bool mkdirs)
{
	const char *p = relpath, *comp;
	size_t len;
	int fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return neg_errno();
	while ((len = next_component(&p, &comp)) > 0 && comp != last) {
		char name[NAME_MAX + 1];
		int nfd;

		memcpy(name, comp, len);
		name[len] = '\0';
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
	return fd;
}

int open_parent_beneath(int root_fd, const char *relpath, bool mkdirs, const char **ret_name)
{
	const char *last;
	char dir[PATH_MAX];
	size_t skip = strspn(relpath, "/"), dlen;
	int r = check_relpath(relpath, &last), fd;

	if (r < 0)
		return r;
	dlen = (size_t)(last - (relpath + skip)); /* the directories, leading '/' left out */
	if (dlen == 0) {
		fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		fd = fd < 0 ? neg_errno() : fd;
	} else if (dlen < sizeof(dir)) {
		memcpy(dir, relpath + skip, dlen);
		dir[dlen] = '\0';
		fd = openat2_beneath(root_fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (fd == -ENOSYS || fd == -EAGAIN || (fd == -ENOENT && mkdirs))
			fd = open_parent_by_components(root_fd, relpath, last, mkdirs);
	} else {
		fd = open_parent_by_components(root_fd, relpath, last, mkdirs);
	}
	if (fd >= 0)
		*ret_name = last;
	return fd;
}

int open_beneath(int root_fd, const char *relpath, int flags, mode_t mode)
{
	const char *name, *last, *path = relpath + strspn(relpath, "/");
	int dfd, fd, r;

	if (relpath[0] == '\0') {
		fd = openat(root_fd, ".", flags | O_CLOEXEC, mode);
		return fd < 0 ? neg_errno() : fd;
	}
	r = check_relpath(relpath, &last);
	if (r < 0)
		return r;
	if (strlen(path) < PATH_MAX) {
		fd = openat2_beneath(root_fd, path, flags | O_NOFOLLOW, mode);
		if (fd != -ENOSYS && fd != -EAGAIN)
			return fd;
	}
	dfd = open_parent_beneath(root_fd, relpath, false, &name);
	if (dfd < 0)
		return dfd;
	fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		fd = neg_errno();
	close(dfd);
	return fd;
}
