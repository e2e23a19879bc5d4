/* Online unify's switch at the next mount: the manifest read back, the
 * prepared lower pruned of what the guest removed since, exchanged in, and
 * the upper copies still as hashed purged.  The order is at online_switch. */
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
#include "meta_image.h"
#include "parallel.h"
#include "remove_tree.h"
#include "unify.h"
#include "util.h"
#include "walk.h"
#include "xattr.h"
#include "banned.h"
#include "lower_copy.h"
#include "online_internal.h"

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
		return lower_copy_entry(sdir, name, &st, dfd, by_link);
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

/* Format 4 keeps no stubs on disk: the exchange below needs the old lower
 * as a directory, so the image's tree is written out as HOME/meta first,
 * whole under a temp name, then renamed in.  Beside the image it shows the
 * same tree (the image stays the record until step 2 drops it); dying
 * before the rename leaves a temp directory the next switch replaces, and
 * after it stubs that the next writer removes or this switch uses.  The
 * guest then runs on the stubs until the next unify writes its image.
 * Returns 0 or -errno. */
static int stubs_from_image(int home_fd)
{
	static const char tmp[] = "." HOME_META ".from-image";
	_cleanup_close_ int img = -1;
	int r;

	if (faccessat(home_fd, HOME_META, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	img = meta_image_open(home_fd, 0);
	if (img == -ENOENT)
		return 0;
	if (img < 0)
		return img;
	r = remove_tree_at(home_fd, tmp);
	if (r == 0)
		r = lower_copy_tree(img, home_fd, tmp, false);
	if (r == 0)
		r = publish_tree(home_fd, home_fd, tmp, HOME_META);
	return r;
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
	dir = online_open_next_parent(p, g, home_fd, next, sizeof(next), &lower);
	if (dir < 0) {
		r = dir;
		goto out;
	}
	/* (format 4: the old lower as stubs, from its image) */
	if (ops->lower_image) {
		r = stubs_from_image(home_fd);
		if (r < 0)
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
