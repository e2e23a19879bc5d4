/* Online unify's prepared lower and the switch at the next mount
 * (online.h; docs/DESIGN.md, "Re-unifying a running guest").
 *
 * What this file guarantees: no function here writes a layer of a mounted
 * guest except online_switch, whose caller has made sure the guest is not
 * mounted; the guest's view is the same before the switch, after it, and
 * at every instant in between (kill -9 included); a switch killed anywhere
 * is finished by running it again.  Everything goes through directory fds
 * without following a symlink (the upper is written by guest root). */
#define _GNU_SOURCE
#include "online.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dircache.h"
#include "layout.h"
#include "lowerlist.h"
#include "parallel.h"
#include "remove_tree.h"
#include "unify.h"
#include "util.h"
#include "walk.h"
#include "xattr.h"
#include "banned.h"

#define MANIFEST_MAGIC "vunify-online-switch 1"
/* a manifest is at most this big (about 100 bytes an entry) */
#define MANIFEST_MAX (1ULL << 31)

int online_next_name(struct pool *p, const struct guest *g, char *buf, size_t size)
{
	const struct layout_ops *ops = layout_ops_for(p);
	int n;

	/* redirect: HOME/meta.next; link: POOL/roots/.next.NAME (a leading
	 * dot is no guest name, so no guest's roots can be called that) */
	if (ops->lower_in_home)
		n = snprintf(buf, size, "%s.next", HOME_META);
	else
		n = snprintf(buf, size, ".next.%s", g->name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int online_pending(int home_fd)
{
	struct stat st;

	if (fstatat(home_fd, HOME_ONLINE_MANIFEST, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return S_ISREG(st.st_mode) ? 1 : -EUCLEAN;
	return errno == ENOENT ? 0 : neg_errno();
}

/* ---- copying a lower layer (read only) ---- */

struct linked {
	ino_t ino;
	char *path; /* where its first name went in the copy */
};

struct lower_copy {
	bool by_link; /* link layout: entries are links of objects */
	struct fdlevels dst;
	struct linked *links; /* redirect: hard-linked stubs already copied */
	size_t n_links, cap_links;
	int dst_root;
};

/* Owner, mode, xattrs (every one: a stub's trusted.overlay.* included) and
 * times of src (an O_PATH fd when O_PATH) onto dst (an open fd). */
static int copy_meta(int src, bool o_path, const struct stat *st, int dst)
{
	struct xattr_list xl = {0};
	struct timespec ts[2] = {st->st_atim, st->st_mtim};
	int r;

	if (fchown(dst, st->st_uid, st->st_gid) < 0 || fchmod(dst, st->st_mode & 07777) < 0)
		return neg_errno();
	r = xattr_list_read(src, o_path, 0, &xl);
	if (r == 0)
		r = xattr_list_apply(dst, false, &xl);
	xattr_list_free(&xl);
	if (r == 0 && futimens(dst, ts) < 0)
		r = neg_errno();
	return r;
}

/* A copy of the non-directory NAME of src_dir (stat ST) as NAME in dst_dir:
 * a hard link of the same inode (BY_LINK), else a new inode of the same
 * size (sparse: a stub's data comes from its object), metadata and xattrs. */
static int copy_entry(int src_dir, const char *name, const struct stat *st, int dst_dir, bool by_link)
{
	_cleanup_close_ int sfd = -1, dfd = -1;
	struct stat st2;

	if (by_link || !S_ISREG(st->st_mode)) {
		if (S_ISREG(st->st_mode))
			return linkat(src_dir, name, dst_dir, name, 0) < 0 ? neg_errno() : 0;
		/* a lower layer holds regular files and directories; anything
		 * else is copied as what it is */
		if (S_ISLNK(st->st_mode)) {
			char target[4097];
			ssize_t len = readlinkat(src_dir, name, target, sizeof(target) - 1);
			struct timespec ts[2] = {st->st_atim, st->st_mtim};
			if (len < 0)
				return neg_errno();
			target[len] = '\0';
			if (symlinkat(target, dst_dir, name) < 0 ||
			    fchownat(dst_dir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
			    utimensat(dst_dir, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
				return neg_errno();
			return 0;
		}
		if (mknodat(dst_dir, name, st->st_mode, st->st_rdev) < 0)
			return neg_errno();
		sfd = openat(src_dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		dfd = openat(dst_dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0 || dfd < 0)
			return neg_errno();
		{
			struct xattr_list xl = {0};
			struct timespec ts[2] = {st->st_atim, st->st_mtim};
			int r = xattr_list_read(sfd, true, 0, &xl);
			if (r == 0)
				r = xattr_list_apply(dfd, true, &xl);
			xattr_list_free(&xl);
			if (r == 0 &&
			    (fchownat(dst_dir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
			     fchmodat(dst_dir, name, st->st_mode & 07777, 0) < 0 ||
			     utimensat(dst_dir, name, ts, AT_SYMLINK_NOFOLLOW) < 0))
				r = neg_errno();
			return r;
		}
	}
	sfd = openat(src_dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return neg_errno();
	if (fstat(sfd, &st2) < 0)
		return neg_errno();
	if (st2.st_ino != st->st_ino || !S_ISREG(st2.st_mode))
		return -E_CHANGED; /* replaced since the walk saw it */
	dfd = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dfd < 0)
		return neg_errno();
	if (ftruncate(dfd, st2.st_size) < 0)
		return neg_errno();
	return copy_meta(sfd, true, &st2, dfd);
}

static int lower_copy_cb(const struct walk_entry *e, enum walk_event ev, void *ud)
{
	struct lower_copy *c = ud;
	int r;

	if (ev == WALK_DIR_PRE) {
		int fd;
		if (e->depth == 0)
			return 0; /* level 0 is the copy's root, pushed already */
		if (mkdirat(fdlevels_top(&c->dst), e->name, 0700) < 0)
			return neg_errno();
		fd = openat(fdlevels_top(&c->dst), e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return neg_errno();
		return fdlevels_push(&c->dst, fd);
	}
	if (ev == WALK_DIR_POST) {
		/* a directory's metadata last: its times after its entries */
		r = copy_meta(e->fd, false, &e->st, fdlevels_top(&c->dst));
		if (r < 0 || e->depth == 0)
			return r;
		return fdlevels_drop(&c->dst);
	}
	if (!c->by_link && S_ISREG(e->st.st_mode) && e->st.st_nlink > 1) {
		/* hard-linked stubs (older pools) stay one inode */
		for (size_t i = 0; i < c->n_links; i++) {
			const char *name;
			_cleanup_close_ int dfd = -1;
			if (c->links[i].ino != e->st.st_ino)
				continue;
			dfd = open_parent_beneath(c->dst_root, c->links[i].path, false, &name);
			if (dfd < 0)
				return dfd;
			return linkat(dfd, name, fdlevels_top(&c->dst), e->name, 0) < 0 ? neg_errno() : 0;
		}
		if (c->n_links == c->cap_links) {
			size_t nc = c->cap_links ? 2 * c->cap_links : 64;
			struct linked *nv = realloc(c->links, nc * sizeof(*nv));
			if (!nv)
				return -ENOMEM;
			c->links = nv;
			c->cap_links = nc;
		}
		c->links[c->n_links].ino = e->st.st_ino;
		c->links[c->n_links].path = strdup(e->path);
		if (!c->links[c->n_links].path)
			return -ENOMEM;
		c->n_links++;
	}
	return copy_entry(e->parent_fd, e->name, &e->st, fdlevels_top(&c->dst), c->by_link);
}

/* Copy the directory tree src_fd into a new directory NAME of dst_dir.
 * Returns 0 or -errno (a partial copy is left for the caller to remove). */
static int lower_copy_tree(int src_fd, int dst_dir, const char *name, bool by_link)
{
	struct lower_copy c = {.by_link = by_link};
	int fd, r;

	if (mkdirat(dst_dir, name, 0700) < 0)
		return neg_errno();
	fd = openat(dst_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	c.dst.own0 = true;
	c.dst_root = fd;
	r = fdlevels_push(&c.dst, fd);
	if (r == 0)
		r = walk_tree(src_fd, lower_copy_cb, &c);
	fdlevels_release(&c.dst);
	for (size_t i = 0; i < c.n_links; i++)
		free(c.links[i].path);
	free(c.links);
	return r;
}

/* ---- preparation ---- */

/* The prepared lower's parent directory and name.  Returns an fd or
 * -errno. */
static int open_next_parent(struct pool *p, const struct guest *g, int home_fd, char *next, size_t size,
                            const char **ret_lower)
{
	int r = online_next_name(p, g, next, size);

	if (r < 0)
		return r;
	return layout_ops_for(p)->open_lower_parent(p, g, home_fd, ret_lower);
}

int online_discard(struct pool *p, const struct guest *g, int home_fd)
{
	char next[128];
	const char *lower;
	_cleanup_close_ int dir = -1;
	int r;

	if (home_fd < 0 && layout_ops_for(p)->lower_in_home)
		return 0; /* home not attached: nothing of it here */
	dir = open_next_parent(p, g, home_fd, next, sizeof(next), &lower);
	if (dir < 0)
		return dir == -ENOENT ? 0 : dir;
	/* the manifest first: without it the prepared lower is garbage */
	if (home_fd < 0) {
		/* (link layout, home not attached: only the pool's part) */
	} else if (unlinkat(home_fd, HOME_ONLINE_MANIFEST, 0) == 0) {
		r = fsync_dir(home_fd);
		if (r < 0)
			return r;
	} else if (errno != ENOENT) {
		return neg_errno();
	}
	r = remove_tree_at(dir, next);
	if (r == 0)
		r = fsync_dir(dir);
	return r;
}

int online_prepare_begin(struct pool *p, const struct guest *g, int home_fd)
{
	char next[128];
	const char *lower;
	_cleanup_close_ int dir = -1, lower_fd = -1;
	int r, fd;

	/* a second --online replaces the first preparation */
	r = online_discard(p, g, home_fd);
	if (r < 0)
		return r;
	dir = open_next_parent(p, g, home_fd, next, sizeof(next), &lower);
	if (dir < 0)
		return dir;
	lower_fd = guest_open_lower(p, g, home_fd, false);
	if (lower_fd == -ENOENT) {
		/* never unified: the next lower starts empty */
		if (mkdirat(dir, next, 0755) < 0)
			return neg_errno();
	} else if (lower_fd < 0) {
		return lower_fd;
	} else {
		r = lower_copy_tree(lower_fd, dir, next, !layout_ops_for(p)->lower_in_home);
		if (r < 0) {
			(void)remove_tree_at(dir, next);
			return r;
		}
	}
	fd = openat(dir, next, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? neg_errno() : fd;
}

int online_prepare_commit(int home_fd, int next_fd, const struct online_entry *v, size_t n)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	if (fstat(next_fd, &st) < 0)
		return neg_errno();
	/* 1. the prepared lower durable (its objects are durable already:
	 *    the store names an object before any entry points at it) */
	if (syncfs(next_fd) < 0)
		return neg_errno();
	f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	/* header: the prepared lower's inode number says, at the switch,
	 * which of the two directories is the prepared one */
	fprintf(f, "%s %" PRIu64 "\n", MANIFEST_MAGIC, (uint64_t)st.st_ino);
	for (size_t i = 0; i < n; i++) {
		const struct stat *s = &v[i].st;
		fprintf(f, "%" PRIu64 " %" PRIu64 " %lld %ld %lld %ld %s", (uint64_t)s->st_ino,
		        (uint64_t)s->st_size, (long long)s->st_mtim.tv_sec, s->st_mtim.tv_nsec,
		        (long long)s->st_ctim.tv_sec, s->st_ctim.tv_nsec, v[i].path);
		fputc('\0', f);
	}
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	/* 2. the commit point: the manifest, atomically (temp, fsync,
	 *    rename, fsync HOME) */
	r = write_file_atomic_at(home_fd, HOME_ONLINE_MANIFEST, buf, len, 0600);
	free(buf);
	return r;
}

/* ---- the switch ---- */

struct manifest {
	char *buf;
	size_t len;
	uint64_t prep_ino;
	struct online_entry *v;
	size_t n;
};

static void manifest_free(struct manifest *m)
{
	free(m->buf);
	free(m->v);
}

static int parse_num(char **s, int64_t *ret)
{
	char *e;
	long long v;

	errno = 0;
	v = strtoll(*s, &e, 10);
	if (errno || e == *s || *e != ' ')
		return -EBADMSG;
	*ret = v;
	*s = e + 1;
	return 0;
}

static int manifest_read(int home_fd, struct manifest *m)
{
	char *p, *end, *nl;
	size_t cap = 0;
	int r = read_file_at(home_fd, HOME_ONLINE_MANIFEST, MANIFEST_MAX, &m->buf, &m->len);

	if (r < 0)
		return r;
	nl = memchr(m->buf, '\n', m->len);
	if (!nl || strncmp(m->buf, MANIFEST_MAGIC " ", strlen(MANIFEST_MAGIC " ")))
		return -EBADMSG;
	*nl = '\0';
	r = parse_u64(m->buf + strlen(MANIFEST_MAGIC " "), &m->prep_ino);
	if (r < 0)
		return -EBADMSG;
	end = m->buf + m->len;
	for (p = nl + 1; p < end;) {
		char *z = memchr(p, '\0', (size_t)(end - p));
		int64_t f[6];
		struct online_entry *e;
		if (!z)
			return -EBADMSG;
		for (int k = 0; k < 6; k++)
			if (parse_num(&p, &f[k]) < 0)
				return -EBADMSG;
		if (!*p)
			return -EBADMSG;
		if (m->n == cap) {
			size_t nc = cap ? 2 * cap : 1024;
			struct online_entry *nv = realloc(m->v, nc * sizeof(*nv));
			if (!nv)
				return -ENOMEM;
			m->v = nv;
			cap = nc;
		}
		e = &m->v[m->n++];
		memset(e, 0, sizeof(*e));
		e->path = p;
		e->st.st_mode = S_IFREG;
		e->st.st_ino = (ino_t)f[0];
		e->st.st_size = (off_t)f[1];
		e->st.st_mtim.tv_sec = f[2];
		e->st.st_mtim.tv_nsec = f[3];
		e->st.st_ctim.tv_sec = f[4];
		e->st.st_ctim.tv_nsec = f[5];
		p = z + 1;
	}
	return 0;
}

/* The upper file is exactly what was hashed: the same inode, size, mtime
 * and ctime (any write, chmod, chown, xattr change, link or rename since
 * changes the ctime; the kernel's multigrain timestamps make a change
 * right after our stat visible too). */
static bool unchanged(const struct stat *now, const struct stat *then)
{
	return S_ISREG(now->st_mode) && now->st_ino == then->st_ino && now->st_size == then->st_size &&
	       now->st_mtim.tv_sec == then->st_mtim.tv_sec && now->st_mtim.tv_nsec == then->st_mtim.tv_nsec &&
	       now->st_ctim.tv_sec == then->st_ctim.tv_sec && now->st_ctim.tv_nsec == then->st_ctim.tv_nsec;
}

enum upper_state {
	UPPER_UNCHANGED, /* as hashed: purged after the exchange */
	UPPER_PRESENT, /* something else is there now: it hides the lower */
	UPPER_HIDDEN, /* a component is a non-directory (a whiteout): hidden */
	UPPER_ABSENT, /* deleted or renamed away, no whiteout: must not resurrect */
};

/* Where does PATH stand in the upper?  For UPPER_ABSENT, *ret_missing is
 * the length of the shallowest missing prefix of PATH. */
static int upper_state(struct dircache *dc, const struct online_entry *e, size_t *ret_missing)
{
	const char *name;
	struct stat st;
	int dfd = dircache_parent(dc, e->path, &name);

	if (dfd >= 0) {
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return unchanged(&st, &e->st) ? UPPER_UNCHANGED : UPPER_PRESENT;
		if (errno != ENOENT)
			return neg_errno();
		*ret_missing = strlen(e->path);
		return UPPER_ABSENT;
	}
	if (dfd != -ENOENT && dfd != -ENOTDIR && dfd != -ELOOP)
		return dfd;
	/* a directory on the way is missing or is no directory: which? */
	for (const char *s = strchr(e->path, '/'); s; s = strchr(s + 1, '/')) {
		_cleanup_free_ char *prefix = strndup(e->path, (size_t)(s - e->path));
		_cleanup_close_ int pfd = -1;
		if (!prefix)
			return -ENOMEM;
		pfd = open_parent_beneath(dc->root_fd, prefix, false, &name);
		if (pfd < 0)
			return pfd == -ENOTDIR || pfd == -ELOOP ? UPPER_HIDDEN : pfd;
		if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				return neg_errno();
			*ret_missing = (size_t)(s - e->path);
			return UPPER_ABSENT;
		}
		if (!S_ISDIR(st.st_mode))
			return UPPER_HIDDEN;
	}
	return UPPER_HIDDEN; /* changed between the two looks: leave it */
}

/* lstat PATH (LEN bytes of it) under root_fd.  Returns 1 if it exists, 0
 * if not, or -errno. */
static int exists_beneath(int root_fd, const char *path, size_t len, struct stat *ret_st)
{
	_cleanup_free_ char *s = strndup(path, len);
	_cleanup_close_ int dfd = -1;
	const char *name;

	if (!s)
		return -ENOMEM;
	dfd = open_parent_beneath(root_fd, s, false, &name);
	if (dfd == -ENOENT || dfd == -ENOTDIR)
		return 0;
	if (dfd < 0)
		return dfd;
	if (fstatat(dfd, name, ret_st, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	return errno == ENOENT ? 0 : neg_errno();
}

/* The guest deleted or renamed E's path after the preparation, leaving no
 * whiteout (it existed only in the upper): what the guest sees there now
 * comes from the old lower, so the prepared lower must show the same.
 * From the shallowest missing prefix down, the first prefix the old lower
 * lacks is the preparation's own addition: its whole subtree leaves the
 * prepared lower.  If the old lower has every prefix, its entry is copied
 * back over the prepared one.  Returns 0 or -errno. */
static int drop_entry(int old_fd, int next_fd, const char *path, size_t missing, bool by_link)
{
	struct stat st;
	size_t len = missing;
	int r;

	for (;;) {
		r = exists_beneath(old_fd, path, len, &st);
		if (r < 0)
			return r;
		if (r == 0 || path[len] == '\0')
			break;
		len += strcspn(path + len + 1, "/") + 1;
	}
	{
		_cleanup_free_ char *s = strndup(path, len);
		_cleanup_close_ int dfd = -1, sdir = -1;
		const char *name;
		if (!s)
			return -ENOMEM;
		dfd = open_parent_beneath(next_fd, s, false, &name);
		if (dfd == -ENOENT || dfd == -ENOTDIR)
			return 0; /* gone with a dropped ancestor */
		if (dfd < 0)
			return dfd;
		r = remove_tree_at(dfd, name);
		if (r < 0 || !(r = exists_beneath(old_fd, path, len, &st)))
			return r;
		/* the old lower's entry, as it is */
		if (r < 0)
			return r;
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int src = open_beneath(old_fd, s, O_RDONLY | O_DIRECTORY, 0);
			if (src < 0)
				return src;
			r = lower_copy_tree(src, dfd, name, by_link);
			return r;
		}
		sdir = open_parent_beneath(old_fd, s, false, &name);
		if (sdir < 0)
			return sdir;
		return copy_entry(sdir, name, &st, dfd, by_link);
	}
}

/* Step 3 of the switch over entries [i * PURGE_CHUNK, ...) of the
 * manifest: each upper copy still exactly as hashed is unlinked. */
#define PURGE_CHUNK 512

struct purge_job {
	const struct manifest *m;
	const unsigned char *state;
	int upper_fd;
	uint64_t purged, kept;
};

static int purge_chunk(size_t c, void *ud)
{
	struct purge_job *j = ud;
	struct dircache dc;
	size_t end = MIN((c + 1) * PURGE_CHUNK, j->m->n);
	int r = 0;

	dircache_init(&dc, j->upper_fd, false);
	for (size_t i = c * PURGE_CHUNK; i < end && r == 0; i++) {
		const struct online_entry *e = &j->m->v[i];
		const char *name;
		struct stat st;
		int dfd;
		if (j->state[i] != UPPER_UNCHANGED) {
			if (j->state[i] == UPPER_PRESENT)
				count_add(&j->kept, 1);
			continue;
		}
		dfd = dircache_parent(&dc, e->path, &name);
		if (dfd < 0) {
			r = dfd;
			break;
		}
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !unchanged(&st, &e->st))
			continue;
		if (unlinkat(dfd, name, 0) < 0)
			r = neg_errno();
		else
			count_add(&j->purged, 1);
	}
	dircache_release(&dc);
	return r;
}

/* HOME/meta.img, the redirect layout's stubs packed into one image, where
 * a pool has it (issue 9): derived from HOME/meta and only ever equal to
 * it, so it must not outlive the old lower.  Returns 0 or -errno. */
static int drop_stale_image(int home_fd)
{
	if (unlinkat(home_fd, "meta.img", 0) < 0)
		return errno == ENOENT ? 0 : neg_errno();
	return fsync_dir(home_fd);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The switch.  The order, and why a kill -9 after each step leaves the
 * guest's view (upper over lower) what it was when it stopped:
 *  0. which directory is which: the manifest names the prepared lower by
 *     its inode number.  The lower is it: the exchange happened, go to 3.
 *     The prepared name is it: go to 1.  Neither (the home came from
 *     another host, or the prepared lower is gone): the preparation is
 *     discarded (manifest first), nothing else changes.
 *  1. each manifest entry checked against the upper as it is now.  An
 *     entry whose path the guest deleted or renamed away since (no
 *     whiteout: it existed only in the upper) is dropped from the prepared
 *     lower, with the directories the preparation added that the upper no
 *     longer has, so nothing resurrects; then syncfs of the prepared
 *     lower.  Only the prepared lower changed, which no mount uses: dying
 *     here leaves the old state, and a re-run computes the same drops
 *     (the upper has not changed: the guest is not mounted).
 *  2. renameat2(RENAME_EXCHANGE) of the lower and the prepared lower, then
 *     fsync of their directory.  One atomic step: the lower is the old one
 *     or the new one.  The new one differs from the old only at paths the
 *     upper hides (an upper copy, changed or not, or a whiteout): dying
 *     here the view is the same, and a re-run goes on at 3.
 *     (Link layout with replicas: the home's description of the lower
 *     layer is rewritten from the new lower, fsync'd, before any upper
 *     copy goes, so that a host replaying it shows them.)
 *  3. each upper copy still exactly as hashed (inode, size, mtime, ctime)
 *     is unlinked; its new lower entry has the same content (its object's
 *     name is that content's hash) and metadata.  Then syncfs of the
 *     upper.  A re-run unlinks what is left.
 *  4. the manifest unlinked, HOME fsync'd.  The old lower, now under the
 *     prepared name, is garbage without it (online_cleanup, or the next
 *     preparation, removes it). */
int online_switch(struct pool *p, const struct guest *g, int home_fd, struct online_switch_result *ret)
{
	const struct layout_ops *ops = layout_ops_for(p);
	struct online_switch_result res = {0};
	struct manifest m = {0};
	struct dircache dc;
	char next[128];
	const char *lower;
	_cleanup_close_ int dir = -1, upper_fd = -1, old_fd = -1, next_fd = -1;
	unsigned char *state = NULL;
	struct stat sl, sn;
	bool exchanged;
	double t0 = now_s();
	int r;

	r = online_pending(home_fd);
	if (r <= 0) {
		*ret = res;
		return r;
	}
	r = manifest_read(home_fd, &m);
	if (r < 0)
		goto out;
	dir = open_next_parent(p, g, home_fd, next, sizeof(next), &lower);
	if (dir < 0) {
		r = dir;
		goto out;
	}
	/* 0. which is which */
	if (fstatat(dir, lower, &sl, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sl.st_mode) &&
	    (uint64_t)sl.st_ino == m.prep_ino) {
		exchanged = true;
	} else if (fstatat(dir, next, &sn, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sn.st_mode) &&
	           (uint64_t)sn.st_ino == m.prep_ino) {
		exchanged = false;
	} else {
		res.discarded = true;
		r = online_discard(p, g, home_fd);
		goto out;
	}
	upper_fd = openat(home_fd, HOME_UPPER, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (upper_fd < 0) {
		r = neg_errno();
		goto out;
	}
	state = calloc(m.n ? m.n : 1, 1);
	if (!state) {
		r = -ENOMEM;
		goto out;
	}
	dircache_init(&dc, upper_fd, false);
	for (size_t i = 0; i < m.n; i++) {
		size_t missing = 0;
		r = upper_state(&dc, &m.v[i], &missing);
		if (r < 0)
			break;
		state[i] = (unsigned char)r;
		if (r == UPPER_ABSENT && !exchanged) {
			/* 1. what the guest removed leaves the prepared lower */
			if (old_fd < 0) {
				old_fd = openat(dir, lower, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				next_fd = openat(dir, next, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (old_fd < 0 || next_fd < 0) {
					r = neg_errno();
					break;
				}
			}
			r = drop_entry(old_fd, next_fd, m.v[i].path, missing, !ops->lower_in_home);
			if (r < 0)
				break;
			res.entries_dropped++;
		}
		r = 0;
	}
	dircache_release(&dc);
	if (r < 0)
		goto out;
	if (!exchanged) {
		if (next_fd >= 0 && syncfs(next_fd) < 0) {
			r = neg_errno();
			goto out;
		}
		/* an image of the old stubs (HOME/meta.img, issue 9) would
		 * show the old lower: it goes first, durably, and mount falls
		 * back to the stubs (the next unify writes a new one) */
		if (ops->lower_in_home) {
			r = drop_stale_image(home_fd);
			if (r < 0)
				goto out;
		}
		/* 2. the exchange, durable */
		if (renameat2(dir, lower, dir, next, RENAME_EXCHANGE) < 0) {
			r = neg_errno();
			goto out;
		}
		r = fsync_dir(dir);
		if (r < 0)
			goto out;
	}
	res.switched = true;
	if (!ops->lower_in_home) {
		/* link layout with replicas: the description follows the new
		 * lower before any upper copy goes */
		r = lowerlist_exists(home_fd);
		if (r == 1) {
			_cleanup_close_ int lfd =
			        openat(dir, lower, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			r = lfd < 0 ? neg_errno() : lowerlist_write(p, home_fd, lfd);
		}
		if (r < 0)
			goto out;
	}
	/* 3. the upper copies still as hashed (unlinks in parallel: freeing
	 *    their blocks is most of the switch's time) */
	{
		struct purge_job pj = {.m = &m, .state = state, .upper_fd = upper_fd};
		size_t failed;
		r = parallel_for((m.n + PURGE_CHUNK - 1) / PURGE_CHUNK, parallel_jobs(0), purge_chunk, &pj,
		                 &failed);
		res.files_purged = pj.purged;
		res.files_kept = pj.kept;
	}
	if (r == 0 && syncfs(upper_fd) < 0)
		r = neg_errno();
	if (r < 0)
		goto out;
	/* 4. done: the manifest goes */
	if (unlinkat(home_fd, HOME_ONLINE_MANIFEST, 0) < 0 && errno != ENOENT) {
		r = neg_errno();
		goto out;
	}
	r = fsync_dir(home_fd);
out:
	res.seconds = now_s() - t0;
	free(state);
	manifest_free(&m);
	if (r == 0)
		*ret = res;
	return r;
}

int online_cleanup(struct pool *p, struct guest *g, int home_fd, bool refresh)
{
	char next[128];
	const char *lower;
	_cleanup_close_ int dir = -1;
	int r;

	r = online_pending(home_fd);
	if (r != 0)
		return r < 0 ? r : 0; /* a switch still to come: its lower stays */
	dir = open_next_parent(p, g, home_fd, next, sizeof(next), &lower);
	if (dir < 0)
		return dir;
	r = remove_tree_at(dir, next);
	if (r == 0 && refresh)
		r = guest_refresh_stats(p, g, home_fd, NULL);
	return r;
}

/* The prepared lower's inode number from the manifest's first line.
 * Returns 0 or -errno (-EBADMSG: not a manifest). */
static int manifest_prep_ino(int home_fd, uint64_t *ret)
{
	char buf[128];
	_cleanup_close_ int fd = openat(home_fd, HOME_ONLINE_MANIFEST, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t len;
	char *nl;

	if (fd < 0)
		return neg_errno();
	len = pread(fd, buf, sizeof(buf) - 1, 0);
	if (len < 0)
		return neg_errno();
	buf[len] = '\0';
	nl = strchr(buf, '\n');
	if (!nl || strncmp(buf, MANIFEST_MAGIC " ", strlen(MANIFEST_MAGIC " ")))
		return -EBADMSG;
	*nl = '\0';
	return parse_u64(buf + strlen(MANIFEST_MAGIC " "), ret) < 0 ? -EBADMSG : 0;
}

int online_open_next(struct pool *p, const struct guest *g, int home_fd)
{
	char next[128];
	const char *lower;
	_cleanup_close_ int dir = -1;
	struct stat st;
	uint64_t ino;
	int r, fd;

	if (home_fd < 0)
		return -ENOENT;
	r = online_pending(home_fd);
	if (r <= 0)
		return r < 0 ? r : -ENOENT;
	r = manifest_prep_ino(home_fd, &ino);
	if (r < 0)
		return r;
	dir = open_next_parent(p, g, home_fd, next, sizeof(next), &lower);
	if (dir < 0)
		return dir;
	fd = openat(dir, next, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_ino != ino) {
		/* not this manifest's (the home came from elsewhere, or the
		 * exchange happened): no prepared lower to speak of; the
		 * next mount sorts it out */
		close(fd);
		return -ENOENT;
	}
	return fd;
}
