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
#include "lower_copy.h"
#include "online_internal.h"

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

/* ---- preparation ---- */

/* The prepared lower's parent directory and name.  Returns an fd or
 * -errno. */
int online_open_next_parent(struct pool *p, const struct guest *g, int home_fd, char *next, size_t size,
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
	dir = online_open_next_parent(p, g, home_fd, next, sizeof(next), &lower);
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
	dir = online_open_next_parent(p, g, home_fd, next, sizeof(next), &lower);
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

int online_cleanup(struct pool *p, struct guest *g, int home_fd, bool refresh)
{
	char next[128];
	const char *lower;
	_cleanup_close_ int dir = -1;
	int r;

	r = online_pending(home_fd);
	if (r != 0)
		return r < 0 ? r : 0; /* a switch still to come: its lower stays */
	dir = online_open_next_parent(p, g, home_fd, next, sizeof(next), &lower);
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
	dir = online_open_next_parent(p, g, home_fd, next, sizeof(next), &lower);
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
