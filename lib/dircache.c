/* dircache: see dircache.h. */
#define _GNU_SOURCE
#include "dircache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layout.h"
#include "util.h"
#include "banned.h"

void dircache_init(struct dircache *dc, int root_fd, bool mkdirs)
{
	*dc = (struct dircache){.root_fd = root_fd, .mkdirs = mkdirs};
}

/* At most this many fds are cached, however deep the path: deeper, the
 * shallowest are closed (set to -1), and a lookup that would need one of
 * them starts again from the root.  A guest tree 20,000 levels deep would
 * otherwise need more fds than RLIMIT_NOFILE allows. */
#define DIRCACHE_MAX_FDS 64

/* Times are put back best effort: a directory's times are not part of
 * the view vunify keeps (SPEC: mtime of non-directories), only worth
 * keeping, so a failure here fails nothing. */
static void put_times(int fd, const struct timespec ts[2])
{
	struct stat st;

	/* only where an entry changed: a futimens dirties the inode */
	if (fstat(fd, &st) == 0 && (st.st_mtim.tv_sec != ts[1].tv_sec || st.st_mtim.tv_nsec != ts[1].tv_nsec))
		(void)!futimens(fd, ts);
}

static void drop_to(struct dircache *dc, size_t depth)
{
	while (dc->depth > depth) {
		int fd = dc->fds[--dc->depth];
		if (fd >= 0) {
			if (dc->keep_times)
				put_times(fd, dc->times[dc->depth]);
			close(fd);
		}
	}
	dc->len = depth ? dc->ends[depth - 1] : 0;
}

void dircache_release(struct dircache *dc)
{
	drop_to(dc, 0);
	if (dc->keep_times && dc->root_fd >= 0)
		put_times(dc->root_fd, dc->root_times);
	free(dc->dir);
	free(dc->fds);
	free(dc->ends);
	free(dc->times);
	*dc = (struct dircache){.root_fd = dc->root_fd, .mkdirs = dc->mkdirs};
}

int dircache_keep_times(struct dircache *dc)
{
	struct stat st;

	drop_to(dc, 0);
	if (dc->root_fd >= 0) {
		if (fstat(dc->root_fd, &st) < 0)
			return neg_errno();
		dc->root_times[0] = st.st_atim;
		dc->root_times[1] = st.st_mtim;
	}
	dc->keep_times = true;
	return 0;
}

static int push(struct dircache *dc, const char *comp, size_t clen)
{
	char name[NAME_MAX + 1];
	int parent = dc->depth ? dc->fds[dc->depth - 1] : dc->root_fd, fd;
	size_t need = dc->len + (dc->depth ? 1 : 0) + clen + 1;

	if (clen == 0 || clen > NAME_MAX)
		return clen ? -ENAMETOOLONG : -EINVAL;
	memcpy(name, comp, clen);
	name[clen] = '\0';
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	if (dc->depth == dc->fcap) {
		size_t nc = dc->fcap ? dc->fcap * 2 : 16;
		int *nf = realloc(dc->fds, nc * sizeof(*nf));
		size_t *ne;
		if (!nf)
			return -ENOMEM;
		dc->fds = nf;
		ne = realloc(dc->ends, nc * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		dc->ends = ne;
		{
			struct timespec(*nt)[2] = realloc(dc->times, nc * sizeof(*nt));
			if (!nt)
				return -ENOMEM;
			dc->times = nt;
		}
		dc->fcap = nc;
	}
	if (need > dc->cap) {
		size_t nc = MAX(need, dc->cap * 2);
		char *nd = realloc(dc->dir, nc);
		if (!nd)
			return -ENOMEM;
		dc->dir = nd;
		dc->cap = nc;
	}
	if (dc->mkdirs) {
		fd = layout_open_dir(parent, name);
	} else {
		fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			fd = neg_errno();
	}
	if (fd < 0)
		return fd;
	if (dc->keep_times) {
		struct stat st;
		if (fstat(fd, &st) < 0) {
			int r = neg_errno();
			close(fd);
			return r;
		}
		dc->times[dc->depth][0] = st.st_atim;
		dc->times[dc->depth][1] = st.st_mtim;
	}
	if (dc->depth)
		dc->dir[dc->len++] = '/';
	memcpy(dc->dir + dc->len, comp, clen);
	dc->len += clen;
	dc->dir[dc->len] = '\0';
	dc->fds[dc->depth] = fd;
	dc->ends[dc->depth] = dc->len;
	dc->depth++;
	if (dc->depth > DIRCACHE_MAX_FDS) {
		size_t old = dc->depth - 1 - DIRCACHE_MAX_FDS;
		if (dc->fds[old] >= 0) {
			if (dc->keep_times)
				put_times(dc->fds[old], dc->times[old]);
			close(dc->fds[old]);
			dc->fds[old] = -1;
		}
	}
	return 0;
}

int dircache_parent(struct dircache *dc, const char *relpath, const char **ret_name)
{
	const char *slash = strrchr(relpath, '/');
	size_t dirlen = slash ? (size_t)(slash - relpath) : 0, keep = 0, pos = 0;
	const char *name = slash ? slash + 1 : relpath;
	int r;

	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	/* how many cached components does the new directory share? */
	while (keep < dc->depth) {
		size_t start = keep ? dc->ends[keep - 1] + 1 : 0, end = dc->ends[keep];
		if (end > dirlen || memcmp(dc->dir + start, relpath + start, end - start) ||
		    (end < dirlen && relpath[end] != '/'))
			break;
		keep++;
		pos = end;
	}
	if (keep > 0 && dc->fds[keep - 1] < 0) {
		/* the shared prefix ends in an evicted fd: start from the root */
		keep = 0;
		pos = 0;
	}
	drop_to(dc, keep);
	while (pos < dirlen) {
		const char *comp = relpath + pos + (keep || pos ? 1 : 0);
		const char *e = memchr(comp, '/', (size_t)(relpath + dirlen - comp));
		size_t clen = e ? (size_t)(e - comp) : (size_t)(relpath + dirlen - comp);
		r = push(dc, comp, clen);
		if (r < 0) {
			drop_to(dc, 0);
			return r;
		}
		pos = (size_t)(comp - relpath) + clen;
		keep = 1;
	}
	*ret_name = name;
	return dc->depth ? dc->fds[dc->depth - 1] : dc->root_fd;
}
